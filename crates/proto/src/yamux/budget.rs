//! A receive-buffer budget shared by every session of a node.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Caps the bytes that all sessions sharing it hold received but not yet
/// read by the application.
///
/// A peer may legally send up to a stream's window without waiting for the
/// reader, so per-connection bounds alone still let many connections add up
/// to more memory than the machine has. Sessions configured with the same
/// budget ([`Config::set_buffer_budget`](super::Config::set_buffer_budget))
/// reserve every received data frame from it before buffering it:
///
/// * a frame that does not fit resets its stream (the reader sees
///   [`StreamError::BufferLimit`](super::StreamError::BufferLimit)) — the
///   connection and its other streams carry on;
/// * while it is full, new inbound streams are refused with RST;
/// * while it is more than half used, receive windows stop growing.
///
/// Cloning is cheap; clones share the count.
#[derive(Clone)]
pub struct BufferBudget(Arc<Inner>);

struct Inner {
    limit: u64,
    used: AtomicU64,
}

impl BufferBudget {
    /// A budget of `limit` bytes, none used.
    pub fn new(limit: u64) -> BufferBudget {
        BufferBudget(Arc::new(Inner { limit, used: AtomicU64::new(0) }))
    }

    /// The cap in bytes.
    pub fn limit(&self) -> u64 {
        self.0.limit
    }

    /// Bytes currently reserved (received, unread) by all sessions.
    pub fn used(&self) -> u64 {
        self.0.used.load(Ordering::Relaxed)
    }

    /// Whether more than half the budget is in use.
    pub(crate) fn under_pressure(&self) -> bool {
        self.used() > self.0.limit / 2
    }

    /// Whether the budget is exhausted.
    pub(crate) fn is_full(&self) -> bool {
        self.used() >= self.0.limit
    }

    /// Reserves `n` bytes if they fit under the limit.
    pub(crate) fn try_reserve(&self, n: u64) -> bool {
        self.0
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|&total| total <= self.0.limit)
            })
            .is_ok()
    }

    /// Returns `n` reserved bytes.
    pub(crate) fn release(&self, n: u64) {
        if n > 0 {
            self.0.used.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for BufferBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferBudget").field("limit", &self.0.limit).field("used", &self.used()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_up_to_the_limit_and_clones_share_the_count() {
        let a = BufferBudget::new(100);
        let b = a.clone();
        assert!(a.try_reserve(60));
        assert!(!b.try_reserve(41));
        assert!(b.try_reserve(40));
        assert!(a.is_full());
        assert!(!a.try_reserve(1));
        b.release(70);
        assert_eq!(a.used(), 30);
        assert!(!a.under_pressure());
        assert!(!a.try_reserve(u64::MAX));
    }
}

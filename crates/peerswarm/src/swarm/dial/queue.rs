//! The delay-ordered dial queue of one dial worker (go `dialQueue`).

use std::time::Duration;

use multiaddr::Multiaddr;

use super::ranker::AddrDelay;

/// Addresses waiting to be dialed, ordered by delay; equal delays keep their
/// insertion order. Holds each address at most once.
///
/// Operations are O(n); a worker holds at most its `max_tracked_addrs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialQueue {
    q: Vec<AddrDelay>,
}

impl DialQueue {
    /// An empty queue.
    pub fn new() -> Self {
        DialQueue::default()
    }

    /// Inserts `entry` after every entry with a delay ≤ its own. If the
    /// address is already queued it is moved to the new delay (nothing
    /// happens if the delay is unchanged), so this is also go's
    /// `UpdateOrAdd`.
    pub fn add(&mut self, entry: AddrDelay) {
        if let Some(i) = self.q.iter().position(|e| e.addr == entry.addr) {
            if self.q[i].delay == entry.delay {
                return;
            }
            self.q.remove(i);
        }
        let at = self.q.partition_point(|e| e.delay <= entry.delay);
        self.q.insert(at, entry);
    }

    /// Removes and returns every entry sharing the smallest delay (empty if
    /// the queue is empty).
    pub fn next_batch(&mut self) -> Vec<AddrDelay> {
        let Some(first) = self.q.first() else { return Vec::new() };
        let delay = first.delay;
        let n = self.q.iter().take_while(|e| e.delay == delay).count();
        self.q.drain(..n).collect()
    }

    /// The smallest queued delay.
    pub fn top_delay(&self) -> Option<Duration> {
        self.q.first().map(|e| e.delay)
    }

    /// Removes `addr` if queued; returns whether it was.
    pub fn remove(&mut self, addr: &Multiaddr) -> bool {
        let before = self.q.len();
        self.q.retain(|e| &e.addr != addr);
        self.q.len() != before
    }

    /// Number of queued addresses.
    pub fn len(&self) -> usize {
        self.q.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Vec<Multiaddr> {
        (0..10).map(|i| format!("/ip4/1.2.3.4/tcp/{i}").parse().unwrap()).collect()
    }

    fn ad(addr: &Multiaddr, delay: u64) -> AddrDelay {
        AddrDelay { addr: addr.clone(), delay: Duration::from_nanos(delay) }
    }

    fn check(input: Vec<AddrDelay>, output: Vec<Vec<Multiaddr>>) {
        let mut q = DialQueue::new();
        for e in input {
            q.add(e);
        }
        for mut want in output {
            let mut got: Vec<Multiaddr> = q.next_batch().into_iter().map(|e| e.addr).collect();
            got.sort_by_key(|a| a.to_string());
            want.sort_by_key(|a| a.to_string());
            assert_eq!(got, want);
        }
        assert_eq!(q.len(), 0, "queue empty at the end");
    }

    // go: dial_worker_test.go TestDialQueueNextBatch
    #[test]
    fn dial_queue_next_batch() {
        let a = addrs();
        // next batch
        check(
            vec![ad(&a[0], 3), ad(&a[1], 2), ad(&a[2], 1), ad(&a[3], 1)],
            vec![vec![a[2].clone(), a[3].clone()], vec![a[1].clone()], vec![a[0].clone()]],
        );
        // priority queue property 2
        check(
            vec![ad(&a[0], 5), ad(&a[1], 3), ad(&a[2], 2), ad(&a[3], 1), ad(&a[4], 1)],
            vec![
                vec![a[3].clone(), a[4].clone()],
                vec![a[2].clone()],
                vec![a[1].clone()],
                vec![a[0].clone()],
            ],
        );
        // updates
        check(
            vec![
                ad(&a[0], 3),
                ad(&a[1], 3),
                ad(&a[2], 2),
                ad(&a[3], 2),
                ad(&a[4], 1),
                ad(&a[0], 1),
                ad(&a[1], 1),
                ad(&a[2], 2),
                ad(&a[3], 2),
                ad(&a[4], 3),
            ],
            vec![
                vec![a[0].clone(), a[1].clone()],
                vec![a[2].clone(), a[3].clone()],
                vec![a[4].clone()],
                vec![],
            ],
        );
        // null input
        check(vec![], vec![vec![], vec![]]);
    }

    #[test]
    fn equal_delays_keep_insertion_order_and_remove_works() {
        let a = addrs();
        let mut q = DialQueue::new();
        q.add(ad(&a[1], 1));
        q.add(ad(&a[0], 1));
        q.add(ad(&a[2], 0));
        assert_eq!(q.top_delay(), Some(Duration::from_nanos(0)));
        assert!(q.remove(&a[2]));
        assert!(!q.remove(&a[2]));
        let batch: Vec<_> = q.next_batch().into_iter().map(|e| e.addr).collect();
        assert_eq!(batch, vec![a[1].clone(), a[0].clone()]);
        assert!(q.is_empty());
    }
}

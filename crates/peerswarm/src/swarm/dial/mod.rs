//! Dial scheduling (in progress).

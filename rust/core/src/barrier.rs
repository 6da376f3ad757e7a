//! Counter state of a ready barrier (the role `vine.barrier` plays behind
//! `GroupResult`): every member result arriving increments it, and the
//! barrier fires once, when it is finalized and the count reached its size.
//!
//! The rules are vine 5.1's, including its quirks: `finalize()` fires
//! without marking the barrier ready, and a barrier fires at most once from
//! arrivals. The state sits behind a mutex in the binding so that results
//! arriving on several threads fire the callback exactly once.

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BarrierState {
    pub value: u64,
    pub size: u64,
    pub ready: bool,
    pub failed: bool,
    pub cancelled: bool,
    pub finalized: bool,
}

impl BarrierState {
    pub fn new(size: u64) -> Self {
        BarrierState {
            size,
            ..Self::default()
        }
    }

    /// One member arrived. Returns true when the caller must fire the
    /// barrier's promise (exactly one arrival ever gets true).
    pub fn arrive(&mut self) -> bool {
        if self.ready || self.cancelled {
            return false;
        }
        self.value += 1;
        if self.finalized && self.value >= self.size {
            self.ready = true;
            return true;
        }
        false
    }

    /// No more members will be added. Returns true when the caller must
    /// fire the promise: every member already arrived before finalizing.
    pub fn finalize(&mut self) -> bool {
        let fire = !self.finalized && self.value >= self.size;
        self.finalized = true;
        fire
    }

    pub fn cancel(&mut self) {
        self.cancelled = true;
    }

    /// Whether a member may still be attached (vine raises otherwise).
    pub fn can_add(&self) -> Result<bool, FullBarrier> {
        if self.cancelled {
            return Ok(false);
        }
        if self.ready {
            return Err(FullBarrier);
        }
        Ok(true)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullBarrier;

impl std::fmt::Display for FullBarrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cannot add promise to full barrier")
    }
}

impl std::error::Error for FullBarrier {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn fires_once_when_finalized_and_all_arrived() {
        let mut b = BarrierState::new(3);
        b.finalized = true;
        assert!(!b.arrive());
        assert!(!b.arrive());
        assert!(b.arrive());
        assert!(b.ready);
        assert!(!b.arrive(), "a ready barrier never fires again");
        assert_eq!(b.value, 3);
    }

    #[test]
    fn unfinalized_barrier_waits_for_finalize() {
        let mut b = BarrierState::new(2);
        assert!(!b.arrive());
        assert!(!b.arrive());
        assert!(!b.ready);
        assert!(b.finalize());
        // vine's finalize fires without setting ready
        assert!(!b.ready);
        assert!(!b.finalize(), "finalize fires only the first time");
    }

    #[test]
    fn finalize_before_arrivals_does_not_fire() {
        let mut b = BarrierState::new(1);
        assert!(!b.finalize());
        assert!(b.arrive());
    }

    #[test]
    fn empty_finalize_fires_immediately() {
        let mut b = BarrierState::new(0);
        assert!(b.finalize());
    }

    #[test]
    fn cancelled_barrier_ignores_arrivals() {
        let mut b = BarrierState::new(1);
        b.finalized = true;
        b.cancel();
        assert!(!b.arrive());
        assert_eq!(b.value, 0);
        assert_eq!(b.can_add(), Ok(false));
    }

    #[test]
    fn full_barrier_refuses_members() {
        let mut b = BarrierState::new(1);
        b.finalized = true;
        assert!(b.arrive());
        assert_eq!(b.can_add(), Err(FullBarrier));
    }

    #[test]
    fn concurrent_arrivals_fire_exactly_once() {
        let n = 8 * 10_000;
        let state = Arc::new(Mutex::new(BarrierState::new(n)));
        state.lock().unwrap().finalized = true;
        let fired: usize = (0..8)
            .map(|_| {
                let state = Arc::clone(&state);
                std::thread::spawn(move || {
                    (0..10_000)
                        .filter(|_| state.lock().unwrap().arrive())
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(fired, 1);
        assert_eq!(state.lock().unwrap().value, n);
    }
}

//! When the binding lets go of the GIL.
//!
//! Releasing the GIL lets another thread run, but taking it back waits
//! for that thread to give it up: a thread running Python code holds it
//! for up to the switch interval (5 ms). With OpenTelemetry's span
//! processor thread busy, an encoder call over 500 messages that
//! released the GIL took 6.7 ms instead of ~0.5, and a per-message
//! `task_reprs` 9.4 µs on average instead of 0.5. So only work long
//! enough to be worth that wait is done without the GIL.

use pyo3::prelude::*;

/// Below this many units (messages, ids, leaves: about a microsecond of
/// work each) the work runs with the GIL held.
pub const DETACH_THRESHOLD: usize = 4096;

/// `work()`, without the GIL when `units` reaches `DETACH_THRESHOLD`.
pub fn detach_for<T: Send>(py: Python<'_>, units: usize, work: impl FnOnce() -> T + Send) -> T {
    if units >= DETACH_THRESHOLD {
        py.detach(work)
    } else {
        work()
    }
}

//! Pure-Rust core of turbogroup.
//!
//! Nothing here knows about Python: the binding in `rust/src` extracts plain
//! values from Python objects, calls into these modules (with the GIL
//! released for large batches) and converts the answers back.

pub mod barrier;
pub mod encode;
pub mod id_column;
pub mod ids;
pub mod payload;
pub mod unroll;

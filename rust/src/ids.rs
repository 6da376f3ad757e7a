use pyo3::prelude::*;
use turbogroup_core::ids;

use crate::errors::ToPyErr;

/// Below this many ids the GIL round trip costs more than it frees.
const DETACH_THRESHOLD: usize = 4096;

/// One new uuid4 string, as `kombu.utils.uuid.uuid()` returns it.
#[pyfunction]
pub fn uuid4() -> PyResult<String> {
    ids::uuid4().map_err(ToPyErr::to_py)
}

/// `n` new uuid4 strings.
#[pyfunction]
pub fn uuid4_batch(py: Python<'_>, n: usize) -> PyResult<Vec<String>> {
    if n >= DETACH_THRESHOLD {
        py.detach(|| ids::uuid4_batch(n)).map_err(ToPyErr::to_py)
    } else {
        ids::uuid4_batch(n).map_err(ToPyErr::to_py)
    }
}

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use turbogroup_core::ids;

/// Below this many ids the GIL round trip costs more than it frees.
const DETACH_THRESHOLD: usize = 4096;

fn to_py(e: ids::RandomnessError) -> PyErr {
    PyOSError::new_err(e.to_string())
}

/// One new uuid4 string, as `kombu.utils.uuid.uuid()` returns it.
#[pyfunction]
pub fn uuid4() -> PyResult<String> {
    ids::uuid4().map_err(to_py)
}

/// `n` new uuid4 strings.
#[pyfunction]
pub fn uuid4_batch(py: Python<'_>, n: usize) -> PyResult<Vec<String>> {
    if n >= DETACH_THRESHOLD {
        py.detach(|| ids::uuid4_batch(n)).map_err(to_py)
    } else {
        ids::uuid4_batch(n).map_err(to_py)
    }
}

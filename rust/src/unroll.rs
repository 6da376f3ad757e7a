use pyo3::prelude::*;
use turbogroup_core::unroll;

use crate::errors::ToPyErr;
use crate::gil::detach_for;

/// Leaf numbers in Celery 5.7.0's `_freeze_unroll` order for a pre-order
/// shape (`LEAF` for a task, `n` for a nested group of `n` children).
#[pyfunction]
pub fn freeze_unroll_order(py: Python<'_>, shape: Vec<i64>) -> PyResult<Vec<usize>> {
    detach_for(py, shape.len(), || unroll::freeze_unroll_order_of(&shape)).map_err(ToPyErr::to_py)
}

use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyList, PyString};
use turbogroup_core::id_column::IdColumn;
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

/// A group's task ids in group order, kept compactly
/// (`turbogroup_core::id_column`): what a dispatched group's results are
/// until first touched.
#[pyclass(frozen, module = "turbogroup._core")]
pub struct TaskIds {
    // A lock, not pyo3's borrow flag: a thread reading the ids while the
    // dispatching thread appends must wait, not raise.
    column: Mutex<IdColumn>,
}

impl TaskIds {
    fn column(&self) -> MutexGuard<'_, IdColumn> {
        // No Python runs under the lock, so a poisoned lock is consistent.
        self.column.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl TaskIds {
    #[new]
    fn new() -> Self {
        Self {
            column: Mutex::new(IdColumn::new()),
        }
    }

    fn append(&self, task_id: &str) {
        self.column().push(task_id);
    }

    /// Appends every id of `task_ids` (strings), in order.
    fn extend(&self, task_ids: &Bound<'_, PyAny>) -> PyResult<()> {
        // Read into a column of its own first: iterating may run Python
        // code, which must never run under the lock.
        let mut read = IdColumn::new();
        for id in task_ids.try_iter()? {
            read.push(id?.cast::<PyString>()?.to_str()?);
        }
        self.column().append(&mut read);
        Ok(())
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyIterator>> {
        PyList::new(py, self.tolist())?.try_iter()
    }

    fn __len__(&self) -> usize {
        self.column().len()
    }

    fn __getitem__(&self, index: usize) -> PyResult<String> {
        self.column().get(index).map_err(ToPyErr::to_py)
    }

    /// Every id, in order, as a new list of strings.
    fn tolist(&self) -> Vec<String> {
        self.column().iter().collect()
    }
}

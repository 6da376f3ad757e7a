use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyList, PyString};
use turbogroup_core::id_column::IdColumn;
use turbogroup_core::ids;

use crate::errors::ToPyErr;
use crate::gil::detach_for;

/// One new uuid4 string, as `kombu.utils.uuid.uuid()` returns it.
#[pyfunction]
pub fn uuid4() -> PyResult<String> {
    ids::uuid4().map_err(ToPyErr::to_py)
}

/// `n` new uuid4 strings.
#[pyfunction]
pub fn uuid4_batch(py: Python<'_>, n: usize) -> PyResult<Vec<String>> {
    detach_for(py, n, || ids::uuid4_batch(n)).map_err(ToPyErr::to_py)
}

/// A group's task ids in group order, kept compactly
/// (`turbogroup_core::id_column`): what a dispatched group's results are
/// until first touched. An id that is not a string (Celery sends an int or
/// a `UUID` a user chose as it is) is kept as its object.
#[pyclass(frozen, module = "turbogroup._core")]
pub struct TaskIds {
    // A lock, not pyo3's borrow flag: a thread reading the ids while the
    // dispatching thread appends must wait, not raise.
    ids: Mutex<Ids>,
}

#[derive(Default)]
struct Ids {
    column: IdColumn,
    // the objects of the column's held slots, by position
    objects: BTreeMap<usize, Py<PyAny>>,
}

impl Ids {
    fn push(&mut self, task_id: &Bound<'_, PyAny>) {
        match task_id
            .cast::<PyString>()
            .ok()
            .and_then(|s| s.to_str().ok())
        {
            Some(text) => self.column.push(text),
            None => {
                // not a string, or one UTF-8 cannot hold (a lone surrogate)
                self.objects
                    .insert(self.column.len(), task_id.clone().unbind());
                self.column.push_held();
            }
        }
    }

    fn append(&mut self, other: Ids) {
        let offset = self.column.len();
        let mut column = other.column;
        self.column.append(&mut column);
        self.objects
            .extend(other.objects.into_iter().map(|(i, id)| (i + offset, id)));
    }

    fn get<'py>(&self, py: Python<'py>, index: usize) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.column.get(index).map_err(ToPyErr::to_py)? {
            Some(text) => PyString::new(py, &text).into_any(),
            None => self.objects[&index].bind(py).clone(),
        })
    }
}

impl TaskIds {
    /// Appends an id the caller made (a uuid string), as `append` would.
    pub(crate) fn push_str(&self, task_id: &str) {
        self.ids().column.push(task_id);
    }

    /// Appends an id object, as `append` does.
    pub(crate) fn push_any(&self, task_id: &Bound<'_, PyAny>) {
        self.ids().push(task_id);
    }

    fn ids(&self) -> MutexGuard<'_, Ids> {
        // No Python runs under the lock, so a poisoned lock is consistent.
        self.ids.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl TaskIds {
    #[new]
    fn new() -> Self {
        Self {
            ids: Mutex::new(Ids::default()),
        }
    }

    fn append(&self, task_id: &Bound<'_, PyAny>) {
        self.ids().push(task_id);
    }

    /// Appends every id of `task_ids`, in order.
    fn extend(&self, task_ids: &Bound<'_, PyAny>) -> PyResult<()> {
        // Read into ids of their own first: iterating may run Python code,
        // which must never run under the lock.
        let mut read = Ids::default();
        for id in task_ids.try_iter()? {
            read.push(&id?);
        }
        self.ids().append(read);
        Ok(())
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyIterator>> {
        self.tolist(py)?.try_iter()
    }

    fn __len__(&self) -> usize {
        self.ids().column.len()
    }

    /// As a list indexes: a negative index counts from the end.
    fn __getitem__<'py>(&self, py: Python<'py>, index: isize) -> PyResult<Bound<'py, PyAny>> {
        let ids = self.ids();
        let len = ids.column.len();
        let at = if index < 0 {
            index.checked_add_unsigned(len).unwrap_or(-1)
        } else {
            index
        };
        // an index still negative is out of range: past any length
        ids.get(py, usize::try_from(at).unwrap_or(usize::MAX))
    }

    /// Every id, in order, as a new list.
    fn tolist<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let ids = self.ids();
        let items = (0..ids.column.len())
            .map(|i| ids.get(py, i))
            .collect::<PyResult<Vec<_>>>()?;
        drop(ids);
        PyList::new(py, items)
    }
}

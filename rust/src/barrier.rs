//! `Barrier`: vine.barrier's interface over the Rust counter. The counter
//! is guarded by a mutex that is never held while Python code runs, so a
//! callback that re-enters the barrier cannot deadlock, and concurrent
//! arrivals fire the promise exactly once.

use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::PyValueError;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::PyTraverseError;
use turbogroup_core::barrier::BarrierState;

#[pyclass(frozen, weakref, dict, subclass, module = "turbogroup._core")]
pub struct Barrier {
    state: Mutex<BarrierState>,
    /// The `vine.promise` fired when the barrier is complete.
    #[pyo3(get)]
    p: Py<PyAny>,
    call_args: Mutex<Py<PyTuple>>,
    call_kwargs: Mutex<Py<PyDict>>,
    reason: Mutex<Option<Py<PyAny>>>,
}

impl Barrier {
    fn state(&self) -> MutexGuard<'_, BarrierState> {
        // A panic cannot happen while the lock is held (no Python runs
        // under it), so a poisoned lock still holds consistent state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fire(&self, py: Python<'_>) -> PyResult<()> {
        let args = lock(&self.call_args).clone_ref(py);
        let kwargs = lock(&self.call_kwargs).clone_ref(py);
        self.p.bind(py).call(args.bind(py), Some(kwargs.bind(py)))?;
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[pymethods]
impl Barrier {
    /// The garbage collector's view of what the barrier holds, so a cycle
    /// through it (a member whose callback refers back to the barrier, an
    /// exception whose traceback does) is collected as vine's would be. A
    /// lock another thread holds is skipped: traversal must not block.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.p)?;
        if let Ok(args) = self.call_args.try_lock() {
            visit.call(&*args)?;
        }
        if let Ok(kwargs) = self.call_kwargs.try_lock() {
            visit.call(&*kwargs)?;
        }
        if let Ok(reason) = self.reason.try_lock() {
            visit.call(&*reason)?;
        }
        Ok(())
    }

    /// Breaks cycles through the failure reason; `p`, `args` and `kwargs`
    /// are cleared on their side (every cycle passes a mutable object).
    fn __clear__(&self) {
        if let Ok(mut reason) = self.reason.try_lock() {
            *reason = None;
        }
    }

    /// Builds the counter and its promise. Members (`promises`) and the
    /// `callback` are attached by `turbogroup.barrier.barrier.__init__`,
    /// which needs the finished object to hand to each member's `then`.
    #[new]
    #[pyo3(signature = (promises=None, args=None, kwargs=None, callback=None, size=None))]
    fn new(
        py: Python<'_>,
        promises: Option<&Bound<'_, PyAny>>,
        args: Option<&Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyAny>>,
        callback: Option<&Bound<'_, PyAny>>,
        size: Option<u64>,
    ) -> PyResult<Self> {
        let _ = callback;
        let mut n = size.unwrap_or(0);
        if n == 0 {
            if let Some(promises) = promises {
                // vine calls __len__ directly: lazy sequences answer
                // NotImplemented until they are consumed.
                let len = promises.call_method0("__len__")?;
                if !len.is(py.NotImplemented()) {
                    n = len.extract()?;
                }
            }
        }
        let args = match args {
            Some(a) if a.is_truthy()? => a.try_iter()?.collect::<PyResult<Vec<_>>>()?,
            _ => Vec::new(),
        };
        let kwargs = match kwargs {
            Some(k) if k.is_truthy()? => k.cast::<PyDict>()?.copy()?,
            _ => PyDict::new(py),
        };
        let promise = py.import("vine")?.getattr("promise")?.call0()?;
        Ok(Barrier {
            state: Mutex::new(BarrierState::new(n)),
            p: promise.unbind(),
            call_args: Mutex::new(PyTuple::new(py, args)?.unbind()),
            call_kwargs: Mutex::new(kwargs.unbind()),
            reason: Mutex::new(None),
        })
    }

    #[pyo3(signature = (*_args, **_kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let fire = self.state().arrive();
        if fire {
            self.fire(py)?;
        }
        Ok(())
    }

    fn finalize(&self, py: Python<'_>) -> PyResult<()> {
        let fire = self.state().finalize();
        if fire {
            self.fire(py)?;
        }
        Ok(())
    }

    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        self.state().cancel();
        self.p.bind(py).call_method0("cancel")?;
        Ok(())
    }

    fn add_noincr(slf: &Bound<'_, Self>, p: &Bound<'_, PyAny>) -> PyResult<()> {
        let can = slf.get().state().can_add();
        match can {
            Ok(true) => {
                p.call_method1("then", (slf,))?;
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(full) => Err(PyValueError::new_err(full.to_string())),
        }
    }

    fn add(slf: &Bound<'_, Self>, p: &Bound<'_, PyAny>) -> PyResult<()> {
        if slf.get().state().cancelled {
            return Ok(());
        }
        Self::add_noincr(slf, p)?;
        slf.get().state().size += 1;
        Ok(())
    }

    #[pyo3(signature = (callback, errback=None))]
    fn then(
        &self,
        py: Python<'_>,
        callback: &Bound<'_, PyAny>,
        errback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.p.bind(py).call_method1("then", (callback, errback))?;
        Ok(())
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn throw(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        if !self.state().cancelled {
            self.p.bind(py).call_method("throw", args, kwargs)?;
        }
        Ok(())
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn throw1(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.throw(py, args, kwargs)
    }

    #[getter]
    fn size(&self) -> u64 {
        self.state().size
    }
    #[setter]
    fn set_size(&self, size: u64) {
        self.state().size = size;
    }
    #[getter(_value)]
    fn value(&self) -> u64 {
        self.state().value
    }
    #[setter(_value)]
    fn set_value(&self, value: u64) {
        self.state().value = value;
    }
    #[getter]
    fn ready(&self) -> bool {
        self.state().ready
    }
    #[setter]
    fn set_ready(&self, v: bool) {
        self.state().ready = v;
    }
    #[getter]
    fn failed(&self) -> bool {
        self.state().failed
    }
    #[setter]
    fn set_failed(&self, v: bool) {
        self.state().failed = v;
    }
    #[getter]
    fn cancelled(&self) -> bool {
        self.state().cancelled
    }
    #[setter]
    fn set_cancelled(&self, v: bool) {
        self.state().cancelled = v;
    }
    #[getter]
    fn finalized(&self) -> bool {
        self.state().finalized
    }
    #[setter]
    fn set_finalized(&self, v: bool) {
        self.state().finalized = v;
    }
    #[getter]
    fn args(&self, py: Python<'_>) -> Py<PyTuple> {
        lock(&self.call_args).clone_ref(py)
    }
    #[setter]
    fn set_args(&self, args: &Bound<'_, PyAny>) -> PyResult<()> {
        let items = args.try_iter()?.collect::<PyResult<Vec<_>>>()?;
        *lock(&self.call_args) = PyTuple::new(args.py(), items)?.unbind();
        Ok(())
    }
    #[getter]
    fn kwargs(&self, py: Python<'_>) -> Py<PyDict> {
        lock(&self.call_kwargs).clone_ref(py)
    }
    #[setter]
    fn set_kwargs(&self, kwargs: &Bound<'_, PyDict>) {
        *lock(&self.call_kwargs) = kwargs.clone().unbind();
    }
    #[getter]
    fn reason(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        lock(&self.reason).as_ref().map(|r| r.clone_ref(py))
    }
    #[setter]
    fn set_reason(&self, reason: Option<Py<PyAny>>) {
        *lock(&self.reason) = reason;
    }

    fn __repr__(&self) -> String {
        let s = self.state();
        format!(
            "<Barrier {}/{}{}{}>",
            s.value,
            s.size,
            if s.ready { " ready" } else { "" },
            if s.cancelled { " cancelled" } else { "" }
        )
    }
}

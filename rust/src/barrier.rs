//! `Barrier`: vine.barrier's interface over the Rust counter. The counter
//! is guarded by a mutex that is never held while Python code runs, so a
//! callback that re-enters the barrier cannot deadlock, and concurrent
//! arrivals fire the promise exactly once.

use std::sync::{Mutex, MutexGuard};

use pyo3::gc::PyVisit;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::PyTraverseError;
use turbogroup_core::barrier::BarrierState;

use crate::errors::ToPyErr;

/// The Python objects a barrier holds, behind one lock.
///
/// The lock is only ever held for a pointer copy or swap, never while
/// Python code can run (an old value is dropped after the lock is
/// released: its deallocation can run `__del__`, switch threads or start a
/// garbage collection). So the garbage collector, which runs with the GIL,
/// always finds it free and sees every reference the same way in each of
/// its passes.
///
/// `Option`, because the collector may traverse a barrier whose memory is
/// still all zeroes: the object is tracked from the moment it is allocated,
/// before pyo3 writes its contents, and a collection can start in between.
/// All-zero is `None` here, which traverses as nothing.
struct Held {
    p: Py<PyAny>,
    args: Py<PyTuple>,
    kwargs: Py<PyDict>,
    reason: Option<Py<PyAny>>,
}

// No `dict`: pyo3 0.30 makes a `#[pyclass(dict)]` instance by allocating it
// (tracked by the collector, zero-filled), then, on CPython 3.11/3.12 under
// abi3, consulting a process-wide `PyOnceLock` whose first use *releases
// the GIL*, then writing the contents. Eight threads making their first
// barriers at once left allocated, unwritten barriers for another thread's
// collection to traverse: a null `p` and a segfault. The Python subclass
// (`turbogroup.barrier.barrier`) gets its `__dict__` from CPython instead.
#[pyclass(frozen, weakref, subclass, module = "turbogroup._core")]
pub struct Barrier {
    state: Mutex<BarrierState>,
    held: Mutex<Option<Held>>,
}

impl Barrier {
    fn state(&self) -> MutexGuard<'_, BarrierState> {
        // A panic cannot happen while the lock is held (no Python runs
        // under it), so a poisoned lock still holds consistent state.
        lock(&self.state)
    }

    /// `read(held)` under the lock; `read` only copies references.
    fn read<T>(&self, read: impl FnOnce(&Held) -> T) -> T {
        read(
            lock(&self.held)
                .as_ref()
                .expect("a constructed barrier holds its objects"),
        )
    }

    /// Swaps a held object for `value` and drops the old one after the
    /// lock is released.
    fn replace<T>(&self, value: T, slot: impl FnOnce(&mut Held) -> &mut T) -> T {
        let mut held = lock(&self.held);
        std::mem::replace(
            slot(
                held.as_mut()
                    .expect("a constructed barrier holds its objects"),
            ),
            value,
        )
    }

    fn promise<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.read(|h| h.p.clone_ref(py)).into_bound(py)
    }

    fn fire(&self, py: Python<'_>) -> PyResult<()> {
        let (p, args, kwargs) = self.read(|h| {
            (
                h.p.clone_ref(py),
                h.args.clone_ref(py),
                h.kwargs.clone_ref(py),
            )
        });
        p.bind(py).call(args.bind(py), Some(kwargs.bind(py)))?;
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `vine.promise`, looked up once: an import per barrier went through the
/// import machinery on every dispatch. Resolved before the barrier is
/// allocated, so a first use that waits for another thread (and releases
/// the GIL meanwhile) leaves no half-made object behind.
static PROMISE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

#[pymethods]
impl Barrier {
    /// The garbage collector's view of what the barrier holds, so a cycle
    /// through it (a member whose callback refers back to the barrier, an
    /// exception whose traceback does) is collected as vine's would be.
    /// `try_lock` cannot fail with the GIL held (see `Held`); if it ever
    /// did, skipping only keeps objects alive.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        let Ok(held) = self.held.try_lock() else {
            return Ok(());
        };
        if let Some(h) = held.as_ref() {
            visit.call(&h.p)?;
            visit.call(&h.args)?;
            visit.call(&h.kwargs)?;
            visit.call(&h.reason)?;
        }
        Ok(())
    }

    /// Breaks cycles through the failure reason; `p`, `args` and `kwargs`
    /// are cleared on their side (every cycle passes a mutable object).
    fn __clear__(&self) {
        let reason = self
            .held
            .try_lock()
            .ok()
            .and_then(|mut h| h.as_mut()?.reason.take());
        drop(reason); // after the lock is released
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
                let len = promises.call_method0(intern!(py, "__len__"))?;
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
        let promise = PROMISE.import(py, "vine", "promise")?.call0()?;
        Ok(Barrier {
            state: Mutex::new(BarrierState::new(n)),
            held: Mutex::new(Some(Held {
                p: promise.unbind(),
                args: PyTuple::new(py, args)?.unbind(),
                kwargs: kwargs.unbind(),
                reason: None,
            })),
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
        self.promise(py).call_method0(intern!(py, "cancel"))?;
        Ok(())
    }

    fn add_noincr(slf: &Bound<'_, Self>, p: &Bound<'_, PyAny>) -> PyResult<()> {
        let can = slf.get().state().can_add();
        match can {
            Ok(true) => {
                p.call_method1(intern!(p.py(), "then"), (slf,))?;
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(full) => Err(full.to_py()),
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
        self.promise(py)
            .call_method1(intern!(py, "then"), (callback, errback))?;
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
            self.promise(py)
                .call_method(intern!(py, "throw"), args, kwargs)?;
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
    /// The `vine.promise` fired when the barrier is complete.
    #[getter]
    fn p<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.promise(py)
    }
    #[getter]
    fn args(&self, py: Python<'_>) -> Py<PyTuple> {
        self.read(|h| h.args.clone_ref(py))
    }
    #[setter]
    fn set_args(&self, args: &Bound<'_, PyAny>) -> PyResult<()> {
        let items = args.try_iter()?.collect::<PyResult<Vec<_>>>()?;
        let args = PyTuple::new(args.py(), items)?.unbind();
        drop(self.replace(args, |h| &mut h.args));
        Ok(())
    }
    #[getter]
    fn kwargs(&self, py: Python<'_>) -> Py<PyDict> {
        self.read(|h| h.kwargs.clone_ref(py))
    }
    #[setter]
    fn set_kwargs(&self, kwargs: &Bound<'_, PyDict>) {
        drop(self.replace(kwargs.clone().unbind(), |h| &mut h.kwargs));
    }
    #[getter]
    fn reason(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.read(|h| h.reason.as_ref().map(|r| r.clone_ref(py)))
    }
    #[setter]
    fn set_reason(&self, reason: Option<Py<PyAny>>) {
        drop(self.replace(reason, |h| &mut h.reason));
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

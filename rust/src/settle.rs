//! `QuickFulfilment`: the common case of `turbogroup.collect.settle`, a
//! loop over fetched metas that caches each SUCCESS meta on its result and
//! fires the result's `on_ready` promise, with no Python bytecode per
//! result.
//!
//! It does exactly what `settle._fulfil_success` does, under the same
//! conditions, and stops at the first result it cannot settle that way,
//! handing it back to the Python loop (which applies Celery's own
//! `_maybe_set_cache`, or raises what Celery raises). Every condition is
//! read again for every result: a callback fired by an earlier one may
//! subscribe or register results.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple, PyType, PyWeakrefReference};

/// The objects `Settler.settle` decided on for one settle.
#[pyclass(frozen, module = "turbogroup._core")]
pub struct QuickFulfilment {
    /// `vine.promise`: an `on_ready` of any other type is left to Celery.
    promise_type: Py<PyType>,
    /// `AsyncResult._on_fulfilled`, the function a result's own promise
    /// calls (weakly) before its callbacks.
    on_fulfilled: Py<PyAny>,
    /// `Settler._kinds`: result class -> whether it is Celery's on the
    /// cache path. A class not in it yet goes back to Python to be judged.
    kinds: Py<PyDict>,
    /// The backend's subscribed channels and pending-result registries, on
    /// a backend whose removal does nothing only while both are empty.
    tracked: Option<(Py<PyAny>, Py<PyTuple>)>,
}

#[pymethods]
impl QuickFulfilment {
    #[new]
    #[pyo3(signature = (promise_type, on_fulfilled, kinds, tracked=None))]
    fn new(
        promise_type: Py<PyType>,
        on_fulfilled: Py<PyAny>,
        kinds: Py<PyDict>,
        tracked: Option<(Py<PyAny>, Py<PyTuple>)>,
    ) -> Self {
        QuickFulfilment {
            promise_type,
            on_fulfilled,
            kinds,
            tracked,
        }
    }

    /// Settles `nodes[start:]` against `decoded` (same length), appending
    /// each node's meta to `out`, until a node needs the Python path.
    /// Returns `(index of that node, or the end of the shorter list; how
    /// many were fulfilled here)`.
    fn run(
        &self,
        py: Python<'_>,
        nodes: &Bound<'_, PyList>,
        decoded: &Bound<'_, PyList>,
        start: usize,
        out: &Bound<'_, PyList>,
    ) -> PyResult<(usize, usize)> {
        let mut fulfilled = 0;
        let mut i = start;
        // Lengths read at each step, as zip over the lists reads them: a
        // callback may change the lists.
        while i < nodes.len().min(decoded.len()) {
            let node = nodes.get_item(i)?;
            let cached = node.getattr(intern!(py, "_cache"))?;
            if !cached.is_none() {
                // Celery's _get_task_meta serves the cache, unread.
                out.append(cached)?;
                i += 1;
                continue;
            }
            let meta = decoded.get_item(i)?;
            if !self.quick_meta(py, &meta)? || !self.untracked(py)? || !self.quick_kind(&node)? {
                return Ok((i, fulfilled));
            }
            let Some(p) = self.own_promise(py, &node)? else {
                return Ok((i, fulfilled));
            };
            fulfil(py, &node, &p, &meta)?;
            out.append(meta)?;
            fulfilled += 1;
            i += 1;
        }
        Ok((i, fulfilled))
    }
}

impl QuickFulfilment {
    /// A plain dict whose status is SUCCESS and which has no children.
    fn quick_meta(&self, py: Python<'_>, meta: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(meta) = meta.cast_exact::<PyDict>() else {
            return Ok(false);
        };
        let success = match meta.get_item(intern!(py, "status"))? {
            Some(status) => {
                status.is_exact_instance_of::<pyo3::types::PyString>()
                    && status.eq(intern!(py, "SUCCESS"))?
            }
            None => false,
        };
        Ok(success
            && match meta.get_item(intern!(py, "children"))? {
                Some(children) => !children.is_truthy()?,
                None => true,
            })
    }

    /// Nothing subscribed and nothing registered on the backend, when it
    /// tracks results at all.
    fn untracked(&self, py: Python<'_>) -> PyResult<bool> {
        let Some((subscribed, registries)) = &self.tracked else {
            return Ok(true);
        };
        if subscribed.bind(py).is_truthy()? {
            return Ok(false);
        }
        for registry in registries.bind(py).iter() {
            if registry.is_truthy()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn quick_kind(&self, node: &Bound<'_, PyAny>) -> PyResult<bool> {
        match self.kinds.bind(node.py()).get_item(node.get_type())? {
            Some(quick) => quick.is_truthy(),
            None => Ok(false),
        }
    }

    /// `node.on_ready` when it is the promise `AsyncResult.__init__` made:
    /// a vine promise of the weak `_on_fulfilled` method of this node,
    /// with no arguments of its own, neither cancelled nor ignoring its
    /// result.
    fn own_promise<'py>(
        &self,
        py: Python<'py>,
        node: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let p = node.getattr(intern!(py, "on_ready"))?;
        if !p.get_type().is(self.promise_type.bind(py)) {
            return Ok(None);
        }
        for flag in [
            intern!(py, "cancelled"),
            intern!(py, "args"),
            intern!(py, "kwargs"),
            intern!(py, "ignore_result"),
        ] {
            if p.getattr(flag)?.is_truthy()? {
                return Ok(None);
            }
        }
        if !p.getattr(intern!(py, "weak"))?.is_truthy()? {
            return Ok(None);
        }
        let fun = p.getattr(intern!(py, "fun"))?;
        let weak_method = weak_method_type(py)?;
        if !fun.get_type().is(&weak_method) {
            return Ok(None);
        }
        let method = fun.cast::<PyWeakrefReference>()?;
        let bound_to_node = method.upgrade().is_some_and(|target| target.is(node));
        if !bound_to_node {
            return Ok(None);
        }
        let func = fun.getattr(intern!(py, "_func_ref"))?;
        let func = func.cast::<PyWeakrefReference>()?.upgrade();
        if !func.is_some_and(|f| f.is(self.on_fulfilled.bind(py))) {
            return Ok(None);
        }
        Ok(Some(p))
    }
}

/// `weakref.WeakMethod`, looked up once.
fn weak_method_type(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    static WEAK_METHOD: pyo3::sync::PyOnceLock<Py<PyType>> = pyo3::sync::PyOnceLock::new();
    WEAK_METHOD.import(py, "weakref", "WeakMethod").cloned()
}

/// `_set_cache` (no children) then vine's `promise.__call__(node)`:
/// `_on_fulfilled(node)` returns the node, the value each callback gets;
/// callbacks run in order and are dropped even when one raises (which
/// propagates, as in Celery).
fn fulfil(
    py: Python<'_>,
    node: &Bound<'_, PyAny>,
    p: &Bound<'_, PyAny>,
    meta: &Bound<'_, PyAny>,
) -> PyResult<()> {
    node.setattr(intern!(py, "_cache"), meta)?;
    let value = (PyTuple::new(py, [node])?, PyDict::new(py));
    p.setattr(intern!(py, "value"), value)?;
    p.setattr(intern!(py, "ready"), true)?;
    let single = p.getattr(intern!(py, "_svpending"))?;
    if !single.is_none() {
        let called = single.call1((node,));
        p.setattr(intern!(py, "_svpending"), py.None())?;
        called?;
        return Ok(());
    }
    let pending = p.getattr(intern!(py, "_lvpending"))?;
    let called = call_each(py, &pending, node);
    p.setattr(intern!(py, "_lvpending"), py.None())?;
    called
}

/// `while pending: pending.popleft()(node)`, stopping at the first error.
fn call_each(py: Python<'_>, pending: &Bound<'_, PyAny>, node: &Bound<'_, PyAny>) -> PyResult<()> {
    while pending.is_truthy()? {
        pending
            .call_method0(intern!(py, "popleft"))?
            .call1((node,))?;
    }
    Ok(())
}

//! `AlikeQueue`: the per-child loop of `turbogroup.plain.PlainDispatch` for
//! the usual fan-out, a run of children of one kind with no options of
//! their own, queued with no Python bytecode per child.
//!
//! For each child it does what `PlainDispatch._alike` does in that case:
//! the clone's `tuple(args)` and kwargs copy, the task's typing check,
//! a new id, the `AlikeChild` queued on the fast path with its place in
//! dispatch order, and the id kept for the result. It stops, before
//! touching it, at the first child that is not such a child or whose
//! typing check raises, and hands it back to the Python loop (which
//! raises what Celery raises, naming the child).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple, PyType};
use turbogroup_core::ids;

use crate::errors::ToPyErr;
use crate::ids::TaskIds;

/// The types and shared objects every run uses, made once (it holds
/// nothing of a dispatch, so no reference cycle goes through it).
#[pyclass(frozen, module = "turbogroup._core")]
pub struct AlikeQueue {
    /// `celery.canvas.Signature`: any other class stays in Python.
    signature_type: Py<PyType>,
    /// `publish.alike.AlikeChild`, made by `tuple.__new__` as Python does.
    child_type: Py<PyType>,
    tuple_new: Py<PyAny>,
    /// The kwargs every child without any shares (only the encoder reads it).
    no_kwargs: Py<PyDict>,
}

/// One run (read from the attributes of `plain.AlikeRun`): a kind of
/// child, its task name, immutability, signature type and app (`plain._kind`
/// of a child without options), what its messages are built from (the
/// queue, the template, the typing check), and where they go: the fast
/// path's pending queue, the batch's order counter, the dispatch's Celery
/// publish of a child, and whether empty kwargs are copied too (publish
/// receivers may write to them).
#[derive(FromPyObject)]
pub struct Run<'py> {
    name: Bound<'py, PyAny>,
    immutable: bool,
    sig_type: Bound<'py, PyAny>,
    app: Bound<'py, PyAny>,
    qname: Bound<'py, PyAny>,
    template: Bound<'py, PyAny>,
    typed: Bound<'py, PyAny>,
    pending: Bound<'py, PyList>,
    sequence: Bound<'py, PyAny>,
    fallback: Bound<'py, PyAny>,
    copy_kwargs: bool,
}

#[pymethods]
impl AlikeQueue {
    #[new]
    fn new(
        signature_type: Py<PyType>,
        child_type: Py<PyType>,
        tuple_new: Py<PyAny>,
        no_kwargs: Py<PyDict>,
    ) -> Self {
        AlikeQueue {
            signature_type,
            child_type,
            tuple_new,
            no_kwargs,
        }
    }

    /// Queues `tasks[start:stop]` while each is a child of `run`'s kind at its
    /// own position (its group index), appending each id to `ids`; returns
    /// the index of the first child left to Python (or `stop`).
    fn run<'py>(
        &self,
        py: Python<'py>,
        tasks: &Bound<'py, PyAny>,
        start: usize,
        stop: usize,
        run: Run<'py>,
        ids: &Bound<'py, TaskIds>,
    ) -> PyResult<usize> {
        let stop = stop.min(tasks.len()?);
        // Ids made as children pass, in chunks doubling with the run (one
        // read of OS randomness a chunk), so that a run that stops early
        // made few for nothing.
        let mut fresh: Vec<String> = Vec::new();
        let mut i = start;
        while i < stop {
            let task = tasks.get_item(i)?;
            let Some((args, kwargs)) = self.arguments(py, &task, &run)? else {
                break;
            };
            if !run.typed.is_none() {
                let named = (!kwargs.is_empty()).then_some(&kwargs);
                if run.typed.call(args.clone(), named).is_err() {
                    // Python runs the check again and raises it, naming
                    // the child.
                    break;
                }
            }
            if fresh.is_empty() {
                let chunk = (stop - i).min((i - start).max(1));
                fresh = ids::uuid4_batch(chunk).map_err(ToPyErr::to_py)?;
                fresh.reverse(); // popped from the end, in the order made
            }
            let fresh_id = fresh.pop().expect("an id per child");
            let task_id = PyString::new(py, &fresh_id);
            let fields = (
                &task_id,
                i,
                args,
                kwargs,
                py.None(),
                &run.template,
                &task,
                &run.fallback,
            );
            let child = self
                .tuple_new
                .bind(py)
                .call1((self.child_type.bind(py), fields.into_pyobject(py)?))?;
            let seq = run.sequence.call0()?;
            let queued = (&task_id, &run.qname, child, py.None(), seq);
            run.pending.append(queued)?;
            ids.get().push_str(&fresh_id);
            i += 1;
        }
        Ok(i)
    }
}

impl AlikeQueue {
    /// The child's clone's args and kwargs when it is a child of `run`'s kind
    /// with no options of its own and arguments the clone copies as they
    /// are (a list or tuple, a dict); None otherwise.
    fn arguments<'py>(
        &self,
        py: Python<'py>,
        task: &Bound<'py, PyAny>,
        run: &Run<'py>,
    ) -> PyResult<Option<(Bound<'py, PyTuple>, Bound<'py, PyDict>)>> {
        if !task.get_type().is(self.signature_type.bind(py)) {
            return Ok(None);
        }
        let sig = task.cast::<PyDict>()?;
        let same_name = match sig.get_item(intern!(py, "task"))? {
            Some(name) => {
                name.is(&run.name)
                    || (name.is_exact_instance_of::<PyString>()
                        && run.name.is_exact_instance_of::<PyString>()
                        && name.eq(&run.name)?)
            }
            None => false,
        };
        let immutable = match sig.get_item(intern!(py, "immutable"))? {
            Some(flag) => flag.is_truthy()?,
            None => false,
        };
        if !same_name
            || immutable != run.immutable
            || !task.getattr(intern!(py, "_type"))?.is(&run.sig_type)
            || !task.getattr(intern!(py, "_app"))?.is(&run.app)
        {
            return Ok(None);
        }
        let no_options = match sig.get_item(intern!(py, "options"))? {
            Some(options) => options
                .cast_exact::<PyDict>()
                .is_ok_and(|options| options.is_empty()),
            None => false,
        };
        if !no_options {
            return Ok(None);
        }
        let args = match sig.get_item(intern!(py, "args"))? {
            Some(args) if args.is_exact_instance_of::<PyTuple>() => args.cast_into::<PyTuple>()?,
            Some(args) if args.is_exact_instance_of::<PyList>() => {
                args.cast_into::<PyList>()?.to_tuple()
            }
            _ => return Ok(None),
        };
        let kwargs = match sig.get_item(intern!(py, "kwargs"))? {
            Some(kwargs) if kwargs.is_exact_instance_of::<PyDict>() => {
                let kwargs = kwargs.cast_into::<PyDict>()?;
                if kwargs.is_empty() && !run.copy_kwargs {
                    self.no_kwargs.bind(py).clone()
                } else {
                    kwargs.copy()?
                }
            }
            _ => return Ok(None),
        };
        Ok(Some((args, kwargs)))
    }
}

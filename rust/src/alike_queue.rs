//! `AlikeQueue`: the per-child loop of `turbogroup.plain.PlainDispatch` for
//! the usual fan-out, a run of children of one kind, queued with no Python
//! bytecode per child.
//!
//! For each child it does what `PlainDispatch._alike` does: the clone's
//! `tuple(args)` and kwargs copy, the merge of the group's partial
//! arguments, the task's typing check, the child's preset id or a new one,
//! the `AlikeChild` queued on the fast path with its place in dispatch
//! order, and the id kept for the result. It stops, before touching it, at
//! the first child that is not of the kind or whose typing check raises,
//! and hands it back to the Python loop (which raises what Celery raises,
//! naming the child).

use pyo3::exceptions::PyException;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyString, PyTuple, PyType};
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
/// child (its task name, immutability, signature type, app and options:
/// `plain._kind`), what its messages are built from (the queue, the
/// template, the typing check), the group's partial arguments, and where
/// they go: the fast path's pending queue, the batch's order counter, the
/// dispatch's Celery publish of a child, and whether empty kwargs are
/// copied too (publish receivers may write to them).
#[derive(FromPyObject)]
pub struct Run<'py> {
    name: Bound<'py, PyAny>,
    immutable: bool,
    sig_type: Bound<'py, PyAny>,
    app: Bound<'py, PyAny>,
    /// `(key, how, value)` per option, in order: `how` is `PER_CHILD`
    /// (any value), `ATOMIC` (a value of the same type, written alike) or
    /// `SAME` (the very object).
    options: Vec<(Bound<'py, PyAny>, u8, Bound<'py, PyAny>)>,
    qname: Bound<'py, PyAny>,
    template: Bound<'py, PyAny>,
    typed: Bound<'py, PyAny>,
    partial_args: Bound<'py, PyTuple>,
    partial_kwargs: Bound<'py, PyDict>,
    pending: Bound<'py, PyList>,
    sequence: Bound<'py, PyAny>,
    fallback: Bound<'py, PyAny>,
    copy_kwargs: bool,
}

const PER_CHILD: u8 = 0;
const ATOMIC: u8 = 1;

/// What a child of the run takes from its own signature.
struct Child<'py> {
    args: Bound<'py, PyTuple>,
    kwargs: Bound<'py, PyDict>,
    task_id: Option<Bound<'py, PyAny>>,
    chain: Option<Bound<'py, PyAny>>,
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

    /// Queues `tasks[start:stop]` while each is a child of `run`'s kind at
    /// its own position (its group index), appending each id to `ids`;
    /// returns the index of the first child left to Python (or `stop`).
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
        // New ids made as children need them, in chunks doubling with the
        // run (one read of OS randomness a chunk), so that a run that
        // stops early made few for nothing.
        let mut fresh: Vec<String> = Vec::new();
        let mut i = start;
        while i < stop {
            // Python re-reads the length (a check run by another thread
            // may have shortened the list)
            let Ok(task) = tasks.get_item(i) else {
                break;
            };
            let Some(child) = self.child(py, &task, &run)? else {
                break;
            };
            if !run.typed.is_none() {
                let named = (!child.kwargs.is_empty()).then_some(&child.kwargs);
                if let Err(err) = run.typed.call(child.args.clone(), named) {
                    // Python runs the check again and raises it, naming
                    // the child.
                    handed_back(py, err)?;
                    break;
                }
            }
            let task_id = match child.task_id {
                Some(task_id) => {
                    ids.get().push_any(&task_id);
                    task_id
                }
                None => {
                    if fresh.is_empty() {
                        let chunk = (stop - i).min((i - start).max(1));
                        fresh = ids::uuid4_batch(chunk).map_err(ToPyErr::to_py)?;
                        fresh.reverse(); // popped from the end, in the order made
                    }
                    let fresh_id = fresh.pop().expect("an id per child");
                    ids.get().push_str(&fresh_id);
                    PyString::new(py, &fresh_id).into_any()
                }
            };
            let fields = (
                &task_id,
                i,
                child.args,
                child.kwargs,
                child.chain,
                py.None(), // the template's clock: the loop takes no clocked kind
                &run.template,
                &task,
                &run.fallback,
                py.None(), // no headers of its own: the loop takes no signalled kind
            );
            let queued = self
                .tuple_new
                .bind(py)
                .call1((self.child_type.bind(py), fields.into_pyobject(py)?))?;
            let seq = run.sequence.call0()?;
            run.pending
                .append((&task_id, &run.qname, queued, py.None(), seq))?;
            i += 1;
        }
        Ok(i)
    }
}

impl AlikeQueue {
    /// What `task` takes of its own when it is a child of `run`'s kind with
    /// arguments the clone copies as they are (a list or tuple, a dict);
    /// None otherwise.
    fn child<'py>(
        &self,
        py: Python<'py>,
        task: &Bound<'py, PyAny>,
        run: &Run<'py>,
    ) -> PyResult<Option<Child<'py>>> {
        if !task.get_type().is(self.signature_type.bind(py)) {
            return Ok(None);
        }
        let sig = task.cast::<PyDict>()?;
        let same_name = match sig.get_item(intern!(py, "task"))? {
            Some(name) => same_key(&name, &run.name)?,
            None => false,
        };
        let immutable = match sig.get_item(intern!(py, "immutable"))? {
            Some(flag) => match flag.is_truthy() {
                Ok(immutable) => immutable,
                Err(err) => return handed_back(py, err).map(|()| None), // Python raises it
            },
            None => false,
        };
        if !same_name
            || immutable != run.immutable
            || !task.getattr(intern!(py, "_type"))?.is(&run.sig_type)
            || !task.getattr(intern!(py, "_app"))?.is(&run.app)
        {
            return Ok(None);
        }
        let Some(options) = sig.get_item(intern!(py, "options"))? else {
            return Ok(None);
        };
        let Ok(options) = options.cast_exact::<PyDict>() else {
            return Ok(None);
        };
        if !same_options(options, &run.options)? {
            return Ok(None);
        }
        let mut args = match sig.get_item(intern!(py, "args"))? {
            Some(args) if args.is_exact_instance_of::<PyTuple>() => args.cast_into::<PyTuple>()?,
            Some(args) if args.is_exact_instance_of::<PyList>() => {
                args.cast_into::<PyList>()?.to_tuple()
            }
            _ => return Ok(None),
        };
        let mut kwargs = match sig.get_item(intern!(py, "kwargs"))? {
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
        if !immutable {
            // Signature._merge of the group's partial arguments
            if !run.partial_args.is_empty() {
                args = run.partial_args.add(&args)?.cast_into::<PyTuple>()?;
            }
            if !run.partial_kwargs.is_empty() {
                let merged = kwargs.copy()?;
                merged.update(run.partial_kwargs.as_mapping())?;
                kwargs = merged;
            }
        }
        // `options.get("task_id") or uuid()`
        let task_id = match options.get_item(intern!(py, "task_id"))? {
            Some(task_id) => match task_id.is_truthy() {
                Ok(true) => Some(task_id),
                Ok(false) => None,
                Err(err) => return handed_back(py, err).map(|()| None), // Python raises it
            },
            None => None,
        };
        let chain = options.get_item(intern!(py, "chain"))?;
        Ok(Some(Child {
            args,
            kwargs,
            task_id,
            chain,
        }))
    }
}

/// An error a child's own code raised, which the Python loop raises again
/// when it takes the child (an `Exception`); anything else (a
/// `KeyboardInterrupt`) propagates at once.
fn handed_back(py: Python<'_>, err: PyErr) -> PyResult<()> {
    if err.is_instance_of::<PyException>(py) {
        Ok(())
    } else {
        Err(err)
    }
}

/// Keys (or task names) equal as `plain._kind`'s tuple compares them: the
/// same object, or equal strings.
fn same_key(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(a.is(b)
        || (a.is_exact_instance_of::<PyString>()
            && b.is_exact_instance_of::<PyString>()
            && a.eq(b)?))
}

/// Whether `options` has the run's keys in its order, each value as the
/// kind has it (`publish.alike.atomic_key` for atomic values: the same
/// type, and a float with the very same bits, which `repr` writes alike).
fn same_options(
    options: &Bound<'_, PyDict>,
    kind: &[(Bound<'_, PyAny>, u8, Bound<'_, PyAny>)],
) -> PyResult<bool> {
    if options.len() != kind.len() {
        return Ok(false);
    }
    for ((key, value), (kind_key, how, kind_value)) in options.iter().zip(kind) {
        if !same_key(&key, kind_key)? {
            return Ok(false);
        }
        let same = match *how {
            PER_CHILD => true,
            ATOMIC => {
                value.get_type().is(kind_value.get_type())
                    && match value.cast::<PyFloat>() {
                        Ok(float) => {
                            let kind_float = kind_value.cast::<PyFloat>()?;
                            float.value().to_bits() == kind_float.value().to_bits()
                        }
                        Err(_) => value.eq(kind_value)?,
                    }
            }
            _ => value.is(kind_value),
        };
        if !same {
            return Ok(false);
        }
    }
    Ok(true)
}

//! The encoder's entry points: inputs are read with the GIL held
//! (`read`), the messages are laid out with it released.

use std::cell::RefCell;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use turbogroup_core::encode::message::{self, ReprLimits};
use turbogroup_core::encode::{alike, envelope, resp, Text, Unsupported, Value};

use crate::convert::{or_empty, text_to_py, Ctx};
use crate::errors::{bad_message, no_longer_encodable, unsupported_object, wrong_type, ToPyErr};
use crate::gil::detach_for;
use crate::read::{alike_input, message, AlikeInput};

/// Encode a batch of Celery protocol-v2 task messages as the kombu Redis
/// envelopes Celery would LPUSH. See `_core.pyi` for the message keys.
#[pyfunction]
#[pyo3(
    signature = (messages, argsrepr_maxsize=Some(1024), kwargsrepr_maxsize=Some(1024), repr_maxlevels=Some(3)),
    text_signature = "(messages, argsrepr_maxsize=1024, kwargsrepr_maxsize=1024, repr_maxlevels=3)"
)]
pub fn encode_task_messages<'py>(
    py: Python<'py>,
    messages: &Bound<'py, PyAny>,
    argsrepr_maxsize: Option<i64>,
    kwargsrepr_maxsize: Option<i64>,
    repr_maxlevels: Option<usize>,
) -> PyResult<Bound<'py, PyList>> {
    let ctx = Ctx::new(py)?;
    let mut converted = Vec::new();
    for (i, item) in messages.try_iter()?.enumerate() {
        let item = item?;
        let d = item
            .cast::<PyDict>()
            .map_err(|_| wrong_type(format!("message {i}: expected a dict")))?;
        converted.push(message(&ctx, i, d)?);
    }
    let limits = limits(argsrepr_maxsize, kwargsrepr_maxsize, repr_maxlevels);
    let built = detach_for(py, converted.len(), || {
        envelope::build_envelopes(&converted, &limits)
    })
    .map_err(ToPyErr::to_py)?;
    envelopes_to_python(py, built, false)
}

fn limits(
    argsrepr_maxsize: Option<i64>,
    kwargsrepr_maxsize: Option<i64>,
    repr_maxlevels: Option<usize>,
) -> ReprLimits {
    ReprLimits {
        argsrepr_maxsize,
        kwargsrepr_maxsize,
        maxlevels: repr_maxlevels.unwrap_or(0),
    }
}

/// Bytes (None when only checking) or `Unsupported`, one per message.
fn envelopes_to_python(
    py: Python<'_>,
    built: Vec<Result<Vec<u8>, Unsupported>>,
    check: bool,
) -> PyResult<Bound<'_, PyList>> {
    let out = PyList::empty(py);
    for r in built {
        match r {
            Ok(_) if check => out.append(py.None())?,
            Ok(bytes) => out.append(PyBytes::new(py, &bytes))?,
            Err(e) => out.append(unsupported_object(py, e)?)?,
        }
    }
    Ok(out)
}

/// Hand each item's envelope (`template` with the item's fields) to
/// `sink`, without the GIL.
fn each_alike(
    py: Python<'_>,
    (template, items): AlikeInput,
    limits: &ReprLimits,
    mut sink: impl FnMut(Result<&[u8], Unsupported>) + Send,
) -> PyResult<()> {
    match template {
        Ok(mut template) => detach_for(py, items.len(), || {
            alike::for_each_alike_envelope(&mut template, items, limits, sink)
        })
        .map_err(ToPyErr::to_py),
        // A template Celery must handle makes every message so.
        Err(reason) => {
            items.iter().for_each(|_| sink(Err(reason.clone())));
            Ok(())
        }
    }
}

/// `encode_task_messages` for messages equal to `template` (a message
/// dict) but for each item's task id, group index, args and kwargs. See
/// `_core.pyi`.
#[pyfunction]
#[pyo3(
    signature = (template, items, argsrepr_maxsize=Some(1024), kwargsrepr_maxsize=Some(1024), repr_maxlevels=Some(3), check=false, headers=None),
    text_signature = "(template, items, argsrepr_maxsize=1024, kwargsrepr_maxsize=1024, repr_maxlevels=3, check=False, headers=None)"
)]
#[allow(clippy::too_many_arguments)] // Python's keyword arguments
pub fn encode_alike_messages<'py>(
    py: Python<'py>,
    template: &Bound<'py, PyDict>,
    items: &Bound<'py, PyAny>,
    argsrepr_maxsize: Option<i64>,
    kwargsrepr_maxsize: Option<i64>,
    repr_maxlevels: Option<usize>,
    check: bool,
    headers: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyList>> {
    let limits = limits(argsrepr_maxsize, kwargsrepr_maxsize, repr_maxlevels);
    let input = alike_input(py, template, items, headers)?;
    let mut built = Vec::with_capacity(input.1.len());
    if check {
        // Only the verdicts are wanted: what every item shares is written once.
        match input.0 {
            Ok(mut template) => {
                let units = input.1.len();
                let checked = detach_for(py, units, || {
                    alike::check_alike(&mut template, input.1, &limits)
                });
                built.extend(checked.into_iter().map(|r| r.map(|()| vec![])));
            }
            Err(reason) => built.extend(input.1.iter().map(|_| Err(reason.clone()))),
        }
        return envelopes_to_python(py, built, true);
    }
    each_alike(py, input, &limits, |r| built.push(r.map(<[u8]>::to_vec)))?;
    envelopes_to_python(py, built, false)
}

/// One `LPUSH key <envelope>...` command (RESP bytes) for the alike
/// messages; they were checked already, so an unsupported one is an error.
#[pyfunction]
#[pyo3(
    signature = (key, template, items, argsrepr_maxsize=Some(1024), kwargsrepr_maxsize=Some(1024), repr_maxlevels=Some(3), headers=None),
    text_signature = "(key, template, items, argsrepr_maxsize=1024, kwargsrepr_maxsize=1024, repr_maxlevels=3, headers=None)"
)]
#[allow(clippy::too_many_arguments)] // Python's keyword arguments
pub fn lpush_alike_command<'py>(
    py: Python<'py>,
    key: &str,
    template: &Bound<'py, PyDict>,
    items: &Bound<'py, PyAny>,
    argsrepr_maxsize: Option<i64>,
    kwargsrepr_maxsize: Option<i64>,
    repr_maxlevels: Option<usize>,
    headers: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let limits = limits(argsrepr_maxsize, kwargsrepr_maxsize, repr_maxlevels);
    let input = alike_input(py, template, items, headers)?;
    // The command is built in a buffer kept by the thread: a fresh
    // megabyte per batch costs more in page faults than in writing.
    let mut command = COMMAND_BUFFER.with_borrow_mut(std::mem::take);
    command.clear();
    resp::write_lpush_head(&mut command, key.as_bytes(), input.1.len());
    let mut failed = None;
    let written = each_alike(py, input, &limits, |r| match r {
        Ok(envelope) => resp::bulk(&mut command, envelope),
        Err(e) => {
            failed.get_or_insert(e);
        }
    });
    let out = PyBytes::new(py, &command);
    if command.capacity() <= MAX_KEPT_BUFFER {
        COMMAND_BUFFER.with_borrow_mut(|kept| *kept = command);
    }
    written?;
    match failed {
        Some(e) => Err(no_longer_encodable(e)),
        None => Ok(out),
    }
}

/// A batch's command buffer is kept for the next batch up to this size.
const MAX_KEPT_BUFFER: usize = 16 << 20;

thread_local! {
    static COMMAND_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The AMQP body and header reprs of messages alike `template`. See
/// `_core.pyi`.
#[pyfunction]
#[pyo3(
    signature = (template, items, argsrepr_maxsize=Some(1024), kwargsrepr_maxsize=Some(1024), repr_maxlevels=Some(3), check=false),
    text_signature = "(template, items, argsrepr_maxsize=1024, kwargsrepr_maxsize=1024, repr_maxlevels=3, check=False)"
)]
pub fn amqp_alike_parts<'py>(
    py: Python<'py>,
    template: &Bound<'py, PyDict>,
    items: &Bound<'py, PyAny>,
    argsrepr_maxsize: Option<i64>,
    kwargsrepr_maxsize: Option<i64>,
    repr_maxlevels: Option<usize>,
    check: bool,
) -> PyResult<Bound<'py, PyList>> {
    let limits = limits(argsrepr_maxsize, kwargsrepr_maxsize, repr_maxlevels);
    let (template, items) = alike_input(py, template, items, None)?;
    // (body, or its size when checking; argsrepr; kwargsrepr)
    type Parts = Result<(Result<Vec<u8>, usize>, Option<Text>, Option<Text>), Unsupported>;
    let mut parts: Vec<Parts> = Vec::with_capacity(items.len());
    match template {
        Ok(mut template) => detach_for(py, items.len(), || {
            alike::for_each_alike_amqp_parts(&mut template, items, &limits, |r| {
                parts.push(r.map(|p| {
                    let body = if check {
                        Err(p.body.len())
                    } else {
                        Ok(p.body.to_vec())
                    };
                    (body, p.argsrepr, p.kwargsrepr)
                }))
            })
        }),
        Err(reason) => parts.extend(items.iter().map(|_| Err(reason.clone()))),
    }
    let out = PyList::empty(py);
    for part in parts {
        match part {
            Ok((Err(size), _, _)) => out.append(size)?,
            Ok((Ok(body), argsrepr, kwargsrepr)) => {
                let repr = |t: Option<Text>| -> PyResult<Bound<'py, PyAny>> {
                    t.map_or_else(|| Ok(py.None().into_bound(py)), |t| text_to_py(py, &t))
                };
                let item = (PyBytes::new(py, &body), repr(argsrepr)?, repr(kwargsrepr)?);
                out.append(item)?
            }
            Err(e) => out.append(unsupported_object(py, e)?)?,
        }
    }
    Ok(out)
}

/// Celery's `argsrepr` and `kwargsrepr` headers for these arguments (as
/// `as_task_v2` computes them: falsy args and kwargs are `()` and `{}`),
/// or `Unsupported` where the encoder cannot render a value exactly. See
/// `_core.pyi`.
#[pyfunction]
#[pyo3(
    signature = (args, kwargs, argsrepr_maxsize=Some(1024), kwargsrepr_maxsize=Some(1024), repr_maxlevels=Some(3)),
    text_signature = "(args, kwargs, argsrepr_maxsize=1024, kwargsrepr_maxsize=1024, repr_maxlevels=3)"
)]
pub fn task_reprs<'py>(
    py: Python<'py>,
    args: &Bound<'py, PyAny>,
    kwargs: &Bound<'py, PyAny>,
    argsrepr_maxsize: Option<i64>,
    kwargsrepr_maxsize: Option<i64>,
    repr_maxlevels: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let ctx = Ctx::new(py)?;
    let limits = limits(argsrepr_maxsize, kwargsrepr_maxsize, repr_maxlevels);
    let converted = or_empty(&ctx, args, Value::Tuple(vec![]))
        .and_then(|a| Ok((a, or_empty(&ctx, kwargs, Value::Dict(vec![]))?)));
    match converted {
        Ok((a, k)) => {
            // one message's: never worth a GIL round trip (gil.rs)
            let (argsrepr, kwargsrepr) = message::task_reprs(&a, &k, &limits);
            Ok(PyTuple::new(
                py,
                [text_to_py(py, &argsrepr)?, text_to_py(py, &kwargsrepr)?],
            )?
            .into_any())
        }
        Err(e) => unsupported_object(py, e),
    }
}

/// `MGET prefix+id ...` as RESP bytes, one command per `chunk` ids, for
/// ids that are all strings (a TypeError otherwise).
#[pyfunction]
pub fn mget_commands<'py>(
    py: Python<'py>,
    prefix: &str,
    ids: &Bound<'py, PyList>,
    chunk: usize,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    if chunk == 0 {
        return Err(bad_message("an MGET chunk of 0 ids".to_owned()));
    }
    let strings = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            id.cast_into::<PyString>()
                .map_err(|_| wrong_type(format!("task id {i} is not a str")))
        })
        .collect::<PyResult<Vec<_>>>()?;
    let keys = strings
        .iter()
        .map(|s| s.to_str())
        .collect::<PyResult<Vec<&str>>>()?;
    Ok(keys
        .chunks(chunk)
        .map(|part| {
            let mut out = Vec::new();
            resp::write_mget(&mut out, prefix.as_bytes(), part);
            PyBytes::new(py, &out)
        })
        .collect())
}

/// `LPUSH key values...` as RESP bytes.
#[pyfunction]
pub fn lpush_command<'py>(py: Python<'py>, key: &str, values: Vec<Vec<u8>>) -> Bound<'py, PyBytes> {
    let mut out = Vec::new();
    resp::write_lpush(&mut out, key.as_bytes(), &values);
    PyBytes::new(py, &out)
}

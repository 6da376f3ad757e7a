//! `LazyResults.settle_all`'s loop over a fetch: a restored or dispatched
//! group's children still kept as ids (`turbogroup.lazy.LazyNode`), each
//! given what `_get_task_meta()` would give from its fetched payload, with
//! no Python bytecode per child in the common case.
//!
//! A SUCCESS meta without children is cached on its stand-in (the caller
//! counts those on the group's ready barrier); a meta not ready and not in
//! an exception state is handed out uncached. Everything else (an
//! exception state, children to rebuild, a payload read again after a
//! `forget()`, anything that is not a dict with a status) is left to the
//! caller, which settles it as Celery would, and raises what Celery raises.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use turbogroup_core::payload::plain_success;

/// `(out, later, newly)` for `nodes` and their fetched `decoded` payloads
/// (zipped: the shorter list's length): `out[i]` is the node's meta, or
/// None for the indexes in `later`, which the caller settles; `newly`
/// counts the metas cached here. A node already cached gives its cache; a
/// payload that is None (nothing stored) a new PENDING meta.
#[pyfunction]
pub fn settle_stand_ins<'py>(
    py: Python<'py>,
    nodes: &Bound<'py, PyList>,
    decoded: &Bound<'py, PyList>,
    exception_states: &Bound<'py, PyAny>,
    not_fetched: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyList>, Vec<usize>, usize)> {
    let cache = intern!(py, "_cache");
    let status_key = intern!(py, "status");
    let children_key = intern!(py, "children");
    let success = intern!(py, "SUCCESS");
    let out = PyList::empty(py);
    let mut later = Vec::new();
    let mut newly = 0;
    for (i, (node, meta)) in nodes.iter().zip(decoded.iter()).enumerate() {
        let cached = node.getattr(cache)?;
        if !cached.is_none() {
            out.append(cached)?;
            continue;
        }
        if meta.is_none() {
            let pending = PyDict::new(py);
            pending.set_item(status_key, intern!(py, "PENDING"))?;
            pending.set_item(intern!(py, "result"), py.None())?;
            out.append(pending)?;
            continue;
        }
        let settled_here = !meta.is(not_fetched)
            && match meta.cast_exact::<PyDict>() {
                Ok(dict) => match dict.get_item(status_key)? {
                    Some(status) => {
                        let children = dict.get_item(children_key)?;
                        let has_children = match children {
                            Some(children) => children.is_truthy()?,
                            None => false,
                        };
                        if has_children || exception_states.contains(&status)? {
                            false
                        } else {
                            if status.eq(success)? {
                                node.setattr(cache, &meta)?;
                                newly += 1;
                            }
                            true
                        }
                    }
                    None => false,
                },
                Err(_) => false,
            };
        if settled_here {
            out.append(meta)?;
        } else {
            out.append(py.None())?;
            later.push(i);
        }
    }
    Ok((out, later, newly))
}

/// The indexes of `payloads` (bytes, or None where nothing is stored) whose
/// meta must be decoded to be known: every payload but the plain
/// successes (`turbogroup_core::payload::plain_success`) and None.
#[pyfunction]
pub fn undecided_payloads(payloads: &Bound<'_, PyList>) -> Vec<usize> {
    let mut undecided = Vec::new();
    for (i, payload) in payloads.iter().enumerate() {
        if payload.is_none() {
            continue;
        }
        let plain = payload
            .cast_exact::<PyBytes>()
            .is_ok_and(|bytes| plain_success(bytes.as_bytes()));
        if !plain {
            undecided.push(i);
        }
    }
    undecided
}

/// `(statuses, kept)` for stand-ins `nodes` none of which had a meta when
/// their `payloads` were read: each plain success kept on its node as its
/// payload (`_raw`, decoded when the node's meta is first read) unless the
/// node got a meta or a payload meanwhile, a missing payload PENDING (not
/// kept, as Celery does not cache it), and None at the `undecided` indexes
/// (ascending), which the caller decodes and settles. `kept` counts the
/// payloads kept here (the caller counts them on the group's barrier).
#[pyfunction]
pub fn keep_plain_successes<'py>(
    py: Python<'py>,
    nodes: &Bound<'py, PyList>,
    payloads: &Bound<'py, PyList>,
    undecided: Vec<usize>,
) -> PyResult<(Bound<'py, PyList>, usize)> {
    let meta_attr = intern!(py, "_meta");
    let raw_attr = intern!(py, "_raw");
    let status_key = intern!(py, "status");
    let success = intern!(py, "SUCCESS");
    let pending = intern!(py, "PENDING");
    let statuses = PyList::empty(py);
    let mut undecided = undecided.into_iter().peekable();
    let mut kept = 0;
    for (i, (node, payload)) in nodes.iter().zip(payloads.iter()).enumerate() {
        if undecided.next_if_eq(&i).is_some() {
            statuses.append(py.None())?;
            continue;
        }
        let meta = node.getattr(meta_attr)?;
        if !meta.is_none() {
            // settled meanwhile, by another thread
            statuses.append(meta.get_item(status_key)?)?;
        } else if !node.getattr(raw_attr)?.is_none() {
            statuses.append(success)?;
        } else if payload.is_none() {
            statuses.append(pending)?;
        } else {
            node.setattr(raw_attr, &payload)?;
            kept += 1;
            statuses.append(success)?;
        }
    }
    Ok((statuses, kept))
}

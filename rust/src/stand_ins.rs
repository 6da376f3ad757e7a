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
use pyo3::types::{PyDict, PyList};

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

//! Python values as the core crate's `Value`s, read with the GIL held:
//! which Python types the encoder may render exactly, and how.

use std::cell::RefCell;
use std::collections::HashMap;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use turbogroup_core::encode::json::MAX_DEPTH;
use turbogroup_core::encode::{TagKind, Text, Unsupported, Value};

use crate::errors::read_failed;

/// Where a value goes decides which Python types it may have.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// args/kwargs: rendered by `saferepr` as well as JSON, so only exact
    /// builtin types (a subclass may change what `saferepr` shows).
    Repr,
    /// Only JSON-encoded (signatures, headers, properties). Also accepts
    /// dict subclasses such as `celery.canvas.Signature`, read the way
    /// CPython's C encoder reads them: `{}` when the dict is empty, else
    /// the pairs from `list(obj.items())` (Signature overrides `items`).
    Json,
}

/// What the conversions of one call share.
pub struct Ctx<'py> {
    tagged: [(Bound<'py, PyType>, TagKind); 5],
    /// Dict subclasses already converted in this call, by identity: a
    /// chord's body signature is shared by every header task, and reading
    /// it means running `Signature.items()`, a Python generator. Each entry
    /// holds a reference so the address cannot be reused during the call.
    seen_mappings: RefCell<HashMap<usize, (Bound<'py, PyAny>, Value)>>,
}

/// The types kombu's JSON encoder tags, looked up once: importing their
/// modules on every call went through the import machinery, ~10 µs of a
/// one-message call (`task_reprs`, per message with publish signals on).
static TAGGED: PyOnceLock<[(Py<PyType>, TagKind); 5]> = PyOnceLock::new();

impl<'py> Ctx<'py> {
    pub fn new(py: Python<'py>) -> PyResult<Self> {
        let tagged = TAGGED.get_or_try_init(py, || -> PyResult<_> {
            let dt = py.import("datetime")?;
            let ty = |m: &Bound<'py, PyModule>, name: &str| -> PyResult<Py<PyType>> {
                Ok(m.getattr(name)?.cast_into::<PyType>()?.unbind())
            };
            Ok([
                (ty(&dt, "datetime")?, TagKind::DateTime),
                (ty(&dt, "date")?, TagKind::Date),
                (ty(&dt, "time")?, TagKind::Time),
                (ty(&py.import("decimal")?, "Decimal")?, TagKind::Decimal),
                (ty(&py.import("uuid")?, "UUID")?, TagKind::Uuid),
            ])
        })?;
        Ok(Ctx {
            tagged: tagged
                .each_ref()
                .map(|(ty, kind)| (ty.bind(py).clone(), *kind)),
            seen_mappings: RefCell::new(HashMap::new()),
        })
    }
}

/// A Python `str` as `Text`, lone surrogates included.
fn text(s: &Bound<'_, PyString>) -> Result<Text, Unsupported> {
    if let Ok(utf8) = s.to_str() {
        return Ok(Text::from(utf8));
    }
    let raw = s
        .call_method1(intern!(s.py(), "encode"), ("utf-8", "surrogatepass"))
        .map_err(read_failed)?;
    let raw = raw.cast::<PyBytes>().map_err(|e| read_failed(e.into()))?;
    Text::from_surrogatepass(raw.as_bytes().to_vec())
        .map_err(|_| Unsupported("str.encode('utf-8', 'surrogatepass') gave bad bytes".into()))
}

fn any_text(obj: &Bound<'_, PyAny>) -> Result<Text, Unsupported> {
    let s = obj.cast::<PyString>().map_err(|e| read_failed(e.into()))?;
    text(s)
}

pub fn convert<'py>(
    ctx: &Ctx<'py>,
    obj: &Bound<'py, PyAny>,
    mode: Mode,
    depth: usize,
) -> Result<Value, Unsupported> {
    if depth > MAX_DEPTH {
        // Also stops a self-containing list, which Celery rejects anyway.
        return Err(Unsupported(format!(
            "nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if obj.is_none() {
        return Ok(Value::None);
    }
    if obj.is_exact_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.is_truthy().map_err(read_failed)?));
    }
    if obj.is_exact_instance_of::<PyInt>() {
        return Ok(match obj.extract::<i64>() {
            Ok(i) => Value::Int(i),
            // `str(int)` raises past sys.get_int_max_str_digits(), exactly
            // where Celery's saferepr and json.dumps would raise too.
            Err(_) => Value::BigInt(
                obj.str()
                    .map_err(read_failed)?
                    .to_str()
                    .map_err(read_failed)?
                    .to_owned(),
            ),
        });
    }
    if obj.is_exact_instance_of::<PyFloat>() {
        return Ok(Value::Float(obj.extract::<f64>().map_err(read_failed)?));
    }
    if obj.is_exact_instance_of::<PyString>() {
        return Ok(Value::Str(any_text(obj)?));
    }
    if obj.is_exact_instance_of::<PyBytes>() {
        let b = obj.cast::<PyBytes>().map_err(|e| read_failed(e.into()))?;
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if obj.is_exact_instance_of::<PyList>() {
        let l = obj.cast::<PyList>().map_err(|e| read_failed(e.into()))?;
        return l
            .iter()
            .map(|x| convert(ctx, &x, mode, depth + 1))
            .collect::<Result<_, _>>()
            .map(Value::List);
    }
    if obj.is_exact_instance_of::<PyTuple>() {
        let t = obj.cast::<PyTuple>().map_err(|e| read_failed(e.into()))?;
        return t
            .iter()
            .map(|x| convert(ctx, &x, mode, depth + 1))
            .collect::<Result<_, _>>()
            .map(Value::Tuple);
    }
    if obj.is_exact_instance_of::<PyDict>() {
        let d = obj.cast::<PyDict>().map_err(|e| read_failed(e.into()))?;
        let mut pairs = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            pairs.push((
                convert(ctx, &k, mode, depth + 1)?,
                convert(ctx, &v, mode, depth + 1)?,
            ));
        }
        return Ok(Value::Dict(pairs));
    }
    let ty = obj.get_type();
    for (tagged, kind) in &ctx.tagged {
        if ty.is(tagged) {
            let encoded = match kind {
                TagKind::Decimal => obj.str().map_err(read_failed)?.into_any(),
                TagKind::Uuid => obj.getattr(intern!(obj.py(), "hex")).map_err(read_failed)?,
                _ => obj
                    .call_method0(intern!(obj.py(), "isoformat"))
                    .map_err(read_failed)?,
            };
            let repr = obj.repr().map_err(read_failed)?;
            return Ok(Value::Tagged {
                kind: *kind,
                encoded: any_text(&encoded)?,
                repr: text(&repr)?,
            });
        }
    }
    if mode == Mode::Json {
        if let Ok(d) = obj.cast::<PyDict>() {
            if d.is_empty() {
                return Ok(Value::Dict(vec![]));
            }
            let addr = obj.as_ptr() as usize;
            if let Some((_, v)) = ctx.seen_mappings.borrow().get(&addr) {
                return Ok(v.clone());
            }
            let items = obj
                .call_method0(intern!(obj.py(), "items"))
                .map_err(read_failed)?;
            let items = obj
                .py()
                .get_type::<PyList>()
                .call1((items,))
                .map_err(read_failed)?;
            let mut pairs = Vec::new();
            for item in items
                .cast::<PyList>()
                .map_err(|e| read_failed(e.into()))?
                .iter()
            {
                let pair = item
                    .cast::<PyTuple>()
                    .ok()
                    .filter(|t| t.len() == 2)
                    .ok_or_else(|| Unsupported("items() must return 2-tuples".into()))?;
                let k = pair.get_item(0).map_err(read_failed)?;
                let v = pair.get_item(1).map_err(read_failed)?;
                pairs.push((
                    convert(ctx, &k, mode, depth + 1)?,
                    convert(ctx, &v, mode, depth + 1)?,
                ));
            }
            let value = Value::Dict(pairs);
            ctx.seen_mappings
                .borrow_mut()
                .insert(addr, (obj.clone(), value.clone()));
            return Ok(value);
        }
    }
    let name = ty
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    Err(Unsupported(format!(
        "values of type {name} are encoded by Celery"
    )))
}

/// Task arguments as `as_task_v2` reads them: falsy ones are `empty`.
pub fn or_empty<'py>(
    ctx: &Ctx<'py>,
    v: &Bound<'py, PyAny>,
    empty: Value,
) -> Result<Value, Unsupported> {
    if v.is_truthy().map_err(read_failed)? {
        convert(ctx, v, Mode::Repr, 0)
    } else {
        Ok(empty)
    }
}

/// A `Text` as a Python `str` (lone surrogates included).
pub fn text_to_py<'py>(py: Python<'py>, t: &Text) -> PyResult<Bound<'py, PyAny>> {
    match t.as_str() {
        Some(s) => Ok(PyString::new(py, s).into_any()),
        None => PyBytes::new(py, t.as_bytes())
            .call_method1(intern!(py, "decode"), ("utf-8", "surrogatepass")),
    }
}

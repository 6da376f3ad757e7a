//! Python -> `Value` conversion for the message encoder, and the
//! `encode_task_messages` entry point. Inputs are converted with the GIL
//! held, the messages are laid out with it released.

use std::cell::RefCell;
use std::collections::HashMap;

use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use turbogroup_core::encode::json::MAX_DEPTH;
use turbogroup_core::encode::message::{self, AlikeItem, ReprLimits, TaskMessage};
use turbogroup_core::encode::resp;
use turbogroup_core::encode::{TagKind, Text, Unsupported, Value};

/// Returned in place of a message the encoder cannot reproduce exactly;
/// the caller publishes that one through Celery instead.
#[pyclass(frozen, module = "turbogroup._core", name = "Unsupported")]
pub struct PyUnsupported {
    #[pyo3(get)]
    reason: String,
}

#[pymethods]
impl PyUnsupported {
    fn __repr__(&self) -> String {
        format!("Unsupported({:?})", self.reason)
    }
}

/// Where a value goes decides which Python types it may have.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// args/kwargs: rendered by `saferepr` as well as JSON, so only exact
    /// builtin types (a subclass may change what `saferepr` shows).
    Repr,
    /// Only JSON-encoded (signatures, headers, properties). Also accepts
    /// dict subclasses such as `celery.canvas.Signature`, read the way
    /// CPython's C encoder reads them: `{}` when the dict is empty, else
    /// the pairs from `list(obj.items())` (Signature overrides `items`).
    Json,
}

struct Ctx<'py> {
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
    fn new(py: Python<'py>) -> PyResult<Self> {
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

fn unsupported(e: PyErr) -> Unsupported {
    Unsupported(format!("Python raised while reading a value: {e}"))
}

/// A Python `str` as `Text`, lone surrogates included.
fn text(s: &Bound<'_, PyString>) -> Result<Text, Unsupported> {
    if let Ok(utf8) = s.to_str() {
        return Ok(Text::from(utf8));
    }
    let raw = s
        .call_method1("encode", ("utf-8", "surrogatepass"))
        .map_err(unsupported)?;
    let raw = raw.cast::<PyBytes>().map_err(|e| unsupported(e.into()))?;
    Text::from_surrogatepass(raw.as_bytes().to_vec())
        .map_err(|_| Unsupported("str.encode('utf-8', 'surrogatepass') gave bad bytes".into()))
}

fn any_text(obj: &Bound<'_, PyAny>) -> Result<Text, Unsupported> {
    let s = obj.cast::<PyString>().map_err(|e| unsupported(e.into()))?;
    text(s)
}

fn convert<'py>(
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
        return Ok(Value::Bool(obj.is_truthy().map_err(unsupported)?));
    }
    if obj.is_exact_instance_of::<PyInt>() {
        return Ok(match obj.extract::<i64>() {
            Ok(i) => Value::Int(i),
            // `str(int)` raises past sys.get_int_max_str_digits(), exactly
            // where Celery's saferepr and json.dumps would raise too.
            Err(_) => Value::BigInt(
                obj.str()
                    .map_err(unsupported)?
                    .to_str()
                    .map_err(unsupported)?
                    .to_owned(),
            ),
        });
    }
    if obj.is_exact_instance_of::<PyFloat>() {
        return Ok(Value::Float(obj.extract::<f64>().map_err(unsupported)?));
    }
    if obj.is_exact_instance_of::<PyString>() {
        return Ok(Value::Str(any_text(obj)?));
    }
    if obj.is_exact_instance_of::<PyBytes>() {
        let b = obj.cast::<PyBytes>().map_err(|e| unsupported(e.into()))?;
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if obj.is_exact_instance_of::<PyList>() {
        let l = obj.cast::<PyList>().map_err(|e| unsupported(e.into()))?;
        return l
            .iter()
            .map(|x| convert(ctx, &x, mode, depth + 1))
            .collect::<Result<_, _>>()
            .map(Value::List);
    }
    if obj.is_exact_instance_of::<PyTuple>() {
        let t = obj.cast::<PyTuple>().map_err(|e| unsupported(e.into()))?;
        return t
            .iter()
            .map(|x| convert(ctx, &x, mode, depth + 1))
            .collect::<Result<_, _>>()
            .map(Value::Tuple);
    }
    if obj.is_exact_instance_of::<PyDict>() {
        let d = obj.cast::<PyDict>().map_err(|e| unsupported(e.into()))?;
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
                TagKind::Decimal => obj.str().map_err(unsupported)?.into_any(),
                TagKind::Uuid => obj.getattr("hex").map_err(unsupported)?,
                _ => obj.call_method0("isoformat").map_err(unsupported)?,
            };
            let repr = obj.repr().map_err(unsupported)?;
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
            let items = obj.call_method0("items").map_err(unsupported)?;
            let items = obj
                .py()
                .get_type::<PyList>()
                .call1((items,))
                .map_err(unsupported)?;
            let mut pairs = Vec::new();
            for item in items
                .cast::<PyList>()
                .map_err(|e| unsupported(e.into()))?
                .iter()
            {
                let pair = item
                    .cast::<PyTuple>()
                    .ok()
                    .filter(|t| t.len() == 2)
                    .ok_or_else(|| Unsupported("items() must return 2-tuples".into()))?;
                let k = pair.get_item(0).map_err(unsupported)?;
                let v = pair.get_item(1).map_err(unsupported)?;
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

/// The keys a message dict may have, named after `as_task_v2`'s parameters.
const KEYS: [&str; 33] = [
    "task_id",
    "name",
    "args",
    "kwargs",
    "shadow",
    "eta",
    "expires",
    "group_id",
    "group_index",
    "retries",
    "time_limit",
    "soft_time_limit",
    "root_id",
    "parent_id",
    "argsrepr",
    "kwargsrepr",
    "origin",
    "ignore_result",
    "replaced_task_nesting",
    "stamped_headers",
    "stamps",
    "headers",
    "callbacks",
    "errbacks",
    "chain",
    "chord",
    "reply_to",
    "properties",
    "delivery_mode",
    "expiration",
    "priority",
    "exchange",
    "routing_key",
];

/// A message dict's values by key, read in one pass over the dict (no
/// per-key hashing: most messages carry a dozen of the 33 keys).
struct Slots<'py>([Option<Bound<'py, PyAny>>; KEYS.len()]);

impl<'py> Slots<'py> {
    fn read(index: usize, d: &Bound<'py, PyDict>) -> PyResult<Self> {
        let mut slots = Slots(std::array::from_fn(|_| None));
        for (k, v) in d.iter() {
            let slot = k
                .cast::<PyString>()
                .ok()
                .and_then(|s| s.to_str().ok())
                .and_then(|s| KEYS.iter().position(|key| *key == s));
            match slot {
                Some(i) => slots.0[i] = Some(v),
                None => {
                    return Err(PyValueError::new_err(format!(
                        "message {index}: unknown key {k}"
                    )))
                }
            }
        }
        Ok(slots)
    }

    fn get(&self, key: &str) -> Option<&Bound<'py, PyAny>> {
        let i = KEYS
            .iter()
            .position(|k| *k == key)
            .expect("a key from KEYS");
        self.0[i].as_ref()
    }
}

/// Reads one message dict. `Err(PyErr)` is a caller bug (missing or
/// unknown key, wrong type for a resolved field); `Ok(Err(_))` is a message
/// whose values must go through Celery.
fn message<'py>(
    ctx: &Ctx<'py>,
    index: usize,
    d: &Bound<'py, PyDict>,
) -> PyResult<Result<TaskMessage, Unsupported>> {
    let slots = Slots::read(index, d)?;
    let required = |key: &str| -> PyResult<String> {
        slots
            .get(key)
            .ok_or_else(|| PyValueError::new_err(format!("message {index}: '{key}' is required")))?
            .extract::<String>()
            .map_err(|_| PyTypeError::new_err(format!("message {index}: '{key}' must be a str")))
    };
    let id = required("task_id")?;
    let name = required("name")?;
    for key in ["eta", "expires", "expiration"] {
        // Celery derives these from the clock; the caller resolves them.
        if let Some(v) = slots.get(key) {
            if !(v.is_none() || v.is_exact_instance_of::<PyString>()) {
                return Err(PyTypeError::new_err(format!(
                    "message {index}: '{key}' must be a str or None"
                )));
            }
        }
    }
    Ok(build(ctx, &slots, id, name))
}

fn build<'py>(
    ctx: &Ctx<'py>,
    slots: &Slots<'py>,
    id: String,
    name: String,
) -> Result<TaskMessage, Unsupported> {
    let json = |key: &str, default: Value| -> Result<Value, Unsupported> {
        match slots.get(key) {
            Some(v) => convert(ctx, v, Mode::Json, 0),
            None => Ok(default),
        }
    };
    // `args or ()`, `kwargs or {}`: any falsy value becomes empty.
    let or_empty = |key: &str, empty: Value| -> Result<Value, Unsupported> {
        match slots.get(key) {
            Some(v) if v.is_truthy().map_err(unsupported)? => convert(ctx, v, Mode::Repr, 0),
            _ => Ok(empty),
        }
    };
    let pairs = |key: &str| -> Result<Vec<(Value, Value)>, Unsupported> {
        match json(key, Value::None)? {
            Value::Dict(p) => Ok(p),
            Value::None => Ok(vec![]),
            _ => Err(Unsupported(format!("{key} must be a dict"))),
        }
    };
    let args = or_empty("args", Value::Tuple(vec![]))?;
    let kwargs = or_empty("kwargs", Value::Dict(vec![]))?;
    let mut m = TaskMessage::new(&id, &name, args, kwargs);
    m.shadow = json("shadow", Value::None)?;
    m.eta = json("eta", Value::None)?;
    m.expires = json("expires", Value::None)?;
    m.group_id = json("group_id", Value::None)?;
    m.group_index = json("group_index", Value::None)?;
    m.retries = json("retries", Value::Int(0))?;
    m.time_limit = json("time_limit", Value::None)?;
    m.soft_time_limit = json("soft_time_limit", Value::None)?;
    // `if not root_id: root_id = task_id`, for any falsy value.
    m.root_id = match slots.get("root_id") {
        Some(v) if v.is_truthy().map_err(unsupported)? => convert(ctx, v, Mode::Json, 0)?,
        _ => Value::None,
    };
    m.parent_id = json("parent_id", Value::None)?;
    m.argsrepr = Some(json("argsrepr", Value::None)?).filter(|v| !matches!(v, Value::None));
    m.kwargsrepr = Some(json("kwargsrepr", Value::None)?).filter(|v| !matches!(v, Value::None));
    m.origin = json("origin", Value::None)?;
    m.ignore_result = json("ignore_result", Value::Bool(false))?;
    m.replaced_task_nesting = json("replaced_task_nesting", Value::Int(0))?;
    m.stamped_headers = json("stamped_headers", Value::None)?;
    m.stamps = json("stamps", Value::Dict(vec![]))?;
    m.extra_headers = pairs("headers")?;
    m.callbacks = json("callbacks", Value::None)?;
    m.errbacks = json("errbacks", Value::None)?;
    m.chain = json("chain", Value::None)?;
    m.chord = json("chord", Value::None)?;
    m.reply_to = json("reply_to", Value::str(""))?;
    m.extra_properties = pairs("properties")?;
    m.delivery_mode = json("delivery_mode", Value::Int(2))?;
    m.expiration = match json("expiration", Value::None)? {
        Value::Str(t) => Some(t),
        _ => None,
    };
    m.priority = json("priority", Value::Int(0))?;
    m.exchange = json("exchange", Value::str(""))?;
    m.routing_key = json("routing_key", Value::None)?;
    Ok(m)
}

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
            .map_err(|_| PyTypeError::new_err(format!("message {i}: expected a dict")))?;
        converted.push(message(&ctx, i, d)?);
    }
    let limits = limits(argsrepr_maxsize, kwargsrepr_maxsize, repr_maxlevels);
    let built = py
        .detach(|| message::build_envelopes(&converted, &limits))
        .map_err(|e| PyOSError::new_err(e.to_string()))?;
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
            Err(Unsupported(reason)) => out.append(Bound::new(py, PyUnsupported { reason })?)?,
        }
    }
    Ok(out)
}

/// Task arguments as `as_task_v2` reads them: falsy ones are `empty`.
fn or_empty<'py>(
    ctx: &Ctx<'py>,
    v: &Bound<'py, PyAny>,
    empty: Value,
) -> Result<Value, Unsupported> {
    if v.is_truthy().map_err(unsupported)? {
        convert(ctx, v, Mode::Repr, 0)
    } else {
        Ok(empty)
    }
}

/// One `(task_id, group_index, args, kwargs, ...)` item (a tuple, or a
/// tuple subclass such as turbogroup's `AlikeChild`, whose first four
/// items these are), read as `build` reads those fields of a message dict.
fn alike_item<'py>(
    ctx: &Ctx<'py>,
    index: usize,
    item: &Bound<'py, PyAny>,
) -> PyResult<Result<AlikeItem, Unsupported>> {
    let t = item
        .cast::<PyTuple>()
        .ok()
        .filter(|t| t.len() >= 4)
        .ok_or_else(|| {
            PyTypeError::new_err(format!("item {index}: expected a tuple of 4 or more"))
        })?;
    let id = t
        .get_item(0)?
        .extract::<String>()
        .map_err(|_| PyTypeError::new_err(format!("item {index}: the task id must be a str")))?;
    let fields = || -> Result<AlikeItem, Unsupported> {
        Ok(AlikeItem {
            id: Text::from(id.as_str()),
            group_index: convert(ctx, &t.get_item(1).map_err(unsupported)?, Mode::Json, 0)?,
            args: or_empty(
                ctx,
                &t.get_item(2).map_err(unsupported)?,
                Value::Tuple(vec![]),
            )?,
            kwargs: or_empty(
                ctx,
                &t.get_item(3).map_err(unsupported)?,
                Value::Dict(vec![]),
            )?,
        })
    };
    Ok(fields())
}

/// The template and items, read from Python (with the GIL).
type AlikeInput = (
    Result<TaskMessage, Unsupported>,
    Vec<Result<AlikeItem, Unsupported>>,
);

fn alike_input<'py>(
    py: Python<'py>,
    template: &Bound<'py, PyDict>,
    items: &Bound<'py, PyAny>,
) -> PyResult<AlikeInput> {
    let ctx = Ctx::new(py)?;
    let template = message(&ctx, 0, template)?;
    let mut converted = Vec::new();
    for (i, item) in items.try_iter()?.enumerate() {
        converted.push(alike_item(&ctx, i, &item?)?);
    }
    Ok((template, converted))
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
        Ok(mut template) => py
            .detach(|| message::for_each_alike_envelope(&mut template, items, limits, sink))
            .map_err(|e| PyOSError::new_err(e.to_string())),
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
    signature = (template, items, argsrepr_maxsize=Some(1024), kwargsrepr_maxsize=Some(1024), repr_maxlevels=Some(3), check=false),
    text_signature = "(template, items, argsrepr_maxsize=1024, kwargsrepr_maxsize=1024, repr_maxlevels=3, check=False)"
)]
pub fn encode_alike_messages<'py>(
    py: Python<'py>,
    template: &Bound<'py, PyDict>,
    items: &Bound<'py, PyAny>,
    argsrepr_maxsize: Option<i64>,
    kwargsrepr_maxsize: Option<i64>,
    repr_maxlevels: Option<usize>,
    check: bool,
) -> PyResult<Bound<'py, PyList>> {
    let limits = limits(argsrepr_maxsize, kwargsrepr_maxsize, repr_maxlevels);
    let input = alike_input(py, template, items)?;
    let mut built = Vec::with_capacity(input.1.len());
    if check {
        // Only the verdicts are wanted: what every item shares is written once.
        match input.0 {
            Ok(mut template) => {
                let checked = py.detach(|| message::check_alike(&mut template, input.1, &limits));
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
    signature = (key, template, items, argsrepr_maxsize=Some(1024), kwargsrepr_maxsize=Some(1024), repr_maxlevels=Some(3)),
    text_signature = "(key, template, items, argsrepr_maxsize=1024, kwargsrepr_maxsize=1024, repr_maxlevels=3)"
)]
pub fn lpush_alike_command<'py>(
    py: Python<'py>,
    key: &str,
    template: &Bound<'py, PyDict>,
    items: &Bound<'py, PyAny>,
    argsrepr_maxsize: Option<i64>,
    kwargsrepr_maxsize: Option<i64>,
    repr_maxlevels: Option<usize>,
) -> PyResult<Bound<'py, PyBytes>> {
    let limits = limits(argsrepr_maxsize, kwargsrepr_maxsize, repr_maxlevels);
    let input = alike_input(py, template, items)?;
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
    if let Some(Unsupported(reason)) = failed {
        return Err(PyValueError::new_err(format!(
            "message no longer encodable: {reason}"
        )));
    }
    Ok(out)
}

/// A batch's command buffer is kept for the next batch up to this size.
const MAX_KEPT_BUFFER: usize = 16 << 20;

thread_local! {
    static COMMAND_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A `Text` as a Python `str` (lone surrogates included).
fn text_to_py<'py>(py: Python<'py>, t: &Text) -> PyResult<Bound<'py, PyAny>> {
    match t.as_str() {
        Some(s) => Ok(PyString::new(py, s).into_any()),
        None => PyBytes::new(py, t.as_bytes()).call_method1("decode", ("utf-8", "surrogatepass")),
    }
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
    let (template, items) = alike_input(py, template, items)?;
    // (body, or its size when checking; argsrepr; kwargsrepr)
    type Parts = Result<(Result<Vec<u8>, usize>, Option<Text>, Option<Text>), Unsupported>;
    let mut parts: Vec<Parts> = Vec::with_capacity(items.len());
    match template {
        Ok(mut template) => py.detach(|| {
            message::for_each_alike_amqp_parts(&mut template, items, &limits, |r| {
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
            Err(Unsupported(reason)) => out.append(Bound::new(py, PyUnsupported { reason })?)?,
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
            let (argsrepr, kwargsrepr) = py.detach(|| message::task_reprs(&a, &k, &limits));
            Ok(PyTuple::new(
                py,
                [text_to_py(py, &argsrepr)?, text_to_py(py, &kwargsrepr)?],
            )?
            .into_any())
        }
        Err(Unsupported(reason)) => Ok(Bound::new(py, PyUnsupported { reason })?.into_any()),
    }
}

/// `LPUSH key values...` as RESP bytes.
#[pyfunction]
pub fn lpush_command<'py>(py: Python<'py>, key: &str, values: Vec<Vec<u8>>) -> Bound<'py, PyBytes> {
    let mut out = Vec::new();
    resp::write_lpush(&mut out, key.as_bytes(), &values);
    PyBytes::new(py, &out)
}

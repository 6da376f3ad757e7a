//! Message dicts and alike items as the core crate's `TaskMessage` and
//! `AlikeItem`, read with the GIL held. A caller bug (a missing or unknown
//! key, a wrong type for a field the caller resolves) raises; a value the
//! encoder cannot render makes that message `Unsupported`.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use turbogroup_core::encode::alike::{AlikeItem, Clock};
use turbogroup_core::encode::message::TaskMessage;
use turbogroup_core::encode::{Text, Unsupported, Value};

use crate::convert::{convert, or_empty, Ctx, Mode};
use crate::errors::{bad_message, read_failed, wrong_type};

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

/// The place of `key` in `KEYS` (a `match`: the compiler picks a key by
/// its length and bytes, where searching the array compared it with each
/// key in turn, ~1,000 string comparisons for a message).
fn slot_of(key: &str) -> Option<usize> {
    Some(match key {
        "task_id" => 0,
        "name" => 1,
        "args" => 2,
        "kwargs" => 3,
        "shadow" => 4,
        "eta" => 5,
        "expires" => 6,
        "group_id" => 7,
        "group_index" => 8,
        "retries" => 9,
        "time_limit" => 10,
        "soft_time_limit" => 11,
        "root_id" => 12,
        "parent_id" => 13,
        "argsrepr" => 14,
        "kwargsrepr" => 15,
        "origin" => 16,
        "ignore_result" => 17,
        "replaced_task_nesting" => 18,
        "stamped_headers" => 19,
        "stamps" => 20,
        "headers" => 21,
        "callbacks" => 22,
        "errbacks" => 23,
        "chain" => 24,
        "chord" => 25,
        "reply_to" => 26,
        "properties" => 27,
        "delivery_mode" => 28,
        "expiration" => 29,
        "priority" => 30,
        "exchange" => 31,
        "routing_key" => 32,
        _ => return None,
    })
}

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
                .and_then(slot_of);
            match slot {
                Some(i) => slots.0[i] = Some(v),
                None => return Err(bad_message(format!("message {index}: unknown key {k}"))),
            }
        }
        Ok(slots)
    }

    fn get(&self, key: &str) -> Option<&Bound<'py, PyAny>> {
        let i = slot_of(key).expect("a key from KEYS");
        self.0[i].as_ref()
    }
}

fn not_a_str_id() -> Unsupported {
    Unsupported("a task id that is not a str".to_owned())
}

/// Reads one message dict. `Err(PyErr)` is a caller bug (missing or
/// unknown key, wrong type for a resolved field); `Ok(Err(_))` is a message
/// whose values must go through Celery.
pub fn message<'py>(
    ctx: &Ctx<'py>,
    index: usize,
    d: &Bound<'py, PyDict>,
) -> PyResult<Result<TaskMessage, Unsupported>> {
    let slots = Slots::read(index, d)?;
    let required = |key: &str| -> PyResult<&Bound<'py, PyAny>> {
        slots
            .get(key)
            .ok_or_else(|| bad_message(format!("message {index}: '{key}' is required")))
    };
    // Celery sends a task id a user chose as it is (an int, a UUID): the
    // encoder writes ids as strings only, so such a message is Celery's.
    let Ok(id) = required("task_id")?.extract::<String>() else {
        return Ok(Err(not_a_str_id()));
    };
    let name = required("name")?
        .extract::<String>()
        .map_err(|_| wrong_type(format!("message {index}: 'name' must be a str")))?;
    for key in ["eta", "expires", "expiration"] {
        // Celery derives these from the clock; the caller resolves them.
        if let Some(v) = slots.get(key) {
            if !(v.is_none() || v.is_exact_instance_of::<PyString>()) {
                return Err(wrong_type(format!(
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
            Some(v) if v.is_truthy().map_err(read_failed)? => convert(ctx, v, Mode::Repr, 0),
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
        Some(v) if v.is_truthy().map_err(read_failed)? => convert(ctx, v, Mode::Json, 0)?,
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

/// One `(task_id, group_index, args, kwargs[, chain[, clock, ...]])` item
/// (a tuple, or a tuple subclass such as turbogroup's `AlikeChild`, whose
/// first six items these are), read as `build` reads those fields of a
/// message dict; a missing or None `chain` or `clock` keeps the template's.
fn alike_item<'py>(
    ctx: &Ctx<'py>,
    index: usize,
    item: &Bound<'py, PyAny>,
) -> PyResult<Result<AlikeItem, Unsupported>> {
    let t = item
        .cast::<PyTuple>()
        .ok()
        .filter(|t| t.len() >= 4)
        .ok_or_else(|| wrong_type(format!("item {index}: expected a tuple of 4 or more")))?;
    let Ok(id) = t.get_item(0)?.extract::<String>() else {
        return Ok(Err(not_a_str_id()));
    };
    let fields = || -> Result<AlikeItem, Unsupported> {
        Ok(AlikeItem {
            id: Text::from(id.as_str()),
            group_index: convert(ctx, &t.get_item(1).map_err(read_failed)?, Mode::Json, 0)?,
            args: or_empty(
                ctx,
                &t.get_item(2).map_err(read_failed)?,
                Value::Tuple(vec![]),
            )?,
            kwargs: or_empty(
                ctx,
                &t.get_item(3).map_err(read_failed)?,
                Value::Dict(vec![]),
            )?,
            // Read only when present: a failed get_item raises (and drops)
            // an IndexError, per message.
            chain: match (t.len() > 4).then(|| t.get_item(4)) {
                Some(Ok(chain)) if !chain.is_none() => Some(convert(ctx, &chain, Mode::Json, 0)?),
                _ => None,
            },
            clock: None,
            headers: None,
        })
    };
    let mut item = fields();
    if let Ok(item) = &mut item {
        if t.len() > 5 {
            item.clock = clock(index, &t.get_item(5)?)?;
        }
    }
    Ok(item)
}

/// An item's clock fields: None, or `(eta, expires, expiration)`, each a
/// str or None, as the caller computed them from its clock.
fn clock(index: usize, value: &Bound<'_, PyAny>) -> PyResult<Option<Clock>> {
    if value.is_none() {
        return Ok(None);
    }
    let bad = || {
        wrong_type(format!(
            "item {index}: the clock must be a tuple of 3 str or None"
        ))
    };
    let t = value
        .cast::<PyTuple>()
        .ok()
        .filter(|t| t.len() == 3)
        .ok_or_else(bad)?;
    let text = |i: usize| -> PyResult<Option<String>> {
        let v = t.get_item(i)?;
        if v.is_none() {
            Ok(None)
        } else if v.is_exact_instance_of::<PyString>() {
            Ok(Some(v.extract::<String>()?))
        } else {
            Err(bad())
        }
    };
    let value = |s: Option<String>| s.map_or(Value::None, |s| Value::str(&s));
    Ok(Some(Clock {
        eta: value(text(0)?),
        expires: value(text(1)?),
        expiration: text(2)?.map(Text::from),
    }))
}

/// The template and items, read from Python (with the GIL).
pub type AlikeInput = (
    Result<TaskMessage, Unsupported>,
    Vec<Result<AlikeItem, Unsupported>>,
);

/// The template and the items; `headers`, when given, holds each item's
/// own headers (a dict, or None for none), in the items' order.
pub fn alike_input<'py>(
    py: Python<'py>,
    template: &Bound<'py, PyDict>,
    items: &Bound<'py, PyAny>,
    headers: Option<&Bound<'py, PyAny>>,
) -> PyResult<AlikeInput> {
    let ctx = Ctx::new(py)?;
    let template = message(&ctx, 0, template)?;
    let mut converted = Vec::new();
    for (i, item) in items.try_iter()?.enumerate() {
        converted.push(alike_item(&ctx, i, &item?)?);
    }
    if let Some(headers) = headers {
        let mut each = headers.try_iter()?;
        for item in &mut converted {
            let own = each
                .next()
                .ok_or_else(|| wrong_type("fewer headers than items".into()))??;
            if let Ok(fields) = item {
                match own_headers(&ctx, &own) {
                    Ok(own) => fields.headers = own,
                    Err(e) => *item = Err(e),
                }
            }
        }
        if each.next().is_some() {
            return Err(wrong_type("more headers than items".into()));
        }
    }
    Ok((template, converted))
}

/// An item's own headers: None or a dict (an empty one adds nothing).
fn own_headers<'py>(
    ctx: &Ctx<'py>,
    own: &Bound<'py, PyAny>,
) -> Result<Option<Vec<(Value, Value)>>, Unsupported> {
    if own.is_none() {
        return Ok(None);
    }
    if !own.is_instance_of::<PyDict>() {
        return Err(Unsupported("an item's headers must be a dict".into()));
    }
    match convert(ctx, own, Mode::Json, 0)? {
        Value::Dict(pairs) if pairs.is_empty() => Ok(None),
        // `1`, `1.0` and `True` are one key to a dict update: left to kombu
        Value::Dict(pairs) if pairs.iter().any(|(k, _)| !matches!(k, Value::Str(_))) => Err(
            Unsupported("a header of its own whose key is not a str".into()),
        ),
        Value::Dict(pairs) => Ok(Some(pairs)),
        _ => Err(Unsupported("an item's headers must be a dict".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::{slot_of, KEYS};

    #[test]
    fn every_key_has_its_own_slot() {
        for (i, key) in KEYS.iter().enumerate() {
            assert_eq!(slot_of(key), Some(i), "{key}");
        }
        assert_eq!(slot_of("task"), None);
        assert_eq!(slot_of(""), None);
    }
}

//! Protocol-v2 task messages: what `celery.app.amqp.AMQP.as_task_v2`
//! builds and `send_task_message` amends, as fields, and the JSON body
//! every transport sends.
//!
//! Everything Celery computes from the clock, the environment or the app's
//! configuration (eta/expires ISO strings, `expiration`, `origin`,
//! `reply_to`, routing, the delivery mode, leftover `apply_async` options)
//! is resolved by the caller and passed in; this module only lays out bytes.
//! `envelope` wraps a message for kombu's Redis transport; `alike` builds
//! many messages from one template.

use super::json::write_value;
use super::saferepr::saferepr;
use super::text::Text;
use super::value::{Unsupported, Value};

/// One `as_task_v2` call plus what `send_task_message` adds to it. Field
/// names follow `as_task_v2`'s parameters; `Value`s are written as given.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMessage {
    pub id: Text,
    /// The task name (`headers["task"]`).
    pub name: Text,
    /// A list or tuple (Celery raises otherwise).
    pub args: Value,
    /// A dict (Celery raises otherwise).
    pub kwargs: Value,
    pub shadow: Value,
    /// Already `eta.isoformat()` (or None): the caller owns the clock.
    pub eta: Value,
    pub expires: Value,
    pub group_id: Value,
    pub group_index: Value,
    pub retries: Value,
    pub time_limit: Value,
    pub soft_time_limit: Value,
    /// A falsy root id (None or "") becomes the task id, as in Celery.
    pub root_id: Value,
    pub parent_id: Value,
    /// Explicit reprs; `None` means "compute with saferepr".
    pub argsrepr: Option<Value>,
    pub kwargsrepr: Option<Value>,
    /// `origin or anon_nodename()`, resolved by the caller.
    pub origin: Value,
    pub ignore_result: Value,
    pub replaced_task_nesting: Value,
    pub stamped_headers: Value,
    /// `{header: options[header] for header in stamped_headers or []}`.
    pub stamps: Value,
    /// `send_task_message(headers=...)`: merged with `dict.update`.
    pub extra_headers: Vec<(Value, Value)>,
    pub callbacks: Value,
    pub errbacks: Value,
    pub chain: Value,
    pub chord: Value,
    /// `reply_to or ''`, resolved by the caller.
    pub reply_to: Value,
    /// `send_task_message`'s leftover keyword arguments, which Celery puts
    /// into the message properties in their order (after `reply_to`).
    pub extra_properties: Vec<(Value, Value)>,
    /// The resolved AMQP delivery mode (kombu's `maybe_delivery_mode`).
    pub delivery_mode: Value,
    /// `str(int(expiration * 1000))`, when an expiration was set.
    pub expiration: Option<Text>,
    /// `priority or channel.default_priority` (kombu's `prepare_message`).
    pub priority: Value,
    pub exchange: Value,
    pub routing_key: Value,
}

impl TaskMessage {
    /// A message with `as_task_v2`'s defaults for everything optional.
    pub fn new(id: &str, name: &str, args: Value, kwargs: Value) -> Self {
        TaskMessage {
            id: Text::from(id),
            name: Text::from(name),
            args,
            kwargs,
            shadow: Value::None,
            eta: Value::None,
            expires: Value::None,
            group_id: Value::None,
            group_index: Value::None,
            retries: Value::Int(0),
            time_limit: Value::None,
            soft_time_limit: Value::None,
            root_id: Value::None,
            parent_id: Value::None,
            argsrepr: None,
            kwargsrepr: None,
            origin: Value::None,
            ignore_result: Value::Bool(false),
            replaced_task_nesting: Value::Int(0),
            stamped_headers: Value::None,
            stamps: Value::Dict(vec![]),
            extra_headers: vec![],
            callbacks: Value::None,
            errbacks: Value::None,
            chain: Value::None,
            chord: Value::None,
            reply_to: Value::str(""),
            extra_properties: vec![],
            delivery_mode: Value::Int(2),
            expiration: None,
            priority: Value::Int(0),
            exchange: Value::str(""),
            routing_key: Value::None,
        }
    }
}

/// `AMQP.argsrepr_maxsize`, `kwargsrepr_maxsize` and the app's
/// `task_repr_maxlevels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReprLimits {
    pub argsrepr_maxsize: Option<i64>,
    pub kwargsrepr_maxsize: Option<i64>,
    pub maxlevels: usize,
}

impl Default for ReprLimits {
    fn default() -> Self {
        ReprLimits {
            argsrepr_maxsize: Some(1024),
            kwargsrepr_maxsize: Some(1024),
            maxlevels: 3,
        }
    }
}

/// The JSON body `[args, kwargs, embed]` Celery hands to kombu.
pub fn write_body(out: &mut Vec<u8>, m: &TaskMessage) -> Result<(), Unsupported> {
    out.push(b'[');
    write_value(out, &m.args)?;
    out.extend_from_slice(b", ");
    write_value(out, &m.kwargs)?;
    out.extend_from_slice(b", {\"callbacks\": ");
    write_value(out, &m.callbacks)?;
    out.extend_from_slice(b", \"errbacks\": ");
    write_value(out, &m.errbacks)?;
    out.extend_from_slice(b", \"chain\": ");
    write_value(out, &m.chain)?;
    out.extend_from_slice(b", \"chord\": ");
    write_value(out, &m.chord)?;
    out.extend_from_slice(b"}]");
    Ok(())
}

/// `as_task_v2`'s `argsrepr` and `kwargsrepr` of these arguments.
pub fn task_reprs(args: &Value, kwargs: &Value, limits: &ReprLimits) -> (Text, Text) {
    (
        saferepr(args, limits.argsrepr_maxsize, limits.maxlevels),
        saferepr(kwargs, limits.kwargsrepr_maxsize, limits.maxlevels),
    )
}

pub(crate) fn check_arguments(m: &TaskMessage) -> Result<(), Unsupported> {
    match m.args {
        Value::List(_) | Value::Tuple(_) => {}
        _ => return Err(Unsupported("task args must be a list or tuple".into())),
    }
    if !matches!(m.kwargs, Value::Dict(_)) {
        return Err(Unsupported("task kwargs must be a dict".into()));
    }
    Ok(())
}

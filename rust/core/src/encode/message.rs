//! Protocol-v2 task messages in kombu's Redis envelope.
//!
//! What `celery.app.amqp.AMQP.as_task_v2` builds, `send_task_message`
//! amends, `kombu.Producer.publish` serializes and the virtual transport
//! (`Channel.prepare_message`, `_inplace_augment_message`) wraps, ending as
//! the `dumps(message)` that `kombu.transport.redis.Channel._put` LPUSHes:
//!
//! ```text
//! {"body": <base64 of the JSON body>, "content-encoding": "utf-8",
//!  "content-type": "application/json", "headers": {...}, "properties": {...}}
//! ```
//!
//! Everything Celery computes from the clock, the environment or the app's
//! configuration (eta/expires ISO strings, `expiration`, `origin`,
//! `reply_to`, routing, the delivery mode, leftover `apply_async` options)
//! is resolved by the caller and passed in; this module only lays out bytes.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::json::{write_key, write_rust_str, write_str, write_value};
use super::saferepr::saferepr;
use super::text::Text;
use super::value::{Unsupported, Value};
use crate::ids::{uuid4_batch, RandomnessError};

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

/// Extra properties this module cannot place faithfully: Celery's own two
/// (an update would keep their slot), the ones kombu sets afterwards (it
/// would overwrite them), and `publish` parameters that never become
/// properties but change the message (content type/encoding) or vanish.
/// A message carrying one is left to Celery.
const RESERVED_PROPERTIES: [&str; 12] = [
    "content_type",
    "content_encoding",
    "mandatory",
    "immediate",
    "correlation_id",
    "reply_to",
    "delivery_mode",
    "expiration",
    "delivery_info",
    "priority",
    "body_encoding",
    "delivery_tag",
];

fn str_key(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Str(t) => Some(t.as_bytes()),
        _ => None,
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

/// A header or property value as it is laid out, borrowed from the message.
enum Field<'a> {
    Value(&'a Value),
    Text(&'a Text),
    Str(&'a str),
    /// `timelimit`: `[time_limit, soft_time_limit]`.
    Pair(&'a Value, &'a Value),
    /// `delivery_info`: `{"exchange": ..., "routing_key": ...}`.
    DeliveryInfo(&'a Value, &'a Value),
}

fn write_field(out: &mut Vec<u8>, f: &Field<'_>) -> Result<(), Unsupported> {
    match f {
        Field::Value(v) => write_value(out, v)?,
        Field::Text(t) => write_str(out, t),
        Field::Str(s) => write_rust_str(out, s),
        Field::Pair(a, b) => {
            out.push(b'[');
            write_value(out, a)?;
            out.extend_from_slice(b", ");
            write_value(out, b)?;
            out.push(b']');
        }
        Field::DeliveryInfo(exchange, routing_key) => {
            out.extend_from_slice(b"{\"exchange\": ");
            write_value(out, exchange)?;
            out.extend_from_slice(b", \"routing_key\": ");
            write_value(out, routing_key)?;
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_named(
    out: &mut Vec<u8>,
    first: bool,
    name: &str,
    field: &Field<'_>,
) -> Result<(), Unsupported> {
    if !first {
        out.extend_from_slice(b", ");
    }
    write_rust_str(out, name);
    out.extend_from_slice(b": ");
    write_field(out, field)
}

fn write_extra(out: &mut Vec<u8>, (k, v): &(Value, Value)) -> Result<(), Unsupported> {
    out.extend_from_slice(b", ");
    write_key(out, k)?;
    out.extend_from_slice(b": ");
    write_value(out, v)
}

/// Celery's headers, in its insertion order, after
/// `headers2.update(headers)`: an extra header with a standard name
/// replaces the value in place, others are appended.
fn write_headers(
    out: &mut Vec<u8>,
    m: &TaskMessage,
    limits: &ReprLimits,
) -> Result<(), Unsupported> {
    let argsrepr_text;
    let argsrepr = match &m.argsrepr {
        Some(v) => Field::Value(v),
        None => {
            argsrepr_text = saferepr(&m.args, limits.argsrepr_maxsize, limits.maxlevels);
            Field::Text(&argsrepr_text)
        }
    };
    let kwargsrepr_text;
    let kwargsrepr = match &m.kwargsrepr {
        Some(v) => Field::Value(v),
        None => {
            kwargsrepr_text = saferepr(&m.kwargs, limits.kwargsrepr_maxsize, limits.maxlevels);
            Field::Text(&kwargsrepr_text)
        }
    };
    let root_id = if m.root_id.is_falsy_id() {
        Field::Text(&m.id)
    } else {
        Field::Value(&m.root_id)
    };
    let mut fields = [
        ("lang", Field::Str("py")),
        ("task", Field::Text(&m.name)),
        ("id", Field::Text(&m.id)),
        ("shadow", Field::Value(&m.shadow)),
        ("eta", Field::Value(&m.eta)),
        ("expires", Field::Value(&m.expires)),
        ("group", Field::Value(&m.group_id)),
        ("group_index", Field::Value(&m.group_index)),
        ("retries", Field::Value(&m.retries)),
        ("timelimit", Field::Pair(&m.time_limit, &m.soft_time_limit)),
        ("root_id", root_id),
        ("parent_id", Field::Value(&m.parent_id)),
        ("argsrepr", argsrepr),
        ("kwargsrepr", kwargsrepr),
        ("origin", Field::Value(&m.origin)),
        ("ignore_result", Field::Value(&m.ignore_result)),
        (
            "replaced_task_nesting",
            Field::Value(&m.replaced_task_nesting),
        ),
        ("stamped_headers", Field::Value(&m.stamped_headers)),
        ("stamps", Field::Value(&m.stamps)),
    ];
    let mut appended = Vec::new();
    for pair in &m.extra_headers {
        // Python dict keys: equal str keys are the same entry. (Keys of
        // other types never equal a str key, so they are simply appended.)
        let slot = str_key(&pair.0)
            .and_then(|kb| fields.iter().position(|(name, _)| name.as_bytes() == kb));
        match slot {
            Some(i) => fields[i].1 = Field::Value(&pair.1),
            None => appended.push(pair),
        }
    }
    out.push(b'{');
    for (i, (name, field)) in fields.iter().enumerate() {
        write_named(out, i == 0, name, field)?;
    }
    for pair in appended {
        write_extra(out, pair)?;
    }
    out.push(b'}');
    Ok(())
}

/// The properties dict as kombu's Redis transport stores it: Celery's
/// `correlation_id` and `reply_to`, the leftover options, then what
/// `Producer.publish`, `prepare_message` and `_inplace_augment_message` add.
fn write_properties(
    out: &mut Vec<u8>,
    m: &TaskMessage,
    delivery_tag: &str,
) -> Result<(), Unsupported> {
    let mut seen: Vec<&[u8]> = Vec::new();
    for (k, _) in &m.extra_properties {
        if let Some(kb) = str_key(k) {
            if let Some(name) = RESERVED_PROPERTIES.iter().find(|r| r.as_bytes() == kb) {
                return Err(Unsupported(format!(
                    "option {name:?} set as a message property"
                )));
            }
            if seen.contains(&kb) {
                return Err(Unsupported("duplicate message property".into()));
            }
            seen.push(kb);
        }
    }
    out.push(b'{');
    write_named(out, true, "correlation_id", &Field::Text(&m.id))?;
    write_named(out, false, "reply_to", &Field::Value(&m.reply_to))?;
    for pair in &m.extra_properties {
        write_extra(out, pair)?;
    }
    write_named(out, false, "delivery_mode", &Field::Value(&m.delivery_mode))?;
    if let Some(exp) = &m.expiration {
        write_named(out, false, "expiration", &Field::Text(exp))?;
    }
    let info = Field::DeliveryInfo(&m.exchange, &m.routing_key);
    write_named(out, false, "delivery_info", &info)?;
    write_named(out, false, "priority", &Field::Value(&m.priority))?;
    write_named(out, false, "body_encoding", &Field::Str("base64"))?;
    write_named(out, false, "delivery_tag", &Field::Str(delivery_tag))?;
    out.push(b'}');
    Ok(())
}

/// Append the envelope kombu's Redis transport LPUSHes for `m`.
/// `delivery_tag` is the fresh uuid4 kombu's virtual channel assigns.
/// On error `out` may hold a partial message; callers discard it.
pub fn write_envelope(
    out: &mut Vec<u8>,
    m: &TaskMessage,
    limits: &ReprLimits,
    delivery_tag: &str,
) -> Result<(), Unsupported> {
    check_arguments(m)?;
    let mut body = Vec::with_capacity(256);
    write_body(&mut body, m)?;
    out.extend_from_slice(b"{\"body\": \"");
    // The body JSON is ASCII (ensure_ascii), so kombu's utf-8 encode and
    // base64 (`Base64.encode`) see exactly these bytes.
    let start = out.len();
    out.resize(start + body.len().div_ceil(3) * 4, 0);
    let written = BASE64
        .encode_slice(&body, &mut out[start..])
        .expect("buffer sized for the base64 output");
    out.truncate(start + written);
    out.extend_from_slice(
        b"\", \"content-encoding\": \"utf-8\", \"content-type\": \"application/json\", \"headers\": ",
    );
    write_headers(out, m, limits)?;
    out.extend_from_slice(b", \"properties\": ");
    write_properties(out, m, delivery_tag)?;
    out.push(b'}');
    Ok(())
}

/// One envelope per message, or the reason it must be left to Celery.
/// A batch may arrive with some messages already found unsupported (while
/// converting them from Python); those keep their reason. Delivery tags
/// come from one read of OS randomness for the whole batch.
pub fn build_envelopes(
    messages: &[Result<TaskMessage, Unsupported>],
    limits: &ReprLimits,
) -> Result<Vec<Result<Vec<u8>, Unsupported>>, RandomnessError> {
    let tags = uuid4_batch(messages.len())?;
    Ok(messages
        .iter()
        .zip(&tags)
        .map(|(m, tag)| {
            let m = m.as_ref().map_err(Clone::clone)?;
            let mut out = Vec::with_capacity(1024);
            write_envelope(&mut out, m, limits, tag).map(|()| out)
        })
        .collect())
}

/// What a message that is alike a template differs in: Celery resolves
/// every other field the same way for children of one task with the same
/// options (`args` and `kwargs` as `TaskMessage`'s).
#[derive(Debug, Clone, PartialEq)]
pub struct AlikeItem {
    pub id: Text,
    pub group_index: Value,
    pub args: Value,
    pub kwargs: Value,
}

/// `build_envelopes` for messages equal to `template` but for each item's
/// fields: they are swapped into the template in turn, so the template is
/// read, never copied, per message. An item already found unsupported
/// keeps its reason.
pub fn build_alike_envelopes(
    template: &mut TaskMessage,
    items: Vec<Result<AlikeItem, Unsupported>>,
    limits: &ReprLimits,
) -> Result<Vec<Result<Vec<u8>, Unsupported>>, RandomnessError> {
    let mut built = Vec::with_capacity(items.len());
    for_each_alike_envelope(template, items, limits, |r| {
        built.push(r.map(<[u8]>::to_vec))
    })?;
    Ok(built)
}

/// The alike envelopes in order, each handed to `sink` from one reused
/// buffer (no allocation per message when the sink keeps no copy).
pub fn for_each_alike_envelope(
    template: &mut TaskMessage,
    items: Vec<Result<AlikeItem, Unsupported>>,
    limits: &ReprLimits,
    mut sink: impl FnMut(Result<&[u8], Unsupported>),
) -> Result<(), RandomnessError> {
    let tags = uuid4_batch(items.len())?;
    let mut out = Vec::with_capacity(2048);
    for (item, tag) in items.into_iter().zip(&tags) {
        let mut item = match item {
            Ok(item) => item,
            Err(e) => {
                sink(Err(e));
                continue;
            }
        };
        out.clear();
        swap_in(template, &mut item);
        let written = write_envelope(&mut out, template, limits, tag);
        swap_in(template, &mut item);
        sink(written.map(|()| out.as_slice()));
    }
    Ok(())
}

/// Whether each alike item's envelope would be written, as
/// `for_each_alike_envelope` would find, without writing what the items
/// share: the first item that writes is written whole (the template's
/// headers and properties with it), the others only where they differ
/// (their arguments, in the body, and their group index; their reprs and
/// ids always write).
pub fn check_alike(
    template: &mut TaskMessage,
    items: Vec<Result<AlikeItem, Unsupported>>,
    limits: &ReprLimits,
) -> Vec<Result<(), Unsupported>> {
    let mut template_written = false;
    let mut out = Vec::with_capacity(items.len());
    let mut buf = Vec::with_capacity(2048);
    for item in items {
        let mut item = match item {
            Ok(item) => item,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        buf.clear();
        swap_in(template, &mut item);
        let written = if template_written {
            check_arguments(template)
                .and_then(|()| write_body(&mut buf, template))
                .and_then(|()| write_value(&mut buf, &template.group_index))
        } else {
            let whole = write_envelope(&mut buf, template, limits, NO_TAG);
            template_written = whole.is_ok();
            whole
        };
        swap_in(template, &mut item);
        out.push(written);
    }
    out
}

/// A delivery tag's place when an envelope is only checked.
const NO_TAG: &str = "00000000-0000-0000-0000-000000000000";

/// What an AMQP message of Celery's takes from an alike item besides its
/// ids: the body, and the `argsrepr`/`kwargsrepr` headers when Celery
/// computes them (`None` when the template sets them explicitly).
pub struct AmqpParts<'a> {
    pub body: &'a [u8],
    pub argsrepr: Option<Text>,
    pub kwargsrepr: Option<Text>,
}

/// The AMQP parts of each alike item in order, handed to `sink` (the body
/// from one reused buffer).
pub fn for_each_alike_amqp_parts(
    template: &mut TaskMessage,
    items: Vec<Result<AlikeItem, Unsupported>>,
    limits: &ReprLimits,
    mut sink: impl FnMut(Result<AmqpParts<'_>, Unsupported>),
) {
    let mut body = Vec::with_capacity(512);
    for item in items {
        let mut item = match item {
            Ok(item) => item,
            Err(e) => {
                sink(Err(e));
                continue;
            }
        };
        body.clear();
        swap_in(template, &mut item);
        let written = amqp_parts(&mut body, template, limits);
        swap_in(template, &mut item);
        sink(written.map(|(argsrepr, kwargsrepr)| AmqpParts {
            body: &body,
            argsrepr,
            kwargsrepr,
        }));
    }
}

type Reprs = (Option<Text>, Option<Text>);

fn amqp_parts(
    body: &mut Vec<u8>,
    m: &TaskMessage,
    limits: &ReprLimits,
) -> Result<Reprs, Unsupported> {
    check_arguments(m)?;
    write_body(body, m)?;
    let argsrepr = m
        .argsrepr
        .is_none()
        .then(|| saferepr(&m.args, limits.argsrepr_maxsize, limits.maxlevels));
    let kwargsrepr = m
        .kwargsrepr
        .is_none()
        .then(|| saferepr(&m.kwargs, limits.kwargsrepr_maxsize, limits.maxlevels));
    Ok((argsrepr, kwargsrepr))
}

/// `as_task_v2`'s `argsrepr` and `kwargsrepr` of these arguments.
pub fn task_reprs(args: &Value, kwargs: &Value, limits: &ReprLimits) -> (Text, Text) {
    (
        saferepr(args, limits.argsrepr_maxsize, limits.maxlevels),
        saferepr(kwargs, limits.kwargsrepr_maxsize, limits.maxlevels),
    )
}

fn check_arguments(m: &TaskMessage) -> Result<(), Unsupported> {
    match m.args {
        Value::List(_) | Value::Tuple(_) => {}
        _ => return Err(Unsupported("task args must be a list or tuple".into())),
    }
    if !matches!(m.kwargs, Value::Dict(_)) {
        return Err(Unsupported("task kwargs must be a dict".into()));
    }
    Ok(())
}

fn swap_in(m: &mut TaskMessage, item: &mut AlikeItem) {
    std::mem::swap(&mut m.id, &mut item.id);
    std::mem::swap(&mut m.group_index, &mut item.group_index);
    std::mem::swap(&mut m.args, &mut item.args);
    std::mem::swap(&mut m.kwargs, &mut item.kwargs);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::value::TagKind;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    fn envelope(m: &TaskMessage, tag: &str) -> String {
        let mut out = Vec::new();
        write_envelope(&mut out, m, &ReprLimits::default(), tag).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The message Celery 5.7.0 LPUSHed (read back from Redis) for
    /// `add.apply_async((1, 'a\tb', b'\xff', 2.5, None, True, (1,), {1: 2}),
    /// {'k': datetime(2020, 1, 1)}, priority=5, foo='bar', headers={'h1': 1},
    /// link=add.s(1), expires=datetime(2030, 1, 1), stamped_headers=['s1'],
    /// s1='v')`.
    fn captured_message() -> (TaskMessage, &'static str, &'static str) {
        let id = "dacd3452-bcce-4a82-8474-375b5a3b4f63";
        let args = Value::Tuple(vec![
            Value::Int(1),
            s("a\tb"),
            Value::Bytes(vec![0xff]),
            Value::Float(2.5),
            Value::None,
            Value::Bool(true),
            Value::Tuple(vec![Value::Int(1)]),
            Value::Dict(vec![(Value::Int(1), Value::Int(2))]),
        ]);
        let kwargs = Value::Dict(vec![(
            s("k"),
            Value::Tagged {
                kind: TagKind::DateTime,
                encoded: Text::from("2020-01-01T00:00:00"),
                repr: Text::from("datetime.datetime(2020, 1, 1, 0, 0)"),
            },
        )]);
        let mut m = TaskMessage::new(id, "x.add", args, kwargs);
        m.expires = s("2030-01-01T00:00:00");
        m.origin = s("gen10151@vm");
        m.stamped_headers = Value::List(vec![s("s1")]);
        m.stamps = Value::Dict(vec![(s("s1"), s("v"))]);
        m.extra_headers = vec![(s("h1"), Value::Int(1))];
        m.callbacks = Value::List(vec![Value::Dict(vec![
            (s("task"), s("x.add")),
            (s("args"), Value::List(vec![Value::Int(1)])),
            (s("kwargs"), Value::Dict(vec![])),
            (s("options"), Value::Dict(vec![])),
            (s("subtask_type"), Value::None),
            (s("immutable"), Value::Bool(false)),
        ])]);
        m.reply_to = s("8ca5c2bd-f5ee-34cd-80e9-efcbccc36ace");
        m.extra_properties = vec![(s("foo"), s("bar"))];
        m.expiration = Some(Text::from("97834022894"));
        m.priority = Value::Int(5);
        m.routing_key = s("wtenc-q1");
        let tag = "6f5a40da-e4ac-4c44-8d7f-2d714c8f3a44";
        let wire = concat!(
            r#"{"body": "W1sxLCAiYVx0YiIsIHsiX190eXBlX18iOiAiYmFzZTY0IiwgIl9fdmFsdWVfXyI6ICIvdz09In0sIDIuNSwgbnVsbCwgdHJ1ZSwgWzFdLCB7IjEiOiAyfV0sIHsiayI6IHsiX190eXBlX18iOiAiZGF0ZXRpbWUiLCAiX192YWx1ZV9fIjogIjIwMjAtMDEtMDFUMDA6MDA6MDAifX0sIHsiY2FsbGJhY2tzIjogW3sidGFzayI6ICJ4LmFkZCIsICJhcmdzIjogWzFdLCAia3dhcmdzIjoge30sICJvcHRpb25zIjoge30sICJzdWJ0YXNrX3R5cGUiOiBudWxsLCAiaW1tdXRhYmxlIjogZmFsc2V9XSwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "#,
            r#""content-encoding": "utf-8", "content-type": "application/json", "#,
            r#""headers": {"lang": "py", "task": "x.add", "id": "dacd3452-bcce-4a82-8474-375b5a3b4f63", "shadow": null, "eta": null, "expires": "2030-01-01T00:00:00", "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "dacd3452-bcce-4a82-8474-375b5a3b4f63", "parent_id": null, "argsrepr": "(1, 'a\tb', b'ff', 2.5, None, True, (1,), {1: 2})", "kwargsrepr": "{'k': datetime.datetime(2020, 1, 1, 0, 0)}", "origin": "gen10151@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": ["s1"], "stamps": {"s1": "v"}, "h1": 1}, "#,
            r#""properties": {"correlation_id": "dacd3452-bcce-4a82-8474-375b5a3b4f63", "reply_to": "8ca5c2bd-f5ee-34cd-80e9-efcbccc36ace", "foo": "bar", "delivery_mode": 2, "expiration": "97834022894", "delivery_info": {"exchange": "", "routing_key": "wtenc-q1"}, "priority": 5, "body_encoding": "base64", "delivery_tag": "6f5a40da-e4ac-4c44-8d7f-2d714c8f3a44"}}"#,
        );
        (m, tag, wire)
    }

    #[test]
    fn envelope_is_byte_identical_to_a_captured_celery_message() {
        let (m, tag, wire) = captured_message();
        assert_eq!(envelope(&m, tag), wire);
    }

    #[test]
    fn extra_headers_update_in_place_like_a_dict() {
        let (mut m, tag, _) = captured_message();
        m.extra_headers = vec![(s("retries"), Value::Int(7)), (s("zz"), Value::None)];
        let e = envelope(&m, tag);
        assert!(
            e.contains(r#""group_index": null, "retries": 7, "timelimit""#),
            "{e}"
        );
        assert!(e.contains(r#""stamps": {"s1": "v"}, "zz": null}"#), "{e}");
    }

    #[test]
    fn alike_messages_equal_their_full_builds() {
        let mut template =
            TaskMessage::new("t0", "x.add", Value::Tuple(vec![]), Value::Dict(vec![]));
        template.group_id = s("g");
        let items: Vec<_> = (0..3)
            .map(|i| AlikeItem {
                id: Text::from(format!("id-{i}").as_str()),
                group_index: Value::Int(i),
                args: Value::Tuple(vec![Value::Int(i), Value::Int(i)]),
                kwargs: Value::Dict(vec![(s("k"), Value::Int(i))]),
            })
            .collect();
        let limits = ReprLimits::default();
        let alike = build_alike_envelopes(
            &mut template,
            items
                .iter()
                .cloned()
                .map(Ok)
                .chain([Err(Unsupported("bad".into()))])
                .collect(),
            &limits,
        )
        .unwrap();
        assert_eq!(alike.len(), 4);
        assert_eq!(alike[3], Err(Unsupported("bad".into())));
        for (item, got) in items.iter().zip(&alike) {
            let mut full = template.clone();
            full.id = item.id.clone();
            full.group_index = item.group_index.clone();
            full.args = item.args.clone();
            full.kwargs = item.kwargs.clone();
            let got = String::from_utf8(got.clone().unwrap()).unwrap();
            let tag = &got[got.rfind("\"delivery_tag\": \"").unwrap() + 17..got.len() - 3];
            assert_eq!(got, envelope(&full, tag));
        }
        // the template is left as it was
        assert_eq!(template.id, Text::from("t0"));
        assert_eq!(template.args, Value::Tuple(vec![]));
    }

    #[test]
    fn checking_alike_items_finds_what_building_them_finds() {
        let mut template =
            TaskMessage::new("t0", "x.add", Value::Tuple(vec![]), Value::Dict(vec![]));
        let bad_key = Value::Dict(vec![(Value::Tuple(vec![]), Value::Int(1))]);
        let item = |i: i64, kwargs: Value, index: Value| {
            Ok(AlikeItem {
                id: Text::from(format!("id-{i}").as_str()),
                group_index: index,
                args: Value::Tuple(vec![Value::Int(i)]),
                kwargs,
            })
        };
        let items = || {
            vec![
                item(0, bad_key.clone(), Value::Int(0)),
                item(1, Value::Dict(vec![]), Value::Int(1)),
                item(2, bad_key.clone(), Value::Int(2)),
                item(
                    3,
                    Value::Dict(vec![]),
                    Value::Dict(vec![(Value::List(vec![]), s("x"))]),
                ),
                Err(Unsupported("converted".into())),
                item(5, Value::List(vec![]), Value::Int(5)),
            ]
        };
        let limits = ReprLimits::default();
        let built = build_alike_envelopes(&mut template, items(), &limits).unwrap();
        let checked = check_alike(&mut template, items(), &limits);
        let verdicts =
            |v: Vec<Result<(), Unsupported>>| v.into_iter().map(|r| r.is_ok()).collect::<Vec<_>>();
        assert_eq!(
            verdicts(checked.clone()),
            verdicts(built.into_iter().map(|r| r.map(|_| ())).collect())
        );
        assert_eq!(verdicts(checked), [false, true, false, false, false, false]);
    }

    #[test]
    fn falsy_root_id_defaults_to_the_task_id() {
        let (mut m, tag, _) = captured_message();
        m.root_id = s("");
        assert!(envelope(&m, tag).contains(r#""root_id": "dacd3452-bcce-4a82-8474-375b5a3b4f63""#));
        m.root_id = s("r");
        assert!(envelope(&m, tag).contains(r#""root_id": "r""#));
    }

    #[test]
    fn explicit_reprs_are_used_verbatim() {
        let (mut m, tag, _) = captured_message();
        m.argsrepr = Some(s("A"));
        m.kwargsrepr = Some(Value::None);
        let e = envelope(&m, tag);
        assert!(
            e.contains(r#""argsrepr": "A", "kwargsrepr": null, "#),
            "{e}"
        );
    }

    #[test]
    fn messages_celery_would_reject_or_kombu_would_rewrite_are_unsupported() {
        let (m, tag, _) = captured_message();
        let limits = ReprLimits::default();
        let mut bad = m.clone();
        bad.args = Value::Dict(vec![]);
        assert!(write_envelope(&mut Vec::new(), &bad, &limits, tag).is_err());
        let mut bad = m.clone();
        bad.kwargs = Value::List(vec![]);
        assert!(write_envelope(&mut Vec::new(), &bad, &limits, tag).is_err());
        for reserved in ["delivery_info", "priority", "content_type", "reply_to"] {
            let mut bad = m.clone();
            bad.extra_properties.push((s(reserved), Value::None));
            assert!(
                write_envelope(&mut Vec::new(), &bad, &limits, tag).is_err(),
                "{reserved}"
            );
        }
        let mut bad = m.clone();
        bad.kwargs = Value::Dict(vec![(Value::Bytes(vec![]), Value::None)]);
        assert!(write_envelope(&mut Vec::new(), &bad, &limits, tag).is_err());
    }

    #[test]
    fn batch_gives_each_message_its_own_delivery_tag() {
        let (m, _, _) = captured_message();
        let mut bad = m.clone();
        bad.args = Value::None;
        let early = Unsupported("found while converting".into());
        let batch = [Ok(m.clone()), Ok(bad), Ok(m), Err(early.clone())];
        let out = build_envelopes(&batch, &ReprLimits::default()).unwrap();
        assert!(out[1].is_err());
        assert_eq!(out[3], Err(early));
        let a = String::from_utf8(out[0].clone().unwrap()).unwrap();
        let c = String::from_utf8(out[2].clone().unwrap()).unwrap();
        assert_ne!(a, c);
        let tag_of = |e: &str| e[e.find(r#""delivery_tag": ""#).unwrap()..].to_owned();
        assert_eq!(
            tag_of(&a).len(),
            r#""delivery_tag": "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"}}"#.len()
        );
        assert_eq!(a.replace(&tag_of(&a), ""), c.replace(&tag_of(&c), ""));
    }
}

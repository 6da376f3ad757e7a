//! A task message in kombu's Redis envelope.
//!
//! What `kombu.Producer.publish` serializes and the virtual transport
//! (`Channel.prepare_message`, `_inplace_augment_message`) wraps, ending as
//! the `dumps(message)` that `kombu.transport.redis.Channel._put` LPUSHes:
//!
//! ```text
//! {"body": <base64 of the JSON body>, "content-encoding": "utf-8",
//!  "content-type": "application/json", "headers": {...}, "properties": {...}}
//! ```

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::json::{write_key, write_rust_str, write_str, write_value};
use super::message::{check_arguments, write_body, ReprLimits, TaskMessage};
use super::saferepr::saferepr;
use super::text::Text;
use super::value::{Unsupported, Value};
use crate::ids::{uuid4_batch, RandomnessError};

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
    // The names are this module's constants, plain ASCII: written as they
    // are, without the escaping scan.
    debug_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\": ");
    write_field(out, field)
}

/// The headers Celery's `as_task_v2` writes, in its order.
pub const STANDARD_HEADERS: [&str; 19] = [
    "lang",
    "task",
    "id",
    "shadow",
    "eta",
    "expires",
    "group",
    "group_index",
    "retries",
    "timelimit",
    "root_id",
    "parent_id",
    "argsrepr",
    "kwargsrepr",
    "origin",
    "ignore_result",
    "replaced_task_nesting",
    "stamped_headers",
    "stamps",
];

/// Whether `added`, put after `existing` extra headers, is only appended
/// to the headers Celery writes: each key a str that is neither a
/// standard header's name nor an existing extra header's (a dict update
/// replaces those in place), nor repeated.
pub fn only_appends(existing: &[(Value, Value)], added: &[(Value, Value)]) -> bool {
    added.iter().enumerate().all(|(i, (key, _))| {
        str_key(key).is_some_and(|kb| {
            !STANDARD_HEADERS.iter().any(|name| name.as_bytes() == kb)
                && !existing.iter().any(|(k, _)| str_key(k) == Some(kb))
                && !added[..i].iter().any(|(k, _)| str_key(k) == Some(kb))
        })
    })
}

/// One appended header, as `write_headers` writes it after the others.
pub fn write_extra(out: &mut Vec<u8>, (k, v): &(Value, Value)) -> Result<(), Unsupported> {
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
    debug_assert!(fields.iter().map(|(name, _)| *name).eq(STANDARD_HEADERS));
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

/// How every envelope starts: its body, base64-encoded, up to (not
/// including) the closing quote.
pub const BODY_PREFIX: &[u8] = b"{\"body\": \"";

/// `BODY_PREFIX` and `m`'s body in base64, the JSON written into `scratch`
/// first (cleared here, so a caller may reuse it).
pub fn write_encoded_body(
    out: &mut Vec<u8>,
    m: &TaskMessage,
    scratch: &mut Vec<u8>,
) -> Result<(), Unsupported> {
    check_arguments(m)?;
    scratch.clear();
    write_body(scratch, m)?;
    out.extend_from_slice(BODY_PREFIX);
    // The body JSON is ASCII (ensure_ascii), so kombu's utf-8 encode and
    // base64 (`Base64.encode`) see exactly these bytes.
    let start = out.len();
    out.resize(start + scratch.len().div_ceil(3) * 4, 0);
    let written = BASE64
        .encode_slice(scratch, &mut out[start..])
        .expect("buffer sized for the base64 output");
    out.truncate(start + written);
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
    write_encoded_body(out, m, &mut Vec::with_capacity(256))?;
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

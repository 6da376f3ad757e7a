//! What a stored result payload may hold that a plain JSON parse does not
//! give the way kombu's decoder gives it.
//!
//! kombu's JSON decoder turns an object whose keys are exactly `__type__`
//! and `__value__` into a datetime, Decimal, UUID or bytes. A key can also
//! spell its characters as `\u` escapes. A payload with neither byte
//! sequence anywhere cannot hold such an object, so its plain parse is
//! final; one with either must have its parsed value searched.

use jiter::{Jiter, JiterResult, Peek};
use memchr::memmem::Finder;
use std::sync::LazyLock;

static TAG: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"__type__"));
static ESCAPE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\\u"));

/// Whether `payload` holds kombu's type tag or a `\u` escape anywhere.
pub fn may_hold_tagged_object(payload: &[u8]) -> bool {
    TAG.find(payload).is_some() || ESCAPE.find(payload).is_some()
}

/// Whether `payload` is a stored meta that `json.loads` (and kombu's
/// decoder) reads as a dict whose status is `"SUCCESS"` and whose children
/// are null, an empty list or absent (the last of each key, as `json.loads`
/// keeps the last), the whole payload valid JSON as the collector's parser
/// reads it (NaN and Infinity allowed). Such a result is ready and has
/// nothing to rebuild, so its status is known without building the meta.
/// Anything else (a type tag or a `\u` escape anywhere, another status,
/// children, invalid JSON, a parse the parser refuses) is `false`, and the
/// payload is decoded whole.
pub fn plain_success(payload: &[u8]) -> bool {
    if may_hold_tagged_object(payload) {
        return false;
    }
    let mut jiter = Jiter::new(payload).with_allow_inf_nan();
    scan_meta(&mut jiter).unwrap_or(false)
}

/// The key of a meta the scan looks at.
enum MetaKey {
    Status,
    Children,
    Other,
}

fn meta_key(key: Option<&[u8]>) -> Option<MetaKey> {
    key.map(|k| match k {
        b"status" => MetaKey::Status,
        b"children" => MetaKey::Children,
        _ => MetaKey::Other,
    })
}

fn scan_meta(jiter: &mut Jiter<'_>) -> JiterResult<bool> {
    let mut success = false;
    let mut childless = true;
    // Keys are compared as written: without `\u` escapes, no other escape
    // can make a key read as "status" or "children".
    let mut key = meta_key(jiter.next_object_bytes()?);
    while let Some(which) = key {
        match which {
            MetaKey::Status => {
                let peek = jiter.peek()?;
                success = peek == Peek::String && jiter.known_bytes()? == b"SUCCESS";
                if peek != Peek::String {
                    jiter.known_skip(peek)?;
                }
            }
            MetaKey::Children => childless = empty_children(jiter)?,
            MetaKey::Other => jiter.next_skip()?,
        }
        key = meta_key(jiter.next_key_bytes()?);
    }
    jiter.finish()?;
    Ok(success && childless)
}

/// Whether the next value is null or an empty list (read whole either way).
fn empty_children(jiter: &mut Jiter<'_>) -> JiterResult<bool> {
    let peek = jiter.peek()?;
    if peek == Peek::Null {
        jiter.known_null()?;
        return Ok(true);
    }
    if peek != Peek::Array {
        jiter.known_skip(peek)?;
        return Ok(false);
    }
    let Some(first) = jiter.known_array()? else {
        return Ok(true);
    };
    jiter.known_skip(first)?;
    while let Some(next) = jiter.array_step()? {
        jiter.known_skip(next)?;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::{may_hold_tagged_object, plain_success};

    #[test]
    fn a_plain_success_is_known_without_decoding() {
        let meta = br#"{"status": "SUCCESS", "result": [1, {"a": NaN}], "traceback": null, "children": null, "date_done": "2026-12-04T19:00:00+00:00", "task_id": "x"}"#;
        assert!(plain_success(meta));
        assert!(plain_success(br#"{"status": "SUCCESS", "children": []}"#));
        assert!(plain_success(br#"{"status": "SUCCESS"}"#));
        // the last of a repeated key counts, as json.loads keeps it
        assert!(plain_success(
            br#"{"status": "FAILURE", "status": "SUCCESS"}"#
        ));
        assert!(!plain_success(
            br#"{"status": "SUCCESS", "status": "FAILURE"}"#
        ));
        assert!(!plain_success(
            br#"{"status": "SUCCESS", "children": [["a", null]]}"#
        ));
        assert!(!plain_success(br#"{"status": "SUCCESS", "children": 0}"#));
        assert!(!plain_success(br#"{"status": "PENDING", "result": null}"#));
        assert!(!plain_success(br#"{"status": ["SUCCESS"]}"#));
        assert!(!plain_success(br#"{"result": 1}"#));
        assert!(!plain_success(br#"["status", "SUCCESS"]"#));
        assert!(!plain_success(br#"{"status": "SUCCESS"} trailing"#));
        assert!(!plain_success(br#"{"status": "SUCCESS", "result": }"#));
        assert!(!plain_success(br#"{"\u0073tatus": "SUCCESS"}"#));
        assert!(!plain_success(
            br#"{"status": "SUCCESS", "result": {"__type__": "bytes", "__value__": ""}}"#
        ));
        assert!(!plain_success(b""));
    }

    #[test]
    fn finds_the_tag_and_escapes_only() {
        assert!(!may_hold_tagged_object(
            br#"{"status": "SUCCESS", "result": 1}"#
        ));
        assert!(may_hold_tagged_object(
            br#"{"result": {"__type__": "datetime"}}"#
        ));
        assert!(may_hold_tagged_object(
            br#"{"result": {"\u005f_type__": 1}}"#
        ));
        assert!(!may_hold_tagged_object(br#"{"result": "__type_"}"#));
        assert!(!may_hold_tagged_object(b""));
    }
}

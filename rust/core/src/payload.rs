//! What a stored result payload may hold that a plain JSON parse does not
//! give the way kombu's decoder gives it.
//!
//! kombu's JSON decoder turns an object whose keys are exactly `__type__`
//! and `__value__` into a datetime, Decimal, UUID or bytes. A key can also
//! spell its characters as `\u` escapes. A payload with neither byte
//! sequence anywhere cannot hold such an object, so its plain parse is
//! final; one with either must have its parsed value searched.

use memchr::memmem::Finder;
use std::sync::LazyLock;

static TAG: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"__type__"));
static ESCAPE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\\u"));

/// Whether `payload` holds kombu's type tag or a `\u` escape anywhere.
pub fn may_hold_tagged_object(payload: &[u8]) -> bool {
    TAG.find(payload).is_some() || ESCAPE.find(payload).is_some()
}

#[cfg(test)]
mod tests {
    use super::may_hold_tagged_object;

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

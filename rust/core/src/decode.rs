//! JSON decoding of result payloads, for the values Python's `json.loads`
//! (as kombu calls it) would produce identically.
//!
//! Anything this cannot promise to reproduce is reported as needing the
//! Python decoder instead: kombu's tagged values (`{"__type__": ...,
//! "__value__": ...}` objects, which its object hook turns into datetimes,
//! Decimals, UUIDs, bytes), and text serde_json refuses but Python accepts
//! (`NaN`, `Infinity`, lone surrogate escapes).

use serde_json::{Map, Value};

/// The outcome for one payload.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// No payload (the key did not exist).
    Missing,
    /// Parsed; converting `Value` gives what `json.loads` gives.
    Value(Value),
    /// Must go through kombu's decoder.
    NeedsPython,
}

/// Decode every payload.
pub fn decode_batch(payloads: &[Option<Vec<u8>>]) -> Vec<Decoded> {
    payloads.iter().map(|p| decode(p.as_deref())).collect()
}

pub fn decode(payload: Option<&[u8]>) -> Decoded {
    let Some(bytes) = payload else {
        return Decoded::Missing;
    };
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) if !has_tagged_object(&value) => Decoded::Value(value),
        _ => Decoded::NeedsPython,
    }
}

/// kombu's object hook rewrites an object whose keys are exactly
/// `__type__` and `__value__`; any object with a `__type__` key is sent to
/// Python, which then decides exactly as kombu does.
fn has_tagged_object(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.contains_key("__type__") || map.values().any(has_tagged_object),
        Value::Array(items) => items.iter().any(has_tagged_object),
        _ => false,
    }
}

/// How a JSON number converts: Python's json gives `float` for any number
/// written with a fraction or exponent, `int` (of any size) otherwise.
#[derive(Debug, PartialEq)]
pub enum NumberKind<'a> {
    Int(i64),
    BigInt(&'a str),
    Float(f64),
}

pub fn number_kind(text: &str) -> NumberKind<'_> {
    if text.contains(['.', 'e', 'E']) {
        // Rust's parse is correctly rounded, as is Python's float().
        NumberKind::Float(text.parse().unwrap_or(f64::NAN))
    } else {
        match text.parse::<i64>() {
            Ok(n) => NumberKind::Int(n),
            Err(_) => NumberKind::BigInt(text),
        }
    }
}

/// Object entries in document order (duplicates keep the last value at
/// the first position, as a Python dict does).
pub fn entries(map: &Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
    map.iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decoded {
        decode(Some(s.as_bytes()))
    }

    #[test]
    fn plain_meta_decodes() {
        let Decoded::Value(v) =
            dec(r#"{"status": "SUCCESS", "result": [1, 2.5, "x", null, true]}"#)
        else {
            panic!("expected a value")
        };
        assert_eq!(v["status"], "SUCCESS");
    }

    #[test]
    fn tagged_values_and_python_only_literals_go_to_python() {
        assert_eq!(
            dec(r#"{"result": {"__type__": "uuid", "__value__": {"hex": "00"}}}"#),
            Decoded::NeedsPython
        );
        assert_eq!(
            dec(r#"{"result": [{"__type__": 1}]}"#),
            Decoded::NeedsPython
        );
        assert_eq!(dec(r#"{"result": NaN}"#), Decoded::NeedsPython);
        assert_eq!(dec(r#"{"result": Infinity}"#), Decoded::NeedsPython);
        assert_eq!(dec(r#"{"result": "\ud800"}"#), Decoded::NeedsPython);
        assert_eq!(dec("not json"), Decoded::NeedsPython);
    }

    #[test]
    fn missing_payload_is_missing() {
        assert_eq!(decode(None), Decoded::Missing);
    }

    #[test]
    fn numbers_convert_as_python_json_does() {
        assert_eq!(number_kind("12"), NumberKind::Int(12));
        assert_eq!(number_kind("-0"), NumberKind::Int(0));
        assert_eq!(
            number_kind("123456789012345678901234567890"),
            NumberKind::BigInt("123456789012345678901234567890")
        );
        assert_eq!(number_kind("1.0"), NumberKind::Float(1.0));
        assert_eq!(number_kind("1e5"), NumberKind::Float(100000.0));
        assert_eq!(number_kind("0.1"), NumberKind::Float(0.1));
        assert_eq!(number_kind("1E-7"), NumberKind::Float(1e-7));
    }

    #[test]
    fn key_order_and_duplicates_follow_python_dicts() {
        let Decoded::Value(Value::Object(map)) = dec(r#"{"b": 1, "a": 2, "b": 3}"#) else {
            panic!("expected an object")
        };
        let got: Vec<_> = entries(&map)
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        assert_eq!(got, vec![("b", Value::from(3)), ("a", Value::from(2))]);
    }
}

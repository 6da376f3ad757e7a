//! The bytes `kombu.utils.json.dumps` writes.
//!
//! kombu calls `json.dumps(obj, cls=JSONEncoder)` with Python's defaults:
//! separators `", "` and `": "`, `ensure_ascii=True`, `allow_nan=True`,
//! keys in insertion order. CPython's C encoder then writes floats with
//! `float.__repr__` (`NaN`, `Infinity`, `-Infinity` when not finite), ints
//! with `int.__repr__`, and coerces non-str keys (`1` -> `"1"`,
//! `2.5` -> `"2.5"`, `None` -> `"null"`, `True` -> `"true"`); any other
//! key type raises `TypeError`, so such a message is left to Celery.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::pyfloat;
use super::text::Text;
use super::value::{TagKind, Unsupported, Value};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Nesting past this depth is left to Python (CPython's encoder recurses
/// and would raise `RecursionError` somewhere below 1000 levels).
pub const MAX_DEPTH: usize = 200;

fn push_u_escape(out: &mut Vec<u8>, unit: u32) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((unit >> shift) & 0xf) as usize]);
    }
}

/// The bytes `encode_basestring_ascii` writes unchanged: printable ASCII
/// but `"` and `\\`. A table, so the common all-plain string costs one
/// lookup per byte.
const WRITTEN_AS_IS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = b' ';
    while b <= b'~' {
        table[b as usize] = b != b'"' && b != b'\\';
        b += 1;
    }
    table
};

/// `json.encoder.encode_basestring_ascii` (C `ascii_escape_unichar`).
pub fn write_str(out: &mut Vec<u8>, s: &Text) {
    write_str_of(out, s.as_bytes(), || s.chars());
}

/// [`write_str`] for a Rust string (valid UTF-8 is valid `Text`).
pub fn write_rust_str(out: &mut Vec<u8>, s: &str) {
    write_str_of(out, s.as_bytes(), || s.chars().map(u32::from));
}

fn write_str_of<I: Iterator<Item = u32>>(
    out: &mut Vec<u8>,
    bytes: &[u8],
    chars: impl FnOnce() -> I,
) {
    out.push(b'"');
    if bytes.iter().all(|&b| WRITTEN_AS_IS[b as usize]) {
        out.extend_from_slice(bytes);
    } else {
        for c in chars() {
            match c {
                0x22 => out.extend_from_slice(b"\\\""),
                0x5c => out.extend_from_slice(b"\\\\"),
                0x0a => out.extend_from_slice(b"\\n"),
                0x0d => out.extend_from_slice(b"\\r"),
                0x09 => out.extend_from_slice(b"\\t"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                0x20..=0x7e => out.push(c as u8),
                0x10000.. => {
                    let v = c - 0x10000;
                    push_u_escape(out, 0xd800 | ((v >> 10) & 0x3ff));
                    push_u_escape(out, 0xdc00 | (v & 0x3ff));
                }
                _ => push_u_escape(out, c),
            }
        }
    }
    out.push(b'"');
}

fn float_text(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        let mut s = String::new();
        pyfloat::push_repr(&mut s, x);
        s
    }
}

/// A dict key, coerced to a string as the C encoder does.
pub fn write_key(out: &mut Vec<u8>, key: &Value) -> Result<(), Unsupported> {
    match key {
        Value::Str(s) => write_str(out, s),
        Value::Int(i) => write_rust_str(out, itoa::Buffer::new().format(*i)),
        Value::BigInt(digits) => write_rust_str(out, digits),
        Value::Float(x) => write_rust_str(out, &float_text(*x)),
        Value::Bool(true) => out.extend_from_slice(b"\"true\""),
        Value::Bool(false) => out.extend_from_slice(b"\"false\""),
        Value::None => out.extend_from_slice(b"\"null\""),
        _ => return Err(Unsupported("dict key of a type JSON cannot encode".into())),
    }
    Ok(())
}

/// `{"__type__": marker, "__value__": ` ... the caller closes with `}`.
fn open_tag(out: &mut Vec<u8>, marker: &str) {
    out.extend_from_slice(b"{\"__type__\": \"");
    out.extend_from_slice(marker.as_bytes());
    out.extend_from_slice(b"\", \"__value__\": ");
}

fn write_seq(out: &mut Vec<u8>, items: &[Value], depth: usize) -> Result<(), Unsupported> {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        write_value_at(out, item, depth + 1)?;
    }
    out.push(b']');
    Ok(())
}

fn write_dict_at(
    out: &mut Vec<u8>,
    pairs: &[(Value, Value)],
    depth: usize,
) -> Result<(), Unsupported> {
    out.push(b'{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        write_key(out, k)?;
        out.extend_from_slice(b": ");
        write_value_at(out, v, depth + 1)?;
    }
    out.push(b'}');
    Ok(())
}

/// Append what `kombu.utils.json.dumps(value)` returns (always ASCII).
pub fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), Unsupported> {
    write_value_at(out, value, 0)
}

fn write_value_at(out: &mut Vec<u8>, value: &Value, depth: usize) -> Result<(), Unsupported> {
    if depth > MAX_DEPTH {
        return Err(Unsupported(format!(
            "nested deeper than {MAX_DEPTH} levels"
        )));
    }
    match value {
        Value::None => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Value::BigInt(digits) => out.extend_from_slice(digits.as_bytes()),
        Value::Float(x) => out.extend_from_slice(float_text(*x).as_bytes()),
        Value::Str(s) => write_str(out, s),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            // JSONEncoder.default: `_as("bytes", o.decode("utf-8"))`, and
            // base64 when that raises UnicodeDecodeError.
            Ok(s) => {
                open_tag(out, "bytes");
                write_rust_str(out, s);
                out.push(b'}');
            }
            Err(_) => {
                open_tag(out, "base64");
                write_rust_str(out, &BASE64.encode(b));
                out.push(b'}');
            }
        },
        Value::List(items) | Value::Tuple(items) => write_seq(out, items, depth)?,
        Value::Dict(pairs) => write_dict_at(out, pairs, depth)?,
        Value::Tagged { kind, encoded, .. } => {
            open_tag(out, kind.marker());
            if *kind == TagKind::Uuid {
                out.extend_from_slice(b"{\"hex\": ");
                write_str(out, encoded);
                out.push(b'}');
            } else {
                write_str(out, encoded);
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// `kombu.utils.json.dumps(value)` as bytes.
pub fn dumps(value: &Value) -> Result<Vec<u8>, Unsupported> {
    let mut out = Vec::new();
    write_value(&mut out, value)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    fn dumped(v: &Value) -> String {
        String::from_utf8(dumps(v).unwrap()).unwrap()
    }

    // Expected strings are what kombu 5.7.0's dumps returns for the
    // Python value in the comment.
    #[test]
    fn containers_use_python_separators_and_keep_key_order() {
        // [1, (2, 3), {"b": None, "a": True}, []]
        let v = Value::List(vec![
            Value::Int(1),
            Value::Tuple(vec![Value::Int(2), Value::Int(3)]),
            Value::Dict(vec![(s("b"), Value::None), (s("a"), Value::Bool(true))]),
            Value::List(vec![]),
            Value::Dict(vec![]),
        ]);
        assert_eq!(dumped(&v), r#"[1, [2, 3], {"b": null, "a": true}, [], {}]"#);
    }

    #[test]
    fn non_str_keys_are_coerced_like_the_c_encoder() {
        // {1: 'a', 2.5: 'b', None: 'c', False: 'd', True: 'e', 1e16: 'f', nan: 'g'}
        let v = Value::Dict(vec![
            (Value::Int(1), s("a")),
            (Value::Float(2.5), s("b")),
            (Value::None, s("c")),
            (Value::Bool(false), s("d")),
            (Value::Bool(true), s("e")),
            (Value::Float(1e16), s("f")),
            (Value::Float(f64::NAN), s("g")),
        ]);
        assert_eq!(
            dumped(&v),
            r#"{"1": "a", "2.5": "b", "null": "c", "false": "d", "true": "e", "1e+16": "f", "NaN": "g"}"#
        );
        let bad = Value::Dict(vec![(Value::Tuple(vec![]), Value::None)]);
        assert!(dumps(&bad).is_err());
    }

    #[test]
    fn strings_are_escaped_with_ensure_ascii() {
        // 'q"\\\t\n\r\x08\x0c\x00\x1f\x7f é€😀'
        let v = s("q\"\\\t\n\r\u{8}\u{c}\u{0}\u{1f}\u{7f} \u{e9}\u{20ac}\u{1f600}");
        assert_eq!(
            dumped(&v),
            r#""q\"\\\t\n\r\b\f\u0000\u001f\u007f \u00e9\u20ac\ud83d\ude00""#
        );
        let lone = Text::from_surrogatepass(b"\xed\xb0\x80x".to_vec()).unwrap();
        assert_eq!(dumped(&Value::Str(lone)), r#""\udc00x""#);
    }

    #[test]
    fn floats_and_ints_use_python_repr() {
        let v = Value::List(vec![
            Value::Float(1e16),
            Value::Float(1e-05),
            Value::Float(100.0),
            Value::Float(f64::INFINITY),
            Value::Float(f64::NEG_INFINITY),
            Value::Float(f64::NAN),
            Value::Int(i64::MIN),
            Value::BigInt("123456789012345678901234567890".into()),
        ]);
        assert_eq!(
            dumped(&v),
            "[1e+16, 1e-05, 100.0, Infinity, -Infinity, NaN, -9223372036854775808, \
             123456789012345678901234567890]"
        );
    }

    #[test]
    fn kombu_tags_bytes_and_registered_types() {
        let tagged = |kind, enc: &str| Value::Tagged {
            kind,
            encoded: Text::from(enc),
            repr: Text::new(),
        };
        let v = Value::List(vec![
            Value::Bytes("h\u{e9}".as_bytes().to_vec()),
            Value::Bytes(vec![0xff, 0x00]),
            tagged(TagKind::DateTime, "2020-01-01T00:00:00+00:00"),
            tagged(TagKind::Date, "2020-01-01"),
            tagged(TagKind::Time, "12:30:00.000001"),
            tagged(TagKind::Decimal, "1.10"),
            tagged(TagKind::Uuid, "0123456789abcdef0123456789abcdef"),
        ]);
        assert_eq!(
            dumped(&v),
            concat!(
                r#"[{"__type__": "bytes", "__value__": "h\u00e9"}, "#,
                r#"{"__type__": "base64", "__value__": "/wA="}, "#,
                r#"{"__type__": "datetime", "__value__": "2020-01-01T00:00:00+00:00"}, "#,
                r#"{"__type__": "date", "__value__": "2020-01-01"}, "#,
                r#"{"__type__": "time", "__value__": "12:30:00.000001"}, "#,
                r#"{"__type__": "decimal", "__value__": "1.10"}, "#,
                r#"{"__type__": "uuid", "__value__": {"hex": "0123456789abcdef0123456789abcdef"}}]"#,
            )
        );
    }

    #[test]
    fn runaway_nesting_is_left_to_python() {
        let mut v = Value::None;
        for _ in 0..=MAX_DEPTH + 1 {
            v = Value::List(vec![v]);
        }
        assert!(dumps(&v).is_err());
    }
}

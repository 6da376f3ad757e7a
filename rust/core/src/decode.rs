//! JSON decoding of result payloads, for the values Python's `json.loads`
//! (as kombu calls it) would produce identically.
//!
//! Anything this cannot promise to reproduce is reported as needing the
//! Python decoder instead: kombu's tagged values (`{"__type__": ...,
//! "__value__": ...}` objects, which its object hook turns into datetimes,
//! Decimals, UUIDs, bytes), text Python accepts but reads its own way
//! (`NaN`, `Infinity`, lone surrogate escapes), anything Python rejects
//! (so that Python raises its own error), and nesting deeper than
//! [`MAX_DEPTH`] (where Python's recursion limit may apply).
//!
//! The parser writes a flat tape of [`Node`]s per payload, borrowing every
//! string that has no escape from the payload itself, so a batch of result
//! metas costs one allocation per payload rather than one per value.

use std::borrow::Cow;

/// Deeper documents go to Python, whose scanner recurses per level and may
/// raise `RecursionError` where this would not.
pub const MAX_DEPTH: usize = 64;

/// One value on the tape. Containers are followed by their members: an
/// array by `len` values, an object by `len` (key, value) pairs, each key a
/// `Str` node. Every value is one node followed by its own members.
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    /// An integer that fits in an `i64`.
    Int(i64),
    /// An integer that does not: its decimal text, for Python's `int()`.
    BigInt(&'a str),
    Float(f64),
    Str(Cow<'a, str>),
    Array(usize),
    Object(usize),
}

/// The outcome for one payload.
#[derive(Debug, PartialEq)]
pub enum Decoded<'a> {
    /// No payload (the key did not exist).
    Missing,
    /// Parsed; the tape converts to what `json.loads` gives.
    Value(Vec<Node<'a>>),
    /// Must go through kombu's decoder.
    NeedsPython,
}

/// Decode every payload.
pub fn decode_batch<'a>(payloads: &[Option<&'a [u8]>]) -> Vec<Decoded<'a>> {
    payloads.iter().map(|p| decode(*p)).collect()
}

pub fn decode(payload: Option<&[u8]>) -> Decoded<'_> {
    let Some(bytes) = payload else {
        return Decoded::Missing;
    };
    // kombu decodes the bytes as UTF-8 (strictly) before json.loads sees
    // them; Rust's validation accepts and rejects exactly the same bytes.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Decoded::NeedsPython;
    };
    let mut parser = Parser {
        text,
        bytes,
        pos: 0,
        tape: Vec::with_capacity(16),
    };
    match parser.document() {
        Some(()) => Decoded::Value(parser.tape),
        None => Decoded::NeedsPython,
    }
}

/// The top-level `"status"` of a decoded meta, when the tape is an object
/// whose `"status"` is a string (the last one, as a Python dict keeps).
pub fn status<'t>(tape: &'t [Node<'_>]) -> Option<&'t str> {
    let Some(Node::Object(len)) = tape.first() else {
        return None;
    };
    let mut pos = 1;
    let mut found = None;
    for _ in 0..*len {
        let key = &tape[pos];
        pos += 1;
        let is_status = matches!(key, Node::Str(k) if k == "status");
        if is_status {
            found = match &tape[pos] {
                Node::Str(s) => Some(s.as_ref()),
                _ => None,
            };
        }
        pos = skip(tape, pos);
    }
    found
}

/// The index just past the value that starts at `pos`.
pub fn skip(tape: &[Node<'_>], pos: usize) -> usize {
    match tape[pos] {
        Node::Array(len) => (0..len).fold(pos + 1, |p, _| skip(tape, p)),
        Node::Object(len) => (0..len).fold(pos + 1, |p, _| skip(tape, p + 1)),
        _ => pos + 1,
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    tape: Vec<Node<'a>>,
}

/// `None` everywhere below means "Python decides": either Python's json
/// rejects the text (and raises its own error) or reads it differently.
impl<'a> Parser<'a> {
    fn document(&mut self) -> Option<()> {
        self.skip_ws();
        self.value(0)?;
        self.skip_ws();
        (self.pos == self.bytes.len()).then_some(())
    }

    /// json's WHITESPACE: `[ \t\n\r]*`.
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => {
                let s = self.string()?;
                self.tape.push(Node::Str(s));
                Some(())
            }
            b'n' => self.literal(b"null", Node::Null),
            b't' => self.literal(b"true", Node::Bool(true)),
            b'f' => self.literal(b"false", Node::Bool(false)),
            b'-' | b'0'..=b'9' => self.number(),
            // NaN, Infinity and everything json rejects.
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8], node: Node<'a>) -> Option<()> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            self.tape.push(node);
            Some(())
        } else {
            None
        }
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let at = self.tape.len();
        self.tape.push(Node::Object(0));
        self.pos += 1;
        self.skip_ws();
        let mut len = 0;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            // kombu's object hook rewrites objects tagged with __type__;
            // Python decides for any object that has the key at all.
            if key == "__type__" {
                return None;
            }
            self.tape.push(Node::Str(key));
            self.skip_ws();
            if self.peek()? != b':' {
                return None;
            }
            self.pos += 1;
            self.skip_ws();
            self.value(depth)?;
            len += 1;
            self.skip_ws();
            match self.peek()? {
                b',' => {
                    self.pos += 1;
                    self.skip_ws();
                }
                b'}' => {
                    self.pos += 1;
                    self.tape[at] = Node::Object(len);
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let at = self.tape.len();
        self.tape.push(Node::Array(0));
        self.pos += 1;
        self.skip_ws();
        let mut len = 0;
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.value(depth)?;
            len += 1;
            self.skip_ws();
            match self.peek()? {
                b',' => {
                    self.pos += 1;
                    self.skip_ws();
                }
                b']' => {
                    self.pos += 1;
                    self.tape[at] = Node::Array(len);
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string starting at the opening quote. Borrowed when it has no
    /// escape; raw control characters are an error in json's strict mode.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let start = self.pos + 1;
        let mut i = start;
        loop {
            match *self.bytes.get(i)? {
                b'"' => {
                    self.pos = i + 1;
                    return Some(Cow::Borrowed(&self.text[start..i]));
                }
                b'\\' => break,
                c if c < 0x20 => return None,
                _ => i += 1,
            }
        }
        let mut out = String::with_capacity(i - start + 16);
        out.push_str(&self.text[start..i]);
        loop {
            match *self.bytes.get(i)? {
                b'"' => {
                    self.pos = i + 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    let esc = *self.bytes.get(i + 1)?;
                    i += 2;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let unit = self.hex4(i)?;
                            i += 4;
                            let code = if (0xD800..0xDC00).contains(&unit) {
                                // Python pairs a high surrogate with an
                                // escaped low one; alone it stays a lone
                                // surrogate, which only Python can hold.
                                if self.bytes.get(i..i + 2)? != b"\\u" {
                                    return None;
                                }
                                let low = self.hex4(i + 2)?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return None;
                                }
                                i += 6;
                                0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                unit
                            };
                            out.push(char::from_u32(code)?);
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                _ => {
                    // Copy the run up to the next quote or backslash.
                    let run = i;
                    while let Some(&c) = self.bytes.get(i) {
                        if c == b'"' || c == b'\\' || c < 0x20 {
                            break;
                        }
                        i += 1;
                    }
                    out.push_str(&self.text[run..i]);
                }
            }
        }
    }

    /// Four hex digits at `at` (json accepts either case).
    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.bytes.get(at..at + 4)?;
        digits.iter().try_fold(0u32, |acc, &d| {
            let v = (d as char).to_digit(16)?;
            Some(acc * 16 + v)
        })
    }

    /// json's NUMBER_RE: `-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?`. A text
    /// that stops matching part-way (`1.`, `1e`, `01`) leaves a character
    /// json rejects right after the number, which the caller then sees.
    fn number(&mut self) -> Option<()> {
        let b = self.bytes;
        let start = self.pos;
        let mut i = start;
        if b[i] == b'-' {
            i += 1;
        }
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                while let Some(b'0'..=b'9') = b.get(i) {
                    i += 1;
                }
            }
            // "-Infinity" and bare "-".
            _ => return None,
        }
        let mut is_float = false;
        if b.get(i) == Some(&b'.') && matches!(b.get(i + 1), Some(b'0'..=b'9')) {
            is_float = true;
            i += 1;
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            let mut j = i + 1;
            if let Some(b'-' | b'+') = b.get(j) {
                j += 1;
            }
            if let Some(b'0'..=b'9') = b.get(j) {
                is_float = true;
                i = j;
                while let Some(b'0'..=b'9') = b.get(i) {
                    i += 1;
                }
            }
        }
        let text = &self.text[start..i];
        self.pos = i;
        self.tape.push(match number_kind_of(text, is_float) {
            NumberKind::Int(n) => Node::Int(n),
            NumberKind::BigInt(t) => Node::BigInt(t),
            NumberKind::Float(f) => Node::Float(f),
        });
        Some(())
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
    number_kind_of(text, text.contains(['.', 'e', 'E']))
}

fn number_kind_of(text: &str, is_float: bool) -> NumberKind<'_> {
    if is_float {
        // Rust's parse is correctly rounded, as is Python's float();
        // both overflow to infinity.
        NumberKind::Float(text.parse().unwrap_or(f64::NAN))
    } else {
        match text.parse::<i64>() {
            Ok(n) => NumberKind::Int(n),
            Err(_) => NumberKind::BigInt(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decoded<'_> {
        decode(Some(s.as_bytes()))
    }

    fn tape(s: &str) -> Vec<Node<'_>> {
        match dec(s) {
            Decoded::Value(t) => t,
            other => panic!("expected a value for {s:?}, got {other:?}"),
        }
    }

    #[test]
    fn plain_meta_decodes() {
        let t = tape(r#"{"status": "SUCCESS", "result": [1, 2.5, "x", null, true]}"#);
        assert_eq!(status(&t), Some("SUCCESS"));
        assert_eq!(
            t,
            vec![
                Node::Object(2),
                Node::Str("status".into()),
                Node::Str("SUCCESS".into()),
                Node::Str("result".into()),
                Node::Array(5),
                Node::Int(1),
                Node::Float(2.5),
                Node::Str("x".into()),
                Node::Null,
                Node::Bool(true),
            ]
        );
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
        assert_eq!(dec(r#"{"result": -Infinity}"#), Decoded::NeedsPython);
        assert_eq!(dec(r#"{"result": "\ud800"}"#), Decoded::NeedsPython);
        assert_eq!(dec(r#"{"result": "\udc00"}"#), Decoded::NeedsPython);
        assert_eq!(dec(r#"{"result": "\ud800\u0041"}"#), Decoded::NeedsPython);
        assert_eq!(dec("not json"), Decoded::NeedsPython);
    }

    #[test]
    fn what_json_rejects_goes_to_python() {
        for bad in [
            "",
            " ",
            "{",
            "[1,]",
            r#"{"a": 1,}"#,
            r#"{"a" 1}"#,
            r#"{1: 2}"#,
            "01",
            "1.",
            "1e",
            "-",
            "+1",
            ".5",
            "[1] x",
            "\u{feff}[]",
            "\"a\tb\"",
            r#""\x""#,
            r#""\u12g4""#,
            "\"unterminated",
            "nul",
            "True",
        ] {
            assert_eq!(dec(bad), Decoded::NeedsPython, "{bad:?}");
        }
        assert_eq!(decode(Some(b"\"\xff\"")), Decoded::NeedsPython);
    }

    #[test]
    fn escapes_and_surrogate_pairs_decode_as_python_does() {
        assert_eq!(
            tape(r#""a\"b\\c\/d\b\f\n\r\t\u00e9\uD83D\uDE00z""#),
            vec![Node::Str(
                "a\"b\\c/d\u{8}\u{c}\n\r\t\u{e9}\u{1F600}z".into()
            )]
        );
        assert_eq!(tape("\"caf\u{e9}\""), vec![Node::Str("caf\u{e9}".into())]);
    }

    #[test]
    fn whitespace_is_jsons() {
        assert_eq!(
            tape(" \t\r\n[ 1 , {\n\"a\" :\t2 } ] \n"),
            vec![
                Node::Array(2),
                Node::Int(1),
                Node::Object(1),
                Node::Str("a".into()),
                Node::Int(2),
            ]
        );
        assert_eq!(dec("\u{a0}1"), Decoded::NeedsPython);
    }

    #[test]
    fn deep_nesting_goes_to_python() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(matches!(dec(&ok), Decoded::Value(_)));
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(dec(&deep), Decoded::NeedsPython);
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
        assert_eq!(
            tape("[-0, -0.0, 9223372036854775807, -9223372036854775809, 1e400]"),
            vec![
                Node::Array(5),
                Node::Int(0),
                Node::Float(-0.0),
                Node::Int(i64::MAX),
                Node::BigInt("-9223372036854775809"),
                Node::Float(f64::INFINITY),
            ]
        );
    }

    #[test]
    fn key_order_and_duplicates_are_left_to_the_dict() {
        // The binding sets items in document order into a dict, which keeps
        // the first position and the last value, as json.loads does.
        let t = tape(r#"{"b": 1, "a": 2, "b": 3}"#);
        assert_eq!(t[0], Node::Object(3));
        assert_eq!(
            status(&tape(r#"{"status": "A", "status": "B"}"#)),
            Some("B")
        );
    }

    #[test]
    fn status_needs_a_top_level_string() {
        assert_eq!(status(&tape(r#"{"result": {"status": "X"}}"#)), None);
        assert_eq!(status(&tape(r#"{"status": 1}"#)), None);
        assert_eq!(status(&tape(r#"["status"]"#)), None);
        assert_eq!(
            status(&tape(r#"{"a": [1, {"b": []}], "status": "RETRY"}"#)),
            Some("RETRY")
        );
    }
}

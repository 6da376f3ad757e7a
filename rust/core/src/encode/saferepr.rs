//! A port of `celery.utils.saferepr.saferepr` (Celery 5.7.0), which Celery's
//! `as_task_v2` uses for the `argsrepr`/`kwargsrepr` headers.
//!
//! The structure mirrors the Python: `Stream` is `reprstream` (a token
//! stream over the value, with the level limit) and `saferepr` is
//! `_saferepr` (the length limit, then the "dangling parens" pass). The
//! quirks that make it differ from `repr` are kept on purpose:
//! - strings are written raw between single quotes, only `'` is escaped
//!   (tabs, newlines, NUL, lone surrogates and backslashes stay as they are);
//! - bytes print as `b'<utf-8 text>'`, or as hex when not UTF-8;
//! - every token is cut by `celery.utils.text.truncate` (at the last space
//!   before the limit, plus `...`) when it is at least as long as what is
//!   left, and the closing brackets are not counted, so a truncated repr
//!   ends a few characters past `maxlen`;
//! - dict keys are rendered by a fresh `saferepr` call (levels restart);
//! - a container opened at `maxlevels` shows as `[...]`/`(...,)`/`{...}`.

use super::pyfloat;
use super::text::Text;
use super::value::Value;

/// `_literal(value, truncate, direction)`.
#[derive(Debug, Clone, Copy)]
struct Lit {
    value: &'static str,
    truncate: bool,
    direction: i32,
}

const fn lit(value: &'static str, truncate: bool, direction: i32) -> Lit {
    Lit {
        value,
        truncate,
        direction,
    }
}

const DICT_KVSEP: Lit = lit(": ", true, 0);
const LIST_SEP: Lit = lit(", ", true, 0);

enum Tok<'a> {
    Lit(Lit),
    Key(&'a Value),
    Quoted(&'a Value),
    Plain(Text),
}

enum Seq<'a> {
    Items(&'a [Value]),
    Pairs(&'a [(Value, Value)]),
}

/// An open container: what `reprstream` keeps in its chained iterators.
struct Frame<'a> {
    seq: Seq<'a>,
    i: usize,
    step: u8,
    end: Lit,
}

/// `reprstream`: the number of open frames is its `level`.
struct Stream<'a> {
    root: Option<&'a Value>,
    frames: Vec<Frame<'a>>,
    maxlevels: usize,
}

impl<'a> Stream<'a> {
    fn new(root: &'a Value, maxlevels: usize) -> Self {
        Stream {
            root: Some(root),
            frames: Vec::new(),
            maxlevels,
        }
    }

    fn next(&mut self) -> Option<Tok<'a>> {
        let raw = loop {
            if let Some(v) = self.root.take() {
                break v;
            }
            let frame = self.frames.last_mut()?;
            let len = match frame.seq {
                Seq::Items(items) => items.len(),
                Seq::Pairs(pairs) => pairs.len(),
            };
            if frame.i >= len {
                let end = frame.end;
                self.frames.pop();
                return Some(Tok::Lit(end));
            }
            // `_chainlist` / `_chaindict`: the separator follows every
            // item but the last.
            match (&frame.seq, frame.step) {
                (Seq::Items(items), 0) => {
                    frame.step = 1;
                    break &items[frame.i];
                }
                (Seq::Pairs(pairs), 0) => {
                    frame.step = 1;
                    return Some(Tok::Key(&pairs[frame.i].0));
                }
                (Seq::Pairs(_), 1) => {
                    frame.step = 2;
                    return Some(Tok::Lit(DICT_KVSEP));
                }
                (Seq::Pairs(pairs), 2) => {
                    frame.step = 3;
                    break &pairs[frame.i].1;
                }
                _ => {
                    frame.step = 0;
                    frame.i += 1;
                    if frame.i < len {
                        return Some(Tok::Lit(LIST_SEP));
                    }
                }
            }
        };
        Some(self.classify(raw))
    }

    fn classify(&mut self, v: &'a Value) -> Tok<'a> {
        let (start, end, at_limit, seq) = match v {
            Value::None => return Tok::Plain(Text::from("None")),
            Value::Bool(b) => return Tok::Plain(Text::from(if *b { "True" } else { "False" })),
            Value::Int(i) => return Tok::Plain(Text::from(itoa::Buffer::new().format(*i))),
            Value::BigInt(digits) => return Tok::Plain(Text::from(digits.as_str())),
            Value::Float(x) => return Tok::Plain(Text::from(pyfloat::repr(*x))),
            Value::Tagged { repr, .. } => return Tok::Plain(repr.clone()),
            Value::Str(_) | Value::Bytes(_) => return Tok::Quoted(v),
            Value::List(items) => (
                lit("[", false, 1),
                lit("]", false, -1),
                "[...]",
                Seq::Items(items),
            ),
            Value::Tuple(items) if items.len() == 1 => (
                lit("(", false, 1),
                lit(",)", false, -1),
                "(...,)",
                Seq::Items(items),
            ),
            Value::Tuple(items) => (
                lit("(", false, 1),
                lit(")", false, -1),
                "(...)",
                Seq::Items(items),
            ),
            Value::Dict(pairs) => (
                lit("{", false, 1),
                lit("}", false, -1),
                "{...}",
                Seq::Pairs(pairs),
            ),
        };
        if self.maxlevels > 0 && self.frames.len() >= self.maxlevels {
            return Tok::Lit(lit(at_limit, false, 0));
        }
        self.frames.push(Frame {
            seq,
            i: 0,
            step: 0,
            end,
        });
        Tok::Lit(start)
    }
}

/// `celery.utils.text.truncate(s, maxlen)`.
fn truncate(s: &Text, maxlen: Option<i64>) -> Text {
    match maxlen {
        Some(m) if m != 0 && s.char_len() as i64 >= m => {
            let head = s.prefix(m.max(0) as usize);
            // `s[:maxlen].rsplit(' ', 1)[0]`
            let keep = match head.iter().rposition(|&b| b == b' ') {
                Some(space) => &head[..space],
                None => head,
            };
            let mut out = Text::with_capacity(keep.len() + 3);
            out.push_raw(keep);
            out.push_str("...");
            out
        }
        _ => s.clone(),
    }
}

/// `_repr_binary_bytes`: the UTF-8 text, or hex when not UTF-8.
fn push_binary(out: &mut Text, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => out.push_str(s),
        Err(_) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let hex: Vec<u8> = b
                .iter()
                .flat_map(|&x| [HEX[(x >> 4) as usize], HEX[(x & 0xf) as usize]])
                .collect();
            out.push_raw(&hex);
        }
    }
}

/// `_format_chars`.
fn format_chars(v: &Value, maxlen: Option<i64>) -> Text {
    let mut out = Text::new();
    match v {
        Value::Str(s) => {
            out.push_str("'");
            let cut = truncate(s, maxlen);
            for part in cut.as_bytes().split(|&b| b == b'\'').enumerate() {
                if part.0 > 0 {
                    out.push_str("\\'");
                }
                out.push_raw(part.1);
            }
            out.push_str("'");
        }
        Value::Bytes(b) => {
            out.push_str("b'");
            // `_format_binary_bytes`: cut at `maxlen` bytes (not code
            // points), so a cut inside a UTF-8 sequence turns into hex.
            match maxlen {
                Some(m) if m != 0 && b.len() as i64 > m => {
                    push_binary(&mut out, &b[..m.max(0) as usize]);
                    out.push_str("...");
                }
                _ => push_binary(&mut out, b),
            }
            out.push_str("'");
        }
        _ => unreachable!("only str and bytes are quoted"),
    }
    out
}

/// `saferepr(o, maxlen, maxlevels)`. `maxlevels == 0` means no level limit,
/// as in Celery (`if maxlevels and level >= maxlevels`).
pub fn saferepr(o: &Value, maxlen: Option<i64>, maxlevels: usize) -> Text {
    let mut out = Text::new();
    let mut maxlen = maxlen;
    let mut stream = Stream::new(o, maxlevels);
    while let Some(tok) = stream.next() {
        if maxlen.is_some_and(|m| m <= 0) {
            if let Tok::Lit(l) = &tok {
                if l.direction < 0 {
                    // The value that used up maxlen was the last in its
                    // container: close it without counting the bracket.
                    out.push_str(l.value);
                    continue;
                }
            }
            out.push_str(", ...");
            // The dangling-parens pass walks the rest of the stream: the
            // token just pulled, then each open container's remaining items
            // (raw values, skipped) and its closing literal. A container
            // opened by that very token stays hidden, bracket included.
            let mut depth = match &tok {
                Tok::Lit(l) if !l.truncate => l.direction,
                _ => 0,
            };
            for frame in stream.frames.iter().rev() {
                depth += frame.end.direction;
                if depth < 0 {
                    depth = 0;
                    out.push_str(frame.end.value);
                }
            }
            break;
        }
        let val = match tok {
            Tok::Lit(l) => Text::from(l.value),
            Tok::Key(k) => saferepr(k, maxlen, maxlevels),
            Tok::Quoted(v) => format_chars(v, maxlen),
            Tok::Plain(s) => truncate(&s, maxlen),
        };
        out.push_text(&val);
        if let Some(m) = maxlen.as_mut() {
            *m -= val.char_len() as i64;
        }
    }
    out
}

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
            Value::Int(i) => return Tok::Plain(Text::from(i.to_string())),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::value::TagKind;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    fn tuple(items: Vec<Value>) -> Value {
        Value::Tuple(items)
    }

    fn list(items: Vec<Value>) -> Value {
        Value::List(items)
    }

    fn repr(v: &Value, maxlen: Option<i64>, maxlevels: usize) -> String {
        String::from_utf8(saferepr(v, maxlen, maxlevels).as_bytes().to_vec()).unwrap()
    }

    fn celery(v: &Value) -> String {
        repr(v, Some(1024), 3)
    }

    // Expected strings below were produced by Celery 5.7.0's
    // `celery.utils.saferepr.saferepr` for the Python value in the comment.

    #[test]
    fn scalars_strings_and_bytes_render_like_celery() {
        // (1, 'a\tb', b'\xff', 2.5, None, True, (1,), {1: 2})
        let v = tuple(vec![
            Value::Int(1),
            s("a\tb"),
            Value::Bytes(vec![0xff]),
            Value::Float(2.5),
            Value::None,
            Value::Bool(true),
            tuple(vec![Value::Int(1)]),
            Value::Dict(vec![(Value::Int(1), Value::Int(2))]),
        ]);
        assert_eq!(
            celery(&v),
            "(1, 'a\tb', b'ff', 2.5, None, True, (1,), {1: 2})"
        );
        // (10**30, -5, 1e16, nan, -inf, False)
        let v = tuple(vec![
            Value::BigInt("1000000000000000000000000000000".into()),
            Value::Int(-5),
            Value::Float(1e16),
            Value::Float(f64::NAN),
            Value::Float(f64::NEG_INFINITY),
            Value::Bool(false),
        ]);
        assert_eq!(
            celery(&v),
            "(1000000000000000000000000000000, -5, 1e+16, nan, -inf, False)"
        );
    }

    #[test]
    fn only_single_quotes_are_escaped() {
        // ("it's", 'back\\slash', 'nul\x00', 'nl\n')
        let v = tuple(vec![s("it's"), s("back\\slash"), s("nul\0"), s("nl\n")]);
        assert_eq!(celery(&v), "('it\\'s', 'back\\slash', 'nul\0', 'nl\n')");
    }

    #[test]
    fn containers_past_maxlevels_collapse() {
        // ([[[1]]], {'a': {'b': {'c': 1}}}, ((1,),), [[[]]])
        let v = tuple(vec![
            list(vec![list(vec![list(vec![Value::Int(1)])])]),
            Value::Dict(vec![(
                s("a"),
                Value::Dict(vec![(s("b"), Value::Dict(vec![(s("c"), Value::Int(1))]))]),
            )]),
            tuple(vec![tuple(vec![Value::Int(1)])]),
            list(vec![list(vec![list(vec![])])]),
        ]);
        assert_eq!(
            celery(&v),
            "([[[...]]], {'a': {'b': {...}}}, ((1,),), [[[...]]])"
        );
        // ((), [], {}, ('x',))
        let v = tuple(vec![
            tuple(vec![]),
            list(vec![]),
            Value::Dict(vec![]),
            tuple(vec![s("x")]),
        ]);
        assert_eq!(celery(&v), "((), [], {}, ('x',))");
        // saferepr(([[[[1]]]], 'y' * 50), None, maxlevels=0)
        let v = tuple(vec![
            list(vec![list(vec![list(vec![list(vec![Value::Int(1)])])])]),
            s(&"y".repeat(50)),
        ]);
        assert_eq!(
            repr(&v, None, 0),
            format!("([[[[1]]]], '{}')", "y".repeat(50))
        );
    }

    #[test]
    fn dict_keys_restart_the_level_count() {
        // {(1, (2, (3, (4,)))): 1}
        let key = tuple(vec![
            Value::Int(1),
            tuple(vec![
                Value::Int(2),
                tuple(vec![Value::Int(3), tuple(vec![Value::Int(4)])]),
            ]),
        ]);
        let v = Value::Dict(vec![(key, Value::Int(1))]);
        assert_eq!(celery(&v), "{(1, (2, (3, (...,)))): 1}");
    }

    #[test]
    fn truncation_overshoots_maxlen_like_celery() {
        // ('x' * 2000,) -> 1031 characters
        let v = tuple(vec![s(&"x".repeat(2000))]);
        assert_eq!(celery(&v), format!("('{}...',)", "x".repeat(1023)));
        // ('hello world ' * 200,): cut at the last space before the limit
        let r = celery(&tuple(vec![s(&"hello world ".repeat(200))]));
        assert_eq!(r.len(), 1027);
        assert!(r.ends_with(" hello world...',)"));
        // (list(range(1000)),)
        let r = celery(&tuple(vec![list((0..1000).map(Value::Int).collect())]));
        assert_eq!(r.len(), 1035);
        assert!(r.ends_with(", 224, 225, 22..., ...],)"), "{r}");
        // {'k%d' % i: 'v' * 10 for i in range(200)}
        let d = Value::Dict(
            (0..200)
                .map(|i| (s(&format!("k{i}")), s(&"v".repeat(10))))
                .collect(),
        );
        let r = celery(&d);
        assert_eq!(r.len(), 1031);
        assert!(r.ends_with("'k48': 'vvvvvvvvvv', 'k49', ...}"), "{r}");
    }

    #[test]
    fn bytes_are_cut_by_byte_count() {
        // (b'a' * 2000,)
        let r = celery(&tuple(vec![Value::Bytes(vec![b'a'; 2000])]));
        assert_eq!(r, format!("(b'{}...',)", "a".repeat(1023)));
        // ('é'.encode() * 600,): the 1023 bytes left after "(" end inside
        // an 'é', so the kept chunk is not UTF-8 and shows as hex.
        let r = celery(&tuple(vec![Value::Bytes(
            "\u{e9}".repeat(600).into_bytes(),
        )]));
        assert_eq!(r.len(), 2055);
        assert!(r.ends_with("a9c3a9c3...',)"));
    }

    #[test]
    fn limit_reached_next_to_brackets() {
        // saferepr((['a' * 20], 'b'), 12)
        let v = tuple(vec![list(vec![s(&"a".repeat(20))]), s("b")]);
        assert_eq!(repr(&v, Some(12), 3), "(['aaaaaaaaaa...'], ...)");
        // saferepr(([1, [2, [3, 4]], 5], 6), 8)
        let v = tuple(vec![
            list(vec![
                Value::Int(1),
                list(vec![
                    Value::Int(2),
                    list(vec![Value::Int(3), Value::Int(4)]),
                ]),
                Value::Int(5),
            ]),
            Value::Int(6),
        ]);
        assert_eq!(repr(&v, Some(8), 3), "([1, [2, , ...]])");
        // saferepr(('abcdefgh', [1, 2], 3), 12)
        let v = tuple(vec![
            s("abcdefgh"),
            list(vec![Value::Int(1), Value::Int(2)]),
            Value::Int(3),
        ]);
        assert_eq!(repr(&v, Some(12), 3), "('abcdefgh', , ...)");
    }

    #[test]
    fn tagged_values_show_their_python_repr() {
        let v = tuple(vec![Value::Tagged {
            kind: TagKind::Decimal,
            encoded: Text::from("1.5"),
            repr: Text::from("Decimal('1.5')"),
        }]);
        assert_eq!(celery(&v), "(Decimal('1.5'),)");
    }
}

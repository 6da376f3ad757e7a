//! `Text`: the contents of a Python `str`.
//!
//! A Python `str` is a sequence of code points and may hold lone
//! surrogates (`'\ud800'`), which Rust's `String` cannot. Celery passes such
//! strings through untouched: `saferepr` writes them raw into `argsrepr` and
//! kombu's JSON (`ensure_ascii=True`) escapes them as `\ud800`. To be
//! faithful we keep the bytes Python's `str.encode('utf-8', 'surrogatepass')`
//! gives: UTF-8, except that a surrogate is its own 3-byte sequence.
//! Lengths and slices are counted in code points, as Python counts them.

use std::fmt;

#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Text(Vec<u8>);

/// The bytes were not "surrogatepass" UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidText;

/// Byte length of the sequence a leading byte starts (input is validated).
#[inline]
fn seq_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

impl Text {
    pub fn new() -> Self {
        Text(Vec::new())
    }

    pub fn with_capacity(n: usize) -> Self {
        Text(Vec::with_capacity(n))
    }

    /// Bytes as `str.encode('utf-8', 'surrogatepass')` returns them.
    /// Valid UTF-8 is accepted as is; surrogate code points (encoded like
    /// any other BMP code point) are accepted too.
    pub fn from_surrogatepass(bytes: Vec<u8>) -> Result<Self, InvalidText> {
        if std::str::from_utf8(&bytes).is_ok() {
            return Ok(Text(bytes));
        }
        let mut i = 0;
        while i < bytes.len() {
            let n = seq_len(bytes[i]);
            let cont = bytes.get(i + 1..i + n).ok_or(InvalidText)?;
            if (0x80..0xc2).contains(&bytes[i]) || cont.iter().any(|&b| b & 0xc0 != 0x80) {
                return Err(InvalidText);
            }
            let cp = decode(&bytes[i..i + n]);
            let min = [0, 0, 0x80, 0x800, 0x10000][n];
            if cp < min || cp > 0x10ffff {
                return Err(InvalidText);
            }
            i += n;
        }
        Ok(Text(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// `Some(&str)` unless the text holds a lone surrogate.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length in code points (Python's `len(s)`).
    pub fn char_len(&self) -> usize {
        self.0.iter().filter(|&&b| b & 0xc0 != 0x80).count()
    }

    /// The code points, as Python iterates a `str`.
    pub fn chars(&self) -> Chars<'_> {
        Chars {
            bytes: &self.0,
            pos: 0,
        }
    }

    /// Byte offset of code point `n` (or the end): Python's `s[:n]`.
    pub fn prefix(&self, n: usize) -> &[u8] {
        let mut seen = 0;
        for (i, &b) in self.0.iter().enumerate() {
            if b & 0xc0 != 0x80 {
                if seen == n {
                    return &self.0[..i];
                }
                seen += 1;
            }
        }
        &self.0
    }

    pub fn push_str(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }

    pub fn push_text(&mut self, t: &Text) {
        self.0.extend_from_slice(&t.0);
    }

    /// Append bytes that are a whole number of this type's sequences, e.g.
    /// a slice cut by [`Text::prefix`] or at an ASCII byte.
    pub(crate) fn push_raw(&mut self, raw: &[u8]) {
        self.0.extend_from_slice(raw);
    }
}

#[inline]
fn decode(seq: &[u8]) -> u32 {
    match seq.len() {
        1 => seq[0] as u32,
        2 => ((seq[0] as u32 & 0x1f) << 6) | (seq[1] as u32 & 0x3f),
        3 => {
            ((seq[0] as u32 & 0x0f) << 12) | ((seq[1] as u32 & 0x3f) << 6) | (seq[2] as u32 & 0x3f)
        }
        _ => {
            ((seq[0] as u32 & 0x07) << 18)
                | ((seq[1] as u32 & 0x3f) << 12)
                | ((seq[2] as u32 & 0x3f) << 6)
                | (seq[3] as u32 & 0x3f)
        }
    }
}

pub struct Chars<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Iterator for Chars<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        let lead = *self.bytes.get(self.pos)?;
        let n = seq_len(lead);
        let cp = decode(&self.bytes[self.pos..self.pos + n]);
        self.pos += n;
        Some(cp)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(s.as_bytes().to_vec())
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(s.into_bytes())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Text({:?})", String::from_utf8_lossy(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lone_surrogate() -> Text {
        // 'a\ud800b'.encode('utf-8', 'surrogatepass')
        Text::from_surrogatepass(b"a\xed\xa0\x80b".to_vec()).unwrap()
    }

    #[test]
    fn lone_surrogates_are_kept_as_code_points() {
        let t = lone_surrogate();
        assert_eq!(t.chars().collect::<Vec<_>>(), vec![0x61, 0xd800, 0x62]);
        assert_eq!(t.char_len(), 3);
        assert_eq!(t.as_str(), None);
    }

    #[test]
    fn malformed_bytes_are_rejected() {
        for bad in [
            &b"\xff"[..],
            b"\xc3",
            b"\xe0\x80\x80",
            b"\xf4\x90\x80\x80",
            b"\x80",
        ] {
            assert_eq!(
                Text::from_surrogatepass(bad.to_vec()),
                Err(InvalidText),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn prefix_counts_code_points_like_python_slicing() {
        let t = Text::from("h\u{e9}\u{1f600}x");
        assert_eq!(t.char_len(), 4);
        assert_eq!(t.prefix(2), "h\u{e9}".as_bytes());
        assert_eq!(t.prefix(3), "h\u{e9}\u{1f600}".as_bytes());
        assert_eq!(t.prefix(10), t.as_bytes());
        assert_eq!(lone_surrogate().prefix(2), b"a\xed\xa0\x80");
    }
}

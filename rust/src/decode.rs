//! `decode_json_batch`: result payloads parsed without the GIL, then turned
//! into the objects `json.loads` would build.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use turbogroup_core::decode::{self, Decoded, Node};

/// Strings up to this many bytes are shared across the batch (object keys
/// and short values such as states): `json.loads` makes equal strings too,
/// only as separate objects, which nothing can tell apart but `id()`.
const SHARED_STR_MAX: usize = 24;
/// At most this many distinct shared strings per batch, which bounds what
/// strings crafted to collide under FNV can cost.
const SHARED_STR_CAP: usize = 256;

/// Returns `(values, needs_python)`: `values[i]` is the decoded payload
/// (None for a missing payload or one in `needs_python`), and
/// `needs_python` lists the indexes the caller must decode with kombu.
#[pyfunction]
pub fn decode_json_batch<'py>(
    py: Python<'py>,
    payloads: Vec<Option<Bound<'py, PyBytes>>>,
) -> PyResult<(Bound<'py, PyList>, Vec<usize>)> {
    let borrowed: Vec<Option<&[u8]>> = payloads
        .iter()
        .map(|p| p.as_ref().map(|b| b.as_bytes()))
        .collect();
    let decoded = py.detach(|| decode::decode_batch(&borrowed));
    let mut conv = Converter::new(py)?;
    let mut values = Vec::with_capacity(decoded.len());
    let mut needs_python = Vec::new();
    for (i, d) in decoded.iter().enumerate() {
        match d {
            Decoded::Missing => values.push(py.None().into_bound(py)),
            Decoded::NeedsPython => {
                needs_python.push(i);
                values.push(py.None().into_bound(py));
            }
            Decoded::Value(tape) => {
                let mut pos = 0;
                values.push(conv.value(tape, &mut pos)?);
            }
        }
    }
    Ok((PyList::new(py, values)?, needs_python))
}

/// FNV-1a: the shared strings are short and few, where SipHash's
/// flood resistance costs more than the lookups it protects.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

struct Converter<'py, 'a> {
    py: Python<'py>,
    int: Bound<'py, PyAny>,
    shared: HashMap<&'a str, Bound<'py, PyString>, BuildHasherDefault<Fnv>>,
}

impl<'py, 'a> Converter<'py, 'a> {
    fn new(py: Python<'py>) -> PyResult<Self> {
        Ok(Converter {
            py,
            int: py.import("builtins")?.getattr("int")?,
            shared: HashMap::default(),
        })
    }

    fn string(&mut self, s: &'a str) -> Bound<'py, PyString> {
        if s.len() > SHARED_STR_MAX {
            return PyString::new(self.py, s);
        }
        if let Some(found) = self.shared.get(s) {
            return found.clone();
        }
        let made = PyString::new(self.py, s);
        if self.shared.len() < SHARED_STR_CAP {
            self.shared.insert(s, made.clone());
        }
        made
    }

    fn value(&mut self, tape: &'a [Node<'a>], pos: &mut usize) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        let node = &tape[*pos];
        *pos += 1;
        Ok(match node {
            Node::Null => py.None().into_bound(py),
            Node::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
            Node::Int(i) => i.into_pyobject(py)?.into_any(),
            Node::BigInt(text) => self.int.call1((*text,))?,
            Node::Float(f) => f.into_pyobject(py)?.into_any(),
            Node::Str(s) => self.string(s).into_any(),
            Node::Array(len) => {
                let mut items = Vec::with_capacity(*len);
                for _ in 0..*len {
                    items.push(self.value(tape, pos)?);
                }
                PyList::new(py, items)?.into_any()
            }
            Node::Object(len) => {
                let dict = PyDict::new(py);
                for _ in 0..*len {
                    let Node::Str(key) = &tape[*pos] else {
                        unreachable!("object keys are strings on the tape")
                    };
                    *pos += 1;
                    let key = self.string(key);
                    dict.set_item(key, self.value(tape, pos)?)?;
                }
                dict.into_any()
            }
        })
    }
}

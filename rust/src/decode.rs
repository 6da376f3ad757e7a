//! `decode_json_batch`: result payloads parsed without the GIL, then turned
//! into the objects `json.loads` would build.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use serde_json::Value;
use turbogroup_core::decode::{self, Decoded, NumberKind};

/// Returns `(values, needs_python)`: `values[i]` is the decoded payload
/// (None for a missing payload or one in `needs_python`), and
/// `needs_python` lists the indexes the caller must decode with kombu.
#[pyfunction]
pub fn decode_json_batch<'py>(
    py: Python<'py>,
    payloads: Vec<Option<Bound<'py, PyBytes>>>,
) -> PyResult<(Bound<'py, PyList>, Vec<usize>)> {
    let owned: Vec<Option<Vec<u8>>> = payloads
        .iter()
        .map(|p| p.as_ref().map(|b| b.as_bytes().to_vec()))
        .collect();
    let decoded = py.detach(|| decode::decode_batch(&owned));
    let int = py.import("builtins")?.getattr("int")?;
    let values = PyList::empty(py);
    let mut needs_python = Vec::new();
    for (i, d) in decoded.iter().enumerate() {
        match d {
            Decoded::Missing => values.append(py.None())?,
            Decoded::NeedsPython => {
                needs_python.push(i);
                values.append(py.None())?;
            }
            Decoded::Value(v) => values.append(to_py(py, v, &int)?)?,
        }
    }
    Ok((values, needs_python))
}

fn to_py<'py>(
    py: Python<'py>,
    value: &Value,
    int: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(n) => match decode::number_kind(n.as_str()) {
            NumberKind::Int(i) => i.into_pyobject(py)?.into_any(),
            NumberKind::BigInt(text) => int.call1((text,))?,
            NumberKind::Float(f) => f.into_pyobject(py)?.into_any(),
        },
        Value::String(s) => s.into_pyobject(py)?.into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item, int)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in decode::entries(map) {
                dict.set_item(k, to_py(py, v, int)?)?;
            }
            dict.into_any()
        }
    })
}

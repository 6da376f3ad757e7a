//! Stored result payloads parsed in one call: the loop, the JSON parse
//! (jiter's, the parser the `jiter` Python package runs) and the search
//! for kombu's tagged objects all in Rust, with no Python call per payload.

use jiter::{FloatMode, PartialMode, PythonParse, StringCacheMode};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use turbogroup_core::payload::may_hold_tagged_object;

/// What `json.loads` gives (`jiter.from_json`'s defaults but for the
/// string cache: keys only, as the values are mostly unique).
const PARSE: PythonParse = PythonParse {
    allow_inf_nan: true,
    cache_mode: StringCacheMode::Keys,
    partial_mode: PartialMode::Off,
    catch_duplicate_keys: false,
    float_mode: FloatMode::Float,
};

/// `(values, suspects, refused)` for a list of payloads (bytes, or None
/// where nothing is stored): `values[i]` is the parsed payload, or None
/// when it is missing or refused; `suspects` are the indexes of parsed
/// payloads that may hold a tagged object (the caller searches their
/// values); `refused` those the parser refused or that are not bytes (the
/// caller hands them to kombu's decoder).
#[pyfunction]
pub fn decode_json_payloads<'py>(
    py: Python<'py>,
    payloads: &Bound<'py, PyList>,
) -> PyResult<(Bound<'py, PyList>, Vec<usize>, Vec<usize>)> {
    let values = PyList::empty(py);
    let mut suspects = Vec::new();
    let mut refused = Vec::new();
    for (i, payload) in payloads.iter().enumerate() {
        if payload.is_none() {
            values.append(py.None())?;
            continue;
        }
        let parsed = match payload.cast_exact::<PyBytes>() {
            Ok(bytes) => {
                let data = bytes.as_bytes();
                PARSE.python_parse(py, data).ok().map(|value| (value, data))
            }
            Err(_) => None,
        };
        match parsed {
            Some((value, data)) => {
                if may_hold_tagged_object(data) {
                    suspects.push(i);
                }
                values.append(value)?;
            }
            None => {
                refused.push(i);
                values.append(py.None())?;
            }
        }
    }
    Ok((values, suspects, refused))
}

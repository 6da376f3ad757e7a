//! Every mapping between the core crate's errors and Python: which
//! exception a core error raises, and how a value the encoder cannot
//! reproduce (`Unsupported`) is handed back, as an object, not raised.

use pyo3::exceptions::{PyIndexError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use turbogroup_core::barrier::FullBarrier;
use turbogroup_core::encode::Unsupported;
use turbogroup_core::id_column::IndexOutOfRange;
use turbogroup_core::ids::RandomnessError;
use turbogroup_core::unroll::ShapeError;

/// A core error as the Python exception it raises.
pub trait ToPyErr {
    fn to_py(self) -> PyErr;
}

/// The OS gave no randomness: as `os.urandom` fails, an `OSError`.
impl ToPyErr for RandomnessError {
    fn to_py(self) -> PyErr {
        PyOSError::new_err(self.to_string())
    }
}

/// A nested-group shape that does not describe a tree: a caller bug.
impl ToPyErr for ShapeError {
    fn to_py(self) -> PyErr {
        PyValueError::new_err(self.to_string())
    }
}

/// As a list raises for an index past its end.
impl ToPyErr for IndexOutOfRange {
    fn to_py(self) -> PyErr {
        PyIndexError::new_err(self.to_string())
    }
}

/// As vine's barrier raises when a promise is added after it is ready.
impl ToPyErr for FullBarrier {
    fn to_py(self) -> PyErr {
        PyValueError::new_err(self.to_string())
    }
}

/// A message argument the caller got wrong (a missing or unknown key): the
/// caller's bug, never a value to leave to Celery.
pub fn bad_message(what: String) -> PyErr {
    PyValueError::new_err(what)
}

/// A message argument of the wrong Python type: the caller's bug.
pub fn wrong_type(what: String) -> PyErr {
    PyTypeError::new_err(what)
}

/// A message checked as encodable that no longer encodes: its values
/// changed between the check and the send.
pub fn no_longer_encodable(Unsupported(reason): Unsupported) -> PyErr {
    PyValueError::new_err(format!("message no longer encodable: {reason}"))
}

/// Python raised while a value was read (a `__bool__`, `items()` or
/// `isoformat()` of the user's): Celery would run the same code, so the
/// message is left to Celery rather than the exception raised here.
pub fn read_failed(e: PyErr) -> Unsupported {
    Unsupported(format!("Python raised while reading a value: {e}"))
}

/// Returned in place of a message the encoder cannot reproduce exactly;
/// the caller publishes that one through Celery instead.
#[pyclass(frozen, module = "turbogroup._core", name = "Unsupported")]
pub struct PyUnsupported {
    #[pyo3(get)]
    reason: String,
}

#[pymethods]
impl PyUnsupported {
    fn __repr__(&self) -> String {
        format!("Unsupported({:?})", self.reason)
    }
}

/// `Unsupported` as the Python object returned in the message's place.
pub fn unsupported_object(
    py: Python<'_>,
    Unsupported(reason): Unsupported,
) -> PyResult<Bound<'_, PyAny>> {
    Ok(Bound::new(py, PyUnsupported { reason })?.into_any())
}

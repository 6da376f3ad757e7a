//! The Python values a task message may carry, as kombu's JSON encoder and
//! Celery's `saferepr` see them.

use super::text::Text;

/// The non-JSON types kombu's `JSONEncoder.default` tags as
/// `{"__type__": <marker>, "__value__": ...}` (kombu/utils/json.py,
/// `_register_default_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    /// `datetime.datetime`; value `o.isoformat()`.
    DateTime,
    /// `datetime.date`; value `o.isoformat()`.
    Date,
    /// `datetime.time`; value `o.isoformat()`.
    Time,
    /// `decimal.Decimal`; value `str(o)`.
    Decimal,
    /// `uuid.UUID`; value `{"hex": o.hex}`.
    Uuid,
}

impl TagKind {
    pub fn marker(self) -> &'static str {
        match self {
            TagKind::DateTime => "datetime",
            TagKind::Date => "date",
            TagKind::Time => "time",
            TagKind::Decimal => "decimal",
            TagKind::Uuid => "uuid",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An int outside i64, as Python's `int.__repr__` writes it.
    BigInt(String),
    Float(f64),
    Str(Text),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Insertion order, as Python dicts keep it.
    Dict(Vec<(Value, Value)>),
    /// A kombu-tagged value. Both strings were computed by Python:
    /// `encoded` is the text kombu puts in `__value__` (the hex for a UUID)
    /// and `repr` is `repr(o)`, which is exactly what `saferepr` shows for
    /// these types (its "other object" branch calls `repr`).
    Tagged {
        kind: TagKind,
        encoded: Text,
        repr: Text,
    },
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(Text::from(s))
    }

    pub fn is_falsy_id(&self) -> bool {
        matches!(self, Value::None) || matches!(self, Value::Str(t) if t.is_empty())
    }
}

/// Why a message must go through Celery's own (Python) encoder instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unsupported {}

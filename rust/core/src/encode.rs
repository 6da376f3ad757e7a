//! Celery protocol-v2 task messages, byte for byte as Celery 5.7.0 and
//! kombu 5.7.0 publish them with the JSON serializer on Redis.

pub mod alike;
pub mod envelope;
pub mod envelope_template;
pub mod json;
pub mod message;
pub mod pyfloat;
pub mod resp;
pub mod saferepr;
pub mod text;
pub mod value;

pub use text::Text;
pub use value::{TagKind, Unsupported, Value};

//! Task ids: uuid4 in the canonical lower-case hyphenated form that
//! `kombu.utils.uuid.uuid()` (`str(uuid.uuid4())`) produces.
//!
//! Randomness comes straight from the OS (`getrandom`), one call per
//! batch, never from a user-space generator: a Celery prefork worker forks
//! after importing us, and a forked user-space RNG would hand every child
//! the same ids.

use uuid::{Builder, Uuid};

/// Length of a hyphenated uuid string.
pub const UUID_LEN: usize = 36;

/// The OS refused to give us random bytes.
#[derive(Debug)]
pub struct RandomnessError(pub String);

impl std::fmt::Display for RandomnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read random bytes for task ids: {}", self.0)
    }
}

impl std::error::Error for RandomnessError {}

fn format(id: Uuid) -> String {
    let mut buf = [0u8; UUID_LEN];
    id.hyphenated().encode_lower(&mut buf).to_owned()
}

/// One new random (version 4) uuid as a string.
pub fn uuid4() -> Result<String, RandomnessError> {
    Ok(uuid4_batch(1)?.pop().expect("one id was asked for"))
}

/// `n` new uuid4 strings from a single read of OS randomness, so that a
/// group of 100k tasks pays for one crossing into Rust, not one per task.
pub fn uuid4_batch(n: usize) -> Result<Vec<String>, RandomnessError> {
    let mut bytes = vec![0u8; n * 16];
    getrandom::fill(&mut bytes).map_err(|e| RandomnessError(e.to_string()))?;
    Ok(bytes
        .chunks_exact(16)
        .map(|chunk| {
            let mut raw = [0u8; 16];
            raw.copy_from_slice(chunk);
            format(Builder::from_random_bytes(raw).into_uuid())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn uuid4_has_the_shape_python_uuid_produces() {
        let id = uuid4().unwrap();
        assert_eq!(id.len(), UUID_LEN);
        let parsed = Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(id, id.to_lowercase());
        assert_eq!(
            id.char_indices()
                .filter(|(_, c)| *c == '-')
                .map(|(i, _)| i)
                .collect::<Vec<_>>(),
            vec![8, 13, 18, 23]
        );
    }

    #[test]
    fn batch_ids_are_unique_and_all_version_4() {
        let ids = uuid4_batch(10_000).unwrap();
        assert_eq!(ids.len(), 10_000);
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        assert!(ids
            .iter()
            .all(|id| Uuid::parse_str(id).unwrap().get_version_num() == 4));
    }

    #[test]
    fn empty_batch_is_empty() {
        assert!(uuid4_batch(0).unwrap().is_empty());
    }
}

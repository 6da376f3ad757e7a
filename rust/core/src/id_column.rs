//! `IdColumn`: a group's task ids, in group order, kept compactly.
//!
//! A dispatched group's results are kept as their ids until first touched;
//! a million ids held as Python strings cost ~93 MB (an 85-byte `str` and a
//! list slot each). Ids in the form `kombu.utils.uuid.uuid()` produces (what
//! nearly every child gets) are kept as their 16 bytes; any other string a
//! user chose as a `task_id` is kept as it was given.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::ids::UUID_LEN;

/// An index past the last id.
#[derive(Debug)]
pub struct IndexOutOfRange {
    pub index: usize,
    pub len: usize,
}

impl std::fmt::Display for IndexOutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "task id index {} out of range ({} ids)",
            self.index, self.len
        )
    }
}

impl std::error::Error for IndexOutOfRange {}

#[derive(Debug, Default)]
pub struct IdColumn {
    uuids: Vec<u128>,
    // Position -> an id that does not round-trip through the 16-byte form
    // (upper case, braces, not a uuid at all). Its `uuids` slot is unused.
    others: BTreeMap<usize, String>,
    // Positions whose id is not a string at all (an int a user chose, say):
    // the caller keeps those ids itself. Their `uuids` slots are unused.
    held: BTreeSet<usize>,
}

/// The 16 bytes of `id` when formatting them gives back exactly `id`.
fn canonical_uuid(id: &str) -> Option<u128> {
    if id.len() != UUID_LEN {
        return None;
    }
    let parsed = Uuid::try_parse(id).ok()?;
    let mut buf = [0u8; UUID_LEN];
    (parsed.hyphenated().encode_lower(&mut buf).as_bytes() == id.as_bytes())
        .then(|| parsed.as_u128())
}

impl IdColumn {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, id: &str) {
        match canonical_uuid(id) {
            Some(value) => self.uuids.push(value),
            None => {
                self.others.insert(self.uuids.len(), id.to_owned());
                self.uuids.push(0);
            }
        }
    }

    /// A slot whose id the caller keeps (`get` gives `None` for it).
    pub fn push_held(&mut self) {
        self.held.insert(self.uuids.len());
        self.uuids.push(0);
    }

    /// Moves every id of `other` to the end of this column.
    pub fn append(&mut self, other: &mut IdColumn) {
        let offset = self.uuids.len();
        self.others.extend(
            std::mem::take(&mut other.others)
                .into_iter()
                .map(|(i, id)| (i + offset, id)),
        );
        self.held.extend(
            std::mem::take(&mut other.held)
                .into_iter()
                .map(|i| i + offset),
        );
        self.uuids.append(&mut other.uuids);
    }

    pub fn len(&self) -> usize {
        self.uuids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.uuids.is_empty()
    }

    /// The id at `index`, as it was pushed; `None` for a held slot.
    pub fn get(&self, index: usize) -> Result<Option<String>, IndexOutOfRange> {
        let value = *self.uuids.get(index).ok_or(IndexOutOfRange {
            index,
            len: self.len(),
        })?;
        if let Some(other) = self.others.get(&index) {
            return Ok(Some(other.clone()));
        }
        if self.held.contains(&index) {
            return Ok(None);
        }
        let mut buf = [0u8; UUID_LEN];
        Ok(Some(
            Uuid::from_u128(value)
                .hyphenated()
                .encode_lower(&mut buf)
                .to_owned(),
        ))
    }

    pub fn iter(&self) -> impl Iterator<Item = Option<String>> + '_ {
        (0..self.len()).map(|i| self.get(i).expect("in range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::uuid4_batch;

    #[test]
    fn ids_come_back_as_they_were_pushed_in_order() {
        let mut column = IdColumn::new();
        let mut pushed = uuid4_batch(5).unwrap();
        pushed.insert(1, "my-own-id".to_owned());
        pushed.insert(3, pushed[0].to_uppercase());
        pushed.push(format!("{{{}}}", pushed[2]));
        pushed.push(String::new());
        pushed.push("00000000-0000-0000-0000-000000000000".to_owned());
        pushed.push("é".repeat(18)); // 36 bytes, not a uuid
        for id in &pushed {
            column.push(id);
        }
        assert_eq!(column.len(), pushed.len());
        assert_eq!(column.iter().collect::<Option<Vec<_>>>().unwrap(), pushed);
        assert!(column.get(pushed.len()).is_err());
        assert_eq!(column.others.len(), 5);
    }

    #[test]
    fn appended_columns_keep_their_order() {
        let (mut first, mut second) = (IdColumn::new(), IdColumn::new());
        let ids = uuid4_batch(4).unwrap();
        first.push(&ids[0]);
        first.push("own-1");
        first.push_held();
        second.push("own-2");
        second.push_held();
        second.push(&ids[1]);
        first.append(&mut second);
        assert!(second.is_empty());
        let expected = [
            Some(ids[0].clone()),
            Some("own-1".to_owned()),
            None,
            Some("own-2".to_owned()),
            None,
            Some(ids[1].clone()),
        ];
        assert_eq!(first.iter().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn empty_column() {
        let column = IdColumn::new();
        assert!(column.is_empty());
        assert_eq!(
            column.get(0).unwrap_err().to_string(),
            "task id index 0 out of range (0 ids)"
        );
    }
}

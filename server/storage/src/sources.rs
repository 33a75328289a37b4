//! Stream-source positions: how far each partition of an ingest source (a Kafka topic
//! partition, a Kinesis shard) has been applied. A position is stored in the same RocksDB write
//! as the records read up to it ([`crate::feature_store::FeatureStore::put_source_records`]),
//! so after a crash the stored position says exactly which records are in both stores: a worker
//! resumes after it, and a record at or before it is skipped as already applied.
//!
//! Keys in [`CF_SOURCE_POSITIONS`]: `[source length u16 BE][source][partition]` -> the
//! position's decimal digits.

use std::cmp::Ordering;
use std::fmt;

use rocksdb::{DB, Direction, IteratorMode};

use crate::db::{CF_SOURCE_POSITIONS, cf};
use quiver_types::error::{Error, Result, quote};

/// Longest source or partition name, in bytes.
pub const MAX_NAME_BYTES: usize = 512;
/// Most digits of a position (Kinesis sequence numbers have up to 128).
pub const MAX_POSITION_DIGITS: usize = 128;

/// A position in a partition: a non-negative integer of any size (Kafka offsets, Kinesis
/// sequence numbers), kept as canonical decimal digits and ordered as a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position(String);

impl Position {
    /// Parses `value`, naming `field` in the error.
    pub fn parse(field: &str, value: &str) -> Result<Self> {
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::validation(format!(
                "{field} {} is not a non-negative decimal integer",
                quote(value)
            )));
        }
        let digits = value.trim_start_matches('0');
        let digits = if digits.is_empty() { "0" } else { digits };
        if digits.len() > MAX_POSITION_DIGITS {
            return Err(Error::validation(format!(
                "{field} has {} digits; at most {MAX_POSITION_DIGITS}",
                digits.len()
            )));
        }
        Ok(Self(digits.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> Ordering {
        // Canonical digits: the longer number is the larger.
        (self.0.len(), self.0.as_bytes()).cmp(&(other.0.len(), other.0.as_bytes()))
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a source or partition name: non-empty, at most [`MAX_NAME_BYTES`], no control
/// characters.
pub fn validate_name(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::validation(format!("{field} must not be empty")));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(Error::validation(format!(
            "{field} is {} bytes long; at most {MAX_NAME_BYTES}",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::validation(format!(
            "{field} {} contains a control character",
            quote(value)
        )));
    }
    Ok(())
}

fn prefix(source: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + source.len());
    // Names are at most MAX_NAME_BYTES (validated), so the length fits.
    key.extend_from_slice(&(source.len() as u16).to_be_bytes());
    key.extend_from_slice(source.as_bytes());
    key
}

/// The key of `partition` of `source`.
pub fn key(source: &str, partition: &str) -> Vec<u8> {
    let mut key = prefix(source);
    key.extend_from_slice(partition.as_bytes());
    key
}

/// The stored position of `partition` of `source`, if any.
pub fn read(db: &DB, source: &str, partition: &str) -> Result<Option<Position>> {
    let stored = db
        .get_pinned_cf(cf(db, CF_SOURCE_POSITIONS), key(source, partition))
        .map_err(|e| Error::storage("reading a source position", e))?;
    stored.map(|bytes| decode(&bytes)).transpose().map_err(|e| {
        e.at(format!(
            "source {} partition {}",
            quote(source),
            quote(partition)
        ))
    })
}

/// Every stored position of `source`, by partition name.
pub fn list(db: &DB, source: &str) -> Result<Vec<(String, Position)>> {
    let prefix = prefix(source);
    let mut positions = Vec::new();
    let iter = db.iterator_cf(
        cf(db, CF_SOURCE_POSITIONS),
        IteratorMode::From(&prefix, Direction::Forward),
    );
    for item in iter {
        let (key, value) = item.map_err(|e| Error::storage("listing source positions", e))?;
        let Some(partition) = key.strip_prefix(prefix.as_slice()) else {
            break;
        };
        let partition = String::from_utf8(partition.to_vec())
            .map_err(|_| Error::internal("a stored source partition name is not UTF-8"))?;
        positions.push((partition, decode(&value)?));
    }
    Ok(positions)
}

fn decode(bytes: &[u8]) -> Result<Position> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| Position::parse("stored position", s).ok())
        .ok_or_else(|| Error::internal("a stored source position is corrupt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_as_numbers_of_any_length() {
        let p = |s: &str| Position::parse("Position", s).unwrap();
        assert!(p("9") < p("10"));
        assert!(p("0010") == p("10"));
        assert_eq!(p("000").as_str(), "0");
        let kinesis = "49590338271490256608559692538361571095921575989136588898";
        assert!(p(kinesis) > p("18446744073709551615"));
        assert!(p(kinesis) < p(&format!("{kinesis}0")));
        for bad in ["", "-1", "1.5", " 1", "x"] {
            let e = Position::parse("Positions[0].Position", bad).unwrap_err();
            assert!(e.message().contains("Positions[0].Position"), "{e:?}");
        }
        assert!(Position::parse("P", &"9".repeat(MAX_POSITION_DIGITS + 1)).is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("Source", "orders").is_ok());
        assert!(validate_name("Source", "").is_err());
        assert!(validate_name("Source", "a\nb").is_err());
        assert!(validate_name("Source", &"x".repeat(MAX_NAME_BYTES + 1)).is_err());
    }
}

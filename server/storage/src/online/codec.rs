//! The binary form of a stored online record (RocksDB value), versioned by its first byte.
//!
//! Layout of format 1 (all integers little-endian):
//! `[format u8 = 1][flags u8][event_time_ms i64][expires_at_ms i64][count u32]` then `count`
//! values, each `[ordinal u16][tag u8][payload]`. Flags: bit 0 soft-deleted, bit 1 has expiry.
//! Values refer to features by ordinal, which never changes, so records written before a feature
//! was added simply lack it. Decoding never panics: a malformed value is an internal error.
//!
//! Format 2 is format 1 encrypted at rest ([`seal`]): the first 18 bytes (format = 2, flags,
//! event time, expiry) stay in clear so the write path and TTL purge can compare and expire
//! records without their keys, and the rest (count and values) is sealed with the group's data
//! key ([`crate::kms::DataKeys`]), bound to the record's key and those 18 bytes.
//!
//! Format 3 is format 2 for a record stored under a hashed key (`online/keys.rs`): the sealed
//! part begins with the record's identifier, `[length u32][UTF-8]`, since the key no longer
//! holds it (ListRecords reads it from there).

use crate::kms::{DataKeys, Scope};
use quiver_types::error::{Error, Result};
use quiver_types::model::Value;
use quiver_types::time::EpochMillis;

const FORMAT_V1: u8 = 1;
const FORMAT_SEALED: u8 = 2;
const FORMAT_SEALED_KEYED: u8 = 3;
/// The bytes of a record's header kept in clear by format 2.
const CLEAR_LEN: usize = 18;
const FLAG_DELETED: u8 = 1;
const FLAG_EXPIRES: u8 = 2;
const HEADER_LEN: usize = 22;

const TAG_INTEGRAL: u8 = 1;
const TAG_FRACTIONAL: u8 = 2;
const TAG_STRING: u8 = 3;
const TAG_INTEGRAL_LIST: u8 = 4;
const TAG_FRACTIONAL_LIST: u8 = 5;
const TAG_STRING_LIST: u8 = 6;

/// What the write path needs to decide whether a write is newer, without decoding values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub event_time_ms: EpochMillis,
    pub expires_at_ms: Option<EpochMillis>,
    /// A soft-deleted record: kept so older writes stay historic, never returned.
    pub deleted: bool,
}

impl RecordHeader {
    /// True when a reader at `now_ms` must not see the record.
    pub fn is_hidden_at(&self, now_ms: EpochMillis) -> bool {
        self.deleted || self.expires_at_ms.is_some_and(|t| t <= now_ms)
    }
}

/// The leading bytes of a stored record (either format) that hold its header in clear: what the
/// record-headers column family keeps, and what [`decode_header`] reads.
pub fn header_bytes(stored: &[u8]) -> Result<&[u8]> {
    stored
        .get(..CLEAR_LEN)
        .ok_or_else(|| corrupt("record shorter than its header"))
}

/// A decoded online record.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub header: RecordHeader,
    /// (feature ordinal, value), in ordinal order.
    pub values: Vec<(u16, Value)>,
}

pub fn encode(header: &RecordHeader, values: &[(u16, Value)]) -> Vec<u8> {
    let payload: usize = values.iter().map(|(_, v)| 8 + v.size_bytes() * 2).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + payload);
    let mut flags = 0;
    if header.deleted {
        flags |= FLAG_DELETED;
    }
    if header.expires_at_ms.is_some() {
        flags |= FLAG_EXPIRES;
    }
    out.push(FORMAT_V1);
    out.push(flags);
    out.extend_from_slice(&header.event_time_ms.to_le_bytes());
    out.extend_from_slice(&header.expires_at_ms.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for (ordinal, value) in values {
        out.extend_from_slice(&ordinal.to_le_bytes());
        encode_value(&mut out, value);
    }
    out
}

fn encode_value(out: &mut Vec<u8>, value: &Value) {
    let put_str = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    match value {
        Value::Integral(n) => {
            out.push(TAG_INTEGRAL);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Value::Fractional(f) => {
            out.push(TAG_FRACTIONAL);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::String(s) => {
            out.push(TAG_STRING);
            put_str(out, s);
        }
        Value::IntegralList(v) => {
            out.push(TAG_INTEGRAL_LIST);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            v.iter()
                .for_each(|n| out.extend_from_slice(&n.to_le_bytes()));
        }
        Value::FractionalList(v) => {
            out.push(TAG_FRACTIONAL_LIST);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            v.iter()
                .for_each(|f| out.extend_from_slice(&f.to_le_bytes()));
        }
        Value::StringList(v) => {
            out.push(TAG_STRING_LIST);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            v.iter().for_each(|s| put_str(out, s));
        }
    }
}

/// `plain` (format 1) encrypted for `scope` as format 2, or as format 3 holding `identifier`
/// when given (a record under a hashed key); `record_key` is bound to it.
pub fn seal(
    plain: &[u8],
    identifier: Option<&str>,
    record_key: &[u8],
    keys: &DataKeys,
    scope: &Scope<'_>,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(plain.len() + crate::kms::data_keys::OVERHEAD);
    out.extend_from_slice(
        plain
            .get(..CLEAR_LEN)
            .ok_or_else(|| corrupt("short record"))?,
    );
    out[0] = match identifier {
        None => FORMAT_SEALED,
        Some(_) => FORMAT_SEALED_KEYED,
    };
    let aad = [record_key, &out[..CLEAR_LEN]].concat();
    match identifier {
        None => keys.seal(scope, &aad, &plain[CLEAR_LEN..], &mut out)?,
        Some(identifier) => {
            let mut inner = Vec::with_capacity(4 + identifier.len() + plain.len() - CLEAR_LEN);
            inner.extend_from_slice(&(identifier.len() as u32).to_le_bytes());
            inner.extend_from_slice(identifier.as_bytes());
            inner.extend_from_slice(&plain[CLEAR_LEN..]);
            keys.seal(scope, &aad, &inner, &mut out)?;
        }
    }
    Ok(out)
}

/// Whether `stored` is encrypted (format 2 or 3).
pub fn is_sealed(stored: &[u8]) -> bool {
    matches!(stored.first(), Some(&FORMAT_SEALED | &FORMAT_SEALED_KEYED))
}

/// Whether `stored` is a record of a hashed key, holding its identifier (format 3).
pub fn holds_identifier(stored: &[u8]) -> bool {
    stored.first() == Some(&FORMAT_SEALED_KEYED)
}

/// A format-2 or format-3 record, opened.
#[derive(Debug)]
pub struct Unsealed {
    /// The record in format 1.
    pub plain: Vec<u8>,
    /// The identifier a format-3 record holds.
    pub identifier: Option<String>,
}

/// Opens a format-2 or format-3 record of group `group_id` stored under `record_key`.
pub fn unseal(
    stored: &[u8],
    record_key: &[u8],
    keys: &DataKeys,
    group_id: u64,
) -> Result<Unsealed> {
    let clear = stored
        .get(..CLEAR_LEN)
        .ok_or_else(|| corrupt("short record"))?;
    let aad = [record_key, clear].concat();
    let opened = keys.open(group_id, &aad, &stored[CLEAR_LEN..])?;
    let (identifier, rest) = if holds_identifier(stored) {
        let mut r = Reader::new(&opened);
        let identifier = r.str()?.to_string();
        (Some(identifier), r.bytes)
    } else {
        (None, &opened[..])
    };
    let mut plain = Vec::with_capacity(CLEAR_LEN + rest.len());
    plain.extend_from_slice(clear);
    plain[0] = FORMAT_V1;
    plain.extend_from_slice(rest);
    Ok(Unsealed { plain, identifier })
}

/// The header of a stored record, either format.
pub fn decode_header(bytes: &[u8]) -> Result<RecordHeader> {
    let mut r = Reader::new(bytes);
    let format = r.u8()?;
    if !matches!(format, FORMAT_V1 | FORMAT_SEALED | FORMAT_SEALED_KEYED) {
        return Err(corrupt(&format!("unknown record format {format}")));
    }
    let flags = r.u8()?;
    let event_time_ms = r.i64()?;
    let expires = r.i64()?;
    Ok(RecordHeader {
        event_time_ms,
        expires_at_ms: (flags & FLAG_EXPIRES != 0).then_some(expires),
        deleted: flags & FLAG_DELETED != 0,
    })
}

/// Decodes a whole record into owned values.
pub fn decode(bytes: &[u8]) -> Result<StoredRecord> {
    let header = decode_header(bytes)?;
    let mut values = Vec::new();
    visit(bytes, |ordinal, value| {
        values.push((ordinal, value.to_value()))
    })?;
    Ok(StoredRecord { header, values })
}

/// Calls `f` with each value of a record, in stored (ordinal) order, borrowed from `bytes`: the
/// read path encodes responses from these without building owned values first. The whole
/// record is checked before `f` sees anything, so a corrupt record yields an error and no values.
pub fn visit<'a>(bytes: &'a [u8], mut f: impl FnMut(u16, ValueRef<'a>)) -> Result<()> {
    if is_sealed(bytes) {
        return Err(Error::internal(
            "an encrypted record was read without decrypting it",
        ));
    }
    decode_header(bytes)?;
    let values = || -> Result<Vec<(u16, ValueRef<'a>)>> {
        let mut r = Reader::new(&bytes[HEADER_LEN - 4..]);
        let count = r.u32()? as usize;
        let mut out = Vec::with_capacity(count.min(r.bytes.len() / 3));
        for _ in 0..count {
            let ordinal = r.u16()?;
            out.push((ordinal, decode_value(&mut r)?));
        }
        Ok(out)
    };
    values()?.into_iter().for_each(|(o, v)| f(o, v));
    Ok(())
}

/// A stored value, borrowed from the record's bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Integral(i64),
    Fractional(f64),
    String(&'a str),
    IntegralList(Numbers<'a>),
    FractionalList(Numbers<'a>),
    StringList(Strings<'a>),
}

impl ValueRef<'_> {
    pub fn to_value(self) -> Value {
        match self {
            ValueRef::Integral(n) => Value::Integral(n),
            ValueRef::Fractional(f) => Value::Fractional(f),
            ValueRef::String(s) => Value::String(s.to_string()),
            ValueRef::IntegralList(n) => Value::IntegralList(n.integers().collect()),
            ValueRef::FractionalList(n) => Value::FractionalList(n.fractions().collect()),
            ValueRef::StringList(s) => Value::StringList(s.iter().map(str::to_string).collect()),
        }
    }
}

/// A stored list of 8-byte little-endian numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Numbers<'a> {
    bytes: &'a [u8],
}

impl<'a> Numbers<'a> {
    pub fn len(&self) -> usize {
        self.bytes.len() / 8
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn integers(&self) -> impl Iterator<Item = i64> + 'a {
        self.bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8-byte chunk")))
    }

    pub fn fractions(&self) -> impl Iterator<Item = f64> + 'a {
        self.integers().map(|n| f64::from_bits(n as u64))
    }

    /// The values as stored: little-endian IEEE 754 doubles are also protobuf's packed form.
    pub fn le_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// A stored list of strings, each `[len u32][UTF-8 bytes]`, checked when decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Strings<'a> {
    count: usize,
    bytes: &'a [u8],
}

impl<'a> Strings<'a> {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let mut r = Reader::new(self.bytes);
        (0..self.count).map(move |_| r.str().expect("checked when decoded"))
    }
}

fn decode_value<'a>(r: &mut Reader<'a>) -> Result<ValueRef<'a>> {
    Ok(match r.u8()? {
        TAG_INTEGRAL => ValueRef::Integral(r.i64()?),
        TAG_FRACTIONAL => ValueRef::Fractional(f64::from_bits(r.i64()? as u64)),
        TAG_STRING => ValueRef::String(r.str()?),
        tag @ (TAG_INTEGRAL_LIST | TAG_FRACTIONAL_LIST) => {
            let n = r.len(8)?;
            let numbers = Numbers {
                bytes: r.take(n * 8)?,
            };
            if tag == TAG_INTEGRAL_LIST {
                ValueRef::IntegralList(numbers)
            } else {
                ValueRef::FractionalList(numbers)
            }
        }
        TAG_STRING_LIST => {
            let count = r.len(4)?;
            let start = r.bytes;
            for _ in 0..count {
                r.str()?;
            }
            let used = start.len() - r.bytes.len();
            ValueRef::StringList(Strings {
                count,
                bytes: &start[..used],
            })
        }
        tag => return Err(corrupt(&format!("unknown value tag {tag}"))),
    })
}

fn corrupt(what: &str) -> Error {
    Error::internal(format!("corrupt online record: {what}"))
}

/// A bounds-checked cursor over a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn i64(&mut self) -> Result<i64> {
        self.array().map(i64::from_le_bytes)
    }

    /// A count of elements of at least `min_size` bytes each, checked against what is left so a
    /// corrupt count cannot make us allocate gigabytes.
    fn len(&mut self, min_size: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.bytes.len() {
            return Err(corrupt("length past the end"));
        }
        Ok(n)
    }

    fn str(&mut self) -> Result<&'a str> {
        let n = self.len(1)?;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).map_err(|_| corrupt("string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (RecordHeader, Vec<(u16, Value)>) {
        (
            RecordHeader {
                event_time_ms: -5,
                expires_at_ms: Some(99),
                deleted: false,
            },
            vec![
                (0, Value::Integral(-1)),
                (1, Value::Fractional(1.5)),
                (2, Value::String("héllo".into())),
                (3, Value::IntegralList(vec![1, 2])),
                (4, Value::FractionalList(vec![0.25])),
                (5, Value::StringList(vec!["a".into(), String::new()])),
            ],
        )
    }

    #[test]
    fn sealed_records_keep_their_header_in_clear_and_a_keyed_one_its_identifier() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::open(
            &dir.path().join("db"),
            &crate::db::StorageOptions {
                block_cache_bytes: 1 << 20,
            },
        )
        .unwrap();
        let keys = crate::kms::data_keys::local_for_tests(db, &dir.path().join("k"), true);
        let scope = Scope {
            group_id: 4,
            key_id: crate::kms::DEFAULT_KEY_ID,
            arn: "arn:aws:sagemaker:us-east-1:000000000000:feature-group/g",
        };
        let (header, values) = sample();
        let plain = encode(&header, &values);
        for identifier in [None, Some("ada@example.com")] {
            let sealed = seal(&plain, identifier, b"key-a", &keys, &scope).unwrap();
            assert!(is_sealed(&sealed));
            assert_eq!(holds_identifier(&sealed), identifier.is_some());
            assert_eq!(decode_header(&sealed).unwrap(), header);
            assert!(
                visit(&sealed, |_, _| ()).is_err(),
                "sealed values are not read"
            );
            let opened = unseal(&sealed, b"key-a", &keys, 4).unwrap();
            assert_eq!(opened.plain, plain);
            assert_eq!(opened.identifier.as_deref(), identifier);
            if let Some(identifier) = identifier {
                let found = sealed
                    .windows(identifier.len())
                    .any(|w| w == identifier.as_bytes());
                assert!(!found, "the identifier is sealed");
            }
            assert!(
                unseal(&sealed, b"key-b", &keys, 4).is_err(),
                "bound to its key"
            );
            let mut damaged = sealed.clone();
            damaged[1] ^= FLAG_DELETED;
            assert!(
                unseal(&damaged, b"key-a", &keys, 4).is_err(),
                "header bound"
            );
        }
    }

    #[test]
    fn round_trip() {
        let (header, values) = sample();
        let bytes = encode(&header, &values);
        assert_eq!(decode_header(&bytes).unwrap(), header);
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.values, values);
        let mut borrowed = Vec::new();
        visit(&bytes, |o, v| borrowed.push((o, v.to_value()))).unwrap();
        assert_eq!(borrowed, values);
    }

    #[test]
    fn truncated_or_garbage_is_an_error_not_a_panic() {
        let (header, values) = sample();
        let bytes = encode(&header, &values);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
            let mut seen = 0;
            assert!(
                visit(&bytes[..cut], |_, _| seen += 1).is_err(),
                "cut at {cut}"
            );
            assert_eq!(seen, 0, "nothing visited from a corrupt record");
        }
        let mut garbage = bytes.clone();
        garbage[HEADER_LEN + 2] = 200;
        assert!(decode(&garbage).is_err());
    }
}

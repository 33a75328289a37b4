//! PutRecord's request read straight from its protobuf bytes, the counterpart of [`super::encode`]
//! on the write path: the feature names stay borrowed from the received frame and each value is
//! read once into its final form, instead of prost building a `pb::FeatureValue` (a `String` per
//! name) that the server then converts and drops. prost decoding and the conversion were about
//! 10% of the server's CPU per PutRecord of 50 features; this reading is about 5%
//! (docs/benchmarks.md, eighth round).
//!
//! This reads the form every protobuf library writes: each field once (the repeated ones
//! aside), in any order. Anything else (a field given twice, which protobuf merges; an unknown
//! field; malformed bytes) makes it answer `None`, and the caller decodes the request with prost
//! instead, which merges as protobuf says or reports what is wrong. So both ways give the same
//! request; the tests below check that against prost.

use prost::Message;
use quiver_proto::v1 as pb;
use quiver_proto::v1::feature_value::Value;

use super::encode::{
    VALUE_FRACTIONAL, VALUE_FRACTIONAL_LIST, VALUE_INTEGRAL, VALUE_INTEGRAL_LIST, VALUE_NAME,
    VALUE_STRING, VALUE_STRING_LIST,
};

// Field numbers in featurestore.proto.
const PUT_GROUP_NAME: u32 = 1;
const PUT_RECORD: u32 = 2;
const PUT_TARGET_STORES: u32 = 3;
const PUT_TTL_DURATION: u32 = 4;

// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// A PutRecordRequest with its names and group name borrowed from the received bytes; the
/// fields as prost would decode them.
#[derive(Debug, PartialEq)]
pub struct PutRecordRequest<'a> {
    pub feature_group_name: &'a str,
    /// (feature name, value) of each `record` entry, in request order.
    pub record: Vec<(&'a str, Option<Value>)>,
    pub target_stores: Vec<i32>,
    pub ttl_duration: Option<pb::TtlDuration>,
}

impl<'a> PutRecordRequest<'a> {
    /// The same request, from one prost decoded (the values copied).
    pub fn of(request: &'a pb::PutRecordRequest) -> Self {
        Self {
            feature_group_name: &request.feature_group_name,
            record: (request.record.iter())
                .map(|v| (v.feature_name.as_str(), v.value.clone()))
                .collect(),
            target_stores: request.target_stores.clone(),
            ttl_duration: request.ttl_duration,
        }
    }
}

/// Reads a PutRecordRequest; `None` when it is not in the plain form this reads (see the
/// module's documentation): decode it with prost.
pub fn put_record_request(bytes: &[u8]) -> Option<PutRecordRequest<'_>> {
    let mut reader = Reader(bytes);
    let mut group_name = None;
    // About one entry per 24 bytes for records of numbers and short strings.
    let mut record = Vec::with_capacity((bytes.len() / 24).min(1024));
    let mut target_stores = Vec::new();
    let mut ttl_duration = None;
    while !reader.0.is_empty() {
        match reader.key()? {
            (PUT_GROUP_NAME, LEN) if group_name.is_none() => group_name = Some(reader.str()?),
            (PUT_RECORD, LEN) => record.push(feature_value(reader.len_delimited()?)?),
            (PUT_TARGET_STORES, VARINT) => target_stores.push(reader.varint()? as i32),
            (PUT_TARGET_STORES, LEN) => {
                // Packed, as proto3 writes repeated enums.
                let mut packed = Reader(reader.len_delimited()?);
                while !packed.0.is_empty() {
                    target_stores.push(packed.varint()? as i32);
                }
            }
            (PUT_TTL_DURATION, LEN) if ttl_duration.is_none() => {
                ttl_duration = Some(pb::TtlDuration::decode(reader.len_delimited()?).ok()?);
            }
            _ => return None,
        }
    }
    Some(PutRecordRequest {
        feature_group_name: group_name.unwrap_or(""),
        record,
        target_stores,
        ttl_duration,
    })
}

/// One FeatureValue: its name, and its value if it has one.
fn feature_value(bytes: &[u8]) -> Option<(&str, Option<Value>)> {
    let mut reader = Reader(bytes);
    let mut name = None;
    let mut value = None;
    while !reader.0.is_empty() {
        let (field, wire_type) = reader.key()?;
        if field == VALUE_NAME {
            if wire_type != LEN || name.is_some() {
                return None;
            }
            name = Some(reader.str()?);
            continue;
        }
        if value.is_some() {
            return None; // a second value: protobuf keeps the last, or merges lists
        }
        value = Some(match (field, wire_type) {
            (VALUE_INTEGRAL, VARINT) => Value::Integral(reader.varint()? as i64),
            (VALUE_FRACTIONAL, FIXED64) => Value::Fractional(f64::from_bits(reader.fixed64()?)),
            (VALUE_STRING, LEN) => Value::StringValue(reader.str()?.to_owned()),
            (VALUE_INTEGRAL_LIST, LEN) => {
                Value::IntegralList(pb::IntegralList::decode(reader.len_delimited()?).ok()?)
            }
            (VALUE_FRACTIONAL_LIST, LEN) => {
                Value::FractionalList(pb::FractionalList::decode(reader.len_delimited()?).ok()?)
            }
            (VALUE_STRING_LIST, LEN) => {
                Value::StringList(pb::StringList::decode(reader.len_delimited()?).ok()?)
            }
            _ => return None,
        });
    }
    Some((name.unwrap_or(""), value))
}

/// The unread rest of a message.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        prost::encoding::decode_varint(&mut self.0).ok()
    }

    /// A field's number and wire type.
    fn key(&mut self) -> Option<(u32, u8)> {
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).ok().filter(|f| *f != 0)?;
        Some((field, (key & 7) as u8))
    }

    fn len_delimited(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        if len > self.0.len() {
            return None;
        }
        let (field, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(field)
    }

    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.len_delimited()?).ok()
    }

    fn fixed64(&mut self) -> Option<u64> {
        let (bytes, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_le_bytes(*bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What prost makes of the same bytes, in this module's form.
    fn by_prost(bytes: &[u8]) -> Option<pb::PutRecordRequest> {
        pb::PutRecordRequest::decode(bytes).ok()
    }

    fn same(ours: &PutRecordRequest<'_>, theirs: &pb::PutRecordRequest) -> bool {
        ours.feature_group_name == theirs.feature_group_name
            && ours.target_stores == theirs.target_stores
            && ours.ttl_duration == theirs.ttl_duration
            && ours.record.len() == theirs.record.len()
            && ours
                .record
                .iter()
                .zip(&theirs.record)
                .all(|((name, value), v)| *name == v.feature_name && *value == v.value)
    }

    fn value(name: &str, value: Option<Value>) -> pb::FeatureValue {
        pb::FeatureValue {
            feature_name: name.into(),
            value,
        }
    }

    fn sample() -> pb::PutRecordRequest {
        pb::PutRecordRequest {
            feature_group_name: "customers-é".into(),
            record: vec![
                value("id", Some(Value::StringValue("c1".into()))),
                value("ts", Some(Value::Fractional(1.7e9))),
                value("n", Some(Value::Integral(-42))),
                value("zero", Some(Value::Integral(0))),
                value("empty", Some(Value::StringValue(String::new()))),
                value(
                    "ns",
                    Some(Value::IntegralList(pb::IntegralList {
                        values: vec![1, -2, i64::MAX],
                    })),
                ),
                value(
                    "fs",
                    Some(Value::FractionalList(pb::FractionalList {
                        values: vec![0.5, -1e-300],
                    })),
                ),
                value(
                    "ss",
                    Some(Value::StringList(pb::StringList {
                        values: vec!["a".into(), String::new()],
                    })),
                ),
                value("missing", None),
                value("", Some(Value::Integral(1))),
            ],
            target_stores: vec![1, 2, 7],
            ttl_duration: Some(pb::TtlDuration {
                unit: pb::TtlUnit::Hours as i32,
                value: 3,
            }),
        }
    }

    #[test]
    fn reads_what_prost_writes() {
        for request in [sample(), pb::PutRecordRequest::default()] {
            let bytes = request.encode_to_vec();
            let ours = put_record_request(&bytes).expect("the plain form is read");
            assert!(same(&ours, &request), "{ours:?} vs {request:?}");
        }
    }

    #[test]
    fn leaves_merged_and_unknown_fields_to_prost() {
        let mut bytes = sample().encode_to_vec();
        // The group name again: protobuf keeps the last.
        prost::encoding::string::encode(PUT_GROUP_NAME, &"other".to_string(), &mut bytes);
        assert_eq!(put_record_request(&bytes), None);
        assert_eq!(by_prost(&bytes).unwrap().feature_group_name, "other");

        let mut bytes = sample().encode_to_vec();
        prost::encoding::int64::encode(99, &5, &mut bytes);
        assert_eq!(put_record_request(&bytes), None);
        assert!(by_prost(&bytes).is_some(), "prost skips unknown fields");

        // A FeatureValue with two values.
        let mut entry = value("n", Some(Value::Integral(1))).encode_to_vec();
        prost::encoding::int64::encode(VALUE_INTEGRAL, &2, &mut entry);
        let mut bytes = Vec::new();
        prost::encoding::bytes::encode(PUT_RECORD, &entry, &mut bytes);
        assert_eq!(put_record_request(&bytes), None);
        assert_eq!(
            by_prost(&bytes).unwrap().record[0].value,
            Some(Value::Integral(2))
        );
    }

    /// Unpacked target stores are read too, as prost reads them.
    #[test]
    fn reads_unpacked_target_stores() {
        let mut bytes = Vec::new();
        for store in [1_i32, 2] {
            prost::encoding::int32::encode(PUT_TARGET_STORES, &store, &mut bytes);
        }
        let ours = put_record_request(&bytes).unwrap();
        assert_eq!(ours.target_stores, vec![1, 2]);
        assert!(same(&ours, &by_prost(&bytes).unwrap()));
    }

    /// Every truncation and many single-byte corruptions of a request: whenever this reads a
    /// request, prost reads the same one.
    #[test]
    fn agrees_with_prost_on_damaged_bytes() {
        let bytes = sample().encode_to_vec();
        let mut read = 0;
        let mut check = |damaged: &[u8]| {
            if let Some(ours) = put_record_request(damaged) {
                read += 1;
                let theirs = by_prost(damaged)
                    .unwrap_or_else(|| panic!("prost refuses what was read: {damaged:?}"));
                assert!(same(&ours, &theirs), "{ours:?} vs {theirs:?}");
            }
        };
        for len in 0..bytes.len() {
            check(&bytes[..len]);
        }
        for at in 0..bytes.len() {
            for flip in [0x01_u8, 0x80, 0xff, 0x07] {
                let mut damaged = bytes.clone();
                damaged[at] ^= flip;
                check(&damaged);
            }
        }
        assert!(read > 100, "only {read} damaged requests were read");
    }
}

//! GetRecord and BatchGetRecord responses written in protobuf wire form straight from stored
//! records ([`RecordView::for_each`] lends each value from the stored bytes), instead of building
//! `pb::FeatureValue`s (a `String` per name and value) and then encoding them. On the read path
//! that was about a sixth of the server's CPU per GetRecord (docs/benchmarks.md).
//!
//! The bytes are exactly what prost writes for the generated messages (`GetRecordResponse`,
//! `BatchGetRecordResponse` in featurestore.proto); the tests below compare the two.

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use quiver_proto::Encoded;
use quiver_proto::v1 as pb;

use quiver_core::{BatchGetItem, RecordView};
use quiver_storage::online::codec::ValueRef;
use quiver_types::error::Result;
use quiver_types::time;

// Field numbers in featurestore.proto (FeatureValue's are read by `decode.rs` too).
const GET_RECORD_RECORD: u32 = 1;
const GET_RECORD_EXPIRES_AT: u32 = 2;
const BATCH_RECORDS: u32 = 1;
const BATCH_ERRORS: u32 = 2;
const DETAIL_GROUP: u32 = 1;
const DETAIL_IDENTIFIER: u32 = 2;
const DETAIL_RECORD: u32 = 3;
const DETAIL_EXPIRES_AT: u32 = 4;
pub(super) const VALUE_NAME: u32 = 1;
pub(super) const VALUE_INTEGRAL: u32 = 2;
pub(super) const VALUE_FRACTIONAL: u32 = 3;
pub(super) const VALUE_STRING: u32 = 4;
pub(super) const VALUE_INTEGRAL_LIST: u32 = 5;
pub(super) const VALUE_FRACTIONAL_LIST: u32 = 6;
pub(super) const VALUE_STRING_LIST: u32 = 7;
/// `values`, the one field of IntegralList, FractionalList and StringList.
const LIST_VALUES: u32 = 1;

/// A GetRecordResponse: the record's features (none when there is no live record) and, when
/// asked for and the record has one, its expiry.
pub fn get_record_response(view: Option<&RecordView>, with_expiry: bool) -> Result<Encoded> {
    let mut out = Vec::with_capacity(view.map_or(0, |v| v.stored_len() * 2));
    if let Some(view) = view {
        record(&mut out, GET_RECORD_RECORD, view)?;
        string(
            &mut out,
            GET_RECORD_EXPIRES_AT,
            &expires_at(view, with_expiry),
        );
    }
    Ok(Encoded(out))
}

/// A BatchGetRecordResponse: found records in request order, then the per-identifier errors.
pub fn batch_get_record_response(items: &[BatchGetItem], with_expiry: bool) -> Result<Encoded> {
    let stored: usize = items
        .iter()
        .map(|item| match item {
            BatchGetItem::Found { record, .. } => record.stored_len(),
            _ => 0,
        })
        .sum();
    // Names make the wire form larger than the stored one; one allocation in the common case.
    let mut out = Vec::with_capacity(stored * 2);
    let mut detail = Vec::new();
    for item in items {
        if let BatchGetItem::Found {
            group_name,
            identifier,
            record: view,
        } = item
        {
            detail.clear();
            string(&mut detail, DETAIL_GROUP, group_name);
            string(&mut detail, DETAIL_IDENTIFIER, identifier);
            record(&mut detail, DETAIL_RECORD, view)?;
            string(
                &mut detail,
                DETAIL_EXPIRES_AT,
                &expires_at(view, with_expiry),
            );
            length_delimited(&mut out, BATCH_RECORDS, &detail);
        }
    }
    for item in items {
        if let BatchGetItem::Failed {
            group_name,
            identifier,
            code,
            message,
        } = item
        {
            let error = pb::BatchGetRecordError {
                feature_group_name: group_name.clone(),
                record_identifier_value_as_string: identifier.clone(),
                error_code: code.to_string(),
                error_message: message.clone(),
            };
            prost::encoding::message::encode(BATCH_ERRORS, &error, &mut out);
        }
    }
    Ok(Encoded(out))
}

fn expires_at(view: &RecordView, with_expiry: bool) -> String {
    match (with_expiry, view.expires_at_ms) {
        (true, Some(ms)) => time::format_iso8601(ms),
        _ => String::new(),
    }
}

/// The record's features as repeated FeatureValue field `tag`.
fn record(out: &mut Vec<u8>, tag: u32, view: &RecordView) -> Result<()> {
    view.for_each(|name, value| {
        let name_len = string_len(name);
        let body = name_len + value_len(&value);
        encode_key(tag, WireType::LengthDelimited, out);
        encode_varint(body as u64, out);
        string(out, VALUE_NAME, name);
        feature_value(out, &value);
    })
}

/// The `value` oneof of a FeatureValue: always written, even when zero or empty.
fn feature_value(out: &mut Vec<u8>, value: &ValueRef<'_>) {
    match value {
        ValueRef::Integral(n) => {
            encode_key(VALUE_INTEGRAL, WireType::Varint, out);
            encode_varint(*n as u64, out);
        }
        ValueRef::Fractional(f) => {
            encode_key(VALUE_FRACTIONAL, WireType::SixtyFourBit, out);
            out.extend_from_slice(&f.to_le_bytes());
        }
        ValueRef::String(s) => {
            encode_key(VALUE_STRING, WireType::LengthDelimited, out);
            encode_varint(s.len() as u64, out);
            out.extend_from_slice(s.as_bytes());
        }
        ValueRef::IntegralList(numbers) => {
            let packed: usize = numbers
                .integers()
                .map(|n| encoded_len_varint(n as u64))
                .sum();
            encode_key(VALUE_INTEGRAL_LIST, WireType::LengthDelimited, out);
            encode_varint(packed_field_len(packed) as u64, out);
            if packed > 0 {
                encode_key(LIST_VALUES, WireType::LengthDelimited, out);
                encode_varint(packed as u64, out);
                numbers
                    .integers()
                    .for_each(|n| encode_varint(n as u64, out));
            }
        }
        ValueRef::FractionalList(numbers) => {
            // Packed doubles are little-endian IEEE 754, as stored.
            let packed = numbers.le_bytes();
            encode_key(VALUE_FRACTIONAL_LIST, WireType::LengthDelimited, out);
            encode_varint(packed_field_len(packed.len()) as u64, out);
            if !packed.is_empty() {
                encode_key(LIST_VALUES, WireType::LengthDelimited, out);
                encode_varint(packed.len() as u64, out);
                out.extend_from_slice(packed);
            }
        }
        ValueRef::StringList(strings) => {
            let body: usize = strings.iter().map(element_len).sum();
            encode_key(VALUE_STRING_LIST, WireType::LengthDelimited, out);
            encode_varint(body as u64, out);
            for s in strings.iter() {
                encode_key(LIST_VALUES, WireType::LengthDelimited, out);
                encode_varint(s.len() as u64, out);
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
}

/// Bytes of the `value` oneof field, key included.
fn value_len(value: &ValueRef<'_>) -> usize {
    let body = match value {
        ValueRef::Integral(n) => return 1 + encoded_len_varint(*n as u64),
        ValueRef::Fractional(_) => return 1 + 8,
        ValueRef::String(s) => s.len(),
        ValueRef::IntegralList(numbers) => packed_field_len(
            numbers
                .integers()
                .map(|n| encoded_len_varint(n as u64))
                .sum(),
        ),
        ValueRef::FractionalList(numbers) => packed_field_len(numbers.le_bytes().len()),
        ValueRef::StringList(strings) => strings.iter().map(element_len).sum(),
    };
    1 + encoded_len_varint(body as u64) + body
}

/// A list message holding `packed` bytes of packed values (nothing when the list is empty).
fn packed_field_len(packed: usize) -> usize {
    if packed == 0 {
        0
    } else {
        1 + encoded_len_varint(packed as u64) + packed
    }
}

/// One element of a repeated string field, key included.
fn element_len(s: &str) -> usize {
    1 + encoded_len_varint(s.len() as u64) + s.len()
}

/// A proto3 string field: absent when empty, as prost writes it.
fn string(out: &mut Vec<u8>, tag: u32, s: &str) {
    if !s.is_empty() {
        length_delimited(out, tag, s.as_bytes());
    }
}

fn string_len(s: &str) -> usize {
    if s.is_empty() { 0 } else { element_len(s) }
}

fn length_delimited(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use quiver_core::FeatureStore;
    use quiver_types::model::{
        Collection, FeatureSpec, FeatureType, PutRequest, TargetStore, Value,
    };
    use quiver_types::time::ManualClock;

    fn pb_value(name: String, value: Value) -> pb::FeatureValue {
        use pb::feature_value::Value as V;
        let value = match value {
            Value::Integral(n) => V::Integral(n),
            Value::Fractional(f) => V::Fractional(f),
            Value::String(s) => V::StringValue(s),
            Value::IntegralList(values) => V::IntegralList(pb::IntegralList { values }),
            Value::FractionalList(values) => V::FractionalList(pb::FractionalList { values }),
            Value::StringList(values) => V::StringList(pb::StringList { values }),
        };
        pb::FeatureValue {
            feature_name: name,
            value: Some(value),
        }
    }

    fn pb_record(view: &RecordView) -> Vec<pb::FeatureValue> {
        let values = view.values().unwrap();
        values.into_iter().map(|(n, v)| pb_value(n, v)).collect()
    }

    /// A group with every type, and records with zero, negative, empty and non-ASCII values.
    fn store_with_records() -> (tempfile::TempDir, FeatureStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = quiver_core::testing::open(dir.path(), ManualClock::new(1_700_000_000_000));
        let feature = |name: &str, feature_type, collection| FeatureSpec {
            name: name.to_string(),
            feature_type,
            collection,
        };
        let mut spec = quiver_core::testing::spec(Some(3600), false);
        spec.name = "all".into();
        spec.features = vec![
            feature("id", FeatureType::String, Collection::Scalar),
            feature("ts", FeatureType::Fractional, Collection::Scalar),
            feature("n", FeatureType::Integral, Collection::Scalar),
            feature("f", FeatureType::Fractional, Collection::Scalar),
            feature("s", FeatureType::String, Collection::Scalar),
            feature("ns", FeatureType::Integral, Collection::List),
            feature("fs", FeatureType::Fractional, Collection::List),
            feature("ss", FeatureType::String, Collection::List),
        ];
        store.create_feature_group(spec).unwrap();
        let record =
            |id: &str, n: i64, s: &str, ns: Vec<i64>, fs: Vec<f64>, ss: Vec<&str>| PutRequest {
                record: vec![
                    ("id".into(), Value::String(id.into())),
                    ("ts".into(), Value::Fractional(1_700_000_000.5)),
                    ("n".into(), Value::Integral(n)),
                    ("f".into(), Value::Fractional(-0.0)),
                    ("s".into(), Value::String(s.into())),
                    ("ns".into(), Value::IntegralList(ns)),
                    ("fs".into(), Value::FractionalList(fs)),
                    (
                        "ss".into(),
                        Value::StringList(ss.into_iter().map(String::from).collect()),
                    ),
                ],
                target_stores: vec![TargetStore::OnlineStore],
                ttl: None,
            };
        for put in [
            record("a", 0, "", vec![], vec![], vec![]),
            record(
                "b",
                -1,
                "héllo wörld",
                vec![i64::MIN, 0, 300, i64::MAX],
                vec![1.5, f64::MAX, -2.0],
                vec!["", "x", &"long ".repeat(40)],
            ),
        ] {
            store.put_records(vec![("all".into(), put)]).unwrap();
        }
        (dir, store)
    }

    #[test]
    fn get_record_matches_prost() {
        let (_dir, store) = store_with_records();
        for id in ["a", "b"] {
            for features in [vec![], vec!["ss".to_string(), "n".to_string()]] {
                let view = store.get_record("all", id, &features).unwrap().unwrap();
                for with_expiry in [false, true] {
                    let expected = pb::GetRecordResponse {
                        record: pb_record(&view),
                        expires_at: expires_at(&view, with_expiry),
                    };
                    assert_eq!(with_expiry, !expected.expires_at.is_empty());
                    let ours = get_record_response(Some(&view), with_expiry).unwrap();
                    assert_eq!(
                        ours.0,
                        expected.encode_to_vec(),
                        "{id} {features:?} {with_expiry}"
                    );
                }
            }
        }
        let none = get_record_response(None, true).unwrap();
        assert_eq!(none.0, pb::GetRecordResponse::default().encode_to_vec());
    }

    #[test]
    fn batch_get_record_matches_prost() {
        let (_dir, store) = store_with_records();
        let entries = vec![
            quiver_core::BatchGetEntry {
                group_name: "all".into(),
                identifiers: vec!["b".into(), "missing".into(), "a".into()],
                feature_names: vec![],
            },
            quiver_core::BatchGetEntry {
                group_name: "no-such-group".into(),
                identifiers: vec!["a".into()],
                feature_names: vec![],
            },
        ];
        let items = store.batch_get_record(&entries).unwrap();
        let mut expected = pb::BatchGetRecordResponse::default();
        for item in &items {
            match item {
                BatchGetItem::Found {
                    group_name,
                    identifier,
                    record,
                } => expected.records.push(pb::BatchGetRecordResultDetail {
                    feature_group_name: group_name.clone(),
                    record_identifier_value_as_string: identifier.clone(),
                    record: pb_record(record),
                    expires_at: expires_at(record, true),
                }),
                BatchGetItem::Missing => {}
                BatchGetItem::Failed {
                    group_name,
                    identifier,
                    code,
                    message,
                } => expected.errors.push(pb::BatchGetRecordError {
                    feature_group_name: group_name.clone(),
                    record_identifier_value_as_string: identifier.clone(),
                    error_code: code.to_string(),
                    error_message: message.clone(),
                }),
            }
        }
        assert_eq!(expected.records.len(), 2);
        assert_eq!(expected.errors.len(), 1);
        let ours = batch_get_record_response(&items, true).unwrap();
        assert_eq!(ours.0, expected.encode_to_vec());
        // And a client decodes it as the generated message.
        let decoded = pb::BatchGetRecordResponse::decode(ours.0.as_slice()).unwrap();
        assert_eq!(decoded, expected);
    }
}

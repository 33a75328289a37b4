//! Records: typed feature values and the rules a record must satisfy before it is stored.

use std::collections::HashSet;

use crate::error::{Error, Result, quote};
use crate::model::validate::validate_ttl;
use crate::model::{Collection, Feature, FeatureGroup, FeatureType, TargetStore, TtlDuration};
use crate::time::{self, EpochMillis};

/// A record may hold at most 350 KB of values, as in SageMaker.
pub const MAX_RECORD_BYTES: usize = 350 * 1024;
/// A record identifier may be at most 2 KB.
pub const MAX_IDENTIFIER_BYTES: usize = 2 * 1024;

/// One feature's value, typed as its definition says.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Integral(i64),
    Fractional(f64),
    String(String),
    IntegralList(Vec<i64>),
    FractionalList(Vec<f64>),
    StringList(Vec<String>),
}

impl Value {
    /// The value's size as counted against the record limit.
    pub fn size_bytes(&self) -> usize {
        match self {
            Value::Integral(_) | Value::Fractional(_) => 8,
            Value::String(s) => s.len(),
            Value::IntegralList(v) => v.len() * 8,
            Value::FractionalList(v) => v.len() * 8,
            Value::StringList(v) => v.iter().map(String::len).sum(),
        }
    }

    fn kind_name(&self) -> &'static str {
        match self {
            Value::Integral(_) => "an Integral value",
            Value::Fractional(_) => "a Fractional value",
            Value::String(_) => "a String value",
            Value::IntegralList(_) => "a list of Integral values",
            Value::FractionalList(_) => "a list of Fractional values",
            Value::StringList(_) => "a list of String values",
        }
    }
}

/// Which stores a write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub online: bool,
    pub offline: bool,
}

/// A PutRecord request in domain terms. Its feature names are owned, or (`&str`) borrowed from
/// the request as received (gRPC PutRecord, `grpc/decode.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct PutRequest<N = String> {
    pub record: Vec<(N, Value)>,
    pub target_stores: Vec<TargetStore>,
    pub ttl: Option<TtlDuration>,
}

/// A record that passed every rule, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRecord {
    /// Canonical text of the record identifier (the online key).
    pub identifier: String,
    pub event_time_ms: EpochMillis,
    /// (feature ordinal, value), sorted by ordinal.
    pub values: Vec<(u16, Value)>,
    pub targets: Targets,
    /// Absolute expiry, from the record's TTL or the group's default.
    pub expires_at_ms: Option<EpochMillis>,
}

/// Validates a full record against its group: every feature known and typed right, the
/// identifier and event time present and valid, and every limit.
pub fn validate_put<N: AsRef<str>>(
    group: &FeatureGroup,
    request: PutRequest<N>,
) -> Result<ValidRecord> {
    let targets = resolve_targets(group, &request.target_stores)?;
    if let Some(ttl) = &request.ttl {
        validate_ttl("TtlDuration", ttl)?;
        if !group.has_online_store() {
            return Err(Error::validation(format!(
                "TtlDuration applies to the online store, and feature group '{}' has none",
                group.name
            )));
        }
    }
    let count = request.record.len();
    let values = request
        .record
        .into_iter()
        .enumerate()
        .map(|(i, (name, value))| match group.ordinal(name.as_ref()) {
            Some(ordinal) => Ok((i, ordinal, value)),
            None => Err(unknown_feature(group, i, name.as_ref())),
        });
    validate_resolved(group, targets, request.ttl, count, values)
}

/// Feature names given once for many records (the shared form of stream source records),
/// looked up in their group once.
#[derive(Debug, Clone)]
pub struct SharedNames {
    names: Vec<String>,
    /// Each name's ordinal in the group; none: no such feature.
    ordinals: Vec<Option<u16>>,
    /// Positions in `names`, unknown names first, then by ordinal: the order values are
    /// checked in, so that they come out sorted.
    order: Vec<usize>,
}

impl SharedNames {
    pub fn new(group: &FeatureGroup, names: Vec<String>) -> Self {
        let ordinals: Vec<Option<u16>> = names.iter().map(|n| group.ordinal(n)).collect();
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_by_key(|&i| ordinals[i]);
        Self {
            names,
            ordinals,
            order,
        }
    }
}

/// Validates a record given as the values of [`SharedNames`]: `values[i]` is the value of
/// name `i`; `None` values are absent. Written to the group's stores with its default TTL.
pub fn validate_values(
    group: &FeatureGroup,
    shared: &SharedNames,
    mut values: Vec<Option<Value>>,
) -> Result<ValidRecord> {
    if values.len() != shared.names.len() {
        return Err(Error::validation(format!(
            "Values holds {} values for {} FeatureNames; give one per name",
            values.len(),
            shared.names.len()
        )));
    }
    let targets = resolve_targets(group, &[])?;
    let count = values.len();
    let values = shared
        .order
        .iter()
        .filter_map(|&i| values[i].take().map(|v| (i, v)))
        .map(|(i, value)| match shared.ordinals[i] {
            Some(ordinal) => Ok((i, ordinal, value)),
            None => Err(unknown_feature(group, i, &shared.names[i])),
        });
    validate_resolved(group, targets, None, count, values)
}

/// The checks shared by both forms, once each value's feature is known: `values` yields
/// (position in the request, feature ordinal, value).
fn validate_resolved(
    group: &FeatureGroup,
    targets: Targets,
    ttl: Option<TtlDuration>,
    count: usize,
    resolved: impl Iterator<Item = Result<(usize, u16, Value)>>,
) -> Result<ValidRecord> {
    let mut values = Vec::with_capacity(count);
    let mut total_bytes = 0usize;
    for item in resolved {
        let (i, ordinal, value) = item?;
        let feature = &group.features[usize::from(ordinal)];
        check_value(
            &feature.name,
            feature.feature_type,
            feature.collection,
            &value,
        )
        .map_err(|e| e.at(format!("Record[{i}]")))?;
        total_bytes += value.size_bytes();
        values.push((ordinal, value));
    }
    if total_bytes > MAX_RECORD_BYTES {
        return Err(Error::limit(format!(
            "Record holds {total_bytes} bytes of values; the limit is {MAX_RECORD_BYTES}"
        )));
    }
    if !values.is_sorted_by_key(|(ordinal, _)| *ordinal) {
        values.sort_by_key(|(ordinal, _)| *ordinal);
    }
    if let Some(pair) = values.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::validation(format!(
            "Record names feature '{}' more than once",
            group.features[usize::from(pair[0].0)].name
        )));
    }

    let identifier = {
        let ordinal = group.ordinal(&group.record_identifier_feature_name);
        let value = values
            .iter()
            .find(|(o, _)| Some(*o) == ordinal)
            .map(|(_, v)| v);
        match value {
            Some(Value::Integral(n)) => n.to_string(),
            Some(Value::String(s)) => {
                check_identifier_text(&group.record_identifier_feature_name, s)?
            }
            _ => {
                return Err(Error::validation(format!(
                    "Record is missing the record identifier feature '{}'",
                    group.record_identifier_feature_name
                )));
            }
        }
    };
    let event_time_ms = {
        let ordinal = group.ordinal(&group.event_time_feature_name);
        let value = values
            .iter()
            .find(|(o, _)| Some(*o) == ordinal)
            .map(|(_, v)| v);
        let name = &group.event_time_feature_name;
        match value {
            Some(Value::String(s)) => time::parse_iso8601(s).map_err(|rule| {
                Error::validation(format!(
                    "event time feature '{name}' value {}: {rule}",
                    quote(s)
                ))
            })?,
            Some(Value::Fractional(secs)) => {
                time::epoch_seconds_to_millis(*secs).map_err(|rule| {
                    Error::validation(format!("event time feature '{name}' value {secs}: {rule}"))
                })?
            }
            _ => {
                return Err(Error::validation(format!(
                    "Record is missing the event time feature '{name}'"
                )));
            }
        }
    };
    let ttl = ttl.or_else(|| group.online.as_ref().and_then(|o| o.ttl));
    let expires_at_ms = ttl
        .and_then(|t| t.as_millis())
        .map(|ms| event_time_ms.saturating_add(ms));
    Ok(ValidRecord {
        identifier,
        event_time_ms,
        values,
        targets,
        expires_at_ms,
    })
}

/// A value as text, the way the SageMaker runtime API carries it: `ValueAsString` for a scalar,
/// `ValueAsStringList` for a collection.
#[derive(Debug, Clone, PartialEq)]
pub enum TextValue {
    Scalar(String),
    List(Vec<String>),
}

fn unknown_feature(group: &FeatureGroup, i: usize, name: &str) -> Error {
    Error::validation(format!(
        "Record[{i}].FeatureName {} is not a feature of feature group '{}'",
        quote(name),
        group.name
    ))
}

/// Parses a record given as text (the SageMaker runtime API) per its group's feature types.
pub fn parse_text_record(
    group: &FeatureGroup,
    record: Vec<(String, TextValue)>,
) -> Result<Vec<(String, Value)>> {
    record
        .into_iter()
        .enumerate()
        .map(|(i, (name, text))| {
            let feature = group
                .feature(&name)
                .ok_or_else(|| unknown_feature(group, i, &name))?;
            let value =
                parse_text_value(feature, text).map_err(|e| e.at(format!("Record[{i}]")))?;
            Ok((name, value))
        })
        .collect()
}

/// Parses a text value per its feature's type; errors name the feature, its type and the value
/// (`feature 'age' is Integral; '12.5' is not an integer`).
pub fn parse_text_value(feature: &Feature, text: TextValue) -> Result<Value> {
    let name = &feature.name;
    let kind = describe_type(feature.feature_type, feature.collection);
    match (feature.collection, text) {
        (Collection::Scalar, TextValue::Scalar(s)) => Ok(match feature.feature_type {
            FeatureType::Integral => Value::Integral(parse_integral(&s).ok_or_else(|| {
                Error::validation(format!(
                    "feature '{name}' is {kind}; {} is not an integer",
                    quote(&s)
                ))
            })?),
            FeatureType::Fractional => {
                Value::Fractional(parse_fractional(&s).ok_or_else(|| {
                    Error::validation(format!(
                        "feature '{name}' is {kind}; {} is not a number",
                        quote(&s)
                    ))
                })?)
            }
            FeatureType::String => Value::String(s),
        }),
        (Collection::Scalar, TextValue::List(_)) => Err(Error::validation(format!(
            "feature '{name}' is {kind}; give its value as ValueAsString, not ValueAsStringList"
        ))),
        (_, TextValue::Scalar(_)) => Err(Error::validation(format!(
            "feature '{name}' is {kind}; give its value as ValueAsStringList, not ValueAsString"
        ))),
        (_, TextValue::List(items)) => {
            let element = |i: usize, s: &str, problem: &str| {
                Error::validation(format!(
                    "feature '{name}' is {kind}; element {i} {} is not {problem}",
                    quote(s)
                ))
            };
            Ok(match feature.feature_type {
                FeatureType::Integral => Value::IntegralList(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, s)| parse_integral(s).ok_or_else(|| element(i, s, "an integer")))
                        .collect::<Result<_>>()?,
                ),
                FeatureType::Fractional => Value::FractionalList(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, s)| parse_fractional(s).ok_or_else(|| element(i, s, "a number")))
                        .collect::<Result<_>>()?,
                ),
                FeatureType::String => Value::StringList(items),
            })
        }
    }
}

/// A value as text: the inverse of [`parse_text_value`]. Fractional values print in the
/// shortest form that parses back to the same number.
pub fn value_as_text(value: &Value) -> TextValue {
    match value {
        Value::Integral(n) => TextValue::Scalar(n.to_string()),
        Value::Fractional(f) => TextValue::Scalar(f.to_string()),
        Value::String(s) => TextValue::Scalar(s.clone()),
        Value::IntegralList(v) => TextValue::List(v.iter().map(i64::to_string).collect()),
        Value::FractionalList(v) => TextValue::List(v.iter().map(f64::to_string).collect()),
        Value::StringList(v) => TextValue::List(v.clone()),
    }
}

fn parse_integral(s: &str) -> Option<i64> {
    s.trim().parse().ok()
}

/// As Rust reads a float: decimal or exponent notation, and `NaN` / `inf`, which the gRPC API
/// accepts as doubles too.
fn parse_fractional(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}

/// Checks a value's kind against its feature's definition.
pub fn check_value(
    name: &str,
    feature_type: FeatureType,
    collection: Collection,
    value: &Value,
) -> Result<()> {
    let expected = match (collection, feature_type) {
        (Collection::Scalar, FeatureType::Integral) => matches!(value, Value::Integral(_)),
        (Collection::Scalar, FeatureType::Fractional) => matches!(value, Value::Fractional(_)),
        (Collection::Scalar, FeatureType::String) => matches!(value, Value::String(_)),
        (_, FeatureType::Integral) => matches!(value, Value::IntegralList(_)),
        (_, FeatureType::Fractional) => matches!(value, Value::FractionalList(_)),
        (_, FeatureType::String) => matches!(value, Value::StringList(_)),
    };
    if !expected {
        return Err(Error::validation(format!(
            "feature '{name}' is {}; got {}",
            describe_type(feature_type, collection),
            value.kind_name()
        )));
    }
    if value.size_bytes() > MAX_RECORD_BYTES {
        return Err(Error::limit(format!(
            "feature '{name}' value holds {} bytes; the limit is {MAX_RECORD_BYTES}",
            value.size_bytes()
        )));
    }
    match (collection, value) {
        (Collection::Vector { dimension }, Value::FractionalList(v))
            if v.len() != dimension as usize =>
        {
            Err(Error::validation(format!(
                "feature '{name}' is a Vector of dimension {dimension}; got {} values",
                v.len()
            )))
        }
        (Collection::Set, _) => check_unique(name, value),
        _ => Ok(()),
    }
}

fn check_unique(name: &str, value: &Value) -> Result<()> {
    let duplicate = match value {
        Value::IntegralList(v) => first_duplicate(v.iter().map(|n| n.to_string())),
        // Compared by bit pattern, so 0.0 and -0.0 are distinct, as are NaNs with other payloads.
        Value::FractionalList(v) => first_duplicate(v.iter().map(|f| f.to_bits().to_string())),
        Value::StringList(v) => first_duplicate(v.iter().cloned()),
        _ => None,
    };
    match duplicate {
        Some(dup) => Err(Error::validation(format!(
            "feature '{name}' is a Set; element {} appears more than once",
            quote(&dup)
        ))),
        None => Ok(()),
    }
}

fn first_duplicate(items: impl Iterator<Item = String>) -> Option<String> {
    let mut seen = HashSet::new();
    items.into_iter().find(|item| !seen.insert(item.clone()))
}

pub fn describe_type(feature_type: FeatureType, collection: Collection) -> String {
    match collection {
        Collection::Scalar => format!("{feature_type:?}"),
        Collection::List => format!("a List of {feature_type:?}"),
        Collection::Set => format!("a Set of {feature_type:?}"),
        Collection::Vector { dimension } => format!("a Vector({dimension}) of {feature_type:?}"),
    }
}

/// Validates and canonicalises a record identifier given as text (GetRecord, DeleteRecord):
/// an Integral identifier is parsed, so `"007"` and `"7"` name the same record.
pub fn canonical_identifier(group: &FeatureGroup, text: &str) -> Result<String> {
    let name = &group.record_identifier_feature_name;
    match group.record_identifier().feature_type {
        FeatureType::Integral => text.trim().parse::<i64>().map(|n| n.to_string()).map_err(|_| {
            Error::validation(format!(
                "RecordIdentifierValueAsString {} is not an integer, and record identifier feature '{name}' is Integral",
                quote(text)
            ))
        }),
        _ => check_identifier_text(name, text),
    }
}

fn check_identifier_text(name: &str, text: &str) -> Result<String> {
    if text.is_empty() {
        return Err(Error::validation(format!(
            "record identifier '{name}' must not be empty"
        )));
    }
    if text.len() > MAX_IDENTIFIER_BYTES {
        return Err(Error::limit(format!(
            "record identifier '{name}' value {} is longer than {MAX_IDENTIFIER_BYTES} bytes",
            quote(text)
        )));
    }
    Ok(text.to_string())
}

/// Resolves TargetStores: empty means every store the group has; naming a store the group lacks
/// is an error.
pub fn resolve_targets(group: &FeatureGroup, requested: &[TargetStore]) -> Result<Targets> {
    if requested.is_empty() {
        return Ok(Targets {
            online: group.has_online_store(),
            offline: group.has_offline_store(),
        });
    }
    let online = requested.contains(&TargetStore::OnlineStore);
    let offline = requested.contains(&TargetStore::OfflineStore);
    if online && !group.has_online_store() {
        return Err(Error::validation(format!(
            "TargetStores includes OnlineStore, but feature group '{}' has no online store",
            group.name
        )));
    }
    if offline && !group.has_offline_store() {
        return Err(Error::validation(format!(
            "TargetStores includes OfflineStore, but feature group '{}' has no offline store",
            group.name
        )));
    }
    Ok(Targets { online, offline })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FeatureGroupSpec, FeatureSpec, OnlineStoreConfig, StorageType, TtlUnit};

    fn group() -> FeatureGroup {
        let f = |name: &str, feature_type, collection| FeatureSpec {
            name: name.into(),
            feature_type,
            collection,
        };
        FeatureGroup::from_spec(
            FeatureGroupSpec {
                name: "g".into(),
                record_identifier_feature_name: "id".into(),
                event_time_feature_name: "ts".into(),
                features: vec![
                    f("id", FeatureType::Integral, Collection::Scalar),
                    f("ts", FeatureType::String, Collection::Scalar),
                    f("tags", FeatureType::String, Collection::Set),
                    f(
                        "emb",
                        FeatureType::Fractional,
                        Collection::Vector { dimension: 2 },
                    ),
                ],
                online: Some(OnlineStoreConfig {
                    ttl: Some(TtlDuration {
                        unit: TtlUnit::Hours,
                        value: 1,
                    }),
                    storage_type: StorageType::Standard,
                    kms_key_id: None,
                }),
                offline: None,
                role_arn: None,
                description: None,
                tags: vec![],
            },
            1,
            "arn".into(),
            0,
        )
    }

    fn put(record: Vec<(&str, Value)>) -> Result<ValidRecord> {
        validate_put(
            &group(),
            PutRequest {
                record: record
                    .into_iter()
                    .map(|(n, v)| (n.to_string(), v))
                    .collect(),
                target_stores: vec![],
                ttl: None,
            },
        )
    }

    #[test]
    fn valid_record() {
        let r = put(vec![
            ("ts", Value::String("1970-01-01T00:00:01Z".into())),
            ("id", Value::Integral(7)),
        ])
        .unwrap();
        assert_eq!(r.identifier, "7");
        assert_eq!(r.event_time_ms, 1000);
        assert_eq!(r.values[0].0, 0, "sorted by ordinal");
        assert_eq!(r.expires_at_ms, Some(1000 + 3_600_000));
        assert!(r.targets.online && !r.targets.offline);
    }

    #[test]
    fn rejects_bad_records() {
        let id = || ("id", Value::Integral(1));
        let ts = || ("ts", Value::String("1970-01-01T00:00:01Z".into()));
        let cases: Vec<(Vec<(&str, Value)>, &str)> = vec![
            (vec![ts()], "missing the record identifier"),
            (vec![id()], "missing the event time"),
            (
                vec![id(), ts(), ("x", Value::Integral(1))],
                "'x' is not a feature",
            ),
            (
                vec![id(), ("ts", Value::String("yesterday".into()))],
                "'yesterday'",
            ),
            (
                vec![("id", Value::String("a".into())), ts()],
                "feature 'id' is Integral; got a String",
            ),
            (
                vec![id(), ts(), ("emb", Value::FractionalList(vec![1.0]))],
                "dimension 2; got 1",
            ),
            (
                vec![
                    id(),
                    ts(),
                    ("tags", Value::StringList(vec!["a".into(), "a".into()])),
                ],
                "appears more than once",
            ),
            (vec![id(), ts(), id()], "more than once"),
            (
                vec![
                    id(),
                    ts(),
                    ("tags", Value::StringList(vec!["x".repeat(400_000)])),
                ],
                "the limit is",
            ),
        ];
        for (record, expect) in cases {
            let err = put(record).expect_err(expect);
            assert!(
                err.message().contains(expect),
                "{:?} vs {expect:?}",
                err.message()
            );
        }
    }

    #[test]
    fn canonical_integral_identifier() {
        let g = group();
        assert_eq!(canonical_identifier(&g, "007").unwrap(), "7");
        assert!(canonical_identifier(&g, "seven").is_err());
    }

    #[test]
    fn text_values_parse_per_feature_type_and_errors_name_feature_type_and_value() {
        let g = group();
        let parse = |name: &str, text: TextValue| parse_text_value(g.feature(name).unwrap(), text);
        let scalar = |s: &str| TextValue::Scalar(s.into());
        let list = |items: &[&str]| TextValue::List(items.iter().map(|s| s.to_string()).collect());
        assert_eq!(parse("id", scalar(" 42 ")).unwrap(), Value::Integral(42));
        assert_eq!(
            parse("id", scalar("12.5")).unwrap_err().to_string(),
            "feature 'id' is Integral; '12.5' is not an integer"
        );
        assert_eq!(
            parse("emb", list(&["0.5", "-1e3"])).unwrap(),
            Value::FractionalList(vec![0.5, -1000.0])
        );
        assert_eq!(
            parse("emb", list(&["0.5", "x"])).unwrap_err().to_string(),
            "feature 'emb' is a Vector(2) of Fractional; element 1 'x' is not a number"
        );
        assert!(
            parse("tags", scalar("a"))
                .unwrap_err()
                .to_string()
                .contains("give its value as ValueAsStringList")
        );
        assert!(
            parse("ts", list(&["a"]))
                .unwrap_err()
                .to_string()
                .contains("give its value as ValueAsString,")
        );
        for (feature, value) in [
            ("id", Value::Integral(-7)),
            ("emb", Value::FractionalList(vec![1e-7, 300.0])),
            ("tags", Value::StringList(vec!["a".into()])),
        ] {
            assert_eq!(parse(feature, value_as_text(&value)).unwrap(), value);
        }
        assert_eq!(
            value_as_text(&Value::Fractional(0.1)),
            TextValue::Scalar("0.1".into())
        );
    }

    #[test]
    fn text_records_reject_unknown_features_with_their_index() {
        let err = parse_text_record(
            &group(),
            vec![
                ("id".into(), TextValue::Scalar("1".into())),
                ("nope".into(), TextValue::Scalar("1".into())),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Record[1].FeatureName 'nope' is not a feature of feature group 'g'"
        );
    }
}

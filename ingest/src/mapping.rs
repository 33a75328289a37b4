//! From a source message's payload to a record of the target feature group: JSON objects whose
//! fields map to features (same names unless mapped), with the identifier and event-time fields
//! and the event time's format as configured. A message that cannot become a valid record is
//! [`Rejected`] with the reason, for the dead-letter destination.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use pb::feature_value::Value;
use quiver_proto::v1 as pb;
use serde::Deserialize;

use crate::error::IngestError;

/// How the event-time field's values are written in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventTimeFormat {
    /// A number is Unix seconds (fractions allowed); a string is ISO-8601 / RFC 3339.
    #[default]
    Auto,
    UnixSeconds,
    UnixMillis,
    Iso8601,
}

/// What to do with payload fields that are no feature of the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownFields {
    /// The message is rejected (dead-lettered): a misspelt feature is not lost silently.
    #[default]
    Reject,
    Ignore,
}

/// A message that cannot become a record, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected(pub String);

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A JSON object's fields in payload order.
struct Fields<'a>(Vec<(Key<'a>, serde_json::Value)>);

/// A field name, borrowed from the payload unless it holds escapes.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Fields<'de>, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(24));
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// A feature's type, as the mapping checks values against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integral,
    Fractional,
    String,
}

#[derive(Debug, Clone)]
struct Target {
    feature: String,
    kind: Kind,
    list: bool,
    /// This field's number among the mapping's fields (set once they are all known).
    index: usize,
}

/// The mapping of one source onto its feature group.
#[derive(Debug, Clone)]
pub struct Mapping {
    group: String,
    /// Payload field -> feature (looked up for every field of every message).
    fields: HashMap<String, Target, foldhash::fast::FixedState>,
    /// Each field's feature, by the field's `index`.
    features: Vec<String>,
    identifier_field: String,
    identifier_index: usize,
    event_time_field: String,
    event_time_index: usize,
    /// The event-time feature's type: Fractional (seconds) or String (ISO-8601).
    event_time_kind: Kind,
    event_time_format: EventTimeFormat,
    unknown_fields: UnknownFields,
}

/// How a source's payloads map to features (from its configuration, [`crate::config`]).
#[derive(Debug, Clone, Default)]
pub struct MappingConfig {
    /// Payload field -> feature name, for fields not named as their feature.
    pub fields: HashMap<String, String>,
    /// The payload field holding the identifier; default: the group's identifier feature name
    /// (after `fields`).
    pub record_identifier_field: Option<String>,
    /// The payload field holding the event time; default: the group's event-time feature name.
    pub event_time_field: Option<String>,
    pub event_time_format: EventTimeFormat,
    pub unknown_fields: UnknownFields,
}

impl Mapping {
    /// The mapping of `config` onto the group `described`; fails when the configuration names
    /// features the group lacks.
    pub fn new(
        config: &MappingConfig,
        described: &pb::DescribeFeatureGroupResponse,
    ) -> Result<Self, IngestError> {
        let mut by_feature = HashMap::new();
        for d in &described.feature_definitions {
            let kind = match pb::FeatureType::try_from(d.feature_type) {
                Ok(pb::FeatureType::Integral) => Kind::Integral,
                Ok(pb::FeatureType::Fractional) => Kind::Fractional,
                Ok(pb::FeatureType::String) => Kind::String,
                _ => {
                    return Err(IngestError::Config(format!(
                        "feature {:?} has an unknown type",
                        d.feature_name
                    )));
                }
            };
            let list = d.collection_type != pb::CollectionType::None as i32;
            by_feature.insert(d.feature_name.clone(), (kind, list));
        }
        let mut fields: HashMap<String, Target, foldhash::fast::FixedState> = HashMap::default();
        for (feature, &(kind, list)) in &by_feature {
            fields.insert(
                feature.clone(),
                Target {
                    feature: feature.clone(),
                    kind,
                    list,
                    index: 0,
                },
            );
        }
        for (field, feature) in &config.fields {
            let Some(&(kind, list)) = by_feature.get(feature) else {
                return Err(IngestError::Config(format!(
                    "fields maps {field:?} to {feature:?}, which is no feature of group {:?}",
                    described.feature_group_name
                )));
            };
            // A feature fed from a renamed field is not also read under its own name.
            if field != feature && !config.fields.contains_key(feature) {
                fields.remove(feature);
            }
            fields.insert(
                field.clone(),
                Target {
                    feature: feature.clone(),
                    kind,
                    list,
                    index: 0,
                },
            );
        }
        let field_of = |feature: &str| {
            config
                .fields
                .iter()
                .find(|(_, f)| *f == feature)
                .map(|(field, _)| field.clone())
                .unwrap_or_else(|| feature.to_string())
        };
        let identifier_field = config
            .record_identifier_field
            .clone()
            .unwrap_or_else(|| field_of(&described.record_identifier_feature_name));
        let event_time_field = config
            .event_time_field
            .clone()
            .unwrap_or_else(|| field_of(&described.event_time_feature_name));
        for (field, feature) in [
            (&identifier_field, &described.record_identifier_feature_name),
            (&event_time_field, &described.event_time_feature_name),
        ] {
            let kind = by_feature.get(feature).map(|k| k.0).ok_or_else(|| {
                IngestError::Config(format!(
                    "group {:?} does not define feature {feature:?}",
                    described.feature_group_name
                ))
            })?;
            fields.insert(
                field.clone(),
                Target {
                    feature: feature.clone(),
                    kind,
                    list: false,
                    index: 0,
                },
            );
        }
        let mut features = Vec::with_capacity(fields.len());
        for (index, target) in fields.values_mut().enumerate() {
            target.index = index;
            features.push(target.feature.clone());
        }
        let event_time_kind = fields[&event_time_field].kind;
        if event_time_kind == Kind::Integral {
            return Err(IngestError::Config(
                "the event-time feature must be Fractional or String".into(),
            ));
        }
        Ok(Self {
            group: described.feature_group_name.clone(),
            identifier_index: fields[&identifier_field].index,
            event_time_index: fields[&event_time_field].index,
            fields,
            features,
            identifier_field,
            event_time_field,
            event_time_kind,
            event_time_format: config.event_time_format,
            unknown_fields: config.unknown_fields,
        })
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// The features [`Mapping::values`] gives values of, in that order: what a write names
    /// once for all its records.
    pub fn features(&self) -> &[String] {
        &self.features
    }

    /// The record `payload` holds, or why it holds none.
    pub fn record(&self, payload: &[u8]) -> Result<pb::PutRecordRequest, Rejected> {
        let record = self
            .values(payload)?
            .into_iter()
            .zip(&self.features)
            .filter_map(|(value, feature)| {
                value.map(|v| pb::FeatureValue {
                    feature_name: feature.clone(),
                    value: Some(v),
                })
            })
            .collect();
        Ok(pb::PutRecordRequest {
            feature_group_name: self.group.clone(),
            record,
            target_stores: vec![],
            ttl_duration: None,
        })
    }

    /// The record `payload` holds as the values of [`Mapping::features`], in their order
    /// (`None`: the record has no value for that feature), or why it holds no record.
    pub fn values(&self, payload: &[u8]) -> Result<Vec<Option<Value>>, Rejected> {
        let reject = |reason: String| Err(Rejected(reason));
        // The fields in payload order, keys borrowed from the payload: no map is built.
        let object: Fields = match serde_json::from_slice(payload) {
            Ok(fields) => fields,
            Err(e) => {
                return reject(match serde_json::from_slice::<serde_json::Value>(payload) {
                    Ok(_) => "payload is not a JSON object".to_string(),
                    Err(_) => format!("payload is not JSON: {e}"),
                });
            }
        };
        // Each field's target, and where each mapped field last appears: as in a JSON object
        // read into a map, a field given twice counts with its last value.
        let targets: Vec<Option<&Target>> = object
            .0
            .iter()
            .map(|(field, _)| self.fields.get(field.0.as_ref()))
            .collect();
        let mut last_at = vec![usize::MAX; self.features.len()];
        for (k, target) in targets.iter().enumerate() {
            if let Some(target) = target {
                last_at[target.index] = k;
            }
        }
        for (required, index) in [
            (&self.identifier_field, self.identifier_index),
            (&self.event_time_field, self.event_time_index),
        ] {
            if object
                .0
                .get(last_at[index])
                .is_none_or(|(_, v)| v.is_null())
            {
                let what = if *required == self.identifier_field {
                    "record identifier"
                } else {
                    "event time"
                };
                return reject(format!("the {what} field {required:?} is missing"));
            }
        }
        let mut values = vec![None; self.features.len()];
        for (k, ((field, value), target)) in object.0.iter().zip(&targets).enumerate() {
            let field = field.0.as_ref();
            let Some(target) = target else {
                match self.unknown_fields {
                    UnknownFields::Reject => {
                        return reject(format!(
                            "field {field:?} is no feature of group {:?}",
                            self.group
                        ));
                    }
                    UnknownFields::Ignore => continue,
                }
            };
            if value.is_null() || last_at[target.index] != k {
                continue; // an absent feature, or one given again later
            }
            let converted = if target.index == self.event_time_index {
                self.event_time(value)
            } else {
                convert(value, target)
            };
            match converted {
                Ok(v) => values[target.index] = Some(v),
                Err(problem) => return reject(format!("field {field:?}: {problem}")),
            }
        }
        Ok(values)
    }

    /// The event time as the group's event-time feature holds it.
    fn event_time(&self, value: &serde_json::Value) -> Result<Value, String> {
        use serde_json::Value as J;
        let millis: i64 = match (self.event_time_format, value) {
            (EventTimeFormat::Auto | EventTimeFormat::UnixSeconds, J::Number(n)) => {
                let s = n.as_f64().ok_or("not a finite number")?;
                seconds_to_millis(s)?
            }
            (EventTimeFormat::UnixMillis, J::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .ok_or("Unix milliseconds must be an integer")?,
            (EventTimeFormat::Auto | EventTimeFormat::Iso8601, J::String(s)) => {
                DateTime::parse_from_rfc3339(s)
                    .map_err(|e| format!("{s:?} is not an ISO-8601 time: {e}"))?
                    .timestamp_millis()
            }
            (EventTimeFormat::UnixSeconds | EventTimeFormat::UnixMillis, J::String(s)) => {
                let parsed: f64 = s
                    .trim()
                    .parse()
                    .map_err(|_| format!("{s:?} is not a number ({:?})", self.event_time_format))?;
                if self.event_time_format == EventTimeFormat::UnixMillis {
                    parsed as i64
                } else {
                    seconds_to_millis(parsed)?
                }
            }
            (format, other) => {
                return Err(format!(
                    "an event time ({format:?}) cannot be {}",
                    type_name(other)
                ));
            }
        };
        Ok(match self.event_time_kind {
            Kind::Fractional => Value::Fractional(millis as f64 / 1000.0),
            _ => {
                let time = DateTime::<Utc>::from_timestamp_millis(millis)
                    .ok_or_else(|| format!("{millis} ms is out of range"))?;
                Value::StringValue(time.to_rfc3339_opts(SecondsFormat::Millis, true))
            }
        })
    }
}

fn seconds_to_millis(s: f64) -> Result<i64, String> {
    if !s.is_finite() || s.abs() > 1e14 {
        return Err(format!("{s} seconds is out of range"));
    }
    Ok((s * 1000.0).round() as i64)
}

fn type_name(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// `value` as a value of `target`'s type: integers for Integral, any number for Fractional,
/// strings for String; arrays of those for collections.
fn convert(value: &serde_json::Value, target: &Target) -> Result<Value, String> {
    let scalar_name = match target.kind {
        Kind::Integral => "an integer",
        Kind::Fractional => "a number",
        Kind::String => "a string",
    };
    if target.list {
        let serde_json::Value::Array(items) = value else {
            return Err(format!(
                "feature {:?} is a collection; got {}",
                target.feature,
                type_name(value)
            ));
        };
        let bad = |i: usize, v: &serde_json::Value| {
            format!("element {i} must be {scalar_name}, not {}", type_name(v))
        };
        return Ok(match target.kind {
            Kind::Integral => Value::IntegralList(pb::IntegralList {
                values: items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.as_i64().ok_or_else(|| bad(i, v)))
                    .collect::<Result<_, _>>()?,
            }),
            Kind::Fractional => Value::FractionalList(pb::FractionalList {
                values: items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.as_f64().ok_or_else(|| bad(i, v)))
                    .collect::<Result<_, _>>()?,
            }),
            Kind::String => Value::StringList(pb::StringList {
                values: items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.as_str().map(str::to_string).ok_or_else(|| bad(i, v)))
                    .collect::<Result<_, _>>()?,
            }),
        });
    }
    let wrong = || {
        format!(
            "feature {:?} needs {scalar_name}, not {}",
            target.feature,
            type_name(value)
        )
    };
    Ok(match target.kind {
        Kind::Integral => Value::Integral(value.as_i64().ok_or_else(wrong)?),
        Kind::Fractional => Value::Fractional(value.as_f64().ok_or_else(wrong)?),
        Kind::String => Value::StringValue(value.as_str().ok_or_else(wrong)?.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> pb::DescribeFeatureGroupResponse {
        let f = |name: &str, t: pb::FeatureType, c: pb::CollectionType| pb::FeatureDefinition {
            feature_name: name.into(),
            feature_type: t as i32,
            collection_type: c as i32,
            vector_dimension: 0,
        };
        use pb::CollectionType::{List, None};
        use pb::FeatureType::{Fractional, Integral, String};
        pb::DescribeFeatureGroupResponse {
            feature_group_name: "orders".into(),
            record_identifier_feature_name: "order_id".into(),
            event_time_feature_name: "ts".into(),
            feature_definitions: vec![
                f("order_id", Integral, None),
                f("ts", Fractional, None),
                f("amount", Fractional, None),
                f("country", String, None),
                f("items", Integral, List),
            ],
            ..Default::default()
        }
    }

    fn values(r: &pb::PutRecordRequest) -> Vec<(String, Value)> {
        let mut v: Vec<_> = r
            .record
            .iter()
            .map(|f| (f.feature_name.clone(), f.value.clone().unwrap()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[test]
    fn json_objects_become_records() {
        let m = Mapping::new(&MappingConfig::default(), &group()).unwrap();
        let r = m
            .record(br#"{"order_id": 7, "ts": 1700000000.25, "amount": 3, "country": "NZ", "items": [1, 2], "x": null}"#)
            .unwrap_err();
        assert!(r.0.contains("\"x\""), "{r}");
        let r = m
            .record(br#"{"order_id": 7, "ts": 1700000000.25, "amount": 3, "country": "NZ", "items": [1, 2]}"#)
            .unwrap();
        assert_eq!(r.feature_group_name, "orders");
        assert_eq!(
            values(&r),
            vec![
                ("amount".into(), Value::Fractional(3.0)),
                ("country".into(), Value::StringValue("NZ".into())),
                (
                    "items".into(),
                    Value::IntegralList(pb::IntegralList { values: vec![1, 2] })
                ),
                ("order_id".into(), Value::Integral(7)),
                ("ts".into(), Value::Fractional(1_700_000_000.25)),
            ]
        );
        // ISO-8601 times, null features omitted.
        let r = m
            .record(br#"{"order_id": 7, "ts": "2023-11-14T22:13:20.5Z", "country": null}"#)
            .unwrap();
        assert_eq!(
            values(&r),
            vec![
                ("order_id".into(), Value::Integral(7)),
                ("ts".into(), Value::Fractional(1_700_000_000.5)),
            ]
        );
    }

    #[test]
    fn a_field_given_twice_counts_once_with_its_last_value() {
        let m = Mapping::new(&MappingConfig::default(), &group()).unwrap();
        // The second "amount" wins; an escaped key ("\u0063ountry" = "country") is read.
        let r = m
            .record(br#"{"order_id": 7, "amount": 1, "ts": 1700000000, "amount": 2, "\u0063ountry": "NZ"}"#)
            .unwrap();
        assert_eq!(
            values(&r),
            vec![
                ("amount".into(), Value::Fractional(2.0)),
                ("country".into(), Value::StringValue("NZ".into())),
                ("order_id".into(), Value::Integral(7)),
                ("ts".into(), Value::Fractional(1_700_000_000.0)),
            ]
        );
        // A null given last removes an earlier value; an identifier given last as null is missing.
        let r = m
            .record(br#"{"order_id": 7, "ts": 1700000000, "amount": 2, "amount": null}"#)
            .unwrap();
        assert_eq!(values(&r).len(), 2);
        let r = m
            .record(br#"{"order_id": 7, "ts": 1700000000, "order_id": null}"#)
            .unwrap_err();
        assert!(r.0.contains("record identifier"), "{r}");
        assert_eq!(
            m.record(b"[1, 2]").unwrap_err().0,
            "payload is not a JSON object"
        );
        assert!(
            m.record(b"{nope")
                .unwrap_err()
                .0
                .starts_with("payload is not JSON")
        );
    }

    #[test]
    fn fields_map_to_features_and_times_take_formats() {
        let config = MappingConfig {
            fields: [
                ("id".to_string(), "order_id".to_string()),
                ("when".into(), "ts".into()),
            ]
            .into(),
            event_time_format: EventTimeFormat::UnixMillis,
            unknown_fields: UnknownFields::Ignore,
            ..Default::default()
        };
        let m = Mapping::new(&config, &group()).unwrap();
        let r = m
            .record(br#"{"id": 1, "when": 1700000000123, "other": true}"#)
            .unwrap();
        assert_eq!(
            values(&r),
            vec![
                ("order_id".into(), Value::Integral(1)),
                ("ts".into(), Value::Fractional(1_700_000_000.123)),
            ]
        );
        // The renamed features are not read under their own names.
        let e = m
            .record(br#"{"order_id": 1, "ts": 1700000000123}"#)
            .unwrap_err();
        assert!(e.0.contains("record identifier field \"id\""), "{e}");

        let bad = MappingConfig {
            fields: [("a".to_string(), "nope".to_string())].into(),
            ..Default::default()
        };
        assert!(
            Mapping::new(&bad, &group())
                .unwrap_err()
                .to_string()
                .contains("nope")
        );
    }

    #[test]
    fn bad_messages_are_rejected_with_the_reason() {
        let m = Mapping::new(&MappingConfig::default(), &group()).unwrap();
        let reason = |payload: &str| m.record(payload.as_bytes()).unwrap_err().0;
        assert!(reason("not json").contains("not JSON"));
        assert!(reason("[1]").contains("not a JSON object"));
        assert!(reason(r#"{"ts": 1}"#).contains("record identifier field \"order_id\" is missing"));
        assert!(reason(r#"{"order_id": 1}"#).contains("event time field \"ts\" is missing"));
        assert!(reason(r#"{"order_id": "a", "ts": 1}"#).contains("needs an integer, not a string"));
        assert!(reason(r#"{"order_id": 1.5, "ts": 1}"#).contains("needs an integer"));
        assert!(reason(r#"{"order_id": 1, "ts": true}"#).contains("cannot be a boolean"));
        assert!(reason(r#"{"order_id": 1, "ts": "yesterday"}"#).contains("not an ISO-8601 time"));
        assert!(reason(r#"{"order_id": 1, "ts": 1, "items": [1, "x"]}"#).contains("element 1"));
        assert!(reason(r#"{"order_id": 1, "ts": 1, "items": 3}"#).contains("collection"));
        assert!(
            reason(r#"{"order_id": 1, "ts": 1, "colour": "red"}"#)
                .contains("\"colour\" is no feature")
        );
    }
}

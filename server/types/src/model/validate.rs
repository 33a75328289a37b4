//! The rules a feature group definition must satisfy, as SageMaker's: name patterns, reserved
//! names, types, identifier and event-time features, and every limit. Each error names the field,
//! quotes the value and states the rule.

use std::collections::HashSet;

use crate::error::{Error, Result, quote};
use crate::model::{
    Collection, FeatureGroup, FeatureGroupSpec, FeatureSpec, FeatureType, OfflineStoreConfig,
    TtlDuration,
};

pub const MAX_FEATURES: usize = 2500;
pub const MAX_FEATURE_ADDITIONS: usize = 100;
pub const MAX_NAME_LEN: usize = 64;
pub const MAX_GROUP_DESCRIPTION_LEN: usize = 128;
pub const MAX_FEATURE_DESCRIPTION_LEN: usize = 255;
pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_KEY_LEN: usize = 128;
pub const MAX_TAG_VALUE_LEN: usize = 256;
pub const MAX_VECTOR_DIMENSION: u32 = 8192;
pub const MAX_PARAMETER_CHANGES: usize = 25;
pub const MAX_PARAMETER_KEY_LEN: usize = 255;
pub const MAX_PARAMETER_VALUE_LEN: usize = 255;
pub const MAX_ROLE_ARN_LEN: usize = 2048;
pub const MAX_KMS_KEY_ID_LEN: usize = 2048;
pub const MAX_S3_URI_LEN: usize = 1024;
/// 100 years: far beyond any sensible TTL, and small enough that event time + TTL never overflows.
pub const MAX_TTL_MS: i64 = 100 * 366 * 86_400_000;
/// Columns every offline row carries; no feature may take these names.
pub const RESERVED_FEATURE_NAMES: [&str; 3] = ["is_deleted", "write_time", "api_invocation_time"];

/// `[a-zA-Z0-9]([_-]*[a-zA-Z0-9]){0,63}`: SageMaker's pattern for group and feature names.
pub fn check_name(field: &str, name: &str) -> Result<()> {
    const RULE: &str = "must be 1-64 characters of letters, digits, '-' and '_', starting and ending with a letter or digit";
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        && alnum(&bytes[0])
        && alnum(&bytes[bytes.len() - 1]);
    if ok {
        Ok(())
    } else {
        Err(Error::validation(format!("{field} {} {RULE}", quote(name))))
    }
}

pub fn validate_group_spec(spec: &FeatureGroupSpec) -> Result<()> {
    check_name("FeatureGroupName", &spec.name)?;
    if spec.features.is_empty() || spec.features.len() > MAX_FEATURES {
        let err = Error::validation(format!(
            "FeatureDefinitions has {} features; a feature group has 1..{MAX_FEATURES}",
            spec.features.len()
        ));
        return Err(if spec.features.len() > MAX_FEATURES {
            Error::limit(err.message())
        } else {
            err
        });
    }
    validate_feature_specs("FeatureDefinitions", &spec.features, &[])?;

    let find = |name: &str| spec.features.iter().find(|f| f.name == name);
    let identifier = find(&spec.record_identifier_feature_name).ok_or_else(|| {
        Error::validation(format!(
            "RecordIdentifierFeatureName {} is not one of the FeatureDefinitions",
            quote(&spec.record_identifier_feature_name)
        ))
    })?;
    if identifier.collection != Collection::Scalar
        || !matches!(
            identifier.feature_type,
            FeatureType::Integral | FeatureType::String
        )
    {
        return Err(Error::validation(format!(
            "RecordIdentifierFeatureName {} must be a scalar Integral or String feature",
            quote(&identifier.name)
        )));
    }
    let event_time = find(&spec.event_time_feature_name).ok_or_else(|| {
        Error::validation(format!(
            "EventTimeFeatureName {} is not one of the FeatureDefinitions",
            quote(&spec.event_time_feature_name)
        ))
    })?;
    if event_time.collection != Collection::Scalar
        || !matches!(
            event_time.feature_type,
            FeatureType::Fractional | FeatureType::String
        )
    {
        return Err(Error::validation(format!(
            "EventTimeFeatureName {} must be a scalar Fractional (epoch seconds) or String (ISO-8601) feature",
            quote(&event_time.name)
        )));
    }
    if spec.record_identifier_feature_name == spec.event_time_feature_name {
        return Err(Error::validation(
            "RecordIdentifierFeatureName and EventTimeFeatureName must be different features",
        ));
    }
    if spec.online.is_none() && spec.offline.is_none() {
        return Err(Error::validation(
            "at least one of OnlineStoreConfig (with EnableOnlineStore) and OfflineStoreConfig is required",
        ));
    }
    if let Some(online) = &spec.online {
        if let Some(ttl) = &online.ttl {
            validate_ttl("OnlineStoreConfig.TtlDuration", ttl)?;
        }
        if let Some(kms) = &online.kms_key_id {
            check_len(
                "OnlineStoreConfig.SecurityConfig.KmsKeyId",
                kms,
                1,
                MAX_KMS_KEY_ID_LEN,
            )?;
        }
    }
    if let Some(offline) = &spec.offline {
        validate_offline(offline)?;
    }
    if let Some(role) = &spec.role_arn {
        check_len("RoleArn", role, 20, MAX_ROLE_ARN_LEN)?;
        if !role.starts_with("arn:") {
            return Err(Error::validation(format!(
                "RoleArn {} must be an ARN (arn:aws:iam::<account>:role/<name>)",
                quote(role)
            )));
        }
    }
    if let Some(description) = &spec.description {
        check_len("Description", description, 0, MAX_GROUP_DESCRIPTION_LEN)?;
    }
    validate_tags(&spec.tags)
}

/// Checks new features, alone and against the group's `existing` feature names.
pub fn validate_feature_specs(field: &str, specs: &[FeatureSpec], existing: &[&str]) -> Result<()> {
    // Names differing only in case would collide in Glue / Athena, which lower-case columns.
    let mut seen: HashSet<String> = existing.iter().map(|n| n.to_ascii_lowercase()).collect();
    let mut vectors = 0;
    for (i, spec) in specs.iter().enumerate() {
        let at = format!("{field}[{i}]");
        check_name(&format!("{at}.FeatureName"), &spec.name)?;
        let lower = spec.name.to_ascii_lowercase();
        if RESERVED_FEATURE_NAMES.contains(&lower.as_str()) {
            return Err(Error::validation(format!(
                "{at}.FeatureName {} is reserved (reserved: {})",
                quote(&spec.name),
                RESERVED_FEATURE_NAMES.join(", ")
            )));
        }
        if !seen.insert(lower) {
            return Err(Error::validation(format!(
                "{at}.FeatureName {} is defined more than once (names are compared ignoring case)",
                quote(&spec.name)
            )));
        }
        if let Collection::Vector { dimension } = spec.collection {
            vectors += 1;
            if spec.feature_type != FeatureType::Fractional {
                return Err(Error::validation(format!(
                    "{at}: Vector feature {} must have FeatureType Fractional",
                    quote(&spec.name)
                )));
            }
            if !(1..=MAX_VECTOR_DIMENSION).contains(&dimension) {
                return Err(Error::validation(format!(
                    "{at}.CollectionConfig.VectorConfig.Dimension {dimension} is not in 1..{MAX_VECTOR_DIMENSION}"
                )));
            }
        }
    }
    if vectors > 1 {
        return Err(Error::validation(format!(
            "{field} defines {vectors} Vector features; a feature group has at most one"
        )));
    }
    Ok(())
}

/// Checks FeatureAdditions of UpdateFeatureGroup against the group as it is.
pub fn validate_feature_additions(group: &FeatureGroup, additions: &[FeatureSpec]) -> Result<()> {
    if additions.len() > MAX_FEATURE_ADDITIONS {
        return Err(Error::limit(format!(
            "FeatureAdditions has {} features; at most {MAX_FEATURE_ADDITIONS} may be added per call",
            additions.len()
        )));
    }
    let total = group.features.len() + additions.len();
    if total > MAX_FEATURES {
        return Err(Error::limit(format!(
            "adding {} features would give feature group '{}' {total} features; the limit is {MAX_FEATURES}",
            additions.len(),
            group.name
        )));
    }
    let existing: Vec<&str> = group.features.iter().map(|f| f.name.as_str()).collect();
    validate_feature_specs("FeatureAdditions", additions, &existing)?;
    let has_vector = group
        .features
        .iter()
        .any(|f| matches!(f.collection, Collection::Vector { .. }));
    if has_vector
        && additions
            .iter()
            .any(|f| matches!(f.collection, Collection::Vector { .. }))
    {
        return Err(Error::validation(format!(
            "FeatureAdditions: feature group '{}' already has a Vector feature; a feature group has at most one",
            group.name
        )));
    }
    Ok(())
}

pub fn validate_ttl(field: &str, ttl: &TtlDuration) -> Result<()> {
    if ttl.value < 1 {
        return Err(Error::validation(format!(
            "{field}.Value {} must be at least 1",
            ttl.value
        )));
    }
    match ttl.as_millis() {
        Some(ms) if ms <= MAX_TTL_MS => Ok(()),
        _ => Err(Error::validation(format!(
            "{field} of {} {:?} is longer than the maximum of 100 years",
            ttl.value, ttl.unit
        ))),
    }
}

fn validate_offline(offline: &OfflineStoreConfig) -> Result<()> {
    if let Some(uri) = &offline.s3_uri {
        check_len(
            "OfflineStoreConfig.S3StorageConfig.S3Uri",
            uri,
            1,
            MAX_S3_URI_LEN,
        )?;
        let rest = uri
            .strip_prefix("s3://")
            .or_else(|| uri.strip_prefix("https://"));
        let bucket = rest.and_then(|r| r.split('/').next()).unwrap_or("");
        if bucket.len() < 3 {
            return Err(Error::validation(format!(
                "OfflineStoreConfig.S3StorageConfig.S3Uri {} must look like s3://bucket/prefix (bucket names have 3+ characters)",
                quote(uri)
            )));
        }
    }
    if let Some(kms) = &offline.kms_key_id {
        check_len(
            "OfflineStoreConfig.S3StorageConfig.KmsKeyId",
            kms,
            1,
            MAX_KMS_KEY_ID_LEN,
        )?;
    }
    if let Some(catalog) = &offline.data_catalog {
        check_len(
            "OfflineStoreConfig.DataCatalogConfig.TableName",
            &catalog.table_name,
            1,
            255,
        )?;
        check_len(
            "OfflineStoreConfig.DataCatalogConfig.Catalog",
            &catalog.catalog,
            1,
            255,
        )?;
        check_len(
            "OfflineStoreConfig.DataCatalogConfig.Database",
            &catalog.database,
            1,
            255,
        )?;
    }
    Ok(())
}

fn validate_tags(tags: &[(String, String)]) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::limit(format!(
            "Tags has {} tags; at most {MAX_TAGS} are allowed",
            tags.len()
        )));
    }
    for (i, (key, value)) in tags.iter().enumerate() {
        check_len(&format!("Tags[{i}].Key"), key, 1, MAX_TAG_KEY_LEN)?;
        check_len(&format!("Tags[{i}].Value"), value, 0, MAX_TAG_VALUE_LEN)?;
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(Error::validation(format!(
                "Tags[{i}].Key {} may not start with the reserved prefix 'aws:'",
                quote(key)
            )));
        }
    }
    Ok(())
}

/// Checks UpdateFeatureMetadata's changes.
pub fn validate_metadata_update(
    description: Option<&str>,
    additions: &[(String, String)],
    removals: &[String],
) -> Result<()> {
    if let Some(description) = description {
        check_len("Description", description, 0, MAX_FEATURE_DESCRIPTION_LEN)?;
    }
    for (field, count) in [
        ("ParameterAdditions", additions.len()),
        ("ParameterRemovals", removals.len()),
    ] {
        if count > MAX_PARAMETER_CHANGES {
            return Err(Error::limit(format!(
                "{field} has {count} entries; at most {MAX_PARAMETER_CHANGES} per call"
            )));
        }
    }
    for (i, (key, value)) in additions.iter().enumerate() {
        check_len(
            &format!("ParameterAdditions[{i}].Key"),
            key,
            1,
            MAX_PARAMETER_KEY_LEN,
        )?;
        check_len(
            &format!("ParameterAdditions[{i}].Value"),
            value,
            1,
            MAX_PARAMETER_VALUE_LEN,
        )?;
    }
    for (i, key) in removals.iter().enumerate() {
        check_len(
            &format!("ParameterRemovals[{i}]"),
            key,
            1,
            MAX_PARAMETER_KEY_LEN,
        )?;
    }
    Ok(())
}

/// Length in characters within `min..=max`.
pub fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<()> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(Error::validation(format!(
            "{field} {} has {len} characters; it must have {min}..{max}",
            quote(value)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{OnlineStoreConfig, StorageType};

    fn spec() -> FeatureGroupSpec {
        let f = |name: &str, feature_type| FeatureSpec {
            name: name.to_string(),
            feature_type,
            collection: Collection::Scalar,
        };
        FeatureGroupSpec {
            name: "customers".into(),
            record_identifier_feature_name: "id".into(),
            event_time_feature_name: "ts".into(),
            features: vec![
                f("id", FeatureType::String),
                f("ts", FeatureType::Fractional),
                f("age", FeatureType::Integral),
            ],
            online: Some(OnlineStoreConfig {
                ttl: None,
                storage_type: StorageType::Standard,
                kms_key_id: None,
            }),
            offline: None,
            role_arn: None,
            description: None,
            tags: vec![],
        }
    }

    fn rejects(mutate: impl FnOnce(&mut FeatureGroupSpec), expect: &str) {
        let mut s = spec();
        mutate(&mut s);
        let err = validate_group_spec(&s).expect_err("should be rejected");
        assert!(
            err.message().contains(expect),
            "message {:?} should contain {expect:?}",
            err.message()
        );
    }

    #[test]
    fn accepts_a_valid_spec() {
        validate_group_spec(&spec()).unwrap();
    }

    #[test]
    fn names() {
        for ok in ["a", "A1", "a-b_c", "a__--b", &"x".repeat(64)] {
            check_name("n", ok).unwrap();
        }
        for bad in ["", "-a", "a-", "_a", "a b", "a.b", "é", &"x".repeat(65)] {
            assert!(check_name("n", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rejects_bad_specs() {
        rejects(
            |s| s.name = "bad name".into(),
            "FeatureGroupName 'bad name'",
        );
        rejects(|s| s.features.clear(), "1..2500");
        rejects(|s| s.features[2].name = "write_time".into(), "is reserved");
        rejects(|s| s.features[2].name = "ID".into(), "more than once");
        rejects(
            |s| s.record_identifier_feature_name = "nope".into(),
            "RecordIdentifierFeatureName 'nope'",
        );
        rejects(
            |s| s.record_identifier_feature_name = "ts".into(),
            "scalar Integral or String",
        );
        rejects(
            |s| s.event_time_feature_name = "age".into(),
            "scalar Fractional",
        );
        rejects(
            |s| {
                s.online = None;
                s.offline = None
            },
            "at least one of",
        );
        rejects(
            |s| {
                s.features[2].collection = Collection::Vector { dimension: 0 };
                s.features[2].feature_type = FeatureType::Fractional
            },
            "Dimension 0",
        );
        rejects(
            |s| s.features[2].collection = Collection::Vector { dimension: 4 },
            "must have FeatureType Fractional",
        );
        rejects(|s| s.description = Some("d".repeat(129)), "Description");
        rejects(
            |s| s.tags = vec![("aws:x".into(), "v".into())],
            "reserved prefix",
        );
    }
}

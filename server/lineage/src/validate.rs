//! The limits SageMaker's service model declares for lineage entities. botocore checks only
//! minimums on the client, so the server enforces every maximum and pattern itself, naming the
//! field in the error.

use quiver_types::error::{Error, Result, quote};
use quiver_types::model::validate::check_len;

use std::collections::BTreeMap;

use crate::model::{
    ACTION_STATUSES, EntityKind, EntityUpdate, MetadataProperties, NewEntity, ParameterValue,
    RunArtifact, Source, Tag,
};

pub const MAX_NAME_LEN: usize = 120;
pub const MAX_SOURCE_URI_LEN: usize = 2048;
pub const MAX_TYPE_LEN: usize = 256;
pub const MAX_DESCRIPTION_LEN: usize = 3072;
pub const MAX_PROPERTIES: usize = 30;
pub const MAX_PROPERTY_KEY_LEN: usize = 2500;
/// Artifacts' property values; actions' and contexts' are limited to [`MAX_PROPERTY_KEY_LEN`].
pub const MAX_ARTIFACT_PROPERTY_VALUE_LEN: usize = 4096;
pub const MAX_METADATA_LEN: usize = 1024;
pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_KEY_LEN: usize = 128;
pub const MAX_TAG_VALUE_LEN: usize = 256;
pub const MAX_ARN_LEN: usize = 256;
const SOURCE_ID_TYPES: [&str; 4] = ["MD5Hash", "S3ETag", "S3Version", "Custom"];
/// A trial component's `Status.PrimaryStatus`.
pub const TRIAL_COMPONENT_STATUSES: [&str; 5] =
    ["InProgress", "Completed", "Failed", "Stopping", "Stopped"];
pub const MAX_STATUS_MESSAGE_LEN: usize = 1024;
pub const MAX_PARAMETERS: usize = 300;
pub const MAX_PARAMETER_KEY_LEN: usize = 320;
pub const MAX_PARAMETER_STRING_LEN: usize = 2500;
pub const MAX_RUN_ARTIFACTS: usize = 60;
pub const MAX_RUN_ARTIFACT_KEY_LEN: usize = 128;
pub const MAX_MEDIA_TYPE_LEN: usize = 64;
pub const MAX_RUN_ARTIFACT_VALUE_LEN: usize = 2048;
pub const MAX_TO_REMOVE_KEY_LEN: usize = 256;
pub const MAX_METRIC_NAME_LEN: usize = 255;
/// BatchPutMetrics' `MetricData` holds 1 to 10 values.
pub const MAX_METRIC_DATA: usize = 10;
/// Quiver's limit on the distinct metrics of one trial component (their summaries live in the
/// trial component's record).
pub const MAX_METRICS: usize = 100;

/// `[a-zA-Z0-9](-*[a-zA-Z0-9]){0,119}`; contexts also allow `_` between the alphanumerics.
pub fn check_entity_name(field: &str, kind: EntityKind, name: &str) -> Result<()> {
    check_len(field, name, 1, MAX_NAME_LEN)?;
    let joiner = |c: char| c == '-' || (kind == EntityKind::Context && c == '_');
    let first_last_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_last_ok || !name.chars().all(|c| c.is_ascii_alphanumeric() || joiner(c)) {
        let allowed = if kind == EntityKind::Context {
            "letters, digits, hyphens and underscores"
        } else {
            "letters, digits and hyphens"
        };
        return Err(Error::validation(format!(
            "{field} {} must be {allowed}, starting and ending with a letter or digit",
            quote(name)
        )));
    }
    Ok(())
}

/// An ARN of an entity of the graph (an artifact, action, context, experiment, trial or trial
/// component): `arn:aws[a-z-]*:sagemaker:[a-z0-9-]*:[0-9]{12}:<kind>/<id>`, at most 256
/// characters. Ends of associations are checked further ([`check_association_end`]).
pub fn check_arn(field: &str, arn: &str) -> Result<EntityKind> {
    check_len(field, arn, 1, MAX_ARN_LEN)?;
    let bad = || {
        Error::validation(format!(
            "{field} {} is not the ARN of an artifact, action, context, experiment or trial \
             component (arn:aws:sagemaker:<region>:<12-digit account>:<artifact|action|context|\
             experiment|experiment-trial-component>/<id>)",
            quote(arn)
        ))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [arn_word, partition, service, region, account, _resource] = parts[..] else {
        return Err(bad());
    };
    let partition_ok = partition
        .strip_prefix("aws")
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
    let region_ok = region
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let account_ok = account.len() == 12 && account.chars().all(|c| c.is_ascii_digit());
    if arn_word != "arn"
        || !partition_ok
        || service != "sagemaker"
        || !region_ok
        || !account_ok
        || arn.chars().any(char::is_control)
    {
        return Err(bad());
    }
    EntityKind::of_arn(arn).ok_or_else(bad)
}

/// An ARN that may end an association or start a query: every kind but a trial.
pub fn check_association_end(field: &str, arn: &str) -> Result<EntityKind> {
    let kind = check_arn(field, arn)?;
    if !kind.is_association_end() {
        return Err(Error::validation(format!(
            "{field} {} is a trial's ARN; trials hold trial components through \
             AssociateTrialComponent and are not ends of associations",
            quote(arn)
        )));
    }
    Ok(kind)
}

fn check_source(kind: EntityKind, source: &Source) -> Result<()> {
    check_len(
        "Source.SourceUri",
        &source.source_uri,
        1,
        MAX_SOURCE_URI_LEN,
    )?;
    if source.source_uri.contains('\0') {
        return Err(Error::validation(
            "Source.SourceUri may not contain a NUL character",
        ));
    }
    if kind == EntityKind::Artifact {
        if source.source_type.is_some() || source.source_id.is_some() {
            return Err(Error::validation(
                "Source of an artifact takes SourceUri and SourceTypes, not SourceType or SourceId",
            ));
        }
        for (i, identity) in source.source_types.iter().enumerate() {
            let field = format!("Source.SourceTypes[{i}]");
            if !SOURCE_ID_TYPES.contains(&identity.source_id_type.as_str()) {
                return Err(Error::validation(format!(
                    "{field}.SourceIdType {} is not one of MD5Hash, S3ETag, S3Version, Custom",
                    quote(&identity.source_id_type)
                )));
            }
            check_len(&format!("{field}.Value"), &identity.value, 0, MAX_TYPE_LEN)?;
        }
    } else {
        if !source.source_types.is_empty() {
            return Err(Error::validation(format!(
                "Source of an {} takes SourceUri, SourceType and SourceId, not SourceTypes",
                kind.name().to_ascii_lowercase()
            )));
        }
        if let Some(t) = &source.source_type {
            check_len("Source.SourceType", t, 0, MAX_TYPE_LEN)?;
        }
        if let Some(id) = &source.source_id {
            check_len("Source.SourceId", id, 0, MAX_TYPE_LEN)?;
        }
    }
    Ok(())
}

fn max_property_value_len(kind: EntityKind) -> usize {
    if kind == EntityKind::Artifact {
        MAX_ARTIFACT_PROPERTY_VALUE_LEN
    } else {
        MAX_PROPERTY_KEY_LEN
    }
}

fn check_properties<'a>(
    field: &str,
    kind: EntityKind,
    properties: impl Iterator<Item = (&'a String, &'a String)>,
) -> Result<()> {
    for (key, value) in properties {
        check_len(&format!("{field} key"), key, 0, MAX_PROPERTY_KEY_LEN)?;
        check_len(
            &format!("{field}[{}]", quote(key)),
            value,
            0,
            max_property_value_len(kind),
        )?;
    }
    Ok(())
}

pub fn check_property_count(field: &str, count: usize) -> Result<()> {
    if count > MAX_PROPERTIES {
        return Err(Error::validation(format!(
            "{field} has {count} entries; an entity holds at most {MAX_PROPERTIES} properties"
        )));
    }
    Ok(())
}

pub fn check_status(field: &str, status: &str) -> Result<()> {
    if !ACTION_STATUSES.contains(&status) {
        return Err(Error::validation(format!(
            "{field} {} is not one of {}",
            quote(status),
            ACTION_STATUSES.join(", ")
        )));
    }
    Ok(())
}

pub(crate) fn check_description(description: Option<&str>) -> Result<()> {
    match description {
        Some(d) => check_len("Description", d, 0, MAX_DESCRIPTION_LEN),
        None => Ok(()),
    }
}

/// Tag keys and values: Unicode letters, numbers, spaces and `_.:/=+-@`; keys not `aws:`.
pub(crate) fn check_tags(tags: &[Tag]) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::validation(format!(
            "Tags has {} tags; at most {MAX_TAGS} are allowed",
            tags.len()
        )));
    }
    let allowed = |c: char| {
        c.is_alphanumeric() || (c.is_whitespace() && !c.is_control()) || "_.:/=+-@".contains(c)
    };
    for (i, tag) in tags.iter().enumerate() {
        check_len(&format!("Tags[{i}].Key"), &tag.key, 1, MAX_TAG_KEY_LEN)?;
        check_len(
            &format!("Tags[{i}].Value"),
            &tag.value,
            0,
            MAX_TAG_VALUE_LEN,
        )?;
        for (part, text) in [("Key", &tag.key), ("Value", &tag.value)] {
            if !text.chars().all(allowed) {
                return Err(Error::validation(format!(
                    "Tags[{i}].{part} {} may hold only letters, numbers, spaces and _.:/=+-@",
                    quote(text)
                )));
            }
        }
        if tag.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(Error::validation(format!(
                "Tags[{i}].Key {} may not start with the reserved prefix 'aws:'",
                quote(&tag.key)
            )));
        }
    }
    Ok(())
}

pub fn check_new_entity(new: &NewEntity) -> Result<()> {
    let kind = new.kind;
    if !EntityKind::LINEAGE.contains(&kind) {
        return Err(Error::validation(format!(
            "a {} is created with Create{}, not as a lineage entity",
            kind.noun(),
            kind.name()
        )));
    }
    let name_field = format!("{}Name", kind.name());
    match (&new.name, kind) {
        (Some(name), _) => check_entity_name(&name_field, kind, name)?,
        (None, EntityKind::Artifact) => {}
        (None, _) => {
            return Err(Error::validation(format!("{name_field} is required")));
        }
    }
    check_source(kind, &new.source)?;
    check_len(
        &format!("{}Type", kind.name()),
        &new.entity_type,
        0,
        MAX_TYPE_LEN,
    )?;
    if kind == EntityKind::Artifact && new.description.is_some() {
        return Err(Error::validation("an artifact has no Description"));
    }
    check_description(new.description.as_deref())?;
    match (&new.status, kind) {
        (Some(status), EntityKind::Action) => check_status("Status", status)?,
        (Some(_), _) => {
            return Err(Error::validation(format!(
                "Status is an action's; a {} has none",
                kind.name().to_ascii_lowercase()
            )));
        }
        (None, _) => {}
    }
    check_property_count("Properties", new.properties.len())?;
    check_properties("Properties", kind, new.properties.iter())?;
    if kind == EntityKind::Context && !new.metadata.is_empty() {
        return Err(Error::validation("a context has no MetadataProperties"));
    }
    check_metadata(&new.metadata)?;
    check_tags(&new.tags)
}

pub(crate) fn check_metadata(metadata: &MetadataProperties) -> Result<()> {
    for (field, value) in [
        ("MetadataProperties.CommitId", &metadata.commit_id),
        ("MetadataProperties.Repository", &metadata.repository),
        ("MetadataProperties.GeneratedBy", &metadata.generated_by),
        ("MetadataProperties.ProjectId", &metadata.project_id),
    ] {
        if let Some(value) = value {
            check_len(field, value, 0, MAX_METADATA_LEN)?;
        }
    }
    Ok(())
}

/// `DisplayName`: the pattern of names, at most 120 characters.
pub fn check_display_name(display_name: Option<&str>) -> Result<()> {
    match display_name {
        Some(d) => check_entity_name("DisplayName", EntityKind::Experiment, d),
        None => Ok(()),
    }
}

/// A trial component's `Status`.
pub fn check_trial_component_status(
    primary_status: Option<&str>,
    message: Option<&str>,
) -> Result<()> {
    if let Some(status) = primary_status
        && !TRIAL_COMPONENT_STATUSES.contains(&status)
    {
        return Err(Error::validation(format!(
            "Status.PrimaryStatus {} is not one of {}",
            quote(status),
            TRIAL_COMPONENT_STATUSES.join(", ")
        )));
    }
    if let Some(message) = message {
        check_len("Status.Message", message, 0, MAX_STATUS_MESSAGE_LEN)?;
    }
    Ok(())
}

/// `Parameters`: at most 300, keys of at most 320 characters, string values of at most 2,500,
/// numbers finite.
pub fn check_parameters(parameters: &BTreeMap<String, ParameterValue>) -> Result<()> {
    check_map_count("Parameters", parameters.len(), MAX_PARAMETERS)?;
    for (key, value) in parameters {
        check_len("Parameters key", key, 0, MAX_PARAMETER_KEY_LEN)?;
        match value {
            ParameterValue::String(text) => check_len(
                &format!("Parameters[{}].StringValue", quote(key)),
                text,
                0,
                MAX_PARAMETER_STRING_LEN,
            )?,
            ParameterValue::Number(n) if !n.is_finite() => {
                return Err(Error::validation(format!(
                    "Parameters[{}].NumberValue must be a finite number",
                    quote(key)
                )));
            }
            ParameterValue::Number(_) => {}
        }
    }
    Ok(())
}

/// `InputArtifacts` / `OutputArtifacts`: at most 60, keys of at most 128 characters, a
/// `MediaType` like `text/csv` of at most 64, a `Value` of at most 2,048.
pub fn check_run_artifacts(field: &str, artifacts: &BTreeMap<String, RunArtifact>) -> Result<()> {
    check_map_count(field, artifacts.len(), MAX_RUN_ARTIFACTS)?;
    for (key, artifact) in artifacts {
        check_len(&format!("{field} key"), key, 0, MAX_RUN_ARTIFACT_KEY_LEN)?;
        let at = format!("{field}[{}]", quote(key));
        check_len(
            &format!("{at}.Value"),
            &artifact.value,
            0,
            MAX_RUN_ARTIFACT_VALUE_LEN,
        )?;
        if let Some(media_type) = &artifact.media_type {
            check_len(
                &format!("{at}.MediaType"),
                media_type,
                0,
                MAX_MEDIA_TYPE_LEN,
            )?;
            let word = |s: &str, plus: bool| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || (plus && c == '+'))
            };
            let ok = media_type
                .split_once('/')
                .is_some_and(|(kind, sub)| word(kind, false) && word(sub, true));
            if !ok {
                return Err(Error::validation(format!(
                    "{at}.MediaType {} is not a media type like text/csv",
                    quote(media_type)
                )));
            }
        }
    }
    Ok(())
}

/// `ParametersToRemove`, `InputArtifactsToRemove`, `OutputArtifactsToRemove`.
pub fn check_keys_to_remove(field: &str, keys: &[String]) -> Result<()> {
    for (i, key) in keys.iter().enumerate() {
        check_len(&format!("{field}[{i}]"), key, 0, MAX_TO_REMOVE_KEY_LEN)?;
    }
    Ok(())
}

pub fn check_map_count(field: &str, count: usize, max: usize) -> Result<()> {
    if count > max {
        return Err(Error::validation(format!(
            "{field} has {count} entries; a trial component holds at most {max}"
        )));
    }
    Ok(())
}

/// The update's own fields; the property count after it is checked against the entity.
pub fn check_update(kind: EntityKind, update: &EntityUpdate) -> Result<()> {
    if !EntityKind::LINEAGE.contains(&kind) {
        return Err(Error::validation(format!(
            "a {} is changed with Update{}, not as a lineage entity",
            kind.noun(),
            kind.name()
        )));
    }
    if let Some(name) = &update.name {
        if kind != EntityKind::Artifact {
            return Err(Error::validation(format!(
                "a {} cannot be renamed",
                kind.name().to_ascii_lowercase()
            )));
        }
        check_entity_name("ArtifactName", kind, name)?;
    }
    if update.description.is_some() && kind == EntityKind::Artifact {
        return Err(Error::validation("an artifact has no Description"));
    }
    check_description(update.description.as_deref())?;
    if let Some(status) = &update.status {
        if kind != EntityKind::Action {
            return Err(Error::validation(format!(
                "Status is an action's; a {} has none",
                kind.name().to_ascii_lowercase()
            )));
        }
        check_status("Status", status)?;
    }
    check_property_count("Properties", update.properties.len())?;
    check_properties("Properties", kind, update.properties.iter())?;
    for (i, key) in update.properties_to_remove.iter().enumerate() {
        check_len(
            &format!("PropertiesToRemove[{i}]"),
            key,
            0,
            MAX_PROPERTY_KEY_LEN,
        )?;
        if update.properties.contains_key(key) {
            return Err(Error::validation(format!(
                "PropertiesToRemove[{i}] {} is also in Properties; a property is either set or removed",
                quote(key)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_sagemakers_patterns() {
        for ok in ["a", "A-1", "my--job9", &"x".repeat(120)] {
            check_entity_name("ActionName", EntityKind::Action, ok).unwrap();
        }
        for bad in ["", "-a", "a-", "a_b", "a b", "é", &"x".repeat(121)] {
            let err = check_entity_name("ActionName", EntityKind::Action, bad).unwrap_err();
            assert!(err.message().starts_with("ActionName"), "{}", err.message());
        }
        check_entity_name("ContextName", EntityKind::Context, "fg_1-2").unwrap();
        assert!(check_entity_name("ContextName", EntityKind::Context, "fg_").is_err());
    }

    #[test]
    fn arns_name_their_kind() {
        let arn = "arn:aws:sagemaker:us-east-1:123456789012:context/fg-1";
        assert_eq!(check_arn("SourceArn", arn).unwrap(), EntityKind::Context);
        for bad in [
            "arn:aws:sagemaker:us-east-1:1234:context/fg",
            "arn:aws:s3:us-east-1:123456789012:context/fg",
            "arn:aws:sagemaker:us-east-1:123456789012:endpoint/e",
            "arn:aws:sagemaker:us-east-1:123456789012:context/",
            "context/fg",
        ] {
            let err = check_arn("SourceArn", bad).unwrap_err();
            assert!(err.message().starts_with("SourceArn"), "{}", err.message());
        }
    }
}

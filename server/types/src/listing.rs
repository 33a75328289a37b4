//! ListFeatureGroups: filters, sort orders and pagination tokens, as SageMaker's.
//!
//! A token names the last group of the previous page by its sort key, so pages stay correct
//! while groups are created or deleted between calls.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::FeatureGroup;
use crate::time::EpochMillis;

pub const DEFAULT_MAX_RESULTS: usize = 10;
pub const MAX_MAX_RESULTS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    Name,
    FeatureGroupStatus,
    OfflineStoreStatus,
    #[default]
    CreationTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    Ascending,
    #[default]
    Descending,
}

/// The status a group reports: creation is synchronous, so every listed group is Created.
pub const FEATURE_GROUP_STATUS: &str = "Created";

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub name_contains: Option<String>,
    pub status_equals: Option<String>,
    pub offline_store_status_equals: Option<String>,
    pub created_after_ms: Option<EpochMillis>,
    pub created_before_ms: Option<EpochMillis>,
    pub sort_by: SortBy,
    pub sort_order: SortOrder,
    pub max_results: Option<usize>,
    pub next_token: Option<String>,
}

pub struct Page {
    pub groups: Vec<Arc<FeatureGroup>>,
    pub next_token: Option<String>,
}

/// `offline_store_status` names a group's current offline store status (Active, Blocked,
/// Disabled), for the filter and the sort.
pub fn list(
    groups: Vec<Arc<FeatureGroup>>,
    query: &ListQuery,
    offline_store_status: impl Fn(&FeatureGroup) -> &'static str,
) -> Result<Page> {
    let max = query.max_results.unwrap_or(DEFAULT_MAX_RESULTS);
    if !(1..=MAX_MAX_RESULTS).contains(&max) {
        return Err(Error::validation(format!(
            "MaxResults {max} is not in 1..{MAX_MAX_RESULTS}"
        )));
    }
    if let Some(name) = &query.name_contains {
        crate::model::validate::check_len("NameContains", name, 1, 64)?;
    }
    let after = query.next_token.as_deref().map(decode_token).transpose()?;
    let needle = query.name_contains.as_ref().map(|n| n.to_ascii_lowercase());
    let mut matching: Vec<(String, Arc<FeatureGroup>)> = groups
        .into_iter()
        .filter(|g| {
            needle
                .as_ref()
                .is_none_or(|n| g.name.to_ascii_lowercase().contains(n))
                && query
                    .status_equals
                    .as_ref()
                    .is_none_or(|s| s == FEATURE_GROUP_STATUS)
                && query
                    .offline_store_status_equals
                    .as_ref()
                    .is_none_or(|s| s == offline_store_status(g))
                && query
                    .created_after_ms
                    .is_none_or(|t| g.creation_time_ms > t)
                && query
                    .created_before_ms
                    .is_none_or(|t| g.creation_time_ms < t)
        })
        .map(|g| (sort_key(&g, query.sort_by, &offline_store_status), g))
        .collect();
    matching.sort_by(|a, b| a.0.cmp(&b.0));
    if query.sort_order == SortOrder::Descending {
        matching.reverse();
    }
    let start = match &after {
        None => 0,
        Some(last) => matching
            .iter()
            .position(|(key, _)| match query.sort_order {
                SortOrder::Ascending => key > last,
                SortOrder::Descending => key < last,
            })
            .unwrap_or(matching.len()),
    };
    let rest = &matching[start..];
    let page: Vec<_> = rest.iter().take(max).collect();
    let next_token = (rest.len() > max)
        .then(|| page.last().map(|(key, _)| encode_token(key)))
        .flatten();
    Ok(Page {
        groups: page.into_iter().map(|(_, g)| g.clone()).collect(),
        next_token,
    })
}

/// A totally ordered key: the sort field, then the name as a tie-breaker.
fn sort_key(
    group: &FeatureGroup,
    sort_by: SortBy,
    offline_store_status: impl Fn(&FeatureGroup) -> &'static str,
) -> String {
    let field = match sort_by {
        SortBy::Name => String::new(),
        SortBy::FeatureGroupStatus => FEATURE_GROUP_STATUS.to_string(),
        SortBy::OfflineStoreStatus => offline_store_status(group).to_string(),
        // Offset so negative times sort before positive ones as text.
        SortBy::CreationTime => {
            format!("{:020}", i128::from(group.creation_time_ms) + (1i128 << 62))
        }
    };
    format!("{field}\u{0}{}", group.name)
}

fn encode_token(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str) -> Result<String> {
    let invalid = || Error::validation("NextToken is not a token returned by ListFeatureGroups");
    if !token.len().is_multiple_of(2) || token.len() > 512 {
        return Err(invalid());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(token.get(i..i + 2).ok_or_else(invalid)?, 16).map_err(|_| invalid())
        })
        .collect::<Result<Vec<u8>>>()?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

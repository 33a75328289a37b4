//! AddAssociation, DeleteAssociation, ListAssociations. An association is keyed by its two
//! ends (its type is not part of the key, as in SageMaker) and stored twice, under its source
//! and under its destination, so that a walk either way is a prefix scan.

use quiver_storage::lineage_records::LineageTable;
use quiver_types::error::{Error, Result, quote};
use quiver_types::time::EpochMillis;

use crate::model::{Association, AssociationType, Entity, Page};
use crate::{Lineage, keys, paging, validate};

/// What is stored under both keys of an association: its type (a byte: 0 for none, else
/// its position in [`AssociationType::ALL`] plus one), when it was made (8 bytes, big-endian
/// milliseconds) and by whom (the rest, UTF-8). A walk reads thousands of these: the type is its
/// first byte.
#[derive(Debug, Clone)]
pub(crate) struct StoredEdge {
    pub association_type: Option<AssociationType>,
    pub created_ms: EpochMillis,
    pub created_by: Option<String>,
}

pub(crate) fn encode_edge(edge: &StoredEdge) -> Vec<u8> {
    let code = edge.association_type.map_or(0, |t| {
        AssociationType::ALL
            .iter()
            .position(|a| *a == t)
            .unwrap_or(0) as u8
            + 1
    });
    let mut bytes = Vec::with_capacity(9 + edge.created_by.as_ref().map_or(0, String::len));
    bytes.push(code);
    bytes.extend_from_slice(&edge.created_ms.to_be_bytes());
    if let Some(by) = &edge.created_by {
        bytes.extend_from_slice(by.as_bytes());
    }
    bytes
}

/// The association type of a stored edge, reading only its first byte.
pub(crate) fn edge_type(bytes: &[u8]) -> Result<Option<AssociationType>> {
    match bytes.first() {
        Some(0) => Ok(None),
        Some(code) => AssociationType::ALL
            .get(usize::from(*code) - 1)
            .copied()
            .map(Some)
            .ok_or_else(corrupt_edge),
        None => Err(corrupt_edge()),
    }
}

pub(crate) fn decode_edge(bytes: &[u8]) -> Result<StoredEdge> {
    let association_type = edge_type(bytes)?;
    let created: [u8; 8] = bytes
        .get(1..9)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(corrupt_edge)?;
    let by = &bytes[9..];
    Ok(StoredEdge {
        association_type,
        created_ms: i64::from_be_bytes(created),
        created_by: (!by.is_empty()).then(|| String::from_utf8_lossy(by).into_owned()),
    })
}

fn corrupt_edge() -> Error {
    Error::internal("a stored lineage association is corrupt")
}

/// How ListAssociations orders its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssociationSort {
    SourceArn,
    DestinationArn,
    SourceType,
    DestinationType,
    CreationTime,
}

/// ListAssociations' filters and paging.
#[derive(Debug, Clone, Default)]
pub struct AssociationListQuery {
    pub source_arn: Option<String>,
    pub destination_arn: Option<String>,
    pub source_type: Option<String>,
    pub destination_type: Option<String>,
    pub association_type: Option<AssociationType>,
    pub created_after_ms: Option<EpochMillis>,
    pub created_before_ms: Option<EpochMillis>,
    pub sort_by: Option<AssociationSort>,
    pub descending: bool,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

impl AssociationSort {
    /// `SortBy` as SageMaker spells it.
    pub fn parse(field: &str, text: &str) -> Result<Self> {
        match text {
            "SourceArn" => Ok(Self::SourceArn),
            "DestinationArn" => Ok(Self::DestinationArn),
            "SourceType" => Ok(Self::SourceType),
            "DestinationType" => Ok(Self::DestinationType),
            "CreationTime" => Ok(Self::CreationTime),
            other => Err(Error::validation(format!(
                "{field} {} is not one of SourceArn, DestinationArn, SourceType, DestinationType, CreationTime",
                quote(other)
            ))),
        }
    }
}

impl Lineage {
    /// Associates two existing entities. Adding an association that exists is refused
    /// (ValidationException, as SageMaker answers; the SageMaker SDK relies on it).
    pub fn add_association(
        &self,
        source_arn: &str,
        destination_arn: &str,
        association_type: Option<AssociationType>,
        by: Option<&str>,
    ) -> Result<()> {
        validate::check_association_end("SourceArn", source_arn)?;
        validate::check_association_end("DestinationArn", destination_arn)?;
        if source_arn == destination_arn {
            return Err(Error::validation(format!(
                "SourceArn and DestinationArn are both {}; an entity cannot be associated with itself",
                quote(source_arn)
            )));
        }
        let edge = StoredEdge {
            association_type,
            created_ms: self.clock.now_ms(),
            created_by: by.map(str::to_string),
        };
        let written = {
            let _writer = self.writer.lock();
            for (field, arn) in [
                ("SourceArn", source_arn),
                ("DestinationArn", destination_arn),
            ] {
                if self.get(arn)?.is_none() {
                    return Err(Error::not_found(format!(
                        "{field} {} names no entity of the lineage graph",
                        quote(arn)
                    )));
                }
            }
            let out_key = keys::out_edge(source_arn, destination_arn);
            if self.records.get(LineageTable::Edges, &out_key)?.is_some() {
                return Err(Error::validation(format!(
                    "an association from {source_arn} to {destination_arn} already exists"
                )));
            }
            let value = encode_edge(&edge);
            let mut batch = self.records.batch();
            batch.put(LineageTable::Edges, &out_key, &value);
            batch.put(
                LineageTable::Edges,
                &keys::in_edge(destination_arn, source_arn),
                &value,
            );
            batch.write("adding a lineage association")?
        };
        written.sync()
    }

    /// Removes the association between two entities, whatever its type.
    pub fn delete_association(&self, source_arn: &str, destination_arn: &str) -> Result<()> {
        validate::check_association_end("SourceArn", source_arn)?;
        validate::check_association_end("DestinationArn", destination_arn)?;
        let written = {
            let _writer = self.writer.lock();
            let out_key = keys::out_edge(source_arn, destination_arn);
            if self.records.get(LineageTable::Edges, &out_key)?.is_none() {
                return Err(Error::not_found(format!(
                    "no association from {source_arn} to {destination_arn} exists"
                )));
            }
            let mut batch = self.records.batch();
            batch.delete(LineageTable::Edges, &out_key);
            batch.delete(
                LineageTable::Edges,
                &keys::in_edge(destination_arn, source_arn),
            );
            batch.write("deleting a lineage association")?
        };
        written.sync()
    }

    /// The associations that pass the filters, sorted (by creation time, newest first, unless
    /// told otherwise), one page at a time (at most 100, 10 by default).
    pub fn list_associations(&self, query: &AssociationListQuery) -> Result<Page<Association>> {
        let max = paging::page_size(query.max_results, 10, 100)?;
        for (field, arn) in [
            ("SourceArn", &query.source_arn),
            ("DestinationArn", &query.destination_arn),
        ] {
            if let Some(arn) = arn {
                validate::check_association_end(field, arn)?;
            }
        }
        // The narrowest scan: under one end when a filter names it; else every association,
        // each once (under its source).
        let prefix = match (&query.source_arn, &query.destination_arn) {
            (Some(source), _) => keys::edges_from("o", source),
            (None, Some(destination)) => keys::edges_from("i", destination),
            (None, None) => Vec::new(),
        };
        let mut edges = Vec::new();
        self.records
            .scan(LineageTable::Edges, &prefix, |key, value| {
                let Some((near, direction, far)) = keys::parse_edge(key) else {
                    return Ok(true);
                };
                let (near, far) = (
                    String::from_utf8_lossy(near).into_owned(),
                    String::from_utf8_lossy(far).into_owned(),
                );
                let (source, destination) = match (direction, prefix.is_empty()) {
                    (b'o', _) => (near, far),
                    (_, true) => return Ok(true),
                    _ => (far, near),
                };
                let edge = decode_edge(value)?;
                let keep = query
                    .destination_arn
                    .as_ref()
                    .is_none_or(|d| *d == destination)
                    && query
                        .association_type
                        .is_none_or(|t| edge.association_type == Some(t))
                    && query.created_after_ms.is_none_or(|t| edge.created_ms > t)
                    && query.created_before_ms.is_none_or(|t| edge.created_ms < t);
                if keep {
                    edges.push((source, destination, edge));
                }
                Ok(true)
            })?;
        let mut found = Vec::new();
        for (source, destination, edge) in edges {
            let (Some(from), Some(to)) = (self.get(&source)?, self.get(&destination)?) else {
                continue;
            };
            let association = describe(&from, &to, edge);
            let keep = query
                .source_type
                .as_ref()
                .is_none_or(|t| association.source_type == *t)
                && query
                    .destination_type
                    .as_ref()
                    .is_none_or(|t| association.destination_type == *t);
            if keep {
                found.push(association);
            }
        }
        let sort = query.sort_by.unwrap_or(AssociationSort::CreationTime);
        let position = |a: &Association| -> paging::Position {
            let key = match sort {
                AssociationSort::SourceArn => a.source_arn.clone(),
                AssociationSort::DestinationArn => a.destination_arn.clone(),
                AssociationSort::SourceType => a.source_type.clone(),
                AssociationSort::DestinationType => a.destination_type.clone(),
                AssociationSort::CreationTime => format!("{:020}", a.created_ms.max(0)),
            };
            (key, a.source_arn.clone(), a.destination_arn.clone())
        };
        paging::sorted_page(
            "ListAssociations",
            found.into_iter().map(|a| (position(&a), a)).collect(),
            query.descending,
            query.next_token.as_deref(),
            max,
        )
    }
}

/// An association's type as a vertex shows it: the entity's own type.
fn describe(from: &Entity, to: &Entity, edge: StoredEdge) -> Association {
    Association {
        source_arn: from.arn.clone(),
        destination_arn: to.arn.clone(),
        association_type: edge.association_type,
        source_type: from.entity_type.clone(),
        destination_type: to.entity_type.clone(),
        source_name: from.name.clone(),
        destination_name: to.name.clone(),
        created_ms: edge.created_ms,
        created_by: edge.created_by,
    }
}

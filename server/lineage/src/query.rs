//! QueryLineage: from a start entity, walk associations forwards (Descendants), backwards
//! (Ascendants) or both ways from every vertex reached (Both), breadth first, at most
//! `MaxDepth` associations deep; return the vertices that pass the filters, a page at a time,
//! and the associations walked.
//!
//! Decided where SageMaker's documentation is silent: the start entity is a vertex like any
//! other (returned when it passes the filters); filters choose which vertices are returned,
//! never where the walk goes; the edges are every association walked, returned with the first
//! page only; with no StartArns the result is empty.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

use serde::{Deserialize, Serialize};

use quiver_storage::lineage_records::LineageTable;
use quiver_types::error::{Error, Result, quote};
use quiver_types::time::EpochMillis;

use crate::associations::decode_edge;
use crate::model::{AssociationType, Entity, EntityKind};
use crate::{Lineage, keys, paging, validate};

pub const MAX_DEPTH: u32 = 10;
/// The most entities one walk visits by default ([`crate::Lineage::with_max_walk`]): a query
/// that reaches more is refused, naming what narrows it, rather than holding a thread and its
/// memory for the whole graph.
pub const MAX_WALK: usize = 100_000;
pub const MAX_RESULTS: usize = 50;
const MAX_TYPES: usize = 5;
const MAX_TYPE_LEN: usize = 40;
const MAX_PROPERTY_FILTERS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    Both,
    Ascendants,
    Descendants,
}

/// Which vertices are returned. Each filter given must hold; `properties` holds when any one
/// of its pairs is among the entity's properties.
impl Direction {
    /// `Direction` as SageMaker spells it.
    pub fn parse(field: &str, text: &str) -> Result<Self> {
        match text {
            "Both" => Ok(Self::Both),
            "Ascendants" => Ok(Self::Ascendants),
            "Descendants" => Ok(Self::Descendants),
            other => Err(Error::validation(format!(
                "{field} {} is not one of Both, Ascendants, Descendants",
                quote(other)
            ))),
        }
    }
}

#[derive(Debug, Clone, Default, Hash)]
pub struct QueryFilters {
    /// The entity's own type (`ArtifactType`, `ActionType`, `ContextType`).
    pub types: Vec<String>,
    /// `Artifact`, `Action`, `Context` or `TrialComponent`.
    pub lineage_types: Vec<String>,
    pub created_before_ms: Option<EpochMillis>,
    pub created_after_ms: Option<EpochMillis>,
    pub modified_before_ms: Option<EpochMillis>,
    pub modified_after_ms: Option<EpochMillis>,
    pub properties: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Hash)]
pub struct LineageQuery {
    pub start_arns: Vec<String>,
    pub direction: Direction,
    pub include_edges: bool,
    pub filters: QueryFilters,
    /// 10 when not given.
    pub max_depth: Option<i64>,
    /// 50 when not given.
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vertex {
    pub arn: String,
    pub entity_type: String,
    pub lineage_type: EntityKind,
    pub source_uri: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Edge {
    pub source_arn: String,
    pub destination_arn: String,
    pub association_type: Option<AssociationType>,
}

#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    pub vertices: Vec<Vertex>,
    pub edges: Vec<Edge>,
    pub next_token: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct QueryToken {
    /// How many vertices earlier pages returned.
    offset: usize,
    /// Which query they belong to.
    query: u64,
}

impl Lineage {
    pub fn query(&self, query: &LineageQuery) -> Result<QueryResult> {
        let (max_depth, max_results) = check_query(query)?;
        let fingerprint = fingerprint(query);
        let offset = match &query.next_token {
            Some(token) => {
                let token: QueryToken = paging::decode("QueryLineage", token)?;
                if token.query != fingerprint {
                    return Err(Error::validation(
                        "NextToken belongs to a different QueryLineage request",
                    ));
                }
                token.offset
            }
            None => 0,
        };
        let Some(start) = query.start_arns.first() else {
            return Ok(QueryResult::default());
        };
        let Some(start_entity) = self.get(start)? else {
            return Err(Error::not_found(format!(
                "StartArns[0] {} names no artifact, action or context",
                quote(start)
            )));
        };
        let walk = self.walk(start_entity, query.direction, max_depth)?;
        let matching: Vec<&Entity> = walk
            .vertices
            .iter()
            .filter(|e| passes(&query.filters, e))
            .collect();
        let page: Vec<Vertex> = matching
            .iter()
            .skip(offset)
            .take(max_results)
            .map(|e| Vertex {
                arn: e.arn.clone(),
                entity_type: e.entity_type.clone(),
                lineage_type: e.kind,
                source_uri: e.source.source_uri.clone(),
            })
            .collect();
        let returned = offset + page.len();
        let next_token = (returned < matching.len()).then(|| {
            paging::encode(&QueryToken {
                offset: returned,
                query: fingerprint,
            })
        });
        let edges = if query.include_edges && offset == 0 {
            walk.edges
        } else {
            Vec::new()
        };
        Ok(QueryResult {
            vertices: page,
            edges,
            next_token,
        })
    }

    /// Breadth first from `start`, each vertex once, in the order reached; the associations
    /// walked, each once.
    fn walk(&self, start: Entity, direction: Direction, max_depth: u32) -> Result<Walk> {
        let directions: &[&str] = match direction {
            Direction::Descendants => &["o"],
            Direction::Ascendants => &["i"],
            Direction::Both => &["o", "i"],
        };
        let mut index: HashMap<String, usize> = HashMap::new();
        index.insert(start.arn.clone(), 0);
        let mut vertices = vec![start];
        let mut edges: HashMap<(String, String), Option<AssociationType>> = HashMap::new();
        let mut edge_order = Vec::new();
        let mut frontier = VecDeque::from([(0usize, 0u32)]);
        while let Some((at, depth)) = frontier.pop_front() {
            if depth >= max_depth {
                continue;
            }
            let arn = vertices[at].arn.clone();
            let mut reached = Vec::new();
            for direction in directions {
                let prefix = keys::edges_from(direction, &arn);
                self.records
                    .scan(LineageTable::Edges, &prefix, None, |key, value| {
                        let far = String::from_utf8_lossy(keys::far_end(&prefix, key)).into_owned();
                        let edge = decode_edge(value)?;
                        let ends = if *direction == "o" {
                            (arn.clone(), far.clone())
                        } else {
                            (far.clone(), arn.clone())
                        };
                        if !edges.contains_key(&ends) {
                            edges.insert(ends.clone(), edge.association_type);
                            edge_order.push(ends);
                        }
                        if !index.contains_key(&far) {
                            reached.push(far);
                        }
                        Ok(true)
                    })?;
            }
            reached.dedup();
            let fresh: Vec<String> = reached
                .into_iter()
                .filter(|arn| !index.contains_key(arn))
                .collect();
            let keys: Vec<Vec<u8>> = fresh
                .iter()
                .map(|arn| {
                    let kind = EntityKind::of_arn(arn).unwrap_or(EntityKind::Artifact);
                    keys::entity(kind, arn)
                })
                .collect();
            for (arn, value) in fresh
                .into_iter()
                .zip(self.records.multi_get(LineageTable::Entities, &keys)?)
            {
                if index.contains_key(&arn) {
                    continue;
                }
                // An association always has both ends (a delete removes its associations in
                // the same write); skip rather than fail if one ever does not.
                let Some(bytes) = value else { continue };
                let entity = crate::decode_entity(&bytes)?;
                if vertices.len() >= self.max_walk {
                    return Err(Error::validation(format!(
                        "the walk reached more than {} entities by depth {}; narrow it with a smaller MaxDepth or one Direction",
                        self.max_walk,
                        depth + 1
                    )));
                }
                index.insert(arn, vertices.len());
                frontier.push_back((vertices.len(), depth + 1));
                vertices.push(entity);
            }
        }
        let edges = edge_order
            .into_iter()
            .map(|(source_arn, destination_arn)| {
                let association_type = edges[&(source_arn.clone(), destination_arn.clone())];
                Edge {
                    source_arn,
                    destination_arn,
                    association_type,
                }
            })
            .collect();
        Ok(Walk { vertices, edges })
    }
}

struct Walk {
    vertices: Vec<Entity>,
    edges: Vec<Edge>,
}

fn passes(filters: &QueryFilters, entity: &Entity) -> bool {
    (filters.types.is_empty() || filters.types.contains(&entity.entity_type))
        && (filters.lineage_types.is_empty()
            || filters
                .lineage_types
                .iter()
                .any(|t| t == entity.kind.name()))
        && filters
            .created_before_ms
            .is_none_or(|t| entity.created_ms < t)
        && filters
            .created_after_ms
            .is_none_or(|t| entity.created_ms > t)
        && filters
            .modified_before_ms
            .is_none_or(|t| entity.modified_ms < t)
        && filters
            .modified_after_ms
            .is_none_or(|t| entity.modified_ms > t)
        && (filters.properties.is_empty()
            || filters
                .properties
                .iter()
                .any(|(k, v)| entity.properties.get(k) == Some(v)))
}

/// The request's limits; its depth and page size.
fn check_query(query: &LineageQuery) -> Result<(u32, usize)> {
    if query.start_arns.len() > 1 {
        return Err(Error::validation(format!(
            "StartArns has {} ARNs; QueryLineage takes at most 1",
            query.start_arns.len()
        )));
    }
    for (i, arn) in query.start_arns.iter().enumerate() {
        validate::check_arn(&format!("StartArns[{i}]"), arn)?;
    }
    let max_depth = match query.max_depth {
        None => MAX_DEPTH,
        Some(d) if (0..=i64::from(MAX_DEPTH)).contains(&d) => d as u32,
        Some(d) => {
            return Err(Error::validation(format!(
                "MaxDepth {d} is not in 0..{MAX_DEPTH}"
            )));
        }
    };
    let max_results = match query.max_results {
        None => MAX_RESULTS,
        Some(n) if (1..=MAX_RESULTS as i64).contains(&n) => n as usize,
        Some(n) => {
            return Err(Error::validation(format!(
                "MaxResults {n} is not in 1..{MAX_RESULTS}"
            )));
        }
    };
    let filters = &query.filters;
    if filters.types.len() > MAX_TYPES {
        return Err(Error::validation(format!(
            "Filters.Types has {} types; at most {MAX_TYPES}",
            filters.types.len()
        )));
    }
    for (i, t) in filters.types.iter().enumerate() {
        quiver_types::model::validate::check_len(
            &format!("Filters.Types[{i}]"),
            t,
            0,
            MAX_TYPE_LEN,
        )?;
    }
    if filters.lineage_types.len() > 4 {
        return Err(Error::validation(format!(
            "Filters.LineageTypes has {} types; at most 4",
            filters.lineage_types.len()
        )));
    }
    for (i, t) in filters.lineage_types.iter().enumerate() {
        if !["TrialComponent", "Artifact", "Context", "Action"].contains(&t.as_str()) {
            return Err(Error::validation(format!(
                "Filters.LineageTypes[{i}] {} is not one of TrialComponent, Artifact, Context, Action",
                quote(t)
            )));
        }
    }
    if filters.properties.len() > MAX_PROPERTY_FILTERS {
        return Err(Error::validation(format!(
            "Filters.Properties has {} pairs; at most {MAX_PROPERTY_FILTERS}",
            filters.properties.len()
        )));
    }
    for (key, value) in &filters.properties {
        quiver_types::model::validate::check_len("Filters.Properties key", key, 0, 256)?;
        quiver_types::model::validate::check_len(
            &format!("Filters.Properties[{}]", quote(key)),
            value,
            0,
            256,
        )?;
    }
    Ok((max_depth, max_results))
}

/// Identifies a query across its pages (the token itself excluded).
fn fingerprint(query: &LineageQuery) -> u64 {
    let mut hasher = DefaultHasher::new();
    let mut query = query.clone();
    query.next_token = None;
    query.max_results = None;
    query.hash(&mut hasher);
    hasher.finish()
}

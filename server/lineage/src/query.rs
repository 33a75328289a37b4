//! QueryLineage: from a start entity, walk associations forwards (Descendants), backwards
//! (Ascendants) or both ways from every vertex reached (Both), breadth first, at most
//! `MaxDepth` associations deep; return the vertices that pass the filters, a page at a time,
//! and the associations walked.
//!
//! Decided where SageMaker's documentation is silent: the start entity is a vertex like any
//! other (returned when it passes the filters); filters choose which vertices are returned,
//! never where the walk goes; the edges are every association walked, returned with the first
//! page only; with no StartArns the result is empty.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use serde::{Deserialize, Serialize};

use quiver_storage::lineage_records::LineageTable;
use quiver_types::error::{Error, Result, quote};
use quiver_types::time::EpochMillis;

use crate::associations::edge_type;
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
                "StartArns[0] {} names no entity of the lineage graph",
                quote(start)
            )));
        };
        let with_properties = !query.filters.properties.is_empty();
        let walk = self.walk(start_entity, query.direction, max_depth, with_properties)?;
        let matching: Vec<&Found> = walk
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
    /// walked, each once. Vertices are numbered as they are first seen, so that an edge is two
    /// numbers and only a vertex seen for the first time costs an allocation.
    fn walk(
        &self,
        start: Entity,
        direction: Direction,
        max_depth: u32,
        with_properties: bool,
    ) -> Result<Walk> {
        let mut number: HashMap<String, u32> = HashMap::new();
        number.insert(start.arn.clone(), 0);
        let mut arns: Vec<String> = vec![start.arn.clone()];
        // Filled once read; `None` for an end that does not exist (never written, as a delete
        // removes an entity's associations with it; skipped rather than failed on).
        let mut entities: Vec<Option<Found>> = vec![Some(Found::of(start))];
        let mut seen_edges: HashSet<(u32, u32)> = HashSet::new();
        let mut edges: Vec<(u32, u32, Option<AssociationType>)> = Vec::new();
        // Level by level: each level's vertices scanned in key order (the iterator moves
        // forward through the table), then the entities first reached at that level read in
        // one batch.
        let mut level: Vec<u32> = vec![0];
        let mut scanner = self.records.scanner(LineageTable::Edges);
        for depth in 0..max_depth {
            if level.is_empty() {
                break;
            }
            level.sort_by(|a, b| arns[*a as usize].cmp(&arns[*b as usize]));
            let first_new = arns.len();
            for &at in &level {
                // One seek per vertex: both directions are under its ARN.
                let prefix = match direction {
                    Direction::Descendants => keys::edges_from("o", &arns[at as usize]),
                    Direction::Ascendants => keys::edges_from("i", &arns[at as usize]),
                    Direction::Both => keys::edges_of(&arns[at as usize]),
                };
                scanner.scan(&prefix, |key, value| {
                    let Some((_, outgoing, far)) = keys::parse_edge(key) else {
                        return Err(Error::internal("a stored lineage association is corrupt"));
                    };
                    let far = std::str::from_utf8(far)
                        .map_err(|_| Error::internal("a stored lineage association is corrupt"))?;
                    let far = match number.get(far) {
                        Some(n) => *n,
                        None => {
                            if arns.len() >= self.max_walk {
                                return Err(Error::validation(format!(
                                    "the walk reached more than {} entities by depth {}; narrow it with a smaller MaxDepth or one Direction",
                                    self.max_walk,
                                    depth + 1
                                )));
                            }
                            let n = arns.len() as u32;
                            number.insert(far.to_string(), n);
                            arns.push(far.to_string());
                            n
                        }
                    };
                    let ends = if outgoing == b'o' { (at, far) } else { (far, at) };
                    if seen_edges.insert(ends) {
                        edges.push((ends.0, ends.1, edge_type(value)?));
                    }
                    Ok(true)
                })?;
            }
            let mut fresh: Vec<u32> = (first_new as u32..arns.len() as u32).collect();
            fresh.sort_by(|a, b| arns[*a as usize].cmp(&arns[*b as usize]));
            let keys: Vec<Vec<u8>> = fresh
                .iter()
                .map(|n| {
                    let arn = &arns[*n as usize];
                    let kind = EntityKind::of_arn(arn).unwrap_or(EntityKind::Artifact);
                    keys::entity(kind, arn)
                })
                .collect();
            entities.resize_with(arns.len(), || None);
            level.clear();
            for (n, value) in fresh
                .into_iter()
                .zip(self.records.multi_get(LineageTable::Entities, &keys)?)
            {
                if let Some(bytes) = value {
                    entities[n as usize] = Some(Found::decode(&bytes, with_properties)?);
                    level.push(n);
                }
            }
        }
        let vertices = entities.into_iter().flatten().collect();
        let edges = edges
            .into_iter()
            .map(|(from, to, association_type)| Edge {
                source_arn: arns[from as usize].clone(),
                destination_arn: arns[to as usize].clone(),
                association_type,
            })
            .collect();
        Ok(Walk { vertices, edges })
    }
}

struct Walk {
    vertices: Vec<Found>,
    edges: Vec<Edge>,
}

/// What a walk needs of an entity: what the filters test and a vertex shows. Decoded without
/// the rest of the entity (and without its properties unless a filter tests them): a walk
/// decodes every entity it reaches.
#[derive(Deserialize)]
struct Found {
    kind: EntityKind,
    arn: String,
    entity_type: String,
    source: FoundSource,
    created_ms: EpochMillis,
    modified_ms: EpochMillis,
    #[serde(skip)]
    properties: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct FoundSource {
    #[serde(rename = "SourceUri")]
    source_uri: String,
}

/// An entity's properties alone.
#[derive(Deserialize)]
struct FoundProperties {
    properties: BTreeMap<String, String>,
}

impl Found {
    fn of(entity: Entity) -> Self {
        Self {
            kind: entity.kind,
            arn: entity.arn,
            entity_type: entity.entity_type,
            source: FoundSource {
                source_uri: entity.source.source_uri,
            },
            created_ms: entity.created_ms,
            modified_ms: entity.modified_ms,
            properties: entity.properties,
        }
    }

    fn decode(bytes: &[u8], with_properties: bool) -> Result<Self> {
        let corrupt = |e: serde_json::Error| {
            Error::internal(format!("a stored lineage entity is corrupt: {e}"))
        };
        let mut found: Found = serde_json::from_slice(bytes).map_err(corrupt)?;
        if with_properties {
            found.properties = serde_json::from_slice::<FoundProperties>(bytes)
                .map_err(corrupt)?
                .properties;
        }
        Ok(found)
    }
}

fn passes(filters: &QueryFilters, entity: &Found) -> bool {
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
        validate::check_association_end(&format!("StartArns[{i}]"), arn)?;
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

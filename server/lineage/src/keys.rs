//! How the graph is laid out in its column families. ARNs and SourceUris hold no NUL (they are
//! validated), so NUL separates the parts of a key and prefix scans stop at the right place.
//! An entity's associations both ways are under one prefix, its ARN: a walk in both
//! directions reads them with one seek.
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | entities | `<arn segment> \0 <arn>` | the entity, JSON |
//! | edges | `<source arn> \0 o \0 <destination arn>` | the association (see `associations.rs`) |
//! | edges | `<destination arn> \0 i \0 <source arn>` | the same |
//! | index | `n \0 <arn segment> \0 <lower-case name>` | the ARN (actions, contexts) |
//! | index | `u \0 <arn segment> \0 <source uri> \0 <arn>` | nothing |
//! | index | `c \0 <dataset uri> \0 <column>` | the column's edges from input fields, JSON |
//! | index | `t \0 <experiment arn> \0 <trial arn>` | nothing: the experiment's trials |
//! | index | `m \0 <trial arn> \0 <trial component arn>` | nothing: the trial's components |
//! | index | `p \0 <trial component arn> \0 <trial arn>` | nothing: the component's trials |
//! | index | `#count` | how many entities exist, u64 big-endian |

use crate::model::EntityKind;

pub fn entity(kind: EntityKind, arn: &str) -> Vec<u8> {
    join(&[kind.arn_segment(), arn])
}

/// Every entity of a kind, in ARN order.
pub fn entities_of(kind: EntityKind) -> Vec<u8> {
    let mut key = kind.arn_segment().as_bytes().to_vec();
    key.push(0);
    key
}

pub fn out_edge(source: &str, destination: &str) -> Vec<u8> {
    join(&[source, "o", destination])
}

pub fn in_edge(destination: &str, source: &str) -> Vec<u8> {
    join(&[destination, "i", source])
}

/// The associations leaving `arn` (`o`) or arriving at it (`i`).
pub fn edges_from(direction: &str, arn: &str) -> Vec<u8> {
    let mut key = join(&[arn, direction]);
    key.push(0);
    key
}

/// Every association of `arn`, both ways.
pub fn edges_of(arn: &str) -> Vec<u8> {
    let mut key = arn.as_bytes().to_vec();
    key.push(0);
    key
}

/// The far end of an edge key under [`edges_from`].
pub fn far_end<'a>(prefix: &[u8], key: &'a [u8]) -> &'a [u8] {
    &key[prefix.len()..]
}

/// An edge key's parts: the near end, the direction (`o` or `i`) and the far end.
pub fn parse_edge(key: &[u8]) -> Option<(&[u8], u8, &[u8])> {
    let mut parts = key.splitn(3, |b| *b == 0);
    let near = parts.next()?;
    let direction = parts.next()?;
    let far = parts.next()?;
    match direction {
        [d @ (b'o' | b'i')] => Some((near, *d, far)),
        _ => None,
    }
}

pub fn name(kind: EntityKind, name: &str) -> Vec<u8> {
    join(&["n", kind.arn_segment(), &name.to_ascii_lowercase()])
}

pub fn source_uri(kind: EntityKind, uri: &str, arn: &str) -> Vec<u8> {
    join(&["u", kind.arn_segment(), uri, arn])
}

/// The entities of a kind with a SourceUri; the ARN follows the prefix.
pub fn source_uri_prefix(kind: EntityKind, uri: &str) -> Vec<u8> {
    let mut key = join(&["u", kind.arn_segment(), uri]);
    key.push(0);
    key
}

/// An OpenLineage dataset column's edges (see `openlineage.rs`).
pub fn column(dataset_uri: &str, column: &str) -> Vec<u8> {
    join(&["c", dataset_uri, column])
}

/// Every column of a dataset with edges.
pub fn columns_of(dataset_uri: &str) -> Vec<u8> {
    let mut key = join(&["c", dataset_uri]);
    key.push(0);
    key
}

/// Membership: `t` (an experiment's trials), `m` (a trial's components), `p` (a component's
/// trials); `owner` holds `member`.
pub fn member(relation: Relation, owner: &str, member: &str) -> Vec<u8> {
    join(&[relation.tag(), owner, member])
}

/// Every member of `owner` in `relation`; the member's ARN follows the prefix.
pub fn members_of(relation: Relation, owner: &str) -> Vec<u8> {
    let mut key = join(&[relation.tag(), owner]);
    key.push(0);
    key
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// An experiment's trials.
    Trials,
    /// A trial's components.
    Components,
    /// A trial component's trials.
    Parents,
}

impl Relation {
    fn tag(self) -> &'static str {
        match self {
            Self::Trials => "t",
            Self::Components => "m",
            Self::Parents => "p",
        }
    }
}

pub const COUNT: &[u8] = b"#count";

fn join(parts: &[&str]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(0);
        }
        key.extend_from_slice(part.as_bytes());
    }
    key
}

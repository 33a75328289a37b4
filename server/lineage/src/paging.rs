//! Page tokens. A listing's token names the last item of the previous page by its sort key, so
//! pages stay correct while entities are added and removed; QueryLineage's names how many
//! vertices were returned and which query they belong to.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use quiver_types::error::{Error, Result};

use crate::model::Page;

/// Where an item sorts in a listing: its sort key, then what makes it unique (an ARN; an
/// association's two ARNs). A listing's token is the position of the last item it returned.
pub type Position = (String, String, String);

/// The longest token the service model allows.
pub const MAX_TOKEN_LEN: usize = 8192;

pub fn encode(value: &impl Serialize) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

pub fn decode<T: DeserializeOwned>(operation: &str, token: &str) -> Result<T> {
    let invalid = || Error::validation(format!("NextToken is not a token returned by {operation}"));
    if token.len() > MAX_TOKEN_LEN {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    serde_json::from_slice(&bytes).map_err(|_| invalid())
}

/// How many items a page holds: `MaxResults`, within `1..=max`.
pub fn page_size(requested: Option<i64>, default: usize, max: usize) -> Result<usize> {
    match requested {
        None => Ok(default),
        Some(n) if n >= 1 && n <= max as i64 => Ok(n as usize),
        Some(n) => Err(Error::validation(format!(
            "MaxResults {n} is not in 1..{max}"
        ))),
    }
}

/// One page of `items` (each with its position): sorted by position, descending when asked,
/// those after the token's position, at most `max`, and the token of the next page.
pub fn sorted_page<T>(
    operation: &str,
    mut items: Vec<(Position, T)>,
    descending: bool,
    token: Option<&str>,
    max: usize,
) -> Result<Page<T>> {
    let after: Option<Position> = token.map(|t| decode(operation, t)).transpose()?;
    items.sort_by(|(a, _), (b, _)| a.cmp(b));
    if descending {
        items.reverse();
    }
    if let Some(after) = &after {
        items.retain(|(position, _)| {
            let order = position.cmp(after);
            if descending {
                order.is_lt()
            } else {
                order.is_gt()
            }
        });
    }
    let more = items.len() > max;
    items.truncate(max);
    let next_token = more.then(|| encode(&items.last().expect("a full page").0));
    Ok(Page {
        items: items.into_iter().map(|(_, item)| item).collect(),
        next_token,
    })
}

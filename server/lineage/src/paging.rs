//! Page tokens. A listing's token names the last item of the previous page by its sort key, so
//! pages stay correct while entities are added and removed; QueryLineage's names how many
//! vertices were returned and which query they belong to.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use quiver_types::error::{Error, Result};

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

//! A request's condition keys (`aws:SourceIp`, `aws:username`, `quiver:FeatureNames`, ...) and
//! their values, as policies' `Condition` blocks and variables see them. Key names are
//! case-insensitive, as in IAM; a key may have several values (`quiver:FeatureNames`).

use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Context {
    keys: HashMap<String, Vec<String>>,
}

impl Context {
    /// Sets `key` to one value.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.keys
            .insert(key.to_ascii_lowercase(), vec![value.into()]);
        self
    }

    /// Sets `key` to several values (possibly none: a present but empty set).
    pub fn set_all(
        &mut self,
        key: &str,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> &mut Self {
        self.keys.insert(
            key.to_ascii_lowercase(),
            values.into_iter().map(Into::into).collect(),
        );
        self
    }

    /// The values of `key` (any case), or `None` when the request has no such key.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        match self.keys.get(key) {
            Some(v) => Some(v),
            None => self.keys.get(&key.to_ascii_lowercase()).map(Vec::as_slice),
        }
    }

    /// The value of a single-valued key.
    pub fn single(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Every key and its values, sorted by key (for the simulator's output).
    pub fn entries(&self) -> Vec<(&str, &[String])> {
        let mut out: Vec<_> = self
            .keys
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        out.sort();
        out
    }
}

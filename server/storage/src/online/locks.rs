//! Striped per-key locks. A write reads the stored record, decides whether it is newer, and
//! writes; the stripe lock makes that read-decide-write atomic per identifier, so concurrent
//! writers to one identifier converge on the greatest event time.

use std::hash::{BuildHasher, Hasher};

use parking_lot::{Mutex, MutexGuard};

/// Enough stripes that unrelated keys rarely share one.
const STRIPES: usize = 4096;

#[derive(Debug)]
pub struct KeyLocks {
    stripes: Box<[Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for KeyLocks {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl KeyLocks {
    fn stripe(&self, key: &[u8]) -> usize {
        let mut hasher = self.hasher.build_hasher();
        hasher.write(key);
        (hasher.finish() as usize) % STRIPES
    }

    /// Locks the stripes of all `keys`, in stripe order so that two batches never deadlock.
    pub fn lock_all<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Vec<MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = keys.into_iter().map(|k| self.stripe(k.as_ref())).collect();
        stripes.sort_unstable();
        stripes.dedup();
        stripes
            .into_iter()
            .map(|s| self.stripes[s].lock())
            .collect()
    }
}

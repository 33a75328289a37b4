//! Identifiers: the base's, to skip history rows no base row asks for ([`KeyFilter`]), typed
//! identifier columns ([`Ids`]) and order keys.

use super::*;

/// The base's identifiers, so that history rows no base row asks for are skipped as they are
/// read (a training set often covers a fraction of the identifiers).
pub(super) enum KeyFilter {
    /// Too many to hold: every row is kept.
    All,
    /// Integer order keys within a small range: a bit per value from `min`.
    Dense {
        min: u64,
        bits: Vec<u64>,
    },
    Ints(std::collections::HashSet<u64, IntKeyHash>),
    Strings(std::collections::HashSet<String>),
}

impl KeyFilter {
    /// Whether row `i` of `ids` is asked for (nulls never are).
    pub(super) fn keeps(&self, ids: &Ids, i: usize) -> bool {
        if ids.is_null(i) {
            return false;
        }
        match (self, ids) {
            (KeyFilter::All, _) => true,
            (KeyFilter::Dense { min, bits }, Ids::Int(a)) => {
                let k = int_key(a.value(i)).wrapping_sub(*min);
                (k as usize / 64) < bits.len() && bits[k as usize / 64] & (1 << (k % 64)) != 0
            }
            (KeyFilter::Ints(keys), Ids::Int(a)) => keys.contains(&int_key(a.value(i))),
            (KeyFilter::Strings(keys), Ids::Str(a)) => keys.contains(a.value(i)),
            // Both sides have the group's identifier type; keep rows if they ever differ.
            _ => true,
        }
    }

    pub(super) fn memory_size(&self) -> usize {
        match self {
            KeyFilter::All => 0,
            KeyFilter::Dense { bits, .. } => bits.len() * 8,
            KeyFilter::Ints(keys) => keys.capacity() * 9,
            KeyFilter::Strings(keys) => keys.iter().map(|k| k.len() + 32).sum(),
        }
    }
}

/// Collects a sorted base's identifiers into a [`KeyFilter`].
pub(super) struct KeyCollector {
    pub(super) ints: Vec<u64>,
    pub(super) strings: std::collections::HashSet<String>,
    pub(super) bytes: usize,
    pub(super) limit: usize,
    pub(super) overflow: bool,
}

impl KeyCollector {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            ints: Vec::new(),
            strings: Default::default(),
            bytes: 0,
            limit,
            overflow: false,
        }
    }

    pub(super) fn add(&mut self, ids: &Ids) {
        if self.overflow {
            return;
        }
        match ids {
            Ids::Int(a) => {
                for k in a.iter().flatten().map(int_key) {
                    // Sorted: a repeat follows its first.
                    if self.ints.last() != Some(&k) {
                        self.ints.push(k);
                        self.bytes += 8;
                    }
                }
            }
            Ids::Str(a) => {
                for k in a.iter().flatten() {
                    if !self.strings.contains(k) {
                        self.bytes += k.len() + 32;
                        self.strings.insert(k.to_string());
                    }
                }
            }
        }
        if self.bytes > self.limit {
            self.overflow = true;
            self.ints = Vec::new();
            self.strings = Default::default();
        }
    }

    pub(super) fn finish(self) -> KeyFilter {
        if self.overflow {
            return KeyFilter::All;
        }
        if !self.strings.is_empty() {
            return KeyFilter::Strings(self.strings);
        }
        let (Some(&min), Some(&max)) = (self.ints.iter().min(), self.ints.iter().max()) else {
            return KeyFilter::Ints(Default::default());
        };
        let words = ((max - min) / 64 + 1) as usize;
        if words <= self.ints.len().max(1024) {
            let mut bits = vec![0u64; words];
            for k in &self.ints {
                let k = k - min;
                bits[k as usize / 64] |= 1 << (k % 64);
            }
            KeyFilter::Dense { min, bits }
        } else {
            KeyFilter::Ints(self.ints.into_iter().collect())
        }
    }
}

/// A multiplicative hash for integer order keys (std's SipHash is several times slower, and
/// the keys come from the caller's own base table).
#[derive(Default, Clone, Copy)]
pub(super) struct IntKeyHash;

impl std::hash::BuildHasher for IntKeyHash {
    type Hasher = IntKeyHasher;
    fn build_hasher(&self) -> IntKeyHasher {
        IntKeyHasher(0)
    }
}

#[derive(Default)]
pub(super) struct IntKeyHasher(u64);

impl std::hash::Hasher for IntKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
}

/// An identifier column, as the group's identifier type.
pub(super) enum Ids {
    Int(arrow::array::Int64Array),
    Str(arrow::array::StringArray),
}

/// One identifier value, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Key {
    Int(i64),
    Str(String),
}

impl Ids {
    pub(super) fn new(array: &ArrayRef) -> Result<Self> {
        Ok(match array.data_type() {
            DataType::Int64 => Ids::Int(array.as_primitive::<Int64Type>().clone()),
            DataType::Utf8 => Ids::Str(array.as_string::<i32>().clone()),
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => Ids::Int(
                cast(array, &DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone(),
            ),
            _ => Ids::Str(cast(array, &DataType::Utf8)?.as_string::<i32>().clone()),
        })
    }

    pub(super) fn is_null(&self, i: usize) -> bool {
        match self {
            Ids::Int(a) => a.is_null(i),
            Ids::Str(a) => a.is_null(i),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Ids::Int(a) => a.len(),
            Ids::Str(a) => a.len(),
        }
    }

    pub(super) fn key(&self, i: usize) -> Key {
        match self {
            Ids::Int(a) => Key::Int(a.value(i)),
            Ids::Str(a) => Key::Str(a.value(i).to_string()),
        }
    }

    /// Row `i` against `key`, nulls first (as both inputs are sorted).
    pub(super) fn cmp_key(&self, i: usize, key: &Key) -> Ordering {
        if self.is_null(i) {
            return Ordering::Less;
        }
        match (self, key) {
            (Ids::Int(a), Key::Int(k)) => a.value(i).cmp(k),
            (Ids::Str(a), Key::Str(k)) => a.value(i).cmp(k.as_str()),
            (Ids::Int(a), Key::Str(k)) => a.value(i).to_string().as_str().cmp(k.as_str()),
            (Ids::Str(a), Key::Int(k)) => a.value(i).cmp(k.to_string().as_str()),
        }
    }
}

pub(super) fn int64s(array: &ArrayRef) -> Result<arrow::array::Int64Array> {
    Ok(cast(array, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

/// An integer identifier as an order key: its order as an i64, as unsigned.
pub(super) fn int_key(n: i64) -> u64 {
    (n as u64) ^ (1 << 63)
}

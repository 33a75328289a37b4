//! Byte strings stored as hex text in JSON values (`#[serde(with = "quiver_storage::hex_bytes")]`):
//! wrapped keys and secrets kept readable with `ldb` and stable across versions.

pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text: String = serde::Deserialize::deserialize(d)?;
    hex::decode(text).map_err(serde::de::Error::custom)
}

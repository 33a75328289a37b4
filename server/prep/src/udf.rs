//! The SQL functions recipes compile to beyond DataFusion's own, registered in every recipe's
//! context (and named in a recipe's exported SQL):
//!
//! - `quiver_hash(seed, value, ...)`: a 63-bit hash of a row's values, the same on every machine
//!   and every run (DataFusion's own hashing is seeded per process), for seeded sampling,
//!   splits and folds;
//! - `quiver_json_get(text, path)`: a field of a JSON document as text (`a.b`, `items.0.id`),
//!   null where the text is not JSON or the path is absent.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Registers the recipe functions in `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(RowHash::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(JsonGet::new()));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct RowHash {
    signature: Signature,
}

impl RowHash {
    fn new() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

/// SplitMix64's finaliser: every input bit moves every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    // FNV-1a, then mixed: strings are short and this needs no table or seed state.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

const NULL_HASH: u64 = 0x9e37_79b9_7f4a_7c15;

/// Folds one column's values into the rows' hashes.
fn fold(hashes: &mut [u64], values: &ArrayRef) -> Result<()> {
    let mut combine = |i: usize, v: u64| hashes[i] = mix(hashes[i].rotate_left(5) ^ v);
    macro_rules! numbers {
        ($t:ty, $bits:expr) => {{
            let a = values.as_primitive::<$t>();
            for i in 0..a.len() {
                let v = if a.is_null(i) {
                    NULL_HASH
                } else {
                    $bits(a.value(i))
                };
                combine(i, v);
            }
        }};
    }
    match values.data_type() {
        DataType::Int64 => numbers!(Int64Type, |v: i64| v as u64),
        DataType::Int32 => numbers!(Int32Type, |v: i32| v as i64 as u64),
        // Floats by value: -0.0 and 0.0 are the same number.
        DataType::Float64 => numbers!(Float64Type, |v: f64| (v + 0.0).to_bits()),
        DataType::Float32 => numbers!(Float32Type, |v: f32| f64::from(v + 0.0).to_bits()),
        DataType::Utf8 => {
            let a = values.as_string::<i32>();
            for i in 0..a.len() {
                let v = if a.is_null(i) {
                    NULL_HASH
                } else {
                    hash_bytes(a.value(i).as_bytes())
                };
                combine(i, v);
            }
        }
        DataType::Utf8View => {
            let a = values.as_string_view();
            for i in 0..a.len() {
                let v = if a.is_null(i) {
                    NULL_HASH
                } else {
                    hash_bytes(a.value(i).as_bytes())
                };
                combine(i, v);
            }
        }
        DataType::LargeUtf8 => {
            let a = values.as_string::<i64>();
            for i in 0..a.len() {
                let v = if a.is_null(i) {
                    NULL_HASH
                } else {
                    hash_bytes(a.value(i).as_bytes())
                };
                combine(i, v);
            }
        }
        DataType::Boolean => {
            let a = values.as_boolean();
            for i in 0..a.len() {
                let v = if a.is_null(i) {
                    NULL_HASH
                } else {
                    u64::from(a.value(i))
                };
                combine(i, v);
            }
        }
        // Everything else by its text: slower, the same everywhere.
        _ => {
            let text = cast(values, &DataType::Utf8)?;
            fold(hashes, &text)?;
        }
    }
    Ok(())
}

impl ScalarUDFImpl for RowHash {
    fn name(&self) -> &str {
        "quiver_hash"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let Some((seed, values)) = args.args.split_first() else {
            return exec_err!("quiver_hash(seed, value, ...) needs a seed");
        };
        let seed = match seed {
            ColumnarValue::Scalar(ScalarValue::Int64(Some(s))) => *s as u64,
            other => {
                return exec_err!(
                    "quiver_hash: the seed is an integer literal, not {}",
                    other.data_type()
                );
            }
        };
        let mut hashes = vec![mix(seed); rows];
        for value in values {
            let array = value.clone().into_array(rows)?;
            fold(&mut hashes, &array)?;
        }
        // 63 bits: non-negative as SQL's BIGINT, so `% n` is a bucket in 0..n.
        let out: Int64Array = hashes.into_iter().map(|h| (h >> 1) as i64).collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonGet {
    signature: Signature,
}

impl JsonGet {
    fn new() -> Self {
        Self {
            signature: Signature::exact(
                vec![DataType::Utf8, DataType::Utf8],
                Volatility::Immutable,
            ),
        }
    }
}

/// The value at `path` (dot-separated keys and list indexes) as text: strings as they are,
/// numbers, booleans, lists and objects as JSON.
pub fn json_get(text: &str, path: &str) -> Option<String> {
    let mut value: serde_json::Value = serde_json::from_str(text).ok()?;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        value = match value {
            serde_json::Value::Object(mut map) => map.remove(part)?,
            serde_json::Value::Array(mut items) => {
                let i: usize = part.parse().ok()?;
                if i >= items.len() {
                    return None;
                }
                items.swap_remove(i)
            }
            _ => return None,
        };
    }
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

impl ScalarUDFImpl for JsonGet {
    fn name(&self) -> &str {
        "quiver_json_get"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [text, path] = args.args.as_slice() else {
            return exec_err!("quiver_json_get(text, path) takes two arguments");
        };
        let path = match path {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(p))) => p.clone(),
            _ => {
                return Err(DataFusionError::Execution(
                    "quiver_json_get: the path is a text literal".into(),
                ));
            }
        };
        let text = text.clone().into_array(rows)?;
        let text = cast(&text, &DataType::Utf8)?;
        let text: &StringArray = text.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(rows, rows * 8);
        for i in 0..rows {
            if text.is_null(i) {
                out.append_null();
            } else {
                out.append_option(json_get(text.value(i), &path));
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        let doc = r#"{"a": {"b": 3, "c": "x"}, "items": [{"id": 7}, {"id": 8}], "n": null}"#;
        assert_eq!(json_get(doc, "a.b").as_deref(), Some("3"));
        assert_eq!(json_get(doc, "a.c").as_deref(), Some("x"));
        assert_eq!(json_get(doc, "items.1.id").as_deref(), Some("8"));
        assert_eq!(json_get(doc, "items.2.id"), None);
        assert_eq!(json_get(doc, "n"), None);
        assert_eq!(json_get(doc, "a").as_deref(), Some(r#"{"b":3,"c":"x"}"#));
        assert_eq!(json_get("not json", "a"), None);
    }

    #[test]
    fn hashes_are_fixed() {
        // The same on every machine and run: samples and splits are reproducible.
        let mut h = vec![mix(7); 2];
        let values: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None]));
        fold(&mut h, &values).unwrap();
        assert_eq!(h, vec![0x107e_4b1d_f42d_38fd, 0x5b8b_7d6b_db1c_0dfe]);
        assert_eq!(mix(0), 0);
        assert_eq!(mix(1), 0x5692_161d_100b_05e5);
    }
}

//! The catalog entry of a group's offline store, as SageMaker creates it: a Glue table
//! `<database>.<group>_<creation epoch>` over the Parquet files, partitioned by
//! year/month/day/hour. Rendered as the Glue `CreateTable` input (JSON) and as Athena
//! `CREATE EXTERNAL TABLE` DDL with partition projection, so no crawler is needed. `glue.rs`
//! registers the same table through the Glue API.

use serde_json::{Value as Json, json};

use crate::layout;
use crate::parquet::{API_INVOCATION_TIME, IS_DELETED, WRITE_TIME};
use quiver_types::model::{Collection, FeatureGroup, FeatureType};

pub const PARTITION_KEYS: [&str; 4] = ["year", "month", "day", "hour"];
pub const INPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
pub const OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
pub const SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
/// Partition projection covers event times in these years; rows outside are in the files but
/// need an explicit partition to be seen by Athena.
const PROJECTED_YEARS: &str = "1970,2100";

/// Everything a catalog needs to know about one group's offline table.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogTable {
    pub catalog: String,
    pub database: String,
    pub table: String,
    pub description: String,
    /// (name, Hive type) in file column order.
    pub columns: Vec<(String, String)>,
    /// The `data` directory URI (s3://... or file://...).
    pub location: String,
    pub parameters: Vec<(String, String)>,
}

fn hive_type(feature_type: FeatureType) -> &'static str {
    match feature_type {
        FeatureType::Integral => "bigint",
        FeatureType::Fractional => "double",
        FeatureType::String => "string",
    }
}

impl CatalogTable {
    pub fn new(group: &FeatureGroup, data_uri: &str) -> Self {
        let mut columns: Vec<(String, String)> = group
            .features
            .iter()
            .map(|f| {
                let element = hive_type(f.feature_type);
                let ty = match f.collection {
                    Collection::Scalar => element.to_string(),
                    Collection::Vector { .. } => "array<double>".to_string(),
                    Collection::List | Collection::Set => format!("array<{element}>"),
                };
                (f.name.clone(), ty)
            })
            .collect();
        for (name, ty) in [
            (WRITE_TIME, "timestamp"),
            (API_INVOCATION_TIME, "timestamp"),
            (IS_DELETED, "boolean"),
        ] {
            columns.push((name.to_string(), ty.to_string()));
        }
        let location = data_uri.trim_end_matches('/').to_string();
        let mut parameters = vec![
            ("classification".to_string(), "parquet".to_string()),
            ("EXTERNAL".to_string(), "TRUE".to_string()),
            ("parquet.compression".to_string(), "SNAPPY".to_string()),
            ("projection.enabled".to_string(), "true".to_string()),
        ];
        for (key, range, digits) in [
            ("year", PROJECTED_YEARS, 4),
            ("month", "1,12", 2),
            ("day", "1,31", 2),
            ("hour", "0,23", 2),
        ] {
            parameters.push((format!("projection.{key}.type"), "integer".to_string()));
            parameters.push((format!("projection.{key}.range"), range.to_string()));
            parameters.push((format!("projection.{key}.digits"), digits.to_string()));
        }
        parameters.push((
            "storage.location.template".to_string(),
            format!("{location}/year=${{year}}/month=${{month}}/day=${{day}}/hour=${{hour}}"),
        ));
        Self {
            catalog: layout::catalog_name(group),
            database: layout::database_name(group),
            table: layout::table_name(group),
            description: format!("Offline store of Quiver feature group {}", group.name),
            columns,
            location,
            parameters,
        }
    }

    /// The request body of Glue `CreateTable`.
    pub fn glue_create_table_input(&self) -> Json {
        let columns: Vec<Json> = self
            .columns
            .iter()
            .map(|(name, ty)| json!({ "Name": name, "Type": ty }))
            .collect();
        let partition_keys: Vec<Json> = PARTITION_KEYS
            .iter()
            .map(|name| json!({ "Name": name, "Type": "string" }))
            .collect();
        let parameters: serde_json::Map<String, Json> = self
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect();
        json!({
            "DatabaseName": self.database,
            "TableInput": {
                "Name": self.table,
                "Description": self.description,
                "TableType": "EXTERNAL_TABLE",
                "Parameters": parameters,
                "PartitionKeys": partition_keys,
                "StorageDescriptor": {
                    "Columns": columns,
                    "Location": self.location,
                    "InputFormat": INPUT_FORMAT,
                    "OutputFormat": OUTPUT_FORMAT,
                    "Compressed": true,
                    "SerdeInfo": {
                        "SerializationLibrary": SERDE,
                        "Parameters": { "serialization.format": "1" }
                    }
                }
            }
        })
    }

    /// Athena DDL that creates the same table, partition projection included.
    pub fn athena_ddl(&self) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|(name, ty)| format!("  `{name}` {ty}"))
            .collect();
        let partitions: Vec<String> = PARTITION_KEYS
            .iter()
            .map(|name| format!("  `{name}` string"))
            .collect();
        let properties: Vec<String> = self
            .parameters
            .iter()
            .filter(|(k, _)| k != "EXTERNAL")
            .map(|(k, v)| format!("  '{k}'='{v}'"))
            .collect();
        format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS `{}`.`{}` (\n{}\n)\nCOMMENT '{}'\nPARTITIONED BY (\n{}\n)\nSTORED AS PARQUET\nLOCATION '{}'\nTBLPROPERTIES (\n{}\n);\n",
            self.database,
            self.table,
            columns.join(",\n"),
            self.description.replace('\'', "''"),
            partitions.join(",\n"),
            self.location,
            properties.join(",\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_types::model::{FeatureGroupSpec, FeatureSpec, OfflineStoreConfig, TableFormat};

    fn spec() -> FeatureGroupSpec {
        let f = |name: &str, feature_type| FeatureSpec {
            name: name.into(),
            feature_type,
            collection: Collection::Scalar,
        };
        FeatureGroupSpec {
            name: "g".into(),
            record_identifier_feature_name: "id".into(),
            event_time_feature_name: "ts".into(),
            features: vec![
                f("id", FeatureType::Integral),
                f("ts", FeatureType::Fractional),
                f("v", FeatureType::String),
            ],
            online: None,
            offline: Some(OfflineStoreConfig {
                s3_uri: None,
                kms_key_id: None,
                disable_glue_table_creation: false,
                data_catalog: None,
                table_format: TableFormat::Glue,
            }),
            role_arn: None,
            description: None,
            tags: vec![],
        }
    }

    #[test]
    fn glue_input_and_athena_ddl_describe_the_files() {
        let mut spec = spec();
        spec.name = "Customer-Features".into();
        spec.features.push(FeatureSpec {
            name: "tags".into(),
            feature_type: FeatureType::String,
            collection: Collection::List,
        });
        let group = FeatureGroup::from_spec(spec, 1, "arn".into(), 1_700_000_000_123);
        let table = CatalogTable::new(&group, "s3://b/p/data/");
        assert_eq!(table.table, "customer_features_1700000000");
        assert_eq!(table.database, "sagemaker_featurestore");
        let glue = table.glue_create_table_input();
        let columns = &glue["TableInput"]["StorageDescriptor"]["Columns"];
        assert_eq!(columns[1], json!({"Name": "ts", "Type": "double"}));
        assert_eq!(columns[3], json!({"Name": "tags", "Type": "array<string>"}));
        assert_eq!(columns[4]["Name"], "write_time");
        assert_eq!(glue["TableInput"]["PartitionKeys"][3]["Name"], "hour");
        assert_eq!(
            glue["TableInput"]["Parameters"]["storage.location.template"],
            "s3://b/p/data/year=${year}/month=${month}/day=${day}/hour=${hour}"
        );
        let ddl = table.athena_ddl();
        assert!(ddl.starts_with(
            "CREATE EXTERNAL TABLE IF NOT EXISTS `sagemaker_featurestore`.`customer_features_1700000000`"
        ));
        assert!(ddl.contains("  `id` bigint,\n"), "{ddl}");
        assert!(ddl.contains("LOCATION 's3://b/p/data'"), "{ddl}");
        assert!(ddl.contains("'projection.enabled'='true'"), "{ddl}");
    }
}

//! Registers offline tables in the AWS Glue Data Catalog (or anything that speaks its API):
//! creates the database when missing, then creates the table or updates it to the group's
//! current columns.

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_glue::Client;
use aws_sdk_glue::types::{Column, DatabaseInput, SerDeInfo, StorageDescriptor, TableInput};

use crate::catalog::{self, CatalogTable};

pub struct GlueCatalog {
    client: Client,
}

impl GlueCatalog {
    /// Credentials from the usual AWS chain; region from the environment, else `region`.
    pub async fn connect(endpoint: Option<&str>, region: &str) -> Self {
        let region_chain = RegionProviderChain::default_provider()
            .or_else(aws_config::Region::new(region.to_string()));
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region_chain);
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        Self {
            client: Client::new(&loader.load().await),
        }
    }

    pub async fn register(&self, table: &CatalogTable) -> Result<(), String> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            format!("Glue {what} for {}.{}: {e}", table.database, table.table)
        };
        match self
            .client
            .get_database()
            .name(&table.database)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                let input = DatabaseInput::builder()
                    .name(&table.database)
                    .description("Offline stores of Quiver feature groups")
                    .build()
                    .map_err(|e| fail("CreateDatabase", &e))?;
                let created = self
                    .client
                    .create_database()
                    .database_input(input)
                    .send()
                    .await;
                if let Err(e) = created {
                    let exists = e
                        .as_service_error()
                        .is_some_and(|s| s.is_already_exists_exception());
                    if !exists {
                        return Err(fail(
                            "CreateDatabase",
                            &aws_sdk_glue::error::DisplayErrorContext(e),
                        ));
                    }
                }
            }
            Err(e) => {
                return Err(fail(
                    "GetDatabase",
                    &aws_sdk_glue::error::DisplayErrorContext(e),
                ));
            }
        }
        let input = table_input(table).map_err(|e| fail("TableInput", &e))?;
        let created = self
            .client
            .create_table()
            .database_name(&table.database)
            .table_input(input.clone())
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                self.client
                    .update_table()
                    .database_name(&table.database)
                    .table_input(input)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| fail("UpdateTable", &aws_sdk_glue::error::DisplayErrorContext(e)))
            }
            Err(e) => Err(fail(
                "CreateTable",
                &aws_sdk_glue::error::DisplayErrorContext(e),
            )),
        }
    }
}

fn column(name: &str, ty: &str) -> Result<Column, aws_sdk_glue::error::BuildError> {
    Column::builder().name(name).r#type(ty).build()
}

fn table_input(table: &CatalogTable) -> Result<TableInput, aws_sdk_glue::error::BuildError> {
    let mut storage = StorageDescriptor::builder()
        .location(&table.location)
        .input_format(catalog::INPUT_FORMAT)
        .output_format(catalog::OUTPUT_FORMAT)
        .compressed(true)
        .serde_info(
            SerDeInfo::builder()
                .serialization_library(catalog::SERDE)
                .parameters("serialization.format", "1")
                .build(),
        );
    for (name, ty) in &table.columns {
        storage = storage.columns(column(name, ty)?);
    }
    let mut input = TableInput::builder()
        .name(&table.table)
        .description(&table.description)
        .table_type("EXTERNAL_TABLE")
        .storage_descriptor(storage.build());
    for name in catalog::PARTITION_KEYS {
        input = input.partition_keys(column(name, "string")?);
    }
    for (key, value) in &table.parameters {
        input = input.parameters(key, value);
    }
    input.build()
}

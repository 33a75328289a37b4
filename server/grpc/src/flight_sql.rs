//! Arrow Flight SQL over the same tables as the `Query` service, for standard clients: the ADBC
//! Flight SQL driver, JDBC Flight SQL, DBeaver.
//!
//! Statements are stateless: GetFlightInfo plans the statement for its schema and hands back a
//! ticket holding the statement itself; DoGet plans and runs it again. Catalog browsing
//! (catalogs, schemas, tables, SqlInfo) is answered from the registry. Prepared statements,
//! updates and transactions are not supported (the tables are read-only).

use std::pin::Pin;
use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    Any, CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTables,
    CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::common::TableReference;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::query_service::authorize_sql;
use crate::status::status;
use quiver_auth::{Access, Caller, Features};
use quiver_query::QueryEngine;
use quiver_query::tables::{CATALOG, SCHEMAS};

type FlightStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send>>;

#[derive(Clone)]
pub struct FlightSql {
    engine: Arc<QueryEngine>,
    info: Arc<SqlInfoData>,
    access: Arc<Access>,
}

impl FlightSql {
    pub fn new(engine: Arc<QueryEngine>, access: Arc<Access>) -> anyhow::Result<Self> {
        let mut info = SqlInfoDataBuilder::new();
        info.append(SqlInfo::FlightSqlServerName, "Quiver");
        info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        // The Arrow IPC format version (Schema.fbs MetadataVersion V5).
        info.append(SqlInfo::FlightSqlServerArrowVersion, "1.5");
        info.append(SqlInfo::FlightSqlServerReadOnly, true);
        info.append(SqlInfo::FlightSqlServerSql, true);
        info.append(SqlInfo::FlightSqlServerSubstrait, false);
        info.append(SqlInfo::FlightSqlServerTransaction, 0_i32);
        info.append(SqlInfo::FlightSqlServerCancel, false);
        info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        Ok(Self {
            engine,
            info: Arc::new(info.build()?),
            access,
        })
    }

    /// `sql` may run for the request's caller.
    fn authorize_sql<T>(&self, request: &Request<T>, sql: &str) -> Result<(), Status> {
        let caller = caller(request);
        authorize_sql(&self.access, &self.engine, caller, sql).map_err(status)
    }

    /// Browsing the catalog lists the groups: `sagemaker:ListFeatureGroups`.
    fn authorize_browse<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let caller = caller(request);
        self.access
            .authorize_group(
                caller,
                "sagemaker:ListFeatureGroups",
                None,
                Features::Unnamed,
                |_| None,
            )
            .map_err(status)
    }

    /// A FlightInfo whose one endpoint's ticket is `command`, which DoGet dispatches on.
    fn info(
        schema: &Schema,
        command: &impl ProstMessageExt,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = command.as_any().encode_to_vec();
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(format!("encoding the result schema: {e}")))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    fn one_batch(
        schema: arrow::datatypes::SchemaRef,
        batch: Result<arrow::record_batch::RecordBatch, FlightError>,
    ) -> Response<FlightStream> {
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::once(async move { batch }))
            .map_err(Status::from);
        Response::new(Box::pin(stream))
    }

    /// The tables a browsing client asked for: (schema, table) in the order they are listed.
    fn tables(&self, schema_filter: Option<&str>) -> Vec<(&'static str, String)> {
        let ctx = self.engine.context();
        let Some(catalog) = ctx.catalog(CATALOG) else {
            return Vec::new();
        };
        SCHEMAS
            .iter()
            .filter(|s| schema_filter.is_none_or(|f| like(f, s)))
            .filter_map(|s| catalog.schema(s).map(|provider| (*s, provider)))
            .flat_map(|(s, provider)| provider.table_names().into_iter().map(move |t| (s, t)))
            .collect()
    }
}

/// SQL `LIKE` with `%` and `_`, as Flight SQL's filter patterns are.
fn like(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('_', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

fn caller<T>(request: &Request<T>) -> &Caller {
    crate::service::caller(request)
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize_sql(&request, &query.query)?;
        let schema = self
            .engine
            .plan_schema(&query.query)
            .await
            .map_err(status)?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        Self::info(&schema, &ticket, request.into_inner())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let sql = std::str::from_utf8(&ticket.statement_handle)
            .map_err(|_| Status::invalid_argument("the statement ticket is not UTF-8 text"))?;
        self.authorize_sql(&request, sql)?;
        let (schema, batches) = self.engine.execute(sql, Ok).await.map_err(status)?;
        let batches = ReceiverStream::new(batches)
            .map(|b| b.map_err(|e| FlightError::Tonic(Box::new(status(e)))));
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize_browse(&request)?;
        let schema = query.clone().into_builder(&self.info).schema();
        Self::info(&schema, &query, request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize_browse(&request)?;
        let builder = query.into_builder(&self.info);
        Ok(Self::one_batch(builder.schema(), builder.build()))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize_browse(&request)?;
        let schema = query.into_builder().schema();
        Self::info(&schema, &query, request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize_browse(&request)?;
        let mut builder = query.into_builder();
        builder.append(CATALOG);
        Ok(Self::one_batch(builder.schema(), builder.build()))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize_browse(&request)?;
        let schema = query.clone().into_builder().schema();
        Self::info(&schema, &query, request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize_browse(&request)?;
        let mut builder = query.into_builder();
        for schema in SCHEMAS {
            builder.append(CATALOG, schema);
        }
        Ok(Self::one_batch(builder.schema(), builder.build()))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize_browse(&request)?;
        let schema = query.clone().into_builder().schema();
        Self::info(&schema, &query, request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize_browse(&request)?;
        let tables = self.tables(query.db_schema_filter_pattern.as_deref());
        let include_schema = query.include_schema;
        let mut builder = query.into_builder();
        for (schema, table) in tables {
            let kind = if schema == "latest" { "VIEW" } else { "TABLE" };
            let table_schema = if include_schema {
                let reference = TableReference::full(CATALOG, schema, table.as_str());
                match self.engine.context().table_provider(reference).await {
                    Ok(provider) => provider.schema().as_ref().clone(),
                    // Deleted since it was listed.
                    Err(_) => continue,
                }
            } else {
                Schema::empty()
            };
            builder
                .append(CATALOG, schema, &table, kind, &table_schema)
                .map_err(Status::from)?;
        }
        Ok(Self::one_batch(builder.schema(), builder.build()))
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Err(Status::unimplemented(format!(
            "Quiver's Flight SQL endpoint does not support {}: it runs SQL statements and lists catalogs, schemas and tables",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

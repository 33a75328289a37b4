//! Feature groups as SQL tables.
//!
//! - `public.<group>` ([`HistoryTable`]): every row of the group's offline store, as its Parquet
//!   files hold it: the features, `write_time`, `api_invocation_time`, `is_deleted`, and the
//!   hive partition columns `year`, `month`, `day`, `hour` (integers, from the row's event time).
//!   Files written before a feature was added read as nulls in its column. Rows acknowledged
//!   but not yet in a file are read from staging, with a null `write_time` ([`staged`]); each
//!   scan lists the files afresh, so a query sees every row acknowledged before it started.
//! - `latest.<group>` ([`latest_view`]): the latest record per identifier by event time (the
//!   first written wins ties, as online), without identifiers whose latest row is a delete.
//!
//! Both are resolved when a query names them ([`GroupSchema`]), from the group's definition at
//! that moment, so groups created or changed since the server started need no registration.

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::config::TableParquetOptions;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::view::ViewTable;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext, col, lit};

use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::cache::TableScopedPath;
use datafusion::physical_plan::union::UnionExec;

use super::staged;
use crate::decryption;
use quiver_core::FeatureStore;
use quiver_offline::parquet::{
    self as offline_parquet, API_INVOCATION_TIME, IS_DELETED, WRITE_TIME,
};
use quiver_types::model::{FeatureGroup, FeatureType};
use quiver_types::time::{self, EpochMillis};

/// The catalog queries run in, and its schemas: the groups' histories (the default schema) and
/// their latest records.
pub const CATALOG: &str = "quiver";
pub const SCHEMAS: [&str; 2] = ["public", "latest"];

/// The hive partition columns of offline files, outermost first.
pub const PARTITION_COLUMNS: [&str; 4] = ["year", "month", "day", "hour"];

/// Which tables a [`GroupSchema`] serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupTables {
    History,
    Latest,
}

/// A schema whose tables are the feature groups that have an offline store.
pub struct GroupSchema {
    store: Arc<FeatureStore>,
    tables: GroupTables,
    /// Where the object stores of S3-backed groups are registered as they are named.
    env: Arc<RuntimeEnv>,
}

impl std::fmt::Debug for GroupSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupSchema")
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl GroupSchema {
    pub fn new(store: Arc<FeatureStore>, tables: GroupTables, env: Arc<RuntimeEnv>) -> Self {
        Self { store, tables, env }
    }

    fn group(&self, name: &str) -> Option<Arc<FeatureGroup>> {
        // Exact names only: SQL identifiers are case-sensitive here (unquoted ones too).
        self.store
            .registry()
            .get(name)
            .ok()
            .filter(|g| g.name == name && g.has_offline_store())
    }
}

#[async_trait]
impl SchemaProvider for GroupSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .store
            .registry()
            .all()
            .iter()
            .filter(|g| g.has_offline_store())
            .map(|g| g.name.clone())
            .collect();
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let Some(group) = self.group(name) else {
            return Ok(None);
        };
        let history = Arc::new(HistoryTable::new(&self.store, group.clone(), &self.env)?);
        Ok(Some(match self.tables {
            GroupTables::History => history,
            GroupTables::Latest => latest_view(&group, history).await?,
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.group(name).is_some()
    }
}

/// A group's history as a table: its offline files and its staged rows ([`staged`]), pruning
/// hour partitions by predicates on the group's event-time feature (which the files are
/// partitioned by) as well as on the partition columns.
pub struct HistoryTable {
    store: Arc<FeatureStore>,
    group: Arc<FeatureGroup>,
    files: ListingTable,
    event_time: EventTimeColumn,
}

impl std::fmt::Debug for HistoryTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryTable")
            .field("group", &self.group.name)
            .finish_non_exhaustive()
    }
}

impl HistoryTable {
    pub fn new(
        store: &Arc<FeatureStore>,
        group: Arc<FeatureGroup>,
        env: &RuntimeEnv,
    ) -> datafusion::common::Result<Self> {
        let data_uri = format!("{}/", store.offline().data_uri(&group));
        let url = ListingTableUrl::parse(&data_uri)?;
        // Local files are read by DataFusion's own file store; S3 through the client the
        // offline store writes with (its endpoint, region and credentials).
        if !data_uri.starts_with("file://") {
            let (destination, _) = store
                .offline()
                .destination(&group)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            env.register_object_store(url.object_store().as_ref(), destination.store);
        }
        let partition_cols = PARTITION_COLUMNS
            .iter()
            .map(|c| (c.to_string(), DataType::Int32))
            .collect();
        // Encrypted files are decrypted through the key providers (`decryption.rs`);
        // plain ones are read as they are.
        let mut parquet_options = TableParquetOptions::default();
        parquet_options.crypto.factory_id = Some(decryption::FACTORY_ID.to_string());
        let format = ParquetFormat::default().with_options(parquet_options);
        let options = ListingOptions::new(Arc::new(format))
            .with_file_extension(".parquet")
            .with_table_partition_cols(partition_cols);
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(offline_parquet::history_schema(&group));
        let event_time = EventTimeColumn {
            name: group.event_time_feature_name.clone(),
            string: group
                .feature(&group.event_time_feature_name)
                .is_some_and(|f| f.feature_type == FeatureType::String),
        };
        Ok(Self {
            store: store.clone(),
            group,
            files: ListingTable::try_new(config)?,
            event_time,
        })
    }
}

#[async_trait]
impl TableProvider for HistoryTable {
    fn schema(&self) -> SchemaRef {
        self.files.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::common::Result<Vec<TableProviderFilterPushDown>> {
        // Inexact, partition filters too (the listing alone would take those as exact): the
        // staged rows are filtered above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        // The limit stays above the scan: some listed files are left out below, so the
        // listing must not stop at the limit.
        _limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        // Bounds on the event time become bounds on the partitions. The original predicates
        // stay (they are inexact for the files), so the derived ones only skip files.
        let mut filters = filters.to_vec();
        let bounds = filters
            .iter()
            .fold(HourBounds::default(), |b, f| b.narrow(&self.event_time, f));
        filters.extend(bounds.partition_filters());

        // Staged rows first: their snapshot decides which files to read.
        let schema = self.files.schema();
        let (store, group, table_schema) = (self.store.clone(), self.group.clone(), schema.clone());
        let staged = tokio::task::spawn_blocking(move || {
            staged::read(
                &store,
                &group,
                (bounds.from_ms, bounds.to_ms),
                &table_schema,
            )
        })
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?
        .map_err(|e| DataFusionError::External(Box::new(e)))?;

        // A fresh listing whatever the session's caches hold: a cached one would miss the files
        // written since it was made.
        if let Some(cache) = state.runtime_env().cache_manager.get_list_files_cache() {
            for url in self.files.table_paths() {
                cache.remove(&TableScopedPath {
                    table: url.get_table_ref().clone(),
                    path: url.prefix().clone(),
                });
            }
        }
        let files = self.files.scan(state, projection, &filters, None).await?;
        let files = staged::files_flushed_before(files, staged.flushed_upto)?;
        if staged.batches.is_empty() {
            return Ok(files);
        }
        // In memory, with exact statistics: readers size their buffers by the row count (a
        // dataset build's history index; an unknown count costs it a third more memory).
        let rows =
            MemorySourceConfig::try_new_exec(&[staged.batches], schema, projection.cloned())?;
        UnionExec::try_new(vec![files, rows])
    }
}

/// The group's event-time feature: a String (ISO-8601) or a Fractional (epoch seconds).
#[derive(Debug, Clone)]
struct EventTimeColumn {
    name: String,
    string: bool,
}

impl EventTimeColumn {
    /// Whether `expr` is this column, possibly cast (comparisons with timestamps cast it).
    fn is(&self, expr: &Expr) -> bool {
        match expr {
            Expr::Column(c) => c.name == self.name,
            Expr::Cast(c) => self.is(&c.expr),
            Expr::TryCast(c) => self.is(&c.expr),
            _ => false,
        }
    }

    /// A literal compared with this column, in epoch milliseconds. String comparisons are
    /// lexicographic; for the two ISO-8601 forms event times take, that order is time order
    /// except within one second, so at hour granularity the bound is safe.
    fn millis(&self, value: &ScalarValue) -> Option<EpochMillis> {
        let seconds = |s: f64| s.is_finite().then(|| (s * 1000.0).floor() as i64);
        match value {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => {
                time::parse_iso8601(s).ok().or_else(|| parse_date(s))
            }
            ScalarValue::Float64(Some(f)) if !self.string => seconds(*f),
            ScalarValue::Float32(Some(f)) if !self.string => seconds(f64::from(*f)),
            ScalarValue::Int64(Some(n)) if !self.string => n.checked_mul(1000),
            ScalarValue::Int32(Some(n)) if !self.string => i64::from(*n).checked_mul(1000),
            ScalarValue::TimestampSecond(Some(n), _) => n.checked_mul(1000),
            ScalarValue::TimestampMillisecond(Some(n), _) => Some(*n),
            ScalarValue::TimestampMicrosecond(Some(n), _) => Some(n.div_euclid(1000)),
            ScalarValue::TimestampNanosecond(Some(n), _) => Some(n.div_euclid(1_000_000)),
            _ => None,
        }
    }
}

/// `YYYY-MM-DD` as its midnight (UTC).
fn parse_date(s: &str) -> Option<EpochMillis> {
    if s.len() != 10 {
        return None;
    }
    time::parse_iso8601(&format!("{s}T00:00:00Z")).ok()
}

/// The hours an event-time predicate allows, both ends inclusive.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct HourBounds {
    from_ms: Option<EpochMillis>,
    to_ms: Option<EpochMillis>,
}

impl HourBounds {
    /// Narrowed by `filter` when it bounds the event time; unchanged otherwise.
    fn narrow(self, column: &EventTimeColumn, filter: &Expr) -> Self {
        let mut bounds = self;
        let mut from = |ms: EpochMillis| {
            bounds.from_ms = Some(bounds.from_ms.map_or(ms, |b| b.max(ms)));
        };
        match filter {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (op, value) = match (left.as_ref(), right.as_ref()) {
                    (c, Expr::Literal(v, _)) if column.is(c) => (*op, v),
                    (Expr::Literal(v, _), c) if column.is(c) => match op.swap() {
                        Some(op) => (op, v),
                        None => return self,
                    },
                    _ => return self,
                };
                let Some(ms) = column.millis(value) else {
                    return self;
                };
                match op {
                    Operator::Gt | Operator::GtEq => from(ms),
                    Operator::Lt | Operator::LtEq => bounds.to(ms),
                    Operator::Eq => {
                        from(ms);
                        bounds.to(ms);
                    }
                    _ => {}
                }
            }
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) if column.is(expr) => {
                if let (Expr::Literal(low, _), Expr::Literal(high, _)) =
                    (low.as_ref(), high.as_ref())
                    && let (Some(low), Some(high)) = (column.millis(low), column.millis(high))
                {
                    from(low);
                    bounds.to(high);
                }
            }
            _ => {}
        }
        bounds
    }

    fn to(&mut self, ms: EpochMillis) {
        self.to_ms = Some(self.to_ms.map_or(ms, |b| b.min(ms)));
    }

    /// Predicates on the partition columns equivalent to the bounds, at hour granularity.
    fn partition_filters(&self) -> Vec<Expr> {
        let mut filters = Vec::new();
        if let Some(ms) = self.from_ms {
            filters.push(hour_compare(ms, Operator::Gt, Operator::GtEq));
        }
        if let Some(ms) = self.to_ms {
            filters.push(hour_compare(ms, Operator::Lt, Operator::LtEq));
        }
        filters
    }
}

/// `(year, month, day, hour) >= (Y, M, D, H)` (or `<=`) as nested comparisons the listing can
/// evaluate on each partition directory.
fn hour_compare(ms: EpochMillis, strict: Operator, last: Operator) -> Expr {
    let (year, month, day, hour) = time::civil_hour(ms);
    let parts = [year, month, day, hour].map(|n| lit(n as i32));
    let [y, m, d, h] = PARTITION_COLUMNS.map(col);
    let cmp = |c: Expr, op: Operator, v: Expr| {
        Expr::BinaryExpr(BinaryExpr::new(Box::new(c), op, Box::new(v)))
    };
    let hours = cmp(h, last, parts[3].clone());
    let days = cmp(d.clone(), strict, parts[2].clone())
        .or(cmp(d, Operator::Eq, parts[2].clone()).and(hours));
    let months =
        cmp(m.clone(), strict, parts[1].clone())
            .or(cmp(m, Operator::Eq, parts[1].clone()).and(days));
    cmp(y.clone(), strict, parts[0].clone()).or(cmp(y, Operator::Eq, parts[0].clone()).and(months))
}

/// The latest non-deleted record per identifier, from the group's history: the row with the
/// greatest event time (ties: the earliest `api_invocation_time`, then `write_time`, as the
/// online store keeps the first write of an event time); identifiers whose latest row is a
/// delete marker are left out. Columns: the features, `write_time`, `api_invocation_time`.
pub async fn latest_view(
    group: &FeatureGroup,
    history: Arc<HistoryTable>,
) -> datafusion::common::Result<Arc<dyn TableProvider>> {
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let event_time = quote(&group.event_time_feature_name);
    let order = if history.event_time.string {
        format!("to_timestamp_millis({event_time})")
    } else {
        event_time
    };
    let columns: Vec<String> = group
        .features
        .iter()
        .map(|f| quote(&f.name))
        .chain([quote(WRITE_TIME), quote(API_INVOCATION_TIME)])
        .collect();
    let sql = format!(
        "SELECT {columns} FROM (SELECT *, row_number() OVER (PARTITION BY {id} ORDER BY {order} DESC, \
         {api} ASC, {write} ASC) AS \"__quiver_rank\" FROM history) \
         WHERE \"__quiver_rank\" = 1 AND NOT {deleted}",
        columns = columns.join(", "),
        id = quote(&group.record_identifier_feature_name),
        api = quote(API_INVOCATION_TIME),
        write = quote(WRITE_TIME),
        deleted = quote(IS_DELETED),
    );
    let planner = SessionContext::new_with_config(session_config());
    planner.register_table("history", history)?;
    let plan = planner.state().create_logical_plan(&sql).await?;
    Ok(Arc::new(ViewTable::new(plan, Some(sql))))
}

/// The session settings every query runs with: case-sensitive identifiers (feature names are),
/// `information_schema` for clients that browse tables, and strings as plain Utf8 (not the
/// view type), which every Arrow and Parquet reader takes.
pub fn session_config() -> SessionConfig {
    SessionConfig::new()
        .with_information_schema(true)
        .with_default_catalog_and_schema(CATALOG, SCHEMAS[0])
        .set_bool("datafusion.sql_parser.enable_ident_normalization", false)
        .set_bool(
            "datafusion.execution.parquet.schema_force_view_types",
            false,
        )
}

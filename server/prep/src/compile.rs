//! Compiles a recipe into one SQL query, a chain of common table expressions (`s0` the source,
//! `s<i+1>` the table after step `i`), that DataFusion plans and runs as one plan. The SQL is
//! also what `export` shows.
//!
//! Each step is planned as it is added, so an error names the step and its field (an unknown
//! column, a wrong type, an expression that does not parse); a step that learns from data and
//! has not learned yet is fitted here, on the table its step sees (the sample in a preview, the
//! whole data in a run), and what it learned is written into the returned recipe.
//!
//! Everything a user writes reaches the SQL quoted ([`ident`], [`text`]) or checked first:
//! expressions parse as exactly one expression, `sql` steps as exactly one query; and the
//! context holds only the recipe's own sources, so no step can reach another table.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;

use quiver_types::error::{Error, Result, quote};

use crate::recipe::{Recipe, Step, at};
use crate::reorder;
use crate::series::{Block, SeriesTable};
use crate::steps;

/// The tables a recipe's context holds: the source, and each join's or concatenation's other
/// source by the step's position.
pub const SOURCE_TABLE: &str = "source";

/// The hidden column that carries a sort's order through the steps after it (SQL keeps no
/// order through a table expression): the final query sorts by it and leaves it out.
pub const ORDER: &str = "__quiver_order";

pub fn other_source_table(step: usize) -> String {
    format!("source_{step}")
}

/// The SQL options every recipe query runs with: queries only.
pub fn query_only() -> datafusion::execution::context::SQLOptions {
    datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// A context for one recipe: the host's configuration and runtime (memory pool, object
/// stores), an empty catalog (the host registers the recipe's sources only), and the recipe
/// functions.
pub fn context(base: Option<&SessionContext>) -> SessionContext {
    let ctx = match base {
        Some(base) => {
            let state = SessionStateBuilder::new()
                .with_config(base.copied_config())
                .with_runtime_env(base.runtime_env())
                .with_default_features()
                .build();
            SessionContext::new_with_state(state)
        }
        None => SessionContext::new(),
    };
    crate::udf::register(&ctx);
    ctx
}

/// The most a fitting pass keeps in memory of the table it reads ([`Chain::fetch`]).
pub const CACHE_BYTES: usize = 2 << 30;

/// The name the cached table is registered under in the recipe's context.
const CACHE_TABLE: &str = "__quiver_cache";

/// A compiled recipe.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The recipe with every learning step fitted.
    pub recipe: Recipe,
    /// The whole recipe as one query over its sources (the export).
    pub sql: String,
    /// The same query as it runs in the context it was compiled in: where the fitting cached
    /// a table, it reads that table instead of computing it again.
    pub run_sql: String,
    /// The output's columns.
    pub schema: SchemaRef,
    /// The number of steps compiled (all, or those up to a preview's step).
    pub steps: usize,
}

/// The chain of tables being built, and the schema of its last.
pub struct Chain<'a> {
    ctx: &'a SessionContext,
    ctes: Vec<String>,
    /// Per table: the window columns it added to the one before, if that is all it did
    /// ([`Chain::push_windows`]).
    windows: Vec<Option<Windows>>,
    schema: SchemaRef,
    /// The position of the step being compiled, for [`Chain::other_source`].
    step: usize,
    cache: Cache,
}

/// The table the first fitting pass read, kept in memory so that the later fitting passes
/// and the run itself do not compute it again (read the sources, join them).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cache {
    /// Nothing was fitted yet.
    None,
    /// The chain's table at this position is in [`CACHE_TABLE`].
    At(usize),
    /// No table is kept: the one the first pass read was larger than [`CACHE_BYTES`], or
    /// the chain is a fitted recipe compiled again.
    Off,
}

/// A table made of the one before it and window columns.
#[derive(Debug, Clone)]
struct Windows {
    from: String,
    list: Vec<String>,
    added: Vec<String>,
}

impl<'a> Chain<'a> {
    async fn start(ctx: &'a SessionContext, cache: Cache) -> Result<Self> {
        let mut chain = Self {
            ctx,
            ctes: Vec::new(),
            windows: Vec::new(),
            schema: Arc::new(Schema::empty()),
            step: 0,
            cache,
        };
        chain
            .push(format!("SELECT * FROM {}", ident(SOURCE_TABLE)))
            .await
            .map_err(|e| Error::validation(format!("source: {}", e.message())))?;
        Ok(chain)
    }

    /// The name of the last table.
    pub fn last(&self) -> String {
        format!("s{}", self.ctes.len() - 1)
    }

    /// A name for a helper table this step adds before its own.
    pub fn next(&self) -> String {
        format!("s{}", self.ctes.len())
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The table of this step's other source (a join's or concatenation's).
    pub fn other_source(&self) -> String {
        ident(&other_source_table(self.step))
    }

    /// Adds a table, planning it to learn its columns.
    pub async fn push(&mut self, select: String) -> Result<()> {
        self.push_table(select, None).await
    }

    async fn push_table(&mut self, select: String, windows: Option<Windows>) -> Result<()> {
        let name = self.next();
        self.ctes.push(format!("{name} AS ({select})"));
        self.windows.push(windows);
        match self.plan_schema(&format!("SELECT * FROM {name}")).await {
            Ok(schema) => {
                self.schema = schema;
                Ok(())
            }
            Err(e) => {
                self.ctes.pop();
                self.windows.pop();
                Err(e)
            }
        }
    }

    /// Adds window columns (`expression AS name`, quoted) reading the columns `uses`. When
    /// the last table only added window columns, and none of them is read here, the new ones
    /// join it: DataFusion computes the windows of one SELECT that share a partitioning in
    /// one operator, where each table of its own costs a pass and several microseconds per
    /// partition.
    pub async fn push_windows(
        &mut self,
        columns: Vec<String>,
        added: Vec<String>,
        uses: &[String],
    ) -> Result<()> {
        if let Some(Some(last)) = self.windows.last().cloned()
            && !uses.iter().any(|u| last.added.contains(u))
        {
            let mut merged = last.clone();
            merged.list.extend(columns.iter().cloned());
            merged.added.extend(added.iter().cloned());
            let select = format!("SELECT {} FROM {}", merged.list.join(", "), merged.from);
            let (cte, windows) = (self.ctes.pop(), self.windows.pop());
            match self.push_table(select, Some(merged)).await {
                Ok(()) => return Ok(()),
                Err(_) => {
                    // Planned alone below, for its own error.
                    self.ctes.extend(cte);
                    self.windows.extend(windows);
                }
            }
        }
        let from = self.last();
        let mut list = self.all();
        list.extend(columns);
        let select = format!("SELECT {} FROM {from}", list.join(", "));
        self.push_table(select, Some(Windows { from, list, added }))
            .await
    }

    /// A query over the chain's tables, as it runs here (reading the cached table, if any).
    pub fn query(&self, select: &str) -> String {
        self.query_first(self.ctes.len(), select)
    }

    /// A query over the chain's first `tables` tables, as it runs here.
    fn query_first(&self, tables: usize, select: &str) -> String {
        let Cache::At(at) = self.cache else {
            return format!("WITH {}\n{select}", self.ctes[..tables].join(",\n"));
        };
        let ctes: Vec<String> = self.ctes[..tables]
            .iter()
            .enumerate()
            .map(|(i, cte)| {
                if i == at {
                    format!("s{i} AS (SELECT * FROM {})", ident(CACHE_TABLE))
                } else {
                    cte.clone()
                }
            })
            .collect();
        format!("WITH {}\n{select}", ctes.join(",\n"))
    }

    /// A query over the chain's tables as computed from the sources.
    pub fn export(&self, select: &str) -> String {
        format!("WITH {}\n{select}", self.ctes.join(",\n"))
    }

    /// Keeps the last table in memory for the fitting passes (and the run) after it, unless
    /// it is larger than [`CACHE_BYTES`] or a table was kept already. Only the first pass
    /// tries: it reads the table the steps before the first learning step made (sources
    /// read, joined, filtered), which every later pass would otherwise compute again.
    async fn cache_last(&mut self) -> Result<()> {
        if self.cache != Cache::None {
            return Ok(());
        }
        let at = self.ctes.len() - 1;
        let df = self
            .ctx
            .sql_with_options(&self.query(&format!("SELECT * FROM s{at}")), query_only())
            .await
            .map_err(sql_error)?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let streams = df.execute_stream_partitioned().await.map_err(run_error)?;
        let held = std::sync::atomic::AtomicUsize::new(0);
        let partitions = futures::future::try_join_all(streams.into_iter().map(|mut stream| {
            let held = &held;
            async move {
                use futures::StreamExt;
                let mut batches = Vec::new();
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(run_error)?;
                    let size = batch.get_array_memory_size();
                    if held.fetch_add(size, std::sync::atomic::Ordering::Relaxed) + size
                        > CACHE_BYTES
                    {
                        return Ok(None);
                    }
                    batches.push(batch);
                }
                Ok::<_, Error>(Some(batches))
            }
        }))
        .await?;
        let Some(partitions) = partitions.into_iter().collect::<Option<Vec<_>>>() else {
            self.cache = Cache::Off;
            return Ok(());
        };
        let table = datafusion::datasource::MemTable::try_new(schema, partitions)
            .map_err(|e| Error::internal(format!("keeping the table for fitting: {e}")))?;
        self.ctx
            .register_table(CACHE_TABLE, Arc::new(table))
            .map_err(sql_error)?;
        self.cache = Cache::At(at);
        Ok(())
    }

    /// The columns `select` (over the chain) returns, without running it.
    pub async fn plan_schema(&self, select: &str) -> Result<SchemaRef> {
        let df = self
            .ctx
            .sql_with_options(&self.query(select), query_only())
            .await
            .map_err(sql_error)?;
        Ok(Arc::new(df.schema().as_arrow().clone()))
    }

    /// Runs `select` over the chain (to fit a step).
    pub async fn fetch(&mut self, select: &str) -> Result<Vec<RecordBatch>> {
        self.cache_last().await?;
        self.evaluate(&self.query(select)).await
    }

    /// Runs a query that reads none of the chain's tables (`SELECT <literal>`).
    pub async fn evaluate(&self, query: &str) -> Result<Vec<RecordBatch>> {
        let df = self
            .ctx
            .sql_with_options(query, query_only())
            .await
            .map_err(sql_error)?;
        df.collect().await.map_err(run_error)
    }

    /// Runs `select` and reads its one row as numbers (null as `None`).
    pub async fn fetch_numbers(&mut self, select: &str) -> Result<Vec<Option<f64>>> {
        let batches = self.fetch(select).await?;
        let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(Vec::new());
        };
        batch
            .columns()
            .iter()
            .map(|column| {
                let column = cast(column, &DataType::Float64).map_err(|e| {
                    Error::internal(format!("reading a fitted value as a number: {e}"))
                })?;
                let column = column.as_primitive::<arrow::datatypes::Float64Type>();
                Ok((!column.is_null(0)).then(|| column.value(0)))
            })
            .collect()
    }

    /// Runs `select` and reads its first column as text, row by row.
    pub async fn fetch_texts(&mut self, select: &str) -> Result<Vec<Option<String>>> {
        let mut out = Vec::new();
        for batch in self.fetch(select).await? {
            let column = cast(batch.column(0), &DataType::Utf8)
                .map_err(|e| Error::internal(format!("reading a fitted value as text: {e}")))?;
            let column = column.as_string::<i32>();
            out.extend(
                (0..column.len())
                    .map(|i| (!column.is_null(i)).then(|| column.value(i).to_string())),
            );
        }
        Ok(out)
    }

    /// The column `name`, or an error naming `field` and the columns there are.
    pub fn column(&self, field: &str, name: &str) -> Result<&Field> {
        self.schema.field_with_name(name).map_err(|_| {
            let names: Vec<&str> = self
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .filter(|n| *n != ORDER)
                .collect();
            Error::validation(format!(
                "{field}: no column {} (the table has {})",
                quote(name),
                list(&names)
            ))
        })
    }

    /// The column `name`, which must hold numbers.
    pub fn numeric(&self, field: &str, name: &str) -> Result<&Field> {
        let column = self.column(field, name)?;
        if column.data_type().is_numeric() {
            Ok(column)
        } else {
            Err(Error::validation(format!(
                "{field}: column {} is {}, not a number (cast it first)",
                quote(name),
                type_name(column.data_type())
            )))
        }
    }

    /// Each name must be a column, once.
    pub fn columns(&self, field: &str, names: &[String]) -> Result<()> {
        for (i, name) in names.iter().enumerate() {
            self.column(field, name)?;
            if names[..i].contains(name) {
                return Err(Error::validation(format!("{field}: {} twice", quote(name))));
            }
        }
        Ok(())
    }

    /// A new column's name must not be taken (unless it replaces `replacing`).
    pub fn free(&self, field: &str, name: &str) -> Result<()> {
        if self.schema.field_with_name(name).is_ok() {
            return Err(Error::validation(format!(
                "{field}: the output column {} exists already (rename or drop it first)",
                quote(name)
            )));
        }
        Ok(())
    }

    /// Every column as a quoted name, in order (the hidden order column too, which steps
    /// carry along).
    pub fn all(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| ident(f.name()))
            .collect()
    }

    /// Every column the user sees, quoted (what a row's hash or a distinct row is made of).
    pub fn visible(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .filter(|f| f.name() != ORDER)
            .map(|f| ident(f.name()))
            .collect()
    }

    /// The columns the user sees (all but the hidden order column).
    fn visible_fields(&self) -> Vec<Field> {
        self.schema
            .fields()
            .iter()
            .filter(|f| f.name() != ORDER)
            .map(|f| f.as_ref().clone())
            .collect()
    }

    /// Whether an earlier sort's order is being carried.
    pub fn ordered(&self) -> bool {
        self.schema.field_with_name(ORDER).is_ok()
    }

    /// The hidden order column, for steps that list their columns, if there is one.
    pub fn carry(&self) -> Option<String> {
        self.ordered().then(|| ident(ORDER))
    }

    /// The columns not in `names`, quoted (the hidden order column among them).
    pub fn all_except(&self, names: &[&str]) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .filter(|f| !names.contains(&f.name().as_str()))
            .map(|f| ident(f.name()))
            .collect()
    }

    /// The columns `expression` reads, if it parses.
    fn expression_columns(&self, expression: &str) -> Option<Vec<String>> {
        let schema = DFSchema::try_from(self.schema.as_ref().clone()).ok()?;
        let parsed = self.ctx.parse_sql_expr(expression, &schema).ok()?;
        Some(
            parsed
                .column_refs()
                .into_iter()
                .map(|c| c.name.clone())
                .collect(),
        )
    }

    /// The query's last SELECT: the visible columns (in `columns`' order if given), in a
    /// sort's order if there was one.
    fn output(&self, columns: Option<&[String]>) -> String {
        let last = self.last();
        let list = match columns {
            Some(columns) => columns.iter().map(|c| ident(c)).collect(),
            None => self.visible(),
        };
        if self.ordered() {
            format!(
                "SELECT {} FROM {last} ORDER BY {}",
                list.join(", "),
                ident(ORDER)
            )
        } else {
            format!("SELECT {} FROM {last}", list.join(", "))
        }
    }

    /// Checks that `expression` is one SQL expression over the table's columns.
    pub fn check_expression(&self, field: &str, expression: &str) -> Result<()> {
        let schema = DFSchema::try_from(self.schema.as_ref().clone())
            .map_err(|e| Error::internal(format!("the table's schema: {e}")))?;
        self.ctx
            .parse_sql_expr(expression, &schema)
            .map(|_| ())
            .map_err(|e| Error::validation(format!("{field}: {}: {e}", quote(expression))))
    }
}

/// Checks that `query` is exactly one query (no statement, no second query).
pub fn check_query(field: &str, query: &str) -> Result<()> {
    let statements = DFParser::parse_sql_with_dialect(query, &GenericDialect {})
        .map_err(|e| Error::validation(format!("{field}: {e}")))?;
    match statements.iter().collect::<Vec<_>>().as_slice() {
        [DFStatement::Statement(s)] if matches!(s.as_ref(), Statement::Query(_)) => Ok(()),
        [_] => Err(Error::validation(format!(
            "{field}: not a query (only SELECT ... is allowed)"
        ))),
        _ => Err(Error::validation(format!(
            "{field}: {} statements; one query is allowed",
            statements.len()
        ))),
    }
}

/// Compiles `recipe` (its first `upto` steps, or all) in `ctx`, fitting the steps that have not
/// learned yet.
pub async fn compile(
    ctx: &SessionContext,
    recipe: &Recipe,
    upto: Option<usize>,
) -> Result<Compiled> {
    let mut fitted = recipe.clone();
    let count = upto.unwrap_or(fitted.steps.len()).min(fitted.steps.len());
    let mut chain = Chain::start(ctx, Cache::None).await?;
    let mut effects = Vec::new();
    for (i, step) in fitted.steps.iter_mut().enumerate().take(count) {
        chain.step = i;
        let name = at(i, step);
        let before = chain.schema.clone();
        let reads = match step {
            crate::recipe::Step::Filter { expression } => chain.expression_columns(expression),
            _ => None,
        };
        steps::compile(&mut chain, step)
            .await
            .map_err(|e| Error::new(e.kind(), format!("{name}: {}", e.message())))?;
        effects.push(reorder::effect(step, &before, &chain.schema, reads));
    }
    let select = chain.output(None);
    let order = reorder::sink(&effects);
    let series = fitted.steps[..count]
        .iter()
        .any(|step| Block::of(&[step]).is_some());
    let run_sql = if order.iter().enumerate().all(|(i, &s)| i == s) && !series {
        chain.query(&select)
    } else {
        // The recipe's own order and SQL are always right; the run query is only faster.
        run_query(&chain, &fitted, &order)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(
                    "recipe {}: running in its own order as SQL: {e}",
                    fitted.name
                );
                chain.query(&select)
            })
    };
    Ok(Compiled {
        sql: chain.export(&select),
        run_sql,
        schema: Arc::new(Schema::new(chain.visible_fields())),
        recipe: fitted,
        steps: count,
    })
}

/// The fitted recipe's steps compiled in `order` ([`reorder::sink`]) as the query to run:
/// reading the table `fitted_chain` cached where the reordered chain computes the same one,
/// each block of series steps computed natively ([`series`]) where it can be, and ending
/// with the recipe's own columns in its own order.
async fn run_query(fitted_chain: &Chain<'_>, fitted: &Recipe, order: &[usize]) -> Result<String> {
    let ctx = fitted_chain.ctx;
    let mut chain = Chain::start(ctx, Cache::Off).await?;
    let cached = match fitted_chain.cache {
        Cache::At(at) => Some(at),
        _ => None,
    };
    let use_cache = |chain: &mut Chain<'_>| {
        if let Some(at) = cached
            && chain.ctes.len() == at + 1
            && chain.ctes == fitted_chain.ctes[..=at]
        {
            chain.cache = Cache::At(at);
        }
    };
    use_cache(&mut chain);
    let steps: Vec<&Step> = order.iter().map(|&s| &fitted.steps[s]).collect();
    let mut blocks = 0;
    let mut position = 0;
    while position < order.len() {
        // The longest block of series steps from here, if there is one.
        let block = (position + 1..=order.len())
            .rev()
            .find_map(|end| Block::of(&steps[position..end]).map(|b| (b, end)));
        let end = block.as_ref().map_or(position + 1, |(_, end)| *end);
        let (tables, before) = (chain.ctes.len(), chain.schema.clone());
        for p in position..end {
            chain.step = order[p];
            let mut step = steps[p].clone();
            steps::compile(&mut chain, &mut step).await.map_err(|e| {
                Error::internal(format!(
                    "the fitted recipe in run order, {}: {}",
                    at(order[p], &step),
                    e.message()
                ))
            })?;
            use_cache(&mut chain);
        }
        if let Some((block, _)) = block
            && block.check(&before, &chain.schema)
        {
            let input = ctx
                .sql_with_options(
                    &chain.query_first(tables, &format!("SELECT * FROM s{}", tables - 1)),
                    query_only(),
                )
                .await
                .map_err(sql_error)?
                .into_unoptimized_plan();
            let sql = ctx
                .sql_with_options(
                    &chain.query(&format!("SELECT * FROM {}", chain.last())),
                    query_only(),
                )
                .await
                .map_err(sql_error)?
                .into_unoptimized_plan();
            let name = format!("__quiver_series_{blocks}");
            blocks += 1;
            let table = SeriesTable::new(block, input, sql, &chain.schema);
            ctx.register_table(name.as_str(), Arc::new(table))
                .map_err(sql_error)?;
            chain.ctes.truncate(tables);
            chain.windows.truncate(tables);
            chain
                .push(format!("SELECT * FROM {}", ident(&name)))
                .await?;
        }
        position = end;
    }
    let columns: Vec<String> = fitted_chain
        .visible_fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    Ok(chain.query(&chain.output(Some(&columns))))
}

/// An SQL identifier, quoted.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An SQL text literal.
pub fn text(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// An SQL number literal, exact (Rust prints the shortest text that reads back the same).
pub fn number(value: f64) -> String {
    if value.is_finite() {
        format!("CAST({value:?} AS DOUBLE)")
    } else {
        format!("CAST('{value}' AS DOUBLE)")
    }
}

/// `value` (text) as a value of `data_type`.
pub fn typed(value: &str, data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 => text(value),
        other => format!("arrow_cast({}, {})", text(value), text(&other.to_string())),
    }
}

/// A column's values with NaN as null: what "missing" means for numbers.
pub fn present(column: &str, data_type: &DataType) -> String {
    if matches!(
        data_type,
        DataType::Float64 | DataType::Float32 | DataType::Float16
    ) {
        // Not nanvl(column, NULL): last_value(... IGNORE NULLS) does not skip its nulls.
        format!("CASE WHEN isnan({column}) THEN NULL ELSE {column} END")
    } else {
        column.to_string()
    }
}

/// A type as messages name it.
pub fn type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Boolean => "a boolean".into(),
        other => other.to_string(),
    }
}

fn list(names: &[&str]) -> String {
    const SHOWN: usize = 20;
    let shown: Vec<String> = names.iter().take(SHOWN).map(|n| quote(n)).collect();
    if names.len() > SHOWN {
        format!("{} and {} more", shown.join(", "), names.len() - SHOWN)
    } else if names.is_empty() {
        "no columns".into()
    } else {
        shown.join(", ")
    }
}

/// A planning error: the user's SQL or the recipe is wrong.
pub fn sql_error(e: datafusion::error::DataFusionError) -> Error {
    Error::validation(first_line(&e.to_string()))
}

/// An error while running: resources are a limit; a failed cast under `on_error: fail` or
/// a division by zero is the data's; the rest is ours.
pub fn run_error(e: datafusion::error::DataFusionError) -> Error {
    use datafusion::error::DataFusionError as E;
    match e.find_root() {
        E::ResourcesExhausted(_) => Error::limit(format!(
            "the recipe needs more memory than the server allows: {e}"
        )),
        E::ArrowError(..) | E::Execution(_) | E::Plan(_) | E::SQL(..) | E::SchemaError(..) => {
            Error::validation(first_line(&e.to_string()))
        }
        _ => Error::internal(format!("running the recipe: {e}")),
    }
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).to_string()
}

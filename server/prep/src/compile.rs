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

use crate::recipe::{Recipe, at};
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

/// A compiled recipe.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The recipe with every learning step fitted.
    pub recipe: Recipe,
    /// The whole recipe as one query.
    pub sql: String,
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
}

/// A table made of the one before it and window columns.
#[derive(Debug, Clone)]
struct Windows {
    from: String,
    list: Vec<String>,
    added: Vec<String>,
}

impl<'a> Chain<'a> {
    async fn start(ctx: &'a SessionContext) -> Result<Self> {
        let mut chain = Self {
            ctx,
            ctes: Vec::new(),
            windows: Vec::new(),
            schema: Arc::new(Schema::empty()),
            step: 0,
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

    /// A query over the chain's tables.
    pub fn query(&self, select: &str) -> String {
        format!("WITH {}\n{select}", self.ctes.join(",\n"))
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
    pub async fn fetch(&self, select: &str) -> Result<Vec<RecordBatch>> {
        let df = self
            .ctx
            .sql_with_options(&self.query(select), query_only())
            .await
            .map_err(sql_error)?;
        df.collect().await.map_err(run_error)
    }

    /// Runs `select` and reads its one row as numbers (null as `None`).
    pub async fn fetch_numbers(&self, select: &str) -> Result<Vec<Option<f64>>> {
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
    pub async fn fetch_texts(&self, select: &str) -> Result<Vec<Option<String>>> {
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
    let mut chain = Chain::start(ctx).await?;
    for (i, step) in fitted.steps.iter_mut().enumerate().take(count) {
        chain.step = i;
        let name = at(i, step);
        steps::compile(&mut chain, step)
            .await
            .map_err(|e| Error::new(e.kind(), format!("{name}: {}", e.message())))?;
    }
    let last = chain.last();
    let select = if chain.ordered() {
        format!(
            "SELECT {} FROM {last} ORDER BY {}",
            chain.visible().join(", "),
            ident(ORDER)
        )
    } else {
        format!("SELECT * FROM {last}")
    };
    let visible: Vec<Field> = chain
        .schema
        .fields()
        .iter()
        .filter(|f| f.name() != ORDER)
        .map(|f| f.as_ref().clone())
        .collect();
    Ok(Compiled {
        sql: chain.query(&select),
        schema: Arc::new(Schema::new(visible)),
        recipe: fitted,
        steps: count,
    })
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

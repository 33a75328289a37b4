//! `quiver.featurestore.v1.Prep` over tonic: data preparation recipes (`quiver-prep`) stored,
//! previewed and run. Recipes and runs are authorized as `quiver:*Recipe*` actions on their
//! ARNs; the groups and SQL a recipe reads as queries of them (`quiver:Query`) and its files as
//! `quiver:ReadFile` on them, as AutoML's are; a
//! feature group output as `sagemaker:PutRecord` on it (and `sagemaker:CreateFeatureGroup`
//! when the run creates it).

use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use quiver_proto::v1 as pb;
use quiver_proto::v1::prep_server::Prep as PrepApi;
use tonic::{Request, Response, Status};

use crate::service::caller;
use crate::status::status;
use quiver_auth::{Access, Caller, Features};
use quiver_core::FeatureStore;
use quiver_prep::recipe::{FileFormat, Recipe, Source};
use quiver_prep::runs::{NewGroup, Output, RunRecord, RunSpec, Runs};
use quiver_prep::store::{RecipeStore, StoredRecipe, diff};
use quiver_prep::{Sources, preview};
use quiver_query::QueryEngine;
use quiver_types::error::{Error, Result};
use quiver_types::time::Clock;

const DEFAULT_PREVIEW_ROWS: usize = 20;
const MAX_PREVIEW_ROWS: usize = 1_000;
const DEFAULT_SAMPLE_ROWS: usize = 100_000;
const MAX_SAMPLE_ROWS: usize = 1_000_000;

/// What the Prep service is built from.
#[derive(Clone)]
pub struct PrepService {
    pub recipes: Arc<RecipeStore>,
    pub runs: Arc<Runs>,
    pub sources: Arc<dyn Sources>,
    pub store: Arc<FeatureStore>,
    pub access: Arc<Access>,
    pub queries: Arc<QueryEngine>,
    pub clock: Arc<dyn Clock>,
}

impl PrepService {
    fn recipe_arn(&self, name: &str) -> String {
        let arns = self.access.arns();
        format!(
            "arn:aws:sagemaker:{}:{}:quiver-recipe/{}",
            arns.region,
            arns.account_id,
            name.to_ascii_lowercase()
        )
    }

    fn run_arn(&self, name: &str) -> String {
        let arns = self.access.arns();
        format!(
            "arn:aws:sagemaker:{}:{}:quiver-recipe-run/{}",
            arns.region,
            arns.account_id,
            name.to_ascii_lowercase()
        )
    }

    fn authorize(&self, caller: &Caller, action: &str, arn: &str) -> Result<()> {
        self.access.authorize(caller, action, arn, None)
    }

    /// Every source the recipe reads, authorized as a query of it.
    fn authorize_sources(&self, caller: &Caller, recipe: &Recipe) -> Result<()> {
        let sources = std::iter::once(&recipe.source)
            .chain(recipe.steps.iter().filter_map(|s| s.other_source()));
        for source in sources {
            match source {
                Source::FeatureGroup { name, .. } => self.access.authorize_group(
                    caller,
                    "quiver:Query",
                    Some(name),
                    Features::All,
                    |g| self.store.feature_names(g),
                )?,
                Source::Query { sql } => {
                    crate::query_service::authorize_sql(&self.access, &self.queries, caller, sql)?
                }
                Source::File { uri, .. } => self.access.authorize_file(caller, uri)?,
            }
        }
        Ok(())
    }

    /// A request's recipe: given whole, or stored (authorized as reading it); `action`, when
    /// given, is authorized on the recipe too. Authorization comes before any other answer,
    /// so that a caller without rights learns nothing from the request's faults.
    fn recipe(
        &self,
        caller: &Caller,
        action: Option<&str>,
        json: Option<String>,
        stored: Option<pb::RecipeRef>,
    ) -> Result<(Recipe, Option<StoredRecipe>)> {
        match (json, stored) {
            (Some(json), _) => {
                let parsed = Recipe::from_json(&json);
                if let Some(action) = action {
                    let arn = match &parsed {
                        Ok(r) => self.recipe_arn(&r.name),
                        Err(_) => "*".to_string(),
                    };
                    self.authorize(caller, action, &arn)?;
                }
                Ok((parsed?, None))
            }
            (None, Some(r)) => {
                let arn = self.recipe_arn(&r.name);
                self.authorize(caller, "quiver:DescribeRecipe", &arn)?;
                if let Some(action) = action {
                    self.authorize(caller, action, &arn)?;
                }
                let stored = self.recipes.get(&r.name, r.version)?;
                Ok((stored.recipe.clone(), Some(stored)))
            }
            (None, None) => {
                if let Some(action) = action {
                    self.authorize(caller, action, "*")?;
                }
                Err(Error::validation(
                    "recipe is required: recipe_json, or stored (a stored recipe's name)",
                ))
            }
        }
    }

    /// A recipe to preview or report on, with every source it reads authorized.
    fn readable(
        &self,
        caller: &Caller,
        json: Option<String>,
        stored: Option<pb::RecipeRef>,
    ) -> Result<Recipe> {
        let (recipe, _) = self.recipe(caller, Some("quiver:PreviewRecipe"), json, stored)?;
        self.authorize_sources(caller, &recipe)?;
        Ok(recipe)
    }

    fn version(&self, stored: &StoredRecipe, with_document: bool) -> pb::RecipeVersion {
        pb::RecipeVersion {
            name: stored.recipe.name.clone(),
            arn: self.recipe_arn(&stored.recipe.name),
            version: stored.version,
            saved_time_ms: stored.saved_ms,
            steps: stored.recipe.steps.len() as u32,
            description: stored.recipe.description.clone(),
            recipe_json: if with_document {
                stored.recipe.to_json()
            } else {
                String::new()
            },
        }
    }

    fn run(&self, record: &RunRecord) -> pb::RecipeRun {
        pb::RecipeRun {
            name: record.spec.name.clone(),
            arn: self.run_arn(&record.spec.name),
            status: format!("{:?}", record.status),
            failure_reason: record.failure_reason.clone(),
            creation_time_ms: record.created_ms,
            last_modified_time_ms: record.modified_ms,
            end_time_ms: record.ended_ms,
            rows_written: record.rows_written,
            rows_skipped: record.rows_skipped,
            attempts: record.attempts,
            recipe_name: record.spec.recipe_name.clone(),
            recipe_version: record.spec.recipe_version,
            output: match &record.spec.output {
                Output::File { uri, .. } => uri.clone(),
                Output::FeatureGroup { name, .. } => name.clone(),
            },
            fitted_recipe_json: record
                .fitted
                .as_ref()
                .map(Recipe::to_json)
                .unwrap_or_default(),
        }
    }

    fn output(
        &self,
        caller: &Caller,
        output: Option<pb::start_run_request::Output>,
    ) -> Result<Output> {
        use pb::start_run_request::Output as Out;
        match output {
            Some(Out::FileUri(uri)) => {
                self.access.authorize_group(
                    caller,
                    "quiver:Query",
                    None,
                    Features::Unnamed,
                    |_| None,
                )?;
                let format = FileFormat::of_path(&uri).ok_or_else(|| {
                    Error::validation(format!(
                        "file_uri '{uri}': name the file .parquet, .csv or .json"
                    ))
                })?;
                Ok(Output::File { uri, format })
            }
            Some(Out::FeatureGroup(g)) => {
                if g.name.trim().is_empty() {
                    return Err(Error::validation("feature_group.name: empty"));
                }
                let create = if g.create {
                    if g.record_identifier.is_empty() || g.event_time.is_empty() {
                        return Err(Error::validation(
                            "feature_group: creating a group needs record_identifier and event_time (output columns)",
                        ));
                    }
                    self.access.authorize_group(
                        caller,
                        "sagemaker:CreateFeatureGroup",
                        Some(&g.name),
                        Features::Unnamed,
                        |_| None,
                    )?;
                    Some(NewGroup {
                        record_identifier: g.record_identifier,
                        event_time: g.event_time,
                        online: true,
                        offline: true,
                    })
                } else {
                    None
                };
                self.access.authorize_group(
                    caller,
                    "sagemaker:PutRecord",
                    Some(&g.name),
                    Features::All,
                    |n| self.store.feature_names(n),
                )?;
                Ok(Output::FeatureGroup {
                    name: g.name,
                    create,
                })
            }
            None => Err(Error::validation(
                "output is required: file_uri, or feature_group",
            )),
        }
    }
}

/// Rows read from each source for a preview or a report.
fn sample_rows(asked: u32) -> usize {
    match asked as usize {
        0 => DEFAULT_SAMPLE_ROWS,
        n => n.min(MAX_SAMPLE_ROWS),
    }
}

/// Rows as JSON arrays of their values' text (null as null).
fn rows_json(batches: &[RecordBatch]) -> Result<Vec<String>> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::internal(format!("formatting the preview: {e}")))?;
        for i in 0..batch.num_rows() {
            let values: Vec<serde_json::Value> = batch
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(c, f)| {
                    if c.is_null(i) {
                        serde_json::Value::Null
                    } else {
                        serde_json::Value::String(f.value(i).to_string())
                    }
                })
                .collect();
            rows.push(serde_json::Value::Array(values).to_string());
        }
    }
    Ok(rows)
}

#[tonic::async_trait]
impl PrepApi for PrepService {
    async fn put_recipe(
        &self,
        request: Request<pb::PutRecipeRequest>,
    ) -> Result<Response<pb::RecipeVersion>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        let (recipe, _) = self
            .recipe(&caller, Some("quiver:PutRecipe"), Some(r.recipe_json), None)
            .map_err(status)?;
        let stored = self
            .recipes
            .save(&recipe, self.clock.now_ms())
            .map_err(status)?;
        Ok(Response::new(self.version(&stored, true)))
    }

    async fn describe_recipe(
        &self,
        request: Request<pb::RecipeRef>,
    ) -> Result<Response<pb::RecipeVersion>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.authorize(&caller, "quiver:DescribeRecipe", &self.recipe_arn(&r.name))
            .map_err(status)?;
        let stored = self.recipes.get(&r.name, r.version).map_err(status)?;
        Ok(Response::new(self.version(&stored, true)))
    }

    async fn list_recipes(
        &self,
        request: Request<pb::ListRecipesRequest>,
    ) -> Result<Response<pb::ListRecipesResponse>, Status> {
        let caller = caller(&request).clone();
        self.authorize(&caller, "quiver:ListRecipes", "*")
            .map_err(status)?;
        let contains = request
            .into_inner()
            .name_contains
            .unwrap_or_default()
            .to_lowercase();
        let recipes = self
            .recipes
            .list()
            .map_err(status)?
            .iter()
            .filter(|r| r.recipe.name.to_lowercase().contains(&contains))
            .map(|r| self.version(r, false))
            .collect();
        Ok(Response::new(pb::ListRecipesResponse { recipes }))
    }

    async fn delete_recipe(
        &self,
        request: Request<pb::RecipeRef>,
    ) -> Result<Response<pb::RecipeVersion>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.authorize(&caller, "quiver:DeleteRecipe", &self.recipe_arn(&r.name))
            .map_err(status)?;
        let deleted = self.recipes.delete(&r.name).map_err(status)?;
        Ok(Response::new(self.version(&deleted, false)))
    }

    async fn diff_recipes(
        &self,
        request: Request<pb::DiffRecipesRequest>,
    ) -> Result<Response<pb::DiffRecipesResponse>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.authorize(&caller, "quiver:DescribeRecipe", &self.recipe_arn(&r.name))
            .map_err(status)?;
        let from = self
            .recipes
            .get(&r.name, Some(r.from_version))
            .map_err(status)?;
        let to = self.recipes.get(&r.name, r.to_version).map_err(status)?;
        Ok(Response::new(pb::DiffRecipesResponse {
            diff: diff(&from.recipe, &to.recipe),
        }))
    }

    async fn preview(
        &self,
        request: Request<pb::PreviewRequest>,
    ) -> Result<Response<pb::PreviewResponse>, Status> {
        use pb::preview_request::Recipe as R;
        let caller = caller(&request).clone();
        let r = request.into_inner();
        let (json, stored) = match r.recipe {
            Some(R::RecipeJson(j)) => (Some(j), None),
            Some(R::Stored(s)) => (None, Some(s)),
            None => (None, None),
        };
        let recipe = self.readable(&caller, json, stored).map_err(status)?;
        let rows = match r.rows as usize {
            0 => DEFAULT_PREVIEW_ROWS,
            n => n.min(MAX_PREVIEW_ROWS),
        };
        let sample = sample_rows(r.sample_rows);
        let started = Instant::now();
        let base: SessionContext = self.queries.context().clone();
        let shown = preview(
            Some(&base),
            self.sources.as_ref(),
            &recipe,
            r.steps.map(|s| s as usize),
            rows,
            sample,
        )
        .await
        .map_err(status)?;
        let columns = shown
            .compiled
            .schema
            .fields()
            .iter()
            .map(|f| pb::PreviewColumn {
                name: f.name().clone(),
                r#type: f.data_type().to_string(),
            })
            .collect();
        Ok(Response::new(pb::PreviewResponse {
            columns,
            rows_json: rows_json(&shown.batches).map_err(status)?,
            fitted_recipe_json: shown.compiled.recipe.to_json(),
            sql: shown.compiled.sql.clone(),
            seconds: started.elapsed().as_secs_f64(),
        }))
    }

    async fn report(
        &self,
        request: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::ReportResponse>, Status> {
        use pb::report_request::Recipe as R;
        let caller = caller(&request).clone();
        let r = request.into_inner();
        let (json, stored) = match r.recipe {
            Some(R::RecipeJson(j)) => (Some(j), None),
            Some(R::Stored(s)) => (None, Some(s)),
            None => (None, None),
        };
        let recipe = self.readable(&caller, json, stored).map_err(status)?;
        let sample = sample_rows(r.sample_rows);
        let started = Instant::now();
        let base: SessionContext = self.queries.context().clone();
        let report = quiver_prep::report::report(
            Some(&base),
            self.sources.as_ref(),
            &recipe,
            r.target.as_deref(),
            sample,
        )
        .await
        .map_err(status)?;
        let report_json = serde_json::to_string(&report)
            .map_err(|e| status(Error::internal(format!("writing the report: {e}"))))?;
        Ok(Response::new(pb::ReportResponse {
            report_json,
            html: quiver_prep::report::html(&format!("Data quality: {}", recipe.name), &report),
            seconds: started.elapsed().as_secs_f64(),
        }))
    }

    async fn start_run(
        &self,
        request: Request<pb::StartRunRequest>,
    ) -> Result<Response<pb::RecipeRun>, Status> {
        use pb::start_run_request::Recipe as R;
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.authorize(&caller, "quiver:StartRecipeRun", &self.run_arn(&r.name))
            .map_err(status)?;
        let (json, stored) = match r.recipe {
            Some(R::RecipeJson(j)) => (Some(j), None),
            Some(R::Stored(s)) => (None, Some(s)),
            None => (None, None),
        };
        let (recipe, stored) = self.recipe(&caller, None, json, stored).map_err(status)?;
        self.authorize_sources(&caller, &recipe).map_err(status)?;
        let output = self.output(&caller, r.output).map_err(status)?;
        let spec = RunSpec {
            name: r.name,
            recipe_name: stored.as_ref().map(|s| s.recipe.name.clone()),
            recipe_version: stored.as_ref().map(|s| s.version),
            recipe,
            output,
        };
        let record = self.runs.start(spec).map_err(status)?;
        Ok(Response::new(self.run(&record)))
    }

    async fn describe_run(
        &self,
        request: Request<pb::RecipeRunName>,
    ) -> Result<Response<pb::RecipeRun>, Status> {
        let caller = caller(&request).clone();
        let name = request.into_inner().name;
        self.authorize(&caller, "quiver:DescribeRecipeRun", &self.run_arn(&name))
            .map_err(status)?;
        let record = self.runs.describe(&name).map_err(status)?;
        Ok(Response::new(self.run(&record)))
    }

    async fn list_runs(
        &self,
        request: Request<pb::ListRecipeRunsRequest>,
    ) -> Result<Response<pb::ListRecipeRunsResponse>, Status> {
        let caller = caller(&request).clone();
        self.authorize(&caller, "quiver:ListRecipeRuns", "*")
            .map_err(status)?;
        let wanted = request.into_inner().status;
        let runs = self
            .runs
            .list()
            .iter()
            .filter(|r| {
                wanted
                    .as_deref()
                    .is_none_or(|s| format!("{:?}", r.status) == s)
            })
            .map(|r| self.run(r))
            .collect();
        Ok(Response::new(pb::ListRecipeRunsResponse { runs }))
    }

    async fn stop_run(
        &self,
        request: Request<pb::RecipeRunName>,
    ) -> Result<Response<pb::RecipeRun>, Status> {
        let caller = caller(&request).clone();
        let name = request.into_inner().name;
        self.authorize(&caller, "quiver:StopRecipeRun", &self.run_arn(&name))
            .map_err(status)?;
        let record = self.runs.stop(&name).map_err(status)?;
        Ok(Response::new(self.run(&record)))
    }
}

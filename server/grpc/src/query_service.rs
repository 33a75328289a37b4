//! `quiver.featurestore.v1.Query` over tonic: a statement's result as one Arrow IPC stream,
//! cut into messages as batches are produced.

use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use datafusion::arrow::ipc::writer::StreamWriter;
use futures::Stream;
use quiver_proto::v1 as pb;
use quiver_proto::v1::query_server::Query as QueryApi;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::metrics::MethodMetrics;
use crate::status::{ToStatus, status};
use quiver_auth::{Access, Caller, Features};
use quiver_lineage::Lineage;
use quiver_lineage::datasets::{DatasetBase, DatasetBuild};
use quiver_query::QueryEngine;
use quiver_query::dataset::{BaseSource, DatasetOptions, DatasetRequest, JoinedGroup};
use quiver_types::error::{Error, Result, quote};
use quiver_types::time;

#[derive(Clone)]
pub struct QueryService {
    engine: Arc<QueryEngine>,
    access: Arc<Access>,
    /// Where each dataset built is recorded, with what it came from.
    lineage: Option<Arc<Lineage>>,
}

impl QueryService {
    pub fn new(
        engine: Arc<QueryEngine>,
        access: Arc<Access>,
        lineage: Option<Arc<Lineage>>,
    ) -> Self {
        Self {
            engine,
            access,
            lineage,
        }
    }

    /// Records a built dataset in the lineage graph. A dataset that was built is answered as
    /// built: a failure to record it is logged, not returned.
    async fn record_dataset(
        &self,
        caller: &Caller,
        request: &DatasetRequest,
        manifest: &quiver_query::dataset::Manifest,
    ) {
        let Some(lineage) = self.lineage.clone() else {
            return;
        };
        let engine = self.engine.clone();
        let by = caller
            .principal
            .as_deref()
            .map(|p| self.access.store().principal_arn(p));
        let base = match &request.base {
            BaseSource::Sql(sql) => DatasetBase::Sql(sql.clone()),
            BaseSource::File(uri) if uri.starts_with('/') => {
                DatasetBase::File(format!("file://{uri}"))
            }
            BaseSource::File(uri) => DatasetBase::File(uri.clone()),
        };
        let names: Vec<String> = request.groups.iter().map(|g| g.name.clone()).collect();
        let mut properties = std::collections::BTreeMap::new();
        if let Ok(serde_json::Value::Object(options)) = serde_json::to_value(&request.options) {
            for (key, value) in options {
                if !value.is_null() {
                    properties.insert(key, value.to_string().trim_matches('"').to_string());
                }
            }
        }
        properties.insert("row_count".into(), manifest.row_count.to_string());
        properties.insert("output_uri".into(), manifest.output_uri.clone());
        let manifest_uri = format!(
            "{}/manifest.json",
            manifest.output_uri.trim_end_matches('/')
        );
        let recorded = tokio::task::spawn_blocking(move || {
            let groups: Vec<_> = names
                .iter()
                .filter_map(|n| engine.store().describe_feature_group(n).ok())
                .collect();
            lineage.record_dataset(
                &DatasetBuild {
                    manifest_uri,
                    base,
                    groups: groups.iter().map(|g| g.as_ref()).collect(),
                    properties,
                },
                by.as_deref(),
            )
        })
        .await;
        match recorded {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot record the dataset's lineage"),
            Err(e) => tracing::error!(error = %e, "the dataset lineage task failed"),
        }
    }

    fn authorize_sql(&self, caller: &Caller, sql: &str) -> Result<()> {
        authorize_sql(&self.access, &self.engine, caller, sql)
    }
}

/// `quiver:Query` on every group `sql` reads ([`Access::authorize_query`]). Used by `Query`,
/// `CreateDataset`, Flight SQL, recipes and AutoML's sources.
pub fn authorize_sql(
    access: &Access,
    engine: &QueryEngine,
    caller: &Caller,
    sql: &str,
) -> Result<()> {
    let store = engine.store();
    access.authorize_query(caller, engine.referenced_groups(sql), |g| {
        store.feature_names(g)
    })
}

fn caller<T>(request: &Request<T>) -> Caller {
    crate::service::caller(request).clone()
}

static QUERY_METRICS: LazyLock<MethodMetrics> = LazyLock::new(|| MethodMetrics::new("Query"));
static DATASET_METRICS: LazyLock<MethodMetrics> =
    LazyLock::new(|| MethodMetrics::new("CreateDataset"));

type ResponseStream = Pin<Box<dyn Stream<Item = Result<pb::QueryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl QueryApi for QueryService {
    type QueryStream = ResponseStream;

    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<Self::QueryStream>, Status> {
        let started = Instant::now();
        let result = match self.authorize_sql(&caller(&request), &request.get_ref().sql) {
            Ok(()) => self.start(request.into_inner()).await,
            Err(e) => Err(e),
        };
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(e) => e.to_status().code(),
        };
        // Time to the first answer: planning, and the error if there is one.
        QUERY_METRICS.record(code, started.elapsed());
        result.map(Response::new).map_err(status)
    }

    async fn create_dataset(
        &self,
        request: Request<pb::CreateDatasetRequest>,
    ) -> Result<Response<pb::CreateDatasetResponse>, Status> {
        let started = Instant::now();
        let result: Result<pb::CreateDatasetResponse> = async {
            // Authorized before the request is validated: an unauthorized caller learns
            // nothing from the answer.
            let caller = caller(&request);
            let store = self.engine.store();
            let groups = &request.get_ref().feature_groups;
            for group in groups {
                self.access.authorize_group(
                    &caller,
                    "quiver:CreateDataset",
                    Some(&group.feature_group_name),
                    Features::Named(&group.feature_names),
                    |g| store.feature_names(g),
                )?;
            }
            if groups.is_empty() {
                self.access.authorize_group(
                    &caller,
                    "quiver:CreateDataset",
                    None,
                    Features::Unnamed,
                    |_| None,
                )?;
            }
            let request = dataset_request(request.into_inner())?;
            if let BaseSource::Sql(sql) = &request.base {
                self.authorize_sql(&caller, sql)?;
            }
            let manifest = self.engine.create_dataset(request.clone()).await?;
            self.record_dataset(&caller, &request, &manifest).await;
            let manifest_json = serde_json::to_string_pretty(&manifest)
                .map_err(|e| Error::internal(format!("encoding the manifest: {e}")))?;
            Ok(pb::CreateDatasetResponse {
                output_uri: manifest.output_uri,
                files: manifest.files,
                row_count: manifest.row_count,
                manifest_json,
            })
        }
        .await;
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(e) => e.to_status().code(),
        };
        DATASET_METRICS.record(code, started.elapsed());
        result.map(Response::new).map_err(status)
    }
}

/// The request in domain terms; every field's fault is named.
fn dataset_request(request: pb::CreateDatasetRequest) -> Result<DatasetRequest> {
    let base = request
        .base
        .ok_or_else(|| Error::validation("Base is required: a SQL statement or a file"))?;
    let source = match base.source {
        Some(pb::dataset_base::Source::Sql(sql)) if !sql.trim().is_empty() => BaseSource::Sql(sql),
        Some(pb::dataset_base::Source::FileUri(uri)) if !uri.trim().is_empty() => {
            BaseSource::File(uri)
        }
        _ => return Err(Error::validation("Base needs Sql or FileUri")),
    };
    let groups = request
        .feature_groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let pick = |own: String, default: &str, field: &str| {
                let column = if own.is_empty() {
                    default.to_string()
                } else {
                    own
                };
                if column.is_empty() {
                    Err(Error::validation(format!(
                        "FeatureGroups[{i}]: {field} is required (or Base's default)"
                    )))
                } else {
                    Ok(column)
                }
            };
            Ok(JoinedGroup {
                name: g.feature_group_name,
                features: g.feature_names,
                base_identifier_column: pick(
                    g.base_record_identifier_column,
                    &base.record_identifier_column,
                    "BaseRecordIdentifierColumn",
                )?,
                base_event_time_column: pick(
                    g.base_event_time_column,
                    &base.event_time_column,
                    "BaseEventTimeColumn",
                )?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let o = request.options.unwrap_or_default();
    let time = |field: &str, text: &str| -> Result<Option<i64>> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        time::parse_any(text.trim())
            .map(Some)
            .map_err(|rule| Error::validation(format!("Options.{field} {}: {rule}", quote(text))))
    };
    let options = DatasetOptions {
        point_in_time: o.point_in_time_accurate_join,
        include_duplicated_records: o.include_duplicated_records,
        include_deleted_records: o.include_deleted_records,
        most_recent: (o.most_recent_records > 0).then_some(o.most_recent_records),
        most_recent_per_identifier: (o.most_recent_records_per_identifier > 0)
            .then_some(o.most_recent_records_per_identifier),
        inner_join: o.inner_join,
        event_time_start_ms: time("EventTimeStart", &o.event_time_start)?,
        event_time_end_ms: time("EventTimeEnd", &o.event_time_end)?,
        as_of_ms: time("AsOf", &o.as_of)?,
        max_age_ms: match o.max_feature_age_seconds {
            0 => None,
            s => Some(
                i64::try_from(s.saturating_mul(1000))
                    .map_err(|_| Error::validation("Options.MaxFeatureAgeSeconds is too large"))?,
            ),
        },
    };
    if let (Some(start), Some(end)) = (options.event_time_start_ms, options.event_time_end_ms)
        && start > end
    {
        return Err(Error::validation(
            "Options.EventTimeStart is after Options.EventTimeEnd",
        ));
    }
    if request.output_uri.trim().is_empty() {
        return Err(Error::validation("OutputUri is required"));
    }
    Ok(DatasetRequest {
        base: source,
        groups,
        options,
        output_uri: request.output_uri,
    })
}

impl QueryService {
    async fn start(&self, request: pb::QueryRequest) -> Result<ResponseStream> {
        if request.sql.trim().is_empty() {
            return Err(Error::validation("sql must hold a SQL statement"));
        }
        let mut encoder: Option<IpcEncoder> = None;
        let (schema, chunks) = self
            .engine
            .execute(&request.sql, move |batch| {
                let encoder = match &mut encoder {
                    Some(encoder) => encoder,
                    None => encoder.insert(IpcEncoder::new(&batch.schema())?),
                };
                encoder.batch(&batch)
            })
            .await?;
        // The stream starts with the schema (a result may have no batches) and ends with the
        // end-of-stream marker; the batches' messages come between.
        let mut head = IpcEncoder::new(&schema)?;
        let first = head.take();
        let tail = IpcEncoder::end();
        let body = ReceiverStream::new(chunks);
        let stream = tokio_stream::once(Ok(first))
            .chain(body)
            .chain(tokio_stream::once(Ok(tail)))
            .map(|chunk| {
                chunk
                    .map(|arrow_ipc| pb::QueryResponse { arrow_ipc })
                    .map_err(status)
            });
        Ok(Box::pin(stream))
    }
}

/// Encodes batches as the messages of one Arrow IPC stream, handing out the bytes as they come.
struct IpcEncoder {
    writer: StreamWriter<Vec<u8>>,
    /// The schema message, written when the writer was made; left out of batch chunks.
    started: bool,
}

impl IpcEncoder {
    fn new(schema: &Schema) -> Result<Self> {
        let writer = StreamWriter::try_new(Vec::new(), schema)
            .map_err(|e| Error::internal(format!("encoding the result schema: {e}")))?;
        Ok(Self {
            writer,
            started: false,
        })
    }

    /// What was written so far, taken.
    fn take(&mut self) -> Vec<u8> {
        self.started = true;
        std::mem::take(self.writer.get_mut())
    }

    /// One batch's message (the schema message written at creation is dropped: the caller's
    /// stream already began with it).
    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        if !self.started {
            self.take();
        }
        self.writer
            .write(batch)
            .map_err(|e| Error::internal(format!("encoding a result batch: {e}")))?;
        Ok(self.take())
    }

    /// The end-of-stream marker: a continuation token and a zero length.
    fn end() -> Vec<u8> {
        vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]
    }
}

//! The sorted base, spooled to an Arrow IPC file of the spill directory, with its identifiers
//! collected on the way.

use super::*;

/// The sorted base, spooled to a file.
#[derive(Clone)]
pub(super) struct Spooled {
    pub(super) file: Arc<dyn SpillFile>,
    pub(super) rows: usize,
}

impl Spooled {
    /// The spooled base, read back.
    pub(super) fn read(&self) -> Result<StreamReader<std::io::BufReader<std::fs::File>>> {
        let path = self.file.path().ok_or_else(|| {
            DataFusionError::Internal("dataset build: the spill directory is not local".into())
        })?;
        let file = std::fs::File::open(path)?;
        Ok(StreamReader::try_new(std::io::BufReader::new(file), None)?)
    }

    /// Row numbers splitting the base into `parts` ranges of about equal size, each starting
    /// with a new identifier (column `ids`): `parts + 1` of them, from 0 to `rows`.
    pub(super) fn boundaries(&self, ids: usize, parts: usize) -> Result<Vec<usize>> {
        let mut bounds = vec![0];
        let target = |j: usize| self.rows * j / parts;
        let mut previous: Option<Option<Key>> = None; // the key of row r - 1, near a target
        let mut r = 0;
        'read: for batch in self.read()? {
            let batch = batch?;
            if bounds.len() == parts {
                break;
            }
            let next = target(bounds.len());
            if r + batch.num_rows() < next {
                r += batch.num_rows();
                continue; // ends before the row preceding the next target
            }
            let column = Ids::new(batch.column(ids))?;
            for i in 0..batch.num_rows() {
                if bounds.len() == parts {
                    break 'read;
                }
                let next = target(bounds.len());
                if r + 1 >= next {
                    let key = (!column.is_null(i)).then(|| column.key(i));
                    if r >= next && r > 0 && previous.as_ref() != Some(&key) {
                        bounds.push(r);
                    }
                    previous = Some(key);
                }
                r += 1;
            }
        }
        bounds.resize(parts, self.rows);
        bounds.push(self.rows);
        Ok(bounds)
    }
}

/// Writes `stream` to a temporary Arrow IPC file of the query spill directory, and collects
/// the identifiers of its column `ids` (up to `key_limit` bytes of them).
pub(super) async fn spool(
    mut stream: SendableRecordBatchStream,
    ctx: &TaskContext,
    ids: usize,
    key_limit: usize,
) -> Result<(Spooled, KeyFilter)> {
    let file = ctx
        .runtime_env()
        .disk_manager
        .create_tmp_file("dataset build: sorted base")?;
    let mut writer = StreamWriter::try_new(
        std::io::BufWriter::new(file.open_writer()?),
        &stream.schema(),
    )?;
    let mut keys = KeyCollector::new(key_limit);
    let mut rows = 0;
    while let Some(batch) = stream.next().await.transpose()? {
        keys.add(&Ids::new(batch.column(ids))?);
        rows += batch.num_rows();
        writer.write(&batch)?;
    }
    writer.finish()?;
    let mut inner = writer
        .into_inner()?
        .into_inner()
        .map_err(|e| DataFusionError::IoError(e.into_error()))?;
    inner.finish()?;
    Ok((Spooled { file, rows }, keys.finish()))
}

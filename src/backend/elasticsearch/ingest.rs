//! `detectd ingest`: raw CloudTrail files → ECS documents (`crate::ecs`, as the aws integration
//! pipeline stores them) → Elasticsearch `_bulk` `create`, with an index template holding the
//! integration's main mappings installed first when missing.

use std::io::Read;
use std::path::{Path, PathBuf};

use elasticsearch::http::Method;
use serde_json::Value;

use super::requests;
use super::ElasticsearchBackend;
use crate::backend::Error;
use crate::ecs::NormalizeOptions;

/// Documents per `_bulk` request.
pub const INGEST_BATCH: usize = 1000;

/// Totals of one ingest run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IngestTotals {
    pub files: usize,
    pub records: usize,
    pub indexed: usize,
    /// Records that are not CloudTrail or could not be normalised.
    pub skipped: usize,
    /// Documents Elasticsearch refused (after retries).
    pub failed: usize,
}

/// Raw CloudTrail records of one file: an S3 delivery object `{"Records": [...]}` (optionally
/// gzip-compressed), a JSON array, or one record per line. Each record as its JSON text.
pub fn read_records(path: &Path) -> Result<Vec<String>, Error> {
    let io = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        source: e,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(bytes.as_slice())
            .read_to_string(&mut s)
            .map_err(io)?;
        s
    } else {
        String::from_utf8(bytes)
            .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?
    };
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        let records = match v {
            Value::Object(mut m) => match m.remove("Records") {
                Some(Value::Array(a)) => a,
                _ => vec![Value::Object(m)],
            },
            Value::Array(a) => a,
            _ => Vec::new(),
        };
        return Ok(records.iter().map(Value::to_string).collect());
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// Files given on the command line, folders walked (sorted, so runs are reproducible).
pub fn collect_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = walkdir::WalkDir::new(p)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file())
                .map(|e| e.into_path())
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    out
}

/// Installs the CloudTrail index template for `index` unless one of that name exists.
pub async fn ensure_template(b: &ElasticsearchBackend, index: &str) -> Result<(), Error> {
    let (name, body) = requests::cloudtrail_template(index);
    let path = format!("/_index_template/{}", requests::encode_path_segment(&name));
    let (status, _) = b.send_json(Method::Get, &path, None).await?;
    if status == 200 {
        return Ok(());
    }
    let (status, resp) = b.send_json(Method::Put, &path, Some(&body)).await?;
    if status >= 300 {
        return Err(Error::Request {
            operation: format!("install index template {name}"),
            reason: format!("HTTP {status}: {}", super::error_reason(&resp)),
        });
    }
    tracing::info!(template = %name, "index template installed");
    Ok(())
}

/// Bulk-creates `docs` in `index`, retrying items rejected with 429 (bounded); returns
/// (indexed, failed).
pub async fn bulk_create(
    b: &ElasticsearchBackend,
    index: &str,
    docs: &[Value],
) -> Result<(usize, usize), Error> {
    let path = format!("/{}/_bulk", requests::encode_path_segment(index));
    let mut pending: Vec<&Value> = docs.iter().collect();
    let (mut indexed, mut failed) = (0, 0);
    let retry = b.retry;
    let mut attempt = 0;
    while !pending.is_empty() {
        let (status, resp) = b
            .send_ndjson(&path, requests::bulk_create_auto_id_body(&pending))
            .await?;
        if status >= 300 {
            return Err(Error::Request {
                operation: format!("bulk ingest into {index}"),
                reason: format!("HTTP {status}: {}", super::error_reason(&resp)),
            });
        }
        let items = resp
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if items.len() != pending.len() {
            return Err(Error::Request {
                operation: format!("bulk ingest into {index}"),
                reason: format!("{} items answered for {} sent", items.len(), pending.len()),
            });
        }
        let mut again = Vec::new();
        for (item, doc) in items.iter().zip(pending) {
            let r = item.get("create").unwrap_or(item);
            let st = r.get("status").and_then(Value::as_u64).unwrap_or(500);
            match st {
                200..=299 => indexed += 1,
                429 | 502..=504 if attempt < retry.retries => again.push(doc),
                _ => {
                    failed += 1;
                    let reason = r
                        .get("error")
                        .map(super::responses::describe_error)
                        .unwrap_or_default();
                    // the reason of a malformed line can quote raw request bytes: keep it short
                    tracing::warn!(index, status = st, reason = %reason.chars().take(300).collect::<String>(), "document refused");
                }
            }
        }
        if !again.is_empty() {
            tokio::time::sleep(retry.base_delay * 2u32.saturating_pow(attempt)).await;
        }
        pending = again;
        attempt += 1;
    }
    Ok((indexed, failed))
}

/// Normalises and loads every file into `index`.
pub async fn ingest(
    b: &ElasticsearchBackend,
    files: &[PathBuf],
    index: &str,
) -> Result<IngestTotals, Error> {
    ensure_template(b, index).await?;
    let mut totals = IngestTotals::default();
    let opts = NormalizeOptions::default();
    let files = collect_files(files);
    // drawn only when stderr is a terminal
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    for file in files {
        let records = read_records(&file)?;
        totals.files += 1;
        totals.records += records.len();
        let mut docs = Vec::with_capacity(records.len());
        for raw in &records {
            match crate::ecs::normalize_str(raw, &opts) {
                Ok(d) => docs.push(d.into_value()),
                Err(e) => {
                    totals.skipped += 1;
                    tracing::debug!(file = %file.display(), error = %e, "record skipped");
                }
            }
        }
        let (mut ok, mut bad) = (0, 0);
        for chunk in docs.chunks(INGEST_BATCH) {
            let (i, f) = bulk_create(b, index, chunk).await?;
            ok += i;
            bad += f;
        }
        totals.indexed += ok;
        totals.failed += bad;
        tracing::info!(file = %file.display(), records = records.len(), indexed = ok, failed = bad, "file ingested");
        bar.inc(1);
        bar.set_message(format!("{} documents indexed", totals.indexed));
    }
    bar.finish_and_clear();
    Ok(totals)
}

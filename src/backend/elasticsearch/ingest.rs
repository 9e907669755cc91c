//! `detectd ingest`: raw CloudTrail files → ECS documents (`crate::ecs`, as the aws integration
//! pipeline stores them) → Elasticsearch `_bulk` `create`, with an index template holding the
//! integration's main mappings installed first when missing.

use std::path::PathBuf;

use elasticsearch::http::Method;
use serde_json::Value;

use super::requests;
use super::ElasticsearchBackend;
use crate::backend::Error;
use crate::ecs::reader::expand_paths;
use crate::ecs::{read_file, NormalizeOptions};

/// Documents per `_bulk` request.
pub const INGEST_BATCH: usize = 1000;

/// Totals of one ingest run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IngestTotals {
    pub files: usize,
    /// Documents the reader produced (normalised records and passed-through ECS documents).
    pub documents: usize,
    pub indexed: usize,
    /// Documents already in the index (same `_id`, from an earlier ingest of the same data).
    pub duplicates: usize,
    /// Records (or whole files) the reader skipped: broken JSON, not CloudTrail, unreadable or
    /// truncated; each is logged with file, record number and reason.
    pub skipped: usize,
    /// Documents Elasticsearch refused (after retries).
    pub failed: usize,
}

/// Documents of one file handed from the reading thread to the sender; `done` on a file's
/// last chunk (documents read, records skipped).
struct Chunk {
    file: PathBuf,
    /// (`_id`, compact JSON) pairs.
    docs: Vec<(String, String)>,
    done: Option<(usize, usize)>,
}

/// Reads `files` through `crate::ecs::reader` and sends their documents in chunks of at most
/// [`INGEST_BATCH`]; stops when the receiver is gone. Returns the number of skipped records.
fn read_into(
    files: &[PathBuf],
    opts: &NormalizeOptions,
    tx: &tokio::sync::mpsc::Sender<Chunk>,
) -> usize {
    let mut skipped = 0usize;
    for file in files {
        if tx.is_closed() {
            break;
        }
        let mut docs = Vec::with_capacity(INGEST_BATCH);
        let (mut read, mut file_skipped) = (0usize, 0usize);
        read_file(
            file,
            opts,
            &mut |d| {
                if tx.is_closed() {
                    return; // the sender stopped (an error): skip the rest of the file
                }
                read += 1;
                let json = d.doc.to_json();
                docs.push((crate::backend::document_id(&d.doc, &json), json));
                if docs.len() == INGEST_BATCH {
                    let docs = std::mem::replace(&mut docs, Vec::with_capacity(INGEST_BATCH));
                    // Err = a closed channel, handled above on the next document.
                    let _ = tx.blocking_send(Chunk {
                        file: file.clone(),
                        docs,
                        done: None,
                    });
                }
            },
            &mut |e| {
                file_skipped += 1;
                tracing::warn!(file = %e.file.display(), record = ?e.record, reason = %e.reason, "record skipped");
            },
        );
        skipped += file_skipped;
        let _ = tx.blocking_send(Chunk {
            file: file.clone(),
            docs,
            done: Some((read, file_skipped)),
        });
    }
    skipped
}

/// Installs the CloudTrail index template for `index` unless one of that name exists, with the
/// field types the cluster has: on OpenSearch `flat_object` for `flattened` and `keyword` for
/// `constant_keyword` (the documents carry the values), and, on a cluster
/// that answers `No handler for type [X]`, the nearest type it has (`keyword` for
/// `constant_keyword`, `object` for `flattened`), said in a warning.
pub async fn ensure_template(b: &ElasticsearchBackend, index: &str) -> Result<(), Error> {
    let (name, _) = requests::cloudtrail_template(index);
    let path = format!("/_index_template/{}", requests::encode_path_segment(&name));
    let (status, _) = b.send_json(Method::Get, &path, None).await?;
    if status == 200 {
        return Ok(());
    }
    let mut types = requests::MappingTypes::default();
    if let Ok(info) = b.cluster_info().await {
        if info.engine == super::Engine::OpenSearch {
            // OpenSearch's constant_keyword needs its `value` in the mapping (one template
            // serves every namespace of the data stream), and exists only from 2.14.
            types.flattened = "flat_object";
            types.constant_keyword = "keyword";
        }
    }
    loop {
        let (_, body) = requests::cloudtrail_template_with(index, types);
        let (status, resp) = b.send_json(Method::Put, &path, Some(&body)).await?;
        if status < 300 {
            tracing::info!(template = %name, flattened = types.flattened, constant_keyword = types.constant_keyword, "index template installed");
            return Ok(());
        }
        let reason = super::transport::error_reason(&resp);
        // 7.x: `No handler for type [X]`; 8.x/9.x: `The mapper type [X] ... does not exist`
        let missing = |t: &str| {
            reason.contains(&format!("No handler for type [{t}]"))
                || (reason.contains(&format!("mapper type [{t}]"))
                    && reason.contains("does not exist"))
        };
        if missing(types.constant_keyword) && types.constant_keyword != "keyword" {
            tracing::warn!(template = %name, "the cluster has no constant_keyword field type: mapped as keyword");
            types.constant_keyword = "keyword";
        } else if missing(types.flattened) && types.flattened != "object" {
            tracing::warn!(template = %name, missing = types.flattened, "the cluster has no flattened field type: mapped as object (leaves are keywords)");
            types.flattened = "object";
        } else {
            return Err(Error::Request {
                operation: format!("install index template {name}"),
                reason: format!("HTTP {status}: {reason}"),
            });
        }
    }
}

/// What one `bulk_create` did with its documents.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BulkOutcome {
    pub indexed: usize,
    /// Already in the index (409 on `create` with the same `_id`): an earlier ingest.
    pub duplicates: usize,
    /// Refused (after retries).
    pub failed: usize,
}

/// Bulk-creates `docs` ((`_id`, compact JSON) pairs) in `index`, retrying items rejected with
/// 429/502–504 (bounded).
pub async fn bulk_create(
    b: &ElasticsearchBackend,
    index: &str,
    docs: &[(String, String)],
) -> Result<BulkOutcome, Error> {
    let path = format!("/{}/_bulk", requests::encode_path_segment(index));
    let mut pending: Vec<&(String, String)> = docs.iter().collect();
    let mut out = BulkOutcome::default();
    let retry = b.transport.retry;
    let mut attempt = 0;
    while !pending.is_empty() {
        let (status, resp) = b
            .send_ndjson(&path, requests::bulk_ingest_body(&pending))
            .await?;
        if status >= 300 {
            return Err(Error::Request {
                operation: format!("bulk ingest into {index}"),
                reason: format!("HTTP {status}: {}", super::transport::error_reason(&resp)),
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
                200..=299 => out.indexed += 1,
                409 => out.duplicates += 1,
                429 | 502..=504 if attempt < retry.retries => again.push(doc),
                _ => {
                    out.failed += 1;
                    let reason = r
                        .get("error")
                        .map(super::responses::describe_error)
                        .unwrap_or_default();
                    // the reason of a malformed line can quote raw request bytes: keep it short
                    tracing::warn!(index, id = %doc.0, status = st, reason = %reason.chars().take(300).collect::<String>(), "document refused");
                }
            }
        }
        if !again.is_empty() {
            tokio::time::sleep(retry.base_delay * 2u32.saturating_pow(attempt)).await;
        }
        pending = again;
        attempt += 1;
    }
    Ok(out)
}

/// A reading thread that did not finish (it panicked or was cancelled).
fn thread_failed(what: &str, e: tokio::task::JoinError) -> Error {
    Error::Io {
        path: what.to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Normalises and loads every file (folders walked) into `index`, streaming: a reading thread
/// hands over chunks of [`INGEST_BATCH`] documents through a small bounded channel, so memory
/// stays bounded by a few batches whatever the file sizes. Bad records are skipped and counted;
/// an Elasticsearch error that retries do not cure stops the run.
pub async fn ingest(
    b: &ElasticsearchBackend,
    paths: &[PathBuf],
    index: &str,
    opts: NormalizeOptions,
) -> Result<IngestTotals, Error> {
    ensure_template(b, index).await?;
    let paths = paths.to_vec();
    let (files, unlisted) = tokio::task::spawn_blocking(move || {
        let mut unlisted = 0usize;
        let files = expand_paths(&paths, &mut |e| {
            unlisted += 1;
            tracing::warn!(path = %e.file.display(), reason = %e.reason, "path skipped");
        });
        (files, unlisted)
    })
    .await
    .map_err(|e| thread_failed("listing files", e))?;
    let mut totals = IngestTotals {
        files: files.len(),
        skipped: unlisted,
        ..IngestTotals::default()
    };
    // drawn only when stderr is a terminal
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(2);
    let reader = tokio::task::spawn_blocking(move || read_into(&files, &opts, &tx));
    let (mut file_ok, mut file_bad) = (0usize, 0usize);
    while let Some(chunk) = rx.recv().await {
        if !chunk.docs.is_empty() {
            // On error `rx` is dropped and the reading thread stops at its next chunk.
            let o = bulk_create(b, index, &chunk.docs).await?;
            totals.documents += chunk.docs.len();
            totals.indexed += o.indexed;
            totals.duplicates += o.duplicates;
            totals.failed += o.failed;
            file_ok += o.indexed;
            file_bad += o.failed;
        }
        if let Some((read, skipped)) = chunk.done {
            tracing::info!(file = %chunk.file.display(), documents = read, skipped, indexed = file_ok, failed = file_bad, "file ingested");
            (file_ok, file_bad) = (0, 0);
            bar.inc(1);
            bar.set_message(format!("{} documents indexed", totals.indexed));
        }
    }
    totals.skipped += reader
        .await
        .map_err(|e| thread_failed("reading files", e))?;
    bar.finish_and_clear();
    Ok(totals)
}

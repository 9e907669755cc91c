//! Data that arrives during a live run: the configured files and folders are looked at again
//! (`embedded.watch_interval`), and what is new is read into the store.
//!
//! - A new file is read whole; so is a changed gzip, `{"Records": [...]}` or array file (S3
//!   delivery files are written once; one rewritten in place is read again and only the
//!   records not stored yet are added: the store skips a document whose id and `@timestamp`
//!   it holds).
//! - A file of one JSON record per line that grew is read from where the last read stopped,
//!   up to its last complete line: a line being written is read at a later look, whole.
//! - A file modified less than `settle` ago is left for a later look (it may be being written).
//! - Documents read after the start get `event.ingested` (the time they were read), as the aws
//!   integration's pipeline sets it at ingest: rules that search by ingest time
//!   (`timestamp_override = "event.ingested"`, most of Elastic's AWS rules) see events that
//!   CloudTrail delivered late in the next window, as on Elasticsearch.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};

use super::{EmbeddedBackend, StoreBuilder};
use crate::backend::Error;
use crate::ecs::reader::{expand_paths, read_file, read_stream, ReadError};
use crate::ecs::NormalizeOptions;

/// Documents handed to the store at once while reading (so a large new file becomes visible
/// in parts, and the time between `event.ingested` and visibility stays short).
const BATCH: usize = 20_000;

/// What was seen of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    len: u64,
    modified: Option<SystemTime>,
    /// For a file of one record per line: the end of the last complete line read.
    lines_end: Option<u64>,
}

/// What one look found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollSummary {
    /// Files read (new or changed).
    pub files: usize,
    /// Documents added to the store.
    pub documents: usize,
    /// Documents read that the store already held.
    pub known: usize,
    /// Records or files skipped with an error.
    pub errors: usize,
}

/// Watches the embedded backend's data files (see the module documentation).
#[derive(Debug)]
pub struct DataWatcher {
    paths: Vec<PathBuf>,
    opts: NormalizeOptions,
    settle: Duration,
    files: HashMap<PathBuf, Mark>,
}

impl DataWatcher {
    /// A watcher that takes every file `paths` names now as read: create it just before the
    /// files are loaded, so a file changed while they load is read again (and its documents
    /// already loaded are recognised).
    pub fn new(paths: &[PathBuf], opts: NormalizeOptions, settle: Duration) -> DataWatcher {
        let mut files = HashMap::new();
        for f in expand_paths(paths, &mut |_| {}) {
            if let Some(m) = mark(&f, None) {
                files.insert(f, m);
            }
        }
        DataWatcher {
            paths: paths.to_vec(),
            opts,
            settle,
            files,
        }
    }

    /// Files known so far.
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// Reads what is new into `backend`'s store; `now` becomes the documents'
    /// `event.ingested`. Skipped records and unreadable files go to `on_error`, with file and
    /// record; they never stop the look.
    pub fn poll(
        &mut self,
        backend: &EmbeddedBackend,
        now: DateTime<Utc>,
        on_error: &mut dyn FnMut(ReadError),
    ) -> Result<PollSummary, Error> {
        let mut summary = PollSummary::default();
        let mut counting = |e: ReadError, summary: &mut PollSummary| {
            summary.errors += 1;
            on_error(e);
        };
        let mut listing_errors = Vec::new();
        let files = expand_paths(&self.paths, &mut |e| listing_errors.push(e));
        for e in listing_errors {
            counting(e, &mut summary);
        }
        let ingested = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let wall = SystemTime::now();
        let mut batch = StoreBuilder::default();
        for f in files {
            let before = self.files.get(&f).copied();
            let Some(seen) = mark(&f, before) else {
                continue;
            };
            if before.is_some_and(|b| b.len == seen.len && b.modified == seen.modified) {
                continue;
            }
            let settling = seen
                .modified
                .and_then(|m| wall.duration_since(m).ok())
                .is_some_and(|age| age < self.settle);
            if settling {
                continue;
            }
            summary.files += 1;
            // Only what follows the lines already read, when the file grew by whole lines.
            let tail_from = match (before.and_then(|b| b.lines_end), seen.lines_end) {
                (Some(from), Some(_)) if seen.len >= before.map_or(0, |b| b.len) => Some(from),
                _ => None,
            };
            let mut on_doc = |mut d: crate::ecs::reader::Document| {
                batch.push_ingested(&mut d.doc, &ingested);
            };
            let mut on_err = |e: ReadError| counting(e, &mut summary);
            match (tail_from, seen.lines_end) {
                (Some(from), Some(end)) => {
                    read_range(&f, from, end, &self.opts, &mut on_doc, &mut on_err)
                }
                (None, Some(end)) => read_range(&f, 0, end, &self.opts, &mut on_doc, &mut on_err),
                _ => read_file(&f, &self.opts, &mut on_doc, &mut on_err),
            }
            self.files.insert(f, seen);
            if batch.len() >= BATCH {
                flush(backend, &mut batch, &mut summary)?;
            }
        }
        flush(backend, &mut batch, &mut summary)?;
        Ok(summary)
    }
}

/// Hands the batch to the store.
fn flush(
    backend: &EmbeddedBackend,
    batch: &mut StoreBuilder,
    summary: &mut PollSummary,
) -> Result<(), Error> {
    if batch.is_empty() {
        return Ok(());
    }
    let docs = std::mem::take(batch);
    let read = docs.len();
    let added = backend.append(docs)?;
    summary.documents += added;
    summary.known += read.saturating_sub(added);
    Ok(())
}

/// Length and modification time of `f`, and for a plain file of one JSON record per line the
/// end of its last complete line; `None` when it cannot be read (it is looked at again later).
fn mark(f: &Path, before: Option<Mark>) -> Option<Mark> {
    let meta = std::fs::metadata(f).ok()?;
    let (len, modified) = (meta.len(), meta.modified().ok());
    if before.is_some_and(|b| b.len == len && b.modified == modified) {
        return before;
    }
    let lines_end = line_based(f).then(|| last_line_end(f, len).ok()).flatten();
    Some(Mark {
        len,
        modified,
        lines_end,
    })
}

/// True for a plain (not gzipped) file whose first line is a whole JSON object: NDJSON, which
/// can be read from any line start. Delivery files, arrays and pretty-printed records are not.
fn line_based(f: &Path) -> bool {
    // Gzip is never read from a byte offset; by name, so the look at start-up (which marks
    // every file, mostly `.json.gz` deliveries) opens none of them.
    if f.extension().is_some_and(|e| e == "gz") {
        return false;
    }
    let Ok(file) = File::open(f) else {
        return false;
    };
    let mut first = Vec::new();
    let mut r = BufReader::new(file).take(1 << 20);
    if r.read_until(b'\n', &mut first).is_err() || !first.ends_with(b"\n") {
        return false;
    }
    let t = first.trim_ascii();
    t.starts_with(b"{")
        && t.ends_with(b"}")
        && serde_json::from_slice::<serde::de::IgnoredAny>(t).is_ok()
}

/// The offset just after the last `\n` in the first `len` bytes of `f` (0 when there is none).
fn last_line_end(f: &Path, len: u64) -> std::io::Result<u64> {
    let mut file = File::open(f)?;
    let mut end = len;
    let mut buf = vec![0u8; 1 << 16];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(p) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(start + p as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Reads the records of bytes `[from, to)` of a line-based file.
fn read_range(
    f: &Path,
    from: u64,
    to: u64,
    opts: &NormalizeOptions,
    on_doc: &mut dyn FnMut(crate::ecs::reader::Document),
    on_error: &mut dyn FnMut(ReadError),
) {
    if to <= from {
        return;
    }
    let opened = File::open(f).and_then(|mut file| {
        file.seek(SeekFrom::Start(from))?;
        Ok(file)
    });
    match opened {
        Ok(file) => {
            let reader = BufReader::with_capacity(1 << 16, file.take(to - from));
            read_stream(Box::new(reader), f, opts, on_doc, on_error);
        }
        Err(e) => on_error(ReadError {
            file: f.to_path_buf(),
            record: None,
            reason: format!("cannot read: {e}"),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::backend::embedded::{EmbeddedPaths, Store};
    use crate::fields::FieldCatalog;
    use std::io::Write;

    fn record(id: &str, t: &str) -> String {
        serde_json::json!({
            "eventVersion": "1.08", "eventTime": t, "eventSource": "ssm.amazonaws.com",
            "eventName": "SendCommand", "awsRegion": "us-east-1", "eventID": id,
            "sourceIPAddress": "10.0.0.1", "eventType": "AwsApiCall",
            "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": "111122223333"},
            "recipientAccountId": "111122223333"
        })
        .to_string()
    }

    fn setup(dir: &Path) -> (EmbeddedBackend, PathBuf) {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let b = EmbeddedBackend::new(
            Store::default(),
            FieldCatalog::builtin(),
            &EmbeddedPaths {
                alerts: dir.join("a.ndjson"),
                state: dir.join("s.json"),
                executions: dir.join("x.ndjson"),
            },
        )
        .unwrap();
        (b, data)
    }

    fn ids(b: &EmbeddedBackend) -> Vec<String> {
        let s = b.store();
        let mut v: Vec<String> = (0..s.len() as u32).map(|i| s.doc(i).id.clone()).collect();
        v.sort();
        v
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-02T04:00:00Z")
            .unwrap()
            .into()
    }

    #[test]
    fn new_files_grown_lines_and_rewritten_delivery_files_are_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let (b, data) = setup(dir.path());
        let lines = data.join("stream.ndjson");
        std::fs::write(
            &lines,
            format!("{}\n", record("l1", "2026-12-02T03:00:00Z")),
        )
        .unwrap();
        let mut w = DataWatcher::new(
            std::slice::from_ref(&data),
            NormalizeOptions::default(),
            Duration::ZERO,
        );
        assert_eq!(w.files(), 1);
        let mut errors = Vec::new();
        // nothing new since the watcher started (that file was loaded with the store)
        let s = w.poll(&b, now(), &mut |e| errors.push(e)).unwrap();
        assert_eq!(s, PollSummary::default());

        // a new delivery file
        let delivery = data.join("d1.json");
        std::fs::write(
            &delivery,
            format!(
                r#"{{"Records": [{}, {}]}}"#,
                record("d1", "2026-12-02T03:01:00Z"),
                record("d2", "2026-12-02T03:02:00Z")
            ),
        )
        .unwrap();
        // the stream grows by one line and half of the next (being written)
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&lines)
            .unwrap();
        let l3 = record("l3", "2026-12-02T03:04:00Z");
        write!(f, "{}\n{}", record("l2", "2026-12-02T03:03:00Z"), &l3[..40]).unwrap();
        f.flush().unwrap();
        let s = w.poll(&b, now(), &mut |e| errors.push(e)).unwrap();
        assert_eq!(
            (s.files, s.documents, s.known, s.errors),
            (2, 3, 0, 0),
            "{errors:?}"
        );
        assert_eq!(ids(&b), ["d1", "d2", "l2"]);
        // read documents carry the time they were read as event.ingested
        let doc = b.store().doc(0).source();
        assert_eq!(doc["event"]["ingested"], "2026-12-02T04:00:00.000Z");

        // the half line is completed; the delivery file is rewritten with one more record
        writeln!(f, "{}", &l3[40..]).unwrap();
        std::fs::write(
            &delivery,
            format!(
                r#"{{"Records": [{}, {}, {}]}}"#,
                record("d1", "2026-12-02T03:01:00Z"),
                record("d2", "2026-12-02T03:02:00Z"),
                record("d0", "2026-12-02T02:59:00Z")
            ),
        )
        .unwrap();
        let s = w.poll(&b, now(), &mut |e| errors.push(e)).unwrap();
        assert_eq!(
            (s.files, s.documents, s.known, s.errors),
            (2, 2, 2, 0),
            "{errors:?}"
        );
        assert_eq!(ids(&b), ["d0", "d1", "d2", "l2", "l3"]);
        // and in time order for the searches
        let s = b.store();
        let order: Vec<String> = s
            .range(
                &crate::backend::TimeField {
                    primary: "@timestamp".into(),
                    fallback_to_timestamp: false,
                },
                0,
                i64::MAX,
            )
            .map(|(_, i)| s.doc(i).id.clone())
            .collect();
        assert_eq!(order, ["d0", "d1", "d2", "l2", "l3"]);
        assert!(errors.is_empty());
    }

    #[test]
    fn a_file_still_being_written_waits_and_a_broken_record_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (b, data) = setup(dir.path());
        let mut w = DataWatcher::new(
            std::slice::from_ref(&data),
            NormalizeOptions::default(),
            Duration::from_secs(3600),
        );
        std::fs::write(
            data.join("fresh.json"),
            format!(
                r#"{{"Records": [{}]}}"#,
                record("f1", "2026-12-02T03:00:00Z")
            ),
        )
        .unwrap();
        let mut errors = Vec::new();
        let s = w.poll(&b, now(), &mut |e| errors.push(e)).unwrap();
        assert_eq!(s.files, 0, "modified just now: left for a later look");
        assert_eq!(b.store().len(), 0);
        w.settle = Duration::ZERO;
        std::fs::write(
            data.join("bad.ndjson"),
            format!("{}\n{{not json\n", record("b1", "2026-12-02T03:00:00Z")),
        )
        .unwrap();
        let s = w.poll(&b, now(), &mut |e| errors.push(e)).unwrap();
        assert_eq!((s.files, s.documents, s.errors), (2, 2, 1));
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].to_string().contains("bad.ndjson: record 2"),
            "{}",
            errors[0]
        );
    }
}

//! The embedded backend's local files: alerts (NDJSON, appended, deduplicated by id across
//! restarts), rule state (one JSON object, written atomically) and execution records (NDJSON).

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::backend::{threshold_signal, AlertDoc, Error, RuleState, ThresholdSignal, WriteOutcome};

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The alerts file: ids already written are known, so a second write is a duplicate.
#[derive(Debug)]
pub struct AlertsFile {
    path: PathBuf,
    ids: HashSet<String>,
    /// Threshold alerts' signal history entries, with their rule id.
    threshold: Vec<(String, ThresholdSignal)>,
    /// The file ends without a newline (a torn write): start the next write on a new line.
    needs_newline: bool,
}

impl AlertsFile {
    /// Opens (or prepares to create) the alerts file and reads the ids it holds. A torn last
    /// line (a write cut short by a crash: no newline, not an alert) is cut off the file with a
    /// warning; its alert is written again when its window is re-run (the state never advances
    /// past a window whose alerts were not synced). Any other line that is not an alert is
    /// skipped with a warning.
    pub fn open(path: &Path) -> Result<AlertsFile, Error> {
        let mut ids = HashSet::new();
        let mut threshold = Vec::new();
        repair_torn_tail(path)?;
        let needs_newline = ends_without_newline(path);
        match File::open(path) {
            Ok(f) => {
                for (n, line) in BufReader::new(f).lines().enumerate() {
                    let line = line.map_err(|e| io_err(path, e))?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let doc = serde_json::from_str::<Value>(&line).ok();
                    if let Some(entry) = doc.as_ref().and_then(history_entry) {
                        threshold.push(entry);
                    }
                    let id = doc.and_then(|v| {
                        v.get("kibana.alert.uuid")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    });
                    match id {
                        Some(id) => {
                            ids.insert(id);
                        }
                        None => tracing::warn!(
                            file = %path.display(),
                            line = n + 1,
                            "skipping a line of the alerts file that is not an alert"
                        ),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path, e)),
        }
        Ok(AlertsFile {
            path: path.to_path_buf(),
            ids,
            threshold,
            needs_newline,
        })
    }

    /// The threshold signal history of `rule_id`: its threshold alerts whose last event is at
    /// or after `since`.
    pub fn threshold_history(
        &self,
        rule_id: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Vec<ThresholdSignal> {
        self.threshold
            .iter()
            .filter(|(r, s)| r == rule_id && s.last >= since)
            .map(|(_, s)| s.clone())
            .collect()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of alerts in the file.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Appends the alerts whose ids are new, then flushes and syncs the file.
    pub fn write(&mut self, alerts: &[AlertDoc]) -> Result<WriteOutcome, Error> {
        let mut out = WriteOutcome::default();
        let mut buf = Vec::new();
        if self.needs_newline {
            buf.push(b'\n');
        }
        let mut batch = HashSet::new();
        let mut history = Vec::new();
        for a in alerts {
            if self.ids.contains(&a.id) || !batch.insert(a.id.as_str()) {
                out.duplicates.push(a.id.clone());
                continue;
            }
            match serde_json::to_writer(&mut buf, &a.doc) {
                Ok(()) => {
                    buf.push(b'\n');
                    out.created.push(a.id.clone());
                    if let Some(entry) = history_entry(&a.doc) {
                        history.push(entry);
                    }
                }
                Err(e) => out.failed.push((a.id.clone(), e.to_string())),
            }
        }
        if !out.created.is_empty() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
            }
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| io_err(&self.path, e))?;
            f.write_all(&buf).map_err(|e| io_err(&self.path, e))?;
            f.sync_data().map_err(|e| io_err(&self.path, e))?;
            self.needs_newline = false;
        }
        self.ids.extend(out.created.iter().cloned());
        self.threshold.extend(history);
        Ok(out)
    }
}

/// (rule id, signal) of a threshold alert.
fn history_entry(doc: &Value) -> Option<(String, ThresholdSignal)> {
    let rule_id = doc.get("kibana.alert.rule.rule_id")?.as_str()?.to_string();
    Some((rule_id, threshold_signal(doc)?))
}

/// Cuts a torn last line (no newline at the end and not a JSON document) off the file.
fn repair_torn_tail(path: &Path) -> Result<(), Error> {
    use std::io::{Read, Seek, SeekFrom};
    if !ends_without_newline(path) {
        return Ok(());
    }
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(path, e)),
    };
    let len = f.metadata().map_err(|e| io_err(path, e))?.len();
    // Read back from the end in chunks until the previous newline.
    let mut tail: Vec<u8> = Vec::new();
    let mut pos = len;
    let keep = loop {
        if pos == 0 {
            break 0;
        }
        let n = pos.min(64 * 1024);
        pos -= n;
        let mut chunk = vec![0u8; n as usize];
        f.seek(SeekFrom::Start(pos)).map_err(|e| io_err(path, e))?;
        f.read_exact(&mut chunk).map_err(|e| io_err(path, e))?;
        if let Some(i) = memchr::memrchr(b'\n', &chunk) {
            chunk.drain(..=i);
            chunk.extend_from_slice(&tail);
            tail = chunk;
            break pos + i as u64 + 1;
        }
        chunk.extend_from_slice(&tail);
        tail = chunk;
    };
    if serde_json::from_slice::<Value>(&tail).is_ok() {
        // A whole document without its newline: kept (the next write starts a new line).
        return Ok(());
    }
    f.set_len(keep).map_err(|e| io_err(path, e))?;
    f.sync_data().map_err(|e| io_err(path, e))?;
    tracing::warn!(
        file = %path.display(),
        offset = keep,
        bytes = len - keep,
        "cut a torn last line off the alerts file (a write interrupted by a crash)"
    );
    Ok(())
}

fn ends_without_newline(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let mut last = [0u8; 1];
    f.seek(SeekFrom::End(-1)).is_ok() && f.read_exact(&mut last).is_ok() && last[0] != b'\n'
}

/// Reads the state file (missing = empty).
pub fn read_state(path: &Path) -> Result<BTreeMap<String, RuleState>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Request {
            operation: format!("read state {}", path.display()),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(io_err(path, e)),
    }
}

/// Writes the state file atomically (temporary file, sync, rename).
pub fn write_state(path: &Path, state: &BTreeMap<String, RuleState>) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| Error::Request {
        operation: format!("write state {}", path.display()),
        reason: e.to_string(),
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| io_err(&tmp, e))?;
        f.sync_all().map_err(|e| io_err(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// Reads an NDJSON file of records (missing = none); lines that do not parse (a torn last
/// line) are skipped with a warning.
pub fn read_records(path: &Path) -> Result<Vec<Value>, Error> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path, e)),
    };
    let mut out = Vec::new();
    for (n, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| io_err(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(v) => out.push(v),
            Err(e) => {
                tracing::warn!(file = %path.display(), line = n + 1, error = %e, "skipping a bad record line")
            }
        }
    }
    Ok(out)
}

/// Appends one NDJSON line.
pub fn append_line(path: &Path, v: &Value) -> Result<(), Error> {
    let mut line = serde_json::to_vec(v).map_err(|e| Error::Request {
        operation: format!("append to {}", path.display()),
        reason: e.to_string(),
    })?;
    line.push(b'\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    f.write_all(&line).map_err(|e| io_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(id: &str) -> AlertDoc {
        AlertDoc {
            id: id.into(),
            doc: json!({"kibana.alert.uuid": id}),
        }
    }

    #[test]
    fn alerts_are_deduplicated_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alerts.ndjson");
        let mut f = AlertsFile::open(&p).unwrap();
        let out = f.write(&[alert("a"), alert("b"), alert("a")]).unwrap();
        assert_eq!(out.created, vec!["a", "b"]);
        assert_eq!(out.duplicates, vec!["a"]);
        let mut f = AlertsFile::open(&p).unwrap();
        assert_eq!(f.len(), 2);
        let out = f.write(&[alert("b"), alert("c")]).unwrap();
        assert_eq!(out.created, vec!["c"]);
        assert_eq!(out.duplicates, vec!["b"]);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn torn_last_line_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alerts.ndjson");
        std::fs::write(&p, "{\"kibana.alert.uuid\":\"a\"}\n{\"kibana.al").unwrap();
        let mut f = AlertsFile::open(&p).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"kibana.alert.uuid\":\"a\"}\n"
        );
        f.write(&[alert("b")]).unwrap();
        let f = AlertsFile::open(&p).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(std::fs::read_to_string(&p).unwrap().lines().count(), 2);
    }

    #[test]
    fn torn_only_line_empties_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alerts.ndjson");
        std::fs::write(&p, "{\"kibana.alert.uu").unwrap();
        let f = AlertsFile::open(&p).unwrap();
        assert!(f.is_empty());
        assert_eq!(std::fs::read(&p).unwrap(), b"");
    }

    #[test]
    fn whole_last_alert_without_newline_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alerts.ndjson");
        std::fs::write(&p, "{\"kibana.alert.uuid\":\"a\"}").unwrap();
        let mut f = AlertsFile::open(&p).unwrap();
        assert_eq!(f.len(), 1);
        f.write(&[alert("b")]).unwrap();
        assert_eq!(
            AlertsFile::open(&p).unwrap().len(),
            2,
            "the new alert starts on its own line"
        );
    }

    #[test]
    fn state_roundtrips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        assert!(read_state(&p).unwrap().is_empty());
        let mut m = BTreeMap::new();
        m.insert("r1".to_string(), RuleState::default());
        write_state(&p, &m).unwrap();
        assert_eq!(read_state(&p).unwrap(), m);
        assert!(!p.with_extension("tmp").exists());
    }
}

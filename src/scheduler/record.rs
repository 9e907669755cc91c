//! What an execution reports ([`ExecutionOutcome`], from the executor), the record the
//! scheduler writes for it ([`ExecutionRecordDoc`]), and the per-rule status report of
//! `detectd status` computed from state and records.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::plan::{next_due_after, ScheduledRule, Window, WindowKind};
use crate::backend::{ExecutionRecord, GapRange, RuleState};

/// Runs one rule over one window (the engine, wired by the coordinator).
#[async_trait]
pub trait Executor: Send + Sync {
    /// Searches `window` (inclusive), stores the alerts, and reports. `started_at` is the
    /// execution's start time (simulated during a replay). Must return
    /// [`ExecutionStatus::Failed`] when any alert could not be stored: the scheduler then
    /// keeps the window uncovered and queries it again next time.
    async fn execute(
        &self,
        rule_id: &str,
        window: Window,
        started_at: DateTime<Utc>,
    ) -> ExecutionOutcome;
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecutionStatus {
    #[default]
    #[serde(rename = "succeeded")]
    Succeeded,
    /// Alerts stored, with warnings (e.g. `max_signals` reached).
    #[serde(rename = "partial failure")]
    PartialFailure,
    /// The window is not covered (error, timeout, alerts not stored).
    #[serde(rename = "failed")]
    Failed,
}

impl ExecutionStatus {
    /// True when the window's alerts are stored, so the window counts as covered.
    pub fn covers_window(self) -> bool {
        self != ExecutionStatus::Failed
    }

    /// The text stored in `RuleState::status` and records.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Succeeded => "succeeded",
            ExecutionStatus::PartialFailure => "partial failure",
            ExecutionStatus::Failed => "failed",
        }
    }
}

/// What the executor reports for one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionOutcome {
    pub status: ExecutionStatus,
    /// Events matched.
    pub hits: u64,
    /// Alerts created.
    pub alerts: u64,
    /// Alerts that already existed (overlapping windows).
    pub duplicates: u64,
    /// `max_signals` truncated the execution.
    pub capped: bool,
    pub warnings: Vec<String>,
    /// Error or summary text.
    pub message: Option<String>,
    pub search_ms: u64,
    pub index_ms: u64,
    pub round_trips: u64,
    /// The rule can never run on this backend (e.g. the cluster refuses its query): after this
    /// record it is not run again until the rules are reloaded.
    pub retire: bool,
}

impl ExecutionOutcome {
    /// A failed outcome with `message`.
    pub fn failed(message: impl Into<String>) -> ExecutionOutcome {
        ExecutionOutcome {
            status: ExecutionStatus::Failed,
            message: Some(message.into()),
            ..ExecutionOutcome::default()
        }
    }
}

/// One execution record (`detectd-executions` / `executions.ndjson`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecordDoc {
    /// The execution's start time.
    #[serde(rename = "@timestamp")]
    pub started_at: DateTime<Utc>,
    /// The planned instant (differs from `started_at` by the scheduling lag).
    pub scheduled_at: DateTime<Utc>,
    pub rule_id: String,
    pub rule_name: String,
    pub kind: WindowKind,
    pub window: Window,
    pub status: ExecutionStatus,
    pub hits: u64,
    pub alerts: u64,
    pub duplicates: u64,
    pub capped: bool,
    /// Uncovered time given up on (older than `max_backfill`), found by this execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<GapRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_duration_s: Option<i64>,
    pub duration_ms: u64,
    pub search_ms: u64,
    pub index_ms: u64,
    pub round_trips: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ExecutionRecordDoc {
    /// The JSON document handed to the recorder.
    pub fn to_record(&self) -> ExecutionRecord {
        serde_json::to_value(self).unwrap_or_else(
            |e| serde_json::json!({ "rule_id": self.rule_id, "message": e.to_string() }),
        )
    }

    /// Reads a stored record back (`None` if it is not one of ours).
    pub fn from_record(record: &ExecutionRecord) -> Option<ExecutionRecordDoc> {
        serde_json::from_value(record.clone()).ok()
    }
}

/// A stable execution id for `kibana.alert.rule.execution.uuid`: the same rule, start and
/// window give the same id (the service and `detectd hunt` both use it, so their alerts agree).
pub fn execution_uuid(rule_id: &str, started_at: DateTime<Utc>, w: Window) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(format!("{rule_id}|{started_at}|{}|{}", w.from, w.to).as_bytes());
    let b = h.finalize();
    format!(
        "{}-{}-{}-{}-{}",
        hex::encode(&b[0..4]),
        hex::encode(&b[4..6]),
        hex::encode(&b[6..8]),
        hex::encode(&b[8..10]),
        hex::encode(&b[10..16])
    )
}

/// One line of `detectd status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleStatus {
    pub rule_id: String,
    pub name: String,
    pub enabled: bool,
    pub last_run: Option<DateTime<Utc>>,
    pub next_run: Option<DateTime<Utc>>,
    pub status: Option<String>,
    pub last_duration_ms: Option<u64>,
    pub alerts_last_day: u64,
    pub covered_until: Option<DateTime<Utc>>,
    pub open_gaps: Vec<GapRange>,
}

/// Per rule: last run, next run, status, last duration, alerts in the day before `now`, and
/// open gaps (from the state and the records, without repeats).
pub fn status_report(
    rules: &[ScheduledRule],
    states: &BTreeMap<String, RuleState>,
    records: &[ExecutionRecordDoc],
    now: DateTime<Utc>,
) -> Vec<RuleStatus> {
    let day_ago = now - Duration::days(1);
    let mut by_rule: BTreeMap<&str, Vec<&ExecutionRecordDoc>> = BTreeMap::new();
    for r in records {
        by_rule.entry(r.rule_id.as_str()).or_default().push(r);
    }
    rules
        .iter()
        .map(|rule| {
            let state = states.get(&rule.rule_id);
            let recs = by_rule.get(rule.rule_id.as_str());
            let last = recs.and_then(|v| v.iter().max_by_key(|r| r.started_at));
            let mut gaps: Vec<GapRange> = state.map(|s| s.gaps.clone()).unwrap_or_default();
            for r in recs.into_iter().flatten() {
                if let Some(g) = &r.gap {
                    if !gaps.contains(g) {
                        gaps.push(g.clone());
                    }
                }
            }
            gaps.sort_by_key(|g| g.gte);
            RuleStatus {
                rule_id: rule.rule_id.clone(),
                name: rule.name.clone(),
                enabled: rule.enabled,
                last_run: state
                    .and_then(|s| s.last_start)
                    .or(last.map(|r| r.started_at)),
                next_run: if rule.enabled {
                    next_due_after(rule, now)
                } else {
                    None
                },
                status: state
                    .and_then(|s| s.status.clone())
                    .or(last.map(|r| r.status.as_str().to_string())),
                last_duration_ms: last.map(|r| r.duration_ms),
                alerts_last_day: recs
                    .into_iter()
                    .flatten()
                    .filter(|r| r.started_at >= day_ago && r.started_at <= now)
                    .map(|r| r.alerts)
                    .sum(),
                covered_until: state.and_then(|s| s.covered_until),
                open_gaps: gaps,
            }
        })
        .collect()
}

fn fmt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".to_string())
}

/// The status report as an aligned text table.
pub fn format_status_text(rows: &[RuleStatus]) -> String {
    let header = [
        "RULE",
        "NAME",
        "STATUS",
        "LAST RUN",
        "NEXT RUN",
        "DURATION",
        "ALERTS 24H",
        "GAPS",
    ];
    let mut table: Vec<[String; 8]> = vec![header.map(str::to_string)];
    for r in rows {
        let name: String = r.name.chars().take(48).collect();
        table.push([
            r.rule_id.clone(),
            name,
            if r.enabled {
                r.status.clone().unwrap_or_else(|| "never run".to_string())
            } else {
                "disabled".to_string()
            },
            fmt_time(r.last_run),
            fmt_time(r.next_run),
            r.last_duration_ms
                .map(|d| format!("{d}ms"))
                .unwrap_or_else(|| "-".to_string()),
            r.alerts_last_day.to_string(),
            r.open_gaps.len().to_string(),
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &table {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let _ = write!(line, "{cell:<w$}");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for r in rows {
        for g in &r.open_gaps {
            let _ = writeln!(
                out,
                "gap {}: {} .. {}",
                r.rule_id,
                fmt_time(Some(g.gte)),
                fmt_time(Some(g.lte))
            );
        }
    }
    out
}

/// The status report as pretty JSON (an array of rows).
pub fn format_status_json(rows: &[RuleStatus]) -> String {
    serde_json::to_string_pretty(rows).unwrap_or_else(|_| "[]".to_string())
}

//! Metrics in Prometheus text format: executions by rule and status, duration histograms,
//! alerts created, duplicates, capped executions, gaps, backend errors, schedule lag.
//!
//! A small registry of our own (counters and histograms keyed by label values) rendered in
//! the text exposition format; no global state: the scheduler owns one `Metrics` and the HTTP
//! endpoint renders it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::engine::{ExecutionResult, Status};

/// Histogram buckets for execution durations and schedule lag, in seconds.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }
}

#[derive(Debug, Default)]
struct Inner {
    executions: BTreeMap<(String, &'static str), u64>,
    alerts: BTreeMap<String, u64>,
    duplicates: BTreeMap<String, u64>,
    capped: BTreeMap<String, u64>,
    gaps: BTreeMap<String, u64>,
    backend_errors: BTreeMap<String, u64>,
    duration: BTreeMap<String, Histogram>,
    lag: Histogram,
    rules_loaded: u64,
}

/// The process's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

fn status_label(s: Status) -> &'static str {
    match s {
        Status::Succeeded => "succeeded",
        Status::PartialFailure => "partial_failure",
        Status::Failed => "failed",
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = crate::sync::lock(&self.inner);
        f(&mut g)
    }

    /// Records one finished execution.
    pub fn record_execution(&self, r: &ExecutionResult) {
        self.with(|m| {
            *m.executions
                .entry((r.rule_id.clone(), status_label(r.status)))
                .or_default() += 1;
            *m.alerts.entry(r.rule_id.clone()).or_default() += r.alerts_created;
            *m.duplicates.entry(r.rule_id.clone()).or_default() += r.duplicates;
            if r.capped {
                *m.capped.entry(r.rule_id.clone()).or_default() += 1;
            }
            if r.status == Status::Failed {
                *m.backend_errors.entry(r.rule_id.clone()).or_default() += 1;
            }
            m.duration
                .entry(r.rule_id.clone())
                .or_default()
                .observe(r.duration_ms / 1000.0);
        });
    }

    /// Records a gap (an uncovered range) for a rule.
    pub fn record_gap(&self, rule_id: &str) {
        self.with(|m| *m.gaps.entry(rule_id.to_string()).or_default() += 1);
    }

    /// Records how late an execution started against its planned time.
    pub fn record_lag(&self, seconds: f64) {
        self.with(|m| m.lag.observe(seconds.max(0.0)));
    }

    /// Sets the number of loaded rules.
    pub fn set_rules_loaded(&self, n: u64) {
        self.with(|m| m.rules_loaded = n);
    }

    /// Renders the Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.with(|m| {
            let mut out = String::new();
            let _ = writeln!(
                out,
                "# HELP detectd_rules_loaded Rules loaded and scheduled."
            );
            let _ = writeln!(out, "# TYPE detectd_rules_loaded gauge");
            let _ = writeln!(out, "detectd_rules_loaded {}", m.rules_loaded);
            let _ = writeln!(
                out,
                "# HELP detectd_executions_total Rule executions by status."
            );
            let _ = writeln!(out, "# TYPE detectd_executions_total counter");
            for ((rule, status), n) in &m.executions {
                let _ = writeln!(
                    out,
                    "detectd_executions_total{{rule_id=\"{}\",status=\"{status}\"}} {n}",
                    escape(rule)
                );
            }
            counter(
                &mut out,
                "detectd_alerts_created_total",
                "Alerts created.",
                &m.alerts,
            );
            counter(
                &mut out,
                "detectd_alert_duplicates_total",
                "Alerts skipped because they already existed.",
                &m.duplicates,
            );
            counter(
                &mut out,
                "detectd_capped_executions_total",
                "Executions truncated by max_signals.",
                &m.capped,
            );
            counter(
                &mut out,
                "detectd_gaps_total",
                "Uncovered ranges recorded.",
                &m.gaps,
            );
            counter(
                &mut out,
                "detectd_backend_errors_total",
                "Executions failed by a backend error.",
                &m.backend_errors,
            );
            let _ = writeln!(
                out,
                "# HELP detectd_execution_duration_seconds Execution duration."
            );
            let _ = writeln!(out, "# TYPE detectd_execution_duration_seconds histogram");
            for (rule, h) in &m.duration {
                histogram(
                    &mut out,
                    "detectd_execution_duration_seconds",
                    Some(rule),
                    h,
                );
            }
            let _ = writeln!(
                out,
                "# HELP detectd_schedule_lag_seconds Start time minus planned time."
            );
            let _ = writeln!(out, "# TYPE detectd_schedule_lag_seconds histogram");
            histogram(&mut out, "detectd_schedule_lag_seconds", None, &m.lag);
            out
        })
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn counter(out: &mut String, name: &str, help: &str, values: &BTreeMap<String, u64>) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (rule, n) in values {
        let _ = writeln!(out, "{name}{{rule_id=\"{}\"}} {n}", escape(rule));
    }
}

fn histogram(out: &mut String, name: &str, rule: Option<&str>, h: &Histogram) {
    let label = |extra: &str| match rule {
        Some(r) if extra.is_empty() => format!("{{rule_id=\"{}\"}}", escape(r)),
        Some(r) => format!("{{rule_id=\"{}\",{extra}}}", escape(r)),
        None if extra.is_empty() => String::new(),
        None => format!("{{{extra}}}"),
    };
    for (i, b) in BUCKETS.iter().enumerate() {
        let c = h.counts.get(i).copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{} {c}", label(&format!("le=\"{b}\"")));
    }
    let _ = writeln!(out, "{name}_bucket{} {}", label("le=\"+Inf\""), h.count);
    let _ = writeln!(out, "{name}_sum{} {}", label(""), h.sum);
    let _ = writeln!(out, "{name}_count{} {}", label(""), h.count);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Window;
    use chrono::Utc;

    fn result(status: Status, alerts: u64, capped: bool) -> ExecutionResult {
        ExecutionResult {
            rule_id: "r\"1".into(),
            window: Window {
                from: Utc::now(),
                to: Utc::now(),
            },
            status,
            hits: 3,
            alerts_created: alerts,
            duplicates: 1,
            failed_writes: 0,
            capped,
            warnings: vec![],
            message: None,
            not_runnable: false,
            search_ms: 1.0,
            index_ms: 1.0,
            round_trips: 2,
            duration_ms: 30.0,
            created_ids: vec![],
            duplicate_ids: vec![],
        }
    }

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::new();
        m.record_execution(&result(Status::Succeeded, 2, false));
        m.record_execution(&result(Status::PartialFailure, 5, true));
        m.record_lag(0.02);
        let text = m.render();
        assert!(
            text.contains("detectd_executions_total{rule_id=\"r\\\"1\",status=\"succeeded\"} 1")
        );
        assert!(text
            .contains("detectd_executions_total{rule_id=\"r\\\"1\",status=\"partial_failure\"} 1"));
        assert!(text.contains("detectd_alerts_created_total{rule_id=\"r\\\"1\"} 7"));
        assert!(text.contains("detectd_capped_executions_total{rule_id=\"r\\\"1\"} 1"));
        assert!(text.contains(
            "detectd_execution_duration_seconds_bucket{rule_id=\"r\\\"1\",le=\"0.05\"} 2"
        ));
        assert!(text.contains(
            "detectd_execution_duration_seconds_bucket{rule_id=\"r\\\"1\",le=\"0.01\"} 0"
        ));
        assert!(text.contains("detectd_schedule_lag_seconds_bucket{le=\"0.025\"} 1"));
        assert!(text.contains("detectd_schedule_lag_seconds_count 1"));
    }
}

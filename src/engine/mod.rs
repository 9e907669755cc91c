//! Rule execution: one execution of one rule over one window, on any [`Backend`].
//!
//! The executors follow Kibana's detection engine (semantics.md §3–§5): query rules page
//! through the window oldest first and alert on each hit; new_terms rules page through the
//! distinct terms of the window and alert on the first document of each term that is new
//! against the history window; threshold rules count the window's matching documents per term
//! tuple and alert once per bucket over the threshold, leaving out the documents of buckets
//! already alerted (the signal history, read back from the rule's threshold alerts); EQL rules
//! (`eql.rs`) send one EQL search of the window and alert on its events or sequences; ES|QL
//! rules (`esql.rs`) send their query with the window as a filter and alert once per row. All dedup before the `max_signals` cap: an alert that already
//! exists (an earlier overlapping window) neither counts nor consumes the cap.
//! The executors never know which backend runs.

mod eql;
mod esql;

pub use eql::{eql_spec, EqlParams};
pub use esql::EsqlParams;

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::alerts::{
    alert_id, build_alert, build_threshold_alert, is_alert, threshold_alert_id, AlertContext,
    ThresholdResult,
};
use crate::backend::{
    AlertDoc, Backend, Error, ExecStats, QuerySpec, ThresholdSignal, ThresholdSpec, TimeField,
};
use crate::kql::Ast;
use crate::time::DateMath;

/// Kibana's warning when the cap truncates an execution.
pub const MAX_SIGNALS_WARNING: &str =
    "This rule reached the maximum alert limit for the rule execution. Some alerts were not created.";

/// Terms per new_terms composite page (Kibana: 10,000).
pub const NEW_TERMS_PAGE_SIZE: usize = 10_000;

/// Buckets per threshold composite page (Kibana: 10,000).
pub const THRESHOLD_PAGE_SIZE: usize = 10_000;

/// What an execution needs from a rule (built from a validated `rules::Rule`).
#[derive(Debug, Clone)]
pub struct ExecRule {
    pub rule_id: String,
    pub name: String,
    pub severity: String,
    pub risk_score: f64,
    pub indices: Vec<String>,
    pub query: Ast,
    pub filters: Vec<Value>,
    pub time: TimeField,
    pub from: DateMath,
    pub to: DateMath,
    pub max_signals: usize,
    /// `Some` for new_terms rules.
    pub new_terms: Option<NewTermsParams>,
    /// `Some` for threshold rules.
    pub threshold: Option<ThresholdParams>,
    /// `Some` for EQL rules (`query` is then match-all: the EQL text is here).
    pub eql: Option<EqlParams>,
    /// `Some` for ES|QL rules (`query` is then match-all and unused).
    pub esql: Option<EsqlParams>,
    /// `kibana.alert.rule.*` fields (without the prefix).
    pub rule_fields: Map<String, Value>,
}

impl ExecRule {
    /// The execution view of a validated rule; `Err` names why the rule type cannot run
    /// (`query`, `new_terms` and `threshold` KQL rules, `eql` and `esql` rules execute).
    pub fn from_rule(rule: &crate::rules::Rule) -> Result<ExecRule, String> {
        use crate::rules::RuleKind;
        let mut threshold = None;
        let mut eql = None;
        let mut esql = None;
        let mut indices = rule.index.clone();
        let (query, new_terms) = match &rule.kind {
            RuleKind::Eql {
                query,
                event_category_override,
                timestamp_field,
                tiebreaker_field,
            } => {
                eql = Some(EqlParams {
                    query: query.clone(),
                    event_category_field: event_category_override.clone(),
                    timestamp_field: timestamp_field.clone(),
                    tiebreaker_field: tiebreaker_field.clone(),
                });
                (Ast::MatchAll, None)
            }
            RuleKind::Query { query, .. } => (query.clone(), None),
            RuleKind::Threshold {
                query,
                fields,
                value,
                cardinality,
                ..
            } => {
                threshold = Some(ThresholdParams {
                    fields: fields.clone(),
                    value: *value,
                    cardinality: cardinality.clone(),
                });
                (query.clone(), None)
            }
            RuleKind::NewTerms {
                query,
                fields,
                history_window_start,
                ..
            } => (
                query.clone(),
                Some(NewTermsParams {
                    fields: fields.clone(),
                    history_window_start: history_window_start.clone(),
                }),
            ),
            RuleKind::Esql { query } => {
                let p = EsqlParams::new(query);
                indices = p.from.clone();
                esql = Some(p);
                (Ast::MatchAll, None)
            }
            other => return Err(format!("rule type `{}` is not executed", other.type_name())),
        };
        let time = match &rule.timestamp_override {
            Some(f) => TimeField {
                primary: f.clone(),
                fallback_to_timestamp: !rule.timestamp_override_fallback_disabled,
            },
            None => TimeField {
                primary: "@timestamp".into(),
                fallback_to_timestamp: false,
            },
        };
        Ok(ExecRule {
            rule_id: rule.rule_id.clone(),
            name: rule.name.clone(),
            severity: rule.severity.as_str().to_string(),
            risk_score: f64::from(rule.risk_score),
            indices,
            query,
            filters: rule.filters.clone(),
            time,
            from: rule.from.clone(),
            to: rule.to.clone(),
            max_signals: rule.max_signals as usize,
            new_terms,
            threshold,
            eql,
            esql,
            rule_fields: rule.alert_rule_fields(),
        })
    }
}

/// new_terms parameters.
#[derive(Debug, Clone)]
pub struct NewTermsParams {
    pub fields: Vec<String>,
    /// Evaluated with `now` = the window's end.
    pub history_window_start: DateMath,
}

/// threshold parameters (`[rule.threshold]`).
#[derive(Debug, Clone)]
pub struct ThresholdParams {
    /// 0–3 fields; empty = one bucket for every matching document.
    pub fields: Vec<String>,
    /// A bucket alerts when it holds at least this many documents.
    pub value: u64,
    /// (field, value): and at least `value` distinct values of `field`.
    pub cardinality: Vec<(String, u64)>,
}

/// An inclusive time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    /// The rule's window for an execution that actually started at `t` (semantics.md §2).
    pub fn at(rule: &ExecRule, t: DateTime<Utc>) -> Window {
        Window {
            from: rule.from.resolve(t),
            to: rule.to.resolve(t),
        }
    }
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Succeeded,
    #[serde(rename = "partial failure")]
    PartialFailure,
    Failed,
}

/// The result of one execution.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionResult {
    pub rule_id: String,
    pub window: Window,
    pub status: Status,
    /// Events (query) or new-term candidates (new_terms) examined.
    pub hits: u64,
    pub alerts_created: u64,
    pub duplicates: u64,
    pub failed_writes: u64,
    pub capped: bool,
    pub warnings: Vec<String>,
    pub message: Option<String>,
    /// The cluster refused the rule's request for good (HTTP 400): the rule cannot run there,
    /// and running it again at the next interval would fail the same way.
    pub not_runnable: bool,
    pub search_ms: f64,
    pub index_ms: f64,
    pub round_trips: u64,
    pub duration_ms: f64,
    /// Ids of the alerts created.
    #[serde(skip)]
    pub created_ids: Vec<String>,
    /// Ids of alerts that already existed (earlier overlapping windows or runs).
    #[serde(skip)]
    pub duplicate_ids: Vec<String>,
}

/// Runs one execution of `rule` over `window`. Never fails: errors become a `failed` result
/// with the message (alerts already written stay written).
pub async fn execute(
    rule: &ExecRule,
    window: Window,
    backend: &dyn Backend,
    execution_uuid: &str,
    now: DateTime<Utc>,
) -> ExecutionResult {
    let started = Instant::now();
    let stats = ExecStats::default();
    let ctx = AlertContext {
        rule_fields: &rule.rule_fields,
        rule_id: &rule.rule_id,
        rule_name: &rule.name,
        severity: &rule.severity,
        risk_score: rule.risk_score,
        execution_uuid,
        now,
    };
    let mut sink = Sink::new(rule.max_signals, &ctx, backend, &stats);
    let mut hits = 0u64;
    let outcome = match (&rule.new_terms, &rule.threshold) {
        _ if rule.eql.is_some() => match &rule.eql {
            Some(e) => eql::run_eql(rule, e, window, backend, &stats, &mut sink, &mut hits).await,
            None => Ok(()),
        },
        _ if rule.esql.is_some() => {
            esql::run_esql(rule, window, backend, &stats, &mut sink, &mut hits).await
        }
        (Some(nt), _) => {
            run_new_terms(rule, nt, window, backend, &stats, &mut sink, &mut hits).await
        }
        (None, Some(th)) => {
            run_threshold(rule, th, window, backend, &stats, &mut sink, &mut hits).await
        }
        (None, None) => run_query(rule, window, backend, &stats, &mut sink, &mut hits).await,
    };
    let mut warnings = std::mem::take(&mut *crate::sync::lock(&stats.warnings));
    if sink.capped {
        warnings.push(MAX_SIGNALS_WARNING.to_string());
    }
    let not_runnable = matches!(outcome, Err(Error::Rejected { .. }));
    let incomplete = stats.incomplete.load(std::sync::atomic::Ordering::Relaxed);
    let (status, message) = match outcome {
        Err(e) => (Status::Failed, Some(e.to_string())),
        Ok(()) if incomplete => (
            Status::Failed,
            Some(
                "partial results: some shards failed; the alerts found were written and the window will be searched again"
                    .to_string(),
            ),
        ),
        Ok(()) if !sink.failed.is_empty() => (
            Status::PartialFailure,
            Some(format!(
                "{} alerts could not be written: {}",
                sink.failed.len(),
                sink.failed[0].1
            )),
        ),
        Ok(()) if sink.capped => (
            Status::PartialFailure,
            Some(MAX_SIGNALS_WARNING.to_string()),
        ),
        Ok(()) => (Status::Succeeded, None),
    };
    let micros = |a: &std::sync::atomic::AtomicU64| {
        a.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1000.0
    };
    ExecutionResult {
        rule_id: rule.rule_id.clone(),
        window,
        status,
        hits,
        alerts_created: sink.created.len() as u64,
        duplicates: sink.duplicates.len() as u64,
        failed_writes: sink.failed.len() as u64,
        capped: sink.capped,
        warnings,
        message,
        not_runnable,
        search_ms: micros(&stats.search_micros),
        index_ms: micros(&stats.index_micros),
        round_trips: stats.round_trips.load(std::sync::atomic::Ordering::Relaxed),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        created_ids: sink.created,
        duplicate_ids: sink.duplicates,
    }
}

fn spec_of<'a>(rule: &'a ExecRule, window: Window) -> QuerySpec<'a> {
    QuerySpec {
        indices: &rule.indices,
        query: &rule.query,
        filters: &rule.filters,
        time: &rule.time,
        from: window.from,
        to: window.to,
    }
}

async fn run_query(
    rule: &ExecRule,
    window: Window,
    backend: &dyn Backend,
    stats: &ExecStats,
    sink: &mut Sink<'_>,
    hits: &mut u64,
) -> Result<(), Error> {
    let q = spec_of(rule, window);
    let page_size = rule.max_signals.clamp(1, 100);
    let mut cursor = None;
    loop {
        let page = backend
            .search_page(&q, page_size, cursor.as_ref(), stats)
            .await?;
        *hits += page.hits.len() as u64;
        let candidates = query_alerts(&page.hits, &rule.rule_id, sink.ctx);
        let more = page.cursor.is_some();
        let full = sink.write(&candidates, more).await?;
        match page.cursor {
            Some(c) if full => {
                backend.close_search(&c, stats).await?;
                return Ok(());
            }
            Some(c) => cursor = Some(c),
            None => return Ok(()),
        }
    }
}

async fn run_new_terms(
    rule: &ExecRule,
    nt: &NewTermsParams,
    window: Window,
    backend: &dyn Backend,
    stats: &ExecStats,
    sink: &mut Sink<'_>,
    hits: &mut u64,
) -> Result<(), Error> {
    let history_start = nt.history_window_start.resolve(window.to);
    if history_start >= window.from {
        return Err(Error::Request {
            operation: "new_terms".into(),
            reason: format!(
                "history_window_start ({}) must be earlier than the window start ({})",
                nt.history_window_start.source, window.from
            ),
        });
    }
    let q = spec_of(rule, window);
    let mut after: Option<Value> = None;
    loop {
        let page = backend
            .terms_page(&q, &nt.fields, NEW_TERMS_PAGE_SIZE, after.as_ref(), stats)
            .await?;
        *hits += page.tuples.len() as u64;
        if !page.tuples.is_empty() {
            let found = backend
                .new_terms(&q, &nt.fields, history_start, &page.tuples, stats)
                .await?;
            let candidates: Vec<AlertDoc> = found
                .iter()
                .filter(|n| !is_alert(&n.hit.source))
                .map(|n| {
                    let h = &n.hit;
                    let id = alert_id(&h.index, &h.id, &rule.rule_id, &n.values);
                    let doc =
                        build_alert(sink.ctx, &id, &h.index, &h.id, &h.source, Some(&n.values));
                    AlertDoc { id, doc }
                })
                .collect();
            if sink.write(&candidates, page.after.is_some()).await? {
                return Ok(());
            }
        }
        match page.after {
            Some(a) => after = Some(a),
            None => return Ok(()),
        }
    }
}

/// Kibana's threshold executor: the signal history (the rule's threshold alerts whose last
/// event is inside or after the window start; one entry per term tuple, the newest) leaves out
/// the documents already alerted on, then buckets of the rest, ordered by terms, alert when
/// `count >= value` and every cardinality condition holds. One alert per bucket; its id comes
/// from the rule, the terms and the bucket's first event, so a re-run gives the same ids.
async fn run_threshold(
    rule: &ExecRule,
    th: &ThresholdParams,
    window: Window,
    backend: &dyn Backend,
    stats: &ExecStats,
    sink: &mut Sink<'_>,
    hits: &mut u64,
) -> Result<(), Error> {
    let history = newest_per_terms(
        backend
            .threshold_history(&rule.rule_id, window.from, stats)
            .await?,
    );
    let spec = ThresholdSpec {
        fields: th.fields.clone(),
        cardinality: th.cardinality.iter().map(|(f, _)| f.clone()).collect(),
    };
    let q = spec_of(rule, window);
    let mut after: Option<Value> = None;
    loop {
        let page = backend
            .threshold_page(
                &q,
                &spec,
                &history,
                THRESHOLD_PAGE_SIZE,
                after.as_ref(),
                stats,
            )
            .await?;
        *hits += page.buckets.iter().map(|b| b.count).sum::<u64>();
        let candidates: Vec<AlertDoc> = page
            .buckets
            .iter()
            .filter(|b| {
                b.count > 0
                    && b.count >= th.value
                    && th
                        .cardinality
                        .iter()
                        .zip(&b.cardinality)
                        .all(|((_, want), got)| got >= want)
            })
            .filter_map(|b| {
                let first = DateTime::from_timestamp_millis(b.first_ms)?;
                let last = DateTime::from_timestamp_millis(b.last_ms)?;
                let id = threshold_alert_id(&rule.rule_id, &th.fields, &b.terms, b.first_ms);
                let result = ThresholdResult {
                    fields: &th.fields,
                    terms: &b.terms,
                    count: b.count,
                    cardinality: th
                        .cardinality
                        .iter()
                        .zip(&b.cardinality)
                        .map(|((f, _), n)| (f.as_str(), *n))
                        .collect(),
                    first,
                    last,
                };
                let doc = build_threshold_alert(sink.ctx, &id, &rule.indices, &result);
                Some(AlertDoc { id, doc })
            })
            .collect();
        if sink.write(&candidates, page.after.is_some()).await? {
            return Ok(());
        }
        match page.after {
            Some(a) if after.as_ref() != Some(&a) => after = Some(a),
            _ => return Ok(()),
        }
    }
}

/// One history entry per term tuple, the newest (Kibana keys its signal history by a hash of
/// the terms and keeps the latest `lastSignalTimestamp`).
fn newest_per_terms(history: Vec<ThresholdSignal>) -> Vec<ThresholdSignal> {
    let mut out: Vec<ThresholdSignal> = Vec::new();
    for h in history {
        match out.iter_mut().find(|o| o.terms == h.terms) {
            Some(o) if o.last < h.last => o.last = h.last,
            Some(_) => {}
            None => out.push(h),
        }
    }
    out
}

/// The alerts of a query rule's hits, one per source document that is not itself an alert, with
/// the query rule's deterministic id (also EQL's single-event hits).
fn query_alerts(
    hits: &[crate::backend::Hit],
    rule_id: &str,
    ctx: &AlertContext<'_>,
) -> Vec<AlertDoc> {
    hits.iter()
        .filter(|h| !is_alert(&h.source))
        .map(|h| {
            let id = alert_id(&h.index, &h.id, rule_id, &[]);
            let doc = build_alert(ctx, &id, &h.index, &h.id, &h.source, None);
            AlertDoc { id, doc }
        })
        .collect()
}
/// Writes alerts up to the cap, counting created, duplicates and failures.
struct Sink<'a> {
    max: usize,
    ctx: &'a AlertContext<'a>,
    backend: &'a dyn Backend,
    stats: &'a ExecStats,
    created: Vec<String>,
    duplicates: Vec<String>,
    failed: Vec<(String, String)>,
    capped: bool,
}

impl<'a> Sink<'a> {
    fn new(
        max: usize,
        ctx: &'a AlertContext<'a>,
        backend: &'a dyn Backend,
        stats: &'a ExecStats,
    ) -> Self {
        Sink {
            max,
            ctx,
            backend,
            stats,
            created: Vec::new(),
            duplicates: Vec::new(),
            failed: Vec::new(),
            capped: false,
        }
    }

    /// Writes `candidates` in order until the cap is reached. Returns true when the cap is
    /// reached (the caller stops); `more_after` says whether further candidates may follow.
    async fn write(&mut self, candidates: &[AlertDoc], more_after: bool) -> Result<bool, Error> {
        let mut i = 0;
        while i < candidates.len() && self.created.len() < self.max {
            let take = (self.max - self.created.len()).min(candidates.len() - i);
            let out = self
                .backend
                .write_alerts(&candidates[i..i + take], self.stats)
                .await?;
            self.created.extend(out.created);
            self.duplicates.extend(out.duplicates);
            self.failed.extend(out.failed);
            i += take;
        }
        if self.created.len() >= self.max {
            if i < candidates.len() || more_after {
                self.capped = true;
            }
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    //! Executor logic against a scripted backend: paging, the cap, dedup before the cap.
    use super::*;
    use crate::backend::{
        Cursor, Hit, NewTerm, Page, RuleState, TermsPage, ThresholdBucket, ThresholdPage,
        WriteOutcome,
    };
    use serde_json::json;
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Mutex;

    /// Serves `n` hits in pages, stores alert ids, counts calls.
    struct Scripted {
        hits: Vec<Hit>,
        written: Mutex<HashSet<String>>,
        pages_served: Mutex<usize>,
        closed: Mutex<usize>,
        new_terms: Vec<NewTerm>,
        terms: Vec<Vec<Value>>,
        buckets: Vec<ThresholdBucket>,
        /// What `threshold_page` was last asked to leave out.
        excluded: Mutex<Vec<ThresholdSignal>>,
    }

    impl Scripted {
        fn with_hits(n: usize) -> Scripted {
            let hits = (0..n)
                .map(|i| Hit {
                    index: "idx".into(),
                    id: format!("doc{i}"),
                    source: json!({"@timestamp": "2024-01-01T00:00:00Z", "event": {"action": "A"}}),
                    sort: vec![json!(i)],
                })
                .collect();
            Scripted {
                hits,
                written: Mutex::new(HashSet::new()),
                pages_served: Mutex::new(0),
                closed: Mutex::new(0),
                new_terms: Vec::new(),
                terms: Vec::new(),
                buckets: Vec::new(),
                excluded: Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait::async_trait]
    impl Backend for Scripted {
        async fn search_page(
            &self,
            _q: &QuerySpec<'_>,
            size: usize,
            cursor: Option<&Cursor>,
            _s: &ExecStats,
        ) -> Result<Page, Error> {
            *self.pages_served.lock().unwrap() += 1;
            let start = cursor.map_or(0, |c| c.search_after[0].as_u64().unwrap() as usize + 1);
            let end = (start + size).min(self.hits.len());
            let hits = self.hits[start..end].to_vec();
            let cursor = (end < self.hits.len()).then(|| Cursor {
                pit: Some("pit".into()),
                search_after: vec![json!(end - 1)],
            });
            Ok(Page { hits, cursor })
        }
        async fn close_search(&self, _c: &Cursor, _s: &ExecStats) -> Result<(), Error> {
            *self.closed.lock().unwrap() += 1;
            Ok(())
        }
        async fn terms_page(
            &self,
            _q: &QuerySpec<'_>,
            _f: &[String],
            _size: usize,
            _a: Option<&Value>,
            _s: &ExecStats,
        ) -> Result<TermsPage, Error> {
            Ok(TermsPage {
                tuples: self.terms.clone(),
                after: None,
            })
        }
        async fn new_terms(
            &self,
            _q: &QuerySpec<'_>,
            _f: &[String],
            _h: DateTime<Utc>,
            _t: &[Vec<Value>],
            _s: &ExecStats,
        ) -> Result<Vec<NewTerm>, Error> {
            Ok(self.new_terms.clone())
        }
        async fn threshold_page(
            &self,
            _q: &QuerySpec<'_>,
            _spec: &ThresholdSpec,
            exclude: &[ThresholdSignal],
            size: usize,
            after: Option<&Value>,
            _s: &ExecStats,
        ) -> Result<ThresholdPage, Error> {
            *self.excluded.lock().unwrap() = exclude.to_vec();
            let start = after.map_or(0, |a| a.as_u64().unwrap() as usize);
            let end = (start + size).min(self.buckets.len());
            Ok(ThresholdPage {
                buckets: self.buckets[start..end].to_vec(),
                after: (end < self.buckets.len()).then(|| json!(end)),
            })
        }
        async fn threshold_history(
            &self,
            _rule_id: &str,
            _since: DateTime<Utc>,
            _s: &ExecStats,
        ) -> Result<Vec<ThresholdSignal>, Error> {
            let t = DateTime::from_timestamp_millis(1_000).unwrap();
            let older = DateTime::from_timestamp_millis(500).unwrap();
            Ok(vec![
                ThresholdSignal {
                    terms: vec![("user.name".into(), json!("a"))],
                    last: older,
                },
                ThresholdSignal {
                    terms: vec![("user.name".into(), json!("a"))],
                    last: t,
                },
            ])
        }
        async fn write_alerts(
            &self,
            alerts: &[AlertDoc],
            _s: &ExecStats,
        ) -> Result<WriteOutcome, Error> {
            let mut w = self.written.lock().unwrap();
            let mut out = WriteOutcome::default();
            for a in alerts {
                if w.insert(a.id.clone()) {
                    out.created.push(a.id.clone())
                } else {
                    out.duplicates.push(a.id.clone())
                }
            }
            Ok(out)
        }
        async fn load_state(&self) -> Result<BTreeMap<String, RuleState>, Error> {
            Ok(BTreeMap::new())
        }
        async fn save_state(&self, _r: &str, _s: &RuleState) -> Result<(), Error> {
            Ok(())
        }
        async fn record_execution(&self, _r: &Value) -> Result<(), Error> {
            Ok(())
        }
    }

    fn rule(max_signals: usize, new_terms: bool) -> ExecRule {
        ExecRule {
            rule_id: "r1".into(),
            name: "Rule".into(),
            severity: "low".into(),
            risk_score: 21.0,
            indices: vec!["logs-*".into()],
            query: Ast::MatchAll,
            filters: vec![],
            time: TimeField {
                primary: "@timestamp".into(),
                fallback_to_timestamp: true,
            },
            from: crate::time::parse_datemath("now-6m").unwrap(),
            to: crate::time::parse_datemath("now").unwrap(),
            max_signals,
            new_terms: new_terms.then(|| NewTermsParams {
                fields: vec!["user.name".into()],
                history_window_start: crate::time::parse_datemath("now-10d").unwrap(),
            }),
            threshold: None,
            eql: None,
            esql: None,
            rule_fields: Map::new(),
        }
    }

    fn window() -> Window {
        let t = crate::time::parse_absolute("2024-01-01T00:06:00Z").unwrap();
        Window::at(&rule(1, false), t)
    }

    async fn run(r: &ExecRule, b: &Scripted) -> ExecutionResult {
        execute(r, window(), b, "exec", Utc::now()).await
    }

    #[tokio::test]
    async fn query_rule_alerts_on_every_hit_across_pages() {
        let b = Scripted::with_hits(250);
        let res = run(&rule(1000, false), &b).await;
        assert_eq!(res.alerts_created, 250);
        assert_eq!(res.hits, 250);
        assert_eq!(
            *b.pages_served.lock().unwrap(),
            3,
            "page size is min(max_signals, 100)"
        );
        assert!(!res.capped);
        assert_eq!(res.status, Status::Succeeded);
    }

    #[tokio::test]
    async fn cap_truncates_with_kibana_warning_and_closes_the_search() {
        let b = Scripted::with_hits(250);
        let res = run(&rule(100, false), &b).await;
        assert_eq!(res.alerts_created, 100);
        assert!(res.capped);
        assert_eq!(res.status, Status::PartialFailure);
        assert_eq!(res.warnings, vec![MAX_SIGNALS_WARNING.to_string()]);
        assert_eq!(*b.closed.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn duplicates_do_not_consume_the_cap() {
        let b = Scripted::with_hits(150);
        // an earlier overlapping window alerted on the first 60 events
        let first = run(&rule(60, false), &b).await;
        assert_eq!(first.alerts_created, 60);
        let second = run(&rule(60, false), &b).await;
        assert_eq!(second.duplicates, 60);
        assert_eq!(
            second.alerts_created, 60,
            "the next 60 events alert despite the duplicates"
        );
        let third = run(&rule(100, false), &b).await;
        assert_eq!(third.alerts_created, 30);
        assert_eq!(third.duplicates, 120);
        assert!(!third.capped);
    }

    #[tokio::test]
    async fn exact_cap_without_more_hits_is_not_capped() {
        let b = Scripted::with_hits(5);
        let res = run(&rule(5, false), &b).await;
        assert_eq!(res.alerts_created, 5);
        assert!(!res.capped);
    }

    #[tokio::test]
    async fn new_terms_alerts_carry_values_and_distinct_ids_per_term() {
        let mut b = Scripted::with_hits(0);
        let hit = Scripted::with_hits(1).hits.remove(0);
        b.terms = vec![vec![json!("a")], vec![json!("b")]];
        b.new_terms = vec![
            NewTerm {
                values: vec![json!("a")],
                hit: hit.clone(),
            },
            NewTerm {
                values: vec![json!("b")],
                hit,
            },
        ];
        let res = run(&rule(100, true), &b).await;
        assert_eq!(
            res.alerts_created, 2,
            "one document, two new terms, two alerts"
        );
        assert_ne!(res.created_ids[0], res.created_ids[1]);
    }

    #[tokio::test]
    async fn history_window_must_start_before_the_window() {
        let b = Scripted::with_hits(0);
        let mut r = rule(100, true);
        r.new_terms = Some(NewTermsParams {
            fields: vec!["user.name".into()],
            history_window_start: crate::time::parse_datemath("now-1m").unwrap(),
        });
        let res = run(&r, &b).await;
        assert_eq!(res.status, Status::Failed);
        assert!(res.message.unwrap().contains("history_window_start"));
    }

    fn bucket(term: &str, count: u64, distinct: u64) -> ThresholdBucket {
        ThresholdBucket {
            terms: vec![json!(term)],
            count,
            cardinality: vec![distinct],
            first_ms: 60_000,
            last_ms: 120_000,
        }
    }

    #[tokio::test]
    async fn threshold_alerts_once_per_bucket_over_count_and_cardinality() {
        let mut b = Scripted::with_hits(0);
        b.buckets = vec![
            bucket("a", 5, 3),
            bucket("b", 4, 3), // under the count
            bucket("c", 9, 1), // under the cardinality
            bucket("d", 6, 2),
        ];
        let mut r = rule(100, false);
        r.threshold = Some(ThresholdParams {
            fields: vec!["user.name".into()],
            value: 5,
            cardinality: vec![("source.ip".into(), 2)],
        });
        let res = run(&r, &b).await;
        assert_eq!(res.alerts_created, 2);
        assert_eq!(res.hits, 24, "documents counted");
        let again = run(&r, &b).await;
        assert_eq!(again.duplicates, 2, "the same buckets give the same ids");
        assert_eq!(
            *b.excluded.lock().unwrap(),
            vec![ThresholdSignal {
                terms: vec![("user.name".into(), json!("a"))],
                last: DateTime::from_timestamp_millis(1_000).unwrap(),
            }],
            "one history entry per terms, the newest"
        );
    }

    #[tokio::test]
    async fn threshold_cap_pages_and_warns() {
        let mut b = Scripted::with_hits(0);
        b.buckets = (0..30)
            .map(|i| bucket(&format!("u{i:02}"), 10, 5))
            .collect();
        let mut r = rule(20, false);
        r.threshold = Some(ThresholdParams {
            fields: vec!["user.name".into()],
            value: 1,
            cardinality: vec![],
        });
        let res = run(&r, &b).await;
        assert_eq!(res.alerts_created, 20);
        assert!(res.capped);
        assert_eq!(res.warnings, vec![MAX_SIGNALS_WARNING.to_string()]);
    }
}

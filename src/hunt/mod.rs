//! Hunting: every rule over a folder of CloudTrail in one pass, giving exactly the alerts a
//! windowed replay (`detectd run --start/--end` on the embedded backend) gives, without keeping
//! the documents.
//!
//! Records stream through all rules' compiled matchers once (one `MatcherSet::prepare` per
//! document). A record no rule can match is recognised from its raw text and skipped before it
//! is parsed (`prefilter`). Only hits are kept: per query rule the hits of its recent windows
//! (with their text, for the alert); per new_terms rule the recent (time, tuple) sightings and a
//! first-seen index (`first_seen`), so an execution costs O(terms in its window).
//!
//! Each rule's executions are simulated as the scheduler runs them: the interval grid with its
//! spread offset (or cron) from `--start` to `--end`, the windows of `scheduler::plan` (backfill
//! when the look-back is shorter than the interval; a failed execution does not advance the
//! covered time), and per window the engine's semantics on the embedded backend: hits oldest
//! first (time, then `@timestamp`, then id), new terms in composite order, alerts that already
//! exist (an earlier overlapping window) neither created again nor counted against
//! `max_signals`. Alert ids, execution uuids and alert timestamps are those of the replay.
//!
//! Order and memory: files are read in time buckets, oldest first (the hour of the delivery time
//! in a CloudTrail file's name, else the `YYYY/MM/DD` folder of the S3 layout); after each
//! bucket, the windows that end before the next bucket's start minus `lateness` run and their
//! state is dropped, so memory holds about one bucket of hits and the rules' history, not the
//! data. A hit that arrives for a window already run is counted as late (reported, never
//! silent). Files outside both layouts are read as one bucket.

mod first_seen;
pub mod prefilter;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::Value;

use crate::alerts::{alert_id, build_alert, is_alert, AlertContext};
use crate::backend::embedded::{cmp_terms, indices_match, term_tuples, EMBEDDED_INDEX};
use crate::ecs::json::Json;
use crate::ecs::reader::{expand_paths, read_file_filtered, Document, ReadError};
use crate::ecs::NormalizeOptions;
use crate::engine::ExecRule;
use crate::fields::FieldCatalog;
use crate::fields::{date_millis, values_at};
use crate::matcher::{Matcher, MatcherSet};
use crate::scheduler::{next_due, next_due_after, plan, ScheduledRule, Window};

pub use first_seen::FirstSeen;
pub use prefilter::Prefilter;
use prefilter::{Decision, Known, RawHits};

/// A rule to hunt with: its execution view and its schedule.
#[derive(Debug, Clone)]
pub struct HuntRule {
    pub exec: ExecRule,
    pub schedule: ScheduledRule,
}

/// The period and scheduler settings the hunt simulates.
#[derive(Debug, Clone)]
pub struct HuntOptions {
    /// Replay start: the first executions are the rules' due instants at or after it.
    pub start: DateTime<Utc>,
    /// Replay end (exclusive): no execution is due at or after it.
    pub end: DateTime<Utc>,
    /// `scheduler.max_backfill`.
    pub max_backfill: Duration,
    /// How late (before its bucket's start) a record may arrive in a later bucket's files.
    pub lateness: Duration,
    /// Skip records no rule can match before parsing them.
    pub prefilter: bool,
    /// How raw records are normalised.
    pub normalize: NormalizeOptions,
    /// Field types the rules are compiled with.
    pub catalog: FieldCatalog,
}

/// An alert found by the hunt.
#[derive(Debug, Clone)]
pub struct HuntAlert {
    pub rule_id: String,
    pub id: String,
    pub doc: Value,
}

/// Per-rule figures.
#[derive(Debug, Clone, Default)]
pub struct RuleSummary {
    pub rule_id: String,
    pub name: String,
    pub severity: String,
    pub executions: u64,
    pub hits: u64,
    pub alerts: u64,
    pub capped: u64,
    /// Documents evaluated against the rule (admitted by the prefilter, in its time range).
    pub documents: u64,
}

/// Figures of one hunt.
#[derive(Debug, Clone, Default)]
pub struct HuntSummary {
    pub files: usize,
    /// Records read (parsed or skipped).
    pub records: u64,
    /// Records skipped unparsed by the prefilter.
    pub skipped: u64,
    /// Records whose hits were taken from their raw text, unparsed (every rule admitting them
    /// decided exactly on the raw record, the matching ones new_terms rules).
    pub from_raw: u64,
    /// Records skipped or broken (reported through `on_error`).
    pub errors: u64,
    /// Documents without a usable `@timestamp`.
    pub rejected: u64,
    /// Hits that arrived after a window they belong to had run.
    pub late: u64,
    pub executions: u64,
    pub alerts: u64,
    /// Rules hunted with (index patterns select the data, query compiles).
    pub rules: Vec<RuleSummary>,
    /// Rules not hunted with, and why (the replay runs them but they never alert).
    pub not_run: Vec<(String, String)>,
    /// Records parsed and normalised that no rule admitted afterwards.
    pub unadmitted: u64,
    /// Largest number of held hits, sightings and candidates at a bucket end.
    pub peak_state: usize,
}

/// Progress after each file.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub files_done: usize,
    pub files: usize,
    pub records: u64,
    pub alerts: u64,
}

/// An error that stops the hunt.
#[derive(Debug, thiserror::Error)]
pub enum HuntError {
    #[error("--end {end} is not after --start {start}")]
    EmptyPeriod {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

/// Runs `rules` over the CloudTrail in `paths` for the period of `options`, handing each alert
/// to `on_alert` (in execution order per rule) and each skipped record or file to `on_error`.
pub fn hunt(
    paths: &[PathBuf],
    rules: &[HuntRule],
    options: &HuntOptions,
    mut on_alert: impl FnMut(HuntAlert),
    mut on_error: impl FnMut(ReadError),
    mut on_progress: impl FnMut(Progress),
) -> Result<HuntSummary, HuntError> {
    if options.end <= options.start {
        return Err(HuntError::EmptyPeriod {
            start: options.start,
            end: options.end,
        });
    }
    let (normalize, catalog) = (&options.normalize, &options.catalog);
    let mut summary = HuntSummary::default();
    let mut set = MatcherSet::new();
    let mut states: Vec<RuleRun> = Vec::new();
    // Per rule, its matcher when it has no filters (the prefilter may decide it on raw records).
    let mut exact: Vec<Option<Matcher>> = Vec::new();
    // A later definition of a rule id wins, as in the scheduler.
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (n, r) in rules.iter().enumerate() {
        by_id.insert(r.exec.rule_id.as_str(), n);
    }
    let mut kept: Vec<usize> = by_id.into_values().collect();
    kept.sort_unstable();
    for n in kept {
        let r = &rules[n];
        if !r.schedule.enabled {
            continue;
        }
        if !indices_match(&r.exec.indices) {
            summary.not_run.push((
                r.exec.rule_id.clone(),
                "index patterns do not select the CloudTrail data".into(),
            ));
            continue;
        }
        if r.exec.threshold.is_some() {
            // Threshold buckets need the whole window counted at once, which the one-pass
            // hunt does not do yet: `run --start/--end` runs them.
            summary.not_run.push((
                r.exec.rule_id.clone(),
                "threshold rules are not run by hunt yet (use run --start/--end)".into(),
            ));
            continue;
        }
        if r.exec.eql.is_some() {
            // The embedded evaluation has no EQL (its `query` is match-all): never run here.
            summary.not_run.push((
                r.exec.rule_id.clone(),
                crate::backend::EQL_NEEDS_ELASTICSEARCH.into(),
            ));
            continue;
        }
        if r.exec.esql.is_some() {
            // Nor ES|QL (its `query` is match-all too).
            summary.not_run.push((
                r.exec.rule_id.clone(),
                crate::backend::ESQL_NEEDS_ELASTICSEARCH.into(),
            ));
            continue;
        }
        let matcher = match compile(&r.exec, catalog) {
            Ok(m) => m,
            Err(e) => {
                summary.not_run.push((r.exec.rule_id.clone(), e));
                continue;
            }
        };
        let slot = set.add(&matcher);
        exact.push(r.exec.filters.is_empty().then_some(matcher));
        states.push(RuleRun::new(r, slot, options));
    }
    let queries: Vec<&crate::kql::Ast> = states.iter().map(|s| &s.rule.exec.query).collect();
    // Fields the normaliser never produces without a GeoIP database of their kind.
    let kinds = normalize
        .geoip
        .as_ref()
        .map(|g| g.kinds())
        .unwrap_or_default();
    let mut unavailable = Vec::new();
    if !kinds.contains(&crate::ecs::geoip::GeoIpKind::Geo) {
        unavailable.push("source.geo.");
    }
    if !kinds.contains(&crate::ecs::geoip::GeoIpKind::Asn) {
        unavailable.push("source.as.");
    }
    // The raw record reveals fields exactly only as the integration's default `retain` keeps
    // them.
    if normalize.retain.is_some() {
        exact.iter_mut().for_each(|m| *m = None);
    }
    let prefilter = Prefilter::with_unavailable(&queries, &unavailable)
        .with_times(states.iter().map(RuleRun::raw_range).collect())
        .with_exact(
            normalize.data_stream,
            exact,
            states.iter().map(RuleRun::takes_raw).collect(),
        )
        .with_decided(
            normalize.retain.is_none(),
            states
                .iter()
                .map(|s| s.rule.exec.filters.is_empty())
                .collect(),
        );
    tracing::debug!(
        rules = prefilter.exact_rules(),
        "rules decided exactly on raw records"
    );
    for i in prefilter.open_rules() {
        tracing::warn!(rule = %states[i].rule.exec.rule_id, name = %states[i].rule.exec.name, "no literal requirement derived from this rule's query: every record is parsed");
    }
    // The rules' states, shared by the raw-record decision and the parsed-document path (the
    // reader calls one, then maybe the other, never both at once).
    let states = RefCell::new(states);
    let taken = Cell::new(0u64);
    let hits = RefCell::new(Vec::new());
    let skip = |raw: &str| {
        let mut hits = hits.borrow_mut();
        match prefilter.decide(raw, &mut hits) {
            Decision::Skip => true,
            Decision::Parse => false,
            Decision::Hits(r) => {
                let ok = take_raw(raw, &r, &hits, &mut states.borrow_mut(), catalog, normalize);
                if ok {
                    taken.set(taken.get() + 1);
                }
                ok
            }
        }
    };
    let skip_fn: Option<&dyn Fn(&str) -> bool> = if options.prefilter && !prefilter.is_open() {
        Some(&skip)
    } else {
        None
    };

    let mut errors = 0u64;
    let files = expand_paths(paths, &mut |e| {
        errors += 1;
        on_error(e)
    });
    summary.files = files.len();
    let buckets = buckets(files);
    let mut files_done = 0usize;
    let mut scratch: Vec<u8> = Vec::new();
    for (bucket_end, bucket) in &buckets {
        for f in bucket {
            let mut on_doc = |d: Document| {
                summary.records += 1;
                let mut states = states.borrow_mut();
                match process(&d, &set, &prefilter, &mut states, catalog, &mut scratch) {
                    Processed::Rejected => summary.rejected += 1,
                    Processed::Unadmitted => summary.unadmitted += 1,
                    Processed::Evaluated => {}
                }
            };
            let before = taken.get();
            let skipped = read_file_filtered(f, normalize, skip_fn, &mut on_doc, &mut |e| {
                errors += 1;
                on_error(e)
            });
            let from_raw = taken.get() - before;
            summary.skipped += (skipped as u64).saturating_sub(from_raw);
            summary.from_raw += from_raw;
            summary.records += skipped as u64;
            files_done += 1;
            on_progress(Progress {
                files_done,
                files: summary.files,
                records: summary.records,
                alerts: summary.alerts,
            });
        }
        // Every record before the watermark has been read.
        let watermark = match bucket_end {
            Some(end) => (*end - options.lateness).timestamp_millis(),
            None => i64::MAX,
        };
        let mut held = 0usize;
        for s in states.borrow_mut().iter_mut() {
            s.flush();
            summary.alerts += s.run_until(watermark, &mut on_alert);
            held += s.prune();
        }
        summary.peak_state = summary.peak_state.max(held);
        tracing::debug!(files_done, held, "bucket done");
    }
    for s in states.borrow_mut().iter_mut() {
        summary.late += s.late;
        summary.executions += s.summary.executions;
        summary.rules.push(s.summary.clone());
    }
    summary.errors = errors;
    for r in summary.rules.iter().filter(|r| r.documents > 0) {
        tracing::debug!(rule = %r.rule_id, name = %r.name, documents = r.documents, hits = r.hits, "documents evaluated");
    }
    tracing::debug!(
        unadmitted = summary.unadmitted,
        "records parsed and normalised that no rule admitted"
    );
    Ok(summary)
}

/// Compiles a rule's query and filters (the embedded backend's `compile`, as a `Matcher`).
fn compile(rule: &ExecRule, catalog: &FieldCatalog) -> Result<Matcher, String> {
    let mut m = Matcher::compile(&rule.query, catalog).map_err(|e| e.to_string())?;
    if !rule.filters.is_empty() {
        m = m.and(
            crate::matcher::compile_filters(&rule.filters, catalog).map_err(|e| e.to_string())?,
        );
    }
    Ok(m)
}

/// A bucket's time range `[start, end)`.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// Files grouped into time buckets, oldest first, each with its end (`None`: the last bucket,
/// which runs everything left). The bucket of a delivery file is the hour of its delivery time
/// (`..._20261001T0005Z_....json.gz`), else its `YYYY/MM/DD` folder's day; when some file has
/// neither, everything is one bucket.
fn buckets(files: Vec<PathBuf>) -> Vec<(Option<DateTime<Utc>>, Vec<PathBuf>)> {
    let keyed = |key: fn(&Path) -> Option<Span>| {
        files
            .iter()
            .map(|f| key(f).map(|(start, end)| (start, end, f.clone())))
            .collect::<Option<Vec<_>>>()
    };
    let Some(mut keyed) = keyed(file_hour).or_else(|| keyed(path_day)) else {
        return vec![(None, files)];
    };
    // By bucket, and within one in the listing's (path) order: a stable sort on the time
    // alone, since comparing paths component by component is slow for ~50,000 files a day.
    keyed.sort_by_key(|k| k.0);
    let mut out: Vec<(Option<DateTime<Utc>>, Vec<PathBuf>)> = Vec::new();
    let mut current = None;
    for (start, end, f) in keyed {
        if current != Some(start) {
            current = Some(start);
            out.push((Some(end), Vec::new()));
        }
        if let Some(last) = out.last_mut() {
            last.1.push(f);
        }
    }
    if let Some(last) = out.last_mut() {
        last.0 = None;
    }
    out
}

/// The hour of a delivery file's time in its name (`<account>_CloudTrail_<region>_<time>_...`).
fn file_hour(path: &Path) -> Option<Span> {
    let name = path.file_name()?.to_str()?;
    // `YYYYMMDDTHHMMZ`, read by hand: this runs for every file.
    let start = name.as_bytes().split(|&c| c == b'_').find_map(|b| {
        if b.len() != 14 || b[8] != b'T' || b[13] != b'Z' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let d = b.get(r)?;
            d.iter()
                .all(u8::is_ascii_digit)
                .then(|| d.iter().fold(0u32, |n, c| n * 10 + u32::from(c - b'0')))
        };
        let date =
            NaiveDate::from_ymd_opt(i32::try_from(num(0..4)?).ok()?, num(4..6)?, num(6..8)?)?;
        let (hour, minute) = (num(9..11)?, num(11..13)?);
        (minute < 60).then_some(())?;
        date.and_hms_opt(hour, 0, 0)
    })?;
    let start = start.and_utc();
    Some((start, start + Duration::hours(1)))
}

/// The day of a delivery file from its `.../YYYY/MM/DD/file` path.
fn path_day(path: &Path) -> Option<Span> {
    let parts: Vec<&str> = path
        .parent()?
        .components()
        .rev()
        .take(3)
        .filter_map(|c| c.as_os_str().to_str())
        .collect();
    let [d, m, y] = parts.as_slice() else {
        return None;
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let day = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?;
    let start = day.and_hms_opt(0, 0, 0)?.and_utc();
    Some((start, start + Duration::days(1)))
}

/// What became of a document.
enum Processed {
    /// No usable `@timestamp` (the store rejects those too).
    Rejected,
    /// No rule admits it (by action, provider and time).
    Unadmitted,
    Evaluated,
}

/// Matches one document against the rules that admit it and records the hits.
fn process(
    d: &Document,
    set: &MatcherSet,
    prefilter: &Prefilter,
    states: &mut [RuleRun],
    catalog: &FieldCatalog,
    scratch: &mut Vec<u8>,
) -> Processed {
    let Some(ts) = d
        .doc
        .get("@timestamp")
        .map(Json::to_value)
        .as_ref()
        .and_then(date_millis)
    else {
        return Processed::Rejected;
    };
    // The stored text, parsed back, is exactly what the embedded store evaluates: the
    // document's own value is the same (same keys in the same order, same numbers), except
    // that the parser refuses a document nested deeper than its limit, so a deep one takes the
    // round trip. The text itself is only written for a hit.
    let value = d.doc.to_value();
    let value = if depth(&value) <= SHALLOW {
        value
    } else {
        scratch.clear();
        d.doc.write_json(scratch);
        let Some(v) = std::str::from_utf8(scratch)
            .ok()
            .and_then(|raw| serde_json::from_str::<Value>(raw).ok())
        else {
            return Processed::Rejected;
        };
        v
    };
    if is_alert(&value) {
        return Processed::Unadmitted;
    }
    // Only the rules whose event.action/event.provider requirement admits the document (with
    // a dotted top-level key, which the matcher also reads, every rule).
    let mut rules = Vec::new();
    let dotted = value
        .as_object()
        .is_none_or(|m| m.keys().any(|k| k.contains('.')));
    if dotted {
        rules.extend(0..states.len());
    } else {
        let event = value.get("event");
        let field = |f: &str| event.and_then(|e| e.get(f)).and_then(Value::as_str);
        prefilter.rules_for(field("action"), field("provider"), &mut rules);
    }
    // With the document's time on each rule's time field; a hit outside the rule's range
    // reaches no window.
    let timed: Vec<(usize, i64)> = rules
        .iter()
        .filter_map(|&i| {
            let s = states.get(i)?;
            let t = s.time_of(&value, ts)?;
            (s.range.0 <= t && t <= s.range.1).then_some((i, t))
        })
        .collect();
    if timed.is_empty() {
        return Processed::Unadmitted;
    }
    let prepared = set.prepare(&value);
    let mut id: Option<Arc<str>> = None;
    let mut text: Option<Arc<str>> = None;
    let mut raw = || -> Arc<str> {
        text.get_or_insert_with(|| Arc::from(d.doc.to_json()))
            .clone()
    };
    for (i, t) in timed {
        let Some(s) = states.get_mut(i) else {
            continue;
        };
        s.summary.documents += 1;
        if !set.matches(s.slot, &prepared) {
            continue;
        }
        let id = id
            .get_or_insert_with(|| Arc::from(crate::backend::document_id_with(&d.doc, &mut raw)))
            .clone();
        s.summary.hits += 1;
        if t <= s.done_until {
            s.late += 1;
        }
        match &mut s.kind {
            Kind::Query { pending, .. } => pending.push(QueryHit {
                t,
                ts,
                id,
                json: raw(),
            }),
            Kind::NewTerms {
                fields,
                index,
                pending,
                ..
            } => {
                for tuple in term_tuples(&value, fields, catalog) {
                    let key = tuple_key(&tuple);
                    let key = index.see(&key, || tuple, t, || (ts, id.clone(), raw()));
                    pending.push(TermHit {
                        t,
                        ts,
                        id: id.clone(),
                        key,
                    });
                }
            }
        }
    }
    Processed::Evaluated
}

/// Takes the hits of a raw record that the prefilter decided exactly (`hits`: the matching
/// rules) as `process` would take them from its normalised document; false, with nothing
/// changed, when that needs the document after all (the record is then parsed).
fn take_raw(
    raw: &str,
    r: &RawHits<'_>,
    hits: &[usize],
    states: &mut [RuleRun],
    catalog: &FieldCatalog,
    normalize: &NormalizeOptions,
) -> bool {
    // The document id (`event.id`, as `document_id_with` takes it).
    let Known::Value(id) = r.field("event.id") else {
        return false;
    };
    if id.len() > crate::backend::MAX_ID_BYTES {
        return false;
    }
    let ts = r.ts;
    // Each rule's term tuple (`None`: the document has none), before anything changes.
    let mut taken: Vec<(usize, Option<Vec<Value>>)> = Vec::with_capacity(hits.len());
    for &i in hits {
        let Some(s) = states.get(i) else {
            return false;
        };
        let Kind::NewTerms { fields, .. } = &s.kind else {
            return false;
        };
        // The rule's time is the `@timestamp` (`takes_raw`); outside its range the document
        // is not evaluated against it.
        if !(s.range.0 <= ts && ts <= s.range.1) {
            continue;
        }
        let mut tuple = Some(Vec::with_capacity(fields.len()));
        for f in fields {
            match r.field(f) {
                Known::Value(v) => {
                    // As `term_tuples`: a value over the field's ignore_above is not a term.
                    let limit = catalog.get(f).and_then(|spec| spec.ignore_above);
                    if limit.is_some_and(|l| v.chars().count() > l) {
                        tuple = None;
                    } else if let Some(t) = &mut tuple {
                        t.push(Value::String(v.to_string()));
                    }
                }
                Known::Absent => tuple = None,
                Known::Unknown => return false,
            }
        }
        taken.push((i, tuple));
    }
    // A broken record is parsed, so that it is reported.
    if serde_json::from_str::<serde::de::IgnoredAny>(raw).is_err() {
        return false;
    }
    let id: Arc<str> = Arc::from(id);
    // The normalised text, made only for a document that may become an alert.
    let mut json: Option<Arc<str>> = None;
    for (i, tuple) in taken {
        let Some(s) = states.get_mut(i) else {
            continue;
        };
        s.summary.documents += 1;
        s.summary.hits += 1;
        if ts <= s.done_until {
            s.late += 1;
        }
        let (Kind::NewTerms { index, pending, .. }, Some(tuple)) = (&mut s.kind, tuple) else {
            continue;
        };
        let key = tuple_key(&tuple);
        let key = index.see(
            &key,
            || tuple,
            ts,
            || {
                let text = json
                    .get_or_insert_with(|| normalised_text(raw, normalize))
                    .clone();
                (ts, id.clone(), text)
            },
        );
        pending.push(TermHit {
            t: ts,
            ts,
            id: id.clone(),
            key,
        });
    }
    true
}

/// The JSON text of a raw record's normalised document, as the reader makes it.
fn normalised_text(raw: &str, normalize: &NormalizeOptions) -> Arc<str> {
    match crate::ecs::normalize::normalize_record(raw, normalize) {
        Ok(doc) => Arc::from(doc.to_json()),
        Err(e) => {
            // Not reached: the record was validated and has an eventTime.
            tracing::error!(error = %e, "raw record taken unparsed does not normalise");
            Arc::from("{}")
        }
    }
}

/// Nesting below which a value's JSON text always parses back (serde_json stops at 128).
const SHALLOW: usize = 100;

/// The nesting depth of a value (a scalar is 0).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Tuple identity as the embedded backend compares tuples (values' JSON text).
fn tuple_key(tuple: &[Value]) -> String {
    let mut k = String::new();
    for v in tuple {
        k.push_str(&v.to_string());
        k.push('\u{1}');
    }
    k
}

/// A query rule's hit.
#[derive(Debug, Clone)]
struct QueryHit {
    t: i64,
    ts: i64,
    id: Arc<str>,
    json: Arc<str>,
}

/// A new_terms rule's sighting of one tuple.
#[derive(Debug, Clone)]
struct TermHit {
    t: i64,
    ts: i64,
    id: Arc<str>,
    key: Arc<str>,
}

enum Kind {
    Query {
        /// Hits of the windows not run yet, sorted by (t, ts, id).
        held: Vec<QueryHit>,
        pending: Vec<QueryHit>,
    },
    NewTerms {
        fields: Vec<String>,
        index: FirstSeen,
        held: Vec<TermHit>,
        pending: Vec<TermHit>,
    },
}

/// One execution window.
#[derive(Debug, Clone, Copy)]
struct Exec {
    started_at: DateTime<Utc>,
    window: Window,
    /// Resolved history start (new_terms).
    history_start: Option<DateTime<Utc>>,
}

/// The executions of one rule, generated as the scheduler plans them.
struct Plan {
    schedule: ScheduledRule,
    history: Option<crate::time::DateMath>,
    next: Option<DateTime<Utc>>,
    covered: Option<DateTime<Utc>>,
    end: DateTime<Utc>,
    max_backfill: Duration,
    queue: VecDeque<Exec>,
}

impl Plan {
    fn new(rule: &HuntRule, options: &HuntOptions) -> Plan {
        Plan {
            schedule: rule.schedule.clone(),
            history: rule
                .exec
                .new_terms
                .as_ref()
                .map(|n| n.history_window_start.clone()),
            next: next_due(&rule.schedule, options.start),
            covered: None,
            end: options.end,
            max_backfill: options.max_backfill,
            queue: VecDeque::new(),
        }
    }

    /// The next execution, without consuming it.
    fn peek(&mut self) -> Option<&Exec> {
        while self.queue.is_empty() {
            let t = self.next.filter(|t| *t < self.end)?;
            // On an interval's grid the next instant is one interval on (what `next_due_after`
            // computes, without hashing the rule id for its offset at every execution).
            self.next = match (&self.schedule.cron, self.schedule.interval) {
                (None, interval)
                    if interval >= Duration::milliseconds(1)
                        && interval == Duration::milliseconds(interval.num_milliseconds()) =>
                {
                    t.checked_add_signed(interval)
                }
                _ => next_due_after(&self.schedule, t),
            };
            let p = plan(&self.schedule, t, self.covered, self.max_backfill);
            for (_, window) in p.windows {
                let history_start = self.history.as_ref().map(|h| h.resolve(window.to));
                // The engine fails a new_terms window whose history does not start before it;
                // a failed window does not advance the covered time.
                let failed = history_start.is_some_and(|h| h >= window.from);
                if !failed {
                    self.covered = Some(self.covered.map_or(window.to, |c| c.max(window.to)));
                }
                self.queue.push_back(Exec {
                    started_at: t,
                    window,
                    history_start: history_start.filter(|_| !failed),
                });
            }
        }
        self.queue.front()
    }

    fn pop(&mut self) -> Option<Exec> {
        self.peek()?;
        self.queue.pop_front()
    }
}

/// A rule's state during the hunt.
struct RuleRun {
    rule: HuntRule,
    slot: usize,
    kind: Kind,
    plan: Plan,
    /// Inclusive range of the rule times of the hits its executions use (empty when none runs).
    range: (i64, i64),
    /// Alert ids created (an existing id is a duplicate, as in the alerts file).
    created: HashSet<String>,
    /// End of the last window run.
    done_until: i64,
    late: u64,
    summary: RuleSummary,
}

impl RuleRun {
    fn new(rule: &HuntRule, slot: usize, options: &HuntOptions) -> RuleRun {
        // The smallest `from − history_start` of all windows bounds the compaction; the
        // earliest start and latest end of what the windows read bound the times of the hits
        // that matter.
        let mut probe = Plan::new(rule, options);
        let mut gap = i64::MAX;
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        while let Some(e) = probe.pop() {
            let (from, to) = (
                e.window.from.timestamp_millis(),
                e.window.to.timestamp_millis(),
            );
            match (&rule.exec.new_terms, e.history_start) {
                (None, _) => lo = lo.min(from),
                (Some(_), Some(h)) => {
                    gap = gap.min(from - h.timestamp_millis());
                    lo = lo.min(h.timestamp_millis());
                }
                // A failed new_terms execution reads nothing.
                (Some(_), None) => continue,
            }
            hi = hi.max(to);
        }
        let kind = match &rule.exec.new_terms {
            None => Kind::Query {
                held: Vec::new(),
                pending: Vec::new(),
            },
            Some(nt) => Kind::NewTerms {
                fields: nt.fields.clone(),
                index: FirstSeen::new(if gap == i64::MAX { 1 } else { gap }),
                held: Vec::new(),
                pending: Vec::new(),
            },
        };
        RuleRun {
            rule: rule.clone(),
            slot,
            kind,
            plan: Plan::new(rule, options),
            range: (lo, hi),
            created: HashSet::new(),
            done_until: i64::MIN,
            late: 0,
            summary: RuleSummary {
                rule_id: rule.exec.rule_id.clone(),
                name: rule.exec.name.clone(),
                severity: rule.exec.severity.clone(),
                ..RuleSummary::default()
            },
        }
    }

    /// The document's time on the rule's time field (as the store's time index reads it).
    fn time_of(&self, doc: &Value, ts: i64) -> Option<i64> {
        let time = &self.rule.exec.time;
        if time.primary == "@timestamp" {
            return Some(ts);
        }
        let mut vals = Vec::new();
        values_at(doc, &time.primary, &mut vals);
        match vals.iter().filter_map(|v| date_millis(v)).min() {
            Some(t) => Some(t),
            None if time.fallback_to_timestamp => Some(ts),
            None => None,
        }
    }

    /// The range of a raw record's `@timestamp` this rule uses hits of, when its time is the
    /// `@timestamp` (or `event.ingested` with the fallback: the normaliser does not produce
    /// it, see `prefilter::raw_time`).
    fn raw_range(&self) -> Option<(i64, i64)> {
        let time = &self.rule.exec.time;
        let timed = time.primary == "@timestamp"
            || (time.primary == "event.ingested" && time.fallback_to_timestamp);
        timed.then_some(self.range)
    }

    /// True when the rule's hits can be taken from a raw record (`take_raw`): a new_terms rule
    /// without filters, timed by the record's `@timestamp`, whose term fields a raw record may
    /// reveal.
    fn takes_raw(&self) -> bool {
        let exec = &self.rule.exec;
        matches!(&self.kind, Kind::NewTerms { fields, .. } if fields.iter().all(|f| prefilter::knowable(f)))
            && exec.filters.is_empty()
            && self.raw_range().is_some()
    }

    /// Moves the bucket's hits into the sorted held hits.
    fn flush(&mut self) {
        fn merge<T>(held: &mut Vec<T>, pending: &mut Vec<T>, key: impl Fn(&T) -> (i64, i64, &str)) {
            if pending.is_empty() {
                return;
            }
            held.append(pending);
            held.sort_by(|a, b| key(a).cmp(&key(b)));
        }
        match &mut self.kind {
            Kind::Query { held, pending } => merge(held, pending, |h| (h.t, h.ts, &h.id)),
            Kind::NewTerms { held, pending, .. } => merge(held, pending, |h| (h.t, h.ts, &h.id)),
        }
    }

    /// Runs the windows that end before `watermark`; returns the alerts created.
    fn run_until(&mut self, watermark: i64, on_alert: &mut impl FnMut(HuntAlert)) -> u64 {
        let mut alerts = 0;
        while let Some(e) = self.plan.peek() {
            if e.window.to.timestamp_millis() >= watermark {
                break;
            }
            let Some(e) = self.plan.pop() else { break };
            self.summary.executions += 1;
            self.done_until = self.done_until.max(e.window.to.timestamp_millis());
            alerts += self.execute(&e, on_alert);
        }
        self.summary.alerts += alerts;
        alerts
    }

    /// Drops what no future window needs; returns the entries still held.
    fn prune(&mut self) -> usize {
        let next = self.plan.peek().copied();
        let from = next.map_or(i64::MAX, |e| e.window.from.timestamp_millis());
        match &mut self.kind {
            Kind::Query { held, .. } => {
                let cut = held.partition_point(|h| h.t < from);
                held.drain(..cut);
                held.len()
            }
            Kind::NewTerms { held, index, .. } => {
                let cut = held.partition_point(|h| h.t < from);
                held.drain(..cut);
                let history = next
                    .and_then(|e| e.history_start)
                    .map_or(from, |h| h.timestamp_millis());
                index.prune(history.min(from), from);
                let (times, candidates) = index.entries();
                held.len() + times + candidates
            }
        }
    }

    /// One execution over its window; returns the alerts created.
    fn execute(&mut self, e: &Exec, on_alert: &mut impl FnMut(HuntAlert)) -> u64 {
        let (from, to) = (
            e.window.from.timestamp_millis(),
            e.window.to.timestamp_millis(),
        );
        let exec = &self.rule.exec;
        // Most executions create nothing: the uuid is only made for an alert.
        let mut uuid: Option<String> = None;
        let max = exec.max_signals;
        let mut created = 0usize;
        let mut capped = false;
        let mut emit = |id: String, doc_id: &str, json: &str, values: Option<&[Value]>| -> bool {
            if self.created.contains(&id) {
                return false;
            }
            let source: Value = serde_json::from_str(json).unwrap_or(Value::Null);
            let uuid = uuid.get_or_insert_with(|| {
                crate::scheduler::execution_uuid(&exec.rule_id, e.started_at, e.window)
            });
            let ctx = AlertContext {
                rule_fields: &exec.rule_fields,
                rule_id: &exec.rule_id,
                rule_name: &exec.name,
                severity: &exec.severity,
                risk_score: exec.risk_score,
                execution_uuid: uuid,
                now: e.started_at,
            };
            let doc = build_alert(&ctx, &id, EMBEDDED_INDEX, doc_id, &source, values);
            self.created.insert(id.clone());
            on_alert(HuntAlert {
                rule_id: exec.rule_id.clone(),
                id,
                doc,
            });
            true
        };
        match &self.kind {
            Kind::Query { held, .. } => {
                let lo = held.partition_point(|h| h.t < from);
                for h in held[lo..].iter().take_while(|h| h.t <= to) {
                    if created == max {
                        capped = true;
                        break;
                    }
                    let id = alert_id(EMBEDDED_INDEX, &h.id, &exec.rule_id, &[]);
                    if emit(id, &h.id, &h.json, None) {
                        created += 1;
                    }
                }
            }
            Kind::NewTerms { held, index, .. } => {
                let Some(history_start) = e.history_start else {
                    // A failed execution (history does not start before the window).
                    return 0;
                };
                let history_start = history_start.timestamp_millis();
                // Each tuple of the window with its first sighting after `from`.
                let lo = held.partition_point(|h| h.t < from);
                let mut first: HashMap<&str, Option<&TermHit>> = HashMap::new();
                for h in held[lo..].iter().take_while(|h| h.t <= to) {
                    let f = first.entry(&h.key).or_insert(None);
                    if f.is_none() && h.t > from {
                        *f = Some(h);
                    }
                }
                let mut new: Vec<(&first_seen::Tuple, &TermHit)> = Vec::new();
                for (key, hit) in first {
                    let Some(tuple) = index.get(key) else {
                        continue;
                    };
                    if tuple.seen_in(history_start, from) {
                        continue;
                    }
                    if let Some(hit) = hit {
                        new.push((tuple, hit));
                    }
                }
                new.sort_by(|a, b| cmp_terms(&a.0.values, &b.0.values));
                for (tuple, hit) in new {
                    if created == max {
                        capped = true;
                        break;
                    }
                    let Some(c) = tuple.candidate(hit.t, hit.ts, &hit.id) else {
                        tracing::error!(rule = %exec.rule_id, document = %hit.id, "first document of a new term not kept, alert not built");
                        continue;
                    };
                    let id = alert_id(EMBEDDED_INDEX, &hit.id, &exec.rule_id, &tuple.values);
                    if emit(id, &hit.id, &c.json, Some(&tuple.values)) {
                        created += 1;
                    }
                }
            }
        }
        if capped {
            self.summary.capped += 1;
        }
        created as u64
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn delivery_files_are_bucketed_by_hour_or_day_oldest_first() {
        let p = |s: &str| PathBuf::from(s);
        let at = |s: &str| crate::time::parse_absolute(s).unwrap();
        assert_eq!(
            path_day(&p("x/AWSLogs/1/CloudTrail/us-east-1/2026/10/02/a.json.gz")).map(|d| d.0),
            Some(at("2026-10-02T00:00:00Z"))
        );
        assert_eq!(path_day(&p("x/records.ndjson")), None);
        assert_eq!(
            file_hour(&p(
                "2026/10/02/1_CloudTrail_us-east-1_20261002T0155Z_abc.json.gz"
            )),
            Some((at("2026-10-02T01:00:00Z"), at("2026-10-02T02:00:00Z")))
        );
        let b = buckets(vec![
            p("a/1/2026/10/02/f1.json.gz"),
            p("a/2/2026/10/01/f2.json.gz"),
            p("a/1/2026/10/01/f3.json.gz"),
        ]);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].0, Some(at("2026-10-02T00:00:00Z")));
        assert_eq!(b[0].1.len(), 2);
        assert_eq!(b[1].0, None, "the last bucket runs everything left");
        let h = buckets(vec![
            p("a/2026/10/02/1_CloudTrail_r_20261002T0155Z_x.json.gz"),
            p("b/2026/10/02/2_CloudTrail_r_20261002T0105Z_y.json.gz"),
            p("b/2026/10/02/2_CloudTrail_r_20261002T0005Z_z.json.gz"),
        ]);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].0, Some(at("2026-10-02T01:00:00Z")));
        assert_eq!(h[1].1.len(), 2);
        let one = buckets(vec![p("a/2026/10/02/f1.json.gz"), p("b/x.ndjson")]);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].0, None);
    }
}

//! The embedded backend: an in-process, time-indexed store of ECS documents (loaded from raw
//! CloudTrail through the `ecs` normaliser, or from ECS NDJSON), evaluated with the `matcher`;
//! alerts appended to a local NDJSON file (deduplicated by id across restarts), rule state in a
//! small JSON file written atomically, execution records appended to an NDJSON file.
//!
//! It gives the paging, aggregation and ordering semantics of the Elasticsearch backend:
//! hits oldest first with a stable tie-break, composite-like term tuples in value order with
//! arrays exploded, new terms by first appearance in the history window.

mod files;
mod store;
mod watch;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

pub use files::{read_records, read_state, AlertsFile};
pub use store::{Store, StoreBuilder, StoredDoc, EMBEDDED_INDEX};
pub use watch::{DataWatcher, PollSummary};

use crate::backend::{
    no_index_warning, AlertDoc, Backend, Cursor, Error, ExecStats, ExecutionRecord, Hit, NewTerm,
    Page, QuerySpec, RuleState, TermsPage, ThresholdBucket, ThresholdPage, ThresholdSignal,
    ThresholdSpec, WriteOutcome,
};
use crate::fields::{values_at, FieldCatalog};
use crate::kql::Ast;

/// A compiled rule query (KQL + filters) over stored documents.
pub type DocMatcher = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

/// Which stored documents a query matches (bit per document; alerts never match).
type MatchSet = Arc<Vec<u64>>;

/// The embedded backend.
pub struct EmbeddedBackend {
    /// The documents; replaced by a larger store when files arrive during a live run
    /// ([`EmbeddedBackend::append`]). An execution works on the store it took at its start.
    store: RwLock<Arc<Store>>,
    catalog: FieldCatalog,
    /// Per query (KQL + filters): the documents it matches, computed once per document (stores
    /// only grow and never renumber), so a window is a range scan over bits and only hits are
    /// parsed.
    matches: Mutex<HashMap<String, MatchEntry>>,
    /// Held by [`EmbeddedBackend::append`]: one append at a time builds on the latest store.
    appending: Mutex<()>,
    alerts: Mutex<AlertsFile>,
    state_path: PathBuf,
    state: Mutex<BTreeMap<String, RuleState>>,
    executions_path: PathBuf,
}

/// A query's compiled matcher and its match set over the first `docs` documents.
#[derive(Clone)]
struct MatchEntry {
    matcher: DocMatcher,
    bits: MatchSet,
    docs: usize,
}

/// Where the embedded backend writes.
#[derive(Debug, Clone)]
pub struct EmbeddedPaths {
    pub alerts: PathBuf,
    pub state: PathBuf,
    pub executions: PathBuf,
}

impl EmbeddedBackend {
    /// A backend over `store`, writing to `paths`, with field types from `catalog`.
    pub fn new(
        store: Store,
        catalog: FieldCatalog,
        paths: &EmbeddedPaths,
    ) -> Result<EmbeddedBackend, Error> {
        let alerts = AlertsFile::open(&paths.alerts)?;
        let state = files::read_state(&paths.state)?;
        Ok(EmbeddedBackend {
            store: RwLock::new(Arc::new(store)),
            catalog,
            matches: Mutex::new(HashMap::new()),
            appending: Mutex::new(()),
            alerts: Mutex::new(alerts),
            state_path: paths.state.clone(),
            state: Mutex::new(state),
            executions_path: paths.executions.clone(),
        })
    }

    /// The current store (later appends make a new one).
    pub fn store(&self) -> Arc<Store> {
        crate::sync::read(&self.store).clone()
    }

    /// Adds the documents of `docs` that are not stored yet (same id and `@timestamp`), making
    /// them visible to the executions that start afterwards; every match set computed so far
    /// is extended over them first (each new document parsed once). Returns how many were
    /// added.
    pub fn append(&self, docs: StoreBuilder) -> Result<usize, Error> {
        let _one_at_a_time = lock(&self.appending);
        let old = self.store();
        let Some(new) = old.append(docs) else {
            return Ok(0);
        };
        let added = new.len() - old.len();
        let entries: Vec<(String, MatchEntry)> = lock(&self.matches)
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        // Entries cover at least `old.len()` documents (a set built since the snapshot may
        // cover more: it is kept as it is).
        let todo: Vec<&(String, MatchEntry)> =
            entries.iter().filter(|(_, e)| e.docs < new.len()).collect();
        let matchers: Vec<&DocMatcher> = todo.iter().map(|(_, e)| &e.matcher).collect();
        let from = todo.iter().map(|(_, e)| e.docs).min().unwrap_or(new.len());
        let sets = build_sets(&new, &matchers, from)?;
        {
            let mut cache = lock(&self.matches);
            for ((key, e), fresh) in todo.into_iter().zip(sets) {
                let bits = extend_bits(&e.bits, e.docs, fresh);
                cache.insert(
                    key.clone(),
                    MatchEntry {
                        matcher: e.matcher.clone(),
                        bits: Arc::new(bits),
                        docs: new.len(),
                    },
                );
            }
        }
        *crate::sync::write(&self.store) = Arc::new(new);
        Ok(added)
    }

    /// Alerts in the alerts file (including earlier runs).
    pub fn alert_count(&self) -> usize {
        lock(&self.alerts).len()
    }

    /// The match set of a query over (at least) the documents of `store`.
    fn match_set(&self, store: &Store, query: &Ast, filters: &[Value]) -> Result<MatchSet, Error> {
        let key = match_key(query, filters);
        let cached = lock(&self.matches).get(&key).cloned();
        let (matcher, old, covered) = match cached {
            Some(e) if e.docs >= store.len() => return Ok(e.bits),
            Some(e) => (e.matcher, Some(e.bits), e.docs),
            None => (compile(query, filters, &self.catalog)?, None, 0),
        };
        let fresh = build_sets(store, &[&matcher], covered)?
            .pop()
            .unwrap_or_default();
        let bits = Arc::new(match &old {
            Some(old) => extend_bits(old, covered, fresh),
            None => fresh,
        });
        let mut cache = lock(&self.matches);
        let keep = cache.get(&key).is_some_and(|e| e.docs >= store.len());
        if !keep {
            cache.insert(
                key,
                MatchEntry {
                    matcher,
                    bits: bits.clone(),
                    docs: store.len(),
                },
            );
        }
        Ok(bits)
    }

    /// Builds the match sets of many queries (index patterns, KQL, filters) in one pass over
    /// the store, parsing each document once for all of them, so the first execution of each
    /// rule does not parse the whole store again. Queries whose patterns do not select the
    /// embedded data, already built, or that do not compile (their executions report it) are
    /// left out. Returns how many sets were built.
    pub fn prepare(&self, queries: &[(&[String], &Ast, &[Value])]) -> Result<usize, Error> {
        let store = self.store();
        let mut todo: Vec<(String, DocMatcher)> = Vec::new();
        {
            let cached = lock(&self.matches);
            for (indices, query, filters) in queries {
                if !indices_match(indices) {
                    continue;
                }
                let key = match_key(query, filters);
                if cached.contains_key(&key) || todo.iter().any(|(k, _)| *k == key) {
                    continue;
                }
                if let Ok(m) = compile(query, filters, &self.catalog) {
                    todo.push((key, m));
                }
            }
        }
        let matchers: Vec<&DocMatcher> = todo.iter().map(|(_, m)| m).collect();
        let sets = build_sets(&store, &matchers, 0)?;
        let built = sets.len();
        let mut cached = lock(&self.matches);
        for ((key, matcher), bits) in todo.into_iter().zip(sets) {
            cached.insert(
                key,
                MatchEntry {
                    matcher,
                    bits: Arc::new(bits),
                    docs: store.len(),
                },
            );
        }
        Ok(built)
    }

    /// Matching documents in the window of `q`, ascending by time, as (time, index).
    fn matching<'s>(
        &self,
        store: &'s Store,
        q: &QuerySpec<'_>,
        from: i64,
        to: i64,
    ) -> Result<impl Iterator<Item = (i64, u32)> + 's, Error> {
        let selected = indices_match(q.indices);
        let bits = if selected {
            self.match_set(store, q.query, q.filters)?
        } else {
            Arc::new(Vec::new())
        };
        Ok(store
            .range(q.time, from, to)
            .filter(move |_| selected)
            .filter(move |(_, i)| {
                let i = *i as usize;
                bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
            }))
    }

    fn hit(&self, store: &Store, i: u32, t: i64) -> Hit {
        let d = store.doc(i);
        Hit {
            index: EMBEDDED_INDEX.to_string(),
            id: d.id.clone(),
            source: d.source(),
            sort: vec![Value::from(t), Value::from(i)],
        }
    }

    /// Term tuples of one document for `fields` (cartesian product of exploded arrays).
    fn tuples(&self, doc: &Value, fields: &[String]) -> Vec<Vec<Value>> {
        term_tuples(doc, fields, &self.catalog)
    }
}

/// One bitset per matcher over the documents of `store` numbered `start` and up (the bits of
/// earlier documents are left 0), each document parsed once for all matchers (alerts never
/// match); the documents are cut into contiguous ranges of 64-document words, one per core.
fn build_sets(
    store: &Store,
    matchers: &[&DocMatcher],
    start: usize,
) -> Result<Vec<Vec<u64>>, Error> {
    if matchers.is_empty() {
        return Ok(Vec::new());
    }
    let n = store.len();
    let words = n.div_ceil(64);
    let first = (start / 64).min(words);
    let threads = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .min(8)
        .min((words - first).max(1));
    let per = (words - first).div_ceil(threads);
    let parts: Vec<Option<Vec<Vec<u64>>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (w0, w1) = (
                    (first + t * per).min(words),
                    (first + (t + 1) * per).min(words),
                );
                s.spawn(move || {
                    let mut bits = vec![vec![0u64; w1 - w0]; matchers.len()];
                    for i in (w0 * 64).max(start)..(w1 * 64).min(n) {
                        let d = store.doc(i as u32).source();
                        if crate::alerts::is_alert(&d) {
                            continue;
                        }
                        for (q, m) in matchers.iter().enumerate() {
                            if m(&d) {
                                bits[q][i / 64 - w0] |= 1 << (i % 64);
                            }
                        }
                    }
                    bits
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().ok()).collect()
    });
    let mut out: Vec<Vec<u64>> = vec![vec![0u64; first]; matchers.len()];
    for part in parts {
        let Some(part) = part else {
            return Err(Error::Request {
                operation: "evaluating queries over the embedded store".into(),
                reason: "a worker thread panicked".into(),
            });
        };
        for (q, b) in part.into_iter().enumerate() {
            out[q].extend(b);
        }
    }
    for o in &mut out {
        o.resize(words, 0);
    }
    Ok(out)
}

/// `old` (the bits of the first `covered` documents) combined with `fresh` (bits of the
/// documents from `covered` on).
fn extend_bits(old: &[u64], covered: usize, mut fresh: Vec<u64>) -> Vec<u64> {
    let full = covered / 64;
    for (w, b) in old.iter().enumerate().take(covered.div_ceil(64)) {
        if let Some(f) = fresh.get_mut(w) {
            if w < full {
                *f = *b;
            } else {
                // the word shared by both ranges: old bits below `covered`, fresh above
                let mask = (1u64 << (covered % 64)) - 1;
                *f = (b & mask) | (*f & !mask);
            }
        }
    }
    fresh
}

/// Term tuples of one document for `fields` as a composite aggregation sees them (cartesian
/// product of exploded arrays, values over `ignore_above` left out).
pub fn term_tuples(doc: &Value, fields: &[String], catalog: &FieldCatalog) -> Vec<Vec<Value>> {
    let mut tuples: Vec<Vec<Value>> = vec![Vec::new()];
    let mut vals = Vec::new();
    for f in fields {
        vals.clear();
        values_at(doc, f, &mut vals);
        let ignore_above = catalog.get(f).and_then(|s| s.ignore_above);
        let mut terms: Vec<Value> = Vec::new();
        for v in &vals {
            let t = term_value(v);
            if let (Some(limit), Value::String(s)) = (ignore_above, &t) {
                if s.chars().count() > limit {
                    continue;
                }
            }
            if !terms.contains(&t) {
                terms.push(t);
            }
        }
        if terms.is_empty() {
            return Vec::new();
        }
        let mut next = Vec::with_capacity(tuples.len() * terms.len());
        for prefix in &tuples {
            for t in &terms {
                let mut p = prefix.clone();
                p.push(t.clone());
                next.push(p);
            }
        }
        tuples = next;
    }
    tuples
}

use crate::sync::lock;

/// A term value as a `term` query compares it (Kibana sends threshold history values as
/// strings: `${value}`).
fn term_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// True when `doc` is covered by a signal-history entry: its primary time field at or before
/// the entry's `last` (a `range` on the primary field: documents missing it never are, as in
/// Kibana's filter) and every term among the document's values.
fn excluded(doc: &Value, time: &crate::backend::TimeField, history: &[ThresholdSignal]) -> bool {
    if history.is_empty() {
        return false;
    }
    let mut vals = Vec::new();
    values_at(doc, &time.primary, &mut vals);
    let times: Vec<i64> = vals
        .iter()
        .filter_map(|v| crate::fields::date_millis(v))
        .collect();
    history.iter().any(|h| {
        let last = h.last.timestamp_millis();
        times.iter().any(|t| *t <= last)
            && h.terms.iter().all(|(f, want)| {
                let want = term_text(want);
                let mut vs = Vec::new();
                values_at(doc, f, &mut vs);
                vs.iter().any(|v| term_text(&term_value(v)) == want)
            })
    })
}

/// One threshold bucket being counted.
struct Counting {
    terms: Vec<Value>,
    count: u64,
    distinct: Vec<HashSet<String>>,
    first_ms: i64,
    last_ms: i64,
}

/// The cache key of a query's match set.
fn match_key(query: &Ast, filters: &[Value]) -> String {
    format!("{query:?}{filters:?}")
}

/// True when one of the rule's index patterns selects the embedded data stream.
pub fn indices_match(patterns: &[String]) -> bool {
    patterns.iter().any(|p| {
        p.split(',')
            .any(|p| !p.starts_with('-') && glob_match(p.trim(), EMBEDDED_INDEX))
    })
}

/// `*`-wildcard match of a whole name (index patterns).
fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(pos) => rest = &rest[pos + mid.len()..],
            None => return false,
        }
    }
    true
}

/// A value as a composite aggregation returns it: keyword strings, numbers, booleans.
fn term_value(v: &Value) -> Value {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => v.clone(),
        other => Value::String(other.to_string()),
    }
}

/// Orders term values as Elasticsearch orders composite keys (numbers numerically, strings
/// by bytes).
pub fn cmp_terms(a: &[Value], b: &[Value]) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Value::Number(m), Value::Number(n)) => m
                .as_f64()
                .partial_cmp(&n.as_f64())
                .unwrap_or(Ordering::Equal),
            (Value::String(m), Value::String(n)) => m.as_bytes().cmp(n.as_bytes()),
            (Value::Bool(m), Value::Bool(n)) => m.cmp(n),
            _ => x.to_string().cmp(&y.to_string()),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Compiles a rule's KQL and filters into a matcher over ECS documents.
pub fn compile(
    query: &Ast,
    filters: &[Value],
    catalog: &FieldCatalog,
) -> Result<DocMatcher, Error> {
    let unsupported = |e: crate::matcher::CompileError| Error::Unsupported(e.to_string());
    let mut m = crate::matcher::Matcher::compile(query, catalog).map_err(unsupported)?;
    if !filters.is_empty() {
        m = m.and(crate::matcher::compile_filters(filters, catalog).map_err(unsupported)?);
    }
    let m = Arc::new(m);
    Ok(Arc::new(move |doc: &Value| m.matches_json(doc)))
}

#[async_trait]
impl Backend for EmbeddedBackend {
    async fn search_page(
        &self,
        q: &QuerySpec<'_>,
        size: usize,
        cursor: Option<&Cursor>,
        stats: &ExecStats,
    ) -> Result<Page, Error> {
        let started = Instant::now();
        if !indices_match(q.indices) {
            stats.add_warning(no_index_warning(q.indices));
            return Ok(Page::default());
        }
        let after: Option<(i64, u32)> = cursor.and_then(|c| {
            Some((
                c.search_after.first()?.as_i64()?,
                u32::try_from(c.search_after.get(1)?.as_u64()?).ok()?,
            ))
        });
        let from = after.map_or(millis(q.from), |(t, _)| t);
        let mut hits = Vec::with_capacity(size.min(1024));
        let mut more = false;
        let store = self.store();
        for (t, i) in self.matching(&store, q, from, millis(q.to))? {
            if let Some(a) = after {
                if (t, i) <= a {
                    continue;
                }
            }
            if hits.len() == size {
                more = true;
                break;
            }
            hits.push(self.hit(&store, i, t));
        }
        let cursor = match hits.last() {
            Some(last) if more => Some(Cursor {
                pit: None,
                search_after: last.sort.clone(),
            }),
            _ => None,
        };
        stats.add_search(started.elapsed());
        Ok(Page { hits, cursor })
    }

    async fn close_search(&self, _cursor: &Cursor, _stats: &ExecStats) -> Result<(), Error> {
        Ok(())
    }

    async fn terms_page(
        &self,
        q: &QuerySpec<'_>,
        fields: &[String],
        size: usize,
        after: Option<&Value>,
        stats: &ExecStats,
    ) -> Result<TermsPage, Error> {
        let started = Instant::now();
        if !indices_match(q.indices) {
            stats.add_warning(no_index_warning(q.indices));
            return Ok(TermsPage::default());
        }
        let after: Option<Vec<Value>> = after.and_then(|a| a.as_array().cloned());
        let mut all: Vec<Vec<Value>> = Vec::new();
        let mut seen: HashSet<Vec<String>> = HashSet::new();
        let store = self.store();
        for (_, i) in self.matching(&store, q, millis(q.from), millis(q.to))? {
            for t in self.tuples(&store.doc(i).source(), fields) {
                if let Some(a) = &after {
                    if cmp_terms(&t, a) != std::cmp::Ordering::Greater {
                        continue;
                    }
                }
                let key: Vec<String> = t.iter().map(Value::to_string).collect();
                if seen.insert(key) {
                    all.push(t);
                }
            }
        }
        all.sort_by(|a, b| cmp_terms(a, b));
        let more = all.len() > size;
        all.truncate(size);
        let after = if more {
            all.last().map(|t| Value::Array(t.clone()))
        } else {
            None
        };
        stats.add_search(started.elapsed());
        Ok(TermsPage { tuples: all, after })
    }

    async fn new_terms(
        &self,
        q: &QuerySpec<'_>,
        fields: &[String],
        history_start: DateTime<Utc>,
        tuples: &[Vec<Value>],
        stats: &ExecStats,
    ) -> Result<Vec<NewTerm>, Error> {
        let started = Instant::now();
        let key = |t: &[Value]| -> Vec<String> { t.iter().map(Value::to_string).collect() };
        let wanted: HashMap<Vec<String>, usize> = tuples
            .iter()
            .enumerate()
            .map(|(n, t)| (key(t), n))
            .collect();
        // First appearance of each wanted tuple in [history_start, to], in time order.
        let mut first: HashMap<usize, (i64, u32)> = HashMap::new();
        let store = self.store();
        for (t, i) in self.matching(&store, q, millis(history_start), millis(q.to))? {
            if first.len() == wanted.len() {
                break;
            }
            for tuple in self.tuples(&store.doc(i).source(), fields) {
                if let Some(&n) = wanted.get(&key(&tuple)) {
                    first.entry(n).or_insert((t, i));
                }
            }
        }
        let from = millis(q.from);
        let mut found: Vec<(usize, i64, u32)> = first
            .into_iter()
            .filter(|(_, (t, _))| *t > from)
            .map(|(n, (t, i))| (n, t, i))
            .collect();
        found.sort_by_key(|&(n, _, _)| n);
        stats.add_search(started.elapsed());
        Ok(found
            .into_iter()
            .map(|(n, t, i)| NewTerm {
                values: tuples[n].clone(),
                hit: self.hit(&store, i, t),
            })
            .collect())
    }

    async fn threshold_page(
        &self,
        q: &QuerySpec<'_>,
        spec: &ThresholdSpec,
        exclude: &[ThresholdSignal],
        size: usize,
        after: Option<&Value>,
        stats: &ExecStats,
    ) -> Result<ThresholdPage, Error> {
        let started = Instant::now();
        if !indices_match(q.indices) {
            stats.add_warning(no_index_warning(q.indices));
            return Ok(ThresholdPage::default());
        }
        let after: Option<Vec<Value>> = after.and_then(|a| a.as_array().cloned());
        let mut buckets: HashMap<Vec<String>, Counting> = HashMap::new();
        let store = self.store();
        for (t, i) in self.matching(&store, q, millis(q.from), millis(q.to))? {
            let doc = store.doc(i).source();
            let mut vals = Vec::new();
            if excluded(&doc, q.time, exclude) {
                continue;
            }
            for tuple in self.tuples(&doc, &spec.fields) {
                if let Some(a) = &after {
                    if cmp_terms(&tuple, a) != std::cmp::Ordering::Greater {
                        continue;
                    }
                }
                let key: Vec<String> = tuple.iter().map(Value::to_string).collect();
                let b = buckets.entry(key).or_insert_with(|| Counting {
                    terms: tuple.clone(),
                    count: 0,
                    distinct: vec![HashSet::new(); spec.cardinality.len()],
                    first_ms: t,
                    last_ms: t,
                });
                b.count += 1;
                b.first_ms = b.first_ms.min(t);
                b.last_ms = b.last_ms.max(t);
                for (f, set) in spec.cardinality.iter().zip(b.distinct.iter_mut()) {
                    vals.clear();
                    values_at(&doc, f, &mut vals);
                    set.extend(vals.iter().map(|v| term_text(&term_value(v))));
                }
            }
        }
        let mut all: Vec<ThresholdBucket> = buckets
            .into_values()
            .map(|b| ThresholdBucket {
                terms: b.terms,
                count: b.count,
                cardinality: b.distinct.iter().map(|s| s.len() as u64).collect(),
                first_ms: b.first_ms,
                last_ms: b.last_ms,
            })
            .collect();
        all.sort_by(|a, b| cmp_terms(&a.terms, &b.terms));
        let more = !spec.fields.is_empty() && all.len() > size;
        all.truncate(size.max(1));
        let after = if more {
            all.last().map(|b| Value::Array(b.terms.clone()))
        } else {
            None
        };
        stats.add_search(started.elapsed());
        Ok(ThresholdPage {
            buckets: all,
            after,
        })
    }

    async fn threshold_history(
        &self,
        rule_id: &str,
        since: DateTime<Utc>,
        _stats: &ExecStats,
    ) -> Result<Vec<ThresholdSignal>, Error> {
        Ok(lock(&self.alerts).threshold_history(rule_id, since))
    }

    async fn write_alerts(
        &self,
        alerts: &[AlertDoc],
        stats: &ExecStats,
    ) -> Result<WriteOutcome, Error> {
        let started = Instant::now();
        let out = lock(&self.alerts).write(alerts);
        stats.add_index(started.elapsed());
        out
    }

    async fn load_state(&self) -> Result<BTreeMap<String, RuleState>, Error> {
        Ok(lock(&self.state).clone())
    }

    async fn save_state(&self, rule_id: &str, state: &RuleState) -> Result<(), Error> {
        let mut all = lock(&self.state);
        all.insert(rule_id.to_string(), state.clone());
        files::write_state(&self.state_path, &all)
    }

    async fn record_execution(&self, record: &ExecutionRecord) -> Result<(), Error> {
        files::append_line(&self.executions_path, record)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn index_patterns_select_the_embedded_stream() {
        assert!(indices_match(&["filebeat-*".into(), "logs-aws*".into()]));
        assert!(indices_match(&["logs-aws.cloudtrail-*".into()]));
        assert!(indices_match(&["*".into()]));
        assert!(!indices_match(&["logs-gcp*".into(), "filebeat-*".into()]));
        assert!(!indices_match(&[]));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b*c", "aXcYb"));
    }

    fn backend(n: usize, dir: &std::path::Path) -> EmbeddedBackend {
        let docs: Vec<Value> = (0..n)
            .map(|i| {
                serde_json::json!({
                    "@timestamp": format!("2024-01-01T00:{:02}:{:02}.000Z", (i / 60) % 60, i % 60),
                    "event": {"id": format!("e{i}"), "action": if i % 3 == 0 { "A" } else { "B" }},
                    "user": {"name": format!("u{}", i % 7)}
                })
            })
            .collect();
        let (store, rejected) = Store::new(docs);
        assert!(rejected.is_empty());
        EmbeddedBackend::new(
            store,
            FieldCatalog::builtin(),
            &EmbeddedPaths {
                alerts: dir.join("a.ndjson"),
                state: dir.join("s.json"),
                executions: dir.join("x.ndjson"),
            },
        )
        .unwrap()
    }

    #[test]
    fn prepared_match_sets_equal_the_ones_built_one_query_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        // not a multiple of 64, several words per thread
        let n = 64 * 9 + 13;
        let (ahead, lazy) = (backend(n, dir.path()), backend(n, dir.path()));
        let queries: Vec<Ast> = [
            "event.action: A",
            "user.name: u3 or event.action: A",
            "not user.name: u1",
        ]
        .iter()
        .map(|q| crate::kql::parse(q).unwrap())
        .collect();
        let logs = vec!["logs-*".to_string()];
        let other = vec!["winlogbeat-*".to_string()];
        let mut spec: Vec<(&[String], &Ast, &[Value])> = queries
            .iter()
            .map(|q| (logs.as_slice(), q, &[][..]))
            .collect();
        // a duplicate and a query on patterns that do not select the embedded data
        spec.push((logs.as_slice(), &queries[0], &[]));
        spec.push((other.as_slice(), &queries[1], &[]));
        assert_eq!(ahead.prepare(&spec).unwrap(), 3);
        assert_eq!(ahead.prepare(&spec).unwrap(), 0, "already built");
        for q in &queries {
            let a = ahead.match_set(&ahead.store(), q, &[]).unwrap();
            let b = lazy.match_set(&lazy.store(), q, &[]).unwrap();
            assert_eq!(a, b);
            assert!(a.iter().any(|w| *w != 0));
        }
        let a = ahead.match_set(&ahead.store(), &queries[0], &[]).unwrap();
        let count: u32 = a.iter().map(|w| w.count_ones()).sum();
        assert_eq!(count as usize, n.div_ceil(3));
    }

    #[tokio::test]
    async fn threshold_buckets_explode_arrays_count_distinct_and_skip_history() {
        let dir = tempfile::tempdir().unwrap();
        let doc = |id: &str, t: &str, users: Value, ip: &str| {
            serde_json::json!({"@timestamp": t, "event": {"id": id, "action": "A"},
                "user": {"name": users}, "source": {"ip": ip}})
        };
        let docs = vec![
            doc(
                "1",
                "2024-01-01T00:00:01Z",
                serde_json::json!(["a", "b"]),
                "10.0.0.1",
            ),
            doc(
                "2",
                "2024-01-01T00:00:02Z",
                serde_json::json!("a"),
                "10.0.0.2",
            ),
            doc(
                "3",
                "2024-01-01T00:00:03Z",
                serde_json::json!("a"),
                "10.0.0.2",
            ),
            doc(
                "4",
                "2024-01-01T00:00:04Z",
                serde_json::json!("c"),
                "10.0.0.3",
            ),
        ];
        let (store, _) = Store::new(docs);
        let b = EmbeddedBackend::new(
            store,
            FieldCatalog::builtin(),
            &EmbeddedPaths {
                alerts: dir.path().join("a.ndjson"),
                state: dir.path().join("s.json"),
                executions: dir.path().join("x.ndjson"),
            },
        )
        .unwrap();
        let query = crate::kql::parse("event.action: A").unwrap();
        let indices = vec!["logs-*".to_string()];
        let time = crate::backend::TimeField {
            primary: "@timestamp".into(),
            fallback_to_timestamp: false,
        };
        let q = QuerySpec {
            indices: &indices,
            query: &query,
            filters: &[],
            time: &time,
            from: "2024-01-01T00:00:00Z".parse().unwrap(),
            to: "2024-01-01T00:01:00Z".parse().unwrap(),
        };
        let spec = ThresholdSpec {
            fields: vec!["user.name".into()],
            cardinality: vec!["source.ip".into()],
        };
        let stats = ExecStats::default();
        let p = b
            .threshold_page(&q, &spec, &[], 2, None, &stats)
            .await
            .unwrap();
        let got: Vec<(Value, u64, u64)> = p
            .buckets
            .iter()
            .map(|b| (b.terms[0].clone(), b.count, b.cardinality[0]))
            .collect();
        assert_eq!(
            got,
            vec![("a".into(), 3, 2), ("b".into(), 1, 1)],
            "the array document counts for a and b"
        );
        assert_eq!(p.buckets[0].first_ms, 1_704_067_201_000);
        assert_eq!(p.buckets[0].last_ms, 1_704_067_203_000);
        let rest = b
            .threshold_page(&q, &spec, &[], 2, p.after.as_ref(), &stats)
            .await
            .unwrap();
        assert_eq!(rest.buckets.len(), 1);
        assert!(rest.after.is_none());
        // a's documents up to 00:00:02 were alerted: only document 3 is counted for a, and
        // the array document is left out whole (a `must_not` drops documents, not terms), so
        // b has no bucket left
        let history = vec![ThresholdSignal {
            terms: vec![("user.name".into(), "a".into())],
            last: "2024-01-01T00:00:02Z".parse().unwrap(),
        }];
        let p = b
            .threshold_page(&q, &spec, &history, 10, None, &stats)
            .await
            .unwrap();
        let got: Vec<(Value, u64)> = p
            .buckets
            .iter()
            .map(|b| (b.terms[0].clone(), b.count))
            .collect();
        assert_eq!(got, vec![("a".into(), 1), ("c".into(), 1)]);
        // no fields: one bucket of everything
        let all = b
            .threshold_page(&q, &ThresholdSpec::default(), &[], 10, None, &stats)
            .await
            .unwrap();
        assert_eq!(all.buckets.len(), 1);
        assert_eq!((all.buckets[0].count, all.buckets[0].terms.len()), (4, 0));
    }
    #[tokio::test]
    async fn appended_documents_are_searched_and_match_sets_extended_not_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        // 100 documents: match sets end inside a 64-bit word
        let b = backend(100, dir.path());
        let query = crate::kql::parse("event.action: A").unwrap();
        let logs = vec!["logs-*".to_string()];
        assert_eq!(b.prepare(&[(logs.as_slice(), &query, &[][..])]).unwrap(), 1);
        let count = |b: &EmbeddedBackend| -> u32 {
            let store = b.store();
            b.match_set(&store, &query, &[])
                .unwrap()
                .iter()
                .map(|w| w.count_ones())
                .sum()
        };
        assert_eq!(count(&b), 34);
        let mut more = StoreBuilder::default();
        for (id, t, action) in [
            ("late", "2024-01-01T00:00:30.500Z", "A"),
            ("new", "2024-01-01T01:00:00.000Z", "A"),
            ("other", "2024-01-01T01:00:01.000Z", "B"),
            // already stored (same id and time): not added again
            ("e0", "2024-01-01T00:00:00.000Z", "A"),
        ] {
            more.push(serde_json::json!({"@timestamp": t, "event": {"id": id, "action": action}}));
        }
        assert_eq!(b.append(more).unwrap(), 3);
        assert_eq!(b.store().len(), 103);
        // extended by the append itself: the entry covers the new documents
        let e = lock(&b.matches).values().next().cloned().unwrap();
        assert_eq!(e.docs, 103);
        assert_eq!(count(&b), 36);
        // a search sees them in time order, the late one between the stored ones
        let q = QuerySpec {
            indices: &logs,
            query: &query,
            filters: &[],
            from: DateTime::parse_from_rfc3339("2024-01-01T00:00:30Z")
                .unwrap()
                .into(),
            to: DateTime::parse_from_rfc3339("2024-01-01T02:00:00Z")
                .unwrap()
                .into(),
            time: &crate::backend::TimeField {
                primary: "@timestamp".into(),
                fallback_to_timestamp: false,
            },
        };
        let stats = ExecStats::default();
        let mut ids = Vec::new();
        let mut cursor = None;
        loop {
            let page = b.search_page(&q, 7, cursor.as_ref(), &stats).await.unwrap();
            ids.extend(page.hits.iter().map(|h| h.id.clone()));
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let want: Vec<String> = std::iter::once("e30".to_string())
            .chain(std::iter::once("late".to_string()))
            .chain((33..100).step_by(3).map(|i| format!("e{i}")))
            .chain(std::iter::once("new".to_string()))
            .collect();
        assert_eq!(ids, want);
    }
}

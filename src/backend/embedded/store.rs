//! The in-process document store: ECS documents ordered by `@timestamp`, so a window is a
//! binary-searched range scan; other time fields (`timestamp_override`) get their own sorted
//! index, built on first use. Documents are kept as compact JSON text (about 5 times smaller
//! than a parsed `serde_json::Value`) and parsed when a search needs them.
//!
//! A store is immutable; [`Store::append`] makes a new one that shares the old documents (one
//! more segment), so a live run can add the files that arrive while executions read the
//! previous store. Document numbers never change: a match set computed for a store stays valid
//! for the documents it covers, and only the new ones need evaluating. When appended documents
//! are older than the newest stored one, a (time, document) index keeps the time order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::backend::TimeField;
use crate::ecs::json::Json;
use crate::ecs::EcsDoc;
use crate::fields::{date_millis, values_at};

/// The index name documents of the embedded store belong to (the aws integration's data
/// stream), so rule index patterns such as `logs-aws*` select them and alert ancestors name it.
pub const EMBEDDED_INDEX: &str = "logs-aws.cloudtrail-default";

/// (time, document index) pairs sorted ascending.
type TimeIndex = Arc<Vec<(i64, u32)>>;

/// One stored document.
#[derive(Debug, Clone)]
pub struct StoredDoc {
    /// `@timestamp` in epoch milliseconds.
    pub ts: i64,
    /// Stable id: `event.id` when present, else a hash of the document.
    pub id: String,
    /// The document as compact JSON.
    raw: Box<str>,
}

impl StoredDoc {
    /// The document (parsed from its stored JSON text, which this store wrote).
    pub fn source(&self) -> Value {
        serde_json::from_str(&self.raw).unwrap_or(Value::Null)
    }
}

/// Documents numbered in the order they were added, each segment sorted by (`@timestamp`, id).
#[derive(Debug, Default)]
pub struct Store {
    segments: Vec<Arc<Vec<StoredDoc>>>,
    /// The number of the first document of each segment.
    starts: Vec<u32>,
    len: usize,
    /// (`@timestamp`, document) in time order, once an append broke the documents' order;
    /// `None` while document numbers are in time order.
    primary: Option<TimeIndex>,
    /// Sorted (time, doc index) per non-default time field.
    time_indexes: Mutex<HashMap<(String, bool), TimeIndex>>,
}

/// Builds a store one document at a time, so loading holds only the compact documents.
#[derive(Debug, Default)]
pub struct StoreBuilder {
    docs: Vec<StoredDoc>,
    /// Reused for serialising each document, which is then stored in an allocation of its
    /// exact size (a `String` grown by doubling can keep up to twice the bytes it holds).
    scratch: Vec<u8>,
}

impl StoreBuilder {
    /// Adds a document; gives it back when it has no usable `@timestamp`.
    pub fn push(&mut self, source: Value) -> Option<Value> {
        let Some(ts) = source.get("@timestamp").and_then(date_millis) else {
            return Some(source);
        };
        let id = crate::backend::value_id(&source);
        let raw: Box<str> = Box::from(source.to_string().as_str());
        self.docs.push(StoredDoc { ts, id, raw });
        None
    }

    /// Adds a document straight from the normaliser (serialised once, never built as a
    /// `Value`); false when it has no usable `@timestamp`.
    pub fn push_doc(&mut self, doc: &EcsDoc) -> bool {
        let Some(ts) = doc_time(doc) else {
            return false;
        };
        self.scratch.clear();
        doc.write_json(&mut self.scratch);
        // The serialiser writes UTF-8 only.
        let Ok(raw) = std::str::from_utf8(&self.scratch) else {
            return false;
        };
        let id = crate::backend::document_id(doc, raw);
        self.docs.push(StoredDoc {
            ts,
            id,
            raw: Box::from(raw),
        });
        true
    }

    /// [`push_doc`](Self::push_doc) for a document read after the start: `event.ingested` is
    /// set to `ingested` (RFC 3339), as the aws integration's pipeline sets it at ingest, so
    /// rules that search by ingest time (`timestamp_override`) see late-delivered events. The
    /// id is the one the document has without it, so reading a file again finds the same ids.
    pub fn push_ingested(&mut self, doc: &mut EcsDoc, ingested: &str) -> bool {
        let Some(ts) = doc_time(doc) else {
            return false;
        };
        self.scratch.clear();
        doc.write_json(&mut self.scratch);
        let Ok(plain) = std::str::from_utf8(&self.scratch) else {
            return false;
        };
        let id = crate::backend::document_id(doc, plain);
        doc.set("event.ingested", Json::String(ingested.into()));
        self.scratch.clear();
        doc.write_json(&mut self.scratch);
        let Ok(raw) = std::str::from_utf8(&self.scratch) else {
            return false;
        };
        self.docs.push(StoredDoc {
            ts,
            id,
            raw: Box::from(raw),
        });
        true
    }

    /// Documents added so far.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// The documents sorted by (time, id), exact duplicates (same id and time) once.
    fn sorted(mut self) -> Vec<StoredDoc> {
        self.docs
            .sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.id.cmp(&b.id)));
        self.docs.dedup_by(|a, b| a.id == b.id && a.ts == b.ts);
        self.docs.shrink_to_fit();
        self.docs
    }

    /// The store: documents sorted by (time, id), exact duplicates (same id and time) once.
    pub fn finish(self) -> Store {
        let docs = self.sorted();
        Store {
            len: docs.len(),
            starts: vec![0],
            segments: vec![Arc::new(docs)],
            primary: None,
            time_indexes: Mutex::new(HashMap::new()),
        }
    }
}

fn doc_time(doc: &EcsDoc) -> Option<i64> {
    doc.get("@timestamp")
        .map(Json::to_value)
        .as_ref()
        .and_then(date_millis)
}

/// The earliest of a document's values of `time.primary`, else its `@timestamp` when the field
/// falls back to it.
fn time_of(d: &StoredDoc, time: &TimeField) -> Option<i64> {
    let source = d.source();
    let mut vals = Vec::new();
    values_at(&source, &time.primary, &mut vals);
    match vals.iter().filter_map(|v| date_millis(v)).min() {
        Some(t) => Some(t),
        None if time.fallback_to_timestamp => Some(d.ts),
        None => None,
    }
}

/// Merges two ascending lists.
fn merge(a: &[(i64, u32)], b: &[(i64, u32)]) -> Vec<(i64, u32)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

impl Store {
    /// Builds a store; documents without a parsable `@timestamp` are returned as rejected.
    pub fn new(sources: Vec<Value>) -> (Store, Vec<Value>) {
        let mut b = StoreBuilder::default();
        let rejected = sources.into_iter().filter_map(|s| b.push(s)).collect();
        (b.finish(), rejected)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn doc(&self, i: u32) -> &StoredDoc {
        if self.segments.len() == 1 {
            return &self.segments[0][i as usize];
        }
        let s = self.starts.partition_point(|&start| start <= i) - 1;
        &self.segments[s][(i - self.starts[s]) as usize]
    }

    /// (`@timestamp`, document) of the `k`-th document in time order.
    fn nth_by_time(&self, k: usize) -> (i64, u32) {
        match &self.primary {
            Some(ix) => ix[k],
            None => (self.doc(k as u32).ts, k as u32),
        }
    }

    /// Time of the first and last document.
    pub fn span(&self) -> Option<(i64, i64)> {
        if self.is_empty() {
            return None;
        }
        Some((self.nth_by_time(0).0, self.nth_by_time(self.len - 1).0))
    }

    /// Positions in time order of the first document at or after `t`.
    fn first_at_or_after(&self, t: i64) -> usize {
        match &self.primary {
            Some(ix) => ix.partition_point(|(ts, _)| *ts < t),
            None if self.segments.len() == 1 => self.segments[0].partition_point(|d| d.ts < t),
            None => {
                // Document numbers are in time order across segments.
                let (mut lo, mut hi) = (0usize, self.len);
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    if self.doc(mid as u32).ts < t {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                lo
            }
        }
    }

    /// True when a document with this id and `@timestamp` is stored.
    pub fn contains(&self, ts: i64, id: &str) -> bool {
        let mut k = self.first_at_or_after(ts);
        while k < self.len {
            let (t, i) = self.nth_by_time(k);
            if t != ts {
                return false;
            }
            if self.doc(i).id == id {
                return true;
            }
            k += 1;
        }
        false
    }

    /// A store with the documents of `added` that are not stored yet (same id and
    /// `@timestamp`) after these, numbered from `len()`; `None` when all of them are.
    /// Time indexes already built are extended, not rebuilt.
    pub fn append(&self, added: StoreBuilder) -> Option<Store> {
        let mut docs = added.sorted();
        docs.retain(|d| !self.contains(d.ts, &d.id));
        if docs.is_empty() {
            return None;
        }
        let base = self.len as u32;
        let fresh: Vec<(i64, u32)> = docs
            .iter()
            .enumerate()
            .map(|(n, d)| (d.ts, base + n as u32))
            .collect();
        let in_order = self.primary.is_none()
            && self
                .span()
                .is_none_or(|(_, last)| fresh.first().is_some_and(|(t, _)| *t >= last));
        let primary = if in_order {
            None
        } else {
            let old: Vec<(i64, u32)> = (0..self.len).map(|k| self.nth_by_time(k)).collect();
            Some(Arc::new(merge(&old, &fresh)))
        };
        let mut indexes = HashMap::new();
        for (key, ix) in crate::sync::lock(&self.time_indexes).iter() {
            let time = TimeField {
                primary: key.0.clone(),
                fallback_to_timestamp: key.1,
            };
            let mut more: Vec<(i64, u32)> = docs
                .iter()
                .enumerate()
                .filter_map(|(n, d)| Some((time_of(d, &time)?, base + n as u32)))
                .collect();
            more.sort_unstable();
            indexes.insert(key.clone(), Arc::new(merge(ix, &more)));
        }
        let mut segments = self.segments.clone();
        let mut starts = self.starts.clone();
        if self.is_empty() {
            segments.clear();
            starts.clear();
        }
        starts.push(base);
        let len = self.len + docs.len();
        segments.push(Arc::new(docs));
        Some(Store {
            segments,
            starts,
            len,
            primary,
            time_indexes: Mutex::new(indexes),
        })
    }

    /// (time, doc index) pairs with time in `[from, to]`, ascending, for `time`.
    pub fn range(&self, time: &TimeField, from: i64, to: i64) -> RangeIter<'_> {
        if time.primary == "@timestamp" {
            let lo = self.first_at_or_after(from);
            let hi = match to.checked_add(1) {
                Some(t) => self.first_at_or_after(t),
                None => self.len,
            };
            return RangeIter::Primary {
                store: self,
                pos: lo,
                end: hi.max(lo),
            };
        }
        let index = self.time_index(time);
        let lo = index.partition_point(|(t, _)| *t < from);
        let hi = index.partition_point(|(t, _)| *t <= to);
        RangeIter::Indexed {
            index,
            pos: lo,
            end: hi.max(lo),
        }
    }

    fn time_index(&self, time: &TimeField) -> TimeIndex {
        let key = (time.primary.clone(), time.fallback_to_timestamp);
        let mut cache = crate::sync::lock(&self.time_indexes);
        if let Some(ix) = cache.get(&key) {
            return ix.clone();
        }
        let mut ix: Vec<(i64, u32)> = Vec::new();
        for i in 0..self.len as u32 {
            if let Some(t) = time_of(self.doc(i), time) {
                ix.push((t, i));
            }
        }
        ix.sort_unstable();
        let ix = Arc::new(ix);
        cache.insert(key, ix.clone());
        ix
    }
}

/// Iterator over (time, doc index) in a time range.
pub enum RangeIter<'a> {
    Primary {
        store: &'a Store,
        pos: usize,
        end: usize,
    },
    Indexed {
        index: TimeIndex,
        pos: usize,
        end: usize,
    },
}

impl Iterator for RangeIter<'_> {
    type Item = (i64, u32);

    fn next(&mut self) -> Option<(i64, u32)> {
        match self {
            RangeIter::Primary { store, pos, end } => {
                if *pos >= *end {
                    return None;
                }
                let k = *pos;
                *pos += 1;
                Some(store.nth_by_time(k))
            }
            RangeIter::Indexed { index, pos, end } => {
                if *pos >= *end {
                    return None;
                }
                let item = index[*pos];
                *pos += 1;
                Some(item)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tf(primary: &str, fallback: bool) -> TimeField {
        TimeField {
            primary: primary.into(),
            fallback_to_timestamp: fallback,
        }
    }

    #[test]
    fn range_scan_is_inclusive_and_sorted() {
        let docs = vec![
            json!({"@timestamp": "2024-01-01T00:00:02Z", "event": {"id": "b"}}),
            json!({"@timestamp": "2024-01-01T00:00:01Z", "event": {"id": "a"}}),
            json!({"@timestamp": "2024-01-01T00:00:03Z", "event": {"id": "c", "ingested": "2024-01-01T00:10:00Z"}}),
            json!({"no": "time"}),
        ];
        let (store, rejected) = Store::new(docs);
        assert_eq!(rejected.len(), 1);
        let t1 = date_millis(&json!("2024-01-01T00:00:01Z")).unwrap();
        let t2 = date_millis(&json!("2024-01-01T00:00:02Z")).unwrap();
        let ids: Vec<_> = store
            .range(&tf("@timestamp", true), t1, t2)
            .map(|(_, i)| store.doc(i).id.clone())
            .collect();
        assert_eq!(ids, vec!["a", "b"]);
        // override with fallback: c moves to 00:10, a and b fall back to @timestamp
        let ids: Vec<_> = store
            .range(&tf("event.ingested", true), t1, t2 + 1_000)
            .map(|(_, i)| store.doc(i).id.clone())
            .collect();
        assert_eq!(ids, vec!["a", "b"]);
        // without fallback, only documents that have the override
        assert_eq!(
            store
                .range(&tf("event.ingested", false), 0, i64::MAX)
                .count(),
            1
        );
    }
    fn builder(docs: &[(&str, &str)]) -> StoreBuilder {
        let mut b = StoreBuilder::default();
        for (id, t) in docs {
            assert!(b
                .push(json!({"@timestamp": t, "event": {"id": id}}))
                .is_none());
        }
        b
    }

    fn ids(store: &Store, time: &TimeField) -> Vec<String> {
        store
            .range(time, 0, i64::MAX)
            .map(|(_, i)| store.doc(i).id.clone())
            .collect()
    }

    #[test]
    fn appending_newer_documents_keeps_numbers_and_needs_no_index() {
        let store =
            builder(&[("b", "2024-01-01T00:00:02Z"), ("a", "2024-01-01T00:00:01Z")]).finish();
        let more = store
            .append(builder(&[
                ("c", "2024-01-01T00:00:03Z"),
                ("a", "2024-01-01T00:00:01Z"),
            ]))
            .unwrap();
        // the copy of `a` is already stored: only `c` is added, numbered after the others
        assert_eq!(more.len(), 3);
        assert_eq!(more.doc(2).id, "c");
        assert!(more.primary.is_none());
        assert_eq!(ids(&more, &tf("@timestamp", true)), ["a", "b", "c"]);
        // nothing new at all: no new store
        assert!(more
            .append(builder(&[("b", "2024-01-01T00:00:02Z")]))
            .is_none());
        // the old store is unchanged
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn appending_older_documents_keeps_time_order_and_extends_override_indexes() {
        let store = Store::new(vec![
            json!({"@timestamp": "2024-01-01T00:00:05Z", "event": {"id": "e5", "ingested": "2024-01-01T00:01:00Z"}}),
            json!({"@timestamp": "2024-01-01T00:00:07Z", "event": {"id": "e7"}}),
        ])
        .0;
        let over = tf("event.ingested", true);
        assert_eq!(ids(&store, &over), ["e7", "e5"]);
        let mut late = StoreBuilder::default();
        late.push(json!({"@timestamp": "2024-01-01T00:00:06Z", "event": {"id": "e6", "ingested": "2024-01-01T00:02:00Z"}}));
        late.push(json!({"@timestamp": "2024-01-01T00:00:01Z", "event": {"id": "e1"}}));
        let more = store.append(late).unwrap();
        assert!(more.primary.is_some());
        assert_eq!(
            ids(&more, &tf("@timestamp", true)),
            ["e1", "e5", "e6", "e7"]
        );
        // the override index cached before the append was extended with the new documents
        assert_eq!(ids(&more, &over), ["e1", "e7", "e5", "e6"]);
        let t6 = date_millis(&json!("2024-01-01T00:00:06Z")).unwrap();
        let window: Vec<_> = more
            .range(&tf("@timestamp", true), t6, t6 + 1_000)
            .map(|(_, i)| more.doc(i).id.clone())
            .collect();
        assert_eq!(window, ["e6", "e7"]);
        assert_eq!(more.span(), Some((t6 - 5_000, t6 + 1_000)));
        assert!(more.contains(t6, "e6") && !more.contains(t6, "e7"));
        // and a third segment on top of an indexed store
        let third = more
            .append(builder(&[("e0", "2023-12-31T23:59:59Z")]))
            .unwrap();
        assert_eq!(
            ids(&third, &tf("@timestamp", true)),
            ["e0", "e1", "e5", "e6", "e7"]
        );
        assert_eq!(third.doc(4).id, "e0");
    }

    #[test]
    fn an_empty_store_takes_appended_documents() {
        let store = StoreBuilder::default().finish();
        let more = store
            .append(builder(&[("x", "2024-01-01T00:00:00Z")]))
            .unwrap();
        assert_eq!(ids(&more, &tf("@timestamp", false)), ["x"]);
        assert_eq!(more.doc(0).id, "x");
    }
}

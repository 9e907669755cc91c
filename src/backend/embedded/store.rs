//! The in-process document store: ECS documents sorted by `@timestamp`, so a window is a
//! binary-searched range scan; other time fields (`timestamp_override`) get their own sorted
//! index, built on first use. Documents are kept as compact JSON text (about 5 times smaller
//! than a parsed `serde_json::Value`) and parsed when a search needs them.

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

/// Documents sorted by (`@timestamp`, id).
#[derive(Debug, Default)]
pub struct Store {
    docs: Vec<StoredDoc>,
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
        let Some(ts) = doc
            .get("@timestamp")
            .map(Json::to_value)
            .as_ref()
            .and_then(date_millis)
        else {
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

    /// Documents added so far.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// The store: documents sorted by (time, id), exact duplicates (same id and time) once.
    pub fn finish(mut self) -> Store {
        self.docs
            .sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.id.cmp(&b.id)));
        self.docs.dedup_by(|a, b| a.id == b.id && a.ts == b.ts);
        self.docs.shrink_to_fit();
        Store {
            docs: self.docs,
            time_indexes: Mutex::new(HashMap::new()),
        }
    }
}

impl Store {
    /// Builds a store; documents without a parsable `@timestamp` are returned as rejected.
    pub fn new(sources: Vec<Value>) -> (Store, Vec<Value>) {
        let mut b = StoreBuilder::default();
        let rejected = sources.into_iter().filter_map(|s| b.push(s)).collect();
        (b.finish(), rejected)
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    pub fn doc(&self, i: u32) -> &StoredDoc {
        &self.docs[i as usize]
    }

    /// Time of the first and last document.
    pub fn span(&self) -> Option<(i64, i64)> {
        Some((self.docs.first()?.ts, self.docs.last()?.ts))
    }

    /// (time, doc index) pairs with time in `[from, to]`, ascending, for `time`.
    pub fn range(&self, time: &TimeField, from: i64, to: i64) -> RangeIter<'_> {
        if time.primary == "@timestamp" {
            let lo = self.docs.partition_point(|d| d.ts < from);
            let hi = self.docs.partition_point(|d| d.ts <= to);
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
        for (i, d) in self.docs.iter().enumerate() {
            let source = d.source();
            let mut vals = Vec::new();
            values_at(&source, &time.primary, &mut vals);
            let t = vals.iter().filter_map(|v| date_millis(v)).min();
            let t = match t {
                Some(t) => Some(t),
                None if time.fallback_to_timestamp => Some(d.ts),
                None => None,
            };
            if let Some(t) = t {
                ix.push((t, i as u32));
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
                let i = *pos;
                *pos += 1;
                Some((store.docs[i].ts, i as u32))
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
}

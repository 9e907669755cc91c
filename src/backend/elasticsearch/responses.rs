//! Elasticsearch responses read into small serde structs: only the fields detectd uses, every
//! one optional or defaulted so an odd response is an error message, never a panic.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct OpenPit {
    /// Elasticsearch `id`, OpenSearch `pit_id`.
    #[serde(alias = "pit_id")]
    pub id: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct Shards {
    #[serde(default)]
    pub failed: u64,
    #[serde(default)]
    pub failures: Vec<Value>,
}

#[derive(Debug, Deserialize)]
pub struct SearchResponse {
    #[serde(default)]
    pub pit_id: Option<String>,
    #[serde(default, rename = "_shards")]
    pub shards: Shards,
    #[serde(default)]
    pub hits: Hits,
    #[serde(default)]
    pub aggregations: Option<Aggregations>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Hits {
    #[serde(default)]
    pub hits: Vec<RawHit>,
}

#[derive(Debug, Deserialize)]
pub struct RawHit {
    #[serde(rename = "_index")]
    pub index: String,
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_source", default)]
    pub source: Value,
    #[serde(default)]
    pub sort: Vec<Value>,
}

#[derive(Debug, Deserialize)]
pub struct Aggregations {
    pub new_terms: BucketAgg,
}

#[derive(Debug, Deserialize)]
pub struct BucketAgg {
    #[serde(default)]
    pub after_key: Option<Value>,
    #[serde(default)]
    pub buckets: Vec<Bucket>,
    /// A single-bucket (`filter`) aggregation: threshold rules without fields.
    #[serde(flatten)]
    pub single: ThresholdStats,
    #[serde(default)]
    pub fallback: Option<FallbackAgg>,
}

/// What a threshold bucket holds besides its key: count, first and last time, distinct
/// counts (`cardinality_<i>`, read from `other`).
#[derive(Debug, Default, Deserialize)]
pub struct ThresholdStats {
    #[serde(default)]
    pub doc_count: u64,
    #[serde(default)]
    pub min_time: Option<MinAgg>,
    #[serde(default)]
    pub max_time: Option<MinAgg>,
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, Value>,
}

impl ThresholdStats {
    /// First and last time in epoch millis, the override's and the fallback's combined.
    pub fn times(&self, fallback: Option<&FallbackAgg>) -> Option<(i64, i64)> {
        let v = |m: &Option<MinAgg>| m.as_ref().and_then(|m| m.value);
        let pick = |a: Option<f64>, b: Option<f64>, f: fn(f64, f64) -> f64| match (a, b) {
            (Some(a), Some(b)) => Some(f(a, b)),
            (a, b) => a.or(b),
        };
        let min = pick(
            v(&self.min_time),
            fallback.and_then(|f| v(&f.min)),
            f64::min,
        )?;
        let max = pick(
            v(&self.max_time),
            fallback.and_then(|f| v(&f.max)),
            f64::max,
        )?;
        Some((min as i64, max as i64))
    }

    /// The `value` of the sub-aggregation `name` (a `cardinality`).
    pub fn count_of(&self, name: &str) -> u64 {
        self.other
            .get(name)
            .and_then(|a| a.get("value"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }
}

#[derive(Debug, Deserialize)]
pub struct Bucket {
    pub key: Value,
    #[serde(default)]
    pub docs: Option<TopHits>,
    /// First seen: `min(time)` ...
    #[serde(default)]
    pub first_seen: Option<MinAgg>,
    /// ... or, with a `timestamp_override`, `min(override)` and `min(@timestamp)` of the
    /// documents without it.
    #[serde(default)]
    pub ingested_min: Option<MinAgg>,
    #[serde(default)]
    pub fallback: Option<FallbackAgg>,
    /// Threshold rules: count, times, distinct counts.
    #[serde(flatten)]
    pub stats: ThresholdStats,
}

#[derive(Debug, Deserialize)]
pub struct MinAgg {
    /// `null` when no document had the field.
    #[serde(default)]
    pub value: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub struct FallbackAgg {
    #[serde(default)]
    pub min: Option<MinAgg>,
    #[serde(default)]
    pub max: Option<MinAgg>,
}

impl Bucket {
    /// The bucket's first-seen time in epoch millis, as the `bucket_selector` computes it.
    pub fn first_seen_millis(&self) -> Option<f64> {
        let v = |m: &Option<MinAgg>| m.as_ref().and_then(|m| m.value);
        if let Some(f) = v(&self.first_seen) {
            return Some(f);
        }
        let a = v(&self.ingested_min);
        let b = self.fallback.as_ref().and_then(|f| v(&f.min));
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct TopHits {
    #[serde(default)]
    pub hits: Hits,
}

#[derive(Debug, Deserialize)]
pub struct BulkResponse {
    #[serde(default)]
    pub items: Vec<std::collections::BTreeMap<String, BulkItem>>,
}

#[derive(Debug, Deserialize)]
pub struct BulkItem {
    #[serde(rename = "_id", default)]
    pub id: Option<String>,
    pub status: u16,
    #[serde(default)]
    pub error: Option<Value>,
}

/// `type: reason` of an Elasticsearch error object, following `caused_by` to the innermost
/// cause when it is more telling (an empty `root_cause` puts the real cause there).
pub fn describe_error(error: &Value) -> String {
    let ty = error.get("type").and_then(Value::as_str).unwrap_or("error");
    let reason = error.get("reason").and_then(Value::as_str).unwrap_or("");
    let mut out = format!("{ty}: {reason}");
    let root = error
        .get("root_cause")
        .and_then(Value::as_array)
        .and_then(|r| r.first());
    let deepest = deepest_cause(error);
    if let Some(r) = root {
        let rt = r.get("type").and_then(Value::as_str).unwrap_or("");
        let rr = r.get("reason").and_then(Value::as_str).unwrap_or("");
        if rt != ty || rr != reason {
            out.push_str(&format!(" (root cause {rt}: {rr})"));
        }
    }
    if let Some(c) = deepest {
        let ct = c.get("type").and_then(Value::as_str).unwrap_or("");
        let cr = c.get("reason").and_then(Value::as_str).unwrap_or("");
        if !out.contains(cr) || !out.contains(ct) {
            out.push_str(&format!(" (caused by {ct}: {cr})"));
        }
    }
    out
}

fn deepest_cause(v: &Value) -> Option<&Value> {
    let mut cur = v.get("caused_by")?;
    while let Some(next) = cur.get("caused_by") {
        cur = next;
    }
    Some(cur)
}

/// Every error `type` in an error body (top level, root causes, causes, shard failures).
pub fn error_types(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_types(body, &mut out);
    out
}

fn collect_types(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(t) = m.get("type").and_then(Value::as_str) {
                out.push(t.to_string());
            }
            for (k, child) in m {
                if k != "type" {
                    collect_types(child, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|c| collect_types(c, out)),
        _ => {}
    }
}

//! Values of a field in a source document: dotted paths walked through objects and arrays the
//! way Elasticsearch reads `_source` (`{"a.b": 1}` like `{"a": {"b": 1}}`), and dates as epoch
//! millis. Shared by both backends (document ids, term values, time fields).

use chrono::DateTime;
use serde_json::Value;

/// Reads a date field (`2024-01-01T00:00:00Z` strings or epoch millis) as epoch millis.
pub fn date_millis(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis())
            .or_else(|| crate::time::parse_absolute(s).map(|t| t.timestamp_millis())),
        Value::Number(n) => n.as_i64(),
        Value::Array(a) => a.iter().filter_map(date_millis).min(),
        _ => None,
    }
}

/// Values at a dotted path, walking objects and arrays (dotted keys at any level are also
/// honoured, as Elasticsearch treats `{"a.b": 1}` like `{"a": {"b": 1}}`).
pub fn values_at<'v>(doc: &'v Value, path: &str, out: &mut Vec<&'v Value>) {
    match doc {
        Value::Array(items) => {
            for it in items {
                values_at(it, path, out);
            }
        }
        Value::Object(map) => {
            if let Some(v) = map.get(path) {
                push_leaves(v, out);
            }
            let mut idx = 0;
            while let Some(pos) = path[idx..].find('.') {
                let split = idx + pos;
                if let Some(child) = map.get(&path[..split]) {
                    values_at(child, &path[split + 1..], out);
                }
                idx = split + 1;
            }
        }
        _ => {}
    }
}

fn push_leaves<'v>(v: &'v Value, out: &mut Vec<&'v Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| push_leaves(i, out)),
        Value::Null => {}
        other => out.push(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_at_walks_arrays_and_dotted_keys() {
        let d = json!({"a": {"b": [{"c": 1}, {"c": [2, 3]}]}, "x.y": "flat", "x": {"z": "nested"}});
        let mut out = Vec::new();
        values_at(&d, "a.b.c", &mut out);
        assert_eq!(out, vec![&json!(1), &json!(2), &json!(3)]);
        out.clear();
        values_at(&d, "x.y", &mut out);
        assert_eq!(out, vec![&json!("flat")]);
        out.clear();
        values_at(&d, "x.z", &mut out);
        assert_eq!(out, vec![&json!("nested")]);
    }
}

//! The matcher against real Elasticsearch answers: the documents bulk-indexed in the recorded
//! fixtures (`es-fixtures/013`, `014`), typed by the recorded mappings (`016`, `017`), and the
//! recorded searches whose hit counts show a mapping behaviour (constant_keyword, flattened
//! sub-keys, ignore_above, term on text vs keyword, CIDR, booleans, ranges).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use detectd::fields::{FieldCatalog, FieldSpec};
use detectd::matcher::compile_filters;
use serde_json::Value;

/// One index as recorded: its documents (with the ids ES gave them) and its field types.
struct Index {
    docs: Vec<(String, Value)>,
    catalog: FieldCatalog,
}

fn read(dir: &Path, prefix: &str) -> Value {
    let entry = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("fixture {prefix} missing"));
    serde_json::from_str(&std::fs::read_to_string(entry).unwrap()).unwrap()
}

/// Documents of a recorded `_bulk` request, paired with the ids of its response.
fn bulk_docs(fixture: &Value) -> Vec<(String, Value)> {
    let body = fixture["request"]["body"].as_str().unwrap();
    let sources: Vec<Value> = body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect::<Vec<Value>>()
        .chunks(2)
        .map(|pair| pair[1].clone())
        .collect();
    let items = fixture["response"]["items"].as_array().unwrap();
    assert_eq!(items.len(), sources.len());
    items
        .iter()
        .zip(sources)
        .map(|(item, doc)| {
            let op = item.as_object().unwrap().values().next().unwrap();
            (op["_id"].as_str().unwrap().to_string(), doc)
        })
        .collect()
}

/// A recorded `_mapping` response as a field catalog (types, ignore_above, constant values,
/// multi-fields).
fn mapping_catalog(fixture: &Value) -> FieldCatalog {
    fn walk(props: &serde_json::Map<String, Value>, prefix: &str, out: &mut FieldCatalog) {
        for (name, m) in props {
            let full = format!("{prefix}{name}");
            if let Some(sub) = m.get("properties").and_then(Value::as_object) {
                walk(sub, &format!("{full}."), out);
                continue;
            }
            let ty = m.get("type").and_then(Value::as_str).unwrap_or("object");
            let mut spec = FieldSpec::new(full.clone(), ty);
            spec.ignore_above = m
                .get("ignore_above")
                .and_then(Value::as_u64)
                .map(|n| n as usize);
            spec.constant_value = m.get("value").and_then(Value::as_str).map(str::to_string);
            out.insert(spec);
            for (sub, sm) in m
                .get("fields")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let mut s = FieldSpec::new(format!("{full}.{sub}"), sm["type"].as_str().unwrap());
                s.ignore_above = sm
                    .get("ignore_above")
                    .and_then(Value::as_u64)
                    .map(|n| n as usize);
                s.multi_parent = Some(full.clone());
                out.insert(s);
            }
        }
    }
    let mut catalog = FieldCatalog::new();
    let index = fixture["response"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    walk(
        index["mappings"]["properties"].as_object().unwrap(),
        "",
        &mut catalog,
    );
    catalog
}

#[test]
fn recorded_searches_give_the_same_hits() {
    let Some(dir) = common::shared_data("es-fixtures") else {
        return;
    };
    let datastream = Index {
        docs: bulk_docs(&read(&dir, "013-")),
        catalog: mapping_catalog(&read(&dir, "017-")),
    };
    let filebeat = Index {
        docs: bulk_docs(&read(&dir, "014-")),
        catalog: mapping_catalog(&read(&dir, "016-")),
    };
    assert_eq!(
        datastream
            .catalog
            .get("data_stream.dataset")
            .and_then(|s| s.constant_value.as_deref()),
        Some("aws.cloudtrail")
    );
    // 060 (wildcard on a keyed flattened field) is a 400 on 7.10 and supported from ES 8: the
    // matcher follows ES 8 (see src/matcher/mod.rs). 083 depends on the recording's clock.
    let cases = [
        "058-", "059-", "061-", "062-", "063-", "064-", "065-", "066-", "078-", "085-",
    ];
    for prefix in cases {
        let fx = read(&dir, prefix);
        let name = fx["name"].as_str().unwrap().to_string();
        let path = fx["request"]["path"].as_str().unwrap();
        let patterns = path.trim_start_matches('/').split('/').next().unwrap();
        let query = fx["request"]["body"]["query"].clone();
        let mut hits: Vec<&str> = Vec::new();
        for (pattern, index) in [
            ("logs-aws.cloudtrail-", &datastream),
            ("filebeat-", &filebeat),
        ] {
            if !patterns.split(',').any(|p| p.starts_with(pattern)) {
                continue;
            }
            let matcher = compile_filters(&[serde_json::json!({ "query": query })], &index.catalog)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            hits.extend(
                index
                    .docs
                    .iter()
                    .filter(|(_, d)| matcher.matches_json(d))
                    .map(|(id, _)| id.as_str()),
            );
        }
        let total = fx["response"]["hits"]["total"]["value"].as_u64().unwrap() as usize;
        assert_eq!(hits.len(), total, "{name}: hit count (ES: {total})");
        for h in fx["response"]["hits"]["hits"].as_array().unwrap() {
            let id = h["_id"].as_str().unwrap();
            assert!(
                hits.contains(&id),
                "{name}: ES returned {id}, the matcher did not"
            );
        }
    }
}

#[test]
fn recorded_400s_are_compile_errors() {
    let Some(dir) = common::shared_data("es-fixtures") else {
        return;
    };
    let catalog = mapping_catalog(&read(&dir, "017-"));
    // 084: epoch millis with `format: strict_date_optional_time`; 086: wildcard on an ip field;
    // 087: wildcard on a date field; 088: term with a bad ip; 089: term with a bad boolean.
    for prefix in ["084-", "086-", "087-", "088-", "089-"] {
        let fx = read(&dir, prefix);
        assert_eq!(fx["status"], 400, "{prefix}");
        let query = fx["request"]["body"]["query"].clone();
        let result = compile_filters(&[serde_json::json!({ "query": query })], &catalog);
        assert!(
            result.is_err(),
            "{prefix} {}: ES answered 400, the matcher compiled it",
            fx["name"]
        );
    }
}

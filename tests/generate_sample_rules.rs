//! End to end over the committed sample: CloudTrail → ECS (`ecs`) → the seed rules' KQL
//! (`kql` + `matcher`), with new_terms first-seen computed here, gives exactly the alerts
//! `sample/MANIFEST.json` lists for the replay day.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use detectd::ecs::{read_paths, NormalizeOptions};
use detectd::fields::FieldCatalog;
use detectd::generate::Manifest;
use detectd::matcher::Matcher;
use serde_json::Value;

fn field<'a>(doc: &'a Value, dotted: &str) -> Option<&'a Value> {
    // ECS documents may hold a dotted key or nested objects.
    if let Some(v) = doc.get(dotted) {
        return Some(v);
    }
    let mut cur = doc;
    for part in dotted.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

#[test]
fn seed_rules_over_the_sample_give_exactly_the_manifest_alerts() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let Ok(text) = std::fs::read_to_string(root.join("sample/MANIFEST.json")) else {
        eprintln!("skipping: no committed sample");
        return;
    };
    let manifest: Manifest = serde_json::from_str(&text).unwrap();
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    read_paths(
        &[root.join("sample/AWSLogs")],
        &NormalizeOptions::default(),
        |d| docs.push(d.doc.into_value()),
        |e| errors.push(e.to_string()),
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(docs.len() as u64, manifest.records);
    let catalog = FieldCatalog::builtin();
    let replay = manifest.replay.start.as_str();

    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in &manifest.injected {
        expected
            .entry(e.rule_id.clone())
            .or_default()
            .insert(e.event_id.clone());
    }
    let mut rules = 0;
    for entry in std::fs::read_dir(root.join("rules")).unwrap() {
        let rule: toml::Value =
            toml::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        let rule = &rule["rule"];
        let id = rule["rule_id"].as_str().unwrap().to_owned();
        let ast = detectd::kql::parse(rule["query"].as_str().unwrap()).unwrap();
        let matcher = Matcher::compile(&ast, &catalog).unwrap();
        let mut hits: Vec<&Value> = docs.iter().filter(|d| matcher.matches_json(d)).collect();
        hits.sort_by_key(|d| {
            field(d, "@timestamp")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        });
        let terms: Vec<String> = rule
            .get("new_terms")
            .map(|nt| {
                nt["value"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        let mut alerts = BTreeSet::new();
        for d in hits {
            let ts = field(d, "@timestamp").and_then(Value::as_str).unwrap();
            let key: Vec<String> = terms
                .iter()
                .map(|f| field(d, f).map(Value::to_string).unwrap_or_default())
                .collect();
            let new = terms.is_empty() || seen.insert(key);
            if ts >= replay && new {
                alerts.insert(
                    field(d, "event.id")
                        .and_then(Value::as_str)
                        .unwrap()
                        .to_owned(),
                );
            }
        }
        assert_eq!(Some(&alerts), expected.get(&id), "rule {id}");
        rules += 1;
    }
    assert_eq!(rules, 3);
}

//! Golden test: every pipeline test input of the aws integration's cloudtrail data stream,
//! normalised, compared field by field with the pipeline's expected output.
//!
//! Fields that cannot match are listed in `tests/ecs_golden/exclusions.tsv` (`file`, `field`
//! prefix, reason); `*` applies to every file. A per-file exclusion that no longer differs fails
//! the test, so the list stays honest. `UPDATE_GOLDEN=1` rewrites the per-file lines with the
//! fields that currently differ (reasons of existing lines are kept; new lines need one).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use detectd::ecs::geoip::GeoIp;
use detectd::ecs::{javamap, normalize_str, NormalizeOptions};
use serde_json::Value;

const EXCLUSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/ecs_golden/exclusions.tsv"
);

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

fn yaml_fields(path: &Path) -> Option<serde_json::Map<String, Value>> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: toml::Value = toml::Value::String(String::new());
    let _ = v;
    // The configs are small YAML documents; read the `fields:` block by hand (keys used:
    // '@timestamp', tags list, _conf.retain).
    let mut fields = serde_json::Map::new();
    let mut in_fields = false;
    let mut section = String::new();
    for line in text.lines() {
        let t = line.trim_end();
        if t.trim_start().starts_with('#') || t.trim().is_empty() {
            continue;
        }
        if !t.starts_with(' ') {
            in_fields = t == "fields:";
            continue;
        }
        if !in_fields {
            continue;
        }
        let s = t.trim_start();
        let indent = t.len() - s.len();
        if indent == 2 {
            let (k, v) = s.split_once(':').unwrap();
            let k = k.trim_matches('\'').to_string();
            let v = v.trim().trim_matches('\'');
            section = k.clone();
            if v.is_empty() {
                fields.insert(k, Value::Null);
            } else {
                fields.insert(k, Value::String(v.to_string()));
            }
        } else if let Some(item) = s.strip_prefix("- ") {
            let e = fields.entry(section.clone()).or_insert(Value::Null);
            if !e.is_array() {
                *e = Value::Array(vec![]);
            }
            e.as_array_mut()
                .unwrap()
                .push(Value::String(item.to_string()));
        } else if let Some((k, v)) = s.split_once(':') {
            let e = fields.entry(section.clone()).or_insert(Value::Null);
            if !e.is_object() {
                *e = Value::Object(serde_json::Map::new());
            }
            e.as_object_mut()
                .unwrap()
                .insert(k.trim().to_string(), Value::String(v.trim().to_string()));
        }
    }
    in_fields = fields.is_empty();
    if in_fields {
        None
    } else {
        Some(fields)
    }
}

fn options(dir: &Path, log: &str) -> NormalizeOptions {
    let fields = yaml_fields(&dir.join(format!("{log}-config.yml")))
        .or_else(|| yaml_fields(&dir.join("test-common-config.yml")))
        .unwrap_or_default();
    NormalizeOptions {
        retain: fields
            .get("_conf")
            .and_then(|c| c.get("retain"))
            .and_then(Value::as_str)
            .map(str::to_string),
        tags: fields
            .get("tags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        event_created: fields
            .get("@timestamp")
            .and_then(Value::as_str)
            .map(str::to_string),
        data_stream: false,
        geoip: None,
    }
}

/// Test GeoIP databases (City and ASN) holding, for every address of one expected output, the
/// MaxMind records the `geoip` processors turned into its `source.geo` / `source.as` (per file:
/// the files were produced with different versions of MaxMind's test databases, which place the
/// same address in different cities). Run with them, the normaliser must put back exactly those
/// fields — and nothing for addresses the expected output leaves without.
fn geoip_databases(dir: &Path, expected_file: &str, tmp: &Path) -> Option<Arc<GeoIp>> {
    use common::mmdb::{map, names, s, write_ipv4, Data};
    let (mut city, mut asn) = (BTreeMap::new(), BTreeMap::new());
    {
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(expected_file)).unwrap())
                .unwrap();
        for d in expected["expected"].as_array().unwrap() {
            let Some(ip) = d["source"]["ip"].as_str() else {
                continue;
            };
            let Ok(ip) = ip.parse::<Ipv4Addr>() else {
                continue;
            };
            let geo = &d["source"]["geo"];
            if geo.is_object() {
                let country = geo["country_iso_code"].as_str().unwrap();
                let mut sub = vec![("names", names(geo["region_name"].as_str().unwrap()))];
                if let Some(r) = geo["region_iso_code"].as_str() {
                    let code = r.strip_prefix(&format!("{country}-")).unwrap();
                    sub.push(("iso_code", s(code)));
                }
                let rec = map(vec![
                    (
                        "city",
                        map(vec![("names", names(geo["city_name"].as_str().unwrap()))]),
                    ),
                    (
                        "continent",
                        map(vec![
                            ("code", s("XX")),
                            ("names", names(geo["continent_name"].as_str().unwrap())),
                        ]),
                    ),
                    (
                        "country",
                        map(vec![
                            ("iso_code", s(country)),
                            ("names", names(geo["country_name"].as_str().unwrap())),
                        ]),
                    ),
                    (
                        "location",
                        map(vec![
                            (
                                "latitude",
                                Data::Double(geo["location"]["lat"].as_f64().unwrap()),
                            ),
                            (
                                "longitude",
                                Data::Double(geo["location"]["lon"].as_f64().unwrap()),
                            ),
                            ("time_zone", s("Europe/Stockholm")),
                        ]),
                    ),
                    ("subdivisions", Data::Array(vec![map(sub)])),
                ]);
                city.insert(ip, rec);
            }
            let a = &d["source"]["as"];
            if a.is_object() {
                let mut rec = vec![(
                    "autonomous_system_number",
                    Data::U32(a["number"].as_u64().unwrap() as u32),
                )];
                if let Some(o) = a["organization"]["name"].as_str() {
                    rec.push(("autonomous_system_organization", s(o)));
                }
                asn.insert(ip, map(rec));
            }
        }
    }
    if city.is_empty() && asn.is_empty() {
        return None;
    }
    let city_db = tmp.join(format!("{expected_file}-city.mmdb"));
    let asn_db = tmp.join(format!("{expected_file}-asn.mmdb"));
    let entries = |m: BTreeMap<Ipv4Addr, Data>| m.into_iter().collect::<Vec<_>>();
    std::fs::write(&city_db, write_ipv4("GeoLite2-City", &entries(city))).unwrap();
    std::fs::write(&asn_db, write_ipv4("GeoLite2-ASN", &entries(asn))).unwrap();
    Some(Arc::new(GeoIp::open(&[city_db, asn_db]).unwrap()))
}

struct Exclusion {
    file: String,
    field: String,
    reason: String,
}

fn load_exclusions() -> Vec<Exclusion> {
    std::fs::read_to_string(EXCLUSIONS)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut p = l.splitn(3, '\t');
            Exclusion {
                file: p.next().unwrap_or("").to_string(),
                field: p.next().unwrap_or("").to_string(),
                reason: p.next().unwrap_or("").to_string(),
            }
        })
        .collect()
}

fn covers(prefix: &str, field: &str) -> bool {
    field == prefix || field.starts_with(&format!("{prefix}."))
}

/// Runs one test file; returns the differing fields and the number of `toString` strings
/// reproduced.
fn check(dir: &Path, expected_file: &str, tmp: &Path) -> (BTreeSet<String>, usize) {
    let log = expected_file.trim_end_matches("-expected.json");
    let mut opts = options(dir, log);
    opts.geoip = geoip_databases(dir, expected_file, tmp);
    let input = std::fs::read_to_string(dir.join(log)).unwrap();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(expected_file)).unwrap()).unwrap();
    let docs: Vec<&Value> = expected["expected"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["event"].get("original").is_some())
        .collect();
    let lines: Vec<&str> = input.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        docs.len(),
        "{log}: one input line per expected document with event.original"
    );
    let mut diffs = BTreeSet::new();
    let mut strings = 0;
    for (line, want) in lines.iter().zip(docs) {
        assert_eq!(
            want["event"]["original"].as_str(),
            Some(*line),
            "{log}: input line is event.original"
        );
        // The stored common config is older than most expected files: take the tags the
        // pipeline saw from the output (they pass through unchanged).
        let mut opts = opts.clone();
        if let Some(tags) = want.get("tags").and_then(Value::as_array) {
            opts.tags = tags
                .iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect();
        }
        let doc = normalize_str(line, &opts).unwrap();
        // What every consumer sees: the document as serialised JSON.
        let got: serde_json::Value = serde_json::from_str(&doc.to_json()).unwrap();
        assert_eq!(got, doc.clone().into_value());
        let (mut g, mut w) = (BTreeMap::new(), BTreeMap::new());
        flatten("", &got, &mut g);
        flatten("", want, &mut w);
        for k in g.keys().chain(w.keys()) {
            if g.get(k) != w.get(k) {
                diffs.insert(k.clone());
            } else if k.starts_with("aws.cloudtrail.")
                && !k.starts_with("aws.cloudtrail.flattened")
                && [
                    "request_parameters",
                    "response_elements",
                    "additional_eventdata",
                    "service_event_details",
                ]
                .iter()
                .any(|f| k == &format!("aws.cloudtrail.{f}"))
            {
                strings += 1;
            }
        }
        for k in g.keys().chain(w.keys()) {
            if g.get(k) != w.get(k) && std::env::var_os("GOLDEN_VERBOSE").is_some() {
                eprintln!("{log} {k}: got {:?} want {:?}", g.get(k), w.get(k));
            }
        }
    }
    // Each matching string was counted twice (chain of both key sets).
    (diffs, strings / 2)
}

#[test]
fn pipeline_tests_match_expected_output() {
    let Some(dir) = common::shared_data("integrations-cloudtrail/tests") else {
        return;
    };
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with("-expected.json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 12);
    let tmp = tempfile::tempdir().unwrap();
    let mut with_geoip = 0;
    let exclusions = load_exclusions();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut new_lines = Vec::new();
    let mut failures = Vec::new();
    let mut total_strings = 0;
    for f in &files {
        let (diffs, strings) = check(&dir, f, tmp.path());
        with_geoip += usize::from(tmp.path().join(format!("{f}-city.mmdb")).exists());
        total_strings += strings;
        let log = f.trim_end_matches("-expected.json");
        for d in &diffs {
            let ok = exclusions
                .iter()
                .any(|e| (e.file == "*" || e.file == log) && covers(&e.field, d));
            if !ok && !update {
                failures.push(format!("{log}: {d} differs"));
            }
        }
        for e in exclusions.iter().filter(|e| e.file == log) {
            if !diffs.iter().any(|d| covers(&e.field, d)) && !update {
                failures.push(format!("{log}: exclusion {} no longer needed", e.field));
            }
        }
        if update {
            for d in &diffs {
                if exclusions
                    .iter()
                    .any(|e| e.file == "*" && covers(&e.field, d))
                {
                    continue;
                }
                let reason = exclusions
                    .iter()
                    .find(|e| e.file == log && covers(&e.field, d))
                    .map(|e| e.reason.clone())
                    .unwrap_or_else(|| "TODO".to_string());
                new_lines.push(format!("{log}\t{d}\t{reason}"));
            }
        }
    }
    if update {
        let mut out: Vec<String> = std::fs::read_to_string(EXCLUSIONS)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with('#') || l.starts_with("*\t"))
            .map(str::to_string)
            .collect();
        out.extend(new_lines);
        std::fs::write(EXCLUSIONS, out.join("\n") + "\n").unwrap();
        return;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // All 18 toString() strings of the expected outputs with an input are reproduced.
    assert_eq!(total_strings, 18);
    // The GeoIP fields were checked, not skipped.
    assert!(with_geoip >= 3, "{with_geoip} files with GeoIP fields");
}

#[test]
fn java_doubles_in_request_parameters() {
    let v: detectd::ecs::json::Json =
        serde_json::from_str(r#"{"a": 1e10, "b": 2, "c": 0.5}"#).unwrap();
    let s = javamap::java_to_string(&v);
    assert!(
        s.contains("a=1.0E10") && s.contains("b=2") && s.contains("c=0.5"),
        "{s}"
    );
}

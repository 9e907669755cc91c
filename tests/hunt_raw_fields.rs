//! What the hunt reads from a raw CloudTrail record without parsing it (`hunt::prefilter::Top`)
//! is exactly what the normaliser makes of the record: for every field it claims to know, the
//! same single value, or the field's absence. The hunt skips records and takes new_terms hits
//! on this knowledge, so a difference here would be a missed or a wrong alert.
//!
//! Checked on real records (the Stratus Red Team detonations and the integration's pipeline
//! test records of `../shared/data/`), on generated ones, and on variants of each that move
//! the fields' sources (no identity, an error, a service address, an assumed role with its
//! issuer, a UserAuthentication, empty values).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::Path;

use detectd::ecs::normalize::normalize_record;
use detectd::ecs::NormalizeOptions;
use detectd::fields::values_at;
use detectd::hunt::prefilter::{Decision, Known, Prefilter, Top, KNOWABLE};
use detectd::matcher::Matcher;
use serde_json::{json, Value};

#[derive(Default, Debug)]
struct Counts {
    records: usize,
    values: usize,
    absent: usize,
    unknown: usize,
    unscanned: usize,
}

/// Compares what the scan knows of `raw` with its normalisation.
fn check(raw: &str, opts: &NormalizeOptions, counts: &mut Counts) {
    counts.records += 1;
    if raw.contains('\\') {
        // Never scanned: an escape could hide a value.
        counts.unscanned += 1;
        return;
    }
    let Some(top) = Top::scan(raw, opts.data_stream) else {
        counts.unscanned += 1;
        return;
    };
    let doc = normalize_record(raw, opts).unwrap().into_value();
    // The known fields, and the flattened copy of each request parameter (and of one that is
    // not there).
    let record: Value = serde_json::from_str(raw).unwrap();
    let mut fields: Vec<String> = KNOWABLE.iter().map(|f| f.to_string()).collect();
    if let Some(Value::Object(params)) = record.get("requestParameters") {
        fields.extend(
            params
                .keys()
                .map(|k| format!("aws.cloudtrail.flattened.request_parameters.{k}")),
        );
    }
    fields.push("aws.cloudtrail.flattened.request_parameters.notThere".into());
    for f in &fields {
        let mut vals = Vec::new();
        values_at(&doc, f, &mut vals);
        match top.field(f) {
            Known::Value(v) => {
                counts.values += 1;
                // A flattened leaf holds the JSON value (a boolean is known by its text).
                let boolean = Value::Bool(v == "true");
                let want = if f.contains(".flattened.") && (v == "true" || v == "false") {
                    &boolean
                } else {
                    &Value::String(v.to_string())
                };
                let same = vals == vec![want]
                    || (f.contains(".flattened.") && vals == vec![&Value::String(v.to_string())]);
                assert!(same, "{f} of {raw} is {v}\nnormalised: {doc}");
            }
            Known::Absent => {
                counts.absent += 1;
                assert!(vals.is_empty(), "{f} absent in {raw}\nnormalised: {doc}");
            }
            Known::Unknown => counts.unknown += 1,
        }
    }
}

/// The record and variants of it that move where the known fields come from.
fn variants(record: &Value) -> Vec<Value> {
    let mut out = vec![record.clone()];
    let Some(obj) = record.as_object() else {
        return out;
    };
    let with = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut o = obj.clone();
        f(&mut o);
        Value::Object(o)
    };
    out.push(with(&|o| {
        o.remove("userIdentity");
    }));
    out.push(with(&|o| {
        o.insert("errorCode".into(), json!("AccessDenied"));
    }));
    out.push(with(&|o| {
        o.insert("errorMessage".into(), json!("not allowed"));
    }));
    out.push(with(&|o| {
        o.insert("errorCode".into(), json!(""));
    }));
    out.push(with(&|o| {
        o.insert("sourceIPAddress".into(), json!("AWS Internal"));
        o.insert("userAgent".into(), json!(""));
    }));
    out.push(with(&|o| {
        o.insert("sourceIPAddress".into(), json!("2001:db8::1"));
        o.remove("eventID");
    }));
    out.push(with(&|o| {
        o.insert("eventName".into(), json!("UserAuthentication"));
        if let Some(Value::Object(u)) = o.get_mut("userIdentity") {
            u.remove("userName");
        }
        o.insert(
            "additionalEventData".into(),
            json!({"UserName": "from-event-data"}),
        );
    }));
    out.push(with(&|o| {
        o.insert("eventName".into(), json!("ConsoleLogin"));
        o.insert(
            "responseElements".into(),
            json!({"ConsoleLogin": "Failure"}),
        );
    }));
    out.push(with(&|o| {
        o.insert("sessionCredentialFromConsole".into(), json!("true"));
    }));
    for kind in ["AssumedRole", "FederatedUser", "IAMUser", "Root"] {
        for issuer_name in [Some("issuer-name"), None] {
            out.push(with(&|o| {
                let mut issuer = json!({"type": "Role", "arn": "arn:aws:iam::1:role/r"});
                if let Some(n) = issuer_name {
                    issuer["userName"] = json!(n);
                }
                let identity = o.entry("userIdentity").or_insert_with(|| json!({}));
                if let Value::Object(u) = identity {
                    u.insert("type".into(), json!(kind));
                    u.insert("sessionContext".into(), json!({"sessionIssuer": issuer}));
                }
            }));
        }
    }
    for params in [
        json!({"name": "p", "withDecryption": true}),
        json!({"name": "p", "withDecryption": false}),
        json!({"name": "p", "withDecryption": "true"}),
        json!({"withDecryption": null, "n": 1, "o": {"withDecryption": true}}),
        json!({"a.b": "x", "withDecryption": true}),
        json!({"k1": 1, "k2": 2, "k3": 3, "k4": 4, "k5": 5, "k6": 6, "k7": 7, "k8": 8, "withDecryption": true}),
        json!({"name": ""}),
        json!([{"withDecryption": true}]),
        Value::Null,
    ] {
        out.push(with(&|o| {
            o.insert("requestParameters".into(), params.clone());
        }));
    }
    for resources in [
        json!([{"accountId": "1", "type": "AWS::IAM::Role", "ARN": "arn:aws:iam::1:role/r"}]),
        json!([{"ARN": "arn:a"}, {"ARN": "arn:b", "type": "t"}]),
        json!([{"ARN": "arn:a"}, {"ARN": "arn:a"}]),
        json!([]),
        json!([{"type": "t"}]),
        json!([{"ARN": ""}]),
        json!([{"ARN": "arn:a", "arn": "arn:b"}]),
        json!([{"ARN": 7}]),
        json!(["arn:a"]),
        json!([{"ARN": "arn:a"}, null]),
        json!([[{"ARN": "arn:a"}]]),
        json!({"ARN": "arn:a"}),
    ] {
        out.push(with(&|o| {
            o.insert("resources".into(), resources.clone());
        }));
    }
    out.push(with(&|o| {
        if let Some(Value::Object(u)) = o.get_mut("userIdentity") {
            u.insert("accountId".into(), json!(""));
            u.insert("principalId".into(), Value::Null);
            u.insert("arn".into(), json!(17));
        }
    }));
    out
}

fn check_all(records: &[Value], opts: &NormalizeOptions, counts: &mut Counts) {
    for r in records {
        for v in variants(r) {
            check(&serde_json::to_string(&v).unwrap(), opts, counts);
        }
    }
}

/// The records of a delivery file (gzipped or not) or of a JSON array.
fn file_records(path: &Path) -> Vec<Value> {
    let bytes = std::fs::read(path).unwrap();
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .unwrap();
        s
    } else {
        String::from_utf8(bytes).unwrap()
    };
    match serde_json::from_str::<Value>(&text).unwrap() {
        Value::Array(a) => a,
        Value::Object(mut o) => match o.remove("Records") {
            Some(Value::Array(a)) => a,
            _ => vec![Value::Object(o)],
        },
        other => vec![other],
    }
}

#[test]
fn known_fields_of_real_records_are_what_the_normaliser_makes() {
    let mut counts = Counts::default();
    let opts = NormalizeOptions::default();
    let Some(samples) = common::shared_data("cloudtrail-samples/stratus-red-team-detonation-logs")
    else {
        panic!("../shared/data/cloudtrail-samples is needed (or DETECTD_SHARED_DATA)");
    };
    let mut files = 0;
    for e in std::fs::read_dir(samples).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            files += 1;
            check_all(&file_records(&p), &opts, &mut counts);
        }
    }
    let tests = common::shared_data("integrations-cloudtrail/tests").unwrap();
    for e in std::fs::read_dir(tests).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "log") {
            files += 1;
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                let Ok(v) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                // The line itself, as the reader hands it on, then its variants.
                check(line, &opts, &mut counts);
                check_all(&[v], &opts, &mut counts);
            }
        }
    }
    eprintln!("{files} files: {counts:?}");
    assert!(files > 20, "{files} sample files");
    assert!(counts.records > 2000, "{counts:?}");
    assert!(counts.values > 10 * counts.records, "{counts:?}");
    assert!(counts.absent > counts.records, "{counts:?}");
}

/// The records `detectd generate` writes from 2026-10-01 for `days` days (2 accounts of 10
/// users, gzipped delivery files).
fn generated_records(seed: u64, days: u32, events_per_day: u64) -> Vec<Value> {
    let tmp = tempfile::tempdir().unwrap();
    detectd::generate::generate(&detectd::generate::Options {
        out: tmp.path().to_path_buf(),
        seed,
        days,
        start: "2026-10-01".to_owned(),
        events_per_day,
        accounts: 2,
        users_per_account: 10,
        compression: 1,
        force: false,
    })
    .unwrap();
    let mut records = Vec::new();
    for e in walkdir::WalkDir::new(tmp.path().join("AWSLogs")) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            records.extend(file_records(e.path()));
        }
    }
    records
}

#[test]
fn known_fields_of_generated_records_are_what_the_normaliser_makes() {
    let mut counts = Counts::default();
    let opts = NormalizeOptions::default();
    let records = generated_records(3, 2, 1500);
    assert!(records.len() > 2000, "{} records", records.len());
    // Every record as generated; variants of every 10th.
    for (n, r) in records.iter().enumerate() {
        if n % 10 == 0 {
            check_all(std::slice::from_ref(r), &opts, &mut counts);
        } else {
            check(&serde_json::to_string(r).unwrap(), &opts, &mut counts);
        }
    }
    // Without the data stream's constant fields, they are not known.
    let bare = NormalizeOptions {
        data_stream: false,
        ..NormalizeOptions::default()
    };
    for r in records.iter().take(200) {
        check(&serde_json::to_string(r).unwrap(), &bare, &mut counts);
    }
    eprintln!("{counts:?}");
    assert!(counts.values > 10 * counts.records, "{counts:?}");
    assert!(counts.absent > counts.records, "{counts:?}");
}

/// The public AWS rules the hunt runs (query and new_terms KQL), each with its query and its
/// compiled matcher (query and filters).
fn public_rules() -> Vec<(String, detectd::kql::Ast, Matcher, bool)> {
    let dir = common::shared_data("detection-rules/aws").expect("../shared/data/detection-rules");
    let catalog = detectd::fields::FieldCatalog::builtin();
    let report = detectd::rules::load_paths(&[dir]);
    let mut out = Vec::new();
    for r in &report.rules {
        let Ok(exec) = detectd::engine::ExecRule::from_rule(r) else {
            continue;
        };
        if exec.threshold.is_some() || exec.eql.is_some() || exec.esql.is_some() {
            continue;
        }
        let Ok(mut m) = Matcher::compile(&exec.query, &catalog) else {
            continue;
        };
        let unfiltered = exec.filters.is_empty();
        if !unfiltered {
            m = m.and(detectd::matcher::compile_filters(&exec.filters, &catalog).unwrap());
        }
        out.push((exec.name.clone(), exec.query.clone(), m, unfiltered));
    }
    out
}

/// Every decision the hunt takes on a raw record agrees with the rules' matchers on its
/// normalisation: a skipped record matches no rule, a record whose hits are taken unparsed
/// matches exactly the rules taken. On the shared samples, generated records and variants.
#[test]
fn raw_decisions_agree_with_the_matchers_on_the_normalised_records() {
    let rules = public_rules();
    assert!(rules.len() > 140, "{} rules", rules.len());
    let queries: Vec<&detectd::kql::Ast> = rules.iter().map(|r| &r.1).collect();
    let prefilter = Prefilter::new(&queries)
        .with_exact(
            true,
            rules.iter().map(|r| r.3.then(|| r.2.clone())).collect(),
            vec![true; rules.len()],
        )
        .with_decided(true, rules.iter().map(|r| r.3).collect());
    let opts = NormalizeOptions::default();
    let mut records = Vec::new();
    let samples =
        common::shared_data("cloudtrail-samples/stratus-red-team-detonation-logs").unwrap();
    for e in std::fs::read_dir(samples).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            records.extend(file_records(&p));
        }
    }
    let samples = records.len();
    records.extend(generated_records(5, 1, 2000));
    let (mut skipped, mut taken, mut parsed, mut hits_seen) = (0, 0, 0, 0);
    let mut hits = Vec::new();
    for (n, r) in records.iter().enumerate() {
        // Variants of every sample record and of every 20th generated one.
        let vs = if n < samples || n % 20 == 0 {
            variants(r)
        } else {
            vec![r.clone()]
        };
        for v in vs {
            let raw = serde_json::to_string(&v).unwrap();
            let decision = prefilter.decide(&raw, &mut hits);
            let doc = match normalize_record(&raw, &opts) {
                Ok(d) => d.into_value(),
                Err(_) => continue,
            };
            let matching: Vec<usize> = rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.2.matches_json(&doc))
                .map(|(i, _)| i)
                .collect();
            let names = |ix: &[usize]| ix.iter().map(|&i| rules[i].0.as_str()).collect::<Vec<_>>();
            match decision {
                Decision::Skip => {
                    skipped += 1;
                    assert!(
                        matching.is_empty(),
                        "skipped, but {:?} match {raw}",
                        names(&matching)
                    );
                }
                Decision::Hits(_) => {
                    taken += 1;
                    hits_seen += hits.len();
                    assert_eq!(names(&hits), names(&matching), "taken hits of {raw}");
                }
                Decision::Parse => parsed += 1,
            }
        }
    }
    eprintln!(
        "{} records: {skipped} skipped, {taken} taken ({hits_seen} hits), {parsed} parsed",
        records.len()
    );
    assert!(
        skipped > 1000 && taken > 1000 && hits_seen >= taken,
        "{skipped} {taken} {parsed}"
    );
}

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
use detectd::hunt::prefilter::{Known, Top, KNOWABLE};
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
    for f in KNOWABLE {
        let mut vals = Vec::new();
        values_at(&doc, f, &mut vals);
        match top.field(f) {
            Known::Value(v) => {
                counts.values += 1;
                assert_eq!(
                    vals,
                    vec![&Value::String(v.to_string())],
                    "{f} of {raw}\nnormalised: {doc}"
                );
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

#[test]
fn known_fields_of_generated_records_are_what_the_normaliser_makes() {
    let tmp = tempfile::tempdir().unwrap();
    detectd::generate::generate(&detectd::generate::Options {
        out: tmp.path().to_path_buf(),
        seed: 3,
        days: 2,
        start: "2026-10-01".to_owned(),
        events_per_day: 1500,
        accounts: 2,
        users_per_account: 10,
        compression: 1,
        force: false,
    })
    .unwrap();
    let mut counts = Counts::default();
    let opts = NormalizeOptions::default();
    let mut records = Vec::new();
    for e in walkdir::WalkDir::new(tmp.path().join("AWSLogs")) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            records.extend(file_records(e.path()));
        }
    }
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

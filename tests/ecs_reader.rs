//! Reading raw CloudTrail in every accepted shape, and bad input reported without stopping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use detectd::ecs::{read_paths, Document, NormalizeOptions, ReadError, ReadSummary};
use serde_json::{json, Value};

fn record(i: usize) -> Value {
    json!({
        "eventVersion": "1.08", "eventTime": format!("2024-01-01T00:00:{:02}Z", i % 60),
        "eventSource": "iam.amazonaws.com", "eventName": "CreateUser",
        "awsRegion": "us-east-1", "sourceIPAddress": "10.0.0.1",
        "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": "123"},
        "requestParameters": {"userName": format!("u{i}")},
        "eventID": format!("id-{i}")
    })
}

fn read(paths: &[PathBuf]) -> (Vec<Document>, Vec<ReadError>, ReadSummary) {
    let (mut docs, mut errs) = (Vec::new(), Vec::new());
    let s = read_paths(
        paths,
        &NormalizeOptions::default(),
        |d| docs.push(d),
        |e| errs.push(e),
    );
    (docs, errs, s)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn every_shape_reads_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let recs: Vec<Value> = (0..5).map(record).collect();
    let delivery = json!({"Records": recs}).to_string();
    let array = serde_json::to_string_pretty(&recs).unwrap();
    let ndjson: String = recs.iter().map(|r| format!("{r}\n\n")).collect();
    let shapes = [
        write(dir.path(), "a.json", delivery.as_bytes()),
        write(dir.path(), "b.json.gz", &gz(delivery.as_bytes())),
        write(dir.path(), "c.json", array.as_bytes()),
        write(dir.path(), "d.ndjson", ndjson.as_bytes()),
        write(dir.path(), "e.log.gz", &gz(ndjson.as_bytes())),
        write(
            dir.path(),
            "f.json",
            serde_json::to_string_pretty(&recs[0]).unwrap().as_bytes(),
        ),
    ];
    for p in &shapes {
        let (docs, errs, _) = read(std::slice::from_ref(p));
        assert!(errs.is_empty(), "{}: {errs:?}", p.display());
        let want = if p.ends_with("f.json") { 1 } else { 5 };
        assert_eq!(docs.len(), want, "{}", p.display());
        for (i, d) in docs.iter().enumerate() {
            assert_eq!(d.record, i + 1);
            let doc = d.doc.to_value();
            assert_eq!(doc["event"]["id"], format!("id-{i}"));
            assert_eq!(doc["event"]["action"], "CreateUser");
            let original: Value =
                serde_json::from_str(doc["event"]["original"].as_str().unwrap()).unwrap();
            assert_eq!(original, recs[i]);
            assert!(!doc["event"]["original"].as_str().unwrap().contains('\n'));
        }
    }
    // The folder, walked in sorted order.
    let (docs, errs, summary) = read(&[dir.path().to_path_buf()]);
    assert!(errs.is_empty());
    assert_eq!(
        summary,
        ReadSummary {
            files: 6,
            documents: 26,
            errors: 0
        }
    );
    assert!(docs[0].file.ends_with("a.json") && docs[25].file.ends_with("f.json"));
}

#[test]
fn bad_records_are_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let lines = format!(
        "{}\n{{broken\n{{\"foo\":1}}\n[1]\n{}\n",
        record(0),
        record(1)
    );
    let p = write(dir.path(), "x.ndjson", lines.as_bytes());
    let (docs, errs, summary) = read(std::slice::from_ref(&p));
    assert_eq!(
        docs.iter().map(|d| d.record).collect::<Vec<_>>(),
        vec![1, 5]
    );
    assert_eq!(
        errs.iter().map(|e| e.record).collect::<Vec<_>>(),
        vec![Some(2), Some(3), Some(4)]
    );
    assert!(
        errs[1].reason.contains("not a cloudtrail record"),
        "{}",
        errs[1].reason
    );
    assert!(errs[0]
        .to_string()
        .starts_with(&format!("{}: record 2: invalid json", p.display())));
    assert_eq!(summary.errors, 3);
}

#[test]
fn truncated_gzip_keeps_the_records_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let recs: Vec<Value> = (0..2000).map(record).collect();
    let bytes = gz(json!({"Records": recs}).to_string().as_bytes());
    let p = write(dir.path(), "t.json.gz", &bytes[..bytes.len() / 2]);
    let (docs, errs, _) = read(&[p]);
    assert!(docs.len() > 100 && docs.len() < 2000, "{}", docs.len());
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].record, Some(docs.len() + 1));
    let p2 = write(
        dir.path(),
        "t.log.gz",
        &gz(b"{\"eventTime\":\"2024-01-01T00:00:00Z\"}\n")[..20],
    );
    let (_, errs, _) = read(&[p2]);
    assert_eq!(errs.len(), 1);
}

#[test]
fn ecs_documents_pass_through_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({"@timestamp": "2024-01-01T00:00:00.000Z", "event": {"action": "X"}, "aws": {"cloudtrail": {}}});
    let p = write(dir.path(), "ecs.ndjson", format!("{doc}\n").as_bytes());
    let (docs, errs, _) = read(&[p]);
    assert!(errs.is_empty());
    assert_eq!(docs[0].doc.to_value(), doc);
    assert_eq!(docs[0].doc.to_json(), doc.to_string());
}

#[test]
fn stratus_red_team_samples_normalise_without_errors() {
    let Some(dir) = common::shared_data("cloudtrail-samples/stratus-red-team-detonation-logs")
    else {
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 30);
    let (docs, errs, summary) = read(&files);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(summary.files, files.len());
    assert!(docs.len() > 100);
    for d in &docs {
        let doc = d.doc.to_value();
        assert!(
            doc["@timestamp"].is_string() && doc["event"]["provider"].is_string(),
            "{}:{}",
            d.file.display(),
            d.record
        );
        assert_eq!(doc["data_stream"]["dataset"], "aws.cloudtrail");
    }
}

#[test]
fn ecs_command_prints_ndjson_and_fails_on_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "x.ndjson",
        format!("{}\n{{\"foo\":1}}\n", record(0)).as_bytes(),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_detectd"))
        // No config.toml in the working directory: defaults, no GeoIP database.
        .current_dir(dir.path())
        .arg("ecs")
        .arg(&p)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let docs: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["user"]["target"]["name"], "u0");
    assert!(
        stderr.contains("record 2: not a cloudtrail record"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 files, 1 documents, 1 errors"),
        "{stderr}"
    );
}

#[test]
fn a_broken_record_inside_a_delivery_file_skips_only_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "{{\"Records\": [{}, {{\"eventTime\": }}, 42, {}]}}",
        record(0),
        record(1)
    );
    let p = write(dir.path(), "d.json.gz", &gz(body.as_bytes()));
    let (docs, errs, _) = read(std::slice::from_ref(&p));
    assert_eq!(
        docs.iter().map(|d| d.record).collect::<Vec<_>>(),
        vec![1, 4]
    );
    assert_eq!(
        errs.iter().map(|e| e.record).collect::<Vec<_>>(),
        vec![Some(2), Some(3)]
    );
    assert!(errs[0].reason.starts_with("invalid json"), "{}", errs[0]);
    assert!(errs[1].reason.contains("not an object"), "{}", errs[1]);
}

#[test]
fn gzip_members_headers_and_checksums_are_read_as_flate2_reads_them() {
    use flate2::{write::GzEncoder, Compression, GzBuilder};
    let dir = tempfile::tempdir().unwrap();
    let line = |i: usize| format!("{}\n", record(i));
    // two members, the second with a file name and a comment in its header
    let mut bytes = gz(line(0).as_bytes());
    let mut named = GzBuilder::new()
        .filename("a.log")
        .comment("c")
        .extra(vec![1, 2, 3])
        .write(Vec::new(), Compression::fast());
    named.write_all(line(1).as_bytes()).unwrap();
    bytes.extend(named.finish().unwrap());
    let p = write(dir.path(), "m.log.gz", &bytes);
    let (docs, errs, _) = read(&[p]);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(docs.len(), 2);
    // a member larger than one inflated chunk
    let mut big = GzEncoder::new(Vec::new(), Compression::fast());
    for i in 0..3000 {
        big.write_all(line(i).as_bytes()).unwrap();
    }
    let p = write(dir.path(), "big.log.gz", &big.finish().unwrap());
    let (docs, errs, _) = read(&[p]);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(docs.len(), 3000);
    // a wrong checksum, and trailing bytes that are not a member, are errors
    let mut bad = gz(line(0).as_bytes());
    let n = bad.len();
    bad[n - 8] ^= 1;
    let (_, errs, _) = read(&[write(dir.path(), "crc.log.gz", &bad)]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    let mut trailing = gz(line(0).as_bytes());
    trailing.extend_from_slice(b"junk");
    let (_, errs, _) = read(&[write(dir.path(), "junk.log.gz", &trailing)]);
    assert_eq!(errs.len(), 1, "{errs:?}");
}

#[test]
fn files_are_opened_as_by_their_path_whatever_was_opened_before() {
    // Linux opens a file relative to its folder, kept from the previous file: what is read, and
    // the errors, must be those of opening the path itself.
    let dir = tempfile::tempdir().unwrap();
    let line = |i: usize| format!("{}\n", record(i));
    let a = write(dir.path(), "a/x.log", line(0).as_bytes());
    let b = write(dir.path(), "b/x.log", line(1).as_bytes());
    let a2 = write(dir.path(), "a/y.log", line(2).as_bytes());
    let ids = |docs: &[Document]| {
        docs.iter()
            .map(|d| {
                d.doc.to_value()["event"]["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    let (docs, errs, _) = read(&[a.clone(), b.clone(), a2.clone(), a.clone()]);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(ids(&docs), ["id-0", "id-1", "id-2", "id-0"]);
    // a missing file in the kept folder, a file named as a folder, a missing folder: the
    // errors of `File::open`
    let missing = dir.path().join("a/missing.log");
    let slashed = PathBuf::from(format!("{}/", a.display()));
    let no_dir = dir.path().join("c/x.log");
    for p in [&missing, &slashed, &no_dir] {
        let (_, errs, _) = read(&[a.clone(), p.clone()]);
        let want = std::fs::File::open(p).unwrap_err();
        assert_eq!(errs.len(), 1, "{}: {errs:?}", p.display());
        assert_eq!(errs[0].reason, format!("cannot open: {want}"));
    }
    // the folder replaced between two listings: the new one is read
    let (docs, _, _) = read(std::slice::from_ref(&a));
    assert_eq!(ids(&docs), ["id-0"]);
    std::fs::rename(dir.path().join("a"), dir.path().join("old")).unwrap();
    write(dir.path(), "a/x.log", line(3).as_bytes());
    let (docs, errs, _) = read(std::slice::from_ref(&a));
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(ids(&docs), ["id-3"]);
    // more folders than are kept open, read round and round: each file is its own
    let many: Vec<PathBuf> = (0..70)
        .map(|i| write(dir.path(), &format!("m{i}/x.log"), line(10 + i).as_bytes()))
        .collect();
    let round: Vec<PathBuf> = many.iter().chain(many.iter().rev()).cloned().collect();
    let (docs, errs, _) = read(&round);
    assert!(errs.is_empty(), "{errs:?}");
    let want: Vec<String> = (0..70)
        .chain((0..70).rev())
        .map(|i| format!("id-{}", 10 + i))
        .collect();
    assert_eq!(ids(&docs), want);
    // a relative path, and one without a folder
    let here = std::env::current_dir().unwrap();
    let rel = pathdiff(&a, &here);
    let (docs, errs, _) = read(&[rel]);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(ids(&docs), ["id-3"]);
    let (_, errs, _) = read(&[PathBuf::from("no-such-file.log")]);
    assert_eq!(errs.len(), 1);
}

/// `path` relative to `base` (both absolute), through `..`.
fn pathdiff(path: &Path, base: &Path) -> PathBuf {
    let mut rel = PathBuf::new();
    for _ in base.components().skip(1) {
        rel.push("..");
    }
    rel.join(path.strip_prefix("/").unwrap())
}

//! `detectd generate`: determinism, CloudTrail shape, daily rhythm, and that the manifest lists
//! exactly the events the seed rules catch (checked on the raw records), with look-alikes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Parser;
use detectd::generate::{
    generate, GenerateError, Manifest, Options, RULE_CLOUDTRAIL_STOP_LOGGING,
    RULE_SSM_DOCUMENT_RARE_USER, RULE_SSM_SEND_COMMAND,
};
use serde_json::Value;

fn options(out: &Path, seed: u64) -> Options {
    Options {
        out: out.to_path_buf(),
        seed,
        days: 4,
        // Friday: the period holds a weekend.
        start: "2026-10-30".to_owned(),
        events_per_day: 600,
        accounts: 3,
        users_per_account: 20,
        compression: 6,
        force: false,
    }
}

/// Every file under `dir`, relative path → bytes, sorted.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// (relative path, record) for every record of every delivery file.
fn records(dir: &Path) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (rel, bytes) in files(dir) {
        if !rel.ends_with(".json.gz") {
            continue;
        }
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_string(&mut text)
            .unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let recs = doc["Records"].as_array().expect("Records array");
        assert!(!recs.is_empty(), "{rel} holds no record");
        for r in recs {
            out.push((rel.clone(), r.clone()));
        }
    }
    out
}

fn generated(seed: u64) -> (tempfile::TempDir, Manifest) {
    let dir = tempfile::tempdir().unwrap();
    let manifest = generate(&options(dir.path(), seed)).unwrap();
    (dir, manifest)
}

fn s<'a>(r: &'a Value, pointer: &str) -> &'a str {
    r.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `user.name` as the aws integration derives it.
fn user_name(r: &Value) -> String {
    let ty = s(r, "/userIdentity/type");
    if ty == "AssumedRole" || ty == "FederatedUser" {
        let n = s(r, "/userIdentity/sessionContext/sessionIssuer/userName");
        if !n.is_empty() {
            return n.to_owned();
        }
    }
    s(r, "/userIdentity/userName").to_owned()
}

fn success(r: &Value) -> bool {
    r.get("errorCode").is_none() && r.get("errorMessage").is_none()
}

/// Event ids each seed rule alerts on when the replay period (the last day) is run, computed
/// from the raw records with the rules' conditions.
fn expected_alerts(
    recs: &[(String, Value)],
    replay_start: &str,
) -> HashMap<&'static str, HashSet<String>> {
    let mut sorted: Vec<&Value> = recs.iter().map(|(_, r)| r).collect();
    sorted.sort_by(|a, b| s(a, "/eventTime").cmp(s(b, "/eventTime")));
    let mut out: HashMap<&'static str, HashSet<String>> = HashMap::new();
    let mut seen_arn = HashSet::new();
    let mut seen_user = HashSet::new();
    for r in sorted {
        let in_replay = s(r, "/eventTime") >= replay_start;
        let id = s(r, "/eventID").to_owned();
        let source = s(r, "/eventSource");
        let name = s(r, "/eventName");
        if source == "cloudtrail.amazonaws.com" && name == "StopLogging" && success(r) && in_replay
        {
            out.entry(RULE_CLOUDTRAIL_STOP_LOGGING)
                .or_default()
                .insert(id.clone());
        }
        let ip = s(r, "/sourceIPAddress");
        if source == "ssm.amazonaws.com"
            && name == "SendCommand"
            && success(r)
            && !matches!(
                ip,
                "ssm-guiconnect.amazonaws.com" | "ssm.amazonaws.com" | "inspector2.amazonaws.com"
            )
            && in_replay
        {
            out.entry(RULE_SSM_SEND_COMMAND)
                .or_default()
                .insert(id.clone());
        }
        if source == "ssm.amazonaws.com"
            && name == "CreateDocument"
            && success(r)
            && s(r, "/responseElements/documentDescription/documentType") == "Command"
        {
            // new_terms, both versions of the rule: the ARN, and (account, user.name).
            let arn_new = seen_arn.insert(s(r, "/userIdentity/arn").to_owned());
            let user_new =
                seen_user.insert((s(r, "/userIdentity/accountId").to_owned(), user_name(r)));
            assert_eq!(arn_new, user_new, "the two new-terms keys disagree on {id}");
            if arn_new && in_replay {
                out.entry(RULE_SSM_DOCUMENT_RARE_USER)
                    .or_default()
                    .insert(id);
            }
        }
    }
    out
}

#[test]
fn same_seed_gives_identical_bytes_and_another_seed_differs() {
    let (a, _) = generated(7);
    let (b, _) = generated(7);
    let (c, _) = generated(8);
    let fa = files(a.path());
    assert!(fa.len() > 10);
    assert!(fa == files(b.path()), "same seed, different files");
    assert!(fa != files(c.path()), "different seeds, same files");
}

#[test]
fn files_are_cloudtrail_deliveries() {
    let (dir, manifest) = generated(3);
    let recs = records(dir.path());
    assert_eq!(recs.len() as u64, manifest.records);
    let mut ids = HashSet::new();
    for (rel, r) in &recs {
        // AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<ts>_<rand>.json.gz
        let parts: Vec<&str> = rel.split('/').collect();
        assert_eq!(parts.len(), 8, "{rel}");
        assert_eq!((parts[0], parts[2]), ("AWSLogs", "CloudTrail"));
        let (account, region) = (parts[1], parts[3]);
        assert!(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()));
        assert!(
            parts[7].starts_with(&format!("{account}_CloudTrail_{region}_")),
            "{rel}"
        );
        assert_eq!(s(r, "/recipientAccountId"), account);
        assert_eq!(s(r, "/awsRegion"), region);
        assert!(matches!(s(r, "/eventVersion"), "1.08" | "1.09"));
        assert!(matches!(
            s(r, "/eventType"),
            "AwsApiCall" | "AwsConsoleSignIn"
        ));
        assert!(matches!(
            s(r, "/userIdentity/type"),
            "IAMUser" | "AssumedRole" | "AWSService" | "Root"
        ));
        let time = s(r, "/eventTime");
        assert!(time >= manifest.period.start.as_str() && time < manifest.period.end.as_str());
        assert_eq!(
            &time[..10].replace('-', "/"),
            &parts[4..7].join("/"),
            "{rel}"
        );
        assert!(r["readOnly"].is_boolean() && r["managementEvent"].is_boolean());
        assert!(!s(r, "/sourceIPAddress").is_empty() && !s(r, "/userAgent").is_empty());
        if s(r, "/eventName") == "ConsoleLogin" {
            assert_eq!(s(r, "/eventType"), "AwsConsoleSignIn");
            assert!(matches!(
                s(r, "/responseElements/ConsoleLogin"),
                "Success" | "Failure"
            ));
            assert!(matches!(s(r, "/additionalEventData/MFAUsed"), "Yes" | "No"));
        } else if s(r, "/userIdentity/type") != "AWSService" {
            assert!(
                r.get("tlsDetails").is_some() || !s(r, "/userIdentity/invokedBy").is_empty(),
                "{r}"
            );
        }
        if r.get("errorCode").is_some() {
            assert!(r["responseElements"].is_null());
        }
        assert!(ids.insert(s(r, "/eventID").to_owned()), "duplicate eventID");
    }
    let errors = recs
        .iter()
        .filter(|(_, r)| r.get("errorCode").is_some())
        .count();
    let share = errors as f64 / recs.len() as f64;
    assert!((0.01..0.06).contains(&share), "error share {share}");
    for ty in ["IAMUser", "AssumedRole", "AWSService"] {
        assert!(
            recs.iter().any(|(_, r)| s(r, "/userIdentity/type") == ty),
            "no {ty}"
        );
    }
    let logins = recs
        .iter()
        .filter(|(_, r)| s(r, "/eventName") == "ConsoleLogin");
    assert!(logins.count() > 5);
}

#[test]
fn counts_follow_the_weekly_and_daily_rhythm() {
    let (dir, manifest) = generated(5);
    // 2026-10-30 Fri, 31 Sat, 11-01 Sun, 02 Mon.
    let per_day = &manifest.records_per_day;
    assert_eq!(per_day.len(), 4);
    for weekday in [per_day[0], per_day[3]] {
        assert!((550..700).contains(&weekday), "{per_day:?}");
    }
    for weekend in [per_day[1], per_day[2]] {
        assert!(weekend * 3 < per_day[0] * 2, "{per_day:?}");
    }
    // People work in their own hours: IAM users' calls on weekdays are not spread evenly.
    let recs = records(dir.path());
    let mut hours = [0u32; 24];
    for (_, r) in &recs {
        let t = s(r, "/eventTime");
        if s(r, "/userIdentity/type") == "IAMUser"
            && (t.starts_with("2026-10-30") || t.starts_with("2026-11-02"))
        {
            hours[t[11..13].parse::<usize>().unwrap()] += 1;
        }
    }
    let mut sorted = hours;
    sorted.sort_unstable();
    let quiet: u32 = sorted[..6].iter().sum();
    let busy: u32 = sorted[18..].iter().sum();
    assert!(busy > quiet * 3, "{hours:?}");
    assert_eq!(
        per_day.iter().sum::<u64>(),
        recs.len() as u64,
        "records_per_day must add up"
    );
}

#[test]
fn manifest_lists_exactly_the_events_the_seed_rules_catch() {
    for seed in [1, 2, 11] {
        let (dir, manifest) = generated(seed);
        let recs = records(dir.path());
        let expected = expected_alerts(&recs, &manifest.replay.start);
        let mut listed: HashMap<&str, HashSet<String>> = HashMap::new();
        for e in &manifest.injected {
            listed
                .entry(e.rule_id.as_str())
                .or_default()
                .insert(e.event_id.clone());
            assert!(
                e.event_time >= manifest.replay.start,
                "injected before the last day"
            );
        }
        for rule in [
            RULE_SSM_DOCUMENT_RARE_USER,
            RULE_SSM_SEND_COMMAND,
            RULE_CLOUDTRAIL_STOP_LOGGING,
        ] {
            assert_eq!(
                expected.get(rule),
                listed.get(rule),
                "seed {seed}, rule {rule}"
            );
        }
        assert_eq!(listed[RULE_SSM_DOCUMENT_RARE_USER].len(), 1);
        assert_eq!(listed[RULE_SSM_SEND_COMMAND].len(), 2);
        assert_eq!(listed[RULE_CLOUDTRAIL_STOP_LOGGING].len(), 1);
        // Each manifest entry names the file holding the record.
        for e in manifest.injected.iter().chain(&manifest.look_alikes) {
            let found = recs
                .iter()
                .any(|(rel, r)| *rel == e.file && s(r, "/eventID") == e.event_id);
            assert!(found, "{} not in {}", e.event_id, e.file);
        }
    }
}

#[test]
fn look_alikes_are_present_on_the_last_day() {
    let (dir, manifest) = generated(1);
    let recs = records(dir.path());
    let by_id: HashMap<&str, &Value> = recs.iter().map(|(_, r)| (s(r, "/eventID"), r)).collect();
    let last = manifest.replay.start.as_str();
    let la: Vec<&Value> = manifest
        .look_alikes
        .iter()
        .map(|e| by_id[e.event_id.as_str()])
        .collect();
    let has = |f: &dyn Fn(&Value) -> bool| la.iter().any(|r| s(r, "/eventTime") >= last && f(r));
    // Habitual creator: successful Command documents, on the last day too.
    assert!(has(&|r| s(r, "/eventName") == "CreateDocument"
        && success(r)
        && s(r, "/responseElements/documentDescription/documentType")
            == "Command"));
    assert!(has(
        &|r| s(r, "/eventName") == "CreateDocument" && !success(r)
    ));
    assert!(has(&|r| s(r, "/eventName") == "CreateDocument"
        && s(r, "/responseElements/documentDescription/documentType")
            == "Automation"));
    assert!(has(
        &|r| s(r, "/eventName") == "SendCommand" && s(r, "/errorCode") == "AccessDeniedException"
    ));
    assert!(has(
        &|r| s(r, "/eventName") == "StopLogging" && s(r, "/errorCode") == "AccessDenied"
    ));
    assert!(has(&|r| s(r, "/eventName") == "StartLogging" && success(r)));
    // The habitual creator created documents on every earlier day.
    let publisher_days: HashSet<&str> = recs
        .iter()
        .filter(|(_, r)| {
            s(r, "/eventName") == "CreateDocument" && user_name(r) == "ssm-doc-publisher-role"
        })
        .map(|(_, r)| &s(r, "/eventTime")[..10])
        .collect();
    assert_eq!(publisher_days.len(), 4);
    // Other ssm activity surrounds the rule's actions.
    assert!(recs
        .iter()
        .any(|(_, r)| s(r, "/eventName") == "GetParameter"));
    assert!(recs
        .iter()
        .any(|(_, r)| s(r, "/eventName") == "DescribeInstanceInformation"));
}

/// The seed rules' queries name the fields and values the injected events carry.
#[test]
fn injected_events_carry_the_values_the_rule_queries_test() {
    let Some(rules) = common::shared_data("detection-rules/aws") else {
        return;
    };
    let (_, manifest) = generated(1);
    let files = [
        (
            RULE_SSM_DOCUMENT_RARE_USER,
            "execution_ssm_command_document_created_by_rare_user.toml",
        ),
        (
            RULE_SSM_SEND_COMMAND,
            "execution_ssm_sendcommand_by_rare_user.toml",
        ),
        (
            RULE_CLOUDTRAIL_STOP_LOGGING,
            "defense_evasion_cloudtrail_logging_suspended.toml",
        ),
    ];
    for (rule_id, file) in files {
        let text = std::fs::read_to_string(rules.join(file)).unwrap();
        assert!(text.contains(rule_id), "{file} is not rule {rule_id}");
        for e in manifest.injected.iter().filter(|e| e.rule_id == rule_id) {
            assert!(
                text.contains(&format!("event.provider: \"{}\"", e.event_source)),
                "{file}"
            );
            assert!(
                text.contains(&format!("event.action: \"{}\"", e.event_name)),
                "{file}"
            );
            assert!(text.contains("event.outcome: \"success\""), "{file}");
        }
    }
}

#[test]
fn refuses_to_overwrite_without_force_and_rejects_bad_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), 1);
    opts.days = 1;
    generate(&opts).unwrap();
    assert!(matches!(generate(&opts), Err(GenerateError::Exists(_))));
    opts.force = true;
    generate(&opts).unwrap();
    opts.start = "2026-13-01".to_owned();
    let err = generate(&opts).unwrap_err();
    assert!(err.to_string().contains("2026-13-01"), "{err}");
}

/// The committed `sample/` is exactly what the documented command produces.
#[test]
fn committed_sample_is_reproducible() {
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample");
    if !sample.join("MANIFEST.json").exists() {
        eprintln!("skipping: no committed sample");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_string_lossy().into_owned();
    let cli = detectd::cli::Cli::parse_from(["detectd", "generate", "--out", out.as_str()]);
    let detectd::cli::Command::Generate(args) = &cli.command else {
        panic!("not generate");
    };
    let manifest = generate(&detectd::commands::generate::options(args)).unwrap();
    let committed: Manifest =
        serde_json::from_str(&std::fs::read_to_string(sample.join("MANIFEST.json")).unwrap())
            .unwrap();
    assert_eq!(manifest.injected, committed.injected);
    let ours: BTreeMap<String, Vec<u8>> = files(dir.path())
        .into_iter()
        .filter(|(k, _)| k.starts_with("AWSLogs"))
        .collect();
    let theirs: BTreeMap<String, Vec<u8>> = files(&sample)
        .into_iter()
        .filter(|(k, _)| k.starts_with("AWSLogs"))
        .collect();
    assert!(ours == theirs, "sample/ differs from `detectd generate` with the defaults: regenerate it (see sample/README.md)");
}

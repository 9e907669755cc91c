//! Bad rule files: every problem names the file and the key; unknown keys are warnings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use detectd::config::RuleOverride;
use detectd::rules::{load_file, load_paths, load_str, Level, LoadError, Problem};

const GOOD: &str = r#"
[metadata]
maturity = "production"

[rule]
author = ["Elastic"]
description = "test rule"
from = "now-9m"
index = ["logs-aws.cloudtrail-*"]
interval = "5m"
language = "kuery"
license = "Elastic License v2"
name = "Test Rule"
risk_score = 21
rule_id = "00000000-0000-0000-0000-000000000001"
severity = "low"
type = "new_terms"
query = 'event.action: "CreateDocument"'

[rule.new_terms]
field = "new_terms_fields"
value = ["aws.cloudtrail.user_identity.arn"]

[[rule.new_terms.history_window_start]]
field = "history_window_start"
value = "now-10d"
"#;

fn errors_of(text: &str) -> Vec<Problem> {
    match load_str(text, Path::new("bad.toml")) {
        Ok(l) => panic!("expected an error, loaded {:?}", l.rule.name),
        Err(e) => {
            assert_eq!(e.path(), Path::new("bad.toml"));
            e.problems()
                .into_iter()
                .filter(|p| p.level == Level::Error)
                .collect()
        }
    }
}

fn error_key(text: &str) -> String {
    let errs = errors_of(text);
    assert!(!errs.is_empty());
    for p in &errs {
        assert_eq!(p.file, PathBuf::from("bad.toml"));
    }
    errs[0].key.clone().unwrap_or_default()
}

#[test]
fn good_rule_loads() {
    let l = load_str(GOOD, Path::new("good.toml")).unwrap();
    assert!(l.warnings.is_empty());
    assert_eq!(l.rule.rule_type(), "new_terms");
    assert_eq!(l.rule.max_signals, 100);
    assert!(l.rule.to.is_now());
}

#[test]
fn syntax_error_names_file_and_line() {
    let text = GOOD.replace("risk_score = 21", "risk_score = = 21");
    let err = load_str(&text, Path::new("bad.toml")).unwrap_err();
    match &err {
        LoadError::Syntax { line, .. } => assert_eq!(*line, Some(14)),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(err
        .to_string()
        .starts_with("bad.toml: invalid TOML at line 14"));
}

#[test]
fn wrong_type_names_key() {
    let text = GOOD.replace("risk_score = 21", "risk_score = \"high\"");
    assert_eq!(error_key(&text), "rule.risk_score");
    let text = GOOD.replace(
        "value = [\"aws.cloudtrail.user_identity.arn\"]",
        "value = \"aws.cloudtrail.user_identity.arn\"",
    );
    assert_eq!(error_key(&text), "rule.new_terms.value");
}

#[test]
fn missing_key_names_key() {
    let text = GOOD.replace("rule_id = \"00000000-0000-0000-0000-000000000001\"\n", "");
    assert_eq!(error_key(&text), "rule.rule_id");
    let text = GOOD.replace("name = \"Test Rule\"\n", "");
    let err = load_str(&text, Path::new("bad.toml")).unwrap_err();
    assert!(err.to_string().contains("rule.name"), "{err}");
}

#[test]
fn bad_interval_and_date_math_name_key() {
    let text = GOOD.replace("interval = \"5m\"", "interval = \"5 minutes\"");
    assert_eq!(error_key(&text), "rule.interval");
    let text = GOOD.replace("from = \"now-9m\"", "from = \"now-9x\"");
    assert_eq!(error_key(&text), "rule.from");
    let text = GOOD.replace("value = \"now-10d\"", "value = \"yesterday\"");
    assert_eq!(error_key(&text), "rule.new_terms.history_window_start");
}

#[test]
fn history_window_must_start_before_from() {
    let text = GOOD.replace("value = \"now-10d\"", "value = \"now-5m\"");
    let errs = errors_of(&text);
    assert_eq!(
        errs[0].key.as_deref(),
        Some("rule.new_terms.history_window_start")
    );
    assert_eq!(errs[0].rule.as_deref(), Some("Test Rule"));
    // Equal to `from` is not earlier.
    let text = GOOD.replace("value = \"now-10d\"", "value = \"now-9m\"");
    assert_eq!(error_key(&text), "rule.new_terms.history_window_start");
}

#[test]
fn value_ranges() {
    let text = GOOD.replace("risk_score = 21", "risk_score = 101");
    assert_eq!(error_key(&text), "rule.risk_score");
    let text = GOOD.replace("severity = \"low\"", "severity = \"severe\"");
    assert_eq!(error_key(&text), "rule.severity");
    let text = GOOD.replace("interval = \"5m\"", "interval = \"5m\"\nmax_signals = 0");
    assert_eq!(error_key(&text), "rule.max_signals");
    let text = GOOD.replace(
        "value = [\"aws.cloudtrail.user_identity.arn\"]",
        "value = [\"a\", \"b\", \"c\", \"d\"]",
    );
    assert_eq!(error_key(&text), "rule.new_terms.value");
    let text = GOOD.replace(
        "value = [\"aws.cloudtrail.user_identity.arn\"]",
        "value = []",
    );
    assert_eq!(error_key(&text), "rule.new_terms.value");
    let text = GOOD.replace("type = \"new_terms\"", "type = \"magic\"");
    assert_eq!(error_key(&text), "rule.type");
}

#[test]
fn kql_error_names_rule_and_offset() {
    let text = GOOD.replace(
        "query = 'event.action: \"CreateDocument\"'",
        "query = 'event.action: (a or'",
    );
    let errs = errors_of(&text);
    assert_eq!(errs[0].key.as_deref(), Some("rule.query"));
    assert_eq!(errs[0].rule.as_deref(), Some("Test Rule"));
    assert_eq!(errs[0].query_offset, Some(19));
    let line = errs[0].to_string();
    assert!(
        line.contains("bad.toml: rule \"Test Rule\": rule.query at offset 19"),
        "{line}"
    );
}

#[test]
fn unknown_keys_are_warnings_naming_the_key() {
    let text = GOOD
        .replace("[metadata]\n", "[metadata]\nfrobnicate = 1\n")
        .replace(
            "severity = \"low\"",
            "severity = \"low\"\nsevirity = \"high\"",
        )
        .replace(
            "field = \"history_window_start\"",
            "field = \"history_window_start\"\nextra_thing = true",
        );
    let l = load_str(&text, Path::new("w.toml")).unwrap();
    let keys: Vec<String> = l
        .warnings
        .iter()
        .map(|p| {
            assert_eq!(p.level, Level::Warning);
            assert_eq!(p.file, PathBuf::from("w.toml"));
            p.key.clone().unwrap()
        })
        .collect();
    assert_eq!(
        keys,
        [
            "metadata.frobnicate",
            "rule.sevirity",
            "rule.new_terms.history_window_start[0].extra_thing"
        ]
    );
}

#[test]
fn folder_with_one_broken_file_reports_the_others() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a_good.toml"), GOOD).unwrap();
    std::fs::write(dir.path().join("b_broken.toml"), "[rule\nname = ").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(
        dir.path().join("sub/c_good.toml"),
        GOOD.replace("Test Rule", "Other Rule"),
    )
    .unwrap();
    std::fs::write(dir.path().join("sub/readme.md"), "not a rule").unwrap();
    let report = load_paths(&[dir.path().to_path_buf()]);
    assert_eq!(report.files, 3);
    let names: Vec<&str> = report.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["Test Rule", "Other Rule"]);
    assert_eq!(report.errors(), 1);
    assert_eq!(report.problems[0].file, dir.path().join("b_broken.toml"));
    assert!(load_file(&dir.path().join("missing.toml")).is_err());
}

#[test]
fn overrides_apply_and_are_checked() {
    let mut rule = load_str(GOOD, Path::new("good.toml")).unwrap().rule;
    let o = RuleOverride {
        enabled: Some(false),
        interval: Some("1m".into()),
        cron: None,
        from: Some("now-2m".into()),
        max_signals: Some(7),
    };
    rule.apply_override(&o).unwrap();
    assert!(!rule.enabled);
    assert_eq!(rule.interval, chrono::Duration::minutes(1));
    assert_eq!(rule.from.source, "now-2m");
    assert_eq!(rule.max_signals, 7);

    let before = rule.clone();
    for bad in [
        RuleOverride {
            interval: Some("soon".into()),
            ..RuleOverride::default()
        },
        RuleOverride {
            from: Some("now-20d".into()),
            ..RuleOverride::default()
        },
        RuleOverride {
            max_signals: Some(0),
            ..RuleOverride::default()
        },
        RuleOverride {
            cron: Some("every minute".into()),
            ..RuleOverride::default()
        },
    ] {
        assert!(rule.apply_override(&bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        rule.from, before.from,
        "a rejected override changes nothing"
    );
}

#[test]
fn optional_schema_keys_load_without_warnings() {
    let text = GOOD.replace(
        "type = \"new_terms\"",
        r#"type = "new_terms"
timestamp_override = "event.ingested"
timestamp_override_fallback_disabled = true
building_block_type = "default"
rule_name_override = "user.name"
max_signals = 250
to = "now-1m"
setup = "enable CloudTrail"
exceptions_list = [{id = "endpoint_list", list_id = "endpoint_list", type = "endpoint", namespace_type = "agnostic"}]
risk_score_mapping = [{field = "event.risk_score", operator = "equals", value = ""}]
severity_mapping = [{field = "event.severity", operator = "equals", value = "high", severity = "high"}]
"#,
    ) + r#"
[[rule.filters]]
[rule.filters.meta]
negate = true
[rule.filters.query.match_phrase]
"user.name" = "svc-backup"

[rule.alert_suppression]
group_by = ["user.name"]
missing_fields_strategy = "suppress"
[rule.alert_suppression.duration]
value = 5
unit = "m"

[[rule.required_fields]]
name = "event.action"
type = "keyword"
ecs = true

[[rule.related_integrations]]
package = "aws"
version = "^2.0.0"
"#;
    let l = load_str(&text, Path::new("full.toml")).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let r = l.rule;
    assert_eq!(r.timestamp_override.as_deref(), Some("event.ingested"));
    assert!(r.timestamp_override_fallback_disabled);
    assert_eq!(r.building_block_type.as_deref(), Some("default"));
    assert_eq!(r.max_signals, 250);
    assert_eq!(r.to.source, "now-1m");
    assert_eq!(r.filters.len(), 1);
    assert_eq!(
        r.filters[0]["query"]["match_phrase"]["user.name"],
        "svc-backup"
    );
    assert_eq!(r.filters[0]["meta"]["negate"], true);
    assert_eq!(r.exceptions[0]["list_id"], "endpoint_list");
    assert_eq!(
        r.alert_suppression.as_ref().unwrap()["duration"]["unit"],
        "m"
    );
    assert_eq!(r.severity_mapping[0]["severity"], "high");
    let f = r.alert_rule_fields();
    assert_eq!(f["timestamp_override"], "event.ingested");
    assert_eq!(f["max_signals"], 250);
    assert_eq!(f["to"], "now-1m");
}

#[test]
fn from_must_be_before_to() {
    let text = GOOD.replace(
        "type = \"new_terms\"",
        "type = \"new_terms\"\nto = \"now-10m\"",
    );
    assert_eq!(error_key(&text), "rule.from");
}

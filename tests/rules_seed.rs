//! The three seed rules in `rules/` load with the values their seed documents state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use chrono::Duration;
use detectd::config::BackendKind;
use detectd::rules::{load_file, Rule, RuleKind, Severity};

fn seed(file: &str) -> Rule {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("rules")
        .join(file);
    let loaded = load_file(&path).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    loaded.rule
}

#[test]
fn ssm_command_document_created_by_rare_user() {
    let r = seed("execution_ssm_command_document_created_by_rare_user.toml");
    assert_eq!(r.rule_id, "50a2bdea-9876-11ef-89db-f661ea17fbcd");
    assert_eq!(r.name, "AWS SSM Command Document Created by Rare User");
    assert_eq!(r.index, ["filebeat-*", "logs-aws.cloudtrail-*"]);
    assert_eq!(r.severity, Severity::Low);
    assert_eq!(r.risk_score, 21);
    assert_eq!(r.interval, Duration::minutes(5));
    assert_eq!(r.from.source, "now-9m");
    assert!(r.to.is_now());
    assert_eq!(r.max_signals, 100);
    assert_eq!(r.version, 1);
    assert_eq!(r.author, ["Elastic"]);
    assert_eq!(r.license.as_deref(), Some("Elastic License v2"));
    assert!(r.tags.iter().any(|t| t == "Tactic: Execution"));
    assert_eq!(r.threat.len(), 1);
    assert_eq!(r.threat[0].tactic.id, "TA0002");
    assert_eq!(r.threat[0].technique[0].id, "T1651");
    assert!(r.support().on(BackendKind::Embedded).is_ok());
    match &r.kind {
        RuleKind::NewTerms {
            text,
            fields,
            history_window_start,
            ..
        } => {
            assert_eq!(fields, &["aws.cloudtrail.user_identity.arn"]);
            assert_eq!(history_window_start.source, "now-10d");
            assert_eq!(history_window_start.lookback(), Some(Duration::days(10)));
            assert!(text.contains("event.action: \"CreateDocument\""));
            assert!(text.contains("aws.cloudtrail.response_elements: *documentType=Command*"));
        }
        other => panic!("expected new_terms, got {other:?}"),
    }
    let f = r.alert_rule_fields();
    assert_eq!(f["rule_type_id"], "siem.newTermsRule");
    assert_eq!(f["new_terms_fields"][0], "aws.cloudtrail.user_identity.arn");
    assert_eq!(f["interval"], "5m");
    assert_eq!(f["from"], "now-9m");
    assert_eq!(
        f["threat"][0]["technique"][0]["name"],
        "Cloud Administration Command"
    );
}

#[test]
fn execution_via_system_manager() {
    let r = seed("execution_via_system_manager.toml");
    assert_eq!(r.rule_id, "37b211e8-4e2f-440f-86d8-06cc8f158cfa");
    assert_eq!(r.name, "AWS Execution via System Manager");
    assert_eq!(r.index, ["filebeat-*", "logs-aws*"]);
    assert_eq!(r.severity, Severity::Low);
    assert_eq!(r.risk_score, 21);
    assert_eq!(r.interval, Duration::minutes(10));
    assert_eq!(r.from.source, "now-60m");
    assert_eq!(r.max_signals, 100);
    assert_eq!(r.version, 9);
    assert_eq!(r.threat[0].tactic.name, "Initial Access");
    assert_eq!(r.threat[0].technique[0].id, "T1566");
    assert_eq!(r.threat[0].technique[0].subtechnique[0].id, "T1566.002");
    match &r.kind {
        RuleKind::Query { text, .. } => assert_eq!(
            text.trim(),
            "event.dataset:aws.cloudtrail and event.provider:ssm.amazonaws.com and event.action:SendCommand and event.outcome:success"
        ),
        other => panic!("expected query, got {other:?}"),
    }
    assert_eq!(r.alert_rule_fields()["rule_type_id"], "siem.queryRule");
}

#[test]
fn cloudtrail_log_suspension() {
    let r = seed("defense_evasion_cloudtrail_logging_suspended.toml");
    assert_eq!(r.rule_id, "1aa8fa52-44a7-4dae-b058-f3333b91c8d7");
    assert_eq!(r.name, "AWS CloudTrail Log Suspension");
    assert_eq!(r.index, ["filebeat-*", "logs-aws.cloudtrail-*"]);
    assert_eq!(r.severity, Severity::Medium);
    assert_eq!(r.risk_score, 47);
    assert_eq!(r.interval, Duration::minutes(10));
    assert_eq!(r.from.source, "now-60m");
    assert_eq!(r.max_signals, 100);
    assert_eq!(r.version, 209);
    assert_eq!(r.threat[0].tactic.id, "TA0005");
    match &r.kind {
        RuleKind::Query { text, .. } => assert_eq!(
            text.trim(),
            "event.dataset:aws.cloudtrail and event.provider:cloudtrail.amazonaws.com and event.action:StopLogging and event.outcome:success"
        ),
        other => panic!("expected query, got {other:?}"),
    }
}

//! The 228 public AWS rules: every file loads, every KQL query parses, the types add up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use detectd::rules::{load_paths, Level, RuleKind, Support};

fn rules_dir() -> Option<PathBuf> {
    common::shared_data("detection-rules/aws")
}

#[test]
fn all_public_aws_rules_load_without_errors() {
    let Some(dir) = rules_dir() else { return };
    let report = load_paths(&[dir]);
    let errors: Vec<String> = report
        .problems
        .iter()
        .filter(|p| p.level == Level::Error)
        .map(|p| p.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{} errors:\n{}",
        errors.len(),
        errors.join("\n")
    );
    assert_eq!(report.files, 228);
    assert_eq!(report.rules.len(), 228);
    // Every key in the public files is understood: no warnings.
    assert_eq!(report.warnings(), 0, "{:#?}", report.problems);
}

#[test]
fn public_rules_by_type() {
    let Some(dir) = rules_dir() else { return };
    let report = load_paths(&[dir]);
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    for r in &report.rules {
        *by_type.entry(r.rule_type().to_string()).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = [
        ("query", 102),
        ("new_terms", 49),
        ("eql", 28),
        ("esql", 39),
        ("threshold", 5),
        ("machine_learning", 5),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(by_type, expected);
    let kql = report
        .rules
        .iter()
        .filter(|r| r.kind.kql().is_some())
        .count();
    assert_eq!(kql, 156, "every kuery query parses");
    let anywhere = report
        .rules
        .iter()
        .filter(|r| r.support() == Support::Anywhere)
        .count();
    assert_eq!(
        anywhere, 156,
        "query, new_terms and threshold run on both backends"
    );
    let es_only: Vec<&detectd::rules::Rule> = report
        .rules
        .iter()
        .filter(|r| matches!(r.support(), Support::ElasticsearchOnly(_)))
        .collect();
    assert_eq!(
        es_only.len(),
        28 + 39,
        "the eql and esql rules run on Elasticsearch only"
    );
    for r in es_only {
        assert!(
            matches!(r.rule_type(), "eql" | "esql"),
            "{}",
            r.source.display()
        );
        assert!(r
            .support()
            .on(detectd::config::BackendKind::Elasticsearch)
            .is_ok());
        assert!(r
            .support()
            .on(detectd::config::BackendKind::Embedded)
            .is_err());
    }
}

#[test]
fn public_rules_match_the_index_csv() {
    let Some(dir) = rules_dir() else { return };
    let Some(csv) = common::shared_data("detection-rules/aws_rules_index.csv") else {
        return;
    };
    let report = load_paths(std::slice::from_ref(&dir));
    let by_path: BTreeMap<PathBuf, &detectd::rules::Rule> =
        report.rules.iter().map(|r| (r.source.clone(), r)).collect();
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (c_path, c_id, c_type, c_nt, c_hws) = (
        col("copied_as"),
        col("rule_id"),
        col("type"),
        col("new_terms_fields"),
        col("history_window_start"),
    );
    let mut checked = 0;
    for line in lines {
        // Names may contain commas; the columns we read come before `name` or are simple.
        let cells: Vec<&str> = line.split(',').collect();
        let rel = cells[c_path].strip_prefix("aws/").unwrap();
        let rule = by_path[&dir.join(rel)];
        assert_eq!(rule.rule_id, cells[c_id]);
        if cells.len() == header.len() {
            assert_eq!(rule.rule_type(), cells[c_type], "{rel}");
            if let RuleKind::NewTerms {
                fields,
                history_window_start,
                ..
            } = &rule.kind
            {
                assert_eq!(fields.join(";"), cells[c_nt], "{rel}");
                assert_eq!(history_window_start.source, cells[c_hws], "{rel}");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 228);
}

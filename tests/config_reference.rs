//! The README's configuration reference is checked against the config struct: every key
//! `Config` has appears in the table with its default, and the committed config.toml loads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use detectd::config::Config;
use serde_json::Value;

fn keys(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                keys(&key, v, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}

#[test]
fn every_config_key_is_documented_with_its_default() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut all = Vec::new();
    keys(
        "",
        &serde_json::to_value(Config::default()).unwrap(),
        &mut all,
    );
    for (key, default) in all {
        if key == "rules" {
            assert!(
                readme.contains("[rules.\"<rule_id>\"]"),
                "per-rule overrides are documented"
            );
            continue;
        }
        let (section, field) = key.rsplit_once('.').unwrap_or(("", &key));
        let row = readme
            .lines()
            .find(|l| {
                l.starts_with("| `")
                    && (l.starts_with(&format!("| `{key}`"))
                        || (l.contains(&format!("/ `{field}`"))
                            && l.contains(&format!("`{section}."))))
            })
            .unwrap_or_else(|| panic!("README documents config key `{key}`"));
        let shown = match &default {
            Value::Null => "unset".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if !matches!(default, Value::Null) && !row.contains("unset") {
            assert!(
                row.contains(&shown),
                "README default of `{key}` is {shown}: {row}"
            );
        }
    }
}

#[test]
fn committed_config_loads_and_uses_the_embedded_backend() {
    let cfg = Config::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config.toml"
    )))
    .unwrap();
    assert_eq!(cfg.backend, detectd::config::BackendKind::Embedded);
    assert_eq!(
        cfg.embedded.data,
        vec![std::path::PathBuf::from("sample/AWSLogs")]
    );
}

#[test]
fn unknown_config_keys_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config.toml");
    std::fs::write(&p, "[scheduler]\nmax_concurency = 3\n").unwrap();
    let err = Config::load(&p).unwrap_err().to_string();
    assert!(
        err.contains("config.toml") && err.contains("max_concurency"),
        "{err}"
    );
}

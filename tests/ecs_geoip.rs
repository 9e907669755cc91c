//! GeoIP and ASN enrichment (`source.geo.*`, `source.as.*`) from MaxMind-format databases we
//! write ourselves (tests/common/mmdb.rs): the geoip processor's field mapping, what adds
//! nothing, bad databases, `detectd ecs --geoip`, `detectd validate`, and a rule on
//! `source.geo` firing on the embedded backend only when a database is configured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::mmdb::{map, names, s, write_ipv4, Data};
use detectd::ecs::geoip::{GeoIp, GeoIpError, GeoIpKind};
use detectd::ecs::{normalize_str, NormalizeOptions};
use serde_json::{json, Value};

/// A City database: one address with two subdivisions, one with a latitude but no longitude,
/// one with a country only; and an ASN database.
fn databases(dir: &Path) -> Vec<PathBuf> {
    let city = write_ipv4(
        "GeoLite2-City",
        &[
            (
                Ipv4Addr::new(81, 2, 69, 160),
                map(vec![
                    ("city", map(vec![("names", names("Oxford"))])),
                    ("continent", map(vec![("names", names("Europe"))])),
                    (
                        "country",
                        map(vec![
                            ("iso_code", s("GB")),
                            ("names", names("United Kingdom")),
                        ]),
                    ),
                    (
                        "location",
                        map(vec![
                            ("latitude", Data::Double(51.75)),
                            ("longitude", Data::Double(-1.25)),
                        ]),
                    ),
                    (
                        "subdivisions",
                        Data::Array(vec![
                            map(vec![("iso_code", s("ENG")), ("names", names("England"))]),
                            map(vec![
                                ("iso_code", s("OXF")),
                                ("names", names("Oxfordshire")),
                            ]),
                        ]),
                    ),
                ]),
            ),
            (
                Ipv4Addr::new(2, 125, 160, 216),
                map(vec![
                    (
                        "country",
                        map(vec![
                            ("iso_code", s("GB")),
                            ("names", names("United Kingdom")),
                        ]),
                    ),
                    ("location", map(vec![("latitude", Data::Double(51.5))])),
                ]),
            ),
        ],
    );
    let asn = write_ipv4(
        "GeoLite2-ASN",
        &[(
            Ipv4Addr::new(81, 2, 69, 160),
            map(vec![
                ("autonomous_system_number", Data::U32(20_712)),
                ("autonomous_system_organization", s("Andrews & Arnold Ltd")),
            ]),
        )],
    );
    let (c, a) = (dir.join("city.mmdb"), dir.join("asn.mmdb"));
    std::fs::write(&c, city).unwrap();
    std::fs::write(&a, asn).unwrap();
    vec![c, a]
}

fn record(ip: &str) -> String {
    json!({
        "eventVersion": "1.08", "eventTime": "2026-11-03T10:00:00Z",
        "eventSource": "ssm.amazonaws.com", "eventName": "SendCommand",
        "awsRegion": "eu-west-2", "sourceIPAddress": ip, "userAgent": "aws-cli/2.15.0",
        "eventID": format!("id-{ip}"), "eventType": "AwsApiCall",
        "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": "111122223333",
            "arn": "arn:aws:iam::111122223333:user/alice", "principalId": "AIDAEXAMPLE"},
        "recipientAccountId": "111122223333"
    })
    .to_string()
}

fn source(opts: &NormalizeOptions, ip: &str) -> Value {
    normalize_str(&record(ip), opts).unwrap().into_value()["source"].clone()
}

#[test]
fn city_and_asn_fields_as_the_geoip_processors_set_them() {
    let dir = tempfile::tempdir().unwrap();
    let g = GeoIp::open(&databases(dir.path())).unwrap();
    assert_eq!(g.kinds(), vec![GeoIpKind::Geo, GeoIpKind::Asn]);
    let opts = NormalizeOptions {
        geoip: Some(Arc::new(g)),
        ..NormalizeOptions::default()
    };
    assert_eq!(
        source(&opts, "81.2.69.160"),
        json!({
            "address": "81.2.69.160", "ip": "81.2.69.160",
            "geo": {
                "continent_name": "Europe", "country_name": "United Kingdom",
                "country_iso_code": "GB",
                // The most specific subdivision, prefixed with the country code.
                "region_iso_code": "GB-OXF", "region_name": "Oxfordshire",
                "city_name": "Oxford", "location": {"lat": 51.75, "lon": -1.25}
            },
            "as": {"number": 20712, "organization": {"name": "Andrews & Arnold Ltd"}}
        })
    );
    // A latitude without a longitude is no location; no ASN record, no source.as.
    assert_eq!(
        source(&opts, "2.125.160.216"),
        json!({
            "address": "2.125.160.216", "ip": "2.125.160.216",
            "geo": {"country_name": "United Kingdom", "country_iso_code": "GB"}
        })
    );
    // Not in the databases, IPv6 in an IPv4 database, not an address: nothing added.
    for ip in [
        "10.0.0.1",
        "2001:db8::1",
        "AWS Internal",
        "ssm.amazonaws.com",
    ] {
        let src = source(&opts, ip);
        assert!(
            src.get("geo").is_none() && src.get("as").is_none(),
            "{ip}: {src}"
        );
        assert_eq!(src["address"], ip);
    }
    // Without databases the fields are absent.
    let plain = source(&NormalizeOptions::default(), "81.2.69.160");
    assert!(plain.get("geo").is_none() && plain.get("as").is_none());
}

#[test]
fn unusable_databases_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.mmdb");
    std::fs::write(&junk, b"not a database").unwrap();
    let e = GeoIp::open(std::slice::from_ref(&junk)).unwrap_err();
    assert!(matches!(e, GeoIpError::Open { .. }), "{e}");
    assert!(e.to_string().contains("junk.mmdb"), "{e}");
    let missing = dir.path().join("missing.mmdb");
    assert!(GeoIp::open(&[missing])
        .unwrap_err()
        .to_string()
        .contains("missing.mmdb"));
    let other = dir.path().join("anon.mmdb");
    std::fs::write(&other, write_ipv4("GeoIP2-Anonymous-IP", &[])).unwrap();
    let e = GeoIp::open(&[other]).unwrap_err();
    assert!(
        matches!(e, GeoIpError::UnknownType { ref kind, .. } if kind == "GeoIP2-Anonymous-IP"),
        "{e}"
    );
}

#[test]
fn ecs_command_takes_geoip_databases() {
    let dir = tempfile::tempdir().unwrap();
    let dbs = databases(dir.path());
    let input = dir.path().join("ct.json");
    std::fs::write(&input, record("81.2.69.160")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .current_dir(dir.path())
        .arg("ecs")
        .arg("--geoip")
        .arg(&dbs[0])
        .arg("--geoip")
        .arg(&dbs[1])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["source"]["geo"]["city_name"], "Oxford");
    assert_eq!(doc["source"]["as"]["number"], 20712);

    let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .current_dir(dir.path())
        .args(["ecs", "--geoip", "nowhere.mmdb"])
        .arg(&input)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere.mmdb"));
}

/// A query rule on `source.geo` (our seed rule narrowed to one country) replayed over one
/// record: it alerts when the City database is configured, and not otherwise.
#[test]
fn a_geo_rule_fires_on_the_embedded_backend_with_a_database() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rule = std::fs::read_to_string(root.join("rules/execution_via_system_manager.toml"))
        .unwrap()
        .replace(
            "and event.outcome:success\n",
            "and event.outcome:success and source.geo.country_iso_code:GB\n",
        );
    assert!(rule.contains("source.geo.country_iso_code:GB"));
    let mut alerts = Vec::new();
    for with_db in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("rules")).unwrap();
        std::fs::write(d.join("rules/geo.toml"), &rule).unwrap();
        std::fs::create_dir(d.join("data")).unwrap();
        std::fs::write(
            d.join("data/ct.json"),
            format!("{{\"Records\": [{}]}}", record("81.2.69.160")),
        )
        .unwrap();
        let dbs = databases(d);
        let geoip = if with_db {
            format!(
                "geoip_databases = [{:?}, {:?}]\n",
                dbs[0].display().to_string(),
                dbs[1].display().to_string()
            )
        } else {
            String::new()
        };
        std::fs::write(
            d.join("config.toml"),
            format!(
                "rules_dir = \"rules\"\n[embedded]\ndata = [\"data\"]\n{geoip}alerts_file = \"alerts.ndjson\"\nstate_file = \"state.json\"\nexecutions_file = \"executions.ndjson\"\n"
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
            .current_dir(d)
            .args([
                "run",
                "--start",
                "2026-11-03T09:30:00Z",
                "--end",
                "2026-11-03T11:00:00Z",
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(d.join("alerts.ndjson")).unwrap_or_default();
        alerts.push(text.lines().count());
        if with_db {
            let a: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
            assert_eq!(a["source"]["geo"]["country_iso_code"], "GB");
        }
    }
    assert_eq!(alerts, vec![1, 0]);
}

/// `detectd validate` lists the rules that cannot fire for want of a database kind: all 22
/// without databases, only the `source.geo` ones with an ASN database alone, none with both.
#[test]
fn validate_lists_rules_by_missing_database_kind() {
    let Some(rules) = common::shared_data("detection-rules/aws") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dbs = databases(dir.path());
    let needing = |geoip: &[&PathBuf]| -> Vec<String> {
        let list: Vec<String> = geoip
            .iter()
            .map(|p| format!("{:?}", p.display().to_string()))
            .collect();
        let cfg = dir.path().join("config.toml");
        std::fs::write(
            &cfg,
            format!("[embedded]\ngeoip_databases = [{}]\n", list.join(", ")),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
            .arg("--config")
            .arg(&cfg)
            .args(["validate", "--format", "json"])
            .arg(&rules)
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["summary"]["needs_geoip"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    let none = needing(&[]);
    let asn_only = needing(&[&dbs[1]]);
    let both = needing(&[&dbs[0], &dbs[1]]);
    assert_eq!(none.len(), 22, "{none:#?}");
    assert!(
        !asn_only.is_empty() && asn_only.len() < none.len(),
        "{asn_only:#?}"
    );
    assert!(asn_only.iter().all(|r| none.contains(r)));
    assert!(both.is_empty(), "{both:#?}");
}

//! The embedded matcher against a table of (KQL, document, expected) cases. Each case names the
//! Elasticsearch behaviour it pins down; the field types are those of the built-in catalog
//! (`logs-aws.cloudtrail-*` as Fleet installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use detectd::fields::FieldCatalog;
use detectd::matcher::{compile_filters, CompileError, Matcher, MatcherSet};
use serde_json::{json, Value};

/// (KQL, document, expected, the Elasticsearch behaviour the case shows).
#[rustfmt::skip]
const CASES: &[(&str, &str, bool, &str)] = &[
    // --- keyword: exact, case-sensitive (term) ---
    ("event.action:CreateDocument", r#"{"event":{"action":"CreateDocument"}}"#, true, "term on keyword matches the exact value"),
    ("event.action:createdocument", r#"{"event":{"action":"CreateDocument"}}"#, false, "term on keyword is case-sensitive"),
    ("event.action:Create", r#"{"event":{"action":"CreateDocument"}}"#, false, "term on keyword is not a substring match"),
    ("event.action:\"CreateDocument\"", r#"{"event":{"action":"CreateDocument"}}"#, true, "match_phrase on keyword is the exact value"),
    ("event.action:\"Create Document\"", r#"{"event":{"action":"Create Document"}}"#, true, "quoted value with a space equals the keyword"),
    ("user.name:alice", r#"{"user":{"name":"alice "}}"#, false, "keyword values are not trimmed"),
    ("cloud.account.id:123456789012", r#"{"cloud":{"account":{"id":"123456789012"}}}"#, true, "number literal on keyword compares as text"),
    ("cloud.account.id:123456789012", r#"{"cloud":{"account":{"id":123456789012}}}"#, true, "a JSON number in a keyword field is indexed as its text"),
    ("event.action:true", r#"{"event":{"action":true}}"#, true, "a JSON boolean in a keyword field is indexed as its text"),
    ("event.action:CreateDocument", r#"{"event.action":"CreateDocument"}"#, true, "dotted keys in _source are the same field as nested objects"),
    ("event.action:CreateDocument", r#"{"event":{"action":null}}"#, false, "null is not indexed"),
    ("event.action:CreateDocument", r#"{}"#, false, "missing field never matches"),
    // --- keyword wildcards ---
    ("event.action:Create*", r#"{"event":{"action":"CreateDocument"}}"#, true, "trailing wildcard on keyword"),
    ("event.action:*Document", r#"{"event":{"action":"CreateDocument"}}"#, true, "leading wildcard on keyword (allowed by Kibana)"),
    ("event.action:*eateDoc*", r#"{"event":{"action":"CreateDocument"}}"#, true, "infix wildcard on keyword"),
    ("event.action:*document", r#"{"event":{"action":"CreateDocument"}}"#, false, "wildcard on keyword is case-sensitive"),
    ("event.action:Create*Document", r#"{"event":{"action":"CreateDocument"}}"#, true, "wildcard matches the empty sequence"),
    ("event.action:C*t*t", r#"{"event":{"action":"CreateDocument"}}"#, true, "several wildcards over the whole value"),
    ("event.action:C*x*t", r#"{"event":{"action":"CreateDocument"}}"#, false, "every literal part must occur in order"),
    ("event.action:Create?ocument", r#"{"event":{"action":"CreateDocument"}}"#, false, "Kibana escapes ? so it is a literal, not a one-character wildcard"),
    ("event.action:Create?ocument", r#"{"event":{"action":"Create?ocument"}}"#, true, "a literal ? matches itself"),
    ("event.action:\"Create*\"", r#"{"event":{"action":"CreateDocument"}}"#, false, "a quoted * is literal"),
    ("event.action:\"Create*\"", r#"{"event":{"action":"Create*"}}"#, true, "a quoted * matches a literal star"),
    ("event.action:Create\\*", r#"{"event":{"action":"Create*"}}"#, true, "an escaped * is literal"),
    ("user_agent.original:*aws-cli*", r#"{"user_agent":{"original":"aws-cli/2.15.30 Python/3.11.8"}}"#, true, "wildcard on keyword with multi-field uses the keyword"),
    // --- value lists, and/or/not ---
    ("event.action:(CreateUser or DeleteUser)", r#"{"event":{"action":"DeleteUser"}}"#, true, "value list is an OR over the field"),
    ("event.action:(CreateUser or DeleteUser)", r#"{"event":{"action":"UpdateUser"}}"#, false, "no value of the list matches"),
    ("event.action:(CreateUser and DeleteUser)", r#"{"event":{"action":["CreateUser","DeleteUser"]}}"#, true, "AND value list on an array field: each value matches some element"),
    ("event.action:(CreateUser and DeleteUser)", r#"{"event":{"action":"CreateUser"}}"#, false, "AND value list needs every value"),
    ("event.provider:iam.amazonaws.com and event.action:CreateUser", r#"{"event":{"provider":"iam.amazonaws.com","action":"CreateUser"}}"#, true, "and: bool.filter"),
    ("event.provider:iam.amazonaws.com and event.action:CreateUser", r#"{"event":{"provider":"iam.amazonaws.com","action":"DeleteUser"}}"#, false, "and needs both"),
    ("event.action:CreateUser or event.action:DeleteUser", r#"{"event":{"action":"DeleteUser"}}"#, true, "or: bool.should minimum_should_match 1"),
    ("not event.action:CreateUser", r#"{"event":{"action":"DeleteUser"}}"#, true, "not: bool.must_not"),
    ("not event.action:CreateUser", r#"{"event":{"action":"CreateUser"}}"#, false, "not of a match"),
    ("not event.action:CreateUser", r#"{}"#, true, "must_not matches documents without the field"),
    ("not event.action:CreateUser", r#"{"event":{"action":["CreateUser","X"]}}"#, false, "must_not excludes when any array element matches"),
    ("a:1 or b:2 and c:3", r#"{"a":1}"#, true, "and binds tighter than or"),
    ("(a:1 or b:2) and c:3", r#"{"a":1}"#, false, "parentheses group"),
    ("not a:1 and b:2", r#"{"a":2,"b":2}"#, true, "not binds tighter than and"),
    ("event.outcome:success AND NOT event.action:X", r#"{"event":{"outcome":"success","action":"Y"}}"#, true, "operators are case-insensitive"),
    ("*", r#"{}"#, true, "* matches every document"),
    ("", r#"{"a":1}"#, true, "the empty query matches every document"),
    // --- arrays and objects in arrays ---
    ("event.category:iam", r#"{"event":{"category":["authentication","iam"]}}"#, true, "array matches when any element does"),
    ("event.category:web", r#"{"event":{"category":["authentication","iam"]}}"#, false, "no element matches"),
    ("aws.cloudtrail.resources.arn:arn\\:aws\\:s3\\:\\:\\:b", r#"{"aws":{"cloudtrail":{"resources":[{"arn":"arn:aws:s3:::a"},{"arn":"arn:aws:s3:::b"}]}}}"#, true, "dotted path through an array of objects (objects are flattened)"),
    ("aws.cloudtrail.resources.arn:*\\:\\:\\:a and aws.cloudtrail.resources.account_id:2", r#"{"aws":{"cloudtrail":{"resources":[{"arn":"arn:aws:s3:::a","account_id":"1"},{"arn":"arn:aws:s3:::b","account_id":"2"}]}}}"#, true, "object arrays are flattened: conditions may hold on different elements"),
    ("event.category:iam", r#"{"event":{"category":[["iam"]]}}"#, true, "nested arrays are flattened"),
    ("event.category:*", r#"{"event":{"category":[]}}"#, false, "exists: an empty array is not a value"),
    ("event.category:*", r#"{"event":{"category":[null]}}"#, false, "exists: [null] is not a value"),
    // --- exists ---
    ("user.name:*", r#"{"user":{"name":"alice"}}"#, true, "exists on a keyword with a value"),
    ("user.name:*", r#"{"user":{"name":""}}"#, true, "exists: the empty string is indexed"),
    ("user.name:*", r#"{"user":{"id":"x"}}"#, false, "exists on a missing field"),
    ("not user.name:*", r#"{"user":{"id":"x"}}"#, true, "not exists"),
    ("aws.cloudtrail.user_identity:*", r#"{"aws":{"cloudtrail":{"user_identity":{"type":"Root"}}}}"#, true, "exists on an object field matches when a sub-field has a value"),
    // --- ignore_above ---
    ("event.original:*", r#"{"event":{"original":"LONG"}}"#, true, "event.original has no ignore_above"),
    ("aws.cloudtrail.request_parameters:*documentType=Command*", r#"{"aws":{"cloudtrail":{"request_parameters":"{documentType=Command}"}}}"#, true, "wildcard on a keyword under ignore_above"),
    // --- constant_keyword ---
    ("data_stream.dataset:aws.cloudtrail", r#"{}"#, true, "constant_keyword matches its constant even when absent from _source"),
    ("event.dataset:aws.cloudtrail", r#"{"event":{"action":"X"}}"#, true, "event.dataset is a constant_keyword with value aws.cloudtrail"),
    ("event.dataset:aws.guardduty", r#"{}"#, false, "term on constant_keyword with another value: no hits (fixture 059)"),
    ("data_stream.dataset:aws.*", r#"{}"#, true, "wildcard on constant_keyword matches every document of the data stream (fixture 058)"),
    ("data_stream.dataset:AWS.*", r#"{}"#, false, "wildcard on constant_keyword is case-sensitive"),
    ("data_stream.dataset:*", r#"{}"#, true, "exists on constant_keyword is true for every document of the data stream"),
    ("not data_stream.dataset:aws.cloudtrail", r#"{}"#, false, "not of the constant never matches"),
    // --- flattened ---
    ("aws.cloudtrail.flattened.request_parameters.withDecryption:true", r#"{"aws":{"cloudtrail":{"flattened":{"request_parameters":{"withDecryption":true}}}}}"#, true, "flattened leaves are strings: JSON true is indexed as \"true\""),
    ("aws.cloudtrail.flattened.request_parameters.ipPermissions.items.fromPort:22", r#"{"aws":{"cloudtrail":{"flattened":{"request_parameters":{"ipPermissions":{"items":[{"fromPort":22}]}}}}}}"#, true, "flattened leaf number stringified, path through an array"),
    ("aws.cloudtrail.flattened.request_parameters.ipPermissions.items.fromPort:22.0", r#"{"aws":{"cloudtrail":{"flattened":{"request_parameters":{"ipPermissions":{"items":[{"fromPort":22}]}}}}}}"#, false, "flattened leaves compare as strings, not numbers"),
    ("aws.cloudtrail.flattened.request_parameters.x-amz-acl:public-read", r#"{"aws":{"cloudtrail":{"flattened":{"request_parameters":{"x-amz-acl":["private","public-read"]}}}}}"#, true, "flattened leaf with an array value"),
    ("aws.cloudtrail.flattened.request_parameters.key:*.tfstate", r#"{"aws":{"cloudtrail":{"flattened":{"request_parameters":{"key":"env/prod.tfstate"}}}}}"#, true, "wildcard on a flattened leaf (ES 8 keyed flattened wildcard)"),
    ("aws.cloudtrail.flattened.request_parameters.key:*.TFSTATE", r#"{"aws":{"cloudtrail":{"flattened":{"request_parameters":{"key":"env/prod.tfstate"}}}}}"#, false, "flattened leaves are case-sensitive"),
    ("aws.cloudtrail.flattened.response_elements.documentDescription.documentType:*", r#"{"aws":{"cloudtrail":{"flattened":{"response_elements":{"documentDescription":{"documentType":"Command"}}}}}}"#, true, "exists on a flattened sub-key (fixture 061)"),
    ("aws.cloudtrail.flattened.request_parameters:public-read", r#"{"aws":{"cloudtrail":{"flattened":{"request_parameters":{"x-amz-acl":"public-read"}}}}}"#, true, "a query on the flattened root matches any leaf value"),
    ("aws.cloudtrail.flattened.request_parameters.other:public-read", r#"{"aws":{"cloudtrail":{"flattened":{"request_parameters":{"x-amz-acl":"public-read"}}}}}"#, false, "a keyed query only sees its own key"),
    // --- text (match_only_text / text) ---
    ("message:world", r#"{"message":"Hello, World!"}"#, true, "match on text: lowercased token"),
    ("message:WORLD", r#"{"message":"Hello, World!"}"#, true, "match analyses the query too"),
    ("message:wor", r#"{"message":"Hello, World!"}"#, false, "match is by whole token"),
    ("message:(goodbye world)", r#"{"message":"Hello, World!"}"#, true, "match is an OR of the query's tokens"),
    ("message:\"hello world\"", r#"{"message":"Hello, World!"}"#, true, "match_phrase: consecutive tokens"),
    ("message:\"world hello\"", r#"{"message":"Hello, World!"}"#, false, "match_phrase: order matters"),
    ("message:\"hello big\"", r#"{"message":"hello small big"}"#, false, "match_phrase: tokens must be adjacent"),
    ("message:\"hello world\"", r#"{"message":["hello","world"]}"#, false, "match_phrase does not cross array values (position_increment_gap)"),
    ("message:wor*", r#"{"message":"Hello, World!"}"#, true, "query_string wildcard on text: per token, lowercased"),
    ("message:*llo", r#"{"message":"Hello, World!"}"#, true, "leading wildcard per token"),
    ("message:hello*world", r#"{"message":"Hello, World!"}"#, false, "a wildcard does not span tokens"),
    ("message:www.example.com", r#"{"message":"visit www.example.com now"}"#, true, "standard tokenizer keeps letters.letters together"),
    ("message:aws", r#"{"message":"aws-cli/2.15"}"#, true, "standard tokenizer splits on - and /"),
    ("message:2.15", r#"{"message":"aws-cli/2.15"}"#, true, "standard tokenizer keeps digit.digit together"),
    ("message:\"!!!\"", r#"{"message":"!!!"}"#, false, "a query with no tokens matches nothing"),
    ("user.name.text:alice", r#"{"user":{"name":"Alice Smith"}}"#, true, "a text multi-field is analysed from its parent's value"),
    ("user.name:alice", r#"{"user":{"name":"Alice Smith"}}"#, false, "while the keyword parent is exact"),
    ("aws.cloudtrail.request_parameters.text:command", r#"{"aws":{"cloudtrail":{"request_parameters":"{documentType=Command}"}}}"#, true, "text multi-field of request_parameters"),
    // --- dates ---
    ("@timestamp:2024-01-01", r#"{"@timestamp":"2024-01-01T13:00:00Z"}"#, true, "date term is range gte/lte: lte fills missing time with 23:59:59.999"),
    ("@timestamp:2024-01-01", r#"{"@timestamp":"2024-01-02T00:00:00Z"}"#, false, "the next day is outside"),
    ("@timestamp:2024-01-01", r#"{"@timestamp":"2023-12-31T23:59:59.999Z"}"#, false, "the day before is outside"),
    ("@timestamp:\"2024-01-01T13:00:00Z\"", r#"{"@timestamp":"2024-01-01T13:00:00.000Z"}"#, true, "dates compare by instant, not text"),
    ("@timestamp:\"2024-01-01T15:00:00+02:00\"", r#"{"@timestamp":"2024-01-01T13:00:00Z"}"#, true, "time zone offsets are applied"),
    ("@timestamp >= 2024-01-01", r#"{"@timestamp":"2024-01-01T00:00:00Z"}"#, true, "gte includes the instant"),
    ("@timestamp > 2024-01-01", r#"{"@timestamp":"2024-01-01T12:00:00Z"}"#, false, "gt rounds up a date-only bound to the end of the day"),
    ("@timestamp > 2024-01-01", r#"{"@timestamp":"2024-01-02T00:00:00Z"}"#, true, "gt: after the rounded-up bound"),
    ("@timestamp < 2024-01-01", r#"{"@timestamp":"2023-12-31T23:59:59Z"}"#, true, "lt: before midnight"),
    ("@timestamp <= 2024-01-01", r#"{"@timestamp":"2024-01-01T23:00:00Z"}"#, true, "lte rounds up to the end of the day"),
    ("@timestamp < now", r#"{"@timestamp":"2020-01-01T00:00:00Z"}"#, true, "date math now"),
    ("@timestamp > now-1d", r#"{"@timestamp":"2020-01-01T00:00:00Z"}"#, false, "date math now-1d"),
    ("@timestamp:2024-01-01", r#"{"@timestamp":1704110400000}"#, true, "epoch millis in the document"),
    // --- numbers ---
    ("source.as.number:16509", r#"{"source":{"as":{"number":16509}}}"#, true, "number term by value"),
    ("source.as.number:16509", r#"{"source":{"as":{"number":"16509"}}}"#, true, "numeric strings are coerced"),
    ("source.as.number:16509.0", r#"{"source":{"as":{"number":16509}}}"#, true, "numbers compare by value"),
    ("source.as.number:16509.5", r#"{"source":{"as":{"number":16509}}}"#, false, "a decimal never equals a long"),
    ("source.as.number > 100", r#"{"source":{"as":{"number":[5, 200]}}}"#, true, "range on an array: any element"),
    ("source.as.number >= 200", r#"{"source":{"as":{"number":200}}}"#, true, "gte inclusive"),
    ("source.as.number < 200", r#"{"source":{"as":{"number":200}}}"#, false, "lt exclusive"),
    ("event.risk_score > 4.5", r#"{"event":{"risk_score":4.75}}"#, true, "float range"),
    // --- booleans ---
    ("aws.cloudtrail.console_login.additional_eventdata.mfa_used:false", r#"{"aws":{"cloudtrail":{"console_login":{"additional_eventdata":{"mfa_used":false}}}}}"#, true, "boolean term (fixture 066)"),
    ("aws.cloudtrail.console_login.additional_eventdata.mfa_used:false", r#"{"aws":{"cloudtrail":{"console_login":{"additional_eventdata":{"mfa_used":"false"}}}}}"#, true, "boolean field accepts \"false\" strings"),
    ("aws.cloudtrail.console_login.additional_eventdata.mfa_used:true", r#"{"aws":{"cloudtrail":{"console_login":{"additional_eventdata":{"mfa_used":false}}}}}"#, false, "boolean mismatch"),
    // --- ip ---
    ("source.ip:198.51.100.10", r#"{"source":{"ip":"198.51.100.10"}}"#, true, "ip term"),
    ("source.ip:198.51.100.0/24", r#"{"source":{"ip":"198.51.100.10"}}"#, true, "ip accepts CIDR (fixture 065)"),
    ("source.ip:198.51.101.0/24", r#"{"source":{"ip":"198.51.100.10"}}"#, false, "outside the CIDR block"),
    ("source.ip:\"::ffff:198.51.100.10\"", r#"{"source":{"ip":"198.51.100.10"}}"#, true, "IPv4-mapped IPv6 is the same address"),
    ("source.ip:2001\\:db8\\:\\:/32", r#"{"source":{"ip":"2001:db8::1"}}"#, true, "IPv6 CIDR"),
    ("source.ip >= 10.0.0.0 and source.ip < 11.0.0.0", r#"{"source":{"ip":"10.200.0.1"}}"#, true, "ip range"),
    // --- unknown fields: dynamic mapping ---
    ("custom.note:hello", r#"{"custom":{"note":"Hello there"}}"#, true, "unmapped string: dynamic text field, match by token"),
    ("custom.note:\"hello there\"", r#"{"custom":{"note":"Hello there"}}"#, true, "unmapped string: match_phrase"),
    ("custom.note.keyword:\"Hello there\"", r#"{"custom":{"note":"Hello there"}}"#, true, "dynamic .keyword sub-field: exact"),
    ("custom.note.keyword:hello", r#"{"custom":{"note":"Hello there"}}"#, false, "dynamic .keyword sub-field is case-sensitive and whole-value"),
    ("custom.count:5", r#"{"custom":{"count":5}}"#, true, "unmapped number: long"),
    ("custom.count > 3", r#"{"custom":{"count":5}}"#, true, "unmapped number: numeric range"),
    ("custom.flag:true", r#"{"custom":{"flag":true}}"#, true, "unmapped boolean"),
    ("custom.when:2024-01-01", r#"{"custom":{"when":"2024-01-01T10:00:00Z"}}"#, true, "date detection types unmapped date strings as date"),
    ("custom.note:*", r#"{"custom":{"note":"x"}}"#, true, "exists on an unmapped field present in the document"),
    ("custom.missing:x", r#"{"custom":{"note":"x"}}"#, false, "unmapped and absent never matches"),
    // --- free text ---
    ("CreateDocument", r#"{"event":{"action":"CreateDocument"}}"#, true, "free text: multi_match over all fields, keyword exact"),
    ("createdocument", r#"{"event":{"action":"CreateDocument"}}"#, false, "free text on a keyword field is still exact"),
    ("world", r#"{"message":"Hello world"}"#, true, "free text on a text field: by token"),
    ("Create*", r#"{"event":{"action":"CreateDocument"}}"#, true, "free text wildcard: query_string over all fields"),
    ("aws.cloudtrail", r#"{}"#, true, "free text sees constant_keyword values"),
    ("nothing", r#"{"event":{"action":"CreateDocument"}}"#, false, "free text with no match"),
    ("198.51.100.0/24", r#"{"source":{"ip":"198.51.100.10"}}"#, true, "free text is lenient on typed fields (ip CIDR)"),
    // --- field name wildcards ---
    ("event.act*:CreateUser", r#"{"event":{"action":"CreateUser"}}"#, true, "a wildcard field name expands over the catalog"),
    ("zzz*:CreateUser", r#"{"event":{"action":"CreateUser"}}"#, false, "a wildcard field name matching no field matches nothing"),
    // --- nested ---
    ("aws.cloudtrail.resources:{ arn:x and account_id:1 }", r#"{"aws":{"cloudtrail":{"resources":[{"arn":"x","account_id":"2"},{"arn":"y","account_id":"1"}]}}}"#, false, "nested: both conditions on the same object"),
    ("aws.cloudtrail.resources:{ arn:x and account_id:1 }", r#"{"aws":{"cloudtrail":{"resources":[{"arn":"y","account_id":"2"},{"arn":"x","account_id":"1"}]}}}"#, true, "nested: one object satisfies all"),
];

fn check_case(
    catalog: &FieldCatalog,
    kql: &str,
    doc: &str,
    expected: bool,
    why: &str,
) -> Option<String> {
    let ast = match detectd::kql::parse(kql) {
        Ok(a) => a,
        Err(e) => return Some(format!("{kql:?}: parse error {e}")),
    };
    let m = match Matcher::compile(&ast, catalog) {
        Ok(m) => m,
        Err(e) => return Some(format!("{kql:?}: compile error {e}")),
    };
    let doc: Value = serde_json::from_str(doc).expect("test document is json");
    let got = m.matches_json(&doc);
    (got != expected).then(|| format!("{kql:?} on {doc}: got {got}, expected {expected} ({why})"))
}

/// The document's leaves by dotted path when every leaf is a string (else `None`).
fn string_leaves(v: &Value, path: &str, out: &mut Vec<(String, String)>) -> Option<()> {
    match v {
        Value::String(s) => out.push((path.to_string(), s.clone())),
        Value::Object(m) => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                string_leaves(x, &p, out)?;
            }
        }
        _ => return None,
    }
    Some(())
}

/// A document known only as its fields' single strings is matched as the document itself.
#[test]
fn matching_known_string_fields_agrees_with_matching_the_document() {
    let catalog = FieldCatalog::builtin();
    let mut compared = 0;
    for (kql, doc, expected, why) in CASES {
        let Ok(ast) = detectd::kql::parse(kql) else {
            continue;
        };
        let Ok(m) = Matcher::compile(&ast, &catalog) else {
            continue;
        };
        let doc: Value = serde_json::from_str(doc).unwrap();
        let mut leaves = Vec::new();
        if string_leaves(&doc, "", &mut leaves).is_none() {
            continue;
        }
        let known = m.matches_known(|f| {
            // An object is not a single string: unknown.
            let prefix = format!("{f}.");
            if leaves.iter().any(|(p, _)| p.starts_with(&prefix)) {
                return None;
            }
            Some(leaves.iter().find(|(p, _)| p == f).map(|(_, v)| v.as_str()))
        });
        let Some(got) = known else {
            continue;
        };
        assert_eq!(got, m.matches_json(&doc), "{kql} on {doc} ({why})");
        assert_eq!(got, *expected, "{kql} on {doc} ({why})");
        compared += 1;
    }
    assert!(compared > 60, "{compared} cases compared");
    // An unknown field makes the answer unknown.
    let m = Matcher::compile(&detectd::kql::parse("event.action:A").unwrap(), &catalog).unwrap();
    assert_eq!(m.matches_known(|_| None), None);
    assert_eq!(m.matches_known(|_| Some(None)), Some(false));
    assert_eq!(m.matches_known(|_| Some(Some("A"))), Some(true));
}

#[test]
fn kql_cases_agree_with_elasticsearch() {
    let catalog = FieldCatalog::builtin();
    let failures: Vec<String> = CASES
        .iter()
        .filter_map(|(q, d, e, why)| check_case(&catalog, q, d, *e, why))
        .collect();
    assert!(CASES.len() >= 100, "{} cases", CASES.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn ignore_above_values_are_not_indexed() {
    let catalog = FieldCatalog::builtin();
    let long = "x".repeat(1025);
    let doc = json!({"user": {"name": long}});
    let q = |kql: &str| Matcher::compile(&detectd::kql::parse(kql).unwrap(), &catalog).unwrap();
    // keyword ignore_above 1024: not indexed, so neither term, wildcard nor exists match.
    assert!(!q(&format!("user.name:{long}")).matches_json(&doc));
    assert!(!q("user.name:x*").matches_json(&doc));
    assert!(!q("user.name:*").matches_json(&doc));
    // exactly 1024 characters is still indexed
    let ok = json!({"user": {"name": "x".repeat(1024)}});
    assert!(q("user.name:x*").matches_json(&ok));
    // other elements of the array are indexed
    let mixed = json!({"user": {"name": [long, "bob"]}});
    assert!(q("user.name:bob").matches_json(&mixed));
    // ignore_above counts characters (UTF-16 units), not bytes
    let wide = json!({"user": {"name": "é".repeat(1000)}});
    assert!(q("user.name:*").matches_json(&wide));
}

#[test]
fn typed_fields_reject_unparseable_values_like_elasticsearch() {
    let catalog = FieldCatalog::builtin();
    let err = |kql: &str| Matcher::compile(&detectd::kql::parse(kql).unwrap(), &catalog).err();
    assert!(
        matches!(err("source.ip:not-an-ip"), Some(CompileError::Value { .. })),
        "fixture 088: term with a bad ip is a 400"
    );
    assert!(
        matches!(
            err("aws.cloudtrail.read_only:maybe"),
            Some(CompileError::Value { .. })
        ),
        "fixture 089: bad boolean is a 400"
    );
    assert!(
        matches!(err("source.ip:10.*"), Some(CompileError::Wildcard { .. })),
        "fixture 086: wildcard on ip is a 400"
    );
    assert!(
        matches!(err("@timestamp:2024*"), Some(CompileError::Wildcard { .. })),
        "fixture 087: wildcard on date is a 400"
    );
    assert!(matches!(
        err("source.as.number:abc"),
        Some(CompileError::Value { .. })
    ));
    let msg = err("source.ip:nope")
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("source.ip") && msg.contains("nope"), "{msg}");
}

#[test]
fn matcher_set_shares_one_prepared_document() {
    let catalog = FieldCatalog::builtin();
    let mut set = MatcherSet::new();
    let kqls = [
        "event.action:A",
        "event.provider:p and event.action:B",
        "user.name:*",
        "message:hello",
    ];
    for k in kqls {
        set.add(&Matcher::compile(&detectd::kql::parse(k).unwrap(), &catalog).unwrap());
    }
    assert_eq!(set.len(), 4);
    let doc = json!({"event": {"action": "B", "provider": "p"}, "message": "Hello"});
    let prepared = set.prepare(&doc);
    let hits: Vec<usize> = (0..set.len())
        .filter(|&i| set.matches(i, &prepared))
        .collect();
    assert_eq!(hits, [1, 3]);
    assert!(!set.matches(99, &prepared));
}

#[test]
fn rule_filters_compile_to_the_same_semantics() {
    let catalog = FieldCatalog::builtin();
    let filters = vec![
        json!({"meta": {"negate": false, "disabled": false}, "query": {"match_phrase": {"event.action": "CreateUser"}}}),
        json!({"meta": {"negate": true}, "query": {"term": {"user.name": "root"}}}),
        json!({"meta": {"disabled": true}, "query": {"term": {"user.name": "nobody"}}}),
        json!({"exists": {"field": "source.ip"}, "meta": {}}),
        json!({"query": {"bool": {"should": [{"match": {"message": "hello"}}, {"range": {"source.as.number": {"gte": 10}}}], "minimum_should_match": 1}}}),
    ];
    let m = compile_filters(&filters, &catalog).unwrap();
    let base = json!({"event": {"action": "CreateUser"}, "user": {"name": "alice"}, "source": {"ip": "1.2.3.4", "as": {"number": 5}}, "message": "Hello"});
    assert!(m.matches_json(&base));
    let mut root = base.clone();
    root["user"]["name"] = json!("root");
    assert!(!m.matches_json(&root), "meta.negate excludes");
    let mut no_ip = base.clone();
    no_ip["source"] = json!({"as": {"number": 5}});
    assert!(!m.matches_json(&no_ip), "legacy top-level exists filter");
    let mut no_should = base.clone();
    no_should["message"] = json!("bye");
    assert!(
        !m.matches_json(&no_should),
        "bool.should minimum_should_match 1"
    );
    no_should["source"]["as"]["number"] = json!(12);
    assert!(m.matches_json(&no_should));

    // term on text is not analysed (fixture 063); terms is an OR; wildcard `?` is one character.
    let one = |q: Value| compile_filters(&[json!({"query": q})], &catalog).unwrap();
    assert!(!one(json!({"term": {"message": "Hello"}})).matches_json(&json!({"message": "Hello"})));
    assert!(one(json!({"term": {"message": "hello"}})).matches_json(&json!({"message": "Hello"})));
    assert!(one(json!({"terms": {"event.action": ["A", "B"]}}))
        .matches_json(&json!({"event": {"action": "B"}})));
    assert!(
        one(json!({"wildcard": {"event.action": {"value": "Cr?ate*"}}}))
            .matches_json(&json!({"event": {"action": "CreateUser"}}))
    );
    assert!(one(
        json!({"wildcard": {"event.action": {"value": "create*", "case_insensitive": true}}})
    )
    .matches_json(&json!({"event": {"action": "CreateUser"}})));
    assert!(one(json!({"prefix": {"event.action": "Cre"}}))
        .matches_json(&json!({"event": {"action": "CreateUser"}})));
    assert!(one(json!({"range": {"@timestamp": {"gte": "2024-01-01", "lte": "2024-01-01", "format": "strict_date_optional_time"}}})).matches_json(&json!({"@timestamp": "2024-01-01T18:00:00Z"})));
    assert!(
        one(json!({"match": {"message": {"query": "hello world", "operator": "and"}}}))
            .matches_json(&json!({"message": "world, hello"}))
    );
    assert!(
        !one(json!({"match": {"message": {"query": "hello moon", "operator": "and"}}}))
            .matches_json(&json!({"message": "world, hello"}))
    );
    assert!(one(json!({"match_all": {}})).matches_json(&json!({})));

    // A rule = its query and its filters.
    let q = Matcher::compile(
        &detectd::kql::parse("event.provider:iam.amazonaws.com").unwrap(),
        &catalog,
    )
    .unwrap();
    let rule = q.and(compile_filters(&filters[..1], &catalog).unwrap());
    assert!(rule.matches_json(
        &json!({"event": {"provider": "iam.amazonaws.com", "action": "CreateUser"}})
    ));
    assert!(!rule.matches_json(
        &json!({"event": {"provider": "iam.amazonaws.com", "action": "DeleteUser"}})
    ));
}

#[test]
fn unsupported_filters_are_reported_with_their_index() {
    let catalog = FieldCatalog::builtin();
    let bad = [
        json!({"query": {"match_all": {}}}),
        json!({"query": {"query_string": {"query": "a:b"}}}),
    ];
    let err = compile_filters(&bad, &catalog).expect_err("query_string is unsupported");
    assert_eq!(
        err.to_string(),
        "filter 1: unsupported filter query `query_string`"
    );
    assert!(compile_filters(&[json!("nope")], &catalog).is_err());
    assert!(compile_filters(
        &[json!({"query": {"range": {"@timestamp": {"gte": "x", "format": "dd/MM/yyyy"}}}})],
        &catalog
    )
    .is_err());
}

mod common;

#[test]
fn every_aws_kql_rule_compiles_with_the_builtin_catalog() {
    let Some(dir) = common::shared_data("detection-rules/aws") else {
        return;
    };
    let catalog = FieldCatalog::builtin();
    let mut compiled = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let doc: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let rule = &doc["rule"];
        let ty = rule.get("type").and_then(|v| v.as_str()).unwrap_or("");
        if !matches!(ty, "query" | "new_terms")
            || rule.get("language").and_then(|v| v.as_str()) != Some("kuery")
        {
            continue;
        }
        let ast = detectd::kql::parse(rule["query"].as_str().unwrap()).unwrap();
        Matcher::compile(&ast, &catalog).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        compiled += 1;
    }
    assert_eq!(compiled, 134);
}

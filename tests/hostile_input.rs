//! Hostile input: the CloudTrail reader and the rule loader never panic, and their errors name
//! the file (and the record); a rule with 10,000 values in a list loads, compiles for the
//! embedded backend and translates to query DSL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead;
use std::path::{Path, PathBuf};

use detectd::ecs::reader::read_stream;
use detectd::ecs::{Document, NormalizeOptions, ReadError};
use proptest::prelude::*;

const FILE: &str = "hostile/input.json";

fn read_bytes(bytes: &[u8]) -> (Vec<Document>, Vec<ReadError>) {
    let (mut docs, mut errs) = (Vec::new(), Vec::new());
    let reader: Box<dyn BufRead> = Box::new(std::io::Cursor::new(bytes.to_vec()));
    read_stream(
        reader,
        Path::new(FILE),
        &NormalizeOptions::default(),
        &mut |d| docs.push(d),
        &mut |e| errs.push(e),
    );
    (docs, errs)
}

fn assert_errors_name_the_file(errs: &[ReadError]) {
    for e in errs {
        assert_eq!(e.file, PathBuf::from(FILE));
        assert!(e.to_string().starts_with(FILE), "{e}");
    }
}

/// A plausible record, so the generators reach past the first parse.
fn record_json(name: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"2024-01-01T00:00:00Z","eventSource":"iam.amazonaws.com","eventName":{name},"awsRegion":"us-east-1","sourceIPAddress":"10.0.0.1","userIdentity":{{"type":"IAMUser","userName":"alice"}},"eventID":"e1"}}"#
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let (_, errs) = read_bytes(&bytes);
        assert_errors_name_the_file(&errs);
    }

    #[test]
    fn records_with_arbitrary_bytes_inside_never_panic(
        junk in proptest::collection::vec(any::<u8>(), 0..256),
        wrap in 0usize..3,
    ) {
        let mut rec = record_json("\"CreateUser\"").into_bytes();
        let at = rec.len() / 2;
        rec.splice(at..at, junk);
        let bytes = match wrap {
            0 => [b"{\"Records\":[".as_slice(), &rec, b"]}"].concat(),
            1 => [rec.as_slice(), b"\n", record_json("\"GetUser\"").as_bytes(), b"\n"].concat(),
            _ => [b"[".as_slice(), &rec, b",", record_json("\"GetUser\"").as_bytes(), b"]"].concat(),
        };
        let (docs, errs) = read_bytes(&bytes);
        assert_errors_name_the_file(&errs);
        for e in &errs {
            prop_assert!(e.record.is_some() || e.reason.contains("cannot") || !e.reason.is_empty());
        }
        prop_assert!(docs.len() <= 2);
    }

    #[test]
    fn arbitrary_rule_text_never_panics_the_loader(text in "\\PC{0,400}") {
        if let Err(e) = detectd::rules::load_str(&text, Path::new("hostile/rule.toml")) {
            prop_assert!(e.to_string().contains("hostile/rule.toml"), "{}", e);
        }
    }

    #[test]
    fn mangled_rule_files_never_panic_the_loader(cut in 0usize..1200, insert in "\\PC{0,20}") {
        let seed = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/execution_via_system_manager.toml"),
        )
        .unwrap();
        let mut at = cut.min(seed.len());
        while !seed.is_char_boundary(at) {
            at -= 1;
        }
        let text = format!("{}{insert}{}", &seed[..at], &seed[at..]);
        if let Err(e) = detectd::rules::load_str(&text, Path::new("hostile/rule.toml")) {
            prop_assert!(e.to_string().contains("hostile/rule.toml"), "{}", e);
        }
    }
}

#[test]
fn deeply_nested_json_is_an_error_naming_the_record_not_a_stack_overflow() {
    let depth = 100_000;
    let nested = format!("{}{}", "{\"a\":[".repeat(depth), "]}".repeat(depth));
    for text in [
        format!("{{\"Records\":[{},{nested}]}}", record_json("\"GetUser\"")),
        format!("{}\n{nested}\n", record_json("\"GetUser\"")),
    ] {
        let (docs, errs) = read_bytes(text.as_bytes());
        assert_errors_name_the_file(&errs);
        assert_eq!(docs.len(), 1, "the good record survives: {errs:?}");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].record, Some(2), "{}", errs[0]);
    }
}

#[test]
fn invalid_utf8_is_an_error_naming_the_record() {
    let mut bad = record_json("\"Get\u{e9}User\"").into_bytes();
    let i = bad.iter().position(|b| *b == 0xC3).unwrap();
    bad[i] = 0xFF; // no longer UTF-8
    let text = [
        record_json("\"GetUser\"").as_bytes(),
        b"\n",
        &bad,
        b"\n",
        record_json("\"ListUsers\"").as_bytes(),
        b"\n",
    ]
    .concat();
    let (docs, errs) = read_bytes(&text);
    assert_errors_name_the_file(&errs);
    assert_eq!(docs.len(), 2, "{errs:?}");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].record, Some(2), "{}", errs[0]);
}

#[test]
fn a_huge_record_is_read_or_refused_without_stopping_the_file() {
    // 70 MB in one string field: above the reader's 64 MB record cap.
    let huge = format!(
        "{{\"Records\":[{},{},{}]}}",
        record_json("\"GetUser\""),
        record_json(&format!("\"{}\"", "A".repeat(70 << 20))),
        record_json("\"ListUsers\"")
    );
    let (docs, errs) = read_bytes(huge.as_bytes());
    assert_errors_name_the_file(&errs);
    assert_eq!(docs.len() + errs.len(), 3, "{errs:?}");
    assert!(docs.len() >= 2);
    if let Some(e) = errs.first() {
        assert_eq!(e.record, Some(2), "{e}");
    }
}

#[test]
fn a_rule_with_10000_values_in_a_list_loads_and_translates() {
    let values: Vec<String> = (0..10_000).map(|i| format!("\"user-{i}\"")).collect();
    let query = format!("user.name: ({})", values.join(" or "));
    let text = format!(
        "[metadata]\ncreation_date = \"2026/11/01\"\nmaturity = \"production\"\nupdated_date = \"2026/11/01\"\n[rule]\nauthor = [\"t\"]\ndescription = \"d\"\nindex = [\"logs-aws*\"]\nlanguage = \"kuery\"\nlicense = \"Apache-2.0\"\nname = \"many values\"\nrisk_score = 21\nrule_id = \"many-values\"\nseverity = \"low\"\ntype = \"query\"\nquery = '''\n{query}\n'''\n"
    );
    let loaded = detectd::rules::load_str(&text, Path::new("many.toml")).unwrap();
    let ast = detectd::kql::parse(&query).unwrap();
    let catalog = detectd::fields::FieldCatalog::builtin();
    let dsl = detectd::dsl::to_dsl(&ast, &catalog).unwrap();
    let should = dsl["bool"]["should"]
        .as_array()
        .expect("a bool.should of the values");
    assert_eq!(should.len(), 10_000);
    let m = detectd::matcher::Matcher::compile(&ast, &catalog).unwrap();
    let _ = (loaded, m);
}

//! KQL grammar, case by case: each case is a query and the expected tree written as an
//! S-expression (see `sexp`), or the expected Kibana error message and offset.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use detectd::kql::{parse, Ast, Field, LiteralKind, Part, Value};

/// A compact, unambiguous rendering of a tree:
/// `(is "field" "value")`, `(is _ "free text")`, `w"machine*"` for a wildcard field name,
/// `"b"+*` for the value `b*`, `q"..."` for a quoted value, `"true":bool`, `*all` for MatchAll.
fn sexp(ast: &Ast) -> String {
    fn field(f: &Field) -> String {
        format!("{}{:?}", if f.wildcard { "w" } else { "" }, f.name)
    }
    fn value(v: &Value) -> String {
        let mut s = String::new();
        if v.quoted {
            s.push('q');
        }
        let parts: Vec<String> = v
            .parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => format!("{t:?}"),
                Part::Wildcard => "*".to_string(),
            })
            .collect();
        if parts.is_empty() {
            s.push_str("\"\"");
        }
        s.push_str(&parts.join("+"));
        match v.kind {
            LiteralKind::String => {}
            LiteralKind::Boolean => s.push_str(":bool"),
            LiteralKind::Number => s.push_str(":num"),
        }
        s
    }
    fn list(name: &str, items: &[Ast]) -> String {
        let inner: Vec<String> = items.iter().map(sexp).collect();
        format!("({name} {})", inner.join(" "))
    }
    match ast {
        Ast::And(items) => list("and", items),
        Ast::Or(items) => list("or", items),
        Ast::Not(a) => format!("(not {})", sexp(a)),
        Ast::Is {
            field: None,
            value: v,
        } => format!("(is _ {})", value(v)),
        Ast::Is {
            field: Some(f),
            value: v,
        } => format!("(is {} {})", field(f), value(v)),
        Ast::Exists { field: f } => format!("(exists {})", field(f)),
        Ast::Range {
            field: f,
            op,
            value: v,
        } => format!("(range {} {op} {})", field(f), value(v)),
        Ast::Nested { path, query } => format!("(nested {} {})", field(path), sexp(query)),
        Ast::MatchAll => "*all".to_string(),
    }
}

/// Parses each query and compares its tree with the expected S-expression; also checks that
/// printing the tree back to KQL reparses to the same tree.
fn check_trees(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (query, expected) in cases {
        match parse(query) {
            Ok(ast) => {
                let got = sexp(&ast);
                if got != *expected {
                    failures.push(format!(
                        "{query:?}\n   expected {expected}\n   got      {got}"
                    ));
                }
                let printed = ast.to_kql();
                match parse(&printed) {
                    Ok(again) if again == ast => {}
                    other => failures.push(format!(
                        "{query:?}: printed {printed:?} reparses to {other:?}"
                    )),
                }
            }
            Err(e) => failures.push(format!("{query:?}: unexpected error\n{}", e.render())),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Parses each query and compares the error message and offset (in characters).
fn check_errors(cases: &[(&str, &str, usize)]) {
    let mut failures = Vec::new();
    for (query, message, offset) in cases {
        match parse(query) {
            Ok(ast) => failures.push(format!("{query:?}: parsed to {}", sexp(&ast))),
            Err(e) if e.message == *message && e.offset == *offset => {}
            Err(e) => failures.push(format!(
                "{query:?}\n   expected {message} @{offset}\n   got      {} @{}",
                e.message, e.offset
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn boolean_operators_and_precedence() {
    check_trees(&[
        ("a:1 and b:2", r#"(and (is "a" "1") (is "b" "2"))"#),
        ("a:1 or b:2", r#"(or (is "a" "1") (is "b" "2"))"#),
        ("a and b and c", r#"(and (is _ "a") (is _ "b") (is _ "c"))"#),
        ("a or b or c", r#"(or (is _ "a") (is _ "b") (is _ "c"))"#),
        (
            "a or b and c",
            r#"(or (is _ "a") (and (is _ "b") (is _ "c")))"#,
        ),
        (
            "a and b or c",
            r#"(or (and (is _ "a") (is _ "b")) (is _ "c"))"#,
        ),
        ("not a and b", r#"(and (not (is _ "a")) (is _ "b"))"#),
        ("not a or b", r#"(or (not (is _ "a")) (is _ "b"))"#),
        ("a and not b", r#"(and (is _ "a") (not (is _ "b")))"#),
        ("not (a or b)", r#"(not (or (is _ "a") (is _ "b")))"#),
        (
            "(a or b) and c",
            r#"(and (or (is _ "a") (is _ "b")) (is _ "c"))"#,
        ),
        // Kibana keeps the parenthesised group as its own node.
        (
            "a and (b and c)",
            r#"(and (is _ "a") (and (is _ "b") (is _ "c")))"#,
        ),
        ("((a))", r#"(is _ "a")"#),
        ("( a:b )", r#"(is "a" "b")"#),
    ]);
}

#[test]
fn operators_are_case_insensitive() {
    check_trees(&[
        ("a OR b", r#"(or (is _ "a") (is _ "b"))"#),
        ("a AnD b", r#"(and (is _ "a") (is _ "b"))"#),
        ("NOT a", r#"(not (is _ "a"))"#),
        ("nOt a:b", r#"(not (is "a" "b"))"#),
        // Operators need whitespace on both sides.
        ("a:b or", r#"(is "a" "b or")"#),
        ("a\tand\nb", r#"(and (is _ "a") (is _ "b"))"#),
        ("a\u{a0}or\u{a0}b", r#"(or (is _ "a") (is _ "b"))"#),
        ("nota", r#"(is _ "nota")"#),
        (
            "a:orange and b:android",
            r#"(and (is "a" "orange") (is "b" "android"))"#,
        ),
    ]);
}

#[test]
fn field_values_and_free_text() {
    check_trees(&[
        ("a:b", r#"(is "a" "b")"#),
        ("a : b", r#"(is "a" "b")"#),
        ("a.b.c:d-e_f/g", r#"(is "a.b.c" "d-e_f/g")"#),
        // Unquoted values may contain spaces; they are trimmed.
        ("a:hello world", r#"(is "a" "hello world")"#),
        ("a:b   or c:d", r#"(or (is "a" "b") (is "c" "d"))"#),
        ("hello", r#"(is _ "hello")"#),
        ("hello world", r#"(is _ "hello world")"#),
        ("\"hello world\"", r#"(is _ q"hello world")"#),
        ("a:\"b c\"", r#"(is "a" q"b c")"#),
        ("a:\"\"", r#"(is "a" q"")"#),
        ("\"a b\":c", r#"(is "a b" "c")"#),
        ("\"a*\":c", r#"(is "a*" "c")"#),
        ("a b:c", r#"(is "a b" "c")"#),
        // Numbers are strings (Kibana removed number parsing); true/false are booleans.
        ("a:200", r#"(is "a" "200")"#),
        ("a:-1.5", r#"(is "a" "-1.5")"#),
        ("a:true", r#"(is "a" "true":bool)"#),
        ("a:false", r#"(is "a" "false":bool)"#),
        ("a:TRUE", r#"(is "a" "TRUE")"#),
        ("a:\"true\"", r#"(is "a" q"true")"#),
        ("a:null", r#"(is "a" "null")"#),
        ("true", r#"(is _ "true":bool)"#),
        ("cannot", r#"(is _ "cannot")"#),
    ]);
}

#[test]
fn wildcards_exists_and_match_all() {
    check_trees(&[
        ("", "*all"),
        ("   ", "*all"),
        ("*", "*all"),
        ("*:*", "*all"),
        (" * ", "*all"),
        ("a:*", r#"(exists "a")"#),
        ("a:(*)", r#"(exists "a")"#),
        ("machine*:*", r#"(exists w"machine*")"#),
        ("\"*\":*", r#"(exists "*")"#),
        ("*:b", r#"(is w"*" "b")"#),
        ("machine*:osx", r#"(is w"machine*" "osx")"#),
        ("a:b*", r#"(is "a" "b"+*)"#),
        ("a:*b*", r#"(is "a" *+"b"+*)"#),
        ("a:**", r#"(is "a" *+*)"#),
        ("a:b* c", r#"(is "a" "b"+*+" c")"#),
        ("b*", r#"(is _ "b"+*)"#),
        // Only `*` is a wildcard in KQL.
        ("a:b?c", r#"(is "a" "b?c")"#),
        // A quoted or escaped `*` is literal.
        ("a:\"*\"", r#"(is "a" q"*")"#),
        ("\"*\"", r#"(is _ q"*")"#),
        ("a:\\*", r#"(is "a" "*")"#),
        ("a:b\\*c*", r#"(is "a" "b*c"+*)"#),
        ("a\\*:b", r#"(is "a*" "b")"#),
        ("not *", "(not *all)"),
        ("* and a:b", r#"(and *all (is "a" "b"))"#),
    ]);
}

#[test]
fn escapes() {
    check_trees(&[
        (r#"a:\\\(\)\:\<\>\"\{\}"#, r#"(is "a" "\\():<>\"{}")"#),
        (r"a\:b:c", r#"(is "a:b" "c")"#),
        (r"a:x\ty\rz\nw", r#"(is "a" "x\ty\rz\nw")"#),
        (r"a:\u0041\u00e9", r#"(is "a" "Aé")"#),
        (r"a:\ud83d\ude00", r#"(is "a" "😀")"#),
        (r"a:\ud83d", r#"(is "a" "�")"#),
        (r"a:\and", r#"(is "a" "and")"#),
        (r"a:\OR", r#"(is "a" "OR")"#),
        (r"a:x \or y", r#"(is "a" "x or y")"#),
        (r"a:x \and y", r#"(is "a" "x and y")"#),
        // Kibana reads `\not` as `\n` + `ot` (escaped whitespace comes first), then trims.
        (r"a:\not", r#"(is "a" "ot")"#),
        (r"a:\NOT x", r#"(is "a" "NOT x")"#),
        // Escaped whitespace is trimmed like any whitespace.
        (r"a:\tb\t", r#"(is "a" "b")"#),
        // Inside quotes: \" \\ \t \r \n \uXXXX; any other backslash is literal.
        (r#"a:"x\"y\\z""#, r#"(is "a" q"x\"y\\z")"#),
        (r#"a:"\t\n\u0041""#, r#"(is "a" q"\t\nA")"#),
        (r#"a:"a\b\*""#, r#"(is "a" q"a\\b\\*")"#),
        (r#"a:"x or y and not z""#, r#"(is "a" q"x or y and not z")"#),
        (r#"a:" padded ""#, r#"(is "a" q" padded ")"#),
    ]);
}

#[test]
fn value_lists_are_distributed_over_the_field() {
    check_trees(&[
        ("a:(b)", r#"(is "a" "b")"#),
        ("a:(b or c)", r#"(or (is "a" "b") (is "a" "c"))"#),
        ("a:(b and c)", r#"(and (is "a" "b") (is "a" "c"))"#),
        ("a:(not b)", r#"(not (is "a" "b"))"#),
        (
            "a:(b or c and not d)",
            r#"(or (is "a" "b") (and (is "a" "c") (not (is "a" "d"))))"#,
        ),
        (
            "a:((b or c) and d)",
            r#"(and (or (is "a" "b") (is "a" "c")) (is "a" "d"))"#,
        ),
        (
            "a:( \"b c\" OR d* )",
            r#"(or (is "a" q"b c") (is "a" "d"+*))"#,
        ),
        ("a:(b or *)", r#"(or (is "a" "b") (exists "a"))"#),
        ("*:(b or c)", r#"(or (is w"*" "b") (is w"*" "c"))"#),
        (
            "a:(b or c) and d:(e or f)",
            r#"(and (or (is "a" "b") (is "a" "c")) (or (is "d" "e") (is "d" "f")))"#,
        ),
    ]);
}

#[test]
fn ranges() {
    check_trees(&[
        ("a < 5", r#"(range "a" < "5")"#),
        ("a<=5", r#"(range "a" <= "5")"#),
        ("a > 5", r#"(range "a" > "5")"#),
        ("a >= 5", r#"(range "a" >= "5")"#),
        ("a >= \"2024-01-01\"", r#"(range "a" >= q"2024-01-01")"#),
        ("a < now-1d", r#"(range "a" < "now-1d")"#),
        ("a < b*", r#"(range "a" < "b"+*)"#),
        ("a b > 1", r#"(range "a b" > "1")"#),
        (
            "not a > 1 and b < 2",
            r#"(and (not (range "a" > "1")) (range "b" < "2"))"#,
        ),
    ]);
}

#[test]
fn nested_queries() {
    check_trees(&[
        ("a:{ b:c }", r#"(nested "a" (is "b" "c"))"#),
        ("a:{b:c}", r#"(nested "a" (is "b" "c"))"#),
        (
            "a : { b:c and d:e }",
            r#"(nested "a" (and (is "b" "c") (is "d" "e")))"#,
        ),
        (
            "a:{ b:c or d < 2 }",
            r#"(nested "a" (or (is "b" "c") (range "d" < "2")))"#,
        ),
        (
            "a:{ b:{ c:d } }",
            r#"(nested "a" (nested "b" (is "c" "d")))"#,
        ),
        (
            "a:{ b:{ c:d and e:* } or f:(g or h) }",
            r#"(nested "a" (or (nested "b" (and (is "c" "d") (exists "e"))) (or (is "f" "g") (is "f" "h"))))"#,
        ),
        ("not a:{ b:c }", r#"(not (nested "a" (is "b" "c")))"#),
        ("a:{ * }", r#"(nested "a" *all)"#),
        ("a:{ b }", r#"(nested "a" (is _ "b"))"#),
    ]);
}

/// The `fromKueryExpression` / `fromLiteralExpression` cases of Kibana's `ast.test.ts`.
#[test]
fn kibana_ast_test_cases() {
    check_trees(&[
        ("  ", "*all"),
        ("foo", r#"(is _ "foo")"#),
        ("  foo ", r#"(is _ "foo")"#),
        ("foo bar", r#"(is _ "foo bar")"#),
        ("foo and bar", r#"(and (is _ "foo") (is _ "bar"))"#),
        ("foo and\u{a0}bar", r#"(and (is _ "foo") (is _ "bar"))"#),
        ("foo or bar", r#"(or (is _ "foo") (is _ "bar"))"#),
        ("foo and bar and baz", r#"(and (is _ "foo") (is _ "bar") (is _ "baz"))"#),
        ("foo or bar or baz", r#"(or (is _ "foo") (is _ "bar") (is _ "baz"))"#),
        ("not (foo or bar)", r#"(not (or (is _ "foo") (is _ "bar")))"#),
        (
            "foo or bar and baz or qux",
            r#"(or (is _ "foo") (and (is _ "bar") (is _ "baz")) (is _ "qux"))"#,
        ),
        ("(foo or bar) and baz", r#"(and (or (is _ "foo") (is _ "bar")) (is _ "baz"))"#),
        ("foo:bar", r#"(is "foo" "bar")"#),
        ("foo:bar baz", r#"(is "foo" "bar baz")"#),
        ("foo:\"bar baz\"", r#"(is "foo" q"bar baz")"#),
        ("foo:(bar or baz)", r#"(or (is "foo" "bar") (is "foo" "baz"))"#),
        (
            "foo:((bar or baz) and not qux)",
            r#"(and (or (is "foo" "bar") (is "foo" "baz")) (not (is "foo" "qux")))"#,
        ),
        ("bytes > 1000 and bytes < 8000", r#"(and (range "bytes" > "1000") (range "bytes" < "8000"))"#),
        ("bytes >= 1000 and bytes <= 8000", r#"(and (range "bytes" >= "1000") (range "bytes" <= "8000"))"#),
        ("machine*:osx", r#"(is w"machine*" "osx")"#),
        ("foo:ba*", r#"(is "foo" "ba"+*)"#),
        ("foo:*", r#"(exists "foo")"#),
        ("nestedField:{ childOfNested: foo }", r#"(nested "nestedField" (is "childOfNested" "foo"))"#),
        (
            "response:200 and nestedField:{ childOfNested:foo or childOfNested:bar }",
            r#"(and (is "response" "200") (nested "nestedField" (or (is "childOfNested" "foo") (is "childOfNested" "bar"))))"#,
        ),
        (
            "response:200 and ( nestedField:{ childOfNested:foo } or nestedField:{ childOfNested:bar } )",
            r#"(and (is "response" "200") (or (nested "nestedField" (is "childOfNested" "foo")) (nested "nestedField" (is "childOfNested" "bar"))))"#,
        ),
        (
            "nestedField:{ nestedChild:{ doublyNestedChild:foo } }",
            r#"(nested "nestedField" (nested "nestedChild" (is "doublyNestedChild" "foo")))"#,
        ),
        ("((((((((((foo))))))))))", r#"(is _ "foo")"#),
        // Literals: numbers stay text.
        ("a:.3", r#"(is "a" ".3")"#),
        ("a:96565646732345", r#"(is "a" "96565646732345")"#),
        ("a:070", r#"(is "a" "070")"#),
        ("a:-0", r#"(is "a" "-0")"#),
        (r#"a:\\\(\)\:\<\>\"\*"#, r#"(is "a" "\\():<>\"*")"#),
        (r"a:\\u00A0", r#"(is "a" "\\u00A0")"#),
        (r#"a:"\():<>\"*""#, r#"(is "a" q"\\():<>\"*")"#),
        (r#"a:"\\""#, r#"(is "a" q"\\")"#),
        (r#"a:"\\u00A0""#, r#"(is "a" q"\\u00A0")"#),
        ("a:foo*bar", r#"(is "a" "foo"+*+"bar")"#),
    ]);
}

#[test]
fn kibana_error_messages() {
    // The first ten are Kibana's own kuery_syntax_error tests.
    check_errors(&[
        (
            "response:",
            r#"Expected "(", "{", value, whitespace but end of input found."#,
            9,
        ),
        (
            "response:200 or ",
            r#"Expected "(", NOT, field name, value but end of input found."#,
            16,
        ),
        (
            "response:(200 or )",
            r#"Expected "(", NOT, value but ")" found."#,
            17,
        ),
        (
            "response:200 and not ",
            r#"Expected "(", field name, value but end of input found."#,
            21,
        ),
        (
            "response:(200 and not )",
            r#"Expected "(", value but ")" found."#,
            22,
        ),
        (
            "foo:\"ba ",
            r#"Expected "(", "{", value, whitespace but """ found."#,
            4,
        ),
        (
            "foo:\"ba \"r\"",
            r#"Expected AND, OR, end of input but "r" found."#,
            9,
        ),
        (
            "foo:ba:r",
            r#"Expected AND, OR, end of input but ":" found."#,
            6,
        ),
        (
            "foo > ",
            "Expected literal, whitespace but end of input found.",
            6,
        ),
        (
            "< 1000",
            r#"Expected "(", NOT, end of input, field name, value, whitespace but "<" found."#,
            0,
        ),
        // Missing closing parenthesis / brace.
        (
            "(a:b",
            r#"Expected ")", AND, OR but end of input found."#,
            4,
        ),
        (
            "a:(b or c",
            r#"Expected ")", AND, OR but end of input found."#,
            9,
        ),
        (
            "a:{b:c",
            r#"Expected "}", AND, OR but end of input found."#,
            6,
        ),
        // Unexpected characters.
        (
            "a:b)",
            r#"Expected AND, OR, end of input but ")" found."#,
            3,
        ),
        (
            "()",
            r#"Expected "(", NOT, field name, value, whitespace but ")" found."#,
            1,
        ),
        (
            "a:\"b",
            r#"Expected "(", "{", value, whitespace but """ found."#,
            2,
        ),
        // `field:>value` is not KQL (only `field > value` is).
        (
            "a:>5",
            r#"Expected "(", "{", value, whitespace but ">" found."#,
            2,
        ),
        // `not` needs whitespace after it, and a sub-query, not another `not`.
        (
            "not(a)",
            r#"Expected ":", "<", "<=", ">", ">=", AND, OR, end of input but "(" found."#,
            3,
        ),
        (
            "not not a",
            r#"Expected "(", field name, value but "n" found."#,
            4,
        ),
        // `not ` ends an unquoted value, even inside a word.
        (
            "a:cannot be",
            r#"Expected AND, OR, end of input but "n" found."#,
            5,
        ),
        // A lone backslash is not a value character.
        (
            r"a:b\c",
            r#"Expected AND, OR, end of input but "\" found."#,
            3,
        ),
        // Offsets count characters, not bytes.
        (
            "é:\"b",
            r#"Expected "(", "{", value, whitespace but """ found."#,
            2,
        ),
    ]);
}

#[test]
fn render_shows_query_and_caret() {
    let e = parse("response:").unwrap_err();
    assert_eq!(
        e.render(),
        "Expected \"(\", \"{\", value, whitespace but end of input found.\nresponse:\n---------^"
    );
    assert_eq!(e.to_string(), e.message);
}

#[test]
fn nesting_depth_is_limited() {
    let depth = detectd::kql::MAX_DEPTH;
    for (open, close) in [("(", ")"), ("a:{", "}")] {
        let ok = format!("{}b:c{}", open.repeat(depth), close.repeat(depth));
        assert!(parse(&ok).is_ok(), "{depth} levels of {open} must parse");
        let deep = format!("{}b:c{}", open.repeat(depth + 1), close.repeat(depth + 1));
        let e = parse(&deep).unwrap_err();
        assert_eq!(
            e.message,
            format!("query nesting exceeds the maximum depth of {depth}")
        );
    }
    let list = format!("a:{}b{}", "(".repeat(depth + 1), ")".repeat(depth + 1));
    assert!(parse(&list).is_err());
    // Far deeper input fails cleanly too (no stack overflow).
    let huge = "(".repeat(100_000);
    assert!(parse(&huge).is_err());
}

/// Every KQL query of the AWS detection rules parses, and prints back to the same tree.
#[test]
fn aws_detection_rule_queries_parse() {
    let Some(dir) = common::shared_data("detection-rules/aws") else {
        return;
    };
    let mut count = 0;
    let mut failures = Vec::new();
    for entry in walkdir::WalkDir::new(&dir).sort_by_file_name() {
        let entry = entry.unwrap();
        if entry.path().extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let doc: toml::Table = toml::from_str(&text).unwrap();
        let Some(rule) = doc.get("rule").and_then(|r| r.as_table()) else {
            continue;
        };
        if rule.get("language").and_then(|l| l.as_str()) != Some("kuery") {
            continue;
        }
        let Some(query) = rule.get("query").and_then(|q| q.as_str()) else {
            continue;
        };
        count += 1;
        match parse(query) {
            Ok(ast) => {
                let again = parse(&ast.to_kql());
                if again.as_ref() != Ok(&ast) {
                    failures.push(format!(
                        "{}: does not print back: {again:?}",
                        entry.path().display()
                    ));
                }
            }
            Err(e) => failures.push(format!("{}:\n{}", entry.path().display(), e.render())),
        }
    }
    eprintln!("parsed {count} kuery rule queries");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(count, 156, "number of kuery rules under {}", dir.display());
}

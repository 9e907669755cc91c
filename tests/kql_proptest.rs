//! Property tests for the KQL parser: no input makes it panic, and every tree it can build
//! prints back to KQL that reparses to the same tree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use detectd::kql::{parse, Ast, Field, LiteralKind, Part, RangeOp, Value};
use proptest::prelude::*;

/// Characters and words that exercise the grammar: specials, whitespace, keywords, escapes.
const KQL_ALPHABET: &str =
    "(or|and|not|OR|AND|NOT|[a-c]|[ ():<>\"*{}\\\\\t\n]|\\\\u00e9|é|\u{a0}|\u{2003}|\u{85}|1|-)";

fn kql_like() -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("{KQL_ALPHABET}{{0,30}}")).unwrap()
}

fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("{KQL_ALPHABET}{{1,6}}")).unwrap()
}

/// JavaScript `trim()` whitespace, as the parser trims unquoted literals.
fn js_ws(c: char) -> bool {
    (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}'
}

fn unquoted_value() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        prop_oneof![3 => text().prop_map(Some), 1 => Just(None)],
        1..4,
    )
    .prop_map(|pieces| {
        let mut parts: Vec<Part> = Vec::new();
        for piece in pieces {
            match (piece, parts.last_mut()) {
                (Some(t), Some(Part::Text(prev))) => prev.push_str(&t),
                (Some(t), _) => parts.push(Part::Text(t)),
                (None, _) => parts.push(Part::Wildcard),
            }
        }
        // The parser trims whitespace at both ends of an unquoted value.
        if let Some(Part::Text(t)) = parts.first_mut() {
            *t = t.trim_start_matches(js_ws).to_string();
        }
        if let Some(Part::Text(t)) = parts.last_mut() {
            *t = t.trim_end_matches(js_ws).to_string();
        }
        parts.retain(|p| !matches!(p, Part::Text(t) if t.is_empty()));
        if parts.is_empty() {
            parts.push(Part::Text("x".to_string()));
        }
        let kind = match parts.as_slice() {
            [Part::Text(t)] if t == "true" || t == "false" => LiteralKind::Boolean,
            _ => LiteralKind::String,
        };
        Value {
            parts,
            quoted: false,
            kind,
        }
    })
}

fn quoted_value() -> impl Strategy<Value = Value> {
    proptest::string::string_regex(&format!("{KQL_ALPHABET}{{0,6}}"))
        .unwrap()
        .prop_map(|t| Value {
            parts: if t.is_empty() {
                vec![]
            } else {
                vec![Part::Text(t)]
            },
            quoted: true,
            kind: LiteralKind::String,
        })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![3 => unquoted_value(), 1 => quoted_value()]
}

fn field() -> impl Strategy<Value = Field> {
    (text(), any::<bool>()).prop_map(|(name, wild)| {
        let bare = !name.is_empty() && !name.starts_with(js_ws) && !name.ends_with(js_ws);
        Field {
            wildcard: wild && bare && name.contains('*'),
            name,
        }
    })
}

fn is_match_all_value(v: &Value) -> bool {
    !v.quoted && v.parts == [Part::Wildcard]
}

fn leaf() -> impl Strategy<Value = Ast> {
    prop_oneof![
        (field(), value()).prop_filter_map("`f:*` is Exists", |(f, v)| {
            (!is_match_all_value(&v)).then_some(Ast::Is {
                field: Some(f),
                value: v,
            })
        }),
        value().prop_filter_map("`*` is MatchAll", |v| {
            (!is_match_all_value(&v)).then_some(Ast::Is {
                field: None,
                value: v,
            })
        }),
        field().prop_filter_map("`*:*` is MatchAll", |f| {
            (!(f.wildcard && f.name == "*")).then_some(Ast::Exists { field: f })
        }),
        (
            field(),
            prop_oneof![
                Just(RangeOp::Lt),
                Just(RangeOp::Lte),
                Just(RangeOp::Gt),
                Just(RangeOp::Gte)
            ],
            value()
        )
            .prop_map(|(field, op, value)| Ast::Range { field, op, value }),
        Just(Ast::MatchAll),
    ]
}

fn ast() -> impl Strategy<Value = Ast> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Ast::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Ast::Or),
            inner.clone().prop_map(|a| Ast::Not(Box::new(a))),
            (field(), inner).prop_map(|(path, q)| Ast::Nested {
                path,
                query: Box::new(q)
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        let _ = parse(&s);
    }

    /// KQL-like input either fails with an offset inside the input, or parses to a tree that
    /// prints back to the same tree.
    #[test]
    fn kql_like_strings_parse_or_fail_cleanly(s in kql_like()) {
        match parse(&s) {
            Ok(ast) => {
                let printed = ast.to_kql();
                prop_assert_eq!(parse(&printed), Ok(ast), "printed: {:?}", printed);
            }
            Err(e) => {
                prop_assert!(e.offset <= s.chars().count());
                prop_assert!(!e.message.is_empty());
            }
        }
    }

    #[test]
    fn generated_trees_print_and_reparse(a in ast()) {
        let printed = a.to_kql();
        prop_assert_eq!(parse(&printed), Ok(a), "printed: {:?}", printed);
    }
}

//! Stand-in for `crate::dsl::rule_query` (written in parallel on branch `dsl`): the rule's KQL
//! AST and Kibana filters to one query DSL object, with field types from `_field_caps`. Same
//! signature as the real one so swapping it in is a one-line change in `mod.rs`; it covers the
//! comparisons Kibana's `buildEsQuery` emits for keyword/text/other fields, not every corner.

use serde_json::{json, Value};

use crate::fields::{FieldCatalog, FieldSpec};
use crate::kql::{Ast, Field, RangeOp, Value as KqlValue};

const KEYWORD_FAMILY: &[&str] = &["keyword", "constant_keyword", "wildcard", "flattened"];

/// The rule query and filters as one `bool.filter` (Kibana's `buildEsQuery` shape).
pub fn rule_query(ast: &Ast, filters: &[Value], catalog: &FieldCatalog) -> Value {
    let mut filter = vec![to_dsl(ast, catalog)];
    let mut must_not = Vec::new();
    for f in filters {
        let meta = f.get("meta");
        if meta
            .and_then(|m| m.get("disabled"))
            .and_then(Value::as_bool)
            == Some(true)
        {
            continue;
        }
        let negate = meta.and_then(|m| m.get("negate")).and_then(Value::as_bool) == Some(true);
        let q = match f.get("query") {
            Some(q) => q.clone(),
            None => {
                let mut o = f.clone();
                if let Some(m) = o.as_object_mut() {
                    m.remove("meta");
                    m.remove("$state");
                }
                o
            }
        };
        if negate {
            must_not.push(q);
        } else {
            filter.push(q);
        }
    }
    if must_not.is_empty() {
        json!({"bool": {"filter": filter}})
    } else {
        json!({"bool": {"filter": filter, "must_not": must_not}})
    }
}

fn spec<'a>(catalog: &'a FieldCatalog, name: &str) -> Option<&'a FieldSpec> {
    catalog.get(name).or_else(|| {
        // a flattened leaf: its root is in the catalog
        let mut n = name;
        while let Some((head, _)) = n.rsplit_once('.') {
            if let Some(s) = catalog.get(head) {
                if s.es_types.iter().any(|t| t == "flattened") {
                    return Some(s);
                }
            }
            n = head;
        }
        None
    })
}

fn is_keyword(catalog: &FieldCatalog, name: &str) -> bool {
    spec(catalog, name).is_some_and(|s| {
        s.es_types
            .iter()
            .any(|t| KEYWORD_FAMILY.contains(&t.as_str()))
    })
}

fn should1(q: Value) -> Value {
    json!({"bool": {"should": [q], "minimum_should_match": 1}})
}

fn escape_wildcard(v: &KqlValue) -> String {
    let mut s = String::new();
    for p in &v.parts {
        match p {
            crate::kql::Part::Text(t) => {
                for c in t.chars() {
                    if matches!(c, '*' | '?' | '\\') {
                        s.push('\\');
                    }
                    s.push(c);
                }
            }
            crate::kql::Part::Wildcard => s.push('*'),
        }
    }
    s
}

fn literal_json(v: &KqlValue) -> Value {
    let s = v.joined('*');
    Value::String(s)
}

fn is_query(field: &Field, value: &KqlValue, catalog: &FieldCatalog) -> Value {
    let name = field.name.as_str();
    if value.is_wildcard() && !value.quoted {
        if value
            .parts
            .iter()
            .all(|p| matches!(p, crate::kql::Part::Wildcard))
        {
            return should1(json!({"exists": {"field": name}}));
        }
        if is_keyword(catalog, name) {
            return should1(json!({"wildcard": {name: {"value": escape_wildcard(value)}}}));
        }
        return should1(
            json!({"query_string": {"fields": [name], "query": escape_wildcard(value)}}),
        );
    }
    if is_keyword(catalog, name) {
        return should1(json!({"term": {name: literal_json(value)}}));
    }
    if spec(catalog, name).is_some_and(|s| s.es_types.iter().any(|t| t == "date")) {
        let v = literal_json(value);
        return should1(json!({"range": {name: {"gte": v, "lte": v}}}));
    }
    if value.quoted {
        should1(json!({"match_phrase": {name: literal_json(value)}}))
    } else {
        should1(json!({"match": {name: literal_json(value)}}))
    }
}

/// One KQL AST node to query DSL.
pub fn to_dsl(ast: &Ast, catalog: &FieldCatalog) -> Value {
    match ast {
        Ast::And(xs) => {
            json!({"bool": {"filter": xs.iter().map(|x| to_dsl(x, catalog)).collect::<Vec<_>>()}})
        }
        Ast::Or(xs) => {
            json!({"bool": {"should": xs.iter().map(|x| to_dsl(x, catalog)).collect::<Vec<_>>(), "minimum_should_match": 1}})
        }
        Ast::Not(x) => json!({"bool": {"must_not": to_dsl(x, catalog)}}),
        Ast::MatchAll => json!({"match_all": {}}),
        Ast::Exists { field } => should1(json!({"exists": {"field": field.name}})),
        Ast::Is {
            field: Some(f),
            value,
        } => is_query(f, value, catalog),
        Ast::Is { field: None, value } => {
            json!({"multi_match": {"type": if value.quoted {"phrase"} else {"best_fields"}, "query": literal_json(value), "lenient": true}})
        }
        Ast::Range { field, op, value } => {
            let key = match op {
                RangeOp::Lt => "lt",
                RangeOp::Lte => "lte",
                RangeOp::Gt => "gt",
                RangeOp::Gte => "gte",
            };
            should1(json!({"range": {field.name.as_str(): {key: literal_json(value)}}}))
        }
        Ast::Nested { path, query } => {
            json!({"nested": {"path": path.name, "query": to_dsl(query, catalog), "score_mode": "none"}})
        }
    }
}

/// A catalog from a `_field_caps` response (stand-in for `FieldCatalog::from_field_caps`).
pub fn catalog_from_field_caps(caps: &Value) -> FieldCatalog {
    let mut cat = FieldCatalog::new();
    if let Some(fields) = caps.get("fields").and_then(Value::as_object) {
        for (name, types) in fields {
            let es_types: Vec<String> = types
                .as_object()
                .map(|t| {
                    t.keys()
                        .filter(|k| k.as_str() != "unmapped" && k.as_str() != "object")
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            if es_types.is_empty() {
                continue;
            }
            let mut spec = FieldSpec::new(name.clone(), &es_types[0]);
            spec.es_types = es_types;
            cat.insert(spec);
        }
    }
    cat
}

//! KQL AST + field types to Elasticsearch query DSL, as Kibana's `toElasticsearchQuery` builds it.
//!
//! The translation follows `@kbn/es-query` (`kuery/functions/{is,range,exists,nested,and,or,not}.ts`)
//! node by node, with the options the detection engine's `getQueryFilter` passes to `buildEsQuery`:
//! `dateFormatTZ: "Zulu"` (so exact dates and date ranges carry `time_zone: "Zulu"` unless the
//! value is an epoch), `filtersInMustClause` unset (`and` → `bool.filter`), no `caseInsensitive`
//! and no `nestedIgnoreUnmapped`. Field types come from a [`FieldCatalog`] the way Kibana's data
//! view provides them: only exact field names are known (a `flattened` leaf is unknown to Kibana,
//! so it gets `match`), wildcard field names expand over the known fields.
//!
//! [`rule_query`] wraps a rule's query and filters as `buildEsQuery` does. `detectd explain`
//! prints the result.

use serde_json::{json, Map, Value as Json};

use crate::fields::{FieldCatalog, FieldSpec};
use crate::kql::{Ast, Field, LiteralKind, Part, RangeOp, Value};

/// Kibana's `dateFormatTZ` as the detection engine sets it.
const DATE_FORMAT_TZ: &str = "Zulu";

/// A query Kibana refuses to translate (it throws from `toElasticsearchQuery`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DslError {
    /// Kibana's nested-field checks (`getFullFieldNameNode`), one message per offending field,
    /// joined by newlines exactly as Kibana words them.
    #[error("{0}")]
    Nested(String),
    /// A rule filter Kibana cannot convert (`getConvertedValueForField`).
    #[error("{0}")]
    Filter(String),
}

/// The query DSL Kibana's `toElasticsearchQuery` builds for one KQL AST.
pub fn to_dsl(ast: &Ast, fields: &FieldCatalog) -> Result<Json, DslError> {
    translate(ast, fields, None)
}

/// Kibana's `buildEsQuery(indexPattern, {query, language: "kuery"}, filters, config)` for a
/// detection rule (`getQueryFilter`): the query goes into `bool.filter` (a match-all query leaves
/// it out), each enabled filter object goes to `filter`, or to `must_not` when `meta.negate` is
/// true, after Kibana's `migrateFilter` (see `filter_to_query`).
pub fn rule_query(ast: &Ast, filters: &[Json], fields: &FieldCatalog) -> Result<Json, DslError> {
    let query = to_dsl(ast, fields)?;
    let mut filter = Vec::new();
    let mut must_not = Vec::new();
    if !is_match_all(&query) {
        filter.push(query);
    }
    for f in filters {
        if f.pointer("/meta/disabled") == Some(&Json::Bool(true)) {
            continue;
        }
        let negate = f.pointer("/meta/negate") == Some(&Json::Bool(true));
        let q = filter_to_query(f, fields)?;
        if negate {
            must_not.push(q);
        } else if !is_match_all(&q) {
            filter.push(q);
        }
    }
    Ok(json!({"bool": {"must": [], "filter": filter, "should": [], "must_not": must_not}}))
}

/// The `getQueryFilter` query of a rule TOML (`[rule] query`, `language = "kuery"`,
/// `[[rule.filters]]`). Reads only those keys; full validation is `rules::load`'s job.
pub fn rule_file_query(path: &std::path::Path, fields: &FieldCatalog) -> anyhow::Result<Json> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading rule {}: {e}", path.display()))?;
    let doc: toml::Value = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("rule {} is not valid TOML: {e}", path.display()))?;
    let rule = doc
        .get("rule")
        .ok_or_else(|| anyhow::anyhow!("rule {} has no [rule] table", path.display()))?;
    let language = rule
        .get("language")
        .and_then(toml::Value::as_str)
        .unwrap_or("kuery");
    if language != "kuery" {
        anyhow::bail!(
            "rule {}: language `{language}` has no KQL query DSL to explain",
            path.display()
        );
    }
    let query = rule
        .get("query")
        .and_then(toml::Value::as_str)
        .unwrap_or("");
    let filters: Vec<Json> = match rule.get("filters") {
        Some(f) => serde_json::to_value(f)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .ok_or_else(|| anyhow::anyhow!("rule {}: `filters` is not an array", path.display()))?,
        None => Vec::new(),
    };
    let ast = crate::kql::parse(query)
        .map_err(|e| anyhow::anyhow!("rule {}: kql: {}", path.display(), e.render()))?;
    Ok(rule_query(&ast, &filters, fields)?)
}

/// Reads a saved `_field_caps` response: the raw response JSON, or a fixture file with the
/// response under `response`.
pub fn load_field_caps(path: &std::path::Path) -> anyhow::Result<FieldCatalog> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading field caps {}: {e}", path.display()))?;
    let v: Json = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("field caps {} is not JSON: {e}", path.display()))?;
    let resp = match v.get("response") {
        Some(r) if v.get("fields").is_none() => r,
        _ => &v,
    };
    FieldCatalog::from_field_caps(resp)
        .map_err(|e| anyhow::anyhow!("field caps {}: {e}", path.display()))
}

fn translate(ast: &Ast, fields: &FieldCatalog, nested: Option<&str>) -> Result<Json, DslError> {
    Ok(match ast {
        Ast::And(children) => {
            let c = children
                .iter()
                .map(|c| translate(c, fields, nested))
                .collect::<Result<Vec<_>, _>>()?;
            json!({"bool": {"filter": c}})
        }
        Ast::Or(children) => {
            let c = children
                .iter()
                .map(|c| translate(c, fields, nested))
                .collect::<Result<Vec<_>, _>>()?;
            json!({"bool": {"should": c, "minimum_should_match": 1}})
        }
        Ast::Not(child) => json!({"bool": {"must_not": translate(child, fields, nested)?}}),
        Ast::MatchAll => json!({"match_all": {}}),
        Ast::Is { field, value } => is_query(field.as_ref(), value, fields, nested)?,
        Ast::Exists { field } => exists_query(field, fields, nested)?,
        Ast::Range { field, op, value } => range_query(field, *op, value, fields, nested)?,
        Ast::Nested { path, query } => {
            let full = match nested {
                Some(p) => format!("{p}.{}", path.name),
                None => path.name.clone(),
            };
            let q = translate(query, fields, Some(&full))?;
            json!({"nested": {"path": full, "query": q, "score_mode": "none"}})
        }
    })
}

/// The field name node after `getFullFieldNameNode`: the nested path prefixed, plus Kibana's
/// checks that nested fields are (only) queried inside their nested group.
fn full_field(
    field: &Field,
    fields: &FieldCatalog,
    nested: Option<&str>,
) -> Result<Field, DslError> {
    let full = Field {
        name: match nested {
            Some(p) => format!("{p}.{}", field.name),
            None => field.name.clone(),
        },
        wildcard: field.wildcard,
    };
    if full.wildcard && nested.is_none() {
        return Ok(full);
    }
    let mut errors = Vec::new();
    for spec in lookup(&full, fields) {
        let from_field = spec.nested_path.as_deref();
        match (nested, from_field) {
            (Some(p), None) => errors.push(format!(
                "{} is not a nested field but is in nested group \"{p}\" in the KQL expression.",
                spec.name
            )),
            (None, Some(_)) => errors.push(format!(
                "{} is a nested field, but is not in a nested group in the KQL expression.",
                spec.name
            )),
            (Some(p), Some(f)) if p != f => errors.push(format!(
                "Nested field {} is being queried with the incorrect nested path. The correct path is {f}.",
                spec.name
            )),
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(full)
    } else {
        Err(DslError::Nested(errors.join("\n")))
    }
}

/// Kibana's `getFields`: the exact field, or every field a wildcard name matches.
fn lookup<'a>(field: &Field, fields: &'a FieldCatalog) -> Vec<&'a FieldSpec> {
    if field.wildcard {
        fields.expand(&field.name)
    } else {
        fields.get(&field.name).into_iter().collect()
    }
}

/// A field to query: a known spec, or the name as written when the data view does not know it.
enum Target<'a> {
    Known(&'a FieldSpec),
    Unknown(String),
}

impl Target<'_> {
    fn name(&self) -> &str {
        match self {
            Target::Known(s) => &s.name,
            Target::Unknown(n) => n,
        }
    }
    fn spec(&self) -> Option<&FieldSpec> {
        match self {
            Target::Known(s) => Some(s),
            Target::Unknown(_) => None,
        }
    }
}

fn targets<'a>(full: &Field, fields: &'a FieldCatalog) -> Vec<Target<'a>> {
    let found = lookup(full, fields);
    if found.is_empty() {
        vec![Target::Unknown(full.name.clone())]
    } else {
        found.into_iter().map(Target::Known).collect()
    }
}

/// Kibana's `wrapWithNestedQuery`: a wildcard field name outside a nested group that expands to a
/// nested field gets its own `nested` query.
fn wrap_nested(q: Json, target: &Target<'_>, full: &Field, nested: Option<&str>) -> Json {
    match target.spec().and_then(|s| s.nested_path.as_deref()) {
        Some(path) if full.wildcard && nested.is_none() => {
            json!({"nested": {"path": path, "query": q, "score_mode": "none"}})
        }
        _ => q,
    }
}

fn should(queries: Vec<Json>) -> Json {
    json!({"bool": {"should": queries, "minimum_should_match": 1}})
}

fn is_query(
    field: Option<&Field>,
    value: &Value,
    fields: &FieldCatalog,
    nested: Option<&str>,
) -> Result<Json, DslError> {
    let field = match (field, nested) {
        (Some(f), _) => f.clone(),
        // Kibana builds `${nestedPath}.${null}` for free text inside a nested group.
        (None, Some(_)) => Field {
            name: "null".to_string(),
            wildcard: false,
        },
        (None, None) => {
            return Ok(if value.is_wildcard() {
                json!({"query_string": {"query": query_string_value(value)}})
            } else {
                let ty = if value.quoted {
                    "phrase"
                } else {
                    "best_fields"
                };
                json!({"multi_match": {"type": ty, "query": literal(value), "lenient": true}})
            });
        }
    };
    let full = full_field(&field, fields, nested)?;
    let mut queries = Vec::new();
    for t in targets(&full, fields) {
        let name = t.name().to_string();
        let keyword = t.spec().is_some_and(FieldSpec::is_keyword_only);
        let q = if value.is_wildcard() {
            if keyword {
                json!({"wildcard": {name: {"value": query_string_value(value)}}})
            } else {
                json!({"query_string": {"fields": [name], "query": query_string_value(value)}})
            }
        } else if t.spec().is_some_and(|s| s.kbn_type() == "date") {
            let v = literal(value);
            let mut params = Map::new();
            params.insert("gte".into(), v.clone());
            params.insert("lte".into(), v.clone());
            if !is_epoch(&v) {
                params.insert("time_zone".into(), DATE_FORMAT_TZ.into());
            }
            json!({"range": {name: params}})
        } else if keyword {
            json!({"term": {name: {"value": literal(value)}}})
        } else {
            let kind = if value.quoted {
                "match_phrase"
            } else {
                "match"
            };
            json!({kind: {name: literal(value)}})
        };
        queries.push(wrap_nested(q, &t, &full, nested));
    }
    Ok(should(queries))
}

/// `f:*` is Kibana's `is` with a lone wildcard value: one `exists` per matching field.
fn exists_query(
    field: &Field,
    fields: &FieldCatalog,
    nested: Option<&str>,
) -> Result<Json, DslError> {
    if field.wildcard && field.name == "*" {
        return Ok(json!({"match_all": {}}));
    }
    let full = full_field(field, fields, nested)?;
    let queries = targets(&full, fields)
        .iter()
        .map(|t| wrap_nested(json!({"exists": {"field": t.name()}}), t, &full, nested))
        .collect();
    Ok(should(queries))
}

fn range_query(
    field: &Field,
    op: RangeOp,
    value: &Value,
    fields: &FieldCatalog,
    nested: Option<&str>,
) -> Result<Json, DslError> {
    let key = match op {
        RangeOp::Lt => "lt",
        RangeOp::Lte => "lte",
        RangeOp::Gt => "gt",
        RangeOp::Gte => "gte",
    };
    let v = match value.as_literal() {
        Some(_) => literal(value),
        // Kibana's wildcard node `toElasticsearchQuery`: the `*`s put back, nothing escaped.
        None => Json::String(value.joined('*')),
    };
    let full = full_field(field, fields, nested)?;
    let mut queries = Vec::new();
    for t in targets(&full, fields) {
        let mut params = Map::new();
        params.insert(key.into(), v.clone());
        if t.spec().is_some_and(|s| s.kbn_type() == "date") && !is_epoch(&v) {
            params.insert("time_zone".into(), DATE_FORMAT_TZ.into());
        }
        let q = json!({"range": {t.name(): params}});
        queries.push(wrap_nested(q, &t, &full, nested));
    }
    Ok(should(queries))
}

/// The JSON value of a literal as Kibana's grammar (`grammar.peggy`) builds it: unquoted `true`
/// and `false` are booleans; everything else, numbers included, is the string as written (the
/// current grammar does not type numbers).
fn literal(value: &Value) -> Json {
    let text = value.joined('*');
    if !value.quoted && value.kind == LiteralKind::Boolean {
        match text.as_str() {
            "true" => return Json::Bool(true),
            "false" => return Json::Bool(false),
            _ => {}
        }
    }
    Json::String(text)
}

/// Kibana's epoch test for dates: a number, or a string of digits only.
fn is_epoch(v: &Json) -> bool {
    match v {
        Json::Number(_) => true,
        Json::String(s) => !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
        _ => false,
    }
}

/// Kibana's `wildcard.toQueryStringQuery`: each literal piece escaped for `query_string`
/// (`+-=&|><!(){}[]^"~*?:\/`), the wildcards as `*`.
fn query_string_value(value: &Value) -> String {
    let mut out = String::new();
    for p in &value.parts {
        match p {
            Part::Wildcard => out.push('*'),
            Part::Text(t) => {
                for c in t.chars() {
                    if "+-=&|><!(){}[]^\"~*?:\\/".contains(c) {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
        }
    }
    out
}

fn is_match_all(q: &Json) -> bool {
    q.as_object()
        .is_some_and(|o| o.len() == 1 && o.get("match_all").is_some_and(|m| m == &json!({})))
}

/// Kibana's `filterToQueryDsl` for one filter object: `migrateFilter` (a deprecated
/// `match {type: phrase}` becomes `match_phrase`; top-level `exists`, `range`, `match_all` and any
/// other keys move under `query`), then `translateToQuery(cleanFilter(..))`, i.e. the `query`.
/// Nested and combined (`meta.type: combined`) filters are not expanded.
fn filter_to_query(filter: &Json, fields: &FieldCatalog) -> Result<Json, DslError> {
    let Some(obj) = filter.as_object() else {
        return Ok(filter.clone());
    };
    let match_obj = obj
        .get("match")
        .or_else(|| obj.get("query").and_then(|q| q.get("match")))
        .and_then(Json::as_object);
    if let Some((name, params)) = match_obj.and_then(|m| m.iter().next()) {
        if params.get("type").and_then(Json::as_str) == Some("phrase") {
            let mut p = params.as_object().cloned().unwrap_or_default();
            if let Some(q) = p.get("query").cloned() {
                p.insert("query".into(), converted_value(fields, name, q)?);
            }
            p.remove("type");
            return Ok(json!({"match_phrase": {name.as_str(): p}}));
        }
    }
    if let Some(q) = obj.get("query") {
        return Ok(q.clone());
    }
    let mut query = Map::new();
    for key in ["exists", "range", "match_all"] {
        if let Some(v) = obj.get(key) {
            query.insert(key.into(), v.clone());
        }
    }
    for (k, v) in obj {
        if !matches!(
            k.as_str(),
            "meta" | "$state" | "exists" | "range" | "match_all"
        ) {
            query.insert(k.clone(), v.clone());
        }
    }
    Ok(Json::Object(query))
}

/// Kibana's `getConvertedValueForField`: `"true"`/`1` and `"false"`/`0` become booleans for a
/// boolean field; anything else there is an error.
fn converted_value(fields: &FieldCatalog, name: &str, v: Json) -> Result<Json, DslError> {
    if v.is_boolean() || fields.get(name).is_none_or(|f| f.kbn_type() != "boolean") {
        return Ok(v);
    }
    match &v {
        Json::String(s) if s == "true" => Ok(Json::Bool(true)),
        Json::String(s) if s == "false" => Ok(Json::Bool(false)),
        Json::Number(n) if n.as_i64() == Some(1) => Ok(Json::Bool(true)),
        Json::Number(n) if n.as_i64() == Some(0) => Ok(Json::Bool(false)),
        _ => Err(DslError::Filter(format!(
            "{} is not a valid boolean value for boolean field {name}",
            match &v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            }
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn f(name: &str) -> Field {
        Field {
            name: name.into(),
            wildcard: name.contains('*'),
        }
    }

    #[test]
    fn epoch_values_are_digits_or_numbers() {
        assert!(is_epoch(&json!(1700000000000_i64)));
        assert!(!is_epoch(&json!(true)));
        assert!(is_epoch(&json!("1700000000000")));
        assert!(!is_epoch(&json!("2024-01-01")));
        assert!(!is_epoch(&json!("now-1d")));
        assert!(!is_epoch(&json!("")));
    }

    #[test]
    fn query_string_escapes_reserved_characters_but_not_wildcards() {
        let v = Value {
            parts: vec![
                Part::Wildcard,
                Part::Text("a-b:c/d (e) \"f\" *?\\".into()),
                Part::Wildcard,
            ],
            quoted: false,
            kind: LiteralKind::String,
        };
        assert_eq!(query_string_value(&v), r#"*a\-b\:c\/d \(e\) \"f\" \*\?\\*"#);
    }

    #[test]
    fn nested_field_outside_its_group_is_an_error() {
        let mut c = FieldCatalog::new();
        let mut s = FieldSpec::new("items.name", "keyword");
        s.nested_path = Some("items".into());
        c.insert(s);
        c.insert(FieldSpec::new("plain", "keyword"));
        let ast = Ast::Is {
            field: Some(f("items.name")),
            value: Value::text("x"),
        };
        assert_eq!(
            to_dsl(&ast, &c).unwrap_err().to_string(),
            "items.name is a nested field, but is not in a nested group in the KQL expression."
        );
        let ast = Ast::Nested {
            path: f("items"),
            query: Box::new(Ast::Is {
                field: Some(f("plain")),
                value: Value::text("x"),
            }),
        };
        // `items.plain` is unknown: no check applies, Kibana sends it as-is.
        assert!(to_dsl(&ast, &c).is_ok());
    }

    #[test]
    fn field_caps_file_raw_or_fixture() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw.json");
        std::fs::write(
            &raw,
            r#"{"indices": ["i"], "fields": {"a": {"keyword": {"type": "keyword"}}}}"#,
        )
        .unwrap();
        let fixture = dir.path().join("fixture.json");
        std::fs::write(
            &fixture,
            r#"{"name": "x", "request": {}, "status": 200, "response": {"fields": {"b": {"date": {"type": "date"}}}}}"#,
        )
        .unwrap();
        assert!(load_field_caps(&raw)
            .unwrap()
            .get("a")
            .unwrap()
            .is_keyword_only());
        assert_eq!(
            load_field_caps(&fixture)
                .unwrap()
                .get("b")
                .unwrap()
                .kbn_type(),
            "date"
        );
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{}").unwrap();
        let e = load_field_caps(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.json") && e.contains("no `fields`"), "{e}");
    }

    #[test]
    fn rule_file_with_another_language_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.toml");
        std::fs::write(
            &p,
            "[rule]\nlanguage = \"eql\"\nquery = \"any where true\"\n",
        )
        .unwrap();
        let e = rule_file_query(&p, &FieldCatalog::builtin())
            .unwrap_err()
            .to_string();
        assert!(e.contains("language `eql`"), "{e}");
    }

    #[test]
    fn rule_query_puts_filters_where_build_es_query_does() {
        let c = FieldCatalog::builtin();
        let ast = Ast::Is {
            field: Some(f("event.action")),
            value: Value::text("x"),
        };
        let filters = vec![
            json!({"meta": {"negate": false}, "query": {"term": {"a": "1"}}}),
            json!({"meta": {"negate": true}, "query": {"term": {"b": "2"}}}),
            json!({"meta": {"disabled": true}, "query": {"term": {"c": "3"}}}),
            json!({"meta": {}, "exists": {"field": "d"}, "$state": {"store": "appState"}}),
        ];
        let q = rule_query(&ast, &filters, &c).unwrap();
        assert_eq!(
            q,
            json!({"bool": {
                "must": [],
                "filter": [
                    {"bool": {"should": [{"term": {"event.action": {"value": "x"}}}], "minimum_should_match": 1}},
                    {"term": {"a": "1"}},
                    {"exists": {"field": "d"}}
                ],
                "should": [],
                "must_not": [{"term": {"b": "2"}}]
            }})
        );
        let all = rule_query(&Ast::MatchAll, &[], &c).unwrap();
        assert_eq!(
            all,
            json!({"bool": {"must": [], "filter": [], "should": [], "must_not": []}})
        );
    }
}

//! Kibana rule filters (`[[rule.filters]]`): a subset of the query DSL compiled into the same
//! program as KQL. Supported: `match_all`, `match_none`, `bool` (`must`, `filter`, `should` with
//! `minimum_should_match`, `must_not`), `term`, `terms`, `match`, `match_phrase`, `exists`,
//! `range`, `wildcard`, `prefix`; `meta.negate` and `meta.disabled` are honoured.

use serde_json::{Map, Value};

use super::analyze::Glob;
use super::{
    make_bound, resolve, CompileError, FieldTable, Kind, Leaf, Matcher, Node, Op, QVal, RangeQ,
};
use crate::fields::FieldCatalog;

/// Compiles Kibana filter objects (each `{meta: {...}, query: {...}}`, or a legacy filter with
/// the query at the top level) into one matcher requiring all enabled filters.
pub fn compile_filters(filters: &[Value], catalog: &FieldCatalog) -> Result<Matcher, CompileError> {
    let mut table = FieldTable::default();
    let mut nodes = Vec::new();
    for (index, filter) in filters.iter().enumerate() {
        let err = |reason: String| CompileError::Filter { index, reason };
        let obj = filter
            .as_object()
            .ok_or_else(|| err("a filter must be an object".into()))?;
        let meta = obj.get("meta").and_then(Value::as_object);
        let flag = |key: &str| {
            meta.and_then(|m| m.get(key))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        if flag("disabled") {
            continue;
        }
        let query = match obj.get("query") {
            Some(q) => q.clone(),
            None => {
                // Legacy filters: `{"exists": {...}, "meta": {...}}`.
                let rest: Map<String, Value> = obj
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "meta" | "$state"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Value::Object(rest)
            }
        };
        let mut c = DslCompiler {
            catalog,
            table: &mut table,
            now: chrono::Utc::now(),
        };
        let node = c.query(&query).map_err(err)?;
        nodes.push(if flag("negate") {
            Node::Not(Box::new(node))
        } else {
            node
        });
    }
    Ok(Matcher {
        table,
        root: Node::All(nodes),
    })
}

struct DslCompiler<'c> {
    catalog: &'c FieldCatalog,
    table: &'c mut FieldTable,
    now: chrono::DateTime<chrono::Utc>,
}

impl DslCompiler<'_> {
    fn query(&mut self, q: &Value) -> Result<Node, String> {
        let obj = q
            .as_object()
            .ok_or_else(|| format!("query must be an object, got `{q}`"))?;
        let mut entries = obj.iter().filter(|(k, _)| k.as_str() != "_name");
        let (Some((kind, body)), None) = (entries.next(), entries.next()) else {
            return Err(format!(
                "query must have exactly one key, got {:?}",
                obj.keys().collect::<Vec<_>>()
            ));
        };
        match kind.as_str() {
            "match_all" => Ok(Node::True),
            "match_none" => Ok(Node::False),
            "bool" => self.bool_query(body),
            "exists" => {
                let field = body
                    .get("field")
                    .and_then(Value::as_str)
                    .ok_or("`exists` needs a string `field`")?;
                self.leaf(field, |_| Ok(Op::Exists))
            }
            "term" => {
                let (field, v) = single_field(kind, body)?;
                let (raw, ci) = match v {
                    Value::Object(o) => (
                        scalar(o.get("value").ok_or("`term` needs `value`")?)?,
                        o.get("case_insensitive")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    ),
                    other => (scalar(other)?, false),
                };
                self.term(field, &raw, ci)
            }
            "terms" => {
                let mut fields = body
                    .as_object()
                    .ok_or("`terms` must be an object")?
                    .iter()
                    .filter(|(k, _)| k.as_str() != "boost");
                let (Some((field, vals)), None) = (fields.next(), fields.next()) else {
                    return Err("`terms` needs exactly one field".into());
                };
                let vals = vals.as_array().ok_or("`terms` values must be an array")?;
                let mut nodes = Vec::new();
                for v in vals {
                    nodes.push(self.term(field, &scalar(v)?, false)?);
                }
                Ok(Node::Any(nodes))
            }
            "match" | "match_phrase" => {
                let (field, v) = single_field(kind, body)?;
                let (raw, all) = match v {
                    Value::Object(o) => {
                        let op = o.get("operator").and_then(Value::as_str).unwrap_or("or");
                        (
                            scalar(
                                o.get("query")
                                    .ok_or_else(|| format!("`{kind}` needs `query`"))?,
                            )?,
                            op.eq_ignore_ascii_case("and"),
                        )
                    }
                    other => (scalar(other)?, false),
                };
                let phrase = kind == "match_phrase";
                self.leaf(field, |k| {
                    let q = QVal::new(&raw);
                    super::check_value(field, k, &q).map_err(|e| e.to_string())?;
                    Ok(if phrase {
                        Op::Phrase(q)
                    } else {
                        Op::Match { q, all }
                    })
                })
            }
            "wildcard" | "prefix" => {
                let (field, v) = single_field(kind, body)?;
                let (raw, ci) = match v {
                    Value::Object(o) => (
                        scalar(
                            o.get("value")
                                .or_else(|| o.get("wildcard"))
                                .ok_or_else(|| format!("`{kind}` needs `value`"))?,
                        )?,
                        o.get("case_insensitive")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    ),
                    other => (scalar(other)?, false),
                };
                let pattern = if kind == "prefix" {
                    format!(
                        "{}*",
                        raw.replace('\\', "\\\\")
                            .replace('*', "\\*")
                            .replace('?', "\\?")
                    )
                } else {
                    raw
                };
                self.leaf(field, |k| {
                    if !(k.is_keyword_family() || matches!(k, Kind::Text | Kind::Dynamic)) {
                        return Err(format!(
                            "field `{field}` ({}): wildcard queries need a keyword or text field",
                            k.name()
                        ));
                    }
                    Ok(Op::Wildcard {
                        glob: Glob::from_es(&pattern, ci),
                        // ES normalises the pattern with the text field's analyzer (lowercase).
                        text_glob: Glob::from_es(&pattern, true),
                    })
                })
            }
            "range" => {
                let (field, v) = single_field(kind, body)?;
                let o = v.as_object().ok_or("`range` bounds must be an object")?;
                if let Some(tz) = o.get("time_zone").and_then(Value::as_str) {
                    if !matches!(tz, "UTC" | "Z" | "+00:00" | "Etc/UTC" | "GMT") {
                        return Err(format!(
                            "`range` time_zone `{tz}` is not supported (only UTC)"
                        ));
                    }
                }
                if let Some(fmt) = o.get("format").and_then(Value::as_str) {
                    for f in fmt.split("||") {
                        if !matches!(
                            f,
                            "strict_date_optional_time"
                                | "date_optional_time"
                                | "epoch_millis"
                                | "strict_date_time"
                        ) {
                            return Err(format!("`range` format `{f}` is not supported"));
                        }
                    }
                }
                let format = o.get("format").and_then(Value::as_str);
                let epoch_ok = format.is_none_or(|f| f.split("||").any(|x| x == "epoch_millis"));
                let now = self.now;
                self.leaf(field, |k| {
                    let mut r = RangeQ::default();
                    for (key, v) in o {
                        let (inclusive, upper) = match key.as_str() {
                            "gte" | "from" => (true, false),
                            "gt" => (false, false),
                            "lte" | "to" => (true, true),
                            "lt" => (false, true),
                            "format" | "time_zone" | "boost" | "relation" | "include_lower"
                            | "include_upper" => continue,
                            other => return Err(format!("`range` key `{other}` is not supported")),
                        };
                        if v.is_null() {
                            continue;
                        }
                        let raw = scalar(v)?;
                        // With an explicit `format`, a number only parses when it lists
                        // `epoch_millis` (ES: `failed to parse date field`).
                        if matches!(k, Kind::Date) && v.is_number() && !epoch_ok {
                            return Err(format!(
                                "field `{field}` (date): cannot parse `{raw}` with format `{}`",
                                format.unwrap_or_default()
                            ));
                        }
                        let b = make_bound(field, k, &raw, inclusive, upper, now)
                            .map_err(|e| e.to_string())?;
                        if upper {
                            r.upper = Some(b);
                        } else {
                            r.lower = Some(b);
                        }
                    }
                    Ok(Op::Range(Box::new(r)))
                })
            }
            other => Err(format!("unsupported filter query `{other}`")),
        }
    }

    fn bool_query(&mut self, body: &Value) -> Result<Node, String> {
        let o = body.as_object().ok_or("`bool` must be an object")?;
        let mut must = Vec::new();
        let mut should = Vec::new();
        let mut minimum: Option<usize> = None;
        for (key, v) in o {
            let clauses: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            match key.as_str() {
                "must" | "filter" => {
                    for c in clauses {
                        must.push(self.query(c)?);
                    }
                }
                "must_not" => {
                    for c in clauses {
                        must.push(Node::Not(Box::new(self.query(c)?)));
                    }
                }
                "should" => {
                    for c in clauses {
                        should.push(self.query(c)?);
                    }
                }
                "minimum_should_match" => {
                    minimum = Some(match v {
                        Value::Number(n) => n
                            .as_u64()
                            .ok_or("`minimum_should_match` must be a non-negative integer")?
                            as usize,
                        Value::String(s) => s.parse().map_err(|_| {
                            format!("`minimum_should_match` `{s}` is not supported (only integers)")
                        })?,
                        _ => return Err("`minimum_should_match` must be an integer".into()),
                    })
                }
                "boost" | "_name" | "adjust_pure_negative" => {}
                other => return Err(format!("`bool` key `{other}` is not supported")),
            }
        }
        if !should.is_empty() {
            // ES: with no must/filter clause, at least one should clause must match.
            let min = minimum.unwrap_or(if must.is_empty() { 1 } else { 0 });
            must.push(Node::AtLeast(min, should));
        }
        Ok(Node::All(must))
    }

    fn term(&mut self, field: &str, raw: &str, case_insensitive: bool) -> Result<Node, String> {
        self.leaf(field, |k| {
            let q = QVal::new(raw);
            super::check_value(field, k, &q).map_err(|e| e.to_string())?;
            if case_insensitive && k.is_keyword_family() {
                let mut pat = Vec::new();
                for c in raw.chars() {
                    pat.push(super::analyze::Pat::Char(c));
                }
                let g = Glob::new(pat, true);
                return Ok(Op::Wildcard {
                    glob: g.clone(),
                    text_glob: g,
                });
            }
            Ok(Op::Term(q))
        })
    }

    fn leaf(
        &mut self,
        field: &str,
        make: impl FnOnce(&Kind) -> Result<Op, String>,
    ) -> Result<Node, String> {
        let (kind, slot_name) = resolve(self.catalog, field);
        let op = make(&kind)?;
        let slot = self.table.intern(&slot_name);
        if super::is_flattened_root(self.catalog, field) {
            self.table.flattened.insert(slot);
        }
        Ok(Node::Leaf(Box::new(Leaf { slot, kind, op })))
    }
}

/// `{"field": v}` → (field, v).
fn single_field<'v>(kind: &str, body: &'v Value) -> Result<(&'v str, &'v Value), String> {
    let o = body
        .as_object()
        .ok_or_else(|| format!("`{kind}` must be an object"))?;
    let mut it = o.iter();
    match (it.next(), it.next()) {
        (Some((f, v)), None) => Ok((f.as_str(), v)),
        _ => Err(format!("`{kind}` needs exactly one field")),
    }
}

/// A JSON scalar as the text ES reads it.
fn scalar(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!(
            "expected a string, number or boolean, got `{other}`"
        )),
    }
}

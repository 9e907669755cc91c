//! Field types: what the query translator and the embedded matcher need to know about a field.
//!
//! Kibana translates KQL according to the index pattern's fields (`_field_caps`); detectd does
//! the same. Two sources fill a [`FieldCatalog`]: a saved or live `_field_caps` response
//! ([`FieldCatalog::from_field_caps`]) and the built-in ECS + CloudTrail catalog
//! ([`FieldCatalog::builtin`], table in `builtin.txt`) used by the embedded backend.
//!
//! A catalog holds what Kibana's data view holds: one [`FieldSpec`] per field name with every
//! Elasticsearch type the name has across the indices (several = a conflict), its multi-field
//! parent and its nested path. `flattened` leaves are not fields of their own (Kibana's data view
//! does not list them either); [`FieldCatalog::resolve`] types them through their root.

mod values;

use std::collections::BTreeMap;

pub use values::{date_millis, values_at};

/// One field as Kibana's data view sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: String,
    /// Elasticsearch mapping types across the indices (more than one = a conflict).
    pub es_types: Vec<String>,
    /// `ignore_above` of a keyword mapping: longer values are not indexed and never match.
    pub ignore_above: Option<usize>,
    /// For `constant_keyword`: the data stream's value.
    pub constant_value: Option<String>,
    /// For a multi-field (`message.keyword`): its parent (`message`).
    pub multi_parent: Option<String>,
    /// For a field inside a `nested` object: the nested path.
    pub nested_path: Option<String>,
}

/// The kind of a field, as far as query translation and matching care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Keyword,
    ConstantKeyword,
    /// The `wildcard` mapping type.
    Wildcard,
    /// `text` and `match_only_text`: analysed.
    Text,
    Date,
    Number,
    Boolean,
    Ip,
    /// A `flattened` root (its leaves resolve as [`FieldKind::Keyword`]).
    Flattened,
    /// Several mapping types across indices.
    Conflict,
    /// Anything else (geo_point, binary, version, ...).
    Other,
}

/// What [`FieldCatalog::resolve`] knows about a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved<'a> {
    pub kind: FieldKind,
    /// The field itself, or the `flattened` root for a leaf.
    pub spec: &'a FieldSpec,
    /// True when `name` is a leaf under the `flattened` field `spec`.
    pub flattened_leaf: bool,
}

/// Field name → spec, with `flattened` roots resolving their leaves.
#[derive(Debug, Clone, Default)]
pub struct FieldCatalog {
    fields: BTreeMap<String, FieldSpec>,
}

/// A `_field_caps` response that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FieldCapsError {
    #[error("field caps response has no `fields` object")]
    NoFields,
    #[error("field caps entry for field `{field}` is not an object of types")]
    BadEntry { field: String },
}

/// Default `ignore_above` of ECS keywords and of keywords in Fleet-installed integration mappings.
pub const DEFAULT_KEYWORD_IGNORE_ABOVE: usize = 1024;

const BUILTIN_TABLE: &str = include_str!("builtin.txt");

impl FieldSpec {
    /// A field with a single mapping type.
    pub fn new(name: impl Into<String>, es_type: &str) -> FieldSpec {
        FieldSpec {
            name: name.into(),
            es_types: vec![es_type.to_string()],
            ignore_above: None,
            constant_value: None,
            multi_parent: None,
            nested_path: None,
        }
    }

    /// Kibana's field type (`string`, `number`, `date`, ..., or `conflict` when the mapping
    /// types across indices cast to more than one Kibana type), as its data view computes it.
    pub fn kbn_type(&self) -> &'static str {
        let mut kbn: Option<&'static str> = None;
        for t in &self.es_types {
            let k = es_to_kbn_type(t);
            match kbn {
                None => kbn = Some(k),
                Some(prev) if prev != k => return "conflict",
                Some(_) => {}
            }
        }
        kbn.unwrap_or("unknown")
    }

    /// Kibana's `isKeywordField`: exactly one mapping type, and it is `keyword`. Only those get
    /// `term`/`wildcard` queries from KQL; `constant_keyword`, `wildcard` and mixed
    /// `text`/`keyword` fields get `match`/`query_string`.
    pub fn is_keyword_only(&self) -> bool {
        self.es_types.len() == 1 && self.es_types[0] == "keyword"
    }

    /// The field's kind; [`FieldKind::Conflict`] when it has several mapping types.
    pub fn kind(&self) -> FieldKind {
        match self.es_types.as_slice() {
            [t] => es_type_kind(t),
            [] => FieldKind::Other,
            [first, rest @ ..] => {
                if rest.iter().all(|t| t == first) {
                    es_type_kind(first)
                } else {
                    FieldKind::Conflict
                }
            }
        }
    }
}

impl FieldCatalog {
    /// An empty catalog: every field is unknown.
    pub fn new() -> FieldCatalog {
        FieldCatalog::default()
    }

    /// Adds or replaces a field.
    pub fn insert(&mut self, spec: FieldSpec) {
        self.fields.insert(spec.name.clone(), spec);
    }

    /// The spec of a field, if known (exact name; a `flattened` leaf is not a field).
    pub fn get(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.get(name)
    }

    /// All known fields, by name.
    pub fn iter(&self) -> impl Iterator<Item = &FieldSpec> {
        self.fields.values()
    }

    /// Number of known fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when no field is known.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The effective type of any name: a known field, or a leaf of a `flattened` field (typed as
    /// keyword, with the root as `spec`). `None` for an unknown name.
    pub fn resolve(&self, name: &str) -> Option<Resolved<'_>> {
        if let Some(spec) = self.fields.get(name) {
            return Some(Resolved {
                kind: spec.kind(),
                spec,
                flattened_leaf: false,
            });
        }
        let mut end = name.len();
        while let Some(dot) = name[..end].rfind('.') {
            end = dot;
            if let Some(root) = self.fields.get(&name[..end]) {
                if root.kind() == FieldKind::Flattened {
                    return Some(Resolved {
                        kind: FieldKind::Keyword,
                        spec: root,
                        flattened_leaf: true,
                    });
                }
            }
        }
        None
    }

    /// `ignore_above` that applies to a name (a keyword field's, or a flattened root's for a leaf).
    pub fn ignore_above(&self, name: &str) -> Option<usize> {
        self.resolve(name).and_then(|r| r.spec.ignore_above)
    }

    /// Known fields whose name matches `pattern`, where each `*` stands for any sequence of
    /// characters (Kibana's `wildcard.test` on the data view's fields), in name order.
    pub fn expand(&self, pattern: &str) -> Vec<&FieldSpec> {
        let parts: Vec<&str> = pattern.split('*').collect();
        self.fields
            .values()
            .filter(|f| wildcard_match(&parts, &f.name))
            .collect()
    }

    /// Reads a `_field_caps` response (`{"fields": {name: {type: {...}}}}`) as Kibana's data view
    /// does: every type key is an Elasticsearch type of the field; multi-field parents and nested
    /// paths are derived from the other entries; `object` and `nested` entries are dropped.
    pub fn from_field_caps(response: &serde_json::Value) -> Result<FieldCatalog, FieldCapsError> {
        let fields = response
            .get("fields")
            .and_then(|f| f.as_object())
            .ok_or(FieldCapsError::NoFields)?;
        let mut types: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, caps) in fields {
            let caps = caps.as_object().ok_or_else(|| FieldCapsError::BadEntry {
                field: name.clone(),
            })?;
            types.insert(name.clone(), caps.keys().cloned().collect());
        }
        let mut catalog = FieldCatalog::new();
        for (name, es_types) in &types {
            let mut spec = FieldSpec {
                name: name.clone(),
                es_types: es_types.clone(),
                ignore_above: None,
                constant_value: None,
                multi_parent: None,
                nested_path: None,
            };
            if matches!(spec.kbn_type(), "object" | "nested") {
                continue;
            }
            if let Some(dot) = name.rfind('.') {
                let parent = &name[..dot];
                if let Some(pt) = types.get(parent) {
                    if !pt.iter().any(|t| t == "object" || t == "nested") {
                        spec.multi_parent = Some(parent.to_string());
                    }
                }
            }
            // The nearest enclosing nested object.
            let mut end = name.len();
            while let Some(dot) = name[..end].rfind('.') {
                end = dot;
                if types
                    .get(&name[..end])
                    .is_some_and(|t| t.iter().any(|t| t == "nested"))
                {
                    spec.nested_path = Some(name[..end].to_string());
                    break;
                }
            }
            catalog.insert(spec);
        }
        Ok(catalog)
    }

    /// The built-in ECS + CloudTrail catalog (the mapping of `logs-aws.cloudtrail-*` as Fleet
    /// installs it), used by the embedded backend and by `explain` without `--field-caps`.
    pub fn builtin() -> FieldCatalog {
        let mut catalog = FieldCatalog::new();
        for (lineno, line) in BUILTIN_TABLE.lines().enumerate() {
            match parse_table_line(line) {
                Ok(specs) => specs.into_iter().for_each(|s| catalog.insert(s)),
                Err(e) => {
                    tracing::warn!(line = lineno + 1, error = %e, "skipping bad built-in field line")
                }
            }
        }
        catalog
    }
}

/// One line of `builtin.txt` → the field and its multi-fields (empty for blanks and comments).
fn parse_table_line(line: &str) -> Result<Vec<FieldSpec>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(Vec::new());
    }
    let mut words = line.split_whitespace();
    let (Some(name), Some(es_type)) = (words.next(), words.next()) else {
        return Err(format!("expected `name type`, got `{line}`"));
    };
    let mut spec = FieldSpec::new(name, es_type);
    if es_type == "keyword" {
        spec.ignore_above = Some(DEFAULT_KEYWORD_IGNORE_ABOVE);
    }
    let mut multi = Vec::new();
    for opt in words {
        let (key, val) = opt
            .split_once('=')
            .ok_or_else(|| format!("option `{opt}` is not key=value"))?;
        match key {
            "ignore_above" if val == "none" => spec.ignore_above = None,
            "ignore_above" => {
                spec.ignore_above = Some(
                    val.parse()
                        .map_err(|_| format!("ignore_above `{val}` is not a number"))?,
                )
            }
            "value" => spec.constant_value = Some(val.to_string()),
            "multi" => {
                for m in val.split(',') {
                    let (suffix, t) = m
                        .split_once(':')
                        .ok_or_else(|| format!("multi-field `{m}` is not suffix:type"))?;
                    let mut sub = FieldSpec::new(format!("{name}.{suffix}"), t);
                    sub.multi_parent = Some(name.to_string());
                    multi.push(sub);
                }
            }
            _ => return Err(format!("unknown option `{key}`")),
        }
    }
    let mut out = vec![spec];
    out.extend(multi);
    Ok(out)
}

/// Kibana's `castEsToKbnFieldTypeName`.
fn es_to_kbn_type(es_type: &str) -> &'static str {
    match es_type {
        "text" | "keyword" | "constant_keyword" | "wildcard" | "match_only_text" | "version"
        | "string" | "flattened" | "_id" | "_index" | "_type" | "_tier" | "_ignored" => "string",
        "long" | "integer" | "short" | "byte" | "double" | "float" | "half_float"
        | "scaled_float" | "unsigned_long" | "token_count" | "_seq_no" | "_version" => "number",
        "date" | "date_nanos" => "date",
        "boolean" => "boolean",
        "ip" => "ip",
        "geo_point" => "geo_point",
        "geo_shape" | "shape" => "geo_shape",
        "object" => "object",
        "nested" => "nested",
        "_source" => "_source",
        "histogram" => "histogram",
        _ => "unknown",
    }
}

fn es_type_kind(es_type: &str) -> FieldKind {
    match es_type {
        "keyword" => FieldKind::Keyword,
        "constant_keyword" => FieldKind::ConstantKeyword,
        "wildcard" => FieldKind::Wildcard,
        "text" | "match_only_text" => FieldKind::Text,
        "flattened" => FieldKind::Flattened,
        "boolean" => FieldKind::Boolean,
        "ip" => FieldKind::Ip,
        _ => match es_to_kbn_type(es_type) {
            "date" => FieldKind::Date,
            "number" => FieldKind::Number,
            _ => FieldKind::Other,
        },
    }
}

/// `parts` is a pattern split on `*`: the name must start with the first part, end with the
/// last, and contain the others in order.
fn wildcard_match(parts: &[&str], name: &str) -> bool {
    match parts {
        [] => name.is_empty(),
        [only] => *only == name,
        [first, middle @ .., last] => {
            if name.len() < first.len() + last.len()
                || !name.starts_with(first)
                || !name.ends_with(last)
            {
                return false;
            }
            let mut rest = &name[first.len()..name.len() - last.len()];
            for p in middle {
                match rest.find(p) {
                    Some(i) => rest = &rest[i + p.len()..],
                    None => return false,
                }
            }
            true
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Option<serde_json::Value> {
        let base = std::env::var_os("DETECTD_SHARED_DATA")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data"))
            });
        let p = base.join("es-fixtures").join(name);
        let Ok(text) = std::fs::read_to_string(&p) else {
            eprintln!(
                "skipping: {} not found (set DETECTD_SHARED_DATA)",
                p.display()
            );
            return None;
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        Some(v["response"].clone())
    }

    #[test]
    fn builtin_table_has_no_bad_lines() {
        for (i, line) in BUILTIN_TABLE.lines().enumerate() {
            assert!(parse_table_line(line).is_ok(), "line {}: {line}", i + 1);
        }
    }

    #[test]
    fn builtin_types_from_ecs_and_the_aws_integration() {
        let c = FieldCatalog::builtin();
        let action = c.get("event.action").unwrap();
        assert!(action.is_keyword_only());
        assert_eq!(action.ignore_above, Some(1024));
        let ds = c.get("data_stream.dataset").unwrap();
        assert_eq!(ds.kind(), FieldKind::ConstantKeyword);
        assert_eq!(ds.constant_value.as_deref(), Some("aws.cloudtrail"));
        assert_eq!(
            c.get("event.dataset").unwrap().constant_value.as_deref(),
            Some("aws.cloudtrail")
        );
        assert_eq!(
            c.ignore_above("aws.cloudtrail.request_parameters"),
            Some(8191)
        );
        assert_eq!(
            c.ignore_above("aws.cloudtrail.response_elements"),
            Some(8191)
        );
        assert_eq!(
            c.ignore_above("aws.cloudtrail.additional_eventdata"),
            Some(1024)
        );
        assert_eq!(c.get("source.ip").unwrap().kind(), FieldKind::Ip);
        assert_eq!(c.get("@timestamp").unwrap().kind(), FieldKind::Date);
        assert_eq!(c.get("source.as.number").unwrap().kind(), FieldKind::Number);
        let text = c.get("user_agent.original.text").unwrap();
        assert_eq!(text.kind(), FieldKind::Text);
        assert_eq!(text.multi_parent.as_deref(), Some("user_agent.original"));
        assert_eq!(
            c.get("aws.cloudtrail.console_login.additional_eventdata.mfa_used")
                .unwrap()
                .kind(),
            FieldKind::Boolean
        );
    }

    #[test]
    fn builtin_covers_every_field_the_aws_rules_use() {
        let base = std::env::var_os("DETECTD_SHARED_DATA")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data"))
            });
        let p = base.join("detection-rules/aws_rule_fields_types.csv");
        let Ok(csv) = std::fs::read_to_string(&p) else {
            eprintln!("skipping: {} not found", p.display());
            return;
        };
        let c = FieldCatalog::builtin();
        for line in csv.lines().skip(1) {
            let cols: Vec<&str> = line.split(',').collect();
            let (name, ty) = (cols[0], cols[4]);
            let r = c.resolve(name).unwrap_or_else(|| panic!("{name} unknown"));
            if ty.starts_with("flattened leaf") {
                assert!(r.flattened_leaf, "{name}");
                assert_eq!(r.kind, FieldKind::Keyword, "{name}");
            } else {
                assert_eq!(r.spec.es_types, vec![ty.to_string()], "{name}");
            }
        }
    }

    #[test]
    fn flattened_leaves_resolve_through_their_root() {
        let c = FieldCatalog::builtin();
        let r = c
            .resolve("aws.cloudtrail.flattened.request_parameters.ipPermissions.items.fromPort")
            .unwrap();
        assert!(r.flattened_leaf);
        assert_eq!(r.kind, FieldKind::Keyword);
        assert_eq!(r.spec.name, "aws.cloudtrail.flattened.request_parameters");
        assert!(c
            .get("aws.cloudtrail.flattened.request_parameters.key")
            .is_none());
        assert!(c.resolve("no.such.field").is_none());
        // A name below a non-flattened field is not a leaf.
        assert!(c.resolve("event.action.nope").is_none());
    }

    #[test]
    fn expand_matches_stars_anywhere() {
        let c = FieldCatalog::builtin();
        let names =
            |p: &str| -> Vec<String> { c.expand(p).into_iter().map(|f| f.name.clone()).collect() };
        assert_eq!(
            names("user_agent.os.*"),
            vec![
                "user_agent.os.full",
                "user_agent.os.full.text",
                "user_agent.os.name",
                "user_agent.os.name.text",
                "user_agent.os.version"
            ]
        );
        assert_eq!(names("*.server_name"), vec!["tls.client.server_name"]);
        assert_eq!(names("event.action"), vec!["event.action"]);
        assert_eq!(names("source.*.number"), vec!["source.as.number"]);
        assert!(names("nothing*here").is_empty());
        assert_eq!(c.expand("*").len(), c.len());
    }

    #[test]
    fn field_caps_conflicts_and_multi_fields() {
        let Some(resp) = fixture("020-field-caps-all.json") else {
            return;
        };
        let c = FieldCatalog::from_field_caps(&resp).unwrap();
        // keyword in the data stream, text in the filebeat index: same Kibana type, two es types.
        let action = c.get("event.action").unwrap();
        assert_eq!(action.kbn_type(), "string");
        assert!(!action.is_keyword_only());
        assert_eq!(action.es_types.len(), 2);
        // ip in one index, text in the other: a conflict.
        assert_eq!(c.get("source.ip").unwrap().kbn_type(), "conflict");
        assert_eq!(c.get("source.ip").unwrap().kind(), FieldKind::Conflict);
        assert!(c
            .get("aws.cloudtrail.error_message")
            .unwrap()
            .is_keyword_only());
        assert_eq!(c.get("@timestamp").unwrap().kbn_type(), "date");
        let kw = c.get("event.dataset.keyword").unwrap();
        assert_eq!(kw.multi_parent.as_deref(), Some("event.dataset"));
        // object entries are dropped, as Kibana's data view drops them.
        assert!(c
            .get("aws.cloudtrail.flattened.response_elements.command")
            .is_none());
    }

    #[test]
    fn field_caps_selected_and_unmapped() {
        let Some(resp) = fixture("022-field-caps-selected.json") else {
            return;
        };
        let c = FieldCatalog::from_field_caps(&resp).unwrap();
        assert!(c.get("source").is_none());
        assert_eq!(c.get("event.ingested").unwrap().kind(), FieldKind::Date);
        let Some(resp) = fixture("021-field-caps-all-include-unmapped.json") else {
            return;
        };
        let c = FieldCatalog::from_field_caps(&resp).unwrap();
        // `unmapped` is kept as a type, as Kibana does: keyword + unmapped is a conflict.
        assert_eq!(
            c.get("event.dataset.keyword").unwrap().kbn_type(),
            "conflict"
        );
    }

    #[test]
    fn field_caps_nested_paths() {
        let resp = serde_json::json!({"fields": {
            "items": {"nested": {"type": "nested"}},
            "items.name": {"keyword": {"type": "keyword"}},
            "items.sub": {"nested": {"type": "nested"}},
            "items.sub.x": {"long": {"type": "long"}},
            "a": {"object": {"type": "object"}},
            "a.b": {"keyword": {"type": "keyword"}}
        }});
        let c = FieldCatalog::from_field_caps(&resp).unwrap();
        assert_eq!(
            c.get("items.name").unwrap().nested_path.as_deref(),
            Some("items")
        );
        assert_eq!(
            c.get("items.sub.x").unwrap().nested_path.as_deref(),
            Some("items.sub")
        );
        assert_eq!(c.get("a.b").unwrap().nested_path, None);
        assert_eq!(c.get("a.b").unwrap().multi_parent, None);
        assert!(c.get("items").is_none());
    }

    #[test]
    fn field_caps_errors_name_the_problem() {
        let e = FieldCatalog::from_field_caps(&serde_json::json!({"x": 1})).unwrap_err();
        assert_eq!(e.to_string(), "field caps response has no `fields` object");
        let e =
            FieldCatalog::from_field_caps(&serde_json::json!({"fields": {"f": 3}})).unwrap_err();
        assert!(e.to_string().contains("`f`"));
    }
}

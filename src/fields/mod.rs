//! Field types: what the query translator and the embedded matcher need to know about a field.
//!
//! Kibana translates KQL according to the index pattern's fields (`_field_caps`); detectd does
//! the same. Two sources fill a [`FieldCatalog`]: a saved or live `_field_caps` response
//! ([`FieldCatalog::from_field_caps`]) and the built-in ECS + CloudTrail catalog
//! ([`FieldCatalog::builtin`]) used by the embedded backend.

use std::collections::BTreeMap;

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

/// Field name → spec, with `flattened` roots resolving their leaves.
#[derive(Debug, Clone, Default)]
pub struct FieldCatalog {
    fields: BTreeMap<String, FieldSpec>,
}

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

    /// The spec of a field, if known.
    pub fn get(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.get(name)
    }

    /// All known fields, by name.
    pub fn iter(&self) -> impl Iterator<Item = &FieldSpec> {
        self.fields.values()
    }
}

//! `RuleFile`: a serde mirror of one detection-rules TOML file, before any validation.
//!
//! Every key seen in the public AWS rules (and the other keys of the detection-rules schema
//! Kibana accepts) has a field here. Anything else lands in an `extra` map, which the loader
//! reports as a warning naming the file and the key; nothing is silently dropped.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Keys this mirror does not know, by name (reported as warnings).
pub type Extra = BTreeMap<String, toml::Value>;

/// A whole rule file: `[metadata]` and `[rule]`.
#[derive(Debug, Clone, Deserialize)]
pub struct RuleFile {
    #[serde(default)]
    pub metadata: Option<Metadata>,
    pub rule: RuleSection,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `metadata.integration` is a list in most files and a plain string in some.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "expected a string or a list of strings")]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// `[metadata]`: bookkeeping of the detection-rules repository.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Metadata {
    pub creation_date: Option<String>,
    pub updated_date: Option<String>,
    pub deprecation_date: Option<String>,
    pub maturity: Option<String>,
    pub integration: Option<OneOrMany>,
    pub min_stack_version: Option<String>,
    pub min_stack_comments: Option<String>,
    pub bypass_bbr_timing: Option<bool>,
    pub ecs_version: Option<Vec<String>>,
    pub query_schema_validation: Option<bool>,
    pub comments: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[rule]`.
#[derive(Debug, Clone, Deserialize)]
pub struct RuleSection {
    pub rule_id: String,
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub rule_type: String,
    pub risk_score: i64,
    pub severity: String,
    pub author: Option<Vec<String>>,
    pub license: Option<String>,
    pub version: Option<i64>,
    pub language: Option<String>,
    pub query: Option<String>,
    pub index: Option<Vec<String>>,
    pub data_view_id: Option<String>,
    pub interval: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub max_signals: Option<i64>,
    pub enabled: Option<bool>,
    pub tags: Option<Vec<String>>,
    pub references: Option<Vec<String>>,
    pub false_positives: Option<Vec<String>>,
    pub note: Option<String>,
    pub setup: Option<String>,
    pub building_block_type: Option<String>,
    pub timestamp_override: Option<String>,
    pub timestamp_override_fallback_disabled: Option<bool>,
    pub event_category_override: Option<String>,
    pub tiebreaker_field: Option<String>,
    pub timestamp_field: Option<String>,
    pub rule_name_override: Option<String>,
    pub timeline_id: Option<String>,
    pub timeline_title: Option<String>,
    pub output_index: Option<String>,
    pub namespace: Option<String>,
    pub threat: Option<Vec<Threat>>,
    pub new_terms: Option<NewTerms>,
    pub threshold: Option<Threshold>,
    pub filters: Option<Vec<toml::Value>>,
    pub exceptions_list: Option<Vec<toml::Value>>,
    pub risk_score_mapping: Option<Vec<toml::Value>>,
    pub severity_mapping: Option<Vec<toml::Value>>,
    pub related_integrations: Option<Vec<toml::Value>>,
    pub required_fields: Option<Vec<toml::Value>>,
    pub investigation_fields: Option<InvestigationFields>,
    pub alert_suppression: Option<AlertSuppression>,
    pub machine_learning_job_id: Option<OneOrMany>,
    pub anomaly_threshold: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One `[[rule.threat]]` entry (MITRE ATT&CK mapping).
#[derive(Debug, Clone, Deserialize)]
pub struct Threat {
    pub framework: String,
    pub tactic: ThreatRef,
    pub technique: Option<Vec<Technique>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tactic or sub-technique: id, name, reference URL.
#[derive(Debug, Clone, Deserialize)]
pub struct ThreatRef {
    pub id: String,
    pub name: String,
    pub reference: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A technique, with optional sub-techniques.
#[derive(Debug, Clone, Deserialize)]
pub struct Technique {
    pub id: String,
    pub name: String,
    pub reference: String,
    pub subtechnique: Option<Vec<ThreatRef>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[rule.new_terms]`: `field = "new_terms_fields"`, `value = [...]`, and
/// `[[rule.new_terms.history_window_start]]` with `field = "history_window_start"`, `value`.
#[derive(Debug, Clone, Deserialize)]
pub struct NewTerms {
    pub field: String,
    pub value: Vec<String>,
    pub history_window_start: Vec<FieldValue>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `{field, value}` pair.
#[derive(Debug, Clone, Deserialize)]
pub struct FieldValue {
    pub field: String,
    pub value: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[rule.threshold]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Threshold {
    pub field: Vec<String>,
    pub value: i64,
    pub cardinality: Option<Vec<Cardinality>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[[rule.threshold.cardinality]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Cardinality {
    pub field: String,
    pub value: i64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[rule.investigation_fields]`.
#[derive(Debug, Clone, Deserialize)]
pub struct InvestigationFields {
    pub field_names: Vec<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[rule.alert_suppression]`.
#[derive(Debug, Clone, Deserialize)]
pub struct AlertSuppression {
    pub group_by: Vec<String>,
    pub duration: Option<SuppressionDuration>,
    pub missing_fields_strategy: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[rule.alert_suppression.duration]`.
#[derive(Debug, Clone, Deserialize)]
pub struct SuppressionDuration {
    pub value: i64,
    pub unit: String,
    #[serde(flatten)]
    pub extra: Extra,
}

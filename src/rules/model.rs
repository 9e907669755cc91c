//! The validated rule model the engine runs: `Rule` and `RuleKind`.
//!
//! A `Rule` is only built by the loader (`rules::load_file`), so every value in it has been
//! checked: the KQL is parsed, intervals and date math are typed, new_terms parameters are
//! consistent with the window.

use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::config::{BackendKind, RuleOverride};
use crate::kql::Ast;
use crate::time::{format_interval, parse_datemath, parse_interval, DateMath};

/// A rule ready to run.
#[derive(Debug, Clone)]
pub struct Rule {
    pub rule_id: String,
    pub name: String,
    pub description: String,
    pub severity: Severity,
    /// 0..=100.
    pub risk_score: u8,
    /// `rule.version` when the file states it, else 1.
    pub version: u32,
    pub author: Vec<String>,
    pub license: Option<String>,
    pub tags: Vec<String>,
    pub references: Vec<String>,
    pub false_positives: Vec<String>,
    /// MITRE ATT&CK mapping (`[[rule.threat]]`).
    pub threat: Vec<Threat>,
    /// Index patterns; empty for ES|QL and machine-learning rules.
    pub index: Vec<String>,
    /// How often the rule runs (default 5m).
    pub interval: Duration,
    /// A cron schedule set by the operator (config override); replaces `interval` for scheduling.
    pub cron: Option<String>,
    /// False when the file or the operator disabled the rule.
    pub enabled: bool,
    /// Window start (default `now-6m`).
    pub from: DateMath,
    /// Window end (default `now`).
    pub to: DateMath,
    /// Alerts per execution (default 100), > 0.
    pub max_signals: u32,
    pub timestamp_override: Option<String>,
    pub timestamp_override_fallback_disabled: bool,
    /// `[[rule.filters]]` as query-DSL-like JSON (Kibana filter objects).
    pub filters: Vec<Value>,
    /// `exceptions_list` entries, as written.
    pub exceptions: Vec<Value>,
    pub building_block_type: Option<String>,
    pub note: Option<String>,
    pub setup: Option<String>,
    /// `metadata.maturity` (`production`, `development`, `deprecated`, ...).
    pub maturity: Option<String>,
    /// `metadata.min_stack_version`: the oldest Elastic stack the rule is written for.
    pub min_stack_version: Option<String>,
    pub investigation_fields: Vec<String>,
    pub alert_suppression: Option<Value>,
    pub risk_score_mapping: Vec<Value>,
    pub severity_mapping: Vec<Value>,
    pub rule_name_override: Option<String>,
    /// The file the rule was loaded from.
    pub source: PathBuf,
    pub kind: RuleKind,
}

/// What the rule does, with the parameters of its type.
#[derive(Debug, Clone)]
pub enum RuleKind {
    /// `type = "query"`, `language = "kuery"`.
    Query { query: Ast, text: String },
    /// `type = "new_terms"`.
    NewTerms {
        query: Ast,
        text: String,
        /// 1..=3 fields.
        fields: Vec<String>,
        /// Evaluated with `now` = the window's end; earlier than `from`.
        history_window_start: DateMath,
    },
    /// `type = "threshold"`.
    Threshold {
        query: Ast,
        text: String,
        fields: Vec<String>,
        value: u64,
        cardinality: Vec<(String, u64)>,
    },
    /// `type = "eql"`.
    Eql {
        query: String,
        /// `event_category_override`: `_eql/search`'s `event_category_field`.
        event_category_override: Option<String>,
        /// `timestamp_field`: the field EQL orders events by (default `@timestamp`).
        timestamp_field: Option<String>,
        /// `tiebreaker_field`: orders events with the same timestamp.
        tiebreaker_field: Option<String>,
    },
    /// `type = "esql"`.
    Esql { query: String },
    /// `type = "machine_learning"`.
    MachineLearning {
        job_ids: Vec<String>,
        anomaly_threshold: u32,
    },
    /// A query or threshold rule written in Lucene syntax (not supported).
    Lucene { rule_type: String, query: String },
}

/// Where a rule can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Both backends (query, new_terms, threshold).
    Anywhere,
    /// Only on the Elasticsearch backend (eql through `_eql/search`; esql through `_query`, on
    /// Elasticsearch 8.11 or newer: `ClusterInfo::refuses_rule`), with the reason it cannot run
    /// embedded.
    ElasticsearchOnly(&'static str),
    /// Nowhere, with the reason.
    Unsupported(&'static str),
}

/// Kibana's four severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Parses `low`, `medium`, `high`, `critical`.
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One MITRE ATT&CK mapping, shaped as Kibana stores it in `kibana.alert.rule.threat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Threat {
    pub framework: String,
    pub tactic: ThreatRef,
    pub technique: Vec<Technique>,
}

/// A tactic or sub-technique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreatRef {
    pub id: String,
    pub name: String,
    pub reference: String,
}

/// A technique and its sub-techniques.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Technique {
    pub id: String,
    pub name: String,
    pub reference: String,
    pub subtechnique: Vec<ThreatRef>,
}

/// A config override that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    #[error("override for rule {rule_id}: bad `{key}`: {message}")]
    Invalid {
        rule_id: String,
        key: &'static str,
        message: String,
    },
}

impl RuleKind {
    /// The rule `type` as written in the file.
    pub fn type_name(&self) -> &str {
        match self {
            RuleKind::Query { .. } => "query",
            RuleKind::NewTerms { .. } => "new_terms",
            RuleKind::Threshold { .. } => "threshold",
            RuleKind::Eql { .. } => "eql",
            RuleKind::Esql { .. } => "esql",
            RuleKind::MachineLearning { .. } => "machine_learning",
            RuleKind::Lucene { rule_type, .. } => rule_type,
        }
    }

    /// The parsed KQL, for the types that have one.
    pub fn kql(&self) -> Option<&Ast> {
        match self {
            RuleKind::Query { query, .. }
            | RuleKind::NewTerms { query, .. }
            | RuleKind::Threshold { query, .. } => Some(query),
            _ => None,
        }
    }

    /// The query text as written, when there is one.
    pub fn query_text(&self) -> Option<&str> {
        match self {
            RuleKind::Query { text, .. }
            | RuleKind::NewTerms { text, .. }
            | RuleKind::Threshold { text, .. } => Some(text),
            RuleKind::Eql { query, .. }
            | RuleKind::Esql { query }
            | RuleKind::Lucene { query, .. } => Some(query),
            RuleKind::MachineLearning { .. } => None,
        }
    }

    /// Where rules of this kind can run.
    pub fn support(&self) -> Support {
        match self {
            RuleKind::Query { .. } | RuleKind::NewTerms { .. } | RuleKind::Threshold { .. } => {
                Support::Anywhere
            }
            RuleKind::Eql { .. } => Support::ElasticsearchOnly(
                "eql rules need the Elasticsearch backend (`_eql/search`): the embedded backend does not evaluate EQL",
            ),
            RuleKind::Esql { .. } => Support::ElasticsearchOnly(
                "ES|QL rules need the Elasticsearch backend (`_query`, Elasticsearch 8.11 or newer)",
            ),
            RuleKind::MachineLearning { .. } => {
                Support::Unsupported("machine_learning rules are not supported")
            }
            RuleKind::Lucene { .. } => Support::Unsupported("lucene queries are not supported"),
        }
    }
}

impl Support {
    /// `Ok` when a rule with this support runs on `backend`, else the reason.
    pub fn on(self, backend: BackendKind) -> Result<(), &'static str> {
        match (self, backend) {
            (Support::Anywhere, _) => Ok(()),
            // eql and esql run through Elasticsearch's own endpoints (`_eql/search`, `_query`).
            (Support::ElasticsearchOnly(_), BackendKind::Elasticsearch) => Ok(()),
            (Support::ElasticsearchOnly(r), BackendKind::Embedded) => Err(r),
            (Support::Unsupported(r), _) => Err(r),
        }
    }
}

/// The instant used to compare date-math expressions at load time (any fixed `now` works for
/// `now-…` expressions; a fixed one keeps validation deterministic).
pub(crate) fn reference_now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
}

/// Checks `history_window_start < from`, both evaluated with the same `now`.
pub(crate) fn check_history_window(history: &DateMath, from: &DateMath) -> Result<(), String> {
    let now = reference_now();
    let (h, f) = (history.resolve(now), from.resolve(now));
    if h < f {
        Ok(())
    } else {
        Err(format!(
            "history_window_start `{}` must be earlier than from `{}`",
            history.source, from.source
        ))
    }
}

impl Rule {
    /// Where this rule can run.
    pub fn support(&self) -> Support {
        self.kind.support()
    }

    /// The rule `type`.
    pub fn rule_type(&self) -> &str {
        self.kind.type_name()
    }

    /// Kibana's `rule_type_id` for this rule's type.
    pub fn rule_type_id(&self) -> &'static str {
        match self.kind {
            RuleKind::Query { .. } | RuleKind::Lucene { .. } => "siem.queryRule",
            RuleKind::NewTerms { .. } => "siem.newTermsRule",
            RuleKind::Threshold { .. } => "siem.thresholdRule",
            RuleKind::Eql { .. } => "siem.eqlRule",
            RuleKind::Esql { .. } => "siem.esqlRule",
            RuleKind::MachineLearning { .. } => "siem.mlRule",
        }
    }

    /// Applies an operator override from config.toml (`[rules.<rule_id>]`).
    pub fn apply_override(&mut self, o: &RuleOverride) -> Result<(), OverrideError> {
        let bad = |key: &'static str, message: String| OverrideError::Invalid {
            rule_id: self.rule_id.clone(),
            key,
            message,
        };
        let interval = match &o.interval {
            Some(s) => Some(parse_interval(s).map_err(|e| bad("interval", e.to_string()))?),
            None => None,
        };
        let from = match &o.from {
            Some(s) => Some(parse_datemath(s).map_err(|e| bad("from", e.to_string()))?),
            None => None,
        };
        if let Some(c) = &o.cron {
            c.parse::<cron::Schedule>()
                .map_err(|e| bad("cron", e.to_string()))?;
        }
        if o.max_signals == Some(0) {
            return Err(bad("max_signals", "must be greater than 0".to_string()));
        }
        if let (
            Some(f),
            RuleKind::NewTerms {
                history_window_start,
                ..
            },
        ) = (&from, &self.kind)
        {
            check_history_window(history_window_start, f).map_err(|m| bad("from", m))?;
        }
        if let Some(e) = o.enabled {
            self.enabled = e;
        }
        if let Some(i) = interval {
            self.interval = i;
        }
        if let Some(f) = from {
            self.from = f;
        }
        if let Some(c) = &o.cron {
            self.cron = Some(c.clone());
        }
        if let Some(m) = o.max_signals {
            self.max_signals = m;
        }
        Ok(())
    }

    /// The `kibana.alert.rule.*` fields of this rule's alerts (keys without the prefix), as in
    /// semantics.md §6. `execution.uuid` is per execution and left to the engine; `uuid` is the
    /// `rule_id` (detectd has no saved-object id).
    pub fn alert_rule_fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("uuid".into(), json!(self.rule_id));
        m.insert("rule_id".into(), json!(self.rule_id));
        m.insert("name".into(), json!(self.name));
        m.insert("description".into(), json!(self.description));
        m.insert("type".into(), json!(self.rule_type()));
        m.insert("from".into(), json!(self.from.source));
        m.insert("to".into(), json!(self.to.source));
        m.insert("interval".into(), json!(format_interval(self.interval)));
        m.insert("max_signals".into(), json!(self.max_signals));
        m.insert("indices".into(), json!(self.index));
        m.insert("tags".into(), json!(self.tags));
        m.insert(
            "threat".into(),
            serde_json::to_value(&self.threat).unwrap_or(Value::Array(Vec::new())),
        );
        m.insert("references".into(), json!(self.references));
        m.insert("false_positives".into(), json!(self.false_positives));
        m.insert("author".into(), json!(self.author));
        if let Some(l) = &self.license {
            m.insert("license".into(), json!(l));
        }
        m.insert("version".into(), json!(self.version));
        m.insert("severity".into(), json!(self.severity.as_str()));
        m.insert("risk_score".into(), json!(self.risk_score));
        if let Some(t) = &self.timestamp_override {
            m.insert("timestamp_override".into(), json!(t));
        }
        if let Some(b) = &self.building_block_type {
            m.insert("building_block_type".into(), json!(b));
        }
        if let RuleKind::NewTerms {
            fields,
            history_window_start,
            ..
        } = &self.kind
        {
            m.insert("new_terms_fields".into(), json!(fields));
            m.insert(
                "history_window_start".into(),
                json!(history_window_start.source),
            );
        }
        if let RuleKind::Threshold {
            fields,
            value,
            cardinality,
            ..
        } = &self.kind
        {
            let card: Vec<Value> = cardinality
                .iter()
                .map(|(f, v)| json!({"field": f, "value": v}))
                .collect();
            m.insert(
                "threshold".into(),
                json!({"field": fields, "value": value, "cardinality": card}),
            );
        }
        if let RuleKind::Eql {
            event_category_override,
            timestamp_field,
            tiebreaker_field,
            ..
        } = &self.kind
        {
            for (k, v) in [
                ("event_category_override", event_category_override),
                ("timestamp_field", timestamp_field),
                ("tiebreaker_field", tiebreaker_field),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), json!(v));
                }
            }
        }
        if let Some(q) = self.kind.query_text() {
            m.insert("query".into(), json!(q));
        }
        m.insert("consumer".into(), json!("siem"));
        m.insert("producer".into(), json!("siem"));
        m.insert("rule_type_id".into(), json!(self.rule_type_id()));
        m.insert("enabled".into(), json!(self.enabled));
        m
    }
}

//! Loading: TOML text → `RuleFile` (serde, unknown keys collected) → validated `Rule`.
//!
//! Every problem names the file, the rule (when known) and the key (or the KQL offset).
//! Unknown keys are warnings; syntax errors, wrong types, missing keys, bad intervals, bad date
//! math and inconsistent parameters are errors. One bad file never hides the others.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::file::{self, Extra, RuleFile};
use super::model::{check_history_window, Rule, RuleKind, Severity, Technique, Threat, ThreatRef};
use crate::time::{parse_datemath, parse_interval, DateMath};

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Warning,
    Error,
}

/// One problem found while loading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub level: Level,
    pub file: PathBuf,
    /// The rule name, when the file got far enough to know it.
    pub rule: Option<String>,
    /// The key (`rule.interval`, `rule.threat[0].tactic.id`), when the problem has one.
    pub key: Option<String>,
    /// Offset (characters) in the query, for KQL syntax errors.
    pub query_offset: Option<usize>,
    /// Line (1-based) in the file, for TOML errors that have one.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Warning => "warning",
            Level::Error => "error",
        };
        write!(f, "{level}: {}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(r) = &self.rule {
            write!(f, ": rule \"{r}\"")?;
        }
        if let Some(k) = &self.key {
            write!(f, ": {k}")?;
        }
        if let Some(o) = self.query_offset {
            write!(f, " at offset {o}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A file that could not be turned into a rule.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid TOML{}: {message}", line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{path}: {key}: {message}")]
    Schema {
        path: PathBuf,
        key: String,
        line: Option<usize>,
        message: String,
    },
    #[error("{path}: rule \"{rule}\": {}", first_message(.errors))]
    Invalid {
        path: PathBuf,
        rule: String,
        /// Every error found (at least one), and the warnings.
        errors: Vec<Problem>,
    },
}

fn first_message(errors: &[Problem]) -> String {
    let first = errors
        .iter()
        .find(|p| p.level == Level::Error)
        .map(|p| {
            let mut s = p.key.clone().unwrap_or_default();
            if let Some(o) = p.query_offset {
                s.push_str(&format!(" at offset {o}"));
            }
            format!("{s}: {}", p.message)
        })
        .unwrap_or_default();
    let n = errors.iter().filter(|p| p.level == Level::Error).count();
    if n > 1 {
        format!("{first} (and {} more errors)", n - 1)
    } else {
        first
    }
}

impl LoadError {
    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            LoadError::Read { path, .. }
            | LoadError::Syntax { path, .. }
            | LoadError::Schema { path, .. }
            | LoadError::Invalid { path, .. } => path,
        }
    }

    /// The error as problem rows (one per error, plus warnings found on the way).
    pub fn problems(&self) -> Vec<Problem> {
        let row = |key: Option<String>, line: Option<usize>, message: String| Problem {
            level: Level::Error,
            file: self.path().to_path_buf(),
            rule: None,
            key,
            query_offset: None,
            line,
            message,
        };
        match self {
            LoadError::Read { source, .. } => {
                vec![row(None, None, format!("cannot read: {source}"))]
            }
            LoadError::Syntax { line, message, .. } => {
                vec![row(None, *line, format!("invalid TOML: {message}"))]
            }
            LoadError::Schema {
                key, line, message, ..
            } => vec![row(Some(key.clone()), *line, message.clone())],
            LoadError::Invalid { errors, .. } => errors.clone(),
        }
    }
}

/// A loaded rule and the warnings its file produced.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub rule: Rule,
    pub warnings: Vec<Problem>,
}

/// The outcome of loading many files: every rule that loaded, every problem found.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub rules: Vec<Rule>,
    pub problems: Vec<Problem>,
    /// Rule files looked at.
    pub files: usize,
}

impl LoadReport {
    pub fn errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.level == Level::Error)
            .count()
    }

    pub fn warnings(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.level == Level::Warning)
            .count()
    }
}

/// Loads every `*.toml` under `paths` (files, or folders walked recursively, in sorted order).
pub fn load_paths(paths: &[PathBuf]) -> LoadReport {
    let mut report = LoadReport::default();
    for p in paths {
        for file in toml_files(p, &mut report) {
            report.files += 1;
            match load_file(&file) {
                Ok(l) => {
                    report.problems.extend(l.warnings);
                    report.rules.push(l.rule);
                }
                Err(e) => report.problems.extend(e.problems()),
            }
        }
    }
    report
}

fn toml_files(p: &Path, report: &mut LoadReport) -> Vec<PathBuf> {
    if p.is_file() {
        return vec![p.to_path_buf()];
    }
    if !p.exists() {
        report.problems.push(Problem {
            level: Level::Error,
            file: p.to_path_buf(),
            rule: None,
            key: None,
            query_offset: None,
            line: None,
            message: "no such file or folder".to_string(),
        });
        return Vec::new();
    }
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(p).sort_by_file_name() {
        match entry {
            Ok(e) => {
                if e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "toml") {
                    out.push(e.into_path());
                }
            }
            Err(err) => report.problems.push(Problem {
                level: Level::Error,
                file: err.path().unwrap_or(p).to_path_buf(),
                rule: None,
                key: None,
                query_offset: None,
                line: None,
                message: format!("cannot read folder: {err}"),
            }),
        }
    }
    out
}

/// Loads one rule file.
pub fn load_file(path: &Path) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, path)
}

/// Loads a rule from TOML text; `path` is used in messages and kept as the rule's source.
pub fn load_str(text: &str, path: &Path) -> Result<Loaded, LoadError> {
    let file = parse_file(text, path)?;
    build(file, path)
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> Option<usize> {
    let start = span?.start.min(text.len());
    Some(
        text.as_bytes()[..start]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1,
    )
}

fn parse_file(text: &str, path: &Path) -> Result<RuleFile, LoadError> {
    // Syntax first, so a syntax error is never reported as a schema error.
    if let Err(e) = text.parse::<toml::Table>() {
        return Err(LoadError::Syntax {
            path: path.to_path_buf(),
            line: line_of(text, e.span()),
            message: e.message().trim().to_string(),
        });
    }
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize::<_, RuleFile>(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().trim().to_string();
        // `missing field `x`` is reported at the table; name the key itself.
        let key = match message
            .strip_prefix("missing field `")
            .and_then(|r| r.strip_suffix('`'))
        {
            Some(field) if key == "." => field.to_string(),
            Some(field) => format!("{key}.{field}"),
            None => key,
        };
        LoadError::Schema {
            path: path.to_path_buf(),
            key,
            line: line_of(text, inner.span()),
            message,
        }
    })
}

struct Checker<'a> {
    path: &'a Path,
    rule: String,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn push(&mut self, level: Level, key: &str, message: String) {
        self.problems.push(Problem {
            level,
            file: self.path.to_path_buf(),
            rule: Some(self.rule.clone()),
            key: Some(key.to_string()),
            query_offset: None,
            line: None,
            message,
        });
    }

    fn error(&mut self, key: &str, message: String) {
        self.push(Level::Error, key, message);
    }

    fn unknown(&mut self, prefix: &str, extra: &Extra) {
        for k in extra.keys() {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            self.push(Level::Warning, &key, "unknown key (ignored)".to_string());
        }
    }

    fn interval(&mut self, key: &str, v: Option<&str>, default: &str) -> chrono::Duration {
        match parse_interval(v.unwrap_or(default)) {
            Ok(d) => d,
            Err(e) => {
                self.error(key, e.to_string());
                chrono::Duration::minutes(5)
            }
        }
    }

    fn datemath(&mut self, key: &str, v: Option<&str>, default: &str) -> Option<DateMath> {
        match parse_datemath(v.unwrap_or(default)) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(key, e.to_string());
                None
            }
        }
    }

    fn kql(&mut self, key: &str, text: &str) -> Option<crate::kql::Ast> {
        match crate::kql::parse(text) {
            Ok(a) => Some(a),
            Err(e) => {
                self.problems.push(Problem {
                    level: Level::Error,
                    file: self.path.to_path_buf(),
                    rule: Some(self.rule.clone()),
                    key: Some(key.to_string()),
                    query_offset: Some(e.offset),
                    line: None,
                    message: format!("invalid KQL: {}", e.message),
                });
                None
            }
        }
    }
}

fn json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn threat(list: &[file::Threat], c: &mut Checker<'_>) -> Vec<Threat> {
    let r = |t: &file::ThreatRef| ThreatRef {
        id: t.id.clone(),
        name: t.name.clone(),
        reference: t.reference.clone(),
    };
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let p = format!("rule.threat[{i}]");
        c.unknown(&p, &t.extra);
        c.unknown(&format!("{p}.tactic"), &t.tactic.extra);
        let mut techniques = Vec::new();
        for (j, tech) in t.technique.iter().flatten().enumerate() {
            let tp = format!("{p}.technique[{j}]");
            c.unknown(&tp, &tech.extra);
            for (k, s) in tech.subtechnique.iter().flatten().enumerate() {
                c.unknown(&format!("{tp}.subtechnique[{k}]"), &s.extra);
            }
            techniques.push(Technique {
                id: tech.id.clone(),
                name: tech.name.clone(),
                reference: tech.reference.clone(),
                subtechnique: tech.subtechnique.iter().flatten().map(r).collect(),
            });
        }
        out.push(Threat {
            framework: t.framework.clone(),
            tactic: r(&t.tactic),
            technique: techniques,
        });
    }
    out
}

fn non_negative(c: &mut Checker<'_>, key: &str, v: i64) -> u64 {
    u64::try_from(v).unwrap_or_else(|_| {
        c.error(key, format!("must not be negative (got {v})"));
        0
    })
}

fn build(f: RuleFile, path: &Path) -> Result<Loaded, LoadError> {
    let r = f.rule;
    let mut c = Checker {
        path,
        rule: r.name.clone(),
        problems: Vec::new(),
    };
    c.unknown("", &f.extra);
    let metadata = f.metadata.unwrap_or_default();
    c.unknown("metadata", &metadata.extra);
    c.unknown("rule", &r.extra);

    let severity = Severity::parse(&r.severity).unwrap_or_else(|| {
        c.error(
            "rule.severity",
            format!("`{}` is not one of low, medium, high, critical", r.severity),
        );
        Severity::Low
    });
    let risk_score = match u8::try_from(r.risk_score) {
        Ok(s) if s <= 100 => s,
        _ => {
            c.error(
                "rule.risk_score",
                format!("must be between 0 and 100 (got {})", r.risk_score),
            );
            0
        }
    };
    let version = match r.version {
        None => 1,
        Some(v) => u32::try_from(v).ok().filter(|v| *v > 0).unwrap_or_else(|| {
            c.error(
                "rule.version",
                format!("must be a positive integer (got {v})"),
            );
            1
        }),
    };
    let max_signals = match r.max_signals {
        None => 100,
        Some(v) => u32::try_from(v).ok().filter(|v| *v > 0).unwrap_or_else(|| {
            c.error(
                "rule.max_signals",
                format!("must be greater than 0 (got {v})"),
            );
            100
        }),
    };
    let interval = c.interval("rule.interval", r.interval.as_deref(), "5m");
    let from = c.datemath("rule.from", r.from.as_deref(), "now-6m");
    let to = c.datemath("rule.to", r.to.as_deref(), "now");
    if let (Some(f), Some(t)) = (&from, &to) {
        let now = super::model::reference_now();
        if f.resolve(now) >= t.resolve(now) {
            c.error(
                "rule.from",
                format!("`{}` must be earlier than to `{}`", f.source, t.source),
            );
        }
    }
    let threat = threat(r.threat.as_deref().unwrap_or_default(), &mut c);
    if let Some(i) = &r.investigation_fields {
        c.unknown("rule.investigation_fields", &i.extra);
    }
    let alert_suppression = r.alert_suppression.as_ref().map(|a| {
        c.unknown("rule.alert_suppression", &a.extra);
        if let Some(d) = &a.duration {
            c.unknown("rule.alert_suppression.duration", &d.extra);
            if !matches!(d.unit.as_str(), "s" | "m" | "h") || d.value <= 0 {
                c.error(
                    "rule.alert_suppression.duration",
                    format!("invalid duration {}{}", d.value, d.unit),
                );
            }
        }
        let mut m = serde_json::Map::new();
        m.insert("group_by".into(), serde_json::json!(a.group_by));
        if let Some(d) = &a.duration {
            m.insert(
                "duration".into(),
                serde_json::json!({"value": d.value, "unit": d.unit}),
            );
        }
        if let Some(s) = &a.missing_fields_strategy {
            m.insert("missing_fields_strategy".into(), serde_json::json!(s));
        }
        serde_json::Value::Object(m)
    });

    let language = r.language.as_deref();
    let query_text = r.query.clone();
    let mut needs_index = true;
    let kind: Option<RuleKind> = match r.rule_type.as_str() {
        "query" | "new_terms" | "threshold" => match (language.unwrap_or("kuery"), &query_text) {
            (_, None) => {
                c.error("rule.query", "missing key `query`".to_string());
                None
            }
            ("lucene", Some(q)) => Some(RuleKind::Lucene {
                rule_type: r.rule_type.clone(),
                query: q.clone(),
            }),
            ("kuery", Some(q)) => {
                let ast = c.kql("rule.query", q);
                match r.rule_type.as_str() {
                    "query" => ast.map(|query| RuleKind::Query {
                        query,
                        text: q.clone(),
                    }),
                    "new_terms" => new_terms(&r, from.as_ref(), &mut c).and_then(|(fields, h)| {
                        ast.map(|query| RuleKind::NewTerms {
                            query,
                            text: q.clone(),
                            fields,
                            history_window_start: h,
                        })
                    }),
                    _ => threshold(&r, &mut c).and_then(|(fields, value, card)| {
                        ast.map(|query| RuleKind::Threshold {
                            query,
                            text: q.clone(),
                            fields,
                            value,
                            cardinality: card,
                        })
                    }),
                }
            }
            (other, Some(_)) => {
                c.error(
                    "rule.language",
                    format!(
                        "`{other}` is not a language for {} rules (kuery or lucene)",
                        r.rule_type
                    ),
                );
                None
            }
        },
        "eql" => query_text
            .map(|query| RuleKind::Eql {
                query,
                event_category_override: r.event_category_override.clone(),
                timestamp_field: r.timestamp_field.clone(),
                tiebreaker_field: r.tiebreaker_field.clone(),
            })
            .or_else(|| {
                c.error("rule.query", "missing key `query`".to_string());
                None
            }),
        "esql" => {
            needs_index = false;
            query_text
                .map(|query| RuleKind::Esql { query })
                .or_else(|| {
                    c.error("rule.query", "missing key `query`".to_string());
                    None
                })
        }
        "machine_learning" => {
            needs_index = false;
            let job_ids = r
                .machine_learning_job_id
                .as_ref()
                .map(|j| j.to_vec())
                .unwrap_or_default();
            if job_ids.is_empty() {
                c.error(
                    "rule.machine_learning_job_id",
                    "missing key `machine_learning_job_id`".to_string(),
                );
            }
            let anomaly_threshold = match r.anomaly_threshold {
                None => {
                    c.error(
                        "rule.anomaly_threshold",
                        "missing key `anomaly_threshold`".to_string(),
                    );
                    0
                }
                Some(v) => u32::try_from(v)
                    .ok()
                    .filter(|v| *v <= 100)
                    .unwrap_or_else(|| {
                        c.error(
                            "rule.anomaly_threshold",
                            format!("must be between 0 and 100 (got {v})"),
                        );
                        0
                    }),
            };
            Some(RuleKind::MachineLearning {
                job_ids,
                anomaly_threshold,
            })
        }
        other => {
            c.error(
                "rule.type",
                format!(
                    "unknown rule type `{other}` (query, new_terms, threshold, eql, esql, machine_learning)"
                ),
            );
            None
        }
    };
    let index = r.index.clone().unwrap_or_default();
    if needs_index && index.is_empty() && r.data_view_id.is_none() {
        c.error(
            "rule.index",
            "missing key `index` (index patterns to search)".to_string(),
        );
    }

    let has_error = c.problems.iter().any(|p| p.level == Level::Error);
    match (kind, from, to) {
        (Some(kind), Some(from), Some(to)) if !has_error => Ok(Loaded {
            rule: Rule {
                rule_id: r.rule_id,
                name: r.name,
                description: r.description,
                severity,
                risk_score,
                version,
                author: r.author.unwrap_or_default(),
                license: r.license,
                tags: r.tags.unwrap_or_default(),
                references: r.references.unwrap_or_default(),
                false_positives: r.false_positives.unwrap_or_default(),
                threat,
                index,
                interval,
                cron: None,
                enabled: r.enabled.unwrap_or(true),
                from,
                to,
                max_signals,
                timestamp_override: r.timestamp_override,
                timestamp_override_fallback_disabled: r
                    .timestamp_override_fallback_disabled
                    .unwrap_or(false),
                filters: r.filters.iter().flatten().map(json).collect(),
                exceptions: r.exceptions_list.iter().flatten().map(json).collect(),
                building_block_type: r.building_block_type,
                note: r.note,
                setup: r.setup,
                maturity: metadata.maturity,
                min_stack_version: metadata.min_stack_version,
                investigation_fields: r
                    .investigation_fields
                    .map(|i| i.field_names)
                    .unwrap_or_default(),
                alert_suppression,
                risk_score_mapping: r.risk_score_mapping.iter().flatten().map(json).collect(),
                severity_mapping: r.severity_mapping.iter().flatten().map(json).collect(),
                rule_name_override: r.rule_name_override,
                source: path.to_path_buf(),
                kind,
            },
            warnings: c.problems,
        }),
        _ => Err(LoadError::Invalid {
            path: path.to_path_buf(),
            rule: c.rule,
            errors: c.problems,
        }),
    }
}

fn new_terms(
    r: &file::RuleSection,
    from: Option<&DateMath>,
    c: &mut Checker<'_>,
) -> Option<(Vec<String>, DateMath)> {
    let Some(nt) = &r.new_terms else {
        c.error(
            "rule.new_terms",
            "missing table `[rule.new_terms]`".to_string(),
        );
        return None;
    };
    c.unknown("rule.new_terms", &nt.extra);
    let mut ok = true;
    if nt.field != "new_terms_fields" {
        c.error(
            "rule.new_terms.field",
            format!("expected \"new_terms_fields\", found \"{}\"", nt.field),
        );
        ok = false;
    }
    if nt.value.is_empty() || nt.value.len() > 3 {
        c.error(
            "rule.new_terms.value",
            format!(
                "new_terms_fields needs 1 to 3 fields (got {})",
                nt.value.len()
            ),
        );
        ok = false;
    }
    let mut history = None;
    for (i, fv) in nt.history_window_start.iter().enumerate() {
        let key = format!("rule.new_terms.history_window_start[{i}]");
        c.unknown(&key, &fv.extra);
        if fv.field != "history_window_start" {
            c.error(
                &format!("{key}.field"),
                format!("expected \"history_window_start\", found \"{}\"", fv.field),
            );
            ok = false;
            continue;
        }
        history = c.datemath("rule.new_terms.history_window_start", Some(&fv.value), "");
        if history.is_none() {
            ok = false;
        }
    }
    if nt.history_window_start.is_empty() {
        c.error(
            "rule.new_terms.history_window_start",
            "missing key `history_window_start`".to_string(),
        );
        ok = false;
    }
    if let (Some(h), Some(f)) = (&history, from) {
        if let Err(m) = check_history_window(h, f) {
            c.error("rule.new_terms.history_window_start", m);
            ok = false;
        }
    }
    match history {
        Some(h) if ok => Some((nt.value.clone(), h)),
        _ => None,
    }
}

type ThresholdParams = (Vec<String>, u64, Vec<(String, u64)>);

fn threshold(r: &file::RuleSection, c: &mut Checker<'_>) -> Option<ThresholdParams> {
    let Some(t) = &r.threshold else {
        c.error(
            "rule.threshold",
            "missing table `[rule.threshold]`".to_string(),
        );
        return None;
    };
    c.unknown("rule.threshold", &t.extra);
    let value = non_negative(c, "rule.threshold.value", t.value);
    let mut card = Vec::new();
    for (i, cd) in t.cardinality.iter().flatten().enumerate() {
        let key = format!("rule.threshold.cardinality[{i}]");
        c.unknown(&key, &cd.extra);
        let v = non_negative(c, &format!("{key}.value"), cd.value);
        card.push((cd.field.clone(), v));
    }
    Some((t.field.clone(), value, card))
}

//! `detectd validate`: load rule files, print one line per problem, then a summary (text or
//! JSON). Exit code 0 when no error was found, 1 otherwise.

use std::collections::BTreeMap;

use serde::Serialize;

use super::load::{LoadReport, Problem};
use super::model::{Rule, RuleKind, Support};
use crate::ecs::geoip::GeoIpKind;

/// Totals of a validation run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub files: usize,
    pub loaded: usize,
    pub by_type: BTreeMap<String, usize>,
    /// Rules that run on both backends (query, new_terms, threshold).
    pub runnable: usize,
    /// Rules that run only on the Elasticsearch backend, any version detectd supports (eql:
    /// the embedded backend does not evaluate EQL).
    pub elasticsearch_only: usize,
    /// Rules that run only on Elasticsearch 8.11 or newer (esql), not on OpenSearch.
    pub elasticsearch_8_11_only: usize,
    /// Rules that cannot run, by reason.
    pub unsupported: BTreeMap<String, usize>,
    pub warnings: usize,
    pub errors: usize,
    /// Rules whose query needs `source.geo.*` / `source.as.*` (GeoIP): they cannot fire on the
    /// embedded backend without the databases in `embedded.geoip_databases`.
    pub needs_geoip: Vec<String>,
    /// With `--cluster`: rules the configured cluster cannot run (`min_stack_version` newer
    /// than it, ES|QL on OpenSearch or before 8.11), with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_runnable_on_cluster: Vec<String>,
}

/// The whole output of `detectd validate`.
#[derive(Debug, Clone, Serialize)]
pub struct ValidateOutput {
    pub problems: Vec<Problem>,
    pub summary: Summary,
}

/// True when the rule's query or term fields use GeoIP/ASN enrichment fields.
pub fn needs_geoip(rule: &Rule) -> bool {
    !geoip_kinds_needed(rule).is_empty()
}

/// The kinds of GeoIP database the rule's query or term fields need (`source.geo.*`: City or
/// Country; `source.as.*`: ASN).
pub fn geoip_kinds_needed(rule: &Rule) -> Vec<GeoIpKind> {
    let fields = match &rule.kind {
        RuleKind::NewTerms { fields, .. } | RuleKind::Threshold { fields, .. } => fields.clone(),
        _ => Vec::new(),
    };
    let uses = |prefix: &str| {
        rule.kind.query_text().is_some_and(|q| q.contains(prefix))
            || fields.iter().any(|f| f.contains(prefix))
    };
    let mut kinds = Vec::new();
    if uses("source.geo.") {
        kinds.push(GeoIpKind::Geo);
    }
    if uses("source.as.") {
        kinds.push(GeoIpKind::Asn);
    }
    kinds
}

/// Summarises a load report.
pub fn summarize(report: &LoadReport) -> Summary {
    let mut s = Summary {
        files: report.files,
        loaded: report.rules.len(),
        warnings: report.warnings(),
        errors: report.errors(),
        ..Summary::default()
    };
    for r in &report.rules {
        *s.by_type.entry(r.rule_type().to_string()).or_default() += 1;
        match r.support() {
            Support::Anywhere => s.runnable += 1,
            Support::ElasticsearchOnly(_) if matches!(r.kind, RuleKind::Esql { .. }) => {
                s.elasticsearch_8_11_only += 1
            }
            Support::ElasticsearchOnly(_) => s.elasticsearch_only += 1,
            Support::Unsupported(reason) => {
                *s.unsupported.entry(reason.to_string()).or_default() += 1
            }
        }
        if needs_geoip(r) {
            s.needs_geoip
                .push(format!("{} ({})", r.name, r.source.display()));
        }
    }
    s
}

/// The text summary.
pub fn render_summary(s: &Summary) -> String {
    let mut out = String::new();
    let types: Vec<String> = s.by_type.iter().map(|(k, v)| format!("{k} {v}")).collect();
    out.push_str(&format!(
        "{} files, {} rules loaded ({})\n",
        s.files,
        s.loaded,
        types.join(", ")
    ));
    out.push_str(&format!(
        "runnable on both backends (query, new_terms, threshold): {}, on the Elasticsearch backend only (eql; the embedded backend does not evaluate EQL): {}, on Elasticsearch 8.11 or newer only (esql): {}\n",
        s.runnable, s.elasticsearch_only, s.elasticsearch_8_11_only
    ));
    out.push_str(&format!(
        "runnable in all: embedded {}, Elasticsearch {} ({} on 8.11 or newer), OpenSearch {}\n",
        s.runnable,
        s.runnable + s.elasticsearch_only,
        s.runnable + s.elasticsearch_only + s.elasticsearch_8_11_only,
        s.runnable,
    ));
    for (reason, n) in &s.unsupported {
        out.push_str(&format!("unsupported: {n} ({reason})\n"));
    }
    if !s.not_runnable_on_cluster.is_empty() {
        out.push_str(&format!(
            "not runnable on this cluster: {} rules\n",
            s.not_runnable_on_cluster.len()
        ));
        for r in &s.not_runnable_on_cluster {
            out.push_str(&format!("  {r}\n"));
        }
    }
    if !s.needs_geoip.is_empty() {
        out.push_str(&format!(
            "note: {} rules use source.geo.* / source.as.* and cannot fire on the embedded backend without a City/Country or ASN database in embedded.geoip_databases:\n",
            s.needs_geoip.len()
        ));
        for r in &s.needs_geoip {
            out.push_str(&format!("  {r}\n"));
        }
    }
    out.push_str(&format!("{} warnings, {} errors\n", s.warnings, s.errors));
    out
}

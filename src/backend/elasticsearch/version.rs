//! What the cluster is: Elasticsearch or OpenSearch, and which version (`GET /`, read once).
//! Rules carry `min_stack_version`; a rule written for a newer stack than the cluster's is not
//! runnable there, and is reported once instead of failing at every interval.

use elasticsearch::http::Method;
use serde_json::Value;

use super::transport::ok_or_error;
use super::ElasticsearchBackend;
use crate::backend::Error;

/// The search engine behind the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Elasticsearch,
    OpenSearch,
}

/// The cluster's engine and version, from `GET /`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    pub engine: Engine,
    /// `version.number` as the cluster reports it (e.g. `7.10.0`, `2.19.3`).
    pub number: String,
    /// `major.minor.patch` of `number`.
    pub version: (u32, u32, u32),
}

impl ClusterInfo {
    /// From a `GET /` body.
    pub fn from_root(body: &Value) -> Option<ClusterInfo> {
        let v = body.get("version")?;
        let number = v.get("number")?.as_str()?.to_string();
        let engine = match v.get("distribution").and_then(Value::as_str) {
            Some("opensearch") => Engine::OpenSearch,
            _ => Engine::Elasticsearch,
        };
        Some(ClusterInfo {
            engine,
            version: parse_version(&number)?,
            number,
        })
    }

    /// The Elastic stack version the cluster answers as, for `min_stack_version`: its own for
    /// Elasticsearch; OpenSearch forked from 7.10.2 and keeps that API.
    pub fn stack_version(&self) -> (u32, u32, u32) {
        match self.engine {
            Engine::Elasticsearch => self.version,
            Engine::OpenSearch => (7, 10, 2),
        }
    }

    /// Why a rule with this `min_stack_version` cannot run here (`None`: it can).
    pub fn refuses(&self, min_stack_version: Option<&str>) -> Option<String> {
        let min = min_stack_version?;
        let Some(wanted) = parse_version(min) else {
            return Some(format!("min_stack_version `{min}` is not a version"));
        };
        (wanted > self.stack_version()).then(|| {
            format!(
                "needs Elastic stack {min} (min_stack_version); this cluster is {} {}",
                self.name(),
                self.number
            )
        })
    }

    /// Why `rule` cannot run here (`None`: it can): an ES|QL rule on OpenSearch or before
    /// Elasticsearch 8.11, or a `min_stack_version` newer than the cluster.
    pub fn refuses_rule(&self, rule: &crate::rules::Rule) -> Option<String> {
        if matches!(rule.kind, crate::rules::RuleKind::Esql { .. }) {
            if let Some(why) = super::esql::refusal(self) {
                return Some(why);
            }
        }
        self.refuses(rule.min_stack_version.as_deref())
    }

    /// `Elasticsearch` or `OpenSearch`.
    pub fn name(&self) -> &'static str {
        match self.engine {
            Engine::Elasticsearch => "Elasticsearch",
            Engine::OpenSearch => "OpenSearch",
        }
    }
}

/// `8.11.0`, `7.10`, `2.19.3-SNAPSHOT` → (major, minor, patch).
pub fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let core = s.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.trim().parse::<u32>());
    let major = parts.next()?.ok()?;
    let minor = parts.next().unwrap_or(Ok(0)).ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    Some((major, minor, patch))
}

impl ElasticsearchBackend {
    /// True when the cluster is OpenSearch (its point-in-time API and field types differ),
    /// asking `GET /` the first time; a cluster that does not answer it counts as
    /// Elasticsearch.
    pub async fn is_opensearch(&self) -> bool {
        match self.cluster_info().await {
            Ok(c) => c.engine == Engine::OpenSearch,
            Err(e) => {
                tracing::debug!(error = %e, "cluster version unknown, assuming Elasticsearch");
                false
            }
        }
    }

    /// The cluster's engine and version (asked once, then remembered).
    pub async fn cluster_info(&self) -> Result<ClusterInfo, Error> {
        if let Some(i) = self.cluster.get() {
            return Ok(i.clone());
        }
        let op = "read the cluster version";
        let r = self.call(op, Method::Get, "/", None, None).await?;
        let body = ok_or_error(op, r)?;
        let info = ClusterInfo::from_root(&body).ok_or_else(|| Error::Request {
            operation: op.into(),
            reason: format!(
                "no version.number in the answer: {}",
                body.to_string().chars().take(300).collect::<String>()
            ),
        })?;
        let _ = self.cluster.set(info.clone());
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_compare_numerically_and_opensearch_answers_as_7_10() {
        assert_eq!(parse_version("8.11.0"), Some((8, 11, 0)));
        assert_eq!(parse_version("7.10"), Some((7, 10, 0)));
        assert_eq!(parse_version("2.19.3-SNAPSHOT"), Some((2, 19, 3)));
        assert_eq!(parse_version("x"), None);
        let es = ClusterInfo::from_root(&json!({"version": {"number": "7.10.0"}})).unwrap();
        assert_eq!(es.engine, Engine::Elasticsearch);
        assert_eq!(es.refuses(None), None);
        assert_eq!(es.refuses(Some("7.9.0")), None);
        assert_eq!(es.refuses(Some("7.10.0")), None);
        let r = es.refuses(Some("8.11.0")).unwrap();
        assert!(
            r.contains("8.11.0") && r.contains("Elasticsearch 7.10.0"),
            "{r}"
        );
        let os = ClusterInfo::from_root(
            &json!({"version": {"distribution": "opensearch", "number": "2.19.3"}}),
        )
        .unwrap();
        assert_eq!(os.engine, Engine::OpenSearch);
        assert_eq!(os.refuses(Some("7.10.0")), None);
        assert!(os
            .refuses(Some("8.0.0"))
            .unwrap()
            .contains("OpenSearch 2.19.3"));
    }
}

//! Start-up: the alerts index template and write alias, the state and executions indices, and
//! the health check of every rule's sources.

use elasticsearch::http::Method;
use serde_json::Value;

use super::responses::error_types;
use super::transport::{error_reason, ok_or_error, ReqBody};
use super::{requests, ElasticsearchBackend, HealthProblem, RuleTarget};
use crate::backend::Error;

impl ElasticsearchBackend {
    /// Idempotent start-up setup: the alerts index template, the first alerts index with the
    /// write alias, the state and executions indices.
    pub async fn setup(&self) -> Result<(), Error> {
        let alias = self.alerts_alias.clone();
        let tpl_path = requests::alerts_template_path(&alias);
        let r = self
            .call(
                "install alerts template",
                Method::Put,
                &tpl_path,
                Some(ReqBody::Json(requests::alerts_template_body(&alias))),
                None,
            )
            .await?;
        ok_or_error("install alerts template", r)?;

        let alias_path = format!("/_alias/{}", requests::encode_path_segment(&alias));
        let r = self
            .call("get alerts alias", Method::Get, &alias_path, None, None)
            .await?;
        match r.status {
            200 => {
                let has_writer = r.body.as_object().is_some_and(|m| {
                    m.len() == 1
                        || m.values().any(|ix| {
                            ix.pointer(&format!(
                                "/aliases/{}/is_write_index",
                                alias.replace('~', "~0").replace('/', "~1")
                            ))
                            .and_then(Value::as_bool)
                                == Some(true)
                        })
                });
                if !has_writer {
                    return Err(Error::Request {
                        operation: format!("alerts alias {alias}"),
                        reason: "the alias points to several indices and none is the write index"
                            .into(),
                    });
                }
            }
            404 => {
                let idx_path = format!("/{}", requests::encode_path_segment(&alias));
                let r = self
                    .call("get alerts index", Method::Get, &idx_path, None, None)
                    .await?;
                if r.status == 200 {
                    return Err(Error::Request {
                        operation: format!("alerts alias {alias}"),
                        reason: format!("a concrete index named {alias} exists (auto-created by an earlier write?); delete or reindex it so detectd can create the write alias"),
                    });
                }
                let first = format!(
                    "/{}",
                    requests::encode_path_segment(&requests::alerts_first_index(&alias))
                );
                let r = self
                    .call(
                        "create alerts index",
                        Method::Put,
                        &first,
                        Some(ReqBody::Json(requests::alerts_bootstrap_body(&alias))),
                        None,
                    )
                    .await?;
                if r.status >= 300
                    && !error_types(&r.body)
                        .iter()
                        .any(|t| t == "resource_already_exists_exception")
                {
                    ok_or_error("create alerts index", r)?;
                }
            }
            _ => {
                ok_or_error("get alerts alias", r)?;
            }
        }
        for (index, body) in [
            (self.state_index.as_str(), requests::state_index_body()),
            (
                self.executions_index.as_str(),
                requests::executions_index_body(),
            ),
        ] {
            let path = format!("/{index}");
            let r = self
                .call("get index", Method::Head, &path, None, None)
                .await?;
            if r.status == 404 {
                let op = format!("create index {index}");
                let r = self
                    .call(&op, Method::Put, &path, Some(ReqBody::Json(body)), None)
                    .await?;
                if r.status >= 300
                    && !error_types(&r.body)
                        .iter()
                        .any(|t| t == "resource_already_exists_exception")
                {
                    ok_or_error(&op, r)?;
                }
            }
        }
        Ok(())
    }

    /// Start-up health check: for every rule, do its patterns match an index, is its time
    /// field mapped, may we read it; and can we reach the alerts alias. Never fails; every
    /// problem is one entry.
    pub async fn health_check(&self, rules: &[RuleTarget]) -> Vec<HealthProblem> {
        let mut problems = Vec::new();
        // Rules usually share their patterns: each (patterns, time field) is checked once.
        let mut checked: std::collections::HashMap<(&[String], &str), Vec<String>> =
            std::collections::HashMap::new();
        for (id, name, indices, time_field) in rules {
            let key = (indices.as_slice(), time_field.as_str());
            let found = match checked.get(&key) {
                Some(found) => found.clone(),
                None => {
                    let found = self.check_sources(indices, time_field).await;
                    checked.insert(key, found.clone());
                    found
                }
            };
            problems.extend(found.into_iter().map(|p| HealthProblem {
                rule_id: id.clone(),
                rule_name: name.clone(),
                problem: p,
            }));
        }
        problems.extend(self.check_alerts_alias().await.map(|p| HealthProblem {
            rule_id: String::new(),
            rule_name: String::new(),
            problem: p,
        }));
        problems
    }

    /// What is wrong with one set of index patterns and its time field (nothing: empty).
    async fn check_sources(&self, indices: &[String], time_field: &str) -> Vec<String> {
        let path = format!(
            "/{}/_search?allow_no_indices=false&ignore_unavailable=true",
            requests::index_path(indices)
        );
        let op = format!("search {}", indices.join(","));
        let probe = self
            .call(
                &op,
                Method::Post,
                &path,
                Some(ReqBody::Json(requests::probe_body())),
                None,
            )
            .await;
        match probe {
            Err(e) => return vec![e.to_string()],
            // allow_no_indices=false fails when any one pattern matches nothing; as Kibana,
            // only patterns none of which match are a problem
            Ok(r) if r.status == 404 => {
                if !self.any_pattern_matches(indices).await {
                    return vec![format!("no index matches {}", indices.join(","))];
                }
            }
            Ok(r) if r.status == 401 || r.status == 403 => {
                return vec![format!(
                    "no read privilege on {}: {}",
                    indices.join(","),
                    error_reason(&r.body)
                )];
            }
            Ok(r) if r.status >= 300 => {
                return vec![format!(
                    "{op} failed: HTTP {}: {}",
                    r.status,
                    error_reason(&r.body)
                )];
            }
            Ok(_) => {}
        }
        match self.catalog(indices, None).await {
            Ok(cat) => {
                let mapped = cat
                    .get(time_field)
                    .is_some_and(|s| s.es_types.iter().any(|t| t == "date" || t == "date_nanos"));
                if mapped {
                    Vec::new()
                } else {
                    vec![format!(
                        "time field {time_field} is not mapped as a date in {}",
                        indices.join(",")
                    )]
                }
            }
            Err(e) => vec![e.to_string()],
        }
    }

    /// What is wrong with the alerts alias (nothing: `None`).
    async fn check_alerts_alias(&self) -> Option<String> {
        let path = format!(
            "/{}/_search",
            requests::encode_path_segment(&self.alerts_alias)
        );
        match self
            .call(
                "search alerts alias",
                Method::Post,
                &path,
                Some(ReqBody::Json(requests::probe_body())),
                None,
            )
            .await
        {
            Err(e) => Some(e.to_string()),
            Ok(r) if r.status >= 300 => Some(format!(
                "alerts alias {}: HTTP {}: {}",
                self.alerts_alias,
                r.status,
                error_reason(&r.body)
            )),
            Ok(_) => None,
        }
    }

    pub(super) async fn any_pattern_matches(&self, indices: &[String]) -> bool {
        for pattern in indices {
            let path = format!(
                "/{}/_search?allow_no_indices=false&ignore_unavailable=true",
                requests::index_path(std::slice::from_ref(pattern))
            );
            let body = Some(ReqBody::Json(requests::probe_body()));
            if let Ok(r) = self
                .call("probe index pattern", Method::Post, &path, body, None)
                .await
            {
                if r.status != 404 {
                    return true;
                }
            }
        }
        false
    }
}

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
        let problem = |id: &str, name: &str, p: String| HealthProblem {
            rule_id: id.to_string(),
            rule_name: name.to_string(),
            problem: p,
        };
        for (id, name, indices, time_field) in rules {
            let path = format!(
                "/{}/_search?allow_no_indices=false&ignore_unavailable=true",
                requests::index_path(indices)
            );
            let op = format!("search {}", indices.join(","));
            match self
                .call(
                    &op,
                    Method::Post,
                    &path,
                    Some(ReqBody::Json(requests::probe_body())),
                    None,
                )
                .await
            {
                Err(e) => {
                    problems.push(problem(id, name, e.to_string()));
                    continue;
                }
                Ok(r) if r.status == 404 => {
                    // allow_no_indices=false fails when any one pattern matches nothing; as
                    // Kibana, only a rule none of whose patterns match is a problem
                    if !self.any_pattern_matches(indices).await {
                        problems.push(problem(
                            id,
                            name,
                            format!("no index matches {}", indices.join(",")),
                        ));
                        continue;
                    }
                }
                Ok(r) if r.status == 401 || r.status == 403 => {
                    problems.push(problem(
                        id,
                        name,
                        format!(
                            "no read privilege on {}: {}",
                            indices.join(","),
                            error_reason(&r.body)
                        ),
                    ));
                    continue;
                }
                Ok(r) if r.status >= 300 => {
                    problems.push(problem(
                        id,
                        name,
                        format!("{op} failed: HTTP {}: {}", r.status, error_reason(&r.body)),
                    ));
                    continue;
                }
                Ok(_) => {}
            }
            match self.catalog(indices, None).await {
                Ok(cat) => {
                    let mapped = cat.get(time_field).is_some_and(|s| {
                        s.es_types.iter().any(|t| t == "date" || t == "date_nanos")
                    });
                    if !mapped {
                        problems.push(problem(
                            id,
                            name,
                            format!(
                                "time field {time_field} is not mapped as a date in {}",
                                indices.join(",")
                            ),
                        ));
                    }
                }
                Err(e) => problems.push(problem(id, name, e.to_string())),
            }
        }
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
            Err(e) => problems.push(problem("", "", e.to_string())),
            Ok(r) if r.status >= 300 => problems.push(problem(
                "",
                "",
                format!(
                    "alerts alias {}: HTTP {}: {}",
                    self.alerts_alias,
                    r.status,
                    error_reason(&r.body)
                ),
            )),
            Ok(_) => {}
        }
        problems
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

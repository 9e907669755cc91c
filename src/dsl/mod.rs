//! KQL AST + field types to Elasticsearch query DSL, as Kibana's `toElasticsearchQuery` builds it.

use std::process::ExitCode;

use crate::cli::{Cli, ExplainArgs};

/// `detectd explain`.
pub fn explain_command(_cli: &Cli, _args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`detectd explain` is not implemented yet")
}

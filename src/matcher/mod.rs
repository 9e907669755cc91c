//! The embedded evaluator: KQL compiled into a matcher over ECS JSON documents that agrees with Elasticsearch.

use std::process::ExitCode;

use crate::cli::{Cli, MatchArgs};

/// `detectd match`.
pub fn match_command(_cli: &Cli, _args: &MatchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`detectd match` is not implemented yet")
}

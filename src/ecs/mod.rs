//! CloudTrail to ECS: reading raw CloudTrail files and normalising records as Elastic's aws integration does.

use std::process::ExitCode;

use crate::cli::{Cli, EcsArgs};

/// `detectd ecs`.
pub fn ecs_command(_cli: &Cli, _args: &EcsArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`detectd ecs` is not implemented yet")
}

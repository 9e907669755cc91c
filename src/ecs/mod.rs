//! CloudTrail to ECS: reading raw CloudTrail files and normalising records as Elastic's aws integration does.

pub mod categories;
pub mod entity;
pub mod javamap;
pub mod normalize;

use std::process::ExitCode;

use crate::cli::{Cli, EcsArgs};

pub use normalize::{normalize, normalize_owned, normalize_str, NormalizeError, NormalizeOptions};

/// `detectd ecs`.
pub fn ecs_command(_cli: &Cli, _args: &EcsArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`detectd ecs` is not implemented yet")
}

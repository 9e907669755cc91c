//! Rules: the detection-rules TOML format (`RuleFile`, a serde mirror) and validated `Rule`s.

use std::process::ExitCode;

use crate::cli::{Cli, ValidateArgs};

/// `detectd validate`.
pub fn validate_command(_cli: &Cli, _args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`detectd validate` is not implemented yet")
}

//! Command handlers, one file per subcommand: the only layer that knows clap's argument structs
//! (`crate::cli`), loads the configuration and prints. Domain modules below expose plain
//! functions and types. Handlers return the process exit code; `main` maps errors to exit
//! code 2.

pub mod ecs;
pub mod explain;
pub mod generate;
pub mod hunt;
pub mod ingest;
pub mod matches;
pub mod run;
pub mod status;
pub mod validate;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::config::{Config, ConfigError};

/// Runs the parsed command.
pub fn dispatch(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Validate(a) => validate::run(cli, a),
        Command::Explain(a) => explain::run(cli, a),
        Command::Match(a) => matches::run(cli, a),
        Command::Ecs(a) => ecs::run(cli, a),
        Command::Generate(a) => generate::run(cli, a),
        Command::Run(a) => run::run(cli, a),
        Command::Status(a) => status::run(cli, a),
        Command::Ingest(a) => ingest::run(cli, a),
        Command::Hunt(a) => hunt::run(cli, a),
    }
}

/// The configuration: the `--config` file (which must exist), else `config.toml` when
/// present, else the defaults; then `DETECTD__...` environment overrides.
pub fn load_config(cli: &Cli) -> Result<Config, ConfigError> {
    Config::load_from(cli.config.as_deref())
}

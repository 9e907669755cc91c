//! Command-line interface: the clap argument structs. `crate::commands` runs them; `main` maps
//! errors to exit code 2.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "detectd",
    version,
    about = "Elastic detection rules on a schedule, on Elasticsearch or local CloudTrail files"
)]
pub struct Cli {
    /// Configuration file (default: `config.toml` in the working directory, if present).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

pub use crate::logging::LogFormat;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load rules and report every problem (default: the configured rules dir).
    Validate(ValidateArgs),
    /// Print the Elasticsearch request(s) a rule or a KQL query would send.
    Explain(ExplainArgs),
    /// Filter ECS NDJSON documents through a KQL query (like grep).
    Match(MatchArgs),
    /// Print raw CloudTrail files as the ECS documents the rules see (NDJSON).
    Ecs(EcsArgs),
    /// Generate realistic raw CloudTrail with activity the seed rules must catch.
    Generate(GenerateArgs),
    /// Run every rule on its schedule (or replay a period with --start/--end).
    Run(RunArgs),
    /// Per-rule status: last run, next run, status, gaps.
    Status(StatusArgs),
    /// Bulk-load raw CloudTrail into Elasticsearch as ECS.
    Ingest(IngestArgs),
    /// Every rule over CloudTrail files in one pass: the alerts a replay of the period gives.
    Hunt(HuntArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Rule files or folders (default: `rules_dir` from the config).
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Also check the rules against the configured Elasticsearch/OpenSearch cluster: those whose
    /// `min_stack_version` is newer than it are listed as not runnable there.
    #[arg(long)]
    pub cluster: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A rule TOML file.
    pub rule: Option<PathBuf>,
    /// A KQL query instead of a rule.
    #[arg(long, conflicts_with = "rule")]
    pub kql: Option<String>,
    /// A saved `_field_caps` response to take field types from (default: built-in catalog).
    #[arg(long)]
    pub field_caps: Option<PathBuf>,
    /// Execution time the window is computed from (RFC 3339 or date math; default now).
    #[arg(long)]
    pub at: Option<String>,
}

#[derive(Debug, Args)]
pub struct MatchArgs {
    /// The KQL query.
    #[arg(long)]
    pub kql: String,
    /// ECS NDJSON files (default: standard input).
    pub files: Vec<PathBuf>,
    /// Print only the number of matching documents.
    #[arg(long)]
    pub count: bool,
    /// A saved `_field_caps` response to take field types from (default: built-in catalog).
    #[arg(long)]
    pub field_caps: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EcsArgs {
    /// Raw CloudTrail files or folders.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// MaxMind-format database (City/Country or ASN) for `source.geo.*` / `source.as.*`;
    /// repeatable. Default: `embedded.geoip_databases` from the config.
    #[arg(long = "geoip", value_name = "MMDB")]
    pub geoip: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output folder (created; holds AWSLogs/ and MANIFEST.json).
    #[arg(long, default_value = "sample")]
    pub out: PathBuf,
    /// Random seed: the same seed and options give byte-identical files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days of activity; the injected events are on the last day.
    #[arg(long, default_value_t = 3)]
    pub days: u32,
    /// First day (YYYY-MM-DD, UTC).
    #[arg(long, default_value = "2026-11-01")]
    pub start: String,
    /// Events on a working day (approximate; weekends are quieter).
    #[arg(long, default_value_t = 650)]
    pub events_per_day: u64,
    /// Number of AWS accounts.
    #[arg(long, default_value_t = 3)]
    pub accounts: u16,
    /// People (IAM users and SSO sessions) per account.
    #[arg(long, default_value_t = 60)]
    pub users_per_account: u16,
    /// gzip level (0-9).
    #[arg(long, default_value_t = 6)]
    pub compression: u32,
    /// Replace an existing <out>/AWSLogs.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Replay from this time (RFC 3339 or date math) at full speed.
    #[arg(long)]
    pub start: Option<String>,
    /// Stop the replay at this time (default: continue live).
    #[arg(long, requires = "start")]
    pub end: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Raw CloudTrail files or folders.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Target index or data stream.
    #[arg(long, default_value = "logs-aws.cloudtrail-default")]
    pub index: String,
    /// MaxMind-format database (City/Country or ASN) for `source.geo.*` / `source.as.*`;
    /// repeatable. Default: `embedded.geoip_databases` from the config.
    #[arg(long = "geoip", value_name = "MMDB")]
    pub geoip: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct HuntArgs {
    /// Raw CloudTrail files or folders.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Rules folder (default: `rules_dir` from the config).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Period start (RFC 3339 or date math); the rules run as a replay from here would run them.
    #[arg(long)]
    pub start: String,
    /// Period end (exclusive).
    #[arg(long)]
    pub end: String,
    /// Alerts file (NDJSON, replaced); default: standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How late a record may arrive in the next day's delivery files.
    #[arg(long, default_value = "1h")]
    pub lateness: String,
    /// Normalise every record, even those no rule can match.
    #[arg(long)]
    pub no_prefilter: bool,
    /// MaxMind-format database (City/Country or ASN); repeatable. Default:
    /// `embedded.geoip_databases` from the config.
    #[arg(long = "geoip", value_name = "MMDB")]
    pub geoip: Vec<PathBuf>,
}

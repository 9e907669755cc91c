//! `config.toml`: the operator's settings, read with the `config` crate (the file, then
//! `DETECTD__SECTION__KEY` environment overrides, e.g. `DETECTD__ELASTICSEARCH__URLS`).
//!
//! Every setting has a default, so an empty file is a valid configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A configuration that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: config::ConfigError,
    },
    #[error("invalid config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Folder (or file) of rule TOMLs.
    pub rules_dir: PathBuf,
    pub backend: BackendKind,
    pub embedded: EmbeddedConfig,
    pub elasticsearch: ElasticsearchConfig,
    pub alerts: AlertsConfig,
    pub scheduler: SchedulerConfig,
    pub http: HttpConfig,
    /// Per-rule overrides, by `rule_id`.
    pub rules: BTreeMap<String, RuleOverride>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Embedded,
    Elasticsearch,
}

/// The embedded backend: local CloudTrail/ECS files in, local files out.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Files or folders of raw CloudTrail (`.json`, `.json.gz`, NDJSON) or ECS NDJSON.
    pub data: Vec<PathBuf>,
    /// Where alerts are appended (NDJSON).
    pub alerts_file: PathBuf,
    /// Rule state (written atomically).
    pub state_file: PathBuf,
    /// Execution records (NDJSON).
    pub executions_file: PathBuf,
    /// MaxMind-format databases for `source.geo.*` (City or Country) and `source.as.*` (ASN),
    /// as Elasticsearch's GeoLite2 databases; none by default (the fields are then absent).
    pub geoip_databases: Vec<PathBuf>,
    /// How often a live `detectd run` looks for files added to (or grown in) `data`
    /// (`10s`, `1m`, ...; `off` never looks).
    pub watch_interval: String,
}

/// The Elasticsearch backend's connection.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticsearchConfig {
    pub urls: Vec<String>,
    /// Base64 `id:key` API key (preferred over basic auth).
    pub api_key: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM CA certificate; system roots when absent.
    pub ca_file: Option<PathBuf>,
    /// TLS certificate verification (on by default; turn off only for tests).
    pub verify_tls: bool,
    /// Request timeout in seconds.
    pub timeout_secs: u64,
    /// Index of the rules' state (one document per rule).
    pub state_index: String,
    /// Index of the execution records.
    pub executions_index: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Alerts index alias (Elasticsearch).
    pub index: String,
    /// Wait for a refresh after each alert write (`refresh=wait_for`), so alerts are
    /// searchable when the execution ends; off by default: it paces every execution by the
    /// index refresh interval (1 s), and Kibana shows alerts a second later either way.
    pub refresh: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Executions running at once.
    pub max_concurrent: usize,
    /// How far back a rule catches up after downtime (interval or date-math duration, e.g. `24h`).
    pub max_backfill: String,
    /// Per-execution timeout (e.g. `5m`).
    pub execution_timeout: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `host:port` for /healthz, /readyz, /metrics; empty disables it.
    pub listen: String,
}

/// Operator overrides for one rule.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleOverride {
    pub enabled: Option<bool>,
    pub interval: Option<String>,
    pub cron: Option<String>,
    pub from: Option<String>,
    pub max_signals: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rules_dir: PathBuf::from("rules"),
            backend: BackendKind::Embedded,
            embedded: EmbeddedConfig::default(),
            elasticsearch: ElasticsearchConfig::default(),
            alerts: AlertsConfig::default(),
            scheduler: SchedulerConfig::default(),
            http: HttpConfig::default(),
            rules: BTreeMap::new(),
        }
    }
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            data: vec![PathBuf::from("sample/AWSLogs")],
            alerts_file: PathBuf::from("alerts.ndjson"),
            state_file: PathBuf::from("state.json"),
            executions_file: PathBuf::from("executions.ndjson"),
            geoip_databases: Vec::new(),
            watch_interval: "10s".to_string(),
        }
    }
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        ElasticsearchConfig {
            urls: vec!["http://localhost:9200".to_string()],
            api_key: None,
            username: None,
            password: None,
            ca_file: None,
            verify_tls: true,
            timeout_secs: 30,
            state_index: "detectd-state".to_string(),
            executions_index: "detectd-executions".to_string(),
        }
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            index: "detectd-alerts-default".to_string(),
            refresh: false,
        }
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_concurrent: 8,
            max_backfill: "24h".to_string(),
            execution_timeout: "5m".to_string(),
        }
    }
}

impl Config {
    /// The configuration `--config` names (a file that must exist), else `config.toml` when
    /// present, else the defaults.
    pub fn load_from(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(p) => Config::load_required(p),
            None => Config::load(Path::new("config.toml")),
        }
    }

    /// Like [`Config::load`], but a missing file is an error (a path the operator named).
    pub fn load_required(path: &Path) -> Result<Config, ConfigError> {
        if !path.is_file() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: "no such file".to_string(),
            });
        }
        Config::load(path)
    }

    /// Reads `path` (missing file = defaults) and applies `DETECTD__...` environment overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let built = config::Config::builder()
            .add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(false),
            )
            .add_source(
                config::Environment::with_prefix("DETECTD")
                    .prefix_separator("__")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("elasticsearch.urls")
                    .with_list_parse_key("embedded.data")
                    .try_parsing(true),
            )
            .build()
            .map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        built.try_deserialize().map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

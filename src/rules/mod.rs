//! Rules: the detection-rules TOML format and the validated rules the engine runs.
//!
//! Two stages: [`RuleFile`] mirrors the TOML with serde (unknown keys collected, not dropped);
//! [`load_file`] / [`load_paths`] validate it into [`Rule`]s (parsed KQL, typed intervals and
//! date math, [`RuleKind`] per type) and report every problem with the file, rule and key.
//! `detectd validate` prints that report.

mod file;
mod load;
mod model;
mod validate;

pub use file::RuleFile;
pub use load::{load_file, load_paths, load_str, Level, LoadError, LoadReport, Loaded, Problem};
pub use model::{OverrideError, Rule, RuleKind, Severity, Support, Technique, Threat, ThreatRef};
pub use validate::{
    geoip_kinds_needed, needs_geoip, render_summary, summarize, Summary, ValidateOutput,
};

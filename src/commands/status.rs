//! `detectd status`: per rule, last run, next run, status, last duration, alerts in the last
//! day, open gaps.

use std::process::ExitCode;

use chrono::Utc;

use crate::cli::{Cli, OutputFormat, StatusArgs};
use crate::scheduler::{format_status_json, format_status_text, status_report, ScheduledRule};
use crate::service::{load_rules, scheduled};

/// `detectd status`: per rule, last run, next run, status, last duration, alerts in the last
/// day, open gaps — from the persisted state and execution records.
pub fn run(cli: &Cli, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let cfg = super::load_config(cli)?;
    let rules = load_rules(&cfg);
    let schedule: Vec<ScheduledRule> = rules.iter().filter_map(|r| scheduled(r).ok()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (states, records) = rt.block_on(crate::service::status_sources(&cfg))?;
    let now = Utc::now();
    let rows = status_report(&schedule, &states, &records, now);
    match args.format {
        OutputFormat::Text => print!("{}", format_status_text(&rows)),
        OutputFormat::Json => println!("{}", format_status_json(&rows)),
    }
    Ok(ExitCode::SUCCESS)
}

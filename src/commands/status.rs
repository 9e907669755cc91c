//! `detectd status`: per rule, last run, next run, status, last duration, alerts in the last
//! day, open gaps.

use std::process::ExitCode;

use chrono::Utc;

use crate::cli::{Cli, OutputFormat, StatusArgs};
use crate::scheduler::{format_status_json, format_status_text, status_report, ScheduledRule};
use crate::service::{load_rules, scheduled, NOT_RUNNABLE};

/// `detectd status`: per rule, last run, next run, status, last duration, alerts in the last
/// day, open gaps — from the persisted state and execution records.
pub fn run(cli: &Cli, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let cfg = super::load_config(cli)?;
    let rules = load_rules(&cfg);
    let schedule: Vec<ScheduledRule> = rules.iter().filter_map(|r| scheduled(r).ok()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let src = rt.block_on(crate::service::status_sources(&cfg, &rules))?;
    let now = Utc::now();
    let mut rows = status_report(&schedule, &src.states, &src.records, now);
    for row in &mut rows {
        if let Some(why) = src.not_runnable.get(&row.rule_id) {
            row.status = Some(if why.starts_with(NOT_RUNNABLE) {
                why.clone()
            } else {
                format!("{NOT_RUNNABLE}: {why}")
            });
            row.next_run = None;
        }
    }
    match args.format {
        OutputFormat::Text => print!("{}", format_status_text(&rows)),
        OutputFormat::Json => println!("{}", format_status_json(&rows)),
    }
    Ok(ExitCode::SUCCESS)
}

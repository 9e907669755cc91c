//! `detectd hunt PATH... [--rules DIR] [--start T --end T] [--out FILE]`: every rule over a
//! folder of CloudTrail in one pass (`crate::hunt`), alerts as NDJSON to a file or standard
//! output, a progress bar on stderr and a summary table.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::cli::{Cli, HuntArgs};
use crate::config::BackendKind;
use crate::hunt::{hunt, HuntOptions, HuntRule, HuntSummary};
use crate::time::{parse_datemath, parse_interval};

/// Runs the hunt; exit code 1 when records or files had to be skipped or arrived late.
pub fn run(cli: &Cli, args: &HuntArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = super::load_config(cli)?;
    cfg.backend = BackendKind::Embedded;
    if let Some(dir) = &args.rules {
        cfg.rules_dir = dir.clone();
    }
    let now = Utc::now();
    let at = |name: &str, s: &str| -> anyhow::Result<DateTime<Utc>> {
        Ok(parse_datemath(s)
            .with_context(|| format!("invalid --{name} `{s}`"))?
            .resolve(now))
    };
    let geoip = if args.geoip.is_empty() {
        cfg.embedded.geoip_databases.clone()
    } else {
        args.geoip.clone()
    };
    let options = HuntOptions {
        start: at("start", &args.start)?,
        end: at("end", &args.end)?,
        max_backfill: parse_interval(&cfg.scheduler.max_backfill)
            .context("invalid scheduler.max_backfill")?,
        lateness: parse_interval(&args.lateness).context("invalid --lateness")?,
        prefilter: !args.no_prefilter,
        normalize: crate::ecs::options_with_geoip(&geoip).context("geoip databases")?,
        catalog: crate::fields::FieldCatalog::builtin(),
    };
    let mut rules = Vec::new();
    for r in crate::service::load_rules(&cfg) {
        match crate::service::scheduled(&r) {
            Ok(schedule) => rules.push(HuntRule {
                exec: r.exec,
                schedule,
            }),
            Err(e) => tracing::error!(error = %e, "rule not scheduled"),
        }
    }
    if rules.is_empty() {
        anyhow::bail!("no runnable rules in {}", cfg.rules_dir.display());
    }
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    // drawn only when stderr is a terminal
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let mut drawn = started;
    let mut write_error: Option<std::io::Error> = None;
    let summary = hunt(
        &args.paths,
        &rules,
        &options,
        |a| {
            if write_error.is_none() {
                let res = serde_json::to_writer(&mut out, &a.doc)
                    .map_err(std::io::Error::from)
                    .and_then(|()| out.write_all(b"\n"));
                if let Err(e) = res {
                    write_error = Some(e);
                }
            }
        },
        |e| tracing::warn!(error = %e, "record skipped"),
        |p| {
            // Redrawn ten times a second at most: a day of delivery files is ~50,000 of them.
            let now = std::time::Instant::now();
            if p.files_done < p.files && now.duration_since(drawn) < PROGRESS_EVERY {
                return;
            }
            drawn = now;
            bar.set_length(p.files as u64);
            bar.set_position(p.files_done as u64);
            bar.set_message(format!("{} records, {} alerts", p.records, p.alerts));
        },
    )?;
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e).context("writing alerts");
    }
    out.flush().context("writing alerts")?;
    drop(out);
    print_summary(&summary, started.elapsed().as_secs_f64());
    Ok(if summary.errors > 0 || summary.late > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// How often the progress bar is updated.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

fn print_summary(s: &HuntSummary, seconds: f64) {
    let pct = |n: u64| {
        if s.records == 0 {
            0.0
        } else {
            100.0 * n as f64 / s.records as f64
        }
    };
    eprintln!(
        "\n{} files, {} records in {:.1} s ({:.0} records/s): {} skipped unparsed ({:.1}%), {} taken unparsed ({:.1}%), {} errors, {} without @timestamp",
        s.files,
        s.records,
        seconds,
        s.records as f64 / seconds.max(1e-9),
        s.skipped,
        pct(s.skipped),
        s.from_raw,
        pct(s.from_raw),
        s.errors,
        s.rejected
    );
    eprintln!(
        "{} rules, {} executions: {} alerts",
        s.rules.len(),
        s.executions,
        s.alerts
    );
    if s.late > 0 {
        eprintln!(
            "warning: {} hits arrived after their window had run (raise --lateness)",
            s.late
        );
    }
    let mut rows: Vec<_> = s.rules.iter().filter(|r| r.alerts > 0).collect();
    rows.sort_by(|a, b| b.alerts.cmp(&a.alerts).then(a.name.cmp(&b.name)));
    if !rows.is_empty() {
        let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
        eprintln!(
            "\n{:<width$}  {:>8}  {:>6}  severity",
            "rule", "alerts", "capped"
        );
        for r in rows {
            eprintln!(
                "{:<width$}  {:>8}  {:>6}  {}",
                r.name, r.alerts, r.capped, r.severity
            );
        }
    }
    for (rule, why) in &s.not_run {
        tracing::info!(rule = %rule, reason = %why, "rule not hunted with");
    }
}

//! `detectd generate`: deterministic, realistic raw CloudTrail as AWS delivers it to S3
//! (`AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz`, each `{"Records":[...]}`),
//! with activity the seed rules must catch placed on the last day and look-alikes they must
//! not catch. The same options give byte-identical files (own PRNG, no gzip timestamps).
//! Events are planned one day at a time (small structs), then rendered file by file, so memory
//! stays flat however many days are generated. `MANIFEST.json` lists the injected events.

mod events;
mod rng;
mod world;

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use serde::{Deserialize, Serialize};

use events::{event_id, format_time, Kind, Planned, CATALOG};
use rng::{derive, Rng};
use world::{Class, Client, Identity, World, GLOBAL_REGION, REGIONS};

pub use events::civil_from_days;

/// Rule ids (elastic/detection-rules) of the three seed rules.
pub const RULE_SSM_DOCUMENT_RARE_USER: &str = "50a2bdea-9876-11ef-89db-f661ea17fbcd";
pub const RULE_SSM_SEND_COMMAND: &str = "37b211e8-4e2f-440f-86d8-06cc8f158cfa";
pub const RULE_CLOUDTRAIL_STOP_LOGGING: &str = "1aa8fa52-44a7-4dae-b058-f3333b91c8d7";

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    pub out: PathBuf,
    pub seed: u64,
    pub days: u32,
    /// First day, `YYYY-MM-DD` (UTC).
    pub start: String,
    /// Events on a working day; weekends are quieter.
    pub events_per_day: u64,
    pub accounts: u16,
    pub users_per_account: u16,
    /// gzip level 0-9.
    pub compression: u32,
    /// Replace an existing `<out>/AWSLogs`.
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("invalid --start {0:?}: expected YYYY-MM-DD")]
    InvalidStart(String),
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: &'static str,
    },
    #[error("{0} already exists: remove it, choose another --out, or pass --force")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What was generated and which alerts to expect (written to `<out>/MANIFEST.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub command: String,
    pub seed: u64,
    pub start: String,
    pub days: u32,
    pub events_per_day: u64,
    pub accounts: Vec<String>,
    /// `[start 00:00Z, end 00:00Z)` of the generated activity.
    pub period: Period,
    /// The last day: where the injected events are; earlier days are history for new_terms.
    pub replay: Period,
    pub records: u64,
    pub files: u64,
    /// Records per UTC day, in order.
    pub records_per_day: Vec<u64>,
    /// Events each seed rule must alert on when the replay period is run.
    pub injected: Vec<ManifestEvent>,
    /// Events near the rules that must not alert.
    pub look_alikes: Vec<ManifestEvent>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Period {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestEvent {
    pub event_id: String,
    pub event_time: String,
    pub account: String,
    pub region: String,
    pub event_source: String,
    pub event_name: String,
    /// The rule that must (injected) or could be confused into (look-alike) alerting.
    pub rule_id: String,
    pub rule_name: String,
    pub description: String,
    /// File holding the record, relative to the output folder.
    pub file: String,
}

/// Generates the dataset described by `opts` and writes it with its manifest.
pub fn generate(opts: &Options) -> Result<Manifest, GenerateError> {
    let first_day = parse_day(&opts.start)?;
    validate(opts)?;
    let logs = opts.out.join("AWSLogs");
    if logs.exists() {
        if !opts.force {
            return Err(GenerateError::Exists(logs));
        }
        fs::remove_dir_all(&logs).map_err(|source| GenerateError::Io {
            path: logs.clone(),
            source,
        })?;
    }
    let world = world::build(opts.seed, opts.accounts, opts.users_per_account);
    let last = i64::from(opts.days) - 1;
    let mut manifest = Manifest {
        command: command_line(opts),
        seed: opts.seed,
        start: opts.start.clone(),
        days: opts.days,
        events_per_day: opts.events_per_day,
        accounts: world.accounts.clone(),
        period: Period {
            start: format_time(first_day * 86_400),
            end: format_time((first_day + i64::from(opts.days)) * 86_400),
        },
        replay: Period {
            start: format_time((first_day + last) * 86_400),
            end: format_time((first_day + last + 1) * 86_400),
        },
        records: 0,
        files: 0,
        records_per_day: Vec::new(),
        injected: Vec::new(),
        look_alikes: Vec::new(),
    };
    let mut gzip = Gzip::new(opts.compression);
    for d in 0..i64::from(opts.days) {
        let day = first_day + d;
        let mut notes = Vec::new();
        let mut planned = plan_day(opts, &world, day, d == last, &mut notes);
        planned.sort_by_key(|p| (p.account, p.region, p.t, p.seed));
        let mut located: HashMap<u64, String> = HashMap::new();
        let (records, files) =
            write_day(opts, &world, &mut gzip, day, &planned, &notes, &mut located)?;
        tracing::info!(day = %format_time(day * 86_400), records, files, "generated day");
        manifest.records += records;
        manifest.files += files;
        manifest.records_per_day.push(records);
        for note in notes {
            let Some(p) = planned.iter().find(|p| p.seed == note.seed) else {
                continue;
            };
            let entry = manifest_event(&world, p, &note, located.remove(&note.seed));
            if note.injected {
                manifest.injected.push(entry);
            } else if d == last {
                manifest.look_alikes.push(entry);
            }
        }
    }
    let path = opts.out.join("MANIFEST.json");
    let mut text = serde_json::to_string_pretty(&manifest).map_err(|e| GenerateError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    text.push('\n');
    fs::write(&path, text).map_err(|source| GenerateError::Io { path, source })?;
    Ok(manifest)
}

fn validate(opts: &Options) -> Result<(), GenerateError> {
    let bad = |option, reason| Err(GenerateError::InvalidOption { option, reason });
    if opts.days == 0 || opts.days > 3660 {
        return bad("--days", "must be between 1 and 3660");
    }
    if opts.accounts == 0 || opts.accounts > 1000 {
        return bad("--accounts", "must be between 1 and 1000");
    }
    if opts.users_per_account < 4 {
        return bad("--users-per-account", "must be at least 4");
    }
    if opts.compression > 9 {
        return bad("--compression", "must be between 0 and 9");
    }
    if opts.events_per_day > 100_000_000 {
        return bad("--events-per-day", "must be at most 100000000");
    }
    Ok(())
}

/// Day number (days since 1970-01-01) of `YYYY-MM-DD`.
fn parse_day(s: &str) -> Result<i64, GenerateError> {
    let date = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| GenerateError::InvalidStart(s.to_owned()))?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .ok_or_else(|| GenerateError::InvalidStart(s.to_owned()))?;
    Ok((date - epoch).num_days())
}

fn command_line(opts: &Options) -> String {
    format!(
        "detectd generate --seed {} --days {} --start {} --events-per-day {} --accounts {} --users-per-account {} --compression {}",
        opts.seed,
        opts.days,
        opts.start,
        opts.events_per_day,
        opts.accounts,
        opts.users_per_account,
        opts.compression
    )
}

/// A planned event worth a manifest entry.
struct Note {
    seed: u64,
    injected: bool,
    rule_id: &'static str,
    rule_name: &'static str,
    description: String,
}

fn manifest_event(world: &World, p: &Planned, note: &Note, file: Option<String>) -> ManifestEvent {
    let (source, name) = match p.kind {
        Kind::Background(i) => (CATALOG[i as usize].source, CATALOG[i as usize].name),
        Kind::ConsoleLogin { .. } => ("signin.amazonaws.com", "ConsoleLogin"),
        Kind::CreateDocument { .. } => ("ssm.amazonaws.com", "CreateDocument"),
        Kind::SendCommand { .. } => ("ssm.amazonaws.com", "SendCommand"),
        Kind::Logging { stop: true, .. } => ("cloudtrail.amazonaws.com", "StopLogging"),
        Kind::Logging { stop: false, .. } => ("cloudtrail.amazonaws.com", "StartLogging"),
    };
    ManifestEvent {
        event_id: event_id(p.seed),
        event_time: format_time(p.t),
        account: world.accounts[p.account as usize].clone(),
        region: REGIONS[p.region as usize].0.to_owned(),
        event_source: source.to_owned(),
        event_name: name.to_owned(),
        rule_id: note.rule_id.to_owned(),
        rule_name: note.rule_name.to_owned(),
        description: note.description.clone(),
        file: file.unwrap_or_default(),
    }
}

/// Day of week, Monday = 0.
fn weekday(day: i64) -> i64 {
    (day + 3).rem_euclid(7)
}

/// Cumulative weights for picking with a binary search.
struct Picker {
    items: Vec<usize>,
    cumulative: Vec<u64>,
}

impl Picker {
    fn new(items: Vec<usize>, weight: impl Fn(usize) -> u32) -> Self {
        let mut total = 0u64;
        let mut kept = Vec::new();
        let mut cumulative = Vec::new();
        for i in items {
            let w = u64::from(weight(i));
            if w > 0 {
                total += w;
                kept.push(i);
                cumulative.push(total);
            }
        }
        Picker {
            items: kept,
            cumulative,
        }
    }

    fn pick(&self, rng: &mut Rng) -> Option<usize> {
        let total = *self.cumulative.last()?;
        let x = rng.below(total);
        let i = self.cumulative.partition_point(|c| *c <= x);
        self.items.get(i).copied()
    }
}

const DAY: i64 = 86_400;

fn catalog_picker(weight: impl Fn(&events::Action) -> u32) -> Picker {
    Picker::new((0..CATALOG.len()).collect(), |i| weight(&CATALOG[i]))
}

fn catalog_index(name: &str) -> u16 {
    CATALOG.iter().position(|a| a.name == name).unwrap_or(0) as u16
}

/// Plans one day: background activity by rhythm, the daily habitual document publisher, and on
/// the last day the injected events and look-alikes (recorded in `notes`).
fn plan_day(
    opts: &Options,
    world: &World,
    day: i64,
    last: bool,
    notes: &mut Vec<Note>,
) -> Vec<Planned> {
    let mut rng = Rng::new(derive(opts.seed, 0x4441_5900 + day as u64));
    let day_start = day * DAY;
    let weekend = weekday(day) >= 5;
    let e = opts.events_per_day as f64;
    let n_human = (e * 0.5 * if weekend { 0.08 } else { 1.0 }).round() as u64;
    let n_auto = (e * 0.38).round() as u64;
    let n_service = (e * 0.12).round() as u64;
    let mut out = Vec::with_capacity((n_human + n_auto + n_service) as usize + 64);

    let human_actions = catalog_picker(|a| a.human);
    let auto_actions = catalog_picker(|a| a.auto);
    let aws_service_actions = catalog_picker(|a| {
        if matches!(
            a.source,
            "sts.amazonaws.com" | "kms.amazonaws.com" | "logs.amazonaws.com"
        ) {
            a.service
        } else {
            0
        }
    });
    let ssm_role_actions = catalog_picker(|a| {
        if matches!(a.source, "ec2.amazonaws.com" | "ssm.amazonaws.com") {
            a.service
        } else {
            0
        }
    });

    let region_of = |rng: &mut Rng, pidx: usize, action: u16| -> u8 {
        if CATALOG[action as usize].global {
            GLOBAL_REGION
        } else if rng.chance(0.92) {
            world.principals[pidx].home_region
        } else {
            rng.below(REGIONS.len() as u64) as u8
        }
    };
    let push =
        |out: &mut Vec<Planned>, rng: &mut Rng, t: i64, pidx: usize, kind: Kind, region: u8| {
            let seed = rng.next_u64();
            out.push(Planned {
                t,
                account: world.principals[pidx].account,
                region,
                principal: pidx as u32,
                kind,
                seed,
                foreign_ip: false,
            });
            seed
        };

    // People: a working session in their own time zone on the days they work.
    let p_active = if weekend { 0.06 } else { 0.75 };
    let mut sessions: HashMap<usize, (i64, i64)> = HashMap::new();
    let mut active = Vec::new();
    for i in world.of_class(Class::Human) {
        if rng.chance(p_active) {
            let local_start = 8 * 3600 + rng.range(0, 7200) as i64;
            let length = 7 * 3600 + rng.range(0, 3 * 3600) as i64;
            let start = local_start - i64::from(world.principals[i].tz_minutes) * 60;
            sessions.insert(i, (start, length));
            active.push(i);
            let pr = &world.principals[i];
            if pr.client == Client::Console && matches!(pr.identity, Identity::IamUser { .. }) {
                let t = day_start + start.rem_euclid(DAY);
                if rng.chance(0.05) {
                    let kind = Kind::ConsoleLogin {
                        success: false,
                        mfa: false,
                    };
                    push(&mut out, &mut rng, t - 40, i, kind, GLOBAL_REGION);
                }
                let mfa = rng.chance(0.85);
                let kind = Kind::ConsoleLogin { success: true, mfa };
                push(&mut out, &mut rng, t, i, kind, GLOBAL_REGION);
            }
        }
    }
    let humans = Picker::new(active, |i| world.principals[i].weight);
    for _ in 0..n_human {
        let Some(i) = humans.pick(&mut rng) else {
            break;
        };
        let (start, length) = sessions.get(&i).copied().unwrap_or((0, DAY));
        let mut offset = rng.below(length as u64) as i64;
        // Lunch: fewer calls in the fifth hour of the session.
        if (4 * 3600..5 * 3600).contains(&offset) && rng.chance(0.6) {
            offset = rng.below(length as u64) as i64;
        }
        let t = day_start + (start + offset + 60).rem_euclid(DAY);
        let Some(action) = human_actions.pick(&mut rng) else {
            break;
        };
        let region = region_of(&mut rng, i, action as u16);
        push(
            &mut out,
            &mut rng,
            t,
            i,
            Kind::Background(action as u16),
            region,
        );
    }

    // Workloads: around the clock, a third of the calls in bursts just after the hour.
    let autos = Picker::new(world.of_class(Class::Automation), |i| {
        world.principals[i].weight
    });
    for _ in 0..n_auto {
        let (Some(i), Some(action)) = (autos.pick(&mut rng), auto_actions.pick(&mut rng)) else {
            break;
        };
        let t = if rng.chance(0.33) {
            day_start + rng.below(24) as i64 * 3600 + rng.below(180) as i64
        } else {
            day_start + rng.below(DAY as u64) as i64
        };
        let region = region_of(&mut rng, i, action as u16);
        push(
            &mut out,
            &mut rng,
            t,
            i,
            Kind::Background(action as u16),
            region,
        );
    }

    // AWS services, and the root user now and then.
    let services = Picker::new(world.of_class(Class::Service), |i| {
        world.principals[i].weight
    });
    for _ in 0..n_service {
        let Some(i) = services.pick(&mut rng) else {
            break;
        };
        let picker = if matches!(world.principals[i].identity, Identity::AwsService { .. }) {
            &aws_service_actions
        } else {
            &ssm_role_actions
        };
        let Some(action) = picker.pick(&mut rng) else {
            continue;
        };
        let t = day_start + rng.below(DAY as u64) as i64;
        let region = region_of(&mut rng, i, action as u16);
        push(
            &mut out,
            &mut rng,
            t,
            i,
            Kind::Background(action as u16),
            region,
        );
    }
    for i in world.of_class(Class::Root) {
        if rng.chance(0.15) {
            let t = day_start + 10 * 3600 + rng.below(6 * 3600) as i64;
            let login = Kind::ConsoleLogin {
                success: true,
                mfa: true,
            };
            push(&mut out, &mut rng, t, i, login, GLOBAL_REGION);
            for k in 0..rng.range(1, 4) {
                let Some(action) = human_actions.pick(&mut rng) else {
                    break;
                };
                let region = region_of(&mut rng, i, action as u16);
                let kind = Kind::Background(action as u16);
                push(&mut out, &mut rng, t + 30 + k as i64 * 45, i, kind, region);
            }
        }
    }

    // The habitual publisher creates command documents every day at 03:00 UTC.
    for (account, &publisher) in world.doc_publisher.iter().enumerate().take(2) {
        for k in 0..rng.range(1, 2) {
            let t = day_start + 3 * 3600 + k as i64 * 120 + rng.below(60) as i64;
            let kind = Kind::CreateDocument {
                command: true,
                fail: false,
            };
            let seed = push(&mut out, &mut rng, t, publisher, kind, GLOBAL_REGION);
            notes.push(Note {
                seed,
                injected: false,
                rule_id: RULE_SSM_DOCUMENT_RARE_USER,
                rule_name: "AWS SSM Command Document Created by Rare User",
                description: format!(
                    "habitual: {} in account {} creates command documents every day, so it is not new",
                    world::DOC_PUBLISHER_ROLE,
                    world.accounts[account]
                ),
            });
        }
    }
    if !last {
        return out;
    }
    plan_last_day(world, day_start, &mut rng, &mut out, notes);
    out
}

/// Picks a person in `account % accounts` (IAM user when `iam_user`, else any).
fn person(world: &World, account: u16, iam_user: bool, skip: usize) -> Option<usize> {
    let account = account % world.accounts.len() as u16;
    let candidates: Vec<usize> = (0..world.principals.len())
        .filter(|i| {
            let p = &world.principals[*i];
            p.account == account
                && p.class == Class::Human
                && (!iam_user || matches!(p.identity, Identity::IamUser { .. }))
        })
        .collect();
    if candidates.is_empty() {
        return None;
    }
    candidates.get(skip % candidates.len()).copied()
}

fn plan_last_day(
    world: &World,
    day_start: i64,
    rng: &mut Rng,
    out: &mut Vec<Planned>,
    notes: &mut Vec<Note>,
) {
    const DOC: &str = "AWS SSM Command Document Created by Rare User";
    const SEND: &str = "AWS Execution via System Manager";
    const STOP: &str = "AWS CloudTrail Log Suspension";
    let mut add = |out: &mut Vec<Planned>,
                   rng: &mut Rng,
                   t: i64,
                   pidx: usize,
                   kind: Kind,
                   foreign_ip: bool,
                   note: Option<(bool, &'static str, &'static str, String)>| {
        let seed = rng.next_u64();
        out.push(Planned {
            t,
            account: world.principals[pidx].account,
            region: GLOBAL_REGION,
            principal: pidx as u32,
            kind,
            seed,
            foreign_ip,
        });
        if let Some((injected, rule_id, rule_name, description)) = note {
            notes.push(Note {
                seed,
                injected,
                rule_id,
                rule_name,
                description,
            });
        }
    };

    // The attack: an IAM user's access key used from a new address at night.
    if let Some(victim) = person(world, 0, true, 1).or_else(|| person(world, 0, false, 1)) {
        let t0 = day_start + 2 * 3600 + 17 * 60 + rng.below(60) as i64;
        let bg = |name| Kind::Background(catalog_index(name));
        add(out, rng, t0, victim, bg("GetCallerIdentity"), true, None);
        add(
            out,
            rng,
            t0 + 41,
            victim,
            bg("DescribeInstanceInformation"),
            true,
            None,
        );
        add(
            out,
            rng,
            t0 + 97,
            victim,
            Kind::CreateDocument {
                command: true,
                fail: false,
            },
            true,
            Some((
                true,
                RULE_SSM_DOCUMENT_RARE_USER,
                DOC,
                "a user who never created an SSM document creates a Command document from a new address".to_owned(),
            )),
        );
        add(
            out,
            rng,
            t0 + 152,
            victim,
            Kind::SendCommand {
                fail: false,
                custom: true,
            },
            true,
            Some((
                true,
                RULE_SSM_SEND_COMMAND,
                SEND,
                "the same user runs the new document on instances with SendCommand".to_owned(),
            )),
        );
        add(out, rng, t0 + 330, victim, bg("DescribeTrails"), true, None);
        add(
            out,
            rng,
            t0 + 371,
            victim,
            Kind::Logging {
                stop: true,
                fail: false,
            },
            true,
            Some((
                true,
                RULE_CLOUDTRAIL_STOP_LOGGING,
                STOP,
                "the same user stops the account's trail".to_owned(),
            )),
        );
        // An administrator notices and turns logging back on.
        if let Some(admin) = person(world, 0, false, 5) {
            let t = day_start + 6 * 3600 + 45 * 60 + rng.below(300) as i64;
            add(
                out,
                rng,
                t,
                admin,
                Kind::Logging {
                    stop: false,
                    fail: false,
                },
                false,
                Some((
                    false,
                    RULE_CLOUDTRAIL_STOP_LOGGING,
                    STOP,
                    "StartLogging, not StopLogging".to_owned(),
                )),
            );
        }
    }
    // An engineer runs a shell script on instances in another account (legitimate, but the
    // rule fires on every successful SendCommand).
    if let Some(engineer) = person(world, 1, false, 2) {
        let t = day_start + 15 * 3600 + 42 * 60 + rng.below(60) as i64;
        add(
            out,
            rng,
            t,
            engineer,
            Kind::SendCommand {
                fail: false,
                custom: false,
            },
            false,
            Some((
                true,
                RULE_SSM_SEND_COMMAND,
                SEND,
                "an engineer runs AWS-RunShellScript on instances".to_owned(),
            )),
        );
    }
    // Look-alikes.
    if let Some(p) = person(world, 2, false, 3) {
        let t = day_start + 10 * 3600 + 5 * 60 + rng.below(60) as i64;
        add(
            out,
            rng,
            t,
            p,
            Kind::CreateDocument {
                command: true,
                fail: true,
            },
            false,
            Some((
                false,
                RULE_SSM_DOCUMENT_RARE_USER,
                DOC,
                "CreateDocument denied (AccessDeniedException): outcome failure".to_owned(),
            )),
        );
    }
    if let Some(p) = person(world, 1, true, 4) {
        let t = day_start + 11 * 3600 + 30 * 60 + rng.below(60) as i64;
        add(
            out,
            rng,
            t,
            p,
            Kind::CreateDocument {
                command: false,
                fail: false,
            },
            false,
            Some((
                false,
                RULE_SSM_DOCUMENT_RARE_USER,
                DOC,
                "a new creator, but of an Automation document, not a Command document".to_owned(),
            )),
        );
    }
    if let Some(p) = person(world, 2, false, 6) {
        let t = day_start + 13 * 3600 + 10 * 60 + rng.below(60) as i64;
        add(
            out,
            rng,
            t,
            p,
            Kind::SendCommand {
                fail: true,
                custom: false,
            },
            false,
            Some((
                false,
                RULE_SSM_SEND_COMMAND,
                SEND,
                "SendCommand denied (AccessDeniedException): outcome failure".to_owned(),
            )),
        );
    }
    if let Some(p) = person(world, 3, false, 7) {
        let t = day_start + 9 * 3600 + 20 * 60 + rng.below(60) as i64;
        add(
            out,
            rng,
            t,
            p,
            Kind::Logging {
                stop: true,
                fail: true,
            },
            false,
            Some((
                false,
                RULE_CLOUDTRAIL_STOP_LOGGING,
                STOP,
                "StopLogging denied (AccessDenied): outcome failure".to_owned(),
            )),
        );
    }
}

/// Writes one day's planned events (sorted by account, region, time) as delivery files of 5 to
/// 15 minutes each. Returns (records, files); records the file of each noted event.
fn write_day(
    opts: &Options,
    world: &World,
    gz: &mut Gzip,
    day: i64,
    planned: &[Planned],
    notes: &[Note],
    located: &mut HashMap<u64, String>,
) -> Result<(u64, u64), GenerateError> {
    let noted: std::collections::HashSet<u64> = notes.iter().map(|n| n.seed).collect();
    let day_start = day * DAY;
    let (mut records, mut files) = (0u64, 0u64);
    let mut i = 0;
    while i < planned.len() {
        let (account, region) = (planned[i].account, planned[i].region);
        let group_end = i + planned[i..]
            .iter()
            .position(|p| p.account != account || p.region != region)
            .unwrap_or(planned.len() - i);
        let group = &planned[i..group_end];
        let mut frng = Rng::new(derive(
            opts.seed,
            (day as u64) << 24 | u64::from(account) << 8 | u64::from(region),
        ));
        let mut window_start = day_start;
        let mut j = 0;
        while j < group.len() {
            let window_end = (window_start + frng.range(300, 900) as i64).min(day_start + DAY);
            let n = group[j..]
                .iter()
                .position(|p| p.t >= window_end)
                .unwrap_or(group.len() - j);
            let suffix = frng.chars(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                16,
            );
            if n > 0 {
                // Named (and filed) by the end of its window, kept within the day.
                let delivered = window_end.min(day_start + DAY - 60);
                let rel = file_path(world, account, region, delivered, &suffix);
                write_file(opts, world, gz, &rel, &group[j..j + n])?;
                for p in &group[j..j + n] {
                    if noted.contains(&p.seed) {
                        located.insert(p.seed, rel.clone());
                    }
                }
                records += n as u64;
                files += 1;
                j += n;
            }
            window_start = window_end;
        }
        i = group_end;
    }
    Ok((records, files))
}

fn file_path(world: &World, account: u16, region: u8, delivered: i64, suffix: &str) -> String {
    let account = &world.accounts[account as usize];
    let region = REGIONS[region as usize].0;
    let (y, m, d) = civil_from_days(delivered.div_euclid(DAY));
    let s = delivered.rem_euclid(DAY);
    format!(
        "AWSLogs/{account}/CloudTrail/{region}/{y:04}/{m:02}/{d:02}/{account}_CloudTrail_{region}_{y:04}{m:02}{d:02}T{:02}{:02}Z_{suffix}.json.gz",
        s / 3600,
        s / 60 % 60
    )
}

/// Reused between files: compressor state and buffers (allocating a deflate state per small
/// file costs more than compressing it).
struct Gzip {
    compress: Compress,
    raw: Vec<u8>,
    packed: Vec<u8>,
}

impl Gzip {
    fn new(level: u32) -> Self {
        Gzip {
            compress: Compress::new(Compression::new(level), false),
            raw: Vec::with_capacity(1 << 20),
            packed: Vec::with_capacity(1 << 18),
        }
    }

    /// Deflates `self.raw` into `self.packed` as one gzip member (no name, no mtime).
    fn pack(&mut self) -> std::io::Result<()> {
        self.compress.reset();
        self.packed.clear();
        self.packed
            .extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        let mut crc = Crc::new();
        crc.update(&self.raw);
        loop {
            let consumed = self.compress.total_in() as usize;
            self.packed.reserve(self.raw.len() / 2 + 1024);
            let status = self
                .compress
                .compress_vec(
                    &self.raw[consumed..],
                    &mut self.packed,
                    FlushCompress::Finish,
                )
                .map_err(std::io::Error::other)?;
            if status == Status::StreamEnd {
                break;
            }
        }
        self.packed.extend_from_slice(&crc.sum().to_le_bytes());
        self.packed
            .extend_from_slice(&(self.raw.len() as u32).to_le_bytes());
        Ok(())
    }
}

fn write_file(
    opts: &Options,
    world: &World,
    gz: &mut Gzip,
    rel: &str,
    events: &[Planned],
) -> Result<(), GenerateError> {
    let path = opts.out.join(rel);
    let io = |source| GenerateError::Io {
        path: path.clone(),
        source,
    };
    gz.raw.clear();
    gz.raw.extend_from_slice(b"{\"Records\":[");
    for (k, p) in events.iter().enumerate() {
        if k > 0 {
            gz.raw.push(b',');
        }
        let record = events::render(world, p);
        serde_json::to_writer(&mut gz.raw, &record).map_err(|e| io(std::io::Error::other(e)))?;
    }
    gz.raw.extend_from_slice(b"]}");
    gz.pack().map_err(io)?;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    fs::write(&path, &gz.packed).map_err(io)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn days_and_weekdays() {
        let monday = parse_day("2026-11-02").unwrap();
        assert_eq!(weekday(monday), 0);
        assert_eq!(weekday(monday - 1), 6);
        assert_eq!(format_time(monday * DAY), "2026-11-02T00:00:00Z");
        assert!(matches!(
            parse_day("2026-11-31"),
            Err(GenerateError::InvalidStart(_))
        ));
    }

    #[test]
    fn picker_follows_weights_and_skips_zero() {
        let p = Picker::new(vec![10, 20, 30], |i| if i == 20 { 0 } else { i as u32 });
        let mut rng = Rng::new(9);
        let mut counts = HashMap::new();
        for _ in 0..40_000 {
            *counts.entry(p.pick(&mut rng).unwrap()).or_insert(0u32) += 1;
        }
        assert!(!counts.contains_key(&20));
        // 30 has three times the weight of 10.
        let ratio = f64::from(counts[&30]) / f64::from(counts[&10]);
        assert!((2.7..3.3).contains(&ratio), "{ratio}");
        assert_eq!(Picker::new(vec![1], |_| 0).pick(&mut rng), None);
    }

    #[test]
    fn delivery_file_names_follow_s3_layout() {
        let world = world::build(1, 1, 4);
        let t = parse_day("2026-11-03").unwrap() * DAY + 14 * 3600 + 5 * 60;
        let acct = &world.accounts[0];
        assert_eq!(
            file_path(&world, 0, 1, t, "abc"),
            format!("AWSLogs/{acct}/CloudTrail/eu-west-1/2026/11/03/{acct}_CloudTrail_eu-west-1_20261103T1405Z_abc.json.gz")
        );
    }
}

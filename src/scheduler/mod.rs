//! The scheduler: every enabled rule on its interval or cron, windows from actual start times,
//! gaps backfilled, state persisted, replay of any period.
//!
//! It knows rules only as [`ScheduledRule`] and runs them through an [`Executor`]; state goes
//! through a [`StateStore`], records through a [`Recorder`] (both implemented over any
//! backend by [`BackendStore`]), time through a [`Clock`] ([`RealClock`], or [`SimClock`]
//! for a replay).

mod clock;
mod plan;
mod record;
mod runner;
mod setup;
mod signals;
mod store;

pub use clock::{Clock, RealClock, SimClock};
pub use plan::{
    next_due, next_due_after, normal_window, plan, spread_offset, stable_hash, Plan, ScheduledRule,
    Window, WindowKind,
};
pub use record::{
    execution_uuid, format_status_json, format_status_text, status_report, ExecutionOutcome,
    ExecutionRecordDoc, ExecutionStatus, Executor, RuleStatus,
};
pub use runner::{RunSummary, Scheduler, SchedulerError, SchedulerHandle, SchedulerOptions};
pub use setup::{clock_for_run, parse_cron, RunClock};
pub use signals::{cancel_on_shutdown_signals, fingerprint, reload_triggers};
pub use store::{BackendStore, MemoryStore, Recorder, StateStore};

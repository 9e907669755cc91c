//! Where the scheduler keeps rule state and execution records: the [`StateStore`] and
//! [`Recorder`] traits, adapters over any [`Backend`], and in-memory versions for tests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::backend::{Backend, Error, ExecutionRecord, RuleState};

/// Persisted per-rule scheduler state.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Every rule's state.
    async fn load_all(&self) -> Result<BTreeMap<String, RuleState>, Error>;
    /// Persists one rule's state.
    async fn save(&self, rule_id: &str, state: &RuleState) -> Result<(), Error>;
}

/// Where execution records go.
#[async_trait]
pub trait Recorder: Send + Sync {
    async fn record(&self, record: &ExecutionRecord) -> Result<(), Error>;
}

/// [`StateStore`] and [`Recorder`] over a backend (`load_state`, `save_state`,
/// `record_execution`).
#[derive(Clone)]
pub struct BackendStore(pub Arc<dyn Backend>);

#[async_trait]
impl StateStore for BackendStore {
    async fn load_all(&self) -> Result<BTreeMap<String, RuleState>, Error> {
        self.0.load_state().await
    }
    async fn save(&self, rule_id: &str, state: &RuleState) -> Result<(), Error> {
        self.0.save_state(rule_id, state).await
    }
}

#[async_trait]
impl Recorder for BackendStore {
    async fn record(&self, record: &ExecutionRecord) -> Result<(), Error> {
        self.0.record_execution(record).await
    }
}

/// State in memory (tests, benchmarks); `fail_saves` simulates a store that is down.
#[derive(Debug, Default)]
pub struct MemoryStore {
    pub states: Mutex<BTreeMap<String, RuleState>>,
    /// Every save, in order (rule id, state).
    pub saves: Mutex<Vec<(String, RuleState)>>,
    pub records: Mutex<Vec<ExecutionRecord>>,
    /// Keep only the states, not the history of saves and records (benchmarks).
    pub no_history: bool,
    /// While true, every save fails.
    pub fail_saves: AtomicBool,
}

impl MemoryStore {
    /// A store already holding `states`.
    pub fn with_states(states: BTreeMap<String, RuleState>) -> MemoryStore {
        MemoryStore {
            states: Mutex::new(states),
            ..MemoryStore::default()
        }
    }

    /// The current state of one rule.
    pub fn state(&self, rule_id: &str) -> Option<RuleState> {
        self.states.lock().ok()?.get(rule_id).cloned()
    }

    /// Every record so far.
    pub fn records(&self) -> Vec<ExecutionRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

fn poisoned() -> Error {
    Error::Request {
        operation: "memory store".to_string(),
        reason: "lock poisoned".to_string(),
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn load_all(&self) -> Result<BTreeMap<String, RuleState>, Error> {
        Ok(self.states.lock().map_err(|_| poisoned())?.clone())
    }
    async fn save(&self, rule_id: &str, state: &RuleState) -> Result<(), Error> {
        if self.fail_saves.load(Ordering::SeqCst) {
            return Err(Error::Io {
                path: "memory store".to_string(),
                source: std::io::Error::other("store unavailable"),
            });
        }
        self.states
            .lock()
            .map_err(|_| poisoned())?
            .insert(rule_id.to_string(), state.clone());
        if !self.no_history {
            self.saves
                .lock()
                .map_err(|_| poisoned())?
                .push((rule_id.to_string(), state.clone()));
        }
        Ok(())
    }
}

#[async_trait]
impl Recorder for MemoryStore {
    async fn record(&self, record: &ExecutionRecord) -> Result<(), Error> {
        if !self.no_history {
            self.records
                .lock()
                .map_err(|_| poisoned())?
                .push(record.clone());
        }
        Ok(())
    }
}

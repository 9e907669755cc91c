//! Rule state and execution records, written in the background through one `_bulk` writer:
//! an execution hands its documents over and goes on, nothing on the execution path waits for
//! a request, let alone for an index refresh.
//!
//! Documents are flushed when [`FlushPolicy::max_docs`] are buffered, [`FlushPolicy::interval`]
//! after the first one arrived, and on [`Writer::flush`] (shutdown, before reading state back).
//! A rule's state replaces its previous unflushed state (only the latest matters). A request the
//! cluster refuses or cannot take (unreachable, 429, 5xx, rejected items) keeps its documents
//! for the next attempt, with a growing pause; an item refused for good (a mapping error) is
//! logged and dropped. Losing the buffer in a crash is safe: a rule's state only ever moves
//! forward after its alerts were acknowledged, so the windows since the last flushed state run
//! again and their alerts come back as duplicates (409), not as new alerts.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use elasticsearch::http::Method;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::requests;
use super::responses::{describe_error, BulkResponse};
use super::transport::{ok_or_error, ReqBody, Transport};
use crate::backend::Error;

/// When the background writer sends what it holds.
#[derive(Debug, Clone, Copy)]
pub struct FlushPolicy {
    /// Documents buffered before a flush.
    pub max_docs: usize,
    /// Longest time a document waits.
    pub interval: Duration,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        FlushPolicy {
            max_docs: 500,
            interval: Duration::from_secs(1),
        }
    }
}

/// Execution records kept while the cluster cannot take them; older ones are dropped past this
/// (states are one per rule, so they are bounded anyway).
const MAX_BUFFERED_RECORDS: usize = 100_000;

/// Longest pause between attempts while the cluster refuses the writes.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One document to index: `_index`, `_id` (a state: the rule id), the source.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub(super) index: String,
    pub(super) id: String,
    /// A rule state (replaces an unflushed earlier state of the same rule).
    pub(super) replaces: bool,
    pub(super) doc: Value,
}

enum Msg {
    Put(Pending),
    Flush(oneshot::Sender<Result<(), Error>>),
}

/// The handle the backend holds; the task starts with the first document.
#[derive(Default)]
pub(super) struct Writer {
    policy: FlushPolicy,
    tx: OnceLock<mpsc::UnboundedSender<Msg>>,
}

impl Writer {
    pub(super) fn new(policy: FlushPolicy) -> Writer {
        Writer {
            policy,
            tx: OnceLock::new(),
        }
    }

    fn sender(&self, transport: &Arc<Transport>) -> &mpsc::UnboundedSender<Msg> {
        self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run(transport.clone(), self.policy, rx));
            tx
        })
    }

    /// Hands a document over; never waits.
    pub(super) fn put(&self, transport: &Arc<Transport>, p: Pending) -> Result<(), Error> {
        self.sender(transport)
            .send(Msg::Put(p))
            .map_err(|_| Error::Unreachable("the state writer has stopped".into()))
    }

    /// Sends everything handed over so far; the error of the last attempt when some of it
    /// could not be written (it stays buffered and is tried again).
    pub(super) async fn flush(&self) -> Result<(), Error> {
        let Some(tx) = self.tx.get() else {
            return Ok(()); // nothing was ever handed over
        };
        let (done, wait) = oneshot::channel();
        tx.send(Msg::Flush(done))
            .map_err(|_| Error::Unreachable("the state writer has stopped".into()))?;
        wait.await
            .map_err(|_| Error::Unreachable("the state writer has stopped".into()))?
    }
}

async fn run(transport: Arc<Transport>, policy: FlushPolicy, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut buf: Vec<Pending> = Vec::new();
    let mut deadline: Option<Instant> = None;
    let mut backoff = policy.interval;
    loop {
        let msg = match deadline {
            Some(d) => tokio::select! {
                m = rx.recv() => m,
                _ = tokio::time::sleep_until(d) => {
                    deadline = None;
                    match send(&transport, &mut buf).await {
                        Ok(()) => backoff = policy.interval,
                        Err(e) => {
                            tracing::warn!(error = %e, documents = buf.len(), retry_in_ms = backoff.as_millis() as u64, "state and execution records not written yet, retrying");
                            deadline = Some(Instant::now() + backoff);
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                    continue;
                }
            },
            None => rx.recv().await,
        };
        match msg {
            Some(Msg::Put(p)) => {
                push(&mut buf, p);
                if buf.len() >= policy.max_docs {
                    if let Err(e) = send(&transport, &mut buf).await {
                        tracing::warn!(error = %e, documents = buf.len(), "state and execution records not written yet, retrying");
                        deadline = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
                if deadline.is_none() && !buf.is_empty() {
                    deadline = Some(Instant::now() + policy.interval);
                }
            }
            Some(Msg::Flush(done)) => {
                let r = send(&transport, &mut buf).await;
                deadline = (!buf.is_empty()).then(|| Instant::now() + backoff);
                let _ = done.send(r);
            }
            None => {
                // The backend is gone: a last attempt.
                if let Err(e) = send(&transport, &mut buf).await {
                    tracing::error!(error = %e, documents = buf.len(), "state and execution records lost at shutdown; the windows run again at the next start");
                }
                return;
            }
        }
    }
}

fn push(buf: &mut Vec<Pending>, p: Pending) {
    if p.replaces {
        if let Some(old) = buf
            .iter_mut()
            .find(|o| o.replaces && o.id == p.id && o.index == p.index)
        {
            *old = p;
            return;
        }
    }
    buf.push(p);
    let records = buf.iter().filter(|p| !p.replaces).count();
    if records > MAX_BUFFERED_RECORDS {
        if let Some(i) = buf.iter().position(|p| !p.replaces) {
            buf.remove(i);
            tracing::warn!(
                kept = MAX_BUFFERED_RECORDS,
                "execution record dropped: the cluster has not taken records for a long time"
            );
        }
    }
}

/// One `_bulk` of everything buffered; what is written (or refused for good) leaves `buf`.
async fn send(transport: &Transport, buf: &mut Vec<Pending>) -> Result<(), Error> {
    if buf.is_empty() {
        return Ok(());
    }
    let op = "write state and execution records";
    let body = requests::bulk_index_body(
        buf.iter()
            .map(|p| (p.index.as_str(), p.id.as_str(), &p.doc)),
    );
    let r = transport
        .call(
            op,
            Method::Post,
            "/_bulk",
            Some(ReqBody::NdJson(body)),
            None,
        )
        .await?;
    let v = ok_or_error(op, r)?;
    let resp: BulkResponse = serde_json::from_value(v).map_err(|e| Error::Request {
        operation: op.into(),
        reason: format!("unexpected response: {e}"),
    })?;
    if resp.items.len() != buf.len() {
        return Err(Error::Request {
            operation: op.into(),
            reason: format!("{} items answered for {} sent", resp.items.len(), buf.len()),
        });
    }
    let mut keep = Vec::new();
    let mut retry_reason = None;
    for (item, p) in resp.items.into_iter().zip(buf.drain(..)) {
        let Some(i) = item.into_values().next() else {
            keep.push(p);
            continue;
        };
        match i.status {
            200..=299 => {}
            429 | 500..=599 => {
                retry_reason = i.error.as_ref().map(describe_error);
                keep.push(p);
            }
            status => {
                let reason = i
                    .error
                    .as_ref()
                    .map(describe_error)
                    .unwrap_or_else(|| format!("status {status}"));
                tracing::error!(index = %p.index, id = %p.id, reason, "document refused by the cluster, dropped");
            }
        }
    }
    *buf = keep;
    match retry_reason {
        Some(reason) if !buf.is_empty() => Err(Error::Request {
            operation: op.into(),
            reason,
        }),
        _ if !buf.is_empty() => Err(Error::Request {
            operation: op.into(),
            reason: "items not acknowledged".into(),
        }),
        _ => Ok(()),
    }
}

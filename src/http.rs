//! The operations endpoint (axum): `/healthz` (process up), `/readyz` (backend reachable and
//! rules loaded), `/metrics` (Prometheus text format).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// What the endpoint reports, shared with the scheduler.
#[derive(Debug, Default)]
pub struct Health {
    pub metrics: Metrics,
    /// Rules loaded and scheduled.
    pub rules_loaded: AtomicBool,
    /// The last backend operation succeeded.
    pub backend_ok: AtomicBool,
    /// Rules the cluster cannot run (by rule id: name and reason), reported once and not run.
    pub not_runnable: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
}

/// The router, for serving and for tests.
pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

async fn readyz(State(h): State<Arc<Health>>) -> impl IntoResponse {
    let rules = h.rules_loaded.load(Ordering::Relaxed);
    let backend = h.backend_ok.load(Ordering::Relaxed);
    let mut body = format!("rules_loaded={rules} backend_reachable={backend}\n");
    let not_runnable = crate::sync::lock(&h.not_runnable);
    if !not_runnable.is_empty() {
        body.push_str(&format!("not_runnable={}\n", not_runnable.len()));
        for (id, why) in not_runnable.iter() {
            body.push_str(&format!("not runnable on this cluster: rule {id} {why}\n"));
        }
    }
    if rules && backend {
        (StatusCode::OK, body)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

async fn metrics(State(h): State<Arc<Health>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        h.metrics.render(),
    )
}

/// Binds `addr` and serves until `cancel` fires. Returns the bound address (port 0 = any).
pub async fn serve(
    addr: &str,
    health: Arc<Health>,
    cancel: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(health);
    let handle = tokio::spawn(async move {
        let shutdown = async move { cancel.cancelled().await };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "http endpoint stopped");
        }
    });
    Ok((local, handle))
}

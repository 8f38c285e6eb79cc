//! `lnsync serve`: the scheduled pulls of `run --schedule` plus the push endpoint on a local
//! port, in one process (R31 on premises).
//!
//! The HTTP server hands every request to the same [`PushRouter`] the push Lambda uses; the
//! jobs it enqueues go to the process's in-process queue and wake the worker at once, so a
//! pushed change is synced within moments instead of at the next tick. Shutdown stops the
//! listener and the scheduled loop together; jobs in progress finish.

use crate::config::{Config, SecretSource};
use crate::jobs::JobOutcome;
use crate::push::router::PushEnvironment;
use crate::push::{HttpRequest, MAX_BODY_BYTES, PushRouter};
use crate::runner::Connector;
use crate::scheduled::{Intake, SchedulePacing, ScheduleSummary, run_scheduled_with};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use lnsync_core::model::Job;
use lnsync_core::ports::{Clock, StateStore};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

/// Reads each environment's LN webhook secret (a missing file or variable is an error naming
/// the environment, so `serve` fails at start rather than refusing every webhook later).
pub fn push_environments(
    config: &Config,
) -> Result<HashMap<lnsync_core::ids::EnvironmentId, PushEnvironment>, String> {
    let mut out = HashMap::new();
    let mut problems = Vec::new();
    for env in &config.environments {
        let secret = match env.ln.webhook_secret.as_ref().map(SecretSource::read) {
            None => None,
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                problems.push(format!("environment {}: LN webhook secret: {e}", env.id));
                None
            }
        };
        out.insert(
            env.id.clone(),
            PushEnvironment {
                ln_webhook_secret: secret,
            },
        );
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems.join("; "))
    }
}

/// The push endpoint as an axum app over `router`.
pub fn app(router: Arc<PushRouter>) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        // One byte over the router's own limit, so the router answers an oversized body
        // itself (413) while a body without end is cut off by axum (413 as well).
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES + 1))
        .with_state(router)
}

async fn handle(
    State(router): State<Arc<PushRouter>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = move |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let reply = router
        .handle(&HttpRequest {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query(),
            body: &body,
            header: &header,
        })
        .await;
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, reply.content_type)],
        reply.body,
    )
        .into_response()
}

/// Serves the push endpoint on `listener` and runs the scheduled pulls until `shutdown`.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    config: &Config,
    store: Arc<dyn StateStore>,
    connector: Arc<dyn Connector>,
    clock: Arc<dyn Clock>,
    listener: tokio::net::TcpListener,
    pacing: SchedulePacing,
    shutdown: impl Future<Output = ()>,
    on_job: impl Fn(&Job, &JobOutcome),
) -> Result<ScheduleSummary, String> {
    let environments = push_environments(config)?;
    let intake = Intake::new(pacing.queue);
    let router = Arc::new(PushRouter {
        store: store.clone(),
        queue: intake.queue(),
        clock: clock.clone(),
        environments,
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut http_stop = stop_rx.clone();
    let server = axum::serve(listener, app(router)).with_graceful_shutdown(async move {
        let _ = http_stop.wait_for(|s| *s).await;
    });
    let server = tokio::spawn(async move { server.await });
    let mut loop_stop = stop_rx;
    let scheduled = run_scheduled_with(
        config,
        store,
        &intake,
        connector,
        clock,
        pacing,
        async move {
            let _ = loop_stop.wait_for(|s| *s).await;
        },
        on_job,
    );
    tokio::pin!(scheduled);
    tokio::pin!(shutdown);
    let summary = tokio::select! {
        summary = &mut scheduled => summary,
        () = &mut shutdown => {
            let _ = stop_tx.send(true);
            scheduled.await
        }
    };
    let _ = stop_tx.send(true);
    match server.await {
        Ok(Ok(())) => Ok(summary),
        Ok(Err(e)) => Err(format!("push endpoint: {e}")),
        Err(e) => Err(format!("push endpoint: {e}")),
    }
}

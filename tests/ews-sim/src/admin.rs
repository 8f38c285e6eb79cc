//! The admin HTTP API under `/_sim/` (documented in docs/ews-simulator.md). It mirrors the
//! Rust `SimHandle` for tests that drive the standalone binary.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::config::PushConfig;
use crate::faults::FaultRule;
use crate::meetings::Response as MeetingResponse;
use crate::model::ItemId;
use crate::seed::{Seed, SeedContact, resolve_named};
use crate::sim::SimHandle;
use crate::sim_calendar::{EventEdit, NewEvent};

pub fn routes() -> Router<SimHandle> {
    Router::new()
        .route("/_sim/health", get(health))
        .route("/_sim/reset", post(reset))
        .route("/_sim/seed", post(seed))
        .route("/_sim/state", get(state))
        .route(
            "/_sim/faults",
            get(list_faults).post(add_faults).delete(clear_faults),
        )
        .route("/_sim/requests", get(list_requests).delete(clear_requests))
        .route("/_sim/sync-states/invalidate", post(invalidate))
        .route("/_sim/mailboxes", post(add_mailbox))
        .route("/_sim/mailboxes/{smtp}/contacts", post(user_create_contact))
        .route(
            "/_sim/mailboxes/{smtp}/items/{id}",
            delete(user_delete_item).put(user_replace_contact),
        )
        .route("/_sim/throttled/{smtp}", get(throttled))
        .route("/_sim/mailboxes/{smtp}/events", post(create_event))
        .route(
            "/_sim/mailboxes/{smtp}/events/{id}",
            axum::routing::patch(edit_event).delete(delete_event),
        )
        .route(
            "/_sim/mailboxes/{smtp}/events/{id}/respond",
            post(respond_event),
        )
        .route("/_sim/mailboxes/{smtp}/calendar", get(calendar))
        .route("/_sim/clock", get(clock).post(move_clock))
        .route("/_sim/push/subscriptions", get(list_subscriptions))
        .route(
            "/_sim/push/subscriptions/{id}",
            get(get_subscription).delete(drop_subscription),
        )
        .route("/_sim/push/notifications", get(list_notifications))
        .route("/_sim/push/watermarks/expire", post(expire_watermarks))
        .route("/_sim/push/watermarks/{smtp}", get(current_watermark))
        .route("/_sim/push/config", get(push_config).post(set_push_config))
        .route("/_sim/mailboxes/{smtp}/events", get(mailbox_events))
}

fn error(status: StatusCode, e: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": e.to_string() }))).into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn reset(State(h): State<SimHandle>) -> StatusCode {
    h.reset();
    StatusCode::NO_CONTENT
}

async fn seed(State(h): State<SimHandle>, Json(s): Json<Seed>) -> Response {
    match h.seed(&s) {
        Ok(report) => Json(report).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn state(State(h): State<SimHandle>) -> Json<serde_json::Value> {
    Json(h.dump())
}

async fn list_faults(State(h): State<SimHandle>) -> Json<Vec<FaultRule>> {
    Json(h.faults())
}

/// Accepts one rule or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(FaultRule),
    Many(Vec<FaultRule>),
}

async fn add_faults(State(h): State<SimHandle>, Json(body): Json<OneOrMany>) -> StatusCode {
    match body {
        OneOrMany::One(r) => h.add_fault(r),
        OneOrMany::Many(rs) => rs.into_iter().for_each(|r| h.add_fault(r)),
    }
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(h): State<SimHandle>) -> StatusCode {
    h.clear_faults();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct RequestsQuery {
    #[serde(default)]
    bodies: Option<bool>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    mailbox: Option<String>,
    /// `incoming` (default: client requests only, so counts stay comparable), `outgoing`
    /// (push notifications) or `all`.
    #[serde(default)]
    direction: Option<String>,
}

async fn list_requests(State(h): State<SimHandle>, Query(q): Query<RequestsQuery>) -> Response {
    let records = match q.direction.as_deref() {
        None | Some("incoming") => h.requests(),
        Some("outgoing") => h.notifications(),
        Some("all") => h.request_log(),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("direction must be incoming, outgoing or all, not {other:?}"),
            );
        }
    };
    let with_bodies = q.bodies.unwrap_or(false);
    let list: Vec<serde_json::Value> = records
        .into_iter()
        .filter(|r| {
            q.operation
                .as_deref()
                .is_none_or(|o| r.operation.as_deref() == Some(o))
        })
        .filter(|r| {
            q.mailbox.as_deref().is_none_or(|m| {
                r.mailbox
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(m))
            })
        })
        .map(|mut r| {
            if !with_bodies {
                r.body.clear();
            }
            serde_json::to_value(r).unwrap_or_default()
        })
        .collect();
    Json(json!({ "count": list.len(), "requests": list })).into_response()
}

async fn clear_requests(State(h): State<SimHandle>) -> StatusCode {
    h.clear_requests();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize, Default)]
struct InvalidateBody {
    #[serde(default)]
    mailbox: Option<String>,
}

async fn invalidate(
    State(h): State<SimHandle>,
    body: Option<Json<InvalidateBody>>,
) -> Json<serde_json::Value> {
    let b = body.map(|Json(b)| b).unwrap_or_default();
    let n = h.invalidate_sync_states(b.mailbox.as_deref());
    Json(json!({ "invalidated": n }))
}

#[derive(Deserialize)]
struct NewMailbox {
    smtp: String,
}

async fn add_mailbox(State(h): State<SimHandle>, Json(m): Json<NewMailbox>) -> Response {
    match h.add_mailbox(&m.smtp) {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

async fn user_create_contact(
    State(h): State<SimHandle>,
    Path(smtp): Path<String>,
    Json(c): Json<SeedContact>,
) -> Response {
    let folder = {
        let st = h.lock();
        match st.store.mailbox(&smtp) {
            Ok(mb) => resolve_named(mb, &c.folder),
            Err(e) => return error(StatusCode::NOT_FOUND, e),
        }
    };
    let Some(folder) = folder else {
        return error(
            StatusCode::NOT_FOUND,
            format!("folder {:?} not found", c.folder),
        );
    };
    let item = match c.to_item() {
        Ok(i) => i,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match h.user_create_item(&smtp, &folder, item) {
        Ok((id, ck)) => (
            StatusCode::CREATED,
            Json(json!({ "id": id, "change_key": ck })),
        )
            .into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e),
    }
}

/// Replaces a contact's content (as a user editing every field), keeping it in its folder.
async fn user_replace_contact(
    State(h): State<SimHandle>,
    Path((smtp, id)): Path<(String, String)>,
    Json(c): Json<SeedContact>,
) -> Response {
    let item = match c.to_item() {
        Ok(i) => i,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match h.user_update_item(&smtp, &ItemId(id), |it| *it = item) {
        Ok(ck) => Json(json!({ "change_key": ck })).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e),
    }
}

async fn user_delete_item(
    State(h): State<SimHandle>,
    Path((smtp, id)): Path<(String, String)>,
) -> Response {
    match h.user_delete_item(&smtp, &ItemId(id)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e),
    }
}

async fn throttled(
    State(h): State<SimHandle>,
    Path(smtp): Path<String>,
) -> Json<serde_json::Value> {
    let list: Vec<serde_json::Value> = h
        .throttled_responses(&smtp)
        .into_iter()
        .map(|(t, ms)| json!({ "time": t, "back_off_ms": ms }))
        .collect();
    Json(json!({ "mailbox": smtp, "throttled": list }))
}

fn sim_error(e: crate::error::SimError) -> Response {
    use crate::error::SimError as E;
    let status = match e {
        E::InvalidEvent(_) | E::InvalidSeed(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::NOT_FOUND,
    };
    error(status, e)
}

async fn create_event(
    State(h): State<SimHandle>,
    Path(smtp): Path<String>,
    Json(ev): Json<NewEvent>,
) -> Response {
    match h.user_create_event(&smtp, ev) {
        Ok(c) => (StatusCode::CREATED, Json(c)).into_response(),
        Err(e) => sim_error(e),
    }
}

async fn edit_event(
    State(h): State<SimHandle>,
    Path((smtp, id)): Path<(String, String)>,
    Json(edit): Json<EventEdit>,
) -> Response {
    match h.user_edit_event(&smtp, &ItemId(id), edit) {
        Ok(ck) => Json(json!({ "change_key": ck })).into_response(),
        Err(e) => sim_error(e),
    }
}

#[derive(Deserialize)]
struct SendQuery {
    #[serde(default)]
    send: Option<bool>,
}

async fn delete_event(
    State(h): State<SimHandle>,
    Path((smtp, id)): Path<(String, String)>,
    Query(q): Query<SendQuery>,
) -> Response {
    match h.user_delete_event(&smtp, &ItemId(id), q.send.unwrap_or(true)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => sim_error(e),
    }
}

#[derive(Deserialize)]
struct RespondBody {
    response: MeetingResponse,
    #[serde(default)]
    send: Option<bool>,
}

async fn respond_event(
    State(h): State<SimHandle>,
    Path((smtp, id)): Path<(String, String)>,
    Json(b): Json<RespondBody>,
) -> Response {
    match h.user_respond(&smtp, &ItemId(id), b.response, b.send.unwrap_or(true)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => sim_error(e),
    }
}

#[derive(Deserialize)]
struct WindowQuery {
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
}

async fn calendar(
    State(h): State<SimHandle>,
    Path(smtp): Path<String>,
    Query(q): Query<WindowQuery>,
) -> Response {
    match h.calendar_view(&smtp, q.start, q.end) {
        Ok(events) => Json(json!({ "mailbox": smtp, "events": events })).into_response(),
        Err(e) => sim_error(e),
    }
}

async fn clock(State(h): State<SimHandle>) -> Json<serde_json::Value> {
    Json(json!({ "now": h.now() }))
}

/// `{"advance_secs": n}` moves the clock by n seconds; `{"now": "…"}` sets it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    #[serde(default)]
    advance_secs: Option<i64>,
    #[serde(default)]
    now: Option<chrono::DateTime<chrono::Utc>>,
}

async fn move_clock(
    State(h): State<SimHandle>,
    Json(b): Json<ClockBody>,
) -> Json<serde_json::Value> {
    if let Some(t) = b.now {
        h.set_clock(t);
    }
    if let Some(s) = b.advance_secs {
        h.advance_clock(chrono::TimeDelta::seconds(s));
    }
    Json(json!({ "now": h.now() }))
}

// ---------------------------------------------------------------- push

async fn list_subscriptions(State(h): State<SimHandle>) -> Json<serde_json::Value> {
    Json(json!({ "subscriptions": h.subscriptions() }))
}

async fn get_subscription(State(h): State<SimHandle>, Path(id): Path<String>) -> Response {
    match h.subscription(&id) {
        Some(s) => Json(s).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no subscription {id}")),
    }
}

/// The server "stops calling": the subscription ends without a word to the subscriber.
async fn drop_subscription(State(h): State<SimHandle>, Path(id): Path<String>) -> Response {
    if h.drop_subscription(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("no live subscription {id}"))
    }
}

#[derive(Deserialize)]
struct NotificationsQuery {
    #[serde(default)]
    bodies: Option<bool>,
    #[serde(default)]
    subscription: Option<String>,
}

async fn list_notifications(
    State(h): State<SimHandle>,
    Query(q): Query<NotificationsQuery>,
) -> Json<serde_json::Value> {
    let records = match &q.subscription {
        Some(id) => h.notifications_for(id),
        None => h.notifications(),
    };
    let list: Vec<serde_json::Value> = records
        .into_iter()
        .map(|mut r| {
            if !q.bodies.unwrap_or(false) {
                r.body.clear();
            }
            serde_json::to_value(r).unwrap_or_default()
        })
        .collect();
    Json(json!({ "count": list.len(), "notifications": list }))
}

async fn expire_watermarks(
    State(h): State<SimHandle>,
    body: Option<Json<InvalidateBody>>,
) -> Json<serde_json::Value> {
    let b = body.map(|Json(b)| b).unwrap_or_default();
    Json(json!({ "expired": h.expire_watermarks(b.mailbox.as_deref()) }))
}

async fn current_watermark(State(h): State<SimHandle>, Path(smtp): Path<String>) -> Response {
    match h.current_watermark(&smtp) {
        Ok(w) => Json(json!({ "mailbox": smtp, "watermark": w })).into_response(),
        Err(e) => sim_error(e),
    }
}

async fn push_config(State(h): State<SimHandle>) -> Json<PushConfig> {
    Json(h.push_config())
}

/// A partial `PushConfig`: only the fields given change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushConfigPatch {
    #[serde(default)]
    minute_ms: Option<u64>,
    #[serde(default)]
    retry_base_ms: Option<u64>,
    #[serde(default)]
    request_timeout_ms: Option<u64>,
    #[serde(default)]
    max_events_per_notification: Option<usize>,
    #[serde(default)]
    watermark_retention_events: Option<usize>,
    #[serde(default)]
    watermark_retention_secs: Option<u64>,
    #[serde(default)]
    folder_events: Option<bool>,
    #[serde(default)]
    max_subscriptions_per_mailbox: Option<usize>,
}

async fn set_push_config(
    State(h): State<SimHandle>,
    Json(p): Json<PushConfigPatch>,
) -> Json<PushConfig> {
    h.update_push_config(|c| {
        if let Some(v) = p.minute_ms {
            c.minute_ms = v;
        }
        if let Some(v) = p.retry_base_ms {
            c.retry_base_ms = v;
        }
        if let Some(v) = p.request_timeout_ms {
            c.request_timeout_ms = v;
        }
        if let Some(v) = p.max_events_per_notification {
            c.max_events_per_notification = v;
        }
        if let Some(v) = p.watermark_retention_events {
            c.watermark_retention_events = v;
        }
        if let Some(v) = p.watermark_retention_secs {
            c.watermark_retention_secs = v;
        }
        if let Some(v) = p.folder_events {
            c.folder_events = v;
        }
        if let Some(v) = p.max_subscriptions_per_mailbox {
            c.max_subscriptions_per_mailbox = v;
        }
    });
    Json(h.push_config())
}

async fn mailbox_events(State(h): State<SimHandle>, Path(smtp): Path<String>) -> Response {
    match h.mailbox_events(&smtp) {
        Ok(events) => Json(json!({ "mailbox": smtp, "events": events })).into_response(),
        Err(e) => sim_error(e),
    }
}

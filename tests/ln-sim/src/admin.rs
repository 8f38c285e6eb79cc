//! The admin API under `/_sim/`: reset, seed, state dump, faults, request log, token revocation,
//! clock control, push webhooks and LN-side edits for tests and the demo. Not authenticated and not logged.
//! Documented in `docs/ln-simulator.md`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::ODataError;
use crate::faults::FaultRule;
use crate::model::{Attendee, Contact, Employee, Settings, SyncUser};
use crate::seed::{Seed, SeedActivity, strip_annotations};
use crate::server::{AppState, json_response, reset};
use crate::store::{
    IfMatch, NewActivity, StoreError, decode, render_activity, render_attendee, render_contact,
};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/reset", post(reset_all))
        .route("/seed", post(seed))
        .route("/state", get(state_dump))
        .route(
            "/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/requests", get(requests).delete(clear_requests))
        .route("/revoke-tokens", post(revoke_tokens))
        .route("/tokens", get(tokens))
        .route("/clock", get(clock).post(set_clock))
        .route("/webhooks", get(webhooks).post(configure_webhook))
        .route(
            "/webhooks/deliveries",
            get(webhook_deliveries).delete(clear_webhook_deliveries),
        )
        .route("/companies/{company}/settings", put(put_settings))
        .route("/companies/{company}/sync-users/{user}", put(put_sync_user))
        .route(
            "/companies/{company}/employees/{employee}",
            put(put_employee),
        )
        .route(
            "/companies/{company}/contacts/{contact}",
            put(put_contact).patch(patch_contact).delete(delete_contact),
        )
        .route("/companies/{company}/activities", post(post_activity))
        .route(
            "/companies/{company}/activities/{activity}",
            patch(patch_activity).delete(delete_activity),
        )
        .route(
            "/companies/{company}/activities/{activity}/attendees",
            post(post_attendee),
        )
        .route(
            "/companies/{company}/activities/{activity}/attendees/{line}",
            patch(patch_attendee).delete(delete_attendee),
        )
}

type AdminResult = Result<Response, ODataError>;

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ODataError> {
    Ok(decode(json_body(body)?)?)
}

fn json_body(body: &Bytes) -> Result<Value, ODataError> {
    serde_json::from_slice(body)
        .map_err(|e| ODataError::bad_request(format!("the request body is not valid JSON: {e}")))
}

fn ok(value: Value) -> AdminResult {
    Ok(json_response(StatusCode::OK, value))
}

async fn health(State(state): State<AppState>) -> AdminResult {
    ok(json!({
        "status": "ok",
        "baseUrl": &*state.base_url,
        "serviceRoot": state.service_root(),
        "companies": state.store.companies(),
    }))
}

async fn reset_all(State(state): State<AppState>) -> AdminResult {
    reset(&state);
    ok(json!({"status": "reset"}))
}

async fn seed(State(state): State<AppState>, body: Bytes) -> AdminResult {
    let mut value = json_body(&body)?;
    strip_annotations(&mut value);
    let seed: Seed = decode(value)?;
    state.store.seed(&seed)?;
    ok(json!({"companies": seed.companies.iter().map(|c| &c.company).collect::<Vec<_>>()}))
}

#[derive(Debug, Deserialize)]
struct CompanyQuery {
    company: Option<String>,
}

async fn state_dump(State(state): State<AppState>, Query(q): Query<CompanyQuery>) -> AdminResult {
    match q.company {
        Some(company) => ok(state.store.snapshot(&company)?),
        None => {
            let companies = state
                .store
                .companies()
                .iter()
                .map(|c| state.store.snapshot(c))
                .collect::<Result<Vec<_>, _>>()?;
            ok(json!({ "companies": companies }))
        }
    }
}

async fn list_faults(State(state): State<AppState>) -> AdminResult {
    let rules: Vec<Value> = state
        .faults
        .list()
        .into_iter()
        .map(|(id, rule)| json!({"id": id, "rule": rule}))
        .collect();
    ok(json!(rules))
}

async fn add_fault(State(state): State<AppState>, body: Bytes) -> AdminResult {
    let rule: FaultRule = parse(&body)?;
    let id = state.faults.add(rule);
    Ok(json_response(StatusCode::CREATED, json!({ "id": id })))
}

async fn clear_faults(State(state): State<AppState>) -> AdminResult {
    state.faults.clear();
    ok(json!({"status": "cleared"}))
}

async fn requests(State(state): State<AppState>) -> AdminResult {
    ok(json!(state.log.records()))
}

async fn clear_requests(State(state): State<AppState>) -> AdminResult {
    state.log.clear();
    ok(json!({"status": "cleared"}))
}

async fn revoke_tokens(State(state): State<AppState>) -> AdminResult {
    state.tokens.revoke_all();
    ok(json!({"status": "revoked"}))
}

async fn tokens(State(state): State<AppState>) -> AdminResult {
    ok(json!({"issued": state.tokens.issued_count()}))
}

fn clock_state(state: &AppState) -> Value {
    let clock = state.store.clock();
    json!({"now": clock.now(), "frozen": clock.is_frozen()})
}

async fn clock(State(state): State<AppState>) -> AdminResult {
    ok(clock_state(&state))
}

/// Body of `POST /_sim/clock`; applied in field order: reset, set, freezeAt, freeze, advance.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockChange {
    #[serde(default)]
    reset: bool,
    #[serde(default)]
    set: Option<DateTime<Utc>>,
    #[serde(default)]
    freeze_at: Option<DateTime<Utc>>,
    #[serde(default)]
    freeze: bool,
    #[serde(default)]
    advance_ms: Option<i64>,
}

async fn set_clock(State(state): State<AppState>, body: Bytes) -> AdminResult {
    let change: ClockChange = parse(&body)?;
    let clock = state.store.clock();
    if change.reset {
        clock.reset();
    }
    if let Some(at) = change.set {
        clock.set(at);
    }
    if let Some(at) = change.freeze_at {
        clock.freeze_at(at);
    }
    if change.freeze {
        clock.freeze();
    }
    if let Some(ms) = change.advance_ms {
        clock.advance(Duration::milliseconds(ms));
    }
    ok(clock_state(&state))
}

async fn webhooks(State(state): State<AppState>) -> AdminResult {
    ok(json!({ "endpoints": state.webhooks.statuses(&state.store) }))
}

/// Body of `POST /_sim/webhooks`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WebhookSetting {
    company: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    /// Omitted means enable: posting an endpoint is asking for pushes.
    #[serde(default = "enabled_by_default")]
    enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

fn required(field: &str, value: Option<&str>) -> Result<String, StoreError> {
    value
        .map(str::to_string)
        .ok_or_else(|| StoreError::Validation {
            field: field.to_string(),
            message: "is required to enable the webhook".into(),
        })
}

async fn configure_webhook(State(state): State<AppState>, body: Bytes) -> AdminResult {
    let setting: WebhookSetting = parse(&body)?;
    let company = setting.company;
    if setting.enabled {
        let url = required("url", setting.url.as_deref())?;
        let secret = required("secret", setting.secret.as_deref())?;
        state.store.enable_webhook(&company, &url, &secret)?;
    } else {
        state.store.disable_webhook(&company)?;
    }
    ok(json!({
        "company": company,
        "enabled": setting.enabled,
        "status": state.webhooks.status(&state.store, &company),
    }))
}

async fn webhook_deliveries(State(state): State<AppState>) -> AdminResult {
    ok(json!(state.webhooks.deliveries()))
}

async fn clear_webhook_deliveries(State(state): State<AppState>) -> AdminResult {
    state.webhooks.clear_deliveries();
    ok(json!({"status": "cleared"}))
}

async fn put_settings(
    State(state): State<AppState>,
    Path(company): Path<String>,
    body: Bytes,
) -> AdminResult {
    let settings: Settings = parse(&body)?;
    state.store.set_settings(&company, settings)?;
    ok(json!({"status": "ok"}))
}

async fn put_sync_user(
    State(state): State<AppState>,
    Path((company, user)): Path<(String, String)>,
    body: Bytes,
) -> AdminResult {
    let mut value = json_body(&body)?;
    value["user"] = json!(user);
    let user: SyncUser = decode(value)?;
    state.store.upsert_sync_user(&company, user)?;
    ok(json!({"status": "ok"}))
}

async fn put_employee(
    State(state): State<AppState>,
    Path((company, employee)): Path<(String, String)>,
    body: Bytes,
) -> AdminResult {
    let mut value = json_body(&body)?;
    value["employee"] = json!(employee);
    let employee: Employee = decode(value)?;
    state.store.upsert_employee(&company, employee)?;
    ok(json!({"status": "ok"}))
}

async fn put_contact(
    State(state): State<AppState>,
    Path((company, key)): Path<(String, String)>,
    body: Bytes,
) -> AdminResult {
    let mut value = json_body(&body)?;
    if let Value::Object(map) = &mut value {
        map.retain(|k, _| !k.starts_with('@') && k != "lastModified");
        map.insert("contact".into(), json!(key));
    }
    let contact: Contact = decode(value)?;
    let record = state.store.upsert_contact(&company, contact)?;
    ok(render_contact(&record))
}

async fn patch_contact(
    State(state): State<AppState>,
    Path((company, key)): Path<(String, String)>,
    body: Bytes,
) -> AdminResult {
    let patch: Value = parse(&body)?;
    let record = state
        .store
        .patch_contact(&company, &key, &patch, &IfMatch::Any)?;
    ok(render_contact(&record))
}

async fn delete_contact(
    State(state): State<AppState>,
    Path((company, key)): Path<(String, String)>,
) -> AdminResult {
    state.store.delete_contact(&company, &key, &IfMatch::Any)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn post_activity(
    State(state): State<AppState>,
    Path(company): Path<String>,
    body: Bytes,
) -> AdminResult {
    let seed: SeedActivity = parse(&body)?;
    let record = state.store.create_activity(
        &company,
        NewActivity {
            activity: seed.activity,
            attendees: seed.attendees,
        },
    )?;
    Ok(json_response(
        StatusCode::CREATED,
        render_activity(&record, true),
    ))
}

async fn patch_activity(
    State(state): State<AppState>,
    Path((company, key)): Path<(String, String)>,
    body: Bytes,
) -> AdminResult {
    let patch: Value = parse(&body)?;
    let record = state
        .store
        .patch_activity(&company, &key, &patch, &IfMatch::Any)?;
    ok(render_activity(&record, true))
}

async fn delete_activity(
    State(state): State<AppState>,
    Path((company, key)): Path<(String, String)>,
) -> AdminResult {
    state.store.delete_activity(&company, &key, &IfMatch::Any)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn post_attendee(
    State(state): State<AppState>,
    Path((company, activity)): Path<(String, String)>,
    body: Bytes,
) -> AdminResult {
    let attendee: Attendee = parse(&body)?;
    let change = state.store.add_attendee(&company, &activity, attendee)?;
    Ok(json_response(
        StatusCode::CREATED,
        render_attendee(&change.attendee),
    ))
}

async fn patch_attendee(
    State(state): State<AppState>,
    Path((company, activity, line)): Path<(String, String, u32)>,
    body: Bytes,
) -> AdminResult {
    let patch: Value = parse(&body)?;
    let change = state
        .store
        .patch_attendee(&company, &activity, line, &patch, &IfMatch::Any)?;
    ok(render_attendee(&change.attendee))
}

async fn delete_attendee(
    State(state): State<AppState>,
    Path((company, activity, line)): Path<(String, String, u32)>,
) -> AdminResult {
    state
        .store
        .delete_attendee(&company, &activity, line, &IfMatch::Any)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

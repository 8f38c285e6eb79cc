//! `/v1.0/subscriptions`: creating (with the `validationToken` handshake against both URLs),
//! reading, listing, renewing, deleting and reauthorizing Graph change-notification
//! subscriptions on Outlook events and contacts, as Microsoft Graph answers them. Delivery is
//! in [`crate::graph::delivery`].

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::header::CONTENT_TYPE;
use serde_json::{Map, Value};

use crate::graph::auth::{GraphCaller, authorize, check_mailbox};
use crate::graph::delivery::{ChangeType, NewSubscription, Watched, outgoing_record};
use crate::graph::endpoint::{begin_record, finish_record};
use crate::graph::error::GraphError;
use crate::graph::ids::parse_graph_folder_id;
use crate::log::{AuthKind, PushDelivery, RequestRecord};
use crate::sim::SimHandle;
use crate::state::SimState;
use crate::store::Store;

/// Longest `clientState` Graph accepts.
pub const MAX_CLIENT_STATE: usize = 128;

/// The subscription routes, with full paths (merged into the Graph front-end's router).
pub fn router() -> Router<SimHandle> {
    Router::new()
        .route("/v1.0/subscriptions", post(create).get(list))
        .route(
            "/v1.0/subscriptions/{id}",
            get(get_one).patch(update).delete(delete),
        )
        .route("/v1.0/subscriptions/{id}/reauthorize", post(reauthorize))
}

// ---------------------------------------------------------------- request log

/// An incoming subscription API call, logged when answered (the Graph front-end's record
/// shape: method, path, `Prefer`, auth, operation, mailbox, status, error code).
struct Call {
    rec: RequestRecord,
}

impl Call {
    fn start(
        handle: &SimHandle,
        operation: &'static str,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Call {
        let path = uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string());
        let mut rec = begin_record(handle, &method, path, headers, body);
        rec.operation = Some(operation.to_string());
        rec.item_count = 1;
        Call { rec }
    }

    fn set_mailbox(&mut self, mailbox: &str) {
        self.rec.mailbox = Some(mailbox.to_string());
    }

    fn caller(
        &mut self,
        handle: &SimHandle,
        headers: &HeaderMap,
    ) -> Result<GraphCaller, GraphError> {
        let caller = authorize(handle, headers);
        self.rec.auth = match &caller {
            Ok(_) => AuthKind::Bearer,
            Err(_) if headers.contains_key(header::AUTHORIZATION) => AuthKind::Rejected,
            Err(_) => AuthKind::None,
        };
        caller
    }

    fn finish(mut self, handle: &SimHandle, result: Result<Response, GraphError>) -> Response {
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                self.rec.fault_code = Some(e.code.clone());
                e.into_response()
            }
        };
        self.rec.http_status = response.status().as_u16();
        finish_record(handle, self.rec);
        response
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// `@odata.context` on this server (as the rest of the Graph front-end builds it).
fn context(headers: &HeaderMap, what: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}/v1.0/$metadata#{what}")
}

fn entity_response(headers: &HeaderMap, status: StatusCode, mut entity: Value) -> Response {
    if let Value::Object(m) = &mut entity {
        let mut out = Map::new();
        out.insert(
            "@odata.context".into(),
            Value::from(context(headers, "subscriptions/$entity")),
        );
        out.extend(std::mem::take(m));
        *m = out;
    }
    json_response(status, &entity)
}

fn invalid_request(message: impl Into<String>) -> GraphError {
    GraphError::bad_request("InvalidRequest", message)
}

fn not_found() -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        "The object was not found.",
    )
}

// ---------------------------------------------------------------- request bodies

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, GraphError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(GraphError::invalid(
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(GraphError::invalid(format!(
            "Invalid JSON in the request body: {e}"
        ))),
    }
}

/// A string property; `Ok(None)` when absent or null.
fn string_prop(m: &Map<String, Value>, name: &str) -> Result<Option<String>, GraphError> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(GraphError::invalid(format!(
            "Cannot convert the literal to the expected type 'Edm.String' for property '{name}'."
        ))),
    }
}

fn required(m: &Map<String, Value>, name: &str) -> Result<String, GraphError> {
    string_prop(m, name)?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| invalid_request(format!("Required property '{name}' is missing or empty.")))
}

fn parse_change_types(s: &str) -> Result<Vec<ChangeType>, GraphError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let c = ChangeType::parse(part).ok_or_else(|| {
            invalid_request(format!(
                "'{part}' is not a valid changeType; use created, updated and/or deleted."
            ))
        })?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

fn parse_expiration(s: &str) -> Result<DateTime<Utc>, GraphError> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            GraphError::invalid(format!(
                "Cannot convert the literal '{s}' to the expected type 'Edm.DateTimeOffset'."
            ))
        })
}

/// Outlook's lifetime rule, on the simulator clock: in the future, at most
/// `max_lifetime_minutes` ahead.
fn check_expiration(st: &SimState, t: DateTime<Utc>) -> Result<(), GraphError> {
    let now = st.store.seq.now_precise();
    let max = st.config.graph_push.max_lifetime_minutes;
    let limit = i64::try_from(max)
        .ok()
        .and_then(TimeDelta::try_minutes)
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if t <= now {
        return Err(GraphError::bad_request(
            "ExtensionError",
            "Subscription expiration must be in the future.",
        ));
    }
    if t > limit {
        return Err(GraphError::bad_request(
            "ExtensionError",
            format!("Subscription expiration can only be {max} minutes in the future."),
        ));
    }
    Ok(())
}

/// Graph calls back only to absolute URLs. (Graph also requires https; the simulator
/// accepts http so tests can listen on a local port.)
fn check_url(name: &str, url: &str) -> Result<(), GraphError> {
    let ok = reqwest::Url::parse(url).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    });
    if ok {
        Ok(())
    } else {
        Err(invalid_request(format!(
            "The {name} '{url}' is not a valid absolute https URL."
        )))
    }
}

/// Percent-decodes a path segment (`alice%40corp.example`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a `resource` names: the user and the watched collection (contact folder as the
/// client gave its id).
#[derive(Debug, PartialEq, Eq)]
enum ResourceSpec {
    Events,
    Contacts,
    ContactFolder(String),
}

fn parse_resource(resource: &str) -> Result<(String, ResourceSpec), GraphError> {
    let path = resource.trim().trim_start_matches('/');
    let segs: Vec<&str> = path.split('/').collect();
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    if lower.first() == Some(&"me") {
        return Err(invalid_request(
            "/me request is only valid with delegated authentication flow.",
        ));
    }
    let spec = match lower.as_slice() {
        ["users", _, "events"] | ["users", _, "calendar", "events"] => ResourceSpec::Events,
        ["users", _, "contacts"] => ResourceSpec::Contacts,
        ["users", _, "contactfolders", _, "contacts"] => {
            ResourceSpec::ContactFolder(percent_decode(segs[3]))
        }
        _ => {
            return Err(invalid_request(format!(
                "The resource '{resource}' is not supported for change notifications (use /users/{{id}}/events, /users/{{id}}/calendar/events, /users/{{id}}/contacts or /users/{{id}}/contactFolders/{{id}}/contacts)."
            )));
        }
    };
    let user = percent_decode(segs[1]);
    if user.is_empty() {
        return Err(invalid_request(format!(
            "The resource '{resource}' names no user."
        )));
    }
    Ok((user, spec))
}

/// Resolves the resource against the mailbox (existence, access policy, contact folder).
fn resolve_resource(
    st: &SimState,
    user: &str,
    spec: &ResourceSpec,
) -> Result<(String, Watched), GraphError> {
    let smtp = check_mailbox(st, user)?;
    let watched = match spec {
        ResourceSpec::Events => Watched::Events,
        ResourceSpec::Contacts => Watched::Contacts,
        ResourceSpec::ContactFolder(id) => {
            let folder = parse_graph_folder_id(id)?;
            let mb = st
                .store
                .mailbox(&smtp)
                .map_err(|_| GraphError::item_not_found())?;
            let is_contacts = mb
                .folders
                .get(&folder)
                .is_some_and(|f| f.folder_class.starts_with("IPF.Contact"));
            if !is_contacts {
                return Err(GraphError::item_not_found());
            }
            Watched::ContactFolder { folder }
        }
    };
    Ok((smtp, watched))
}

fn check_capacity(st: &SimState, smtp: &str) -> Result<(), GraphError> {
    let max = st.config.graph_push.max_subscriptions_per_mailbox;
    if st.graph_push.active_for(&Store::key(smtp)) >= max {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "ExtensionError",
            format!(
                "Operation: Create; Exception: [Status Code: Forbidden; Reason: The mailbox already has the maximum of {max} subscriptions.]"
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- validation handshake

/// Graph's handshake: POST `{url}?validationToken=…` (text/plain, empty body); the endpoint
/// must answer `200`, `text/plain`, with the URL-decoded token, within the timeout. Logged as
/// an outgoing `validation` record.
async fn validate_url(
    handle: &SimHandle,
    subscription_id: &str,
    mailbox: &str,
    url: &str,
) -> Result<(), GraphError> {
    // Real tokens contain spaces and colons, so an endpoint that echoes the raw
    // (still-encoded) query fails here as it would against Graph.
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        uuid::Uuid::new_v4()
    );
    let mut target = reqwest::Url::parse(url)
        .map_err(|_| invalid_request(format!("The notification URL '{url}' is invalid.")))?;
    target
        .query_pairs_mut()
        .append_pair("validationToken", &token);
    let (seq, started, timeout) = {
        let mut st = handle.lock();
        st.next_request_seq += 1;
        (
            st.next_request_seq,
            st.store.seq.now_precise(),
            Duration::from_millis(st.config.graph_push.validation_timeout_ms.max(1)),
        )
    };
    const NOT_OK: &str = "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.";
    const MISMATCH: &str = "Subscription validation request failed. Response must exactly match validationToken query parameter.";
    const TIMED_OUT: &str = "Subscription validation request timed out.";
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| invalid_request(format!("cannot build an HTTP client: {e}")))?;
    let sent = client
        .post(target.clone())
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body("")
        .send()
        .await;
    let (http_status, failure): (u16, Option<(&str, String)>) = match sent {
        Err(e) if e.is_timeout() => (
            0,
            Some((
                TIMED_OUT,
                format!("no answer within {} ms", timeout.as_millis()),
            )),
        ),
        Err(e) => (0, Some((NOT_OK, format!("no answer: {e}")))),
        Ok(r) => {
            let status = r.status().as_u16();
            let text_plain = r
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/plain"));
            match r.text().await {
                Err(e) if e.is_timeout() => (
                    status,
                    Some((TIMED_OUT, format!("reading the answer: {e}"))),
                ),
                Err(e) => (status, Some((NOT_OK, format!("reading the answer: {e}")))),
                Ok(_) if status != 200 => (status, Some((NOT_OK, format!("HTTP {status}")))),
                Ok(_) if !text_plain => (
                    status,
                    Some((MISMATCH, "answer is not text/plain".to_string())),
                ),
                Ok(body) if body != token => (
                    status,
                    Some((
                        MISMATCH,
                        format!("answer {body:?} is not the decoded token"),
                    )),
                ),
                Ok(_) => (status, None),
            }
        }
    };
    let record = outgoing_record(
        seq,
        started,
        "validation",
        mailbox,
        String::new(),
        http_status,
        PushDelivery {
            subscription_id: subscription_id.to_string(),
            url: target.to_string(),
            attempt: 1,
            events: vec!["validation".into()],
            error: failure.as_ref().map(|(_, why)| why.clone()),
        },
    );
    handle.lock().log.push(record);
    match failure {
        None => Ok(()),
        Some((message, _)) => Err(invalid_request(message)),
    }
}

// ---------------------------------------------------------------- handlers

async fn create(State(h): State<SimHandle>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut call = Call::start(
        &h,
        "subscriptions.create",
        Method::POST,
        &uri,
        &headers,
        &body,
    );
    let r = create_inner(&h, &headers, &body, &mut call).await;
    call.finish(&h, r)
}

async fn create_inner(
    h: &SimHandle,
    headers: &HeaderMap,
    body: &[u8],
    call: &mut Call,
) -> Result<Response, GraphError> {
    let caller = call.caller(h, headers)?;
    let m = parse_object(body)?;
    let change_types = parse_change_types(&required(&m, "changeType")?)?;
    let notification_url = required(&m, "notificationUrl")?;
    let resource = required(&m, "resource")?;
    let expiration = parse_expiration(&required(&m, "expirationDateTime")?)?;
    let lifecycle_url = string_prop(&m, "lifecycleNotificationUrl")?.filter(|s| !s.is_empty());
    let client_state = string_prop(&m, "clientState")?;
    if client_state
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_CLIENT_STATE)
    {
        return Err(invalid_request(format!(
            "The clientState must not exceed {MAX_CLIENT_STATE} characters."
        )));
    }
    if m.get("includeResourceData")
        .is_some_and(|v| v == &Value::Bool(true))
    {
        return Err(invalid_request(
            "Change notifications with resource data are not supported by the simulator (includeResourceData).",
        ));
    }
    check_url("notificationUrl", &notification_url)?;
    if let Some(u) = &lifecycle_url {
        check_url("lifecycleNotificationUrl", u)?;
    }
    let (user, spec) = parse_resource(&resource)?;
    call.set_mailbox(&user);
    let smtp = {
        let st = h.lock();
        let (smtp, _) = resolve_resource(&st, &user, &spec)?;
        check_expiration(&st, expiration)?;
        check_capacity(&st, &smtp)?;
        smtp
    };
    call.set_mailbox(&smtp);
    let id = uuid::Uuid::new_v4().to_string();
    // Graph validates before it creates anything: both URLs, without the lock held.
    validate_url(h, &id, &smtp, &notification_url).await?;
    if let Some(u) = &lifecycle_url {
        validate_url(h, &id, &smtp, u).await?;
    }
    let mut st = h.lock();
    // Checked again: the mailbox or the count may have changed during the handshake.
    let (smtp, watched) = resolve_resource(&st, &user, &spec)?;
    check_capacity(&st, &smtp)?;
    let key = Store::key(&smtp);
    let cursor = st
        .store
        .mailbox(&smtp)
        .map(|mb| mb.events.position())
        .map_err(|_| GraphError::item_not_found())?;
    let now = st.store.seq.now_precise();
    st.graph_push.insert(
        NewSubscription {
            id: id.clone(),
            mailbox: smtp,
            mailbox_key: key,
            resource,
            watched,
            change_types,
            notification_url,
            lifecycle_url,
            client_state,
            expiration,
            application_id: caller.client_id.clone(),
            tenant: caller.tenant.clone(),
        },
        cursor,
        now,
    );
    let entity = st
        .graph_push
        .active(&id)
        .map(|s| s.to_json())
        .ok_or_else(not_found)?;
    Ok(entity_response(headers, StatusCode::CREATED, entity))
}

/// The caller's active subscription `id` (other apps' subscriptions are not visible).
fn owned<'a>(
    st: &'a mut SimState,
    caller: &GraphCaller,
    id: &str,
) -> Result<&'a mut crate::graph::delivery::GraphSubscription, GraphError> {
    st.graph_push
        .active_mut(id.trim())
        .filter(|s| s.application_id == caller.client_id)
        .ok_or_else(not_found)
}

async fn get_one(
    State(h): State<SimHandle>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut call = Call::start(&h, "subscriptions.get", Method::GET, &uri, &headers, &[]);
    let r = (|| -> Result<Response, GraphError> {
        let caller = call.caller(&h, &headers)?;
        let mut st = h.lock();
        let sub = owned(&mut st, &caller, &id)?;
        call.set_mailbox(&sub.mailbox);
        Ok(entity_response(&headers, StatusCode::OK, sub.to_json()))
    })();
    call.finish(&h, r)
}

async fn list(State(h): State<SimHandle>, uri: Uri, headers: HeaderMap) -> Response {
    let mut call = Call::start(&h, "subscriptions.list", Method::GET, &uri, &headers, &[]);
    let r = (|| -> Result<Response, GraphError> {
        let caller = call.caller(&h, &headers)?;
        let st = h.lock();
        let mut subs: Vec<_> = st
            .graph_push
            .subs
            .values()
            .filter(|s| s.is_active() && s.application_id == caller.client_id)
            .collect();
        subs.sort_by_key(|s| s.number);
        let value: Vec<Value> = subs.iter().map(|s| s.to_json()).collect();
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({ "@odata.context": context(&headers, "subscriptions"), "value": value }),
        ))
    })();
    call.finish(&h, r)
}

async fn update(
    State(h): State<SimHandle>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut call = Call::start(
        &h,
        "subscriptions.update",
        Method::PATCH,
        &uri,
        &headers,
        &body,
    );
    let r = update_inner(&h, &id, &headers, &body, &mut call).await;
    call.finish(&h, r)
}

async fn update_inner(
    h: &SimHandle,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
    call: &mut Call,
) -> Result<Response, GraphError> {
    let caller = call.caller(h, headers)?;
    let m = parse_object(body)?;
    for key in m.keys() {
        if key != "expirationDateTime" && key != "notificationUrl" {
            return Err(invalid_request(format!(
                "The property '{key}' cannot be updated; only expirationDateTime and notificationUrl can."
            )));
        }
    }
    let expiration = string_prop(&m, "expirationDateTime")?
        .map(|s| parse_expiration(&s))
        .transpose()?;
    let new_url = string_prop(&m, "notificationUrl")?;
    let mailbox = {
        let mut st = h.lock();
        let mailbox = owned(&mut st, &caller, id)?.mailbox.clone();
        call.set_mailbox(&mailbox);
        if let Some(t) = expiration {
            check_expiration(&st, t)?;
        }
        mailbox
    };
    if let Some(u) = &new_url {
        check_url("notificationUrl", u)?;
        validate_url(h, id, &mailbox, u).await?;
    }
    let mut st = h.lock();
    let sub = owned(&mut st, &caller, id)?;
    if let Some(t) = expiration {
        sub.expiration = t;
    }
    if let Some(u) = new_url {
        sub.notification_url = u;
    }
    // Renewing also reauthorizes (Graph's lifecycle guidance).
    sub.reauthorized();
    Ok(entity_response(headers, StatusCode::OK, sub.to_json()))
}

async fn delete(
    State(h): State<SimHandle>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut call = Call::start(
        &h,
        "subscriptions.delete",
        Method::DELETE,
        &uri,
        &headers,
        &[],
    );
    let r = (|| -> Result<Response, GraphError> {
        let caller = call.caller(&h, &headers)?;
        let mut st = h.lock();
        let at = st.store.seq.now_precise();
        let sub = owned(&mut st, &caller, &id)?;
        call.set_mailbox(&sub.mailbox);
        sub.remove(at, "deleted by the application", false);
        Ok(StatusCode::NO_CONTENT.into_response())
    })();
    call.finish(&h, r)
}

async fn reauthorize(
    State(h): State<SimHandle>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut call = Call::start(
        &h,
        "subscriptions.reauthorize",
        Method::POST,
        &uri,
        &headers,
        &[],
    );
    let r = (|| -> Result<Response, GraphError> {
        let caller = call.caller(&h, &headers)?;
        let mut st = h.lock();
        let sub = owned(&mut st, &caller, &id)?;
        call.set_mailbox(&sub.mailbox);
        sub.reauthorized();
        // v1.0 answers the action with 204 No Content.
        Ok(StatusCode::NO_CONTENT.into_response())
    })();
    call.finish(&h, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_name_a_user_and_a_collection() -> Result<(), GraphError> {
        assert_eq!(
            parse_resource("/users/alice@corp.example/events")?,
            ("alice@corp.example".into(), ResourceSpec::Events)
        );
        assert_eq!(
            parse_resource("users/alice%40corp.example/calendar/events")?,
            ("alice@corp.example".into(), ResourceSpec::Events)
        );
        assert_eq!(
            parse_resource("/Users/a@b.example/Contacts")?.1,
            ResourceSpec::Contacts
        );
        assert_eq!(
            parse_resource("/users/a@b.example/contactFolders/AAkALgXYZ/contacts")?.1,
            ResourceSpec::ContactFolder("AAkALgXYZ".into())
        );
        for bad in [
            "/me/events",
            "/users/a@b.example/messages",
            "/users//events",
            "events",
        ] {
            assert!(parse_resource(bad).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn change_types_are_a_comma_list_of_known_values() -> Result<(), GraphError> {
        assert_eq!(
            parse_change_types("created, updated,deleted,created")?,
            vec![
                ChangeType::Created,
                ChangeType::Updated,
                ChangeType::Deleted
            ]
        );
        assert!(parse_change_types("created,moved").is_err());
        assert!(parse_change_types("").is_err());
        Ok(())
    }
}

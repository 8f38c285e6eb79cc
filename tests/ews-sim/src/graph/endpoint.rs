//! The HTTP side of the Graph front-end: the token endpoint, `/v1.0/…` with routing to the
//! resource handlers, and the pipeline every request (and every inner `$batch` request)
//! goes through, in the order Graph's front door applies it: authentication, mailbox access,
//! back-off window, mailbox concurrency, injected faults, then the handler. One request log
//! record per HTTP request.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::graph::auth::{self, GraphCaller};
use crate::graph::error::GraphError;
use crate::graph::filter::{Expand, parse_expand};
use crate::graph::json::{NamedZone, resolve_zone};
use crate::graph::throttle::{self, Admission};
use crate::log::{AuthKind, Direction, Protocol, RequestRecord};
use crate::sim::SimHandle;
use crate::state::SimState;

/// One request as the handlers see it (an HTTP request or an inner `$batch` request).
#[derive(Clone, Debug)]
pub struct GraphRequest {
    pub method: Method,
    /// Path below `/v1.0`, percent-encoded as sent (e.g. `/users/a%40b.example/events`).
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `http://host:port/v1.0`, for nextLink/deltaLink.
    pub base: String,
}

impl GraphRequest {
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A link to this resource with `query` (nextLink, deltaLink).
    pub fn link(&self, query: &[(String, String)]) -> String {
        if query.is_empty() {
            format!("{}{}", self.base, self.path)
        } else {
            format!("{}{}?{}", self.base, self.path, encode_query(query))
        }
    }

    /// The query without `drop` keys, plus `add` (for paging links).
    pub fn query_with(&self, drop: &[&str], add: &[(&str, String)]) -> Vec<(String, String)> {
        let mut q: Vec<(String, String)> = self
            .query
            .iter()
            .filter(|(k, _)| !drop.iter().any(|d| k.eq_ignore_ascii_case(d)))
            .cloned()
            .collect();
        q.extend(add.iter().map(|(k, v)| ((*k).to_string(), v.clone())));
        q
    }

    pub fn json_body(&self) -> Result<Value, GraphError> {
        if self.body.is_empty() {
            return Err(GraphError::invalid("Empty Payload. JSON content expected."));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| GraphError::invalid(format!("Unable to read JSON request payload: {e}")))
    }
}

/// What a handler answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    /// Items the request read or wrote (for the log's `item_count`).
    pub items: usize,
}

impl Reply {
    pub fn json(status: StatusCode, body: Value) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body),
            items: 1,
        }
    }

    pub fn ok(body: Value) -> Self {
        Self::json(StatusCode::OK, body)
    }

    pub fn no_content() -> Self {
        Reply {
            status: StatusCode::NO_CONTENT,
            headers: Vec::new(),
            body: None,
            items: 1,
        }
    }

    pub fn from_error(e: &GraphError) -> Self {
        let mut headers = Vec::new();
        if let Some(s) = e.retry_after {
            headers.push(("Retry-After".to_string(), s.to_string()));
        }
        Reply {
            status: e.status,
            headers,
            body: Some(e.body()),
            items: 0,
        }
    }

    pub fn into_response(self) -> Response {
        let mut r = match &self.body {
            Some(b) => (
                self.status,
                [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                b.to_string(),
            )
                .into_response(),
            None => self.status.into_response(),
        };
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                r.headers_mut().append(k, v);
            }
        }
        r
    }
}

/// The `Prefer` header values that change answers.
#[derive(Clone, Debug, Default)]
pub struct Prefs {
    /// `outlook.timezone="…"`.
    pub timezone: Option<String>,
    /// `odata.maxpagesize=N`.
    pub max_page_size: Option<usize>,
    /// `IdType="ImmutableId"` (ids are immutable here anyway; recorded for assertions).
    pub id_type: Option<String>,
    /// Every `Prefer` header value as sent.
    pub raw: Vec<String>,
}

impl Prefs {
    pub fn parse(headers: &HeaderMap) -> Prefs {
        let mut p = Prefs::default();
        for v in headers.get_all("prefer") {
            let Ok(v) = v.to_str() else { continue };
            p.raw.push(v.to_string());
            for part in v.split(',') {
                let Some((k, val)) = part.split_once('=') else {
                    continue;
                };
                let val = val.trim().trim_matches('"').to_string();
                match k.trim().to_ascii_lowercase().as_str() {
                    "outlook.timezone" => p.timezone = Some(val),
                    "odata.maxpagesize" => p.max_page_size = val.parse().ok().filter(|n| *n > 0),
                    "idtype" => p.id_type = Some(val),
                    _ => {}
                }
            }
        }
        p
    }

    /// The zone start/end are rendered in: the preferred one, else UTC (Graph's default).
    pub fn zone(&self) -> NamedZone {
        self.timezone
            .as_deref()
            .and_then(resolve_zone)
            .unwrap_or_else(NamedZone::utc)
    }

    fn applied(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(z) = &self.timezone {
            out.push(format!("outlook.timezone=\"{z}\""));
        }
        if let Some(n) = self.max_page_size {
            out.push(format!("odata.maxpagesize={n}"));
        }
        if let Some(i) = &self.id_type {
            out.push(format!("IdType=\"{i}\""));
        }
        out
    }
}

/// Everything a resource handler needs.
pub struct Ctx<'a> {
    pub req: &'a GraphRequest,
    pub prefs: &'a Prefs,
    /// The target mailbox's primary SMTP address.
    pub mailbox: String,
    /// The `{user}` path segment as sent (links repeat it).
    pub user: String,
    pub zone: NamedZone,
}

impl Ctx<'_> {
    pub fn expand(&self) -> Result<Expand, GraphError> {
        match self.req.q("$expand") {
            Some(e) => parse_expand(e),
            None => Ok(Expand::None),
        }
    }

    pub fn select(&self) -> Option<Vec<String>> {
        self.req.q("$select").map(|s| {
            s.split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect()
        })
    }

    /// Page size: `$top`, else `Prefer: odata.maxpagesize`, else the configured default.
    pub fn page_size(&self, st: &SimState) -> Result<usize, GraphError> {
        if let Some(t) = self.req.q("$top") {
            return t
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .map(|n| n.min(1000))
                .ok_or_else(|| GraphError::invalid(format!("Invalid $top value '{t}'.")));
        }
        Ok(self
            .prefs
            .max_page_size
            .unwrap_or(st.config.graph.max_page_size)
            .max(1))
    }

    /// `If-Match` as a bare change key (`W/"ck"` and `"ck"` accepted; `*` = any).
    pub fn if_match(&self) -> Option<String> {
        let v = self
            .req
            .headers
            .get(header::IF_MATCH)?
            .to_str()
            .ok()?
            .trim();
        let v = v.strip_prefix("W/").unwrap_or(v).trim_matches('"');
        (v != "*").then(|| v.to_string())
    }
}

// ---------------------------------------------------------------- routing

/// A resolved resource and method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Batch,
    MailboxSettings,
    EventsList,
    EventCreate,
    EventGet(String),
    EventUpdate(String),
    EventDelete(String),
    Instances(String),
    CalendarView,
    CalendarViewDelta,
    FoldersList,
    FolderCreate,
    FolderGet(String),
    FolderDelete(String),
    /// Contacts of a folder (`None`: the default Contacts folder).
    ContactsList(Option<String>),
    ContactCreate(Option<String>),
    ContactGet(String),
    ContactUpdate(String),
    ContactDelete(String),
    ContactsDelta(String),
}

impl Route {
    /// The operation name in the request log.
    pub fn operation(&self) -> &'static str {
        match self {
            Route::Batch => "$batch",
            Route::MailboxSettings => "mailboxSettings.get",
            Route::EventsList => "events.list",
            Route::EventCreate => "events.create",
            Route::EventGet(_) => "events.get",
            Route::EventUpdate(_) => "events.update",
            Route::EventDelete(_) => "events.delete",
            Route::Instances(_) => "instances",
            Route::CalendarView => "calendarView",
            Route::CalendarViewDelta => "calendarView.delta",
            Route::FoldersList => "contactFolders.list",
            Route::FolderCreate => "contactFolders.create",
            Route::FolderGet(_) => "contactFolders.get",
            Route::FolderDelete(_) => "contactFolders.delete",
            Route::ContactsList(_) => "contacts.list",
            Route::ContactCreate(_) => "contacts.create",
            Route::ContactGet(_) => "contacts.get",
            Route::ContactUpdate(_) => "contacts.update",
            Route::ContactDelete(_) => "contacts.delete",
            Route::ContactsDelta(_) => "contacts.delta",
        }
    }
}

/// Percent-decoding (`+` as space when `plus` — query strings from form encoders).
pub fn pct_decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query component (RFC 3986 unreserved characters and `$` stay).
pub fn pct_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'$') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (pct_decode(k, true), pct_decode(v, true)),
            None => (pct_decode(p, true), String::new()),
        })
        .collect()
}

fn encode_query(q: &[(String, String)]) -> String {
    q.iter()
        .map(|(k, v)| format!("{}={}", pct_encode(k), pct_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Resolves `path` (below `/v1.0`) and the method to a route and the `{user}` segment.
pub fn route(method: &Method, path: &str) -> Result<(Option<String>, Route), GraphError> {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|s| pct_decode(s, false))
        .collect();
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    let no_route = || GraphError::no_route(method.as_str(), path);
    let m = method.clone();
    if seg == ["$batch"] {
        return if m == Method::POST {
            Ok((None, Route::Batch))
        } else {
            Err(GraphError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request_BadRequest",
                "$batch takes POST.",
            ))
        };
    }
    if seg.first().is_some_and(|s| *s == "me") {
        return Err(GraphError::bad_request(
            "BadRequest",
            "/me request is only valid with delegated authentication flow.",
        ));
    }
    let (user, rest) = match seg.as_slice() {
        ["users", user, rest @ ..] if !user.is_empty() => ((*user).to_string(), rest),
        _ => return Err(no_route()),
    };
    // `/calendar/…` is the default calendar, the same as the user-level paths.
    let rest: Vec<&str> = match rest {
        ["calendar", tail @ ..] if !tail.is_empty() => tail.to_vec(),
        other => other.to_vec(),
    };
    let get = m == Method::GET;
    let post = m == Method::POST;
    let patch = m == Method::PATCH;
    let delete = m == Method::DELETE;
    let r = match rest.as_slice() {
        ["mailboxSettings"] if get => Route::MailboxSettings,
        ["events"] if get => Route::EventsList,
        ["events"] if post => Route::EventCreate,
        ["events", id] if get => Route::EventGet((*id).into()),
        ["events", id] if patch => Route::EventUpdate((*id).into()),
        ["events", id] if delete => Route::EventDelete((*id).into()),
        ["events", id, "instances"] if get => Route::Instances((*id).into()),
        ["calendarView"] if get => Route::CalendarView,
        ["calendarView", "delta"] if get => Route::CalendarViewDelta,
        ["contactFolders"] if get => Route::FoldersList,
        ["contactFolders"] if post => Route::FolderCreate,
        ["contactFolders", f] if get => Route::FolderGet((*f).into()),
        ["contactFolders", f] if delete => Route::FolderDelete((*f).into()),
        ["contactFolders", f, "contacts"] if get => Route::ContactsList(Some((*f).into())),
        ["contactFolders", f, "contacts"] if post => Route::ContactCreate(Some((*f).into())),
        ["contactFolders", f, "contacts", "delta"] if get => Route::ContactsDelta((*f).into()),
        ["contactFolders", _, "contacts", id] if get => Route::ContactGet((*id).into()),
        ["contactFolders", _, "contacts", id] if patch => Route::ContactUpdate((*id).into()),
        ["contactFolders", _, "contacts", id] if delete => Route::ContactDelete((*id).into()),
        ["contacts"] if get => Route::ContactsList(None),
        ["contacts"] if post => Route::ContactCreate(None),
        ["contacts", id] if get => Route::ContactGet((*id).into()),
        ["contacts", id] if patch => Route::ContactUpdate((*id).into()),
        ["contacts", id] if delete => Route::ContactDelete((*id).into()),
        // An unencoded EWS id (standard base64 has '/') spans segments: rejoin it so the
        // client hears ErrorInvalidIdMalformed, not a routing error.
        ["events", id @ .., "instances"] if get && id.len() > 1 => Route::Instances(id.join("/")),
        ["events", id @ ..] if id.len() > 1 && (get || patch || delete) => {
            let id = id.join("/");
            match () {
                _ if get => Route::EventGet(id),
                _ if patch => Route::EventUpdate(id),
                _ => Route::EventDelete(id),
            }
        }
        ["contacts", id @ ..] if id.len() > 1 && (get || patch || delete) => {
            let id = id.join("/");
            match () {
                _ if get => Route::ContactGet(id),
                _ if patch => Route::ContactUpdate(id),
                _ => Route::ContactDelete(id),
            }
        }
        _ => return Err(no_route()),
    };
    Ok((Some(user), r))
}

// ---------------------------------------------------------------- pipeline

/// What the pipeline learnt about one request, for its log record.
#[derive(Debug, Default)]
pub struct Outcome {
    pub operation: Option<String>,
    pub mailbox: Option<String>,
    pub injected: Option<String>,
    pub backoff_violation: bool,
}

/// Runs one authenticated request through routing, access, throttling, faults and its
/// handler. `$batch` itself is handled by the caller.
pub async fn run(
    handle: &SimHandle,
    req: &GraphRequest,
    sent: std::time::Instant,
    prefs: &Prefs,
    route_result: Result<(Option<String>, Route), GraphError>,
    out: &mut Outcome,
) -> Reply {
    let (user, route) = match route_result {
        Ok(r) => r,
        Err(e) => return Reply::from_error(&e),
    };
    out.operation = Some(route.operation().to_string());
    let Some(user) = user else {
        return Reply::from_error(&GraphError::no_route(req.method.as_str(), &req.path));
    };
    // Access, back-off, concurrency and faults, under one lock.
    let admission = {
        let mut st = handle.lock();
        let mailbox = match auth::check_mailbox(&st, &user) {
            Ok(m) => m,
            Err(e) => return Reply::from_error(&e),
        };
        out.mailbox = Some(mailbox.clone());
        throttle::admit(&mut st, &mailbox, route.operation(), sent, out)
    };
    let (slot, delay, terminal) = match admission {
        Admission::Rejected(e) => return Reply::from_error(&e),
        Admission::Admitted {
            slot,
            delay,
            terminal,
        } => (slot, delay, terminal),
    };
    let guard = throttle::SlotGuard::new(handle.clone(), slot);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let reply = match terminal {
        Some(e) => Reply::from_error(&e),
        None => {
            let mut st = handle.lock();
            let ctx = Ctx {
                req,
                prefs,
                mailbox: out.mailbox.clone().unwrap_or_default(),
                user: user.clone(),
                zone: prefs.zone(),
            };
            match dispatch(&mut st, &ctx, &route) {
                Ok(r) => r,
                Err(e) => Reply::from_error(&e),
            }
        }
    };
    drop(guard);
    let mut reply = reply;
    let applied = prefs.applied();
    if !applied.is_empty() && reply.status.is_success() {
        reply
            .headers
            .push(("Preference-Applied".into(), applied.join(", ")));
    }
    reply
}

/// A path through a container (`/calendar/events/{id}`, `/contactFolders/{f}/contacts/{id}`)
/// reaches only the items in it. With immutable ids an item the user deleted keeps its id in
/// Deleted Items: `/events/{id}` and `/contacts/{id}` still reach it there, the container paths
/// answer 404.
fn check_container(st: &SimState, ctx: &Ctx<'_>, route: &Route) -> Result<(), GraphError> {
    use crate::graph::ids::{parse_graph_folder_id, parse_graph_item_id};
    let seg: Vec<&str> = ctx.req.path.split('/').filter(|s| !s.is_empty()).collect();
    let (id, want) = match (route, seg.as_slice()) {
        (
            Route::EventGet(id)
            | Route::EventUpdate(id)
            | Route::EventDelete(id)
            | Route::Instances(id),
            ["users", _, "calendar", "events", ..],
        ) => {
            let mb = st
                .store
                .mailbox(&ctx.mailbox)
                .map_err(|_| GraphError::item_not_found())?;
            let calendar = mb
                .folder_id(crate::model::DistinguishedFolder::Calendar)
                .cloned()
                .ok_or_else(GraphError::item_not_found)?;
            (id, calendar)
        }
        (
            Route::ContactGet(id) | Route::ContactUpdate(id) | Route::ContactDelete(id),
            ["users", _, "contactFolders", folder, "contacts", ..],
        ) => (id, parse_graph_folder_id(&pct_decode(folder, false))?),
        _ => return Ok(()),
    };
    let item = parse_graph_item_id(id)?;
    // An occurrence's id names its master; the master's folder is the occurrence's.
    let mb = st
        .store
        .mailbox(&ctx.mailbox)
        .map_err(|_| GraphError::item_not_found())?;
    let folder = mb.items.get(&item).map(|st| st.folder.clone()).or_else(|| {
        crate::graph::events::find_event(mb, id)
            .ok()
            .map(|e| e.folder)
    });
    match folder {
        Some(f) if f != want => Err(GraphError::item_not_found()),
        _ => Ok(()),
    }
}

fn dispatch(st: &mut SimState, ctx: &Ctx<'_>, route: &Route) -> Result<Reply, GraphError> {
    use crate::graph::{contacts, delta, events};
    check_container(st, ctx, route)?;
    match route {
        Route::Batch => Err(GraphError::invalid(
            "Nested $batch requests are not allowed.",
        )),
        Route::MailboxSettings => events::mailbox_settings(st, ctx),
        Route::EventsList => events::list(st, ctx),
        Route::EventCreate => events::create(st, ctx),
        Route::EventGet(id) => events::get(st, ctx, id),
        Route::EventUpdate(id) => events::update(st, ctx, id),
        Route::EventDelete(id) => events::delete(st, ctx, id),
        Route::Instances(id) => events::instances(st, ctx, id),
        Route::CalendarView => events::calendar_view(st, ctx),
        Route::CalendarViewDelta => delta::calendar_delta(st, ctx),
        Route::FoldersList => contacts::folders_list(st, ctx),
        Route::FolderCreate => contacts::folder_create(st, ctx),
        Route::FolderGet(f) => contacts::folder_get(st, ctx, f),
        Route::FolderDelete(f) => contacts::folder_delete(st, ctx, f),
        Route::ContactsList(f) => contacts::list(st, ctx, f.as_deref()),
        Route::ContactCreate(f) => contacts::create(st, ctx, f.as_deref()),
        Route::ContactGet(id) => contacts::get(st, ctx, id),
        Route::ContactUpdate(id) => contacts::update(st, ctx, id),
        Route::ContactDelete(id) => contacts::delete(st, ctx, id),
        Route::ContactsDelta(f) => delta::contacts_delta(st, ctx, f),
    }
}

// ---------------------------------------------------------------- request log

/// A fresh Graph request record (sequence number taken now, at arrival).
pub fn begin_record(
    handle: &SimHandle,
    method: &Method,
    path: String,
    headers: &HeaderMap,
    body: &[u8],
) -> RequestRecord {
    let seq = {
        let mut st = handle.lock();
        st.next_request_seq += 1;
        st.next_request_seq
    };
    RequestRecord {
        seq,
        direction: Direction::Incoming,
        time: chrono::Utc::now(),
        protocol: Protocol::Graph,
        method: Some(method.as_str().to_string()),
        path: Some(path),
        prefer: Prefs::parse(headers).raw,
        if_match: headers
            .get(header::IF_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        anchor_mailbox: headers
            .get("X-AnchorMailbox")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: String::from_utf8_lossy(body).into_owned(),
        ..RequestRecord::default()
    }
}

/// Appends a finished record to the log.
pub fn finish_record(handle: &SimHandle, rec: RequestRecord) {
    tracing::debug!(seq = rec.seq, op = ?rec.operation, status = rec.http_status, "graph request");
    handle.lock().log.push(rec);
}

fn fill(rec: &mut RequestRecord, out: Outcome, reply: &Reply) {
    rec.operation = out.operation;
    rec.mailbox = out.mailbox;
    rec.injected = out.injected;
    rec.backoff_violation = out.backoff_violation;
    rec.http_status = reply.status.as_u16();
    rec.item_count = reply.items;
    if !reply.status.is_success() {
        rec.fault_code = reply
            .body
            .as_ref()
            .and_then(|b| b.pointer("/error/code"))
            .and_then(Value::as_str)
            .map(str::to_string);
    }
}

fn auth_kind(caller: &Result<GraphCaller, GraphError>, headers: &HeaderMap) -> AuthKind {
    match caller {
        Ok(_) => AuthKind::Bearer,
        Err(_) if headers.contains_key(header::AUTHORIZATION) => AuthKind::Rejected,
        Err(_) => AuthKind::None,
    }
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}/v1.0")
}

/// `/v1.0/{*rest}`: every Graph resource except subscriptions (their own router).
pub async fn graph_entry(
    State(handle): State<SimHandle>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sent = std::time::Instant::now();
    let path = uri
        .path()
        .strip_prefix("/v1.0")
        .unwrap_or(uri.path())
        .to_string();
    let req = GraphRequest {
        method: method.clone(),
        path,
        query: parse_query(uri.query().unwrap_or_default()),
        headers: headers.clone(),
        body: body.clone(),
        base: base_url(&headers),
    };
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.path().to_string());
    let mut rec = begin_record(&handle, &method, path_and_query, &headers, &body);
    let prefs = Prefs::parse(&headers);
    let caller = auth::authorize(&handle, &headers);
    rec.auth = auth_kind(&caller, &headers);
    let routed = route(&method, &req.path);
    let mut out = Outcome::default();
    let reply = match caller {
        Err(e) => {
            out.operation = routed.as_ref().ok().map(|(_, r)| r.operation().to_string());
            Reply::from_error(&e)
        }
        Ok(caller) => match routed {
            Ok((_, Route::Batch)) => {
                out.operation = Some("$batch".into());
                crate::graph::batch::run_batch(&handle, &caller, &req, sent, &mut rec, &mut out)
                    .await
            }
            other => run(&handle, &req, sent, &prefs, other, &mut out).await,
        },
    };
    fill(&mut rec, out, &reply);
    finish_record(&handle, rec);
    reply.into_response()
}

/// `POST /{tenant}/oauth2/v2.0/token` (Entra ID's client credentials grant).
pub async fn token_entry(
    State(handle): State<SimHandle>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/{tenant}/oauth2/v2.0/token");
    // The secret is not worth keeping in the log.
    let form = parse_query(&String::from_utf8_lossy(&body));
    let logged: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| {
            let v = if k == "client_secret" {
                "***".to_string()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    let mut rec = begin_record(
        &handle,
        &Method::POST,
        path,
        &headers,
        encode_query(&logged).as_bytes(),
    );
    let (status, answer) = {
        let mut st = handle.lock();
        auth::token_endpoint(&mut st, &tenant, &form)
    };
    rec.operation = Some("token".into());
    rec.http_status = status.as_u16();
    rec.fault_code = answer
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string);
    let response = auth::entra_response(status, &answer);
    finish_record(&handle, rec);
    response
}

/// Waits `d` (used by the batch runner between inner requests with injected delays).
pub async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_encoding() -> Result<(), Box<dyn std::error::Error>> {
        let (u, r) = route(
            &Method::GET,
            "/users/alice%40corp.example/calendar/calendarView/delta",
        )?;
        assert_eq!(u.as_deref(), Some("alice@corp.example"));
        assert_eq!(r, Route::CalendarViewDelta);
        let (_, r) = route(&Method::PATCH, "/users/a@b/events/AAkALgX")?;
        assert_eq!(r, Route::EventUpdate("AAkALgX".into()));
        assert!(route(&Method::GET, "/users/a@b/nothing").is_err());
        let (_, r) = route(&Method::GET, "/users/a@b/events/AAMk/x+y=")?;
        assert_eq!(r, Route::EventGet("AAMk/x+y=".into()));
        assert!(route(&Method::GET, "/me/events").is_err());
        let q = parse_query("$filter=displayName%20eq%20%27CRM+Contacts%27&$top=5");
        assert_eq!(q[0].1, "displayName eq 'CRM Contacts'");
        assert_eq!(pct_decode(&pct_encode("a b'/+é"), true), "a b'/+é");
        Ok(())
    }
}

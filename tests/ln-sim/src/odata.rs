//! The OData service: resource-path parsing (`Contacts('C1')`, `Attendees(activity='A',line=1)`,
//! `Activities('A')/attendees`), authentication and company checks, and the read/write handlers.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::error::ODataError;
use crate::model::{Activity, Attendee, Contact};
use crate::query::{self, QueryOptions};
use crate::schema::{self, EntitySet};
use crate::server::{AppState, COMPANY_HEADER, Notes, SERVICE_PATH, json_response, no_content};
use crate::store::{
    self, ActivityRecord, IfMatch, NewActivity, Record, check_properties, decode, render_activity,
    render_attendee, render_contact, render_plain,
};

/// Decode `%xx` escapes in a URL path (not `+`, which is literal in paths).
pub fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = input
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A key value in a predicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue {
    Str(String),
    Int(i64),
}

/// The addressed resource below the service root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    ServiceDocument,
    Metadata,
    Collection(EntitySet),
    Entity {
        set: EntitySet,
        key_text: String,
        key: Vec<(Option<String>, KeyValue)>,
        /// A navigation segment after the key, e.g. `attendees`.
        navigation: Option<String>,
    },
    Unknown(String),
}

impl Resource {
    pub fn entity_set_name(&self) -> Option<&str> {
        match self {
            Resource::Collection(set) | Resource::Entity { set, .. } => Some(set.name()),
            _ => None,
        }
    }

    pub fn key_text(&self) -> Option<&str> {
        match self {
            Resource::Entity { key_text, .. } => Some(key_text),
            _ => None,
        }
    }
}

/// Parse a decoded request path; `None` when it is not below this tenant's service root.
pub(crate) fn parse_resource(state: &AppState, path: &str) -> Option<Resource> {
    let prefix = format!("/{}/{SERVICE_PATH}", state.config.credentials.tenant);
    let rest = path.strip_prefix(&prefix)?;
    let rest = match rest {
        "" | "/" => return Some(Resource::ServiceDocument),
        r => r.strip_prefix('/')?,
    };
    if rest == "$metadata" {
        return Some(Resource::Metadata);
    }
    let (head, navigation) = match rest.find(")/") {
        Some(i) => (
            &rest[..=i],
            Some(rest[i + 2..].trim_end_matches('/').to_string()),
        ),
        None => (rest.trim_end_matches('/'), None),
    };
    let Some(open) = head.find('(') else {
        return Some(
            EntitySet::parse(head)
                .map_or_else(|| Resource::Unknown(head.to_string()), Resource::Collection),
        );
    };
    let name = &head[..open];
    let Some(set) = EntitySet::parse(name) else {
        return Some(Resource::Unknown(name.to_string()));
    };
    let Some(inner) = head[open + 1..].strip_suffix(')') else {
        return Some(Resource::Unknown(head.to_string()));
    };
    match parse_key(inner) {
        Some(key) => Some(Resource::Entity {
            set,
            key_text: inner.to_string(),
            key,
            navigation,
        }),
        None => Some(Resource::Unknown(head.to_string())),
    }
}

/// Parse `'X'` or `name='X',other=1`.
fn parse_key(text: &str) -> Option<Vec<(Option<String>, KeyValue)>> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut parts = Vec::new();
    loop {
        while chars.get(i) == Some(&' ') {
            i += 1;
        }
        let mut name = None;
        if chars.get(i).is_some_and(|c| c.is_alphabetic()) {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|c| c.is_alphanumeric() || *c == '_')
            {
                i += 1;
            }
            if chars.get(i) != Some(&'=') {
                return None;
            }
            name = Some(chars[start..i].iter().collect());
            i += 1;
        }
        let value = if chars.get(i) == Some(&'\'') {
            i += 1;
            let mut s = String::new();
            loop {
                match (chars.get(i), chars.get(i + 1)) {
                    (Some('\''), Some('\'')) => {
                        s.push('\'');
                        i += 2;
                    }
                    (Some('\''), _) => {
                        i += 1;
                        break;
                    }
                    (Some(c), _) => {
                        s.push(*c);
                        i += 1;
                    }
                    (None, _) => return None,
                }
            }
            KeyValue::Str(s)
        } else {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|c| c.is_ascii_digit() || *c == '-')
            {
                i += 1;
            }
            KeyValue::Int(chars[start..i].iter().collect::<String>().parse().ok()?)
        };
        parts.push((name, value));
        while chars.get(i) == Some(&' ') {
            i += 1;
        }
        match chars.get(i) {
            None => return Some(parts),
            Some(',') => i += 1,
            Some(_) => return None,
        }
    }
}

/// Resolve a key predicate for `set` to its key values.
enum EntityKey {
    Single(String),
    Attendee { activity: String, line: u32 },
}

fn resolve_key(
    set: EntitySet,
    key: &[(Option<String>, KeyValue)],
) -> Result<EntityKey, ODataError> {
    let bad = || ODataError::bad_request(format!("invalid key predicate for {}", set.name()));
    match set {
        EntitySet::Attendees => {
            let mut activity = None;
            let mut line = None;
            for (name, value) in key {
                match (name.as_deref(), value) {
                    (Some("activity"), KeyValue::Str(s)) => activity = Some(s.clone()),
                    (Some("line"), KeyValue::Int(n)) => line = u32::try_from(*n).ok(),
                    _ => return Err(bad()),
                }
            }
            match (activity, line) {
                (Some(activity), Some(line)) => Ok(EntityKey::Attendee { activity, line }),
                _ => Err(bad()),
            }
        }
        EntitySet::Settings | EntitySet::DeletedObjects => Err(ODataError::bad_request(format!(
            "{} cannot be addressed by key",
            set.name()
        ))),
        _ => {
            let key_name = set.fields().first().map(|f| f.name);
            match key {
                [(None, KeyValue::Str(s))] => Ok(EntityKey::Single(s.clone())),
                [(Some(name), KeyValue::Str(s))] if Some(name.as_str()) == key_name => {
                    Ok(EntityKey::Single(s.clone()))
                }
                _ => Err(bad()),
            }
        }
    }
}

/// Request context shared by the handlers.
struct Ctx<'a> {
    state: &'a AppState,
    company: String,
    headers: &'a HeaderMap,
    uri: &'a Uri,
    query: Vec<(String, String)>,
    notes: Vec<String>,
}

impl Ctx<'_> {
    fn prefer(&self) -> Vec<String> {
        self.headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|p| p.trim().to_ascii_lowercase())
            .collect()
    }

    fn prefers(&self, preference: &str) -> bool {
        self.prefer().iter().any(|p| p == preference)
    }

    fn max_page_size(&self) -> Option<usize> {
        self.prefer().iter().find_map(|p| {
            p.strip_prefix("odata.maxpagesize=")
                .and_then(|n| n.trim().parse().ok())
        })
    }

    fn if_match(&mut self, method: &Method) -> IfMatch {
        let value = self
            .headers
            .get(header::IF_MATCH)
            .and_then(|v| v.to_str().ok());
        let if_match = IfMatch::from_header(value);
        if if_match == IfMatch::Absent {
            self.notes.push(format!("{method} without If-Match"));
        }
        if if_match == IfMatch::Any {
            self.notes.push(format!("{method} with If-Match: *"));
        }
        if_match
    }

    /// `http://host:port` as the client addressed us, so links work through port mappings.
    fn host_base(&self) -> String {
        match self.headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
            Some(host) => format!("http://{host}"),
            None => self.state.base_url.to_string(),
        }
    }

    fn root(&self) -> String {
        format!(
            "{}/{}/{SERVICE_PATH}/",
            self.host_base(),
            self.state.config.credentials.tenant
        )
    }

    fn context(&self, fragment: &str) -> String {
        format!("{}$metadata#{fragment}", self.root())
    }

    fn body(&self, bytes: &Bytes) -> Result<Map<String, Value>, ODataError> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(ODataError::bad_request(
                "the request body must be a JSON object",
            )),
            Err(e) => Err(ODataError::bad_request(format!(
                "the request body is not valid JSON: {e}"
            ))),
        }
    }
}

/// Entry point for everything that is not the token endpoint or the admin API.
pub(crate) async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = percent_decode(uri.path());
    let Some(resource) = parse_resource(&state, &path) else {
        return ODataError::not_found(format!("no service at '{path}'")).into_response();
    };
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| state.tokens.validate(token.trim()));
    if !authorized {
        let message = if headers.contains_key(header::AUTHORIZATION) {
            "The access token is invalid or has expired"
        } else {
            "An access token is required"
        };
        return ODataError::unauthorized(message).into_response();
    }
    if matches!(resource, Resource::ServiceDocument | Resource::Metadata) {
        return service_document(&state, &resource);
    }
    let Some(company) = headers.get(COMPANY_HEADER).and_then(|v| v.to_str().ok()) else {
        return ODataError::new(
            StatusCode::BAD_REQUEST,
            "MissingCompany",
            "the X-Infor-LnCompany header is required",
        )
        .into_response();
    };
    if !state.store.has_company(company) {
        return ODataError::from(store::StoreError::UnknownCompany(company.to_string()))
            .into_response();
    }
    let query = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let mut ctx = Ctx {
        state: &state,
        company: company.to_string(),
        headers: &headers,
        uri: &uri,
        query,
        notes: Vec::new(),
    };
    let result = dispatch(&mut ctx, &method, resource, &body);
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    if !ctx.notes.is_empty() {
        response.extensions_mut().insert(Notes(ctx.notes));
    }
    response
}

fn service_document(state: &AppState, resource: &Resource) -> Response {
    if *resource == Resource::Metadata {
        return ODataError::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "$metadata is not provided by the simulator; see docs/ln-api.openapi.yaml",
        )
        .into_response();
    }
    let value: Vec<Value> = EntitySet::ALL
        .iter()
        .map(|set| {
            let kind = if *set == EntitySet::Settings {
                "Singleton"
            } else {
                "EntitySet"
            };
            json!({"name": set.name(), "kind": kind, "url": set.name()})
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({"@odata.context": format!("{}$metadata", state.service_root()), "value": value}),
    )
}

fn dispatch(
    ctx: &mut Ctx<'_>,
    method: &Method,
    resource: Resource,
    body: &Bytes,
) -> Result<Response, ODataError> {
    match resource {
        Resource::ServiceDocument | Resource::Metadata => {
            Err(ODataError::not_found("unexpected service document request"))
        }
        Resource::Unknown(name) => Err(ODataError::not_found(format!(
            "resource '{name}' does not exist"
        ))),
        Resource::Collection(set) => match (method.as_str(), set) {
            ("GET", EntitySet::Settings) => get_settings(ctx),
            ("GET", _) => get_collection(ctx, set),
            ("POST", EntitySet::Contacts) => post_contact(ctx, body),
            ("POST", EntitySet::Activities) => post_activity(ctx, body),
            ("POST", EntitySet::Attendees) => post_attendee(ctx, None, body),
            _ => Err(ODataError::method_not_allowed(method.as_str(), set.name())),
        },
        Resource::Entity {
            set,
            key,
            navigation,
            key_text,
        } => {
            let key = resolve_key(set, &key)?;
            let resource_name = format!("{}({key_text})", set.name());
            match (navigation.as_deref(), set, key) {
                (Some("attendees"), EntitySet::Activities, EntityKey::Single(activity)) => {
                    match method.as_str() {
                        "GET" => get_activity_attendees(ctx, &activity),
                        "POST" => post_attendee(ctx, Some(activity), body),
                        _ => Err(ODataError::method_not_allowed(
                            method.as_str(),
                            &resource_name,
                        )),
                    }
                }
                (Some(nav), _, _) => Err(ODataError::not_found(format!(
                    "'{nav}' is not a navigation property of {}",
                    set.type_name()
                ))),
                (None, _, key) => entity(ctx, method, set, key, &resource_name, body),
            }
        }
    }
}

fn entity(
    ctx: &mut Ctx<'_>,
    method: &Method,
    set: EntitySet,
    key: EntityKey,
    resource_name: &str,
    body: &Bytes,
) -> Result<Response, ODataError> {
    let company = ctx.company.clone();
    let store = ctx.state.store.clone();
    match (method.as_str(), set, key) {
        ("GET", EntitySet::Contacts, EntityKey::Single(k)) => {
            let record = store
                .contact(&company, &k)?
                .ok_or_else(|| not_found(resource_name))?;
            single(ctx, set, render_contact(&record), &record.etag())
        }
        ("GET", EntitySet::Activities, EntityKey::Single(k)) => {
            let options = QueryOptions::parse(set, &ctx.query)?;
            let record = store
                .activity(&company, &k)?
                .ok_or_else(|| not_found(resource_name))?;
            let value = render_activity(&record, options.expand_attendees);
            single(ctx, set, value, &record.record.etag())
        }
        ("GET", EntitySet::SyncUsers, EntityKey::Single(k)) => {
            let found = store.read(&company, |d| {
                d.sync_users.get(&k).map(|r| (render_plain(r), r.etag()))
            })?;
            let (value, etag) = found.ok_or_else(|| not_found(resource_name))?;
            single(ctx, set, value, &etag)
        }
        ("GET", EntitySet::Employees, EntityKey::Single(k)) => {
            let found = store.read(&company, |d| {
                d.employees.get(&k).map(|r| (render_plain(r), r.etag()))
            })?;
            let (value, etag) = found.ok_or_else(|| not_found(resource_name))?;
            single(ctx, set, value, &etag)
        }
        ("GET", EntitySet::Attendees, EntityKey::Attendee { activity, line }) => {
            let record = store
                .attendee(&company, &activity, line)?
                .ok_or_else(|| not_found(resource_name))?;
            single(ctx, set, render_attendee(&record), &record.etag())
        }
        ("PATCH", EntitySet::Contacts, EntityKey::Single(k)) => {
            let patch = Value::Object(ctx.body(body)?);
            let if_match = ctx.if_match(method);
            let record = store.patch_contact(&company, &k, &patch, &if_match)?;
            updated(ctx, set, render_contact(&record), &record.etag())
        }
        ("PATCH", EntitySet::Activities, EntityKey::Single(k)) => {
            let patch = Value::Object(ctx.body(body)?);
            let if_match = ctx.if_match(method);
            let record = store.patch_activity(&company, &k, &patch, &if_match)?;
            // OData allows $expand/$select on a PATCH answered with return=representation.
            let options = QueryOptions::parse(set, &ctx.query)?;
            updated(
                ctx,
                set,
                render_activity(&record, options.expand_attendees),
                &record.record.etag(),
            )
        }
        ("PATCH", EntitySet::Attendees, EntityKey::Attendee { activity, line }) => {
            let patch = Value::Object(ctx.body(body)?);
            let if_match = ctx.if_match(method);
            let change = store.patch_attendee(&company, &activity, line, &patch, &if_match)?;
            let response = updated(
                ctx,
                set,
                render_attendee(&change.attendee),
                &change.attendee.etag(),
            )?;
            Ok(with_activity_etag(response, &change.activity_etag))
        }
        ("DELETE", EntitySet::Contacts, EntityKey::Single(k)) => {
            let if_match = ctx.if_match(method);
            store.delete_contact(&company, &k, &if_match)?;
            Ok(no_content())
        }
        ("DELETE", EntitySet::Activities, EntityKey::Single(k)) => {
            let if_match = ctx.if_match(method);
            store.delete_activity(&company, &k, &if_match)?;
            Ok(no_content())
        }
        ("DELETE", EntitySet::Attendees, EntityKey::Attendee { activity, line }) => {
            let if_match = ctx.if_match(method);
            let activity_etag = store.delete_attendee(&company, &activity, line, &if_match)?;
            Ok(with_activity_etag(no_content(), &activity_etag))
        }
        (m, _, _) => Err(ODataError::method_not_allowed(m, resource_name)),
    }
}

fn not_found(resource_name: &str) -> ODataError {
    ODataError::not_found(format!("{resource_name} does not exist"))
}

/// Header of attendee writes naming the parent activity's etag after the write: an attendee
/// change moves its activity, and a client must learn the new version without a second,
/// racy read (`docs/ln-api.md` §4).
pub const ACTIVITY_ETAG_HEADER: &str = "x-lnsync-activity-etag";

fn with_activity_etag(mut response: Response, etag: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(etag) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(ACTIVITY_ETAG_HEADER), value);
    }
    response
}

fn with_etag_header(mut response: Response, etag: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

fn single(
    ctx: &Ctx<'_>,
    set: EntitySet,
    mut value: Value,
    etag: &str,
) -> Result<Response, ODataError> {
    let options = QueryOptions::parse(set, &ctx.query)?;
    value = query::project(value, options.select.as_deref());
    if let Value::Object(map) = &mut value {
        map.insert(
            "@odata.context".into(),
            json!(ctx.context(&format!("{}/$entity", set.name()))),
        );
    }
    Ok(with_etag_header(json_response(StatusCode::OK, value), etag))
}

/// PATCH answer: 204 with the new ETag, or the entity with `Prefer: return=representation`.
fn updated(
    ctx: &Ctx<'_>,
    set: EntitySet,
    value: Value,
    etag: &str,
) -> Result<Response, ODataError> {
    if ctx.prefers("return=representation") {
        let mut response = single(ctx, set, value, etag)?;
        response.headers_mut().insert(
            HeaderName::from_static("preference-applied"),
            HeaderValue::from_static("return=representation"),
        );
        return Ok(response);
    }
    Ok(with_etag_header(no_content(), etag))
}

/// POST answer: 201 with the entity and `Location`, or 204 with `Prefer: return=minimal`.
fn created(
    ctx: &Ctx<'_>,
    set: EntitySet,
    key_text: &str,
    mut value: Value,
    etag: &str,
) -> Response {
    let location = format!("{}{}({key_text})", ctx.root(), set.name());
    let mut response = if ctx.prefers("return=minimal") {
        let mut response = no_content();
        response.headers_mut().insert(
            HeaderName::from_static("preference-applied"),
            HeaderValue::from_static("return=minimal"),
        );
        if let Ok(v) = HeaderValue::from_str(&location) {
            response
                .headers_mut()
                .insert(HeaderName::from_static("odata-entityid"), v);
        }
        response
    } else {
        if let Value::Object(map) = &mut value {
            map.insert(
                "@odata.context".into(),
                json!(ctx.context(&format!("{}/$entity", set.name()))),
            );
        }
        json_response(StatusCode::CREATED, value)
    };
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    with_etag_header(response, etag)
}

fn quote_key(key: &str) -> String {
    format!("'{}'", key.replace('\'', "''"))
}

fn get_settings(ctx: &Ctx<'_>) -> Result<Response, ODataError> {
    let (value, etag) = ctx.state.store.read(&ctx.company, |d| {
        (render_plain(&d.settings), d.settings.etag())
    })?;
    let mut value = value;
    if let Value::Object(map) = &mut value {
        map.insert("@odata.context".into(), json!(ctx.context("Settings")));
    }
    Ok(with_etag_header(
        json_response(StatusCode::OK, value),
        &etag,
    ))
}

fn get_collection(ctx: &Ctx<'_>, set: EntitySet) -> Result<Response, ODataError> {
    let options = QueryOptions::parse(set, &ctx.query)?;
    let rows = ctx
        .state
        .store
        .rows(&ctx.company, set, options.expand_attendees)?;
    page_response(ctx, set, rows, &options)
}

fn get_activity_attendees(ctx: &Ctx<'_>, activity: &str) -> Result<Response, ODataError> {
    let options = QueryOptions::parse(EntitySet::Attendees, &ctx.query)?;
    if ctx.state.store.activity(&ctx.company, activity)?.is_none() {
        return Err(not_found(&format!("Activities({})", quote_key(activity))));
    }
    let rows = ctx
        .state
        .store
        .rows(&ctx.company, EntitySet::Attendees, false)?
        .into_iter()
        .filter(|r| r.value.get("activity").and_then(Value::as_str) == Some(activity))
        .collect();
    page_response(ctx, EntitySet::Attendees, rows, &options)
}

fn page_response(
    ctx: &Ctx<'_>,
    set: EntitySet,
    rows: Vec<query::Row>,
    options: &QueryOptions,
) -> Result<Response, ODataError> {
    let config = &ctx.state.config;
    let requested = ctx.max_page_size();
    let page_size = requested.map_or(config.default_page_size, |n| {
        n.clamp(1, config.max_page_size)
    });
    let page = query::run(rows, options, page_size);
    let mut body = Map::new();
    body.insert("@odata.context".into(), json!(ctx.context(set.name())));
    if options.count {
        body.insert("@odata.count".into(), json!(page.total));
    }
    let values: Vec<Value> = page
        .rows
        .into_iter()
        .map(|v| query::project(v, options.select.as_deref()))
        .collect();
    body.insert("value".into(), Value::Array(values));
    if let Some(token) = page.next {
        body.insert(
            "@odata.nextLink".into(),
            json!(next_link(ctx, &token.encode())),
        );
    }
    let mut response = json_response(StatusCode::OK, Value::Object(body));
    if requested.is_some()
        && let Ok(v) = HeaderValue::from_str(&format!("odata.maxpagesize={page_size}"))
    {
        response
            .headers_mut()
            .insert(HeaderName::from_static("preference-applied"), v);
    }
    Ok(response)
}

/// The request URL with `$skiptoken` replaced; `$top`/`$skip` are carried inside the token.
fn next_link(ctx: &Ctx<'_>, token: &str) -> String {
    let query = ctx
        .query
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "$skiptoken" | "$top" | "$skip"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([("$skiptoken", token)])
        .map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v)))
        .collect::<Vec<_>>()
        .join("&");
    format!("{}{}?{query}", ctx.host_base(), ctx.uri.path())
}

/// Percent-encode a query component, keeping the characters OData URLs conventionally show
/// literally (`$`, quotes, parentheses, `:` in date-times…) so links stay readable.
fn encode_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'$'
            | b'\''
            | b'('
            | b')'
            | b','
            | b':'
            | b'/'
            | b'@'
            | b'*'
            | b'!' => out.push(char::from(byte)),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// Strip read-only properties a client may echo back.
fn writable(mut body: Map<String, Value>) -> Map<String, Value> {
    body.retain(|k, _| !k.starts_with('@') && k != "lastModified");
    body
}

fn post_contact(ctx: &Ctx<'_>, body: &Bytes) -> Result<Response, ODataError> {
    let body = writable(ctx.body(body)?);
    check_properties(&body, schema::CONTACTS, "")?;
    let contact: Contact = decode(Value::Object(body))?;
    let record = ctx.state.store.create_contact(&ctx.company, contact)?;
    Ok(created(
        ctx,
        EntitySet::Contacts,
        &quote_key(&record.data.contact),
        render_contact(&record),
        &record.etag(),
    ))
}

fn post_activity(ctx: &Ctx<'_>, body: &Bytes) -> Result<Response, ODataError> {
    let mut body = writable(ctx.body(body)?);
    check_properties(&body, schema::ACTIVITIES, "")?;
    let attendees = match body.remove("attendees") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut attendees = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let Value::Object(item) = item else {
                    return Err(ODataError::bad_request(format!(
                        "attendees[{i}] must be an object"
                    ))
                    .with_target(format!("attendees[{i}]")));
                };
                let item = writable(item);
                check_properties(&item, schema::ATTENDEES, &format!("attendees[{i}]"))?;
                let attendee: Attendee = decode(Value::Object(item)).map_err(|e| prefix(e, i))?;
                attendees.push(attendee);
            }
            attendees
        }
        Some(_) => {
            return Err(
                ODataError::bad_request("attendees must be an array").with_target("attendees")
            );
        }
    };
    let activity: Activity = decode(Value::Object(body))?;
    let record: ActivityRecord = ctx.state.store.create_activity(
        &ctx.company,
        NewActivity {
            activity,
            attendees,
        },
    )?;
    Ok(created(
        ctx,
        EntitySet::Activities,
        &quote_key(&record.record.data.activity),
        render_activity(&record, true),
        &record.record.etag(),
    ))
}

fn prefix(error: store::StoreError, index: usize) -> store::StoreError {
    match error {
        store::StoreError::Validation { field, message } => store::StoreError::Validation {
            field: format!("attendees[{index}]/{field}"),
            message,
        },
        other => other,
    }
}

fn post_attendee(
    ctx: &Ctx<'_>,
    activity: Option<String>,
    body: &Bytes,
) -> Result<Response, ODataError> {
    let body = writable(ctx.body(body)?);
    check_properties(&body, schema::ATTENDEES, "")?;
    let attendee: Attendee = decode(Value::Object(body))?;
    let activity = match activity {
        // `Activities('A')/attendees` with another activity in the body is ambiguous: refuse
        // rather than silently pick one.
        Some(a) if !attendee.activity.is_empty() && attendee.activity != a => {
            return Err(ODataError::from(store::StoreError::Validation {
                field: "activity".into(),
                message: format!(
                    "'{}' does not match the activity in the URL",
                    attendee.activity
                ),
            }));
        }
        Some(a) => a,
        None if !attendee.activity.is_empty() => attendee.activity.clone(),
        None => {
            return Err(ODataError::from(store::StoreError::Validation {
                field: "activity".into(),
                message: "required".into(),
            }));
        }
    };
    let change = ctx
        .state
        .store
        .add_attendee(&ctx.company, &activity, attendee)?;
    let record: &Record<Attendee> = &change.attendee;
    let key_text = format!(
        "activity={},line={}",
        quote_key(&record.data.activity),
        record.data.line
    );
    let response = created(
        ctx,
        EntitySet::Attendees,
        &key_text,
        render_attendee(record),
        &record.etag(),
    );
    Ok(with_activity_etag(response, &change.activity_etag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_predicates() {
        assert_eq!(
            parse_key("'C001'"),
            Some(vec![(None, KeyValue::Str("C001".into()))])
        );
        assert_eq!(
            parse_key("'O''Brien'"),
            Some(vec![(None, KeyValue::Str("O'Brien".into()))])
        );
        assert_eq!(
            parse_key("activity='A1', line=2"),
            Some(vec![
                (Some("activity".into()), KeyValue::Str("A1".into())),
                (Some("line".into()), KeyValue::Int(2)),
            ])
        );
        assert_eq!(parse_key("'unterminated"), None);
        assert_eq!(parse_key("a='x' b"), None);
        assert_eq!(
            percent_decode("Contacts(%27C%20001%27)"),
            "Contacts('C 001')"
        );
        assert_eq!(percent_decode("a+b%zz"), "a+b%zz");
    }
}

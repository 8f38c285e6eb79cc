//! [`LnClient`]: the OData client for LN's `lnsync` service, implementing [`LnGateway`].
//!
//! Every request goes through [`LnClient::execute`], which adds the bearer token and the
//! company header, refreshes the token once on 401, and waits out 429/503 `Retry-After` hints a
//! bounded number of times. Status codes that remain are mapped to [`LnError`] by
//! [`LnClient::fail`], keeping LN's error code and message.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lnsync_core::error::LnError;
use lnsync_core::ids::{ActivityKey, ContactCode, LnVersion};
use lnsync_core::model::{
    Activity, Attendee, Contact, DeletedEntity, DeletedObject, Employee, Settings, SyncUser,
};
use lnsync_core::ports::{ActivityPatch, AttendeePatch, LnGateway, NewActivity, Window};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ionapi::IonApi;
use super::token::TokenProvider;
use super::wire::{self, ErrorBody, Page};
use crate::odata::{datetime_literal, encode_path, keyed, query_string, string_literal};

/// Header carrying the LN company.
pub const COMPANY_HEADER: &str = "X-Infor-LnCompany";

/// Response header of attendee writes naming the parent activity's etag after the write
/// (`docs/ln-api.md` §4): attendee changes move the activity, and reading it again afterwards
/// could pick up someone else's edit as if it were ours.
pub const ACTIVITY_ETAG_HEADER: &str = "X-Lnsync-Activity-ETag";

/// Default path of the service below `{iu}/{ti}/`.
pub const DEFAULT_SERVICE_PATH: &str = "LN/lnapi/odata/lnsync/";

/// How many keys go into one `contact eq … or …` filter, keeping URLs well under gateway limits.
const KEYS_PER_REQUEST: usize = 40;

/// How to wait out throttling (R37).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Retries after a 429/503 before giving up with [`LnError::Throttled`].
    pub max_retries: u32,
    /// A hint longer than this is not slept in-process: the error goes back so the job queue can
    /// reschedule the job instead of holding a worker.
    pub max_wait: Duration,
    /// Wait when a 429/503 carries no `Retry-After` (doubled per retry).
    pub default_wait: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            max_wait: Duration::from_secs(30),
            default_wait: Duration::from_secs(1),
        }
    }
}

/// Everything an [`LnClient`] needs for one environment.
#[derive(Debug, Clone)]
pub struct LnClientConfig {
    pub ionapi: IonApi,
    /// The LN company (`X-Infor-LnCompany`).
    pub company: String,
    /// Path below `{iu}/{ti}/`; [`DEFAULT_SERVICE_PATH`] when `None`.
    pub service_path: Option<String>,
    /// `Prefer: odata.maxpagesize` for collection reads.
    pub page_size: u32,
    pub throttle: ThrottlePolicy,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl LnClientConfig {
    pub fn new(ionapi: IonApi, company: impl Into<String>) -> Self {
        Self {
            ionapi,
            company: company.into(),
            service_path: None,
            page_size: 200,
            throttle: ThrottlePolicy::default(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// What a request addresses, for error messages.
#[derive(Debug, Clone)]
struct Target {
    entity: &'static str,
    key: String,
}

impl Target {
    fn new(entity: &'static str, key: impl Into<String>) -> Self {
        Self {
            entity,
            key: key.into(),
        }
    }
}

/// One request, rebuilt on each attempt (token refresh, throttling).
#[derive(Debug)]
struct Call<'a> {
    method: Method,
    url: String,
    body: Option<&'a Value>,
    if_match: Option<&'a str>,
    prefer: Option<String>,
    target: Target,
}

/// A response that passed the retry loop: any status but 401/429/503 (unless retries ran out).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    /// The raw body; reading it can still fail (connection dropped mid-body).
    body: reqwest::Result<Vec<u8>>,
}

/// The LN gateway of one environment over HTTP.
#[derive(Debug)]
pub struct LnClient {
    http: reqwest::Client,
    tokens: TokenProvider,
    company: HeaderValue,
    company_name: String,
    service_root: url::Url,
    page_size: u32,
    throttle: ThrottlePolicy,
}

impl LnClient {
    /// Build a client with its own reqwest (rustls) connection pool.
    pub fn new(config: LnClientConfig) -> Result<Self, LnError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| LnError::Configuration(format!("cannot build the HTTP client: {e}")))?;
        Self::with_http(config, http)
    }

    /// Build a client on an existing reqwest client (shared pool, custom TLS roots).
    pub fn with_http(config: LnClientConfig, http: reqwest::Client) -> Result<Self, LnError> {
        let company = HeaderValue::from_str(&config.company).map_err(|_| {
            LnError::Configuration(format!("invalid LN company '{}'", config.company))
        })?;
        if config.company.trim().is_empty() {
            return Err(LnError::Configuration("the LN company is empty".into()));
        }
        let path = config
            .service_path
            .as_deref()
            .unwrap_or(DEFAULT_SERVICE_PATH);
        let path = path.trim_matches('/');
        let base = config.ionapi.ion_api_url.as_str().trim_end_matches('/');
        let root = format!("{base}/{}/{path}/", config.ionapi.tenant);
        let service_root = url::Url::parse(&root)
            .map_err(|e| LnError::Configuration(format!("invalid LN service URL {root}: {e}")))?;
        Ok(Self {
            tokens: TokenProvider::new(http.clone(), config.ionapi),
            http,
            company,
            company_name: config.company,
            service_root,
            page_size: config.page_size.max(1),
            throttle: config.throttle,
        })
    }

    /// `{iu}/{ti}/LN/lnapi/odata/lnsync/`.
    pub fn service_root(&self) -> &url::Url {
        &self.service_root
    }

    fn url(&self, resource: &str, query: &[(&str, String)]) -> String {
        format!("{}{resource}{}", self.service_root, query_string(query))
    }

    /// Send with auth, refresh-once-on-401 and throttling waits.
    async fn execute(&self, call: &Call<'_>) -> Result<Answer, LnError> {
        let mut refreshed = false;
        let mut throttled = 0u32;
        loop {
            let token = self.tokens.get().await?;
            let mut request = self
                .http
                .request(call.method.clone(), &call.url)
                .bearer_auth(token.expose())
                .header(COMPANY_HEADER, self.company.clone())
                .header(header::ACCEPT, "application/json")
                .header("OData-Version", "4.0");
            if let Some(prefer) = &call.prefer {
                request = request.header("Prefer", prefer);
            }
            if let Some(tag) = call.if_match {
                request = request.header(header::IF_MATCH, tag);
            }
            if let Some(body) = call.body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|e| self.unreachable(&call.url, e))?;
            let status = response.status();
            match status {
                StatusCode::UNAUTHORIZED if !refreshed => {
                    // Tokens can be revoked before they expire; one fresh token is worth a try.
                    tracing::debug!(company = %self.company_name, "LN answered 401; refreshing the token");
                    self.tokens.invalidate(&token).await;
                    refreshed = true;
                    continue;
                }
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                    let wait = retry_after(response.headers())
                        .unwrap_or(self.throttle.default_wait * 2u32.saturating_pow(throttled));
                    if throttled >= self.throttle.max_retries || wait > self.throttle.max_wait {
                        return Err(LnError::Throttled { retry_after: wait });
                    }
                    throttled += 1;
                    tracing::info!(
                        company = %self.company_name,
                        status = status.as_u16(),
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "LN is throttling; waiting before retrying"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                _ => {}
            }
            let headers = response.headers().clone();
            let body = response.bytes().await.map(|b| b.to_vec());
            return Ok(Answer {
                status,
                headers,
                body,
            });
        }
    }

    fn unreachable(&self, url: &str, error: reqwest::Error) -> LnError {
        // Name the URL without its query: filters can be long and are not needed to act on it.
        let url = url.split('?').next().unwrap_or(url).to_owned();
        LnError::Unreachable {
            url,
            source: Box::new(error),
        }
    }

    fn body(&self, call: &Call<'_>, answer: Answer) -> Result<Vec<u8>, LnError> {
        answer.body.map_err(|e| self.unreachable(&call.url, e))
    }

    /// Map a non-success answer to an error.
    fn fail(&self, call: &Call<'_>, answer: Answer) -> LnError {
        let status = answer.status;
        let body = answer.body.unwrap_or_default();
        let error: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        let Target { entity, key } = call.target.clone();
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => LnError::Unauthorized {
                message: format!("{} {}", error.error.code, error.error.message)
                    .trim()
                    .to_owned(),
            },
            StatusCode::NOT_FOUND => LnError::NotFound {
                entity: entity.to_owned(),
                key,
            },
            StatusCode::PRECONDITION_FAILED => LnError::PreconditionFailed {
                entity: entity.to_owned(),
                key,
            },
            StatusCode::CONFLICT => match error.existing_key() {
                Some(existing) => LnError::AlreadyExists {
                    entity: entity.to_owned(),
                    existing_key: existing.to_owned(),
                },
                None => server_error(status, error),
            },
            StatusCode::BAD_REQUEST
                if matches!(
                    error.error.code.as_str(),
                    "InvalidCompany" | "MissingCompany"
                ) =>
            {
                LnError::Configuration(format!(
                    "LN company '{}': {}",
                    self.company_name, error.error.message
                ))
            }
            // A 429/503 here means the retries ran out without a usable hint.
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => LnError::Throttled {
                retry_after: retry_after(&answer.headers).unwrap_or(self.throttle.default_wait),
            },
            _ => server_error(status, error),
        }
    }

    /// Send and decode a JSON body of a successful answer.
    async fn json<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<Option<T>, LnError> {
        let answer = self.execute(call).await?;
        if answer.status == StatusCode::NOT_FOUND && call.method == Method::GET {
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(self.fail(call, answer));
        }
        let body = self.body(call, answer)?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| LnError::Protocol {
                message: format!(
                    "unexpected {} response from {}",
                    call.target.entity, call.url
                ),
                source: Some(Box::new(e)),
            })
    }

    /// Read every page of a collection, following `@odata.nextLink`.
    async fn all<T: DeserializeOwned>(
        &self,
        entity: &'static str,
        resource: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>, LnError> {
        let mut url = self.url(resource, query);
        let mut rows = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let call = Call {
                method: Method::GET,
                url: url.clone(),
                body: None,
                if_match: None,
                prefer: Some(format!("odata.maxpagesize={}", self.page_size)),
                target: Target::new(entity, ""),
            };
            let answer = self.execute(&call).await?;
            if !answer.status.is_success() {
                return Err(self.fail(&call, answer));
            }
            let body = self.body(&call, answer)?;
            let page: Page = serde_json::from_slice(&body).map_err(|e| LnError::Protocol {
                message: format!("unexpected {entity} page from {url}"),
                source: Some(Box::new(e)),
            })?;
            for value in page.value {
                rows.push(decode_row(entity, value)?);
            }
            let Some(next) = page.next_link else {
                return Ok(rows);
            };
            let next = self.next_url(&url, &next)?;
            // A server that hands out the same link twice would page forever.
            if !seen.insert(next.clone()) {
                return Err(LnError::Protocol {
                    message: format!("LN repeated the next link {next}"),
                    source: None,
                });
            }
            url = next;
        }
    }

    /// Resolve a next link and refuse one that leaves the service's origin: the bearer token
    /// must never be sent anywhere else.
    pub(super) fn next_url(&self, current: &str, next: &str) -> Result<String, LnError> {
        let base = url::Url::parse(current).map_err(|e| LnError::Protocol {
            message: format!("invalid request URL {current}"),
            source: Some(Box::new(e)),
        })?;
        let resolved = base.join(next).map_err(|e| LnError::Protocol {
            message: format!("invalid next link {next}"),
            source: Some(Box::new(e)),
        })?;
        if resolved.origin() != self.service_root.origin() {
            return Err(LnError::Protocol {
                message: format!("next link {resolved} leaves the LN service origin"),
                source: None,
            });
        }
        Ok(resolved.to_string())
    }

    async fn write(
        &self,
        method: Method,
        resource: String,
        body: Option<&Value>,
        if_match: Option<&str>,
        prefer: Option<&str>,
        target: Target,
    ) -> Result<Option<Value>, LnError> {
        let call = Call {
            method,
            url: self.url(&resource, &[]),
            body,
            if_match,
            prefer: prefer.map(str::to_owned),
            target,
        };
        self.write_call(&call).await
    }

    async fn write_call(&self, call: &Call<'_>) -> Result<Option<Value>, LnError> {
        self.write_call_with_headers(call)
            .await
            .map(|(value, _)| value)
    }

    /// A write whose caller also needs a response header (the parent activity's etag).
    async fn write_call_with_headers(
        &self,
        call: &Call<'_>,
    ) -> Result<(Option<Value>, HeaderMap), LnError> {
        let answer = self.execute(call).await?;
        if !answer.status.is_success() {
            return Err(self.fail(call, answer));
        }
        let headers = answer.headers.clone();
        if answer.status == StatusCode::NO_CONTENT {
            return Ok((None, headers));
        }
        let body = self.body(call, answer)?;
        let value = serde_json::from_slice(&body).map_err(|e| LnError::Protocol {
            message: format!(
                "unexpected {} response from {}",
                call.target.entity, call.url
            ),
            source: Some(Box::new(e)),
        })?;
        Ok((Some(value), headers))
    }
}

fn server_error(status: StatusCode, error: ErrorBody) -> LnError {
    LnError::Server {
        status: status.as_u16(),
        code: error.error.code,
        message: error.error.message,
    }
}

fn decode_row<T: DeserializeOwned>(entity: &'static str, value: Value) -> Result<T, LnError> {
    // Name the row in the error: one unreadable row should be findable in LN.
    let key = ["contact", "activity", "user", "employee", "key"]
        .iter()
        .find_map(|k| value.get(k).and_then(Value::as_str))
        .unwrap_or("?")
        .to_owned();
    serde_json::from_value(value).map_err(|e| LnError::Protocol {
        message: format!("cannot read {entity} {key}"),
        source: Some(Box::new(e)),
    })
}

fn activity(wire: wire::WireActivity) -> Result<Activity, LnError> {
    wire.into_core().map_err(|message| LnError::Protocol {
        message,
        source: None,
    })
}

/// Parse `Retry-After`: delay-seconds or an HTTP-date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
}

fn since_filter(field: &str, since: Option<DateTime<Utc>>) -> Option<String> {
    since.map(|at| format!("{field} ge {}", datetime_literal(at)))
}

/// `Attendees(activity='…',line=n)`.
fn attendee_resource(activity: &ActivityKey, line: u32) -> String {
    format!(
        "Attendees({})",
        encode_path(&format!(
            "activity={},line={line}",
            string_literal(activity.as_str())
        ))
    )
}

/// The parent activity's etag reported by an attendee write, if LN sent one.
fn activity_etag(headers: &HeaderMap) -> Option<LnVersion> {
    headers
        .get(ACTIVITY_ETAG_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(LnVersion::new)
}

/// Keeps one row per activity key: the last one served.
///
/// Paging is keyset-based on (`lastModified`, `activity`): an activity changed while the walk
/// is under way moves behind the cursor and is served again, newer, on a later page. The later
/// copy is the current one; the earlier is dropped so callers never see one activity twice.
fn last_per_key(rows: Vec<Activity>) -> Vec<Activity> {
    let mut last = std::collections::HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        last.insert(row.activity.clone(), i);
    }
    rows.into_iter()
        .enumerate()
        .filter(|(i, row)| last.get(&row.activity) == Some(i))
        .map(|(_, row)| row)
        .collect()
}

#[async_trait]
impl LnGateway for LnClient {
    async fn settings(&self) -> Result<Settings, LnError> {
        let call = Call {
            method: Method::GET,
            url: self.url("Settings", &[]),
            body: None,
            if_match: None,
            prefer: None,
            target: Target::new("Settings", ""),
        };
        match self.json::<wire::WireSettings>(&call).await? {
            Some(settings) => Ok(settings.into()),
            None => Err(LnError::NotFound {
                entity: "Settings".into(),
                key: String::new(),
            }),
        }
    }

    async fn sync_users(&self) -> Result<Vec<SyncUser>, LnError> {
        let rows: Vec<wire::WireSyncUser> = self
            .all("SyncUser", "SyncUsers", &[("$orderby", "user".into())])
            .await?;
        Ok(rows.into_iter().map(SyncUser::from).collect())
    }

    async fn employees(&self) -> Result<Vec<Employee>, LnError> {
        let rows: Vec<wire::WireEmployee> = self
            .all("Employee", "Employees", &[("$orderby", "employee".into())])
            .await?;
        Ok(rows.into_iter().map(Employee::from).collect())
    }

    async fn contacts_changed_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Contact>, LnError> {
        let mut query = vec![("$orderby", "lastModified,contact".to_owned())];
        if let Some(filter) = since_filter("lastModified", since) {
            query.insert(0, ("$filter", filter));
        }
        let rows: Vec<wire::WireContact> = self.all("Contact", "Contacts", &query).await?;
        Ok(rows.into_iter().map(Contact::from).collect())
    }

    async fn contacts_by_key(&self, keys: &[ContactCode]) -> Result<Vec<Contact>, LnError> {
        let mut contacts = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_REQUEST) {
            let filter = chunk
                .iter()
                .map(|k| format!("contact eq {}", string_literal(k.as_str())))
                .collect::<Vec<_>>()
                .join(" or ");
            let rows: Vec<wire::WireContact> = self
                .all(
                    "Contact",
                    "Contacts",
                    &[("$filter", filter), ("$orderby", "contact".into())],
                )
                .await?;
            contacts.extend(rows.into_iter().map(Contact::from));
        }
        Ok(contacts)
    }

    async fn deleted_since(
        &self,
        entity: DeletedEntity,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<DeletedObject>, LnError> {
        let mut filter = format!("entity eq {}", string_literal(entity.as_str()));
        if let Some(since) = since_filter("deletedAt", since) {
            filter = format!("{since} and {filter}");
        }
        let rows: Vec<wire::WireDeleted> = self
            .all(
                "DeletedObject",
                "DeletedObjects",
                &[("$filter", filter), ("$orderby", "deletedAt,key".into())],
            )
            .await?;
        Ok(rows.into_iter().map(DeletedObject::from).collect())
    }

    async fn activities_in_window(
        &self,
        window: Window,
        changed_since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Activity>, LnError> {
        // A full listing is the window's appointments and calls. A change read also returns
        // activities that left the window or changed type since (the port's contract), so
        // the core can unlink or cancel them; only the window's future side bounds it.
        let filter = match since_filter("lastModified", changed_since) {
            Some(since) => format!("{since} and start lt {}", datetime_literal(window.end)),
            None => format!(
                "(type eq 'Appointment' or type eq 'Call') and end ge {} and start lt {}",
                datetime_literal(window.start),
                datetime_literal(window.end)
            ),
        };
        let rows: Vec<wire::WireActivity> = self
            .all(
                "Activity",
                "Activities",
                &[
                    ("$filter", filter),
                    ("$orderby", "lastModified,activity".into()),
                    ("$expand", "attendees".into()),
                ],
            )
            .await?;
        let activities = rows
            .into_iter()
            .map(activity)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(last_per_key(activities))
    }

    async fn activity(&self, key: &ActivityKey) -> Result<Option<Activity>, LnError> {
        let call = Call {
            method: Method::GET,
            url: self.url(
                &keyed("Activities", key.as_str()),
                &[("$expand", "attendees".into())],
            ),
            body: None,
            if_match: None,
            prefer: None,
            target: Target::new("Activity", key.as_str()),
        };
        match self.json::<wire::WireActivity>(&call).await? {
            Some(wire) => activity(wire).map(Some),
            None => Ok(None),
        }
    }

    async fn create_activity(&self, new: &NewActivity) -> Result<Activity, LnError> {
        let body = wire::create_body(new).map_err(|e| LnError::Protocol {
            message: "cannot encode the new activity".into(),
            source: Some(Box::new(e)),
        })?;
        let reference = new.activity.external_reference.clone().unwrap_or_default();
        let created = self
            .write(
                Method::POST,
                "Activities".into(),
                Some(&body),
                None,
                Some("return=representation"),
                Target::new("Activity", reference),
            )
            .await?
            .ok_or_else(|| LnError::Protocol {
                message: "LN created the activity but returned no body".into(),
                source: None,
            })?;
        activity(decode_row("Activity", created)?)
    }

    async fn update_activity(
        &self,
        key: &ActivityKey,
        version: &LnVersion,
        patch: &ActivityPatch,
    ) -> Result<Activity, LnError> {
        let body = wire::activity_patch_body(patch).map_err(|e| LnError::Protocol {
            message: "cannot encode the activity patch".into(),
            source: Some(Box::new(e)),
        })?;
        // `$expand` on the PATCH returns the updated activity with its attendees in one round trip.
        let call = Call {
            method: Method::PATCH,
            url: self.url(
                &keyed("Activities", key.as_str()),
                &[("$expand", "attendees".into())],
            ),
            body: Some(&body),
            if_match: Some(version.as_str()),
            prefer: Some("return=representation".into()),
            target: Target::new("Activity", key.as_str()),
        };
        let updated = self.write_call(&call).await?;
        match updated {
            Some(value) => activity(decode_row("Activity", value)?),
            // A server that ignores the preference answers 204: read the result back.
            None => self.activity(key).await?.ok_or_else(|| LnError::NotFound {
                entity: "Activity".into(),
                key: key.to_string(),
            }),
        }
    }

    async fn update_attendee(
        &self,
        activity_key: &ActivityKey,
        line: u32,
        version: Option<&LnVersion>,
        patch: &AttendeePatch,
    ) -> Result<(Attendee, Option<LnVersion>), LnError> {
        let body = wire::attendee_patch_body(patch).map_err(|e| LnError::Protocol {
            message: "cannot encode the attendee patch".into(),
            source: Some(Box::new(e)),
        })?;
        // Without a known version, `*` states "any version" explicitly rather than omitting the
        // precondition (which LN would also accept, but silently).
        let if_match = version.map_or("*", LnVersion::as_str);
        let call = Call {
            method: Method::PATCH,
            url: self.url(&attendee_resource(activity_key, line), &[]),
            body: Some(&body),
            if_match: Some(if_match),
            prefer: Some("return=representation".into()),
            target: Target::new("Attendee", format!("{activity_key}/{line}")),
        };
        let (updated, headers) = self.write_call_with_headers(&call).await?;
        let activity_version = activity_etag(&headers);
        let attendee = match updated {
            Some(value) => Attendee::from(decode_row::<wire::WireAttendee>("Attendee", value)?),
            None => {
                // A server that ignores the preference answers 204: read the line back. The
                // activity's version is still only taken from the header: the re-read could
                // carry someone else's later edit.
                let activity = self.activity(activity_key).await?;
                activity
                    .and_then(|a| a.attendees.into_iter().find(|t| t.line == line))
                    .ok_or_else(|| LnError::NotFound {
                        entity: "Attendee".into(),
                        key: format!("{activity_key}/{line}"),
                    })?
            }
        };
        Ok((attendee, activity_version))
    }

    async fn add_attendee(
        &self,
        activity_key: &ActivityKey,
        attendee: &Attendee,
    ) -> Result<Attendee, LnError> {
        // The parent comes from the argument, not from `attendee.activity`, which callers
        // building a new line may leave empty.
        let body =
            wire::attendee_create_body(activity_key, attendee).map_err(|e| LnError::Protocol {
                message: "cannot encode the new attendee".into(),
                source: Some(Box::new(e)),
            })?;
        let created = self
            .write(
                Method::POST,
                "Attendees".into(),
                Some(&body),
                None,
                Some("return=representation"),
                Target::new("Attendee", format!("{activity_key}/new")),
            )
            .await?
            .ok_or_else(|| LnError::Protocol {
                message: format!("LN added an attendee to {activity_key} but returned no body"),
                source: None,
            })?;
        Ok(Attendee::from(decode_row::<wire::WireAttendee>(
            "Attendee", created,
        )?))
    }

    async fn delete_attendee(
        &self,
        activity_key: &ActivityKey,
        line: u32,
        version: Option<&LnVersion>,
    ) -> Result<(), LnError> {
        // As for updates: `*` says "any version" explicitly when the caller has none.
        let if_match = version.map_or("*", LnVersion::as_str);
        self.write(
            Method::DELETE,
            attendee_resource(activity_key, line),
            None,
            Some(if_match),
            None,
            Target::new("Attendee", format!("{activity_key}/{line}")),
        )
        .await?;
        Ok(())
    }

    async fn delete_activity(&self, key: &ActivityKey, version: &LnVersion) -> Result<(), LnError> {
        self.write(
            Method::DELETE,
            keyed("Activities", key.as_str()),
            None,
            Some(version.as_str()),
            None,
            Target::new("Activity", key.as_str()),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    fn row(key: &str, minute: u32) -> Activity {
        use lnsync_core::model::{ActivityStatus, ActivityType, Origin, ShowTimeAs};
        let at = DateTime::<Utc>::from_timestamp(1_795_000_000 + i64::from(minute) * 60, 0)
            .unwrap_or_default();
        Activity {
            activity: ActivityKey::new(key),
            activity_type: ActivityType::Appointment,
            subject: None,
            location: None,
            information: None,
            all_day: false,
            start: at,
            end: at,
            reminder_set: false,
            reminder_value: None,
            reminder_unit: None,
            show_time_as: ShowTimeAs::Busy,
            status: ActivityStatus::Planned,
            synchronize: true,
            contact: None,
            business_partner: None,
            external_reference: None,
            origin: Origin::Ln,
            last_modified: at,
            version: LnVersion::new(format!("W/\"{minute}\"")),
            attendees: Vec::new(),
        }
    }

    #[test]
    fn a_row_served_twice_while_paging_is_kept_once_as_its_later_copy() {
        let rows = vec![row("A", 1), row("B", 2), row("C", 3), row("A", 4)];
        let kept = last_per_key(rows);
        let keys: Vec<(&str, u32)> = kept
            .iter()
            .map(|a| {
                let minute = a.version.as_str().trim_matches(|c| !char::is_numeric(c));
                (a.activity.as_str(), minute.parse().unwrap_or(0))
            })
            .collect();
        assert_eq!(keys, [("B", 2), ("C", 3), ("A", 4)]);
        assert!(last_per_key(Vec::new()).is_empty());
    }

    #[test]
    fn the_activity_etag_header_is_read_when_present() {
        let mut headers = HeaderMap::new();
        assert_eq!(activity_etag(&headers), None);
        headers.insert(ACTIVITY_ETAG_HEADER, HeaderValue::from_static("W/\"17\""));
        assert_eq!(activity_etag(&headers), Some(LnVersion::new("W/\"17\"")));
        headers.insert(ACTIVITY_ETAG_HEADER, HeaderValue::from_static(" "));
        assert_eq!(activity_etag(&headers), None);
    }
}

//! The HTTP side of [`GraphMailbox`](super::GraphMailbox): every Graph call goes through
//! [`GraphClient::send`] (or [`GraphClient::batch`] for up to 20 at once), which
//!
//! - adds the bearer token, and on a 401 renews it once and retries;
//! - adds `Prefer: outlook.timezone="UTC"` and `Prefer: IdType="ImmutableId"` (exchange.md
//!   §3.2), plus `odata.maxpagesize` on listings and delta rounds and a text body on event
//!   reads;
//! - passes the mailbox's gate (at most `max_in_flight` in flight, its "not before");
//! - on 429/503/504 holds the mailbox for `Retry-After` (or an exponential default) and retries
//!   up to `max_retries` times; a longer hint, or no retries left, is `Throttled` (R37).
//!
//! Answers come back as [`Answer`]s (status + JSON); what an error status means is up to the
//! caller and `classify`.

use std::collections::HashSet;
use std::time::Duration;

use lnsync_core::error::MailboxError;
use lnsync_core::ids::MailboxAddress;
use reqwest::Method;
use reqwest::header::{self, HeaderMap};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::GraphConfig;
use super::auth::TokenCache;
use super::classify;
use super::gate::Gates;

pub(crate) const PREFER_UTC: &str = r#"outlook.timezone="UTC""#;
pub(crate) const PREFER_IMMUTABLE_ID: &str = r#"IdType="ImmutableId""#;
/// Event bodies as plain text: the core compares text (R27), and HTML would differ on every read.
pub(crate) const PREFER_TEXT_BODY: &str = r#"outlook.body-content-type="text""#;

/// Requests per `$batch` (Graph's limit, exchange.md §3.8).
pub(crate) const MAX_BATCH: usize = 20;

// The OData URL helpers LN's client uses too.
pub(crate) use crate::odata::{encode_segment, query_string as query, string_literal as literal};

/// `/users/{mailbox}`.
pub(crate) fn user_path(mailbox: &MailboxAddress) -> String {
    format!("/users/{}", encode_segment(mailbox.as_str()))
}

/// `Retry-After` in seconds (Graph does not use the HTTP-date form).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// One Graph request, relative to the service root.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: Method,
    /// `/users/…`, with its query string.
    pub path: String,
    pub body: Option<Value>,
    /// `If-Match` (an etag).
    pub if_match: Option<String>,
    /// Ask for `odata.maxpagesize` pages.
    pub paged: bool,
    /// Ask for text event bodies.
    pub text_body: bool,
}

impl Request {
    fn new(method: Method, path: impl Into<String>, body: Option<Value>) -> Self {
        Self {
            method,
            path: path.into(),
            body,
            if_match: None,
            paged: false,
            text_body: false,
        }
    }

    pub(crate) fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path, None)
    }

    pub(crate) fn post(path: impl Into<String>, body: Value) -> Self {
        Self::new(Method::POST, path, Some(body))
    }

    pub(crate) fn patch(path: impl Into<String>, body: Value) -> Self {
        Self::new(Method::PATCH, path, Some(body))
    }

    pub(crate) fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path, None)
    }

    pub(crate) fn paged(mut self) -> Self {
        self.paged = true;
        self
    }

    pub(crate) fn text_body(mut self) -> Self {
        self.text_body = true;
        self
    }

    pub(crate) fn if_match(mut self, etag: Option<String>) -> Self {
        self.if_match = etag;
        self
    }
}

/// The `error` object of a Graph error answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Fault {
    pub code: String,
    pub message: String,
}

/// What Graph answered to one request (outer or inside a `$batch`).
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub status: u16,
    /// The JSON body; `Null` when empty, a string for a non-JSON error page.
    pub body: Value,
    pub retry_after: Option<Duration>,
}

impl Answer {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub(crate) fn is_throttled(&self) -> bool {
        matches!(self.status, 429 | 503 | 504)
    }

    pub(crate) fn fault(&self) -> Fault {
        match &self.body {
            Value::Object(map) => {
                let error = map.get("error");
                let text = |k: &str| {
                    error
                        .and_then(|e| e.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                Fault {
                    code: text("code"),
                    message: text("message"),
                }
            }
            Value::String(page) => Fault {
                code: String::new(),
                message: page.clone(),
            },
            _ => Fault::default(),
        }
    }

    /// The body as `T`; `what` names it in the error.
    pub(crate) fn parse<T: DeserializeOwned>(self, what: &str) -> Result<T, MailboxError> {
        serde_json::from_value(self.body).map_err(|e| MailboxError::Protocol {
            message: format!("unreadable {what} in a Graph answer"),
            source: Some(Box::new(e)),
        })
    }

    /// A synthetic throttling answer for an inner request that stayed throttled.
    fn throttled(retry_after: Option<Duration>) -> Self {
        Self {
            status: 429,
            body: json!({"error": {"code": "ApplicationThrottled", "message": "still throttled after the allowed retries"}}),
            retry_after,
        }
    }
}

/// A collection answer (listing, delta round), with its paging links.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Page<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(
        rename = "@odata.nextLink",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub next_link: Option<String>,
    #[serde(
        rename = "@odata.deltaLink",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub delta_link: Option<String>,
}

#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    responses: Vec<InnerAnswer>,
}

#[derive(Deserialize)]
struct InnerAnswer {
    id: String,
    status: u16,
    #[serde(default)]
    headers: std::collections::HashMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
}

/// Snippet of a non-JSON body for an error message (a proxy's page, not item data).
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[derive(Debug)]
pub(crate) struct GraphClient {
    http: reqwest::Client,
    pub(crate) config: GraphConfig,
    /// The service root without a trailing slash.
    base: String,
    auth: TokenCache,
    gates: Gates,
}

impl GraphClient {
    pub(crate) fn new(config: GraphConfig, http: reqwest::Client) -> Self {
        let base = config.base_url.as_str().trim_end_matches('/').to_owned();
        let auth = TokenCache::new(
            http.clone(),
            &config.login_url,
            &config.tenant,
            &config.client_id,
            config.client_secret.clone(),
        );
        let gates = Gates::new(config.max_in_flight);
        Self {
            http,
            config,
            base,
            auth,
            gates,
        }
    }

    /// A `@odata.nextLink`/`deltaLink` as a path below the service root; `None` for a link
    /// elsewhere, which is never followed (it would carry our token to another host).
    pub(crate) fn relative(&self, link: &str) -> Option<String> {
        let rest = link.strip_prefix(&self.base)?;
        rest.starts_with('/').then(|| rest.to_owned())
    }

    /// The wait before retry number `attempt` (0-based) after a throttling answer.
    fn back_off(&self, hint: Option<Duration>, attempt: u32) -> Duration {
        let fallback = self
            .config
            .default_back_off
            .saturating_mul(2u32.saturating_pow(attempt.min(16)));
        hint.unwrap_or(fallback).min(self.config.max_back_off)
    }

    /// Whether to give up on a throttling answer: no retries left, or a hint longer than we
    /// are willing to sleep in-process (the caller reschedules instead).
    fn give_up(&self, hint: Option<Duration>, attempt: u32) -> bool {
        attempt >= self.config.max_retries || hint.is_some_and(|h| h > self.config.max_back_off)
    }

    fn prefer(&self, request: &Request) -> Vec<String> {
        let mut prefer = vec![PREFER_UTC.to_owned(), PREFER_IMMUTABLE_ID.to_owned()];
        if request.paged {
            prefer.push(format!(
                "odata.maxpagesize={}",
                self.config.page_size.max(1)
            ));
        }
        if request.text_body {
            prefer.push(PREFER_TEXT_BODY.to_owned());
        }
        prefer
    }

    async fn send_once(
        &self,
        request: &Request,
        token: &lnsync_core::secret::Secret,
    ) -> Result<Answer, MailboxError> {
        let url = format!("{}{}", self.base, request.path);
        let mut builder = self
            .http
            .request(request.method.clone(), &url)
            .bearer_auth(token.expose())
            .header(header::ACCEPT, "application/json");
        // One header line per preference (reqwest appends), as Graph's docs show them.
        for prefer in self.prefer(request) {
            builder = builder.header("Prefer", prefer);
        }
        if let Some(etag) = &request.if_match {
            builder = builder.header(header::IF_MATCH, etag.as_str());
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let unreachable = |e: reqwest::Error| MailboxError::Unreachable {
            url: url.split('?').next().unwrap_or_default().to_owned(),
            source: Box::new(e),
        };
        let response = builder.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let hint = retry_after(response.headers());
        let bytes = response.bytes().await.map_err(unreachable)?;
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) if (200..300).contains(&status) => {
                    return Err(MailboxError::Protocol {
                        message: format!(
                            "{} {} answered {status} with a body that is not JSON",
                            request.method,
                            request.path.split('?').next().unwrap_or_default()
                        ),
                        source: Some(Box::new(e)),
                    });
                }
                Err(_) => Value::String(snippet(&bytes)),
            }
        };
        tracing::debug!(method = %request.method, path = %request.path, status, "Graph call");
        Ok(Answer {
            status,
            body,
            retry_after: hint,
        })
    }

    /// Sends one request for `mailbox` (its gate, counted as `weight` requests in flight),
    /// retrying after throttling and once after a rejected token. Any other status is
    /// returned for the caller to judge.
    async fn send_weighted(
        &self,
        mailbox: &MailboxAddress,
        request: &Request,
        weight: usize,
    ) -> Result<Answer, MailboxError> {
        let mut attempt = 0u32;
        let mut renewed = false;
        loop {
            // The token first: a token fetch must not hold one of the mailbox's permits.
            let token = self.auth.token(mailbox).await?;
            let pass = self.gates.enter(mailbox, weight).await;
            let answer = self.send_once(request, &token).await;
            drop(pass);
            let answer = answer?;
            if answer.status == 401 && !renewed {
                // Expired or revoked early: one new token, one more try.
                self.auth.invalidate(&token).await;
                renewed = true;
                continue;
            }
            if !answer.is_throttled() {
                return Ok(answer);
            }
            if self.give_up(answer.retry_after, attempt) {
                let retry_after = answer
                    .retry_after
                    .unwrap_or_else(|| self.back_off(None, attempt));
                // The caller reschedules; until then the mailbox's other calls in this process
                // (push jobs) must keep away too (R37).
                self.gates.hold(mailbox, retry_after);
                return Err(MailboxError::Throttled {
                    mailbox: mailbox.clone(),
                    retry_after,
                });
            }
            let wait = self.back_off(answer.retry_after, attempt);
            attempt += 1;
            tracing::warn!(%mailbox, status = answer.status, retry = attempt, wait_ms = wait.as_millis() as u64, "Graph throttled the mailbox; backing off");
            self.gates.hold(mailbox, wait);
        }
    }

    pub(crate) async fn send(
        &self,
        mailbox: &MailboxAddress,
        request: &Request,
    ) -> Result<Answer, MailboxError> {
        self.send_weighted(mailbox, request, 1).await
    }

    /// Like [`Self::send`], with any error status turned into the call's error.
    pub(crate) async fn send_ok(
        &self,
        mailbox: &MailboxAddress,
        request: &Request,
    ) -> Result<Answer, MailboxError> {
        let answer = self.send(mailbox, request).await?;
        if answer.is_success() {
            Ok(answer)
        } else {
            Err(classify::call_error(
                mailbox,
                &answer,
                self.config.default_back_off,
            ))
        }
    }

    /// Sends `requests` as `$batch`es of at most 20 and answers one [`Answer`] per request, in
    /// order. Inner requests Graph throttled are sent again (only those) after the mailbox's
    /// wait; one still throttled when retries run out answers 429. A mailbox-wide failure in
    /// any answer (access denied, no such mailbox) fails the whole call.
    pub(crate) async fn batch(
        &self,
        mailbox: &MailboxAddress,
        requests: &[Request],
    ) -> Result<Vec<Answer>, MailboxError> {
        let mut answers: Vec<Option<Answer>> = vec![None; requests.len()];
        let indices: Vec<usize> = (0..requests.len()).collect();
        for chunk in indices.chunks(MAX_BATCH) {
            let mut pending: Vec<usize> = chunk.to_vec();
            let mut attempt = 0u32;
            while !pending.is_empty() {
                let mut throttled: Vec<(usize, Answer)> = Vec::new();
                for (i, answer) in self.send_batch(mailbox, requests, &pending).await? {
                    if answer.is_throttled() {
                        throttled.push((i, answer));
                    } else {
                        answers[i] = Some(answer);
                    }
                }
                let hint = throttled.iter().filter_map(|(_, a)| a.retry_after).max();
                if throttled.is_empty() {
                    break;
                }
                if self.give_up(hint, attempt) {
                    if let Some(hint) = hint {
                        self.gates.hold(mailbox, hint);
                    }
                    for (i, answer) in throttled {
                        answers[i] = Some(answer);
                    }
                    break;
                }
                let wait = self.back_off(hint, attempt);
                attempt += 1;
                tracing::warn!(%mailbox, requests = throttled.len(), retry = attempt, wait_ms = wait.as_millis() as u64, "Graph throttled requests inside a $batch; backing off");
                self.gates.hold(mailbox, wait);
                pending = throttled.into_iter().map(|(i, _)| i).collect();
            }
        }
        let answers: Vec<Answer> = answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Answer::throttled(None)))
            .collect();
        if let Some(e) = answers
            .iter()
            .find_map(|a| classify::mailbox_error(mailbox, a))
        {
            return Err(e);
        }
        Ok(answers)
    }

    /// One `$batch` HTTP request carrying `requests[i]` for each `i` in `which`.
    async fn send_batch(
        &self,
        mailbox: &MailboxAddress,
        requests: &[Request],
        which: &[usize],
    ) -> Result<Vec<(usize, Answer)>, MailboxError> {
        let inner: Vec<Value> = which
            .iter()
            .map(|&i| {
                let r = &requests[i];
                let mut headers = serde_json::Map::new();
                headers.insert("Prefer".into(), Value::String(self.prefer(r).join(", ")));
                if let Some(etag) = &r.if_match {
                    headers.insert("If-Match".into(), Value::String(etag.clone()));
                }
                let mut entry = json!({
                    "id": i.to_string(),
                    "method": r.method.as_str(),
                    "url": r.path,
                });
                if let Some(body) = &r.body {
                    headers.insert(
                        "Content-Type".into(),
                        Value::String("application/json".into()),
                    );
                    entry["body"] = body.clone();
                }
                entry["headers"] = Value::Object(headers);
                entry
            })
            .collect();
        let outer = Request::post("/$batch", json!({ "requests": inner }));
        let answer = self.send_weighted(mailbox, &outer, which.len()).await?;
        if !answer.is_success() {
            return Err(classify::call_error(
                mailbox,
                &answer,
                self.config.default_back_off,
            ));
        }
        let parsed: BatchAnswer = answer.parse("$batch answer")?;
        let mut out = Vec::with_capacity(which.len());
        let mut unanswered: HashSet<usize> = which.iter().copied().collect();
        for inner in parsed.responses {
            // Each request answered exactly once: a repeated id must not hide a missing one.
            let Some(i) = inner
                .id
                .parse::<usize>()
                .ok()
                .filter(|i| unanswered.remove(i))
            else {
                return Err(MailboxError::Protocol {
                    message: format!(
                        "$batch answered an unknown or repeated request id {:?}",
                        inner.id
                    ),
                    source: None,
                });
            };
            let hint = inner
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("Retry-After"))
                .and_then(|(_, v)| parse_retry_after(v));
            out.push((
                i,
                Answer {
                    status: inner.status,
                    body: inner.body.unwrap_or(Value::Null),
                    retry_after: hint,
                },
            ));
        }
        if out.len() != which.len() {
            return Err(MailboxError::Protocol {
                message: format!("$batch answered {} of {} requests", out.len(), which.len()),
                source: None,
            });
        }
        Ok(out)
    }

    /// Every item of a listing, following `@odata.nextLink`s.
    pub(crate) async fn list<T: DeserializeOwned>(
        &self,
        mailbox: &MailboxAddress,
        first: Request,
        what: &str,
    ) -> Result<Vec<T>, MailboxError> {
        let answer = self.send_ok(mailbox, &first).await?;
        self.rest_of(mailbox, &first, answer, what).await
    }

    /// The items of a first answer of a listing plus those of its further pages.
    pub(crate) async fn rest_of<T: DeserializeOwned>(
        &self,
        mailbox: &MailboxAddress,
        first: &Request,
        answer: Answer,
        what: &str,
    ) -> Result<Vec<T>, MailboxError> {
        let mut page: Page<T> = answer.parse(what)?;
        let mut items = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            items.append(&mut page.value);
            let Some(link) = page.next_link.take() else {
                return Ok(items);
            };
            let path = self.follow(&link)?;
            if !seen.insert(path.clone()) {
                return Err(MailboxError::Protocol {
                    message: format!("{what}: Graph repeated the page link {link}"),
                    source: None,
                });
            }
            let next = Request {
                path,
                ..first.clone()
            };
            page = self.send_ok(mailbox, &next).await?.parse(what)?;
        }
    }

    /// A paging link as a path, or a protocol error for a link to another host.
    pub(crate) fn follow(&self, link: &str) -> Result<String, MailboxError> {
        self.relative(link).ok_or_else(|| MailboxError::Protocol {
            message: format!("Graph sent a paging link outside {}: {link}", self.base),
            source: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lnsync_core::secret::Secret;

    fn client() -> GraphClient {
        let mut config = GraphConfig::new("contoso", "lnsync", Secret::new("x"));
        config.default_back_off = Duration::from_secs(2);
        config.max_back_off = Duration::from_secs(30);
        config.max_retries = 3;
        GraphClient::new(config, reqwest::Client::new())
    }

    #[test]
    fn urls_are_encoded_for_graph() {
        assert_eq!(
            user_path(&MailboxAddress::new("o'neill+x@corp.example")),
            "/users/o%27neill%2Bx@corp.example"
        );
        assert_eq!(encode_segment("AAMk/a+b=="), "AAMk%2Fa%2Bb%3D%3D");
        assert_eq!(
            query(&[
                (
                    "$filter",
                    format!("displayName eq {}", literal("CRM O'Contacts"))
                ),
                ("$top", "5".into())
            ]),
            "?$filter=displayName%20eq%20'CRM%20O''Contacts'&$top=5"
        );
    }

    #[test]
    fn retry_after_is_seconds() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT"), None);
    }

    #[test]
    fn back_off_uses_the_hint_else_doubles_and_gives_up_on_long_hints() {
        let c = client();
        assert_eq!(
            c.back_off(Some(Duration::from_secs(3)), 0),
            Duration::from_secs(3)
        );
        assert_eq!(c.back_off(None, 0), Duration::from_secs(2));
        assert_eq!(c.back_off(None, 2), Duration::from_secs(8));
        assert_eq!(c.back_off(None, 9), Duration::from_secs(30));
        assert!(!c.give_up(Some(Duration::from_secs(30)), 0));
        assert!(c.give_up(Some(Duration::from_secs(31)), 0));
        assert!(c.give_up(None, 3));
    }

    #[test]
    fn only_links_below_the_service_root_are_followed() {
        let c = client();
        assert_eq!(
            c.relative("https://graph.microsoft.com/v1.0/users/a/events?$skiptoken=x"),
            Some("/users/a/events?$skiptoken=x".to_owned())
        );
        assert_eq!(c.relative("https://evil.example/v1.0/users/a"), None);
        assert_eq!(c.relative("https://graph.microsoft.com/v1.0evil/x"), None);
        assert!(c.follow("ews-sync-state").is_err());
    }

    #[test]
    fn faults_are_read_from_error_bodies() {
        let answer = Answer {
            status: 404,
            body: json!({"error": {"code": "ErrorItemNotFound", "message": "gone"}}),
            retry_after: None,
        };
        assert_eq!(
            answer.fault(),
            Fault {
                code: "ErrorItemNotFound".into(),
                message: "gone".into()
            }
        );
        let page = Answer {
            status: 502,
            body: Value::String("<html>Bad gateway</html>".into()),
            retry_after: None,
        };
        assert_eq!(page.fault().code, "");
        assert!(page.fault().message.contains("Bad gateway"));
    }
}

//! The HTTP transport `EwsMailbox` talks through, injected so tests can script responses and
//! failures, plus the production implementation on reqwest + rustls.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use lnsync_core::error::BoxError;

/// One POST to the EWS endpoint.
#[derive(Clone)]
pub struct HttpRequest {
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// Redacts `Authorization` and leaves the body out: requests carry contact data (R41).
impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("authorization") {
                    "***"
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("HttpRequest")
            .field("url", &self.url.as_str())
            .field("headers", &headers)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// The answer, whatever its status: EWS puts faults in 500s, so the body always matters.
#[derive(Debug, Clone, Default)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The request never produced an HTTP response.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("connection failed")]
    Connect(#[source] BoxError),
    #[error("timed out")]
    Timeout(#[source] BoxError),
    #[error("HTTP exchange failed")]
    Other(#[source] BoxError),
}

/// Sends one POST and returns the response, any status. Implementations must not retry writes
/// on their own: a retried CreateItem after a lost response would duplicate contacts; the core's
/// stamp lookup (R10) is the recovery path.
#[async_trait]
pub trait HttpTransport: Send + Sync {
    async fn post(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// The production transport: reqwest with rustls.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// `timeout` bounds a whole call. Exchange must finish a batch within a minute
    /// (exchange.md §2.10), so a little more than that is a sensible value.
    pub fn new(timeout: Duration) -> Result<Self, TransportError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .build()
            .map_err(|e| TransportError::Other(Box::new(e)))?;
        Ok(Self { client })
    }

    /// Wraps a client built elsewhere (shared connection pool, proxies, custom roots).
    pub fn with_client(client: reqwest::Client) -> Self {
        Self { client }
    }
}

fn classify(e: reqwest::Error) -> TransportError {
    if e.is_timeout() {
        TransportError::Timeout(Box::new(e))
    } else if e.is_connect() {
        TransportError::Connect(Box::new(e))
    } else {
        TransportError::Other(Box::new(e))
    }
}

#[async_trait]
impl HttpTransport for ReqwestTransport {
    async fn post(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut builder = self.client.post(request.url);
        for (k, v) in &request.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let response = builder.body(request.body).send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let body = response.bytes().await.map_err(classify)?.to_vec();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

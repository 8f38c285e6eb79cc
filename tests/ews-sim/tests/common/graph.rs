//! A small Microsoft Graph client for the simulator's Graph front-end tests: the token
//! endpoint (client credentials), JSON requests with the headers lnsync sends, and the CSDL
//! check of rendered entities.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;

use ews_sim::EwsSim;
use serde_json::Value;

pub type TestResult<T = ()> = Result<T, Box<dyn Error + Send + Sync>>;

pub const TENANT: &str = "contoso";
pub const CLIENT_ID: &str = "lnsync";
pub const SECRET: &str = "graph-secret";
pub const CRM_PROP: &str = "String {00020329-0000-0000-C000-000000000046} Name CrmId";
pub const PREFER_UTC: &str = "outlook.timezone=\"UTC\"";
pub const PREFER_IMMUTABLE: &str = "IdType=\"ImmutableId\"";

/// One answer: status, headers and the JSON body (`Null` when empty).
#[derive(Debug)]
pub struct GResp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
}

impl GResp {
    pub fn code(&self) -> Option<&str> {
        self.json.pointer("/error/code").and_then(Value::as_str)
    }

    pub fn str(&self, pointer: &str) -> String {
        self.json
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    pub fn values(&self) -> Vec<Value> {
        self.json
            .get("value")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

pub struct Graph {
    pub http: reqwest::Client,
    pub base: String,
    pub login: String,
    pub token: String,
    /// Extra `Prefer` values sent with every request (besides UTC and ImmutableId).
    pub prefer: Vec<String>,
}

pub async fn fetch_token(
    http: &reqwest::Client,
    login: &str,
    tenant: &str,
    secret: &str,
) -> TestResult<(u16, Value)> {
    let r = http
        .post(format!("{login}/{tenant}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await?))
}

impl Graph {
    /// A client with a fresh token from the token endpoint.
    pub async fn new(sim: &EwsSim) -> TestResult<Graph> {
        let http = reqwest::Client::new();
        let (status, body) = fetch_token(&http, &sim.graph_login_url(), TENANT, SECRET).await?;
        if status != 200 {
            return Err(format!("token: {status} {body}").into());
        }
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or("no access_token")?
            .to_string();
        Ok(Graph {
            http,
            base: sim.graph_url(),
            login: sim.graph_login_url(),
            token,
            prefer: Vec::new(),
        })
    }

    /// Sends `method path` (relative to `/v1.0`, or an absolute link) with the query pairs,
    /// an optional JSON body and extra headers.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> TestResult<GResp> {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        };
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(&self.token)
            .header("Prefer", PREFER_UTC)
            .header("Prefer", PREFER_IMMUTABLE);
        for p in &self.prefer {
            req = req.header("Prefer", p.as_str());
        }
        if !query.is_empty() {
            req = req.query(query);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await?;
        let json = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?
        };
        Ok(GResp {
            status,
            headers,
            json,
        })
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> TestResult<GResp> {
        self.send(reqwest::Method::GET, path, query, None, &[])
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> TestResult<GResp> {
        self.send(reqwest::Method::POST, path, &[], Some(body), &[])
            .await
    }

    pub async fn patch(
        &self,
        path: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> TestResult<GResp> {
        let h: Vec<(&str, &str)> = if_match.map(|m| vec![("If-Match", m)]).unwrap_or_default();
        self.send(reqwest::Method::PATCH, path, &[], Some(body), &h)
            .await
    }

    pub async fn delete(&self, path: &str) -> TestResult<GResp> {
        self.send(reqwest::Method::DELETE, path, &[], None, &[])
            .await
    }

    /// Follows nextLinks to the end; returns every value and the final deltaLink (if any),
    /// with the number of requests made.
    pub async fn follow(&self, first: GResp) -> TestResult<(Vec<Value>, Option<String>, usize)> {
        let mut values = Vec::new();
        let mut page = first;
        let mut requests = 1;
        loop {
            if page.status != 200 {
                return Err(format!("page: {} {}", page.status, page.json).into());
            }
            values.extend(page.values());
            match page.json.get("@odata.nextLink").and_then(Value::as_str) {
                Some(next) => {
                    let next = next.to_string();
                    page = self.get(&next, &[]).await?;
                    requests += 1;
                }
                None => {
                    let delta = page
                        .json
                        .get("@odata.deltaLink")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    return Ok((values, delta, requests));
                }
            }
        }
    }
}

/// Entity and complex types of the CSDL subset: type name → (base type, property name →
/// property type).
pub struct Csdl {
    pub types: BTreeMap<String, (Option<String>, BTreeMap<String, String>)>,
}

impl Csdl {
    pub fn load() -> TestResult<Csdl> {
        let path = std::env::var("LNSYNC_GRAPH_CSDL")
            .unwrap_or_else(|_| "/work/shared/schemas/graph/graph-v1.0-subset.csdl.xml".into());
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let root = ews_sim::xml::parse(&text)?;
        let mut types = BTreeMap::new();
        let mut stack = vec![&root];
        while let Some(el) = stack.pop() {
            if matches!(el.name.as_str(), "EntityType" | "ComplexType") {
                let name = el.attr("Name").unwrap_or_default().to_string();
                let base = el
                    .attr("BaseType")
                    .map(|b| b.trim_start_matches("graph.").to_string());
                let props = el
                    .children
                    .iter()
                    .filter(|c| matches!(c.name.as_str(), "Property" | "NavigationProperty"))
                    .map(|c| {
                        (
                            c.attr("Name").unwrap_or_default().to_string(),
                            c.attr("Type").unwrap_or_default().to_string(),
                        )
                    })
                    .collect();
                types.insert(name, (base, props));
            }
            stack.extend(el.children.iter());
        }
        Ok(Csdl { types })
    }

    /// Declared properties of `ty` and its base types, with their types.
    pub fn properties(&self, ty: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut cur = Some(ty.to_string());
        while let Some(t) = cur {
            let Some((base, props)) = self.types.get(&t) else {
                break;
            };
            for (k, v) in props {
                out.entry(k.clone()).or_insert_with(|| v.clone());
            }
            cur = base.clone();
        }
        out
    }

    /// Property names in `v` that `ty` (with base types) does not declare, recursing into
    /// complex values whose type the subset declares. Annotations are skipped.
    pub fn undeclared(&self, ty: &str, v: &Value) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.walk(ty, v, "", &mut out);
        out
    }

    fn walk(&self, ty: &str, v: &Value, at: &str, out: &mut BTreeSet<String>) {
        let Value::Object(o) = v else { return };
        let props = self.properties(ty);
        for (k, val) in o {
            if k.starts_with('@') || k.contains("@odata.") {
                continue;
            }
            let Some(pty) = props.get(k) else {
                out.insert(format!("{ty}{at}.{k}"));
                continue;
            };
            let inner = pty
                .trim_start_matches("Collection(")
                .trim_end_matches(')')
                .trim_start_matches("graph.")
                .to_string();
            if !self.types.contains_key(&inner) {
                continue;
            }
            match val {
                Value::Array(a) => {
                    for x in a {
                        self.walk(&inner, x, &format!("{at}.{k}[]"), out);
                    }
                }
                Value::Object(_) => self.walk(&inner, val, &format!("{at}.{k}"), out),
                _ => {}
            }
        }
    }
}

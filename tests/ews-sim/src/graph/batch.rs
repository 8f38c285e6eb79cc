//! `POST /v1.0/$batch`: up to `max_batch_requests` (20) inner requests, each run through the
//! same pipeline as a plain request (mailbox access, back-off window, concurrency limit,
//! faults, handler) with the outer request's authentication, so an inner request can be
//! throttled on its own inside a `200` batch. `dependsOn` is honoured (a failed dependency
//! answers `424`). The batch is one HTTP request: one log record, with the inner operations.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::faults::FaultAction;
use crate::graph::auth::GraphCaller;
use crate::graph::endpoint::{self, GraphRequest, Outcome, Prefs, Reply, parse_query, route};
use crate::graph::error::GraphError;
use crate::graph::throttle::{fault_error, take_faults};
use crate::log::RequestRecord;
use crate::sim::SimHandle;
use crate::state::SimState;

/// Item errors injected on `$batch` (index → error), consuming their rules.
fn inner_faults(st: &mut SimState, n: usize) -> Vec<(usize, GraphError)> {
    let mut out = Vec::new();
    for rule in st.faults.iter_mut() {
        if !rule.matches_graph(None, "$batch") {
            continue;
        }
        if let FaultAction::ItemError { index, .. } = &rule.action
            && *index < n
            && let Some(e) = fault_error(&rule.action)
        {
            out.push((*index, e));
            rule.count -= 1;
        }
    }
    st.faults.retain(|r| r.count > 0);
    out
}

/// The path (below `/v1.0`) and query of an inner request's `url`.
fn split_url(url: &str) -> (String, String) {
    let mut u = url.trim();
    for prefix in ["https://graph.microsoft.com", "http://graph.microsoft.com"] {
        if let Some(r) = u.strip_prefix(prefix) {
            u = r;
        }
    }
    let u = u.strip_prefix("/v1.0").unwrap_or(u);
    let (p, q) = u.split_once('?').unwrap_or((u, ""));
    let p = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    (p, q.to_string())
}

fn inner_headers(v: Option<&Value>, outer: &HeaderMap) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(Value::Object(o)) = v {
        for (k, v) in o {
            if let (Ok(k), Some(Ok(v))) = (
                HeaderName::from_bytes(k.as_bytes()),
                v.as_str().map(HeaderValue::from_str),
            ) {
                h.append(k, v);
            }
        }
    }
    // Authentication is the outer request's; Prefer too when the inner request has none.
    if let Some(a) = outer.get(header::AUTHORIZATION) {
        h.insert(header::AUTHORIZATION, a.clone());
    }
    if !h.contains_key("prefer") {
        for p in outer.get_all("prefer") {
            h.append("prefer", p.clone());
        }
    }
    if let Some(host) = outer.get(header::HOST) {
        h.insert(header::HOST, host.clone());
    }
    h
}

fn headers_json(r: &Reply) -> Value {
    let mut o = Map::new();
    if r.body.is_some() {
        o.insert("Content-Type".into(), json!("application/json"));
    }
    for (k, v) in &r.headers {
        o.insert(k.clone(), json!(v));
    }
    Value::Object(o)
}

/// Runs a `$batch`; `rec`/`out` describe the outer request.
pub async fn run_batch(
    handle: &SimHandle,
    _caller: &GraphCaller,
    req: &GraphRequest,
    sent: std::time::Instant,
    rec: &mut RequestRecord,
    out: &mut Outcome,
) -> Reply {
    let parsed = req.json_body().and_then(|b| {
        b.get("requests")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| GraphError::invalid("Invalid batch payload format."))
    });
    let requests = match parsed {
        Ok(r) => r,
        Err(e) => return Reply::from_error(&e),
    };
    let max = handle.lock().config.graph.max_batch_requests;
    if requests.is_empty() || requests.len() > max {
        return Reply::from_error(&GraphError::invalid(format!(
            "Number of batch request steps must be between 1 and {max}; got {}.",
            requests.len()
        )));
    }
    let mut ids: Vec<String> = Vec::new();
    for r in &requests {
        let id = match r.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        if id.is_empty() || ids.contains(&id) {
            return Reply::from_error(&GraphError::invalid(
                "Every batch request needs a unique id.",
            ));
        }
        if r.get("method").and_then(Value::as_str).is_none()
            || r.get("url").and_then(Value::as_str).is_none()
        {
            return Reply::from_error(&GraphError::invalid(format!(
                "Batch request '{id}' needs a method and a url."
            )));
        }
        ids.push(id);
    }
    // Faults addressed to the batch itself (no mailbox), then to its items.
    let (delay, terminal, injected, item_faults) = {
        let mut st = handle.lock();
        let (d, t, i) = take_faults(&mut st, None, "$batch");
        let f = inner_faults(&mut st, requests.len());
        (d, t, i, f)
    };
    if !injected.is_empty() {
        out.injected = Some(injected.join("; "));
    }
    endpoint::pause(delay).await;
    if let Some(e) = terminal {
        return Reply::from_error(&e);
    }
    let mut statuses: Vec<(String, u16)> = Vec::new();
    let mut responses = Vec::new();
    let mut mailboxes: Vec<String> = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        let id = ids[i].clone();
        let method = r
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("GET")
            .to_ascii_uppercase();
        let url = r.get("url").and_then(Value::as_str).unwrap_or_default();
        let (path, query) = split_url(url);
        let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        let routed = route(&method, &path);
        rec.inner_operations.push(
            routed
                .as_ref()
                .map(|(_, r)| r.operation().to_string())
                .unwrap_or_else(|_| "unknown".into()),
        );
        let deps: Vec<String> = match r.get("dependsOn") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        let failed_dep = deps.iter().find(|d| {
            !statuses
                .iter()
                .any(|(sid, st)| sid == *d && (200..300).contains(st))
        });
        let reply = if let Some(d) = failed_dep {
            Reply::from_error(&GraphError::new(
                StatusCode::FAILED_DEPENDENCY,
                "FailedDependency",
                format!("Request '{id}' depends on '{d}', which did not succeed."),
            ))
        } else if let Some((_, e)) = item_faults.iter().find(|(ix, _)| *ix == i) {
            Reply::from_error(e)
        } else {
            let body = match r.get("body") {
                None | Some(Value::Null) => Bytes::new(),
                Some(v) => Bytes::from(v.to_string()),
            };
            let headers = inner_headers(r.get("headers"), &req.headers);
            let inner = GraphRequest {
                method,
                path,
                query: parse_query(&query),
                headers: headers.clone(),
                body,
                base: req.base.clone(),
            };
            let inner_prefs = Prefs::parse(&headers);
            let mut inner_out = Outcome::default();
            let reply =
                endpoint::run(handle, &inner, sent, &inner_prefs, routed, &mut inner_out).await;
            out.backoff_violation |= inner_out.backoff_violation;
            if let Some(m) = inner_out.mailbox
                && !mailboxes.contains(&m)
            {
                mailboxes.push(m);
            }
            if let Some(i) = inner_out.injected {
                out.injected = Some(match out.injected.take() {
                    Some(prev) => format!("{prev}; {i}"),
                    None => i,
                });
            }
            reply
        };
        statuses.push((id.clone(), reply.status.as_u16()));
        let mut o = Map::new();
        o.insert("id".into(), json!(id));
        o.insert("status".into(), json!(reply.status.as_u16()));
        o.insert("headers".into(), headers_json(&reply));
        if let Some(b) = &reply.body {
            o.insert("body".into(), b.clone());
        }
        responses.push(Value::Object(o));
    }
    // One mailbox (the usual case) is the batch's mailbox in the log.
    if mailboxes.len() == 1 {
        out.mailbox = mailboxes.pop();
    }
    rec.response_codes = statuses.iter().map(|(_, s)| s.to_string()).collect();
    let mut reply = Reply::ok(json!({ "responses": responses }));
    reply.items = requests.len();
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_urls_are_relative_to_the_version() {
        assert_eq!(
            split_url("/users/a@b/events?$top=1"),
            ("/users/a@b/events".into(), "$top=1".into())
        );
        assert_eq!(split_url("users/a@b/events").0, "/users/a@b/events");
        assert_eq!(
            split_url("https://graph.microsoft.com/v1.0/users/a@b/events").0,
            "/users/a@b/events"
        );
    }
}

//! The delivery task of one push subscription: POSTs SendNotification to its URL, one request
//! at a time, as Exchange's client access server does.
//!
//! Events go out as soon as they are routed (several pending → one batched notification with
//! `MoreEvents`); after StatusFrequency idle minutes a StatusEvent goes out. An attempt that
//! gets no usable answer (connection error, timeout, non-2xx, a reply that is not a
//! SendNotificationResult) is retried with the same body after `retry_base`, then after
//! doubling gaps until a gap would exceed StatusFrequency: then the server stops calling and
//! the subscription is dropped. Every attempt is logged as an outgoing request record.
//!
//! The task holds no lock while it waits or posts; it plans under the lock, sends, then
//! records under the lock, so the simulator keeps serving meanwhile.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::log::{AuthKind, Direction, PushDelivery, RequestRecord};
use crate::push::{SEND_NOTIFICATION_ACTION, SubscriberAnswer, SubscriptionState, parse_reply};
use crate::sim::SimHandle;
use crate::state::SimState;

/// What the task does next.
enum Step {
    Stop,
    /// Sleep until `until` or until woken (new events, config change, drop).
    Wait {
        until: Instant,
        wake: Arc<Notify>,
    },
    Send(Attempt),
}

/// One POST, planned under the lock.
struct Attempt {
    seq: u64,
    started: chrono::DateTime<Utc>,
    url: String,
    body: String,
    attempt: u32,
    events: Vec<String>,
    mailbox: String,
    server_version: String,
    timeout: Duration,
}

/// What came back.
struct Answer {
    http_status: u16,
    result: Result<SubscriberAnswer, String>,
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v.max(1))
}

/// `base + d`, saturating instead of panicking on absurd configurations.
fn later(base: Instant, d: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    base.checked_add(d)
        .or_else(|| base.checked_add(YEAR))
        .unwrap_or(base)
}

/// Runs until the subscription ends (unsubscribed, dropped, simulator reset or stopped).
pub(crate) async fn run(handle: SimHandle, id: String) {
    let client = match reqwest::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            let mut st = handle.lock();
            let at = st.store.seq.now();
            st.push
                .drop_one(&id, at, &format!("cannot build an HTTP client: {e}"));
            return;
        }
    };
    loop {
        let step = {
            let mut st = handle.lock();
            plan(&mut st, &id)
        };
        match step {
            Step::Stop => return,
            Step::Wait { until, wake } => {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep_until(until) => {}
                }
            }
            Step::Send(attempt) => {
                let answer = post(&client, &attempt).await;
                let mut st = handle.lock();
                if !finish(&mut st, &id, attempt, answer) {
                    return;
                }
            }
        }
    }
}

fn plan(st: &mut SimState, id: &str) -> Step {
    let SimState {
        store,
        push,
        config,
        next_request_seq,
        ..
    } = st;
    let cfg = &config.push;
    let now = Instant::now();
    let Some(sub) = push.subs.get_mut(id) else {
        return Step::Stop;
    };
    if !sub.is_alive() {
        return Step::Stop;
    }
    if sub.in_flight.is_none() {
        sub.in_flight = crate::push::next_events(sub, cfg.max_events_per_notification);
    }
    if sub.in_flight.is_none() {
        let idle = ms(cfg.minute_ms).saturating_mul(sub.status_frequency);
        let due = later(sub.last_activity, idle);
        if now < due {
            return Step::Wait {
                until: due,
                wake: sub.wake.clone(),
            };
        }
        let watermark = store.mailboxes.get(&sub.mailbox_key).map_or_else(
            || sub.last_watermark.clone(),
            |mb| mb.events.watermark_at(sub.cursor),
        );
        sub.in_flight = Some(crate::push::status(sub, watermark));
    }
    let Some(f) = sub.in_flight.as_mut() else {
        return Step::Stop;
    };
    if let Some(at) = f.retry_at
        && now < at
    {
        return Step::Wait {
            until: at,
            wake: sub.wake.clone(),
        };
    }
    f.retry_at = None;
    f.attempts += 1;
    *next_request_seq += 1;
    let attempt = Attempt {
        seq: *next_request_seq,
        started: Utc::now(),
        url: sub.url.clone(),
        body: f.body.clone(),
        attempt: f.attempts,
        events: f.events.clone(),
        mailbox: sub.mailbox.clone(),
        server_version: sub.server_version.clone(),
        timeout: ms(cfg.request_timeout_ms),
    };
    sub.last_attempt = Some(store.seq.now_precise());
    Step::Send(attempt)
}

async fn post(client: &reqwest::Client, a: &Attempt) -> Answer {
    let sent = client
        .post(&a.url)
        .header(CONTENT_TYPE, "text/xml; charset=utf-8")
        // SOAP 1.1 quotes the action.
        .header("SOAPAction", format!("\"{SEND_NOTIFICATION_ACTION}\""))
        .header(USER_AGENT, "ExchangeServicesClient/15.01.2507.006")
        .timeout(a.timeout)
        .body(a.body.clone())
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            return Answer {
                http_status: 0,
                result: Err(format!("no answer: {e}")),
            };
        }
    };
    let http_status = response.status().as_u16();
    let success = response.status().is_success();
    let result = match response.text().await {
        Err(e) => Err(format!("reading the reply: {e}")),
        Ok(_) if !success => Err(format!("HTTP {http_status}")),
        Ok(text) => parse_reply(&text),
    };
    Answer {
        http_status,
        result,
    }
}

/// Records an attempt's outcome; false when the task should stop.
fn finish(st: &mut SimState, id: &str, a: Attempt, answer: Answer) -> bool {
    let SimState {
        store,
        push,
        config,
        log,
        ..
    } = st;
    // Gone (the simulator was reset): the attempt belongs to a log that no longer exists.
    if !push.subs.contains_key(id) {
        return false;
    }
    log.push(RequestRecord {
        seq: a.seq,
        direction: Direction::Outgoing,
        time: a.started,
        mailbox: Some(a.mailbox),
        anchor_mailbox: None,
        auth: AuthKind::None,
        server_version: Some(a.server_version),
        operation: Some("SendNotification".into()),
        item_count: a.events.len(),
        http_status: answer.http_status,
        response_codes: answer
            .result
            .as_ref()
            .map(|s| vec![s.as_str().to_string()])
            .unwrap_or_default(),
        fault_code: None,
        injected: None,
        backoff_violation: false,
        body: a.body,
        push: Some(PushDelivery {
            subscription_id: id.to_string(),
            url: a.url,
            attempt: a.attempt,
            events: a.events,
            error: answer.result.as_ref().err().cloned(),
        }),
        ..RequestRecord::default()
    });
    let Some(sub) = push.subs.get_mut(id) else {
        return false;
    };
    // Dropped while the POST was under way: the server has stopped calling.
    if !sub.is_alive() {
        return false;
    }
    let now = Instant::now();
    let at = store.seq.now_precise();
    match answer.result {
        Ok(status) => {
            if let Some(f) = sub.in_flight.take() {
                if f.events.iter().any(|e| e == "StatusEvent") {
                    sub.status_events_delivered += 1;
                } else {
                    sub.events_delivered += f.events.len() as u64;
                }
                sub.last_watermark = f.last_watermark;
            }
            sub.notifications_delivered += 1;
            sub.last_success = Some(at);
            sub.failures = 0;
            sub.last_activity = now;
            if status == SubscriberAnswer::Unsubscribe {
                sub.state = SubscriptionState::Unsubscribed { at };
                return false;
            }
            true
        }
        Err(e) => {
            sub.failures += 1;
            sub.total_failures += 1;
            let Some(f) = sub.in_flight.as_mut() else {
                return true;
            };
            let base = ms(config.push.retry_base_ms);
            let gap = f.last_gap.map_or(base, |g| g.saturating_mul(2));
            let limit = ms(config.push.minute_ms).saturating_mul(sub.status_frequency);
            if gap > limit {
                sub.state = SubscriptionState::Dropped {
                    at,
                    reason: format!(
                        "no answer after {} attempts (last: {e}); the server stopped calling",
                        f.attempts
                    ),
                };
                sub.in_flight = None;
                return false;
            }
            f.last_gap = Some(gap);
            f.retry_at = Some(later(now, gap));
            true
        }
    }
}

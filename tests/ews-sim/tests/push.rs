//! Push notifications: Subscribe with PushSubscriptionRequest, SendNotification POSTs to a
//! listener in the test (events, batching, status events on a scaled StatusFrequency), the
//! subscriber's OK / Unsubscribe answers, retries with doubling gaps until the server stops
//! calling, resubscription from a watermark, watermark expiry, request errors, the admin API.
//! Every notification body and every Subscribe request/response is validated against the XSDs.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use common::*;
use ews_sim::schema::{schema_dir, validate_requests};
use ews_sim::xml::{Element, parse};
use ews_sim::{DistinguishedFolder, EwsSim, ItemId, NewEvent, Response, SubscriptionState};
use tokio::time::Instant;

// ---------------------------------------------------------------- the subscriber

/// How the test's listener answers a notification.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Ok,
    /// OK with status 201, as exchangelib's example listener answers.
    Created,
    Unsubscribe,
    Http(u16),
    /// HTTP 200 with a SOAP envelope that holds no SendNotificationResult.
    Garbage,
}

/// One notification as it arrived.
#[derive(Clone)]
struct Got {
    at: Instant,
    soap_action: Option<String>,
    content_type: Option<String>,
    body: String,
}

impl Got {
    fn xml(&self) -> Element {
        parse(&self.body).unwrap_or_else(|e| panic!("notification is not XML: {e}\n{}", self.body))
    }

    fn notification(&self) -> Element {
        first(&self.xml(), "Notification")
            .cloned()
            .unwrap_or_else(|| panic!("no Notification in\n{}", self.body))
    }

    fn subscription_id(&self) -> String {
        self.notification()
            .child_text("SubscriptionId")
            .unwrap()
            .to_string()
    }

    fn previous_watermark(&self) -> String {
        self.notification()
            .child_text("PreviousWatermark")
            .unwrap()
            .to_string()
    }

    fn more_events(&self) -> bool {
        self.notification().child_text("MoreEvents") == Some("true")
    }

    fn events(&self) -> Vec<Ev> {
        self.notification()
            .children
            .iter()
            .filter(|c| c.name.ends_with("Event"))
            .map(Ev::from)
            .collect()
    }

    fn kinds(&self) -> Vec<String> {
        self.events().into_iter().map(|e| e.kind).collect()
    }
}

/// One event of a notification.
#[derive(Clone, Debug)]
struct Ev {
    kind: String,
    watermark: String,
    time: Option<String>,
    item: Option<(String, String)>,
    folder: Option<String>,
    parent: Option<String>,
    old_item: Option<(String, String)>,
    old_parent: Option<String>,
}

impl From<&Element> for Ev {
    fn from(e: &Element) -> Self {
        let id = |name: &str| {
            e.child(name).map(|c| {
                (
                    c.attr("Id").unwrap_or_default().to_string(),
                    c.attr("ChangeKey").unwrap_or_default().to_string(),
                )
            })
        };
        Ev {
            kind: e.name.clone(),
            watermark: e.child_text("Watermark").unwrap_or_default().to_string(),
            time: e.child_text("TimeStamp").map(str::to_string),
            item: id("ItemId"),
            folder: id("FolderId").map(|(i, _)| i),
            parent: id("ParentFolderId").map(|(i, _)| i),
            old_item: id("OldItemId"),
            old_parent: id("OldParentFolderId").map(|(i, _)| i),
        }
    }
}

/// A push listener on a local port that records what arrives and answers as scripted.
#[derive(Clone)]
struct Subscriber {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    fallback: Arc<Mutex<Reply>>,
}

const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const NS_M: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";

fn result_body(status: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{NS_SOAP}"><s:Body><m:SendNotificationResult xmlns:m="{NS_M}"><m:SubscriptionStatus>{status}</m:SubscriptionStatus></m:SendNotificationResult></s:Body></s:Envelope>"#
    )
}

async fn on_notification(
    State(s): State<Subscriber>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    s.got.lock().unwrap().push(Got {
        at: Instant::now(),
        soap_action: h("SOAPAction"),
        content_type: h("Content-Type"),
        body,
    });
    let reply = s
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(*s.fallback.lock().unwrap());
    let xml = |status: StatusCode, body: String| {
        (
            status,
            [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
            body,
        )
            .into_response()
    };
    match reply {
        Reply::Ok => xml(StatusCode::OK, result_body("OK")),
        Reply::Created => xml(StatusCode::CREATED, result_body("OK")),
        Reply::Unsubscribe => xml(StatusCode::OK, result_body("Unsubscribe")),
        Reply::Http(code) => (
            StatusCode::from_u16(code).unwrap(),
            "<html><body>down</body></html>",
        )
            .into_response(),
        Reply::Garbage => xml(
            StatusCode::OK,
            format!(
                r#"<s:Envelope xmlns:s="{NS_SOAP}"><s:Body><m:Thanks xmlns:m="{NS_M}"/></s:Body></s:Envelope>"#
            ),
        ),
    }
}

impl Subscriber {
    async fn start() -> Subscriber {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = Subscriber {
            url: format!("http://{}/ews/notify", listener.local_addr().unwrap()),
            got: Default::default(),
            script: Default::default(),
            fallback: Arc::new(Mutex::new(Reply::Ok)),
        };
        let app = axum::Router::new()
            .route("/ews/notify", axum::routing::post(on_notification))
            .with_state(s.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        s
    }

    /// Answers the next notifications with these, then with the fallback.
    fn then(&self, replies: &[Reply]) {
        self.script.lock().unwrap().extend(replies.iter().copied());
    }

    fn always(&self, reply: Reply) {
        *self.fallback.lock().unwrap() = reply;
    }

    fn received(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` notifications arrived; returns all of them.
    async fn wait(&self, n: usize) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} notifications, got {}: {:?}",
                got.len(),
                got.iter().map(Got::kinds).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits for notification number `n` (1-based).
    async fn nth(&self, n: usize) -> Got {
        self.wait(n).await.swap_remove(n - 1)
    }

    /// Asserts that nothing beyond `n` notifications arrives within `quiet`.
    async fn assert_no_more(&self, n: usize, quiet: Duration) {
        tokio::time::sleep(quiet).await;
        let got = self.received();
        assert_eq!(
            got.len(),
            n,
            "unexpected notifications: {:?}",
            got.iter().skip(n).map(Got::kinds).collect::<Vec<_>>()
        );
    }
}

// ---------------------------------------------------------------- requests

const ALL_EVENTS: &[&str] = &[
    "CreatedEvent",
    "ModifiedEvent",
    "DeletedEvent",
    "MovedEvent",
];

fn subscribe_op(
    folders: &str,
    events: &[&str],
    watermark: Option<&str>,
    frequency: &str,
    url: &str,
) -> String {
    let folders = if folders.is_empty() {
        String::new()
    } else {
        format!("<t:FolderIds>{folders}</t:FolderIds>")
    };
    let events: String = events
        .iter()
        .map(|e| format!("<t:EventType>{e}</t:EventType>"))
        .collect();
    let watermark = watermark
        .map(|w| format!("<t:Watermark>{w}</t:Watermark>"))
        .unwrap_or_default();
    format!(
        "<m:Subscribe><m:PushSubscriptionRequest>{folders}<t:EventTypes>{events}</t:EventTypes>{watermark}<t:StatusFrequency>{frequency}</t:StatusFrequency><t:URL>{url}</t:URL></m:PushSubscriptionRequest></m:Subscribe>"
    )
}

const CALENDAR: &str = r#"<t:DistinguishedFolderId Id="calendar"/>"#;

/// Sends requests and keeps successful responses for schema validation.
struct Ews {
    c: Client,
    responses: Mutex<Vec<String>>,
}

impl Ews {
    fn new(sim: &EwsSim) -> Ews {
        Ews {
            c: Client::new(sim),
            responses: Default::default(),
        }
    }

    async fn call(&self, mailbox: &str, op: &str) -> Resp {
        let r = self.c.call(mailbox, op).await;
        if r.status == 200 {
            self.responses.lock().unwrap().push(r.text.clone());
        }
        r
    }

    /// Subscribes `mailbox`'s calendar; returns (SubscriptionId, Watermark).
    async fn subscribe(
        &self,
        mailbox: &str,
        url: &str,
        frequency: u32,
        watermark: Option<&str>,
    ) -> (String, String) {
        let r = self
            .call(
                mailbox,
                &subscribe_op(CALENDAR, ALL_EVENTS, watermark, &frequency.to_string(), url),
            )
            .await;
        assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
        let xml = r.xml();
        (
            first(&xml, "SubscriptionId").unwrap().text.clone(),
            first(&xml, "Watermark").unwrap().text.clone(),
        )
    }

    /// Creates a single appointment in `mailbox`'s calendar; returns (id, ChangeKey).
    async fn create_appointment(&self, mailbox: &str, subject: &str) -> (String, String) {
        let op = format!(
            r#"<m:CreateItem SendMeetingInvitations="SendToNone"><m:SavedItemFolderId>{CALENDAR}</m:SavedItemFolderId><m:Items><t:CalendarItem><t:Subject>{subject}</t:Subject><t:Start>2026-06-01T09:00:00Z</t:Start><t:End>2026-06-01T10:00:00Z</t:End></t:CalendarItem></m:Items></m:CreateItem>"#
        );
        let r = self.call(mailbox, &op).await;
        assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
        item_ids(&r).remove(0)
    }

    async fn rename(&self, mailbox: &str, id: &str, ck: &str, subject: &str) -> String {
        let op = format!(
            r#"<m:UpdateItem ConflictResolution="AutoResolve" SendMeetingInvitationsOrCancellations="SendToNone"><m:ItemChanges><t:ItemChange><t:ItemId Id="{id}" ChangeKey="{ck}"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="item:Subject"/><t:CalendarItem><t:Subject>{subject}</t:Subject></t:CalendarItem></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
        );
        let r = self.call(mailbox, &op).await;
        assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
        item_ids(&r).remove(0).1
    }

    async fn delete(&self, mailbox: &str, id: &str, how: &str, cancellations: &str) {
        let op = format!(
            r#"<m:DeleteItem DeleteType="{how}" SendMeetingCancellations="{cancellations}"><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:DeleteItem>"#
        );
        let r = self.call(mailbox, &op).await;
        assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    }

    /// Every request the sim received, every response and every notification conforms to
    /// the XSDs (SendNotification is a messages.xsd element like any operation).
    fn validate(&self, sim: &EwsSim, notifications: &[Got]) {
        let dir = schema_dir().expect("schemas");
        validate_requests(&sim.request_bodies(), &dir).unwrap_or_else(|e| panic!("requests: {e}"));
        validate_requests(&self.responses.lock().unwrap(), &dir)
            .unwrap_or_else(|e| panic!("responses: {e}"));
        let bodies: Vec<String> = notifications.iter().map(|g| g.body.clone()).collect();
        validate_requests(&bodies, &dir).unwrap_or_else(|e| panic!("notifications: {e}"));
    }
}

fn folder(sim: &EwsSim, mailbox: &str, d: DistinguishedFolder) -> String {
    sim.folder_id(mailbox, d).unwrap().0
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn item_changes_are_pushed_as_soap_send_notifications() {
    let sim = sim().await;
    let ews = Ews::new(&sim);
    let sub = Subscriber::start().await;
    let calendar = folder(&sim, ALICE, DistinguishedFolder::Calendar);

    let (sid, wm0) = ews.subscribe(ALICE, &sub.url, 30, None).await;
    assert!(!sid.is_empty() && !wm0.is_empty());
    assert_eq!(wm0, sim.current_watermark(ALICE).unwrap());

    // Create → CreatedEvent with the id and ChangeKey CreateItem answered.
    let (id, ck) = ews.create_appointment(ALICE, "Review").await;
    let n1 = sub.nth(1).await;
    assert_eq!(
        n1.soap_action.as_deref(),
        Some("\"http://schemas.microsoft.com/exchange/services/2006/messages/SendNotification\"")
    );
    assert!(
        n1.content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("text/xml")),
        "{:?}",
        n1.content_type
    );
    assert_eq!(n1.subscription_id(), sid);
    assert_eq!(n1.previous_watermark(), wm0);
    assert!(!n1.more_events());
    let created = n1.events();
    assert_eq!(created.len(), 1, "{}", n1.body);
    let e1 = &created[0];
    assert_eq!(e1.kind, "CreatedEvent");
    assert_eq!(e1.item, Some((id.clone(), ck.clone())));
    assert_eq!(e1.parent.as_deref(), Some(calendar.as_str()));
    assert!(!e1.watermark.is_empty() && e1.watermark != wm0);
    let stamp = chrono::DateTime::parse_from_rfc3339(e1.time.as_deref().unwrap()).unwrap();
    assert!(
        (sim.now() - stamp.with_timezone(&chrono::Utc))
            .num_seconds()
            .abs()
            < 60
    );

    // Update → ModifiedEvent with the new ChangeKey; watermarks chain.
    let ck2 = ews.rename(ALICE, &id, &ck, "Review v2").await;
    let n2 = sub.nth(2).await;
    assert_eq!(n2.previous_watermark(), e1.watermark);
    let e2 = n2.events().remove(0);
    assert_eq!(e2.kind, "ModifiedEvent");
    assert_eq!(e2.item, Some((id.clone(), ck2.clone())));
    assert_ne!(e2.watermark, e1.watermark);

    // Hard delete → DeletedEvent.
    ews.delete(ALICE, &id, "HardDelete", "SendToNone").await;
    let n3 = sub.nth(3).await;
    let e3 = n3.events().remove(0);
    assert_eq!(e3.kind, "DeletedEvent");
    assert_eq!(e3.item.map(|(i, _)| i), Some(id.clone()));
    assert_eq!(e3.parent.as_deref(), Some(calendar.as_str()));

    // A change outside the subscribed folder (a contact) is not news for the calendar.
    let r = ews
        .call(
            ALICE,
            &create_contact_op(
                r#"<t:DistinguishedFolderId Id="contacts"/>"#,
                &[simple_contact("crm:1", "Jane", "Doe")],
            ),
        )
        .await;
    assert_eq!(r.codes(), vec!["NoError"]);
    sub.assert_no_more(3, Duration::from_millis(300)).await;

    // The log: three outgoing attempts, answered OK; incoming counts are untouched by them.
    let out = sim.notifications();
    assert_eq!(out.len(), 3);
    for (r, g) in out.iter().zip(sub.received()) {
        assert_eq!(r.direction, ews_sim::Direction::Outgoing);
        assert_eq!(r.operation.as_deref(), Some("SendNotification"));
        assert_eq!(r.http_status, 200);
        assert_eq!(r.response_codes, vec!["OK"]);
        assert_eq!(r.mailbox.as_deref(), Some(ALICE));
        let p = r.push.as_ref().unwrap();
        assert_eq!((p.subscription_id.as_str(), p.attempt), (sid.as_str(), 1));
        assert_eq!(p.url, sub.url);
        assert_eq!(p.error, None);
        assert_eq!(r.body, g.body);
    }
    assert_eq!(sim.requests().len(), 5, "Subscribe + 4 writes");
    assert_eq!(sim.count_for_mailbox(ALICE), 5);
    assert_eq!(sim.count_operation("SendNotification"), 0);
    assert_eq!(sim.count_operation("Subscribe"), 1);
    assert_eq!(sim.write_calls(), 4);
    assert_eq!(sim.request_log().len(), 8);

    let info = sim.subscription(&sid).unwrap();
    assert!(info.alive);
    assert_eq!(info.mailbox, ALICE);
    assert_eq!(info.folders, vec![ews_sim::FolderId(calendar)]);
    assert_eq!(info.status_frequency, 30);
    assert_eq!(info.notifications_delivered, 3);
    assert_eq!(info.events_delivered, 3);
    assert_eq!(info.failures, 0);
    assert_eq!(info.last_watermark, e3.watermark);
    assert!(info.last_success.is_some() && info.last_attempt.is_some());

    ews.validate(&sim, &sub.received());
}

#[tokio::test]
async fn outlook_delete_is_a_moved_event_with_the_old_ids() {
    let sim = sim().await;
    let ews = Ews::new(&sim);
    let all = Subscriber::start().await;
    let no_moves = Subscriber::start().await;
    let calendar = folder(&sim, ALICE, DistinguishedFolder::Calendar);
    let trash = folder(&sim, ALICE, DistinguishedFolder::DeletedItems);
    ews.subscribe(ALICE, &all.url, 30, None).await;
    let r = ews
        .call(
            ALICE,
            &subscribe_op(
                CALENDAR,
                &["CreatedEvent", "DeletedEvent"],
                None,
                "30",
                &no_moves.url,
            ),
        )
        .await;
    assert_eq!(r.codes(), vec!["NoError"]);

    // The user deletes in Outlook: the item moves to Deleted Items under a new id.
    let ev = sim
        .user_create_event(
            ALICE,
            NewEvent::new(
                "Lunch",
                local("2026-06-02T12:00"),
                local("2026-06-02T13:00"),
            ),
        )
        .unwrap();
    all.nth(1).await;
    sim.user_delete_event(ALICE, &ev.id, false).unwrap();
    let moved = all.nth(2).await.events().remove(0);
    let in_trash = sim
        .items_in_folder(ALICE, &ews_sim::FolderId(trash.clone()))
        .unwrap();
    assert_eq!(in_trash.len(), 1);
    assert_eq!(moved.kind, "MovedEvent");
    assert_eq!(
        moved.item,
        Some((in_trash[0].id.0.clone(), in_trash[0].change_key.0.clone()))
    );
    assert_eq!(moved.parent.as_deref(), Some(trash.as_str()));
    assert_eq!(moved.old_item.map(|(i, _)| i), Some(ev.id.0.clone()));
    assert_eq!(moved.old_parent.as_deref(), Some(calendar.as_str()));

    // The same through EWS: DeleteItem MoveToDeletedItems.
    let (id, _) = ews.create_appointment(ALICE, "Standup").await;
    all.nth(3).await;
    ews.delete(ALICE, &id, "MoveToDeletedItems", "SendToNone")
        .await;
    let moved = all.nth(4).await.events().remove(0);
    assert_eq!(moved.kind, "MovedEvent");
    assert_eq!(moved.old_item.map(|(i, _)| i), Some(id));
    assert_eq!(moved.old_parent.as_deref(), Some(calendar.as_str()));

    // A subscription without MovedEvent heard both creations and neither move.
    let got = no_moves.wait(2).await;
    assert_eq!(got[0].kinds(), vec!["CreatedEvent"]);
    assert_eq!(got[1].kinds(), vec!["CreatedEvent"]);
    no_moves.assert_no_more(2, Duration::from_millis(200)).await;
    ews.validate(&sim, &[all.received(), no_moves.received()].concat());
}

fn local(s: &str) -> chrono::NaiveDateTime {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").unwrap()
}

#[tokio::test]
async fn meeting_traffic_notifies_organizer_and_attendee_mailboxes() {
    let sim = sim().await;
    let ews = Ews::new(&sim);
    let alice = Subscriber::start().await;
    let bob = Subscriber::start().await;
    ews.subscribe(ALICE, &alice.url, 30, None).await;
    ews.subscribe(BOB, &bob.url, 30, None).await;
    let bob_calendar = folder(&sim, BOB, DistinguishedFolder::Calendar);

    // Invitation: the organizer's item is created, and the attendee's copy appears.
    let ev = sim
        .user_create_event(
            ALICE,
            NewEvent::new(
                "Planning",
                local("2026-06-03T09:00"),
                local("2026-06-03T10:00"),
            )
            .with_attendees(&[BOB]),
        )
        .unwrap();
    let a1 = alice.nth(1).await.events().remove(0);
    assert_eq!(
        (a1.kind.as_str(), a1.item.map(|i| i.0)),
        ("CreatedEvent", Some(ev.id.0.clone()))
    );
    let copy = sim.event_by_uid(BOB, &ev.uid).unwrap();
    let b1 = bob.nth(1).await.events().remove(0);
    assert_eq!(b1.kind, "CreatedEvent");
    assert_eq!(
        b1.item,
        Some((copy.id.0.clone(), copy.change_key.0.clone()))
    );
    assert_eq!(b1.parent.as_deref(), Some(bob_calendar.as_str()));

    // Bob accepts: his copy changes, and so does the organizer's item (his response).
    sim.user_respond(BOB, &copy.id, Response::Accept, true)
        .unwrap();
    let b2 = bob.nth(2).await.events().remove(0);
    assert_eq!(
        (b2.kind.as_str(), b2.item.map(|i| i.0)),
        ("ModifiedEvent", Some(copy.id.0.clone()))
    );
    let a2 = alice.nth(2).await.events().remove(0);
    let organizer_ck = sim.item(ALICE, &ev.id).unwrap().change_key.0;
    assert_eq!(a2.kind, "ModifiedEvent");
    assert_eq!(a2.item, Some((ev.id.0.clone(), organizer_ck)));

    // The organizer cancels through EWS: Bob's copy is marked cancelled (modified), Alice's
    // item moves to Deleted Items.
    ews.delete(
        ALICE,
        &ev.id.0,
        "MoveToDeletedItems",
        "SendToAllAndSaveCopy",
    )
    .await;
    let b3 = bob.nth(3).await.events().remove(0);
    assert_eq!(
        (b3.kind.as_str(), b3.item.map(|i| i.0)),
        ("ModifiedEvent", Some(copy.id.0.clone()))
    );
    let a3 = alice.nth(3).await.events().remove(0);
    assert_eq!(a3.kind, "MovedEvent");
    assert_eq!(a3.old_item.map(|i| i.0), Some(ev.id.0.clone()));
    alice.assert_no_more(3, Duration::from_millis(200)).await;
    bob.assert_no_more(3, Duration::ZERO).await;
    ews.validate(&sim, &[alice.received(), bob.received()].concat());
}

#[tokio::test]
async fn status_events_follow_the_scaled_status_frequency() {
    let sim = sim().await;
    let minute = Duration::from_millis(400);
    sim.set_push_time_scale(minute, Duration::from_millis(100));
    let ews = Ews::new(&sim);
    let sub = Subscriber::start().await;
    let subscribed = Instant::now();
    let (sid, wm0) = ews.subscribe(ALICE, &sub.url, 1, None).await;

    // Idle: one StatusEvent per StatusFrequency minute, carrying the current watermark.
    let got = sub.wait(2).await;
    assert!(got[0].at - subscribed >= minute - Duration::from_millis(20));
    assert!(got[1].at - got[0].at >= minute - Duration::from_millis(20));
    for g in &got {
        assert_eq!(g.kinds(), vec!["StatusEvent"]);
        assert_eq!(g.subscription_id(), sid);
        assert_eq!(g.events()[0].watermark, wm0, "nothing happened");
        assert_eq!(g.previous_watermark(), wm0);
    }

    // An event goes out at once, not at the next status time; the status timer restarts.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let changed = Instant::now();
    let (id, _) = ews.create_appointment(ALICE, "Now").await;
    let n = sub.nth(3).await;
    assert_eq!(n.kinds(), vec!["CreatedEvent"]);
    assert_eq!(n.events()[0].item.as_ref().map(|i| &i.0), Some(&id));
    assert!(
        n.at - changed < Duration::from_millis(300),
        "event took {:?}",
        n.at - changed
    );
    let next = sub.nth(4).await;
    assert_eq!(next.kinds(), vec!["StatusEvent"]);
    assert!(next.at - n.at >= minute - Duration::from_millis(20));
    // The status watermark is the mailbox's position now: past the event just delivered.
    let status_wm = next.events()[0].watermark.clone();
    assert_ne!(status_wm, wm0);
    assert_eq!(status_wm, sim.current_watermark(ALICE).unwrap());

    let info = sim.subscription(&sid).unwrap();
    assert!(info.status_events_delivered >= 3);
    assert_eq!(info.events_delivered, 1);
    ews.validate(&sim, &sub.received());
}

#[tokio::test]
async fn an_unsubscribe_answer_ends_the_subscription() {
    let sim = sim().await;
    let ews = Ews::new(&sim);
    let sub = Subscriber::start().await;
    sub.then(&[Reply::Unsubscribe]);
    let (sid, _) = ews.subscribe(ALICE, &sub.url, 1, None).await;

    ews.create_appointment(ALICE, "First").await;
    sub.nth(1).await;
    wait_until("the subscription to end", || {
        sim.subscription(&sid).is_some_and(|s| !s.alive)
    })
    .await;
    let info = sim.subscription(&sid).unwrap();
    assert!(
        matches!(info.state, SubscriptionState::Unsubscribed { .. }),
        "{info:?}"
    );
    assert_eq!(info.notifications_delivered, 1);

    // Nothing more: neither events nor status events.
    ews.create_appointment(ALICE, "Second").await;
    sub.assert_no_more(1, Duration::from_millis(300)).await;
    let out = sim.notifications();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].response_codes, vec!["Unsubscribe"]);
}

#[tokio::test]
async fn unanswered_notifications_are_retried_with_doubling_gaps_then_dropped() {
    let sim = sim().await;
    // Gaps 100, 200, 400, 800 ms fit in StatusFrequency 4 × 200 ms; 1600 would not.
    sim.set_push_time_scale(Duration::from_millis(200), Duration::from_millis(100));
    let ews = Ews::new(&sim);
    let sub = Subscriber::start().await;
    sub.always(Reply::Http(500));
    let (sid, _) = ews.subscribe(ALICE, &sub.url, 4, None).await;
    ews.create_appointment(ALICE, "Doomed").await;

    wait_until("the server to give up", || {
        sim.subscription(&sid).is_some_and(|s| !s.alive)
    })
    .await;
    let got = sub.received();
    assert_eq!(got.len(), 5, "first try + 4 retries");
    let gaps: Vec<Duration> = got.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (gap, expected) in gaps.iter().zip([100u64, 200, 400, 800]) {
        let expected = Duration::from_millis(expected);
        assert!(
            *gap >= expected - Duration::from_millis(10)
                && *gap < expected + Duration::from_millis(250),
            "gaps {gaps:?}"
        );
    }
    // Every retry repeats the same notification.
    assert!(got.iter().all(|g| g.body == got[0].body));
    let info = sim.subscription(&sid).unwrap();
    assert!(
        matches!(info.state, SubscriptionState::Dropped { .. }),
        "{info:?}"
    );
    assert_eq!(
        (
            info.failures,
            info.total_failures,
            info.notifications_delivered
        ),
        (5, 5, 0)
    );
    let out = sim.notifications_for(&sid);
    assert_eq!(
        out.iter()
            .map(|r| r.push.as_ref().unwrap().attempt)
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert!(
        out.iter().all(|r| r.http_status == 500
            && r.push.as_ref().unwrap().error.as_deref() == Some("HTTP 500"))
    );

    // The server has stopped calling, whatever happens now.
    sub.always(Reply::Ok);
    ews.create_appointment(ALICE, "Unheard").await;
    sub.assert_no_more(5, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn unreachable_or_confused_subscribers_are_retried() {
    let sim = sim().await;
    sim.set_push_time_scale(Duration::from_millis(50), Duration::from_millis(20));
    let ews = Ews::new(&sim);

    // Nobody listens: connection errors, gaps 20 and 40 ms, then 80 > 50 ms: dropped.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/ews/notify", closed.local_addr().unwrap());
    drop(closed);
    let (dead, _) = ews.subscribe(ALICE, &dead_url, 1, None).await;
    ews.create_appointment(ALICE, "Into the void").await;
    wait_until("the dead subscription to be dropped", || {
        sim.subscription(&dead).is_some_and(|s| !s.alive)
    })
    .await;
    let out = sim.notifications_for(&dead);
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|r| {
        r.http_status == 0
            && r.push
                .as_ref()
                .unwrap()
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("no answer"))
    }));

    // A garbled answer and a 503 are retried; the third try gets through, and an answer with
    // status 201 is as good as 200.
    sim.set_push_time_scale(Duration::from_millis(1000), Duration::from_millis(20));
    let sub = Subscriber::start().await;
    sub.then(&[Reply::Garbage, Reply::Http(503), Reply::Ok]);
    sub.always(Reply::Created);
    let (sid, _) = ews.subscribe(BOB, &sub.url, 1, None).await;
    let (id, _) = ews.create_appointment(BOB, "Eventually").await;
    let got = sub.wait(3).await;
    assert!(got.iter().all(|g| g.body == got[0].body));
    assert_eq!(got[2].events()[0].item.as_ref().map(|i| &i.0), Some(&id));
    wait_until("the delivery to be recorded", || {
        sim.subscription(&sid)
            .is_some_and(|s| s.events_delivered == 1)
    })
    .await;
    let info = sim.subscription(&sid).unwrap();
    assert_eq!((info.failures, info.total_failures), (0, 2));
    let errors: Vec<Option<String>> = sim
        .notifications_for(&sid)
        .into_iter()
        .map(|r| r.push.unwrap().error)
        .collect();
    assert!(
        errors[0]
            .as_deref()
            .is_some_and(|e| e.contains("SendNotificationResult")),
        "{errors:?}"
    );
    assert_eq!(errors[1].as_deref(), Some("HTTP 503"));
    assert_eq!(errors[2], None);

    ews.create_appointment(BOB, "Created").await;
    sub.nth(4).await;
    wait_until("the 201 to count", || {
        sim.subscription(&sid)
            .is_some_and(|s| s.events_delivered == 2)
    })
    .await;
    assert!(sim.subscription(&sid).unwrap().alive);
}

#[tokio::test]
async fn resubscribing_from_a_watermark_redelivers_what_was_missed() {
    let sim = sim().await;
    let ews = Ews::new(&sim);
    let first_sub = Subscriber::start().await;
    let (s1, _) = ews.subscribe(ALICE, &first_sub.url, 30, None).await;
    let (a, a_ck) = ews.create_appointment(ALICE, "A").await;
    let wm1 = first_sub.nth(1).await.events()[0].watermark.clone();

    // The server stops calling (scenario 27); three changes go unheard.
    assert!(sim.drop_subscription(&s1));
    assert!(!sim.drop_subscription(&s1), "already dropped");
    let a_ck2 = ews.rename(ALICE, &a, &a_ck, "A2").await;
    let (b, _) = ews.create_appointment(ALICE, "B").await;
    sim.user_delete_item(ALICE, &ItemId(b.clone())).unwrap();
    first_sub
        .assert_no_more(1, Duration::from_millis(300))
        .await;
    assert!(matches!(
        sim.subscription(&s1).unwrap().state,
        SubscriptionState::Dropped { .. }
    ));

    // Resubscribing from the last persisted watermark: a new id, the backlog first.
    let second = Subscriber::start().await;
    let (s2, wm) = ews.subscribe(ALICE, &second.url, 30, Some(&wm1)).await;
    assert_ne!(s2, s1);
    assert_eq!(
        wm, wm1,
        "the subscription starts at the watermark it was given"
    );
    let backlog = second.nth(1).await;
    assert_eq!(backlog.subscription_id(), s2);
    assert_eq!(backlog.previous_watermark(), wm1);
    assert!(!backlog.more_events());
    let evs = backlog.events();
    assert_eq!(
        evs.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        vec!["ModifiedEvent", "CreatedEvent", "DeletedEvent"]
    );
    assert_eq!(evs[0].item, Some((a.clone(), a_ck2)));
    assert_eq!(evs[1].item.as_ref().map(|i| &i.0), Some(&b));
    assert_eq!(evs[2].item.as_ref().map(|i| &i.0), Some(&b));

    // Then live ones, chained to the backlog.
    ews.create_appointment(ALICE, "C").await;
    let live = second.nth(2).await;
    assert_eq!(live.kinds(), vec!["CreatedEvent"]);
    assert_eq!(live.previous_watermark(), evs[2].watermark);

    // Batches are capped: with two events per notification the four since wm1 take two
    // POSTs, the first saying MoreEvents.
    sim.update_push_config(|c| c.max_events_per_notification = 2);
    let third = Subscriber::start().await;
    let (s3, _) = ews.subscribe(ALICE, &third.url, 30, Some(&wm1)).await;
    let got = third.wait(2).await;
    assert_eq!(got[0].events().len(), 2);
    assert!(got[0].more_events());
    assert_eq!(got[1].events().len(), 2);
    assert!(!got[1].more_events());
    assert_eq!(got[1].previous_watermark(), got[0].events()[1].watermark);
    wait_until("both batches to be acknowledged", || {
        sim.subscription(&s3)
            .is_some_and(|s| s.events_delivered == 4)
    })
    .await;
    third.assert_no_more(2, Duration::from_millis(200)).await;
    ews.validate(
        &sim,
        &[first_sub.received(), second.received(), third.received()].concat(),
    );
}

#[tokio::test]
async fn unknown_old_and_expired_watermarks_are_refused() {
    let sim = sim().await;
    let ews = Ews::new(&sim);
    let sub = Subscriber::start().await;
    let invalid = |r: &Resp| {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.codes(), vec!["ErrorInvalidWatermark"], "{}", r.text);
        let m = first(&r.xml(), "SubscribeResponseMessage").unwrap().clone();
        assert_eq!(m.attr("ResponseClass"), Some("Error"));
        assert!(first(&m, "SubscriptionId").is_none());
    };
    let subscribe_from = |w: String| subscribe_op(CALENDAR, ALL_EVENTS, Some(&w), "30", &sub.url);

    // Never issued: garbage, or another mailbox's.
    invalid(
        &ews.call(ALICE, &subscribe_from("AQAAAEdhcmJhZ2U=".into()))
            .await,
    );
    let bobs = sim.current_watermark(BOB).unwrap();
    invalid(&ews.call(ALICE, &subscribe_from(bobs)).await);

    // Beyond retention by count: three events kept, five happened since.
    sim.update_push_config(|c| c.watermark_retention_events = 3);
    let old = sim.current_watermark(ALICE).unwrap();
    for n in 0..5 {
        ews.create_appointment(ALICE, &format!("E{n}")).await;
    }
    invalid(&ews.call(ALICE, &subscribe_from(old)).await);
    assert_eq!(sim.mailbox_events(ALICE).unwrap().len(), 3);
    let recent = sim.current_watermark(ALICE).unwrap();
    ews.subscribe(ALICE, &sub.url, 30, Some(&recent)).await;

    // Expired by the administrator: everything issued so far.
    assert_eq!(sim.expire_watermarks(None), 2);
    invalid(&ews.call(ALICE, &subscribe_from(recent)).await);
    let fresh = sim.current_watermark(ALICE).unwrap();
    ews.subscribe(ALICE, &sub.url, 30, Some(&fresh)).await;

    // Beyond retention by age: a month later the events it needs are gone.
    sim.update_push_config(|c| c.watermark_retention_events = 10_000);
    let before = sim.current_watermark(ALICE).unwrap();
    ews.create_appointment(ALICE, "Old news").await;
    sim.advance_clock(chrono::TimeDelta::days(31));
    invalid(&ews.call(ALICE, &subscribe_from(before)).await);
    assert!(sim.mailbox_events(ALICE).unwrap().is_empty());

    assert_eq!(
        sim.subscriptions().len(),
        2,
        "refused requests create nothing"
    );
    ews.validate(&sim, &[]);
}

#[tokio::test]
async fn subscribe_request_errors_have_exchanges_shapes() {
    let sim = sim().await;
    let ews = Ews::new(&sim);
    let url = "https://sync.corp.example/ews/notify";

    // Schema-level: StatusFrequency outside 1–1440 or not a number, unknown event types.
    for freq in ["0", "1441", "-5", "often"] {
        let r = ews
            .call(ALICE, &subscribe_op(CALENDAR, ALL_EVENTS, None, freq, url))
            .await;
        assert_eq!(r.status, 500, "{freq}: {}", r.text);
        assert_eq!(
            r.fault_code().as_deref(),
            Some("ErrorSchemaValidation"),
            "{}",
            r.text
        );
        assert!(r.text.contains("StatusFrequency"), "{}", r.text);
    }
    let r = ews
        .call(
            ALICE,
            &subscribe_op(CALENDAR, &["SometimesEvent"], None, "5", url),
        )
        .await;
    assert_eq!(r.fault_code().as_deref(), Some("ErrorSchemaValidation"));
    // Out of XSD order (URL before StatusFrequency).
    let swapped = subscribe_op(CALENDAR, ALL_EVENTS, None, "5", url).replace(
        &format!("<t:StatusFrequency>5</t:StatusFrequency><t:URL>{url}</t:URL>"),
        &format!("<t:URL>{url}</t:URL><t:StatusFrequency>5</t:StatusFrequency>"),
    );
    assert_eq!(
        ews.call(ALICE, &swapped).await.fault_code().as_deref(),
        Some("ErrorSchemaValidation")
    );
    // Pull and streaming subscriptions are not simulated.
    let pull = r#"<m:Subscribe><m:PullSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="calendar"/></t:FolderIds><t:EventTypes><t:EventType>CreatedEvent</t:EventType></t:EventTypes><t:Timeout>10</t:Timeout></m:PullSubscriptionRequest></m:Subscribe>"#;
    assert_eq!(
        ews.call(ALICE, pull).await.fault_code().as_deref(),
        Some("ErrorInvalidRequest")
    );

    // Per-message errors.
    let code = |r: Resp| {
        assert_eq!(r.status, 200, "{}", r.text);
        r.codes().remove(0)
    };
    for bad in [
        "notify",
        "/ews/notify",
        "ftp://sync.corp.example/x",
        "",
        "http://",
    ] {
        let r = ews
            .call(ALICE, &subscribe_op(CALENDAR, ALL_EVENTS, None, "5", bad))
            .await;
        assert_eq!(code(r), "ErrorInvalidPushSubscriptionUrl", "{bad:?}");
    }
    let r = ews
        .call(
            ALICE,
            &subscribe_op(
                r#"<t:DistinguishedFolderId Id="inbox"/>"#,
                ALL_EVENTS,
                None,
                "5",
                url,
            ),
        )
        .await;
    assert_eq!(code(r), "ErrorFolderNotFound");
    let r = ews
        .call(
            ALICE,
            &subscribe_op(r#"<t:FolderId Id="bogus"/>"#, ALL_EVENTS, None, "5", url),
        )
        .await;
    assert_eq!(code(r), "ErrorInvalidIdMalformed");
    let r = ews
        .call(ALICE, &subscribe_op("", ALL_EVENTS, None, "5", url))
        .await;
    assert_eq!(code(r), "ErrorInvalidSubscriptionRequest");
    let delegate = format!(
        r#"<t:DistinguishedFolderId Id="calendar"><t:Mailbox><t:EmailAddress>{BOB}</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId>"#
    );
    let r = ews
        .call(ALICE, &subscribe_op(&delegate, ALL_EVENTS, None, "5", url))
        .await;
    assert_eq!(code(r), "ErrorSubscriptionDelegateAccessNotSupported");

    // Valid: the impersonated user's own mailbox named explicitly, a FolderId, the bounds of
    // StatusFrequency. Every Subscribe gets a new id.
    let own = delegate.replace(BOB, ALICE);
    let calendar_id = folder(&sim, ALICE, DistinguishedFolder::Calendar);
    let mut ids = Vec::new();
    for (folders, freq) in [
        (own.clone(), "1"),
        (format!(r#"<t:FolderId Id="{calendar_id}"/>"#), "1440"),
        (CALENDAR.to_string(), "30"),
    ] {
        let r = ews
            .call(ALICE, &subscribe_op(&folders, ALL_EVENTS, None, freq, url))
            .await;
        assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
        ids.push(first(&r.xml(), "SubscriptionId").unwrap().text.clone());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);

    // EWSMaxSubscriptions: live subscriptions per mailbox are capped.
    sim.update_push_config(|c| c.max_subscriptions_per_mailbox = 3);
    let r = ews
        .call(ALICE, &subscribe_op(CALENDAR, ALL_EVENTS, None, "5", url))
        .await;
    assert_eq!(code(r), "ErrorExceededSubscriptionCount");
    assert!(sim.drop_subscription(&ids[0]));
    let r = ews
        .call(ALICE, &subscribe_op(CALENDAR, ALL_EVENTS, None, "5", url))
        .await;
    assert_eq!(r.codes(), vec!["NoError"]);

    // Valid requests and all non-fault answers conform to the XSDs.
    let dir = schema_dir().unwrap();
    let valid: Vec<String> = sim
        .requests()
        .into_iter()
        .filter(|r| r.response_codes.first().is_some_and(|c| c == "NoError"))
        .map(|r| r.body)
        .collect();
    assert_eq!(valid.len(), 4);
    validate_requests(&valid, &dir).unwrap();
    validate_requests(&ews.responses.lock().unwrap(), &dir).unwrap();
}

#[tokio::test]
async fn folder_events_and_all_folders_subscriptions() {
    let sim = sim().await;
    sim.update_push_config(|c| c.folder_events = true);
    let ews = Ews::new(&sim);
    let sub = Subscriber::start().await;
    let r = ews
        .call(
            ALICE,
            &subscribe_op("", ALL_EVENTS, None, "30", &sub.url).replace(
                "<m:PushSubscriptionRequest>",
                r#"<m:PushSubscriptionRequest SubscribeToAllFolders="true">"#,
            ),
        )
        .await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    let contacts = folder(&sim, ALICE, DistinguishedFolder::Contacts);

    // A new folder is a CreatedEvent with a FolderId in its parent.
    let crm = crm_folder(&ews.c, ALICE).await;
    let created = sub.nth(1).await.events().remove(0);
    assert_eq!(created.kind, "CreatedEvent");
    assert_eq!(created.folder.as_deref(), Some(crm.as_str()));
    assert_eq!(created.parent.as_deref(), Some(contacts.as_str()));

    // An item in it: the item's CreatedEvent and the folder's ModifiedEvent (its content
    // changed), batched in one notification or two.
    let r = ews
        .call(
            ALICE,
            &create_contact_op(
                &folder_xml(&crm),
                &[simple_contact("crm:2", "Max", "Muster")],
            ),
        )
        .await;
    assert_eq!(r.codes(), vec!["NoError"]);
    wait_until("two more events", || {
        sub.received()
            .iter()
            .map(|g| g.events().len())
            .sum::<usize>()
            >= 3
    })
    .await;
    let evs: Vec<Ev> = sub
        .received()
        .iter()
        .flat_map(Got::events)
        .skip(1)
        .collect();
    assert_eq!(evs[0].kind, "CreatedEvent");
    assert_eq!(evs[0].parent.as_deref(), Some(crm.as_str()));
    assert!(evs[0].item.is_some());
    assert_eq!(evs[1].kind, "ModifiedEvent");
    assert_eq!(evs[1].folder.as_deref(), Some(crm.as_str()));
    assert_eq!(evs[1].parent.as_deref(), Some(contacts.as_str()));
    ews.validate(&sim, &sub.received());
}

#[tokio::test]
async fn admin_api_lists_drops_rescales_and_expires() {
    let sim = sim().await;
    let ews = Ews::new(&sim);
    let sub = Subscriber::start().await;
    let http = reqwest::Client::new();
    let base = sim.base_url();

    let cfg: serde_json::Value = http
        .post(format!("{base}/_sim/push/config"))
        .json(&serde_json::json!({"minute_ms": 300, "retry_base_ms": 50}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (cfg["minute_ms"].as_u64(), cfg["retry_base_ms"].as_u64()),
        (Some(300), Some(50))
    );
    assert_eq!(cfg["request_timeout_ms"], 30_000, "other fields unchanged");
    assert_eq!(sim.push_config().minute_ms, 300);
    let bad = http
        .post(format!("{base}/_sim/push/config"))
        .json(&serde_json::json!({"minutes": 1}))
        .send()
        .await
        .unwrap();
    assert!(bad.status().is_client_error());

    let (sid, _) = ews.subscribe(ALICE, &sub.url, 1, None).await;
    ews.create_appointment(ALICE, "Admin").await;
    sub.wait(2).await; // the event, then a status event 300 ms later

    let list: serde_json::Value = http
        .get(format!("{base}/_sim/push/subscriptions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = &list["subscriptions"][0];
    assert_eq!(s["id"], sid.as_str());
    assert_eq!(s["mailbox"], ALICE);
    assert_eq!(s["url"], sub.url.as_str());
    assert_eq!(s["status_frequency"], 1);
    assert_eq!(s["alive"], true);
    assert_eq!(s["state"], "alive");
    assert!(s["notifications_delivered"].as_u64().unwrap() >= 2);
    assert!(s["created"].is_string() && s["last_success"].is_string());

    // Outgoing records are listed apart from the incoming ones.
    let get = |path: String| {
        let http = http.clone();
        async move {
            http.get(path)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let incoming = get(format!("{base}/_sim/requests")).await;
    assert_eq!(incoming["count"], 2, "Subscribe + CreateItem");
    let outgoing = get(format!(
        "{base}/_sim/requests?direction=outgoing&bodies=true"
    ))
    .await;
    let n_out = outgoing["count"].as_u64().unwrap();
    assert!(n_out >= 2);
    assert_eq!(outgoing["requests"][0]["direction"], "outgoing");
    assert_eq!(
        outgoing["requests"][0]["push"]["subscription_id"],
        sid.as_str()
    );
    assert!(
        outgoing["requests"][0]["body"]
            .as_str()
            .unwrap()
            .contains("SendNotification")
    );
    let all = get(format!("{base}/_sim/requests?direction=all")).await;
    assert!(all["count"].as_u64().unwrap() >= 2 + n_out);
    let per_sub = get(format!(
        "{base}/_sim/push/notifications?subscription={}",
        urlencode(&sid)
    ))
    .await;
    assert!(per_sub["count"].as_u64().unwrap() >= 2);
    let events = get(format!("{base}/_sim/mailboxes/{ALICE}/events")).await;
    assert_eq!(events["events"][0]["kind"], "CreatedEvent");

    // Drop it silently: the subscriber hears nothing more, not even status events.
    let path = format!("{base}/_sim/push/subscriptions/{}", urlencode(&sid));
    assert_eq!(http.delete(&path).send().await.unwrap().status(), 204);
    assert_eq!(http.delete(&path).send().await.unwrap().status(), 404);
    let one = get(path.clone()).await;
    assert_eq!(
        (one["alive"].as_bool(), one["state"].as_str()),
        (Some(false), Some("dropped"))
    );
    let heard = sub.received().len();
    sub.assert_no_more(heard, Duration::from_millis(700)).await;

    // Expire watermarks; the current one is served.
    let wm = get(format!("{base}/_sim/push/watermarks/{ALICE}")).await;
    let old = wm["watermark"].as_str().unwrap().to_string();
    let expired: serde_json::Value = http
        .post(format!("{base}/_sim/push/watermarks/expire"))
        .json(&serde_json::json!({"mailbox": ALICE}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(expired["expired"], 1);
    let r = ews
        .call(
            ALICE,
            &subscribe_op(CALENDAR, ALL_EVENTS, Some(&old), "1", &sub.url),
        )
        .await;
    assert_eq!(r.codes(), vec!["ErrorInvalidWatermark"]);
    assert_eq!(
        http.get(format!("{base}/_sim/push/subscriptions/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

/// Subscription ids are base64: `/`, `+` and `=` must be escaped in a path or query.
fn urlencode(s: &str) -> String {
    s.replace('%', "%25")
        .replace('/', "%2F")
        .replace('+', "%2B")
        .replace('=', "%3D")
}

#[tokio::test]
async fn a_reset_or_stopped_simulator_calls_nobody() {
    let sim = sim().await;
    sim.set_push_time_scale(Duration::from_millis(100), Duration::from_millis(50));
    let ews = Ews::new(&sim);
    let sub = Subscriber::start().await;
    ews.subscribe(ALICE, &sub.url, 1, None).await;
    sub.wait(1).await; // a status event
    sim.reset();
    assert!(sim.subscriptions().is_empty());
    let heard = sub.received().len();
    sub.assert_no_more(heard, Duration::from_millis(400)).await;

    sim.add_mailbox(ALICE).unwrap();
    ews.subscribe(ALICE, &sub.url, 1, None).await;
    let heard = sub.wait(heard + 1).await.len();
    let handle = sim.handle();
    drop(sim);
    assert!(handle.subscriptions().iter().all(|s| !s.alive));
    sub.assert_no_more(heard, Duration::from_millis(400)).await;
}

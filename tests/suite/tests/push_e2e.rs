//! Push end to end through `lnsync serve` (R31–R33): the Exchange simulator's real
//! notifications (EWS push callbacks, or Graph change and lifecycle notifications) and the LN
//! simulator's signed webhooks reach the push endpoint on a local port, which queues
//! single-event jobs that the process's worker runs at once. The scheduled loop ticks only when
//! a test wants it to, so a change that arrives in the other system arrived by push.
//!
//! Scenarios (scenarios.md) and where they run:
//!
//! | test | EWS | Graph |
//! |---|---|---|
//! | 25: an Exchange edit reaches LN and an LN edit reaches Exchange without a pull; echoes write nothing | ✓ | ✓ |
//! | 26: notifications lost (subscription dropped by the server) → the next pull applies everything | ✓ | ✓ |
//! | 26: delivery paused (changes lost) → the next pull applies them; the `missed` on resume pulls | | ✓ |
//! | 27: a silent subscription is recreated from its watermark; an expired watermark → a fresh one and a pull; push off → `Unsubscribe` | ✓ | |
//! | 27: renewed by the tick before it expires (PATCH, new expiry stored) | | ✓ |
//! | 27: lifecycle: `reauthorizationRequired` → renewed; `missed` → a pull; `subscriptionRemoved` → recreated and a pull catches up; expired at the server → recreated; push off → deleted at the server | | ✓ |
//! | 27: `reauthorizationRequired` right after subscribing is answered too | | ✓ |
//! | 27: a stopped environment queues nothing (EWS: `Unsubscribe`; Graph: acknowledged, dropped) | ✓ | ✓ |
//! | 28/34: bad token or clientState, unknown environment, bad LN signature, oversized, malformed: refused; unknown subscription: refused (EWS) or acknowledged and dropped (Graph); nothing queued, the endpoint keeps serving | ✓ | ✓ |
//! | 28: the `validationToken` handshake, answered as text/plain | | ✓ |
//!
//! The EWS-only rows test what Graph does not have: status events and watermarks (a Graph
//! subscription cannot resume; lifecycle notifications and expiry replace them), the
//! `Unsubscribe` answer, and SOAP/DOCTYPE inputs. The Graph-only rows test what EWS does not
//! have. Both-backend tests are one body each, run as `name::ews` and `name::graph`.

use chrono::Duration;
use ews_sim::graph::delivery::LifecycleEvent;
use ews_sim::{EventEdit, NewEvent};
use lnsync_adapters::ln::webhook;
use lnsync_core::model::EnvironmentState;
use lnsync_core::ports::StateStore;
use lnsync_runtime::config::PushSettings;
use lnsync_tests::both_backends;
use lnsync_tests::harness::{Backend, Op, TestResult};
use lnsync_tests::push_world::{HOOK_SECRET, Served};
use serde_json::json;
use std::sync::{Arc, Mutex, PoisonError};

/// A hostile request: what it is, path, headers, body, and the status it must get.
type Case = (
    &'static str,
    String,
    Vec<(&'static str, String)>,
    Vec<u8>,
    u16,
);

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
const FAST_TICK: std::time::Duration = std::time::Duration::from_millis(200);

fn unix_now() -> String {
    chrono::Utc::now().timestamp().to_string()
}

fn signed(body: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            webhook::SIGNATURE_HEADER,
            webhook::sign(HOOK_SECRET.as_bytes(), body.as_bytes()),
        ),
        (webhook::TIMESTAMP_HEADER, unix_now()),
        ("content-type", "application/json".into()),
    ]
}

fn send_notification(subscription: &str, item: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
<soap:Body><m:SendNotification><m:ResponseMessages><m:SendNotificationResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>
<m:Notification><t:SubscriptionId>{subscription}</t:SubscriptionId><t:PreviousWatermark>AQ==</t:PreviousWatermark><t:MoreEvents>false</t:MoreEvents>
<t:ModifiedEvent><t:Watermark>AR==</t:Watermark><t:TimeStamp>2027-03-01T10:00:00Z</t:TimeStamp><t:ItemId Id="{item}" ChangeKey="CK"/><t:ParentFolderId Id="cal"/></t:ModifiedEvent>
</m:Notification></m:SendNotificationResponseMessage></m:ResponseMessages></m:SendNotification></soap:Body></soap:Envelope>"#
    )
}

/// A Graph change notification as Graph sends it (exchange.md §3.7).
fn graph_notification(subscription: &str, client_state: &str, item: &str) -> String {
    json!({"value": [{
        "subscriptionId": subscription,
        "subscriptionExpirationDateTime": "2027-03-08T07:00:00Z",
        "changeType": "updated",
        "resource": format!("Users/0001/Events/{item}"),
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Event",
            "@odata.id": format!("Users/0001/Events/{item}"),
            "@odata.etag": "W/\"CK\"",
            "id": item,
        },
        "clientState": client_state,
        "tenantId": "00000000-0000-0000-0000-000000000001",
    }]})
    .to_string()
}

/// A Graph lifecycle notification.
fn graph_lifecycle(subscription: &str, client_state: &str, event: &str) -> String {
    json!({"value": [{
        "subscriptionId": subscription,
        "subscriptionExpirationDateTime": "2027-03-08T07:00:00Z",
        "lifecycleEvent": event,
        "resource": "Users/0001/Events",
        "clientState": client_state,
        "tenantId": "00000000-0000-0000-0000-000000000001",
    }]})
    .to_string()
}

/// The user renames an event in Outlook.
fn rename(s: &Served, user: &str, id: &ews_sim::ItemId, subject: &str) -> TestResult {
    s.cal.user_edits(
        user,
        id,
        EventEdit {
            subject: Some(subject.into()),
            ..EventEdit::default()
        },
    )
}

// ---------------------------------------------------------------------------------------------
// 25: both ways by push, no pull

both_backends!(
    scenario_25_edits_arrive_by_push_without_a_pull,
    multi_thread
);

async fn scenario_25_edits_arrive_by_push_without_a_pull(backend: Backend) -> TestResult {
    let keys = Arc::new(Mutex::new(None));
    let k = keys.clone();
    let s = Served::start(backend, HOUR, move |cal| {
        let meeting = cal.ln_meeting("Planning", cal.at(2, 10), "alice", &["bob"])?;
        let mut dentist = NewEvent::new(
            "Dentist",
            cal.at(3, 9).naive_utc(),
            cal.at(3, 10).naive_utc(),
        );
        dentist.send = false;
        let created = cal.user_creates("carol", dentist)?;
        *k.lock().unwrap_or_else(PoisonError::into_inner) = Some((meeting, created));
        Ok(())
    })
    .await?;
    let (meeting, dentist) = keys
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .ok_or("seeded")?;
    let cal = s.cal.clone();
    let dentist_key = s.ln_key_of(&dentist.uid)?;

    // Exchange → LN: carol renames her appointment in Outlook.
    let before = s.job_count();
    cal.world.clear_logs();
    rename(&s, "carol", &dentist.id, "Dentist (moved)")?;
    s.wait("the Outlook edit in LN", || async {
        Ok(s.ln_subject(&dentist_key).as_deref() == Some("Dentist (moved)"))
    })
    .await?;
    // Echoes settle: LN's webhook of our own write comes back as a job that writes nothing.
    s.settle().await?;
    let ran = s.jobs_since(before);
    assert!(
        ran.iter().all(|(kind, _, ok)| *kind == "event" && *ok),
        "only single-event jobs ran, all fine: {ran:?}"
    );
    assert_eq!(
        ran.iter().filter(|(_, user, _)| user == "carol").count(),
        1,
        "exactly one job for carol's edit: {ran:?}"
    );
    assert_eq!(
        cal.exchange_writes(),
        0,
        "the LN write's echo wrote nothing to Exchange"
    );
    assert_eq!(cal.ln_calls("PATCH", "Activities"), 1, "{}", cal.ln_log());
    assert_eq!(
        cal.ln_feed_reads(),
        0,
        "LN's feed was not read: {}",
        cal.ln_log()
    );
    for user in ["alice", "bob", "carol"] {
        assert_eq!(s.pulls(user), 0, "no pull for {user}: {:?}", cal.ops(user));
    }

    // LN → Exchange: the LN meeting is renamed; the webhook brings it to alice's meeting and,
    // as Exchange delivers updates, to bob's copy.
    let uid = cal
        .events("alice")
        .into_iter()
        .find(|e| e.subject.as_deref() == Some("Planning"))
        .map(|e| e.uid)
        .ok_or("the pull created the meeting in alice's calendar")?;
    let before = s.job_count();
    cal.world.clear_logs();
    cal.ln_patch(&meeting, json!({"subject": "Planning (agenda)"}))?;
    s.wait("the LN edit in Exchange", || async {
        Ok(
            s.exchange_subject("alice", &uid).as_deref() == Some("Planning (agenda)")
                && s.exchange_subject("bob", &uid).as_deref() == Some("Planning (agenda)"),
        )
    })
    .await?;
    s.settle().await?;
    let ran = s.jobs_since(before);
    assert!(
        ran.iter().all(|(kind, _, ok)| *kind == "event" && *ok),
        "{ran:?}"
    );
    assert_eq!(
        cal.ln_calls("PATCH", "Activities"),
        0,
        "the Exchange echo wrote nothing to LN: {}",
        cal.ln_log()
    );
    assert_eq!(
        s.requests_doing("alice", Op::Update),
        1,
        "{:?}",
        cal.ops("alice")
    );
    assert_eq!(cal.exchange_writes(), 1, "one write, no echo writes");
    for user in ["alice", "bob", "carol"] {
        assert_eq!(s.pulls(user), 0, "no pull for {user}: {:?}", cal.ops(user));
    }
    cal.world.check_exchange_requests()?;
    s.stop().await
}

// ---------------------------------------------------------------------------------------------
// 26: lost notifications

both_backends!(
    scenario_26_lost_notifications_are_repaired_by_the_next_pull,
    multi_thread
);

async fn scenario_26_lost_notifications_are_repaired_by_the_next_pull(
    backend: Backend,
) -> TestResult {
    let (s, review) = Served::with_appointment(backend, HOUR, "alice", "Review", 2, 14).await?;
    let cal = s.cal.clone();
    let key = review.ln_key.clone();
    // The server loses alice's subscription without a word; two edits follow.
    let sub = s.subscription_of("alice").await?;
    assert!(s.lose_subscription(sub.id.as_str()));
    for subject in ["Review 1", "Review 2"] {
        rename(&s, "alice", &review.event.id, subject)?;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        s.ln_subject(&key).as_deref(),
        Some("Review"),
        "nothing arrived by push"
    );
    // The next pull applies every change of the silent period.
    let run = cal.run().await?;
    run.assert_ok();
    assert_eq!(s.ln_subject(&key).as_deref(), Some("Review 2"));
    s.stop().await
}

/// Graph: delivery for alice's mailbox pauses (Graph drops the changes, as when its retry
/// window ran out); the next pull applies them. On resume Graph sends `missed`, which makes
/// lnsync pull once more, finding nothing left to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_26_graph_changes_lost_while_delivery_paused_are_pulled() -> TestResult {
    let (s, review) =
        Served::with_appointment(Backend::Graph, HOUR, "alice", "Review", 2, 14).await?;
    let cal = s.cal.clone();
    let key = review.ln_key.clone();
    let alice = cal.email("alice");
    assert_eq!(cal.world.ews.graph_pause_delivery(&alice, true), 0);
    for subject in ["Review 1", "Review 2"] {
        rename(&s, "alice", &review.event.id, subject)?;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        s.ln_subject(&key).as_deref(),
        Some("Review"),
        "nothing arrived by push"
    );
    let run = cal.run().await?;
    run.assert_ok();
    assert_eq!(s.ln_subject(&key).as_deref(), Some("Review 2"));

    let pulls = s.count("calendar");
    let sub = s.subscription_of("alice").await?;
    s.settle().await?;
    cal.world.clear_logs();
    assert_eq!(
        cal.world.ews.graph_pause_delivery(&alice, false),
        1,
        "Graph tells the subscription it missed changes"
    );
    s.wait("the pull `missed` asks for", || async {
        Ok(s.count("calendar") > pulls)
    })
    .await?;
    s.settle().await?;
    assert!(
        s.jobs_since(0).iter().all(|(_, _, ok)| *ok),
        "{:?}",
        s.jobs_since(0)
    );
    assert_eq!(
        s.subscription_of("alice").await?.id,
        sub.id,
        "`missed` keeps the subscription"
    );
    assert!(
        s.pulls("alice") >= 1,
        "alice's calendar was read: {:?}",
        cal.ops("alice")
    );
    assert_eq!(
        (cal.ln_writes(), cal.exchange_writes()),
        (0, 0),
        "the pull found everything applied"
    );
    assert_eq!(s.ln_subject(&key).as_deref(), Some("Review 2"));
    s.stop().await
}
// ---------------------------------------------------------------------------------------------
// 27: subscriptions kept alive

/// EWS only: status events, watermarks and the `Unsubscribe` answer are EWS push's (Graph's
/// counterparts are in the `scenario_27_graph_…` tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_27_ews_silent_subscriptions_are_recreated_and_unwanted_ones_unsubscribed()
-> TestResult {
    let (s, standup) =
        Served::with_appointment(Backend::Ews, FAST_TICK, "alice", "Standup", 2, 8).await?;
    let cal = s.cal.clone();
    let key = standup.ln_key.clone();
    let edit = |subject: &str| rename(&s, "alice", &standup.event.id, subject);

    // 1. The server stops calling; an edit happens meanwhile. After 2 × StatusFrequency of
    //    silence the tick recreates the subscription from the last watermark, and the missed
    //    edit is delivered to the new one.
    let old = s.subscription_of("alice").await?;
    assert!(s.lose_subscription(old.id.as_str()));
    edit("Standup (missed)")?;
    let calendar_jobs = s.count("calendar");
    cal.advance(Duration::minutes(3));
    s.wait("a new subscription for alice", || async {
        Ok(s.subscription_of("alice")
            .await
            .is_ok_and(|n| n.id != old.id))
    })
    .await?;
    s.wait("the missed edit in LN", || async {
        Ok(s.ln_subject(&key).as_deref() == Some("Standup (missed)"))
    })
    .await?;
    let new = s.subscription_of("alice").await?;
    let sim_new = cal
        .world
        .ews
        .subscriptions()
        .into_iter()
        .find(|x| x.id == new.id.as_str())
        .ok_or("the simulator knows the new subscription")?;
    assert_eq!(
        Some(sim_new.start_watermark.clone()),
        old.watermark,
        "resumed from the persisted watermark"
    );
    assert!(
        sim_new.events_delivered >= 1,
        "the missed event came by push: {sim_new:?}"
    );
    assert_eq!(s.count("calendar"), calendar_jobs, "no pull ran");
    let old_now = cal
        .world
        .store
        .subscription(&s.env(), &old.id)
        .await?
        .ok_or("kept")?;
    assert!(!old_now.active, "the replaced subscription is retired");

    // 2. An expired watermark: a fresh subscription, and a pull catches up instead.
    let current = s.subscription_of("alice").await?;
    cal.world.ews.expire_watermarks(None);
    assert!(s.lose_subscription(current.id.as_str()));
    edit("Standup (expired)")?;
    cal.advance(Duration::minutes(3));
    s.wait("a fresh subscription and a pull", || async {
        Ok(s.subscription_of("alice")
            .await
            .is_ok_and(|n| n.id != current.id)
            && s.count("calendar") > calendar_jobs)
    })
    .await?;
    s.wait("the pull's catch-up in LN", || async {
        Ok(s.ln_subject(&key).as_deref() == Some("Standup (expired)"))
    })
    .await?;
    let fresh = s.subscription_of("alice").await?;
    let sim_fresh = cal
        .world
        .ews
        .subscriptions()
        .into_iter()
        .find(|x| x.id == fresh.id.as_str())
        .ok_or("known")?;
    assert_ne!(Some(sim_fresh.start_watermark.clone()), current.watermark);

    // 3. Push turned off in LN: the tick retires every subscription, and the next notification
    //    is answered Unsubscribe, which ends it at the server.
    cal.world.ln.store().disable_webhook(&cal.company)?;
    s.wait("every subscription retired", || async {
        Ok(s.active_subscriptions().await?.is_empty())
    })
    .await?;
    let before = s.job_count();
    edit("Standup (push off)")?;
    s.wait("alice's subscription ended by Unsubscribe", || async {
        Ok(cal.world.ews.subscriptions().iter().any(|x| {
            x.id == fresh.id.as_str()
                && matches!(
                    x.state,
                    ews_sim::push::SubscriptionState::Unsubscribed { .. }
                )
        }))
    })
    .await?;
    assert!(
        s.jobs_since(before).iter().all(|(k, _, _)| *k != "event"),
        "nothing was queued for an unwanted subscription"
    );
    s.stop().await
}

/// Graph requests of the current log with this operation (`subscriptions.update`…).
fn graph_calls(s: &Served, operation: &str) -> usize {
    s.cal
        .world
        .exchange_requests()
        .iter()
        .filter(|r| r.is_incoming() && r.operation.as_deref() == Some(operation))
        .count()
}

/// Graph: the tick renews (PATCH) every subscription that comes within
/// `graph_renew_before_minutes` of its expiry, keeps its id and stores the new expiry; one far
/// from it is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_27_graph_subscriptions_are_renewed_before_they_expire() -> TestResult {
    // Ten days ahead: still inside the sync window after the clock moved six days.
    let (s, standup) =
        Served::with_appointment(Backend::Graph, FAST_TICK, "alice", "Standup", 10, 8).await?;
    let cal = s.cal.clone();
    let push = PushSettings::default();
    let margin = Duration::minutes(i64::from(push.graph_renew_before_minutes));
    let subs = s.active_subscriptions().await?;
    assert_eq!(subs.len(), 3);
    for sub in &subs {
        let server = cal
            .world
            .ews
            .graph_subscription(sub.id.as_str())
            .ok_or("the server knows the subscription")?;
        assert_eq!(
            sub.expires_at,
            Some(server.expiration_date_time),
            "the stored expiry is the server's"
        );
        assert!(
            server.expiration_date_time - cal.now() > margin,
            "a new subscription is not due for renewal: {server:?}"
        );
    }
    let first_expiry = subs
        .iter()
        .filter_map(|x| x.expires_at)
        .min()
        .ok_or("Graph subscriptions expire")?;

    // Ticks far from the margin renew nothing.
    cal.world.clear_logs();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(graph_calls(&s, "subscriptions.update"), 0);

    // Time passes until every subscription is five minutes inside the margin.
    cal.advance(first_expiry - cal.now() - margin + Duration::minutes(5));
    s.wait("every subscription renewed", || async {
        let now = s.active_subscriptions().await?;
        Ok(now.len() == 3
            && now
                .iter()
                .all(|n| n.expires_at.is_some_and(|e| e - cal.now() > margin)))
    })
    .await?;
    s.settle().await?;
    assert_eq!(
        graph_calls(&s, "subscriptions.update"),
        3,
        "one PATCH per subscription"
    );
    assert_eq!(graph_calls(&s, "subscriptions.create"), 0, "none recreated");
    for sub in s.active_subscriptions().await? {
        assert!(
            subs.iter().any(|old| old.id == sub.id),
            "renewed, not replaced: {sub:?}"
        );
        let server = cal
            .world
            .ews
            .graph_subscription(sub.id.as_str())
            .ok_or("known")?;
        assert!(server.active, "{server:?}");
        assert_eq!(
            sub.expires_at,
            Some(server.expiration_date_time),
            "the new expiry is stored"
        );
    }

    // The renewed subscription still delivers.
    rename(&s, "alice", &standup.event.id, "Standup (renewed)")?;
    s.wait("an edit after the renewal in LN", || async {
        Ok(s.ln_subject(&standup.ln_key).as_deref() == Some("Standup (renewed)"))
    })
    .await?;
    s.stop().await
}

/// Graph: the lifecycle notifications. `reauthorizationRequired` → the subscription is renewed;
/// `missed` → a pull, which applies what Graph lost; `subscriptionRemoved` (or the server
/// expiring it) → a new subscription and a pull; push turned off → the subscriptions are
/// deleted at the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_27_graph_lifecycle_notifications_renew_pull_and_recreate() -> TestResult {
    let (s, standup) =
        Served::with_appointment(Backend::Graph, FAST_TICK, "alice", "Standup", 2, 8).await?;
    let cal = s.cal.clone();
    let ews = &cal.world.ews;
    let alice = cal.email("alice");
    let key = standup.ln_key.clone();
    let in_ln = |subject: &'static str| {
        let s = &s;
        let key = key.clone();
        move || {
            let key = key.clone();
            async move { Ok(s.ln_subject(&key).as_deref() == Some(subject)) }
        }
    };

    // 1. reauthorizationRequired, a while after the subscription was made: renewed, same
    //    subscription, the server's demand met.
    let sub = s.subscription_of("alice").await?;
    cal.advance(Duration::minutes(30));
    reauthorization_renews(&s, sub.id.as_str()).await?;

    // 2. Graph loses a change (delivery paused), then says `missed`: a pull applies it.
    s.settle().await?;
    ews.graph_pause_delivery(&alice, true);
    rename(&s, "alice", &standup.event.id, "Standup (missed)")?;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(s.ln_subject(&key).as_deref(), Some("Standup"), "lost");
    let pulls = s.count("calendar");
    assert_eq!(ews.graph_pause_delivery(&alice, false), 1, "`missed` sent");
    // The job is recorded once it ended, after its LN write: wait for both.
    s.wait("a pull", || async { Ok(s.count("calendar") > pulls) })
        .await?;
    s.wait("the missed change in LN", in_ln("Standup (missed)"))
        .await?;
    assert_eq!(s.subscription_of("alice").await?.id, sub.id);

    // 3. subscriptionRemoved: a new subscription, and a pull catches up the change made
    //    while nothing was delivered.
    s.settle().await?;
    ews.graph_pause_delivery(&alice, true);
    rename(&s, "alice", &standup.event.id, "Standup (removed)")?;
    let pulls = s.count("calendar");
    assert!(ews.graph_lifecycle(sub.id.as_str(), LifecycleEvent::SubscriptionRemoved));
    s.wait("a new subscription for alice and a pull", || async {
        Ok(s.subscription_of("alice")
            .await
            .is_ok_and(|n| n.id != sub.id)
            && s.count("calendar") > pulls)
    })
    .await?;
    s.wait("the change of the gap in LN", in_ln("Standup (removed)"))
        .await?;
    ews.graph_pause_delivery(&alice, false);
    let old = cal
        .world
        .store
        .subscription(&s.env(), &sub.id)
        .await?
        .ok_or("kept")?;
    assert!(!old.active, "the removed subscription is retired");
    let recreated = s.subscription_of("alice").await?;
    assert!(s.server_knows(recreated.id.as_str()));

    // 4. The server expires it (its `subscriptionRemoved` follows): recreated again, and the
    //    new one delivers.
    s.settle().await?;
    assert!(ews.graph_expire_subscription(recreated.id.as_str()));
    s.wait("a subscription replacing the expired one", || async {
        Ok(s.subscription_of("alice")
            .await
            .is_ok_and(|n| n.id != recreated.id))
    })
    .await?;
    s.settle().await?;
    rename(&s, "alice", &standup.event.id, "Standup (after expiry)")?;
    s.wait(
        "an edit after the expiry in LN",
        in_ln("Standup (after expiry)"),
    )
    .await?;

    // 5. Push turned off in LN: the tick retires every subscription and deletes it at the
    //    server; later edits queue nothing.
    let live = s.active_subscriptions().await?;
    cal.world.clear_logs();
    cal.world.ln.store().disable_webhook(&cal.company)?;
    s.wait("every subscription retired and deleted", || async {
        Ok(s.active_subscriptions().await?.is_empty()
            && live.iter().all(|x| !s.server_knows(x.id.as_str())))
    })
    .await?;
    assert_eq!(graph_calls(&s, "subscriptions.delete"), live.len());
    s.settle().await?;
    let before = s.job_count();
    rename(&s, "alice", &standup.event.id, "Standup (push off)")?;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert!(
        s.jobs_since(before).iter().all(|(k, _, _)| *k != "event"),
        "nothing was queued: {:?}",
        s.jobs_since(before)
    );
    s.stop().await
}

/// Graph asks alice's subscription to reauthorize; waits until lnsync renewed it (PATCH or
/// `/reauthorize`) and checks it kept the subscription.
async fn reauthorization_renews(s: &Served, id: &str) -> TestResult {
    let ews = &s.cal.world.ews;
    s.cal.world.clear_logs();
    assert!(ews.graph_lifecycle(id, LifecycleEvent::ReauthorizationRequired));
    s.wait("alice's subscription reauthorized", || async {
        Ok(ews
            .graph_subscription(id)
            .is_some_and(|x| x.active && x.reauthorization_required_since.is_none()))
    })
    .await?;
    assert!(
        graph_calls(s, "subscriptions.update") + graph_calls(s, "subscriptions.reauthorize") >= 1
    );
    assert_eq!(graph_calls(s, "subscriptions.create"), 0);
    assert_eq!(s.subscription_of("alice").await?.id.as_str(), id);
    Ok(())
}

/// Graph may ask for reauthorization at any time, also minutes after the subscription was
/// made or renewed; unanswered, Graph stops delivering after its grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_27_graph_reauthorization_right_after_subscribing_is_answered() -> TestResult {
    let s = Served::start(Backend::Graph, FAST_TICK, |_| Ok(())).await?;
    let sub = s.subscription_of("alice").await?;
    reauthorization_renews(&s, sub.id.as_str()).await?;
    s.stop().await
}

both_backends!(
    scenario_27_a_stopped_environment_queues_nothing,
    multi_thread
);

/// A stopped environment queues nothing for a notification. EWS ends the subscription with
/// the `Unsubscribe` answer; Graph's is acknowledged and dropped (it lapses at its expiry,
/// and a started environment's tick renews or replaces it).
async fn scenario_27_a_stopped_environment_queues_nothing(backend: Backend) -> TestResult {
    let (s, one) = Served::with_appointment(backend, HOUR, "bob", "1:1", 2, 11).await?;
    let cal = s.cal.clone();
    let sub = s.subscription_of("bob").await?;
    cal.world
        .store
        .put_environment(&EnvironmentState {
            env: s.env(),
            started: false,
            updated_at: cal.now(),
        })
        .await?;
    let before = s.job_count();
    cal.world.clear_logs();
    rename(&s, "bob", &one.event.id, "1:1 (stopped)")?;
    match backend {
        Backend::Ews => {
            s.wait("bob's subscription ended by Unsubscribe", || async {
                Ok(cal.world.ews.subscriptions().iter().any(|x| {
                    x.id == sub.id.as_str()
                        && matches!(
                            x.state,
                            ews_sim::push::SubscriptionState::Unsubscribed { .. }
                        )
                }))
            })
            .await?;
        }
        Backend::Graph => {
            s.wait("the notification acknowledged", || async {
                Ok(cal
                    .world
                    .ews
                    .graph_outgoing_for(sub.id.as_str())
                    .iter()
                    .any(|r| {
                        r.operation.as_deref() == Some("notification") && r.http_status == 202
                    }))
            })
            .await?;
            assert!(s.server_knows(sub.id.as_str()), "left to lapse");
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        s.job_count(),
        before,
        "a stopped environment queues nothing"
    );
    assert_eq!(s.ln_subject(&one.ln_key).as_deref(), Some("1:1"));
    s.stop().await
}

// ---------------------------------------------------------------------------------------------
// 28 and 34: hostile requests

/// The EWS endpoint's hostile requests (path `/ews/prod/{token}`).
fn ews_cases(token: &str, sub: &str, item: &str) -> Vec<Case> {
    let xml = |sub: &str| send_notification(sub, item).into_bytes();
    let path = format!("/ews/prod/{token}");
    vec![
        (
            "unknown subscription",
            path.clone(),
            vec![],
            xml("not-a-subscription"),
            403,
        ),
        (
            "wrong token",
            "/ews/prod/0123456789abcdef".into(),
            vec![],
            xml(sub),
            403,
        ),
        (
            "unknown environment",
            format!("/ews/nope/{token}"),
            vec![],
            xml(sub),
            403,
        ),
        (
            "DOCTYPE",
            path.clone(),
            vec![],
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">]>{}",
                String::from_utf8_lossy(&xml(sub))
                    .trim_start_matches("<?xml version=\"1.0\" encoding=\"utf-8\"?>")
            )
            .into_bytes(),
            400,
        ),
        (
            "malformed SOAP",
            path.clone(),
            vec![],
            b"<soap:Envelope>".to_vec(),
            400,
        ),
        ("oversized", path, vec![], vec![b' '; 1024 * 1024 + 1], 413),
    ]
}

/// The Graph endpoint's hostile requests (`/graph/prod`, `/graph/prod/lifecycle`; the push
/// token is the `clientState`).
fn graph_cases(token: &str, sub: &str, item: &str) -> Vec<Case> {
    let json_type = || vec![("content-type", "application/json".to_owned())];
    vec![
        (
            "wrong clientState",
            "/graph/prod".into(),
            json_type(),
            graph_notification(sub, "not-the-client-state", item).into_bytes(),
            403,
        ),
        (
            "no clientState",
            "/graph/prod".into(),
            json_type(),
            graph_notification(sub, "", item)
                .replace(r#""clientState":"","#, "")
                .into_bytes(),
            403,
        ),
        // Acknowledged and dropped, by design: a subscription lnsync no longer holds lives on
        // at Graph until it is deleted or expires, and refusing its notifications would only
        // make Graph retry them for hours (docs/push.md).
        (
            "unknown subscription",
            "/graph/prod".into(),
            json_type(),
            graph_notification("not-a-subscription", token, item).into_bytes(),
            202,
        ),
        (
            "unknown environment",
            "/graph/nope".into(),
            json_type(),
            graph_notification(sub, token, item).into_bytes(),
            403,
        ),
        (
            "lifecycle with a wrong clientState",
            "/graph/prod/lifecycle".into(),
            json_type(),
            graph_lifecycle(sub, "not-the-client-state", "subscriptionRemoved").into_bytes(),
            403,
        ),
        (
            "malformed JSON",
            "/graph/prod".into(),
            json_type(),
            br#"{"value":[{"subscriptionId":"#.to_vec(),
            400,
        ),
        (
            "not a notification",
            "/graph/prod".into(),
            json_type(),
            br#"{"value":"nope"}"#.to_vec(),
            400,
        ),
        (
            "oversized",
            "/graph/prod".into(),
            json_type(),
            vec![b' '; 1024 * 1024 + 1],
            413,
        ),
    ]
}

/// LN's webhook endpoint's hostile requests (either backend).
fn ln_cases() -> Vec<Case> {
    let hook = json!({"entity":"Activity","key":"ACT-1","change":"modified","lastModified":"2027-03-01T10:00:00Z","id":"n-1"}).to_string();
    vec![
        (
            "bad LN signature",
            "/ln/prod".into(),
            vec![
                (
                    webhook::SIGNATURE_HEADER,
                    webhook::sign(b"another secret", hook.as_bytes()),
                ),
                (webhook::TIMESTAMP_HEADER, unix_now()),
            ],
            hook.clone().into_bytes(),
            401,
        ),
        (
            "stale LN timestamp",
            "/ln/prod".into(),
            vec![
                (
                    webhook::SIGNATURE_HEADER,
                    webhook::sign(HOOK_SECRET.as_bytes(), hook.as_bytes()),
                ),
                (
                    webhook::TIMESTAMP_HEADER,
                    (chrono::Utc::now().timestamp() - 900).to_string(),
                ),
            ],
            hook.clone().into_bytes(),
            401,
        ),
        (
            "malformed LN JSON",
            "/ln/prod".into(),
            signed("{\"entity\":"),
            b"{\"entity\":".to_vec(),
            400,
        ),
        (
            "oversized LN body",
            "/ln/prod".into(),
            vec![],
            vec![b'{'; 1024 * 1024 + 1],
            413,
        ),
    ]
}

both_backends!(
    scenarios_28_and_34_hostile_requests_are_refused_and_nothing_is_queued,
    multi_thread
);

async fn scenarios_28_and_34_hostile_requests_are_refused_and_nothing_is_queued(
    backend: Backend,
) -> TestResult {
    let (s, demo) = Served::with_appointment(backend, HOUR, "alice", "Demo", 4, 10).await?;
    let cal = s.cal.clone();
    let token = s.push_token().await?;
    let sub = s.subscription_of("alice").await?;
    let item = cal.client_id(&demo.event.id);
    let before = s.job_count();
    let mut cases = match backend {
        Backend::Ews => ews_cases(&token, sub.id.as_str(), &item),
        Backend::Graph => graph_cases(&token, sub.id.as_str(), &item),
    };
    cases.extend(ln_cases());
    for (what, path, headers, body, status) in cases {
        assert_eq!(s.post(&path, &headers, body).await?, status, "{what}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        s.job_count(),
        before,
        "nothing was queued: {:?}",
        s.jobs_since(before)
    );
    let untouched = s.subscription_of("alice").await?;
    assert_eq!(
        untouched.last_seen, sub.last_seen,
        "refused requests don't count as signs of life"
    );

    // The same request with the right credentials is accepted: what was refused above was
    // refused for the one thing each case got wrong.
    let (good, accepted) = match backend {
        Backend::Ews => (send_notification(sub.id.as_str(), &item), 200),
        Backend::Graph => (graph_notification(sub.id.as_str(), &token, &item), 202),
    };
    let path = s.notification_path().await?;
    assert_eq!(
        s.post(
            &path,
            &[("content-type", "application/json".into())],
            good.into_bytes()
        )
        .await?,
        accepted
    );
    s.wait("the accepted notification's job", || async {
        Ok(s.jobs_since(before)
            .iter()
            .any(|(k, u, _)| *k == "event" && u == "alice"))
    })
    .await?;

    // The endpoint kept serving: a real edit still arrives.
    rename(&s, "alice", &demo.event.id, "Demo (still served)")?;
    s.wait("a real edit after the attacks", || async {
        Ok(s.ln_subject(&demo.ln_key).as_deref() == Some("Demo (still served)"))
    })
    .await?;
    s.stop().await
}

/// Graph: every subscription lnsync made passed Graph's handshake on both URLs (the server
/// creates none otherwise), and the endpoint answers it `200 text/plain` with the decoded
/// token, queueing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_28_graph_validation_handshake_is_answered_as_plain_text() -> TestResult {
    let s = Served::start(Backend::Graph, HOUR, |_| Ok(())).await?;
    let cal = s.cal.clone();
    let subs = s.active_subscriptions().await?;
    for sub in &subs {
        let validations: Vec<_> = cal
            .world
            .ews
            .graph_outgoing_for(sub.id.as_str())
            .into_iter()
            .filter(|r| r.operation.as_deref() == Some("validation"))
            .collect();
        assert_eq!(
            validations.len(),
            2,
            "notification and lifecycle URL validated: {validations:?}"
        );
        for v in &validations {
            let push = v.push.as_ref().ok_or("a delivery record")?;
            assert_eq!((v.http_status, push.error.as_deref()), (200, None), "{v:?}");
        }
        let server = cal
            .world
            .ews
            .graph_subscription(sub.id.as_str())
            .ok_or("known")?;
        assert_eq!(server.notification_url, format!("{}/graph/prod", s.base));
        assert_eq!(
            server.lifecycle_notification_url,
            Some(format!("{}/graph/prod/lifecycle", s.base))
        );
        assert_eq!(server.client_state, Some(s.push_token().await?));
    }

    let before = s.job_count();
    let token = "Validation: Testing client application reachability & more <=>";
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("validationToken", token)
        .finish();
    for path in ["/graph/prod", "/graph/prod/lifecycle"] {
        let started = std::time::Instant::now();
        let answer = s
            .post_answer(&format!("{path}?{query}"), &[], Vec::new())
            .await?;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "well within Graph's 10 s"
        );
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        assert!(
            answer
                .content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("text/plain")),
            "{path}: {answer:?}"
        );
        assert_eq!(answer.body, token, "{path}: the decoded token");
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(s.job_count(), before, "a handshake queues nothing");
    s.stop().await
}

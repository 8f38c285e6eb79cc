//! Push end to end through `lnsync serve` (R31–R33): the EWS simulator's real push callbacks
//! and the LN simulator's signed webhooks reach the push endpoint on a local port, which
//! queues single-event jobs that the process's worker runs at once. The scheduled loop ticks
//! only when a test wants it to, so a change that arrives in the other system arrived by push.
//!
//! Scenarios (scenarios.md): 25 (an Exchange edit reaches LN, an LN edit reaches Exchange,
//! without a pull; our own writes' echoes write nothing), 26 (notifications lost: the next
//! pull applies everything), 27 (a silent subscription is recreated by the tick and resumes
//! from its watermark; an expired watermark falls back to a fresh subscription and a pull;
//! push turned off or the environment stopped → `Unsubscribe`), 28 and 34 (unknown
//! subscription, bad token, bad LN signature, oversized body, DOCTYPE, malformed bodies: 4xx,
//! nothing queued, and the endpoint keeps serving).

use chrono::Duration;
use ews_sim::{EventEdit, NewEvent};
use lnsync_adapters::ln::webhook;
use lnsync_core::model::EnvironmentState;
use lnsync_core::ports::StateStore;
use lnsync_tests::harness::TestResult;
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

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scenario_25_edits_arrive_by_push_without_a_pull() -> TestResult {
    let keys = Arc::new(Mutex::new(None));
    let k = keys.clone();
    let s = Served::start(std::time::Duration::from_secs(3600), move |cal| {
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
    cal.user_edits(
        "carol",
        &dentist.id,
        EventEdit {
            subject: Some("Dentist (moved)".into()),
            ..EventEdit::default()
        },
    )?;
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
    assert!(
        ran.iter().any(|(_, user, _)| user == "carol"),
        "carol's push job ran: {ran:?}"
    );
    assert_eq!(
        cal.ews_writes(),
        0,
        "the LN write's echo wrote nothing to Exchange"
    );
    assert_eq!(cal.ln_calls("PATCH", "Activities"), 1, "{}", cal.ln_log());
    for user in ["alice", "bob", "carol"] {
        let ops = cal.ews_ops(user);
        assert_eq!(
            ops.get("SyncFolderItems"),
            None,
            "no pull for {user}: {ops:?}"
        );
        assert_eq!(ops.get("CalendarView"), None, "no pull for {user}: {ops:?}");
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
    let ops = cal.ews_ops("alice");
    assert_eq!(ops.get("UpdateItem"), Some(&1), "{ops:?}");
    assert_eq!(ops.get("SyncFolderItems"), None, "{ops:?}");
    cal.world.validate_ews_requests()?;
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scenario_26_lost_notifications_are_repaired_by_the_next_pull() -> TestResult {
    let (s, review) = Served::with_appointment(
        std::time::Duration::from_secs(3600),
        "alice",
        "Review",
        2,
        14,
    )
    .await?;
    let cal = s.cal.clone();
    let key = review.ln_key.clone();
    // The server loses alice's subscription without a word; two edits follow.
    let sub = s.subscription_of("alice").await?;
    assert!(cal.world.ews.drop_subscription(sub.id.as_str()));
    for subject in ["Review 1", "Review 2"] {
        cal.user_edits(
            "alice",
            &review.event.id,
            EventEdit {
                subject: Some(subject.into()),
                ..EventEdit::default()
            },
        )?;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scenario_27_silent_subscriptions_are_recreated_and_unwanted_ones_unsubscribed()
-> TestResult {
    let (s, standup) = Served::with_appointment(
        std::time::Duration::from_millis(200),
        "alice",
        "Standup",
        2,
        8,
    )
    .await?;
    let cal = s.cal.clone();
    let key = standup.ln_key.clone();
    let edit = |subject: &str| {
        cal.user_edits(
            "alice",
            &standup.event.id,
            EventEdit {
                subject: Some(subject.into()),
                ..EventEdit::default()
            },
        )
    };

    // 1. The server stops calling; an edit happens meanwhile. After 2 × StatusFrequency of
    //    silence the tick recreates the subscription from the last watermark, and the missed
    //    edit is delivered to the new one.
    let old = s.subscription_of("alice").await?;
    assert!(cal.world.ews.drop_subscription(old.id.as_str()));
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
    assert!(cal.world.ews.drop_subscription(current.id.as_str()));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scenario_27_a_stopped_environment_answers_unsubscribe() -> TestResult {
    let (s, one) =
        Served::with_appointment(std::time::Duration::from_secs(3600), "bob", "1:1", 2, 11).await?;
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
    cal.user_edits(
        "bob",
        &one.event.id,
        EventEdit {
            subject: Some("1:1 (stopped)".into()),
            ..EventEdit::default()
        },
    )?;
    s.wait("bob's subscription ended", || async {
        Ok(cal.world.ews.subscriptions().iter().any(|x| {
            x.id == sub.id.as_str()
                && matches!(
                    x.state,
                    ews_sim::push::SubscriptionState::Unsubscribed { .. }
                )
        }))
    })
    .await?;
    assert_eq!(
        s.job_count(),
        before,
        "a stopped environment queues nothing"
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scenarios_28_and_34_hostile_requests_are_refused_and_nothing_is_queued() -> TestResult {
    let (s, demo) =
        Served::with_appointment(std::time::Duration::from_secs(3600), "alice", "Demo", 4, 10)
            .await?;
    let cal = s.cal.clone();
    let token = cal
        .world
        .store
        .push_token(&s.env())
        .await?
        .ok_or("the worker created the push token")?;
    let sub = s.subscription_of("alice").await?;
    let item = demo.event.id.0.clone();
    let xml = |sub: &str| send_notification(sub, &item).into_bytes();
    let before = s.job_count();
    let hook = json!({"entity":"Activity","key":"ACT-1","change":"modified","lastModified":"2027-03-01T10:00:00Z","id":"n-1"}).to_string();

    let cases: Vec<Case> = vec![
        (
            "unknown subscription",
            format!("/ews/prod/{token}"),
            vec![],
            xml("not-a-subscription"),
            403,
        ),
        (
            "wrong token",
            "/ews/prod/0123456789abcdef".into(),
            vec![],
            xml(sub.id.as_str()),
            403,
        ),
        (
            "unknown environment",
            format!("/ews/nope/{token}"),
            vec![],
            xml(sub.id.as_str()),
            403,
        ),
        (
            "DOCTYPE",
            format!("/ews/prod/{token}"),
            vec![],
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">]>{}",
                String::from_utf8_lossy(&xml(sub.id.as_str()))
                    .trim_start_matches("<?xml version=\"1.0\" encoding=\"utf-8\"?>")
            )
            .into_bytes(),
            400,
        ),
        (
            "malformed SOAP",
            format!("/ews/prod/{token}"),
            vec![],
            b"<soap:Envelope>".to_vec(),
            400,
        ),
        (
            "oversized",
            format!("/ews/prod/{token}"),
            vec![],
            vec![b' '; 1024 * 1024 + 1],
            413,
        ),
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
    ];
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

    // The endpoint kept serving: a real edit still arrives.
    let key = demo.ln_key.clone();
    cal.user_edits(
        "alice",
        &demo.event.id,
        EventEdit {
            subject: Some("Demo (still served)".into()),
            ..EventEdit::default()
        },
    )?;
    s.wait("a real edit after the attacks", || async {
        Ok(s.ln_subject(&key).as_deref() == Some("Demo (still served)"))
    })
    .await?;
    s.stop().await
}

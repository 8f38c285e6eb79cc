//! `LnClient` against the LN simulator (`tests/ln-sim`): authentication, paging, preconditions,
//! idempotent creates, throttling, failures and the mapping of every field.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use ln_sim::model as sim;
use ln_sim::seed::{CompanySeed, Seed, SeedActivity, SeedContact};
use ln_sim::{FaultRule, LnSim, RequestKind, SimConfig, demo_seed};
use lnsync_core::error::{Classify, ErrorClass, LnError};
use lnsync_core::ids::{ActivityKey, ContactCode, LnVersion};
use lnsync_core::model::{Activity, Attendee};
use lnsync_core::model::{
    ActivityStatus, ActivityType, Attendance, AttendanceStatus, AttendeeType, DeletedEntity,
    ExchangeBackend, IntervalUnit, Origin, ShowTimeAs,
};
use lnsync_core::ports::{ActivityPatch, AttendeePatch, LnGateway, NewActivity, Window};

use super::{IonApi, LnClient, LnClientConfig, ThrottlePolicy};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const COMPANY: &str = "100";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

fn config(sim: &LnSim, page_size: u32) -> Result<LnClientConfig, Box<dyn std::error::Error>> {
    let ionapi = IonApi::from_json(&sim.ionapi().to_json())?;
    let mut config = LnClientConfig::new(ionapi, COMPANY);
    config.page_size = page_size;
    config.throttle = ThrottlePolicy {
        max_retries: 3,
        max_wait: Duration::from_secs(5),
        default_wait: Duration::from_millis(50),
    };
    Ok(config)
}

async fn setup(
    seed: Seed,
    page_size: u32,
) -> Result<(LnSim, LnClient), Box<dyn std::error::Error>> {
    let sim = LnSim::start(SimConfig::default().with_seed(seed)).await?;
    let client = LnClient::new(config(&sim, page_size)?)?;
    Ok((sim, client))
}

fn window() -> Window {
    Window {
        start: at("2026-11-01T00:00:00Z"),
        end: at("2027-12-31T00:00:00Z"),
    }
}

fn new_activity(uid: &str) -> NewActivity {
    new_activity_for(uid, "E00001", "CON000001")
}

fn new_activity_for(uid: &str, employee: &str, contact: &str) -> NewActivity {
    NewActivity {
        activity: Activity {
            activity: ActivityKey::new(""),
            activity_type: ActivityType::Appointment,
            subject: Some("Kick-off".into()),
            location: Some("Room 1".into()),
            information: Some("Agenda: …".into()),
            all_day: false,
            start: at("2026-12-02T09:00:00Z"),
            end: at("2026-12-02T10:30:00Z"),
            reminder_set: true,
            reminder_value: Some(15),
            reminder_unit: Some(IntervalUnit::Minutes),
            show_time_as: ShowTimeAs::Tentative,
            status: ActivityStatus::Planned,
            synchronize: true,
            contact: Some(ContactCode::new(contact)),
            business_partner: Some("BP000001".into()),
            external_reference: Some(uid.into()),
            origin: Origin::Exchange,
            last_modified: Utc::now(),
            version: LnVersion::new(""),
            attendees: vec![
                Attendee {
                    activity: ActivityKey::new(""),
                    line: 0,
                    attendance: Attendance::MeetingOrganizer,
                    attendee_type: AttendeeType::Employee,
                    attendee: Some(employee.into()),
                    full_name: Some("Anna Berg".into()),
                    email: Some("anna.berg@demo.example".into()),
                    attendance_status: AttendanceStatus::Accepted,
                    invite: false,
                    sent_to_synchronizer: true,
                    synchronized: true,
                    version: None,
                },
                Attendee {
                    activity: ActivityKey::new(""),
                    line: 0,
                    attendance: Attendance::Optional,
                    attendee_type: AttendeeType::Other,
                    attendee: None,
                    full_name: Some("Guest".into()),
                    email: Some("guest@elsewhere.example".into()),
                    attendance_status: AttendanceStatus::None,
                    invite: true,
                    sent_to_synchronizer: false,
                    synchronized: false,
                    version: None,
                },
            ],
        },
    }
}

#[tokio::test]
async fn one_token_for_many_calls_and_company_on_every_call() -> TestResult {
    let (sim, ln) = setup(demo_seed(COMPANY, 3, 5), 200).await?;
    ln.settings().await?;
    ln.sync_users().await?;
    ln.employees().await?;
    for _ in 0..3 {
        ln.contacts_changed_since(None).await?;
    }
    assert_eq!(sim.count_token_calls(), 1);
    let data = sim.count(|r| r.kind == RequestKind::Data);
    assert_eq!(data, 6);
    assert_eq!(
        sim.count(|r| r.kind == RequestKind::Data
            && r.company.as_deref() == Some(COMPANY)
            && r.authorization),
        data
    );
    Ok(())
}

#[tokio::test]
async fn refreshes_once_on_401() -> TestResult {
    let (sim, ln) = setup(demo_seed(COMPANY, 2, 2), 200).await?;
    ln.sync_users().await?;
    sim.revoke_tokens();
    let users = ln.sync_users().await?;
    assert_eq!(users.len(), 3);
    assert_eq!(sim.count_token_calls(), 2);
    assert_eq!(sim.count(|r| r.status == 401), 1);
    Ok(())
}

#[tokio::test]
async fn bad_credentials_are_a_configuration_error() -> TestResult {
    let sim = LnSim::start(SimConfig::default().with_seed(demo_seed(COMPANY, 1, 1))).await?;
    let mut ionapi = sim.ionapi();
    ionapi.sask = "wrong".into();
    let ionapi = IonApi::from_json(&ionapi.to_json())?;
    let ln = LnClient::new(LnClientConfig::new(ionapi, COMPANY))?;
    let error = ln.sync_users().await.err().ok_or("expected an error")?;
    assert!(matches!(error, LnError::Unauthorized { .. }), "{error:?}");
    assert_eq!(error.class(), ErrorClass::Configuration);
    assert!(!format!("{error:?}").contains("lnsync-service-secret"));

    let ln = LnClient::new(LnClientConfig::new(
        IonApi::from_json(&sim.ionapi().to_json())?,
        "999",
    ))?;
    let error = ln.settings().await.err().ok_or("expected an error")?;
    assert_eq!(error.class(), ErrorClass::Configuration, "{error:?}");
    Ok(())
}

#[tokio::test]
async fn follows_next_links_with_max_page_size() -> TestResult {
    let (sim, ln) = setup(demo_seed(COMPANY, 1, 45), 10).await?;
    let contacts = ln
        .contacts_changed_since(Some(at("2000-01-01T00:00:00Z")))
        .await?;
    assert_eq!(contacts.len(), 45);
    let keys: Vec<&str> = contacts.iter().map(|c| c.contact.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(keys, sorted);
    let gets = sim
        .requests()
        .into_iter()
        .filter(|r| r.is_set("Contacts"))
        .collect::<Vec<_>>();
    assert_eq!(gets.len(), 5);
    assert!(
        gets.iter()
            .all(|r| r.prefer.as_deref() == Some("odata.maxpagesize=10"))
    );
    assert!(
        gets[0]
            .decoded_query()
            .contains("lastModified ge 2000-01-01T00:00:00.000Z")
    );
    assert!(gets[1].decoded_query().contains("$skiptoken="));

    // By key: 45 keys in chunks of 40.
    sim.clear_requests();
    let wanted: Vec<ContactCode> = keys.iter().map(|k| ContactCode::new(*k)).collect();
    let by_key = ln.contacts_by_key(&wanted).await?;
    assert_eq!(by_key.len(), 45);
    assert_eq!(sim.count_calls("GET", "Contacts"), 2 + 3); // 40 keys = 4 pages of 10, + 1
    assert!(ln.contacts_by_key(&[]).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn rows_sharing_the_watermark_are_reread() -> TestResult {
    let (sim, ln) = setup(demo_seed(COMPANY, 1, 0), 200).await?;
    let tie = at("2026-11-29T10:00:00.250Z");
    sim.clock().freeze_at(tie);
    for i in 0..3 {
        sim.store()
            .upsert_contact(COMPANY, ln_sim::demo_contact(i))?;
    }
    let contacts = ln.contacts_changed_since(Some(tie)).await?;
    assert_eq!(contacts.len(), 3);
    assert!(contacts.iter().all(|c| c.last_modified == tie));
    assert!(
        ln.contacts_changed_since(Some(at("2026-11-29T10:00:00.251Z")))
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn stale_version_is_a_conflict_and_writes_return_new_versions() -> TestResult {
    let (sim, ln) = setup(demo_seed(COMPANY, 2, 2), 200).await?;
    let created = ln.create_activity(&new_activity("uid-412")).await?;
    let key = created.activity.clone();

    let patch = ActivityPatch {
        subject: Some(Some("Moved".into())),
        start: Some(at("2026-12-02T11:00:00Z")),
        end: Some(at("2026-12-02T12:00:00Z")),
        location: Some(None),
        ..ActivityPatch::default()
    };
    let updated = ln.update_activity(&key, &created.version, &patch).await?;
    assert_eq!(updated.subject.as_deref(), Some("Moved"));
    assert_eq!(updated.location, None);
    assert_eq!(updated.start, at("2026-12-02T11:00:00Z"));
    assert_eq!(
        updated.attendees.len(),
        2,
        "PATCH returns the activity with attendees"
    );
    assert_ne!(updated.version, created.version);

    let error = ln
        .update_activity(&key, &created.version, &patch)
        .await
        .err()
        .ok_or("expected 412")?;
    assert!(
        matches!(&error, LnError::PreconditionFailed { key: k, .. } if k == key.as_str()),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Conflict);
    let patches = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect::<Vec<_>>();
    assert!(patches.iter().all(|r| r.if_match.is_some()));

    let error = ln
        .delete_activity(&key, &created.version)
        .await
        .err()
        .ok_or("expected 412")?;
    assert!(matches!(error, LnError::PreconditionFailed { .. }));
    ln.delete_activity(&key, &updated.version).await?;
    assert!(ln.activity(&key).await?.is_none());
    let deleted = ln.deleted_since(DeletedEntity::Activity, None).await?;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].key, key.as_str());
    let error = ln
        .delete_activity(&key, &updated.version)
        .await
        .err()
        .ok_or("expected 404")?;
    assert!(matches!(error, LnError::NotFound { .. }), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn duplicate_external_reference_names_the_existing_activity() -> TestResult {
    let (_sim, ln) = setup(demo_seed(COMPANY, 2, 2), 200).await?;
    let first = ln
        .create_activity(&new_activity("uid-dup@exchange"))
        .await?;
    let error = ln
        .create_activity(&new_activity("uid-dup@exchange"))
        .await
        .err()
        .ok_or("expected 409")?;
    match &error {
        LnError::AlreadyExists { existing_key, .. } => {
            assert_eq!(existing_key, first.activity.as_str())
        }
        other => return Err(format!("unexpected {other:?}").into()),
    }
    assert_eq!(error.class(), ErrorClass::Conflict);
    Ok(())
}

#[tokio::test]
async fn attendee_updates_with_and_without_version() -> TestResult {
    let (sim, ln) = setup(demo_seed(COMPANY, 2, 2), 200).await?;
    let created = ln.create_activity(&new_activity("uid-att")).await?;
    let key = created.activity.clone();
    let guest = created
        .attendees
        .iter()
        .find(|a| a.line == 2)
        .ok_or("no line 2")?;
    let patch = AttendeePatch {
        attendance_status: Some(AttendanceStatus::Declined),
        sent_to_synchronizer: Some(true),
        synchronized: Some(false),
    };
    let (updated, activity_version) = ln
        .update_attendee(&key, 2, guest.version.as_ref(), &patch)
        .await?;
    assert_eq!(updated.attendance_status, AttendanceStatus::Declined);
    assert!(updated.sent_to_synchronizer);
    assert_ne!(updated.version, guest.version);

    let stale = ln
        .update_attendee(&key, 2, guest.version.as_ref(), &patch)
        .await
        .err();
    assert!(
        matches!(stale, Some(LnError::PreconditionFailed { .. })),
        "{stale:?}"
    );
    ln.update_attendee(&key, 2, None, &patch).await?;
    let last = sim
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "PATCH")
        .ok_or("no PATCH")?;
    assert_eq!(last.if_match.as_deref(), Some("*"));

    // The attendee change moved the activity.
    let after = ln.activity(&key).await?.ok_or("activity vanished")?;
    assert_ne!(after.version, created.version);
    assert!(activity_version.is_some());
    assert_ne!(
        activity_version.as_ref(),
        Some(&after.version),
        "moved again"
    );
    Ok(())
}

/// The activity version an attendee update reports is exact: the next activity write made with
/// it succeeds instead of running into a 412.
#[tokio::test]
async fn attendee_update_reports_the_activity_version() -> TestResult {
    let (sim, ln) = setup(demo_seed(COMPANY, 2, 2), 200).await?;
    sim.clock().freeze_at(at("2026-11-29T10:00:00Z"));
    let created = ln.create_activity(&new_activity("uid-parent")).await?;
    let key = created.activity.clone();
    sim.clock().freeze_at(at("2026-11-29T10:05:00Z"));
    let (attendee, version) = ln
        .update_attendee(
            &key,
            1,
            created.attendees[0].version.as_ref(),
            &AttendeePatch {
                sent_to_synchronizer: Some(true),
                synchronized: Some(false),
                ..AttendeePatch::default()
            },
        )
        .await?;
    assert!(attendee.sent_to_synchronizer && !attendee.synchronized);
    let version = version.ok_or("LN reported no activity version")?;
    assert_ne!(version, created.version);
    let read = ln.activity(&key).await?.ok_or("activity vanished")?;
    assert_eq!(read.version, version);
    assert_eq!(read.last_modified, at("2026-11-29T10:05:00Z"));
    assert_eq!(read.attendees[0], attendee);

    sim.clear_requests();
    let patch = ActivityPatch {
        subject: Some(Some("Renamed".into())),
        ..ActivityPatch::default()
    };
    let updated = ln.update_activity(&key, &version, &patch).await?;
    assert_eq!(updated.subject.as_deref(), Some("Renamed"));
    assert_eq!(sim.count(|r| r.status == 412), 0);
    assert_eq!(
        sim.count_calls("GET", "Activities"),
        0,
        "no read-back needed"
    );
    Ok(())
}

#[tokio::test]
async fn attendees_are_added_and_removed() -> TestResult {
    let (sim, ln) = setup(demo_seed(COMPANY, 2, 2), 200).await?;
    sim.clock().freeze_at(at("2026-11-29T10:00:00Z"));
    let created = ln.create_activity(&new_activity("uid-lines")).await?;
    let key = created.activity.clone();

    // Added: LN assigns the line, the parent comes from the argument, flags are kept.
    sim.clock().freeze_at(at("2026-11-29T10:01:00Z"));
    let new_line = Attendee {
        activity: ActivityKey::new("IGNORED"),
        line: 99,
        attendance: Attendance::Required,
        attendee_type: AttendeeType::Contact,
        attendee: Some("CON000001".into()),
        full_name: None,
        email: Some("lars@example.com".into()),
        attendance_status: AttendanceStatus::Tentative,
        invite: true,
        sent_to_synchronizer: true,
        synchronized: false,
        version: None,
    };
    let added = ln.add_attendee(&key, &new_line).await?;
    assert_eq!(added.activity, key);
    assert_eq!(added.line, 3);
    assert_eq!(added.attendee_type, AttendeeType::Contact);
    assert_eq!(added.attendee.as_deref(), Some("CON000001"));
    assert_eq!(added.attendance_status, AttendanceStatus::Tentative);
    assert!(added.invite && added.sent_to_synchronizer && !added.synchronized);
    assert!(added.version.is_some(), "the new line carries its etag");
    let post = sim
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.is_set("Attendees"))
        .ok_or("no POST Attendees")?;
    assert_eq!(post.status, 201);
    let after_add = ln.activity(&key).await?.ok_or("activity vanished")?;
    assert_ne!(
        after_add.version, created.version,
        "adding moves the activity"
    );
    assert_eq!(after_add.last_modified, at("2026-11-29T10:01:00Z"));
    assert_eq!(after_add.attendees.len(), 3);
    assert_eq!(after_add.attendees[2], added);

    // Removed: a stale version is a 412, the current one removes the line.
    sim.clock().freeze_at(at("2026-11-29T10:02:00Z"));
    sim.store().patch_attendee(
        COMPANY,
        key.as_str(),
        3,
        &serde_json::json!({"attendanceStatus": "Accepted"}),
        &ln_sim::IfMatch::Any,
    )?;
    let stale = ln
        .delete_attendee(&key, 3, added.version.as_ref())
        .await
        .err();
    assert!(
        matches!(&stale, Some(LnError::PreconditionFailed { entity, key: k })
            if entity == "Attendee" && k == &format!("{key}/3")),
        "{stale:?}"
    );
    let current = ln
        .activity(&key)
        .await?
        .and_then(|a| a.attendees.into_iter().find(|t| t.line == 3))
        .ok_or("line 3 vanished")?;
    ln.delete_attendee(&key, 3, current.version.as_ref())
        .await?;
    let after_delete = ln.activity(&key).await?.ok_or("activity vanished")?;
    assert_eq!(after_delete.attendees.len(), 2);
    assert_ne!(after_delete.version, after_add.version, "removing moves it");
    assert_eq!(after_delete.last_modified, at("2026-11-29T10:02:00Z"));
    let deleted = ln.deleted_since(DeletedEntity::Attendee, None).await?;
    assert_eq!(
        deleted.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
        [format!("{key}/3")]
    );

    // Without a version: `If-Match: *`. A missing line or activity is NotFound.
    ln.delete_attendee(&key, 2, None).await?;
    let last = sim
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "DELETE")
        .ok_or("no DELETE")?;
    assert_eq!(last.if_match.as_deref(), Some("*"));
    let gone = ln.delete_attendee(&key, 2, None).await.err();
    assert!(matches!(gone, Some(LnError::NotFound { .. })), "{gone:?}");
    let orphan = ln
        .add_attendee(&ActivityKey::new("ACT999999"), &new_line)
        .await
        .err();
    assert!(
        matches!(orphan, Some(LnError::NotFound { .. })),
        "{orphan:?}"
    );

    // LN's validation comes back as a permanent server error naming the field.
    let invalid = Attendee {
        attendee: Some("NOPE".into()),
        ..new_line.clone()
    };
    let error = ln
        .add_attendee(&key, &invalid)
        .await
        .err()
        .ok_or("expected 400")?;
    assert!(
        matches!(&error, LnError::Server { status: 400, code, .. } if code == "InvalidValue"),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Permanent);
    Ok(())
}

#[tokio::test]
async fn deep_insert_keeps_attendees_and_their_flags() -> TestResult {
    let (sim, ln) = setup(demo_seed(COMPANY, 2, 2), 200).await?;
    let new = new_activity("uid-deep@exchange");
    let created = ln.create_activity(&new).await?;
    assert!(created.activity.as_str().starts_with("ACT"));
    assert_eq!(sim.count_calls("POST", "Activities"), 1, "one round trip");
    assert_eq!(created.attendees.len(), 2);
    for (line, (got, sent)) in created
        .attendees
        .iter()
        .zip(&new.activity.attendees)
        .enumerate()
    {
        assert_eq!(got.activity, created.activity);
        assert_eq!(got.line as usize, line + 1);
        assert_eq!(got.attendance, sent.attendance);
        assert_eq!(got.attendee_type, sent.attendee_type);
        assert_eq!(got.attendee, sent.attendee);
        assert_eq!(got.email, sent.email);
        assert_eq!(got.attendance_status, sent.attendance_status);
        assert_eq!(
            (got.invite, got.sent_to_synchronizer, got.synchronized),
            (sent.invite, sent.sent_to_synchronizer, sent.synchronized)
        );
        assert!(got.version.is_some());
    }
    // What the window read returns equals what the create returned.
    let listed = ln.activities_in_window(window(), None).await?;
    assert_eq!(
        listed.iter().find(|a| a.activity == created.activity),
        Some(&created)
    );

    // An idempotent retry adopts the first activity and creates nothing.
    let again = ln.create_activity(&new).await.err();
    assert!(
        matches!(&again, Some(LnError::AlreadyExists { existing_key, .. })
            if existing_key == created.activity.as_str()),
        "{again:?}"
    );
    assert_eq!(
        ln.activities_in_window(window(), None).await?.len(),
        listed.len()
    );

    // Deleting records the activity and each of its attendees.
    ln.delete_activity(&created.activity, &created.version)
        .await?;
    let activities = ln.deleted_since(DeletedEntity::Activity, None).await?;
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0].key, created.activity.as_str());
    let attendees = ln.deleted_since(DeletedEntity::Attendee, None).await?;
    assert_eq!(attendees.len(), 2);
    Ok(())
}

/// The calendar feed: a full read lists the appointments and calls in the window; a change read
/// (`ge` on the watermark, rows sharing it re-read) lists every activity changed since that
/// starts before the window's end, of any type and any end. Attendees expanded, every page
/// followed; attendee changes put an activity back into the feed.
#[tokio::test]
async fn activity_feed_uses_ge_expands_attendees_and_pages() -> TestResult {
    let (sim, ln) = setup(demo_seed(COMPANY, 2, 2), 2).await?;
    let tie = at("2026-11-29T10:00:00.250Z");
    sim.clock().freeze_at(tie);
    let mut keys = Vec::new();
    for i in 0..5 {
        let created = ln
            .create_activity(&new_activity(&format!("uid-feed-{i}")))
            .await?;
        keys.push(created.activity);
    }
    // A task and an appointment that ended before the window: changes, but not in the window.
    let mut task = new_activity("uid-task");
    task.activity.activity_type = ActivityType::Task;
    let task = ln.create_activity(&task).await?.activity;
    let mut past = new_activity("uid-past");
    past.activity.start = at("2026-10-01T09:00:00Z");
    past.activity.end = at("2026-10-01T10:00:00Z");
    let past = ln.create_activity(&past).await?.activity;
    // Beyond the window's end: in neither read.
    let mut far = new_activity("uid-far");
    far.activity.start = at("2028-01-10T09:00:00Z");
    far.activity.end = at("2028-01-10T10:00:00Z");
    ln.create_activity(&far).await?;

    sim.clear_requests();
    let full = ln.activities_in_window(window(), None).await?;
    assert_eq!(
        full.iter().map(|a| a.activity.clone()).collect::<Vec<_>>(),
        keys,
        "the window's appointments and calls, ordered by (lastModified, activity)"
    );
    let gets: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.is_set("Activities"))
        .collect();
    assert_eq!(gets.len(), 3, "5 rows in pages of 2");
    let first = gets[0].decoded_query();
    assert!(
        first.contains("(type eq 'Appointment' or type eq 'Call')"),
        "{first}"
    );
    assert!(first.contains("end ge 2026-11-01T00:00:00.000Z"), "{first}");
    assert!(
        first.contains("start lt 2027-12-31T00:00:00.000Z"),
        "{first}"
    );
    assert!(!first.contains("lastModified ge"), "{first}");

    sim.clear_requests();
    let feed = ln.activities_in_window(window(), Some(tie)).await?;
    let mut changed = keys.clone();
    changed.extend([task, past]);
    assert_eq!(
        feed.iter().map(|a| a.activity.clone()).collect::<Vec<_>>(),
        changed,
        "every change up to the window's end, rows at the watermark included"
    );
    assert!(feed.iter().all(|a| a.attendees.len() == 2));
    let gets: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.is_set("Activities"))
        .collect();
    assert_eq!(gets.len(), 4, "7 rows in pages of 2");
    let first = gets[0].decoded_query();
    assert!(
        first.contains("lastModified ge 2026-11-29T10:00:00.250Z"),
        "{first}"
    );
    assert!(first.contains("$expand=attendees"), "{first}");
    assert!(first.contains("$orderby=lastModified,activity"), "{first}");
    assert!(
        first.contains("start lt 2027-12-31T00:00:00.000Z"),
        "{first}"
    );
    assert!(
        !first.contains("end ge") && !first.contains("type eq"),
        "{first}"
    );
    assert!(
        gets[1..]
            .iter()
            .all(|r| r.decoded_query().contains("$skiptoken="))
    );

    // Just past the watermark: nothing, until an attendee changes.
    let later = at("2026-11-29T10:00:00.251Z");
    assert!(
        ln.activities_in_window(window(), Some(later))
            .await?
            .is_empty()
    );
    sim.clock().freeze_at(at("2026-11-29T10:10:00Z"));
    ln.update_attendee(
        &keys[3],
        2,
        None,
        &AttendeePatch {
            attendance_status: Some(AttendanceStatus::Accepted),
            ..AttendeePatch::default()
        },
    )
    .await?;
    let changed = ln.activities_in_window(window(), Some(later)).await?;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].activity, keys[3]);
    assert_eq!(changed[0].last_modified, at("2026-11-29T10:10:00Z"));
    assert_eq!(
        changed[0].attendees[1].attendance_status,
        AttendanceStatus::Accepted
    );
    Ok(())
}

#[tokio::test]
async fn waits_out_retry_after() -> TestResult {
    let (sim, ln) = setup(demo_seed(COMPANY, 1, 3), 200).await?;
    ln.settings().await?; // token fetched outside the measurement
    sim.add_fault(FaultRule::throttle(1).entity_set("Contacts").times(1));
    let started = Instant::now();
    let contacts = ln.contacts_changed_since(None).await?;
    assert_eq!(contacts.len(), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let calls = sim
        .requests()
        .into_iter()
        .filter(|r| r.is_set("Contacts"))
        .collect::<Vec<_>>();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].status, 429);
    assert!(calls[1].time - calls[0].time >= chrono::Duration::milliseconds(1000));

    // 503 without a usable retry count: default waits, then success.
    sim.add_fault(FaultRule::unavailable(0).entity_set("SyncUsers").times(2));
    assert_eq!(ln.sync_users().await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn persistent_throttling_surfaces_the_delay() -> TestResult {
    let sim = LnSim::start(SimConfig::default().with_seed(demo_seed(COMPANY, 1, 1))).await?;
    let mut cfg = config(&sim, 200)?;
    cfg.throttle.max_retries = 1;
    let ln = LnClient::new(cfg)?;
    sim.add_fault(FaultRule::throttle(1).entity_set("Employees"));
    let started = Instant::now();
    let error = ln.employees().await.err().ok_or("expected throttling")?;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(error.class(), ErrorClass::Throttled(Duration::from_secs(1)));
    assert_eq!(sim.count_calls("GET", "Employees"), 2);

    // A hint longer than max_wait is handed back at once for the queue to reschedule.
    sim.clear_faults();
    sim.add_fault(FaultRule::throttle(120).entity_set("Employees"));
    let started = Instant::now();
    let error = ln.employees().await.err().ok_or("expected throttling")?;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(error, LnError::Throttled { retry_after } if retry_after == Duration::from_secs(120))
    );
    Ok(())
}

#[tokio::test]
async fn server_errors_and_unreachable_hosts_are_transient() -> TestResult {
    let (sim, ln) = setup(demo_seed(COMPANY, 1, 1), 200).await?;
    sim.add_fault(FaultRule::server_error().entity_set("Settings").times(1));
    let error = ln.settings().await.err().ok_or("expected 500")?;
    assert!(
        matches!(error, LnError::Server { status: 500, .. }),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Transient);

    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    drop(listener);
    let mut ionapi = sim.ionapi();
    ionapi.iu = format!("http://127.0.0.1:{port}");
    ionapi.pu = format!("http://127.0.0.1:{port}/as/");
    let ln = LnClient::new(LnClientConfig::new(
        IonApi::from_json(&ionapi.to_json())?,
        COMPANY,
    ))?;
    let error = ln
        .settings()
        .await
        .err()
        .ok_or("expected a connection error")?;
    match &error {
        LnError::Unreachable { url, .. } => assert!(url.contains(&port.to_string()), "{url}"),
        other => return Err(format!("unexpected {other:?}").into()),
    }
    assert_eq!(error.class(), ErrorClass::Transient);
    assert!(
        std::error::Error::source(&error).is_some(),
        "the source is kept"
    );
    Ok(())
}

#[tokio::test]
async fn next_links_must_stay_on_the_service_origin() -> TestResult {
    let (sim, ln) = setup(demo_seed(COMPANY, 1, 1), 200).await?;
    let current = format!("{}Contacts", sim.service_root());
    assert!(ln.next_url(&current, "Contacts?$skiptoken=x").is_ok());
    assert!(ln.next_url(&current, "https://evil.example/steal").is_err());
    Ok(())
}

/// A seed in which every optional field is filled, to check the mapping field by field.
fn full_seed() -> Seed {
    let mut company = CompanySeed::new(COMPANY);
    company.settings = sim::Settings {
        exchange_backend: sim::ExchangeBackend::Graph,
        exchange_url: Some("https://graph.microsoft.com".into()),
        azure_tenant: Some("contoso.onmicrosoft.com".into()),
        client_id: Some("app-123".into()),
        contact_pull_interval: sim::Interval::new(2, sim::TimeUnit::Hours),
        calendar_pull_interval: sim::Interval::new(1, sim::TimeUnit::Weeks),
        push_enabled: true,
        synchronize_contacts: false,
        synchronize_activities: true,
    };
    company.sync_users = vec![
        sim::SyncUser {
            user: "aberg".into(),
            name: Some("Anna Berg".into()),
            active: true,
            email: Some("Anna.Berg@demo.example".into()),
        },
        sim::SyncUser {
            user: "old".into(),
            name: None,
            active: false,
            email: None,
        },
    ];
    company.employees = vec![
        sim::Employee {
            employee: "E1".into(),
            name: Some("Anna Berg".into()),
            user: Some("aberg".into()),
            email: Some("Anna.Berg@demo.example".into()),
        },
        sim::Employee {
            employee: "E2".into(),
            name: None,
            user: None,
            email: None,
        },
    ];
    company.contacts = vec![
        SeedContact {
            contact: sim::Contact {
                contact: "C1".into(),
                first_name: Some("Jan".into()),
                middle_name: Some("van".into()),
                last_name: Some("Dijk".into()),
                full_name: Some("Jan van Dijk".into()),
                title: Some("Dr.".into()),
                suffix: Some("Jr.".into()),
                initials: Some("J.v.D.".into()),
                job_title: Some("Buyer".into()),
                department: Some("Purchasing".into()),
                assistant: Some("Desk".into()),
                birthday: NaiveDate::from_ymd_opt(1980, 2, 29),
                business_partner: Some("BP1".into()),
                business_partner_name: Some("Van Dijk B.V.".into()),
                email: Some("jan@vandijk.example".into()),
                primary_phone: Some("+31 40 123".into()),
                mobile_phone: Some("+31 6 123".into()),
                fax: Some("+31 40 999".into()),
                address: sim::Address {
                    line1: Some("Stationsweg 1".into()),
                    line2: Some("Building A".into()),
                    line3: Some("3rd floor".into()),
                    city: Some("Eindhoven".into()),
                    zip: Some("5611 AB".into()),
                    state: Some("NB".into()),
                    country: Some("NL".into()),
                },
                language: Some("nl".into()),
                synchronize: true,
                active: true,
                opted_out: true,
            },
            last_modified: Some(at("2026-11-01T08:00:00.123Z")),
        },
        SeedContact {
            contact: sim::Contact {
                contact: "C2".into(),
                last_name: Some("Bare".into()),
                synchronize: false,
                active: false,
                ..sim::Contact::default()
            },
            last_modified: None,
        },
    ];
    company.activities = vec![SeedActivity {
        activity: sim::Activity {
            activity: "ACT000042".into(),
            activity_type: sim::ActivityType::Call,
            subject: Some("Call Jan".into()),
            location: Some("Phone".into()),
            information: Some("Line 1\nLine 2".into()),
            all_day: true,
            start: Some(at("2026-12-03T00:00:00Z")),
            end: Some(at("2026-12-04T00:00:00Z")),
            reminder_set: true,
            reminder_value: Some(2),
            reminder_unit: Some(sim::TimeUnit::Days),
            show_time_as: sim::ShowTimeAs::OutOfOffice,
            status: sim::ActivityStatus::Held,
            synchronize: true,
            contact: Some("C1".into()),
            business_partner: Some("BP1".into()),
            external_reference: Some("uid-42@exchange".into()),
            origin: sim::Origin::Exchange,
        },
        attendees: vec![
            sim::Attendee {
                attendance: sim::Attendance::MeetingOrganizer,
                attendee_type: sim::AttendeeType::Employee,
                attendee: Some("E1".into()),
                full_name: Some("Anna Berg".into()),
                email: Some("Anna.Berg@demo.example".into()),
                attendance_status: sim::AttendanceStatus::Accepted,
                invite: false,
                sent_to_synchronizer: true,
                synchronized: true,
                ..sim::Attendee::default()
            },
            sim::Attendee {
                attendance: sim::Attendance::Resource,
                attendee_type: sim::AttendeeType::Contact,
                attendee: Some("C1".into()),
                attendance_status: sim::AttendanceStatus::Tentative,
                invite: true,
                ..sim::Attendee::default()
            },
        ],
        last_modified: Some(at("2026-11-02T09:00:00Z")),
    }];
    Seed {
        companies: vec![company],
    }
}

#[tokio::test]
async fn maps_every_field() -> TestResult {
    let (sim, ln) = setup(full_seed(), 200).await?;

    let settings = ln.settings().await?;
    assert_eq!(settings.exchange_backend, ExchangeBackend::Graph);
    assert_eq!(
        settings.exchange_url.as_deref(),
        Some("https://graph.microsoft.com")
    );
    assert_eq!(
        settings.azure_tenant.as_deref(),
        Some("contoso.onmicrosoft.com")
    );
    assert_eq!(settings.client_id.as_deref(), Some("app-123"));
    assert_eq!(settings.contact_pull_interval.value, 2);
    assert_eq!(settings.contact_pull_interval.unit, IntervalUnit::Hours);
    assert_eq!(settings.calendar_pull_interval.unit, IntervalUnit::Weeks);
    assert!(
        settings.push_enabled && !settings.synchronize_contacts && settings.synchronize_activities
    );

    let users = ln.sync_users().await?;
    assert_eq!(users.len(), 2);
    assert_eq!(users[0].user.as_str(), "aberg");
    assert_eq!(users[0].name, "Anna Berg");
    assert!(users[0].active);
    assert_eq!(
        users[0].email.as_str(),
        "Anna.Berg@demo.example",
        "case is kept (R5)"
    );
    assert!(!users[1].active);
    assert_eq!(users[1].email.as_str(), "");

    let employees = ln.employees().await?;
    assert_eq!(employees[0].employee.as_str(), "E1");
    assert_eq!(
        employees[0].user.as_ref().map(|u| u.as_str()),
        Some("aberg")
    );
    assert_eq!(
        employees[0].email.as_deref(),
        Some("Anna.Berg@demo.example")
    );
    assert_eq!(employees[1].user, None);
    assert_eq!(employees[1].email, None);

    let contacts = ln.contacts_changed_since(None).await?;
    let c = contacts
        .iter()
        .find(|c| c.contact.as_str() == "C1")
        .ok_or("C1 missing")?;
    assert_eq!(c.first_name.as_deref(), Some("Jan"));
    assert_eq!(c.middle_name.as_deref(), Some("van"));
    assert_eq!(c.last_name.as_deref(), Some("Dijk"));
    assert_eq!(c.full_name.as_deref(), Some("Jan van Dijk"));
    assert_eq!(c.title.as_deref(), Some("Dr."));
    assert_eq!(c.suffix.as_deref(), Some("Jr."));
    assert_eq!(c.initials.as_deref(), Some("J.v.D."));
    assert_eq!(c.job_title.as_deref(), Some("Buyer"));
    assert_eq!(c.department.as_deref(), Some("Purchasing"));
    assert_eq!(c.assistant.as_deref(), Some("Desk"));
    assert_eq!(c.birthday, NaiveDate::from_ymd_opt(1980, 2, 29));
    assert_eq!(c.business_partner.as_deref(), Some("BP1"));
    assert_eq!(c.business_partner_name.as_deref(), Some("Van Dijk B.V."));
    assert_eq!(c.email.as_deref(), Some("jan@vandijk.example"));
    assert_eq!(c.primary_phone.as_deref(), Some("+31 40 123"));
    assert_eq!(c.mobile_phone.as_deref(), Some("+31 6 123"));
    assert_eq!(c.fax.as_deref(), Some("+31 40 999"));
    let address = c.address.as_ref().ok_or("address missing")?;
    assert_eq!(address.line1.as_deref(), Some("Stationsweg 1"));
    assert_eq!(address.line2.as_deref(), Some("Building A"));
    assert_eq!(address.line3.as_deref(), Some("3rd floor"));
    assert_eq!(address.city.as_deref(), Some("Eindhoven"));
    assert_eq!(address.zip.as_deref(), Some("5611 AB"));
    assert_eq!(address.state.as_deref(), Some("NB"));
    assert_eq!(address.country.as_deref(), Some("NL"));
    assert_eq!(c.language.as_deref(), Some("nl"));
    assert!(c.synchronize && c.active && c.opted_out);
    assert_eq!(c.last_modified, at("2026-11-01T08:00:00.123Z"));
    assert!(c.version.as_str().starts_with("W/\""));
    let bare = contacts
        .iter()
        .find(|c| c.contact.as_str() == "C2")
        .ok_or("C2 missing")?;
    assert_eq!(bare.address, None, "an empty address object is no address");
    assert_eq!(bare.first_name, None);
    assert!(!bare.synchronize && !bare.active && !bare.opted_out);

    let activities = ln.activities_in_window(window(), None).await?;
    assert_eq!(activities.len(), 1);
    let a = &activities[0];
    assert_eq!(a.activity.as_str(), "ACT000042");
    assert_eq!(a.activity_type, ActivityType::Call);
    assert_eq!(a.subject.as_deref(), Some("Call Jan"));
    assert_eq!(a.location.as_deref(), Some("Phone"));
    assert_eq!(a.information.as_deref(), Some("Line 1\nLine 2"));
    assert!(a.all_day);
    assert_eq!(a.start, at("2026-12-03T00:00:00Z"));
    assert_eq!(a.end, at("2026-12-04T00:00:00Z"));
    assert!(a.reminder_set);
    assert_eq!(a.reminder_value, Some(2));
    assert_eq!(a.reminder_unit, Some(IntervalUnit::Days));
    assert_eq!(a.show_time_as, ShowTimeAs::OutOfOffice);
    assert_eq!(a.status, ActivityStatus::Held);
    assert!(a.synchronize);
    assert_eq!(a.contact.as_ref().map(|c| c.as_str()), Some("C1"));
    assert_eq!(a.business_partner.as_deref(), Some("BP1"));
    assert_eq!(a.external_reference.as_deref(), Some("uid-42@exchange"));
    assert_eq!(a.origin, Origin::Exchange);
    assert_eq!(a.last_modified, at("2026-11-02T09:00:00Z"));
    assert_eq!(a.attendees.len(), 2);
    let organizer = &a.attendees[0];
    assert_eq!(organizer.activity.as_str(), "ACT000042");
    assert_eq!(organizer.line, 1);
    assert_eq!(organizer.attendance, Attendance::MeetingOrganizer);
    assert_eq!(organizer.attendee_type, AttendeeType::Employee);
    assert_eq!(organizer.attendee.as_deref(), Some("E1"));
    assert_eq!(organizer.full_name.as_deref(), Some("Anna Berg"));
    assert_eq!(organizer.email.as_deref(), Some("Anna.Berg@demo.example"));
    assert_eq!(organizer.attendance_status, AttendanceStatus::Accepted);
    assert!(!organizer.invite && organizer.sent_to_synchronizer && organizer.synchronized);
    assert!(organizer.version.is_some());
    let resource = &a.attendees[1];
    assert_eq!(resource.line, 2);
    assert_eq!(resource.attendance, Attendance::Resource);
    assert_eq!(resource.attendee_type, AttendeeType::Contact);
    assert_eq!(resource.attendance_status, AttendanceStatus::Tentative);
    assert!(resource.invite);

    // Keyed read equals the window read; the changed-since filter applies.
    assert_eq!(ln.activity(&a.activity).await?.as_ref(), Some(a));
    assert!(ln.activity(&ActivityKey::new("NOPE")).await?.is_none());
    assert!(
        ln.activities_in_window(window(), Some(at("2026-11-03T00:00:00Z")))
            .await?
            .is_empty()
    );
    let outside = Window {
        start: at("2027-01-01T00:00:00Z"),
        end: at("2027-02-01T00:00:00Z"),
    };
    assert!(ln.activities_in_window(outside, None).await?.is_empty());

    // Create maps back: what LN stored equals what we sent.
    let new = new_activity_for("uid-roundtrip", "E1", "C1");
    let created = ln.create_activity(&new).await?;
    let sent = &new.activity;
    assert_eq!(created.activity_type, sent.activity_type);
    assert_eq!(created.subject, sent.subject);
    assert_eq!(created.information, sent.information);
    assert_eq!((created.start, created.end), (sent.start, sent.end));
    assert_eq!(created.reminder_value, sent.reminder_value);
    assert_eq!(created.reminder_unit, sent.reminder_unit);
    assert_eq!(created.show_time_as, sent.show_time_as);
    assert_eq!(created.contact, sent.contact);
    assert_eq!(created.external_reference, sent.external_reference);
    assert_eq!(created.origin, Origin::Exchange);
    assert_eq!(created.attendees.len(), 2);
    assert_eq!(created.attendees[1].email, sent.attendees[1].email);
    assert_eq!(
        created.attendees[1].attendance_status,
        AttendanceStatus::None
    );
    assert_eq!(
        created.attendees[0].attendance_status,
        AttendanceStatus::Accepted
    );

    // Deletions of contacts come back with their time.
    sim.clock().freeze_at(
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0)
            .single()
            .unwrap_or_default(),
    );
    sim.store()
        .delete_contact(COMPANY, "C2", &ln_sim::IfMatch::Any)?;
    let deleted = ln
        .deleted_since(DeletedEntity::Contact, Some(at("2026-11-29T12:00:00Z")))
        .await?;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].entity, DeletedEntity::Contact);
    assert_eq!(deleted[0].key, "C2");
    assert_eq!(deleted[0].deleted_at, at("2026-11-29T12:00:00Z"));
    assert!(
        ln.deleted_since(DeletedEntity::Attendee, None)
            .await?
            .is_empty()
    );
    Ok(())
}

/// R20: the "Call" category edited in Exchange reaches LN as `type` in the activity PATCH,
/// both ways, and the rest of the activity stays as it was.
#[tokio::test]
async fn patch_switches_the_activity_type_between_appointment_and_call() -> TestResult {
    let (sim, ln) = setup(demo_seed(COMPANY, 2, 2), 200).await?;
    let created = ln.create_activity(&new_activity("uid-call")).await?;
    let key = created.activity.clone();
    assert_eq!(created.activity_type, ActivityType::Appointment);

    let to_call = ActivityPatch {
        activity_type: Some(ActivityType::Call),
        ..ActivityPatch::default()
    };
    let call = ln.update_activity(&key, &created.version, &to_call).await?;
    assert_eq!(call.activity_type, ActivityType::Call);
    assert_eq!(call.subject, created.subject);
    assert_eq!((call.start, call.end), (created.start, created.end));
    assert_eq!(call.attendees.len(), 2);
    let stored = sim
        .store()
        .activity(COMPANY, key.as_str())?
        .ok_or("activity vanished")?;
    assert_eq!(stored.record.data.activity_type, sim::ActivityType::Call);
    let read = ln.activity(&key).await?.ok_or("activity vanished")?;
    assert_eq!(read.activity_type, ActivityType::Call);
    assert_eq!(read.version, call.version);

    let to_appointment = ActivityPatch {
        activity_type: Some(ActivityType::Appointment),
        ..ActivityPatch::default()
    };
    let back = ln
        .update_activity(&key, &call.version, &to_appointment)
        .await?;
    assert_eq!(back.activity_type, ActivityType::Appointment);
    assert_ne!(back.version, call.version);
    assert_eq!(
        sim.count(|r| r.method == "PATCH" && r.status >= 400),
        0,
        "the simulator accepts `type` in PATCH"
    );
    Ok(())
}

//! The `lnsync` binary as an administrator uses it: exit codes, what it prints, and that a
//! broken configuration is explained without echoing secrets; `run` for both kinds, `run
//! --schedule` until SIGTERM, and the demo. LN and Exchange are the simulators, set up by the
//! end-to-end harness of `tests/suite`.

use chrono::{Duration, Utc};
use ln_sim::NewActivity;
use ln_sim::model::{Activity, Attendance, Attendee, AttendeeType, Employee, Origin};
use lnsync_tests::harness::{Backend, BoxError, TestResult, World, qualifying_contacts};
use std::path::Path;
use std::process::{Output, Stdio};
use tokio::io::{AsyncBufReadExt, BufReader};

async fn lnsync(args: &[&str]) -> Result<Output, std::io::Error> {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_lnsync"))
        .args(args)
        .env_remove("LNSYNC_CONFIG")
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

/// The columns of a user's row of one kind (`contacts`, `calendar`) in `lnsync run`'s table:
/// user, mailbox, kind, result, created, updated, deleted, skipped, errors, held.
fn row<'a>(stdout: &'a str, user: &str, kind: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&user) && cols.get(2) == Some(&kind))
        .unwrap_or_else(|| panic!("no {kind} row for {user} in:\n{stdout}"))
}

/// Makes every sync user of `prod` an LN employee with the same e-mail (R5), so calendars can
/// tell who organizes and who is invited.
fn employees(world: &World) -> TestResult {
    let spec = world.env("prod").clone();
    for u in spec.users.iter().chain([&spec.inactive]) {
        world.ln.store().upsert_employee(
            &spec.company,
            Employee {
                employee: format!("E-{}", u.user),
                name: Some(u.user.clone()),
                user: Some(u.user.clone()),
                email: Some(u.email.clone()),
            },
        )?;
    }
    Ok(())
}

/// An LN appointment tomorrow + `days`, organized by sync user `organizer` of `prod`, inviting
/// `invitee`; returns its key.
fn ln_meeting(
    world: &World,
    subject: &str,
    days: i64,
    organizer: usize,
    invitee: usize,
) -> Result<String, BoxError> {
    let line = |u: usize, attendance: Attendance| Attendee {
        attendance,
        attendee_type: AttendeeType::Employee,
        attendee: Some(format!("E-{}", world.user(0, u))),
        full_name: Some(world.user(0, u).to_owned()),
        email: Some(world.mailbox(0, u).to_owned()),
        invite: attendance != Attendance::MeetingOrganizer,
        ..Attendee::default()
    };
    let start = (Utc::now() + Duration::days(1 + days))
        .date_naive()
        .and_hms_opt(10, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let created = world.ln.store().create_activity(
        "100",
        NewActivity {
            activity: Activity {
                subject: Some(subject.to_owned()),
                start: Some(start),
                end: Some(start + Duration::hours(1)),
                synchronize: true,
                ..Activity::default()
            },
            attendees: vec![
                line(organizer, Attendance::MeetingOrganizer),
                line(invitee, Attendance::Required),
            ],
        },
    )?;
    Ok(created.record.data.activity)
}

/// Events of a mailbox's calendar over the next 60 days, as (subject, is organizer).
fn calendar(world: &World, mailbox: &str) -> Vec<(String, bool)> {
    let now = Utc::now();
    world
        .ews
        .calendar_view(mailbox, now - Duration::days(1), now + Duration::days(60))
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.subject.unwrap_or_default(), e.is_organizer))
        .collect()
}

const GOOD: &str = r#"
[store]
path = "state/lnsync.sqlite"

[[environment]]
id = "prod"
company = "100"
[environment.ln]
ionapi_file = "prod.ionapi"
[environment.exchange]
url = "http://127.0.0.1:9/EWS/Exchange.asmx"
username = "svc"
password_file = "ews.password"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_configuration_exits_2_naming_the_field_and_never_echoing_the_secret()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let cases = [
        // (what is wrong, replace, with, the stderr must name)
        (
            "unknown key",
            "username = \"svc\"",
            "username = \"svc\"\nmax_backof_seconds = 5",
            "max_backof_seconds",
        ),
        (
            "inline password",
            "password_file = \"ews.password\"",
            "password = \"hunter2-Pa55word!\"",
            "exchange.password",
        ),
        (
            "bad URL scheme",
            "http://127.0.0.1:9",
            "ftp://127.0.0.1:9",
            "exchange.url",
        ),
    ];
    for (what, from, to, named) in cases {
        assert!(GOOD.contains(from));
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, GOOD.replace(from, to))?;
        let out = lnsync(&["run", "--config", path(&file)]).await?;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what}: stdout {stdout}\nstderr {stderr}"
        );
        assert!(
            stderr.contains(named),
            "{what}: stderr names {named}: {stderr}"
        );
        assert!(
            !stderr.contains("hunter2") && !stdout.contains("hunter2"),
            "{what}: the secret is echoed: {stderr}"
        );
        assert!(
            !dir.path().join("state").exists(),
            "{what}: nothing ran, no store was created"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_prints_a_per_user_summary_and_status_shows_the_last_runs() -> TestResult {
    let world = World::builder()
        .env("prod", "100", 2, qualifying_contacts(15))
        .stopped()
        .start()
        .await?;
    let config = path(&world.config_path).to_owned();

    // Stopped (R1): nothing is scheduled, and the output says how to start it.
    let out = lnsync(&["run", "--config", &config]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("stopped"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(world.ews.requests().len(), 0);

    let out = lnsync(&["env", "start", "prod", "--config", &config]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = lnsync(&["run", "--config", &config]).await?;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout {stdout}\nstderr {}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("created"),
        "a table with a created column: {stdout}"
    );
    for u in 0..2 {
        let cols = row(&stdout, world.user(0, u), "contacts");
        assert_eq!(cols[1], world.mailbox(0, u), "{stdout}");
        assert_eq!((cols[3], cols[4]), ("ok", "15"), "{stdout}");
        // Calendars ran too: nothing to synchronize in an empty calendar, and it says so.
        let cols = row(&stdout, world.user(0, u), "calendar");
        assert_eq!((cols[3], cols[4]), ("ok", "0"), "{stdout}");
        assert_eq!(
            world.crm_items(world.mailbox(0, u)).len(),
            15,
            "the run really synced"
        );
    }
    assert!(
        !stdout.contains("former"),
        "the inactive user is not listed: {stdout}"
    );
    world.validate_ews_requests()?;

    let out = lnsync(&["status", "--config", &config]).await?;
    let status = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(status.contains("started"), "{status}");
    for u in 0..2 {
        let user = format!("user {} <{}>", world.user(0, u), world.mailbox(0, u));
        let at = status
            .find(&user)
            .unwrap_or_else(|| panic!("{user} in {status}"));
        let last = status[at..].lines().nth(1).unwrap_or_default();
        assert!(
            last.contains("last contact run")
                && last.contains("Succeeded")
                && last.contains("created 15"),
            "{status}"
        );
    }

    // The second run is idle: contacts cost Exchange nothing, calendars one SyncFolderItems
    // per user, and nothing is written.
    world.clear_logs();
    let out = lnsync(&["run", "--config", &config]).await?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for kind in ["contacts", "calendar"] {
        assert_eq!(&row(&stdout, "alice", kind)[3..5], ["ok", "0"], "{stdout}");
    }
    let operations: Vec<String> = world
        .ews
        .requests()
        .iter()
        .map(|r| r.operation.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        operations,
        ["SyncFolderItems", "SyncFolderItems"],
        "{stdout}"
    );
    assert_eq!(world.ln_writes(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_a_failing_user_exits_1_and_says_why() -> TestResult {
    let world = World::builder()
        .env("prod", "100", 2, qualifying_contacts(15))
        .ews_config(ews_sim::SimConfig {
            allowed_impersonation: Some(vec!["alice@corp.example".into()]),
            ..Default::default()
        })
        .start()
        .await?;
    let config = path(&world.config_path).to_owned();

    let out = lnsync(&["run", "--config", &config]).await?;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout {stdout}\nstderr {}",
        text(&out.stderr)
    );
    assert_eq!(
        &row(&stdout, "alice", "contacts")[3..5],
        ["ok", "15"],
        "{stdout}"
    );
    assert_eq!(row(&stdout, "alice", "calendar")[3], "ok", "{stdout}");
    assert_eq!(row(&stdout, "bob", "contacts")[3], "FAILED", "{stdout}");
    assert_eq!(row(&stdout, "bob", "calendar")[3], "FAILED", "{stdout}");
    assert!(
        stdout.contains("ErrorImpersonateUserDenied"),
        "the reason is shown: {stdout}"
    );
    assert!(
        !stdout.contains(lnsync_tests::harness::EWS_PASSWORD),
        "{stdout}"
    );
    assert!(!text(&out.stderr).contains(lnsync_tests::harness::EWS_PASSWORD));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_synchronizes_calendars_too_and_honours_each_switch_in_ln() -> TestResult {
    let world = World::builder()
        .env("prod", "100", 2, qualifying_contacts(5))
        .start()
        .await?;
    employees(&world)?;
    let config = path(&world.config_path).to_owned();
    let (alice, bob) = (
        world.mailbox(0, 0).to_owned(),
        world.mailbox(0, 1).to_owned(),
    );
    let key = ln_meeting(&world, "Kick-off", 1, 0, 1)?;
    let tomorrow = (Utc::now() + Duration::days(2)).date_naive();
    world.ews.user_create_event(
        &bob,
        ews_sim::NewEvent::new(
            "Site visit",
            tomorrow.and_hms_opt(14, 0, 0).unwrap_or_default(),
            tomorrow.and_hms_opt(15, 0, 0).unwrap_or_default(),
        ),
    )?;

    let out = lnsync(&["run", "--config", &config]).await?;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    // LN → Exchange: one meeting in the organizer's mailbox, the invitation in bob's (R18).
    assert_eq!(
        &row(&stdout, "alice", "calendar")[3..5],
        ["ok", "1"],
        "{stdout}"
    );
    assert!(calendar(&world, &alice).contains(&("Kick-off".into(), true)));
    assert!(calendar(&world, &bob).contains(&("Kick-off".into(), false)));
    let invitee = world
        .ln
        .store()
        .activity("100", &key)?
        .ok_or("the activity")?
        .attendees
        .values()
        .find(|l| l.data.email.as_deref() == Some(bob.as_str()))
        .map(|l| l.data.clone())
        .ok_or("bob's line")?;
    assert!(invitee.sent_to_synchronizer, "R19 flag");
    // Exchange → LN: bob's appointment is an LN appointment (R22).
    assert_eq!(
        &row(&stdout, "bob", "calendar")[3..5],
        ["ok", "1"],
        "{stdout}"
    );
    let from_outlook = world.ln.store().read("100", |d| {
        d.activities
            .values()
            .filter(|a| a.record.data.origin == Origin::Exchange)
            .filter_map(|a| a.record.data.subject.clone())
            .collect::<Vec<_>>()
    })?;
    assert_eq!(from_outlook, ["Site visit"]);
    assert_eq!(
        &row(&stdout, "alice", "contacts")[3..5],
        ["ok", "5"],
        "{stdout}"
    );
    world.validate_ews_requests()?;

    // Synchronize Activities off (R2): contacts still run, calendars say why they don't.
    let settings = |contacts: bool, activities: bool| ln_sim::model::Settings {
        synchronize_contacts: contacts,
        synchronize_activities: activities,
        ..ln_sim::model::Settings::default()
    };
    world
        .ln
        .store()
        .set_settings("100", settings(true, false))?;
    world.clear_logs();
    let out = lnsync(&["run", "--config", &config]).await?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("calendar: Synchronize Activities is off in LN"),
        "{stdout}"
    );
    assert_eq!(row(&stdout, "alice", "contacts")[3], "ok", "{stdout}");
    assert!(
        !stdout.contains(" calendar  "),
        "no calendar rows: {stdout}"
    );
    assert_eq!(world.ews.requests().len(), 0, "no calendar read");

    // And the other way round.
    world
        .ln
        .store()
        .set_settings("100", settings(false, true))?;
    let out = lnsync(&["run", "--config", &config]).await?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("contacts: Synchronize Contacts is off in LN"),
        "{stdout}"
    );
    assert_eq!(
        &row(&stdout, "alice", "calendar")[3..5],
        ["ok", "0"],
        "{stdout}"
    );
    assert!(!stdout.contains(" contacts  "), "no contact rows: {stdout}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_schedule_pulls_both_kinds_and_stops_gracefully_on_sigterm() -> TestResult {
    let world = World::builder()
        .env("prod", "100", 2, qualifying_contacts(5))
        .start()
        .await?;
    employees(&world)?;
    let config = path(&world.config_path).to_owned();
    ln_meeting(&world, "Planning", 2, 1, 0)?;

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_lnsync"))
        .args([
            "run",
            "--schedule",
            "--tick-seconds",
            "1",
            "--config",
            &config,
        ])
        .env_remove("LNSYNC_CONFIG")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("the child's pid")?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("stdout")?).lines();
    let mut seen = Vec::new();
    // New users are due at once (R6): both kinds of both users run in the first tick.
    let wanted = [
        "prod/alice contacts: ok (created 5",
        "prod/bob contacts: ok (created 5",
        "prod/alice calendar: ok",
        "prod/bob calendar: ok (created 1",
    ];
    let collect = async {
        while let Some(line) = lines.next_line().await? {
            seen.push(line);
            if wanted.iter().all(|w| seen.iter().any(|l| l.contains(w))) {
                return Ok::<_, std::io::Error>(true);
            }
        }
        Ok(false)
    };
    let all = tokio::time::timeout(std::time::Duration::from_secs(60), collect).await;
    assert!(matches!(all, Ok(Ok(true))), "{seen:#?}");
    assert!(calendar(&world, world.mailbox(0, 1)).contains(&("Planning".into(), true)));
    assert_eq!(world.crm_items(world.mailbox(0, 0)).len(), 5);

    // SIGTERM (what systemd and docker send): the process finishes and says what it did.
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    assert!(killed.success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait()).await??;
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await? {
        rest.push(line);
    }
    assert_eq!(status.code(), Some(0), "{rest:#?}");
    let last = rest.last().cloned().unwrap_or_default();
    assert!(
        last.contains("stopped after")
            && last.contains("2 contact runs")
            && last.contains("2 calendar runs"),
        "{seen:#?}\n{rest:#?}"
    );

    // The next runs are on the LN intervals' boundaries (R6), shown by `status`.
    let out = lnsync(&["status", "--config", &config]).await?;
    let status = text(&out.stdout);
    assert!(
        status.contains("next contact run") && status.contains("next calendar run"),
        "{status}"
    );
    Ok(())
}

lnsync_tests::both_backends!(
    demo_syncs_contacts_and_meetings_both_ways_and_its_last_run_writes_nothing,
    multi_thread
);

/// `lnsync demo --exchange ews|graph`: the same demo, and the same outcome, on either backend;
/// every Exchange request went to the backend's protocol.
async fn demo_syncs_contacts_and_meetings_both_ways_and_its_last_run_writes_nothing(
    backend: Backend,
) -> TestResult {
    let dir = tempfile::tempdir()?;
    let exchange = match backend {
        Backend::Ews => "ews",
        Backend::Graph => "graph",
    };
    let out = lnsync(&[
        "demo",
        "--dir",
        path(dir.path()),
        "--contacts",
        "40",
        "--exchange",
        exchange,
    ])
    .await?;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("  Exchange backend  {backend}\n")),
        "{stdout}"
    );
    let run = |n: usize| -> &str {
        let start = stdout
            .find(&format!("== run {n} "))
            .unwrap_or_else(|| panic!("run {n} in {stdout}"));
        let rest = &stdout[start..];
        let end = rest[3..].find("== run ").map_or(rest.len(), |i| i + 3);
        &rest[..end]
    };
    let (first, second, third) = (run(1), run(2), run(3));

    // Run 1: contacts and calendars of every user, both ways.
    assert!(
        first.contains(" contacts  ok") && first.contains(" calendar  ok"),
        "{first}"
    );
    assert!(
        first.contains("ACT000001 appointment \"Quarterly business review\", organizer Anna Berg"),
        "{first}"
    );
    assert!(
        first.contains("→ meeting in anna.berg@demo.example, 2 invited"),
        "{first}"
    );
    assert_eq!(first.matches(": invitation in ").count(), 2, "{first}");
    assert!(first.contains("→ meeting (category Call) in "), "{first}");
    assert!(
        first.contains("\"Customer visit: Northwind Traders\" (appointment) in ")
            && first.contains("→ LN appointment ACT0000"),
        "{first}"
    );
    assert!(
        first.contains(
            "\"Weekly pipeline review\" (weekly series, 6 × 09:30 W. Europe Standard Time)"
        ) && first.contains("→ 6 LN appointments"),
        "{first}"
    );
    assert!(
        !first.contains("not in LN") && !first.contains("not in Exchange"),
        "{first}"
    );

    // Run 2: the Outlook accept reached LN; every invited line is flagged (R19, R21).
    assert!(
        stdout.contains(
            "-- Lars de Vries accepts \"Quarterly business review\" in Outlook\n== run 2 "
        ),
        "{stdout}"
    );
    assert!(
        second.contains("attendance Accepted     sent to synchronizer yes, synchronized yes"),
        "{second}"
    );
    assert!(!second.contains("synchronized no"), "{second}");
    assert!(second.contains("(0 writes)"), "no Exchange write: {second}");

    // Run 3: nothing changed, nothing written on either side; one incremental read per user's
    // calendar (contacts cost Exchange nothing), none of it on the other protocol.
    assert!(
        third.contains(&format!(
            ", 0 writes; {backend} 5 requests (0 writes), {} 0 requests",
            backend.other()
        )),
        "{third}"
    );
    for run in [first, second] {
        assert!(
            run.contains(&format!(" writes), {} 0 requests", backend.other())),
            "{run}"
        );
    }
    assert!(
        third.contains("written: contacts 0 items, calendar 0 items"),
        "{third}"
    );
    assert!(!stdout.contains("FAILED"), "{stdout}");
    Ok(())
}

//! Calendar end-to-end world: the harness's [`World`] (LN simulator, Exchange simulator, SQLite
//! store, live LN client) plus what calendar runs need on top of it: LN employees for every sync
//! user, one simulated time shared by lnsync's clock and both simulators' clocks, and
//! [`CalendarSync`] driven directly with the real adapters (the runner does not run calendars).
//! The world's [`Backend`] picks the Exchange client (`EwsMailbox` or `GraphMailbox`).
//!
//! ```no_run
//! # use lnsync_tests::calendar_world::CalendarWorld;
//! # use lnsync_tests::harness::BoxError;
//! # async fn example() -> Result<(), BoxError> {
//! let w = CalendarWorld::start(2).await?;
//! let key = w.ln_meeting("Review", w.at(1, 10), "alice", &["bob"])?;
//! w.run().await?.assert_ok();               // every Exchange request of the run is checked
//! assert_eq!(w.organized("alice").len(), 1);
//! # let _ = key;
//! # Ok(())
//! # }
//! ```
//!
//! Like [`World::run`], [`CalendarWorld::run`] clears both simulators' request logs first, so
//! after it the logs hold exactly that run's requests.

use crate::harness::{Backend, BoxError, Op, World};
use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use ews_sim::{EventInstance, ItemId, StoredItem};
use ln_sim::model::{
    Activity as LnActivity, Attendance, Attendee as LnAttendee, AttendeeType, Employee,
};
use ln_sim::store::ActivityRecord;
use ln_sim::{IfMatch, NewActivity, RequestKind};
use lnsync_core::ids::{EnvironmentId, UserId};
use lnsync_core::model::{ItemProblem, Link, LinkKind, ProblemKind, RunOutcome, SyncUser};
use lnsync_core::plan::calendar::window_at;
use lnsync_core::ports::{Clock, LnGateway, Mailbox, StateStore, Window};
use lnsync_core::service::{CalendarSync, SyncOptions, UserRun};
use lnsync_runtime::runner::Connector;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Where simulated time starts: Monday 1 March 2027, 07:00 UTC (four weeks before Central
/// Europe switches to summer time on 28 March).
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 7, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The employee code of a sync user (`E-alice`).
pub fn employee_code(user: &str) -> String {
    format!("E-{user}")
}

/// Makes every sync user of environment `env` (the inactive one too) an LN employee with the
/// identical e-mail (R5), as calendar runs need to match attendees to sync users.
pub fn add_employees(world: &World, env: &str) -> Result<(), BoxError> {
    let spec = world.env(env);
    for u in spec.users.iter().chain([&spec.inactive]) {
        world.ln.store().upsert_employee(
            &spec.company,
            Employee {
                employee: employee_code(&u.user),
                name: Some(format!("{} (employee)", u.user)),
                user: Some(u.user.clone()),
                email: Some(u.email.clone()),
            },
        )?;
    }
    Ok(())
}

/// lnsync's clock in the tests: the system clock plus an offset that
/// [`CalendarWorld::advance`] moves together with both simulators' clocks.
#[derive(Debug, Default)]
pub struct SimTime {
    offset: Mutex<Duration>,
}

impl SimTime {
    fn shift(&self, by: Duration) {
        *self.offset.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }
}

impl Clock for SimTime {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.offset.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The result of one calendar run, per user.
#[derive(Debug)]
pub struct CalendarRun {
    pub runs: Vec<UserRun>,
}

impl CalendarRun {
    pub fn user(&self, user: &str) -> &UserRun {
        self.runs
            .iter()
            .find(|r| r.user.as_str() == user)
            .unwrap_or_else(|| panic!("no run for {user}: {:#?}", self.runs))
    }

    /// Panics (showing every user's result) unless every user's run succeeded.
    pub fn assert_ok(&self) -> &Self {
        for r in &self.runs {
            assert!(
                r.outcome == RunOutcome::Succeeded && r.error.is_none(),
                "calendar run of {} did not succeed: {:?} {:?}\nall runs: {:#?}",
                r.user,
                r.outcome,
                r.error.as_ref().map(ToString::to_string),
                self.runs
            );
        }
        self
    }

    /// Writes lnsync counted over all users (created + updated + deleted, both sides).
    pub fn writes(&self) -> u32 {
        self.runs.iter().map(|r| r.counts.writes()).sum()
    }
}

/// Describes a calendar world before it starts.
pub struct CalendarWorldBuilder {
    users: usize,
    find_page_size: Option<u32>,
    options: SyncOptions,
    backend: Backend,
}

impl CalendarWorldBuilder {
    /// Listing page size of the Exchange client: EWS `FindItem` (default: the runtime's,
    /// 500), Graph `odata.maxpagesize`.
    pub fn find_page_size(mut self, n: u32) -> Self {
        self.find_page_size = Some(n);
        self
    }

    /// The Exchange backend (default EWS).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Adjusts the sync options (calendar horizon, conflict policy, deletion gate…).
    pub fn options(mut self, f: impl FnOnce(&mut SyncOptions)) -> Self {
        f(&mut self.options);
        self
    }

    pub async fn start(self) -> Result<CalendarWorld, BoxError> {
        let world = World::single_on(self.backend, self.users, Vec::new()).await?;
        CalendarWorld::over(world, self.find_page_size, self.options)
    }
}

/// The world of a calendar test: one environment `prod` over LN company `100`.
pub struct CalendarWorld {
    pub world: World,
    pub clock: SimTime,
    pub options: SyncOptions,
    pub env: EnvironmentId,
    pub company: String,
    pub ln_client: Arc<dyn LnGateway>,
    pub mailbox: Arc<dyn Mailbox>,
}

impl CalendarWorld {
    /// A builder for `users` active sync users (`alice`, `bob`, …) plus the inactive `former`.
    pub fn builder(users: usize) -> CalendarWorldBuilder {
        CalendarWorldBuilder {
            users,
            find_page_size: None,
            options: SyncOptions::default(),
            backend: Backend::Ews,
        }
    }

    pub async fn start(users: usize) -> Result<CalendarWorld, BoxError> {
        Self::builder(users).start().await
    }

    /// `users` users on `backend`, default options.
    pub async fn start_on(backend: Backend, users: usize) -> Result<CalendarWorld, BoxError> {
        Self::builder(users).backend(backend).start().await
    }

    /// The calendar world over an existing world (contacts too, several environments, both
    /// backends configured…): calendar runs are for its environment `prod`, whose sync users
    /// become LN employees, and the simulators' clocks move to [`t0`] with lnsync's.
    pub fn over(
        world: World,
        find_page_size: Option<u32>,
        options: SyncOptions,
    ) -> Result<CalendarWorld, BoxError> {
        let env_config = world
            .config
            .environments
            .iter()
            .find(|e| e.id.as_str() == "prod")
            .ok_or("the world has no environment prod")?
            .clone();
        let spec = world.env("prod").clone();
        add_employees(&world, "prod")?;
        // One simulated time for lnsync, LN (`lastModified`) and Exchange (`LastModifiedTime`).
        let clock = SimTime::default();
        clock.shift(t0() - Utc::now());
        world.ln.clock().set(t0());
        world.ews.set_clock(t0());

        // The LN client exactly as the runtime builds it; the Exchange client like
        // `LiveConnector`, with the page size a test may want smaller.
        let ln = world.connector.ln(&env_config)?;
        let mailbox = world.exchange_client(world.backend(), find_page_size)?;
        let mut sync = world.config.sync.clone();
        sync.calendar = options.calendar;
        sync.deletion_gate = options.deletion_gate;
        sync.user_concurrency = options.user_concurrency;
        Ok(CalendarWorld {
            env: env_config.id.clone(),
            company: spec.company.clone(),
            world,
            clock,
            options: sync,
            ln_client: ln,
            mailbox,
        })
    }

    pub fn backend(&self) -> Backend {
        self.world.backend()
    }

    /// The administrator switches the environment's backend ([`World::switch_backend`]); the
    /// calendar runs use a client of the new backend from then on.
    pub fn switch_backend(&mut self, backend: Backend) -> Result<(), BoxError> {
        self.world.switch_backend(backend)?;
        self.mailbox = self.world.exchange_client(backend, None)?;
        Ok(())
    }

    // ---- time

    /// Now, in simulated time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Day `d` after the start day (1 March 2027) at `h` o'clock UTC.
    pub fn at(&self, d: i64, h: i64) -> DateTime<Utc> {
        t0() - Duration::hours(7) + Duration::days(d) + Duration::hours(h)
    }

    /// Moves lnsync's clock and both simulators' clocks forward together.
    pub fn advance(&self, by: Duration) {
        self.clock.shift(by);
        self.world.ln.clock().advance(by);
        self.world.ews.advance_clock(by);
    }

    /// The window a run starting now uses.
    pub fn window(&self) -> Window {
        window_at(self.now(), self.options.calendar.horizon_days)
    }

    // ---- runs

    /// A calendar run of every user LN lists (the runtime's user list), over the live clients
    /// and the SQLite store. Clears both request logs first and checks every Exchange request
    /// of the run afterwards ([`World::check_exchange_requests`]).
    pub async fn run(&self) -> Result<CalendarRun, BoxError> {
        let users = self.ln_client.sync_users().await?;
        self.run_users(&users).await
    }

    /// A calendar run of the given users only.
    pub async fn run_users(&self, users: &[SyncUser]) -> Result<CalendarRun, BoxError> {
        self.world.clear_logs();
        let sync = CalendarSync {
            env: &self.env,
            store: self.world.store.as_ref(),
            clock: &self.clock,
            options: &self.options,
        };
        let mut runs = sync
            .run(self.ln_client.as_ref(), self.mailbox.as_ref(), users, "e2e")
            .await?;
        runs.sort_by(|a, b| a.user.cmp(&b.user));
        self.world.check_exchange_requests()?;
        Ok(CalendarRun { runs })
    }

    /// Runs until a run writes nothing (at most `max` runs) and returns how many it took.
    pub async fn settle(&self, max: usize) -> Result<usize, BoxError> {
        for n in 1..=max {
            let run = self.run().await?;
            run.assert_ok();
            if run.writes() == 0 && self.ln_writes() == 0 && self.world.ews.write_calls() == 0 {
                return Ok(n);
            }
        }
        Err(format!("still writing after {max} runs").into())
    }

    // ---- people

    pub fn email(&self, user: &str) -> String {
        let spec = self.world.env("prod");
        spec.users
            .iter()
            .chain([&spec.inactive])
            .find(|u| u.user == user)
            .map(|u| u.email.clone())
            .unwrap_or_else(|| panic!("no user {user}"))
    }

    // ---- LN, as an LN user edits it

    /// The *Meeting Organizer* line for a sync user's employee.
    pub fn organizer_line(&self, user: &str) -> LnAttendee {
        LnAttendee {
            attendance: Attendance::MeetingOrganizer,
            attendee_type: AttendeeType::Employee,
            attendee: Some(employee_code(user)),
            full_name: Some(user.to_owned()),
            email: Some(self.email(user)),
            ..LnAttendee::default()
        }
    }

    /// A required, invited employee attendee line for a sync user.
    pub fn invitee_line(&self, user: &str) -> LnAttendee {
        LnAttendee {
            attendance: Attendance::Required,
            attendee_type: AttendeeType::Employee,
            attendee: Some(employee_code(user)),
            full_name: Some(user.to_owned()),
            email: Some(self.email(user)),
            invite: true,
            ..LnAttendee::default()
        }
    }

    /// A required, invited attendee of type *Other* (someone outside the company).
    pub fn external_line(email: &str) -> LnAttendee {
        LnAttendee {
            attendance: Attendance::Required,
            attendee_type: AttendeeType::Other,
            full_name: Some(email.split('@').next().unwrap_or(email).to_owned()),
            email: Some(email.to_owned()),
            invite: true,
            ..LnAttendee::default()
        }
    }

    /// A one-hour LN appointment with *Synchronize* set (no attendees yet).
    pub fn appointment(subject: &str, start: DateTime<Utc>) -> LnActivity {
        LnActivity {
            subject: Some(subject.to_owned()),
            location: Some("Room 1".into()),
            start: Some(start),
            end: Some(start + Duration::hours(1)),
            reminder_set: true,
            reminder_value: Some(15),
            reminder_unit: Some(ln_sim::model::TimeUnit::Minutes),
            synchronize: true,
            ..LnActivity::default()
        }
    }

    /// Creates an activity as an LN user would; returns its key.
    pub fn ln_create(
        &self,
        activity: LnActivity,
        attendees: Vec<LnAttendee>,
    ) -> Result<String, BoxError> {
        Ok(self
            .world
            .ln
            .store()
            .create_activity(
                &self.company,
                NewActivity {
                    activity,
                    attendees,
                },
            )?
            .record
            .data
            .activity)
    }

    /// An LN meeting organized by sync user `organizer`, inviting sync users `invitees`.
    pub fn ln_meeting(
        &self,
        subject: &str,
        start: DateTime<Utc>,
        organizer: &str,
        invitees: &[&str],
    ) -> Result<String, BoxError> {
        let mut lines = vec![self.organizer_line(organizer)];
        lines.extend(invitees.iter().map(|u| self.invitee_line(u)));
        self.ln_create(Self::appointment(subject, start), lines)
    }

    pub fn ln_patch(&self, key: &str, patch: serde_json::Value) -> Result<(), BoxError> {
        self.world
            .ln
            .store()
            .patch_activity(&self.company, key, &patch, &IfMatch::Any)?;
        Ok(())
    }

    pub fn ln_delete(&self, key: &str) -> Result<(), BoxError> {
        self.world
            .ln
            .store()
            .delete_activity(&self.company, key, &IfMatch::Any)?;
        Ok(())
    }

    /// An activity as LN holds it now, with its attendee lines.
    pub fn ln_activity(&self, key: &str) -> Option<ActivityRecord> {
        self.world.ln.store().activity(&self.company, key).ok()?
    }

    /// Every activity of the company.
    pub fn ln_activities(&self) -> Vec<ActivityRecord> {
        self.world
            .ln
            .store()
            .read(&self.company, |d| d.activities.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The attendee line of `key` whose e-mail is `email`.
    pub fn ln_line(&self, key: &str, email: &str) -> LnAttendee {
        self.ln_activity(key)
            .unwrap_or_else(|| panic!("no activity {key}"))
            .attendees
            .values()
            .map(|r| r.data.clone())
            .find(|l| l.email.as_deref() == Some(email))
            .unwrap_or_else(|| panic!("no attendee {email} on {key}"))
    }

    /// LN requests that would change LN data in the current log.
    pub fn ln_writes(&self) -> usize {
        self.world.ln_writes()
    }

    /// LN data requests of the current log with this method on this entity set.
    pub fn ln_calls(&self, method: &str, set: &str) -> usize {
        self.world.ln.count(|r| {
            r.kind == RequestKind::Data && r.method.eq_ignore_ascii_case(method) && r.is_set(set)
        })
    }

    /// Reads of the LN activity feed in the current log: GETs of the `Activities` collection
    /// (single activities read by key are not the feed).
    pub fn ln_feed_reads(&self) -> usize {
        self.world.ln.count(|r| {
            r.kind == RequestKind::Data
                && r.method == "GET"
                && r.is_set("Activities")
                && r.key.is_none()
        })
    }

    /// The LN data requests of the current log, one line each, for assertion messages.
    pub fn ln_log(&self) -> String {
        self.world
            .ln
            .requests()
            .iter()
            .filter(|r| r.kind == RequestKind::Data)
            .map(|r| format!("{} {} {} {}", r.method, r.path, r.decoded_query(), r.status))
            .collect::<Vec<_>>()
            .join("\n")
    }

    // ---- Exchange, as the users see it

    /// The mailbox's calendar inside the current window, as a CalendarView shows it.
    pub fn events(&self, user: &str) -> Vec<EventInstance> {
        let w = self.window();
        self.world
            .ews
            .calendar_view(&self.email(user), w.start, w.end)
            .unwrap_or_default()
    }

    /// The mailbox's calendar over any span.
    pub fn events_between(
        &self,
        user: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Vec<EventInstance> {
        self.world
            .ews
            .calendar_view(&self.email(user), start, end)
            .unwrap_or_default()
    }

    /// Events of the window the user organizes.
    pub fn organized(&self, user: &str) -> Vec<EventInstance> {
        self.events(user)
            .into_iter()
            .filter(|e| e.is_organizer)
            .collect()
    }

    /// The stored item (single or master) with this UID in the user's calendar.
    pub fn ews_item(&self, user: &str, uid: &str) -> Option<StoredItem> {
        self.world.ews.event_by_uid(&self.email(user), uid)
    }

    /// The user creates an event in Outlook.
    pub fn user_creates(
        &self,
        user: &str,
        event: ews_sim::NewEvent,
    ) -> Result<ews_sim::CreatedEvent, BoxError> {
        Ok(self.world.ews.user_create_event(&self.email(user), event)?)
    }

    pub fn user_edits(
        &self,
        user: &str,
        id: &ItemId,
        edit: ews_sim::EventEdit,
    ) -> Result<(), BoxError> {
        self.world
            .ews
            .user_edit_event(&self.email(user), id, edit)?;
        Ok(())
    }

    pub fn user_deletes(&self, user: &str, id: &ItemId, send: bool) -> Result<(), BoxError> {
        self.world
            .ews
            .user_delete_event(&self.email(user), id, send)?;
        Ok(())
    }

    /// EWS operations of the current log for the user's mailbox, counted by name (a FindItem
    /// with a CalendarView is counted as `CalendarView`).
    pub fn ews_ops(&self, user: &str) -> BTreeMap<String, usize> {
        let mut ops = BTreeMap::new();
        for r in self.world.ews_requests_for(&self.email(user)) {
            let mut op = r.operation.clone().unwrap_or_default();
            if op == "FindItem" && r.body.contains("CalendarView") {
                op = "CalendarView".into();
            }
            *ops.entry(op).or_insert(0) += 1;
        }
        ops
    }

    /// Exchange requests of the current log for the user's mailbox by what they do, either
    /// protocol ([`World::ops_for`]).
    pub fn ops(&self, user: &str) -> BTreeMap<Op, usize> {
        self.world.ops_for(&self.email(user))
    }

    /// Exchange write requests of the current log over every mailbox, either protocol (EWS
    /// CreateItem, UpdateItem, DeleteItem, folder writes; Graph writes and `$batch`es with one).
    pub fn exchange_writes(&self) -> usize {
        self.world.ews.write_calls()
    }

    /// The same as [`CalendarWorld::exchange_writes`], under its EWS-era name.
    pub fn ews_writes(&self) -> usize {
        self.exchange_writes()
    }

    /// The id the world's Exchange client knows a stored item (or occurrence) by.
    pub fn client_id(&self, id: &ItemId) -> String {
        self.world.client_id(id)
    }

    // ---- the store

    pub async fn links(&self, user: &str) -> Result<Vec<Link>, BoxError> {
        Ok(self
            .world
            .store
            .all_links(&self.env, &UserId::new(user), LinkKind::Event)
            .await?)
    }

    /// Calendar problems recorded for a user.
    pub async fn problems(&self, user: &str) -> Result<Vec<ItemProblem>, BoxError> {
        Ok(self
            .world
            .problems("prod", user)
            .await?
            .into_iter()
            .filter(|p| p.kind == LinkKind::Event)
            .collect())
    }

    /// Calendar problems of one kind over every user, as (user, LN key, detail).
    pub async fn all_problems(
        &self,
        kind: ProblemKind,
    ) -> Result<Vec<(String, String, String)>, BoxError> {
        let spec = self.world.env("prod").clone();
        let mut out = Vec::new();
        for u in spec.users.iter().chain([&spec.inactive]) {
            for p in self.problems(&u.user).await? {
                if p.problem == kind {
                    out.push((
                        u.user.clone(),
                        p.ln_key.as_str().to_owned(),
                        p.detail.clone(),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// Local wall-clock time helper for `ews_sim::NewEvent`: day `d` after the start day at `h:00`.
pub fn local(d: i64, h: u32) -> NaiveDateTime {
    (t0().date_naive() + Duration::days(d))
        .and_hms_opt(h, 0, 0)
        .unwrap_or_default()
}

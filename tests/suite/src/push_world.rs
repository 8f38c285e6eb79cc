//! A calendar world with `lnsync serve` running over it (push end to end, R31–R33): the
//! Exchange simulator's notifications (EWS push callbacks or Graph change notifications, as the
//! world's [`Backend`] says) and the LN simulator's signed webhooks reach the push endpoint on a
//! local port, and the process's worker runs the jobs at once. Used by `tests/push_e2e.rs` and
//! the `push_latency` example.
//!
//! What differs between the backends is kept here, behind backend-neutral helpers
//! ([`Served::lose_subscription`], [`Served::pulls`], [`Served::notification_path`]…), so the
//! scenarios are written once.

use crate::calendar_world::CalendarWorld;
use crate::harness::{Backend, BoxError, Op, TestResult};
use ews_sim::NewEvent;
use ln_sim::model::{Interval, TimeUnit};
use lnsync_core::ids::EnvironmentId;
use lnsync_core::model::{Job, PushSubscription};
use lnsync_core::ports::{Clock, StateStore};
use lnsync_core::secret::Secret;
use lnsync_runtime::config::{Config, SecretSource};
use lnsync_runtime::jobs::JobOutcome;
use lnsync_runtime::scheduled::SchedulePacing;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

pub const HOOK_SECRET: &str = "ln-webhook-secret-for-tests";
const WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A calendar world with `lnsync serve` running over it.
pub struct Served {
    pub backend: Backend,
    pub cal: Arc<CalendarWorld>,
    pub base: String,
    jobs: Arc<Mutex<Vec<(Job, JobOutcome)>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl Served {
    /// Three users on `backend`; LN pushes to the endpoint; `tick` is the scheduled loop's
    /// period.
    pub async fn start(
        backend: Backend,
        tick: std::time::Duration,
        seed: impl FnOnce(&CalendarWorld) -> TestResult,
    ) -> Result<Self, BoxError> {
        let cal = CalendarWorld::start_on(backend, 3).await?;
        // Pulls are daily, so none is due while a test runs: what changes arrived by push. The
        // rest of LN's settings (the backend and its app registration) stay as the world set
        // them.
        let store = cal.world.ln.store();
        let mut settings = store.read(&cal.company, |d| d.settings.data.clone())?;
        let daily = Interval::new(1, TimeUnit::Days);
        settings.calendar_pull_interval = daily;
        settings.contact_pull_interval = daily;
        settings.synchronize_contacts = false;
        store.set_settings(&cal.company, settings)?;
        seed(&cal)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        cal.world.ln.store().enable_webhook(
            &cal.company,
            &format!("{base}/ln/prod"),
            HOOK_SECRET,
        )?;
        let mut config: Config = cal.world.config.clone();
        config.sync = cal.options.clone();
        config.push.public_url = Some(url::Url::parse(&base)?);
        config.push.status_frequency_minutes = 1;
        for env in &mut config.environments {
            env.ln.webhook_secret = Some(SecretSource::Value(Secret::new(HOOK_SECRET)));
        }
        let cal = Arc::new(cal);
        let jobs: Arc<Mutex<Vec<(Job, JobOutcome)>>> = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = {
            let cal = cal.clone();
            let jobs = jobs.clone();
            tokio::spawn(async move {
                let clock: Arc<dyn Clock> = Arc::new(ClockOf(cal.clone()));
                lnsync_runtime::serve::serve(
                    &config,
                    cal.world.store.clone(),
                    Arc::new(crate::harness::live_connector()),
                    clock,
                    listener,
                    SchedulePacing {
                        tick_every: tick,
                        ..SchedulePacing::default()
                    },
                    async move {
                        let _ = stopped.await;
                    },
                    move |job: &Job, outcome: &JobOutcome| {
                        jobs.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push((job.clone(), outcome.clone()));
                    },
                )
                .await
                .map(|_| ())
            })
        };
        let served = Self {
            backend,
            cal,
            base,
            jobs,
            stop: Some(stop),
            server: Some(server),
        };
        // The first tick pulls everything and subscribes every user.
        served
            .wait("every user subscribed", || async {
                Ok(served.active_subscriptions().await?.len() == 3)
            })
            .await?;
        // At least: a Graph subscription cannot resume from a watermark, so lnsync follows a
        // new one with a pull of its own (settle waits for those).
        served
            .wait("the first pull and subscribe jobs done", || async {
                Ok(served.count("subscribe") >= 3 && served.count("calendar") >= 3)
            })
            .await?;
        served.settle().await?;
        Ok(served)
    }

    /// Starts with one Outlook appointment of `user` (`subject`, day `d` at `h` o'clock, an
    /// hour long, no attendees), which the first pull has copied to LN.
    pub async fn with_appointment(
        backend: Backend,
        tick: std::time::Duration,
        user: &str,
        subject: &str,
        d: i64,
        h: i64,
    ) -> Result<(Self, Appointment), BoxError> {
        let seeded = Arc::new(Mutex::new(None));
        let (slot, user, subject) = (seeded.clone(), user.to_owned(), subject.to_owned());
        let s = Self::start(backend, tick, move |cal| {
            let mut e = NewEvent::new(
                &subject,
                cal.at(d, h).naive_utc(),
                cal.at(d, h + 1).naive_utc(),
            );
            e.send = false;
            *slot.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(cal.user_creates(&user, e)?);
            Ok(())
        })
        .await?;
        let event = seeded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or("the appointment was not created")?;
        let ln_key = s.ln_key_of(&event.uid)?;
        Ok((s, Appointment { event, ln_key }))
    }

    /// The LN activity lnsync created for the Exchange event with iCalendar UID `uid`.
    pub fn ln_key_of(&self, uid: &str) -> Result<String, BoxError> {
        self.cal
            .ln_activities()
            .into_iter()
            .find(|a| a.record.data.external_reference.as_deref() == Some(uid))
            .map(|a| a.record.data.activity.clone())
            .ok_or_else(|| format!("no LN activity was created for the event {uid}").into())
    }

    /// Waits until no job has run for a while: the echoes of the last writes (LN's webhooks
    /// of our own LN writes, Exchange's notifications of our own Exchange writes) are done.
    pub async fn settle(&self) -> TestResult {
        let quiet = std::time::Duration::from_millis(700);
        let deadline = Instant::now() + WAIT;
        let mut seen = self.job_count();
        let mut since = Instant::now();
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let now = self.job_count();
            if now != seen {
                (seen, since) = (now, Instant::now());
            } else if since.elapsed() >= quiet {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("jobs kept running: {:?}", self.kinds()).into());
            }
        }
    }

    pub fn env(&self) -> EnvironmentId {
        EnvironmentId::new("prod")
    }

    pub async fn active_subscriptions(&self) -> Result<Vec<PushSubscription>, BoxError> {
        Ok(self
            .cal
            .world
            .store
            .subscriptions(&self.env())
            .await?
            .into_iter()
            .filter(|s| s.active)
            .collect())
    }

    pub async fn subscription_of(&self, user: &str) -> Result<PushSubscription, BoxError> {
        self.active_subscriptions()
            .await?
            .into_iter()
            .find(|s| s.user.as_str() == user)
            .ok_or_else(|| format!("{user} has no active subscription").into())
    }

    /// Labels of the jobs run so far, in order.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(j, _)| j.kind.label())
            .collect()
    }

    /// How many jobs of one kind ran so far.
    pub fn count(&self, kind: &str) -> usize {
        self.kinds().iter().filter(|k| **k == kind).count()
    }

    pub fn job_count(&self) -> usize {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Jobs run after the first `from`, as (label, user, fine). Fine: it succeeded, or it
    /// waits for its user's lease (an LN webhook's job and an Exchange notification's job about
    /// one meeting may meet there) and runs again shortly.
    pub fn jobs_since(&self, from: usize) -> Vec<(&'static str, String, bool)> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)[from..]
            .iter()
            .map(|(j, o)| {
                let fine = o.is_success()
                    || matches!(o, JobOutcome::Retry { error, .. } if error.contains("lease"));
                (j.kind.label(), j.user.to_string(), fine)
            })
            .collect()
    }

    pub async fn wait<F, Fut>(&self, what: &str, mut ready: F) -> TestResult
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool, BoxError>>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            if ready().await? {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "timed out waiting for: {what}\njobs: {:?}\nsubscriptions at the server: {}",
                    self.kinds(),
                    self.server_subscriptions()
                )
                .into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub fn ln_subject(&self, key: &str) -> Option<String> {
        self.cal
            .ln_activity(key)
            .and_then(|a| a.record.data.subject.clone())
    }

    pub fn exchange_subject(&self, user: &str, uid: &str) -> Option<String> {
        self.cal
            .events(user)
            .into_iter()
            .find(|e| e.uid == uid)
            .and_then(|e| e.subject)
    }

    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<u16, BoxError> {
        Ok(self.post_answer(path, headers, body).await?.status)
    }

    /// POSTs to the endpoint and returns the whole answer.
    pub async fn post_answer(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Answer, BoxError> {
        let mut req = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res.text().await?;
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }

    // ---- what differs between the backends

    /// Where the server delivers this environment's notifications: EWS
    /// `/ews/prod/{push token}`, Graph `/graph/prod` (the token travels as `clientState`).
    pub async fn notification_path(&self) -> Result<String, BoxError> {
        Ok(match self.backend {
            Backend::Ews => format!("/ews/prod/{}", self.push_token().await?),
            Backend::Graph => "/graph/prod".into(),
        })
    }

    /// The environment's push token (EWS: part of the URL; Graph: the `clientState`).
    pub async fn push_token(&self) -> Result<String, BoxError> {
        Ok(self
            .cal
            .world
            .store
            .push_token(&self.env())
            .await?
            .ok_or("the worker created the push token")?)
    }

    /// The server loses a subscription without telling anyone. False if it did not know it.
    pub fn lose_subscription(&self, id: &str) -> bool {
        match self.backend {
            Backend::Ews => self.cal.world.ews.drop_subscription(id),
            Backend::Graph => self.cal.world.ews.graph_drop_subscription(id),
        }
    }

    /// Whether the server still delivers to the subscription `id`.
    pub fn server_knows(&self, id: &str) -> bool {
        let ews = &self.cal.world.ews;
        match self.backend {
            Backend::Ews => ews
                .subscriptions()
                .iter()
                .any(|x| x.id == id && matches!(x.state, ews_sim::push::SubscriptionState::Alive)),
            Backend::Graph => ews.graph_subscription(id).is_some_and(|x| x.active),
        }
    }

    /// The subscriptions as the server sees them, for failure messages.
    pub fn server_subscriptions(&self) -> String {
        let ews = &self.cal.world.ews;
        match self.backend {
            Backend::Ews => format!("{:#?}", ews.subscriptions()),
            Backend::Graph => format!("{:#?}", ews.all_graph_subscriptions()),
        }
    }

    /// Calendar pull requests of the current log for a user's mailbox: the window
    /// (EWS CalendarView, Graph calendarView) and incremental changes (SyncFolderItems,
    /// calendarView/delta).
    pub fn pulls(&self, user: &str) -> usize {
        let ops = self.cal.ops(user);
        [Op::View, Op::Delta]
            .iter()
            .map(|op| ops.get(op).copied().unwrap_or(0))
            .sum()
    }

    /// Requests of the current log for a user's mailbox that do `op`.
    pub fn requests_doing(&self, user: &str, op: Op) -> usize {
        self.cal.world.requests_doing(&self.cal.email(user), op)
    }

    pub async fn stop(mut self) -> TestResult {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await??;
        }
        Ok(())
    }
}

/// The push endpoint's answer to a request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

/// An Outlook appointment and the LN activity the first pull made of it.
pub struct Appointment {
    pub event: ews_sim::CreatedEvent,
    pub ln_key: String,
}

/// The world's simulated clock, shared with the serve task.
struct ClockOf(Arc<CalendarWorld>);

impl Clock for ClockOf {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.now()
    }
}

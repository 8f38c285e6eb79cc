//! One test per row of the decision table, plus the mapping and ownership helpers.

use super::*;
use crate::calendar::EventKey;

fn t(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0)
        .single()
        .unwrap_or_default()
        + Duration::minutes(min)
}

fn owner() -> SyncUser {
    SyncUser {
        user: UserId::new("anna"),
        name: "anna".into(),
        active: true,
        email: MailboxAddress::new("anna@corp.example"),
    }
}

fn fields(subject: &str) -> EventFields {
    EventFields {
        subject: Some(subject.into()),
        location: None,
        body: None,
        time: EventTime::Timed {
            start: t(60),
            end: t(120),
        },
        reminder_minutes: None,
        show_as: ShowTimeAs::Busy,
        is_call: false,
    }
}

fn ln(subject: &str, version: &str, modified: i64) -> LnEvent {
    let content = EventContent::new(fields(subject), &[], "anna@corp.example");
    LnEvent {
        key: ActivityKey::new("A1"),
        hash: content.hash(),
        content,
        version: LnVersion::new(version),
        modified: t(modified),
        origin: Origin::Ln,
        attendees: Vec::new(),
        end: t(120),
    }
}

fn ex(subject: &str, version: &str, modified: i64) -> ExEvent {
    let content = EventContent::new(fields(subject), &[], "anna@corp.example");
    ExEvent {
        item: ItemRef {
            id: ExchangeItemId::new("X1"),
            version: ExchangeVersion::new(version),
        },
        key: EventKey::single(IcalUid::new("U1")),
        series_id: None,
        hash: content.hash(),
        content,
        modified: t(modified),
        stamped: None,
        organizer: Some("anna@corp.example".into()),
        attendees: Vec::new(),
        time_zone: None,
        end: t(120),
    }
}

fn linked(origin: Origin) -> Link {
    let l = ln("base", "l1", 0);
    let e = ex("base", "x1", 0);
    let user = owner();
    let env = EnvironmentId::new("e");
    let input = CalendarPlanInput {
        env: &env,
        user: &user,
        now: t(0),
        pairs: &[],
        policy: ConflictPolicy::NewestWins,
        gate: DeletionGate::default(),
        linked_total: 1,
        release_held: false,
    };
    new_link(&input, &l, &e, origin)
}

fn decide_with(policy: ConflictPolicy, pair: PairInput) -> (Option<Action>, Option<Conflict>) {
    let user = owner();
    let env = EnvironmentId::new("e");
    let input = CalendarPlanInput {
        env: &env,
        user: &user,
        now: t(0),
        pairs: &[],
        policy,
        gate: DeletionGate::default(),
        linked_total: 1,
        release_held: false,
    };
    decide(&input, &pair)
}

fn run(
    link: Option<Link>,
    l: Side<LnEvent>,
    e: Side<ExEvent>,
) -> (Option<Action>, Option<Conflict>) {
    decide_with(ConflictPolicy::NewestWins, PairInput { link, ln: l, ex: e })
}

fn kind(a: &Option<Action>) -> &'static str {
    match a {
        None => "none",
        Some(Action::Relink(_)) => "relink",
        Some(Action::CreateExchange { .. }) => "create-ex",
        Some(Action::UpdateExchange { .. }) => "update-ex",
        Some(Action::CancelExchange { .. }) => "cancel-ex",
        Some(Action::CreateLn { .. }) => "create-ln",
        Some(Action::AdoptStamped { .. }) => "adopt",
        Some(Action::UpdateLn { .. }) => "update-ln",
        Some(Action::LnNotHeld { .. }) => "not-held",
        Some(Action::DeleteLn { .. }) => "delete-ln",
        Some(Action::Unlink { .. }) => "unlink",
        Some(Action::OrphanCheck { .. }) => "orphan",
    }
}

#[test]
fn table_rows() {
    use Side::*;
    let l = || Some(linked(Origin::Ln));
    let lx = || Some(linked(Origin::Exchange));
    type Row = (
        &'static str,
        Option<Link>,
        Side<LnEvent>,
        Side<ExEvent>,
        &'static str,
    );
    let rows: Vec<Row> = vec![
        ("out of window (LN)", l(), OutOfWindow, Unreported, "unlink"),
        (
            "out of window (Exchange)",
            l(),
            Unreported,
            OutOfWindow,
            "unlink",
        ),
        (
            "gone both",
            l(),
            Gone(super::Gone::Deleted),
            Gone(super::Gone::Deleted),
            "unlink",
        ),
        (
            "LN deleted",
            l(),
            Gone(super::Gone::Deleted),
            Unreported,
            "cancel-ex",
        ),
        (
            "LN not held, Exchange changed",
            l(),
            Gone(super::Gone::Cancelled),
            Present(ex("new", "x2", 5)),
            "cancel-ex",
        ),
        (
            "Exchange deleted, LN origin",
            l(),
            Unreported,
            Gone(super::Gone::Deleted),
            "not-held",
        ),
        (
            "Exchange deleted, Exchange origin",
            lx(),
            Unreported,
            Gone(super::Gone::Deleted),
            "delete-ln",
        ),
        (
            "Exchange deleted, LN changed, LN origin",
            l(),
            Present(ln("new", "l2", 5)),
            Gone(super::Gone::Deleted),
            "create-ex",
        ),
        ("nothing reported", l(), Unreported, Unreported, "none"),
        (
            "LN changed",
            l(),
            Present(ln("new", "l2", 5)),
            Unreported,
            "update-ex",
        ),
        (
            "LN version moved, same content",
            l(),
            Present(ln("base", "l2", 5)),
            Unreported,
            "relink",
        ),
        (
            "LN same version",
            l(),
            Present(ln("base", "l1", 0)),
            Unreported,
            "none",
        ),
        (
            "Exchange changed",
            l(),
            Unreported,
            Present(ex("new", "x2", 5)),
            "update-ln",
        ),
        (
            "Exchange opened only (R27)",
            l(),
            Unreported,
            Present(ex("base", "x2", 5)),
            "relink",
        ),
        (
            "both changed alike",
            l(),
            Present(ln("same", "l2", 5)),
            Present(ex("same", "x2", 6)),
            "relink",
        ),
        (
            "both changed, LN newer",
            l(),
            Present(ln("ln", "l2", 9)),
            Present(ex("ex", "x2", 6)),
            "update-ex",
        ),
        (
            "both changed, Exchange newer",
            l(),
            Present(ln("ln", "l2", 5)),
            Present(ex("ex", "x2", 6)),
            "update-ln",
        ),
        (
            "both changed, tie to LN",
            l(),
            Present(ln("ln", "l2", 6)),
            Present(ex("ex", "x2", 6)),
            "update-ex",
        ),
        (
            "unlinked, equal",
            None,
            Present(ln("base", "l1", 0)),
            Present(ex("base", "x1", 0)),
            "relink",
        ),
        (
            "unlinked LN",
            None,
            Present(ln("base", "l1", 0)),
            Unreported,
            "create-ex",
        ),
        (
            "unlinked Exchange",
            None,
            Unreported,
            Present(ex("base", "x1", 0)),
            "create-ln",
        ),
        (
            "unlinked gone",
            None,
            Gone(super::Gone::Deleted),
            Unreported,
            "none",
        ),
    ];
    for (name, link, l, e, want) in rows {
        let (action, _) = run(link, l, e);
        assert_eq!(kind(&action), want, "{name}");
    }
}

#[test]
fn conflicts_follow_the_policy_and_are_recorded() {
    use Side::*;
    for (policy, want) in [
        (ConflictPolicy::LnWins, "update-ex"),
        (ConflictPolicy::ExchangeWins, "update-ln"),
        (ConflictPolicy::NewestWins, "update-ln"),
    ] {
        let (a, c) = decide_with(
            policy,
            PairInput {
                link: Some(linked(Origin::Ln)),
                ln: Present(ln("ln", "l2", 5)),
                ex: Present(ex("ex", "x2", 6)),
            },
        );
        assert_eq!(kind(&a), want, "{policy:?}");
        let c = c.expect("recorded");
        assert!(c.detail.contains("\"ln\"") && c.detail.contains("\"ex\""));
    }
}

#[test]
fn read_only_links_never_write_exchange() {
    use Side::*;
    let mut link = linked(Origin::Exchange);
    link.organizer = Some(MailboxAddress::new("boss@partner.example"));
    let (a, _) = run(Some(link.clone()), Present(ln("new", "l2", 5)), Unreported);
    assert_eq!(kind(&a), "relink");
    let (a, _) = run(Some(link), Gone(super::Gone::Deleted), Unreported);
    assert_eq!(kind(&a), "unlink");
}

#[test]
fn intents_are_finished_or_cleaned_up() {
    use Side::*;
    let mut intent = linked(Origin::Ln);
    intent.exchange_id = ExchangeItemId::new("");
    let (a, _) = run(
        Some(intent.clone()),
        Present(ln("base", "l1", 0)),
        Unreported,
    );
    assert!(matches!(
        a,
        Some(Action::CreateExchange { intent: true, .. })
    ));
    let (a, _) = run(Some(intent.clone()), Gone(super::Gone::Deleted), Unreported);
    assert_eq!(kind(&a), "orphan");
    let mut stamped = ex("base", "x1", 0);
    stamped.stamped = Some(ActivityKey::new("A1"));
    let (a, _) = run(None, Unreported, Present(stamped));
    assert_eq!(kind(&a), "adopt");
}

#[test]
fn mass_deletions_are_held_by_the_gate() {
    use Side::*;
    let pairs: Vec<PairInput> = (0..30)
        .map(|_| PairInput {
            link: Some(linked(Origin::Ln)),
            ln: Gone(super::Gone::Deleted),
            ex: Unreported,
        })
        .collect();
    let user = owner();
    let env = EnvironmentId::new("e");
    let mut input = CalendarPlanInput {
        env: &env,
        user: &user,
        now: t(0),
        pairs: &pairs,
        policy: ConflictPolicy::NewestWins,
        gate: DeletionGate::default(),
        linked_total: 40,
        release_held: false,
    };
    let plan = plan_calendar(&input);
    assert_eq!((plan.held.len(), plan.actions.len()), (30, 0));
    input.release_held = true;
    assert_eq!(plan_calendar(&input).actions.len(), 30);
}

#[test]
fn reminder_units_round_trip() {
    assert_eq!(reminder_value_unit(1440), (1, IntervalUnit::Days));
    assert_eq!(reminder_value_unit(90), (90, IntervalUnit::Minutes));
    assert_eq!(reminder_value_unit(120), (2, IntervalUnit::Hours));
    assert_eq!(reminder_value_unit(20160), (2, IntervalUnit::Weeks));
}

#[test]
fn all_day_dates_never_shift_in_a_zone() {
    let berlin: Tz = "Europe/Berlin".parse().unwrap_or(Tz::UTC);
    let day = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap_or_default(); // DST switch
    let start = midnight(day, berlin);
    let end = midnight(day.succ_opt().unwrap_or_default(), berlin);
    assert_eq!(end - start, Duration::hours(23));
    let (s, e) = time_bounds(
        &EventTime::AllDay {
            start: day,
            end: day.succ_opt().unwrap_or_default(),
        },
        berlin,
    );
    assert_eq!((s, e), (start, end));
}

#[test]
fn window_starts_at_utc_midnight() {
    let w = window_at(t(0), 365);
    assert_eq!(w.start.time(), chrono::NaiveTime::MIN);
    assert_eq!(w.end - w.start, Duration::days(365));
    assert!(in_window(&w, w.start - Duration::hours(1), w.start));
    assert!(!in_window(&w, w.end, w.end + Duration::hours(1)));
}

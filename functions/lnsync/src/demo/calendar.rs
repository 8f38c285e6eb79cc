//! The demo's calendars: a few meetings seeded on both sides, and the lines that show where
//! lnsync put them.
//!
//! - LN → Exchange: an appointment organized by the first user inviting the next two (one
//!   meeting in the organizer's mailbox, Exchange invites the others, LN's attendee flags move,
//!   R17–R19), and a call with an LN contact (an appointment with category "Call", R20).
//! - Exchange → LN: a plain Outlook appointment (an LN appointment, R22) and a weekly series in
//!   "W. Europe Standard Time" inviting the first user (one LN appointment per occurrence, their
//!   UTC times following the DST switch; the invitee's copy adds nothing, R24, R25).
//! - Before the second run the first invitee accepts in Outlook: LN's attendance status (R21).
//!
//! Times are relative to today, so the meetings are always in the sync window.

use anyhow::{Context, Result};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Utc, Weekday};
use ews_sim::{EwsSim, NewEvent, Pattern, Range, Recurrence, Response};
use ln_sim::model::{
    Activity, ActivityType, Attendance, AttendanceStatus, Attendee, AttendeeType, Origin, TimeUnit,
};
use ln_sim::store::ActivityRecord;
use ln_sim::{LnSim, NewActivity, Seed, demo_contact};

use super::COMPANY;

/// The series' zone: Windows id for Outlook, and how the demo names it.
const SERIES_ZONE: &str = "W. Europe Standard Time";
const SERIES_WEEKS: u32 = 6;

/// An active demo user: sync user, employee (same e-mail, R5) and mailbox.
#[derive(Debug, Clone)]
pub struct Person {
    pub name: String,
    pub email: String,
    pub employee: String,
}

/// The active sync users of the demo seed with their employees, in seed order.
pub fn people(seed: &Seed) -> Vec<Person> {
    let mut out = Vec::new();
    for company in &seed.companies {
        for user in company.sync_users.iter().filter(|u| u.active) {
            let employee = company
                .employees
                .iter()
                .find(|e| e.user.as_deref() == Some(user.user.as_str()));
            if let (Some(email), Some(employee)) = (&user.email, employee) {
                out.push(Person {
                    name: user.name.clone().unwrap_or_else(|| user.user.clone()),
                    email: email.clone(),
                    employee: employee.employee.clone(),
                });
            }
        }
    }
    out
}

/// An LN activity the demo created, with who organizes and who is invited.
struct LnMeeting {
    key: String,
    kind: &'static str,
    subject: String,
    organizer: Person,
    invited: Vec<(String, String)>,
}

/// An Outlook event the demo created.
struct OutlookEvent {
    subject: String,
    uid: String,
    organizer: Person,
    what: String,
}

/// What the demo seeded, to show afterwards where it went.
#[derive(Default)]
pub struct Meetings {
    review: Option<LnMeeting>,
    call: Option<LnMeeting>,
    outlook: Vec<OutlookEvent>,
    /// Who accepts the review in Outlook before the second run.
    accepting: Option<Person>,
    today: Option<NaiveDate>,
}

fn at(day: NaiveDate, h: u32, m: u32) -> NaiveDateTime {
    day.and_hms_opt(h, m, 0).unwrap_or_default()
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

fn organizer_line(p: &Person) -> Attendee {
    Attendee {
        attendance: Attendance::MeetingOrganizer,
        attendee_type: AttendeeType::Employee,
        attendee: Some(p.employee.clone()),
        full_name: Some(p.name.clone()),
        email: Some(p.email.clone()),
        ..Attendee::default()
    }
}

fn invitee_line(p: &Person) -> Attendee {
    Attendee {
        attendance: Attendance::Required,
        attendee_type: AttendeeType::Employee,
        attendee: Some(p.employee.clone()),
        full_name: Some(p.name.clone()),
        email: Some(p.email.clone()),
        invite: true,
        ..Attendee::default()
    }
}

fn activity(
    kind: ActivityType,
    subject: &str,
    location: &str,
    start: DateTime<Utc>,
    minutes: i64,
) -> Activity {
    Activity {
        activity_type: kind,
        subject: Some(subject.to_owned()),
        location: Some(location.to_owned()),
        information: Some("Seeded by lnsync demo.".to_owned()),
        start: Some(start),
        end: Some(start + Duration::minutes(minutes)),
        reminder_set: true,
        reminder_value: Some(15),
        reminder_unit: Some(TimeUnit::Minutes),
        synchronize: true,
        ..Activity::default()
    }
}

/// Seeds the calendars of both simulators for `people` (the demo's active users).
pub fn seed(
    ln: &LnSim,
    ews: &EwsSim,
    people: &[Person],
    contacts: usize,
    now: DateTime<Utc>,
) -> Result<Meetings> {
    let mut meetings = Meetings {
        today: Some(now.date_naive()),
        ..Meetings::default()
    };
    if people.is_empty() {
        return Ok(meetings);
    }
    let today = now.date_naive();
    let day = |n: i64| today + Duration::days(n);
    let person = |i: usize| people[i % people.len()].clone();
    let create = |a: Activity, lines: Vec<Attendee>| -> Result<String> {
        Ok(ln
            .store()
            .create_activity(
                COMPANY,
                NewActivity {
                    activity: a,
                    attendees: lines,
                },
            )
            .context("creating a demo activity in LN")?
            .record
            .data
            .activity)
    };

    // LN → Exchange: a meeting of three users (needs three of them).
    if people.len() >= 3 {
        let (org, a, b) = (person(0), person(1), person(2));
        let subject = "Quarterly business review";
        let key = create(
            activity(
                ActivityType::Appointment,
                subject,
                "Amsterdam, room 4.12",
                utc(at(day(2), 9, 0)),
                60,
            ),
            vec![organizer_line(&org), invitee_line(&a), invitee_line(&b)],
        )?;
        meetings.review = Some(LnMeeting {
            key,
            kind: "appointment",
            subject: subject.to_owned(),
            organizer: org,
            invited: vec![
                (a.name.clone(), a.email.clone()),
                (b.name.clone(), b.email.clone()),
            ],
        });
        meetings.accepting = Some(a);
    }

    // LN → Exchange: a call with an LN contact (or, without contacts, someone outside LN).
    let org = person(1);
    let (guest, line) = if contacts > 0 {
        let c = demo_contact(0);
        let name = c.full_name.clone().unwrap_or_else(|| c.contact.clone());
        let company = c.business_partner_name.clone().unwrap_or_default();
        let email = c
            .email
            .clone()
            .unwrap_or_else(|| "buyer@customer.example".into());
        (
            format!("{name} ({company}, LN contact)"),
            Attendee {
                attendance: Attendance::Required,
                attendee_type: AttendeeType::Contact,
                attendee: Some(c.contact.clone()),
                full_name: Some(name),
                email: Some(email),
                invite: true,
                ..Attendee::default()
            },
        )
    } else {
        (
            "buyer@customer.example (outside LN)".to_owned(),
            Attendee {
                attendance: Attendance::Required,
                attendee_type: AttendeeType::Other,
                full_name: Some("Buyer".into()),
                email: Some("buyer@customer.example".into()),
                invite: true,
                ..Attendee::default()
            },
        )
    };
    let guest_email = line.email.clone().unwrap_or_default();
    let subject = "Contract renewal call";
    let key = create(
        activity(
            ActivityType::Call,
            subject,
            "Phone",
            utc(at(day(3), 14, 0)),
            30,
        ),
        vec![organizer_line(&org), line],
    )?;
    meetings.call = Some(LnMeeting {
        key,
        kind: "call",
        subject: subject.to_owned(),
        organizer: org,
        invited: vec![(guest, guest_email)],
    });

    // Exchange → LN: a plain appointment in Outlook.
    let visitor = person(3);
    let subject = "Customer visit: Northwind Traders";
    let mut visit = NewEvent::new(subject, at(day(4), 10, 0), at(day(4), 12, 0));
    visit.location = Some("Northwind Traders, Rotterdam".into());
    let created = ews
        .user_create_event(&visitor.email, visit)
        .context("creating a demo appointment in Outlook")?;
    meetings.outlook.push(OutlookEvent {
        subject: subject.to_owned(),
        uid: created.uid,
        organizer: visitor,
        what: "appointment".into(),
    });

    // Exchange → LN: a weekly series at 09:30 Amsterdam time, inviting the first user.
    let host = person(4);
    let first = day(7);
    let subject = "Weekly pipeline review";
    let mut series =
        NewEvent::new(subject, at(first, 9, 30), at(first, 10, 0)).in_zone(SERIES_ZONE);
    if host.email != people[0].email {
        series = series.with_attendees(&[people[0].email.as_str()]);
    }
    series = series.with_recurrence(Recurrence {
        pattern: Pattern::Weekly {
            interval: 1,
            days_of_week: vec![weekday_name(first.weekday()).to_owned()],
            first_day_of_week: None,
        },
        range: Range::Numbered {
            start_date: first,
            number_of_occurrences: SERIES_WEEKS,
        },
    });
    let created = ews
        .user_create_event(&host.email, series)
        .context("creating a demo series in Outlook")?;
    meetings.outlook.push(OutlookEvent {
        subject: subject.to_owned(),
        uid: created.uid,
        organizer: host,
        what: format!("weekly series, {SERIES_WEEKS} × 09:30 {SERIES_ZONE}"),
    });
    Ok(meetings)
}

fn activities(ln: &LnSim) -> Vec<ActivityRecord> {
    ln.store()
        .read(COMPANY, |d| d.activities.values().cloned().collect())
        .unwrap_or_default()
}

fn lines(record: &ActivityRecord) -> impl Iterator<Item = &Attendee> {
    record.attendees.values().map(|r| &r.data)
}

impl Meetings {
    /// One phrase for the banner.
    pub fn describe(&self) -> String {
        let ln = [&self.review, &self.call]
            .iter()
            .filter(|m| m.is_some())
            .count();
        format!(
            "{ln} LN activities and {} Outlook events",
            self.outlook.len()
        )
    }

    /// The first invitee accepts the review in Outlook (R21 on the next run).
    pub fn accept(&self, ews: &EwsSim) -> Result<()> {
        let (Some(review), Some(who), Some(today)) = (&self.review, &self.accepting, self.today)
        else {
            return Ok(());
        };
        let from = utc(at(today, 0, 0));
        let copy = ews
            .calendar_view(&who.email, from, from + Duration::days(30))
            .context("reading a demo calendar")?
            .into_iter()
            .find(|e| !e.is_organizer && e.subject.as_deref() == Some(review.subject.as_str()))
            .context("the invitation did not reach the attendee's calendar")?;
        ews.user_respond(&who.email, &copy.id, Response::Accept, true)
            .context("accepting the demo meeting")?;
        println!("-- {} accepts \"{}\" in Outlook", who.name, review.subject);
        Ok(())
    }

    /// Where the first run put each seeded meeting.
    pub fn print_created(&self, ln: &LnSim, ews: &EwsSim) {
        let Some(today) = self.today else {
            return;
        };
        let (from, to) = (
            utc(at(today, 0, 0)),
            utc(at(today, 0, 0)) + Duration::days(60),
        );
        let view = |mailbox: &str| ews.calendar_view(mailbox, from, to).unwrap_or_default();
        println!("  calendar, LN → Exchange:");
        for m in [&self.review, &self.call].into_iter().flatten() {
            println!(
                "    {} {} \"{}\", organizer {}",
                m.key, m.kind, m.subject, m.organizer.name
            );
            let Some(event) = view(&m.organizer.email)
                .into_iter()
                .find(|e| e.is_organizer && e.subject.as_deref() == Some(m.subject.as_str()))
            else {
                println!("      → not in Exchange (see `lnsync status`)");
                continue;
            };
            let call = if m.kind == "call" {
                " (category Call)"
            } else {
                ""
            };
            println!(
                "      → meeting{call} in {}, {} invited",
                m.organizer.email,
                event.attendees.len()
            );
            for (name, email) in &m.invited {
                let copy = view(email)
                    .into_iter()
                    .any(|e| e.uid == event.uid && !e.is_organizer);
                let place = if copy {
                    format!("invitation in {email}")
                } else {
                    "invited by Exchange".to_owned()
                };
                println!("        {name}: {place}");
            }
        }
        let all = activities(ln);
        println!("  calendar, Outlook → LN:");
        for e in &self.outlook {
            let mut keys: Vec<(String, Option<DateTime<Utc>>)> = all
                .iter()
                .filter(|a| a.record.data.origin == Origin::Exchange)
                .filter(|a| {
                    a.record
                        .data
                        .external_reference
                        .as_deref()
                        .is_some_and(|r| r.starts_with(e.uid.as_str()))
                })
                .map(|a| (a.record.data.activity.clone(), a.record.data.start))
                .collect();
            keys.sort();
            let lnside = match (keys.first(), keys.last()) {
                (None, _) | (_, None) => "not in LN (see `lnsync status`)".to_owned(),
                (Some(one), Some(_)) if keys.len() == 1 => format!("LN appointment {}", one.0),
                (Some(a), Some(b)) => {
                    let mut times: Vec<String> = keys
                        .iter()
                        .filter_map(|k| k.1.map(|t| t.format("%H:%M").to_string()))
                        .collect();
                    times.dedup();
                    format!(
                        "{} LN appointments {}…{} (at {} UTC)",
                        keys.len(),
                        a.0,
                        b.0,
                        times.join(", then ")
                    )
                }
            };
            println!(
                "    \"{}\" ({}) in {} → {lnside}",
                e.subject, e.what, e.organizer.email
            );
        }
    }

    /// The LN attendee lines of the review after the accept.
    pub fn print_accepted(&self, ln: &LnSim) {
        let Some(review) = &self.review else {
            return;
        };
        let Ok(Some(record)) = ln.store().activity(COMPANY, &review.key) else {
            return;
        };
        println!(
            "  LN attendee lines of {} \"{}\":",
            review.key, review.subject
        );
        for line in lines(&record).filter(|l| l.invite) {
            let status = match line.attendance_status {
                AttendanceStatus::Accepted => "Accepted",
                AttendanceStatus::Tentative => "Tentative",
                AttendanceStatus::Declined => "Declined",
                AttendanceStatus::NoResponse => "no response",
            };
            let flag = |b: bool| if b { "yes" } else { "no" };
            println!(
                "    {:<20} attendance {:<12} sent to synchronizer {}, synchronized {}",
                line.full_name.as_deref().unwrap_or("-"),
                status,
                flag(line.sent_to_synchronizer),
                flag(line.synchronized)
            );
        }
    }
}

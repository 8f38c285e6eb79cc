//! Calendar behaviour: meetings across mailboxes, responses, cancellations, recurrence
//! across DST, occurrences in CalendarView and SyncFolderItems, ChangeKey conflicts, paging,
//! the calendar admin API. Every request (and every response) is validated against the XSDs.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;

use chrono::{DateTime, NaiveDate, TimeZone, Timelike, Utc};
use common::*;
use ews_sim::schema::{schema_dir, validate_requests};
use ews_sim::xml::Element;
use ews_sim::{
    EventEdit, EwsSim, ExtendedPropertyKey, ItemId, NewEvent, Pattern, Range, Recurrence, Response,
};

const CAROL: &str = "carol@corp.example";
const BERLIN: &str = "W. Europe Standard Time";

/// Sends `op` and keeps the response for schema validation at the end.
struct Cal {
    c: Client,
    responses: std::cell::RefCell<Vec<String>>,
}

impl Cal {
    fn new(sim: &EwsSim) -> Cal {
        Cal {
            c: Client::new(sim),
            responses: Default::default(),
        }
    }

    async fn call(&self, mailbox: &str, op: &str) -> Resp {
        let r = self.c.call(mailbox, op).await;
        if r.status == 200 {
            self.responses.borrow_mut().push(r.text.clone());
        }
        r
    }

    /// Every request the sim received and every successful response conform to the XSDs.
    fn validate(&self, sim: &EwsSim) {
        let dir = schema_dir().expect("schemas");
        validate_requests(&sim.request_bodies(), &dir).unwrap_or_else(|e| panic!("requests: {e}"));
        validate_requests(&self.responses.borrow(), &dir)
            .unwrap_or_else(|e| panic!("responses: {e}"));
    }
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn local(s: &str) -> chrono::NaiveDateTime {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").unwrap()
}

fn meeting_xml(
    subject: &str,
    crm: &str,
    attendees: &[&str],
    extra_after_location: &str,
    tail: &str,
) -> String {
    let att: String = attendees
        .iter()
        .map(|a| format!("<t:Attendee><t:Mailbox><t:EmailAddress>{a}</t:EmailAddress></t:Mailbox></t:Attendee>"))
        .collect();
    let att = if att.is_empty() {
        String::new()
    } else {
        format!("<t:RequiredAttendees>{att}</t:RequiredAttendees>")
    };
    format!(
        r#"<t:CalendarItem><t:Subject>{subject}</t:Subject><t:Sensitivity>Normal</t:Sensitivity><t:Body BodyType="Text">Agenda</t:Body><t:Categories><t:String>CRM</t:String></t:Categories><t:ReminderIsSet>true</t:ReminderIsSet><t:ReminderMinutesBeforeStart>10</t:ReminderMinutesBeforeStart><t:ExtendedProperty>{CRM_URI}<t:Value>{crm}</t:Value></t:ExtendedProperty>{tail}<t:IsAllDayEvent>false</t:IsAllDayEvent><t:LegacyFreeBusyStatus>Busy</t:LegacyFreeBusyStatus><t:Location>Room 1</t:Location>{att}{extra_after_location}<t:StartTimeZone Id="{BERLIN}"/><t:EndTimeZone Id="{BERLIN}"/></t:CalendarItem>"#
    )
}

fn times(start: &str, end: &str) -> String {
    format!("<t:Start>{start}</t:Start><t:End>{end}</t:End>")
}

fn create_op(send: &str, item: &str) -> String {
    format!(
        r#"<m:CreateItem SendMeetingInvitations="{send}"><m:SavedItemFolderId><t:DistinguishedFolderId Id="calendar"/></m:SavedItemFolderId><m:Items>{item}</m:Items></m:CreateItem>"#
    )
}

fn get_op(id_xml: &str) -> String {
    format!(
        r#"<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape><t:AdditionalProperties>{CRM_URI}<t:FieldURI FieldURI="calendar:UID"/></t:AdditionalProperties></m:ItemShape><m:ItemIds>{id_xml}</m:ItemIds></m:GetItem>"#
    )
}

fn item_id(id: &str, ck: &str) -> String {
    format!(r#"<t:ItemId Id="{id}" ChangeKey="{ck}"/>"#)
}

fn view_op(start: &str, end: &str, max: Option<usize>) -> String {
    let max = max
        .map(|m| format!(" MaxEntriesReturned=\"{m}\""))
        .unwrap_or_default();
    format!(
        r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:Subject"/><t:FieldURI FieldURI="calendar:Start"/><t:FieldURI FieldURI="calendar:End"/><t:FieldURI FieldURI="calendar:CalendarItemType"/><t:FieldURI FieldURI="calendar:UID"/><t:FieldURI FieldURI="calendar:OriginalStart"/></t:AdditionalProperties></m:ItemShape><m:CalendarView{max} StartDate="{start}" EndDate="{end}"/><m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>"#
    )
}

fn sync_op(state: Option<&str>, max: u32) -> String {
    let state = state
        .map(|s| format!("<m:SyncState>{s}</m:SyncState>"))
        .unwrap_or_default();
    format!(
        r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId><t:DistinguishedFolderId Id="calendar"/></m:SyncFolderId>{state}<m:MaxChangesReturned>{max}</m:MaxChangesReturned><m:SyncScope>NormalItems</m:SyncScope></m:SyncFolderItems>"#
    )
}

fn text_of(el: &Element, name: &str) -> Option<String> {
    first(el, name).map(|e| e.text.clone())
}

fn calendar_items(x: &Element) -> Vec<&Element> {
    all(x, "CalendarItem")
}

/// (kind, item id) of every change in a SyncFolderItems answer, plus state and last flag.
fn sync_changes(r: &Resp) -> (Vec<(String, String)>, String, bool) {
    let x = r.xml();
    let changes = first(&x, "Changes")
        .map(|c| {
            c.children
                .iter()
                .map(|ch| {
                    let id = first(ch, "ItemId")
                        .and_then(|i| i.attr("Id"))
                        .unwrap_or_default()
                        .to_string();
                    (ch.name.clone(), id)
                })
                .collect()
        })
        .unwrap_or_default();
    (
        changes,
        text_of(&x, "SyncState").unwrap_or_default(),
        text_of(&x, "IncludesLastItemInRange").as_deref() == Some("true"),
    )
}

async fn sim3() -> EwsSim {
    let sim = sim().await;
    sim.add_mailbox(CAROL).unwrap();
    sim
}

#[tokio::test]
async fn meeting_is_delivered_with_same_uid_and_without_the_crm_stamp() {
    let sim = sim3().await;
    let c = Cal::new(&sim);
    let item = meeting_xml(
        "Quarterly review",
        "ln:prod:activity:4711",
        &[BOB, CAROL, "ext@partner.example"],
        "",
        &times("2026-02-10T09:00:00", "2026-02-10T10:00:00"),
    );
    let r = c
        .call(ALICE, &create_op("SendToAllAndSaveCopy", &item))
        .await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    let (id, ck) = item_ids(&r).remove(0);

    let g = c.call(ALICE, &get_op(&item_id(&id, &ck))).await;
    assert_eq!(g.codes(), vec!["NoError"], "{}", g.text);
    let x = g.xml();
    // Local 09:00 in Berlin (winter) is 08:00Z; the answer is in UTC.
    assert_eq!(
        text_of(&x, "Start").as_deref(),
        Some("2026-02-10T08:00:00Z")
    );
    assert_eq!(text_of(&x, "End").as_deref(), Some("2026-02-10T09:00:00Z"));
    assert_eq!(text_of(&x, "CalendarItemType").as_deref(), Some("Single"));
    assert_eq!(text_of(&x, "MyResponseType").as_deref(), Some("Organizer"));
    assert_eq!(text_of(&x, "IsOrganizer").as_deref(), Some("true"));
    assert_eq!(text_of(&x, "IsMeeting").as_deref(), Some("true"));
    assert_eq!(
        text_of(&x, "MeetingRequestWasSent").as_deref(),
        Some("true")
    );
    assert_eq!(text_of(&x, "Sensitivity").as_deref(), Some("Normal"));
    assert_eq!(
        text_of(&x, "ReminderMinutesBeforeStart").as_deref(),
        Some("10")
    );
    assert_eq!(
        text_of(&x, "Value").as_deref(),
        Some("ln:prod:activity:4711")
    );
    let org = first(&x, "Organizer").unwrap();
    assert_eq!(text_of(org, "EmailAddress").as_deref(), Some(ALICE));
    let atts = all(&x, "Attendee");
    assert_eq!(atts.len(), 3);
    assert!(
        atts.iter()
            .all(|a| text_of(a, "ResponseType").as_deref() == Some("Unknown"))
    );
    assert_eq!(
        first(&x, "StartTimeZone").and_then(|z| z.attr("Id")),
        Some(BERLIN)
    );
    let uid = text_of(&x, "UID").unwrap();

    // Bob and Carol have a copy with the same UID, no CrmId, awaiting their answer.
    for mb in [BOB, CAROL] {
        let copies = sim.calendar_items(mb).unwrap();
        assert_eq!(copies.len(), 1, "{mb}");
        let copy = &copies[0];
        let cal = copy.item.as_calendar().unwrap();
        assert_eq!(cal.uid, uid);
        assert!(!cal.is_organizer);
        assert_eq!(cal.my_response_type, "NoResponseReceived");
        assert!(copy.item.extended(&ExtendedPropertyKey::crm_id()).is_none());
        assert_eq!(copy.item.subject.as_deref(), Some("Quarterly review"));
        // Through EWS too: the copy is a meeting organized by Alice.
        let g = c
            .call(
                mb,
                &get_op(&item_id(copy.id.as_str(), copy.change_key.as_str())),
            )
            .await;
        let x = g.xml();
        assert_eq!(text_of(&x, "UID").as_deref(), Some(uid.as_str()));
        assert_eq!(text_of(&x, "IsOrganizer").as_deref(), Some("false"));
        assert!(all(&x, "Value").is_empty(), "copy must not carry the CrmId");
    }

    // SendToNone: a meeting that nobody hears about.
    let quiet = meeting_xml(
        "Quiet",
        "ln:prod:activity:1",
        &[BOB],
        "",
        &times("2026-02-11T09:00:00Z", "2026-02-11T10:00:00Z"),
    );
    let r = c.call(ALICE, &create_op("SendToNone", &quiet)).await;
    assert_eq!(r.codes(), vec!["NoError"]);
    assert_eq!(sim.calendar_items(BOB).unwrap().len(), 1);

    // Calendar items need SendMeetingInvitations (per item), and calendar folders.
    let r = c
        .call(
            ALICE,
            &format!(r#"<m:CreateItem><m:Items>{quiet}</m:Items></m:CreateItem>"#),
        )
        .await;
    assert_eq!(r.codes(), vec!["ErrorSendMeetingInvitationsRequired"]);
    let r = c
        .call(
            ALICE,
            &format!(r#"<m:CreateItem SendMeetingInvitations="SendToNone"><m:SavedItemFolderId><t:DistinguishedFolderId Id="contacts"/></m:SavedItemFolderId><m:Items>{quiet}</m:Items></m:CreateItem>"#),
        )
        .await;
    assert_eq!(
        r.codes(),
        vec!["ErrorCannotCreateCalendarItemInNonCalendarFolder"]
    );

    // Finding our meeting by its CrmId stamp.
    let r = c
        .call(
            ALICE,
            &format!(
                r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>{CRM_URI}</t:AdditionalProperties></m:ItemShape><m:Restriction><t:IsEqualTo>{CRM_URI}<t:FieldURIOrConstant><t:Constant Value="ln:prod:activity:4711"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction><m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>"#
            ),
        )
        .await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    assert_eq!(
        item_ids(&r).into_iter().map(|(i, _)| i).collect::<Vec<_>>(),
        vec![id]
    );
    c.validate(&sim);
}

#[tokio::test]
async fn responses_reach_the_organizer_and_move_its_change_key() {
    let sim = sim3().await;
    let c = Cal::new(&sim);
    let created = sim
        .user_create_event(
            ALICE,
            NewEvent::new(
                "Planning",
                local("2026-05-04T14:00"),
                local("2026-05-04T15:00"),
            )
            .in_zone(BERLIN)
            .with_attendees(&[BOB, CAROL]),
        )
        .unwrap();
    let s0 = c.call(ALICE, &sync_op(None, 100)).await;
    let (changes, state, _) = sync_changes(&s0);
    assert_eq!(changes, vec![("Create".to_string(), created.id.0.clone())]);

    // Bob accepts through EWS (CreateItem with t:AcceptItem).
    let bob_copy = sim.event_by_uid(BOB, &created.uid).unwrap();
    let r = c
        .call(
            BOB,
            &format!(
                r#"<m:CreateItem MessageDisposition="SendAndSaveCopy"><m:Items><t:AcceptItem><t:ReferenceItemId Id="{}" ChangeKey="{}"/></t:AcceptItem></m:Items></m:CreateItem>"#,
                bob_copy.id, bob_copy.change_key
            ),
        )
        .await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    let bob_copy = sim.event_by_uid(BOB, &created.uid).unwrap();
    assert_eq!(
        bob_copy.item.as_calendar().unwrap().my_response_type,
        "Accept"
    );

    // Carol declines in Outlook: her copy leaves the calendar.
    let carol_copy = sim.event_by_uid(CAROL, &created.uid).unwrap();
    let cs0 = c.call(CAROL, &sync_op(None, 100)).await;
    let (_, carol_state, _) = sync_changes(&cs0);
    sim.user_respond(CAROL, &carol_copy.id, Response::Decline, true)
        .unwrap();
    assert!(sim.event_by_uid(CAROL, &created.uid).is_none());
    let cs1 = c.call(CAROL, &sync_op(Some(&carol_state), 100)).await;
    assert_eq!(
        sync_changes(&cs1).0,
        vec![("Delete".to_string(), carol_copy.id.0.clone())]
    );

    // The organizer's item records both answers; its ChangeKey moved, so sync shows an Update.
    let org = sim.item(ALICE, &created.id).unwrap();
    assert_ne!(org.change_key, created.change_key);
    let cal = org.item.as_calendar().unwrap();
    let resp: Vec<(&str, &str)> = cal
        .all_attendees()
        .map(|a| (a.email.as_str(), a.response_type.as_str()))
        .collect();
    assert_eq!(resp, vec![(BOB, "Accept"), (CAROL, "Decline")]);
    assert!(cal.all_attendees().all(|a| a.last_response_time.is_some()));
    let s1 = c.call(ALICE, &sync_op(Some(&state), 100)).await;
    assert_eq!(
        sync_changes(&s1).0,
        vec![("Update".to_string(), created.id.0.clone())]
    );
    let g = c
        .call(
            ALICE,
            &get_op(&item_id(org.id.as_str(), org.change_key.as_str())),
        )
        .await;
    let x = g.xml();
    let bob_att = all(&x, "Attendee")
        .into_iter()
        .find(|a| text_of(a, "EmailAddress").as_deref() == Some(BOB))
        .unwrap();
    assert_eq!(text_of(bob_att, "ResponseType").as_deref(), Some("Accept"));
    assert!(text_of(bob_att, "LastResponseTime").is_some());

    // The organizer cannot answer their own meeting.
    let r = c
        .call(
            ALICE,
            &format!(
                r#"<m:CreateItem MessageDisposition="SendAndSaveCopy"><m:Items><t:DeclineItem><t:ReferenceItemId Id="{}"/></t:DeclineItem></m:Items></m:CreateItem>"#,
                org.id
            ),
        )
        .await;
    assert_eq!(r.codes(), vec!["ErrorCalendarIsOrganizerForDecline"]);
    c.validate(&sim);
}

#[tokio::test]
async fn updates_and_cancellations_reach_attendee_copies() {
    let sim = sim3().await;
    let c = Cal::new(&sim);
    let item = meeting_xml(
        "Kick-off",
        "ln:prod:activity:7",
        &[BOB],
        "",
        &times("2026-06-01T10:00:00Z", "2026-06-01T11:00:00Z"),
    );
    let r = c
        .call(ALICE, &create_op("SendToAllAndSaveCopy", &item))
        .await;
    let (id, _) = item_ids(&r).remove(0);
    let uid = sim
        .item(ALICE, &ItemId(id.clone()))
        .unwrap()
        .item
        .as_calendar()
        .unwrap()
        .uid
        .clone();
    sim.user_respond(
        BOB,
        &sim.event_by_uid(BOB, &uid).unwrap().id,
        Response::Accept,
        true,
    )
    .unwrap();
    let ck = sim.item(ALICE, &ItemId(id.clone())).unwrap().change_key.0;

    // Move it an hour later, add Carol, send to all.
    let upd = format!(
        r#"<m:UpdateItem ConflictResolution="AutoResolve" SendMeetingInvitationsOrCancellations="SendToAllAndSaveCopy"><m:ItemChanges><t:ItemChange>{}<t:Updates><t:SetItemField><t:FieldURI FieldURI="calendar:Start"/><t:CalendarItem><t:Start>2026-06-01T11:00:00Z</t:Start></t:CalendarItem></t:SetItemField><t:SetItemField><t:FieldURI FieldURI="calendar:End"/><t:CalendarItem><t:End>2026-06-01T12:00:00Z</t:End></t:CalendarItem></t:SetItemField><t:SetItemField><t:FieldURI FieldURI="calendar:RequiredAttendees"/><t:CalendarItem><t:RequiredAttendees><t:Attendee><t:Mailbox><t:EmailAddress>{BOB}</t:EmailAddress></t:Mailbox></t:Attendee><t:Attendee><t:Mailbox><t:EmailAddress>{CAROL}</t:EmailAddress></t:Mailbox></t:Attendee></t:RequiredAttendees></t:CalendarItem></t:SetItemField><t:DeleteItemField><t:FieldURI FieldURI="calendar:Location"/></t:DeleteItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#,
        item_id(&id, &ck)
    );
    let r = c.call(ALICE, &upd).await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    let bob = sim.event_by_uid(BOB, &uid).unwrap();
    let bc = bob.item.as_calendar().unwrap();
    assert_eq!(bc.start, utc("2026-06-01T11:00:00Z"));
    assert_eq!(bc.location, None);
    assert_eq!(
        bc.my_response_type, "Accept",
        "the attendee's own answer survives"
    );
    let org = sim.item(ALICE, &ItemId(id.clone())).unwrap();
    let oc = org.item.as_calendar().unwrap();
    assert_eq!(oc.required_attendees[0].response_type, "Accept");
    assert_eq!(oc.required_attendees[1].response_type, "Unknown");
    assert_eq!(oc.appointment_sequence_number, 1);
    assert!(sim.event_by_uid(CAROL, &uid).is_some(), "Carol was invited");

    // Without the send attribute a calendar update is refused per item.
    let r = c
        .call(
            ALICE,
            &format!(
                r#"<m:UpdateItem ConflictResolution="AutoResolve"><m:ItemChanges><t:ItemChange>{}<t:Updates><t:SetItemField><t:FieldURI FieldURI="item:Subject"/><t:CalendarItem><t:Subject>x</t:Subject></t:CalendarItem></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#,
                item_id(&id, org.change_key.as_str())
            ),
        )
        .await;
    assert_eq!(
        r.codes(),
        vec!["ErrorSendMeetingInvitationsOrCancellationsRequired"]
    );

    // Delete without SendMeetingCancellations → per-item error; with it → copies cancelled.
    let del = |send: &str| {
        format!(
            r#"<m:DeleteItem DeleteType="MoveToDeletedItems"{send}><m:ItemIds>{}</m:ItemIds></m:DeleteItem>"#,
            item_id(&id, org.change_key.as_str())
        )
    };
    let r = c.call(ALICE, &del("")).await;
    assert_eq!(r.codes(), vec!["ErrorSendMeetingCancellationsRequired"]);
    let r = c
        .call(
            ALICE,
            &del(r#" SendMeetingCancellations="SendToAllAndSaveCopy""#),
        )
        .await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    assert!(sim.calendar_items(ALICE).unwrap().is_empty());
    for mb in [BOB, CAROL] {
        let copy = sim.event_by_uid(mb, &uid).unwrap();
        assert!(copy.item.as_calendar().unwrap().is_cancelled, "{mb}");
        assert_eq!(copy.item.subject.as_deref(), Some("Canceled: Kick-off"));
    }
    // A cancelled meeting cannot be accepted any more.
    let err = sim
        .user_respond(
            BOB,
            &sim.event_by_uid(BOB, &uid).unwrap().id,
            Response::Accept,
            true,
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("ErrorCalendarIsCancelledForAccept")
    );
    c.validate(&sim);
}

fn weekly_series_xml(count: u32) -> String {
    let rec = format!(
        "<t:Recurrence><t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Monday</t:DaysOfWeek></t:WeeklyRecurrence><t:NumberedRecurrence><t:StartDate>2026-03-16</t:StartDate><t:NumberOfOccurrences>{count}</t:NumberOfOccurrences></t:NumberedRecurrence></t:Recurrence>"
    );
    meeting_xml(
        "Weekly sync",
        "ln:prod:activity:99",
        &[BOB],
        &rec,
        &times("2026-03-16T09:00:00", "2026-03-16T09:30:00"),
    )
}

#[tokio::test]
async fn weekly_series_keeps_nine_o_clock_across_the_dst_switch() {
    let sim = sim3().await;
    let c = Cal::new(&sim);
    let r = c
        .call(
            ALICE,
            &create_op("SendToAllAndSaveCopy", &weekly_series_xml(6)),
        )
        .await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    let (id, ck) = item_ids(&r).remove(0);

    let v = c
        .call(
            ALICE,
            &view_op("2026-03-01T00:00:00Z", "2026-05-01T00:00:00Z", None),
        )
        .await;
    assert_eq!(v.codes(), vec!["NoError"], "{}", v.text);
    let x = v.xml();
    let items = calendar_items(&x);
    assert_eq!(items.len(), 6);
    let starts: Vec<String> = items.iter().map(|i| text_of(i, "Start").unwrap()).collect();
    // 29 March 2026 is the switch: 09:00 CET = 08:00Z before, 09:00 CEST = 07:00Z after.
    assert_eq!(
        starts,
        vec![
            "2026-03-16T08:00:00Z",
            "2026-03-23T08:00:00Z",
            "2026-03-30T07:00:00Z",
            "2026-04-06T07:00:00Z",
            "2026-04-13T07:00:00Z",
            "2026-04-20T07:00:00Z",
        ]
    );
    let berlin = chrono_tz::Europe::Berlin;
    for s in &starts {
        assert_eq!(utc(s).with_timezone(&berlin).hour(), 9, "{s}");
    }
    assert!(
        items
            .iter()
            .all(|i| text_of(i, "CalendarItemType").as_deref() == Some("Occurrence"))
    );
    let uid = text_of(items[0], "UID").unwrap();
    assert!(
        items
            .iter()
            .all(|i| text_of(i, "UID").as_deref() == Some(uid.as_str()))
    );
    assert_eq!(
        text_of(items[2], "OriginalStart").as_deref(),
        Some("2026-03-30T07:00:00Z")
    );

    // The master: recurrence, first/last occurrence, zone; an occurrence by index.
    let g = c.call(ALICE, &get_op(&item_id(&id, &ck))).await;
    let x = g.xml();
    assert_eq!(
        text_of(&x, "CalendarItemType").as_deref(),
        Some("RecurringMaster")
    );
    assert_eq!(text_of(&x, "DaysOfWeek").as_deref(), Some("Monday"));
    assert_eq!(
        text_of(&x, "StartDate").as_deref(),
        Some("2026-03-16+01:00")
    );
    assert_eq!(
        first(&x, "LastOccurrence")
            .and_then(|l| text_of(l, "Start"))
            .as_deref(),
        Some("2026-04-20T07:00:00Z")
    );
    let g = c
        .call(
            ALICE,
            &get_op(&format!(
                r#"<t:OccurrenceItemId RecurringMasterId="{id}" InstanceIndex="4"/>"#
            )),
        )
        .await;
    assert_eq!(g.codes(), vec!["NoError"], "{}", g.text);
    assert_eq!(
        text_of(&g.xml(), "Start").as_deref(),
        Some("2026-04-06T07:00:00Z")
    );
    let g = c
        .call(
            ALICE,
            &get_op(&format!(
                r#"<t:OccurrenceItemId RecurringMasterId="{id}" InstanceIndex="7"/>"#
            )),
        )
        .await;
    assert_eq!(
        g.codes(),
        vec!["ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange"]
    );

    // Bob's copy expands the same way.
    let bob_view = sim
        .calendar_view(
            BOB,
            utc("2026-03-01T00:00:00Z"),
            utc("2026-05-01T00:00:00Z"),
        )
        .unwrap();
    assert_eq!(bob_view.len(), 6);
    assert!(
        bob_view
            .iter()
            .all(|e| e.local_start.time() == chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap())
    );
    c.validate(&sim);
}

#[tokio::test]
async fn moved_and_deleted_occurrences_in_calendar_view_and_sync() {
    let sim = sim3().await;
    let c = Cal::new(&sim);
    let r = c
        .call(
            ALICE,
            &create_op("SendToAllAndSaveCopy", &weekly_series_xml(4)),
        )
        .await;
    let (master, _) = item_ids(&r).remove(0);
    let (_, state, _) = sync_changes(&c.call(ALICE, &sync_op(None, 100)).await);

    // Move occurrence 2 (23 March) to Tuesday 11:00Z through its OccurrenceItemId.
    let ck = sim
        .item(ALICE, &ItemId(master.clone()))
        .unwrap()
        .change_key
        .0;
    let upd = format!(
        r#"<m:UpdateItem ConflictResolution="AutoResolve" SendMeetingInvitationsOrCancellations="SendToAllAndSaveCopy"><m:ItemChanges><t:ItemChange><t:OccurrenceItemId RecurringMasterId="{master}" ChangeKey="{ck}" InstanceIndex="2"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="calendar:Start"/><t:CalendarItem><t:Start>2026-03-24T11:00:00Z</t:Start></t:CalendarItem></t:SetItemField><t:SetItemField><t:FieldURI FieldURI="calendar:End"/><t:CalendarItem><t:End>2026-03-24T11:30:00Z</t:End></t:CalendarItem></t:SetItemField><t:SetItemField><t:FieldURI FieldURI="item:Subject"/><t:CalendarItem><t:Subject>Weekly sync (moved)</t:Subject></t:CalendarItem></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
    );
    let r = c.call(ALICE, &upd).await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    let (occ_id, _) = item_ids(&r).remove(0);
    assert_ne!(occ_id, master, "an occurrence has its own id");

    // Delete occurrence 3 by the id a calendar view gave.
    let v = c
        .call(
            ALICE,
            &view_op("2026-03-30T00:00:00Z", "2026-03-31T00:00:00Z", None),
        )
        .await;
    let (third, third_ck) = item_ids(&v).remove(0);
    let r = c
        .call(
            ALICE,
            &format!(
                r#"<m:DeleteItem DeleteType="MoveToDeletedItems" SendMeetingCancellations="SendToAllAndSaveCopy"><m:ItemIds>{}</m:ItemIds></m:DeleteItem>"#,
                item_id(&third, &third_ck)
            ),
        )
        .await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);

    let v = c
        .call(
            ALICE,
            &view_op("2026-03-01T00:00:00Z", "2026-05-01T00:00:00Z", None),
        )
        .await;
    let x = v.xml();
    let rows: Vec<(String, String)> = calendar_items(&x)
        .iter()
        .map(|i| {
            (
                text_of(i, "Start").unwrap(),
                text_of(i, "CalendarItemType").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("2026-03-16T08:00:00Z".to_string(), "Occurrence".to_string()),
            ("2026-03-24T11:00:00Z".to_string(), "Exception".to_string()),
            ("2026-04-06T07:00:00Z".to_string(), "Occurrence".to_string()),
        ]
    );
    let ex = calendar_items(&x)[1];
    assert_eq!(
        text_of(ex, "OriginalStart").as_deref(),
        Some("2026-03-23T08:00:00Z")
    );
    assert_eq!(
        text_of(ex, "Subject").as_deref(),
        Some("Weekly sync (moved)")
    );

    // The master lists them; the deleted occurrence answers as deleted.
    let m = sim.item(ALICE, &ItemId(master.clone())).unwrap();
    let g = c
        .call(ALICE, &get_op(&item_id(&master, m.change_key.as_str())))
        .await;
    let x = g.xml();
    let mods = first(&x, "ModifiedOccurrences").unwrap();
    assert_eq!(
        text_of(mods, "OriginalStart").as_deref(),
        Some("2026-03-23T08:00:00Z")
    );
    let dels = first(&x, "DeletedOccurrences").unwrap();
    assert_eq!(
        text_of(dels, "Start").as_deref(),
        Some("2026-03-30T07:00:00Z")
    );
    let g = c.call(ALICE, &get_op(&item_id(&third, &third_ck))).await;
    assert_eq!(
        g.codes(),
        vec!["ErrorCalendarOccurrenceIsDeletedFromRecurrence"]
    );
    // RecurringMasterItemId leads from an occurrence to its master.
    let g = c
        .call(
            ALICE,
            &get_op(&format!(
                r#"<t:RecurringMasterItemId OccurrenceId="{occ_id}"/>"#
            )),
        )
        .await;
    assert_eq!(
        item_ids(&g).first().map(|(i, _)| i.clone()),
        Some(master.clone())
    );

    // Sync: both changes coalesce into one Update of the master (singles and masters only).
    let (changes, _, last) = sync_changes(&c.call(ALICE, &sync_op(Some(&state), 100)).await);
    assert_eq!(changes, vec![("Update".to_string(), master.clone())]);
    assert!(last);

    // The attendee's copy followed (sent to all).
    let bob = sim
        .calendar_view(
            BOB,
            utc("2026-03-01T00:00:00Z"),
            utc("2026-05-01T00:00:00Z"),
        )
        .unwrap();
    let kinds: Vec<&str> = bob.iter().map(|e| e.item_type.as_str()).collect();
    assert_eq!(kinds, vec!["Occurrence", "Exception", "Occurrence"]);

    // The user moves the last occurrence in Outlook (admin-style edit on an occurrence id).
    let last_occ = bob.last().map(|e| e.original_start.unwrap()).unwrap();
    let occ = ews_sim::make_occurrence_id(&ItemId(master.clone()), last_occ);
    sim.user_edit_event(
        ALICE,
        &occ,
        EventEdit {
            start: Some(local("2026-04-06T15:00")),
            end: Some(local("2026-04-06T15:30")),
            ..Default::default()
        },
    )
    .unwrap();
    let alice = sim
        .calendar_view(
            ALICE,
            utc("2026-04-06T00:00:00Z"),
            utc("2026-04-07T00:00:00Z"),
        )
        .unwrap();
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0].start, utc("2026-04-06T13:00:00Z"));
    assert_eq!(alice[0].item_type, "Exception");
    c.validate(&sim);
}

#[tokio::test]
async fn stale_change_key_conflicts_for_calendar_updates() {
    let sim = sim3().await;
    let c = Cal::new(&sim);
    let created = sim
        .user_create_event(
            ALICE,
            NewEvent::new("Solo", local("2026-07-01T08:00"), local("2026-07-01T09:00")),
        )
        .unwrap();
    // The user edits in Outlook: the client's ChangeKey is now stale.
    sim.user_edit_event(
        ALICE,
        &created.id,
        EventEdit {
            location: Some("Room 9".into()),
            ..Default::default()
        },
    )
    .unwrap();
    for mode in ["NeverOverwrite", "AutoResolve"] {
        let r = c
            .call(
                ALICE,
                &format!(
                    r#"<m:UpdateItem ConflictResolution="{mode}" SendMeetingInvitationsOrCancellations="SendToNone"><m:ItemChanges><t:ItemChange>{}<t:Updates><t:SetItemField><t:FieldURI FieldURI="calendar:Location"/><t:CalendarItem><t:Location>Room 2</t:Location></t:CalendarItem></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#,
                    item_id(created.id.as_str(), created.change_key.as_str())
                ),
            )
            .await;
        assert_eq!(r.codes(), vec!["ErrorIrresolvableConflict"], "{mode}");
    }
    let now = sim.item(ALICE, &created.id).unwrap();
    assert_eq!(
        now.item.as_calendar().unwrap().location.as_deref(),
        Some("Room 9")
    );
    // With the fresh key the update applies and returns a new ChangeKey.
    let r = c
        .call(
            ALICE,
            &format!(
                r#"<m:UpdateItem ConflictResolution="AutoResolve" SendMeetingInvitationsOrCancellations="SendToNone"><m:ItemChanges><t:ItemChange>{}<t:Updates><t:SetItemField><t:FieldURI FieldURI="calendar:Location"/><t:CalendarItem><t:Location>Room 2</t:Location></t:CalendarItem></t:SetItemField><t:SetItemField><t:FieldURI FieldURI="item:Sensitivity"/><t:CalendarItem><t:Sensitivity>Private</t:Sensitivity></t:CalendarItem></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#,
                item_id(created.id.as_str(), now.change_key.as_str())
            ),
        )
        .await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    let (_, ck) = item_ids(&r).remove(0);
    assert_ne!(ck, now.change_key.0);
    let after = sim.item(ALICE, &created.id).unwrap();
    assert_eq!(after.item.as_calendar().unwrap().sensitivity, "Private");
    c.validate(&sim);
}

#[tokio::test]
async fn calendar_view_and_sync_paging_and_limits() {
    let sim = sim3().await;
    let c = Cal::new(&sim);
    for day in 1..=5 {
        sim.user_create_event(
            ALICE,
            NewEvent::new(
                &format!("Day {day}"),
                NaiveDate::from_ymd_opt(2026, 9, day)
                    .unwrap()
                    .and_hms_opt(10, 0, 0)
                    .unwrap(),
                NaiveDate::from_ymd_opt(2026, 9, day)
                    .unwrap()
                    .and_hms_opt(11, 0, 0)
                    .unwrap(),
            ),
        )
        .unwrap();
    }
    // Page by MaxEntriesReturned, advancing StartDate past the last start seen.
    let mut seen = Vec::new();
    let mut start = "2026-09-01T00:00:00Z".to_string();
    loop {
        let v = c
            .call(ALICE, &view_op(&start, "2026-10-01T00:00:00Z", Some(2)))
            .await;
        assert_eq!(v.codes(), vec!["NoError"]);
        let x = v.xml();
        let root = first(&x, "RootFolder").unwrap();
        let last = root.attr("IncludesLastItemInRange") == Some("true");
        let items = calendar_items(&x);
        for i in &items {
            seen.push(text_of(i, "Subject").unwrap());
        }
        if last {
            break;
        }
        assert_eq!(items.len(), 2);
        let last_end = text_of(items[items.len() - 1], "End").unwrap();
        start = last_end;
    }
    assert_eq!(seen, vec!["Day 1", "Day 2", "Day 3", "Day 4", "Day 5"]);
    let v = c
        .call(
            ALICE,
            &view_op("2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z", Some(2)),
        )
        .await;
    let x = v.xml();
    assert_eq!(
        first(&x, "RootFolder").and_then(|r| r.attr("TotalItemsInView")),
        Some("5")
    );

    // More than two years → ErrorCalendarViewRangeTooBig; a non-calendar folder is refused.
    let v = c
        .call(
            ALICE,
            &view_op("2026-01-01T00:00:00Z", "2028-06-01T00:00:00Z", None),
        )
        .await;
    assert_eq!(v.codes(), vec!["ErrorCalendarViewRangeTooBig"]);
    let v = c
        .call(
            ALICE,
            &view_op("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", None)
                .replace(r#"Id="calendar""#, r#"Id="contacts""#),
        )
        .await;
    assert_eq!(
        v.codes(),
        vec!["ErrorCalendarFolderIsInvalidForCalendarView"]
    );

    // SyncFolderItems pages 2 at a time; a forged state is refused.
    let mut state: Option<String> = None;
    let mut creates = 0;
    let mut calls = 0;
    loop {
        let r = c.call(ALICE, &sync_op(state.as_deref(), 2)).await;
        let (changes, s, last) = sync_changes(&r);
        calls += 1;
        creates += changes.iter().filter(|(k, _)| k == "Create").count();
        state = Some(s);
        if last {
            break;
        }
    }
    assert_eq!((creates, calls), (5, 3));
    let r = c
        .call(ALICE, &sync_op(Some("H4sIAAAAAAAEAO29B2AcSZ=="), 2))
        .await;
    assert_eq!(r.codes(), vec!["ErrorInvalidSyncStateData"]);

    // Throttling and the request log work for calendar operations as for contacts.
    sim.add_fault(
        ews_sim::FaultRule::item_error(0, "ErrorInternalServerTransientError")
            .for_operation("FindItem")
            .for_mailbox(ALICE),
    );
    let v = c
        .call(
            ALICE,
            &view_op("2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z", None),
        )
        .await;
    assert_eq!(v.codes(), vec!["ErrorInternalServerTransientError"]);
    assert!(sim.count_operation_for_mailbox("FindItem", ALICE) >= 6);
    c.validate(&sim);
}

#[tokio::test]
async fn all_day_and_monthly_series_and_clock() {
    let sim = sim3().await;
    let c = Cal::new(&sim);
    // An all-day event given with odd times is widened to midnights in its zone.
    let item = format!(
        r#"<t:CalendarItem><t:Subject>Offsite</t:Subject><t:Start>2026-10-05T10:00:00</t:Start><t:End>2026-10-05T12:00:00</t:End><t:IsAllDayEvent>true</t:IsAllDayEvent><t:StartTimeZone Id="{BERLIN}"/></t:CalendarItem>"#
    );
    let r = c.call(ALICE, &create_op("SendToNone", &item)).await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    let (id, _) = item_ids(&r).remove(0);
    let cal = sim
        .item(ALICE, &ItemId(id))
        .unwrap()
        .item
        .as_calendar()
        .cloned()
        .unwrap();
    assert_eq!(cal.start, utc("2026-10-04T22:00:00Z"));
    assert_eq!(cal.end, utc("2026-10-05T22:00:00Z"));

    // Last Tuesday of every month, three times, created by the user.
    let created = sim
        .user_create_event(
            BOB,
            NewEvent::new(
                "Board",
                local("2026-01-01T16:00"),
                local("2026-01-01T17:00"),
            )
            .in_zone("Pacific Standard Time")
            .with_recurrence(Recurrence {
                pattern: Pattern::RelativeMonthly {
                    interval: 1,
                    days_of_week: "Tuesday".into(),
                    day_of_week_index: "Last".into(),
                },
                range: Range::Numbered {
                    start_date: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
                    number_of_occurrences: 3,
                },
            }),
        )
        .unwrap();
    let view = sim
        .calendar_view(
            BOB,
            utc("2026-01-01T00:00:00Z"),
            utc("2026-12-31T00:00:00Z"),
        )
        .unwrap();
    let days: Vec<String> = view.iter().map(|e| e.local_start.to_string()).collect();
    assert_eq!(
        days,
        vec![
            "2026-01-27 16:00:00",
            "2026-02-24 16:00:00",
            "2026-03-31 16:00:00"
        ]
    );
    assert!(view.iter().all(|e| e.uid == created.uid));

    // The clock moves; modification times follow it.
    let t = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    sim.set_clock(t);
    sim.user_edit_event(
        BOB,
        &created.id,
        EventEdit {
            subject: Some("Board (new)".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let m = sim.item(BOB, &created.id).unwrap();
    assert!(m.modified >= t && m.modified < t + chrono::TimeDelta::minutes(1));
    c.validate(&sim);
}

#[tokio::test]
async fn admin_api_drives_the_calendar_over_http() {
    let sim = sim3().await;
    let http = reqwest::Client::new();
    let base = sim.base_url();
    let enc = |id: &str| {
        id.replace('/', "%2F")
            .replace('+', "%2B")
            .replace('=', "%3D")
    };
    let r = http
        .post(format!("{base}/_sim/mailboxes/{ALICE}/events"))
        .json(&serde_json::json!({
            "subject": "Review", "start": "2026-03-16T09:00:00", "end": "2026-03-16T10:00:00",
            "time_zone": BERLIN, "required_attendees": [BOB], "sensitivity": "Private",
            "recurrence": {"pattern": {"type": "weekly", "interval": 1, "days_of_week": ["Monday"]},
                           "range": {"type": "numbered", "start_date": "2026-03-16", "number_of_occurrences": 3}}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.unwrap();
    let uid = created["uid"].as_str().unwrap().to_string();

    let list = |mb: &'static str| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let v: serde_json::Value = http
                .get(format!(
                    "{base}/_sim/mailboxes/{mb}/calendar?start=2026-03-01T00:00:00Z&end=2026-05-01T00:00:00Z"
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["events"].as_array().unwrap().clone()
        }
    };
    let bob = list(BOB).await;
    assert_eq!(bob.len(), 3);
    assert_eq!(bob[0]["uid"], uid.as_str());
    assert_eq!(bob[0]["my_response_type"], "NoResponseReceived");

    // Bob accepts (on an occurrence: answers apply to the series).
    let r = http
        .post(format!(
            "{base}/_sim/mailboxes/{BOB}/events/{}/respond",
            enc(bob[1]["id"].as_str().unwrap())
        ))
        .json(&serde_json::json!({"response": "accept"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let org = sim.event_by_uid(ALICE, &uid).unwrap();
    assert_eq!(
        org.item.as_calendar().unwrap().required_attendees[0].response_type,
        "Accept"
    );

    // Alice moves the second occurrence and deletes the third.
    let alice = list(ALICE).await;
    let r = http
        .patch(format!(
            "{base}/_sim/mailboxes/{ALICE}/events/{}",
            enc(alice[1]["id"].as_str().unwrap())
        ))
        .json(&serde_json::json!({"start": "2026-03-24T09:00:00", "end": "2026-03-24T10:00:00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = http
        .delete(format!(
            "{base}/_sim/mailboxes/{ALICE}/events/{}?send=true",
            enc(alice[2]["id"].as_str().unwrap())
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let bob = list(BOB).await;
    let kinds: Vec<&str> = bob
        .iter()
        .map(|e| e["item_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["Occurrence", "Exception"]);
    assert_eq!(bob[1]["local_start"], "2026-03-24T09:00:00");

    // Alice cancels the meeting; Bob's copy is marked cancelled.
    let r = http
        .delete(format!(
            "{base}/_sim/mailboxes/{ALICE}/events/{}",
            enc(created["id"].as_str().unwrap())
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let bob = list(BOB).await;
    assert!(bob.iter().all(|e| e["is_cancelled"] == true));

    // The clock.
    let r: serde_json::Value = http
        .post(format!("{base}/_sim/clock"))
        .json(&serde_json::json!({"now": "2031-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["now"].as_str().unwrap().starts_with("2031-01-01T00:00"));
}

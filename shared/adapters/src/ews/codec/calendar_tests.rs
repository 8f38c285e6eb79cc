//! Calendar codec tests: every calendar request validated against the EWS schemas, golden bodies
//! for element order and attributes, and calendar item parsing.

use chrono::{DateTime, TimeZone, Utc};

use super::calendar::{parse_date_time, utc_text};
use super::schema_check;
use super::*;

const MAILBOX: &str = "alice@corp.example";

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("valid instant")
}

fn calendar() -> FolderRef {
    FolderRef::Distinguished(DistinguishedFolder::Calendar)
}

fn person(name: Option<&str>, email: &str) -> Recipient {
    Recipient {
        name: name.map(str::to_owned),
        email: Some(email.to_owned()),
    }
}

fn meeting() -> CalendarWrite {
    CalendarWrite {
        stamp: Some("ln:prod:activity:A1".into()),
        subject: Some("Quarterly review <CRM> & more".into()),
        body: Some("Agenda\nline 2".into()),
        categories: vec!["Blue".into(), "Call".into()],
        reminder_minutes: Some(15),
        start: "2026-02-10T08:00:00Z".into(),
        end: "2026-02-10T09:00:00Z".into(),
        all_day: false,
        free_busy: "Busy",
        location: Some("Room 1".into()),
        attendees: Some(AttendeeLists {
            required: vec![person(Some("Bob"), "bob@corp.example")],
            optional: vec![person(None, "carol@corp.example")],
            resources: vec![person(Some("Room 1"), "room1@corp.example")],
        }),
        time_zone: Some("W. Europe Standard Time".into()),
    }
}

fn all_day_appointment() -> CalendarWrite {
    CalendarWrite {
        stamp: Some("ln:prod:activity:A2".into()),
        subject: Some("Offsite".into()),
        body: None,
        categories: vec![],
        reminder_minutes: None,
        start: "2026-03-29T00:00:00+01:00".into(),
        end: "2026-03-30T00:00:00+02:00".into(),
        all_day: true,
        free_busy: "OOF",
        location: None,
        attendees: Some(AttendeeLists::default()),
        time_zone: Some("W. Europe Standard Time".into()),
    }
}

fn minimal() -> CalendarWrite {
    CalendarWrite {
        stamp: None,
        subject: None,
        body: None,
        categories: vec![],
        reminder_minutes: None,
        start: "2026-02-10T08:00:00Z".into(),
        end: "2026-02-10T08:30:00Z".into(),
        all_day: false,
        free_busy: "Free",
        location: None,
        attendees: None,
        time_zone: None,
    }
}

fn changes() -> Vec<CalendarChange> {
    let mut cleared = all_day_appointment();
    cleared.stamp = None;
    vec![
        CalendarChange {
            id: ItemId::new("AAMkEv1", Some("CK1".into())),
            write: meeting(),
        },
        CalendarChange {
            id: ItemId::new("AAMkEv2", Some("CK2".into())),
            write: cleared,
        },
        CalendarChange {
            id: ItemId::new("AAMkEv3", Some("CK3".into())),
            write: minimal(),
        },
    ]
}

fn body(xml: &str) -> &str {
    let start = xml.find("<soap:Body>").expect("body") + "<soap:Body>".len();
    let end = xml.find("</soap:Body>").expect("body end");
    &xml[start..end]
}

/// One envelope per calendar builder and interesting variant.
fn every_calendar_request() -> Vec<String> {
    let env = Envelope::new(MAILBOX);
    let folder = calendar();
    let items = vec![meeting(), all_day_appointment(), minimal()];
    let changes = changes();
    let ids = vec![
        ItemId::new("AAMkEv1", Some("CK1".into())),
        ItemId::new("AAMkEv2", None),
    ];
    let occurrences = vec!["AAMkOcc1".to_owned(), "AAMkOcc2".to_owned()];
    let mut out = vec![
        env.build(&FindCalendarView {
            folder: &folder,
            start: at(2026, 1, 1, 0, 0),
            end: at(2027, 1, 1, 0, 0),
            max_entries: 500,
        }),
        env.build(&GetCalendarItems { ids: &ids }),
        env.build(&GetRecurringMasters {
            occurrence_ids: &occurrences,
        }),
        env.build(&GetItems {
            ids: &ids,
            properties: &[PropertyPath::Field("item:Categories")],
        }),
        env.build(&GetItems {
            ids: &ids,
            properties: &[PropertyPath::Field("calendar:UID")],
        }),
        env.build(&FindItems {
            folder: &folder,
            restriction: Restriction::crm_id_in(&["ln:prod:activity:A1", "ln:prod:activity:A2"]),
            page: Page::first(500),
        }),
        env.build(&SyncFolderItems {
            folder: &folder,
            sync_state: Some("H4sIAAA="),
            max_changes: 512,
        }),
    ];
    for send in [
        MeetingMessages::SendToAllAndSaveCopy,
        MeetingMessages::SendToNone,
    ] {
        out.push(env.build(&CreateCalendarItems {
            folder: &folder,
            items: &items,
            send,
        }));
        out.push(env.build(&UpdateCalendarItems {
            changes: &changes,
            send,
        }));
        out.push(env.build(&CancelCalendarItems { ids: &ids, send }));
    }
    out
}

#[test]
fn every_calendar_request_validates_against_the_ews_schemas() {
    schema_check::assert_valid(&every_calendar_request());
}

#[test]
fn the_schema_check_rejects_a_calendar_item_with_start_after_location() {
    let Some(dir) = schema_check::schema_dir_or_skip() else {
        return;
    };
    let good = Envelope::new(MAILBOX).build(&CreateCalendarItems {
        folder: &calendar(),
        items: &[meeting()],
        send: MeetingMessages::SendToNone,
    });
    let start = "<t:Start>2026-02-10T08:00:00Z</t:Start>";
    let mutant = good.replacen(start, "", 1).replacen(
        "<t:RequiredAttendees>",
        &format!("{start}<t:RequiredAttendees>"),
        1,
    );
    assert_ne!(good, mutant);
    let result = ews_sim::schema::validate_requests(&[mutant], &dir);
    assert!(
        matches!(result, Err(ews_sim::SchemaError::Invalid(_))),
        "a misordered calendar item must fail: {result:?}"
    );
}

#[test]
fn golden_create_meeting_in_xsd_order() {
    let xml = Envelope::new(MAILBOX).build(&CreateCalendarItems {
        folder: &calendar(),
        items: &[meeting()],
        send: MeetingMessages::SendToAllAndSaveCopy,
    });
    let expected = concat!(
        r#"<m:CreateItem SendMeetingInvitations="SendToAllAndSaveCopy"><m:SavedItemFolderId><t:DistinguishedFolderId Id="calendar"/></m:SavedItemFolderId><m:Items><t:CalendarItem>"#,
        r#"<t:Subject>Quarterly review &lt;CRM&gt; &amp; more</t:Subject><t:Body BodyType="Text">Agenda"#,
        "\n",
        r#"line 2</t:Body><t:Categories><t:String>Blue</t:String><t:String>Call</t:String></t:Categories>"#,
        r#"<t:ReminderIsSet>true</t:ReminderIsSet><t:ReminderMinutesBeforeStart>15</t:ReminderMinutesBeforeStart>"#,
        r#"<t:ExtendedProperty><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="CrmId" PropertyType="String"/><t:Value>ln:prod:activity:A1</t:Value></t:ExtendedProperty>"#,
        r#"<t:Start>2026-02-10T08:00:00Z</t:Start><t:End>2026-02-10T09:00:00Z</t:End><t:IsAllDayEvent>false</t:IsAllDayEvent>"#,
        r#"<t:LegacyFreeBusyStatus>Busy</t:LegacyFreeBusyStatus><t:Location>Room 1</t:Location>"#,
        r#"<t:RequiredAttendees><t:Attendee><t:Mailbox><t:Name>Bob</t:Name><t:EmailAddress>bob@corp.example</t:EmailAddress></t:Mailbox></t:Attendee></t:RequiredAttendees>"#,
        r#"<t:OptionalAttendees><t:Attendee><t:Mailbox><t:EmailAddress>carol@corp.example</t:EmailAddress></t:Mailbox></t:Attendee></t:OptionalAttendees>"#,
        r#"<t:Resources><t:Attendee><t:Mailbox><t:Name>Room 1</t:Name><t:EmailAddress>room1@corp.example</t:EmailAddress></t:Mailbox></t:Attendee></t:Resources>"#,
        r#"<t:StartTimeZone Id="W. Europe Standard Time"/><t:EndTimeZone Id="W. Europe Standard Time"/>"#,
        r#"</t:CalendarItem></m:Items></m:CreateItem>"#
    );
    assert_eq!(body(&xml), expected);
}

#[test]
fn an_all_day_appointment_is_written_as_local_midnights_without_empty_attendee_lists() {
    let xml = Envelope::new(MAILBOX).build(&CreateCalendarItems {
        folder: &calendar(),
        items: &[all_day_appointment()],
        send: MeetingMessages::SendToNone,
    });
    let xml = body(&xml);
    assert!(xml.starts_with(r#"<m:CreateItem SendMeetingInvitations="SendToNone">"#));
    assert!(xml.contains(r#"<t:ReminderIsSet>false</t:ReminderIsSet><t:ExtendedProperty>"#));
    assert!(xml.contains(concat!(
        r#"<t:Start>2026-03-29T00:00:00+01:00</t:Start><t:End>2026-03-30T00:00:00+02:00</t:End>"#,
        r#"<t:IsAllDayEvent>true</t:IsAllDayEvent><t:LegacyFreeBusyStatus>OOF</t:LegacyFreeBusyStatus>"#,
        r#"<t:StartTimeZone Id="W. Europe Standard Time"/>"#
    )));
    assert!(!xml.contains("Attendees>"));
    assert!(!xml.contains("<t:Body"));
}

#[test]
fn update_is_a_full_overwrite_at_the_given_change_key() {
    let changes = changes();
    let xml = Envelope::new(MAILBOX).build(&UpdateCalendarItems {
        changes: &changes[..1],
        send: MeetingMessages::SendToAllAndSaveCopy,
    });
    let xml = body(&xml);
    assert!(xml.starts_with(r#"<m:UpdateItem ConflictResolution="NeverOverwrite" SendMeetingInvitationsOrCancellations="SendToAllAndSaveCopy"><m:ItemChanges><t:ItemChange><t:ItemId Id="AAMkEv1" ChangeKey="CK1"/><t:Updates>"#), "{xml}");
    let zone = xml.find("calendar:StartTimeZone").expect("zone is set");
    let start = xml.find(r#""calendar:Start""#).expect("start is set");
    assert!(zone < start, "zones go before Start/End");
    assert!(xml.contains(r#"<t:SetItemField><t:FieldURI FieldURI="calendar:RequiredAttendees"/><t:CalendarItem><t:RequiredAttendees><t:Attendee><t:Mailbox><t:Name>Bob</t:Name>"#));
    assert!(!xml.contains("DeleteItemField"));
    assert!(!xml.contains("CrmId"), "an update never touches the stamp");

    // Empty fields are deleted; an empty attendee list is deleted; no attendees = untouched.
    let xml = Envelope::new(MAILBOX).build(&UpdateCalendarItems {
        changes: &changes[1..],
        send: MeetingMessages::SendToNone,
    });
    let second = &xml[xml.find("AAMkEv2").expect("ev2")..xml.find("AAMkEv3").expect("ev3")];
    for field in [
        "item:Categories",
        "calendar:Location",
        "calendar:RequiredAttendees",
        "calendar:OptionalAttendees",
        "calendar:Resources",
    ] {
        assert!(
            second.contains(&format!(
                r#"<t:DeleteItemField><t:FieldURI FieldURI="{field}"/></t:DeleteItemField>"#
            )),
            "{field} cleared"
        );
    }
    assert!(second.contains(r#"<t:SetItemField><t:FieldURI FieldURI="item:Body"/><t:CalendarItem><t:Body BodyType="Text"></t:Body></t:CalendarItem></t:SetItemField>"#));
    assert!(!second.contains("ReminderMinutesBeforeStart"));
    let third = &xml[xml.find("AAMkEv3").expect("ev3")..];
    assert!(third.contains(
        r#"<t:DeleteItemField><t:FieldURI FieldURI="item:Subject"/></t:DeleteItemField>"#
    ));
    assert!(!third.contains("Attendees"));
    assert!(!third.contains("TimeZone"));
}

#[test]
fn golden_view_masters_and_cancel_bodies() {
    let env = Envelope::new(MAILBOX);
    assert_eq!(
        body(&env.build(&FindCalendarView {
            folder: &calendar(),
            start: at(2026, 1, 1, 0, 0),
            end: at(2026, 3, 1, 0, 0),
            max_entries: 0,
        })),
        concat!(
            r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>"#,
            r#"<t:FieldURI FieldURI="calendar:Start"/><t:FieldURI FieldURI="calendar:End"/><t:FieldURI FieldURI="calendar:CalendarItemType"/><t:FieldURI FieldURI="calendar:UID"/>"#,
            r#"</t:AdditionalProperties></m:ItemShape>"#,
            r#"<m:CalendarView MaxEntriesReturned="1" StartDate="2026-01-01T00:00:00Z" EndDate="2026-03-01T00:00:00Z"/>"#,
            r#"<m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>"#
        )
    );
    assert_eq!(
        body(&env.build(&GetRecurringMasters {
            occurrence_ids: &["Occ1".to_owned()]
        })),
        r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="calendar:UID"/></t:AdditionalProperties></m:ItemShape><m:ItemIds><t:RecurringMasterItemId OccurrenceId="Occ1"/></m:ItemIds></m:GetItem>"#
    );
    assert_eq!(
        body(&env.build(&CancelCalendarItems {
            ids: &[ItemId::new("Ev1", None)],
            send: MeetingMessages::SendToAllAndSaveCopy
        })),
        r#"<m:DeleteItem DeleteType="MoveToDeletedItems" SendMeetingCancellations="SendToAllAndSaveCopy"><m:ItemIds><t:ItemId Id="Ev1"/></m:ItemIds></m:DeleteItem>"#
    );
    let get = env.build(&GetCalendarItems {
        ids: &[ItemId::new("Ev1", None)],
    });
    assert!(body(&get).starts_with(r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:BodyType>Text</t:BodyType><t:AdditionalProperties><t:FieldURI FieldURI="item:Subject"/>"#));
    for field in [
        "item:Body",
        "item:LastModifiedTime",
        "calendar:OriginalStart",
        "calendar:MyResponseType",
        "calendar:Resources",
        "calendar:StartTimeZone",
        r#"PropertyName="CrmId""#,
    ] {
        assert!(get.contains(field), "{field}");
    }
}

#[test]
fn date_times_are_read_with_or_without_offsets_and_written_in_utc() {
    assert_eq!(
        parse_date_time("2026-02-10T08:00:00Z"),
        Some(at(2026, 2, 10, 8, 0))
    );
    assert_eq!(
        parse_date_time(" 2026-02-10T09:00:00+01:00 "),
        Some(at(2026, 2, 10, 8, 0))
    );
    assert_eq!(
        parse_date_time("2026-02-10T08:00:00"),
        Some(at(2026, 2, 10, 8, 0))
    );
    assert_eq!(
        parse_date_time("2026-02-10T08:00:00.123"),
        Some(at(2026, 2, 10, 8, 0) + chrono::Duration::milliseconds(123))
    );
    assert_eq!(parse_date_time("tomorrow"), None);
    assert_eq!(utc_text(at(2026, 2, 10, 8, 0)), "2026-02-10T08:00:00Z");
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

fn envelope(body: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">{body}</s:Body></s:Envelope>"#
    )
    .into_bytes()
}

/// A meeting as Exchange 2016 returns it for the full shape (organizer's copy).
pub(crate) const FULL_MEETING: &str = r#"<t:CalendarItem>
  <t:ItemId Id="AAMkEv1" ChangeKey="DwAAABYA"/>
  <t:Subject>Quarterly review</t:Subject>
  <t:Sensitivity>Private</t:Sensitivity>
  <t:Body BodyType="Text">Agenda&#13;
line 2&#13;
</t:Body>
  <t:Categories><t:String>Blue</t:String><t:String>call</t:String></t:Categories>
  <t:ReminderIsSet>true</t:ReminderIsSet>
  <t:ReminderMinutesBeforeStart>30</t:ReminderMinutesBeforeStart>
  <t:ExtendedProperty><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="CrmId" PropertyType="String"/><t:Value>ln:prod:activity:A1</t:Value></t:ExtendedProperty>
  <t:LastModifiedTime>2026-02-01T10:00:00Z</t:LastModifiedTime>
  <t:UID>040000008200E00074C5B7101A82E0080000000000</t:UID>
  <t:Start>2026-02-10T08:00:00Z</t:Start>
  <t:End>2026-02-10T09:00:00Z</t:End>
  <t:IsAllDayEvent>false</t:IsAllDayEvent>
  <t:LegacyFreeBusyStatus>Tentative</t:LegacyFreeBusyStatus>
  <t:Location>Room 1</t:Location>
  <t:IsMeeting>true</t:IsMeeting>
  <t:IsCancelled>false</t:IsCancelled>
  <t:CalendarItemType>Single</t:CalendarItemType>
  <t:MyResponseType>Organizer</t:MyResponseType>
  <t:Organizer><t:Mailbox><t:Name>Alice</t:Name><t:EmailAddress>alice@corp.example</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType><t:MailboxType>Mailbox</t:MailboxType></t:Mailbox></t:Organizer>
  <t:RequiredAttendees>
    <t:Attendee><t:Mailbox><t:Name>Bob</t:Name><t:EmailAddress>bob@corp.example</t:EmailAddress></t:Mailbox><t:ResponseType>Accept</t:ResponseType><t:LastResponseTime>2026-02-02T10:00:00Z</t:LastResponseTime></t:Attendee>
    <t:Attendee><t:Mailbox><t:Name>Dan</t:Name><t:EmailAddress>dan@partner.example</t:EmailAddress></t:Mailbox><t:ResponseType>NoResponseReceived</t:ResponseType></t:Attendee>
  </t:RequiredAttendees>
  <t:OptionalAttendees><t:Attendee><t:Mailbox><t:EmailAddress>carol@corp.example</t:EmailAddress></t:Mailbox><t:ResponseType>Tentative</t:ResponseType></t:Attendee></t:OptionalAttendees>
  <t:Resources><t:Attendee><t:Mailbox><t:Name>Room 1</t:Name><t:EmailAddress>room1@corp.example</t:EmailAddress></t:Mailbox><t:ResponseType>Decline</t:ResponseType></t:Attendee></t:Resources>
  <t:StartTimeZone Id="W. Europe Standard Time" Name="(UTC+01:00) Amsterdam, Berlin"><t:Periods><t:Period Bias="-PT1H" Name="Standard" Id="trule:Microsoft/Registry/W. Europe Standard Time/1-Standard"/></t:Periods></t:StartTimeZone>
</t:CalendarItem>"#;

#[test]
fn parses_a_full_calendar_item() {
    let xml = envelope(&format!(
        r#"<m:GetItemResponse><m:ResponseMessages><m:GetItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items>{FULL_MEETING}</m:Items></m:GetItemResponseMessage></m:ResponseMessages></m:GetItemResponse>"#
    ));
    let msgs = parse_response(&xml).expect("parses");
    let item = &msgs[0].items[0];
    assert_eq!(item.kind, "CalendarItem");
    assert_eq!(item.crm_id(), Some("ln:prod:activity:A1"));
    let c = item.calendar.as_deref().expect("calendar data");
    assert_eq!(c.subject.as_deref(), Some("Quarterly review"));
    assert_eq!(c.body.as_deref(), Some("Agenda\r\nline 2\r\n"));
    assert_eq!(c.sensitivity.as_deref(), Some("Private"));
    assert_eq!(c.categories, vec!["Blue".to_owned(), "call".to_owned()]);
    assert_eq!(c.reminder_is_set, Some(true));
    assert_eq!(c.reminder_minutes, Some(30));
    assert_eq!(c.last_modified, Some(at(2026, 2, 1, 10, 0)));
    assert_eq!(
        c.uid.as_deref(),
        Some("040000008200E00074C5B7101A82E0080000000000")
    );
    assert_eq!(c.start, Some(at(2026, 2, 10, 8, 0)));
    assert_eq!(c.end, Some(at(2026, 2, 10, 9, 0)));
    assert_eq!(c.original_start, None);
    assert_eq!(c.is_all_day, Some(false));
    assert_eq!(c.free_busy.as_deref(), Some("Tentative"));
    assert_eq!(c.location.as_deref(), Some("Room 1"));
    assert_eq!(c.is_meeting, Some(true));
    assert_eq!(c.is_cancelled, Some(false));
    assert_eq!(c.item_type.as_deref(), Some("Single"));
    assert_eq!(c.my_response.as_deref(), Some("Organizer"));
    assert_eq!(
        c.organizer,
        Some(person(Some("Alice"), "alice@corp.example"))
    );
    assert_eq!(c.required.len(), 2);
    assert_eq!(
        c.required[0].mailbox,
        person(Some("Bob"), "bob@corp.example")
    );
    assert_eq!(c.required[0].response.as_deref(), Some("Accept"));
    assert_eq!(
        c.required[1].response.as_deref(),
        Some("NoResponseReceived")
    );
    assert_eq!(c.optional[0].mailbox, person(None, "carol@corp.example"));
    assert_eq!(c.resources[0].response.as_deref(), Some("Decline"));
    assert_eq!(
        c.start_time_zone.as_deref(),
        Some("W. Europe Standard Time")
    );
}

#[test]
fn parses_a_calendar_view_page_and_per_item_errors() {
    let xml = envelope(
        r#"<m:FindItemResponse><m:ResponseMessages><m:FindItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>
        <m:RootFolder TotalItemsInView="3" IncludesLastItemInRange="false"><t:Items>
          <t:CalendarItem><t:ItemId Id="S1" ChangeKey="K1"/><t:UID>u1</t:UID><t:Start>2026-02-10T08:00:00Z</t:Start><t:End>2026-02-10T09:00:00Z</t:End><t:CalendarItemType>Single</t:CalendarItemType></t:CalendarItem>
          <t:CalendarItem><t:ItemId Id="O1" ChangeKey="K2"/><t:UID>u2</t:UID><t:Start>2026-02-11T08:00:00Z</t:Start><t:End>2026-02-11T09:00:00Z</t:End><t:CalendarItemType>Occurrence</t:CalendarItemType></t:CalendarItem>
        </t:Items></m:RootFolder></m:FindItemResponseMessage></m:ResponseMessages></m:FindItemResponse>"#,
    );
    let msgs = parse_response(&xml).expect("parses");
    let paging = msgs[0].paging.expect("paging");
    assert!(!paging.includes_last_item_in_range);
    assert_eq!(msgs[0].items.len(), 2);
    let occ = msgs[0].items[1].calendar.as_deref().expect("calendar");
    assert_eq!(occ.item_type.as_deref(), Some("Occurrence"));
    assert_eq!(occ.uid.as_deref(), Some("u2"));
    assert_eq!(occ.subject, None);
    assert!(occ.required.is_empty());

    let xml = envelope(
        r#"<m:UpdateItemResponse><m:ResponseMessages>
        <m:UpdateItemResponseMessage ResponseClass="Error"><m:MessageText>The change key passed in the request does not match the current change key for the item.</m:MessageText><m:ResponseCode>ErrorIrresolvableConflict</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:Items/></m:UpdateItemResponseMessage>
        <m:UpdateItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items><t:CalendarItem><t:ItemId Id="E2" ChangeKey="K9"/></t:CalendarItem></m:Items><m:ConflictResults><t:Count>0</t:Count></m:ConflictResults></m:UpdateItemResponseMessage>
        <m:UpdateItemResponseMessage ResponseClass="Error"><m:MessageText>busy</m:MessageText><m:ResponseCode>ErrorServerBusy</m:ResponseCode><m:MessageXml><t:Value Name="BackOffMilliseconds">1500</t:Value></m:MessageXml><m:Items/></m:UpdateItemResponseMessage>
        </m:ResponseMessages></m:UpdateItemResponse>"#,
    );
    let msgs = parse_response(&xml).expect("parses");
    assert_eq!(msgs[0].code, "ErrorIrresolvableConflict");
    assert!(!msgs[0].is_success());
    assert_eq!(msgs[1].items[0].id, ItemId::new("E2", Some("K9".into())));
    assert_eq!(
        msgs[2].back_off(),
        Some(std::time::Duration::from_millis(1500))
    );
}

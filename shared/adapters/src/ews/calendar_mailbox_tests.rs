//! `EwsMailbox` calendar methods over a scripted transport: CalendarView splitting and paging,
//! per-item conflicts and back-off on updates. Time is paused, so back-offs run instantly while
//! still being measured.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use lnsync_core::calendar::{EventFields, EventTime, EventUpdate};
use lnsync_core::error::ItemError;
use lnsync_core::ids::{ExchangeItemId, ExchangeVersion, MailboxAddress};
use lnsync_core::model::ShowTimeAs;
use lnsync_core::ports::{ItemRef, Mailbox, Window};
use tokio::time::Instant;

use super::codec::schema_check;
use super::*;

type Responder = dyn Fn(&str) -> String + Send + Sync;

/// Answers each request body with `respond(body)` (a SOAP body's inner XML) and keeps them all.
struct Scripted {
    bodies: Mutex<Vec<String>>,
    respond: Box<Responder>,
}

#[async_trait]
impl HttpTransport for Scripted {
    async fn post(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.bodies.lock().expect("lock").push(request.body.clone());
        let inner = (self.respond)(&request.body);
        Ok(HttpResponse {
            status: 200,
            headers: vec![],
            body: format!(
                r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body xmlns:m="m" xmlns:t="t">{inner}</s:Body></s:Envelope>"#
            )
            .into_bytes(),
        })
    }
}

fn mailbox(
    respond: impl Fn(&str) -> String + Send + Sync + 'static,
) -> (Arc<Scripted>, EwsMailbox) {
    let transport = Arc::new(Scripted {
        bodies: Mutex::new(Vec::new()),
        respond: Box::new(respond),
    });
    let config = EwsConfig::new(
        url::Url::parse("https://cas.corp.example/EWS/Exchange.asmx").expect("url"),
        EwsAuth::Basic {
            user: "svc".into(),
            password: Secret::new("secret"),
        },
    );
    (transport.clone(), EwsMailbox::new(config, transport))
}

fn ok_message(op: &str, items: &str) -> String {
    format!(
        r#"<m:{op}ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items>{items}</m:Items></m:{op}ResponseMessage>"#
    )
}

fn response(op: &str, messages: &[String]) -> String {
    format!(
        "<m:{op}Response><m:ResponseMessages>{}</m:ResponseMessages></m:{op}Response>",
        messages.concat()
    )
}

fn attr<'a>(body: &'a str, name: &str) -> &'a str {
    let key = format!("{name}=\"");
    let start = body.find(&key).expect("attribute") + key.len();
    let len = body[start..].find('"').expect("closing quote");
    &body[start..start + len]
}

fn bodies_contain(transport: &Scripted, needle: &str) -> bool {
    transport
        .bodies
        .lock()
        .expect("lock")
        .iter()
        .any(|b| b.contains(needle))
}

fn single(id: &str, start: &str, end: &str) -> String {
    format!(
        r#"<t:CalendarItem><t:ItemId Id="{id}" ChangeKey="CK-{id}"/><t:Subject>{id}</t:Subject><t:LastModifiedTime>2026-01-01T00:00:00Z</t:LastModifiedTime><t:UID>uid-{id}</t:UID><t:Start>{start}</t:Start><t:End>{end}</t:End><t:IsAllDayEvent>false</t:IsAllDayEvent><t:CalendarItemType>Single</t:CalendarItemType><t:MyResponseType>Organizer</t:MyResponseType></t:CalendarItem>"#
    )
}

const EVENTS: [(&str, &str, &str); 4] = [
    ("E1", "2026-02-01T08:00:00Z", "2026-02-01T09:00:00Z"),
    ("E2", "2026-03-01T08:00:00Z", "2026-03-01T09:00:00Z"),
    ("E3", "2026-04-01T08:00:00Z", "2026-04-01T09:00:00Z"),
    ("E4", "2028-06-01T08:00:00Z", "2028-06-01T09:00:00Z"),
];

#[tokio::test(start_paused = true)]
async fn calendar_view_splits_windows_over_two_years_and_pages_by_start() {
    let (transport, mb) = mailbox(|body| {
        if body.contains("<m:CalendarView") {
            let (start, end) = (attr(body, "StartDate"), attr(body, "EndDate"));
            let in_view: Vec<_> = EVENTS
                .iter()
                .filter(|(_, s, e)| *e > start && *s < end)
                .collect();
            // Pages of two, like a server with MaxEntriesReturned=2.
            let page: Vec<String> = in_view
                .iter()
                .take(2)
                .map(|(i, s, e)| single(i, s, e))
                .collect();
            let last = in_view.len() <= 2;
            return response(
                "FindItem",
                &[format!(
                    r#"<m:FindItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:RootFolder TotalItemsInView="{}" IncludesLastItemInRange="{last}"><t:Items>{}</t:Items></m:RootFolder></m:FindItemResponseMessage>"#,
                    in_view.len(),
                    page.concat()
                )],
            );
        }
        assert!(body.contains("<m:GetItem>"), "{body}");
        let messages: Vec<String> = EVENTS
            .iter()
            .filter(|(i, _, _)| body.contains(&format!(r#"Id="{i}""#)))
            .map(|(i, s, e)| ok_message("GetItem", &single(i, s, e)))
            .collect();
        response("GetItem", &messages)
    });
    let mut config_page = mb.config().clone();
    config_page.find_page_size = 2;
    let mb = EwsMailbox::new(config_page, transport.clone());
    let window = Window {
        start: Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("t"),
        end: Utc
            .with_ymd_and_hms(2029, 1, 1, 0, 0, 0)
            .single()
            .expect("t"),
    };
    let events = mb
        .calendar_view(&MailboxAddress::new("alice@corp.example"), window)
        .await
        .expect("view");
    let ids: Vec<&str> = events.iter().map(|e| e.item.id.as_str()).collect();
    assert_eq!(ids, vec!["E1", "E2", "E3", "E4"]);

    let bodies = transport.bodies.lock().expect("lock").clone();
    let views: Vec<(String, String)> = bodies
        .iter()
        .filter(|b| b.contains("<m:CalendarView"))
        .map(|b| {
            (
                attr(b, "StartDate").to_owned(),
                attr(b, "EndDate").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        views,
        vec![
            // First two-year view, second page from the last start seen, then the rest.
            ("2025-12-31T23:59:59Z".into(), "2027-12-31T23:59:59Z".into()),
            ("2026-03-01T08:00:00Z".into(), "2027-12-31T23:59:59Z".into()),
            ("2027-12-31T23:59:59Z".into(), "2029-01-01T00:00:00Z".into()),
        ]
    );
    schema_check::assert_valid(&bodies);
}

#[tokio::test(start_paused = true)]
async fn update_conflicts_are_typed_and_busy_items_wait_and_are_resent() {
    let (transport, mb) = mailbox(|body| {
        if body.contains("<m:GetItem>") {
            let messages: Vec<String> = ["U1", "U2", "U3"]
                .iter()
                .filter(|i| body.contains(&format!(r#"Id="{i}""#)))
                .map(|i| {
                    ok_message(
                        "GetItem",
                        &format!(r#"<t:CalendarItem><t:ItemId Id="{i}" ChangeKey="CK"/></t:CalendarItem>"#),
                    )
                })
                .collect();
            return response("GetItem", &messages);
        }
        assert!(body.contains("SendMeetingInvitationsOrCancellations=\"SendToAllAndSaveCopy\""));
        if body.contains(r#"Id="U1""#) {
            response(
                "UpdateItem",
                &[
                    r#"<m:UpdateItemResponseMessage ResponseClass="Error"><m:MessageText>conflict</m:MessageText><m:ResponseCode>ErrorIrresolvableConflict</m:ResponseCode><m:Items/></m:UpdateItemResponseMessage>"#.to_owned(),
                    r#"<m:UpdateItemResponseMessage ResponseClass="Error"><m:MessageText>busy</m:MessageText><m:ResponseCode>ErrorServerBusy</m:ResponseCode><m:MessageXml><t:Value Name="BackOffMilliseconds">1500</t:Value></m:MessageXml><m:Items/></m:UpdateItemResponseMessage>"#.to_owned(),
                ],
            )
        } else {
            response(
                "UpdateItem",
                &[ok_message(
                    "UpdateItem",
                    r#"<t:CalendarItem><t:ItemId Id="U2" ChangeKey="CK2"/></t:CalendarItem>"#,
                )],
            )
        }
    });
    let fields = EventFields {
        subject: Some("s".into()),
        location: None,
        body: None,
        time: EventTime::Timed {
            start: Utc
                .with_ymd_and_hms(2026, 2, 10, 8, 0, 0)
                .single()
                .expect("t"),
            end: Utc
                .with_ymd_and_hms(2026, 2, 10, 9, 0, 0)
                .single()
                .expect("t"),
        },
        reminder_minutes: None,
        show_as: ShowTimeAs::Busy,
        is_call: false,
    };
    let update = |id: &str, version: &str| EventUpdate {
        item: ItemRef {
            id: ExchangeItemId::new(id),
            version: ExchangeVersion::new(version),
        },
        fields: fields.clone(),
        time_zone: "Europe/Berlin".into(),
        attendees: None,
        notify_attendees: true,
    };
    let started = Instant::now();
    let results = mb
        .update_events(
            &MailboxAddress::new("alice@corp.example"),
            &[update("U1", "CK"), update("U2", "CK"), update("U3", "old")],
        )
        .await
        .expect("update call");
    assert_eq!(
        results[0],
        Err(ItemError::Conflict(ExchangeItemId::new("U1")))
    );
    assert_eq!(results[1].as_ref().map(|r| r.version.as_str()), Ok("CK2"));
    // U3's ChangeKey moved since the caller read it: a conflict without an UpdateItem.
    assert_eq!(
        results[2],
        Err(ItemError::Conflict(ExchangeItemId::new("U3")))
    );
    assert!(!bodies_contain(
        &transport,
        r#"<t:ItemChange><t:ItemId Id="U3""#
    ));
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let bodies = transport.bodies.lock().expect("lock").clone();
    assert_eq!(
        bodies
            .iter()
            .filter(|b| b.contains("<m:UpdateItem"))
            .count(),
        2
    );
    schema_check::assert_valid(&bodies);
}

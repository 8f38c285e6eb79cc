//! `ews::notify` on documents shaped like Exchange's (validated against messages.xsd/types.xsd)
//! and on hostile ones. The randomised half lives in `tests/ews_notify_fuzz.rs`.

use chrono::TimeZone;

use super::*;
use crate::ews::codec::schema_check;

const SOAP_OPEN: &str = r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/></soap:Header><soap:Body>"#;
const SOAP_CLOSE: &str = "</soap:Body></soap:Envelope>";

fn soap(body: &str) -> String {
    format!("{SOAP_OPEN}{body}{SOAP_CLOSE}")
}

/// A SendNotification body around the given `m:Notification` contents, one message each.
fn send_notification(notifications: &[&str]) -> String {
    let messages: String = notifications
        .iter()
        .map(|n| {
            format!(
                r#"<m:SendNotificationResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Notification>{n}</m:Notification></m:SendNotificationResponseMessage>"#
            )
        })
        .collect();
    soap(&format!(
        "<m:SendNotification><m:ResponseMessages>{messages}</m:ResponseMessages></m:SendNotification>"
    ))
}

/// The notification of exchange.md §2.9, verbatim (keep-alive comment included).
fn spec_example() -> String {
    soap(
        r#"<m:SendNotification><m:ResponseMessages>
  <m:SendNotificationResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>
    <m:Notification><t:SubscriptionId>JgBkZ2Vsc3ViMDAx</t:SubscriptionId>
      <t:PreviousWatermark>AQAAAPrev=</t:PreviousWatermark><t:MoreEvents>false</t:MoreEvents>
      <t:ModifiedEvent><t:Watermark>AQAAANext1=</t:Watermark><t:TimeStamp>2026-02-01T10:00:00Z</t:TimeStamp>
        <t:ItemId Id="AAMkAGI2ItemA" ChangeKey="DwAAABYAAAA2"/><t:ParentFolderId Id="AAMkCalendar"/></t:ModifiedEvent>
      <!-- keep-alive: <t:StatusEvent><t:Watermark>…</t:Watermark></t:StatusEvent> -->
    </m:Notification></m:SendNotificationResponseMessage></m:ResponseMessages></m:SendNotification>"#,
    )
}

const MULTI_EVENT: &str = r#"<t:SubscriptionId>SubCal1</t:SubscriptionId><t:PreviousWatermark>W0</t:PreviousWatermark><t:MoreEvents>true</t:MoreEvents>
<t:StatusEvent><t:Watermark>W1</t:Watermark></t:StatusEvent>
<t:CreatedEvent><t:Watermark>W2</t:Watermark><t:TimeStamp>2026-02-01T10:00:00Z</t:TimeStamp><t:ItemId Id="ItemNew" ChangeKey="CK1"/><t:ParentFolderId Id="Cal" ChangeKey="FK"/></t:CreatedEvent>
<t:ModifiedEvent><t:Watermark>W3</t:Watermark><t:TimeStamp>2026-02-01T10:01:00Z</t:TimeStamp><t:ItemId Id="ItemA"/><t:ParentFolderId Id="Cal"/><t:UnreadCount>0</t:UnreadCount></t:ModifiedEvent>
<t:DeletedEvent><t:Watermark>W4</t:Watermark><t:TimeStamp>2026-02-01T10:02:00Z</t:TimeStamp><t:ItemId Id="ItemGone"/><t:ParentFolderId Id="Cal"/></t:DeletedEvent>
<t:MovedEvent><t:Watermark>W5</t:Watermark><t:TimeStamp>2026-02-01T10:03:00Z</t:TimeStamp><t:ItemId Id="ItemB2"/><t:ParentFolderId Id="Trash"/><t:OldItemId Id="ItemB1"/><t:OldParentFolderId Id="Cal"/></t:MovedEvent>
<t:ModifiedEvent><t:Watermark>W6</t:Watermark><t:TimeStamp>2026-02-01T10:04:00Z</t:TimeStamp><t:FolderId Id="Cal"/><t:ParentFolderId Id="Root"/><t:UnreadCount>3</t:UnreadCount></t:ModifiedEvent>"#;

const SECOND: &str = r#"<t:SubscriptionId>SubCal2</t:SubscriptionId><t:StatusEvent/>"#;

fn multi_event() -> String {
    send_notification(&[MULTI_EVENT, SECOND])
}

fn at(h: u32, mi: u32) -> Option<DateTime<Utc>> {
    Utc.with_ymd_and_hms(2026, 2, 1, h, mi, 0).single()
}

fn parse_str(xml: &str) -> Result<Vec<Notification>, NotificationError> {
    parse_send_notification(xml.as_bytes())
}

fn is_malformed(result: &Result<Vec<Notification>, NotificationError>) -> bool {
    matches!(result, Err(NotificationError::Malformed(_)))
}

fn item(
    kind: EventKind,
    watermark: &str,
    timestamp: Option<DateTime<Utc>>,
    id: &str,
    parent: &str,
) -> NotificationEvent {
    NotificationEvent::Item {
        kind,
        watermark: Some(watermark.into()),
        timestamp,
        item_id: ExchangeItemId::new(id),
        parent_folder: Some(FolderId::new(parent)),
        old_item_id: None,
        old_parent_folder: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Valid documents
// ---------------------------------------------------------------------------------------------

#[test]
fn the_example_documents_validate_against_the_ews_schemas() {
    schema_check::assert_valid(&[spec_example(), multi_event()]);
}

#[test]
fn the_spec_example_parses() {
    let parsed = parse_str(&spec_example()).expect("parses");
    assert_eq!(
        parsed,
        vec![Notification {
            subscription: SubscriptionId::new("JgBkZ2Vsc3ViMDAx"),
            previous_watermark: Some("AQAAAPrev=".into()),
            more_events: false,
            events: vec![item(
                EventKind::Modified,
                "AQAAANext1=",
                at(10, 0),
                "AAMkAGI2ItemA",
                "AAMkCalendar"
            )],
        }]
    );
}

#[test]
fn every_event_kind_of_a_multi_message_request_is_read_in_order() {
    let parsed = parse_str(&multi_event()).expect("parses");
    assert_eq!(parsed.len(), 2);
    let first = &parsed[0];
    assert_eq!(first.subscription, SubscriptionId::new("SubCal1"));
    assert_eq!(first.previous_watermark.as_deref(), Some("W0"));
    assert!(first.more_events);
    assert_eq!(
        first.events,
        vec![
            NotificationEvent::Status {
                watermark: Some("W1".into())
            },
            item(EventKind::Created, "W2", at(10, 0), "ItemNew", "Cal"),
            item(EventKind::Modified, "W3", at(10, 1), "ItemA", "Cal"),
            item(EventKind::Deleted, "W4", at(10, 2), "ItemGone", "Cal"),
            NotificationEvent::Item {
                kind: EventKind::Moved,
                watermark: Some("W5".into()),
                timestamp: at(10, 3),
                item_id: ExchangeItemId::new("ItemB2"),
                parent_folder: Some(FolderId::new("Trash")),
                old_item_id: Some(ExchangeItemId::new("ItemB1")),
                old_parent_folder: Some(FolderId::new("Cal")),
            },
            NotificationEvent::Folder {
                kind: EventKind::Modified,
                watermark: Some("W6".into()),
                folder_id: FolderId::new("Cal"),
                parent_folder: Some(FolderId::new("Root")),
            },
        ]
    );
    let marks: Vec<Option<&str>> = first.events.iter().map(|e| e.watermark()).collect();
    assert_eq!(
        marks,
        [
            Some("W1"),
            Some("W2"),
            Some("W3"),
            Some("W4"),
            Some("W5"),
            Some("W6")
        ]
    );
    assert_eq!(
        parsed[1],
        Notification {
            subscription: SubscriptionId::new("SubCal2"),
            previous_watermark: None,
            more_events: false,
            events: vec![NotificationEvent::Status { watermark: None }],
        }
    );
}

#[test]
fn the_remaining_event_kinds_are_recognised() {
    let event = |name: &str| {
        format!(
            r#"<t:{name}><t:TimeStamp>2026-02-01T10:00:00Z</t:TimeStamp><t:ItemId Id="I"/><t:ParentFolderId Id="P"/></t:{name}>"#
        )
    };
    let body = format!(
        "<t:SubscriptionId>S</t:SubscriptionId>{}{}{}",
        event("CopiedEvent"),
        event("NewMailEvent"),
        event("FreeBusyChangedEvent")
    );
    let parsed = parse_str(&send_notification(&[&body])).expect("parses");
    let kinds: Vec<EventKind> = parsed[0]
        .events
        .iter()
        .filter_map(|e| match e {
            NotificationEvent::Item { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::Copied,
            EventKind::NewMail,
            EventKind::FreeBusyChanged
        ]
    );
}

#[test]
fn namespaces_are_matched_by_uri_not_prefix() {
    // The same multi-event document with the prefixes swapped and the types namespace as the
    // default namespace: the same notifications.
    let swapped = multi_event()
        .replace("m:", "TMP:")
        .replace("t:", "m:")
        .replace("TMP:", "t:")
        .replace("xmlns:m=", "xmlns:x=")
        .replace("xmlns:t=", "xmlns:m=")
        .replace("xmlns:x=", "xmlns:t=");
    assert_ne!(swapped, multi_event());
    assert_eq!(parse_str(&swapped), parse_str(&multi_event()));
    let default_ns = spec_example()
        .replace("t:", "")
        .replace("xmlns:t=", "xmlns=");
    assert_eq!(parse_str(&default_ns), parse_str(&spec_example()));

    // The right prefixes bound to the wrong URIs are not EWS.
    let wrong_messages =
        spec_example().replace("services/2006/messages\"", "services/2006/messages-not\"");
    assert!(is_malformed(&parse_str(&wrong_messages)));
    let soap12 = spec_example().replace(
        "http://schemas.xmlsoap.org/soap/envelope/",
        "http://www.w3.org/2003/05/soap-envelope",
    );
    assert!(is_malformed(&parse_str(&soap12)));
    // Without the types namespace there is no SubscriptionId.
    let wrong_types = spec_example().replace("services/2006/types\"", "services/2006/typez\"");
    assert!(is_malformed(&parse_str(&wrong_types)));
}

#[test]
fn unknown_elements_are_skipped_wherever_extensions_can_appear() {
    let body = r#"<t:SubscriptionId>S</t:SubscriptionId><t:FutureField a="1"><x:Deep xmlns:x="urn:x"><x:ItemId Id="evil"/></x:Deep></t:FutureField>
      <t:FutureEvent><t:ItemId Id="ignored"/></t:FutureEvent>
      <t:CreatedEvent><t:Watermark>W</t:Watermark><t:TimeStamp>2026-02-01T10:00:00Z</t:TimeStamp><x:ItemId xmlns:x="urn:x" Id="not-ews"/>
        <t:ItemId Id="I"><t:Unexpected/></t:ItemId><t:ParentFolderId Id="P"/><t:Extra>text &amp; more<t:Nested/></t:Extra></t:CreatedEvent>"#;
    let xml = send_notification(&[body]).replace(
        "<m:ResponseCode>NoError</m:ResponseCode>",
        r#"<m:MessageText>x</m:MessageText><m:ResponseCode>NoError</m:ResponseCode><m:MessageXml><t:Value Name="a">1</t:Value></m:MessageXml>"#,
    );
    let parsed = parse_str(&xml).expect("parses");
    assert_eq!(
        parsed[0].events,
        vec![item(EventKind::Created, "W", at(10, 0), "I", "P")]
    );
}

#[test]
fn entities_are_limited_to_the_predefined_ones_and_character_references() {
    let body = r#"<t:SubscriptionId> Jg&amp;B&#x41;&#66;&lt;&gt;&quot;&apos; </t:SubscriptionId><t:StatusEvent><t:Watermark><![CDATA[W&amp;]]></t:Watermark></t:StatusEvent>
      <t:DeletedEvent><t:TimeStamp>2026-02-01T10:00:00</t:TimeStamp><t:ItemId Id="I&amp;&#x31;"/></t:DeletedEvent>"#;
    let parsed = parse_str(&send_notification(&[body])).expect("parses");
    assert_eq!(parsed[0].subscription.as_str(), "Jg&BAB<>\"'");
    assert_eq!(parsed[0].events[0].watermark(), Some("W&amp;"));
    assert_eq!(
        parsed[0].events[1],
        NotificationEvent::Item {
            kind: EventKind::Deleted,
            watermark: None,
            // No offset: xs:dateTime without a zone is read as UTC, as Exchange means it.
            timestamp: at(10, 0),
            item_id: ExchangeItemId::new("I&1"),
            parent_folder: None,
            old_item_id: None,
            old_parent_folder: None,
        }
    );

    for bad in [
        // In a field we read, in an attribute, in an element we skip, in the envelope.
        spec_example().replace("JgBkZ2Vsc3ViMDAx", "Jg&foo;"),
        spec_example().replace("AAMkAGI2ItemA", "A&foo;"),
        spec_example().replace("<m:ResponseCode>NoError", "<m:ResponseCode>&xxe;NoError"),
        spec_example().replace("<soap:Body>", "<soap:Body>&lol9;"),
        // Forbidden or impossible characters by reference.
        spec_example().replace("JgBkZ2Vsc3ViMDAx", "Jg&#0;"),
        spec_example().replace("JgBkZ2Vsc3ViMDAx", "Jg&#1;"),
        spec_example().replace("AAMkAGI2ItemA", "A&#x1F;"),
        spec_example().replace("JgBkZ2Vsc3ViMDAx", "Jg&#x110000;"),
        spec_example().replace("JgBkZ2Vsc3ViMDAx", "Jg&#xFFFE;"),
        // A dangling ampersand.
        spec_example().replace("JgBkZ2Vsc3ViMDAx", "Jg & B"),
    ] {
        let result = parse_str(&bad);
        assert!(is_malformed(&result), "{bad}: {result:?}");
    }
}

#[test]
fn an_optional_value_that_is_blank_is_absent() {
    let body = r#"<t:SubscriptionId>S</t:SubscriptionId><t:PreviousWatermark> </t:PreviousWatermark><t:MoreEvents> 1 </t:MoreEvents><t:StatusEvent><t:Watermark/></t:StatusEvent>"#;
    let parsed = parse_str(&send_notification(&[body])).expect("parses");
    assert_eq!(parsed[0].previous_watermark, None);
    assert!(parsed[0].more_events);
    assert_eq!(parsed[0].events[0].watermark(), None);
}

#[test]
fn a_byte_order_mark_comments_and_processing_instructions_are_allowed() {
    let xml = format!(
        "\u{FEFF}{}<!-- trailing -->\n",
        spec_example().replacen("<soap:Body>", "<soap:Body><?pi data?><!-- c -->", 1)
    );
    assert_eq!(parse_str(&xml), parse_str(&spec_example()));
}

// ---------------------------------------------------------------------------------------------
// Hostile and broken documents
// ---------------------------------------------------------------------------------------------

#[test]
fn any_dtd_markup_is_refused_before_parsing() {
    let billion_laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>&lol2;</soap:Body></soap:Envelope>"#;
    let xxe = spec_example().replacen(
        "<soap:Envelope",
        r#"<!DOCTYPE e [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><soap:Envelope"#,
        1,
    );
    let cases = [
        billion_laughs.to_owned(),
        xxe.replace("JgBkZ2Vsc3ViMDAx", "&xxe;"),
        spec_example().replacen("<soap:Envelope", "<!doctype html><soap:Envelope", 1),
        // Not even hidden in a comment or CDATA, nor after the root, nor in a broken document.
        spec_example().replace("keep-alive:", "<!ENTITY a 'b'>"),
        spec_example().replace("AQAAAPrev=", "<![CDATA[<!DOCTYPE x>]]>"),
        format!("{}<!DOCTYPE late>", spec_example()),
        "<!ELEMENT a ANY>".to_owned(),
        "<!AtTlIsT a b CDATA #IMPLIED>".to_owned(),
        "\u{FF}<!NOTATION n SYSTEM 'x'>".to_owned(),
    ];
    for case in cases {
        assert_eq!(
            parse_send_notification(case.as_bytes()),
            Err(NotificationError::DocType),
            "{case}"
        );
    }
    // A DOCTYPE in invalid UTF-8 is still a DOCTYPE.
    let mut bytes = b"\xff\xfe<!DOCTYPE x>".to_vec();
    bytes.extend_from_slice(spec_example().as_bytes());
    assert_eq!(
        parse_send_notification(&bytes),
        Err(NotificationError::DocType)
    );
}

#[test]
fn every_truncation_of_a_valid_request_is_malformed() {
    let xml = spec_example();
    let end = xml.rfind('>').expect("has a last tag");
    for cut in 0..end {
        if !xml.is_char_boundary(cut) {
            continue;
        }
        let result = parse_str(&xml[..cut]);
        assert!(is_malformed(&result), "cut at {cut}: {result:?}");
    }
}

#[test]
fn structure_violations_are_malformed() {
    let example = spec_example();
    let one = |body: &str| send_notification(&[body]);
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("not xml", "hello".into()),
        ("wrong root", example.replace("soap:Envelope", "soap:Envelop")),
        ("mismatched end tag", example.replacen("</t:SubscriptionId>", "</t:Subscription>", 1)),
        ("unclosed element", example.replacen("</m:Notification>", "", 1)),
        ("stray end tag", example.replacen("<soap:Body>", "</x><soap:Body>", 1)),
        ("undeclared prefix", example.replacen("<t:MoreEvents>false</t:MoreEvents>", "<q:MoreEvents>false</q:MoreEvents>", 1)),
        ("second root", format!("{example}<soap:Envelope/>")),
        ("text after the root", format!("{example}junk")),
        ("text before the root", format!("junk{example}")),
        ("late declaration", example.replacen("<soap:Body>", "<soap:Body><?xml version=\"1.0\"?>", 1)),
        ("no body", format!("{SOAP_OPEN}{SOAP_CLOSE}").replace("<soap:Body></soap:Body>", "")),
        ("empty body", soap("")),
        ("fault instead", soap("<soap:Fault><faultcode>x</faultcode></soap:Fault>")),
        ("other operation", soap("<m:GetItem/>")),
        ("two operations", example.replacen("</m:SendNotification>", "</m:SendNotification><m:SendNotification/>", 1)),
        ("header after body", example.replacen(SOAP_CLOSE, "</soap:Body><soap:Header/></soap:Envelope>", 1)),
        ("element after body", example.replacen(SOAP_CLOSE, "</soap:Body><x/></soap:Envelope>", 1)),
        ("text in the body", example.replacen("<soap:Body>", "<soap:Body>oops", 1)),
        ("no response messages", soap("<m:SendNotification/>")),
        ("zero response messages", soap("<m:SendNotification><m:ResponseMessages/></m:SendNotification>")),
        ("other response message", example.replace("SendNotificationResponseMessage", "GetItemResponseMessage")),
        ("no notification", example.replacen("<m:Notification>", "<m:Other>", 1).replacen("</m:Notification>", "</m:Other>", 1)),
        ("two notifications", example.replacen("</m:Notification>", "</m:Notification><m:Notification><t:SubscriptionId>B</t:SubscriptionId></m:Notification>", 1)),
        ("no subscription id", one("<t:StatusEvent/>")),
        ("blank subscription id", one("<t:SubscriptionId> \n </t:SubscriptionId><t:StatusEvent/>")),
        ("two subscription ids", one("<t:SubscriptionId>A</t:SubscriptionId><t:SubscriptionId>B</t:SubscriptionId>")),
        ("element in a text field", one("<t:SubscriptionId>A<t:B/></t:SubscriptionId>")),
        ("bad boolean", one("<t:SubscriptionId>A</t:SubscriptionId><t:MoreEvents>yes</t:MoreEvents>")),
        ("bad timestamp", example.replace("2026-02-01T10:00:00Z", "yesterday")),
        ("event without an id", example.replacen(r#"<t:ItemId Id="AAMkAGI2ItemA" ChangeKey="DwAAABYAAAA2"/>"#, "", 1)),
        ("event with both ids", example.replacen("<t:ParentFolderId", r#"<t:FolderId Id="F"/><t:ParentFolderId"#, 1)),
        ("item id without Id", example.replacen(r#"Id="AAMkAGI2ItemA""#, r#"Key="AAMkAGI2ItemA""#, 1)),
        ("empty item id", example.replacen("AAMkAGI2ItemA", "", 1)),
        ("two item ids", example.replacen("<t:ParentFolderId", r#"<t:ItemId Id="X"/><t:ParentFolderId"#, 1)),
        ("duplicate attribute", example.replacen(r#"Id="AAMkCalendar""#, r#"Id="A" Id="B""#, 1)),
        ("control character", example.replacen("AQAAAPrev=", "AQ\u{1}", 1)),
        ("unterminated comment", example.replacen("-->", "", 1)),
        ("double hyphen in comment", example.replacen("keep-alive:", "keep--alive:", 1)),
    ];
    for (what, xml) in cases {
        let result = parse_str(&xml);
        assert!(is_malformed(&result), "{what}: {result:?}");
    }
    assert!(is_malformed(&parse_send_notification(b"\xc3\x28")));
}

#[test]
fn nesting_is_capped_at_max_depth_without_recursion() {
    // The ModifiedEvent is element 7 (Envelope, Body, SendNotification, ResponseMessages,
    // message, Notification, event); an unknown extension inside it may reach MAX_DEPTH.
    let nested = |levels: usize| {
        let open = "<t:X>".repeat(levels);
        let close = "</t:X>".repeat(levels);
        spec_example().replacen(
            "<t:ParentFolderId",
            &format!("{open}{close}<t:ParentFolderId"),
            1,
        )
    };
    assert_eq!(
        parse_str(&nested(MAX_DEPTH - 7)),
        parse_str(&spec_example())
    );
    assert!(is_malformed(&parse_str(&nested(MAX_DEPTH - 6))));
    // Far deeper than any stack would take if the parser recursed per level, in the header
    // the parser skips, closed or not.
    let in_header = |inner: String| {
        spec_example().replacen("<soap:Header>", &format!("<soap:Header>{inner}"), 1)
    };
    let deep = in_header(format!(
        "{}{}",
        "<a>".repeat(200_000),
        "</a>".repeat(200_000)
    ));
    assert!(is_malformed(&parse_str(&deep)));
    let deep_empty = in_header(format!("{}<b/>", "<a>".repeat(200_000)));
    assert!(is_malformed(&parse_str(&deep_empty)));
    let shallow = in_header("<a>".repeat(MAX_DEPTH - 2) + &"</a>".repeat(MAX_DEPTH - 2));
    assert_eq!(parse_str(&shallow), parse_str(&spec_example()));
}

// ---------------------------------------------------------------------------------------------
// The reply
// ---------------------------------------------------------------------------------------------

#[test]
fn the_reply_is_the_soap_send_notification_result() {
    assert_eq!(
        send_notification_result(SubscriptionStatus::Ok),
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><soap:Body><m:SendNotificationResult><m:SubscriptionStatus>OK</m:SubscriptionStatus></m:SendNotificationResult></soap:Body></soap:Envelope>"#
    );
    assert!(
        send_notification_result(SubscriptionStatus::Unsubscribe)
            .contains("<m:SubscriptionStatus>Unsubscribe</m:SubscriptionStatus>")
    );
}

#[test]
fn both_replies_validate_and_a_wrong_status_does_not() {
    let replies = [
        send_notification_result(SubscriptionStatus::Ok),
        send_notification_result(SubscriptionStatus::Unsubscribe),
    ];
    schema_check::assert_valid(&replies);
    // The check itself must be able to fail: "Ok" is not a SubscriptionStatusType value.
    let Some(dir) = schema_check::schema_dir_or_skip() else {
        return;
    };
    let mutant = replies[0].replace(">OK<", ">Ok<");
    assert_ne!(mutant, replies[0]);
    let result = ews_sim::schema::validate_requests(&[mutant], &dir);
    assert!(
        matches!(result, Err(ews_sim::SchemaError::Invalid(_))),
        "a wrong status must fail: {result:?}"
    );
}

//! Randomised robustness of `ews::notify::parse_send_notification`, whose input arrives from
//! the internet: arbitrary bytes, and valid requests mutated (truncated, bytes flipped, DTD
//! markup, unknown entities and deep nesting injected, ranges deleted or repeated).
//!
//! Properties: it never panics; input with DTD markup is always refused as `DocType`; every
//! `Ok` holds at least one notification, each with a non-empty subscription id and non-empty
//! item and folder ids. 3000 cases in all, so it runs in seconds in CI.

use lnsync_adapters::ews::notify::{
    Notification, NotificationError, NotificationEvent, parse_send_notification,
};
use proptest::prelude::*;

const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const MESSAGES: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
const TYPES: &str = "http://schemas.microsoft.com/exchange/services/2006/types";

/// Valid requests the mutations start from (the same shapes the unit tests validate against
/// the EWS schemas), with different prefixes so mutations hit both spellings.
fn seeds() -> Vec<String> {
    let spec = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP}" xmlns:m="{MESSAGES}" xmlns:t="{TYPES}"><soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/></soap:Header><soap:Body><m:SendNotification><m:ResponseMessages><m:SendNotificationResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Notification><t:SubscriptionId>JgBkZ2Vsc3ViMDAx</t:SubscriptionId><t:PreviousWatermark>AQAAAPrev=</t:PreviousWatermark><t:MoreEvents>false</t:MoreEvents><t:ModifiedEvent><t:Watermark>AQAAANext1=</t:Watermark><t:TimeStamp>2026-02-01T10:00:00Z</t:TimeStamp><t:ItemId Id="AAMkAGI2ItemA" ChangeKey="DwAAABYAAAA2"/><t:ParentFolderId Id="AAMkCalendar"/></t:ModifiedEvent></m:Notification></m:SendNotificationResponseMessage></m:ResponseMessages></m:SendNotification></soap:Body></soap:Envelope>"#
    );
    let multi = format!(
        r#"<s:Envelope xmlns:s="{SOAP}"><s:Body><SendNotification xmlns="{MESSAGES}" xmlns:e="{TYPES}"><ResponseMessages><SendNotificationResponseMessage ResponseClass="Success"><ResponseCode>NoError</ResponseCode><Notification><e:SubscriptionId>Sub&amp;1</e:SubscriptionId><e:MoreEvents>true</e:MoreEvents><e:StatusEvent><e:Watermark>W1</e:Watermark></e:StatusEvent><e:CreatedEvent><e:Watermark>W2</e:Watermark><e:TimeStamp>2026-02-01T10:00:00Z</e:TimeStamp><e:ItemId Id="New"/><e:ParentFolderId Id="Cal"/></e:CreatedEvent><e:DeletedEvent><e:TimeStamp>2026-02-01T10:02:00Z</e:TimeStamp><e:ItemId Id="Gone&#x41;"/><e:ParentFolderId Id="Cal"/></e:DeletedEvent><e:MovedEvent><e:Watermark><![CDATA[W5]]></e:Watermark><e:TimeStamp>2026-02-01T10:03:00Z</e:TimeStamp><e:ItemId Id="B2"/><e:ParentFolderId Id="Trash"/><e:OldItemId Id="B1"/><e:OldParentFolderId Id="Cal"/></e:MovedEvent><e:ModifiedEvent><e:TimeStamp>2026-02-01T10:04:00Z</e:TimeStamp><e:FolderId Id="Cal"/><e:ParentFolderId Id="Root"/><e:UnreadCount>3</e:UnreadCount></e:ModifiedEvent></Notification></SendNotificationResponseMessage><SendNotificationResponseMessage ResponseClass="Success"><Notification><e:SubscriptionId>Sub2</e:SubscriptionId><e:StatusEvent/></Notification></SendNotificationResponseMessage></ResponseMessages></SendNotification></s:Body></s:Envelope>"#
    );
    vec![spec, multi]
}

/// Snippets a hostile sender would try: DTDs and entities, broken references and markup.
const INJECTIONS: &[&str] = &[
    "<!DOCTYPE x [<!ENTITY a \"b\">]>",
    "<!ENTITY xxe SYSTEM \"file:///etc/passwd\">",
    "<!doctype html>",
    "<!ELEMENT a ANY>",
    "&foo;",
    "&xxe;",
    "&lol9;",
    "&amp;",
    "&#0;",
    "&#x110000;",
    "&#65;",
    "&",
    "<",
    ">",
    "]]>",
    "<![CDATA[",
    "<!-- x -->",
    "<!--",
    "<?pi x?>",
    "<?xml version=\"1.0\"?>",
    "</t:ItemId>",
    "<t:ItemId Id=\"\"/>",
    "<t:SubscriptionId></t:SubscriptionId>",
    "<t:SubscriptionId>X</t:SubscriptionId>",
    "<q:undeclared/>",
    "xmlns:t=\"urn:other\"",
    "\u{0}",
    "\u{FFFF}",
    "\u{FEFF}",
];

/// Well-formed additions that keep a request valid when placed between two tags: these keep a
/// share of the mutants parseable, so the properties of `Ok` results get exercised too.
const BENIGN: &[&str] = &[
    " ",
    "<!-- note -->",
    "<?pi x?>",
    "<t:Unknown/>",
    "<t:Unknown a=\"&amp;&#65;\">x &lt; y<t:Inner/></t:Unknown>",
    "<x:Foreign xmlns:x=\"urn:x\"><x:ItemId Id=\"\"/></x:Foreign>",
    "<![CDATA[ ]]>",
];

/// Where a mutation acts: a raw byte offset, or just after the n-th `>` (between two tags).
#[derive(Debug, Clone, Copy)]
enum At {
    Byte(usize),
    Boundary(usize),
}

/// What a mutation does to a seed.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    FlipByte(usize, u8),
    Insert(At, usize),
    InsertBenign(At, usize),
    Nest(At, usize),
    Delete(usize, usize),
    Repeat(usize, usize, usize),
}

fn at() -> impl Strategy<Value = At> {
    prop_oneof![
        any::<usize>().prop_map(At::Byte),
        any::<usize>().prop_map(At::Boundary),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), 1..=255u8).prop_map(|(at, x)| Mutation::FlipByte(at, x)),
        1 => (at(), 0..INJECTIONS.len()).prop_map(|(at, i)| Mutation::Insert(at, i)),
        3 => (at(), 0..BENIGN.len()).prop_map(|(at, i)| Mutation::InsertBenign(at, i)),
        1 => (at(), 1..100usize).prop_map(|(at, n)| Mutation::Nest(at, n)),
        1 => (any::<usize>(), 1..64usize).prop_map(|(at, n)| Mutation::Delete(at, n)),
        1 => (any::<usize>(), 1..64usize, 2..50usize).prop_map(|(at, n, k)| Mutation::Repeat(at, n, k)),
    ]
}

fn position(doc: &[u8], at: At) -> usize {
    match at {
        At::Byte(at) => at % (doc.len() + 1),
        At::Boundary(n) => {
            let ends: Vec<usize> = (0..doc.len()).filter(|&i| doc[i] == b'>').collect();
            if ends.is_empty() {
                0
            } else {
                ends[n % ends.len()] + 1
            }
        }
    }
}

fn apply(doc: &mut Vec<u8>, m: &Mutation) {
    let pos = |at: usize, len: usize| if len == 0 { 0 } else { at % (len + 1) };
    match *m {
        Mutation::Truncate(at) => doc.truncate(pos(at, doc.len())),
        Mutation::FlipByte(at, x) => {
            if !doc.is_empty() {
                let i = at % doc.len();
                doc[i] ^= x;
            }
        }
        Mutation::Insert(at, i) => {
            let at = position(doc, at);
            doc.splice(at..at, INJECTIONS[i].bytes());
        }
        Mutation::InsertBenign(at, i) => {
            let at = position(doc, at);
            doc.splice(at..at, BENIGN[i].bytes());
        }
        Mutation::Nest(at, n) => {
            let at = position(doc, at);
            let nested = format!("{}{}", "<t:X>".repeat(n), "</t:X>".repeat(n));
            doc.splice(at..at, nested.into_bytes());
        }
        Mutation::Delete(at, n) => {
            let at = pos(at, doc.len());
            let end = (at + n).min(doc.len());
            doc.drain(at..end);
        }
        Mutation::Repeat(at, n, k) => {
            let at = pos(at, doc.len());
            let end = (at + n).min(doc.len());
            let piece = doc[at..end].to_vec();
            for _ in 1..k {
                doc.splice(end..end, piece.iter().copied());
            }
        }
    }
}

/// `<!` followed by a DTD keyword, in any letter case: what the parser must refuse as DocType.
fn has_dtd_markup(body: &[u8]) -> bool {
    const KEYWORDS: [&[u8]; 5] = [b"DOCTYPE", b"ENTITY", b"ELEMENT", b"ATTLIST", b"NOTATION"];
    (0..body.len()).any(|i| {
        body[i..].starts_with(b"<!")
            && KEYWORDS.iter().any(|k| {
                body.get(i + 2..i + 2 + k.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(k))
            })
    })
}

fn check(body: &[u8]) -> Result<(), TestCaseError> {
    let result = parse_send_notification(body);
    if has_dtd_markup(body) {
        prop_assert_eq!(result, Err(NotificationError::DocType));
        return Ok(());
    }
    match result {
        Ok(notifications) => {
            prop_assert!(!notifications.is_empty(), "Ok without notifications");
            for n in &notifications {
                check_notification(n)?;
            }
        }
        Err(NotificationError::Malformed(message)) => {
            prop_assert!(!message.is_empty());
            // Attacker-chosen names are clipped, so an error stays a log line.
            prop_assert!(
                message.len() < 1_000,
                "error message of {} bytes",
                message.len()
            );
        }
        Err(NotificationError::DocType) => {
            prop_assert!(false, "DocType without DTD markup in the input");
        }
    }
    Ok(())
}

fn check_notification(n: &Notification) -> Result<(), TestCaseError> {
    prop_assert!(!n.subscription.as_str().is_empty(), "empty subscription id");
    prop_assert_eq!(n.subscription.as_str().trim(), n.subscription.as_str());
    for event in &n.events {
        match event {
            NotificationEvent::Status { .. } => {}
            NotificationEvent::Item {
                item_id,
                parent_folder,
                old_item_id,
                old_parent_folder,
                ..
            } => {
                prop_assert!(!item_id.as_str().is_empty());
                prop_assert!(
                    parent_folder
                        .as_ref()
                        .is_none_or(|f| !f.as_str().is_empty())
                );
                prop_assert!(old_item_id.as_ref().is_none_or(|i| !i.as_str().is_empty()));
                prop_assert!(
                    old_parent_folder
                        .as_ref()
                        .is_none_or(|f| !f.as_str().is_empty())
                );
            }
            NotificationEvent::Folder {
                folder_id,
                parent_folder,
                ..
            } => {
                prop_assert!(!folder_id.as_str().is_empty());
                prop_assert!(
                    parent_folder
                        .as_ref()
                        .is_none_or(|f| !f.as_str().is_empty())
                );
            }
        }
        prop_assert!(event.watermark().is_none_or(|w| !w.is_empty()));
    }
    Ok(())
}

/// A fixed case count (not `PROPTEST_CASES`), so the CI time of this file is known.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig::with_cases(cases)
}

#[test]
fn the_seeds_parse() {
    for seed in seeds() {
        let parsed = parse_send_notification(seed.as_bytes());
        assert!(parsed.is_ok(), "{parsed:?}\n{seed}");
    }
    let multi = parse_send_notification(seeds()[1].as_bytes()).expect("parses");
    assert_eq!(multi.len(), 2);
    assert_eq!(multi[0].subscription.as_str(), "Sub&1");
    assert_eq!(multi[0].events.len(), 5);
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check(&body)?;
    }
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn mutated_requests_never_panic_and_stay_consistent(
        seed in 0..2usize,
        mutations in proptest::collection::vec(mutation(), 1..5),
    ) {
        let mut doc = seeds()[seed].clone().into_bytes();
        for m in &mutations {
            apply(&mut doc, m);
        }
        check(&doc)?;
    }
}

proptest! {
    #![proptest_config(config(500))]

    /// A DTD injected anywhere, in any letter case, is refused, however broken the rest is.
    #[test]
    fn injected_dtd_markup_is_always_doctype(
        seed in 0..2usize,
        at in any::<usize>(),
        keyword in prop::sample::select(vec!["DOCTYPE", "doctype", "ENTITY", "Entity", "ATTLIST", "ELEMENT", "NOTATION"]),
        cut in any::<usize>(),
    ) {
        let mut doc = seeds()[seed].clone().into_bytes();
        let at = at % (doc.len() + 1);
        doc.splice(at..at, format!("<!{keyword} x>").into_bytes());
        let keep = at + 2 + keyword.len() + cut % (doc.len() - at - keyword.len() - 2 + 1);
        doc.truncate(keep);
        prop_assert_eq!(parse_send_notification(&doc), Err(NotificationError::DocType));
    }
}

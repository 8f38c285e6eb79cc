//! The Microsoft Graph front-end through real HTTP: token flow, events, meetings across
//! mailboxes and protocols, extended-property stamps, calendarView and delta, contacts,
//! `$batch`, throttling, access policy, request log, and the CSDL shape of what it renders.

mod common;

use std::collections::HashSet;

use chrono::{NaiveDate, TimeDelta};
use common::graph::{
    CRM_PROP, Csdl, GResp, Graph, PREFER_IMMUTABLE, PREFER_UTC, SECRET, TENANT, TestResult,
    fetch_token,
};
use common::{ALICE, BOB, CRM_URI, Client, crm_folder, folder_xml, item_ids, simple_contact};
use ews_sim::log::Protocol;
use ews_sim::{
    DistinguishedFolder, EventEdit, EwsSim, ExtendedPropertyKey, FaultRule, NewEvent, Pattern,
    Range, Recurrence, SimConfig,
};
use serde_json::{Value, json};

fn dt(y: i32, m: u32, d: u32, h: u32, min: u32) -> TestResult<chrono::NaiveDateTime> {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|x| x.and_hms_opt(h, min, 0))
        .ok_or_else(|| "bad date".into())
}

fn events(user: &str) -> String {
    format!("/users/{user}/events")
}

fn event_body(subject: &str, day: u32, attendees: &[&str]) -> Value {
    json!({
        "subject": subject,
        "body": { "contentType": "text", "content": "Agenda" },
        "start": { "dateTime": format!("2026-02-{day:02}T09:00:00"), "timeZone": "W. Europe Standard Time" },
        "end": { "dateTime": format!("2026-02-{day:02}T10:00:00"), "timeZone": "W. Europe Standard Time" },
        "isAllDay": false, "showAs": "busy", "location": { "displayName": "Room 1" },
        "isReminderOn": true, "reminderMinutesBeforeStart": 15,
        "attendees": attendees.iter().map(|a| json!({ "type": "required", "emailAddress": { "address": a } })).collect::<Vec<_>>(),
    })
}

fn weekly(start: NaiveDate, n: u32) -> Recurrence {
    Recurrence {
        pattern: Pattern::Weekly {
            interval: 1,
            days_of_week: vec!["Monday".into()],
            first_day_of_week: None,
        },
        range: Range::Numbered {
            start_date: start,
            number_of_occurrences: n,
        },
    }
}

fn expect(r: &GResp, status: u16) -> TestResult {
    if r.status == status {
        Ok(())
    } else {
        Err(format!("expected {status}, got {} {}", r.status, r.json).into())
    }
}

#[tokio::test]
async fn token_flow_and_expiry() -> TestResult {
    let sim = common::sim().await;
    let http = reqwest::Client::new();
    let login = sim.graph_login_url();
    let (s, body) = fetch_token(&http, &login, TENANT, SECRET).await?;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    let (s, body) = fetch_token(&http, &login, TENANT, "wrong").await?;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_client")));
    assert!(body["error_description"].is_string());
    let (s, body) = fetch_token(&http, &login, "fabrikam", SECRET).await?;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_request")));

    let g = Graph::new(&sim).await?;
    let ok = g
        .get(&format!("/users/{ALICE}/mailboxSettings"), &[])
        .await?;
    expect(&ok, 200)?;
    assert_eq!(ok.str("/timeZone"), "UTC");
    // No token, a made-up one, then an expired one: 401 InvalidAuthenticationToken.
    let none = http
        .get(format!("{}/users/{ALICE}/events", sim.graph_url()))
        .send()
        .await?;
    assert_eq!(none.status().as_u16(), 401);
    let fake = Graph {
        token: "not-a-token".into(),
        ..Graph::new(&sim).await?
    };
    let r = fake.get(&events(ALICE), &[]).await?;
    assert_eq!(
        (r.status, r.code()),
        (401, Some("InvalidAuthenticationToken"))
    );
    sim.advance_clock(TimeDelta::seconds(3600));
    let r = g.get(&events(ALICE), &[]).await?;
    assert_eq!(
        (r.status, r.code()),
        (401, Some("InvalidAuthenticationToken"))
    );
    assert!(r.str("/error/message").contains("expired"));

    let tokens: Vec<_> = sim
        .graph_requests()
        .into_iter()
        .filter(|r| r.operation.as_deref() == Some("token"))
        .collect();
    assert_eq!(tokens.len(), 5);
    assert!(tokens.iter().all(|r| r.mailbox.is_none()));
    assert!(
        tokens.iter().all(|r| !r.body.contains(SECRET)),
        "secrets stay out of the log"
    );
    Ok(())
}

#[tokio::test]
async fn event_create_get_patch_delete() -> TestResult {
    let sim = common::sim().await;
    let g = Graph::new(&sim).await?;
    let mut body = event_body("Quarterly review (CRM)", 10, &[]);
    body["singleValueExtendedProperties"] =
        json!([{ "id": CRM_PROP, "value": "crm:activity:4711" }]);
    let created = g
        .post(&format!("/users/{ALICE}/calendar/events"), &body)
        .await?;
    expect(&created, 201)?;
    let id = created.str("/id");
    assert!(id.starts_with("AAkALg"), "{id}");
    assert_eq!(created.str("/type"), "singleInstance");
    assert_eq!(
        created.str("/start/dateTime"),
        "2026-02-10T08:00:00.0000000"
    );
    assert_eq!(created.str("/start/timeZone"), "UTC");
    assert_eq!(
        created.str("/originalStartTimeZone"),
        "W. Europe Standard Time"
    );
    assert_eq!(created.json["isOrganizer"], true);
    assert_eq!(created.str("/responseStatus/response"), "organizer");
    let etag = created.str("/@odata.etag");
    assert_eq!(etag, format!("W/\"{}\"", created.str("/changeKey")));

    // The other zone is honoured when preferred.
    let local = Graph {
        prefer: vec!["outlook.timezone=\"W. Europe Standard Time\"".into()],
        ..Graph::new(&sim).await?
    };
    let got = local
        .get(&format!("/users/{ALICE}/events/{id}"), &[])
        .await?;
    expect(&got, 200)?;
    assert_eq!(got.str("/start/dateTime"), "2026-02-10T09:00:00.0000000");
    assert_eq!(got.str("/start/timeZone"), "W. Europe Standard Time");
    assert!(got.json.get("singleValueExtendedProperties").is_none());

    let path = format!("/users/{ALICE}/events/{id}");
    let patched = g
        .patch(&path, &json!({ "subject": "Renamed" }), Some(&etag))
        .await?;
    expect(&patched, 200)?;
    assert_eq!(patched.str("/subject"), "Renamed");
    assert_ne!(patched.str("/@odata.etag"), etag);
    let stale = g
        .patch(&path, &json!({ "subject": "Lost" }), Some(&etag))
        .await?;
    assert_eq!(
        (stale.status, stale.code()),
        (412, Some("ErrorIrresolvableConflict"))
    );
    let blind = g
        .patch(
            &path,
            &json!({ "location": { "displayName": "Room 2" } }),
            None,
        )
        .await?;
    expect(&blind, 200)?;
    assert_eq!(blind.str("/location/displayName"), "Room 2");
    assert_eq!(blind.str("/subject"), "Renamed");
    let typo = g.patch(&path, &json!({ "subjekt": "x" }), None).await?;
    assert_eq!(typo.status, 400);

    let gone = g.delete(&path).await?;
    expect(&gone, 204)?;
    let missing = g.get(&path, &[]).await?;
    assert_eq!(
        (missing.status, missing.code()),
        (404, Some("ErrorItemNotFound"))
    );

    // An EWS item id is not a Graph id.
    let ews = sim.user_create_event(
        ALICE,
        NewEvent::new("EWS one", dt(2026, 2, 11, 9, 0)?, dt(2026, 2, 11, 10, 0)?),
    )?;
    let r = g
        .get(&format!("/users/{ALICE}/events/{}", ews.id), &[])
        .await?;
    assert_eq!((r.status, r.code()), (400, Some("ErrorInvalidIdMalformed")));
    let graph_id = ews_sim::graph::graph_item_id(&ews.id);
    expect(
        &g.get(&format!("/users/{ALICE}/events/{graph_id}"), &[])
            .await?,
        200,
    )?;
    Ok(())
}

#[tokio::test]
async fn meetings_reach_attendees_and_ews_sees_the_same_store() -> TestResult {
    let sim = common::sim().await;
    let g = Graph::new(&sim).await?;
    let created = g
        .post(&events(ALICE), &event_body("Review with Bob", 12, &[BOB]))
        .await?;
    expect(&created, 201)?;
    let uid = created.str("/iCalUId");
    // Bob's copy, via Graph.
    let bobs = g.get(&events(BOB), &[]).await?;
    let copy = bobs
        .values()
        .into_iter()
        .find(|e| e["iCalUId"] == uid.as_str())
        .ok_or("no copy")?;
    assert_eq!(copy["isOrganizer"], false);
    assert_eq!(copy["responseStatus"]["response"], "notResponded");
    assert_eq!(copy["organizer"]["emailAddress"]["address"], ALICE);
    // The organizer's item, via EWS GetItem: same ChangeKey.
    let id = ews_sim::graph::parse_graph_item_id(&created.str("/id"))?;
    let ews = Client::new(&sim);
    let r = ews
        .call(
            ALICE,
            &format!(
                "<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id=\"{id}\"/></m:ItemIds></m:GetItem>"
            ),
        )
        .await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    assert_eq!(item_ids(&r)[0].1, created.str("/changeKey"));
    // Bob answers in Outlook; the organizer's attendee status follows.
    let bob_copy = sim.event_by_uid(BOB, &uid).ok_or("bob's copy")?;
    sim.user_respond(BOB, &bob_copy.id, ews_sim::Response::Accept, true)?;
    let path = format!("/users/{ALICE}/events/{}", created.str("/id"));
    let after = g.get(&path, &[]).await?;
    assert_eq!(after.json["attendees"][0]["status"]["response"], "accepted");
    // Removing Bob cancels his copy; deleting the meeting would have done the same.
    let r = g.patch(&path, &json!({ "attendees": [] }), None).await?;
    expect(&r, 200)?;
    let bob_now = sim.event_by_uid(BOB, &uid).ok_or("bob's copy")?;
    assert!(bob_now.item.as_calendar().is_some_and(|c| c.is_cancelled));

    let second = g
        .post(&events(ALICE), &event_body("Second", 13, &[BOB]))
        .await?;
    expect(
        &g.delete(&format!("/users/{ALICE}/events/{}", second.str("/id")))
            .await?,
        204,
    )?;
    let cancelled = sim
        .event_by_uid(BOB, &second.str("/iCalUId"))
        .ok_or("copy")?;
    assert!(cancelled.item.as_calendar().is_some_and(|c| c.is_cancelled));
    Ok(())
}

#[tokio::test]
async fn stamps_are_shared_with_ews() -> TestResult {
    let sim = common::sim().await;
    let g = Graph::new(&sim).await?;
    // Written via Graph, read from the store as EWS sees it.
    let mut body = event_body("Stamped", 16, &[]);
    body["singleValueExtendedProperties"] = json!([{ "id": CRM_PROP, "value": "crm:activity:1" }]);
    let created = g.post(&events(ALICE), &body).await?;
    let id = ews_sim::graph::parse_graph_item_id(&created.str("/id"))?;
    let stored = sim.item(ALICE, &id).ok_or("stored")?;
    assert_eq!(
        stored
            .item
            .extended(&ExtendedPropertyKey::crm_id())
            .and_then(|v| v.as_single()),
        Some("crm:activity:1")
    );
    // Written via EWS, found by Graph's $filter (value case-insensitive), several at once.
    let ews = Client::new(&sim);
    let r = ews
        .call(
            ALICE,
            &format!(
                "<m:CreateItem SendMeetingInvitations=\"SendToNone\"><m:SavedItemFolderId><t:DistinguishedFolderId Id=\"calendar\"/></m:SavedItemFolderId><m:Items><t:CalendarItem><t:Subject>From EWS</t:Subject><t:ExtendedProperty>{CRM_URI}<t:Value>crm:activity:2</t:Value></t:ExtendedProperty><t:Start>2026-02-17T09:00:00Z</t:Start><t:End>2026-02-17T10:00:00Z</t:End></t:CalendarItem></m:Items></m:CreateItem>"
            ),
        )
        .await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    let one = |v: &str| {
        format!(
            "singleValueExtendedProperties/Any(ep: ep/id eq '{CRM_PROP}' and ep/value eq '{v}')"
        )
    };
    let expand = format!("singleValueExtendedProperties($filter=id eq '{CRM_PROP}')");
    let found = g
        .get(
            &events(ALICE),
            &[("$filter", &one("CRM:ACTIVITY:2")), ("$expand", &expand)],
        )
        .await?;
    expect(&found, 200)?;
    let v = found.values();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["subject"], "From EWS");
    assert_eq!(
        v[0]["singleValueExtendedProperties"][0]["value"],
        "crm:activity:2"
    );
    let both = g
        .get(
            &events(ALICE),
            &[(
                "$filter",
                &format!("{} or {}", one("crm:activity:1"), one("crm:activity:2")),
            )],
        )
        .await?;
    assert_eq!(both.values().len(), 2);
    // The property name is case-sensitive.
    let wrong = one("crm:activity:2").replace("CrmId", "crmid");
    assert!(
        g.get(&events(ALICE), &[("$filter", &wrong)])
            .await?
            .values()
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn transaction_id_deduplicates_creates() -> TestResult {
    let sim = common::sim().await;
    let g = Graph::new(&sim).await?;
    let mut body = event_body("Once", 18, &[]);
    body["transactionId"] = json!("crm-activity-4711-v1");
    let a = g.post(&events(ALICE), &body).await?;
    let b = g.post(&events(ALICE), &body).await?;
    expect(&a, 201)?;
    assert_eq!(a.str("/id"), b.str("/id"));
    assert_eq!(a.str("/transactionId"), "crm-activity-4711-v1");
    assert_eq!(sim.calendar_items(ALICE)?.len(), 1);
    // Another mailbox may use the same transactionId.
    expect(&g.post(&events(BOB), &body).await?, 201)?;
    assert_eq!(sim.calendar_items(BOB)?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn calendar_view_and_instances_of_a_weekly_series() -> TestResult {
    let sim = common::sim().await;
    let series = sim.user_create_event(
        ALICE,
        NewEvent::new(
            "Weekly pipeline review",
            dt(2026, 3, 16, 9, 30)?,
            dt(2026, 3, 16, 10, 0)?,
        )
        .in_zone("W. Europe Standard Time")
        .with_recurrence(weekly(NaiveDate::from_ymd_opt(2026, 3, 16).ok_or("d")?, 6)),
    )?;
    sim.user_create_event(
        ALICE,
        NewEvent::new("Single", dt(2026, 3, 18, 12, 0)?, dt(2026, 3, 18, 13, 0)?),
    )?;
    // Make the third occurrence an exception.
    let view = sim.calendar_view(
        ALICE,
        dt(2026, 3, 1, 0, 0)?.and_utc(),
        dt(2026, 5, 1, 0, 0)?.and_utc(),
    )?;
    let third = view
        .iter()
        .filter(|e| e.item_type == "Occurrence")
        .nth(2)
        .ok_or("third")?;
    sim.user_edit_event(
        ALICE,
        &third.id,
        EventEdit {
            subject: Some("Moved review".into()),
            ..Default::default()
        },
    )?;

    let g = Graph {
        prefer: vec!["odata.maxpagesize=3".into()],
        ..Graph::new(&sim).await?
    };
    let first = g
        .get(
            &format!("/users/{ALICE}/calendar/calendarView"),
            &[
                ("startDateTime", "2026-03-01T00:00:00Z"),
                ("endDateTime", "2026-05-01T00:00:00Z"),
            ],
        )
        .await?;
    assert_eq!(first.values().len(), 3);
    let (all, _, requests) = g.follow(first).await?;
    assert_eq!(all.len(), 7, "6 instances + 1 single");
    assert_eq!(requests, 3);
    let types: Vec<&str> = all.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types.iter().filter(|t| **t == "occurrence").count(), 5);
    assert_eq!(types.iter().filter(|t| **t == "exception").count(), 1);
    assert_eq!(types.iter().filter(|t| **t == "singleInstance").count(), 1);
    let master_gid = ews_sim::graph::graph_item_id(&series.id);
    let occ: Vec<&Value> = all
        .iter()
        .filter(|e| e["seriesMasterId"] == master_gid.as_str())
        .collect();
    assert_eq!(occ.len(), 6);
    // iCalUId differs per occurrence; originalStart relates them to the master.
    let uids: HashSet<&str> = occ.iter().filter_map(|e| e["iCalUId"].as_str()).collect();
    assert_eq!(uids.len(), 6);
    assert!(!uids.contains(series.uid.as_str()));
    assert!(occ.iter().all(|e| e["originalStart"].is_string()));
    // 09:30 in Berlin is 08:30Z before DST and 07:30Z after.
    assert_eq!(occ[0]["start"]["dateTime"], "2026-03-16T08:30:00.0000000");
    assert_eq!(occ[3]["start"]["dateTime"], "2026-04-06T07:30:00.0000000");

    let master = g
        .get(&format!("/users/{ALICE}/events/{master_gid}"), &[])
        .await?;
    assert_eq!(master.str("/type"), "seriesMaster");
    assert_eq!(master.str("/iCalUId"), series.uid);
    assert_eq!(master.str("/recurrence/pattern/type"), "weekly");
    assert_eq!(master.json["recurrence"]["range"]["numberOfOccurrences"], 6);
    let inst = g
        .get(
            &format!("/users/{ALICE}/events/{master_gid}/instances"),
            &[
                ("startDateTime", "2026-03-20T00:00:00Z"),
                ("endDateTime", "2026-04-10T00:00:00Z"),
            ],
        )
        .await?;
    let (inst, _, _) = g.follow(inst).await?;
    assert_eq!(inst.len(), 3);
    assert_eq!(inst[1]["type"], "exception");
    assert_eq!(inst[1]["subject"], "Moved review");
    // An occurrence by its id.
    let occ_id = inst[0]["id"].as_str().ok_or("id")?;
    let one = g
        .get(&format!("/users/{ALICE}/events/{occ_id}"), &[])
        .await?;
    assert_eq!(one.str("/type"), "occurrence");
    assert_eq!(one.str("/seriesMasterId"), master_gid);
    Ok(())
}

#[tokio::test]
async fn calendar_delta_rounds() -> TestResult {
    let sim = common::sim().await;
    let mut ids = Vec::new();
    for day in 1..=12 {
        let e = sim.user_create_event(
            ALICE,
            NewEvent::new(
                &format!("E{day}"),
                dt(2026, 3, day, 9, 0)?,
                dt(2026, 3, day, 10, 0)?,
            ),
        )?;
        ids.push(e.id);
    }
    let g = Graph::new(&sim).await?;
    let path = format!("/users/{ALICE}/calendarView/delta");
    let window = [
        ("startDateTime", "2026-03-01T00:00:00Z"),
        ("endDateTime", "2026-04-01T00:00:00Z"),
    ];
    let first = g.get(&path, &window).await?;
    assert_eq!(first.values().len(), 10, "default page size 10");
    assert!(
        first.json["@odata.nextLink"]
            .as_str()
            .is_some_and(|l| l.contains("$skiptoken"))
    );
    let (all, delta, requests) = g.follow(first).await?;
    assert_eq!((all.len(), requests), (12, 2));
    let delta = delta.ok_or("deltaLink")?;
    assert!(delta.contains("$deltatoken"));

    // Idle: one request, nothing in it.
    let before = sim.requests().len();
    let idle = g.get(&delta, &[]).await?;
    expect(&idle, 200)?;
    assert!(idle.values().is_empty());
    let delta = idle.str("/@odata.deltaLink");
    assert_eq!(sim.requests().len(), before + 1);

    // A change, a delete, and a move out of the window.
    sim.user_edit_event(
        ALICE,
        &ids[0],
        EventEdit {
            subject: Some("E1 renamed".into()),
            ..Default::default()
        },
    )?;
    sim.user_delete_event(ALICE, &ids[1], false)?;
    sim.user_edit_event(
        ALICE,
        &ids[2],
        EventEdit {
            start: Some(dt(2026, 6, 1, 9, 0)?),
            end: Some(dt(2026, 6, 1, 10, 0)?),
            ..Default::default()
        },
    )?;
    let changed = g.get(&delta, &[]).await?;
    let (vals, next, _) = g.follow(changed).await?;
    assert_eq!(vals.len(), 3, "{vals:?}");
    let renamed = vals.iter().find(|v| v["subject"] == "E1 renamed");
    assert!(renamed.is_some());
    let removed: HashSet<String> = vals
        .iter()
        .filter(|v| v["@removed"]["reason"] == "deleted")
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect();
    let expected: HashSet<String> = [&ids[1], &ids[2]]
        .iter()
        .map(|i| ews_sim::graph::graph_item_id(i))
        .collect();
    assert_eq!(removed, expected);
    let next = next.ok_or("next deltaLink")?;

    // Scenario 29: the cursor expires.
    assert!(sim.invalidate_delta_tokens(Some(ALICE)) > 0);
    let r = g.get(&next, &[]).await?;
    assert_eq!((r.status, r.code()), (410, Some("SyncStateNotFound")));
    // An EWS SyncState or garbage is no delta token either; unsupported options are 400.
    for bad in ["H4sIAAAAAAAEAO29B2AcSZYlJi9tynt", "garbage"] {
        let r = g.get(&path, &[("$deltatoken", bad)]).await?;
        assert_eq!(
            (r.status, r.code()),
            (410, Some("SyncStateNotFound")),
            "{bad}"
        );
    }
    let r = g
        .get(&path, &[window[0], window[1], ("$select", "subject")])
        .await?;
    assert_eq!(r.status, 400);
    // Another mailbox's token is foreign.
    let bob_round = g
        .get(&format!("/users/{BOB}/calendarView/delta"), &window)
        .await?;
    let (_, bob_delta, _) = g.follow(bob_round).await?;
    let token = bob_delta
        .ok_or("bob delta")?
        .split("$deltatoken=")
        .nth(1)
        .ok_or("token")?
        .to_string();
    let r = g.get(&path, &[("$deltatoken", &token)]).await?;
    assert_eq!(r.status, 410);
    Ok(())
}

#[tokio::test]
async fn contact_folders_contacts_and_delta() -> TestResult {
    let sim = common::sim().await;
    let g = Graph::new(&sim).await?;
    let folders = format!("/users/{ALICE}/contactFolders");
    let find = [("$filter", "displayName eq 'CRM Contacts'")];
    assert!(g.get(&folders, &find).await?.values().is_empty());
    let f = g
        .post(&folders, &json!({ "displayName": "CRM Contacts" }))
        .await?;
    expect(&f, 201)?;
    let fid = f.str("/id");
    let again = g.get(&folders, &find).await?;
    assert_eq!(again.values()[0]["id"], fid.as_str());
    assert_eq!(
        g.post(&folders, &json!({ "displayName": "CRM Contacts" }))
            .await?
            .status,
        409
    );
    expect(&g.get(&format!("{folders}/{fid}"), &[]).await?, 200)?;

    let contacts = format!("{folders}/{fid}/contacts");
    let body = json!({
        "givenName": "Jane", "surname": "Doe", "companyName": "Acme GmbH", "jobTitle": "CTO",
        "emailAddresses": [{ "address": "jane.doe@acme.example", "name": "Jane Doe" }],
        "businessPhones": ["+49 30 1234"], "mobilePhone": "+49 170 1",
        "businessAddress": { "street": "Main St 1", "city": "Berlin", "postalCode": "10115" },
        "personalNotes": "met at fair",
        "singleValueExtendedProperties": [{ "id": CRM_PROP, "value": "crm:contact:42" }],
    });
    let c = g.post(&contacts, &body).await?;
    expect(&c, 201)?;
    assert_eq!(c.str("/displayName"), "Jane Doe");
    assert_eq!(c.str("/parentFolderId"), fid);
    let cid = c.str("/id");
    // The same fields EWS reads.
    let stored = sim
        .item(ALICE, &ews_sim::graph::parse_graph_item_id(&cid)?)
        .ok_or("stored")?;
    let sc = stored.item.as_contact().ok_or("contact")?;
    assert_eq!(
        sc.email_addresses.get("EmailAddress1").map(String::as_str),
        Some("jane.doe@acme.example")
    );
    assert_eq!(
        sc.phone_numbers.get("BusinessPhone").map(String::as_str),
        Some("+49 30 1234")
    );
    assert_eq!(
        sc.physical_addresses
            .get("Business")
            .and_then(|a| a.city.as_deref()),
        Some("Berlin")
    );

    let one = format!("/users/{ALICE}/contacts/{cid}");
    let etag = c.str("/@odata.etag");
    let p = g
        .patch(&one, &json!({ "jobTitle": "CEO" }), Some(&etag))
        .await?;
    expect(&p, 200)?;
    assert_eq!(p.str("/jobTitle"), "CEO");
    assert_eq!(p.str("/givenName"), "Jane");
    let stale = g
        .patch(&one, &json!({ "jobTitle": "x" }), Some(&etag))
        .await?;
    assert_eq!(
        (stale.status, stale.code()),
        (412, Some("ErrorIrresolvableConflict"))
    );
    let filtered = g
        .get(&contacts, &[("$filter", &format!("singleValueExtendedProperties/Any(ep: ep/id eq '{CRM_PROP}' and ep/value eq 'crm:contact:42')"))])
        .await?;
    assert_eq!(filtered.values().len(), 1);

    // An EWS-created contact in the same folder reads the same through Graph.
    let ews = Client::new(&sim);
    let folder_id = ews_sim::graph::parse_graph_folder_id(&fid)?;
    let r = ews
        .call(
            ALICE,
            &common::create_contact_op(
                &folder_xml(folder_id.as_str()),
                &[simple_contact("crm:contact:43", "Tomás", "O'Neill")],
            ),
        )
        .await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);

    // Delta: everything, then idle, then a change and a removal.
    let (all, delta, _) = g
        .follow(g.get(&format!("{contacts}/delta"), &[]).await?)
        .await?;
    assert_eq!(all.len(), 2);
    assert!(
        all.iter()
            .any(|c| c["surname"] == "O'Neill" && c["givenName"] == "Tomás")
    );
    let delta = delta.ok_or("deltaLink")?;
    let idle = g.get(&delta, &[]).await?;
    assert!(idle.values().is_empty());
    let delta = idle.str("/@odata.deltaLink");
    expect(&g.delete(&one).await?, 204)?;
    assert_eq!(g.get(&one, &[]).await?.status, 404);
    let tomas = &all
        .iter()
        .find(|c| c["surname"] == "O'Neill")
        .ok_or("tomas")?["id"];
    let tomas = tomas.as_str().ok_or("id")?;
    expect(
        &g.patch(
            &format!("/users/{ALICE}/contacts/{tomas}"),
            &json!({ "department": "Sales" }),
            None,
        )
        .await?,
        200,
    )?;
    let (vals, _, _) = g
        .follow(
            g.get(&delta, &[("$select", "displayName,department")])
                .await?,
        )
        .await?;
    assert_eq!(vals.len(), 2);
    assert!(
        vals.iter()
            .any(|v| v["id"] == cid.as_str() && v["@removed"].is_object())
    );
    assert!(
        vals.iter()
            .any(|v| v["department"] == "Sales" && v.get("surname").is_none())
    );

    // Folder ids: EWS-shaped → 400, unknown → 404. A client encodes the segment (EWS ids are
    // standard base64 and may hold '/' and '+').
    let encoded = folder_id
        .as_str()
        .replace('%', "%25")
        .replace('/', "%2F")
        .replace('+', "%2B");
    let r = g.get(&format!("{folders}/{encoded}/contacts"), &[]).await?;
    assert_eq!((r.status, r.code()), (400, Some("ErrorInvalidIdMalformed")));
    let other = crm_folder(&ews, BOB).await;
    let foreign = ews_sim::graph::graph_folder_id(&ews_sim::FolderId(other));
    let r = g.get(&format!("{folders}/{foreign}/contacts"), &[]).await?;
    assert_eq!((r.status, r.code()), (404, Some("ErrorItemNotFound")));
    expect(&g.delete(&format!("{folders}/{fid}")).await?, 204)?;
    assert_eq!(g.get(&format!("{folders}/{fid}"), &[]).await?.status, 404);
    Ok(())
}

fn batch_of(n: usize, folder: &str) -> Value {
    let requests: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "id": (i + 1).to_string(), "method": "POST",
                "url": format!("/users/{ALICE}/contactFolders/{folder}/contacts"),
                "headers": { "Content-Type": "application/json" },
                "body": { "givenName": format!("G{i}"), "surname": "Batch" },
            })
        })
        .collect();
    json!({ "requests": requests })
}

#[tokio::test]
async fn batch_of_twenty_is_one_request() -> TestResult {
    let sim = common::sim().await;
    let g = Graph::new(&sim).await?;
    let f = g
        .post(
            &format!("/users/{ALICE}/contactFolders"),
            &json!({ "displayName": "CRM Contacts" }),
        )
        .await?;
    let fid = f.str("/id");
    sim.clear_requests();
    let r = g.post("/$batch", &batch_of(20, &fid)).await?;
    expect(&r, 200)?;
    let responses = r.json["responses"].as_array().cloned().unwrap_or_default();
    assert_eq!(responses.len(), 20);
    assert!(responses.iter().all(|x| x["status"] == 201));
    let log = sim.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].operation.as_deref(), Some("$batch"));
    assert_eq!(log[0].item_count, 20);
    assert_eq!(log[0].inner_operations.len(), 20);
    assert!(log[0].is_write());
    assert_eq!(sim.write_calls_for_mailbox(ALICE), 1);

    let too_many = g.post("/$batch", &batch_of(21, &fid)).await?;
    assert_eq!(
        (too_many.status, too_many.code()),
        (400, Some("BadRequest"))
    );

    // An inner request throttled on its own inside a 200 batch.
    sim.add_fault(
        FaultRule::graph_throttle(2)
            .for_mailbox(ALICE)
            .for_operation("contacts.create"),
    );
    let r = g.post("/$batch", &batch_of(3, &fid)).await?;
    expect(&r, 200)?;
    let statuses: Vec<u64> = r.json["responses"]
        .as_array()
        .ok_or("responses")?
        .iter()
        .filter_map(|x| x["status"].as_u64())
        .collect();
    assert_eq!(statuses, vec![429, 201, 201]);
    assert_eq!(r.json["responses"][0]["headers"]["Retry-After"], "2");
    assert_eq!(
        r.json["responses"][0]["body"]["error"]["code"],
        "ApplicationThrottled"
    );
    assert_eq!(sim.graph_throttled_responses(ALICE).len(), 1);

    // An item error addressed to the batch fails that inner request; its dependant gets 424.
    sim.clear_faults();
    sim.add_fault(FaultRule::item_error(0, "ErrorItemNotFound").for_operation("$batch"));
    let mut b = batch_of(2, &fid);
    b["requests"][1]["dependsOn"] = json!(["1"]);
    let r = g.post("/$batch", &b).await?;
    expect(&r, 200)?;
    assert_eq!(r.json["responses"][0]["status"], 404);
    assert_eq!(r.json["responses"][1]["status"], 424);
    Ok(())
}

#[tokio::test]
async fn mailbox_concurrency_and_retry_after() -> TestResult {
    let sim = common::sim().await;
    let g = Graph::new(&sim).await?;
    sim.add_fault(FaultRule::delay(1000).for_mailbox(ALICE).times(4));
    let path = events(ALICE);
    let mut tasks = Vec::new();
    for i in 0..6u64 {
        let http = g.http.clone();
        let url = format!("{}{path}", g.base);
        let token = g.token.clone();
        tasks.push(tokio::spawn(async move {
            // The first four take the delayed slots; the last two arrive while they are busy.
            let stagger = if i < 4 { 0 } else { 300 };
            tokio::time::sleep(std::time::Duration::from_millis(stagger)).await;
            let r = http.get(url).bearer_auth(token).send().await?;
            let retry = r
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let status = r.status().as_u16();
            let body: Value = r.json().await?;
            Ok::<_, reqwest::Error>((status, retry, body))
        }));
    }
    let mut throttled = 0;
    for t in tasks {
        let (status, retry, body) = t.await??;
        if status == 429 {
            throttled += 1;
            assert_eq!(retry.as_deref(), Some("1"));
            assert_eq!(body["error"]["code"], "ApplicationThrottled");
            assert_eq!(
                body["error"]["message"],
                "Application is over its MailboxConcurrency limit."
            );
        } else {
            assert_eq!(status, 200);
        }
    }
    assert_eq!(throttled, 2);
    // Free slots serve again at once: concurrency answers open no back-off window.
    expect(&g.get(&path, &[]).await?, 200)?;
    assert_eq!(sim.backoff_violations(), 0);
    // A request inside an announced Retry-After window is a violation (and throttled again).
    sim.add_fault(FaultRule::graph_throttle(1).for_mailbox(ALICE));
    let r = g.get(&path, &[]).await?;
    assert_eq!(
        (r.status, r.header("Retry-After").as_deref()),
        (429, Some("1"))
    );
    let r = g.get(&path, &[]).await?;
    assert_eq!(r.status, 429);
    assert_eq!(sim.backoff_violations(), 1);
    let reasons: Vec<String> = sim
        .graph_throttled_responses(ALICE)
        .into_iter()
        .map(|t| t.reason)
        .collect();
    assert_eq!(
        reasons,
        vec![
            "ApplicationThrottled",
            "ApplicationThrottled",
            "injected",
            "backoff_violation"
        ]
    );
    // A client that waits is served.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    expect(&g.get(&path, &[]).await?, 200)?;
    // Injected 503 with Retry-After.
    sim.add_fault(FaultRule::graph_status(503, Some(3)).for_mailbox(BOB));
    let r = g.get(&events(BOB), &[]).await?;
    assert_eq!(
        (r.status, r.header("Retry-After").as_deref()),
        (503, Some("3"))
    );
    assert_eq!(sim.graph_in_flight(ALICE), 0);
    Ok(())
}

#[tokio::test]
async fn access_policy_and_unknown_users() -> TestResult {
    let sim = EwsSim::start_with(SimConfig {
        allowed_impersonation: Some(vec![ALICE.into()]),
        ..SimConfig::default()
    })
    .await?;
    sim.add_mailbox(ALICE)?;
    sim.add_mailbox(BOB)?;
    let g = Graph::new(&sim).await?;
    expect(&g.get(&events(ALICE), &[]).await?, 200)?;
    let r = g.get(&events(BOB), &[]).await?;
    assert_eq!((r.status, r.code()), (403, Some("ErrorAccessDenied")));
    assert_eq!(r.str("/error/message"), "Access to OData is disabled.");
    let r = g.get(&events("nobody@corp.example"), &[]).await?;
    assert_eq!((r.status, r.code()), (404, Some("ErrorInvalidUser")));
    Ok(())
}

#[tokio::test]
async fn prefer_headers_and_operations_are_logged() -> TestResult {
    let sim = common::sim().await;
    let g = Graph::new(&sim).await?;
    sim.set_mailbox_time_zone(ALICE, "W. Europe Standard Time");
    let s = g
        .get(&format!("/users/{ALICE}/mailboxSettings"), &[])
        .await?;
    assert_eq!(s.str("/timeZone"), "W. Europe Standard Time");
    let created = g
        .post(&events(ALICE), &event_body("Logged", 20, &[]))
        .await?;
    let path = format!("/users/{ALICE}/events/{}", created.str("/id"));
    g.patch(
        &path,
        &json!({ "subject": "x" }),
        Some(&created.str("/@odata.etag")),
    )
    .await?;
    let graph: Vec<_> = sim
        .graph_requests()
        .into_iter()
        .filter(|r| r.operation.as_deref() != Some("token"))
        .collect();
    let ops: Vec<&str> = graph
        .iter()
        .filter_map(|r| r.operation.as_deref())
        .collect();
    assert_eq!(
        ops,
        vec!["mailboxSettings.get", "events.create", "events.update"]
    );
    for r in &graph {
        let prefer = r.prefer.join(", ");
        assert!(
            prefer.contains(PREFER_UTC) && prefer.contains(PREFER_IMMUTABLE),
            "{prefer}"
        );
        assert_eq!(r.protocol, Protocol::Graph);
        assert_eq!(r.mailbox.as_deref(), Some(ALICE));
    }
    assert!(graph[2].if_match.is_some());
    assert_eq!(graph[2].method.as_deref(), Some("PATCH"));
    assert!(
        graph[2]
            .path
            .as_deref()
            .is_some_and(|p| p.starts_with("/v1.0/users/"))
    );
    assert_eq!(sim.write_calls_for_mailbox(ALICE), 2);
    assert_eq!(sim.count_operation_for_mailbox("events.create", ALICE), 1);
    assert!(sim.ews_requests().is_empty());
    Ok(())
}

#[tokio::test]
async fn rendered_entities_match_the_csdl() -> TestResult {
    let sim = common::sim().await;
    let csdl = Csdl::load()?;
    let g = Graph::new(&sim).await?;
    let series = sim.user_create_event(
        ALICE,
        NewEvent::new("Series", dt(2026, 3, 16, 9, 0)?, dt(2026, 3, 16, 10, 0)?)
            .with_attendees(&[BOB])
            .with_recurrence(weekly(NaiveDate::from_ymd_opt(2026, 3, 16).ok_or("d")?, 3)),
    )?;
    sim.user_update_item(ALICE, &series.id, |i| {
        i.extended_properties.insert(
            ExtendedPropertyKey::crm_id(),
            ews_sim::ExtendedValue::Single("crm:activity:9".into()),
        );
    })?;
    let expand = format!("singleValueExtendedProperties($filter=id eq '{CRM_PROP}')");
    let master = g
        .get(
            &format!(
                "/users/{ALICE}/events/{}",
                ews_sim::graph::graph_item_id(&series.id)
            ),
            &[("$expand", &expand)],
        )
        .await?;
    assert!(master.json["singleValueExtendedProperties"].is_array());
    let view = g
        .get(
            &format!("/users/{ALICE}/calendarView"),
            &[
                ("startDateTime", "2026-03-01T00:00:00Z"),
                ("endDateTime", "2026-04-01T00:00:00Z"),
                ("$expand", &expand),
            ],
        )
        .await?;
    let mut entities = vec![("event", master.json.clone())];
    entities.extend(view.values().into_iter().map(|v| ("event", v)));
    let f = g
        .post(
            &format!("/users/{ALICE}/contactFolders"),
            &json!({ "displayName": "CRM Contacts" }),
        )
        .await?;
    let c = g
        .post(
            &format!("/users/{ALICE}/contactFolders/{}/contacts", f.str("/id")),
            &json!({ "givenName": "A", "emailAddresses": [{ "address": "a@x.example" }], "homeAddress": { "city": "Rome" }, "singleValueExtendedProperties": [{ "id": CRM_PROP, "value": "crm:contact:1" }] }),
        )
        .await?;
    let c = g
        .get(
            &format!("/users/{ALICE}/contacts/{}", c.str("/id")),
            &[("$expand", &expand)],
        )
        .await?;
    assert!(c.json["singleValueExtendedProperties"].is_array());
    entities.push(("contact", c.json));
    entities.push(("contactFolder", f.json));
    assert!(entities.len() >= 6);
    for (ty, v) in &entities {
        let bad = csdl.undeclared(ty, v);
        assert!(bad.is_empty(), "{ty}: undeclared {bad:?} in {v}");
    }
    // The check itself catches strays.
    let stray = csdl.undeclared(
        "event",
        &json!({ "id": "x", "subjekt": "y", "attendees": [{ "statuz": {} }] }),
    );
    assert_eq!(stray.len(), 2, "{stray:?}");
    let _ = DistinguishedFolder::Calendar;
    Ok(())
}

#[tokio::test]
async fn series_created_through_graph_and_occurrence_changes() -> TestResult {
    let sim = common::sim().await;
    let g = Graph::new(&sim).await?;
    let mut body = event_body("Graph series", 2, &[BOB]);
    body["start"] = json!({ "dateTime": "2026-03-02T09:00:00", "timeZone": "Europe/Berlin" });
    body["end"] = json!({ "dateTime": "2026-03-02T10:00:00", "timeZone": "Europe/Berlin" });
    body["recurrence"] = json!({
        "pattern": { "type": "weekly", "interval": 1, "daysOfWeek": ["monday"] },
        "range": { "type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 3 },
    });
    let master = g.post(&events(ALICE), &body).await?;
    expect(&master, 201)?;
    assert_eq!(master.str("/type"), "seriesMaster");
    // IANA names are stored as their Windows zone (what EWS reports).
    assert_eq!(
        master.str("/originalStartTimeZone"),
        "W. Europe Standard Time"
    );
    let mid = master.str("/id");
    let window = [
        ("startDateTime", "2026-03-01T00:00:00Z"),
        ("endDateTime", "2026-04-01T00:00:00Z"),
    ];
    let (inst, _, _) = g
        .follow(
            g.get(&format!("/users/{ALICE}/events/{mid}/instances"), &window)
                .await?,
        )
        .await?;
    assert_eq!(inst.len(), 3);
    let (second, third) = (
        inst[1]["id"].as_str().ok_or("id")?,
        inst[2]["id"].as_str().ok_or("id")?,
    );
    // Delta before the changes.
    let (_, delta, _) = g
        .follow(
            g.get(&format!("/users/{ALICE}/calendarView/delta"), &window)
                .await?,
        )
        .await?;
    let delta = delta.ok_or("deltaLink")?;
    // One occurrence becomes an exception, another goes; Bob's copy follows.
    let ex = g
        .patch(
            &format!("/users/{ALICE}/events/{second}"),
            &json!({ "subject": "Special" }),
            None,
        )
        .await?;
    expect(&ex, 200)?;
    assert_eq!(ex.str("/type"), "exception");
    expect(
        &g.delete(&format!("/users/{ALICE}/events/{third}")).await?,
        204,
    )?;
    let (inst, _, _) = g
        .follow(
            g.get(&format!("/users/{ALICE}/events/{mid}/instances"), &window)
                .await?,
        )
        .await?;
    assert_eq!(inst.len(), 2);
    let bob = sim
        .event_by_uid(BOB, &master.str("/iCalUId"))
        .ok_or("bob's copy")?;
    let bob_cal = bob.item.as_calendar().ok_or("calendar")?;
    assert_eq!(bob_cal.deleted_occurrences.len(), 1);
    assert_eq!(bob_cal.modified_occurrences.len(), 1);
    // Delta: the master changed, so every instance is reported, the deleted one as @removed.
    let (vals, _, _) = g.follow(g.get(&delta, &[]).await?).await?;
    assert!(
        vals.iter()
            .any(|v| v["id"] == third && v["@removed"].is_object()),
        "{vals:?}"
    );
    assert!(vals.iter().any(|v| v["subject"] == "Special"));

    // All-day: midnights in the mailbox zone; shown as floating dates.
    let all_day = json!({
        "subject": "Fair", "isAllDay": true,
        "start": { "dateTime": "2026-03-10T00:00:00", "timeZone": "W. Europe Standard Time" },
        "end": { "dateTime": "2026-03-11T00:00:00", "timeZone": "W. Europe Standard Time" },
    });
    let a = g.post(&events(ALICE), &all_day).await?;
    expect(&a, 201)?;
    assert_eq!(
        (a.str("/start/dateTime"), a.str("/end/dateTime")),
        (
            "2026-03-10T00:00:00.0000000".to_string(),
            "2026-03-11T00:00:00.0000000".to_string()
        )
    );
    let mut not_midnight = all_day.clone();
    not_midnight["start"]["dateTime"] = json!("2026-03-10T08:00:00");
    assert_eq!(g.post(&events(ALICE), &not_midnight).await?.status, 400);
    Ok(())
}

/// Container paths reach only the items in the container: an item the user deleted sits in
/// Deleted Items, where `/events/{id}` and `/contacts/{id}` still reach it (Graph's immutable
/// ids keep it addressable) but `/calendar/events/{id}` and
/// `/contactFolders/{f}/contacts/{id}` answer 404.
#[tokio::test]
async fn container_paths_do_not_reach_deleted_items() -> TestResult {
    let sim = common::sim().await;
    let g = Graph::new(&sim).await?;
    let created = g
        .post(
            &format!("/users/{ALICE}/calendar/events"),
            &event_body("Deleted in Outlook", 10, &[]),
        )
        .await?;
    expect(&created, 201)?;
    let in_calendar = created.str("/id");
    expect(
        &g.get(
            &format!("/users/{ALICE}/calendar/events/{in_calendar}"),
            &[],
        )
        .await?,
        200,
    )?;
    let moved = sim
        .user_move_to_deleted_items(ALICE, &ews_sim::graph::parse_graph_item_id(&in_calendar)?)?
        .ok_or("moved")?;
    let deleted = ews_sim::graph::graph_item_id(&moved);
    expect(
        &g.get(&format!("/users/{ALICE}/events/{deleted}"), &[])
            .await?,
        200,
    )?;
    for r in [
        g.get(&format!("/users/{ALICE}/calendar/events/{deleted}"), &[])
            .await?,
        g.patch(
            &format!("/users/{ALICE}/calendar/events/{deleted}"),
            &json!({ "subject": "written into Deleted Items" }),
            None,
        )
        .await?,
        g.delete(&format!("/users/{ALICE}/calendar/events/{deleted}"))
            .await?,
    ] {
        expect(&r, 404)?;
        assert_eq!(r.code(), Some("ErrorItemNotFound"));
    }

    let folders = format!("/users/{ALICE}/contactFolders");
    let f = g
        .post(&folders, &json!({ "displayName": "CRM Contacts" }))
        .await?;
    expect(&f, 201)?;
    let fid = f.str("/id");
    let c = g
        .post(
            &format!("{folders}/{fid}/contacts"),
            &json!({ "givenName": "Jane", "surname": "Doe" }),
        )
        .await?;
    expect(&c, 201)?;
    let moved = sim
        .user_move_to_deleted_items(ALICE, &ews_sim::graph::parse_graph_item_id(&c.str("/id"))?)?
        .ok_or("moved")?;
    let deleted = ews_sim::graph::graph_item_id(&moved);
    expect(
        &g.get(&format!("/users/{ALICE}/contacts/{deleted}"), &[])
            .await?,
        200,
    )?;
    let scoped = format!("{folders}/{fid}/contacts/{deleted}");
    expect(&g.get(&scoped, &[]).await?, 404)?;
    expect(
        &g.patch(
            &scoped,
            &json!({ "jobTitle": "written into Deleted Items" }),
            None,
        )
        .await?,
        404,
    )?;
    expect(&g.delete(&scoped).await?, 404)?;
    Ok(())
}

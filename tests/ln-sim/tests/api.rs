//! End-to-end tests of the simulator over HTTP, the way the LN client adapter will use it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ln_sim::model::{Activity, ActivityType, Attendance, Attendee, AttendeeType};
use ln_sim::{FaultRule, LnSim, NewActivity, RequestKind, SimConfig, demo_seed};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const COMPANY: &str = "100";

async fn start(contacts: usize) -> Result<LnSim, Box<dyn std::error::Error>> {
    Ok(LnSim::start(SimConfig::default().with_seed(demo_seed(COMPANY, 3, contacts))).await?)
}

async fn token(sim: &LnSim) -> Result<String, Box<dyn std::error::Error>> {
    let ion = sim.ionapi();
    let response = reqwest::Client::new()
        .post(format!("{}{}", ion.pu, ion.ot))
        .form(&[
            ("grant_type", "password"),
            ("username", ion.saak.as_str()),
            ("password", ion.sask.as_str()),
            ("client_id", ion.ci.as_str()),
            ("client_secret", ion.cs.as_str()),
        ])
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await?;
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().is_some_and(|n| n > 0));
    Ok(body["access_token"].as_str().ok_or("no token")?.to_string())
}

/// A minimal OData caller for the tests.
struct Api {
    http: reqwest::Client,
    root: String,
    token: String,
}

impl Api {
    async fn new(sim: &LnSim) -> Result<Self, Box<dyn std::error::Error>> {
        Ok(Self {
            http: reqwest::Client::new(),
            root: sim.service_root(),
            token: token(sim).await?,
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.root)
        };
        self.http
            .request(method, url)
            .bearer_auth(&self.token)
            .header("X-Infor-LnCompany", COMPANY)
    }

    async fn get(&self, path: &str) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
        let response = self.request(Method::GET, path).send().await?;
        let status = response.status();
        Ok((status, response.json().await?))
    }
}

fn ts(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

#[tokio::test]
async fn token_flow_and_revocation() -> TestResult {
    let sim = start(3).await?;
    let http = reqwest::Client::new();

    // Wrong secret.
    let response = http
        .post(sim.token_url())
        .form(&[
            ("grant_type", "password"),
            ("username", sim.credentials().saak.as_str()),
            ("password", "wrong"),
            ("client_id", sim.credentials().client_id.as_str()),
            ("client_secret", sim.credentials().client_secret.as_str()),
        ])
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await?;
    assert_eq!(body["error"], "invalid_grant");

    // No token at all.
    let response = http
        .get(format!("{}Contacts", sim.service_root()))
        .header("X-Infor-LnCompany", COMPANY)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["code"], "Unauthorized");

    let api = Api::new(&sim).await?;
    let (status, body) = api.get("Contacts").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"].as_array().map(Vec::len), Some(3));

    sim.revoke_tokens();
    let (status, _) = api.get("Contacts").await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(sim.tokens_issued(), 1);
    assert_eq!(sim.count_token_calls(), 2);
    Ok(())
}

#[tokio::test]
async fn tokens_expire() -> TestResult {
    let sim = LnSim::start(
        SimConfig::default()
            .with_seed(demo_seed(COMPANY, 1, 1))
            .with_token_lifetime(Duration::from_millis(300)),
    )
    .await?;
    let api = Api::new(&sim).await?;
    assert_eq!(api.get("SyncUsers").await?.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(api.get("SyncUsers").await?.0, StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn company_header_and_plain_reads() -> TestResult {
    let sim = start(2).await?;
    let api = Api::new(&sim).await?;
    let response = api
        .http
        .get(format!("{}Contacts", api.root))
        .bearer_auth(&api.token)
        .header("X-Infor-LnCompany", "999")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["code"], "InvalidCompany");

    let (status, settings) = api.get("Settings").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(settings["exchangeBackend"], "EWS");
    assert_eq!(
        settings["contactPullInterval"],
        json!({"value": 1, "unit": "Hours"})
    );
    assert!(
        settings["@odata.etag"]
            .as_str()
            .is_some_and(|e| e.starts_with("W/\""))
    );

    let (_, users) = api.get("SyncUsers?$filter=active eq true").await?;
    assert_eq!(users["value"][0]["email"], "anna.berg@demo.example");
    let (_, employees) = api.get("Employees").await?;
    assert_eq!(employees["value"].as_array().map(Vec::len), Some(4));

    let (status, contact) = api.get("Contacts('CON000001')").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(contact["contact"], "CON000001");
    assert!(contact["address"].is_object());
    assert!(
        contact["lastModified"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );

    let (status, missing) = api.get("Contacts('NOPE')").await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"]["code"], "NotFound");

    let (status, bad) = api
        .get("Contacts?$filter=lastModified gt '2026-01-01'")
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        bad["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("lastModified"))
    );

    let (_, nested) = api
        .get("Contacts?$filter=address/country eq 'NL'&$select=contact,address")
        .await?;
    let rows = nested["value"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].get("email").is_none());
    assert!(rows[0].get("@odata.etag").is_some());
    Ok(())
}

#[tokio::test]
async fn paging_follows_next_links() -> TestResult {
    let sim = start(45).await?;
    // Every contact shares one lastModified, the hard case for a watermark walk.
    let api = Api::new(&sim).await?;
    let mut url =
        "Contacts?$filter=lastModified gt 2000-01-01T00:00:00Z&$orderby=lastModified,contact"
            .to_string();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let response = api
            .request(Method::GET, &url)
            .header("Prefer", "odata.maxpagesize=10")
            .send()
            .await?;
        assert_eq!(
            response
                .headers()
                .get("preference-applied")
                .and_then(|v| v.to_str().ok()),
            Some("odata.maxpagesize=10")
        );
        let body: Value = response.json().await?;
        pages += 1;
        for row in body["value"].as_array().cloned().unwrap_or_default() {
            seen.push(row["contact"].as_str().unwrap_or_default().to_string());
        }
        match body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&sim.service_root()), "{next}");
                assert!(next.contains("$skiptoken="));
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(seen.len(), 45);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen);

    // Default page size applies without Prefer; $top is honoured across pages.
    let (_, body) = api.get("Contacts?$top=3&$count=true").await?;
    assert_eq!(body["value"].as_array().map(Vec::len), Some(3));
    assert_eq!(body["@odata.count"], 45);
    assert!(body.get("@odata.nextLink").is_none());
    Ok(())
}

#[tokio::test]
async fn etags_and_precondition_failed() -> TestResult {
    let sim = start(2).await?;
    let api = Api::new(&sim).await?;
    let (_, contact) = api.get("Contacts('CON000001')").await?;
    let etag = contact["@odata.etag"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let response = api
        .request(Method::PATCH, "Contacts('CON000001')")
        .header("If-Match", &etag)
        .json(&json!({"jobTitle": "Head of Purchasing", "address": {"city": "Delft"}}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let new_etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_ne!(new_etag, etag);

    let (_, after) = api.get("Contacts('CON000001')").await?;
    assert_eq!(after["jobTitle"], "Head of Purchasing");
    assert_eq!(after["address"]["city"], "Delft");
    assert_eq!(
        after["address"]["country"], contact["address"]["country"],
        "nested merge"
    );
    assert!(ts(&after["lastModified"]) >= ts(&contact["lastModified"]));

    // Stale etag.
    let response = api
        .request(Method::PATCH, "Contacts('CON000001')")
        .header("If-Match", &etag)
        .json(&json!({"jobTitle": "x"}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["code"], "PreconditionFailed");

    // Stale etag on delete, then `*` works.
    let response = api
        .request(Method::DELETE, "Contacts('CON000001')")
        .header("If-Match", &etag)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
    let response = api
        .request(Method::PATCH, "Contacts('CON000001')")
        .header("If-Match", "*")
        .header("Prefer", "return=representation")
        .json(&json!({"jobTitle": "Buyer"}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await?;
    assert_eq!(body["jobTitle"], "Buyer");

    // Missing If-Match is accepted but noted in the log.
    let response = api
        .request(Method::PATCH, "Contacts('CON000002')")
        .json(&json!({"department": "Sales"}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let noted = sim.count(|r| {
        r.method == "PATCH"
            && r.if_match.is_none()
            && r.notes.iter().any(|n| n.contains("without If-Match"))
    });
    assert_eq!(noted, 1);

    // Validation errors name the field.
    let response = api
        .request(Method::PATCH, "Contacts('CON000002')")
        .json(&json!({"email": "not-an-address"}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["target"], "email");
    let response = api
        .request(Method::PATCH, "Contacts('CON000002')")
        .json(&json!({"shoeSize": 44}))
        .send()
        .await?;
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["target"], "shoeSize");
    let response = api
        .request(Method::PATCH, "Contacts('CON000002')")
        .json(&json!({"synchronize": "yes"}))
        .send()
        .await?;
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["target"], "synchronize");
    Ok(())
}

fn appointment_body(uid: &str) -> Value {
    json!({
        "type": "Appointment",
        "subject": "Quarterly review",
        "location": "Room 4",
        "start": "2026-12-01T09:00:00Z",
        "end": "2026-12-01T10:00:00+00:00",
        "showTimeAs": "Busy",
        "status": "Planned",
        "synchronize": true,
        "origin": "Exchange",
        "externalReference": uid,
        "attendees": [
            {"attendance": "MeetingOrganizer", "attendeeType": "Employee", "attendee": "E00001",
             "fullName": "Anna Berg", "email": "anna.berg@demo.example", "invite": false},
            {"attendance": "Required", "attendeeType": "Contact", "attendee": "CON000001", "invite": true},
            {"attendance": "Optional", "attendeeType": "Other", "fullName": "Guest",
             "email": "guest@elsewhere.example", "invite": true, "attendanceStatus": "Tentative"}
        ]
    })
}

#[tokio::test]
async fn deep_insert_and_duplicate_external_reference() -> TestResult {
    let sim = start(2).await?;
    let api = Api::new(&sim).await?;
    let response = api
        .request(Method::POST, "Activities")
        .json(&appointment_body("uid-1@exchange"))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let created: Value = response.json().await?;
    assert_eq!(created["activity"], "ACT000001");
    assert!(location.ends_with("Activities('ACT000001')"));
    let attendees = created["attendees"].as_array().cloned().unwrap_or_default();
    assert_eq!(attendees.len(), 3);
    assert_eq!(attendees[2]["line"], 3);
    assert_eq!(attendees[2]["activity"], "ACT000001");
    assert_eq!(attendees[2]["attendanceStatus"], "Tentative");
    assert_eq!(attendees[1]["attendanceStatus"], "None");

    let response = api
        .request(Method::POST, "Activities")
        .json(&appointment_body("uid-1@exchange"))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["code"], "Conflict");
    assert_eq!(body["error"]["details"][0]["code"], "ExistingKey");
    assert_eq!(body["error"]["details"][0]["message"], "ACT000001");

    // Window query with expand.
    let (_, window) = api
        .get("Activities?$filter=(type eq 'Appointment' or type eq 'Call') and end ge 2026-12-01T00:00:00Z and start lt 2026-12-02T00:00:00Z&$expand=attendees")
        .await?;
    assert_eq!(window["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        window["value"][0]["attendees"].as_array().map(Vec::len),
        Some(3)
    );
    let (_, plain) = api.get("Activities('ACT000001')").await?;
    assert!(plain.get("attendees").is_none());
    let (_, nav) = api.get("Activities('ACT000001')/attendees").await?;
    assert_eq!(nav["value"].as_array().map(Vec::len), Some(3));

    // Invalid attendee: names the inline field.
    let mut bad = appointment_body("uid-2@exchange");
    bad["attendees"][1]["attendee"] = json!("NOPE");
    let response = api
        .request(Method::POST, "Activities")
        .json(&bad)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["target"], "attendees[1]/attendee");

    let mut bad = appointment_body("uid-3@exchange");
    bad["end"] = json!("2026-12-01T08:00:00Z");
    let response = api
        .request(Method::POST, "Activities")
        .json(&bad)
        .send()
        .await?;
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["target"], "end");
    Ok(())
}

#[tokio::test]
async fn attendee_changes_move_the_activity() -> TestResult {
    let sim = start(2).await?;
    let clock = sim.clock().clone();
    clock.freeze_at(ts(&json!("2026-11-29T10:00:00Z")));
    let record = sim.store().create_activity(
        COMPANY,
        NewActivity {
            activity: Activity {
                activity_type: ActivityType::Call,
                subject: Some("Call".into()),
                start: Some(ts(&json!("2026-12-01T09:00:00Z"))),
                end: Some(ts(&json!("2026-12-01T09:30:00Z"))),
                ..Activity::default()
            },
            attendees: vec![Attendee {
                attendance: Attendance::MeetingOrganizer,
                attendee_type: AttendeeType::Employee,
                attendee: Some("E00001".into()),
                ..Attendee::default()
            }],
        },
    )?;
    let key = record.record.data.activity.clone();
    let api = Api::new(&sim).await?;
    let (_, before) = api.get(&format!("Activities('{key}')")).await?;
    let (_, attendee) = api
        .get(&format!("Attendees(activity='{key}',line=1)"))
        .await?;

    clock.advance(chrono::Duration::seconds(30));
    let response = api
        .request(
            Method::PATCH,
            &format!("Attendees(activity='{key}',line=1)"),
        )
        .header(
            "If-Match",
            attendee["@odata.etag"].as_str().unwrap_or_default(),
        )
        .json(&json!({"sentToSynchronizer": true, "attendanceStatus": "Accepted"}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (_, after) = api.get(&format!("Activities('{key}')")).await?;
    assert_ne!(after["@odata.etag"], before["@odata.etag"]);
    assert_eq!(after["lastModified"], "2026-11-29T10:00:30Z");

    // Adding an attendee (POST Attendees) moves it again.
    clock.advance(chrono::Duration::seconds(30));
    let response = api
        .request(Method::POST, "Attendees")
        .json(&json!({"activity": key, "attendeeType": "Other", "email": "x@y.example", "invite": true}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::CREATED);
    let added: Value = response.json().await?;
    assert_eq!(added["line"], 2);
    let (_, after_add) = api
        .get("Activities?$filter=lastModified gt 2026-11-29T10:00:30Z")
        .await?;
    assert_eq!(after_add["value"][0]["activity"], json!(key));

    // A second organizer is refused.
    let response = api
        .request(
            Method::PATCH,
            &format!("Attendees(activity='{key}',line=2)"),
        )
        .json(&json!({"attendance": "MeetingOrganizer"}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    Ok(())
}

/// The activity's etag as a fresh read shows it.
async fn current_etag(api: &Api, key: &str) -> Result<Option<String>, Box<dyn std::error::Error>> {
    let (_, activity) = api.get(&format!("Activities('{key}')")).await?;
    Ok(activity["@odata.etag"].as_str().map(str::to_string))
}

/// Every attendee write names the parent activity's new etag, so a client keeps an exact
/// activity version without reading it again.
#[tokio::test]
async fn attendee_writes_report_the_activity_etag() -> TestResult {
    let sim = start(2).await?;
    let api = Api::new(&sim).await?;
    let created: Value = api
        .request(Method::POST, "Activities")
        .json(&appointment_body("uid-etag@exchange"))
        .send()
        .await?
        .json()
        .await?;
    let key = created["activity"].as_str().ok_or("no key")?.to_string();
    let activity_etag = |response: &reqwest::Response| {
        response
            .headers()
            .get("x-lnsync-activity-etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };

    // PATCH, answered with the representation and with 204.
    for prefer in ["return=representation", "return=minimal"] {
        let response = api
            .request(
                Method::PATCH,
                &format!("Attendees(activity='{key}',line=2)"),
            )
            .header("If-Match", "*")
            .header("Prefer", prefer)
            .json(&json!({"sentToSynchronizer": true}))
            .send()
            .await?;
        assert!(response.status().is_success(), "{}", response.status());
        let reported = activity_etag(&response);
        assert!(reported.is_some(), "{prefer}");
        assert_ne!(reported.as_deref(), created["@odata.etag"].as_str());
        assert_eq!(reported, current_etag(&api, &key).await?, "{prefer}");
    }

    // POST (both forms) and DELETE.
    let response = api
        .request(Method::POST, "Attendees")
        .json(&json!({"activity": key, "attendeeType": "Other", "email": "x@y.example"}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(activity_etag(&response), current_etag(&api, &key).await?);
    let added: Value = response.json().await?;
    assert_eq!(added["line"], 4);

    let response = api
        .request(Method::POST, &format!("Activities('{key}')/attendees"))
        .json(&json!({"attendeeType": "Other", "fullName": "Walk-in"}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(activity_etag(&response), current_etag(&api, &key).await?);

    let response = api
        .request(
            Method::DELETE,
            &format!("Attendees(activity='{key}',line=5)"),
        )
        .header("If-Match", "*")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(activity_etag(&response), current_etag(&api, &key).await?);

    // The navigation form refuses a body naming another activity.
    let response = api
        .request(Method::POST, &format!("Activities('{key}')/attendees"))
        .json(&json!({"activity": "ACT999999", "attendeeType": "Other", "fullName": "X"}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["target"], "activity");
    Ok(())
}

#[tokio::test]
async fn deletes_are_recorded() -> TestResult {
    let sim = start(3).await?;
    let api = Api::new(&sim).await?;
    sim.clock().freeze_at(ts(&json!("2026-11-29T12:00:00Z")));
    let response = api
        .request(Method::DELETE, "Contacts('CON000002')")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    sim.store()
        .delete_contact(COMPANY, "CON000003", &ln_sim::IfMatch::Any)?;

    let response = api
        .request(Method::POST, "Activities")
        .json(&appointment_body("uid-del"))
        .send()
        .await?;
    let created: Value = response.json().await?;
    let key = created["activity"].as_str().unwrap_or_default().to_string();
    let etag = created["@odata.etag"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let response = api
        .request(Method::DELETE, &format!("Activities('{key}')"))
        .header("If-Match", &etag)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        api.get(&format!("Activities('{key}')")).await?.0,
        StatusCode::NOT_FOUND
    );

    let (_, contacts) = api
        .get("DeletedObjects?$filter=deletedAt gt 2026-11-29T11:00:00Z and entity eq 'Contact'")
        .await?;
    let keys: Vec<&str> = contacts["value"]
        .as_array()
        .map(|v| v.iter().filter_map(|r| r["key"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(keys, ["CON000002", "CON000003"]);
    assert_eq!(contacts["value"][0]["deletedAt"], "2026-11-29T12:00:00Z");
    let (_, activities) = api
        .get("DeletedObjects?$filter=entity eq 'Activity'")
        .await?;
    assert_eq!(activities["value"][0]["key"], json!(key));
    let (_, attendees) = api
        .get("DeletedObjects?$filter=entity eq 'Attendee'")
        .await?;
    assert_eq!(attendees["value"].as_array().map(Vec::len), Some(3));
    assert_eq!(attendees["value"][0]["key"], json!(format!("{key}/1")));
    Ok(())
}

#[tokio::test]
async fn throttling_and_faults() -> TestResult {
    let sim = start(2).await?;
    let api = Api::new(&sim).await?;
    sim.add_fault(
        FaultRule::throttle(2)
            .entity_set("Contacts")
            .method("GET")
            .times(1),
    );
    let response = api.request(Method::GET, "Contacts").send().await?;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["code"], "TooManyRequests");
    // Consumed: the next call succeeds, other sets were never affected.
    assert_eq!(api.get("Contacts").await?.0, StatusCode::OK);

    sim.add_fault(FaultRule::unavailable(1).times(1));
    let response = api.request(Method::GET, "SyncUsers").send().await?;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));

    sim.add_fault(FaultRule::server_error().entity_set("Activities").times(1));
    assert_eq!(
        api.get("Activities").await?.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    sim.add_fault(FaultRule::delay(300).times(1));
    let started = std::time::Instant::now();
    assert_eq!(api.get("Employees").await?.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Until cleared.
    sim.add_fault(FaultRule::throttle(5).entity_set("Employees"));
    assert_eq!(api.get("Employees").await?.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(api.get("Employees").await?.0, StatusCode::TOO_MANY_REQUESTS);
    sim.clear_faults();
    assert_eq!(api.get("Employees").await?.0, StatusCode::OK);
    assert_eq!(sim.count(|r| r.fault.is_some()), 6);
    Ok(())
}

#[tokio::test]
async fn request_log_records_what_matters() -> TestResult {
    let sim = start(2).await?;
    let api = Api::new(&sim).await?;
    api.request(Method::GET, "Contacts?$filter=synchronize eq true")
        .header("Prefer", "odata.maxpagesize=50")
        .send()
        .await?;
    api.request(Method::PATCH, "Contacts('CON000001')")
        .header("If-Match", "W/\"1\"")
        .json(&json!({"jobTitle": "x"}))
        .send()
        .await?;
    // Admin calls are not logged.
    reqwest::get(format!("{}/_sim/health", sim.base_url())).await?;

    let log = sim.requests();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].kind, RequestKind::Token);
    assert_eq!(log[0].seq + 1, log[1].seq);
    let get = &log[1];
    assert_eq!(get.method, "GET");
    assert_eq!(get.entity_set.as_deref(), Some("Contacts"));
    assert_eq!(get.company.as_deref(), Some(COMPANY));
    assert_eq!(get.prefer.as_deref(), Some("odata.maxpagesize=50"));
    assert!(get.authorization);
    assert_eq!(get.status, 200);
    assert_eq!(get.decoded_query(), "$filter=synchronize eq true");
    let patch = &log[2];
    assert_eq!(patch.key.as_deref(), Some("'CON000001'"));
    assert_eq!(patch.if_match.as_deref(), Some("W/\"1\""));
    assert_eq!(patch.status, 412);

    // The token never appears in the log.
    let dump = serde_json::to_string(&log)?;
    assert!(!dump.contains(&api.token));

    sim.clear_requests();
    assert!(sim.requests().is_empty());
    Ok(())
}

#[tokio::test]
async fn watermark_ties_are_reread_not_lost() -> TestResult {
    let sim = start(0).await?;
    let clock = sim.clock().clone();
    let tie = ts(&json!("2026-11-29T10:00:00.250Z"));
    clock.freeze_at(tie);
    for i in 0..3 {
        sim.store()
            .upsert_contact(COMPANY, ln_sim::demo_contact(i))?;
    }
    clock.advance(chrono::Duration::milliseconds(1));
    sim.store()
        .upsert_contact(COMPANY, ln_sim::demo_contact(3))?;
    let api = Api::new(&sim).await?;
    let (_, ge) = api.get("Contacts?$filter=lastModified ge 2026-11-29T10:00:00.250Z&$orderby=lastModified,contact").await?;
    assert_eq!(ge["value"].as_array().map(Vec::len), Some(4));
    assert_eq!(ge["value"][0]["lastModified"], "2026-11-29T10:00:00.250Z");
    let (_, gt) = api
        .get("Contacts?$filter=lastModified gt 2026-11-29T10:00:00.250Z")
        .await?;
    assert_eq!(gt["value"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test]
async fn admin_http_api() -> TestResult {
    let sim = LnSim::start(SimConfig::default()).await?;
    let http = reqwest::Client::new();
    let admin = format!("{}/_sim", sim.base_url());
    let seed = json!({"companies": [{
        "company": "200",
        "settings": {"exchangeBackend": "Graph", "azureTenant": "contoso.example", "clientId": "app",
                     "contactPullInterval": {"value": 30, "unit": "Minutes"},
                     "calendarPullInterval": {"value": 15, "unit": "Minutes"},
                     "pushEnabled": true, "synchronizeContacts": true, "synchronizeActivities": true},
        "syncUsers": [{"user": "anna", "name": "Anna", "active": true, "email": "anna@demo.example"}],
        "employees": [{"employee": "E1", "name": "Anna", "user": "anna", "email": "anna@demo.example"}],
        "contacts": [{"contact": "C1", "lastName": "Smith", "synchronize": true,
                      "lastModified": "2026-01-01T00:00:00Z"}],
        "activities": [{"type": "Appointment", "subject": "Seeded", "start": "2026-12-01T09:00:00Z",
                        "end": "2026-12-01T10:00:00Z",
                        "attendees": [{"attendance": "MeetingOrganizer", "attendeeType": "Employee", "attendee": "E1"}]}]
    }]});
    let response = http
        .post(format!("{admin}/seed"))
        .json(&seed)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let state: Value = http
        .get(format!("{admin}/state?company=200"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(state["contacts"][0]["lastModified"], "2026-01-01T00:00:00Z");
    assert_eq!(state["activities"][0]["activity"], "ACT000001");
    assert_eq!(state["activities"][0]["attendees"][0]["line"], 1);
    assert_eq!(state["settings"]["exchangeBackend"], "Graph");

    // The state dump is itself a valid seed.
    let reseed = json!({"companies": [state.clone()]});
    let response = http
        .post(format!("{admin}/seed"))
        .json(&reseed)
        .send()
        .await?;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await?
    );

    // Contact edit through the admin API bumps lastModified.
    let response = http
        .put(format!("{admin}/companies/200/contacts/C1"))
        .json(&json!({"lastName": "Smith-Jones", "synchronize": true}))
        .send()
        .await?;
    let edited: Value = response.json().await?;
    assert_ne!(edited["lastModified"], "2026-01-01T00:00:00Z");

    let response = http
        .post(format!("{admin}/faults"))
        .json(&json!({"entitySet": "Contacts", "times": 1, "action": {"type": "throttle", "status": 429, "retryAfterSecs": 1}}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::CREATED);
    let faults: Value = http
        .get(format!("{admin}/faults"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(faults.as_array().map(Vec::len), Some(1));
    assert_eq!(
        http.delete(format!("{admin}/faults"))
            .send()
            .await?
            .status(),
        StatusCode::OK
    );

    let response = http
        .post(format!("{admin}/clock"))
        .json(&json!({"freezeAt": "2026-11-29T08:00:00Z"}))
        .send()
        .await?;
    let clock: Value = response.json().await?;
    assert_eq!(clock["now"], "2026-11-29T08:00:00Z");

    let bad = http
        .post(format!("{admin}/seed"))
        .json(&json!({"companies": [{"company": "300", "contacts": [{"contact": "X", "lastName": "Y", "email": "bad"}]}]}))
        .send()
        .await?;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let api = Api::new(&sim).await?;
    api.get("Contacts").await?;
    let requests: Value = http
        .get(format!("{admin}/requests"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(requests.as_array().map(Vec::len), Some(2));
    assert_eq!(requests[1]["entitySet"], "Contacts");
    http.post(format!("{admin}/revoke-tokens")).send().await?;
    assert_eq!(api.get("Contacts").await?.0, StatusCode::UNAUTHORIZED);
    http.post(format!("{admin}/reset")).send().await?;
    let health: Value = http
        .get(format!("{admin}/health"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(health["companies"], json!([]));
    Ok(())
}

#[tokio::test]
async fn change_events_are_published() -> TestResult {
    let sim = start(1).await?;
    let mut events = sim.subscribe_changes();
    sim.store().patch_contact(
        COMPANY,
        "CON000001",
        &json!({"jobTitle": "CEO"}),
        &ln_sim::IfMatch::Any,
    )?;
    let event = events.recv().await?;
    assert_eq!(event.key, "CON000001");
    assert_eq!(event.change, ln_sim::ChangeKind::Modified);
    Ok(())
}

/// `type` is patchable (the synchronizer switches Appointment ↔ Call when the "Call" category
/// changes in Exchange, R20); an invalid value is a 400 OData error naming `type`, and changes
/// nothing.
#[tokio::test]
async fn activity_type_can_be_patched_and_is_validated() -> TestResult {
    let sim = start(2).await?;
    let api = Api::new(&sim).await?;
    let created: Value = api
        .request(Method::POST, "Activities")
        .json(&appointment_body("uid-type@exchange"))
        .send()
        .await?
        .json()
        .await?;
    let key = created["activity"].as_str().ok_or("no key")?.to_string();
    let path = format!("Activities('{key}')");
    let etag = created["@odata.etag"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let response = api
        .request(Method::PATCH, &path)
        .header("If-Match", etag.as_str())
        .header("Prefer", "return=representation")
        .json(&json!({"type": "Call"}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let call: Value = response.json().await?;
    assert_eq!(call["type"], "Call");
    assert_eq!(call["subject"], created["subject"]);
    assert_ne!(call["@odata.etag"], created["@odata.etag"]);

    for invalid in [json!("Meeting"), json!(7), json!(null)] {
        let response = api
            .request(Method::PATCH, &path)
            .header("If-Match", "*")
            .json(&json!({"type": invalid}))
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{invalid}");
        let body: Value = response.json().await?;
        assert_eq!(body["error"]["code"], "InvalidValue", "{invalid}");
        assert_eq!(body["error"]["target"], "type", "{invalid}");
    }
    let (_, after) = api.get(&path).await?;
    assert_eq!(after["type"], "Call");
    assert_eq!(after["@odata.etag"], call["@odata.etag"]);
    Ok(())
}

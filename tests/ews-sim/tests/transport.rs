//! Auth, impersonation, X-AnchorMailbox, throttling and fault injection, the request log,
//! the admin API and schema validation of everything the tests sent and received.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::*;
use ews_sim::schema::{schema_dir, split_envelope, validate_requests};
use ews_sim::{AuthKind, FaultRule, SchemaError};

const GET_CONTACTS: &str = r#"<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="contacts"/></m:FolderIds></m:GetFolder>"#;

#[tokio::test]
async fn auth_basic_bearer_and_401() {
    let sim = sim().await;
    let mut c = Client::new(&sim);
    assert_eq!(c.call(ALICE, GET_CONTACTS).await.status, 200);

    c.auth = None;
    let r = c.call(ALICE, GET_CONTACTS).await;
    assert_eq!(r.status, 401);
    let challenges: Vec<_> = r.headers.get_all("www-authenticate").iter().collect();
    assert!(
        challenges
            .iter()
            .any(|h| h.to_str().unwrap().starts_with("Basic"))
    );

    use base64::Engine;
    c.auth = Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("svc:wrong")
    ));
    assert_eq!(c.call(ALICE, GET_CONTACTS).await.status, 401);

    c.auth = Some("Bearer tok-123".into());
    assert_eq!(c.call(ALICE, GET_CONTACTS).await.codes(), vec!["NoError"]);
    c.auth = Some("Bearer nope".into());
    assert_eq!(c.call(ALICE, GET_CONTACTS).await.status, 401);

    let log = sim.requests();
    let kinds: Vec<&AuthKind> = log.iter().map(|r| &r.auth).collect();
    assert_eq!(kinds[0], &AuthKind::Basic { user: "svc".into() });
    assert_eq!(kinds[1], &AuthKind::None);
    assert_eq!(kinds[2], &AuthKind::Rejected);
    assert_eq!(kinds[3], &AuthKind::Bearer);
    assert_eq!(log[1].http_status, 401);
}

#[tokio::test]
async fn impersonation_errors_and_anchor_mailbox() {
    let sim = sim().await;
    let c = Client::new(&sim);
    let r = c.call("nobody@corp.example", GET_CONTACTS).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.fault_code().as_deref(), Some("ErrorNonExistentMailbox"));

    sim.update_config(|cfg| cfg.allowed_impersonation = Some(vec![ALICE.into()]));
    let r = c.call(BOB, GET_CONTACTS).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.fault_code().as_deref(),
        Some("ErrorImpersonateUserDenied")
    );
    assert!(r.text.contains("a:ErrorImpersonateUserDenied"));
    assert_eq!(
        c.call(ALICE.to_uppercase().as_str(), GET_CONTACTS)
            .await
            .codes(),
        vec!["NoError"]
    );

    // Strict anchor: missing or different X-AnchorMailbox → 500 transient error.
    let r = c.raw(envelope(Some(ALICE), GET_CONTACTS), None).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.fault_code().as_deref(),
        Some("ErrorInternalServerTransientError")
    );
    let r = c.raw(envelope(Some(ALICE), GET_CONTACTS), Some(BOB)).await;
    assert_eq!(
        r.fault_code().as_deref(),
        Some("ErrorInternalServerTransientError")
    );
    let last = sim.requests().pop().unwrap();
    assert_eq!(last.anchor_mailbox.as_deref(), Some(BOB));
    assert_eq!(last.mailbox.as_deref(), Some(ALICE));

    sim.update_config(|cfg| cfg.strict_anchor = false);
    let r = c.raw(envelope(Some(ALICE), GET_CONTACTS), None).await;
    assert_eq!(r.codes(), vec!["NoError"]);

    // No impersonation: the caller's own mailbox, if it has one.
    let r = c.raw(envelope(None, GET_CONTACTS), None).await;
    assert_eq!(r.fault_code().as_deref(), Some("ErrorNonExistentMailbox"));
    sim.update_config(|cfg| cfg.credentials[0].mailbox = Some(BOB.into()));
    let r = c.raw(envelope(None, GET_CONTACTS), None).await;
    assert_eq!(r.codes(), vec!["NoError"]);
}

#[tokio::test]
async fn server_busy_fault_shape_and_backoff_enforcement() {
    let sim = sim().await;
    let c = Client::new(&sim);
    sim.add_fault(
        FaultRule::server_busy(300)
            .for_mailbox(ALICE)
            .for_operation("GetFolder"),
    );
    let r = c.call(ALICE, GET_CONTACTS).await;
    assert_eq!(r.status, 500);
    let x = r.xml();
    let fault = first(&x, "Fault").unwrap();
    assert_eq!(fault.ns, "http://schemas.xmlsoap.org/soap/envelope/");
    let fc = fault.child("faultcode").unwrap();
    assert_eq!(fc.text, "a:ErrorServerBusy");
    let detail = fault.child("detail").unwrap();
    let code = detail.child("ResponseCode").unwrap();
    assert_eq!(
        code.ns,
        "http://schemas.microsoft.com/exchange/services/2006/errors"
    );
    assert_eq!(code.text, "ErrorServerBusy");
    let mx = detail.child("MessageXml").unwrap();
    assert_eq!(
        mx.ns,
        "http://schemas.microsoft.com/exchange/services/2006/types"
    );
    let v = mx.child("Value").unwrap();
    assert_eq!(v.attr("Name"), Some("BackOffMilliseconds"));
    assert_eq!(v.text, "300");

    // Bob is not throttled; Alice is, until her back-off has elapsed.
    assert_eq!(c.call(BOB, GET_CONTACTS).await.codes(), vec!["NoError"]);
    let r = c.call(ALICE, GET_CONTACTS).await;
    assert_eq!(r.fault_code().as_deref(), Some("ErrorServerBusy"));
    let remaining: u64 = first(&r.xml(), "Value").unwrap().text.parse().unwrap();
    assert!(remaining <= 300 && remaining > 0);
    assert_eq!(sim.backoff_violations(), 1);
    assert_eq!(sim.throttled_responses(ALICE).len(), 2);

    tokio::time::sleep(Duration::from_millis(320)).await;
    assert_eq!(c.call(ALICE, GET_CONTACTS).await.codes(), vec!["NoError"]);
    assert_eq!(sim.backoff_violations(), 1);
    assert!(sim.faults().is_empty());
}

#[tokio::test]
async fn http_503_item_errors_soap_faults_and_delay() {
    let sim = sim().await;
    let c = Client::new(&sim);
    let fid = crm_folder(&c, ALICE).await;

    sim.add_fault(FaultRule::http_503(Some(2)).times(2));
    for _ in 0..2 {
        let r = c.call(ALICE, GET_CONTACTS).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.headers.get("retry-after").unwrap(), "2");
    }
    assert_eq!(c.call(ALICE, GET_CONTACTS).await.status, 200);

    // Item 1 of the next CreateItem fails; items 0 and 2 are created.
    sim.add_fault(
        FaultRule::item_error(1, "ErrorInternalServerTransientError").for_operation("CreateItem"),
    );
    let contacts: Vec<String> = (0..3)
        .map(|i| simple_contact(&format!("crm:{i}"), "A", "B"))
        .collect();
    let r = c
        .call(ALICE, &create_contact_op(&folder_xml(&fid), &contacts))
        .await;
    assert_eq!(
        r.codes(),
        vec!["NoError", "ErrorInternalServerTransientError", "NoError"]
    );
    assert_eq!(
        sim.items_in_folder(ALICE, &ews_sim::FolderId(fid.clone()))
            .unwrap()
            .len(),
        2
    );
    let logged = sim.requests().pop().unwrap();
    assert_eq!(logged.response_codes, r.codes());
    assert!(logged.injected.unwrap().contains("ItemError"));

    sim.add_fault(FaultRule::soap_fault("ErrorInternalServerTransientError").for_mailbox(BOB));
    let r = c.call(BOB, GET_CONTACTS).await;
    assert_eq!(
        (r.status, r.fault_code().as_deref()),
        (500, Some("ErrorInternalServerTransientError"))
    );

    sim.add_fault(FaultRule::delay(150));
    let t = Instant::now();
    assert_eq!(c.call(ALICE, GET_CONTACTS).await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn request_log_records_everything() {
    let sim = sim().await;
    let c = Client::new(&sim);
    let fid = crm_folder(&c, ALICE).await;
    let contacts: Vec<String> = (0..3)
        .map(|i| simple_contact(&format!("crm:{i}"), "A", "B"))
        .collect();
    c.call(ALICE, &create_contact_op(&folder_xml(&fid), &contacts))
        .await;
    c.call(BOB, GET_CONTACTS).await;

    let log = sim.requests();
    assert_eq!(log.len(), 3);
    assert_eq!(log.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    let create = &log[1];
    assert_eq!(create.operation.as_deref(), Some("CreateItem"));
    assert_eq!(create.mailbox.as_deref(), Some(ALICE));
    assert_eq!(create.anchor_mailbox.as_deref(), Some(ALICE));
    assert_eq!(create.server_version.as_deref(), Some("Exchange2013_SP1"));
    assert_eq!(create.item_count, 3);
    assert_eq!(create.http_status, 200);
    assert_eq!(create.response_codes, vec!["NoError"; 3]);
    assert!(create.body.contains("<m:CreateItem"));
    assert_eq!(sim.count_operation("CreateItem"), 1);
    assert_eq!(sim.count_for_mailbox(ALICE), 2);
    assert_eq!(sim.count_operation_for_mailbox("GetFolder", BOB), 1);
    assert_eq!(sim.write_calls(), 2);
    assert_eq!(sim.write_calls_for_mailbox(BOB), 0);
    sim.clear_requests();
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn admin_api_seed_state_faults_requests() {
    let sim = sim().await;
    let http = reqwest::Client::new();
    let base = sim.base_url();
    let health: serde_json::Value = http
        .get(format!("{base}/_sim/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    let seed = serde_json::json!({
        "mailboxes": [{
            "smtp": "carol@corp.example",
            "folders": [{"name": "CRM Contacts", "parent": "contacts"}],
            "contacts": [{
                "folder": "CRM Contacts",
                "given_name": "Jane", "surname": "Doe",
                "email_addresses": {"EmailAddress1": "jane@acme.example"},
                "physical_addresses": {"Business": {"city": "Berlin"}},
                "extended_properties": [{"distinguished_property_set_id": "PublicStrings", "property_name": "CrmId", "property_type": "String", "value": "crm:contact:7"}]
            }]
        }]
    });
    let r = http
        .post(format!("{base}/_sim/seed"))
        .json(&seed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: serde_json::Value = r.json().await.unwrap();
    let fid = report["mailboxes"]["carol@corp.example"]["folders"]["CRM Contacts"]
        .as_str()
        .unwrap()
        .to_string();

    // The seeded contact is found by CrmId over EWS.
    let c = Client::new(&sim);
    let r = c
        .call(
            "carol@corp.example",
            &format!(
                r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape><m:Restriction><t:IsEqualTo>{CRM_URI}<t:FieldURIOrConstant><t:Constant Value="crm:contact:7"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction><m:ParentFolderIds>{}</m:ParentFolderIds></m:FindItem>"#,
                folder_xml(&fid)
            ),
        )
        .await;
    assert_eq!(
        first(&r.xml(), "GivenName").map(|e| e.text.clone()),
        Some("Jane".into())
    );

    let state: serde_json::Value = http
        .get(format!("{base}/_sim/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let carol = state["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["smtp"] == "carol@corp.example")
        .unwrap();
    let crm = carol["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["display_name"] == "CRM Contacts")
        .unwrap();
    assert_eq!(crm["items"][0]["item"]["kind"]["given_name"], "Jane");

    // User edit over the admin API bumps the ChangeKey.
    // Ids are base64 ('/', '+', '='): percent-encode them in paths.
    let item_id = crm["items"][0]["id"]
        .as_str()
        .unwrap()
        .replace('%', "%25")
        .replace('/', "%2F")
        .replace('+', "%2B")
        .replace('=', "%3D");
    let r = http
        .put(format!(
            "{base}/_sim/mailboxes/carol@corp.example/items/{item_id}"
        ))
        .json(&serde_json::json!({"given_name": "Janet"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Faults over HTTP.
    let r = http
        .post(format!("{base}/_sim/faults"))
        .json(&serde_json::json!({"mailbox": "carol@corp.example", "count": 1, "action": {"kind": "server_busy", "back_off_ms": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        c.call("carol@corp.example", GET_CONTACTS)
            .await
            .fault_code()
            .as_deref(),
        Some("ErrorServerBusy")
    );

    let reqs: serde_json::Value = http
        .get(format!("{base}/_sim/requests?operation=GetFolder"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reqs["count"], 1);
    assert_eq!(reqs["requests"][0]["fault_code"], "ErrorServerBusy");
    assert_eq!(reqs["requests"][0]["body"], "");

    let inv: serde_json::Value = http
        .post(format!("{base}/_sim/sync-states/invalidate"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(inv["invalidated"], 0);
    assert_eq!(
        http.delete(format!("{base}/_sim/requests"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        http.post(format!("{base}/_sim/reset"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert!(sim.mailboxes().is_empty());
}

// ------------------------------------------------------------------ schema helper

fn spec_sample(op: &str) -> String {
    envelope(Some(ALICE), op)
}

/// Requests from exchange.md (§2.2, §2.4, §2.6, §2.7, §2.8).
fn spec_samples() -> Vec<String> {
    vec![
        spec_sample(
            r#"<m:CreateItem>
  <m:SavedItemFolderId><t:FolderId Id="AAMkCrmContactsFolder"/></m:SavedItemFolderId>
  <m:Items><t:Contact>
    <t:ExtendedProperty><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="CrmId"
      PropertyType="String"/><t:Value>crm:contact:42</t:Value></t:ExtendedProperty>
    <t:FileAs>Doe, Jane</t:FileAs><t:GivenName>Jane</t:GivenName><t:CompanyName>Acme GmbH</t:CompanyName>
    <t:EmailAddresses><t:Entry Key="EmailAddress1">jane.doe@acme.example</t:Entry></t:EmailAddresses>
    <t:PhysicalAddresses><t:Entry Key="Business"><t:Street>Main St 1</t:Street><t:City>Berlin</t:City>
      <t:PostalCode>10115</t:PostalCode></t:Entry></t:PhysicalAddresses>
    <t:PhoneNumbers><t:Entry Key="BusinessPhone">+49 30 1234</t:Entry></t:PhoneNumbers>
    <t:JobTitle>CTO</t:JobTitle><t:Surname>Doe</t:Surname>
  </t:Contact></m:Items>
</m:CreateItem>"#,
        ),
        spec_sample(
            r#"<m:FindItem Traversal="Shallow">
  <m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
  <m:IndexedPageItemView MaxEntriesReturned="2" Offset="0" BasePoint="Beginning"/>
  <m:Restriction><t:IsEqualTo>
    <t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="CrmId" PropertyType="String"/>
    <t:FieldURIOrConstant><t:Constant Value="crm:contact:42"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction>
  <m:ParentFolderIds><t:FolderId Id="AAMkCrmContactsFolder"/></m:ParentFolderIds>
</m:FindItem>"#,
        ),
        spec_sample(
            r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId>
  <t:DistinguishedFolderId Id="calendar"/></m:SyncFolderId><m:SyncState>H4sIAAA</m:SyncState>
  <m:MaxChangesReturned>512</m:MaxChangesReturned><m:SyncScope>NormalItems</m:SyncScope></m:SyncFolderItems>"#,
        ),
        spec_sample(
            r#"<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderId><m:Folders><t:ContactsFolder><t:DisplayName>CRM Contacts</t:DisplayName></t:ContactsFolder></m:Folders></m:CreateFolder>"#,
        ),
        spec_sample(
            r#"<m:UpdateItem ConflictResolution="AlwaysOverwrite"><m:ItemChanges><t:ItemChange><t:ItemId Id="AAMkAGI2ItemA" ChangeKey="DwAAABYAAAA1"/><t:Updates>
  <t:SetItemField><t:IndexedFieldURI FieldURI="contacts:EmailAddress" FieldIndex="EmailAddress1"/><t:Contact><t:EmailAddresses><t:Entry Key="EmailAddress1">a@b.example</t:Entry></t:EmailAddresses></t:Contact></t:SetItemField>
  <t:DeleteItemField><t:IndexedFieldURI FieldURI="contacts:PhoneNumber" FieldIndex="BusinessFax"/></t:DeleteItemField>
</t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#,
        ),
        spec_sample(
            r#"<m:DeleteItem DeleteType="MoveToDeletedItems" SendMeetingCancellations="SendToNone"><m:ItemIds><t:ItemId Id="AAMkAGI2ItemA"/></m:ItemIds></m:DeleteItem>"#,
        ),
    ]
}

#[test]
fn schema_helper_accepts_spec_samples_and_rejects_mutant() {
    let dir = schema_dir().expect("schemas");
    let samples = spec_samples();
    validate_requests(&samples, &dir).unwrap_or_else(|e| panic!("{e}"));

    let mutant = samples[0]
        .replace(
            "<t:CompanyName>Acme GmbH</t:CompanyName>",
            "<t:JobTitle>CTO</t:JobTitle><t:CompanyName>Acme GmbH</t:CompanyName>",
        )
        .replace("<t:JobTitle>CTO</t:JobTitle><t:Surname>", "<t:Surname>");
    let mut batch = samples.clone();
    batch.push(mutant);
    match validate_requests(&batch, &dir) {
        Err(SchemaError::Invalid(v)) => {
            assert_eq!(v.len(), 1, "{v:?}");
            assert_eq!(v[0].request_index, samples.len());
            assert_eq!(v[0].element, "CreateItem");
            assert!(v[0].message.contains("CompanyName"), "{}", v[0].message);
        }
        other => panic!("expected a violation, got {other:?}"),
    }
    let over = samples[2].replace(">512<", ">1000<");
    assert!(matches!(
        validate_requests(&[over], &dir),
        Err(SchemaError::Invalid(_))
    ));
    assert_eq!(split_envelope(&samples[0]).unwrap().len(), 3);
}

/// Everything a session of requests sends and the sim answers validates against the XSDs
/// (the sim's responses must be what a schema-driven client expects).
#[tokio::test]
async fn sim_traffic_validates_against_the_schemas() {
    let sim = sim().await;
    let c = Client::new(&sim);
    let mut responses = Vec::new();
    let fid = crm_folder(&c, ALICE).await;
    let full = r#"<t:Contact><t:Subject>S</t:Subject><t:Body BodyType="Text">B</t:Body>
      <t:ExtendedProperty><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="CrmId" PropertyType="String"/><t:Value>crm:1</t:Value></t:ExtendedProperty>
      <t:FileAs>F</t:FileAs><t:DisplayName>D</t:DisplayName><t:GivenName>G</t:GivenName><t:Initials>I</t:Initials><t:MiddleName>M</t:MiddleName><t:CompanyName>C</t:CompanyName>
      <t:EmailAddresses><t:Entry Key="EmailAddress1">e@x.example</t:Entry></t:EmailAddresses>
      <t:PhysicalAddresses><t:Entry Key="Business"><t:Street>S</t:Street><t:City>C</t:City><t:State>S</t:State><t:CountryOrRegion>DE</t:CountryOrRegion><t:PostalCode>1</t:PostalCode></t:Entry></t:PhysicalAddresses>
      <t:PhoneNumbers><t:Entry Key="BusinessPhone">1</t:Entry><t:Entry Key="MobilePhone">2</t:Entry></t:PhoneNumbers>
      <t:AssistantName>A</t:AssistantName><t:Birthday>1980-01-01T00:00:00Z</t:Birthday><t:Department>D</t:Department><t:Generation>G</t:Generation><t:JobTitle>J</t:JobTitle><t:Surname>S</t:Surname></t:Contact>"#;
    let r = c
        .call(
            ALICE,
            &create_contact_op(&folder_xml(&fid), &[full.into(), full.into()]),
        )
        .await;
    let (id, ck) = item_ids(&r).remove(0);
    responses.push(r.text);
    let ops = [
        format!(r#"<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape><t:AdditionalProperties>{CRM_URI}</t:AdditionalProperties></m:ItemShape><m:ItemIds><t:ItemId Id="{id}"/><t:ItemId Id="AAMkbad"/></m:ItemIds></m:GetItem>"#),
        format!(r#"<m:UpdateItem ConflictResolution="AlwaysOverwrite"><m:ItemChanges><t:ItemChange><t:ItemId Id="{id}" ChangeKey="{ck}"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="contacts:Surname"/><t:Contact><t:Surname>X</t:Surname></t:Contact></t:SetItemField></t:Updates></t:ItemChange><t:ItemChange><t:ItemId Id="{id}" ChangeKey="{ck}"/><t:Updates><t:DeleteItemField><t:FieldURI FieldURI="contacts:JobTitle"/></t:DeleteItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#),
        format!(r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="1" Offset="0" BasePoint="Beginning"/><m:ParentFolderIds>{}</m:ParentFolderIds></m:FindItem>"#, folder_xml(&fid)),
        format!(r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape><m:SyncFolderId>{}</m:SyncFolderId><m:MaxChangesReturned>1</m:MaxChangesReturned></m:SyncFolderItems>"#, folder_xml(&fid)),
        r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId><t:DistinguishedFolderId Id="contacts"/></m:SyncFolderId><m:SyncState>bogus</m:SyncState><m:MaxChangesReturned>5</m:MaxChangesReturned></m:SyncFolderItems>"#.to_string(),
        r#"<m:FindFolder Traversal="Deep"><m:FolderShape><t:BaseShape>AllProperties</t:BaseShape></m:FolderShape><m:ParentFolderIds><t:DistinguishedFolderId Id="msgfolderroot"/></m:ParentFolderIds></m:FindFolder>"#.to_string(),
        GET_CONTACTS.to_string(),
        format!(r#"<m:DeleteItem DeleteType="HardDelete"><m:ItemIds><t:ItemId Id="{id}"/><t:ItemId Id="{id}"/></m:ItemIds></m:DeleteItem>"#),
        r#"<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderId><m:Folders><t:ContactsFolder><t:DisplayName>CRM Contacts</t:DisplayName></t:ContactsFolder></m:Folders></m:CreateFolder>"#.to_string(),
    ];
    for op in ops {
        let r = c.call(ALICE, &op).await;
        assert_eq!(r.status, 200, "{}", r.text);
        responses.push(r.text);
    }
    let dir = schema_dir().unwrap();
    validate_requests(&sim.request_bodies(), &dir).unwrap_or_else(|e| panic!("requests: {e}"));
    validate_requests(&responses, &dir).unwrap_or_else(|e| panic!("responses: {e}"));
}

//! Operation-level behaviour, over real HTTP with hand-written SOAP.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;

use common::*;
use ews_sim::{Contact, DistinguishedFolder, ExtendedPropertyKey, FolderId, Item, ItemId};

#[tokio::test]
async fn create_folder_find_folder_get_folder() {
    let sim = sim().await;
    let c = Client::new(&sim);
    let fid = crm_folder(&c, ALICE).await;

    // Same name again under the same parent (any case) → ErrorFolderExists.
    let dup = c
        .call(
            ALICE,
            r#"<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderId><m:Folders><t:ContactsFolder><t:DisplayName>crm contacts</t:DisplayName></t:ContactsFolder><t:Folder><t:DisplayName>Other</t:DisplayName></t:Folder></m:Folders></m:CreateFolder>"#,
        )
        .await;
    assert_eq!(dup.status, 200);
    assert_eq!(dup.codes(), vec!["ErrorFolderExists", "NoError"]);
    assert_eq!(
        first(&dup.xml(), "CreateFolderResponseMessage").and_then(|m| m.attr("ResponseClass")),
        Some("Error")
    );

    let find = c
        .call(
            ALICE,
            r#"<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>
               <m:Restriction><t:IsEqualTo><t:FieldURI FieldURI="folder:DisplayName"/><t:FieldURIOrConstant><t:Constant Value="CRM Contacts"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction>
               <m:ParentFolderIds><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderIds></m:FindFolder>"#,
        )
        .await;
    assert_eq!(find.codes(), vec!["NoError"], "{}", find.text);
    let x = find.xml();
    let root = first(&x, "RootFolder").unwrap();
    assert_eq!(root.attr("TotalItemsInView"), Some("1"));
    assert_eq!(root.attr("IncludesLastItemInRange"), Some("true"));
    let folder = first(&x, "ContactsFolder").unwrap();
    assert_eq!(folder.child_text("DisplayName"), Some("CRM Contacts"));
    assert_eq!(folder_ids(&find), vec![fid.clone()]);

    // Deep from the root finds it too; no restriction lists all below contacts.
    let deep = c
        .call(
            ALICE,
            r#"<m:FindFolder Traversal="Deep"><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:ParentFolderIds><t:DistinguishedFolderId Id="msgfolderroot"/></m:ParentFolderIds></m:FindFolder>"#,
        )
        .await;
    assert!(folder_ids(&deep).contains(&fid));

    let get = c
        .call(
            ALICE,
            &format!(
                r#"<m:GetFolder><m:FolderShape><t:BaseShape>AllProperties</t:BaseShape></m:FolderShape><m:FolderIds>{}<t:FolderId Id="AAMkbogus"/></m:FolderIds></m:GetFolder>"#,
                folder_xml(&fid)
            ),
        )
        .await;
    assert_eq!(get.codes(), vec!["NoError", "ErrorInvalidIdMalformed"]);
    assert_eq!(
        first(&get.xml(), "FolderClass").map(|e| e.text.clone()),
        Some("IPF.Contact".into())
    );

    // The handle sees it by name; Bob's mailbox does not.
    assert_eq!(
        sim.find_folder_by_name(ALICE, "CRM Contacts")
            .map(|f| f.id.0),
        Some(fid)
    );
    assert!(sim.find_folder_by_name(BOB, "CRM Contacts").is_none());
}

const FULL_CONTACT: &str = r#"<t:Contact>
  <t:Subject>Jane Doe</t:Subject>
  <t:Body BodyType="Text">Notes &amp; more</t:Body>
  <t:ExtendedProperty><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="CrmId" PropertyType="String"/><t:Value>crm:contact:42</t:Value></t:ExtendedProperty>
  <t:ExtendedProperty><t:ExtendedFieldURI PropertySetId="c11ff724-aa03-4555-9952-8fa248a11c3e" PropertyName="Language" PropertyType="String"/><t:Value>de</t:Value></t:ExtendedProperty>
  <t:FileAs>Doe, Jane</t:FileAs>
  <t:DisplayName>Jane Q. Doe</t:DisplayName>
  <t:GivenName>Jane</t:GivenName>
  <t:Initials>J.Q.D.</t:Initials>
  <t:MiddleName>Quinn</t:MiddleName>
  <t:CompanyName>Acme GmbH</t:CompanyName>
  <t:EmailAddresses><t:Entry Key="EmailAddress1">jane.doe@acme.example</t:Entry><t:Entry Key="EmailAddress2">jd@home.example</t:Entry></t:EmailAddresses>
  <t:PhysicalAddresses><t:Entry Key="Business"><t:Street>Main St 1</t:Street><t:City>Berlin</t:City><t:State>BE</t:State><t:CountryOrRegion>DE</t:CountryOrRegion><t:PostalCode>10115</t:PostalCode></t:Entry></t:PhysicalAddresses>
  <t:PhoneNumbers><t:Entry Key="BusinessPhone">+49 30 1234</t:Entry><t:Entry Key="MobilePhone">+49 170 1</t:Entry><t:Entry Key="BusinessFax">+49 30 1235</t:Entry></t:PhoneNumbers>
  <t:AssistantName>Max</t:AssistantName>
  <t:Birthday>1980-05-04T00:00:00Z</t:Birthday>
  <t:Department>R&amp;D</t:Department>
  <t:Generation>Jr.</t:Generation>
  <t:JobTitle>CTO</t:JobTitle>
  <t:Surname>Doe</t:Surname>
</t:Contact>"#;

const EXPECTED_ORDER: &[&str] = &[
    "ItemId",
    "ParentFolderId",
    "ItemClass",
    "Subject",
    "Body",
    "DateTimeCreated",
    "ExtendedProperty",
    "ExtendedProperty",
    "LastModifiedTime",
    "FileAs",
    "DisplayName",
    "GivenName",
    "Initials",
    "MiddleName",
    "CompanyName",
    "EmailAddresses",
    "PhysicalAddresses",
    "PhoneNumbers",
    "AssistantName",
    "Birthday",
    "Department",
    "Generation",
    "JobTitle",
    "Surname",
];

#[tokio::test]
async fn create_item_get_item_round_trip_in_schema_order() {
    let sim = sim().await;
    let c = Client::new(&sim);
    let fid = crm_folder(&c, ALICE).await;
    let r = c
        .call(
            ALICE,
            &create_contact_op(&folder_xml(&fid), &[FULL_CONTACT.to_string()]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    let (id, ck) = item_ids(&r).remove(0);
    assert!(id.starts_with("AAMk") && !ck.is_empty());

    let get = c
        .call(
            ALICE,
            &format!(
                r#"<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape><t:AdditionalProperties>
                   {CRM_URI}<t:ExtendedFieldURI PropertySetId="{{C11FF724-AA03-4555-9952-8FA248A11C3E}}" PropertyName="Language" PropertyType="String"/>
                   </t:AdditionalProperties></m:ItemShape><m:ItemIds><t:ItemId Id="{id}" ChangeKey="{ck}"/></m:ItemIds></m:GetItem>"#
            ),
        )
        .await;
    assert_eq!(get.codes(), vec!["NoError"], "{}", get.text);
    let x = get.xml();
    let contact = first(&x, "Contact").unwrap();
    let names: Vec<&str> = contact.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, EXPECTED_ORDER, "{}", get.text);
    let t = |n: &str| contact.child_text(n).unwrap_or_default().to_string();
    assert_eq!(t("Subject"), "Jane Doe");
    assert_eq!(t("Body"), "Notes & more");
    assert_eq!(t("ItemClass"), "IPM.Contact");
    assert_eq!(t("FileAs"), "Doe, Jane");
    assert_eq!(t("DisplayName"), "Jane Q. Doe");
    assert_eq!(t("GivenName"), "Jane");
    assert_eq!(t("Initials"), "J.Q.D.");
    assert_eq!(t("MiddleName"), "Quinn");
    assert_eq!(t("CompanyName"), "Acme GmbH");
    assert_eq!(t("AssistantName"), "Max");
    assert_eq!(t("Birthday"), "1980-05-04T00:00:00Z");
    assert_eq!(t("Department"), "R&D");
    assert_eq!(t("Generation"), "Jr.");
    assert_eq!(t("JobTitle"), "CTO");
    assert_eq!(t("Surname"), "Doe");
    let entries: Vec<(String, String)> = all(contact, "Entry")
        .iter()
        .filter(|e| e.children.is_empty())
        .map(|e| (e.attr("Key").unwrap().to_string(), e.text.clone()))
        .collect();
    assert!(entries.contains(&("EmailAddress1".into(), "jane.doe@acme.example".into())));
    assert!(entries.contains(&("BusinessFax".into(), "+49 30 1235".into())));
    let addr = first(contact, "PhysicalAddresses").unwrap().children[0].clone();
    let parts: Vec<(&str, &str)> = addr
        .children
        .iter()
        .map(|c| (c.name.as_str(), c.text.as_str()))
        .collect();
    assert_eq!(
        parts,
        vec![
            ("Street", "Main St 1"),
            ("City", "Berlin"),
            ("State", "BE"),
            ("CountryOrRegion", "DE"),
            ("PostalCode", "10115")
        ]
    );
    let ext: Vec<(String, String)> = all(contact, "ExtendedProperty")
        .iter()
        .map(|e| {
            let uri = e.child("ExtendedFieldURI").unwrap();
            (
                uri.attr("PropertyName").unwrap().to_string(),
                e.child_text("Value").unwrap().to_string(),
            )
        })
        .collect();
    assert!(ext.contains(&("CrmId".into(), "crm:contact:42".into())));
    assert!(ext.contains(&("Language".into(), "de".into())));
    // Exchange echoes PublicStrings by name.
    assert!(
        get.text
            .contains(r#"DistinguishedPropertySetId="PublicStrings" PropertyName="CrmId""#)
    );

    // The handle sees the same item with its extended properties.
    let items = sim.items_in_folder(ALICE, &FolderId(fid.clone())).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]
            .item
            .extended(&ExtendedPropertyKey::crm_id())
            .and_then(|v| v.as_single()),
        Some("crm:contact:42")
    );
    assert_eq!(items[0].item.as_contact().unwrap().phone_numbers.len(), 3);

    // IdOnly + indexed additional properties return just those.
    let idonly = c
        .call(
            ALICE,
            &format!(
                r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="contacts:Surname"/><t:IndexedFieldURI FieldURI="contacts:EmailAddress" FieldIndex="EmailAddress1"/><t:IndexedFieldURI FieldURI="contacts:PhysicalAddress:City" FieldIndex="Business"/></t:AdditionalProperties></m:ItemShape><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:GetItem>"#
            ),
        )
        .await;
    let x = idonly.xml();
    let contact = first(&x, "Contact").unwrap();
    let names: Vec<&str> = contact.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["ItemId", "EmailAddresses", "PhysicalAddresses", "Surname"]
    );
    assert_eq!(first(contact, "EmailAddresses").unwrap().children.len(), 1);
    assert_eq!(
        first(contact, "City").map(|e| e.text.as_str()),
        Some("Berlin")
    );
    assert!(first(contact, "Street").is_none());
}

#[tokio::test]
async fn create_item_rejects_out_of_order_contact_and_handles_batches() {
    let sim = sim().await;
    let c = Client::new(&sim);
    let bad = "<t:Contact><t:GivenName>A</t:GivenName><t:JobTitle>CTO</t:JobTitle><t:CompanyName>Acme</t:CompanyName></t:Contact>";
    let r = c
        .call(
            ALICE,
            &create_contact_op(r#"<t:DistinguishedFolderId Id="contacts"/>"#, &[bad.into()]),
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.fault_code().as_deref(), Some("ErrorSchemaValidation"));
    assert!(r.text.contains("CompanyName"), "{}", r.text);

    // Unknown folder: every item gets ErrorFolderNotFound (well-formed id from another mailbox).
    let bob_contacts = sim.folder_id(BOB, DistinguishedFolder::Contacts).unwrap();
    let r = c
        .call(
            ALICE,
            &create_contact_op(
                &folder_xml(bob_contacts.as_str()),
                &[
                    simple_contact("crm:1", "A", "B"),
                    simple_contact("crm:2", "C", "D"),
                ],
            ),
        )
        .await;
    assert_eq!(
        r.codes(),
        vec!["ErrorFolderNotFound", "ErrorFolderNotFound"]
    );
    assert!(r.text.contains("<m:Items/>"));
}

async fn create_one(c: &Client, fid: &str, crm: &str) -> (String, String) {
    let r = c
        .call(
            ALICE,
            &create_contact_op(&folder_xml(fid), &[simple_contact(crm, "Jane", "Doe")]),
        )
        .await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    item_ids(&r).remove(0)
}

fn update_op(resolution: &str, changes: &[(String, Option<String>, String)]) -> String {
    let mut s = format!("<m:UpdateItem ConflictResolution=\"{resolution}\"><m:ItemChanges>");
    for (id, ck, updates) in changes {
        let ck = ck
            .as_ref()
            .map(|k| format!(" ChangeKey=\"{k}\""))
            .unwrap_or_default();
        s.push_str(&format!("<t:ItemChange><t:ItemId Id=\"{id}\"{ck}/><t:Updates>{updates}</t:Updates></t:ItemChange>"));
    }
    s.push_str("</m:ItemChanges></m:UpdateItem>");
    s
}

const SET_JOB: &str = r#"<t:SetItemField><t:FieldURI FieldURI="contacts:JobTitle"/><t:Contact><t:JobTitle>CEO</t:JobTitle></t:Contact></t:SetItemField>"#;

#[tokio::test]
async fn update_item_change_keys_are_enforced() {
    let sim = sim().await;
    let c = Client::new(&sim);
    let fid = crm_folder(&c, ALICE).await;
    let (id, ck) = create_one(&c, &fid, "crm:contact:1").await;
    let (id2, ck2) = create_one(&c, &fid, "crm:contact:2").await;

    // The user edits item 1 in Outlook → our ChangeKey is stale.
    let user_ck = sim
        .user_update_item(ALICE, &ItemId(id.clone()), |it| {
            if let Some(c) = it.as_contact_mut() {
                c.job_title = Some("Intern".into());
            }
        })
        .unwrap();
    assert_ne!(user_ck.0, ck);

    let r = c
        .call(
            ALICE,
            &update_op(
                "AlwaysOverwrite",
                &[
                    (id.clone(), Some(ck.clone()), SET_JOB.into()),
                    (id2.clone(), None, SET_JOB.into()),
                    (
                        sim_unknown_id(&sim),
                        Some("CQAAAA==".into()),
                        SET_JOB.into(),
                    ),
                    (id2.clone(), Some(ck2.clone()), SET_JOB.into()),
                ],
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.codes(),
        vec![
            "ErrorIrresolvableConflict",
            "ErrorChangeKeyRequiredForWriteOperations",
            "ErrorItemNotFound",
            "NoError"
        ]
    );
    // The successful one returns the new ChangeKey and a ConflictResults count.
    let x = r.xml();
    let ok = all(&x, "UpdateItemResponseMessage")[3];
    let new_ck = first(ok, "ItemId")
        .and_then(|e| e.attr("ChangeKey"))
        .unwrap()
        .to_string();
    assert_ne!(new_ck, ck2);
    assert_eq!(first(ok, "Count").map(|e| e.text.as_str()), Some("0"));
    let stored = sim.item(ALICE, &ItemId(id2.clone())).unwrap();
    assert_eq!(stored.change_key.0, new_ck);
    assert_eq!(
        stored.item.as_contact().unwrap().job_title.as_deref(),
        Some("CEO")
    );
    // The conflicting item keeps the user's edit.
    let stored1 = sim.item(ALICE, &ItemId(id.clone())).unwrap();
    assert_eq!(
        stored1.item.as_contact().unwrap().job_title.as_deref(),
        Some("Intern")
    );

    // Fresh key: indexed, physical-address, extended and delete updates all apply at once.
    let updates = format!(
        r#"<t:SetItemField><t:IndexedFieldURI FieldURI="contacts:EmailAddress" FieldIndex="EmailAddress1"/><t:Contact><t:EmailAddresses><t:Entry Key="EmailAddress1">new@acme.example</t:Entry></t:EmailAddresses></t:Contact></t:SetItemField>
           <t:SetItemField><t:IndexedFieldURI FieldURI="contacts:PhoneNumber" FieldIndex="BusinessPhone"/><t:Contact><t:PhoneNumbers><t:Entry Key="BusinessPhone">+1 555</t:Entry></t:PhoneNumbers></t:Contact></t:SetItemField>
           <t:SetItemField><t:IndexedFieldURI FieldURI="contacts:PhysicalAddress:City" FieldIndex="Business"/><t:Contact><t:PhysicalAddresses><t:Entry Key="Business"><t:City>Hamburg</t:City></t:Entry></t:PhysicalAddresses></t:Contact></t:SetItemField>
           <t:SetItemField><t:FieldURI FieldURI="contacts:CompanyName"/><t:Contact><t:CompanyName>Globex</t:CompanyName></t:Contact></t:SetItemField>
           <t:SetItemField>{CRM_URI}<t:Contact><t:ExtendedProperty>{CRM_URI}<t:Value>crm:contact:1b</t:Value></t:ExtendedProperty></t:Contact></t:SetItemField>
           <t:DeleteItemField><t:FieldURI FieldURI="contacts:GivenName"/></t:DeleteItemField>"#
    );
    let r = c
        .call(
            ALICE,
            &update_op(
                "AutoResolve",
                &[(id.clone(), Some(user_ck.0.clone()), updates)],
            ),
        )
        .await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    let item = sim.item(ALICE, &ItemId(id.clone())).unwrap().item;
    let contact = item.as_contact().unwrap();
    assert_eq!(
        contact
            .email_addresses
            .get("EmailAddress1")
            .map(String::as_str),
        Some("new@acme.example")
    );
    assert_eq!(
        contact
            .phone_numbers
            .get("BusinessPhone")
            .map(String::as_str),
        Some("+1 555")
    );
    assert_eq!(
        contact.physical_addresses["Business"].city.as_deref(),
        Some("Hamburg")
    );
    assert_eq!(contact.company_name.as_deref(), Some("Globex"));
    assert_eq!(contact.given_name, None);
    assert_eq!(
        item.extended(&ExtendedPropertyKey::crm_id())
            .and_then(|v| v.as_single()),
        Some("crm:contact:1b")
    );

    // Delete the phone and the address city (the now-empty address disappears).
    let ck_now = sim.item(ALICE, &ItemId(id.clone())).unwrap().change_key.0;
    let updates = r#"<t:DeleteItemField><t:IndexedFieldURI FieldURI="contacts:PhoneNumber" FieldIndex="BusinessPhone"/></t:DeleteItemField><t:DeleteItemField><t:IndexedFieldURI FieldURI="contacts:PhysicalAddress:City" FieldIndex="Business"/></t:DeleteItemField>"#;
    let r = c
        .call(
            ALICE,
            &update_op(
                "AlwaysOverwrite",
                &[(id.clone(), Some(ck_now), updates.into())],
            ),
        )
        .await;
    assert_eq!(r.codes(), vec!["NoError"]);
    let contact = sim.item(ALICE, &ItemId(id.clone())).unwrap().item;
    let contact = contact.as_contact().unwrap();
    assert!(contact.phone_numbers.is_empty());
    assert!(contact.physical_addresses.is_empty());

    // Missing ConflictResolution is a schema fault.
    let r = c
        .call(ALICE, "<m:UpdateItem><m:ItemChanges><t:ItemChange><t:ItemId Id=\"x\"/><t:Updates/></t:ItemChange></m:ItemChanges></m:UpdateItem>")
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.fault_code().as_deref(), Some("ErrorSchemaValidation"));
}

/// A well-formed id that no mailbox holds (created then deleted).
fn sim_unknown_id(sim: &ews_sim::EwsSim) -> String {
    let contacts = sim.folder_id(BOB, DistinguishedFolder::Contacts).unwrap();
    let (id, _) = sim
        .user_create_item(BOB, &contacts, Item::contact(Contact::default()))
        .unwrap();
    sim.user_delete_item(BOB, &id).unwrap();
    id.0
}

#[tokio::test]
async fn delete_item_types_and_errors() {
    let sim = sim().await;
    let c = Client::new(&sim);
    let fid = crm_folder(&c, ALICE).await;
    let (a, ack) = create_one(&c, &fid, "crm:a").await;
    let (b, _) = create_one(&c, &fid, "crm:b").await;
    let (d, _) = create_one(&c, &fid, "crm:d").await;
    let unknown = sim_unknown_id(&sim);
    let r = c
        .call(
            ALICE,
            &format!(
                r#"<m:DeleteItem DeleteType="MoveToDeletedItems" SendMeetingCancellations="SendToNone"><m:ItemIds><t:ItemId Id="{a}" ChangeKey="{ack}"/><t:ItemId Id="{b}" ChangeKey="CQAAABYAAAAstale"/><t:ItemId Id="{unknown}"/><t:ItemId Id="{d}"/></m:ItemIds></m:DeleteItem>"#
            ),
        )
        .await;
    assert_eq!(
        r.codes(),
        vec![
            "NoError",
            "ErrorIrresolvableConflict",
            "ErrorItemNotFound",
            "NoError"
        ]
    );
    assert_eq!(
        sim.items_in_folder(ALICE, &FolderId(fid.clone()))
            .unwrap()
            .len(),
        1
    );
    let deleted = sim
        .folder_id(ALICE, DistinguishedFolder::DeletedItems)
        .unwrap();
    assert_eq!(sim.items_in_folder(ALICE, &deleted).unwrap().len(), 2);
    let r = c
        .call(ALICE, &format!(r#"<m:DeleteItem DeleteType="HardDelete"><m:ItemIds><t:ItemId Id="{b}"/></m:ItemIds></m:DeleteItem>"#))
        .await;
    assert_eq!(r.codes(), vec!["NoError"]);
    assert!(
        sim.items_in_folder(ALICE, &FolderId(fid))
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn find_item_restriction_on_crm_id_and_paging() {
    let sim = sim().await;
    let c = Client::new(&sim);
    let fid = crm_folder(&c, ALICE).await;
    let contacts: Vec<String> = (0..5)
        .map(|i| simple_contact(&format!("crm:contact:{i}"), "N", &format!("S{i}")))
        .collect();
    let r = c
        .call(ALICE, &create_contact_op(&folder_xml(&fid), &contacts))
        .await;
    assert_eq!(r.codes().len(), 5);
    // A duplicate stamp, as after a crash between create and commit.
    create_one(&c, &fid, "CRM:CONTACT:3").await;

    let find = |restriction: String, view: &str| {
        format!(
            r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>{CRM_URI}<t:FieldURI FieldURI="contacts:Surname"/></t:AdditionalProperties></m:ItemShape>{view}{restriction}<m:ParentFolderIds>{}</m:ParentFolderIds></m:FindItem>"#,
            folder_xml(&fid)
        )
    };
    let eq = format!(
        r#"<m:Restriction><t:IsEqualTo>{CRM_URI}<t:FieldURIOrConstant><t:Constant Value="crm:contact:3"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction>"#
    );
    let r = c
        .call(ALICE, &find(eq, r#"<m:IndexedPageItemView MaxEntriesReturned="2" Offset="0" BasePoint="Beginning"/>"#))
        .await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    let x = r.xml();
    let root = first(&x, "RootFolder").unwrap();
    assert_eq!(root.attr("TotalItemsInView"), Some("2"));
    assert_eq!(root.attr("IncludesLastItemInRange"), Some("true"));
    let values: Vec<String> = all(&x, "Value").iter().map(|v| v.text.clone()).collect();
    assert_eq!(values, vec!["crm:contact:3", "CRM:CONTACT:3"]);

    // And / Not / Exists / Contains combinations.
    let combo = format!(
        r#"<m:Restriction><t:And><t:Exists>{CRM_URI}</t:Exists><t:Not><t:IsEqualTo><t:FieldURI FieldURI="contacts:Surname"/><t:FieldURIOrConstant><t:Constant Value="S0"/></t:FieldURIOrConstant></t:IsEqualTo></t:Not><t:Contains ContainmentMode="Prefixed" ContainmentComparison="IgnoreCase"><t:FieldURI FieldURI="contacts:Surname"/><t:Constant Value="s"/></t:Contains></t:And></m:Restriction>"#
    );
    let r = c.call(ALICE, &find(combo, "")).await;
    let x = r.xml();
    assert_eq!(
        first(&x, "RootFolder").unwrap().attr("TotalItemsInView"),
        Some("4")
    );

    // Paging through all 6 two at a time.
    let mut offset = 0;
    let mut seen = Vec::new();
    loop {
        let view = format!(
            r#"<m:IndexedPageItemView MaxEntriesReturned="2" Offset="{offset}" BasePoint="Beginning"/>"#
        );
        let r = c.call(ALICE, &find(String::new(), &view)).await;
        let x = r.xml();
        let root = first(&x, "RootFolder").unwrap();
        assert_eq!(root.attr("TotalItemsInView"), Some("6"));
        seen.extend(all(root, "Surname").iter().map(|s| s.text.clone()));
        offset = root.attr("IndexedPagingOffset").unwrap().parse().unwrap();
        if root.attr("IncludesLastItemInRange") == Some("true") {
            break;
        }
    }
    assert_eq!(seen, vec!["S0", "S1", "S2", "S3", "S4", "Doe"]);
    assert_eq!(offset, 6);
}

fn sync_op(folder: &str, state: Option<&str>, max: u32) -> String {
    let state = state
        .map(|s| format!("<m:SyncState>{s}</m:SyncState>"))
        .unwrap_or_default();
    format!(
        r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>{CRM_URI}</t:AdditionalProperties></m:ItemShape><m:SyncFolderId>{}</m:SyncFolderId>{state}<m:MaxChangesReturned>{max}</m:MaxChangesReturned><m:SyncScope>NormalItems</m:SyncScope></m:SyncFolderItems>"#,
        folder_xml(folder)
    )
}

/// (change kind, item id) pairs plus SyncState and IncludesLastItemInRange.
fn sync_result(r: &Resp) -> (Vec<(String, String)>, String, bool) {
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    let x = r.xml();
    let changes = first(&x, "Changes")
        .unwrap()
        .children
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                first(c, "ItemId").unwrap().attr("Id").unwrap().to_string(),
            )
        })
        .collect();
    let state = first(&x, "SyncState").unwrap().text.clone();
    let last = first(&x, "IncludesLastItemInRange").unwrap().text == "true";
    (changes, state, last)
}

#[tokio::test]
async fn sync_folder_items_first_incremental_paging_and_errors() {
    let sim = sim().await;
    let c = Client::new(&sim);
    let fid = crm_folder(&c, ALICE).await;
    let contacts: Vec<String> = (0..5)
        .map(|i| simple_contact(&format!("crm:{i}"), "N", "S"))
        .collect();
    let created = item_ids(
        &c.call(ALICE, &create_contact_op(&folder_xml(&fid), &contacts))
            .await,
    );
    let ids: Vec<String> = created.iter().map(|(i, _)| i.clone()).collect();

    // First sync, paged by 2: all items as Create.
    let mut state: Option<String> = None;
    let mut creates = Vec::new();
    let mut calls = 0;
    loop {
        let r = c.call(ALICE, &sync_op(&fid, state.as_deref(), 2)).await;
        let (changes, s, last) = sync_result(&r);
        calls += 1;
        assert!(changes.len() <= 2);
        assert!(changes.iter().all(|(k, _)| k == "Create"));
        creates.extend(changes.into_iter().map(|(_, id)| id));
        state = Some(s);
        if last {
            break;
        }
    }
    assert_eq!(calls, 3);
    assert_eq!(creates, ids);
    // The CrmId comes along with IdOnly + AdditionalProperties.
    let r = c.call(ALICE, &sync_op(&fid, None, 1)).await;
    assert!(r.text.contains("crm:0"), "{}", r.text);

    // Nothing changed → no changes, same contract.
    let r = c.call(ALICE, &sync_op(&fid, state.as_deref(), 512)).await;
    let (changes, s, last) = sync_result(&r);
    assert!(changes.is_empty() && last);
    let state1 = s;

    // User edits twice (coalesced to one Update), deletes one, creates one then deletes it
    // (invisible), and creates another.
    let item = |i: usize| ItemId(ids[i].clone());
    for t in ["A", "B"] {
        sim.user_update_item(ALICE, &item(1), |it| it.subject = Some(t.into()))
            .unwrap();
    }
    sim.user_delete_item(ALICE, &item(2)).unwrap();
    let folder = FolderId(fid.clone());
    let (ghost, _) = sim
        .user_create_item(ALICE, &folder, Item::contact(Contact::default()))
        .unwrap();
    sim.user_delete_item(ALICE, &ghost).unwrap();
    let (fresh, _) = sim
        .user_create_item(ALICE, &folder, Item::contact(Contact::default()))
        .unwrap();
    let r = c.call(ALICE, &sync_op(&fid, Some(&state1), 512)).await;
    let (changes, state2, last) = sync_result(&r);
    assert!(last);
    assert_eq!(
        changes,
        vec![
            ("Update".to_string(), ids[1].clone()),
            ("Delete".to_string(), ids[2].clone()),
            ("Create".to_string(), fresh.0.clone()),
        ]
    );
    // The old state still works (states are snapshots), the new one is empty.
    let r = c.call(ALICE, &sync_op(&fid, Some(&state1), 512)).await;
    assert_eq!(sync_result(&r).0.len(), 3);
    let r = c.call(ALICE, &sync_op(&fid, Some(&state2), 512)).await;
    assert!(sync_result(&r).0.is_empty());

    // Invalid, foreign-folder and invalidated states → ErrorInvalidSyncStateData.
    let r = c
        .call(ALICE, &sync_op(&fid, Some("H4sIAAAAbogus"), 10))
        .await;
    assert_eq!(r.codes(), vec!["ErrorInvalidSyncStateData"]);
    let contacts_id = sim.folder_id(ALICE, DistinguishedFolder::Contacts).unwrap();
    let r = c
        .call(ALICE, &sync_op(contacts_id.as_str(), Some(&state2), 10))
        .await;
    assert_eq!(r.codes(), vec!["ErrorInvalidSyncStateData"]);
    assert!(sim.invalidate_sync_states(Some(ALICE)) > 0);
    let r = c.call(ALICE, &sync_op(&fid, Some(&state2), 10)).await;
    assert_eq!(r.codes(), vec!["ErrorInvalidSyncStateData"]);
    assert_eq!(
        first(&r.xml(), "SyncFolderItemsResponseMessage")
            .unwrap()
            .attr("ResponseClass"),
        Some("Error")
    );

    // MaxChangesReturned outside 1..512 → schema fault.
    for bad in [0, 513, 1000] {
        let r = c.call(ALICE, &sync_op(&fid, None, bad)).await;
        assert_eq!(r.status, 500);
        assert_eq!(r.fault_code().as_deref(), Some("ErrorSchemaValidation"));
    }

    // Folder deleted by the user → ErrorSyncFolderNotFound.
    sim.delete_folder(ALICE, &folder).unwrap();
    let r = c.call(ALICE, &sync_op(&fid, None, 10)).await;
    assert_eq!(r.codes(), vec!["ErrorSyncFolderNotFound"]);
}

#[tokio::test]
async fn sync_state_too_old_is_rejected() {
    let sim = sim().await;
    sim.update_config(|c| c.max_sync_states_per_folder = 2);
    let c = Client::new(&sim);
    let fid = crm_folder(&c, ALICE).await;
    let (_, s1, _) = sync_result(&c.call(ALICE, &sync_op(&fid, None, 10)).await);
    let (_, s2, _) = sync_result(&c.call(ALICE, &sync_op(&fid, Some(&s1), 10)).await);
    let (_, _s3, _) = sync_result(&c.call(ALICE, &sync_op(&fid, Some(&s2), 10)).await);
    let r = c.call(ALICE, &sync_op(&fid, Some(&s1), 10)).await;
    assert_eq!(r.codes(), vec!["ErrorInvalidSyncStateData"]);
}

#[tokio::test]
async fn malformed_and_unknown_requests_are_faults() {
    let sim = sim().await;
    let c = Client::new(&sim);
    let r = c.raw("<soap:Envelope><oops".into(), Some(ALICE)).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.fault_code().as_deref(), Some("ErrorSchemaValidation"));
    assert!(r.text.contains("<faultcode xmlns:a=\"http://schemas.microsoft.com/exchange/services/2006/types\">a:ErrorSchemaValidation</faultcode>"));

    let r = c.call(ALICE, "<m:ResolveNames ReturnFullContactData=\"true\"><m:UnresolvedEntry>x</m:UnresolvedEntry></m:ResolveNames>").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.fault_code().as_deref(), Some("ErrorInvalidRequest"));

    // Operation in the types namespace (wrong prefix) → schema fault.
    let r = c.call(ALICE, r#"<t:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="contacts"/></m:FolderIds></t:GetFolder>"#).await;
    assert_eq!(r.fault_code().as_deref(), Some("ErrorSchemaValidation"));

    // Missing RequestServerVersion.
    let body = envelope(Some(ALICE), "<m:GetFolder/>").replace(
        r#"<t:RequestServerVersion Version="Exchange2013_SP1"/>"#,
        "",
    );
    let r = c.raw(body, Some(ALICE)).await;
    assert_eq!(r.fault_code().as_deref(), Some("ErrorInvalidServerVersion"));

    // Any prefixes work.
    let odd = format!(
        r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ty="http://schemas.microsoft.com/exchange/services/2006/types"><e:Header><ty:RequestServerVersion Version="Exchange2016"/><ty:ExchangeImpersonation><ty:ConnectingSID><ty:SmtpAddress>{ALICE}</ty:SmtpAddress></ty:ConnectingSID></ty:ExchangeImpersonation></e:Header><e:Body><GetFolder xmlns="http://schemas.microsoft.com/exchange/services/2006/messages"><FolderShape><ty:BaseShape>Default</ty:BaseShape></FolderShape><FolderIds><ty:DistinguishedFolderId Id="contacts"/></FolderIds></GetFolder></e:Body></e:Envelope>"#
    );
    let r = c.raw(odd, Some(ALICE)).await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
}

//! Codec tests: golden requests, schema validation of every builder, and response parsing on
//! hand-written responses (including faults and per-item errors).

use std::time::Duration;

use chrono::NaiveDate;
use lnsync_core::ids::{CrmStamp, ExchangeItemId, ExchangeVersion};
use lnsync_core::normalize::{ContactFields, PostalAddress};
use lnsync_core::ports::{ContactUpdate, ItemRef, NewContact};

use super::schema_check;
use super::*;
use crate::ews::notify::EventKind;

const MAILBOX: &str = "alice@corp.example";

fn full_fields() -> ContactFields {
    ContactFields {
        display_name: Some("Dr. Jane Q. Doe Jr.".into()),
        file_as: Some("Doe, Jane".into()),
        given_name: Some("Jane".into()),
        middle_name: Some("Q.".into()),
        surname: Some("Doe".into()),
        title: Some("Dr.".into()),
        generation: Some("Jr.".into()),
        initials: Some("JQD".into()),
        job_title: Some("CTO".into()),
        department: Some("R&D <core>".into()),
        company_name: Some("Acme GmbH".into()),
        assistant_name: Some("Max".into()),
        birthday: NaiveDate::from_ymd_opt(1980, 5, 17),
        email: Some("jane.doe@acme.example".into()),
        business_phone: Some("+49 30 1234".into()),
        mobile_phone: Some("+49 170 1234".into()),
        business_fax: Some("+49 30 1235".into()),
        business_address: Some(PostalAddress {
            street: Some("Main St 1\nBuilding 2".into()),
            city: Some("Berlin".into()),
            state: Some("BE".into()),
            postal_code: Some("10115".into()),
            country: Some("DE".into()),
        }),
        language: Some("de".into()),
    }
}

fn minimal_fields() -> ContactFields {
    ContactFields {
        surname: Some("Roe".into()),
        ..ContactFields::default()
    }
}

fn stamp(code: &str) -> CrmStamp {
    CrmStamp::from_raw(format!("ln:prod:contact:{code}"))
}

fn folder() -> FolderRef {
    FolderRef::Id(FolderId::new("AAMkCrmContactsFolder"))
}

fn new_contacts() -> Vec<NewContact> {
    vec![
        NewContact {
            stamp: stamp("C1"),
            fields: full_fields(),
        },
        NewContact {
            stamp: stamp("C2"),
            fields: minimal_fields(),
        },
    ]
}

fn updates() -> Vec<ContactUpdate> {
    let item = |id: &str| ItemRef {
        id: ExchangeItemId::new(id),
        version: ExchangeVersion::new("CK1"),
    };
    vec![
        ContactUpdate {
            item: item("AAMkItem1"),
            stamp: stamp("C1"),
            fields: full_fields(),
        },
        ContactUpdate {
            item: item("AAMkItem2"),
            stamp: stamp("C2"),
            fields: minimal_fields(),
        },
    ]
}

fn ids() -> Vec<ItemId> {
    vec![
        ItemId::new("AAMkItem1", Some("CK1".into())),
        ItemId::new("AAMkItem2", None),
    ]
}

const PUSH_URL: &str = "https://sync.corp.example/ews/prod/t0k&n";

fn calendar_only() -> [FolderRef; 1] {
    [FolderRef::Distinguished(DistinguishedFolder::Calendar)]
}

/// One envelope per builder and interesting variant.
fn every_request() -> Vec<String> {
    let env = Envelope::new(MAILBOX);
    let folder = folder();
    let contacts = new_contacts();
    let updates = updates();
    let ids = ids();
    let calendar = calendar_only();
    let calendar_and_contacts = [calendar[0].clone(), folder.clone()];
    let every_kind = [
        EventKind::Created,
        EventKind::Modified,
        EventKind::Deleted,
        EventKind::Moved,
        EventKind::Copied,
        EventKind::NewMail,
        EventKind::FreeBusyChanged,
    ];
    vec![
        env.build(&PushSubscribe {
            folders: &calendar,
            events: &CALENDAR_EVENTS,
            watermark: Some("AQAAAEWatermark="),
            status_frequency_minutes: 5,
            url: PUSH_URL,
        }),
        env.build(&PushSubscribe {
            folders: &calendar_and_contacts,
            events: &every_kind,
            watermark: None,
            status_frequency_minutes: 0,
            url: PUSH_URL,
        }),
        env.build(&PushSubscribe {
            folders: &calendar,
            events: &CALENDAR_EVENTS,
            watermark: Some(""),
            status_frequency_minutes: 100_000,
            url: PUSH_URL,
        }),
        env.build(&FindFolder {
            parent: FolderRef::Distinguished(DistinguishedFolder::Contacts),
            display_name: "CRM Contacts".into(),
        }),
        env.build(&CreateContactsFolder {
            parent: FolderRef::Distinguished(DistinguishedFolder::Contacts),
            display_name: "CRM Contacts".into(),
        }),
        env.build(&CreateContacts {
            folder: &folder,
            contacts: &contacts,
        }),
        env.build(&UpdateContacts { updates: &updates }),
        env.build(&DeleteItems { ids: &ids }),
        env.build(&GetItems::stamps(&ids)),
        env.build(&FindItems {
            folder: &folder,
            restriction: Restriction::crm_id_in(&["ln:prod:contact:C1"]),
            page: Page::first(10),
        }),
        env.build(&FindItems {
            folder: &folder,
            restriction: Restriction::crm_id_in(&[
                "ln:prod:contact:C1",
                "ln:prod:contact:C2",
                "x&y",
            ]),
            page: Page::first(10),
        }),
        env.build(&FindItems {
            folder: &folder,
            restriction: None,
            page: Page {
                offset: 500,
                max_entries: 500,
            },
        }),
        env.build(&SyncFolderItems {
            folder: &folder,
            sync_state: None,
            max_changes: 512,
        }),
        env.build(&SyncFolderItems {
            folder: &folder,
            sync_state: Some("H4sIAAA="),
            max_changes: 5000,
        }),
    ]
}

#[test]
fn every_request_builder_validates_against_the_ews_schemas() {
    schema_check::assert_valid(&every_request());
}

#[test]
fn the_schema_check_rejects_a_contact_with_fields_out_of_xsd_order() {
    let Some(dir) = schema_check::schema_dir_or_skip() else {
        return;
    };
    let good = Envelope::new(MAILBOX).build(&CreateContacts {
        folder: &folder(),
        contacts: &new_contacts(),
    });
    let mutant = good
        .replacen("<t:JobTitle>CTO</t:JobTitle>", "", 1)
        .replacen(
            "<t:CompanyName>",
            "<t:JobTitle>CTO</t:JobTitle><t:CompanyName>",
            1,
        );
    assert_ne!(good, mutant);
    let result = ews_sim::schema::validate_requests(&[mutant], &dir);
    assert!(
        matches!(result, Err(ews_sim::SchemaError::Invalid(_))),
        "a misordered contact must fail: {result:?}"
    );
}

#[test]
fn the_schema_check_rejects_a_subscription_with_the_watermark_after_the_frequency() {
    let Some(dir) = schema_check::schema_dir_or_skip() else {
        return;
    };
    let good = Envelope::new(MAILBOX).build(&PushSubscribe {
        folders: &calendar_only(),
        events: &CALENDAR_EVENTS,
        watermark: Some("W"),
        status_frequency_minutes: 5,
        url: PUSH_URL,
    });
    let mutant = good
        .replacen("<t:Watermark>W</t:Watermark>", "", 1)
        .replacen("<t:URL>", "<t:Watermark>W</t:Watermark><t:URL>", 1);
    assert_ne!(good, mutant);
    let result = ews_sim::schema::validate_requests(&[mutant], &dir);
    assert!(
        matches!(result, Err(ews_sim::SchemaError::Invalid(_))),
        "a misordered subscription must fail: {result:?}"
    );
}

#[test]
fn golden_push_subscription_of_the_calendar() {
    let xml = Envelope::new(MAILBOX).build(&PushSubscribe {
        folders: &calendar_only(),
        events: &CALENDAR_EVENTS,
        watermark: Some("AQAAAEWatermark="),
        status_frequency_minutes: 5,
        url: PUSH_URL,
    });
    assert!(xml.contains(concat!(
        r#"<soap:Body><m:Subscribe><m:PushSubscriptionRequest>"#,
        r#"<t:FolderIds><t:DistinguishedFolderId Id="calendar"/></t:FolderIds>"#,
        r#"<t:EventTypes><t:EventType>CreatedEvent</t:EventType><t:EventType>ModifiedEvent</t:EventType>"#,
        r#"<t:EventType>DeletedEvent</t:EventType><t:EventType>MovedEvent</t:EventType></t:EventTypes>"#,
        r#"<t:Watermark>AQAAAEWatermark=</t:Watermark><t:StatusFrequency>5</t:StatusFrequency>"#,
        r#"<t:URL>https://sync.corp.example/ews/prod/t0k&amp;n</t:URL>"#,
        r#"</m:PushSubscriptionRequest></m:Subscribe></soap:Body>"#
    )), "{xml}");
    assert!(xml.contains("<t:PrimarySmtpAddress>alice@corp.example</t:PrimarySmtpAddress>"));

    // No (or an empty) watermark starts now; the frequency is clamped to the schema's 1..=1440.
    let frequency = |minutes: u32, watermark: Option<&str>| {
        Envelope::new(MAILBOX).build(&PushSubscribe {
            folders: &calendar_only(),
            events: &CALENDAR_EVENTS,
            watermark,
            status_frequency_minutes: minutes,
            url: PUSH_URL,
        })
    };
    let low = frequency(0, None);
    assert!(
        low.contains("</t:EventTypes><t:StatusFrequency>1</t:StatusFrequency>"),
        "{low}"
    );
    let high = frequency(100_000, Some(""));
    assert!(
        high.contains("</t:EventTypes><t:StatusFrequency>1440</t:StatusFrequency>"),
        "{high}"
    );
}

#[test]
fn envelope_carries_version_and_impersonation_headers() {
    let xml = Envelope::new("o'neil&co@corp.example").build(&DeleteItems { ids: &ids() });
    assert!(xml.starts_with(r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/""#));
    assert!(xml.contains(r#"<soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/><t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>o&apos;neil&amp;co@corp.example</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation></soap:Header>"#), "{xml}");
}

#[test]
fn golden_delete_and_get_and_find_bodies() {
    let env = Envelope::new(MAILBOX);
    let body = |xml: String| {
        let start = xml.find("<soap:Body>").expect("body") + "<soap:Body>".len();
        let end = xml.find("</soap:Body>").expect("body end");
        xml[start..end].to_owned()
    };
    assert_eq!(
        body(env.build(&DeleteItems { ids: &ids() })),
        r#"<m:DeleteItem DeleteType="HardDelete"><m:ItemIds><t:ItemId Id="AAMkItem1" ChangeKey="CK1"/><t:ItemId Id="AAMkItem2"/></m:ItemIds></m:DeleteItem>"#
    );
    assert_eq!(
        body(env.build(&GetItems::stamps(&ids()[..1]))),
        r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="CrmId" PropertyType="String"/></t:AdditionalProperties></m:ItemShape><m:ItemIds><t:ItemId Id="AAMkItem1" ChangeKey="CK1"/></m:ItemIds></m:GetItem>"#
    );
    assert_eq!(
        body(env.build(&FindItems {
            folder: &folder(),
            restriction: Restriction::crm_id_in(&["a", "b"]),
            page: Page::first(2)
        })),
        concat!(
            r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>"#,
            r#"<t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="CrmId" PropertyType="String"/></t:AdditionalProperties></m:ItemShape>"#,
            r#"<m:IndexedPageItemView MaxEntriesReturned="2" Offset="0" BasePoint="Beginning"/>"#,
            r#"<m:Restriction><t:Or>"#,
            r#"<t:IsEqualTo><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="CrmId" PropertyType="String"/><t:FieldURIOrConstant><t:Constant Value="a"/></t:FieldURIOrConstant></t:IsEqualTo>"#,
            r#"<t:IsEqualTo><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="CrmId" PropertyType="String"/><t:FieldURIOrConstant><t:Constant Value="b"/></t:FieldURIOrConstant></t:IsEqualTo>"#,
            r#"</t:Or></m:Restriction>"#,
            r#"<m:SortOrder><t:FieldOrder Order="Ascending"><t:FieldURI FieldURI="item:DateTimeCreated"/></t:FieldOrder></m:SortOrder>"#,
            r#"<m:ParentFolderIds><t:FolderId Id="AAMkCrmContactsFolder"/></m:ParentFolderIds></m:FindItem>"#
        )
    );
    assert_eq!(Restriction::crm_id_in::<&str>(&[]), None);
}

#[test]
fn golden_create_contact_in_xsd_order_with_escaping() {
    let xml = Envelope::new(MAILBOX).build(&CreateContacts {
        folder: &folder(),
        contacts: &new_contacts()[..1],
    });
    let expected = concat!(
        r#"<m:CreateItem><m:SavedItemFolderId><t:FolderId Id="AAMkCrmContactsFolder"/></m:SavedItemFolderId><m:Items><t:Contact>"#,
        r#"<t:ExtendedProperty><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="CrmId" PropertyType="String"/><t:Value>ln:prod:contact:C1</t:Value></t:ExtendedProperty>"#,
        r#"<t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0x3A45" PropertyType="String"/><t:Value>Dr.</t:Value></t:ExtendedProperty>"#,
        r#"<t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0x3A0C" PropertyType="String"/><t:Value>de</t:Value></t:ExtendedProperty>"#,
        r#"<t:FileAs>Doe, Jane</t:FileAs><t:DisplayName>Dr. Jane Q. Doe Jr.</t:DisplayName><t:GivenName>Jane</t:GivenName>"#,
        r#"<t:Initials>JQD</t:Initials><t:MiddleName>Q.</t:MiddleName><t:CompanyName>Acme GmbH</t:CompanyName>"#,
        r#"<t:EmailAddresses><t:Entry Key="EmailAddress1">jane.doe@acme.example</t:Entry></t:EmailAddresses>"#,
        r#"<t:PhysicalAddresses><t:Entry Key="Business"><t:Street>Main St 1"#,
        "\n",
        r#"Building 2</t:Street><t:City>Berlin</t:City><t:State>BE</t:State><t:CountryOrRegion>DE</t:CountryOrRegion><t:PostalCode>10115</t:PostalCode></t:Entry></t:PhysicalAddresses>"#,
        r#"<t:PhoneNumbers><t:Entry Key="BusinessPhone">+49 30 1234</t:Entry><t:Entry Key="MobilePhone">+49 170 1234</t:Entry><t:Entry Key="BusinessFax">+49 30 1235</t:Entry></t:PhoneNumbers>"#,
        r#"<t:AssistantName>Max</t:AssistantName><t:Birthday>1980-05-17T12:00:00Z</t:Birthday><t:Department>R&amp;D &lt;core&gt;</t:Department>"#,
        r#"<t:Generation>Jr.</t:Generation><t:JobTitle>CTO</t:JobTitle><t:Surname>Doe</t:Surname>"#,
        r#"</t:Contact></m:Items></m:CreateItem>"#
    );
    assert!(xml.contains(expected), "{xml}");
}

#[test]
fn update_sets_filled_fields_and_deletes_empty_ones() {
    let updates = updates();
    let xml = Envelope::new(MAILBOX).build(&UpdateContacts {
        updates: &updates[1..],
    });
    assert!(xml.contains(r#"<m:UpdateItem ConflictResolution="AlwaysOverwrite"><m:ItemChanges><t:ItemChange><t:ItemId Id="AAMkItem2" ChangeKey="CK1"/>"#));
    // The stamp is always (re)set; Surname is filled; everything else is cleared.
    assert!(xml.contains(r#"<t:SetItemField><t:FieldURI FieldURI="contacts:Surname"/><t:Contact><t:Surname>Roe</t:Surname></t:Contact></t:SetItemField>"#));
    assert!(xml.contains(
        r#"<t:DeleteItemField><t:FieldURI FieldURI="contacts:JobTitle"/></t:DeleteItemField>"#
    ));
    assert!(xml.contains(r#"<t:DeleteItemField><t:IndexedFieldURI FieldURI="contacts:EmailAddress" FieldIndex="EmailAddress1"/></t:DeleteItemField>"#));
    assert!(xml.contains(r#"<t:DeleteItemField><t:IndexedFieldURI FieldURI="contacts:PhysicalAddress:City" FieldIndex="Business"/></t:DeleteItemField>"#));
    assert!(xml.contains(r#"<t:DeleteItemField><t:IndexedFieldURI FieldURI="contacts:PhoneNumber" FieldIndex="MobilePhone"/></t:DeleteItemField>"#));
    assert!(xml.contains(r#"<t:DeleteItemField><t:ExtendedFieldURI PropertyTag="0x3A0C" PropertyType="String"/></t:DeleteItemField>"#));
    assert_eq!(xml.matches("<t:SetItemField>").count(), 2);
    assert_eq!(xml.matches("<t:DeleteItemField>").count(), 22);

    let xml = Envelope::new(MAILBOX).build(&UpdateContacts {
        updates: &updates[..1],
    });
    assert!(xml.contains(r#"<t:SetItemField><t:IndexedFieldURI FieldURI="contacts:PhysicalAddress:City" FieldIndex="Business"/><t:Contact><t:PhysicalAddresses><t:Entry Key="Business"><t:City>Berlin</t:City></t:Entry></t:PhysicalAddresses></t:Contact></t:SetItemField>"#));
    assert!(xml.contains(r#"<t:SetItemField><t:IndexedFieldURI FieldURI="contacts:PhoneNumber" FieldIndex="BusinessFax"/><t:Contact><t:PhoneNumbers><t:Entry Key="BusinessFax">+49 30 1235</t:Entry></t:PhoneNumbers></t:Contact></t:SetItemField>"#));
    assert!(xml.contains(r#"<t:SetItemField><t:ExtendedFieldURI PropertyTag="0x3A45" PropertyType="String"/><t:Contact><t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0x3A45" PropertyType="String"/><t:Value>Dr.</t:Value></t:ExtendedProperty></t:Contact></t:SetItemField>"#));
    assert!(!xml.contains("<t:DeleteItemField>"));
}

#[test]
fn sync_folder_items_clamps_and_omits_empty_state() {
    let f = folder();
    let xml = Envelope::new(MAILBOX).build(&SyncFolderItems {
        folder: &f,
        sync_state: Some(""),
        max_changes: 0,
    });
    assert!(!xml.contains("SyncState"));
    assert!(xml.contains("<m:MaxChangesReturned>1</m:MaxChangesReturned>"));
    let xml = Envelope::new(MAILBOX).build(&SyncFolderItems {
        folder: &f,
        sync_state: Some("S1"),
        max_changes: 9999,
    });
    assert!(
        xml.contains(
            "<m:SyncState>S1</m:SyncState><m:MaxChangesReturned>512</m:MaxChangesReturned>"
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

fn envelope(body: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><h:ServerVersionInfo xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types" MajorVersion="15" MinorVersion="2"/></s:Header><s:Body xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">{body}</s:Body></s:Envelope>"#
    )
    .into_bytes()
}

#[test]
fn parses_per_item_results_in_order_including_server_busy() {
    let xml = envelope(
        r#"<m:CreateItemResponse><m:ResponseMessages>
        <m:CreateItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>
          <m:Items><t:Contact><t:ItemId Id="AAMk1" ChangeKey="EQAAAB"/></t:Contact></m:Items></m:CreateItemResponseMessage>
        <m:CreateItemResponseMessage ResponseClass="Error">
          <m:MessageText>The server cannot service this request right now. Try again later.</m:MessageText>
          <m:ResponseCode>ErrorServerBusy</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>
          <m:MessageXml><t:Value Name="BackOffMilliseconds">2500</t:Value></m:MessageXml><m:Items/></m:CreateItemResponseMessage>
        <m:CreateItemResponseMessage ResponseClass="Warning"><m:MessageText>skipped</m:MessageText>
          <m:ResponseCode>ErrorBatchProcessingStopped</m:ResponseCode><m:Items/></m:CreateItemResponseMessage>
        </m:ResponseMessages></m:CreateItemResponse>"#,
    );
    let msgs = parse_response(&xml).expect("parses");
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0].operation, "CreateItem");
    assert_eq!(msgs[0].class, ResponseClass::Success);
    assert_eq!(msgs[0].code, "NoError");
    assert_eq!(
        msgs[0].items[0].id,
        ItemId::new("AAMk1", Some("EQAAAB".into()))
    );
    assert_eq!(msgs[0].items[0].kind, "Contact");
    assert_eq!(msgs[1].class, ResponseClass::Error);
    assert_eq!(msgs[1].code, "ErrorServerBusy");
    assert_eq!(msgs[1].back_off(), Some(Duration::from_millis(2500)));
    assert_eq!(
        msgs[1].message_text.as_deref(),
        Some("The server cannot service this request right now. Try again later.")
    );
    assert!(msgs[1].items.is_empty());
    assert_eq!(msgs[2].class, ResponseClass::Warning);
    assert_eq!(msgs[2].code, "ErrorBatchProcessingStopped");
}

#[test]
fn parses_the_soap_fault_shape_of_exchange_md() {
    let xml = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode>
  <faultstring xml:lang="en-US">The server cannot service this request right now.</faultstring>
  <detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy</e:ResponseCode>
    <e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The server cannot service this request right now.</e:Message>
    <t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
      <t:Value Name="BackOffMilliseconds">30000</t:Value></t:MessageXml></detail></s:Fault></s:Body></s:Envelope>"#;
    let Err(ResponseError::Fault(fault)) = parse_response(xml) else {
        panic!("expected a fault")
    };
    assert_eq!(fault.fault_code, "ErrorServerBusy");
    assert_eq!(fault.response_code, "ErrorServerBusy");
    assert_eq!(
        fault.fault_string,
        "The server cannot service this request right now."
    );
    assert_eq!(fault.back_off(), Some(Duration::from_secs(30)));
    assert_eq!(parse_fault_body(xml), Some(fault));
}

#[test]
fn a_fault_without_detail_uses_its_fault_code() {
    let xml = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorImpersonateUserDenied</faultcode><faultstring>The account does not have permission to impersonate the requested user.</faultstring></s:Fault></s:Body></s:Envelope>"#;
    let Err(ResponseError::Fault(fault)) = parse_response(xml) else {
        panic!("expected a fault")
    };
    assert_eq!(fault.response_code, "ErrorImpersonateUserDenied");
    assert_eq!(fault.back_off(), None);
}

#[test]
fn rejects_bodies_that_are_not_ews_responses() {
    assert!(matches!(
        parse_response(b"<html><body>502 Bad Gateway</body></html>"),
        Err(ResponseError::Shape(_))
    ));
    assert!(matches!(
        parse_response(b"<s:Envelope><s:Body>"),
        Err(ResponseError::Xml(_))
    ));
    assert!(matches!(
        parse_response(&[0xff, 0xfe]),
        Err(ResponseError::Xml(XmlError::NotUtf8(_)))
    ));
    assert_eq!(parse_fault_body(b"Service Unavailable"), None);
}

#[test]
fn parses_find_item_paging_and_stamps() {
    let xml = envelope(
        r#"<m:FindItemResponse><m:ResponseMessages><m:FindItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>
        <m:RootFolder IndexedPagingOffset="2" TotalItemsInView="3" IncludesLastItemInRange="false"><t:Items>
          <t:Contact><t:ItemId Id="A1" ChangeKey="K1"/><t:ExtendedProperty><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="CrmId" PropertyType="String"/><t:Value>ln:prod:contact:C1</t:Value></t:ExtendedProperty></t:Contact>
          <t:Contact><t:ItemId Id="A2" ChangeKey="K2"/></t:Contact>
        </t:Items></m:RootFolder></m:FindItemResponseMessage></m:ResponseMessages></m:FindItemResponse>"#,
    );
    let msgs = parse_response(&xml).expect("parses");
    let paging = msgs[0].paging.expect("paging");
    assert_eq!(paging.next_offset, Some(2));
    assert_eq!(paging.total_items_in_view, Some(3));
    assert!(!paging.includes_last_item_in_range);
    assert_eq!(msgs[0].items.len(), 2);
    assert_eq!(msgs[0].items[0].crm_id(), Some("ln:prod:contact:C1"));
    assert_eq!(msgs[0].items[1].crm_id(), None);
}

#[test]
fn parses_find_and_create_folder() {
    let xml = envelope(
        r#"<m:FindFolderResponse><m:ResponseMessages><m:FindFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>
        <m:RootFolder TotalItemsInView="1" IncludesLastItemInRange="true"><t:Folders><t:ContactsFolder><t:FolderId Id="F1" ChangeKey="FK"/><t:DisplayName>CRM Contacts</t:DisplayName></t:ContactsFolder></t:Folders></m:RootFolder>
        </m:FindFolderResponseMessage></m:ResponseMessages></m:FindFolderResponse>"#,
    );
    let msgs = parse_response(&xml).expect("parses");
    assert_eq!(msgs[0].folders[0].id.id, "F1");
    assert_eq!(
        msgs[0].folders[0].display_name.as_deref(),
        Some("CRM Contacts")
    );

    let xml = envelope(
        r#"<m:CreateFolderResponse><m:ResponseMessages><m:CreateFolderResponseMessage ResponseClass="Error"><m:MessageText>A folder with the specified name already exists.</m:MessageText><m:ResponseCode>ErrorFolderExists</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:Folders/></m:CreateFolderResponseMessage></m:ResponseMessages></m:CreateFolderResponse>"#,
    );
    let msgs = parse_response(&xml).expect("parses");
    assert_eq!(msgs[0].code, "ErrorFolderExists");
    assert!(msgs[0].folders.is_empty());
}

#[test]
fn parses_sync_folder_items_changes() {
    let xml = envelope(
        r#"<m:SyncFolderItemsResponse><m:ResponseMessages><m:SyncFolderItemsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>
        <m:SyncState>H4sI+new</m:SyncState><m:IncludesLastItemInRange>false</m:IncludesLastItemInRange><m:Changes>
          <t:Create><t:Contact><t:ItemId Id="N1" ChangeKey="C1"/><t:ExtendedProperty><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="CrmId" PropertyType="String"/><t:Value>ln:prod:contact:C9</t:Value></t:ExtendedProperty></t:Contact></t:Create>
          <t:Update><t:Contact><t:ItemId Id="U1" ChangeKey="C2"/></t:Contact></t:Update>
          <t:Delete><t:ItemId Id="D1" ChangeKey="C3"/></t:Delete>
          <t:ReadFlagChange><t:ItemId Id="R1" ChangeKey="C4"/><t:IsRead>true</t:IsRead></t:ReadFlagChange>
        </m:Changes></m:SyncFolderItemsResponseMessage></m:ResponseMessages></m:SyncFolderItemsResponse>"#,
    );
    let msgs = parse_response(&xml).expect("parses");
    let sync = msgs[0].sync.as_ref().expect("sync payload");
    assert_eq!(sync.sync_state, "H4sI+new");
    assert!(!sync.includes_last_item_in_range);
    assert_eq!(sync.changes.len(), 4);
    let SyncChange::Create(created) = &sync.changes[0] else {
        panic!("create first")
    };
    assert_eq!(created.crm_id(), Some("ln:prod:contact:C9"));
    assert!(matches!(&sync.changes[1], SyncChange::Update(i) if i.id.id == "U1"));
    assert!(matches!(&sync.changes[2], SyncChange::Delete(id) if id.id == "D1"));
    assert!(matches!(
        &sync.changes[3],
        SyncChange::ReadFlagChange { is_read: true, .. }
    ));
}

#[test]
fn parses_get_item_with_a_missing_item_and_invalid_sync_state() {
    let xml = envelope(
        r#"<m:GetItemResponse><m:ResponseMessages>
        <m:GetItemResponseMessage ResponseClass="Error"><m:MessageText>The specified object was not found in the store.</m:MessageText><m:ResponseCode>ErrorItemNotFound</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:Items/></m:GetItemResponseMessage>
        <m:GetItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items><t:Contact><t:ItemId Id="A2" ChangeKey="K2"/><t:ExtendedProperty><t:ExtendedFieldURI PropertySetId="00020329-0000-0000-c000-000000000046" PropertyName="CrmId" PropertyType="String"/><t:Value>s2</t:Value></t:ExtendedProperty></t:Contact></m:Items></m:GetItemResponseMessage>
        </m:ResponseMessages></m:GetItemResponse>"#,
    );
    let msgs = parse_response(&xml).expect("parses");
    assert_eq!(msgs[0].code, "ErrorItemNotFound");
    assert!(!msgs[0].is_success());
    assert_eq!(msgs[1].items[0].crm_id(), Some("s2"));

    let xml = envelope(
        r#"<m:SyncFolderItemsResponse><m:ResponseMessages><m:SyncFolderItemsResponseMessage ResponseClass="Error"><m:MessageText>Synchronization state data is corrupt or otherwise invalid.</m:MessageText><m:ResponseCode>ErrorInvalidSyncStateData</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey></m:SyncFolderItemsResponseMessage></m:ResponseMessages></m:SyncFolderItemsResponse>"#,
    );
    let msgs = parse_response(&xml).expect("parses");
    assert_eq!(msgs[0].code, "ErrorInvalidSyncStateData");
    assert!(msgs[0].sync.is_none());
}

#[test]
fn parses_a_subscribe_response_and_its_errors() {
    let xml = envelope(
        r#"<m:SubscribeResponse><m:ResponseMessages><m:SubscribeResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>
        <m:SubscriptionId>JgBkZ2Vsc3ViMDAx</m:SubscriptionId><m:Watermark>AQAAAStart=</m:Watermark></m:SubscribeResponseMessage></m:ResponseMessages></m:SubscribeResponse>"#,
    );
    let msgs = parse_response(&xml).expect("parses");
    assert_eq!(msgs[0].operation, "Subscribe");
    assert_eq!(
        msgs[0].subscription,
        Some(SubscriptionInfo {
            id: "JgBkZ2Vsc3ViMDAx".into(),
            watermark: Some("AQAAAStart=".into()),
        })
    );

    let xml = envelope(
        r#"<m:SubscribeResponse><m:ResponseMessages><m:SubscribeResponseMessage ResponseClass="Error"><m:MessageText>The watermark used for creating this subscription was not found.</m:MessageText><m:ResponseCode>ErrorInvalidWatermark</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey></m:SubscribeResponseMessage></m:ResponseMessages></m:SubscribeResponse>"#,
    );
    let msgs = parse_response(&xml).expect("parses");
    assert_eq!(msgs[0].code, "ErrorInvalidWatermark");
    assert_eq!(msgs[0].subscription, None);
    // Other operations carry no subscription.
    assert!(parse_response(&envelope(r#"<m:FindFolderResponse><m:ResponseMessages><m:FindFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode></m:FindFolderResponseMessage></m:ResponseMessages></m:FindFolderResponse>"#)).expect("parses")[0].subscription.is_none());
}

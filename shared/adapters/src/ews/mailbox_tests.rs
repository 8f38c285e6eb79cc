//! `EwsMailbox` over a scripted transport: headers, batching, per-item outcomes, throttling,
//! configuration and connection failures. Time is paused, so back-offs of seconds run instantly
//! while still being measured.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use lnsync_core::error::{ItemError, MailboxError};
use lnsync_core::ids::{
    CrmStamp, ExchangeItemId, ExchangeVersion, FolderId, MailboxAddress, SubscriptionId,
};
use lnsync_core::normalize::ContactFields;
use lnsync_core::ports::{
    ContactFolder, ContactUpdate, FolderChange, FolderCursor, ItemRef, Mailbox, NewContact,
    PushRequest, Subscribed,
};
use lnsync_core::{Classify, ErrorClass};
use tokio::time::Instant;

use super::codec::schema_check;
use super::*;

type Responder = dyn Fn(&HttpRequest, usize) -> Result<HttpResponse, TransportError> + Send + Sync;

/// Answers each request with `respond(request, index)` and keeps every request.
struct ScriptedTransport {
    requests: Mutex<Vec<HttpRequest>>,
    respond: Box<Responder>,
}

impl ScriptedTransport {
    fn new(
        respond: impl Fn(&HttpRequest, usize) -> Result<HttpResponse, TransportError>
        + Send
        + Sync
        + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            requests: Mutex::new(Vec::new()),
            respond: Box::new(respond),
        })
    }

    fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().expect("lock").clone()
    }

    fn bodies(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.body).collect()
    }
}

#[async_trait]
impl HttpTransport for ScriptedTransport {
    async fn post(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let index = {
            let mut log = self.requests.lock().expect("lock");
            log.push(request.clone());
            log.len() - 1
        };
        (self.respond)(&request, index)
    }
}

const URL: &str = "https://cas.corp.example/EWS/Exchange.asmx";

fn config() -> EwsConfig {
    let mut config = EwsConfig::new(
        url::Url::parse(URL).expect("url"),
        EwsAuth::Basic {
            user: "svc-lnsync".into(),
            password: Secret::new("s3cret!"),
        },
    );
    config.default_back_off = Duration::from_secs(60);
    config
}

fn mailbox_with(transport: &Arc<ScriptedTransport>, config: EwsConfig) -> EwsMailbox {
    EwsMailbox::new(config, transport.clone())
}

fn alice() -> MailboxAddress {
    MailboxAddress::new("alice@corp.example")
}

fn response(status: u16, body: String) -> Result<HttpResponse, TransportError> {
    Ok(HttpResponse {
        status,
        headers: vec![("Content-Type".into(), "text/xml".into())],
        body: body.into_bytes(),
    })
}

fn soap(inner: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">{inner}</s:Body></s:Envelope>"#
    )
}

fn messages(op: &str, msgs: &[String]) -> Result<HttpResponse, TransportError> {
    response(
        200,
        soap(&format!(
            "<m:{op}Response><m:ResponseMessages>{}</m:ResponseMessages></m:{op}Response>",
            msgs.concat()
        )),
    )
}

fn success_item(op: &str, id: &str) -> String {
    format!(
        r#"<m:{op}ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items><t:Contact><t:ItemId Id="{id}" ChangeKey="CK-{id}"/></t:Contact></m:Items></m:{op}ResponseMessage>"#
    )
}

fn error_item(op: &str, code: &str, back_off_ms: Option<u64>) -> String {
    let xml = back_off_ms
        .map(|ms| {
            format!(
                r#"<m:MessageXml><t:Value Name="BackOffMilliseconds">{ms}</t:Value></m:MessageXml>"#
            )
        })
        .unwrap_or_default();
    format!(
        r#"<m:{op}ResponseMessage ResponseClass="Error"><m:MessageText>{code} happened</m:MessageText><m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{xml}</m:{op}ResponseMessage>"#
    )
}

fn fault(code: &str, back_off_ms: Option<u64>) -> Result<HttpResponse, TransportError> {
    let xml = back_off_ms
        .map(|ms| format!(r#"<t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:Value Name="BackOffMilliseconds">{ms}</t:Value></t:MessageXml>"#))
        .unwrap_or_default();
    response(
        500,
        soap(&format!(
            r#"<s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:{code}</faultcode><faultstring>{code} fault</faultstring><detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{code}</e:ResponseCode>{xml}</detail></s:Fault>"#
        )),
    )
}

fn find_folder(found: Option<&str>) -> Result<HttpResponse, TransportError> {
    let folders = found
        .map(|id| format!(r#"<t:Folders><t:ContactsFolder><t:FolderId Id="{id}" ChangeKey="FK"/><t:DisplayName>CRM Contacts</t:DisplayName></t:ContactsFolder></t:Folders>"#))
        .unwrap_or_else(|| "<t:Folders/>".into());
    messages(
        "FindFolder",
        &[format!(
            r#"<m:FindFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:RootFolder TotalItemsInView="{}" IncludesLastItemInRange="true">{folders}</m:RootFolder></m:FindFolderResponseMessage>"#,
            usize::from(found.is_some())
        )],
    )
}

fn count(body: &str, needle: &str) -> usize {
    body.matches(needle).count()
}

fn new_contacts(n: usize) -> Vec<NewContact> {
    (0..n)
        .map(|i| NewContact {
            stamp: CrmStamp::from_raw(format!("ln:prod:contact:C{i}")),
            fields: ContactFields {
                surname: Some(format!("Doe {i}")),
                ..ContactFields::default()
            },
        })
        .collect()
}

fn folder() -> FolderId {
    FolderId::new("AAMkCrmFolder")
}

/// Answers CreateItem with one success per `<t:Contact>` in the request, numbering ids globally.
fn echo_creates() -> Arc<ScriptedTransport> {
    let next = Arc::new(Mutex::new(0usize));
    ScriptedTransport::new(move |req, _| {
        let n = count(&req.body, "<t:Contact>");
        let mut next = next.lock().expect("lock");
        let msgs: Vec<String> = (0..n)
            .map(|_| {
                *next += 1;
                success_item("CreateItem", &format!("N{}", *next))
            })
            .collect();
        messages("CreateItem", &msgs)
    })
}

#[tokio::test(start_paused = true)]
async fn every_call_carries_anchor_mailbox_auth_and_impersonation() {
    let transport = ScriptedTransport::new(|_, _| find_folder(Some("F1")));
    let mailbox = mailbox_with(&transport, config());
    let id = mailbox
        .ensure_contact_folder(&alice())
        .await
        .expect("folder");
    assert_eq!(
        id,
        ContactFolder {
            id: FolderId::new("F1"),
            created: false
        }
    );

    let requests = transport.requests();
    assert_eq!(
        requests.len(),
        1,
        "an existing folder is found with one call"
    );
    let r = &requests[0];
    assert_eq!(r.url.as_str(), URL);
    assert_eq!(r.header("X-AnchorMailbox"), Some("alice@corp.example"));
    assert_eq!(r.header("Content-Type"), Some("text/xml; charset=utf-8"));
    assert_eq!(
        r.header("authorization"),
        Some("Basic c3ZjLWxuc3luYzpzM2NyZXQh")
    );
    assert!(
        r.body
            .contains("<t:PrimarySmtpAddress>alice@corp.example</t:PrimarySmtpAddress>")
    );
    assert!(
        !format!("{r:?}").contains("c3ZjLWxuc3luYzpzM2NyZXQh"),
        "Debug must redact Authorization"
    );
    assert!(
        !format!("{mailbox:?}").contains("s3cret!"),
        "Debug must redact the password"
    );
    schema_check::assert_valid(&transport.bodies());
}

#[tokio::test(start_paused = true)]
async fn bearer_auth_is_sent_as_is() {
    let transport = ScriptedTransport::new(|_, _| find_folder(Some("F1")));
    let mut cfg = config();
    cfg.auth = EwsAuth::Bearer(Secret::new("eyJ0"));
    mailbox_with(&transport, cfg)
        .ensure_contact_folder(&alice())
        .await
        .expect("folder");
    assert_eq!(
        transport.requests()[0].header("Authorization"),
        Some("Bearer eyJ0")
    );
}

#[tokio::test(start_paused = true)]
async fn a_missing_folder_is_created_and_a_concurrent_create_is_found_again() {
    let transport = ScriptedTransport::new(|req, i| match i {
        0 => find_folder(None),
        1 => {
            assert!(req.body.contains("<m:CreateFolder>"));
            messages(
                "CreateFolder",
                &[error_item("CreateFolder", "ErrorFolderExists", None)],
            )
        }
        _ => find_folder(Some("F2")),
    });
    let id = mailbox_with(&transport, config())
        .ensure_contact_folder(&alice())
        .await
        .expect("folder");
    // Created by someone else between our find and create: not ours to call fresh.
    assert_eq!(
        id,
        ContactFolder {
            id: FolderId::new("F2"),
            created: false
        }
    );
    assert_eq!(transport.requests().len(), 3);

    let created = ScriptedTransport::new(|_, i| {
        match i {
        0 => find_folder(None),
        _ => messages(
            "CreateFolder",
            &[r#"<m:CreateFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Folders><t:ContactsFolder><t:FolderId Id="NEW" ChangeKey="K"/></t:ContactsFolder></m:Folders></m:CreateFolderResponseMessage>"#.to_owned()],
        ),
    }
    });
    let id = mailbox_with(&created, config())
        .ensure_contact_folder(&alice())
        .await
        .expect("folder");
    assert_eq!(
        id,
        ContactFolder {
            id: FolderId::new("NEW"),
            created: true
        }
    );
    schema_check::assert_valid(&[transport.bodies(), created.bodies()].concat());
}

#[tokio::test(start_paused = true)]
async fn five_hundred_creates_are_five_calls_of_one_hundred() {
    let transport = echo_creates();
    let mailbox = mailbox_with(&transport, config());
    assert_eq!(mailbox.max_batch(), 100);
    let outcomes = mailbox
        .create_contacts(&alice(), &folder(), &new_contacts(500))
        .await
        .expect("create");
    assert_eq!(outcomes.len(), 500);
    assert_eq!(
        outcomes[499],
        Ok(ItemRef {
            id: ExchangeItemId::new("N500"),
            version: ExchangeVersion::new("CK-N500")
        })
    );
    let bodies = transport.bodies();
    assert_eq!(bodies.len(), 5);
    assert!(bodies.iter().all(|b| count(b, "<t:Contact>") == 100));
    assert!(bodies[0].contains(
        r#"<m:SavedItemFolderId><t:FolderId Id="AAMkCrmFolder"/></m:SavedItemFolderId>"#
    ));
    schema_check::assert_valid(&bodies[..1]);
}

#[tokio::test(start_paused = true)]
async fn per_item_errors_are_typed_and_only_busy_items_are_resent() {
    let transport = ScriptedTransport::new(|req, i| match i {
        0 => {
            assert_eq!(count(&req.body, "<t:ItemChange>"), 4);
            messages(
                "UpdateItem",
                &[
                    success_item("UpdateItem", "A"),
                    error_item("UpdateItem", "ErrorServerBusy", Some(1500)),
                    error_item("UpdateItem", "ErrorIrresolvableConflict", None),
                    error_item("UpdateItem", "ErrorItemNotFound", None),
                ],
            )
        }
        _ => {
            assert_eq!(count(&req.body, "<t:ItemChange>"), 1);
            assert!(req.body.contains(r#"<t:ItemId Id="B" ChangeKey="v1"/>"#));
            messages("UpdateItem", &[success_item("UpdateItem", "B")])
        }
    });
    let updates: Vec<ContactUpdate> = ["A", "B", "C", "D"]
        .iter()
        .map(|id| ContactUpdate {
            item: ItemRef {
                id: ExchangeItemId::new(*id),
                version: ExchangeVersion::new("v1"),
            },
            stamp: CrmStamp::from_raw(format!("ln:prod:contact:{id}")),
            fields: ContactFields {
                surname: Some("Doe".into()),
                ..ContactFields::default()
            },
        })
        .collect();
    let started = Instant::now();
    let outcomes = mailbox_with(&transport, config())
        .update_contacts(&alice(), &folder(), &updates)
        .await
        .expect("update");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "waited the item's BackOffMilliseconds"
    );
    assert_eq!(outcomes[0].as_ref().map(|r| r.version.as_str()), Ok("CK-A"));
    assert_eq!(outcomes[1].as_ref().map(|r| r.id.as_str()), Ok("B"));
    assert_eq!(
        outcomes[2],
        Err(ItemError::Conflict(ExchangeItemId::new("C")))
    );
    assert_eq!(
        outcomes[3],
        Err(ItemError::NotFound(ExchangeItemId::new("D")))
    );
    assert_eq!(transport.requests().len(), 2);
    schema_check::assert_valid(&transport.bodies());
}

#[tokio::test(start_paused = true)]
async fn a_server_busy_fault_waits_its_back_off_then_retries() {
    let transport = ScriptedTransport::new(|_, i| match i {
        0 => fault("ErrorServerBusy", Some(30_000)),
        _ => find_folder(Some("F1")),
    });
    let started = Instant::now();
    let id = mailbox_with(&transport, config())
        .ensure_contact_folder(&alice())
        .await
        .expect("folder");
    assert_eq!(
        id,
        ContactFolder {
            id: FolderId::new("F1"),
            created: false
        }
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
        "waited {waited:?}"
    );
    assert_eq!(transport.requests().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn http_503_honours_retry_after_and_busy_without_hint_waits_the_default() {
    let transport = ScriptedTransport::new(|_, i| match i {
        0 => Ok(HttpResponse {
            status: 503,
            headers: vec![("Retry-After".into(), "7".into())],
            body: Vec::new(),
        }),
        1 => fault("ErrorServerBusy", None),
        _ => find_folder(Some("F1")),
    });
    let started = Instant::now();
    mailbox_with(&transport, config())
        .ensure_contact_folder(&alice())
        .await
        .expect("folder");
    assert_eq!(started.elapsed().as_secs(), 7 + 60);
    assert_eq!(transport.requests().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn throttling_is_bounded_and_long_hints_are_capped() {
    let transport = ScriptedTransport::new(|_, _| fault("ErrorServerBusy", Some(36_000_000)));
    let mut cfg = config();
    cfg.max_retries = 2;
    cfg.max_back_off = Duration::from_secs(120);
    let started = Instant::now();
    let err = mailbox_with(&transport, cfg)
        .ensure_contact_folder(&alice())
        .await
        .expect_err("throttled");
    assert_eq!(
        transport.requests().len(),
        3,
        "one call + max_retries retries"
    );
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(240),
        "each wait capped at max_back_off"
    );
    let MailboxError::Throttled {
        mailbox,
        retry_after,
    } = &err
    else {
        panic!("expected Throttled, got {err:?}")
    };
    assert_eq!(mailbox, &alice());
    assert_eq!(
        *retry_after,
        Duration::from_secs(36_000),
        "the server's hint is reported for the queue"
    );
    assert_eq!(
        err.class(),
        ErrorClass::Throttled(Duration::from_secs(36_000))
    );
}

#[tokio::test(start_paused = true)]
async fn a_throttled_mailbox_does_not_hold_up_another() {
    let transport = ScriptedTransport::new(|req, _| {
        if req.header("X-AnchorMailbox") == Some("alice@corp.example")
            && count(&req.body, "FindFolder") > 0
        {
            static FIRST: std::sync::Once = std::sync::Once::new();
            let mut busy = false;
            FIRST.call_once(|| busy = true);
            if busy {
                return fault("ErrorServerBusy", Some(45_000));
            }
        }
        find_folder(Some("F"))
    });
    let mailbox = mailbox_with(&transport, config());
    let started = Instant::now();
    let bob = MailboxAddress::new("bob@corp.example");
    let (a, b) = tokio::join!(
        async {
            mailbox
                .ensure_contact_folder(&alice())
                .await
                .expect("alice");
            started.elapsed()
        },
        async {
            // Let alice's call hit the throttle first.
            tokio::task::yield_now().await;
            mailbox.ensure_contact_folder(&bob).await.expect("bob");
            started.elapsed()
        }
    );
    assert!(a >= Duration::from_secs(45));
    assert_eq!(b, Duration::ZERO, "bob never waits for alice's back-off");
}

#[tokio::test(start_paused = true)]
async fn configuration_failures_name_the_mailbox() {
    for (transport, code) in [
        (
            ScriptedTransport::new(|_, _| fault("ErrorImpersonateUserDenied", None)),
            "ErrorImpersonateUserDenied",
        ),
        (
            ScriptedTransport::new(|_, _| {
                messages(
                    "FindFolder",
                    &[error_item("FindFolder", "ErrorNonExistentMailbox", None)],
                )
            }),
            "ErrorNonExistentMailbox",
        ),
        (
            ScriptedTransport::new(|_, _| response(401, String::new())),
            "HTTP 401",
        ),
    ] {
        let err = mailbox_with(&transport, config())
            .ensure_contact_folder(&alice())
            .await
            .expect_err("config");
        assert_eq!(err.class(), ErrorClass::Configuration, "{err:?}");
        let MailboxError::Configuration {
            mailbox, code: got, ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(mailbox, &alice());
        assert_eq!(got, code);
        assert!(err.to_string().contains("alice@corp.example"));
        assert_eq!(
            transport.requests().len(),
            1,
            "configuration errors are not retried"
        );
    }

    // A per-item configuration code fails the whole batch, not each item.
    let transport = ScriptedTransport::new(|_, _| {
        messages(
            "CreateItem",
            &[error_item("CreateItem", "ErrorImpersonateUserDenied", None)],
        )
    });
    let err = mailbox_with(&transport, config())
        .create_contacts(&alice(), &folder(), &new_contacts(1))
        .await
        .expect_err("config");
    assert!(matches!(err, MailboxError::Configuration { .. }), "{err:?}");
}

#[tokio::test]
async fn connection_refused_is_transient_and_names_the_url() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("http://127.0.0.1:{port}/EWS/Exchange.asmx");
    let mut cfg = config();
    cfg.url = url::Url::parse(&url).expect("url");
    let mailbox = EwsMailbox::with_reqwest(cfg, Duration::from_secs(5)).expect("client");
    let err = mailbox
        .ensure_contact_folder(&alice())
        .await
        .expect_err("refused");
    assert_eq!(err.class(), ErrorClass::Transient);
    let MailboxError::Unreachable { url: got, source } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(got, &url);
    assert!(
        matches!(
            source.downcast_ref::<TransportError>(),
            Some(TransportError::Connect(_))
        ),
        "{source:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn unexpected_bodies_and_statuses_are_typed() {
    let transport = ScriptedTransport::new(|_, _| response(200, "<html>maintenance</html>".into()));
    let err = mailbox_with(&transport, config())
        .ensure_contact_folder(&alice())
        .await
        .expect_err("protocol");
    assert!(
        matches!(
            err,
            MailboxError::Protocol {
                source: Some(_),
                ..
            }
        ),
        "{err:?}"
    );

    let transport = ScriptedTransport::new(|_, _| response(502, "Bad Gateway".into()));
    let err = mailbox_with(&transport, config())
        .ensure_contact_folder(&alice())
        .await
        .expect_err("server");
    let MailboxError::Server {
        code,
        message,
        transient,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (code.as_str(), message.as_str(), *transient),
        ("HTTP 502", "Bad Gateway", true)
    );
}

#[tokio::test(start_paused = true)]
async fn sync_maps_changes_and_an_invalid_state_is_an_invalid_cursor() {
    let transport = ScriptedTransport::new(|req, i| match i {
        0 => {
            assert!(!req.body.contains("<m:SyncState>"));
            messages(
                "SyncFolderItems",
                &[r#"<m:SyncFolderItemsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:SyncState>S1</m:SyncState><m:IncludesLastItemInRange>false</m:IncludesLastItemInRange><m:Changes><t:Create><t:Contact><t:ItemId Id="A" ChangeKey="K"/><t:ExtendedProperty><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="CrmId" PropertyType="String"/><t:Value>ln:prod:contact:C1</t:Value></t:ExtendedProperty></t:Contact></t:Create><t:Delete><t:ItemId Id="B" ChangeKey="K2"/></t:Delete><t:ReadFlagChange><t:ItemId Id="C" ChangeKey="K3"/><t:IsRead>true</t:IsRead></t:ReadFlagChange></m:Changes></m:SyncFolderItemsResponseMessage>"#.to_owned()],
            )
        }
        _ => {
            assert!(req.body.contains("<m:SyncState>S1</m:SyncState>"));
            messages(
                "SyncFolderItems",
                &[error_item(
                    "SyncFolderItems",
                    "ErrorInvalidSyncStateData",
                    None,
                )],
            )
        }
    });
    let mailbox = mailbox_with(&transport, config());
    let page = mailbox
        .sync_contact_folder(&alice(), &folder(), None)
        .await
        .expect("sync");
    assert!(page.more);
    assert_eq!(page.cursor, FolderCursor("S1".into()));
    assert_eq!(
        page.changes,
        vec![
            FolderChange::Upsert {
                item: ItemRef {
                    id: ExchangeItemId::new("A"),
                    version: ExchangeVersion::new("K")
                },
                stamp: Some(CrmStamp::from_raw("ln:prod:contact:C1")),
            },
            FolderChange::Deleted {
                id: ExchangeItemId::new("B")
            },
        ]
    );
    let err = mailbox
        .sync_contact_folder(&alice(), &folder(), Some(&page.cursor))
        .await
        .expect_err("invalid");
    assert!(
        matches!(err, MailboxError::InvalidCursor { ref mailbox } if mailbox == &alice()),
        "{err:?}"
    );
    schema_check::assert_valid(&transport.bodies());
}

fn find_items_page(
    items: &[(&str, &str)],
    last: bool,
    next: usize,
) -> Result<HttpResponse, TransportError> {
    let items: String = items
        .iter()
        .map(|(id, stamp)| format!(r#"<t:Contact><t:ItemId Id="{id}" ChangeKey="K{id}"/><t:ExtendedProperty><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="CrmId" PropertyType="String"/><t:Value>{stamp}</t:Value></t:ExtendedProperty></t:Contact>"#))
        .collect();
    messages(
        "FindItem",
        &[format!(
            r#"<m:FindItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:RootFolder IndexedPagingOffset="{next}" TotalItemsInView="9" IncludesLastItemInRange="{last}"><t:Items>{items}</t:Items></m:RootFolder></m:FindItemResponseMessage>"#
        )],
    )
}

#[tokio::test(start_paused = true)]
async fn few_stamps_use_an_or_restriction_and_many_use_a_paged_listing() {
    let few = ScriptedTransport::new(|req, _| {
        assert_eq!(count(&req.body, "<t:IsEqualTo>"), 2);
        assert!(req.body.contains("<t:Or>"));
        find_items_page(
            &[("A", "ln:prod:contact:C1"), ("A2", "ln:prod:contact:C1")],
            true,
            2,
        )
    });
    let stamps = |n: usize| -> Vec<CrmStamp> {
        (0..n)
            .map(|i| CrmStamp::from_raw(format!("ln:prod:contact:C{i}")))
            .collect()
    };
    let found = mailbox_with(&few, config())
        .find_stamped_contacts(&alice(), &folder(), &stamps(2))
        .await
        .expect("find");
    assert_eq!(
        found.len(),
        2,
        "duplicates are all reported so the core can keep the oldest"
    );
    assert_eq!(few.requests().len(), 1);

    let many = ScriptedTransport::new(|req, i| {
        assert!(!req.body.contains("<m:Restriction>"));
        match i {
            0 => {
                assert!(req.body.contains(r#"Offset="0""#));
                find_items_page(
                    &[("A", "ln:prod:contact:C1"), ("X", "ln:other:contact:Z")],
                    false,
                    2,
                )
            }
            _ => {
                assert!(req.body.contains(r#"Offset="2""#));
                find_items_page(&[("B", "ln:prod:contact:C24"), ("U", "user-made")], true, 4)
            }
        }
    });
    let found = mailbox_with(&many, config())
        .find_stamped_contacts(&alice(), &folder(), &stamps(25))
        .await
        .expect("find");
    let ids: Vec<&str> = found.iter().map(|s| s.item.id.as_str()).collect();
    assert_eq!(ids, ["A", "B"], "only items carrying a wanted stamp");
    assert_eq!(many.requests().len(), 2);

    let none = ScriptedTransport::new(|_, _| panic!("no call for no stamps"));
    assert!(
        mailbox_with(&none, config())
            .find_stamped_contacts(&alice(), &folder(), &[])
            .await
            .expect("empty")
            .is_empty()
    );
    schema_check::assert_valid(&[few.bodies(), many.bodies()].concat());
}

#[tokio::test(start_paused = true)]
async fn deletes_and_reads_are_batched_with_not_found_per_item() {
    let transport = ScriptedTransport::new(|req, _| {
        if req.body.contains("<m:DeleteItem") {
            let n = count(&req.body, "<t:ItemId");
            let mut msgs = vec![r#"<m:DeleteItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode></m:DeleteItemResponseMessage>"#.to_owned(); n];
            msgs[0] = error_item("DeleteItem", "ErrorItemNotFound", None);
            messages("DeleteItem", &msgs)
        } else {
            let n = count(&req.body, "<t:ItemId");
            messages(
                "GetItem",
                &(0..n)
                    .map(|i| success_item("GetItem", &format!("G{i}")))
                    .collect::<Vec<_>>(),
            )
        }
    });
    let mailbox = mailbox_with(&transport, config());
    let ids: Vec<ExchangeItemId> = (0..120)
        .map(|i| ExchangeItemId::new(format!("I{i}")))
        .collect();
    let deleted = mailbox
        .delete_items(&alice(), &folder(), &ids)
        .await
        .expect("delete");
    assert_eq!(deleted.len(), 120);
    assert_eq!(
        deleted[0],
        Err(ItemError::NotFound(ExchangeItemId::new("I0")))
    );
    assert_eq!(
        deleted[100],
        Err(ItemError::NotFound(ExchangeItemId::new("I100")))
    );
    assert_eq!(deleted[1], Ok(()));
    let versions = mailbox
        .current_versions(&alice(), &folder(), &ids)
        .await
        .expect("read");
    assert_eq!(versions.len(), 120);
    let bodies = transport.bodies();
    assert_eq!(bodies.len(), 2 + 3, "deletes in 100s, reads in 50s");
    assert!(bodies[0].contains(r#"<m:DeleteItem DeleteType="HardDelete">"#));
    schema_check::assert_valid(&[bodies[0].clone(), bodies[2].clone()]);
}

// ---------------------------------------------------------------------------------------------
// Push subscriptions
// ---------------------------------------------------------------------------------------------

const PUSH_URL: &str = "https://push.corp.example/ews/prod/t0k3n";

fn push_request(watermark: Option<&str>) -> PushRequest {
    PushRequest {
        url: PUSH_URL.into(),
        status_frequency_minutes: 5,
        watermark: watermark.map(str::to_owned),
        client_state: None,
        lifecycle_url: None,
        expires_at: None,
    }
}

fn subscribed(id: &str, watermark: &str) -> Result<HttpResponse, TransportError> {
    messages(
        "Subscribe",
        &[format!(
            r#"<m:SubscribeResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:SubscriptionId>{id}</m:SubscriptionId><m:Watermark>{watermark}</m:Watermark></m:SubscribeResponseMessage>"#
        )],
    )
}

async fn subscribe_error(code: &str, watermark: Option<&str>) -> MailboxError {
    let code = code.to_owned();
    let transport = ScriptedTransport::new(move |_, _| {
        messages("Subscribe", &[error_item("Subscribe", &code, None)])
    });
    mailbox_with(&transport, config())
        .subscribe_calendar(&alice(), &push_request(watermark))
        .await
        .expect_err("subscribe fails")
}

#[tokio::test(start_paused = true)]
async fn subscribing_the_calendar_sends_a_valid_push_request_and_returns_the_subscription() {
    let transport = ScriptedTransport::new(|_, _| subscribed("JgBkZ2Vsc3ViMDAx", "AQAAAStart="));
    let mailbox = mailbox_with(&transport, config());
    let sub = mailbox
        .subscribe_calendar(&alice(), &push_request(Some("AQAAAOld=")))
        .await
        .expect("subscribed");
    assert_eq!(
        sub,
        Subscribed {
            id: SubscriptionId::new("JgBkZ2Vsc3ViMDAx"),
            watermark: Some("AQAAAStart=".into()),
            expires_at: None,
        }
    );
    let requests = transport.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.header("X-AnchorMailbox"), Some("alice@corp.example"));
    assert!(
        r.body
            .contains("<t:PrimarySmtpAddress>alice@corp.example</t:PrimarySmtpAddress>")
    );
    assert!(
        r.body.contains(concat!(
            r#"<m:Subscribe><m:PushSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="calendar"/></t:FolderIds>"#,
            r#"<t:EventTypes><t:EventType>CreatedEvent</t:EventType><t:EventType>ModifiedEvent</t:EventType><t:EventType>DeletedEvent</t:EventType><t:EventType>MovedEvent</t:EventType></t:EventTypes>"#,
            r#"<t:Watermark>AQAAAOld=</t:Watermark><t:StatusFrequency>5</t:StatusFrequency><t:URL>https://push.corp.example/ews/prod/t0k3n</t:URL>"#,
        )),
        "{}",
        r.body
    );

    // Without a watermark the subscription starts now.
    mailbox
        .subscribe_calendar(&alice(), &push_request(None))
        .await
        .expect("subscribed");
    let bodies = transport.bodies();
    assert!(!bodies[1].contains("<t:Watermark>"), "{}", bodies[1]);
    schema_check::assert_valid(&bodies);
}

#[tokio::test(start_paused = true)]
async fn a_stale_watermark_is_an_invalid_cursor() {
    for code in [
        "ErrorInvalidWatermark",
        "ErrorExpiredSubscription",
        "ErrorSubscriptionNotFound",
        "ErrorInvalidSubscription",
    ] {
        let err = subscribe_error(code, Some("AQAAAOld=")).await;
        assert!(
            matches!(err, MailboxError::InvalidCursor { ref mailbox } if mailbox == &alice()),
            "{code}: {err:?}"
        );
    }
    // Without a watermark there is nothing to drop: a retry without one cannot help.
    let err = subscribe_error("ErrorExpiredSubscription", None).await;
    assert!(
        matches!(err, MailboxError::Server { ref code, transient: false, .. } if code == "ErrorExpiredSubscription"),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn other_subscribe_errors_are_classified_like_every_call() {
    for code in [
        "ErrorSubscriptionDelegateAccessNotSupported",
        "ErrorInvalidPushSubscriptionUrl",
        "ErrorImpersonateUserDenied",
    ] {
        let err = subscribe_error(code, None).await;
        assert!(
            matches!(err, MailboxError::Configuration { ref mailbox, code: ref c, .. } if mailbox == &alice() && c == code),
            "{code}: {err:?}"
        );
        assert_eq!(err.class(), ErrorClass::Configuration);
    }
    let err = subscribe_error("ErrorExceededSubscriptionCount", Some("W")).await;
    assert_eq!(err.class(), ErrorClass::Transient, "{err:?}");

    // Busy: waits the hint and retries; then the subscription comes through.
    let transport = ScriptedTransport::new(|_, i| match i {
        0 => messages(
            "Subscribe",
            &[error_item("Subscribe", "ErrorServerBusy", Some(2_000))],
        ),
        1 => fault("ErrorServerBusy", Some(3_000)),
        _ => subscribed("S2", "W2"),
    });
    let started = Instant::now();
    let sub = mailbox_with(&transport, config())
        .subscribe_calendar(&alice(), &push_request(None))
        .await
        .expect("subscribed after back-off");
    assert_eq!(sub.id, SubscriptionId::new("S2"));
    assert_eq!(transport.requests().len(), 3);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "waited {waited:?}"
    );

    // A success without an id is not a subscription.
    let transport = ScriptedTransport::new(|_, _| {
        messages(
            "Subscribe",
            &[r#"<m:SubscribeResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode></m:SubscribeResponseMessage>"#.to_owned()],
        )
    });
    let err = mailbox_with(&transport, config())
        .subscribe_calendar(&alice(), &push_request(None))
        .await
        .expect_err("no id");
    assert!(matches!(err, MailboxError::Protocol { .. }), "{err:?}");
}

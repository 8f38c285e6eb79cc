//! Test helpers: a tiny EWS client that sends real SOAP over reqwest, and XML lookups.
#![allow(dead_code, clippy::unwrap_used)]

pub mod graph;

use base64::Engine;
use ews_sim::xml::{Element, parse};
use ews_sim::{EwsSim, SimConfig};

pub const ALICE: &str = "alice@corp.example";
pub const BOB: &str = "bob@corp.example";

pub const CRM_URI: &str = r#"<t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="CrmId" PropertyType="String"/>"#;

pub async fn sim() -> EwsSim {
    let sim = EwsSim::start_with(SimConfig {
        bearer_tokens: vec!["tok-123".into()],
        ..SimConfig::default()
    })
    .await
    .expect("start sim");
    sim.add_mailbox(ALICE).unwrap();
    sim.add_mailbox(BOB).unwrap();
    sim
}

pub fn envelope(mailbox: Option<&str>, op: &str) -> String {
    let imp = mailbox
        .map(|m| {
            format!(
                "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{m}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"
            )
        })
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
  <soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/>{imp}</soap:Header>
  <soap:Body>{op}</soap:Body>
</soap:Envelope>"#
    )
}

pub struct Resp {
    pub status: u16,
    pub text: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    pub fn xml(&self) -> Element {
        parse(&self.text).unwrap_or_else(|e| panic!("response is not XML: {e}\n{}", self.text))
    }

    /// ResponseCode of every response message, in order.
    pub fn codes(&self) -> Vec<String> {
        let root = self.xml();
        let mut out = Vec::new();
        for rm in all(&root, "ResponseMessages") {
            for m in &rm.children {
                out.push(m.child_text("ResponseCode").unwrap_or("?").to_string());
            }
        }
        out
    }

    pub fn fault_code(&self) -> Option<String> {
        first(&self.xml(), "ResponseCode").map(|e| e.text.clone())
    }
}

pub struct Client {
    pub http: reqwest::Client,
    pub url: String,
    pub auth: Option<String>,
    pub anchor: bool,
}

impl Client {
    pub fn new(sim: &EwsSim) -> Client {
        let basic = base64::engine::general_purpose::STANDARD.encode("svc:secret");
        Client {
            http: reqwest::Client::new(),
            url: sim.ews_url(),
            auth: Some(format!("Basic {basic}")),
            anchor: true,
        }
    }

    pub async fn raw(&self, body: String, anchor: Option<&str>) -> Resp {
        let mut req = self
            .http
            .post(&self.url)
            .header("Content-Type", "text/xml; charset=utf-8")
            .body(body);
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        if let Some(a) = anchor {
            req = req.header("X-AnchorMailbox", a);
        }
        let r = req.send().await.expect("http");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        Resp {
            status,
            headers,
            text: r.text().await.expect("body"),
        }
    }

    /// Sends `op` impersonating `mailbox`, with a matching X-AnchorMailbox.
    pub async fn call(&self, mailbox: &str, op: &str) -> Resp {
        let anchor = if self.anchor { Some(mailbox) } else { None };
        self.raw(envelope(Some(mailbox), op), anchor).await
    }
}

pub fn all<'a>(el: &'a Element, name: &str) -> Vec<&'a Element> {
    let mut out = Vec::new();
    walk(el, name, &mut out);
    out
}

fn walk<'a>(el: &'a Element, name: &str, out: &mut Vec<&'a Element>) {
    if el.name == name {
        out.push(el);
    }
    for c in &el.children {
        walk(c, name, out);
    }
}

pub fn first<'a>(el: &'a Element, name: &str) -> Option<&'a Element> {
    all(el, name).into_iter().next()
}

/// (Id, ChangeKey) of every t:ItemId in the response.
pub fn item_ids(r: &Resp) -> Vec<(String, String)> {
    all(&r.xml(), "ItemId")
        .into_iter()
        .map(|e| {
            (
                e.attr("Id").unwrap_or_default().to_string(),
                e.attr("ChangeKey").unwrap_or_default().to_string(),
            )
        })
        .collect()
}

pub fn folder_ids(r: &Resp) -> Vec<String> {
    all(&r.xml(), "FolderId")
        .into_iter()
        .map(|e| e.attr("Id").unwrap_or_default().to_string())
        .collect()
}

pub fn create_contact_op(folder_xml: &str, contacts: &[String]) -> String {
    format!(
        "<m:CreateItem MessageDisposition=\"SaveOnly\"><m:SavedItemFolderId>{folder_xml}</m:SavedItemFolderId><m:Items>{}</m:Items></m:CreateItem>",
        contacts.join("")
    )
}

pub fn simple_contact(crm: &str, given: &str, surname: &str) -> String {
    format!(
        "<t:Contact><t:ExtendedProperty>{CRM_URI}<t:Value>{crm}</t:Value></t:ExtendedProperty><t:FileAs>{surname}, {given}</t:FileAs><t:GivenName>{given}</t:GivenName><t:Surname>{surname}</t:Surname></t:Contact>"
    )
}

/// Creates the "CRM Contacts" folder under contacts and returns its id.
pub async fn crm_folder(c: &Client, mailbox: &str) -> String {
    let r = c
        .call(
            mailbox,
            r#"<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderId><m:Folders><t:ContactsFolder><t:DisplayName>CRM Contacts</t:DisplayName></t:ContactsFolder></m:Folders></m:CreateFolder>"#,
        )
        .await;
    assert_eq!(r.codes(), vec!["NoError"], "{}", r.text);
    folder_ids(&r).remove(0)
}

pub fn folder_xml(id: &str) -> String {
    format!("<t:FolderId Id=\"{id}\"/>")
}

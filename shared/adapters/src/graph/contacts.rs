//! The contact half of [`GraphMailbox`] (R9–R14, exchange.md §3.6): the "CRM Contacts" folder,
//! contact writes as `$batch`es, the lookup by stamp, and the folder's delta.
//!
//! Lookup by stamp: a `$filter` on the stamp property (`eq`, which Graph supports on contacts),
//! ten stamps per filter joined with `or` and up to 20 filters per `$batch`, so up to 200 stamps
//! cost one request whatever the folder's size. Beyond that the folder (ours, R9) is listed with
//! the stamp expanded, which costs one request per page.
//!
//! Delta: contact delta takes `$select` but not `$expand`, so the stamps of changed contacts are
//! read by id afterwards (`$batch`, 20 per request). That only costs when something changed; an
//! idle round is one request.

use std::collections::{HashMap, HashSet};

use lnsync_core::error::{ItemError, MailboxError};
use lnsync_core::ids::{CrmStamp, ExchangeItemId, FolderId, MailboxAddress};
use lnsync_core::normalize::ContactFields;
use lnsync_core::ports::{
    ContactFolder, ContactUpdate, FolderChange, FolderChanges, FolderCursor, ItemOutcome, ItemRef,
    NewContact, StampedItem,
};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::classify::{self, folder_call_error};
use super::client::{Answer, Page, Request, encode_segment, literal, query, user_path};
use super::cursor::DeltaCursor;
use super::mailbox::{GraphMailbox, change_key, etag};
use super::model::{
    self, BUSINESS_FAX_PROPERTY, CRM_ID_PROPERTY, Contact, ContactWrite, EmailAddress,
    ExtendedProperty, LANGUAGE_PROPERTY, PhysicalAddress, expand_stamp, extended_value,
};

/// Stamps per `$filter` (keeps URLs well below Graph's limits).
const STAMPS_PER_FILTER: usize = 10;

/// Up to this many stamps are looked up by filter (one `$batch`); more list the folder.
const MAX_FILTERED_STAMPS: usize = STAMPS_PER_FILTER * super::client::MAX_BATCH;

/// `$filter` matching items that carry any of `stamps`.
pub(super) fn stamp_filter(stamps: &[&str]) -> String {
    stamps
        .iter()
        .map(|s| {
            format!(
                "singleValueExtendedProperties/Any(ep: ep/id eq {} and ep/value eq {})",
                literal(CRM_ID_PROPERTY),
                literal(s)
            )
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// An item answer that can carry our stamp.
pub(super) trait Stamped {
    fn item_ref(&self) -> ItemRef;
    fn stamp(&self) -> Option<&str>;
}

impl Stamped for Contact {
    fn item_ref(&self) -> ItemRef {
        ItemRef {
            id: ExchangeItemId::new(self.id.clone()),
            version: lnsync_core::ids::ExchangeVersion::new(change_key(
                self.change_key.as_deref(),
                self.etag.as_deref(),
            )),
        }
    }

    fn stamp(&self) -> Option<&str> {
        extended_value(
            self.single_value_extended_properties.as_deref(),
            CRM_ID_PROPERTY,
        )
    }
}

/// Birthday as the EWS adapter writes it: noon UTC shows the right date from UTC-11 to UTC+11.
fn birthday(fields: &ContactFields) -> Option<String> {
    fields
        .birthday
        .map(|d| format!("{}T12:00:00Z", d.format("%Y-%m-%d")))
}

fn text(value: &Option<String>) -> Option<String> {
    lnsync_core::normalize::clean(value)
}

/// The contact as written (R13), the same mapping as the EWS adapter's field table. Every field
/// is present: `null` or empty clears it on update (R12). Extended properties cannot be
/// removed by a PATCH, so on update a cleared one is written empty; a create leaves it out.
pub(super) fn contact_write(
    stamp: &CrmStamp,
    fields: &ContactFields,
    update: bool,
) -> ContactWrite {
    let mut properties = vec![ExtendedProperty::new(CRM_ID_PROPERTY, stamp.as_str())];
    for (id, value) in [
        (LANGUAGE_PROPERTY, text(&fields.language)),
        (BUSINESS_FAX_PROPERTY, text(&fields.business_fax)),
    ] {
        match value {
            Some(v) => properties.push(ExtendedProperty::new(id, v)),
            None if update => properties.push(ExtendedProperty::new(id, "")),
            None => {}
        }
    }
    let address = fields.business_address.as_ref();
    let part = |f: fn(&lnsync_core::normalize::PostalAddress) -> &Option<String>| {
        address.and_then(|a| text(f(a)))
    };
    ContactWrite {
        display_name: text(&fields.display_name),
        file_as: text(&fields.file_as),
        given_name: text(&fields.given_name),
        middle_name: text(&fields.middle_name),
        surname: text(&fields.surname),
        title: text(&fields.title),
        generation: text(&fields.generation),
        initials: text(&fields.initials),
        job_title: text(&fields.job_title),
        department: text(&fields.department),
        company_name: text(&fields.company_name),
        assistant_name: text(&fields.assistant_name),
        birthday: birthday(fields),
        // Slot 1 only (R13); the other slots are not ours to keep in a folder we own.
        email_addresses: text(&fields.email)
            .map(|address| EmailAddress {
                address: Some(address),
                name: None,
            })
            .into_iter()
            .collect(),
        business_phones: text(&fields.business_phone).into_iter().collect(),
        mobile_phone: text(&fields.mobile_phone),
        business_address: PhysicalAddress {
            street: part(|a| &a.street),
            city: part(|a| &a.city),
            state: part(|a| &a.state),
            country_or_region: part(|a| &a.country),
            postal_code: part(|a| &a.postal_code),
        },
        single_value_extended_properties: properties,
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    // Our models are plain data; serializing them cannot fail.
    serde_json::to_value(value).unwrap_or_default()
}

fn folder_path(mailbox: &MailboxAddress, folder: &FolderId) -> String {
    format!(
        "{}/contactFolders/{}",
        user_path(mailbox),
        encode_segment(folder.as_str())
    )
}

/// A contact addressed through its folder: one the user deleted sits in Deleted Items under the
/// same immutable id, and must answer 404 here instead of being read or written there.
fn contact_path(mailbox: &MailboxAddress, folder: &FolderId, id: &ExchangeItemId) -> String {
    format!(
        "{}/contacts/{}",
        folder_path(mailbox, folder),
        encode_segment(id.as_str())
    )
}

impl GraphMailbox {
    pub(super) fn item_outcome<R>(
        &self,
        answer: Answer,
        id: Option<&ExchangeItemId>,
        ok: impl FnOnce(Answer) -> ItemOutcome<R>,
    ) -> ItemOutcome<R> {
        if answer.is_success() {
            ok(answer)
        } else {
            Err(classify::item_error(&answer, id, self.default_back_off()))
        }
    }

    /// Items carrying any of `stamps` under `collection` (a path), by filter; see the module
    /// doc. `error` maps a failed answer to the call's error.
    pub(super) async fn lookup_stamped<T: DeserializeOwned + Stamped>(
        &self,
        mailbox: &MailboxAddress,
        collection: &str,
        stamps: &[&str],
        error: impl Fn(&Answer) -> MailboxError,
    ) -> Result<Vec<StampedItem>, MailboxError> {
        let requests: Vec<Request> = stamps
            .chunks(STAMPS_PER_FILTER)
            .map(|group| {
                Request::get(format!(
                    "{collection}{}",
                    query(&[
                        ("$filter", stamp_filter(group)),
                        ("$select", "id,changeKey".to_owned()),
                        ("$expand", expand_stamp()),
                    ])
                ))
                .paged()
            })
            .collect();
        let answers = self.client.batch(mailbox, &requests).await?;
        let mut found = Vec::new();
        for (request, answer) in requests.iter().zip(answers) {
            if !answer.is_success() {
                return Err(error(&answer));
            }
            let items: Vec<T> = self
                .client
                .rest_of(mailbox, request, answer, "stamp lookup")
                .await?;
            found.extend(items.iter().filter_map(|item| {
                Some(StampedItem {
                    stamp: CrmStamp::from_raw(item.stamp()?),
                    item: item.item_ref(),
                })
            }));
        }
        Ok(found)
    }

    async fn find_folder(
        &self,
        mailbox: &MailboxAddress,
    ) -> Result<Option<FolderId>, MailboxError> {
        let name = &self.config().folder_name;
        let request = Request::get(format!(
            "{}/contactFolders{}",
            user_path(mailbox),
            query(&[
                ("$filter", format!("displayName eq {}", literal(name))),
                ("$select", "id,displayName".to_owned()),
            ])
        ));
        let folders: Vec<model::ContactFolder> = self
            .client
            .list(mailbox, request, "contact folders")
            .await?;
        // Graph compares case-insensitively; an exact match wins should both spellings exist.
        let exact = folders
            .iter()
            .find(|f| f.display_name.as_deref() == Some(name.as_str()));
        Ok(exact
            .or(folders.first())
            .map(|f| FolderId::new(f.id.clone())))
    }

    pub(super) async fn ensure_contact_folder_impl(
        &self,
        mailbox: &MailboxAddress,
    ) -> Result<ContactFolder, MailboxError> {
        if let Some(id) = self.find_folder(mailbox).await? {
            return Ok(ContactFolder { id, created: false });
        }
        let request = Request::post(
            format!("{}/contactFolders", user_path(mailbox)),
            json!({ "displayName": self.config().folder_name }),
        );
        let answer = self.client.send(mailbox, &request).await?;
        if answer.is_success() {
            let folder: model::ContactFolder = answer.parse("contact folder")?;
            return Ok(ContactFolder {
                id: FolderId::new(folder.id),
                created: true,
            });
        }
        if answer.status == 409 {
            // Another run created it between our find and create.
            return self
                .find_folder(mailbox)
                .await?
                .map(|id| ContactFolder { id, created: false })
                .ok_or_else(|| MailboxError::Protocol {
                    message: format!(
                        "\"{}\" exists but the folder listing does not show it",
                        self.config().folder_name
                    ),
                    source: None,
                });
        }
        Err(classify::call_error(
            mailbox,
            &answer,
            self.default_back_off(),
        ))
    }

    pub(super) async fn find_stamped_contacts_impl(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        stamps: &[CrmStamp],
    ) -> Result<Vec<StampedItem>, MailboxError> {
        let mut values: Vec<&str> = stamps.iter().map(CrmStamp::as_str).collect();
        values.sort_unstable();
        values.dedup();
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let contacts = format!("{}/contacts", folder_path(mailbox, folder));
        let back_off = self.default_back_off();
        let error = |a: &Answer| folder_call_error(mailbox, a, back_off);
        let found = if values.len() <= MAX_FILTERED_STAMPS {
            self.lookup_stamped::<Contact>(mailbox, &contacts, &values, error)
                .await?
        } else {
            let request = Request::get(format!(
                "{contacts}{}",
                query(&[
                    ("$select", "id,changeKey".to_owned()),
                    ("$expand", expand_stamp()),
                ])
            ))
            .paged();
            let answer = self.client.send(mailbox, &request).await?;
            if !answer.is_success() {
                return Err(error(&answer));
            }
            let all: Vec<Contact> = self
                .client
                .rest_of(mailbox, &request, answer, "contact listing")
                .await?;
            all.iter()
                .filter_map(|c| {
                    Some(StampedItem {
                        stamp: CrmStamp::from_raw(c.stamp()?),
                        item: c.item_ref(),
                    })
                })
                .collect()
        };
        let wanted: HashSet<&str> = values.into_iter().collect();
        Ok(found
            .into_iter()
            .filter(|s| wanted.contains(s.stamp.as_str()))
            .collect())
    }

    pub(super) async fn create_contacts_impl(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        contacts: &[NewContact],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        let path = format!("{}/contacts", folder_path(mailbox, folder));
        let requests: Vec<Request> = contacts
            .iter()
            .map(|c| {
                Request::post(
                    path.clone(),
                    to_json(&contact_write(&c.stamp, &c.fields, false)),
                )
            })
            .collect();
        let answers = self.client.batch(mailbox, &requests).await?;
        // Every create names the folder: a "not found" there means the folder is gone.
        if answers.iter().any(classify::is_not_found) {
            return Err(MailboxError::FolderNotFound {
                mailbox: mailbox.clone(),
            });
        }
        Ok(answers
            .into_iter()
            .map(|a| self.item_outcome(a, None, created_contact))
            .collect())
    }

    pub(super) async fn update_contacts_impl(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        updates: &[ContactUpdate],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        let requests: Vec<Request> = updates
            .iter()
            .map(|u| {
                Request::patch(
                    contact_path(mailbox, folder, &u.item.id),
                    to_json(&contact_write(&u.stamp, &u.fields, true)),
                )
                .if_match(etag(u.item.version.as_str()))
            })
            .collect();
        let answers = self.client.batch(mailbox, &requests).await?;
        Ok(updates
            .iter()
            .zip(answers)
            .map(|(u, a)| self.item_outcome(a, Some(&u.item.id), created_contact))
            .collect())
    }

    /// `DELETE /users/{u}/contacts/{id}`: Graph moves the contact to Deleted Items, where
    /// Exchange purges it on its retention schedule; it leaves our folder (and its delta) at
    /// once, which is what the core relies on.
    pub(super) async fn delete_contacts_impl(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        ids: &[ExchangeItemId],
    ) -> Result<Vec<ItemOutcome<()>>, MailboxError> {
        let requests: Vec<Request> = ids
            .iter()
            .map(|id| Request::delete(contact_path(mailbox, folder, id)))
            .collect();
        let answers = self.client.batch(mailbox, &requests).await?;
        Ok(ids
            .iter()
            .zip(answers)
            .map(|(id, a)| self.item_outcome(a, Some(id), |_| Ok(())))
            .collect())
    }

    pub(super) async fn current_versions_impl(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        ids: &[ExchangeItemId],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        let requests: Vec<Request> = ids
            .iter()
            .map(|id| {
                Request::get(format!(
                    "{}{}",
                    contact_path(mailbox, folder, id),
                    query(&[("$select", "id,changeKey".to_owned())])
                ))
            })
            .collect();
        let answers = self.client.batch(mailbox, &requests).await?;
        Ok(ids
            .iter()
            .zip(answers)
            .map(|(id, a)| self.item_outcome(a, Some(id), created_contact))
            .collect())
    }

    /// The stamps of `ids` (contacts that changed), read by id. A contact that vanished since
    /// the delta named it is left out: the next round reports its removal.
    async fn contact_stamps(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        ids: &[String],
    ) -> Result<HashMap<String, (ItemRef, Option<CrmStamp>)>, MailboxError> {
        let requests: Vec<Request> = ids
            .iter()
            .map(|id| {
                Request::get(format!(
                    "{}{}",
                    contact_path(mailbox, folder, &ExchangeItemId::new(id.clone())),
                    query(&[
                        ("$select", "id,changeKey".to_owned()),
                        ("$expand", expand_stamp()),
                    ])
                ))
            })
            .collect();
        let answers = self.client.batch(mailbox, &requests).await?;
        let mut out = HashMap::new();
        for (id, answer) in ids.iter().zip(answers) {
            if classify::is_not_found(&answer) {
                continue;
            }
            if !answer.is_success() {
                return Err(classify::call_error(
                    mailbox,
                    &answer,
                    self.default_back_off(),
                ));
            }
            let contact: Contact = answer.parse("contact")?;
            let stamp = contact.stamp().map(CrmStamp::from_raw);
            out.insert(id.clone(), (contact.item_ref(), stamp));
        }
        Ok(out)
    }

    pub(super) async fn sync_contact_folder_impl(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        cursor: Option<&FolderCursor>,
    ) -> Result<FolderChanges, MailboxError> {
        let path = match cursor {
            Some(cursor) => {
                let link = DeltaCursor::contacts_link(cursor, mailbox.as_str(), folder.as_str())
                    .ok_or_else(|| MailboxError::InvalidCursor {
                        mailbox: mailbox.clone(),
                    })?;
                // A link of another host is no cursor of ours either.
                self.client
                    .relative(&link)
                    .ok_or_else(|| MailboxError::InvalidCursor {
                        mailbox: mailbox.clone(),
                    })?
            }
            None => format!(
                "{}/contacts/delta{}",
                folder_path(mailbox, folder),
                query(&[("$select", "id,changeKey".to_owned())])
            ),
        };
        let answer = self
            .client
            .send(mailbox, &Request::get(path).paged())
            .await?;
        if !answer.is_success() {
            return Err(folder_call_error(mailbox, &answer, self.default_back_off()));
        }
        let page: Page<Contact> = answer.parse("contact delta")?;
        let (link, more) = match (page.next_link, page.delta_link) {
            (Some(next), _) => (next, true),
            (None, Some(delta)) => (delta, false),
            (None, None) => {
                return Err(MailboxError::Protocol {
                    message: "a contact delta page without nextLink or deltaLink".to_owned(),
                    source: None,
                });
            }
        };
        let changed: Vec<String> = page
            .value
            .iter()
            .filter(|c| c.removed.is_none() && !c.id.is_empty())
            .map(|c| c.id.clone())
            .collect();
        let mut stamps = self.contact_stamps(mailbox, folder, &changed).await?;
        let changes = page
            .value
            .iter()
            .filter_map(|c| {
                if c.removed.is_some() {
                    return Some(FolderChange::Deleted {
                        id: ExchangeItemId::new(c.id.clone()),
                    });
                }
                let (item, stamp) = stamps.remove(&c.id)?;
                Some(FolderChange::Upsert { item, stamp })
            })
            .collect();
        let cursor = DeltaCursor::Contacts {
            mailbox: mailbox.as_str().to_owned(),
            folder: folder.as_str().to_owned(),
            link,
        }
        .encode();
        Ok(FolderChanges {
            changes,
            cursor,
            more,
        })
    }
}

/// The item a successful contact write or read answered.
fn created_contact(answer: Answer) -> ItemOutcome<ItemRef> {
    let contact: Contact = answer.parse("contact").map_err(|e| ItemError::Failed {
        code: "UnreadableAnswer".to_owned(),
        message: e.to_string(),
        transient: false,
    })?;
    if contact.id.is_empty() {
        return Err(ItemError::Failed {
            code: "NoItemInResponse".to_owned(),
            message: "Graph reported success without the contact's id".to_owned(),
            transient: false,
        });
    }
    Ok(contact.item_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use lnsync_core::normalize::PostalAddress;

    fn full() -> ContactFields {
        ContactFields {
            display_name: Some("Dr. Jane Doe".into()),
            file_as: Some("Doe, Jane".into()),
            given_name: Some("Jane".into()),
            surname: Some("Doe".into()),
            title: Some("Dr.".into()),
            job_title: Some("CTO".into()),
            company_name: Some("Acme".into()),
            birthday: NaiveDate::from_ymd_opt(1980, 5, 17),
            email: Some("jane@acme.example".into()),
            business_phone: Some("+49 30 1".into()),
            mobile_phone: Some("+49 170 1".into()),
            business_fax: Some("+49 30 2".into()),
            business_address: Some(PostalAddress {
                street: Some("Main St 1\nBuilding B".into()),
                city: Some("Berlin".into()),
                country: Some("DE".into()),
                ..PostalAddress::default()
            }),
            language: Some("de".into()),
            ..ContactFields::default()
        }
    }

    #[test]
    fn contacts_carry_every_mapped_field_and_the_stamp() -> Result<(), Box<dyn std::error::Error>> {
        let stamp = CrmStamp::from_raw("ln:prod:contact:C1");
        let json = to_json(&contact_write(&stamp, &full(), false));
        assert_eq!(json["givenName"], "Jane");
        assert_eq!(json["title"], "Dr.");
        assert_eq!(json["birthday"], "1980-05-17T12:00:00Z");
        assert_eq!(json["emailAddresses"][0]["address"], "jane@acme.example");
        assert_eq!(json["businessPhones"][0], "+49 30 1");
        assert_eq!(json["businessAddress"]["street"], "Main St 1\nBuilding B");
        assert_eq!(json["businessAddress"]["countryOrRegion"], "DE");
        let props = json["singleValueExtendedProperties"]
            .as_array()
            .ok_or("properties")?;
        let value = |id: &str| {
            props
                .iter()
                .find(|p| p["id"] == id)
                .map(|p| p["value"].clone())
        };
        assert_eq!(value(CRM_ID_PROPERTY), Some(json!("ln:prod:contact:C1")));
        assert_eq!(value(LANGUAGE_PROPERTY), Some(json!("de")));
        assert_eq!(value(BUSINESS_FAX_PROPERTY), Some(json!("+49 30 2")));
        Ok(())
    }

    #[test]
    fn updates_clear_what_ln_no_longer_fills() -> Result<(), Box<dyn std::error::Error>> {
        let stamp = CrmStamp::from_raw("ln:prod:contact:C1");
        let sparse = ContactFields {
            surname: Some(" Doe ".into()),
            email: Some("  ".into()),
            ..ContactFields::default()
        };
        let json = to_json(&contact_write(&stamp, &sparse, true));
        assert_eq!(json["surname"], "Doe");
        assert!(json["givenName"].is_null());
        assert!(json.get("givenName").is_some(), "sent as null to clear it");
        assert_eq!(json["emailAddresses"], json!([]));
        assert_eq!(json["businessPhones"], json!([]));
        assert!(json["businessAddress"]["city"].is_null());
        let props = json["singleValueExtendedProperties"]
            .as_array()
            .ok_or("properties")?;
        assert_eq!(props.len(), 3, "stamp plus cleared language and fax");
        assert!(
            props
                .iter()
                .any(|p| p["id"] == LANGUAGE_PROPERTY && p["value"] == "")
        );
        // A create leaves absent extended properties out.
        let created = to_json(&contact_write(&stamp, &sparse, false));
        assert_eq!(
            created["singleValueExtendedProperties"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        Ok(())
    }

    #[test]
    fn stamp_filters_join_stamps_with_or_and_escape_quotes() {
        let f = stamp_filter(&["ln:p:contact:A", "ln:p:contact:O'B"]);
        assert_eq!(
            f,
            "singleValueExtendedProperties/Any(ep: ep/id eq 'String {00020329-0000-0000-C000-000000000046} Name CrmId' and ep/value eq 'ln:p:contact:A') or singleValueExtendedProperties/Any(ep: ep/id eq 'String {00020329-0000-0000-C000-000000000046} Name CrmId' and ep/value eq 'ln:p:contact:O''B')"
        );
    }
}

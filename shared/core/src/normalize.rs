//! Mapping LN records to the fields lnsync writes to Exchange, and content hashes over them.
//!
//! A hash covers only mapped, normalised fields, so volatile or unmapped properties never look
//! like a change (R27, vdirsyncer's rule): whitespace is trimmed, empty strings are absent.

use crate::model::{Contact, ContentHash};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The business address of an Exchange contact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostalAddress {
    /// LN's address lines joined by newlines (Exchange has one multi-line street).
    pub street: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    /// ISO 3166 alpha-2, as LN holds it (R13).
    pub country: Option<String>,
}

impl PostalAddress {
    fn is_empty(&self) -> bool {
        self.street.is_none()
            && self.city.is_none()
            && self.state.is_none()
            && self.postal_code.is_none()
            && self.country.is_none()
    }
}

/// An Exchange contact as lnsync writes it (R13). Absent fields are cleared in Exchange, never
/// left stale, so every field is written on every update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactFields {
    pub display_name: Option<String>,
    pub file_as: Option<String>,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub surname: Option<String>,
    /// Person title ("Dr."); EWS has no writable element for it, adapters use an extended property.
    pub title: Option<String>,
    /// Suffix ("Jr."), Exchange's Generation.
    pub generation: Option<String>,
    pub initials: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub company_name: Option<String>,
    pub assistant_name: Option<String>,
    pub birthday: Option<NaiveDate>,
    /// E-mail slot 1.
    pub email: Option<String>,
    pub business_phone: Option<String>,
    pub mobile_phone: Option<String>,
    pub business_fax: Option<String>,
    pub business_address: Option<PostalAddress>,
    /// ISO 639-1, written as an extended property (R13).
    pub language: Option<String>,
}

/// Trims and drops empty strings, so " " and "" and absent are one value.
pub fn clean(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn join_present(parts: &[Option<String>], sep: &str) -> Option<String> {
    let present: Vec<&str> = parts.iter().flatten().map(String::as_str).collect();
    if present.is_empty() {
        None
    } else {
        Some(present.join(sep))
    }
}

impl ContactFields {
    /// Maps an LN contact to Exchange fields (R13).
    pub fn from_ln(contact: &Contact) -> Self {
        let given = clean(&contact.first_name);
        let middle = clean(&contact.middle_name);
        let surname = clean(&contact.last_name);
        let display_name = clean(&contact.full_name)
            .or_else(|| join_present(&[given.clone(), middle.clone(), surname.clone()], " "));
        // Outlook's "Last, First" filing when both exist, else whatever name there is.
        let file_as = match (&surname, &given) {
            (Some(last), Some(first)) => Some(format!("{last}, {first}")),
            _ => display_name.clone(),
        };
        let business_address = contact.address.as_ref().map(|a| PostalAddress {
            street: join_present(&[clean(&a.line1), clean(&a.line2), clean(&a.line3)], "\n"),
            city: clean(&a.city),
            state: clean(&a.state),
            postal_code: clean(&a.zip),
            country: clean(&a.country).map(|c| c.to_ascii_uppercase()),
        });
        ContactFields {
            display_name,
            file_as,
            given_name: given,
            middle_name: middle,
            surname,
            title: clean(&contact.title),
            generation: clean(&contact.suffix),
            initials: clean(&contact.initials),
            job_title: clean(&contact.job_title),
            department: clean(&contact.department),
            company_name: clean(&contact.business_partner_name),
            assistant_name: clean(&contact.assistant),
            birthday: contact.birthday,
            email: clean(&contact.email),
            business_phone: clean(&contact.primary_phone),
            mobile_phone: clean(&contact.mobile_phone),
            business_fax: clean(&contact.fax),
            business_address: business_address.filter(|a| !a.is_empty()),
            language: clean(&contact.language).map(|l| l.to_ascii_lowercase()),
        }
    }

    pub fn hash(&self) -> ContentHash {
        content_hash(self)
    }
}

/// SHA-256 over the canonical JSON of a normalised value. serde_json writes struct fields in
/// declaration order, so the encoding (and the hash) is stable for a given type.
pub fn content_hash<T: Serialize>(value: &T) -> ContentHash {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    ContentHash(hex::encode(Sha256::digest(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ContactCode, LnVersion};
    use crate::model::Address;
    use chrono::Utc;

    pub(crate) fn contact() -> Contact {
        Contact {
            contact: ContactCode::new("C1"),
            first_name: Some("Jane".into()),
            middle_name: None,
            last_name: Some("Doe".into()),
            full_name: None,
            title: Some("Dr.".into()),
            suffix: None,
            initials: Some("JD".into()),
            job_title: Some("CTO".into()),
            department: None,
            assistant: None,
            birthday: None,
            business_partner: Some("BP1".into()),
            business_partner_name: Some("Acme GmbH".into()),
            email: Some("jane@acme.example".into()),
            primary_phone: Some("+49 30 1234".into()),
            mobile_phone: None,
            fax: None,
            address: Some(Address {
                line1: Some("Main St 1".into()),
                line2: Some("  ".into()),
                city: Some("Berlin".into()),
                zip: Some("10115".into()),
                country: Some("de".into()),
                ..Address::default()
            }),
            language: Some("DE".into()),
            synchronize: true,
            active: true,
            opted_out: false,
            last_modified: Utc::now(),
            version: LnVersion::new("W/\"1\""),
        }
    }

    #[test]
    fn maps_names_company_address_and_codes() {
        let f = ContactFields::from_ln(&contact());
        assert_eq!(f.display_name.as_deref(), Some("Jane Doe"));
        assert_eq!(f.file_as.as_deref(), Some("Doe, Jane"));
        assert_eq!(f.company_name.as_deref(), Some("Acme GmbH"));
        let a = f.business_address.clone().unwrap_or_default();
        assert_eq!(a.street.as_deref(), Some("Main St 1"));
        assert_eq!(a.country.as_deref(), Some("DE"));
        assert_eq!(f.language.as_deref(), Some("de"));
        assert_eq!(f.title.as_deref(), Some("Dr."));
    }

    #[test]
    fn hash_ignores_whitespace_and_volatile_fields_but_not_content() {
        let a = contact();
        let mut b = a.clone();
        b.last_modified = Utc::now() + chrono::Duration::hours(1);
        b.version = LnVersion::new("W/\"2\"");
        b.job_title = Some("  CTO ".into());
        assert_eq!(
            ContactFields::from_ln(&a).hash(),
            ContactFields::from_ln(&b).hash()
        );
        b.job_title = Some("CEO".into());
        assert_ne!(
            ContactFields::from_ln(&a).hash(),
            ContactFields::from_ln(&b).hash()
        );
    }

    #[test]
    fn empty_address_maps_to_none() {
        let mut c = contact();
        c.address = Some(Address::default());
        assert_eq!(ContactFields::from_ln(&c).business_address, None);
    }
}

//! The contact planner. Contacts flow one way, LN → Exchange, so the decision table has one
//! changed side:
//!
//! | LN row in feed        | link | LN version moved | mapped hash differs | action                 |
//! |-----------------------|------|------------------|---------------------|------------------------|
//! | qualifies             | no   | –                | –                   | create (adopt by stamp) |
//! | qualifies             | yes, write cut short | – | –                           | update                 |
//! | qualifies             | yes  | no               | –                   | skip                   |
//! | qualifies             | yes  | yes              | no                  | relink (no write)      |
//! | qualifies             | yes  | yes              | yes                 | update (overwrite)     |
//! | not qualifying        | yes  | –                | –                   | delete                 |
//! | not qualifying        | no   | –                | –                   | skip                   |
//! | in DeletedObjects only| yes  | –                | –                   | delete                 |
//! | in DeletedObjects only| no   | –                | –                   | skip                   |
//!
//! Deletions beyond the [`DeletionGate`] are held for an administrator instead (R30).

use crate::ids::{ContactCode, EnvironmentId, LnVersion};
use crate::model::{Contact, ContentHash, DeletedObject, Link, LnKey};
use crate::normalize::ContactFields;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};

/// R30: a run that would delete more than `max_items` **and** more than `max_fraction` of the
/// user's linked items holds its deletions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeletionGate {
    pub max_items: usize,
    pub max_fraction: f64,
}

impl Default for DeletionGate {
    fn default() -> Self {
        Self {
            max_items: 20,
            max_fraction: 0.2,
        }
    }
}

impl DeletionGate {
    pub fn trips(&self, deletions: usize, linked_total: u64) -> bool {
        // Precision loss is irrelevant at these magnitudes.
        #[allow(clippy::cast_precision_loss)]
        let fraction = if linked_total == 0 {
            1.0
        } else {
            deletions as f64 / linked_total as f64
        };
        deletions > self.max_items && fraction > self.max_fraction
    }
}

pub struct ContactPlanInput<'a> {
    pub env: &'a EnvironmentId,
    /// LN rows changed since the user's watermark (boundary rows may be re-read).
    pub changes: &'a [&'a Contact],
    /// `DeletedObjects` rows of contacts since the user's watermark.
    pub deletions: &'a [&'a DeletedObject],
    /// Stored links of the keys above that exist.
    pub links: &'a HashMap<LnKey, Link>,
    /// All of the user's contact links, for the gate's fraction.
    pub linked_total: u64,
    pub gate: DeletionGate,
    /// An administrator released the held deletions (R30).
    pub release_held: bool,
}

/// A contact to create or update, with what its link will record.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedContact {
    pub code: ContactCode,
    pub fields: ContactFields,
    pub hash: ContentHash,
    pub ln_version: LnVersion,
    pub ln_modified: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactPlan {
    pub creates: Vec<PlannedContact>,
    /// Updates with the link they overwrite.
    pub updates: Vec<(Link, PlannedContact)>,
    pub deletes: Vec<Link>,
    /// Deletions the gate held back (R30), reported as problems.
    pub held_deletes: Vec<Link>,
    /// LN version moved but mapped content is the same: only the link's version is refreshed.
    pub relinks: Vec<Link>,
    /// Create intents of keys that no longer qualify: a crashed run may have created the item,
    /// so it is looked up by stamp and removed if found.
    pub orphan_checks: Vec<Link>,
    pub skipped: u32,
}

impl ContactPlan {
    pub fn is_idle(&self) -> bool {
        self.creates.is_empty()
            && self.updates.is_empty()
            && self.deletes.is_empty()
            && self.relinks.is_empty()
            && self.orphan_checks.is_empty()
    }

    pub fn writes(&self) -> usize {
        self.creates.len() + self.updates.len() + self.deletes.len()
    }
}

pub fn plan_contacts(input: &ContactPlanInput<'_>) -> ContactPlan {
    let _ = input.env;
    let mut plan = ContactPlan::default();

    // The feed may list a contact twice (pages shifting under concurrent edits): keep the newest.
    let mut latest: BTreeMap<&ContactCode, &Contact> = BTreeMap::new();
    for c in input.changes {
        let keep = latest
            .get(&c.contact)
            .is_none_or(|prev| prev.last_modified <= c.last_modified);
        if keep {
            latest.insert(&c.contact, c);
        }
    }

    let mut deletes = Vec::new();
    for (code, contact) in &latest {
        let key = LnKey::from(*code);
        let link = input.links.get(&key);
        if !contact.qualifies() {
            match link {
                Some(link) if link.is_intent() => plan.orphan_checks.push(link.clone()),
                Some(link) => deletes.push(link.clone()),
                None => plan.skipped += 1,
            }
            continue;
        }
        let fields = ContactFields::from_ln(contact);
        let hash = fields.hash();
        let planned = PlannedContact {
            code: (*code).clone(),
            fields,
            hash: hash.clone(),
            ln_version: contact.version.clone(),
            ln_modified: contact.last_modified,
        };
        match link {
            // An unfinished create is finished (adopting what the crashed run wrote, if anything).
            None => plan.creates.push(planned),
            Some(link) if link.is_intent() => plan.creates.push(planned),
            // Exchange holds what we last wrote, unless a write was cut short (hash unknown).
            Some(link) if link.exchange_hash != link.ln_hash => {
                plan.updates.push((link.clone(), planned))
            }
            Some(link) if link.ln_version.as_ref() == Some(&contact.version) => plan.skipped += 1,
            Some(link) if link.ln_hash == hash => {
                let mut relinked = link.clone();
                relinked.ln_version = Some(contact.version.clone());
                relinked.ln_modified = Some(contact.last_modified);
                plan.relinks.push(relinked);
                plan.skipped += 1;
            }
            Some(link) => plan.updates.push((link.clone(), planned)),
        }
    }

    // A key that is in the change feed exists in LN now, whatever the audit trail says. A
    // deletion older than the version a link reflects is about an earlier incarnation of the
    // key (deleted, then created again): boundary re-reads bring such rows back.
    let mut last_deleted: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    for d in input.deletions {
        if !latest.contains_key(&ContactCode::new(d.key.as_str())) {
            let at = last_deleted.entry(d.key.as_str()).or_insert(d.deleted_at);
            *at = (*at).max(d.deleted_at);
        }
    }
    for (key, deleted_at) in last_deleted {
        match input.links.get(&LnKey::new(key)) {
            Some(link) if link.ln_modified.is_some_and(|m| m > deleted_at) => plan.skipped += 1,
            Some(link) if link.is_intent() => plan.orphan_checks.push(link.clone()),
            Some(link) => deletes.push(link.clone()),
            None => plan.skipped += 1,
        }
    }

    if !input.release_held && input.gate.trips(deletes.len(), input.linked_total) {
        plan.held_deletes = deletes;
    } else {
        plan.deletes = deletes;
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::*;
    use crate::model::{DeletedEntity, LinkKind, Origin};
    use chrono::{DateTime, TimeZone, Utc};

    fn t(min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 10, min, 0)
            .single()
            .unwrap_or_default()
    }

    fn contact(code: &str, version: u32, job: &str) -> Contact {
        Contact {
            contact: ContactCode::new(code),
            first_name: Some("Ann".into()),
            middle_name: None,
            last_name: Some(code.into()),
            full_name: None,
            title: None,
            suffix: None,
            initials: None,
            job_title: Some(job.into()),
            department: None,
            assistant: None,
            birthday: None,
            business_partner: None,
            business_partner_name: None,
            email: None,
            primary_phone: None,
            mobile_phone: None,
            fax: None,
            address: None,
            language: None,
            synchronize: true,
            active: true,
            opted_out: false,
            last_modified: t(version),
            version: LnVersion::new(format!("v{version}")),
        }
    }

    fn link_for(c: &Contact) -> Link {
        Link {
            env: EnvironmentId::new("e"),
            user: UserId::new("u"),
            kind: LinkKind::Contact,
            ln_key: LnKey::from(&c.contact),
            exchange_id: ExchangeItemId::new(format!("x-{}", c.contact)),
            exchange_version: ExchangeVersion::new("ck1"),
            ln_version: Some(c.version.clone()),
            ln_modified: Some(c.last_modified),
            ln_hash: ContactFields::from_ln(c).hash(),
            exchange_hash: ContactFields::from_ln(c).hash(),
            ical_uid: None,
            origin: Origin::Ln,
            organizer: None,
            last_error: None,
            updated_at: t(0),
            event: None,
        }
    }

    fn run(
        changes: &[Contact],
        deletions: &[DeletedObject],
        links: &[Link],
        total: u64,
    ) -> ContactPlan {
        let env = EnvironmentId::new("e");
        let changes: Vec<&Contact> = changes.iter().collect();
        let deletions: Vec<&DeletedObject> = deletions.iter().collect();
        let links: HashMap<LnKey, Link> = links
            .iter()
            .map(|l| (l.ln_key.clone(), l.clone()))
            .collect();
        plan_contacts(&ContactPlanInput {
            env: &env,
            changes: &changes,
            deletions: &deletions,
            links: &links,
            linked_total: total,
            gate: DeletionGate::default(),
            release_held: false,
        })
    }

    fn deleted(key: &str) -> DeletedObject {
        DeletedObject {
            entity: DeletedEntity::Contact,
            key: key.into(),
            deleted_at: t(5),
        }
    }

    #[test]
    fn new_qualifying_contact_is_created() {
        let plan = run(&[contact("C1", 1, "CTO")], &[], &[], 0);
        assert_eq!(plan.creates.len(), 1);
        assert_eq!(plan.writes(), 1);
    }

    #[test]
    fn same_version_is_skipped() {
        let c = contact("C1", 1, "CTO");
        let plan = run(std::slice::from_ref(&c), &[], &[link_for(&c)], 1);
        assert!(plan.is_idle());
        assert_eq!(plan.skipped, 1);
    }

    #[test]
    fn moved_version_with_same_content_only_relinks() {
        let old = contact("C1", 1, "CTO");
        let new = contact("C1", 2, "CTO");
        let plan = run(&[new], &[], &[link_for(&old)], 1);
        assert_eq!(plan.writes(), 0);
        assert_eq!(plan.relinks.len(), 1);
        assert_eq!(plan.relinks[0].ln_version, Some(LnVersion::new("v2")));
    }

    #[test]
    fn changed_content_is_updated() {
        let old = contact("C1", 1, "CTO");
        let plan = run(&[contact("C1", 2, "CEO")], &[], &[link_for(&old)], 1);
        assert_eq!(plan.updates.len(), 1);
        assert_eq!(plan.updates[0].1.fields.job_title.as_deref(), Some("CEO"));
    }

    #[test]
    fn losing_synchronize_or_active_deletes_a_linked_contact_only() {
        let old = contact("C1", 1, "CTO");
        let mut off = contact("C1", 2, "CTO");
        off.synchronize = false;
        let mut inactive = contact("C2", 2, "CTO");
        inactive.active = false;
        let plan = run(&[off, inactive], &[], &[link_for(&old)], 1);
        assert_eq!(plan.deletes.len(), 1);
        assert_eq!(plan.deletes[0].ln_key, LnKey::new("C1"));
        assert_eq!(plan.skipped, 1);
    }

    #[test]
    fn deleted_in_ln_deletes_but_a_recreated_key_wins() {
        let c1 = contact("C1", 1, "CTO");
        let c2 = contact("C2", 1, "CTO");
        let plan = run(
            std::slice::from_ref(&c2),
            &[deleted("C1"), deleted("C2"), deleted("C9")],
            &[link_for(&c1), link_for(&c2)],
            2,
        );
        assert_eq!(
            plan.deletes
                .iter()
                .map(|l| l.ln_key.as_str())
                .collect::<Vec<_>>(),
            ["C1"]
        );
        assert_eq!(plan.skipped, 2, "C2 unchanged, C9 never linked");
    }

    #[test]
    fn a_deletion_older_than_the_linked_version_is_stale() {
        let recreated = contact("C1", 9, "CTO");
        let plan = run(&[], &[deleted("C1")], &[link_for(&recreated)], 1);
        assert!(plan.deletes.is_empty());
        assert_eq!(plan.skipped, 1);
    }

    #[test]
    fn a_write_cut_short_is_redone_even_without_an_ln_change() {
        let c = contact("C1", 1, "CTO");
        let mut link = link_for(&c);
        link.exchange_hash = ContentHash::unknown();
        let plan = run(std::slice::from_ref(&c), &[], &[link], 1);
        assert_eq!(plan.updates.len(), 1);
    }

    #[test]
    fn duplicate_rows_keep_the_newest() {
        let plan = run(
            &[contact("C1", 2, "new"), contact("C1", 1, "old")],
            &[],
            &[],
            0,
        );
        assert_eq!(plan.creates.len(), 1);
        assert_eq!(plan.creates[0].fields.job_title.as_deref(), Some("new"));
    }

    #[test]
    fn mass_deletion_is_held() {
        let contacts: Vec<Contact> = (0..30)
            .map(|i| contact(&format!("C{i:02}"), 1, "x"))
            .collect();
        let links: Vec<Link> = contacts.iter().map(link_for).collect();
        let dels: Vec<DeletedObject> = contacts
            .iter()
            .map(|c| deleted(c.contact.as_str()))
            .collect();
        let plan = run(&[], &dels, &links, 100);
        assert!(plan.deletes.is_empty());
        assert_eq!(plan.held_deletes.len(), 30);
        // Under the fraction it goes through: 30 of 1000 is 3 %.
        let plan = run(&[], &dels, &links, 1000);
        assert_eq!(plan.deletes.len(), 30);
    }

    #[test]
    fn gate_needs_both_count_and_fraction() {
        let gate = DeletionGate::default();
        assert!(!gate.trips(20, 20));
        assert!(gate.trips(21, 100));
        assert!(!gate.trips(21, 200));
    }
}

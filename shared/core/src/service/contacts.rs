//! The contact run (R8–R14). The LN change feed is read once per environment (R14) from the
//! oldest watermark of its users, then applied to each user's mailbox from that user's own
//! watermark. An idle run costs two LN reads and no Exchange call at all: Exchange is only
//! touched when there is something to write (or in repair mode, R12).

use super::{SyncError, SyncOptions};
use crate::error::{Classify, ErrorClass, ItemError, MailboxError};
use crate::ids::*;
use crate::model::*;
use crate::plan::{ContactPlan, ContactPlanInput, PlannedContact, plan_contacts};
use crate::ports::*;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// The LN contact changes of one environment since a watermark. Serializable so a runtime can
/// cache one read for all of an environment's users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactFeed {
    pub read_from: LnWatermark,
    pub high_water: LnWatermark,
    pub contacts: Vec<Contact>,
    pub deletions: Vec<DeletedObject>,
}

fn newer(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl ContactFeed {
    /// Two LN requests (plus pages): changed contacts and contact deletions.
    pub async fn read(
        ln: &dyn LnGateway,
        from: LnWatermark,
    ) -> Result<Self, crate::error::LnError> {
        let contacts = ln.contacts_changed_since(from.changes).await?;
        let deletions = ln
            .deleted_since(DeletedEntity::Contact, from.deletions)
            .await?;
        let high_water = LnWatermark {
            changes: newer(contacts.iter().map(|c| c.last_modified).max(), from.changes),
            deletions: newer(deletions.iter().map(|d| d.deleted_at).max(), from.deletions),
        };
        Ok(Self {
            read_from: from,
            high_water,
            contacts,
            deletions,
        })
    }

    /// The part of the feed at or after a user's own watermark.
    pub fn for_user(&self, watermark: LnWatermark) -> (Vec<&Contact>, Vec<&DeletedObject>) {
        let contacts = self
            .contacts
            .iter()
            .filter(|c| watermark.changes.is_none_or(|w| c.last_modified >= w))
            .collect();
        let deletions = self
            .deletions
            .iter()
            .filter(|d| d.entity == DeletedEntity::Contact)
            .filter(|d| watermark.deletions.is_none_or(|w| d.deleted_at >= w))
            .collect();
        (contacts, deletions)
    }
}

/// The result of one user's contact run.
#[derive(Debug)]
pub struct UserRun {
    pub user: UserId,
    pub mailbox: MailboxAddress,
    pub outcome: RunOutcome,
    pub counts: RunCounts,
    pub error: Option<SyncError>,
}

/// Runs contact sync for one environment over the ports.
pub struct ContactSync<'a> {
    pub env: &'a EnvironmentId,
    pub store: &'a dyn StateStore,
    pub clock: &'a dyn Clock,
    pub options: &'a SyncOptions,
}

const LEASE_KIND: &str = "contacts";

impl ContactSync<'_> {
    /// One contact run for `users` (active ones only): the feed is read once, then users run
    /// concurrently. Fails as a whole only when the feed can't be read.
    pub async fn run(
        &self,
        ln: &dyn LnGateway,
        mailbox: &dyn Mailbox,
        users: &[SyncUser],
        holder: &str,
    ) -> Result<Vec<UserRun>, SyncError> {
        // R4: the mailbox is the user's e-mail in LN; without one there is nothing to address.
        let (active, mut runs) = super::addressable_users(users);
        if active.is_empty() {
            return Ok(runs);
        }
        let mut from: Option<LnWatermark> = None;
        for user in &active {
            let w = self.watermark(&user.user).await?.0;
            from = Some(from.map_or(w, |f| f.min(w)));
        }
        let feed = ContactFeed::read(ln, from.unwrap_or_default()).await?;
        let synced = futures::stream::iter(active)
            .map(|user| self.run_user(ln, mailbox, user, &feed, holder))
            .buffer_unordered(self.options.user_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        runs.extend(synced);
        Ok(runs)
    }

    /// One user's run under the user's lease, recorded for the console (R39).
    pub async fn run_user(
        &self,
        ln: &dyn LnGateway,
        mailbox: &dyn Mailbox,
        user: &SyncUser,
        feed: &ContactFeed,
        holder: &str,
    ) -> UserRun {
        let scope = super::RunScope {
            env: self.env,
            store: self.store,
            clock: self.clock,
            lease_ttl: self.options.lease_ttl,
            lease_kind: LEASE_KIND,
            record_kind: Some(LinkKind::Contact),
        };
        scope
            .run(user, holder, || async {
                let mut counts = RunCounts::default();
                let result = self.sync_user(ln, mailbox, user, feed, &mut counts).await;
                (counts, result)
            })
            .await
    }

    async fn watermark(&self, user: &UserId) -> Result<(LnWatermark, u64), SyncError> {
        match self
            .store
            .cursor(self.env, user, CursorKind::LnContacts)
            .await?
        {
            None => Ok((LnWatermark::default(), 0)),
            Some(c) => {
                let w = serde_json::from_str(&c.value).map_err(|e| {
                    crate::error::StoreError::Corrupt {
                        message: format!("contact watermark of {user}: {e}"),
                    }
                })?;
                Ok((w, c.revision))
            }
        }
    }

    async fn sync_user(
        &self,
        ln: &dyn LnGateway,
        mailbox: &dyn Mailbox,
        user: &SyncUser,
        feed: &ContactFeed,
        counts: &mut RunCounts,
    ) -> Result<(), SyncError> {
        let mut state = match self.store.user_state(self.env, &user.user).await? {
            Some(s) if s.mailbox == user.email => s,
            // A new user, or one whose mailbox changed: its folder must be found again.
            _ => UserState::new(self.env.clone(), user.user.clone(), user.email.clone()),
        };
        // Read again now that the lease is held: the read in `run` only chose where the feed
        // starts, and another run may have moved this cursor before we got the lease.
        let (watermark, revision) = self.watermark(&user.user).await?;
        let (changes, deletions) = feed.for_user(watermark);

        let mut keys: Vec<LnKey> = changes.iter().map(|c| LnKey::from(&c.contact)).collect();
        keys.extend(deletions.iter().map(|d| LnKey::new(d.key.clone())));
        keys.sort();
        keys.dedup();
        let links: HashMap<LnKey, Link> = if keys.is_empty() {
            HashMap::new()
        } else {
            self.store
                .links(self.env, &user.user, LinkKind::Contact, &keys)
                .await?
                .into_iter()
                .map(|l| (l.ln_key.clone(), l))
                .collect()
        };
        let may_delete = !deletions.is_empty() || changes.iter().any(|c| !c.qualifies());
        let linked_total = if may_delete {
            self.store
                .link_count(self.env, &user.user, LinkKind::Contact)
                .await?
        } else {
            0
        };
        let plan = plan_contacts(&ContactPlanInput {
            env: self.env,
            changes: &changes,
            deletions: &deletions,
            links: &links,
            linked_total,
            gate: self.options.deletion_gate,
            release_held: state.release_held_deletions,
        });
        let held = !plan.held_deletes.is_empty();
        let applied_deletions = !plan.deletes.is_empty();

        let mut exec = Executor {
            sync: self,
            mailbox,
            user,
            state: &mut state,
            counts,
            retry_later: false,
            succeeded: Vec::new(),
            fresh_folder: false,
        };
        exec.apply(plan).await?;
        if self.options.repair {
            exec.repair(ln).await?;
        }
        let retry_later = exec.retry_later;
        let succeeded = std::mem::take(&mut exec.succeeded);

        if !succeeded.is_empty() {
            self.store
                .clear_problems(self.env, &user.user, LinkKind::Contact, &succeeded)
                .await?;
        }
        if applied_deletions && state.release_held_deletions {
            state.release_held_deletions = false;
            self.store.put_user_state(&state).await?;
        }

        // R35: move the watermark only when everything it covers is applied. Items that failed
        // for good are recorded as problems and retried at their next LN change; transient
        // failures keep the watermark so the next run reads them again.
        if !retry_later {
            let next = LnWatermark {
                changes: newer(watermark.changes, feed.high_water.changes),
                deletions: if held {
                    watermark.deletions
                } else {
                    newer(watermark.deletions, feed.high_water.deletions)
                },
            };
            if next != watermark || revision == 0 {
                let value = serde_json::to_string(&next).map_err(|e| {
                    crate::error::StoreError::Corrupt {
                        message: format!("contact watermark of {}: {e}", user.user),
                    }
                })?;
                self.store
                    .put_cursor(&Cursor {
                        env: self.env.clone(),
                        user: user.user.clone(),
                        kind: CursorKind::LnContacts,
                        value,
                        revision,
                    })
                    .await?;
            }
        }
        Ok(())
    }
}

/// Executes one user's plan. Keeps the folder id lazily: an idle run never asks Exchange.
struct Executor<'a, 'b> {
    sync: &'a ContactSync<'a>,
    mailbox: &'a dyn Mailbox,
    user: &'a SyncUser,
    state: &'b mut UserState,
    counts: &'b mut RunCounts,
    /// Some item failed transiently: keep the watermark so the next run retries it.
    retry_later: bool,
    /// Keys written successfully, whose old problems are cleared.
    succeeded: Vec<LnKey>,
    /// This run created the contact folder, so it holds nothing of ours yet.
    fresh_folder: bool,
}

impl Executor<'_, '_> {
    fn env(&self) -> &EnvironmentId {
        self.sync.env
    }

    fn mailbox_address(&self) -> &MailboxAddress {
        &self.user.email
    }

    async fn folder(&mut self) -> Result<FolderId, SyncError> {
        if let Some(folder) = &self.state.contact_folder {
            return Ok(folder.clone());
        }
        let folder = self
            .mailbox
            .ensure_contact_folder(self.mailbox_address())
            .await?;
        self.fresh_folder = folder.created;
        self.state.contact_folder = Some(folder.id.clone());
        self.sync.store.put_user_state(self.state).await?;
        Ok(folder.id)
    }

    /// Our stamped items among `stamps`. No request when this run created the folder: it is empty.
    async fn find_stamped(&mut self, stamps: &[CrmStamp]) -> Result<Vec<StampedItem>, SyncError> {
        let folder = self.folder().await?;
        if self.fresh_folder {
            return Ok(Vec::new());
        }
        match self
            .mailbox
            .find_stamped_contacts(self.mailbox_address(), &folder, stamps)
            .await
        {
            Err(MailboxError::FolderNotFound { .. }) => {
                // Deleted in Outlook: find or create it again.
                self.forget_folder().await?;
                let folder = self.folder().await?;
                if self.fresh_folder {
                    return Ok(Vec::new());
                }
                Ok(self
                    .mailbox
                    .find_stamped_contacts(self.mailbox_address(), &folder, stamps)
                    .await?)
            }
            other => Ok(other?),
        }
    }

    /// The folder was deleted in Outlook: forget it so `folder()` finds or creates it again.
    async fn forget_folder(&mut self) -> Result<(), SyncError> {
        self.state.contact_folder = None;
        self.sync.store.put_user_state(self.state).await?;
        Ok(())
    }

    fn link(&self, planned: &PlannedContact, item: &ItemRef) -> Link {
        Link {
            env: self.env().clone(),
            user: self.user.user.clone(),
            kind: LinkKind::Contact,
            ln_key: LnKey::from(&planned.code),
            exchange_id: item.id.clone(),
            exchange_version: item.version.clone(),
            ln_version: Some(planned.ln_version.clone()),
            ln_modified: Some(planned.ln_modified),
            ln_hash: planned.hash.clone(),
            exchange_hash: planned.hash.clone(),
            ical_uid: None,
            origin: Origin::Ln,
            organizer: None,
            last_error: None,
            updated_at: self.sync.clock.now(),
            event: None,
        }
    }

    async fn problem(
        &mut self,
        key: LnKey,
        problem: ProblemKind,
        error: &ItemError,
    ) -> Result<(), SyncError> {
        if matches!(
            error.class(),
            ErrorClass::Transient | ErrorClass::Throttled(_)
        ) {
            self.retry_later = true;
        }
        self.counts.errors += 1;
        self.record(key, problem, error.to_string()).await
    }

    async fn record(
        &mut self,
        key: LnKey,
        problem: ProblemKind,
        detail: String,
    ) -> Result<(), SyncError> {
        let problem = ItemProblem {
            env: self.env().clone(),
            user: self.user.user.clone(),
            kind: LinkKind::Contact,
            ln_key: key,
            problem,
            detail,
            at: self.sync.clock.now(),
        };
        self.sync.store.put_problem(&problem).await?;
        Ok(())
    }

    async fn apply(&mut self, plan: ContactPlan) -> Result<(), SyncError> {
        self.counts.skipped += plan.skipped;
        if !plan.relinks.is_empty() {
            self.sync.store.put_links(&plan.relinks).await?;
        }
        if !plan.updates.is_empty() {
            self.update(plan.updates).await?;
        }
        if !plan.creates.is_empty() {
            self.create(plan.creates).await?;
        }
        if !plan.deletes.is_empty() {
            self.delete(plan.deletes).await?;
        }
        if !plan.orphan_checks.is_empty() {
            self.remove_orphans(plan.orphan_checks).await?;
        }
        for link in plan.held_deletes {
            self.counts.held += 1;
            let detail =
                "deletion held by the safety gate; release it with `lnsync release-deletions`";
            self.record(
                link.ln_key.clone(),
                ProblemKind::HeldDeletion,
                detail.to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    /// Creates are idempotent (R10): items already carrying the stamp (a run that crashed after
    /// its write) are adopted and overwritten instead of duplicated.
    async fn create(&mut self, planned: Vec<PlannedContact>) -> Result<(), SyncError> {
        let (adopted, fresh) = self.adopt_stamped(planned).await?;
        if !adopted.is_empty() {
            self.update(adopted).await?;
        }
        self.create_fresh(fresh).await
    }

    /// Splits `planned` into items the folder already holds under our stamp (with their links)
    /// and items to create. Extra copies of one stamp are removed.
    async fn adopt_stamped(
        &mut self,
        planned: Vec<PlannedContact>,
    ) -> Result<(Vec<(Link, PlannedContact)>, Vec<PlannedContact>), SyncError> {
        let stamps: Vec<CrmStamp> = planned
            .iter()
            .map(|p| CrmStamp::contact(self.env(), &p.code))
            .collect();
        let found = self.find_stamped(&stamps).await?;
        let mut existing: HashMap<CrmStamp, Vec<ItemRef>> = HashMap::new();
        for item in found {
            existing.entry(item.stamp).or_default().push(item.item);
        }
        let mut adopted = Vec::new();
        let mut duplicates = Vec::new();
        let mut fresh = Vec::new();
        for p in planned {
            let stamp = CrmStamp::contact(self.env(), &p.code);
            match existing.remove(&stamp) {
                Some(mut items) if !items.is_empty() => {
                    let keep = items.remove(0);
                    duplicates.extend(items.into_iter().map(|i| i.id));
                    adopted.push((self.link(&p, &keep), p));
                }
                _ => fresh.push(p),
            }
        }
        if !duplicates.is_empty() {
            // Only items carrying our stamp get here (R11), so removing extras is safe.
            let folder = self.folder().await?;
            self.mailbox
                .delete_items(self.mailbox_address(), &folder, &duplicates)
                .await?;
        }
        Ok((adopted, fresh))
    }

    /// Create intents whose key no longer qualifies: remove what a crashed create left behind.
    async fn remove_orphans(&mut self, intents: Vec<Link>) -> Result<(), SyncError> {
        let stamps: Vec<CrmStamp> = intents
            .iter()
            .map(|l| CrmStamp::contact(self.env(), &ContactCode::new(l.ln_key.as_str())))
            .collect();
        let found = self.find_stamped(&stamps).await?;
        if !found.is_empty() {
            let ids: Vec<ExchangeItemId> = found.into_iter().map(|f| f.item.id).collect();
            let folder = self.folder().await?;
            for outcome in self
                .mailbox
                .delete_items(self.mailbox_address(), &folder, &ids)
                .await?
            {
                match outcome {
                    Ok(()) | Err(ItemError::NotFound(_)) => self.counts.deleted += 1,
                    Err(e) => {
                        // Keep the intents so the next run tries again.
                        self.retry_later = true;
                        self.counts.errors += 1;
                        let key = intents
                            .first()
                            .map(|l| l.ln_key.clone())
                            .unwrap_or_else(|| LnKey::new(""));
                        return self
                            .record(key, ProblemKind::WriteFailed, e.to_string())
                            .await;
                    }
                }
            }
        }
        let keys: Vec<LnKey> = intents.into_iter().map(|l| l.ln_key).collect();
        self.sync
            .store
            .delete_links(self.env(), &self.user.user, LinkKind::Contact, &keys)
            .await?;
        Ok(())
    }

    fn intent(&self, planned: &PlannedContact) -> Link {
        let mut link = self.link(
            planned,
            &ItemRef {
                id: ExchangeItemId::new(""),
                version: ExchangeVersion::new(""),
            },
        );
        link.updated_at = self.sync.clock.now();
        link
    }

    async fn create_fresh(&mut self, planned: Vec<PlannedContact>) -> Result<(), SyncError> {
        let batch = self.mailbox.max_batch().max(1);
        for chunk in planned.chunks(batch) {
            // Save the intents first: if we die after Exchange wrote, the next run will know to
            // look for the stamps (exchange.md §2.8).
            let intents: Vec<Link> = chunk.iter().map(|p| self.intent(p)).collect();
            self.sync.store.put_links(&intents).await?;
            let new: Vec<NewContact> = chunk
                .iter()
                .map(|p| NewContact {
                    stamp: CrmStamp::contact(self.env(), &p.code),
                    fields: p.fields.clone(),
                })
                .collect();
            let mut folder = self.folder().await?;
            let outcomes = match self
                .mailbox
                .create_contacts(self.mailbox_address(), &folder, &new)
                .await
            {
                Err(MailboxError::FolderNotFound { .. }) => {
                    self.forget_folder().await?;
                    folder = self.folder().await?;
                    self.mailbox
                        .create_contacts(self.mailbox_address(), &folder, &new)
                        .await?
                }
                other => other?,
            };
            let mut links = Vec::new();
            let mut failed = Vec::new();
            for (p, outcome) in chunk.iter().zip(outcomes) {
                match outcome {
                    Ok(item) => links.push(self.link(p, &item)),
                    Err(e) => failed.push((LnKey::from(&p.code), e)),
                }
            }
            // R34: the links of this write are saved before anything else happens.
            if !links.is_empty() {
                self.sync.store.put_links(&links).await?;
            }
            self.counts.created += u32::try_from(links.len()).unwrap_or(u32::MAX);
            self.succeeded.extend(links.into_iter().map(|l| l.ln_key));
            for (key, e) in failed {
                self.problem(key, ProblemKind::WriteFailed, &e).await?;
            }
        }
        Ok(())
    }

    /// Overwrites contacts (LN wins, R12). A stale version (edited in Outlook) is re-read and the
    /// write retried once; an item deleted in Outlook is recreated.
    ///
    /// An item Exchange no longer knows by its id may still be in the folder under another
    /// one (the mailbox moved, or the environment switched from EWS to Graph, whose ids
    /// differ): it is looked up by its stamp before it is created again (R10).
    async fn update(&mut self, planned: Vec<(Link, PlannedContact)>) -> Result<(), SyncError> {
        let missing = self.overwrite(planned).await?;
        if missing.is_empty() {
            return Ok(());
        }
        let (adopted, mut fresh) = self.adopt_stamped(missing).await?;
        // Found just now: gone again means deleted in the meantime, so create it.
        fresh.extend(self.overwrite(adopted).await?);
        self.create_fresh(fresh).await
    }

    /// One round of overwrites (with one conflict retry); answers the items Exchange did not
    /// find by their id.
    async fn overwrite(
        &mut self,
        planned: Vec<(Link, PlannedContact)>,
    ) -> Result<Vec<PlannedContact>, SyncError> {
        if planned.is_empty() {
            return Ok(Vec::new());
        }
        let folder = self.folder().await?;
        let mut pending = planned;
        let mut recreate = Vec::new();
        for attempt in 0..2 {
            let mut conflicts = Vec::new();
            let batch = self.mailbox.max_batch().max(1);
            for chunk in pending.chunks(batch) {
                // Mark what Exchange holds as unknown until the write's result is saved.
                let dirty: Vec<Link> = chunk
                    .iter()
                    .map(|(link, _)| Link {
                        exchange_hash: ContentHash::unknown(),
                        ..link.clone()
                    })
                    .collect();
                self.sync.store.put_links(&dirty).await?;
                let updates: Vec<ContactUpdate> = chunk
                    .iter()
                    .map(|(link, p)| ContactUpdate {
                        item: ItemRef {
                            id: link.exchange_id.clone(),
                            version: link.exchange_version.clone(),
                        },
                        stamp: CrmStamp::contact(self.env(), &p.code),
                        fields: p.fields.clone(),
                    })
                    .collect();
                let outcomes = self
                    .mailbox
                    .update_contacts(self.mailbox_address(), &folder, &updates)
                    .await?;
                let mut links = Vec::new();
                for ((link, p), outcome) in chunk.iter().zip(outcomes) {
                    match outcome {
                        Ok(item) => links.push(self.link(p, &item)),
                        Err(ItemError::NotFound(_)) => recreate.push(p.clone()),
                        Err(ItemError::Conflict(_)) if attempt == 0 => {
                            conflicts.push((link.clone(), p.clone()))
                        }
                        Err(e) => {
                            self.problem(LnKey::from(&p.code), ProblemKind::WriteFailed, &e)
                                .await?
                        }
                    }
                }
                if !links.is_empty() {
                    self.sync.store.put_links(&links).await?;
                }
                self.counts.updated += u32::try_from(links.len()).unwrap_or(u32::MAX);
                self.succeeded.extend(links.into_iter().map(|l| l.ln_key));
            }
            if conflicts.is_empty() {
                break;
            }
            let ids: Vec<ExchangeItemId> = conflicts
                .iter()
                .map(|(l, _)| l.exchange_id.clone())
                .collect();
            let current = self
                .mailbox
                .current_versions(self.mailbox_address(), &folder, &ids)
                .await?;
            pending = Vec::new();
            for ((mut link, p), outcome) in conflicts.into_iter().zip(current) {
                match outcome {
                    Ok(item) => {
                        link.exchange_version = item.version;
                        pending.push((link, p));
                    }
                    Err(ItemError::NotFound(_)) => recreate.push(p),
                    Err(e) => {
                        self.problem(LnKey::from(&p.code), ProblemKind::WriteFailed, &e)
                            .await?
                    }
                }
            }
        }
        Ok(recreate)
    }

    async fn delete(&mut self, links: Vec<Link>) -> Result<(), SyncError> {
        if links.is_empty() {
            return Ok(());
        }
        let folder = self.folder().await?;
        let batch = self.mailbox.max_batch().max(1);
        for chunk in links.chunks(batch) {
            let ids: Vec<ExchangeItemId> = chunk.iter().map(|l| l.exchange_id.clone()).collect();
            let outcomes = self
                .mailbox
                .delete_items(self.mailbox_address(), &folder, &ids)
                .await?;
            let mut gone = Vec::new();
            let mut unknown = Vec::new();
            for (link, outcome) in chunk.iter().zip(outcomes) {
                match outcome {
                    Ok(()) => gone.push(link.ln_key.clone()),
                    Err(ItemError::NotFound(_)) => unknown.push(link.ln_key.clone()),
                    Err(e) => {
                        self.problem(link.ln_key.clone(), ProblemKind::WriteFailed, &e)
                            .await?
                    }
                }
            }
            if !unknown.is_empty() {
                // Not found by id: deleted in Outlook (the goal is reached), or kept under
                // another id (a moved mailbox, an EWS → Graph switch): delete it by its stamp.
                let stamps: Vec<CrmStamp> = unknown
                    .iter()
                    .map(|k| CrmStamp::contact(self.env(), &ContactCode::new(k.as_str())))
                    .collect();
                let found = self.find_stamped(&stamps).await?;
                let ids: Vec<ExchangeItemId> = found.iter().map(|f| f.item.id.clone()).collect();
                let outcomes = if ids.is_empty() {
                    Vec::new()
                } else {
                    self.mailbox
                        .delete_items(self.mailbox_address(), &folder, &ids)
                        .await?
                };
                let mut kept = HashSet::new();
                for (f, outcome) in found.iter().zip(outcomes) {
                    if let Err(e) = outcome
                        && !matches!(e, ItemError::NotFound(_))
                        && let Some(code) = f.stamp.contact_code(self.env())
                    {
                        let key = LnKey::from(&code);
                        self.problem(key.clone(), ProblemKind::WriteFailed, &e)
                            .await?;
                        kept.insert(key);
                    }
                }
                gone.extend(unknown.into_iter().filter(|k| !kept.contains(k)));
            }
            if !gone.is_empty() {
                self.sync
                    .store
                    .delete_links(self.env(), &self.user.user, LinkKind::Contact, &gone)
                    .await?;
            }
            self.counts.deleted += u32::try_from(gone.len()).unwrap_or(u32::MAX);
            self.succeeded.extend(gone);
        }
        Ok(())
    }

    /// Repair mode (R12): reads the folder's changes since the last repair and restores LN
    /// values on every stamped contact edited or deleted in Outlook. Our own writes are
    /// recognised by the version their link recorded and cause nothing.
    async fn repair(&mut self, ln: &dyn LnGateway) -> Result<(), SyncError> {
        let folder = self.folder().await?;
        let store = self.sync.store;
        let env = self.env().clone();
        let user = self.user.user.clone();
        let stored = store
            .cursor(&env, &user, CursorKind::ExchangeContacts)
            .await?;
        let mut revision = stored.as_ref().map_or(0, |c| c.revision);
        let mut cursor = stored.map(|c| FolderCursor(c.value));
        loop {
            let page = match self
                .mailbox
                .sync_contact_folder(self.mailbox_address(), &folder, cursor.as_ref())
                .await
            {
                // R38: an expired cursor means a full re-read; hashes and versions keep it quiet.
                Err(MailboxError::InvalidCursor { .. }) if cursor.is_some() => {
                    cursor = None;
                    continue;
                }
                other => other?,
            };
            let mut restore: Vec<(ContactCode, Option<ItemRef>)> = Vec::new();
            for change in &page.changes {
                match change {
                    FolderChange::Upsert {
                        item,
                        stamp: Some(stamp),
                    } => {
                        let Some(code) = stamp.contact_code(&env) else {
                            continue;
                        };
                        let key = LnKey::from(&code);
                        let link = store
                            .links(&env, &user, LinkKind::Contact, std::slice::from_ref(&key))
                            .await?;
                        if let Some(link) = link.first()
                            && link.exchange_version != item.version
                        {
                            restore.push((code, Some(item.clone())));
                        }
                    }
                    FolderChange::Upsert { stamp: None, .. } => {} // not ours: never touched (R11)
                    FolderChange::Deleted { id } => {
                        if let Some(link) = store
                            .link_by_exchange_id(&env, &user, LinkKind::Contact, id)
                            .await?
                        {
                            restore.push((ContactCode::new(link.ln_key.as_str()), None));
                        }
                    }
                }
            }
            if !restore.is_empty() {
                self.restore(ln, restore).await?;
            }
            revision = store
                .put_cursor(&Cursor {
                    env: env.clone(),
                    user: user.clone(),
                    kind: CursorKind::ExchangeContacts,
                    value: page.cursor.0.clone(),
                    revision,
                })
                .await?;
            cursor = Some(page.cursor);
            if !page.more {
                return Ok(());
            }
        }
    }

    async fn restore(
        &mut self,
        ln: &dyn LnGateway,
        items: Vec<(ContactCode, Option<ItemRef>)>,
    ) -> Result<(), SyncError> {
        let codes: Vec<ContactCode> = items.iter().map(|(c, _)| c.clone()).collect();
        let current: HashMap<ContactCode, Contact> = ln
            .contacts_by_key(&codes)
            .await?
            .into_iter()
            .map(|c| (c.contact.clone(), c))
            .collect();
        let mut updates = Vec::new();
        let mut creates = Vec::new();
        let mut seen = HashSet::new();
        for (code, item) in items {
            if !seen.insert(code.clone()) {
                continue;
            }
            let Some(contact) = current.get(&code).filter(|c| c.qualifies()) else {
                continue;
            };
            let fields = crate::normalize::ContactFields::from_ln(contact);
            let planned = PlannedContact {
                code: code.clone(),
                hash: fields.hash(),
                fields,
                ln_version: contact.version.clone(),
                ln_modified: contact.last_modified,
            };
            match item {
                Some(item) => updates.push((self.link(&planned, &item), planned)),
                None => creates.push(planned),
            }
        }
        if !updates.is_empty() {
            self.update(updates).await?;
        }
        if !creates.is_empty() {
            self.create_fresh(creates).await?;
        }
        Ok(())
    }
}

//! [`GraphMailbox`]: the core's [`Mailbox`] port over Microsoft Graph (Exchange Online).
//!
//! One instance serves every mailbox of an environment with one app-only token; each call names
//! the mailbox in its path (`/users/{mailbox}/…`). Bulk reads and writes go out as `$batch`es
//! of up to 20 requests, so [`Mailbox::max_batch`] is 20 and a core write call is one HTTP
//! request (`update_events` two: it reads the events' own categories first); `get_events` adds
//! one `$batch` for series instances and one for series masters when it meets them.
//! Per-item answers are mapped on their own (`classify`), throttling is handled per mailbox
//! (`client`, `gate`). The method bodies live in `contacts`, `calendar` and `subscriptions`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lnsync_core::calendar::{CalendarEvent, CreatedEvent, EventRead, EventUpdate, NewEvent};
use lnsync_core::error::MailboxError;
use lnsync_core::ids::{CrmStamp, ExchangeItemId, FolderId, MailboxAddress, SubscriptionId};
use lnsync_core::ports::{
    ContactFolder, ContactUpdate, FolderChanges, FolderCursor, ItemOutcome, ItemRef, Mailbox,
    NewContact, PushRequest, StampedItem, Subscribed, Window,
};

use super::client::{GraphClient, MAX_BATCH};
use super::{GraphConfig, GraphError};

/// The Microsoft Graph implementation of [`Mailbox`].
#[derive(Debug)]
pub struct GraphMailbox {
    pub(super) client: GraphClient,
}

impl GraphMailbox {
    /// A mailbox client for one environment; `timeout` bounds each HTTP call.
    pub fn new(config: GraphConfig, timeout: Duration) -> Result<Self, GraphError> {
        for (name, url) in [
            ("base_url", &config.base_url),
            ("login_url", &config.login_url),
        ] {
            if !matches!(url.scheme(), "https" | "http") || url.cannot_be_a_base() {
                return Err(GraphError::Config(format!(
                    "{name} {url} is not an HTTP(S) URL"
                )));
            }
        }
        if config.tenant.trim().is_empty() || config.client_id.trim().is_empty() {
            return Err(GraphError::Config(
                "the Azure tenant and the client id must be set".to_owned(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .build()
            .map_err(GraphError::Http)?;
        Ok(Self {
            client: GraphClient::new(config, http),
        })
    }

    pub fn config(&self) -> &GraphConfig {
        &self.client.config
    }

    pub(super) fn default_back_off(&self) -> Duration {
        self.client.config.default_back_off
    }
}

/// An item's version as Graph names it in `If-Match`: the weak etag of its changeKey. Versions
/// are changeKeys, the same strings EWS uses, so links survive a backend switch.
pub(super) fn etag(version: &str) -> Option<String> {
    let v = version.trim();
    if v.is_empty() {
        None
    } else if v.starts_with("W/\"") || v.starts_with('"') {
        Some(v.to_owned())
    } else {
        Some(format!("W/\"{v}\""))
    }
}

/// The changeKey of an item answer: the `changeKey` property, else the one inside its etag.
pub(super) fn change_key(change_key: Option<&str>, etag: Option<&str>) -> String {
    if let Some(ck) = change_key.filter(|c| !c.is_empty()) {
        return ck.to_owned();
    }
    etag.map(|e| {
        e.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_owned()
    })
    .unwrap_or_default()
}

#[async_trait]
impl Mailbox for GraphMailbox {
    async fn ensure_contact_folder(
        &self,
        mailbox: &MailboxAddress,
    ) -> Result<ContactFolder, MailboxError> {
        self.ensure_contact_folder_impl(mailbox).await
    }

    async fn find_stamped_contacts(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        stamps: &[CrmStamp],
    ) -> Result<Vec<StampedItem>, MailboxError> {
        self.find_stamped_contacts_impl(mailbox, folder, stamps)
            .await
    }

    async fn create_contacts(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        contacts: &[NewContact],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        self.create_contacts_impl(mailbox, folder, contacts).await
    }

    async fn update_contacts(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        updates: &[ContactUpdate],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        self.update_contacts_impl(mailbox, folder, updates).await
    }

    async fn delete_items(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        ids: &[ExchangeItemId],
    ) -> Result<Vec<ItemOutcome<()>>, MailboxError> {
        self.delete_contacts_impl(mailbox, folder, ids).await
    }

    async fn current_versions(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        ids: &[ExchangeItemId],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        self.current_versions_impl(mailbox, folder, ids).await
    }

    async fn sync_contact_folder(
        &self,
        mailbox: &MailboxAddress,
        folder: &FolderId,
        cursor: Option<&FolderCursor>,
    ) -> Result<FolderChanges, MailboxError> {
        self.sync_contact_folder_impl(mailbox, folder, cursor).await
    }

    /// One `$batch`.
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    async fn calendar_view(
        &self,
        mailbox: &MailboxAddress,
        window: Window,
    ) -> Result<Vec<CalendarEvent>, MailboxError> {
        self.calendar_view_impl(mailbox, window).await
    }

    async fn sync_calendar(
        &self,
        mailbox: &MailboxAddress,
        cursor: Option<&FolderCursor>,
        window: Window,
    ) -> Result<FolderChanges, MailboxError> {
        self.sync_calendar_impl(mailbox, cursor, window).await
    }

    async fn get_events(
        &self,
        mailbox: &MailboxAddress,
        ids: &[ExchangeItemId],
        window: Window,
    ) -> Result<Vec<ItemOutcome<EventRead>>, MailboxError> {
        self.get_events_impl(mailbox, ids, window).await
    }

    async fn find_stamped_events(
        &self,
        mailbox: &MailboxAddress,
        stamps: &[CrmStamp],
    ) -> Result<Vec<StampedItem>, MailboxError> {
        self.find_stamped_events_impl(mailbox, stamps).await
    }

    async fn create_events(
        &self,
        mailbox: &MailboxAddress,
        events: &[NewEvent],
    ) -> Result<Vec<ItemOutcome<CreatedEvent>>, MailboxError> {
        self.create_events_impl(mailbox, events).await
    }

    async fn update_events(
        &self,
        mailbox: &MailboxAddress,
        updates: &[EventUpdate],
    ) -> Result<Vec<ItemOutcome<ItemRef>>, MailboxError> {
        self.update_events_impl(mailbox, updates).await
    }

    async fn cancel_events(
        &self,
        mailbox: &MailboxAddress,
        ids: &[ExchangeItemId],
    ) -> Result<Vec<ItemOutcome<()>>, MailboxError> {
        self.cancel_events_impl(mailbox, ids).await
    }

    async fn subscribe_calendar(
        &self,
        mailbox: &MailboxAddress,
        request: &PushRequest,
    ) -> Result<Subscribed, MailboxError> {
        self.subscribe_calendar_impl(mailbox, request).await
    }

    async fn renew_subscription(
        &self,
        mailbox: &MailboxAddress,
        id: &SubscriptionId,
        expires_at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, MailboxError> {
        self.renew_subscription_impl(mailbox, id, expires_at).await
    }

    async fn unsubscribe(
        &self,
        mailbox: &MailboxAddress,
        id: &SubscriptionId,
    ) -> Result<(), MailboxError> {
        self.unsubscribe_impl(mailbox, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lnsync_core::secret::Secret;

    #[test]
    fn versions_are_change_keys_sent_as_weak_etags() {
        assert_eq!(etag("CQAAABYA").as_deref(), Some("W/\"CQAAABYA\""));
        assert_eq!(etag("W/\"CQ\"").as_deref(), Some("W/\"CQ\""));
        assert_eq!(etag(" "), None);
        assert_eq!(change_key(Some("CK"), Some("W/\"other\"")), "CK");
        assert_eq!(change_key(None, Some("W/\"CQAAABYA\"")), "CQAAABYA");
        assert_eq!(change_key(Some(""), None), "");
    }

    #[test]
    fn construction_checks_the_settings() {
        let config = GraphConfig::new("contoso", "lnsync", Secret::new("s"));
        assert!(GraphMailbox::new(config.clone(), Duration::from_secs(5)).is_ok());
        let mut bad = config.clone();
        bad.base_url = url::Url::parse("mailto:x@y").expect("valid URL");
        assert!(matches!(
            GraphMailbox::new(bad, Duration::from_secs(5)),
            Err(GraphError::Config(_))
        ));
        let mut no_tenant = config;
        no_tenant.tenant = " ".into();
        assert!(GraphMailbox::new(no_tenant, Duration::from_secs(5)).is_err());
    }
}

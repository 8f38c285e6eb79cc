//! `SimHandle` push-notification controls: subscriptions as the server sees them, dropping
//! one silently (the server "stops calling"), expiring watermarks, the push time scale, and
//! the outgoing notifications for assertions.

use std::time::Duration;

use crate::config::PushConfig;
use crate::error::SimError;
use crate::events::MailboxEvent;
use crate::log::RequestRecord;
use crate::push::SubscriptionInfo;
use crate::sim::SimHandle;
use crate::store::Store;

impl SimHandle {
    /// Every push subscription made since the last reset, oldest first (alive or not).
    pub fn subscriptions(&self) -> Vec<SubscriptionInfo> {
        self.lock().push.list()
    }

    pub fn subscription(&self, id: &str) -> Option<SubscriptionInfo> {
        self.lock().push.subs.get(id).map(|s| s.info())
    }

    /// Ends a subscription without telling the subscriber: nothing more is sent to it, as
    /// when Exchange loses a subscription (CAS restart, retries exhausted). False if it was
    /// unknown or already ended.
    pub fn drop_subscription(&self, id: &str) -> bool {
        let mut st = self.lock();
        let at = st.store.seq.now();
        st.push
            .drop_one(id, at, "dropped through the simulator's admin API")
    }

    /// Invalidates every watermark issued so far for one mailbox (or all): a Subscribe that
    /// presents one gets ErrorInvalidWatermark, as after Exchange's ~30 days. Subscriptions
    /// keep running. Returns how many mailboxes were affected.
    pub fn expire_watermarks(&self, mailbox: Option<&str>) -> usize {
        let mut st = self.lock();
        let key = mailbox.map(Store::key);
        let mut n = 0;
        for (k, mb) in st.store.mailboxes.iter_mut() {
            if key.as_ref().is_none_or(|m| m == k) {
                mb.events.expire();
                n += 1;
            }
        }
        n
    }

    /// The mailbox's current watermark (what a Subscribe without one would start from).
    pub fn current_watermark(&self, mailbox: &str) -> Result<String, SimError> {
        let st = self.lock();
        let mb = st.store.mailbox(mailbox)?;
        Ok(mb.events.watermark_at(mb.events.position()))
    }

    /// The mailbox's retained event table, oldest first (what notifications are made of).
    pub fn mailbox_events(&self, mailbox: &str) -> Result<Vec<MailboxEvent>, SimError> {
        let st = self.lock();
        let mb = st.store.mailbox(mailbox)?;
        Ok(mb.events.after(0).cloned().collect())
    }

    pub fn push_config(&self) -> PushConfig {
        self.lock().config.push.clone()
    }

    /// Changes push settings; running delivery tasks re-plan with them at once.
    pub fn update_push_config(&self, f: impl FnOnce(&mut PushConfig)) {
        self.update_config(|c| f(&mut c.push));
    }

    /// The time scale: the length of one StatusFrequency minute and the first retry gap.
    pub fn set_push_time_scale(&self, minute: Duration, retry_base: Duration) {
        let to_ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        self.update_push_config(|c| {
            c.minute_ms = to_ms(minute);
            c.retry_base_ms = to_ms(retry_base);
        });
    }

    /// Outgoing SendNotification attempts (retries included), in order.
    pub fn notifications(&self) -> Vec<RequestRecord> {
        let mut v: Vec<RequestRecord> = self
            .lock()
            .log
            .iter()
            .filter(|r| !r.is_incoming() && r.protocol == crate::log::Protocol::Ews)
            .cloned()
            .collect();
        v.sort_by_key(|r| r.seq);
        v
    }

    /// Outgoing attempts for one subscription.
    pub fn notifications_for(&self, subscription_id: &str) -> Vec<RequestRecord> {
        self.notifications()
            .into_iter()
            .filter(|r| {
                r.push
                    .as_ref()
                    .is_some_and(|p| p.subscription_id == subscription_id)
            })
            .collect()
    }

    pub fn count_notifications(&self) -> usize {
        // EWS SendNotifications only: Graph's outgoing calls are counted by `graph_outgoing`.
        self.lock()
            .log
            .iter()
            .filter(|r| !r.is_incoming() && r.protocol == crate::log::Protocol::Ews)
            .count()
    }

    /// Waits until at least `count` notification attempts were made; false on timeout.
    pub async fn wait_for_notifications(&self, count: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.count_notifications() >= count {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Ends every subscription (the simulator stops or resets).
    pub(crate) fn stop_push(&self, reason: &str) {
        let mut st = self.lock();
        let at = st.store.seq.now();
        st.push.stop_all(at, reason);
    }
}

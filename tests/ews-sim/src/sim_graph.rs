//! `SimHandle` Graph change-notification controls: subscriptions as the service sees them,
//! lifecycle events on demand (`reauthorizationRequired`, `subscriptionRemoved`, `missed`),
//! dropping or expiring a subscription, pausing delivery for a mailbox, the time scale, and
//! the outgoing Graph POSTs (notifications, lifecycle, validation) for assertions.

use std::time::Duration;

use crate::config::GraphPushConfig;
use crate::graph::delivery::{GraphSubscriptionInfo, LifecycleEvent};
use crate::log::{Protocol, RequestRecord};
use crate::sim::SimHandle;
use crate::store::Store;

impl SimHandle {
    /// The Graph subscriptions on one mailbox made since the last reset, oldest first,
    /// active or not (`active`, `removed`).
    pub fn graph_subscriptions(&self, mailbox: &str) -> Vec<GraphSubscriptionInfo> {
        let key = Store::key(mailbox);
        self.lock()
            .graph_push
            .list()
            .into_iter()
            .filter(|s| Store::key(&s.mailbox) == key)
            .collect()
    }

    /// Every Graph subscription made since the last reset, oldest first.
    pub fn all_graph_subscriptions(&self) -> Vec<GraphSubscriptionInfo> {
        self.lock().graph_push.list()
    }

    pub fn graph_subscription(&self, id: &str) -> Option<GraphSubscriptionInfo> {
        self.lock().graph_push.subs.get(id).map(|s| s.info())
    }

    /// Sends a lifecycle notification for an active subscription, as Graph does on its own:
    /// - `reauthorizationRequired`: notifications keep flowing for
    ///   `reauthorization_grace_minutes`, then changes are lost until the app calls
    ///   `/reauthorize` or renews;
    /// - `subscriptionRemoved`: the subscription is removed too (404 from then on);
    /// - `missed`: nothing else changes.
    ///
    /// Returns false when the subscription is unknown or no longer active, or has no
    /// `lifecycleNotificationUrl` (a `subscriptionRemoved` still removes it then).
    pub fn graph_lifecycle(&self, subscription_id: &str, event: LifecycleEvent) -> bool {
        let mut st = self.lock();
        let at = st.store.seq.now_precise();
        let Some(sub) = st.graph_push.active_mut(subscription_id) else {
            return false;
        };
        match event {
            LifecycleEvent::SubscriptionRemoved => {
                let has_url = sub.lifecycle_url.is_some();
                sub.remove(at, "removed by the service (subscriptionRemoved)", true);
                has_url
            }
            LifecycleEvent::ReauthorizationRequired => {
                sub.require_reauthorization(at);
                sub.queue_lifecycle(event, tokio::time::Instant::now())
            }
            LifecycleEvent::Missed => sub.queue_lifecycle(event, tokio::time::Instant::now()),
        }
    }

    /// Removes a subscription without telling anyone (no lifecycle notification), as when
    /// the service loses it. False if unknown or not active.
    pub fn graph_drop_subscription(&self, id: &str) -> bool {
        let mut st = self.lock();
        let at = st.store.seq.now_precise();
        st.graph_push
            .active_mut(id)
            .is_some_and(|s| s.remove(at, "dropped through the simulator", false))
    }

    /// Expires a subscription now, as if its `expirationDateTime` had passed: removed, and
    /// `subscriptionRemoved` goes to its `lifecycleNotificationUrl` if it has one. False if
    /// unknown or not active.
    pub fn graph_expire_subscription(&self, id: &str) -> bool {
        let mut st = self.lock();
        let at = st.store.seq.now_precise();
        st.graph_push.active_mut(id).is_some_and(|s| {
            s.expiration = at;
            s.remove(at, "expired", true)
        })
    }

    /// Pauses (true) or resumes (false) Graph delivery for a mailbox. Changes made while
    /// paused are never delivered; on resume every active subscription on the mailbox that
    /// lost changes gets `missed` (if it has a `lifecycleNotificationUrl`). Returns how many
    /// `missed` notifications were queued.
    pub fn graph_pause_delivery(&self, mailbox: &str, paused: bool) -> usize {
        self.lock()
            .graph_push
            .set_paused(&Store::key(mailbox), paused)
    }

    pub fn graph_push_config(&self) -> GraphPushConfig {
        self.lock().config.graph_push.clone()
    }

    /// Changes Graph notification settings; delivery tasks re-plan with them at once.
    pub fn update_graph_push_config(&self, f: impl FnOnce(&mut GraphPushConfig)) {
        let mut st = self.lock();
        f(&mut st.config.graph_push);
        st.graph_push.wake_all();
    }

    /// The time scale: the length of one delivery minute (retry window, reauthorization
    /// grace) and the first retry gap.
    pub fn set_graph_time_scale(&self, minute: Duration, retry_base: Duration) {
        let to_ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        self.update_graph_push_config(|c| {
            c.minute_ms = to_ms(minute);
            c.retry_base_ms = to_ms(retry_base);
        });
    }

    /// Outgoing Graph POSTs in order: `notification`, `lifecycle` and `validation` records
    /// (retries included), each with `push` describing the attempt.
    pub fn graph_outgoing(&self) -> Vec<RequestRecord> {
        let mut v: Vec<RequestRecord> = self
            .lock()
            .log
            .iter()
            .filter(|r| !r.is_incoming() && r.protocol == Protocol::Graph)
            .cloned()
            .collect();
        v.sort_by_key(|r| r.seq);
        v
    }

    /// Outgoing Graph POSTs for one subscription.
    pub fn graph_outgoing_for(&self, subscription_id: &str) -> Vec<RequestRecord> {
        self.graph_outgoing()
            .into_iter()
            .filter(|r| {
                r.push
                    .as_ref()
                    .is_some_and(|p| p.subscription_id == subscription_id)
            })
            .collect()
    }

    /// Waits until at least `count` outgoing Graph POSTs with `operation` were made (any
    /// outcome); false on timeout.
    pub async fn wait_for_graph_outgoing(
        &self,
        operation: &str,
        count: usize,
        timeout: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let n = self
                .graph_outgoing()
                .iter()
                .filter(|r| r.operation.as_deref() == Some(operation))
                .count();
            if n >= count {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Forgets every Graph subscription (the simulator stops), ending the delivery tasks.
    pub(crate) fn stop_graph_push(&self) {
        self.lock().graph_push.stop_all();
    }
}

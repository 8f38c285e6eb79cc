//! The push half of [`EwsMailbox`] (R31–R33): a push subscription on the impersonated user's
//! calendar. The notifications it causes are read by [`super::notify`].

use lnsync_core::error::MailboxError;
use lnsync_core::ids::{MailboxAddress, SubscriptionId};
use lnsync_core::ports::{PushRequest, Subscribed};

use super::classify;
use super::codec::{CALENDAR_EVENTS, DistinguishedFolder, FolderRef, PushSubscribe};
use super::mailbox::EwsMailbox;

impl EwsMailbox {
    /// [`Mailbox::subscribe_calendar`](lnsync_core::ports::Mailbox::subscribe_calendar).
    pub(super) async fn subscribe_calendar_impl(
        &self,
        mailbox: &MailboxAddress,
        request: &PushRequest,
    ) -> Result<Subscribed, MailboxError> {
        // The calendar of the impersonated mailbox, addressed like every other calendar call:
        // the envelope's ExchangeImpersonation names the mailbox (exchange.md §2.2).
        let folders = [FolderRef::Distinguished(DistinguishedFolder::Calendar)];
        let watermark = request.watermark.as_deref().filter(|w| !w.is_empty());
        let op = PushSubscribe {
            folders: &folders,
            events: &CALENDAR_EVENTS,
            watermark,
            status_frequency_minutes: request.status_frequency_minutes,
            url: &request.url,
        };
        let message = self.call_one(mailbox, &op).await?;
        if !message.is_success() {
            let code = message.code.as_str();
            // Only a watermark we sent can be stale. Without one, the same codes are not
            // something a retry without a watermark could fix, so they stay server errors
            // instead of sending the caller round in circles.
            if watermark.is_some()
                && (classify::is_invalid_cursor(code) || classify::is_stale_subscription(code))
            {
                return Err(MailboxError::InvalidCursor {
                    mailbox: mailbox.clone(),
                });
            }
            return Err(self.message_error(mailbox, &message));
        }
        let subscription = message.subscription.ok_or_else(|| MailboxError::Protocol {
            message: "Subscribe succeeded without a SubscriptionId".to_owned(),
            source: None,
        })?;
        tracing::debug!(%mailbox, resumed = watermark.is_some(), "EWS push subscription created");
        Ok(Subscribed {
            id: SubscriptionId::new(subscription.id),
            watermark: subscription.watermark,
            // EWS push subscriptions do not expire on a date; they end when notifications go
            // unanswered or are answered with Unsubscribe.
            expires_at: None,
        })
    }
}

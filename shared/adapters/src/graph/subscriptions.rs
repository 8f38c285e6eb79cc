//! Change-notification subscriptions on a user's events (R31–R33, exchange.md §3.7): create,
//! renew (PATCH) and delete. The notifications themselves are received by the push function.

use chrono::{DateTime, Duration, Utc};
use lnsync_core::error::MailboxError;
use lnsync_core::ids::{MailboxAddress, SubscriptionId};
use lnsync_core::ports::{PushRequest, Subscribed};
use serde_json::json;

use super::classify;
use super::client::{Request, encode_segment};
use super::mailbox::GraphMailbox;
use super::model::Subscription;

/// The change types lnsync follows: every change of an event triggers a sync of it.
pub(crate) const CHANGE_TYPES: &str = "created,updated,deleted";

/// Lifetime asked for when the request names none: just under Outlook's maximum of 10,080
/// minutes, so clock skew does not make Graph refuse it.
pub(crate) const DEFAULT_LIFETIME_MINUTES: i64 = 10_070;

fn subscription_path(id: &SubscriptionId) -> String {
    format!("/subscriptions/{}", encode_segment(id.as_str()))
}

/// The body of `POST /subscriptions`.
pub(crate) fn new_subscription(
    mailbox: &MailboxAddress,
    request: &PushRequest,
    now: DateTime<Utc>,
) -> Subscription {
    Subscription {
        change_type: Some(CHANGE_TYPES.to_owned()),
        notification_url: Some(request.url.clone()),
        lifecycle_notification_url: request.lifecycle_url.clone(),
        resource: Some(format!("/users/{}/events", mailbox.as_str())),
        expiration_date_time: Some(
            request
                .expires_at
                .unwrap_or(now + Duration::minutes(DEFAULT_LIFETIME_MINUTES)),
        ),
        client_state: request.client_state.as_ref().map(|s| s.expose().to_owned()),
        ..Subscription::default()
    }
}

impl GraphMailbox {
    /// [`Mailbox::subscribe_calendar`](lnsync_core::ports::Mailbox::subscribe_calendar). Graph
    /// validates `notificationUrl` (and the lifecycle URL) before answering; a URL that does not
    /// answer the validation is a configuration problem of our push endpoint.
    pub(super) async fn subscribe_calendar_impl(
        &self,
        mailbox: &MailboxAddress,
        request: &PushRequest,
    ) -> Result<Subscribed, MailboxError> {
        let body = new_subscription(mailbox, request, Utc::now());
        let post = Request::post(
            "/subscriptions",
            serde_json::to_value(&body).unwrap_or_default(),
        );
        let answer = self.client.send(mailbox, &post).await?;
        if answer.status == 400 {
            let fault = answer.fault();
            return Err(MailboxError::Configuration {
                mailbox: mailbox.clone(),
                code: if fault.code.is_empty() {
                    "ValidationError".to_owned()
                } else {
                    fault.code
                },
                message: format!(
                    "Graph refused the subscription to notification URL {}: {}",
                    request.url, fault.message
                ),
            });
        }
        if !answer.is_success() {
            return Err(classify::call_error(
                mailbox,
                &answer,
                self.default_back_off(),
            ));
        }
        let created: Subscription = answer.parse("subscription")?;
        let id = created
            .id
            .filter(|i| !i.is_empty())
            .ok_or_else(|| MailboxError::Protocol {
                message: "Graph created a subscription without an id".to_owned(),
                source: None,
            })?;
        tracing::debug!(%mailbox, subscription = %id, "Graph subscription created");
        Ok(Subscribed {
            id: SubscriptionId::new(id),
            // Graph subscriptions cannot resume from a watermark; a pull covers any gap.
            watermark: None,
            expires_at: created.expiration_date_time.or(body.expiration_date_time),
        })
    }

    /// [`Mailbox::renew_subscription`](lnsync_core::ports::Mailbox::renew_subscription).
    pub(super) async fn renew_subscription_impl(
        &self,
        mailbox: &MailboxAddress,
        id: &SubscriptionId,
        expires_at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, MailboxError> {
        let patch = Request::patch(
            subscription_path(id),
            json!({ "expirationDateTime": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) }),
        );
        let answer = self.client.send(mailbox, &patch).await?;
        if answer.status == 404 {
            return Err(MailboxError::SubscriptionNotFound {
                mailbox: mailbox.clone(),
            });
        }
        if !answer.is_success() {
            return Err(classify::call_error(
                mailbox,
                &answer,
                self.default_back_off(),
            ));
        }
        let renewed: Subscription = answer.parse("subscription")?;
        Ok(renewed.expiration_date_time.unwrap_or(expires_at))
    }

    /// [`Mailbox::unsubscribe`](lnsync_core::ports::Mailbox::unsubscribe): a subscription Graph
    /// no longer knows is gone already, which is what was asked for.
    pub(super) async fn unsubscribe_impl(
        &self,
        mailbox: &MailboxAddress,
        id: &SubscriptionId,
    ) -> Result<(), MailboxError> {
        let answer = self
            .client
            .send(mailbox, &Request::delete(subscription_path(id)))
            .await?;
        if answer.is_success() || answer.status == 404 {
            Ok(())
        } else {
            Err(classify::call_error(
                mailbox,
                &answer,
                self.default_back_off(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn subscriptions_follow_the_users_events_with_client_state() {
        let now = Utc
            .with_ymd_and_hms(2026, 2, 1, 10, 0, 0)
            .single()
            .expect("valid instant");
        let request = PushRequest {
            url: "https://push.example/graph/prod".into(),
            status_frequency_minutes: 1,
            watermark: None,
            client_state: Some(lnsync_core::secret::Secret::new("s3cret")),
            lifecycle_url: Some("https://push.example/graph/prod/lifecycle".into()),
            expires_at: None,
        };
        let body = new_subscription(&MailboxAddress::new("alice@contoso.com"), &request, now);
        let json = serde_json::to_value(&body).expect("serializes");
        assert_eq!(json["changeType"], "created,updated,deleted");
        assert_eq!(json["resource"], "/users/alice@contoso.com/events");
        assert_eq!(json["notificationUrl"], "https://push.example/graph/prod");
        assert_eq!(
            json["lifecycleNotificationUrl"],
            "https://push.example/graph/prod/lifecycle"
        );
        assert_eq!(json["clientState"], "s3cret");
        assert_eq!(
            body.expiration_date_time,
            Some(now + Duration::minutes(10_070))
        );
        let asked = now + Duration::days(2);
        let body = new_subscription(
            &MailboxAddress::new("a@b"),
            &PushRequest {
                expires_at: Some(asked),
                ..request
            },
            now,
        );
        assert_eq!(body.expiration_date_time, Some(asked));
    }
}

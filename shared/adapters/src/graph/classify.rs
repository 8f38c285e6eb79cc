//! What a Graph error answer means for lnsync (exchange.md §3): a per-item outcome, a failure of
//! the whole mailbox call, or something the administrator must fix.

use std::time::Duration;

use lnsync_core::error::{ItemError, MailboxError};
use lnsync_core::ids::{ExchangeItemId, MailboxAddress};

use super::client::Answer;

/// An id Graph cannot read at all: typically an EWS id kept from before the environment moved
/// to Graph. For lnsync that item is not there (the stamp or key finds it again).
pub(crate) const ID_MALFORMED: &str = "ErrorInvalidIdMalformed";

/// Codes of a 404 that is about the user, not an item: the mailbox does not exist (or has no
/// Exchange Online mailbox), which no retry fixes.
fn is_missing_mailbox(code: &str) -> bool {
    matches!(
        code,
        "ErrorInvalidUser"
            | "MailboxNotEnabledForRESTAPI"
            | "MailboxNotFound"
            | "ErrorNonExistentMailbox"
            | "Request_ResourceNotFound"
    )
}

/// Whether the answer says the item (or folder) named in the request is not there.
pub(crate) fn is_not_found(answer: &Answer) -> bool {
    match answer.status {
        404 => !is_missing_mailbox(&answer.fault().code),
        400 => answer.fault().code == ID_MALFORMED,
        _ => false,
    }
}

/// Failures that no item of the call can escape: credentials, permissions, the access policy
/// or a mailbox that does not exist. `None` for item-level answers.
pub(crate) fn mailbox_error(mailbox: &MailboxAddress, answer: &Answer) -> Option<MailboxError> {
    let fault = answer.fault();
    let configuration = |message: String| MailboxError::Configuration {
        mailbox: mailbox.clone(),
        code: if fault.code.is_empty() {
            format!("HTTP {}", answer.status)
        } else {
            fault.code.clone()
        },
        message,
    };
    match answer.status {
        401 => Some(configuration(format!(
            "Graph rejected the app's token for {mailbox} even after renewing it; check the app \
             registration and its admin consent: {}",
            fault.message
        ))),
        403 => Some(configuration(format!(
            "access to mailbox {mailbox} is denied: the app lacks the application permissions \
             Calendars.ReadWrite and Contacts.ReadWrite, or an application access policy (RBAC \
             for Applications) leaves this mailbox out: {}",
            fault.message
        ))),
        404 if is_missing_mailbox(&fault.code) => Some(configuration(format!(
            "mailbox {mailbox} does not exist in the tenant or has no Exchange Online mailbox: {}",
            fault.message
        ))),
        _ => None,
    }
}

/// The outcome of one item's failed request. `id` names the item when the request did.
pub(crate) fn item_error(
    answer: &Answer,
    id: Option<&ExchangeItemId>,
    default_back_off: Duration,
) -> ItemError {
    let fault = answer.fault();
    if is_not_found(answer)
        && let Some(id) = id
    {
        return ItemError::NotFound(id.clone());
    }
    match (answer.status, id) {
        // A stale If-Match; some services say 409 with the same Exchange code.
        (412, Some(id)) => ItemError::Conflict(id.clone()),
        (409, Some(id)) if fault.code == "ErrorIrresolvableConflict" => {
            ItemError::Conflict(id.clone())
        }
        (429 | 503 | 504, _) => {
            ItemError::Throttled(answer.retry_after.unwrap_or(default_back_off))
        }
        (status, _) => ItemError::Failed {
            code: if fault.code.is_empty() {
                format!("HTTP {status}")
            } else {
                fault.code
            },
            message: fault.message,
            transient: status >= 500 || status == 408,
        },
    }
}

/// The error of a whole call (folder operations, listings, delta, subscriptions).
pub(crate) fn call_error(
    mailbox: &MailboxAddress,
    answer: &Answer,
    default_back_off: Duration,
) -> MailboxError {
    if let Some(e) = mailbox_error(mailbox, answer) {
        return e;
    }
    let fault = answer.fault();
    let code = if fault.code.is_empty() {
        format!("HTTP {}", answer.status)
    } else {
        fault.code
    };
    match answer.status {
        // A delta token the server no longer knows (R38).
        410 => MailboxError::InvalidCursor {
            mailbox: mailbox.clone(),
        },
        429 | 503 | 504 => MailboxError::Throttled {
            mailbox: mailbox.clone(),
            retry_after: answer.retry_after.unwrap_or(default_back_off),
        },
        status => MailboxError::Server {
            code,
            message: fault.message,
            transient: status >= 500 || status == 408,
        },
    }
}

/// [`call_error`] for a call on lnsync's contact folder: the folder being gone (deleted in
/// Outlook, or an EWS folder id after a backend switch) is `FolderNotFound`.
pub(crate) fn folder_call_error(
    mailbox: &MailboxAddress,
    answer: &Answer,
    default_back_off: Duration,
) -> MailboxError {
    if is_not_found(answer) {
        return MailboxError::FolderNotFound {
            mailbox: mailbox.clone(),
        };
    }
    call_error(mailbox, answer, default_back_off)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(status: u16, code: &str) -> Answer {
        Answer {
            status,
            body: json!({"error": {"code": code, "message": "m"}}),
            retry_after: None,
        }
    }

    fn mb() -> MailboxAddress {
        MailboxAddress::new("alice@contoso.com")
    }

    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn item_answers_map_to_item_errors() {
        let id = ExchangeItemId::new("AAkALgX");
        let e = |s, c| item_error(&answer(s, c), Some(&id), WAIT);
        assert_eq!(e(404, "ErrorItemNotFound"), ItemError::NotFound(id.clone()));
        // An EWS id sent to Graph: not there for lnsync.
        assert_eq!(e(400, ID_MALFORMED), ItemError::NotFound(id.clone()));
        assert_eq!(
            e(412, "ErrorIrresolvableConflict"),
            ItemError::Conflict(id.clone())
        );
        assert_eq!(
            e(409, "ErrorIrresolvableConflict"),
            ItemError::Conflict(id.clone())
        );
        let mut throttled = answer(429, "ApplicationThrottled");
        throttled.retry_after = Some(Duration::from_secs(3));
        assert_eq!(
            item_error(&throttled, Some(&id), WAIT),
            ItemError::Throttled(Duration::from_secs(3))
        );
        assert_eq!(e(503, "x"), ItemError::Throttled(WAIT));
        assert!(matches!(
            e(500, "ErrorInternalServerError"),
            ItemError::Failed {
                transient: true,
                ..
            }
        ));
        assert!(matches!(
            e(400, "ErrorInvalidProperty"),
            ItemError::Failed {
                transient: false,
                ..
            }
        ));
        // Without an id a 404 cannot name the item.
        assert!(matches!(
            item_error(&answer(404, "ErrorItemNotFound"), None, WAIT),
            ItemError::Failed { .. }
        ));
    }

    #[test]
    fn mailbox_wide_answers_are_configuration() {
        for (status, code) in [
            (403, "ErrorAccessDenied"),
            (404, "ErrorInvalidUser"),
            (401, "InvalidAuthenticationToken"),
        ] {
            let e = mailbox_error(&mb(), &answer(status, code));
            assert!(
                matches!(e, Some(MailboxError::Configuration { .. })),
                "{status} {code}"
            );
            assert!(e.is_some_and(|e| e.to_string().contains("alice@contoso.com")));
        }
        assert!(mailbox_error(&mb(), &answer(404, "ErrorItemNotFound")).is_none());
        assert!(!is_not_found(&answer(404, "ErrorInvalidUser")));
    }

    #[test]
    fn call_answers_map_to_mailbox_errors() {
        assert!(matches!(
            call_error(&mb(), &answer(410, "SyncStateNotFound"), WAIT),
            MailboxError::InvalidCursor { .. }
        ));
        assert!(matches!(
            call_error(&mb(), &answer(502, ""), WAIT),
            MailboxError::Server {
                transient: true,
                ..
            }
        ));
        assert!(matches!(
            call_error(&mb(), &answer(400, "BadRequest"), WAIT),
            MailboxError::Server {
                transient: false,
                ..
            }
        ));
        assert!(matches!(
            folder_call_error(&mb(), &answer(400, ID_MALFORMED), WAIT),
            MailboxError::FolderNotFound { .. }
        ));
        assert!(matches!(
            folder_call_error(&mb(), &answer(404, "ErrorItemNotFound"), WAIT),
            MailboxError::FolderNotFound { .. }
        ));
        assert!(matches!(
            folder_call_error(&mb(), &answer(403, "ErrorAccessDenied"), WAIT),
            MailboxError::Configuration { .. }
        ));
    }
}

//! What an EWS response code means for lnsync (exchange.md §2.10): per item, per mailbox, or
//! "wait and retry".

use std::time::Duration;

use lnsync_core::error::ItemError;
use lnsync_core::ids::ExchangeItemId;

pub(crate) const SERVER_BUSY: &str = "ErrorServerBusy";
pub(crate) const INVALID_SYNC_STATE: &str = "ErrorInvalidSyncStateData";
pub(crate) const FOLDER_EXISTS: &str = "ErrorFolderExists";
pub(crate) const INVALID_WATERMARK: &str = "ErrorInvalidWatermark";

/// Codes that say the cursor we sent (a SyncState, or a subscription's Watermark) is no longer
/// known: start over without it and let a full read catch up (R38, exchange.md §2.10).
pub(crate) fn is_invalid_cursor(code: &str) -> bool {
    matches!(code, INVALID_SYNC_STATE | INVALID_WATERMARK)
}

/// Codes about a subscription that is gone or unusable. A Subscribe request names no
/// subscription, only a watermark taken from an earlier one, so from Subscribe these mean that
/// watermark is stale (exchange.md §2.10 groups them with ErrorInvalidWatermark).
pub(crate) fn is_stale_subscription(code: &str) -> bool {
    matches!(
        code,
        "ErrorInvalidSubscription"
            | "ErrorSubscriptionNotFound"
            | "ErrorExpiredSubscription"
            | "ErrorSubscriptionUnsubscribed"
    )
}

/// Codes that say the mailbox or the service account is misconfigured: no item in the call can
/// succeed and an administrator must act.
pub(crate) fn is_configuration(code: &str) -> bool {
    matches!(
        code,
        "ErrorImpersonateUserDenied"
            | "ErrorNonExistentMailbox"
            | "ErrorImpersonationDenied"
            | "ErrorMailboxConfiguration"
            | "ErrorAccountDisabled"
            | "ErrorInvalidServerVersion"
            // Subscribe: delegate instead of impersonation access, no right to subscribe to
            // the mailbox, or a push URL Exchange will not call (our configured push URL).
            | "ErrorSubscriptionDelegateAccessNotSupported"
            | "ErrorSubscriptionAccessDenied"
            | "ErrorInvalidPushSubscriptionUrl"
    )
}

/// Codes worth retrying later as they are (the condition is on the server's side).
pub(crate) fn is_transient(code: &str) -> bool {
    matches!(
        code,
        "ErrorMailboxMoveInProgress"
            | "ErrorInternalServerTransientError"
            | "ErrorInternalServerError"
            | "ErrorTimeoutExpired"
            | "ErrorMailboxStoreUnavailable"
            | "ErrorConnectionFailed"
            | "ErrorBatchProcessingStopped"
            | "ErrorExceededConnectionCount"
            | "ErrorServerBusy"
            // Subscribe: EWSMaxSubscriptions reached; push subscriptions we stopped answering
            // expire on their own, so a later attempt can succeed.
            | "ErrorExceededSubscriptionCount"
            | "ErrorProxiedSubscriptionCallFailure"
    )
}

pub(crate) fn is_conflict(code: &str) -> bool {
    matches!(
        code,
        "ErrorIrresolvableConflict"
            | "ErrorStaleObject"
            | "ErrorChangeKeyRequiredForWriteOperations"
            | "ErrorChangeKeyRequired"
    )
}

/// A folder that is gone, or a folder id this server never made: ids from the Graph backend
/// (an environment switched back from Graph) are malformed to EWS. Calls that name no item
/// name only a folder, so a malformed id there is the folder's.
pub(crate) fn is_folder_missing(code: &str) -> bool {
    matches!(
        code,
        "ErrorFolderNotFound"
            | "ErrorParentFolderNotFound"
            | "ErrorSyncFolderNotFound"
            | "ErrorInvalidIdMalformed"
    )
}

/// The per-item error for a failed response message. `id` is the item the message answers, when
/// the request named one (updates, deletes, reads).
pub(crate) fn item_error(
    code: &str,
    message: Option<&str>,
    id: Option<&ExchangeItemId>,
    back_off: Option<Duration>,
    default_back_off: Duration,
) -> ItemError {
    match (code, id) {
        (SERVER_BUSY, _) => ItemError::Throttled(back_off.unwrap_or(default_back_off)),
        // A malformed id is one this server never made (e.g. a Graph id after a switch back
        // from Graph): for this mailbox the item does not exist, and the core finds it again
        // by its stamp.
        ("ErrorItemNotFound" | "ErrorInvalidIdMalformed", Some(id)) => {
            ItemError::NotFound(id.clone())
        }
        (c, Some(id)) if is_conflict(c) => ItemError::Conflict(id.clone()),
        (c, _) if is_folder_missing(c) => ItemError::FolderNotFound,
        (c, _) => ItemError::Failed {
            code: c.to_owned(),
            message: message.unwrap_or_default().to_owned(),
            transient: is_transient(c),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_codes_map_to_core_item_errors() {
        let id = ExchangeItemId::new("A");
        let d = Duration::from_secs(60);
        assert_eq!(
            item_error("ErrorItemNotFound", None, Some(&id), None, d),
            ItemError::NotFound(id.clone())
        );
        // An id from the other backend: not found here; a create's malformed id is its folder.
        assert_eq!(
            item_error("ErrorInvalidIdMalformed", None, Some(&id), None, d),
            ItemError::NotFound(id.clone())
        );
        assert_eq!(
            item_error("ErrorInvalidIdMalformed", None, None, None, d),
            ItemError::FolderNotFound
        );
        assert_eq!(
            item_error("ErrorStaleObject", None, Some(&id), None, d),
            ItemError::Conflict(id.clone())
        );
        assert_eq!(
            item_error("ErrorIrresolvableConflict", None, Some(&id), None, d),
            ItemError::Conflict(id.clone())
        );
        assert_eq!(
            item_error(
                SERVER_BUSY,
                None,
                Some(&id),
                Some(Duration::from_millis(5)),
                d
            ),
            ItemError::Throttled(Duration::from_millis(5))
        );
        assert_eq!(
            item_error(SERVER_BUSY, None, None, None, d),
            ItemError::Throttled(d)
        );
        assert_eq!(
            item_error("ErrorParentFolderNotFound", None, None, None, d),
            ItemError::FolderNotFound
        );
        assert_eq!(
            item_error("ErrorInvalidPropertySet", Some("bad"), Some(&id), None, d),
            ItemError::Failed {
                code: "ErrorInvalidPropertySet".into(),
                message: "bad".into(),
                transient: false
            }
        );
        assert!(matches!(
            item_error("ErrorMailboxMoveInProgress", None, None, None, d),
            ItemError::Failed {
                transient: true,
                ..
            }
        ));
    }
}

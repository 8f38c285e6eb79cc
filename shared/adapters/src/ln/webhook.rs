//! The LN push webhook (`docs/ln-api.md`, "LN push webhook"): authenticating and parsing the
//! notification LN posts for every create, change or delete of an activity or attendee.
//!
//! A request is accepted only when, in this order,
//!
//! 1. `X-Lnsync-Signature` is `sha256=<hex>` and the hex is the HMAC-SHA256 of the raw body with
//!    the environment's webhook secret (compared in constant time),
//! 2. `X-Lnsync-Timestamp` (seconds since the epoch) is at most [`MAX_SKEW`] away from now, and
//! 3. the body is the JSON notification with a known `change` and sane `key` and `id`.
//!
//! The signature comes first so that nothing an unauthenticated caller sends is ever parsed.
//! Notifications are only hints (R32): a receiver should enqueue a single-event sync for
//! [`Webhook::activity`] and let the pull repair anything a lost or duplicated one got wrong.
//!
//! Note that the contract signs the body only, not the timestamp header; the timestamp window
//! therefore stops replays only by callers that cannot change headers. That is acceptable because a
//! replayed notification merely re-triggers an idempotent sync of one event.
//!
//! ```
//! use lnsync_adapters::ln::webhook::{self, WebhookEntity};
//! let body = br#"{"entity":"Attendee","key":"ACT000123/10","change":"modified","id":"n-1"}"#;
//! let now = chrono::Utc::now();
//! let signature = webhook::sign(b"secret", body);
//! let timestamp = now.timestamp().to_string();
//! let hook = webhook::verify(b"secret", body, Some(&signature), Some(&timestamp), now)?;
//! assert_eq!(hook.entity, WebhookEntity::Attendee);
//! assert_eq!(hook.activity().map(|a| a.to_string()).as_deref(), Some("ACT000123"));
//! # Ok::<(), webhook::WebhookError>(())
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use lnsync_core::ids::ActivityKey;
use serde::Deserialize;
use sha2::Sha256;

/// Header carrying `sha256=<hex HMAC-SHA256 of the raw body>`.
pub const SIGNATURE_HEADER: &str = "X-Lnsync-Signature";
/// Header carrying the sending time in whole seconds since the Unix epoch.
pub const TIMESTAMP_HEADER: &str = "X-Lnsync-Timestamp";
/// Timestamps further than this from now are refused (replays).
pub const MAX_SKEW: Duration = Duration::from_secs(300);

const SIGNATURE_PREFIX: &str = "sha256=";
/// Upper bound for `entity`, `key` and `id`. LN keys are short codes; anything longer is not a
/// notification LN sent, and the key ends up in job ids and log lines downstream.
const MAX_FIELD_CHARS: usize = 256;

type HmacSha256 = Hmac<Sha256>;

/// The kind of object a notification is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEntity {
    Activity,
    Attendee,
    Contact,
    /// An entity this version does not know; kept so a receiver can acknowledge and ignore it
    /// instead of rejecting a newer LN's notifications.
    Other(String),
}

impl WebhookEntity {
    fn from_wire(name: String) -> Self {
        match name.as_str() {
            "Activity" => Self::Activity,
            "Attendee" => Self::Attendee,
            "Contact" => Self::Contact,
            _ => Self::Other(name),
        }
    }
}

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookChange {
    Created,
    Modified,
    Deleted,
}

/// An authenticated, well-formed LN notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub entity: WebhookEntity,
    /// The LN key: an activity code, `{activity}/{line}` for an attendee, a contact code.
    pub key: String,
    pub change: WebhookChange,
    pub last_modified: Option<DateTime<Utc>>,
    /// Unique per notification; a receiver may use it to drop duplicates.
    pub id: String,
}

impl Webhook {
    /// The activity this notification is about: the key of an Activity, the activity part of an
    /// Attendee key (`ACT000123/10` → `ACT000123`); None for contacts and other entities.
    pub fn activity(&self) -> Option<ActivityKey> {
        let activity = match self.entity {
            WebhookEntity::Activity => Some(self.key.as_str()),
            WebhookEntity::Attendee => attendee_key_parts(&self.key).map(|(activity, _)| activity),
            WebhookEntity::Contact | WebhookEntity::Other(_) => None,
        };
        activity.filter(|a| !a.is_empty()).map(ActivityKey::from)
    }
}

/// Why a notification was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("the {SIGNATURE_HEADER} header is missing")]
    MissingSignature,
    #[error("the {SIGNATURE_HEADER} header is not `sha256=` followed by 64 hex digits")]
    MalformedSignature,
    #[error("the {SIGNATURE_HEADER} does not match the body")]
    BadSignature,
    #[error("the {TIMESTAMP_HEADER} header is missing")]
    MissingTimestamp,
    #[error("the {TIMESTAMP_HEADER} header is not whole seconds since the epoch")]
    MalformedTimestamp,
    /// `skew_seconds` is now minus the timestamp: positive for an old request, negative for one
    /// from the future.
    #[error(
        "the {TIMESTAMP_HEADER} is {skew_seconds} s away from now (at most {} s allowed)",
        MAX_SKEW.as_secs()
    )]
    StaleTimestamp { skew_seconds: i64 },
    #[error("malformed webhook body: {0}")]
    Malformed(String),
}

impl WebhookError {
    /// 401 for anything about authentication (signature, timestamp), 400 for a malformed body.
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) => 400,
            Self::MissingSignature
            | Self::MalformedSignature
            | Self::BadSignature
            | Self::MissingTimestamp
            | Self::MalformedTimestamp
            | Self::StaleTimestamp { .. } => 401,
        }
    }
}

/// Checks the signature (HMAC-SHA256 of the raw body with `secret`, header value `sha256=<hex>`,
/// hex case-insensitive) and the timestamp (seconds since epoch, at most MAX_SKEW from `now`
/// either way), and only then parses the JSON body. Signature first, so unauthenticated input
/// is never parsed.
///
/// An empty `secret` authenticates nothing (every signature is refused): with an empty key anyone
/// could compute a valid signature, so a missing secret must not open the endpoint.
pub fn verify(
    secret: &[u8],
    body: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Webhook, WebhookError> {
    check_signature(secret, body, signature)?;
    check_timestamp(timestamp, now)?;
    parse_body(body)
}

/// The header value for `body`: `sha256=<lowercase hex>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    match keyed(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!(
                "{SIGNATURE_PREFIX}{}",
                hex::encode(mac.finalize().into_bytes())
            )
        }
        // Cannot happen (see `keyed`); the bare prefix fails closed as a malformed signature.
        Err(_) => SIGNATURE_PREFIX.to_string(),
    }
}

/// HMAC takes keys of any length (RFC 2104 hashes long ones), so this never fails; the `Result`
/// is only the generic `KeyInit` signature, handled by callers without panicking.
fn keyed(secret: &[u8]) -> Result<HmacSha256, hmac::digest::InvalidLength> {
    HmacSha256::new_from_slice(secret)
}

fn check_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), WebhookError> {
    let header = header.ok_or(WebhookError::MissingSignature)?;
    let hex_digest = header
        .trim()
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or(WebhookError::MalformedSignature)?;
    // Decoding into a fixed buffer checks the length before any work and allocates nothing,
    // whatever an attacker puts in the header; `hex` accepts either case.
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut digest).map_err(|_| WebhookError::MalformedSignature)?;
    if secret.is_empty() {
        return Err(WebhookError::BadSignature);
    }
    let mut mac = keyed(secret).map_err(|_| WebhookError::BadSignature)?;
    mac.update(body);
    // `verify_slice` compares in constant time, so response timing leaks nothing about how many
    // leading bytes of a forged signature were right.
    mac.verify_slice(&digest)
        .map_err(|_| WebhookError::BadSignature)
}

fn check_timestamp(header: Option<&str>, now: DateTime<Utc>) -> Result<(), WebhookError> {
    let text = header.ok_or(WebhookError::MissingTimestamp)?.trim();
    // Digits only: `i64::from_str` would also take a sign, and fractional or signed values are
    // not what LN sends.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WebhookError::MalformedTimestamp);
    }
    let sent: i64 = text.parse().map_err(|_| WebhookError::MalformedTimestamp)?;
    let skew_seconds = now.timestamp().saturating_sub(sent);
    if skew_seconds.unsigned_abs() > MAX_SKEW.as_secs() {
        return Err(WebhookError::StaleTimestamp { skew_seconds });
    }
    Ok(())
}

/// The body as LN sends it; unknown fields are ignored so LN may add some.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireWebhook {
    entity: String,
    key: String,
    change: WebhookChange,
    #[serde(default)]
    last_modified: Option<DateTime<Utc>>,
    id: String,
}

fn parse_body(body: &[u8]) -> Result<Webhook, WebhookError> {
    let wire: WireWebhook = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("not a webhook notification: {e}")))?;
    check_field("entity", &wire.entity)?;
    check_field("key", &wire.key)?;
    check_field("id", &wire.id)?;
    let entity = WebhookEntity::from_wire(wire.entity);
    // An attendee key must name its activity, or the receiver could not tell which event to sync.
    if entity == WebhookEntity::Attendee && attendee_key_parts(&wire.key).is_none() {
        return Err(WebhookError::Malformed(format!(
            "attendee key '{}' is not '{{activity}}/{{line}}'",
            wire.key
        )));
    }
    Ok(Webhook {
        entity,
        key: wire.key,
        change: wire.change,
        last_modified: wire.last_modified,
        id: wire.id,
    })
}

fn check_field(name: &str, value: &str) -> Result<(), WebhookError> {
    if value.is_empty() {
        return Err(WebhookError::Malformed(format!("'{name}' is empty")));
    }
    if value.chars().count() > MAX_FIELD_CHARS {
        return Err(WebhookError::Malformed(format!(
            "'{name}' is longer than {MAX_FIELD_CHARS} characters"
        )));
    }
    // Keys and ids flow into job ids and log lines; control characters there only cause harm.
    if value.chars().any(char::is_control) {
        return Err(WebhookError::Malformed(format!(
            "'{name}' contains control characters"
        )));
    }
    Ok(())
}

/// `ACT000123/10` → (`ACT000123`, 10). LN activity codes contain no `/`, but splitting at the last
/// one keeps any that did intact.
fn attendee_key_parts(key: &str) -> Option<(&str, u32)> {
    let (activity, line) = key.rsplit_once('/')?;
    let line = line.parse().ok()?;
    (!activity.is_empty()).then_some((activity, line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::json;

    const SECRET: &[u8] = b"webhook-secret-of-prod";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 30)
            .single()
            .unwrap_or_default()
    }

    fn body(entity: &str, key: &str, change: &str) -> Vec<u8> {
        json!({
            "entity": entity,
            "key": key,
            "change": change,
            "lastModified": "2026-11-29T10:00:00Z",
            "id": "0b6f3c1e-1d7e-4a51-9f0e-5c2d8f1b7a10",
        })
        .to_string()
        .into_bytes()
    }

    /// Verify `body` signed with SECRET and stamped `now` + `offset_secs`.
    fn verify_signed(body: &[u8], offset_secs: i64) -> Result<Webhook, WebhookError> {
        let signature = sign(SECRET, body);
        let timestamp = (now().timestamp() + offset_secs).to_string();
        verify(SECRET, body, Some(&signature), Some(&timestamp), now())
    }

    #[test]
    fn a_signed_fresh_activity_notification_is_accepted() {
        let hook = verify_signed(&body("Activity", "ACT000123", "modified"), 0);
        let expected = Webhook {
            entity: WebhookEntity::Activity,
            key: "ACT000123".into(),
            change: WebhookChange::Modified,
            last_modified: Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).single(),
            id: "0b6f3c1e-1d7e-4a51-9f0e-5c2d8f1b7a10".into(),
        };
        assert_eq!(hook, Ok(expected));
    }

    #[test]
    fn the_ln_api_example_body_is_accepted_verbatim() {
        let body = br#"{"entity":"Activity","key":"ACT000123","change":"modified","lastModified":"2026-11-29T10:00:00Z","id":"0b6f"}"#;
        let hook = verify_signed(body, 0).map(|h| (h.change, h.activity()));
        assert_eq!(
            hook,
            Ok((WebhookChange::Modified, Some(ActivityKey::new("ACT000123"))))
        );
    }

    #[test]
    fn sign_is_lowercase_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        let signature = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            signature,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hex_case_does_not_matter() {
        let body = body("Activity", "ACT000001", "created");
        let signature = format!("sha256={}", sign(SECRET, &body)[7..].to_uppercase());
        let timestamp = now().timestamp().to_string();
        let hook = verify(SECRET, &body, Some(&signature), Some(&timestamp), now());
        assert_eq!(hook.map(|h| h.change), Ok(WebhookChange::Created));
    }

    #[test]
    fn attendee_keys_name_their_activity() {
        let hook = verify_signed(&body("Attendee", "ACT000123/10", "deleted"), 0);
        assert_eq!(
            hook.as_ref().map(|h| (&h.entity, h.change, h.activity())),
            Ok((
                &WebhookEntity::Attendee,
                WebhookChange::Deleted,
                Some(ActivityKey::new("ACT000123"))
            ))
        );
    }

    #[test]
    fn contacts_and_unknown_entities_have_no_activity() {
        let contact = verify_signed(&body("Contact", "CON000001", "created"), 0);
        assert_eq!(
            contact.map(|h| (h.entity.clone(), h.activity())),
            Ok((WebhookEntity::Contact, None))
        );
        let other = verify_signed(&body("BusinessPartner", "BP0001", "modified"), 0);
        assert_eq!(
            other.map(|h| (h.entity.clone(), h.activity())),
            Ok((WebhookEntity::Other("BusinessPartner".into()), None))
        );
    }

    #[test]
    fn activity_of_a_hand_built_malformed_attendee_key_is_none() {
        let hook = Webhook {
            entity: WebhookEntity::Attendee,
            key: "ACT000123".into(),
            change: WebhookChange::Modified,
            last_modified: None,
            id: "x".into(),
        };
        assert_eq!(hook.activity(), None);
    }

    #[test]
    fn unknown_fields_and_a_missing_or_null_last_modified_are_tolerated() {
        let with_extra = br#"{"entity":"Activity","key":"A1","change":"created","id":"1","company":"100","extra":{"x":[1]}}"#;
        assert_eq!(
            verify_signed(with_extra, 0).map(|h| h.last_modified),
            Ok(None)
        );
        let with_null =
            br#"{"entity":"Activity","key":"A1","change":"created","id":"1","lastModified":null}"#;
        assert_eq!(
            verify_signed(with_null, 0).map(|h| h.last_modified),
            Ok(None)
        );
    }

    #[test]
    fn a_missing_signature_is_refused() {
        let body = body("Activity", "ACT000001", "created");
        let timestamp = now().timestamp().to_string();
        let result = verify(SECRET, &body, None, Some(&timestamp), now());
        assert_eq!(result, Err(WebhookError::MissingSignature));
        assert_eq!(WebhookError::MissingSignature.status(), 401);
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let body = body("Activity", "ACT000001", "created");
        let good = sign(SECRET, &body);
        let hex = &good[7..];
        let timestamp = now().timestamp().to_string();
        for signature in [
            String::new(),
            hex.to_string(),                    // no prefix
            format!("sha1={hex}"),              // other algorithm
            format!("sha256={}", &hex[..62]),   // too short
            format!("sha256={hex}00"),          // too long
            format!("sha256={}zz", &hex[..62]), // not hex
            "sha256=".to_string(),
        ] {
            let result = verify(SECRET, &body, Some(&signature), Some(&timestamp), now());
            assert_eq!(
                result,
                Err(WebhookError::MalformedSignature),
                "signature {signature:?}"
            );
        }
        assert_eq!(WebhookError::MalformedSignature.status(), 401);
    }

    #[test]
    fn a_signature_with_another_secret_or_body_is_refused() {
        let body = body("Activity", "ACT000001", "created");
        let timestamp = now().timestamp().to_string();
        let other_secret = sign(b"another-secret", &body);
        assert_eq!(
            verify(SECRET, &body, Some(&other_secret), Some(&timestamp), now()),
            Err(WebhookError::BadSignature)
        );
        let other_body = sign(SECRET, b"{}");
        assert_eq!(
            verify(SECRET, &body, Some(&other_body), Some(&timestamp), now()),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(WebhookError::BadSignature.status(), 401);
    }

    #[test]
    fn an_empty_secret_authenticates_nothing() {
        let body = body("Activity", "ACT000001", "created");
        let signature = sign(b"", &body);
        let timestamp = now().timestamp().to_string();
        assert_eq!(
            verify(b"", &body, Some(&signature), Some(&timestamp), now()),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn the_signature_is_checked_before_the_timestamp_and_the_body() {
        // Everything is wrong; the signature error wins, so the body was never looked at.
        let result = verify(SECRET, b"not json", Some("sha256=00"), None, now());
        assert_eq!(result, Err(WebhookError::MalformedSignature));
        let signature = sign(b"wrong", b"not json");
        let result = verify(SECRET, b"not json", Some(&signature), Some("x"), now());
        assert_eq!(result, Err(WebhookError::BadSignature));
    }

    #[test]
    fn a_missing_timestamp_is_refused() {
        let body = body("Activity", "ACT000001", "created");
        let signature = sign(SECRET, &body);
        let result = verify(SECRET, &body, Some(&signature), None, now());
        assert_eq!(result, Err(WebhookError::MissingTimestamp));
        assert_eq!(WebhookError::MissingTimestamp.status(), 401);
    }

    #[test]
    fn malformed_timestamps_are_refused() {
        let body = body("Activity", "ACT000001", "created");
        let signature = sign(SECRET, &body);
        let seconds = now().timestamp();
        for timestamp in [
            String::new(),
            "soon".to_string(),
            format!("{seconds}.5"),
            format!("-{seconds}"),
            format!("+{seconds}"),
            now().to_rfc3339(),
            "99999999999999999999999".to_string(), // overflows i64
        ] {
            let result = verify(SECRET, &body, Some(&signature), Some(&timestamp), now());
            assert_eq!(
                result,
                Err(WebhookError::MalformedTimestamp),
                "timestamp {timestamp:?}"
            );
        }
        assert_eq!(WebhookError::MalformedTimestamp.status(), 401);
    }

    #[test]
    fn timestamps_more_than_five_minutes_off_are_refused_either_way() {
        let body = body("Activity", "ACT000001", "created");
        assert!(verify_signed(&body, -300).is_ok());
        assert!(verify_signed(&body, 300).is_ok());
        assert_eq!(
            verify_signed(&body, -301),
            Err(WebhookError::StaleTimestamp { skew_seconds: 301 })
        );
        assert_eq!(
            verify_signed(&body, 301),
            Err(WebhookError::StaleTimestamp { skew_seconds: -301 })
        );
        let signature = sign(SECRET, &body);
        assert_eq!(
            verify(SECRET, &body, Some(&signature), Some("0"), now()),
            Err(WebhookError::StaleTimestamp {
                skew_seconds: now().timestamp()
            })
        );
        assert_eq!(
            WebhookError::StaleTimestamp { skew_seconds: 301 }.status(),
            401
        );
    }

    #[test]
    fn header_whitespace_is_ignored() {
        let body = body("Activity", "ACT000001", "created");
        let signature = format!(" {} ", sign(SECRET, &body));
        let timestamp = format!(" {} ", now().timestamp());
        assert!(verify(SECRET, &body, Some(&signature), Some(&timestamp), now()).is_ok());
    }

    fn malformed(body: &[u8]) -> bool {
        matches!(verify_signed(body, 0), Err(WebhookError::Malformed(_)))
    }

    #[test]
    fn malformed_bodies_are_refused_with_400() {
        let long = "A".repeat(MAX_FIELD_CHARS + 1);
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"not json".to_vec(),
            b"[]".to_vec(),
            b"{}".to_vec(),
            body("Activity", "ACT000001", "updated"),
            body("Activity", "ACT000001", "Modified"),
            body("Activity", "", "created"),
            body("", "ACT000001", "created"),
            body("Activity", &long, "created"),
            body(&long, "ACT000001", "created"),
            body("Activity", "ACT\n0001", "created"),
            body("Attendee", "ACT000001", "created"),
            body("Attendee", "ACT000001/x", "created"),
            body("Attendee", "/10", "created"),
            br#"{"entity":"Activity","key":"A1","change":"created","id":""}"#.to_vec(),
            br#"{"entity":"Activity","key":"A1","change":"created"}"#.to_vec(),
            br#"{"entity":"Activity","key":7,"change":"created","id":"1"}"#.to_vec(),
            br#"{"entity":"Activity","key":"A1","change":"created","id":"1","lastModified":"yesterday"}"#.to_vec(),
            br#"{"entity":"Activity","key":"A1","key":"A2","change":"created","id":"1"}"#.to_vec(),
        ];
        for body in &cases {
            assert!(malformed(body), "body {:?}", String::from_utf8_lossy(body));
        }
        let id_too_long = json!({"entity":"Activity","key":"A1","change":"created","id":long});
        assert!(malformed(id_too_long.to_string().as_bytes()));
        assert_eq!(WebhookError::Malformed("x".into()).status(), 400);
    }

    #[test]
    fn the_field_bound_counts_characters_not_bytes() {
        let key = "Ä".repeat(MAX_FIELD_CHARS);
        let hook = verify_signed(&body("Activity", &key, "created"), 0);
        assert_eq!(hook.map(|h| h.key), Ok(key));
    }

    #[test]
    fn the_ln_simulators_notifications_verify() -> Result<(), serde_json::Error> {
        // The simulator signs what it posts independently of this module; both must agree on the
        // contract (headers, body shape, signature) or the end-to-end tests would only ever 401.
        assert!(ln_sim::webhook::SIGNATURE_HEADER.eq_ignore_ascii_case(SIGNATURE_HEADER));
        assert!(ln_sim::webhook::TIMESTAMP_HEADER.eq_ignore_ascii_case(TIMESTAMP_HEADER));
        let event = ln_sim::ChangeEvent {
            company: "100".into(),
            entity: ln_sim::model::EntityKind::Attendee,
            key: "ACT000042/3".into(),
            change: ln_sim::ChangeKind::Deleted,
            last_modified: now(),
            id: "d2a5".into(),
        };
        let (body, signature) = ln_sim::webhook::render(&event, SECRET)?;
        let timestamp = now().timestamp().to_string();
        let hook = verify(SECRET, &body, Some(&signature), Some(&timestamp), now());
        assert_eq!(
            hook,
            Ok(Webhook {
                entity: WebhookEntity::Attendee,
                key: "ACT000042/3".into(),
                change: WebhookChange::Deleted,
                last_modified: Some(now()),
                id: "d2a5".into(),
            })
        );
        Ok(())
    }

    // ----- properties -----

    fn entity_and_key() -> impl Strategy<Value = (String, String)> {
        prop_oneof![
            "[A-Z]{3}[0-9]{6}".prop_map(|k| ("Activity".to_string(), k)),
            ("[A-Z]{3}[0-9]{6}", 1u32..1000)
                .prop_map(|(a, l)| ("Attendee".to_string(), format!("{a}/{l}"))),
            "CON[0-9]{6}".prop_map(|k| ("Contact".to_string(), k)),
            ("[A-Za-z]{1,20}", "[ -~]{1,40}")
                .prop_filter("known entities are covered above", |(e, _)| {
                    !matches!(e.as_str(), "Activity" | "Attendee" | "Contact")
                }),
        ]
    }

    fn change() -> impl Strategy<Value = (&'static str, WebhookChange)> {
        prop_oneof![
            Just(("created", WebhookChange::Created)),
            Just(("modified", WebhookChange::Modified)),
            Just(("deleted", WebhookChange::Deleted)),
        ]
    }

    /// A valid notification body, its expected parse, and the secret it is signed with.
    fn signed_request() -> impl Strategy<Value = (Vec<u8>, Webhook, Vec<u8>)> {
        (
            entity_and_key(),
            change(),
            proptest::option::of(0i64..4_000_000_000),
            "[0-9a-f-]{1,64}",
            proptest::collection::vec(any::<u8>(), 1..64),
        )
            .prop_map(|((entity, key), (change_text, change), at, id, secret)| {
                let last_modified = at.and_then(|s| Utc.timestamp_opt(s, 0).single());
                let body = json!({
                    "entity": entity,
                    "key": key,
                    "change": change_text,
                    "lastModified": last_modified,
                    "id": id,
                })
                .to_string()
                .into_bytes();
                let expected = Webhook {
                    entity: WebhookEntity::from_wire(entity),
                    key,
                    change,
                    last_modified,
                    id,
                };
                (body, expected, secret)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

        /// Arbitrary input never panics, and is accepted only when it carries the right signature
        /// and a fresh timestamp.
        #[test]
        fn arbitrary_input_is_refused_unless_signed_and_fresh(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            signature in proptest::option::of(prop_oneof![
                any::<String>(),
                "sha256=[0-9a-fA-F]{64}",
            ]),
            timestamp in proptest::option::of(prop_oneof![
                any::<String>(),
                (-600i64..600).prop_map(|d| (now().timestamp() + d).to_string()),
            ]),
        ) {
            let result = verify(SECRET, &body, signature.as_deref(), timestamp.as_deref(), now());
            if result.is_ok() {
                let expected = sign(SECRET, &body);
                prop_assert!(signature.is_some_and(|s| s.trim().eq_ignore_ascii_case(&expected)));
            }
            if let Err(error) = result {
                prop_assert!(matches!(error.status(), 400 | 401));
            }
        }

        /// Correctly signed, fresh, well-formed notifications are accepted as they were sent.
        #[test]
        fn signed_fresh_notifications_round_trip(
            (body, expected, secret) in signed_request(),
            offset in -300i64..=300,
        ) {
            let signature = sign(&secret, &body);
            let timestamp = (now().timestamp() + offset).to_string();
            let result = verify(&secret, &body, Some(&signature), Some(&timestamp), now());
            prop_assert_eq!(result, Ok(expected));
        }

        /// Changing any byte of a signed body breaks the signature.
        #[test]
        fn any_changed_body_byte_is_a_bad_signature(
            (body, _expected, secret) in signed_request(),
            index in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let signature = sign(&secret, &body);
            let mut tampered = body.clone();
            let at = index.index(tampered.len());
            tampered[at] ^= flip;
            let timestamp = now().timestamp().to_string();
            let result = verify(&secret, &tampered, Some(&signature), Some(&timestamp), now());
            prop_assert_eq!(result, Err(WebhookError::BadSignature));
        }

    }

    // The remaining properties are variations of the ones above; fewer cases keep CI fast.
    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, .. ProptestConfig::default() })]

        /// Appending to or truncating a signed body breaks the signature too.
        #[test]
        fn a_longer_or_shorter_body_is_a_bad_signature(
            (body, _expected, secret) in signed_request(),
            extra in proptest::collection::vec(any::<u8>(), 1..16),
            cut in 1usize..16,
        ) {
            let signature = sign(&secret, &body);
            let timestamp = now().timestamp().to_string();
            let mut longer = body.clone();
            longer.extend_from_slice(&extra);
            prop_assert_eq!(
                verify(&secret, &longer, Some(&signature), Some(&timestamp), now()),
                Err(WebhookError::BadSignature)
            );
            let shorter = &body[..body.len().saturating_sub(cut)];
            prop_assert_eq!(
                verify(&secret, shorter, Some(&signature), Some(&timestamp), now()),
                Err(WebhookError::BadSignature)
            );
        }

        /// Changing any hex digit of the signature to another digit is a bad signature.
        #[test]
        fn any_changed_signature_digit_is_a_bad_signature(
            (body, _expected, secret) in signed_request(),
            index in any::<prop::sample::Index>(),
            shift in 1u8..16,
        ) {
            let signature = sign(&secret, &body);
            let mut digits: Vec<u8> = signature[SIGNATURE_PREFIX.len()..].bytes().collect();
            let at = index.index(digits.len());
            let value = (char::from(digits[at]).to_digit(16).unwrap_or(0) as u8 + shift) % 16;
            digits[at] = b"0123456789abcdef"[usize::from(value)];
            let tampered = format!("{SIGNATURE_PREFIX}{}", String::from_utf8_lossy(&digits));
            let timestamp = now().timestamp().to_string();
            let result = verify(&secret, &body, Some(&tampered), Some(&timestamp), now());
            prop_assert_eq!(result, Err(WebhookError::BadSignature));
        }

        /// A signature made with any other secret is refused.
        #[test]
        fn another_secret_is_a_bad_signature(
            (body, _expected, secret) in signed_request(),
            other in proptest::collection::vec(any::<u8>(), 1..64),
        ) {
            prop_assume!(other != secret);
            let signature = sign(&other, &body);
            let timestamp = now().timestamp().to_string();
            let result = verify(&secret, &body, Some(&signature), Some(&timestamp), now());
            prop_assert_eq!(result, Err(WebhookError::BadSignature));
        }

        /// A correctly signed request outside the window is stale, with the skew reported.
        #[test]
        fn stale_signed_requests_are_refused(
            (body, _expected, secret) in signed_request(),
            skew in prop_oneof![301i64..1_000_000, -1_000_000i64..-300],
        ) {
            let signature = sign(&secret, &body);
            let timestamp = (now().timestamp() - skew).to_string();
            let result = verify(&secret, &body, Some(&signature), Some(&timestamp), now());
            prop_assert_eq!(result, Err(WebhookError::StaleTimestamp { skew_seconds: skew }));
        }
    }
}

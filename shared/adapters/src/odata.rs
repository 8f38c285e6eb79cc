//! Small OData URL helpers for both OData services lnsync calls (LN, Microsoft Graph):
//! literals, key predicates, path segments and percent-encoding.
//!
//! Query strings are encoded with `%20` for spaces (not form-style `+`, which some OData servers
//! take literally), keeping `$`, quotes, parentheses and `:` readable in logs.

use chrono::{DateTime, SecondsFormat, Utc};

/// A string literal: single-quoted, inner quotes doubled.
pub(crate) fn string_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A date-time literal: unquoted UTC with millisecond precision and `Z` (no `+` to encode).
pub(crate) fn datetime_literal(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn encode(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || keep.contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Encode a query name or value.
pub(crate) fn encode_query(text: &str) -> String {
    encode(text, b"$'(),:/@*!")
}

/// Encode a key predicate for a path segment (`'O''Brien'` stays readable).
pub(crate) fn encode_path(text: &str) -> String {
    encode(text, b"'(),=:@*!$")
}

/// One path segment (a mailbox address, an item or folder id): EWS ids carry `/` and `+`.
pub(crate) fn encode_segment(text: &str) -> String {
    encode(text, b"@")
}

/// `Set('key')`.
pub(crate) fn keyed(set: &str, key: &str) -> String {
    format!("{set}({})", encode_path(&string_literal(key)))
}

/// Build `?name=value&…`.
pub(crate) fn query_string(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let joined = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v)))
        .collect::<Vec<_>>()
        .join("&");
    format!("?{joined}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_encoding() {
        assert_eq!(string_literal("O'Brien"), "'O''Brien'");
        let at = DateTime::parse_from_rfc3339("2026-11-29T11:00:00.5+01:00")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(datetime_literal(at), "2026-11-29T10:00:00.500Z");
        assert_eq!(keyed("Contacts", "C 1'x"), "Contacts('C%201''x')");
        assert_eq!(
            query_string(&[("$filter", "a eq 'b&c' and d+e".to_owned())]),
            "?$filter=a%20eq%20'b%26c'%20and%20d%2Be"
        );
        assert_eq!(query_string(&[]), "");
    }
}

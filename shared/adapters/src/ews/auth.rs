//! Credentials for the EWS service account, with secrets that never print.

use base64::Engine as _;

pub use lnsync_core::secret::Secret;

/// How the service account authenticates, per environment (R2): Basic over TLS against
/// on-premises Exchange, or an OAuth bearer token (Hybrid Modern Auth / Exchange Online).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EwsAuth {
    Basic { user: String, password: Secret },
    Bearer(Secret),
}

impl EwsAuth {
    /// The `Authorization` header value.
    pub(crate) fn header_value(&self) -> String {
        match self {
            EwsAuth::Basic { user, password } => {
                let pair = format!("{user}:{}", password.expose());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
            EwsAuth::Bearer(token) => format!("Bearer {}", token.expose()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_headers_are_right() {
        let auth = EwsAuth::Basic {
            user: "svc".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        assert_eq!(auth.header_value(), "Basic c3ZjOmh1bnRlcjI=");
        let bearer = EwsAuth::Bearer(Secret::new("tok"));
        assert_eq!(bearer.header_value(), "Bearer tok");
        assert_eq!(format!("{}", Secret::new("x")), "***");
    }
}

//! The ION API `.ionapi` credentials file, with its secrets in redacted newtypes.

use std::path::Path;

use serde::Deserialize;

// The core's redacted secret type, so secrets look the same in every adapter's Debug output.
pub use lnsync_core::secret::Secret;

/// Why a `.ionapi` file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IonApiError {
    #[error("cannot read the .ionapi file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The message never quotes the file: it holds secrets.
    #[error("the .ionapi file is not valid JSON (line {line}, column {column})")]
    Json {
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("the .ionapi file lacks '{0}'")]
    Missing(&'static str),
    #[error("the .ionapi value '{key}' is not a valid URL: {source}")]
    Url {
        key: &'static str,
        #[source]
        source: url::ParseError,
    },
}

/// The parts of a `.ionapi` file lnsync uses (other keys are ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IonApi {
    /// `ti`: tenant.
    pub tenant: String,
    /// `ci`: OAuth client id.
    pub client_id: String,
    /// `cs`: OAuth client secret.
    pub client_secret: Secret,
    /// `iu`: ION API base URL.
    pub ion_api_url: url::Url,
    /// `pu` + `ot`: the token endpoint.
    pub token_url: url::Url,
    /// `saak`: service account access key (the password grant's `username`).
    pub service_account_key: Secret,
    /// `sask`: service account secret key (the password grant's `password`).
    pub service_account_secret: Secret,
}

#[derive(Deserialize)]
struct Raw {
    ti: Option<String>,
    ci: Option<String>,
    cs: Option<String>,
    iu: Option<String>,
    pu: Option<String>,
    ot: Option<String>,
    saak: Option<String>,
    sask: Option<String>,
}

fn required(value: Option<String>, key: &'static str) -> Result<String, IonApiError> {
    value
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or(IonApiError::Missing(key))
}

impl IonApi {
    /// Parse the JSON content of a `.ionapi` file.
    pub fn from_json(text: &str) -> Result<Self, IonApiError> {
        let raw: Raw = serde_json::from_str(text).map_err(|source| IonApiError::Json {
            line: source.line(),
            column: source.column(),
            source,
        })?;
        let iu = required(raw.iu, "iu")?;
        let pu = required(raw.pu, "pu")?;
        let ot = required(raw.ot, "ot")?;
        let ion_api_url =
            url::Url::parse(&iu).map_err(|source| IonApiError::Url { key: "iu", source })?;
        // `pu` normally ends in "/as/" and `ot` is relative ("token.oauth2"); concatenation (not
        // URL resolution) is what Infor's own SDKs do, so a `pu` without a trailing slash still
        // works when `ot` starts with one.
        let token = if pu.ends_with('/') || ot.starts_with('/') {
            format!("{pu}{ot}")
        } else {
            format!("{pu}/{ot}")
        };
        let token_url =
            url::Url::parse(&token).map_err(|source| IonApiError::Url { key: "pu", source })?;
        Ok(Self {
            tenant: required(raw.ti, "ti")?,
            client_id: required(raw.ci, "ci")?,
            client_secret: Secret::new(required(raw.cs, "cs")?),
            ion_api_url,
            token_url,
            service_account_key: Secret::new(required(raw.saak, "saak")?),
            service_account_secret: Secret::new(required(raw.sask, "sask")?),
        })
    }

    /// Read and parse a `.ionapi` file.
    pub fn from_file(path: &Path) -> Result<Self, IonApiError> {
        let text = std::fs::read_to_string(path).map_err(|source| IonApiError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
        "ti": "ACME_PRD", "cn": "lnsync", "dt": "12", "ci": "ACME_PRD~abc", "cs": "client-secret",
        "iu": "https://mingle-ionapi.eu1.inforcloudsuite.com",
        "pu": "https://mingle-sso.eu1.inforcloudsuite.com:443/ACME_PRD/as/",
        "oa": "authorization.oauth2", "ot": "token.oauth2", "or": "revoke_token.oauth2",
        "ev": "U1", "v": "1.0", "saak": "ACME_PRD#key", "sask": "service-secret"
    }"#;

    #[test]
    fn parses_a_real_shaped_file() -> Result<(), IonApiError> {
        let ion = IonApi::from_json(SAMPLE)?;
        assert_eq!(ion.tenant, "ACME_PRD");
        assert_eq!(
            ion.token_url.as_str(),
            "https://mingle-sso.eu1.inforcloudsuite.com/ACME_PRD/as/token.oauth2"
        );
        assert_eq!(ion.service_account_key.expose(), "ACME_PRD#key");
        Ok(())
    }

    #[test]
    fn secrets_never_print() -> Result<(), IonApiError> {
        let ion = IonApi::from_json(SAMPLE)?;
        let debug = format!("{ion:?}");
        for secret in ["client-secret", "ACME_PRD#key", "service-secret"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        Ok(())
    }

    #[test]
    fn names_the_missing_key_and_hides_content() {
        let err = IonApi::from_json(
            r#"{"ti":"T","ci":"c","cs":"s","iu":"http://x","pu":"http://x/as/","ot":"t","saak":"a"}"#,
        );
        assert!(matches!(err, Err(IonApiError::Missing("sask"))));
        let err = IonApi::from_json(r#"{"cs": "topsecret" "#);
        let text = err.map(|_| String::new()).unwrap_or_else(|e| e.to_string());
        assert!(
            text.contains("not valid JSON") && !text.contains("topsecret"),
            "{text}"
        );
        let err = IonApi::from_json(
            r#"{"ti":"T","ci":"c","cs":"s","iu":"not a url","pu":"http://x/as/","ot":"t","saak":"a","sask":"b"}"#,
        );
        assert!(matches!(err, Err(IonApiError::Url { key: "iu", .. })));
    }
}

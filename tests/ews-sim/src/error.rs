//! Error types of the simulator: one enum per boundary, each keeping its source.

use std::path::PathBuf;

/// XML that could not be read at all (not well-formed, undeclared prefix, ...).
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML: {0}")]
    Malformed(String),
}

/// Errors of the Rust handle API (test-side "user in Outlook" edits, seeding, start-up).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("mailbox {0} is not hosted by the simulator")]
    NoSuchMailbox(String),
    #[error("mailbox {0} already exists")]
    MailboxExists(String),
    #[error("folder {0} not found")]
    NoSuchFolder(String),
    #[error("a folder named {0:?} already exists under that parent")]
    FolderExists(String),
    #[error("item {0} not found")]
    NoSuchItem(String),
    #[error("invalid seed: {0}")]
    InvalidSeed(String),
    #[error("invalid calendar action: {0}")]
    InvalidEvent(String),
    #[error("cannot bind or serve: {0}")]
    Io(#[from] std::io::Error),
    #[error("seed file is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Errors of the schema-validation helper (`schema` module).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("EWS schema directory not found (looked at {0}); set LNSYNC_EWS_SCHEMAS")]
    SchemaDirMissing(PathBuf),
    #[error("request {index} is not a usable SOAP envelope: {reason}")]
    BadEnvelope { index: usize, reason: String },
    #[error("cannot run xmllint: {0}")]
    Xmllint(#[source] std::io::Error),
    #[error("temporary files: {0}")]
    Io(#[from] std::io::Error),
    #[error("{} schema violation(s):\n{}", .0.len(), .0.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<SchemaViolation>),
}

/// One document that failed validation, traced back to its request.
#[derive(Debug, Clone)]
pub struct SchemaViolation {
    /// Index of the request in the slice given to `validate_requests`.
    pub request_index: usize,
    /// Local name of the validated element (header element or operation).
    pub element: String,
    pub file: PathBuf,
    /// xmllint's messages for this file.
    pub message: String,
}

impl std::fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "request #{} <{}> ({}): {}",
            self.request_index,
            self.element,
            self.file.display(),
            self.message
        )
    }
}

//! lnsync-tests (placeholder)

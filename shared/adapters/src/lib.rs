//! lnsync-adapters (placeholder)

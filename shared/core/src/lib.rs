//! lnsync-core (placeholder)

//! lnsync-runtime (placeholder)

//! ln-sim (placeholder)

//! ews-sim (placeholder)

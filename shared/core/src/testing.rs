//! In-memory port implementations for tests (feature `testing`). Filled in below.

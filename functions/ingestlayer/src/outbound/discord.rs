//! discord: being written.

//! email: being written.

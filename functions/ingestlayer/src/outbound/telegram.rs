//! telegram: being written.

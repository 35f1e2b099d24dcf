//! The telegram adapter against its stand-in: being written.

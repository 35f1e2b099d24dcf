//! The notion adapter against its stand-in: being written.

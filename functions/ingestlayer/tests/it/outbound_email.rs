//! The email adapter against its stand-in: being written.

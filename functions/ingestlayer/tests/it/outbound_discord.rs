//! The discord adapter against its stand-in: being written.

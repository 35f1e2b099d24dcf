//! What stateful pipeline steps remember, in the state table (`STATE_TABLE`), shared by
//! every instance of the pipeline function.

/// The state table's index of heartbeats by when they are next due.
pub const BY_DUE: &str = "by_due";

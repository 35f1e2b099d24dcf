//! notion: being written.

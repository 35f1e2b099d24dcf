//! The destinations page for destinations beyond Slack: being written.

//! What talks to Slack: the Web API client and its answers, OAuth, request signing,
//! connected workspaces and their bot tokens.

pub mod answers;
pub mod block_kit;
pub mod client;
pub mod oauth;
pub mod request_signing;
pub mod tokens;
pub mod workspaces;

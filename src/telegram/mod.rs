//! Everything about the Telegram Bot API: its wire model and command syntax.

pub mod client;
pub mod command;
pub mod fake;
pub mod polling;
pub mod resolver;
pub mod types;
pub mod webhook;

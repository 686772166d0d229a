//! Everything about the Telegram Bot API: its wire model and command syntax.

pub mod command;
pub mod types;

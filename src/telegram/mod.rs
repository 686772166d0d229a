//! The Telegram Bot API wire model: the updates Telegram sends, the commands and deep
//! links inside them, and the methods the bot calls. A leaf: it imports nothing else of
//! the crate, so every layer above can speak it.

pub mod command;
pub mod methods;
pub mod types;

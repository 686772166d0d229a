//! The Telegram Bot API wire model: the updates Telegram sends, the commands and deep
//! links inside them, the methods the bot calls, and the HTML its texts are written in.
//! A leaf: it imports nothing else of the crate, so every layer above can speak it.

pub mod command;
pub mod markup;
pub mod methods;
pub mod types;

//! Transports: where updates come from. Each turns what Telegram (or a person at a
//! terminal) sends into an [`Update`](crate::telegram::types::Update) and hands it to the
//! inbox; nothing past the inbox knows which one runs.

pub mod console;
pub(crate) mod polling;
pub mod webhook;

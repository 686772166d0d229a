//! `Update::from_json` on arbitrary bytes: whatever Telegram (or anyone who knows the
//! webhook URL) sends, parsing returns a result and never panics. What parses must also
//! answer the questions the engine asks of every update.

#![no_main]

use edgebot::telegram::types::Update;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(update) = Update::from_json(data) {
        // The dispatcher picks a lane and the engine a sender from these.
        let _ = update.chat_id();
        let _ = update.from();
        let _ = update.kind.name();
    }
});

//! A service's response as edgebot reads it: any bytes a service (or whatever answers at
//! its address) sends back. Parsing and checking must never panic, and whatever passes
//! the check is within the limits Telegram and the contract set.

#![no_main]

use edgebot::gateway::contract::{Answering, ReplyAction, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for answering in [
        Answering::Message,
        Answering::Callback,
        Answering::InlineCallback,
    ] {
        let Ok(response) = Response::parse(data) else {
            return;
        };
        let Ok(reply) = response.check(answering) else {
            continue;
        };
        assert!(reply.actions.len() <= 10);
        assert!(reply.events.len() <= 10);
        for action in &reply.actions {
            match action {
                ReplyAction::Send { text, .. } | ReplyAction::Edit { text, .. } => {
                    assert!(!text.trim().is_empty() && text.chars().count() <= 4096);
                }
                ReplyAction::AnswerCallback { text, .. } => {
                    assert_ne!(answering, Answering::Message);
                    assert!(text.as_ref().is_none_or(|t| t.chars().count() <= 200));
                }
                ReplyAction::Delete => assert_ne!(answering, Answering::InlineCallback),
            }
        }
    }
});

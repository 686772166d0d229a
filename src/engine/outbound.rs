//! Actions as the outbox keeps them. When the engine commits an [`Action`] it becomes the
//! store's own [`OutboxCall`] — the method, the chat it writes to and the JSON body — so
//! the file's format does not follow the wire model; the sender sends that body as it is.

use crate::store::OutboxCall;
use crate::telegram::methods::Action;

/// The call that performs `action`.
pub fn call_of(action: &Action) -> OutboxCall {
    OutboxCall {
        method: action.method().to_owned(),
        chat_id: action.chat_id(),
        params: action.params_json(),
    }
}

/// The action a stored call performs, for showing it (the console). An error when the
/// call is not one of the bot's actions (a method this build does not know, or parameters
/// that do not fit it).
pub fn action_of(call: &OutboxCall) -> Result<Action, serde_json::Error> {
    // An action is the method's parameters tagged with the method's name.
    let mut tagged: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&call.params)?;
    tagged.insert("method".into(), call.method.clone().into());
    serde_json::from_value(tagged.into())
}

/// The metric label of a stored call's method. Metric labels are a closed set, while a
/// stored call names its method as a string; a name no action calls counts as `other`.
pub(crate) fn method_label(method: &str) -> &'static str {
    Action::METHODS
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telegram::methods::{
        AnswerCallbackQuery, ChatMemberRef, EditMessageText, MessageRef, ParseMode,
        ReplyParameters, SendMessage,
    };

    /// One action of each kind; the match fails to compile when a kind is added.
    fn one_of_each() -> Vec<Action> {
        let all = vec![
            Action::SendMessage(SendMessage {
                chat_id: 5,
                message_thread_id: None,
                text: "hi".into(),
                parse_mode: Some(ParseMode::Html),
                reply_parameters: Some(ReplyParameters {
                    message_id: 9,
                    allow_sending_without_reply: true,
                }),
                reply_markup: None,
            }),
            Action::EditMessageText(EditMessageText {
                chat_id: -5,
                message_id: 2,
                text: "edited".into(),
                parse_mode: None,
                reply_markup: None,
            }),
            Action::AnswerCallbackQuery(AnswerCallbackQuery {
                callback_query_id: "q".into(),
                text: Some("done".into()),
                show_alert: true,
            }),
            Action::DeleteMessage(MessageRef {
                chat_id: 5,
                message_id: 3,
            }),
            Action::BanChatMember(ChatMemberRef {
                chat_id: -5,
                user_id: 7,
            }),
        ];
        for action in &all {
            match action {
                Action::SendMessage(_)
                | Action::EditMessageText(_)
                | Action::AnswerCallbackQuery(_)
                | Action::DeleteMessage(_)
                | Action::BanChatMember(_) => {}
            }
        }
        all
    }

    #[test]
    fn a_call_is_the_action_and_back() {
        for action in one_of_each() {
            let call = call_of(&action);
            assert_eq!(call.method, action.method());
            assert_eq!(call.chat_id, action.chat_id());
            assert_eq!(call.params, action.params_json(), "sent as it is");
            assert_eq!(action_of(&call).unwrap(), action);
        }
    }

    #[test]
    fn every_method_has_its_label() {
        for action in one_of_each() {
            assert_eq!(method_label(action.method()), action.method());
        }
        assert_eq!(method_label("sendPoll"), "other");
    }

    #[test]
    fn a_call_that_is_no_action_is_an_error() {
        let call = OutboxCall {
            method: "sendPoll".into(),
            chat_id: Some(1),
            params: br#"{"chat_id":1}"#.to_vec(),
        };
        assert!(action_of(&call).is_err());
        let call = OutboxCall {
            params: b"not json".to_vec(),
            ..call_of(&Action::send(1, "x"))
        };
        assert!(action_of(&call).is_err());
    }
}

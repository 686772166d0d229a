//! A route to an internal service: the update becomes the contract's request, and the
//! service's reply becomes actions, a session change and events. A failed call becomes
//! the service's apology. Either way a pressed button gets its answer, so the user's
//! client never keeps spinning.

use crate::engine::context::{Context, Outcome};
use crate::gateway::contract::{
    Answering, Button, ChatInfo, Format, Reply, ReplyAction, SessionInfo, SessionOutcome,
    UpdateInfo, UserInfo,
};
use crate::gateway::{Call, Services};
use crate::store::records::{EventKind, SessionEdit};
use crate::telegram::methods::{
    Action, AnswerCallbackQuery, EditMessageText, MessageRef, ParseMode,
};
use crate::telegram::types::{ChatKind, InlineKeyboardButton, InlineKeyboardMarkup};

pub(crate) async fn handle(services: &Services, name: &str, ctx: &Context<'_>, out: &mut Outcome) {
    let session = ctx.session.as_ref();
    let call = Call {
        update: UpdateInfo {
            update_id: ctx.update_id,
            kind: ctx.update_kind,
            command: ctx.command,
            args: ctx.args,
            text: ctx
                .message
                .and_then(|m| m.text_or_caption())
                .filter(|_| ctx.callback.is_none()),
            callback_data: ctx.callback.and_then(|q| q.data.as_deref()),
            message_id: ctx.message.map(|m| m.message_id),
        },
        user: ctx.user.map(|user| UserInfo {
            id: user.id,
            first_name: &user.first_name,
            last_name: user.last_name.as_deref(),
            username: user.username.as_deref(),
            language_code: user.language_code.as_deref(),
            role: user.role.as_str(),
            is_new: ctx.is_new_user,
        }),
        chat: ChatInfo {
            id: ctx.chat_id,
            kind: ctx.message.map_or("private", |m| chat_kind(m.chat.kind)),
            title: ctx.message.and_then(|m| m.chat.title.as_deref()),
        },
        session: SessionInfo {
            internal_user_id: session.and_then(|s| s.internal_user_id.as_deref()),
            state: session.and_then(|s| s.state.as_deref()),
            data: session.map_or("{}", |s| s.data.as_str()),
            expires_at: session.map(|s| s.expires_at.get()),
        },
        answering: match (ctx.callback, ctx.message) {
            (None, _) => Answering::Message,
            (Some(_), Some(_)) => Answering::Callback,
            (Some(_), None) => Answering::InlineCallback,
        },
    };
    match services.call(name, &call).await {
        Ok(reply) => apply(reply, name, ctx, out),
        Err(_) => out.send(ctx, services.apology(name).to_owned()),
    }
    // A pressed button always gets its answer, first, so the spinner stops at once.
    if let Some(query) = ctx.callback
        && !out
            .actions
            .iter()
            .any(|a| matches!(a, Action::AnswerCallbackQuery(_)))
    {
        out.actions.insert(
            0,
            Action::AnswerCallbackQuery(AnswerCallbackQuery::silent(query.id.clone())),
        );
    }
}

/// The reply's actions, session change and events, into the outcome.
fn apply(reply: Reply, service: &str, ctx: &Context<'_>, out: &mut Outcome) {
    for action in reply.actions {
        match action {
            ReplyAction::Send {
                text,
                format,
                keyboard,
                reply,
            } => out.send_formatted(ctx, text, parse_mode(format), markup(keyboard), reply),
            // The contract's check allows these only where their message exists.
            ReplyAction::Edit {
                text,
                format,
                keyboard,
            } => {
                if let Some(message) = ctx.message {
                    out.actions.push(Action::EditMessageText(EditMessageText {
                        chat_id: ctx.chat_id,
                        message_id: message.message_id,
                        text,
                        parse_mode: parse_mode(format),
                        reply_markup: markup(keyboard),
                    }));
                }
            }
            ReplyAction::AnswerCallback { text, alert } => {
                if let Some(query) = ctx.callback {
                    out.actions
                        .push(Action::AnswerCallbackQuery(AnswerCallbackQuery {
                            callback_query_id: query.id.clone(),
                            text,
                            show_alert: alert,
                        }));
                }
            }
            ReplyAction::Delete => {
                if let Some(message) = ctx.message {
                    out.actions.push(Action::DeleteMessage(MessageRef {
                        chat_id: ctx.chat_id,
                        message_id: message.message_id,
                    }));
                }
            }
        }
    }
    let edit = match reply.session {
        // Used, so it lives on; a user without one gets none.
        SessionOutcome::Keep => ctx.session.as_ref().map(|_| SessionEdit::Touch),
        SessionOutcome::End => Some(SessionEdit::End),
        SessionOutcome::Set {
            internal_user_id,
            state,
            data,
            ttl_secs,
        } => Some(SessionEdit::Service {
            internal_user_id,
            state,
            data,
            ttl_secs,
        }),
    };
    out.session = edit.and_then(|edit| ctx.session_change(edit));
    for event in reply.events {
        out.events.push(ctx.event(EventKind::Service {
            service: service.to_owned(),
            name: event.name,
            data: event.data,
        }));
    }
}

fn parse_mode(format: Format) -> Option<ParseMode> {
    match format {
        Format::Plain => None,
        Format::Html => Some(ParseMode::Html),
    }
}

fn markup(keyboard: Vec<Vec<Button>>) -> Option<InlineKeyboardMarkup> {
    (!keyboard.is_empty()).then(|| InlineKeyboardMarkup {
        inline_keyboard: keyboard
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|b| InlineKeyboardButton {
                        text: b.text,
                        callback_data: b.callback_data,
                        url: b.url,
                    })
                    .collect()
            })
            .collect(),
    })
}

fn chat_kind(kind: ChatKind) -> &'static str {
    match kind {
        ChatKind::Private => "private",
        ChatKind::Group => "group",
        ChatKind::Supergroup => "supergroup",
        ChatKind::Channel => "channel",
        ChatKind::Other => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::UnixSecs;
    use crate::config::Config;
    use crate::engine::router::Router;
    use crate::handlers::testing::{update, user};
    use crate::store::records::Session;
    use crate::telegram::types::UpdateKind;

    fn reply(actions: Vec<ReplyAction>, session: SessionOutcome) -> Reply {
        Reply {
            actions,
            session,
            events: vec![crate::gateway::contract::ReplyEvent {
                name: "seen".into(),
                data: "{}".into(),
            }],
        }
    }

    #[test]
    fn a_reply_becomes_actions_a_session_edit_and_events() {
        let update = update("/start");
        let UpdateKind::Message(message) = &update.kind else {
            unreachable!()
        };
        let user = user();
        let router = Router::from_config(&Config::default()).unwrap();
        let session = Session {
            conversation: None,
            internal_user_id: Some("u-7".into()),
            state: None,
            data: "{}".into(),
            ttl_secs: 60,
            expires_at: UnixSecs(1_700_000_300),
        };
        let ctx = Context {
            update_id: 1,
            update_kind: "message",
            chat_id: 7,
            topic: None,
            message: Some(message),
            callback: None,
            command: Some("start"),
            args: "",
            user: Some(&user),
            is_new_user: false,
            conversation: None,
            session: Some(session),
            router: &router,
            ml: None,
            analysis: None,
            live: None,
            bot_username: None,
            now: UnixSecs(1_700_000_200),
            session_ttl_secs: 600,
        };
        let mut out = Outcome::default();
        let actions = vec![
            ReplyAction::Send {
                text: "<i>hi</i>".into(),
                format: Format::Html,
                keyboard: vec![vec![Button {
                    text: "Site".into(),
                    callback_data: None,
                    url: Some("https://example.com".into()),
                }]],
                reply: true,
            },
            ReplyAction::Delete,
        ];
        apply(
            reply(actions, SessionOutcome::Keep),
            "profile",
            &ctx,
            &mut out,
        );
        let [Action::SendMessage(sent), Action::DeleteMessage(deleted)] = out.actions.as_slice()
        else {
            panic!("{:?}", out.actions)
        };
        assert_eq!(sent.parse_mode, Some(ParseMode::Html));
        assert_eq!(
            sent.reply_parameters.as_ref().map(|r| r.message_id),
            Some(10)
        );
        assert_eq!(
            sent.reply_markup.as_ref().unwrap().inline_keyboard[0][0]
                .url
                .as_deref(),
            Some("https://example.com")
        );
        assert_eq!((deleted.chat_id, deleted.message_id), (7, 10));
        // An existing session that was used lives on.
        assert_eq!(out.session.as_ref().unwrap().edit, SessionEdit::Touch);
        assert_eq!(
            out.events[0].kind,
            EventKind::Service {
                service: "profile".into(),
                name: "seen".into(),
                data: "{}".into()
            }
        );

        let mut out = Outcome::default();
        apply(
            reply(Vec::new(), SessionOutcome::End),
            "profile",
            &ctx,
            &mut out,
        );
        assert_eq!(out.session.unwrap().edit, SessionEdit::End);
    }
}

//! The commands around a conversation: `/mode` (the personality, chosen with buttons
//! and kept per user), `/reset` (a new dialog), `/retry` (the last answer again),
//! `/forget` (delete what is stored about the user's conversations) and `/usage`.

use super::{Conversations, Current, Exchange, converse, day_of, dialog_key};
use crate::calendar::civil_month;
use crate::config::MODE_PREFIX;
use crate::engine::context::{Context, Outcome};
use crate::store::records::{ConversationChange, Speaker, Usage};
use crate::telegram::methods::{Action, AnswerCallbackQuery, EditMessageText};
use crate::telegram::types::{InlineKeyboardButton, InlineKeyboardMarkup};

/// `/mode` lists the personalities as buttons; pressing one chooses it.
pub(crate) async fn mode(conversations: &Conversations, ctx: &Context<'_>, out: &mut Outcome) {
    let Some(user) = ctx.user else { return };
    let chosen = match conversations.store.personality_of(user.id) {
        Ok(chosen) => chosen,
        Err(e) => {
            tracing::error!(error = %e, "could not read a personality choice");
            None
        }
    };
    match ctx.callback {
        None => {
            let current = chosen.or_else(|| conversations.order.first().cloned());
            let mut text = String::from("Who would you like to talk to?\n");
            let mut rows = Vec::new();
            for name in &conversations.order {
                let Some(p) = conversations.personalities.get(name) else {
                    continue;
                };
                let title = p.title.as_str();
                text.push_str(&format!("\n• {title}"));
                if !p.description.is_empty() {
                    text.push_str(&format!(" — {}", p.description));
                }
                let mark = if current.as_deref() == Some(name.as_str()) {
                    "✓ "
                } else if conversations.entitled_to(user, p.requires.as_deref()) {
                    ""
                } else {
                    "🔒 "
                };
                rows.push(vec![InlineKeyboardButton {
                    text: format!("{mark}{title}"),
                    callback_data: Some(format!("{MODE_PREFIX}{name}")),
                    url: None,
                }]);
            }
            out.send_with(
                ctx,
                text,
                Some(InlineKeyboardMarkup {
                    inline_keyboard: rows,
                }),
                false,
            );
        }
        Some(query) => {
            let name = query
                .data
                .as_deref()
                .and_then(|d| d.strip_prefix(MODE_PREFIX))
                .unwrap_or("");
            let answer = |text: String, alert: bool| {
                Action::AnswerCallbackQuery(AnswerCallbackQuery {
                    callback_query_id: query.id.clone(),
                    text: Some(text),
                    show_alert: alert,
                })
            };
            let Some(p) = conversations.personalities.get(name) else {
                out.actions
                    .push(answer("That mode is no longer offered.".into(), true));
                return;
            };
            if !conversations.entitled_to(user, p.requires.as_deref()) {
                let needs = p.requires.as_deref().unwrap_or_default();
                out.actions
                    .push(answer(format!("“{}” needs {needs}.", p.title), true));
                return;
            }
            out.actions.push(answer(format!("Now: {}", p.title), false));
            out.conversation.push(ConversationChange::Choose {
                user_id: user.id,
                personality: p.name.clone(),
            });
            out.conversation.push(ConversationChange::Reset {
                key: dialog_key(ctx),
                at: ctx.now,
            });
            if let Some(message) = ctx.message {
                out.actions.push(Action::EditMessageText(EditMessageText {
                    chat_id: ctx.chat_id,
                    message_id: message.message_id,
                    text: format!("You are talking to {}. /mode changes it.", p.title),
                    parse_mode: None,
                    reply_markup: None,
                }));
            }
            if let Some(welcome) = &p.welcome {
                out.send(ctx, welcome.clone());
            }
        }
    }
}

/// `/reset`: the next message opens a new dialog.
pub(crate) async fn reset(_conversations: &Conversations, ctx: &Context<'_>, out: &mut Outcome) {
    out.conversation.push(ConversationChange::Reset {
        key: dialog_key(ctx),
        at: ctx.now,
    });
    out.send(
        ctx,
        "Started a new conversation. What shall we talk about?".into(),
    );
}

/// `/forget`: every dialog in the private chat, the user's turns in groups and their
/// chosen personality are deleted in this update's commit.
pub(crate) async fn forget(_conversations: &Conversations, ctx: &Context<'_>, out: &mut Outcome) {
    let Some(user_id) = ctx.user_id() else { return };
    out.conversation
        .push(ConversationChange::Forget { user_id });
    out.send(
        ctx,
        "Done: I deleted our conversations and your chosen mode. Token counts stay, for your budget."
            .into(),
    );
}

/// `/usage`: tokens spent today and this month, against the user's budgets.
pub(crate) async fn usage(conversations: &Conversations, ctx: &Context<'_>, out: &mut Outcome) {
    let Some(user) = ctx.user else { return };
    let day = day_of(ctx.now);
    let (today, month) =
        match conversations
            .store
            .usage_of(user.id, day, civil_month(i64::from(day)))
        {
            Ok(usage) => usage,
            Err(e) => {
                tracing::error!(error = %e, "could not read usage");
                out.send(ctx, conversations.settings.apology.clone());
                return;
            }
        };
    let (daily, monthly) = conversations.budget_of(user);
    let line = |label: &str, usage: &Usage, budget: u64| {
        let spent = usage.input_tokens + usage.output_tokens;
        let of = if budget == 0 {
            "no limit".to_owned()
        } else {
            format!("of {budget}")
        };
        format!("{label}: {spent} tokens {of}, in {} answers", usage.turns)
    };
    out.send(
        ctx,
        format!(
            "{}\n{}",
            line("Today", &today, daily),
            line("This month", &month, monthly)
        ),
    );
}

/// `/retry`: the dialog's last answer, generated again, replaces the stored one.
pub(crate) async fn retry(conversations: &Conversations, ctx: &Context<'_>, out: &mut Outcome) {
    let Some(user) = ctx.user else { return };
    let key = dialog_key(ctx);
    let exchange = async {
        let Current::Continues(dialog) = conversations.current_dialog(key, ctx.now)? else {
            return Ok(None);
        };
        let mut turns = conversations
            .store
            .turns(key, dialog.number, dialog.summarized_upto)?;
        let answered = turns.len() >= 2
            && turns[turns.len() - 1].speaker == Speaker::Assistant
            && turns[turns.len() - 2].speaker == Speaker::User;
        if !answered {
            return Ok(None);
        }
        turns.pop();
        let question = turns.pop().map(|t| t.text).unwrap_or_default();
        let Some(personality) = conversations.personalities.get(&dialog.personality) else {
            return Ok(None);
        };
        if !conversations.entitled_to(user, personality.requires.as_deref()) {
            return Ok(None);
        }
        Ok::<_, super::Refusal>(Some(Exchange {
            personality,
            key,
            number: dialog.number,
            summary: dialog.summary,
            summarized_upto: dialog.summarized_upto,
            history: turns,
            question,
            retry: true,
        }))
    };
    match exchange.await {
        Ok(Some(exchange)) => match conversations.over_budget(user, ctx.now) {
            Ok(None) => converse(conversations, exchange, ctx, out).await,
            Ok(Some(words)) => out.send(ctx, words),
            Err(e) => {
                tracing::error!(error = %e, "could not read usage");
                out.send(ctx, conversations.settings.apology.clone());
            }
        },
        Ok(None) => out.send(ctx, "There is no answer to retry yet.".into()),
        Err(e) => {
            tracing::error!(error = %e, "could not read a dialog");
            out.send(ctx, conversations.settings.apology.clone());
        }
    }
}

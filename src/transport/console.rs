//! The console transport: a person at a terminal (or a script on a pipe) talks to the
//! bot as a local Telegram user, through the same engine, router and store.
//!
//! Each line becomes a message update; a number presses the button of that number on
//! the bot's last keyboard (a callback query). The bot's actions are rendered as text and
//! then removed from the outbox, as a sender would after Telegram accepted them.

use crate::calendar::UnixSecs;
use crate::engine::Engine;
use crate::engine::outbound::action_of;
use crate::store::{Finished, OutboxCall, StoreError};
use crate::telegram::methods::Action;
use crate::telegram::types::{
    CallbackQuery, Chat, ChatKind, InlineKeyboardButton, Message, MessageEntity, Update,
    UpdateKind, User,
};
use std::io::{BufRead, Write};

/// Who the person at the console is.
#[derive(Debug, Clone)]
pub struct LocalUser {
    pub id: i64,
    pub first_name: String,
    pub username: Option<String>,
    pub language_code: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("console: {0}")]
    Io(#[from] std::io::Error),
}

pub struct Console<'e> {
    engine: &'e Engine,
    user: User,
    /// The buttons of the bot's last keyboard, numbered from 1, with the message they
    /// belong to.
    buttons: Vec<(i64, InlineKeyboardButton)>,
    next_message_id: i64,
    interactive: bool,
}

impl<'e> Console<'e> {
    pub fn new(engine: &'e Engine, user: LocalUser, interactive: bool) -> Console<'e> {
        Console {
            engine,
            user: User {
                id: user.id,
                is_bot: false,
                first_name: user.first_name,
                last_name: None,
                username: user.username,
                language_code: user.language_code,
            },
            buttons: Vec::new(),
            next_message_id: 1,
            interactive,
        }
    }

    /// Reads lines until `/quit` or the end of input.
    pub async fn run(
        &mut self,
        input: impl BufRead,
        output: &mut impl Write,
    ) -> Result<(), ConsoleError> {
        if self.interactive {
            writeln!(
                output,
                "Talking to the bot as {} (id {}). Type /help, /quit to leave; a number presses a button.",
                self.user.first_name, self.user.id
            )?;
            prompt(output)?;
        }
        for line in input.lines() {
            let line = line?;
            let text = line.trim();
            if text == "/quit" {
                break;
            }
            if !text.is_empty() {
                self.say(text, output).await?;
            }
            if self.interactive {
                prompt(output)?;
            }
        }
        Ok(())
    }

    /// Sends one line to the bot and prints what it answers.
    pub(crate) async fn say(
        &mut self,
        text: &str,
        output: &mut impl Write,
    ) -> Result<(), ConsoleError> {
        let update_id = self.engine.store().next_console_update_id().await?;
        let kind = match self.pressed_button(text) {
            Some((message_id, button)) => match (button.callback_data, button.url) {
                (Some(data), _) => UpdateKind::CallbackQuery(CallbackQuery {
                    id: update_id.to_string(),
                    from: self.user.clone(),
                    message: Some(self.message(message_id, None)),
                    data: Some(data),
                }),
                (None, Some(url)) => {
                    writeln!(output, "(this button opens {url})")?;
                    return Ok(());
                }
                (None, None) => return Ok(()),
            },
            None => {
                let id = self.fresh_message_id();
                UpdateKind::Message(self.message(id, Some(text)))
            }
        };
        let update = Update { update_id, kind };
        if let Finished::Committed(entries) = self.engine.process(&update).await? {
            for entry in entries {
                self.render(&entry.call, output)?;
                self.engine.store().outbox_done(entry.seq).await?;
            }
        }
        output.flush()?;
        Ok(())
    }

    fn pressed_button(&self, text: &str) -> Option<(i64, InlineKeyboardButton)> {
        let n: usize = text.parse().ok()?;
        self.buttons.get(n.checked_sub(1)?).cloned()
    }

    fn fresh_message_id(&mut self) -> i64 {
        self.next_message_id += 1;
        self.next_message_id
    }

    fn message(&self, message_id: i64, text: Option<&str>) -> Message {
        let entities = match text {
            Some(t) if t.starts_with('/') => vec![MessageEntity {
                kind: "bot_command".into(),
                offset: 0,
                length: t
                    .split_whitespace()
                    .next()
                    .map_or(0, |c| c.encode_utf16().count()),
            }],
            _ => Vec::new(),
        };
        Message {
            is_topic_message: None,
            message_id,
            date: UnixSecs::now().get(),
            chat: Chat {
                id: self.user.id,
                kind: ChatKind::Private,
                title: None,
                username: self.user.username.clone(),
            },
            from: Some(self.user.clone()),
            message_thread_id: None,
            text: text.map(str::to_owned),
            caption: None,
            entities,
            reply_to_message: None,
            new_chat_members: Vec::new(),
        }
    }

    fn render(&mut self, call: &OutboxCall, out: &mut impl Write) -> std::io::Result<()> {
        // The bot's own calls are its actions; anything else is shown by its method.
        let Ok(action) = action_of(call) else {
            return writeln!(out, "(the bot called {})", call.method);
        };
        match &action {
            Action::SendMessage(m) => {
                let id = self.fresh_message_id();
                writeln!(out, "bot: {}", m.text.replace('\n', "\n     "))?;
                if let Some(markup) = &m.reply_markup {
                    self.show_keyboard(id, &markup.inline_keyboard, out)?;
                }
            }
            Action::EditMessageText(m) => {
                writeln!(out, "bot (edited): {}", m.text.replace('\n', "\n     "))?;
                if let Some(markup) = &m.reply_markup {
                    self.show_keyboard(m.message_id, &markup.inline_keyboard, out)?;
                }
            }
            Action::AnswerCallbackQuery(a) => {
                if let Some(text) = &a.text {
                    writeln!(out, "bot (notice): {text}")?;
                }
            }
            Action::DeleteMessage(_) => writeln!(out, "(the bot deleted a message)")?,
            Action::BanChatMember(b) => writeln!(out, "(the bot banned user {})", b.user_id)?,
        }
        Ok(())
    }

    fn show_keyboard(
        &mut self,
        message_id: i64,
        rows: &[Vec<InlineKeyboardButton>],
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        self.buttons.clear();
        for row in rows {
            let mut line = String::from("    ");
            for button in row {
                self.buttons.push((message_id, button.clone()));
                line.push_str(&format!("[{}] {}", self.buttons.len(), button.text));
                if button.url.is_some() {
                    line.push_str(" ↗");
                }
                line.push_str("  ");
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

fn prompt(out: &mut impl Write) -> std::io::Result<()> {
    write!(out, "you> ")?;
    out.flush()
}

//! The routing table: from what arrived (a command, a button's callback data, a text, a
//! chat kind) to what answers it (a built-in handler, a reply template or an internal
//! service).
//!
//! It is built once from the config, on top of the built-in routes, and looked up with
//! hash maps and one ordered prefix list — no chains of `if`. Lookups go from the most
//! specific trigger to the least: command, callback prefix, exact text, chat kind,
//! fallback.

use crate::config::{
    ChatKindConfig, Config, HandlerName, ReplyTemplate, RouteConfig, TargetConfig, Trigger,
};
use crate::store::records::ConversationState;
use crate::telegram::types::{ChatKind, InlineKeyboardMarkup};
use crate::template::{Template, TemplateError};
use std::collections::HashMap;
use std::sync::Arc;

/// What answers a route.
#[derive(Debug, Clone)]
pub enum Target {
    Handler(HandlerName),
    Reply(Arc<Reply>),
    /// The `[[services]]` entry of this name.
    Service(Arc<str>),
    /// A conversation with a language model.
    Llm(Arc<LlmRoute>),
}

/// A route to a conversation.
#[derive(Debug)]
pub struct LlmRoute {
    /// The `[[personalities]]` entry the route names.
    pub(crate) personality: String,
    /// Whether the user's `/mode` choice overrides it: true for the fallback, where free
    /// text goes, false for a route that names its personality on purpose.
    pub(crate) follows_choice: bool,
}

impl Target {
    /// Whether answering waits on something outside the process. A slow route's update
    /// is kept in the inbox and acknowledged before it is handled, so that no transport
    /// waits on a remote call.
    pub(crate) fn is_slow(&self) -> bool {
        matches!(
            self,
            Target::Service(_) | Target::Llm(_) | Target::Handler(HandlerName::Retry)
        )
    }

    /// The name metrics give the route.
    pub(crate) fn name(&self) -> &str {
        match self {
            Target::Handler(name) => name.as_str(),
            Target::Reply(_) => "reply",
            Target::Service(_) => "service",
            Target::Llm(_) => "llm",
        }
    }
}

/// A reply template ready to render.
#[derive(Debug, Clone)]
pub struct Reply {
    pub text: Template,
    pub(crate) reply_to_message: bool,
    pub(crate) keyboard: Option<InlineKeyboardMarkup>,
}

/// What the engine asks the router about.
#[derive(Debug, Clone, Copy)]
pub enum Incoming<'a> {
    Command(&'a str),
    Callback(&'a str),
    Text {
        text: &'a str,
        chat: ChatKind,
    },
    /// A message without text (a photo without caption, a sticker…).
    Other {
        chat: ChatKind,
    },
    /// A text that continues an open conversation (the next step after `/feedback`).
    Conversation(ConversationState),
}

/// A command for /help: its name and description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandHelp {
    pub(crate) name: String,
    pub(crate) description: String,
}

#[derive(Debug)]
pub struct Router {
    commands: HashMap<String, Target>,
    /// Longest prefix first, so the most specific one wins.
    callbacks: Vec<(String, Target)>,
    texts: HashMap<String, Target>,
    chat_kinds: HashMap<ChatKindConfig, Target>,
    /// Who continues each conversation a handler opened.
    conversations: HashMap<ConversationState, Target>,
    fallback: Target,
    help: Vec<CommandHelp>,
}

#[derive(Debug, thiserror::Error)]
#[error("route `{trigger}`: {source}")]
pub struct RouterError {
    trigger: String,
    source: TemplateError,
}

/// The routes every bot has unless its config replaces them.
pub(crate) fn builtin_routes() -> Vec<RouteConfig> {
    let handler = |command: &str, handler, description: &str| RouteConfig {
        trigger: Trigger::Command(command.into()),
        target: TargetConfig::Handler { handler },
        description: Some(description.into()),
    };
    vec![
        handler("start", HandlerName::Start, "Register and get a greeting"),
        handler("help", HandlerName::Help, "List the commands"),
        handler("profile", HandlerName::Profile, "What the bot knows about you"),
        handler("feedback", HandlerName::Feedback, "Send a note to the bot's owner"),
        handler("analyze", HandlerName::Analyze, "Spam and sentiment of a text (or reply to a message)"),
        RouteConfig {
            trigger: Trigger::Command("about".into()),
            target: TargetConfig::Reply(ReplyTemplate {
                reply: "edgebot: one binary, one file of state, no servers behind it. Did this help, {first_name}?".into(),
                reply_to_message: false,
                keyboard: vec![vec![
                    button("Yes", "about:yes"),
                    button("Not really", "about:no"),
                ]],
            }),
            description: Some("About this bot".into()),
        },
        RouteConfig {
            trigger: Trigger::CallbackPrefix("about:".into()),
            target: TargetConfig::Reply(ReplyTemplate {
                reply: "Thanks for telling me, {first_name}!".into(),
                reply_to_message: false,
                keyboard: Vec::new(),
            }),
            description: None,
        },
    ]
}

fn button(text: &str, data: &str) -> crate::telegram::types::InlineKeyboardButton {
    crate::telegram::types::InlineKeyboardButton {
        text: text.into(),
        callback_data: Some(data.into()),
        url: None,
    }
}

impl Router {
    /// Builds the table: the built-in routes, then the config's, a later route replacing
    /// an earlier one with the same trigger.
    pub fn from_config(config: &Config) -> Result<Router, RouterError> {
        let mut router = Router {
            commands: HashMap::new(),
            callbacks: Vec::new(),
            texts: HashMap::new(),
            chat_kinds: HashMap::new(),
            conversations: HashMap::from([(
                ConversationState::AwaitingFeedback,
                Target::Handler(HandlerName::Feedback),
            )]),
            fallback: Target::Handler(HandlerName::Fallback),
            help: Vec::new(),
        };
        let mut descriptions: Vec<(String, Option<String>)> = Vec::new();
        let conversation_routes = if config.personalities.is_empty() {
            Vec::new()
        } else {
            conversation_routes()
        };
        for route in builtin_routes()
            .iter()
            .chain(&conversation_routes)
            .chain(&config.routes)
        {
            let target = compile(&route.target, false).map_err(|source| RouterError {
                trigger: format!("{:?}", route.trigger),
                source,
            })?;
            match &route.trigger {
                Trigger::Command(name) => {
                    router.commands.insert(name.clone(), target);
                    descriptions.retain(|(n, _)| n != name);
                    descriptions.push((name.clone(), route.description.clone()));
                }
                Trigger::CallbackPrefix(prefix) => {
                    router.callbacks.retain(|(p, _)| p != prefix);
                    router.callbacks.push((prefix.clone(), target));
                }
                Trigger::Text(text) => {
                    router.texts.insert(text.clone(), target);
                }
                Trigger::ChatKind(kind) => {
                    router.chat_kinds.insert(*kind, target);
                }
            }
        }
        if let Some(fallback) = &config.fallback {
            router.fallback = compile(fallback, true).map_err(|source| RouterError {
                trigger: "fallback".into(),
                source,
            })?;
        }
        router
            .callbacks
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        router.help = descriptions
            .into_iter()
            .filter(|(name, _)| {
                !matches!(
                    router.commands.get(name),
                    Some(Target::Handler(HandlerName::Ignore))
                )
            })
            .map(|(name, description)| CommandHelp {
                description: description.unwrap_or_default(),
                name,
            })
            .collect();
        Ok(router)
    }

    /// The route for what arrived. `None` for an unknown callback: a stale button is
    /// acknowledged, not answered with the fallback.
    pub fn route(&self, incoming: Incoming<'_>) -> Option<&Target> {
        match incoming {
            Incoming::Command(name) => Some(self.commands.get(name).unwrap_or(&self.fallback)),
            Incoming::Callback(data) => self
                .callbacks
                .iter()
                .find(|(prefix, _)| data.starts_with(prefix.as_str()))
                .map(|(_, target)| target),
            Incoming::Text { text, chat } => {
                let key = text.trim().to_lowercase();
                // In a group most messages are people talking to each other: the
                // fallback answers only in private chats, but for a conversation, which
                // the engine lets answer only when addressed.
                self.texts
                    .get(&key)
                    .or_else(|| self.by_chat_kind(chat))
                    .or(
                        (chat == ChatKind::Private || matches!(self.fallback, Target::Llm(_)))
                            .then_some(&self.fallback),
                    )
            }
            Incoming::Other { chat } => self.by_chat_kind(chat),
            Incoming::Conversation(state) => self.conversations.get(&state),
        }
    }

    fn by_chat_kind(&self, chat: ChatKind) -> Option<&Target> {
        let kind = match chat {
            ChatKind::Private => ChatKindConfig::Private,
            ChatKind::Group | ChatKind::Supergroup => ChatKindConfig::Group,
            ChatKind::Channel => ChatKindConfig::Channel,
            ChatKind::Other => return None,
        };
        self.chat_kinds.get(&kind)
    }

    /// The commands and their descriptions, in table order, for /help.
    pub(crate) fn commands(&self) -> &[CommandHelp] {
        &self.help
    }

    /// Whether any route reacts to buttons; decides `allowed_updates`.
    pub(crate) fn wants_callbacks(&self) -> bool {
        !self.callbacks.is_empty()
    }
}

/// The commands a bot with personalities has, unless its config replaces them.
fn conversation_routes() -> Vec<RouteConfig> {
    let handler = |trigger, handler, description: Option<&str>| RouteConfig {
        trigger,
        target: TargetConfig::Handler { handler },
        description: description.map(Into::into),
    };
    let command = |name: &str| Trigger::Command(name.into());
    vec![
        handler(
            command("mode"),
            HandlerName::Mode,
            Some("Choose who you talk to"),
        ),
        handler(
            Trigger::CallbackPrefix(crate::config::MODE_PREFIX.into()),
            HandlerName::Mode,
            None,
        ),
        handler(
            command("reset"),
            HandlerName::Reset,
            Some("Start a new conversation"),
        ),
        handler(
            command("retry"),
            HandlerName::Retry,
            Some("Answer my last message again"),
        ),
        handler(
            command("forget"),
            HandlerName::Forget,
            Some("Delete our conversations"),
        ),
        handler(
            command("usage"),
            HandlerName::Usage,
            Some("Tokens used today and this month"),
        ),
    ]
}

/// A route's target, ready to run; `fallback` marks the one free text goes to.
fn compile(target: &TargetConfig, fallback: bool) -> Result<Target, TemplateError> {
    Ok(match target {
        TargetConfig::Llm { llm } => Target::Llm(Arc::new(LlmRoute {
            personality: llm.clone(),
            follows_choice: fallback,
        })),
        TargetConfig::Handler { handler } => Target::Handler(*handler),
        TargetConfig::Service { service } => Target::Service(service.as_str().into()),
        TargetConfig::Reply(template) => Target::Reply(Arc::new(Reply {
            text: Template::parse(&template.reply)?,
            reply_to_message: template.reply_to_message,
            keyboard: (!template.keyboard.is_empty()).then(|| InlineKeyboardMarkup {
                inline_keyboard: template.keyboard.clone(),
            }),
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn router(toml: &str) -> Router {
        Router::from_config(&Config::parse(toml, Path::new("t.toml")).unwrap()).unwrap()
    }

    fn handler(target: Option<&Target>) -> Option<HandlerName> {
        match target {
            Some(Target::Handler(h)) => Some(*h),
            _ => None,
        }
    }

    #[test]
    fn builtin_routes_work_with_no_config() {
        let r = router("");
        assert_eq!(
            handler(r.route(Incoming::Command("start"))),
            Some(HandlerName::Start)
        );
        assert_eq!(
            handler(r.route(Incoming::Command("nope"))),
            Some(HandlerName::Fallback)
        );
        let text = Incoming::Text {
            text: "hi",
            chat: ChatKind::Private,
        };
        assert_eq!(handler(r.route(text)), Some(HandlerName::Fallback));
        assert!(matches!(
            r.route(Incoming::Callback("about:yes")),
            Some(Target::Reply(_))
        ));
        assert!(r.route(Incoming::Callback("stale")).is_none());
        let names: Vec<_> = r.commands().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["start", "help", "profile", "feedback", "analyze", "about"]
        );
    }

    #[test]
    fn config_routes_replace_and_extend() {
        let r = router(
            r#"
[[routes]]
command = "help"
reply = "Ask {first_name}"
description = "Custom help"

[[routes]]
text = "Hello There"
handler = "profile"

[[routes]]
callback_prefix = "about:y"
handler = "ignore"

[[routes]]
chat_kind = "group"
handler = "ignore"

[fallback]
handler = "ignore"
"#,
        );
        assert!(matches!(
            r.route(Incoming::Command("help")),
            Some(Target::Reply(_))
        ));
        let hello = Incoming::Text {
            text: "  hello there ",
            chat: ChatKind::Private,
        };
        assert_eq!(handler(r.route(hello)), Some(HandlerName::Profile));
        assert_eq!(
            handler(r.route(Incoming::Callback("about:yes"))),
            Some(HandlerName::Ignore)
        );
        assert!(matches!(
            r.route(Incoming::Callback("about:no")),
            Some(Target::Reply(_))
        ));
        let group = Incoming::Text {
            text: "random",
            chat: ChatKind::Supergroup,
        };
        assert_eq!(handler(r.route(group)), Some(HandlerName::Ignore));
        let private = Incoming::Text {
            text: "random",
            chat: ChatKind::Private,
        };
        assert_eq!(handler(r.route(private)), Some(HandlerName::Ignore));
        let channel = Incoming::Text {
            text: "random",
            chat: ChatKind::Channel,
        };
        assert!(
            r.route(channel).is_none(),
            "no fallback outside private chats"
        );
        let help = r.commands().iter().find(|c| c.name == "help").unwrap();
        assert_eq!(help.description, "Custom help");
    }
}

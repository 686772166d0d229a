//! The records kept in the store, and the changes a finished update makes to them.
//!
//! These types are encoded with [`super::codec`], whose layout is frozen per version:
//! change a field and you add a version and a migration. They name nothing outside the
//! store except the unix times of the leaf [`crate::calendar`], which encode as the bare
//! `i64` they wrap; a stored outbox call is the store's own record, not the wire model's
//! action.

use crate::calendar::{UnixMillis, UnixSecs};
use serde::{Deserialize, Serialize};

/// What the bot knows about one Telegram user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: i64,
    pub username: Option<String>,
    pub first_name: String,
    pub last_name: Option<String>,
    pub language_code: Option<String>,
    pub role: Role,
    pub status: UserStatus,
    /// Who shared the `ref_` link this user started from.
    pub referrer: Option<i64>,
    /// How many users started from this user's link.
    pub referrals: u32,
    pub message_count: u64,
    pub first_seen: UnixSecs,
    pub last_seen: UnixSecs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    /// As serde writes it: `user` or `admin`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    /// Banned by an admin: the guard drops what they send.
    Banned,
    /// The user blocked the bot (Telegram answered 403): nothing is sent to them.
    Blocked,
}

/// The names Telegram reports for a user, refreshed on every update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub username: Option<String>,
    pub first_name: String,
    pub last_name: Option<String>,
    pub language_code: Option<String>,
}

/// A change to one user, applied inside the write transaction so that concurrent
/// updates of the same user (in different chats) never lose a count.
#[derive(Debug, Clone, PartialEq)]
pub struct UserDelta {
    pub id: i64,
    pub profile: Option<Profile>,
    /// Messages to add to `message_count`.
    pub messages: u64,
    /// When the update came; becomes `last_seen` (and `first_seen` for a new user).
    pub(crate) seen_at: UnixSecs,
    /// The referrer, recorded only when this delta creates the user.
    pub referrer: Option<i64>,
    pub status: Option<UserStatus>,
    pub role: Option<Role>,
}

impl UserDelta {
    pub fn new(id: i64, seen_at: UnixSecs) -> UserDelta {
        UserDelta {
            id,
            profile: None,
            messages: 0,
            seen_at,
            referrer: None,
            status: None,
            role: None,
        }
    }

    /// The record as it is after this change, from what was stored before it.
    pub fn apply(&self, before: Option<UserRecord>) -> UserRecord {
        let mut user = before.unwrap_or_else(|| UserRecord {
            id: self.id,
            username: None,
            first_name: String::new(),
            last_name: None,
            language_code: None,
            role: Role::User,
            status: UserStatus::Active,
            referrer: self.referrer.filter(|r| *r != self.id),
            referrals: 0,
            message_count: 0,
            first_seen: self.seen_at,
            last_seen: self.seen_at,
        });
        if let Some(profile) = &self.profile {
            user.username.clone_from(&profile.username);
            user.first_name.clone_from(&profile.first_name);
            user.last_name.clone_from(&profile.last_name);
            if profile.language_code.is_some() {
                user.language_code.clone_from(&profile.language_code);
            }
        }
        // Saturating: a stored count near the maximum is damage, and must not panic.
        user.message_count = user.message_count.saturating_add(self.messages);
        user.last_seen = user.last_seen.max(self.seen_at);
        if let Some(status) = self.status {
            user.status = status;
        }
        if let Some(role) = self.role {
            user.role = role;
        }
        user
    }
}

/// What edgebot keeps about a user in a chat between updates: a built-in conversation
/// waiting for their next text, and a service's own view of them. It lives `ttl_secs`
/// after its last use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The built-in conversation that the user's next text continues, if one is open.
    pub conversation: Option<ConversationState>,
    /// A service's own id for this user.
    pub internal_user_id: Option<String>,
    /// A service's name for where the user is.
    pub state: Option<String>,
    /// A service's data: a JSON object, as text.
    pub data: String,
    pub ttl_secs: u32,
    /// When the session is void.
    pub expires_at: UnixSecs,
}

impl Session {
    /// Whether nothing is left worth keeping.
    fn is_empty(&self) -> bool {
        self.conversation.is_none()
            && self.internal_user_id.is_none()
            && self.state.is_none()
            && self.data == "{}"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    /// `/feedback` asked for a message; the next text is the feedback.
    AwaitingFeedback,
}

/// What a finished update does to the session of its chat and user. It is applied to
/// the stored session inside the commit, so a built-in conversation and a service
/// never overwrite each other's part.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionChange {
    pub chat_id: i64,
    pub user_id: i64,
    /// When the update was handled: the session lives its TTL from then.
    pub at: UnixSecs,
    /// The TTL of a session that names none.
    pub default_ttl_secs: u32,
    pub edit: SessionEdit,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SessionEdit {
    /// Opens (`Some`) or closes (`None`) the built-in conversation.
    Conversation(Option<ConversationState>),
    /// A service's part, replaced as a whole.
    Service {
        internal_user_id: Option<String>,
        state: Option<String>,
        data: String,
        ttl_secs: Option<u32>,
    },
    /// Used and unchanged: it lives another TTL.
    Touch,
    /// Gone, every part of it.
    End,
}

impl SessionChange {
    /// The session after this change, given the one stored (already checked to be
    /// live); `None` when nothing is left of it.
    pub(crate) fn applied_to(&self, stored: Option<Session>) -> Option<Session> {
        let mut session = stored.unwrap_or(Session {
            conversation: None,
            internal_user_id: None,
            state: None,
            data: "{}".into(),
            ttl_secs: self.default_ttl_secs,
            expires_at: self.at,
        });
        match &self.edit {
            SessionEdit::Conversation(state) => session.conversation = *state,
            SessionEdit::Service {
                internal_user_id,
                state,
                data,
                ttl_secs,
            } => {
                session.internal_user_id = internal_user_id.clone();
                session.state = state.clone();
                session.data = data.clone();
                session.ttl_secs = ttl_secs.unwrap_or(self.default_ttl_secs);
            }
            SessionEdit::Touch => {}
            SessionEdit::End => return None,
        }
        session.expires_at = self.at + i64::from(session.ttl_secs);
        (!session.is_empty()).then_some(session)
    }
}

/// One line of the append-only analytics log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at_ms: UnixMillis,
    pub user_id: Option<i64>,
    pub chat_id: Option<i64>,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    UserJoined {
        referrer: Option<i64>,
    },
    Command {
        name: String,
    },
    Callback {
        data: String,
    },
    Feedback {
        text: String,
    },
    /// The inbound limit dropped one of this user's updates.
    RateLimited,
    /// Telegram said the user blocked the bot.
    BlockedBot,
    /// What the models made of a text message (never the text itself).
    Text {
        sentiment: String,
        sentiment_score: f32,
        spam_score: f32,
    },
    /// An event a service asked to record (`events` in its response).
    Service {
        service: String,
        name: String,
        /// A JSON object, as text.
        data: String,
    },
    /// One answer of a language model, or the failure to get one (never the text).
    LlmTurn {
        personality: String,
        /// The provider that answered; empty when none did.
        provider: String,
        input_tokens: u32,
        output_tokens: u32,
        ok: bool,
    },
    /// A text kept from the language model: `spam` or `budget`.
    LlmRefused {
        reason: String,
    },
}

impl EventKind {
    /// Every [`EventKind::name`], for filters.
    pub(crate) const NAMES: [&'static str; 10] = [
        "user_joined",
        "command",
        "callback",
        "feedback",
        "rate_limited",
        "blocked_bot",
        "text",
        "service",
        "llm_turn",
        "llm_refused",
    ];

    pub(crate) fn name(&self) -> &'static str {
        match self {
            EventKind::UserJoined { .. } => "user_joined",
            EventKind::Command { .. } => "command",
            EventKind::Callback { .. } => "callback",
            EventKind::Feedback { .. } => "feedback",
            EventKind::RateLimited => "rate_limited",
            EventKind::BlockedBot => "blocked_bot",
            EventKind::Text { .. } => "text",
            EventKind::Service { .. } => "service",
            EventKind::LlmTurn { .. } => "llm_turn",
            EventKind::LlmRefused { .. } => "llm_refused",
        }
    }
}

/// A body that did not parse as an update, kept for inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MalformedUpdate {
    pub received_at: UnixSecs,
    pub error: String,
    pub raw: Vec<u8>,
}

/// A Bot API call waiting in the outbox, as the store keeps it: the method, the chat it
/// writes to and the JSON body of the call. Frozen here, apart from the wire model, so
/// that a change to the bot's actions never changes the file; the engine makes these
/// from its actions, and the sender sends `params` as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxCall {
    /// The Bot API method, e.g. `sendMessage`.
    pub method: String,
    /// The chat the call writes to, which puts it under that chat's flood limit and
    /// order; `None` for calls that write to no chat (answering a callback query).
    pub chat_id: Option<i64>,
    /// The method's parameters: the JSON body of the call.
    pub params: Vec<u8>,
}

/// A call waiting in the outbox, with the update that caused it (0 for none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The table key, not part of the value.
    #[serde(skip)]
    pub seq: u64,
    pub update_id: i64,
    pub call: OutboxCall,
}

/// What an account of the admin panel and API may do; each role can do all that the
/// roles below it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminRole {
    /// Reads: dashboard, users, events, the audit log.
    Viewer,
    /// Steers the bot: ban and unban, change a user's role, send messages.
    Editor,
    /// Manages accounts, deletes users, sees the settings.
    Owner,
}

impl AdminRole {
    pub const ALL: [AdminRole; 3] = [AdminRole::Viewer, AdminRole::Editor, AdminRole::Owner];

    pub fn name(self) -> &'static str {
        match self {
            AdminRole::Viewer => "viewer",
            AdminRole::Editor => "editor",
            AdminRole::Owner => "owner",
        }
    }

    pub fn parse(name: &str) -> Option<AdminRole> {
        AdminRole::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl std::fmt::Display for AdminRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A person who may use the admin panel and API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub name: String,
    pub role: AdminRole,
    /// Argon2id, as a PHC string (algorithm, parameters, salt and hash together).
    pub password_hash: String,
    pub totp: Option<TotpSecret>,
    pub created: UnixSecs,
    /// Sessions and tokens issued before this moment are void: changing the password,
    /// the role or the second factor signs the account out everywhere.
    pub valid_after: UnixSecs,
}

/// An account's TOTP second factor (RFC 6238: SHA-1, 6 digits, 30 s steps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpSecret {
    pub secret: Vec<u8>,
    /// The last time step whose code was accepted: a code is good once.
    pub last_step: u64,
}

/// A signed-in panel session, kept under the SHA-256 of its cookie so that the file
/// never holds a usable session id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelSession {
    pub account: String,
    /// The token every state-changing form of this session must carry.
    pub csrf: String,
    pub created: UnixSecs,
    /// Pushed forward while the session is used.
    pub idle_until: UnixSecs,
    /// The latest the session can last, however much it is used.
    pub ends_at: UnixSecs,
}

/// One line of the audit log: an admin's action. Append-only; nothing edits it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at_ms: UnixMillis,
    /// The account, `api-token` for the static token, or `cli` for the command line.
    pub actor: String,
    /// The peer address of the request, or `local` for the command line.
    pub address: String,
    pub action: AuditAction,
}

/// What an admin did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    SignedIn,
    SignInRefused {
        account: String,
    },
    SignedOut,
    TokenIssued,
    UserChanged {
        user_id: i64,
        status: Option<UserStatus>,
        role: Option<Role>,
    },
    UserDeleted {
        user_id: i64,
    },
    MessageQueued {
        user_id: i64,
    },
    AccountAdded {
        account: String,
        role: AdminRole,
    },
    AccountRemoved {
        account: String,
    },
    PasswordChanged {
        account: String,
    },
    TotpChanged {
        account: String,
        on: bool,
    },
    /// A user's LLM conversations were read out: personal data, so every export is
    /// audited. Last, because postcard numbers variants by position (schema 5).
    ConversationsExported {
        user_id: i64,
    },
}

impl AuditAction {
    pub fn name(&self) -> &'static str {
        match self {
            AuditAction::SignedIn => "signed_in",
            AuditAction::SignInRefused { .. } => "sign_in_refused",
            AuditAction::SignedOut => "signed_out",
            AuditAction::TokenIssued => "token_issued",
            AuditAction::UserChanged {
                status: Some(UserStatus::Banned),
                role: None,
                ..
            } => "user_banned",
            AuditAction::UserChanged {
                status: Some(UserStatus::Active),
                role: None,
                ..
            } => "user_unbanned",
            AuditAction::UserChanged {
                status: None,
                role: Some(_),
                ..
            } => "user_role_changed",
            AuditAction::UserChanged { .. } => "user_changed",
            AuditAction::UserDeleted { .. } => "user_deleted",
            AuditAction::MessageQueued { .. } => "message_queued",
            AuditAction::ConversationsExported { .. } => "conversations_exported",
            AuditAction::AccountAdded { .. } => "account_added",
            AuditAction::AccountRemoved { .. } => "account_removed",
            AuditAction::PasswordChanged { .. } => "password_changed",
            AuditAction::TotpChanged { .. } => "totp_changed",
        }
    }

    /// What the action was done to, for people.
    pub fn target(&self) -> String {
        match self {
            AuditAction::SignedIn | AuditAction::SignedOut | AuditAction::TokenIssued => {
                String::new()
            }
            AuditAction::SignInRefused { account }
            | AuditAction::AccountRemoved { account }
            | AuditAction::PasswordChanged { account } => format!("account {account}"),
            AuditAction::AccountAdded { account, role } => {
                format!("account {account} ({})", role.name())
            }
            AuditAction::TotpChanged { account, on } => {
                format!("account {account}: TOTP {}", if *on { "on" } else { "off" })
            }
            AuditAction::UserChanged {
                user_id,
                status,
                role,
            } => {
                let mut parts = vec![format!("user {user_id}")];
                if let Some(status) = status {
                    parts.push(format!("status {status:?}").to_lowercase());
                }
                if let Some(role) = role {
                    parts.push(format!("role {role:?}").to_lowercase());
                }
                parts.join(", ")
            }
            AuditAction::UserDeleted { user_id }
            | AuditAction::MessageQueued { user_id }
            | AuditAction::ConversationsExported { user_id } => format!("user {user_id}"),
        }
    }
}

/// Where an LLM conversation happens: a chat, and a forum topic in it (0 outside forum
/// topics). A dialog's turns, its summary and its number are kept per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DialogKey {
    pub chat_id: i64,
    pub thread_id: i64,
}

/// The current dialog of a [`DialogKey`]: which one it is, whom it speaks as, and what of
/// it is folded into the rolling summary. Its turns are kept apart, one row each, at
/// indices `0..next_turn`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dialog {
    /// 1, 2, … per key: a new number is a new dialog (after `/reset` or a long silence).
    pub number: u32,
    /// The personality that answered last.
    pub personality: String,
    /// The rolling summary of the turns below `summarized_upto`.
    pub summary: String,
    /// Turns below this index are folded into `summary`.
    pub summarized_upto: u32,
    /// The index the next turn is stored at.
    pub next_turn: u32,
    pub started_at: UnixSecs,
    pub last_at: UnixSecs,
}

/// Who said a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    User,
    Assistant,
}

/// One message of a dialog: a user's question or the bot's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnRecord {
    pub speaker: Speaker,
    /// Who spoke (a question) or whom it answered (an answer): whose turn `/forget`
    /// deletes.
    pub user_id: i64,
    pub text: String,
    pub at: UnixSecs,
    /// The turn's length in tokens, as the provider counted it or as estimated.
    pub tokens: u32,
    /// The update that brought the question, or that the answer answered.
    pub update_id: i64,
    /// The provider that wrote an answer; `None` for a question.
    pub provider: Option<String>,
}

/// Tokens and cost counted over a period, for a user or a provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Answers written (a `/retry` is one more).
    pub turns: u32,
    pub cost_micro_usd: u64,
}

impl Usage {
    /// This usage with one more answer's worth of `delta`. Saturating: a stored count
    /// near the maximum is damage, and must not panic.
    pub(crate) fn plus(self, delta: &UsageDelta) -> Usage {
        Usage {
            input_tokens: self
                .input_tokens
                .saturating_add(u64::from(delta.input_tokens)),
            output_tokens: self
                .output_tokens
                .saturating_add(u64::from(delta.output_tokens)),
            turns: self.turns.saturating_add(1),
            cost_micro_usd: self.cost_micro_usd.saturating_add(delta.cost_micro_usd),
        }
    }
}

/// What one answer cost, added to the user's day and month and to the provider's day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    pub user_id: i64,
    pub provider: String,
    /// Days since 1970-01-01 (UTC).
    pub day: u32,
    /// `year * 12 + month - 1` (UTC).
    pub month: u32,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cost_micro_usd: u64,
}

/// One exchange of an LLM conversation, as a finished update stores it. A `number` above
/// the stored dialog's (or no stored dialog) opens dialog `number` afresh; a lower one is
/// taken for the stored dialog, so a number is never opened twice. The question (if any)
/// and the answer are appended; with `replaces_answer` (`/retry`) the answer instead
/// replaces the dialog's last assistant turn, and the question is not stored (the one
/// answered is there already), unless the dialog has no answer yet. `summary` sets the
/// summary and the turn index it covers up to. `usage` is added to the user's day and
/// month and the provider's day.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub key: DialogKey,
    pub number: u32,
    pub personality: String,
    pub question: Option<TurnRecord>,
    pub answer: TurnRecord,
    pub replaces_answer: bool,
    pub summary: Option<(String, u32)>,
    pub usage: UsageDelta,
}

/// What a finished update does to the LLM conversations, applied inside its commit.
#[derive(Debug, Clone, PartialEq)]
pub enum ConversationChange {
    /// Boxed: an exchange is ten times the size of the other changes.
    Exchange(Box<Exchange>),
    /// `/reset`: the next exchange continues dialog number + 1, empty; the old turns stay
    /// until `/forget`. A key without a dialog is left as it is.
    Reset { key: DialogKey, at: UnixSecs },
    /// `/forget`: every dialog and turn of the user's private chat, and elsewhere the
    /// user's turns (theirs and the answers to them), are deleted, with the user's
    /// personality choice. A group dialog that loses turns loses its summary too, which
    /// may quote the user. Usage counters stay (accounting).
    Forget { user_id: i64 },
    /// `/mode`: the user's personality from now on.
    Choose { user_id: i64, personality: String },
}

impl From<Exchange> for ConversationChange {
    fn from(exchange: Exchange) -> ConversationChange {
        ConversationChange::Exchange(Box::new(exchange))
    }
}

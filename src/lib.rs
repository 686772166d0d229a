//! edgebot: a Telegram bot in one binary, with its state in an embedded redb file.
//!
//! # The path of an update
//!
//! ```text
//! Telegram ─► transport ─► inbox ─► engine ──────────────────────► outbox ─► sender ─► Telegram
//!             console      redb     guard → command → router        redb
//!                                    → handler → one commit
//! ```
//!
//! * A **transport** ([`transport`]) turns what arrives into one
//!   [`telegram::types::Update`]: the webhook, long polling, or the console for a person
//!   at a terminal. The rest of the program does not know which transport runs.
//! * The **engine** ([`engine::Engine`]) asks the guard ([`engine::guard`]) whether the
//!   sender may pass, parses the command ([`telegram::command`]), looks up the route
//!   ([`engine::router`]) and runs the handler ([`handlers`]). Handlers are plain async
//!   functions from a context to an outcome: actions to send and changes to record. They
//!   never see a socket or a transport.
//! * The **store** ([`store`]) commits everything one update changed — user counts,
//!   events, the conversation, the actions for the outbox — in one transaction with the
//!   update's mark as finished, so a crash never loses or repeats an effect. The webhook
//!   answers once that commit is durable, so it is also what keeps the update — except
//!   on a slow route (one that calls an internal service through [`gateway`]), whose
//!   update is committed to the inbox and answered first, and handled after. All
//!   writes go through one writer thread that group-commits them.
//! * The configuration ([`config`]) builds the routing table; with no file at all the
//!   built-in routes make a useful bot.
//! * [`app::runtime`] wires the parts one way for every command and test.
//! * The admin listener ([`http`]) serves the web panel, the API, health and metrics
//!   beside the bot, over the same store; [`auth`] decides who may use them.
//!
//! Top-level modules import only downward; ARCHITECTURE.md has the table, and
//! `tests/layers.rs` enforces it. Items are `pub(crate)` unless the binary, the tests,
//! the benches or the fuzz targets need them.

pub mod app;
pub mod auth;
pub mod batch;
pub mod botapi;
pub mod calendar;
pub mod config;
pub mod engine;
pub mod fake;
pub mod gateway;
pub mod handlers;
pub mod http;
// Outside its own tests nothing calls the client yet.
pub(crate) mod llm;
pub mod ml;
pub mod net;
pub mod secret;
pub mod shutdown;
pub mod store;
pub mod telegram;
pub mod telemetry;
pub mod template;
pub mod tools;
pub mod transport;

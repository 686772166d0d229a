//! The one place the running parts are wired together: `serve`, `replay`, `chat` and the
//! tests all build them here, so a test cannot wire something the binary does not.
//!
//! Building happens in two steps because `serve` needs the first before Telegram answers:
//!
//! 1. [`Sending`]: the store, metrics, health and the sender with the outbox resumed.
//!    The admin listener works from this alone ([`Sending::admin_state`]), so its API can
//!    queue messages while the bot is still waiting for Telegram.
//! 2. [`Runtime`]: the engine with its handlers and models, the dispatcher and the inbox,
//!    once the bot knows its username.

use crate::auth::{AuthError, Gate, SessionLimits};
use crate::botapi::Client;
use crate::config::Config;
use crate::engine::dispatcher::{DEFAULT_CAPACITY, Dispatcher};
use crate::engine::inbox::Inbox;
use crate::engine::ml::MlService;
use crate::engine::router::RouterError;
use crate::engine::sender::Outbox;
use crate::engine::{Engine, Handlers};
use crate::gateway::{GatewayError, Services};
use crate::handlers::BuiltIn;
use crate::handlers::llm::Conversations;
use crate::http::AdminState;
use crate::store::{Store, StoreError};
use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;

/// Why the engine could not be built from a config.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Routes(#[from] RouterError),
    #[error(transparent)]
    Services(#[from] GatewayError),
    /// The LLM providers (`[[llm.providers]]`) could not be set up.
    #[error("{0}")]
    Llm(String),
}

/// The engine with the built-in handlers and the config's services, recording into
/// `metrics`.
pub fn engine(
    config: &Config,
    store: Store,
    bot_username: Option<String>,
    ml: Option<Arc<MlService>>,
    metrics: Arc<Metrics>,
) -> Result<Engine, EngineError> {
    let services = Services::from_config(&config.services, metrics.clone())?;
    let conversations = if config.personalities.is_empty() {
        None
    } else {
        Some(
            Conversations::from_config(config, store.clone(), metrics.clone())
                .map_err(|e| EngineError::Llm(e.to_string()))?,
        )
    };
    let handlers: Arc<dyn Handlers> = Arc::new(BuiltIn {
        services,
        conversations,
    });
    Ok(Engine::new(
        config,
        store,
        bot_username,
        handlers,
        ml,
        metrics,
    )?)
}

/// The first step: the store and the sender, running.
#[derive(Clone)]
pub struct Sending {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub outbox: Outbox,
}

impl Sending {
    /// Starts the sender under the config's outbound limits and hands it whatever the
    /// last run left in the outbox.
    pub fn start(config: &Config, store: Store, client: Client) -> Result<Sending, StoreError> {
        let metrics = Arc::new(Metrics::new());
        let commits = metrics.clone();
        store.observe_commits(Arc::new(move |took, _jobs| {
            commits.store_commit_seconds.observe(took.as_secs_f64());
        }));
        let health = Arc::new(Health::default());
        let limits = &config.limits.outbound;
        let outbox = Outbox::start(
            client,
            store.clone(),
            limits.enabled.then_some(limits),
            metrics.clone(),
            health.clone(),
        );
        outbox.push(store.pending_outbox()?);
        Ok(Sending {
            store,
            metrics,
            health,
            outbox,
        })
    }

    /// What the admin listener serves from: the same store, metrics, health and outbox
    /// as the bot.
    pub async fn admin_state(&self, config: &Config) -> Result<Arc<AdminState>, AuthError> {
        let gate = Gate::open(self.store.clone(), session_limits(config)).await?;
        Ok(Arc::new(AdminState {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            token: config.admin.token.clone(),
            outbox: self.outbox.clone(),
            gate,
            settings: config.to_redacted_toml(),
        }))
    }

    /// The second step: the engine, the dispatcher and the inbox in front of them.
    pub fn runtime(
        self,
        config: &Config,
        bot_username: Option<String>,
        ml: Option<Arc<MlService>>,
    ) -> Result<Runtime, EngineError> {
        let engine = Arc::new(
            engine(
                config,
                self.store.clone(),
                bot_username,
                ml,
                self.metrics.clone(),
            )?
            .with_live(Arc::new(self.outbox.clone())),
        );
        let dispatcher = Dispatcher::new(engine.clone(), self.outbox.clone(), DEFAULT_CAPACITY);
        let inbox = Inbox::new(self.store.clone(), dispatcher.clone(), self.metrics.clone());
        Ok(Runtime {
            sending: self,
            engine,
            dispatcher,
            inbox,
        })
    }
}

/// Everything an update goes through, from the inbox to the sender.
pub struct Runtime {
    pub(crate) sending: Sending,
    pub(crate) engine: Arc<Engine>,
    pub(crate) dispatcher: Dispatcher,
    pub inbox: Inbox,
}

impl Runtime {
    /// Resolves once every accepted update is handled and every resulting call settled.
    pub async fn drained(&self) {
        self.dispatcher.drained().await;
        self.sending.outbox.drained().await;
    }
}

/// How long panel sessions and API tokens last, from `[admin]`.
fn session_limits(config: &Config) -> SessionLimits {
    let admin = &config.admin;
    SessionLimits {
        idle: Duration::from_secs(admin.session_idle_minutes * 60),
        max: Duration::from_secs(admin.session_max_hours * 3600),
        token: Duration::from_secs(admin.token_minutes * 60),
    }
}

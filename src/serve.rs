//! `edgebot serve`: the whole bot against the Bot API.
//!
//! Start-up order matters for losslessness: the store opens, the token is checked
//! (getMe), the sender resumes the outbox, the dispatcher resumes the inbox, and only
//! then does intake open — the webhook listener (after setWebhook) or long polling
//! (after deleteWebhook). Shutdown runs the other way: intake stops, in-flight updates
//! finish, the outbox flushes within a bound, and the store closes.

use crate::config::{Config, Secret};
use crate::engine::Engine;
use crate::engine::dispatcher::{DEFAULT_CAPACITY, Dispatcher};
use crate::engine::inbox::Inbox;
use crate::engine::ml::{MlLoadError, load_if_enabled};
use crate::engine::router::RouterError;
use crate::engine::sender::Outbox;
use crate::http::{AdminState, serve_admin};
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};
use crate::telegram::client::{ApiError, Client};
use crate::telegram::polling::{PollError, Poller};
use crate::telegram::webhook::{WebhookServer, path_of};
use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;

/// How long shutdown waits for in-flight work and the outbox.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("no bot token: set EDGEBOT_TOKEN (or bot.token in the config)")]
    NoToken,
    #[error("Telegram refused the token (401 Unauthorized): check EDGEBOT_TOKEN")]
    Unauthorized,
    #[error("the Bot API at {url} is unusable: {source}")]
    Api { url: String, source: ApiError },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Router(#[from] RouterError),
    #[error(transparent)]
    Poll(#[from] PollError),
    #[error(transparent)]
    Models(#[from] MlLoadError),
}

/// The update kinds the routing table reacts to: Telegram sends nothing else.
pub fn allowed_updates(engine: &Engine) -> Vec<&'static str> {
    let mut kinds = vec!["message", "my_chat_member"];
    if engine.router().wants_callbacks() {
        kinds.push("callback_query");
    }
    kinds
}

/// Runs the bot until `shutdown` fires, then stops cleanly.
pub async fn serve(config: &Config, shutdown: Shutdown) -> Result<(), ServeError> {
    let token = config.bot.token.clone().ok_or(ServeError::NoToken)?;
    let api_url = config.telegram.api_url.clone();
    let timeout = Duration::from_secs(u64::from(config.telegram.request_timeout_secs.max(1)));
    let client = Client::new(&api_url, &token, timeout).map_err(|source| ServeError::Api {
        url: api_url.clone(),
        source,
    })?;
    let me = match client.get_me().await {
        Ok(me) => me,
        Err(ApiError::Telegram { code: 401, .. }) => return Err(ServeError::Unauthorized),
        Err(source) => {
            return Err(ServeError::Api {
                url: api_url,
                source,
            });
        }
    };
    tracing::info!(bot = me.username.as_deref().unwrap_or(""), "token accepted");

    let store = Store::open(&config.storage.data_dir)?;
    let metrics = Arc::new(Metrics::new());
    let commits = metrics.clone();
    store.observe_commits(Arc::new(move |took, _jobs| {
        commits.store_commit_seconds.observe(took.as_secs_f64());
    }));
    let health = Arc::new(Health::default());
    health.api_succeeded(crate::store::now_secs());
    let mut engine =
        Engine::new(config, store.clone(), me.username.clone())?.with_metrics(metrics.clone());
    if let Some(ml) = load_if_enabled(config, &store, metrics.clone()).await? {
        engine = engine.with_ml(ml);
    }
    health.set_models_loaded(true);
    let engine = Arc::new(engine);
    let limits = config
        .limits
        .outbound
        .enabled
        .then_some(&config.limits.outbound);
    let outbox = Outbox::start(
        client.clone(),
        store.clone(),
        limits,
        metrics.clone(),
        health.clone(),
    );
    outbox.push(store.pending_outbox()?);
    let dispatcher = Dispatcher::new(engine.clone(), outbox.clone(), DEFAULT_CAPACITY);
    let inbox = Inbox::new(store.clone(), dispatcher.clone(), metrics.clone());
    let resumed = inbox.replay_pending().await?;
    if resumed > 0 {
        tracing::info!(
            updates = resumed,
            "resumed updates left unfinished by the last run"
        );
    }

    let admin = bind(config.admin.listen).await?;
    tracing::info!(addr = %config.admin.listen, "admin listener: /health, /health/ready, /metrics, /api/v1");
    let admin_state = Arc::new(AdminState {
        store: store.clone(),
        metrics: metrics.clone(),
        health: health.clone(),
        token: config.admin.token.clone(),
        outbox: None, // WIRE: Some(outbox.clone()) once http uses engine::sender::Outbox
    });
    let admin_shutdown = {
        let mut shutdown = shutdown.clone();
        async move { shutdown.wait().await }
    };
    let admin_task = tokio::spawn(serve_admin(admin, admin_state, admin_shutdown));

    let intake = match &config.telegram.webhook_url {
        Some(url) => run_webhook(config, url, &client, &engine, &store, inbox, shutdown).await,
        None => run_polling(config, client, &engine, &store, inbox, health, shutdown).await,
    };

    tracing::info!("stopping: finishing in-flight updates and flushing the outbox");
    let flushed = tokio::time::timeout(FLUSH_TIMEOUT, async {
        dispatcher.drained().await;
        outbox.drained().await;
    })
    .await;
    if flushed.is_err() {
        tracing::warn!(
            unsent = outbox.pending(),
            "outbox not flushed in time; what is left is sent at the next start"
        );
    }
    let _ = admin_task.await;
    intake
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })
}

async fn run_webhook(
    config: &Config,
    url: &str,
    client: &Client,
    engine: &Engine,
    store: &Store,
    inbox: Inbox,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    let secret = match &config.telegram.webhook_secret {
        Some(secret) => secret.clone(),
        None => Secret::new(store.webhook_secret().await?),
    };
    let listener = bind(config.telegram.listen).await?;
    let server = WebhookServer::new(
        path_of(url),
        secret.clone(),
        config.telegram.max_body_bytes,
        inbox,
    );
    client
        .set_webhook(
            url,
            &secret,
            &allowed_updates(engine),
            config.telegram.max_connections,
        )
        .await
        .map_err(|source| ServeError::Api {
            url: config.telegram.api_url.clone(),
            source,
        })?;
    tracing::info!(addr = %config.telegram.listen, path = %server.path, "webhook set; serving");
    server.run(listener, shutdown).await;
    Ok(())
}

async fn run_polling(
    config: &Config,
    client: Client,
    engine: &Engine,
    store: &Store,
    inbox: Inbox,
    health: Arc<Health>,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    client
        .delete_webhook()
        .await
        .map_err(|source| ServeError::Api {
            url: config.telegram.api_url.clone(),
            source,
        })?;
    let poller = Poller {
        client,
        store: store.clone(),
        inbox,
        health,
        timeout_secs: config.telegram.poll_timeout_secs,
        allowed_updates: allowed_updates(engine),
    };
    Ok(poller.run(shutdown).await?)
}

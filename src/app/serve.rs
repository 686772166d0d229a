//! `edgebot serve`: the whole bot against the Bot API.
//!
//! Start-up order matters for losslessness and for the people watching it start: the
//! store opens, the sender resumes the outbox, and the admin listener binds at once, so
//! `/health` answers and `/health/ready` says what is still missing. The models load in
//! the background while the bot waits for Telegram: `getMe` is retried with backoff until
//! Telegram answers (a VPS whose network comes up after the service), and only a refused
//! token ends the wait. Then the dispatcher resumes the inbox, and only then does intake
//! open — the webhook listener (after setWebhook) or long polling (after deleteWebhook).
//! Shutdown runs the other way: intake stops, in-flight updates finish, the outbox
//! flushes within a bound, and the store closes.

use super::runtime::{Runtime, Sending};
use crate::app::runtime::EngineError;
use crate::auth::AuthError;
use crate::botapi::{ApiError, Client};
use crate::calendar::UnixSecs;
use crate::config::Config;
use crate::engine::Engine;
use crate::engine::ml::{MlLoadError, MlService, load_if_enabled};
use crate::http::serve_admin;
use crate::net::backoff::Backoff;
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};
use crate::telegram::types::User;
use crate::telemetry::health::{Health, ModelsState};
use crate::transport::polling::{PollError, Poller};
use crate::transport::webhook::{WebhookServer, path_of};
use std::sync::Arc;
use std::time::Duration;

/// How long shutdown waits for in-flight work and the outbox.
pub(crate) const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The first and the longest wait between attempts to reach Telegram at start.
const CONNECT_BACKOFF_START: Duration = Duration::from_millis(500);
const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(30);

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
    Engine(#[from] EngineError),
    #[error(transparent)]
    Poll(#[from] PollError),
    #[error(transparent)]
    Models(#[from] MlLoadError),
    #[error("the admin accounts: {0}")]
    Accounts(#[from] AuthError),
}

/// The update kinds the routing table reacts to: Telegram sends nothing else.
pub(crate) fn allowed_updates(engine: &Engine) -> Vec<&'static str> {
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
    let timeout = Duration::from_secs(u64::from(config.telegram.request_timeout_secs));
    let client = Client::new(&api_url, &token, timeout).map_err(|source| ServeError::Api {
        url: api_url.clone(),
        source,
    })?;
    let store = Store::open_with_cache(&config.storage.data_dir, config.storage.cache_bytes())?;
    let sending = Sending::start(config, store, client.clone())?;

    let admin = bind(config.admin.listen).await?;
    tracing::info!(addr = %config.admin.listen, "admin listener: the panel, /health, /health/ready, /metrics, /api/v1");
    let admin_task = tokio::spawn(serve_admin(
        admin,
        sending.admin_state(config).await?,
        shutdown.clone(),
    ));

    let (runtime, result) =
        match start_bot(config, &client, sending.clone(), shutdown.clone()).await {
            Ok(Some(runtime)) => {
                let intake = match &config.telegram.webhook_url {
                    Some(url) => run_webhook(config, url, &client, &runtime, shutdown).await,
                    None => run_polling(config, client.clone(), &runtime, shutdown).await,
                };
                (Some(runtime), intake)
            }
            Ok(None) => (None, Ok(())),
            Err(e) => (None, Err(e)),
        };

    tracing::info!("stopping: finishing in-flight updates and flushing the outbox");
    let flushed = tokio::time::timeout(FLUSH_TIMEOUT, async {
        match &runtime {
            Some(runtime) => runtime.drained().await,
            None => sending.outbox.drained().await,
        }
    })
    .await;
    if flushed.is_err() {
        tracing::warn!(
            unsent = sending.outbox.pending(),
            "not finished in time; unfinished updates are resumed and unsent calls sent at the next start"
        );
    }
    if result.is_err() {
        admin_task.abort();
    }
    let _ = admin_task.await;
    result
}

/// Loads the models while waiting for Telegram, then builds the runtime and resumes the
/// inbox. `None` when the shutdown came first.
async fn start_bot(
    config: &Config,
    client: &Client,
    sending: Sending,
    shutdown: Shutdown,
) -> Result<Option<Runtime>, ServeError> {
    let health = sending.health.clone();
    if config.models.enabled {
        health.set_models(ModelsState::Loading);
    }
    let models = {
        let config = config.clone();
        let store = sending.store.clone();
        let metrics = sending.metrics.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let loaded = load_if_enabled(&config, &store, metrics).await;
            match &loaded {
                Ok(Some(_)) => health.set_models(ModelsState::Loaded),
                Ok(None) => health.set_models(ModelsState::Off),
                Err(_) => health.set_models(ModelsState::Failed),
            }
            loaded
        })
    };
    // Models that fail to load end the start at once, even while Telegram is still
    // being waited for: they are a config or file error that waiting will not fix.
    let connecting = connect(config, client, &health, shutdown);
    tokio::pin!(connecting);
    let mut models = models;
    let (me, ml) = tokio::select! {
        me = &mut connecting => {
            let me = me?;
            let ml = if me.is_some() { joined((&mut models).await)? } else { None };
            (me, ml)
        }
        loaded = &mut models => {
            let ml = joined(loaded)?;
            (connecting.await?, ml)
        }
    };
    let Some(me) = me else {
        models.abort();
        return Ok(None);
    };
    tracing::info!(bot = me.username.as_deref().unwrap_or(""), "token accepted");
    let runtime = sending.runtime(config, me.username.clone(), ml)?;
    let resumed = runtime.inbox.replay_pending().await?;
    if resumed > 0 {
        tracing::info!(
            updates = resumed,
            "resumed updates left unfinished by the last run"
        );
    }
    Ok(Some(runtime))
}

/// What the model loading task ended with.
fn joined(
    loaded: Result<Loaded, tokio::task::JoinError>,
) -> Result<Option<Arc<MlService>>, ServeError> {
    match loaded {
        Ok(loaded) => Ok(loaded?),
        Err(e) => Err(MlLoadError::Panicked(e.to_string()).into()),
    }
}

type Loaded = Result<Option<Arc<MlService>>, MlLoadError>;

/// Asks Telegram who the bot is until it answers. A refused token ends the wait; any
/// other failure (no network yet, DNS, a 5xx) is retried with backoff. `None` when the
/// shutdown came first.
async fn connect(
    config: &Config,
    client: &Client,
    health: &Health,
    mut shutdown: Shutdown,
) -> Result<Option<User>, ServeError> {
    let mut backoff = Backoff::new(CONNECT_BACKOFF_START, CONNECT_BACKOFF_MAX);
    loop {
        let attempt = tokio::select! {
            attempt = client.get_me() => attempt,
            () = shutdown.wait() => return Ok(None),
        };
        let now = UnixSecs::now();
        match attempt {
            Ok(me) => {
                health.api_succeeded(now);
                return Ok(Some(me));
            }
            Err(ApiError::Telegram { code: 401, .. }) => return Err(ServeError::Unauthorized),
            Err(e) => {
                health.api_failed(now);
                let wait = backoff.next_wait();
                tracing::warn!(
                    url = %config.telegram.api_url,
                    error = %e,
                    retry_in_ms = wait.as_millis() as u64,
                    "cannot reach the Bot API yet; retrying"
                );
                if shutdown.sleep(wait).await {
                    return Ok(None);
                }
            }
        }
    }
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
    runtime: &Runtime,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    let secret = match &config.telegram.webhook_secret {
        Some(secret) => secret.clone(),
        None => Secret::new(runtime.sending.store.webhook_secret().await?),
    };
    let listener = bind(config.telegram.listen).await?;
    let server = WebhookServer::new(
        path_of(url),
        secret.clone(),
        config.telegram.max_body_bytes,
        runtime.inbox.clone(),
    );
    client
        .set_webhook(
            url,
            &secret,
            &allowed_updates(&runtime.engine),
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
    runtime: &Runtime,
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
        store: runtime.sending.store.clone(),
        inbox: runtime.inbox.clone(),
        health: runtime.sending.health.clone(),
        timeout_secs: config.telegram.poll_timeout_secs,
        allowed_updates: allowed_updates(&runtime.engine),
    };
    Ok(poller.run(shutdown).await?)
}

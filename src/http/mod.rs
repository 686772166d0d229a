//! The admin listener: health, readiness, Prometheus metrics, the admin API and the
//! admin panel.
//!
//! It is a second listener, apart from the public webhook one, so that the API and the
//! metrics can stay on loopback (the default `127.0.0.1:9090`) while the webhook faces
//! the internet.
//!
//! The layers are kept apart so that everything but the socket is tested without one:
//!
//! * [`routes`] is the table of every path the listener serves, the one place requests
//!   are matched; the OpenAPI document ([`openapi`]) is checked against it.
//! * `wire` is the vocabulary below both the table and the handlers (replies, API
//!   errors, query strings), so neither imports the other in a circle.
//! * [`api`], [`ready`] and [`scrape`] are plain functions from the state and a parsed
//!   request to a status and a body.
//! * `panel` is the web panel: its own table of pages and forms, sessions and CSRF
//!   checks, over the same functions as the API.
//! * [`admin`] is the thin hyper layer that reads requests off the socket.
//! * [`probe`] is the client side of `edgebot health`.

pub mod admin;
pub mod api;
pub mod openapi;
pub(crate) mod panel;
pub mod probe;
pub mod ready;
pub mod routes;
pub mod scrape;
pub(crate) mod wire;

use crate::auth::Gate;
use crate::engine::sender::Outbox;
use crate::secret::Secret;
use crate::store::Store;
use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;
use std::sync::Arc;

pub use admin::{serve_admin, serve_admin_connection};

/// What the admin listener works with; built once by `edgebot serve`.
pub struct AdminState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// The bearer token of `/api/v1`; without one the API is off.
    pub token: Option<Secret>,
    /// Where `POST /api/v1/messages` queues its message.
    pub outbox: Outbox,
    /// Accounts, sessions and API tokens.
    pub gate: Gate,
    /// The effective configuration as TOML, secrets redacted, for the settings page.
    pub settings: String,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::SessionLimits;
    use std::time::Duration;

    /// An admin state over a fresh store, as `app::runtime` builds it (which `http` may
    /// not import); its sender points at the discard port, so nothing is sent.
    pub(crate) async fn state_over_temp_store(
        token: Option<&str>,
        limits: Option<SessionLimits>,
    ) -> (Arc<AdminState>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let client = crate::botapi::Client::new(
            "http://127.0.0.1:9",
            &Secret::new("1:test"),
            Duration::from_secs(1),
        )
        .unwrap();
        let metrics: Arc<Metrics> = Arc::default();
        let health: Arc<Health> = Arc::default();
        let outbox = Outbox::start(client, store.clone(), None, metrics.clone(), health.clone());
        let limits = limits.unwrap_or(SessionLimits {
            idle: Duration::from_secs(1800),
            max: Duration::from_secs(12 * 3600),
            token: Duration::from_secs(900),
        });
        let gate = Gate::open(store.clone(), limits).await.unwrap();
        let state = AdminState {
            store,
            metrics,
            health,
            token: token.map(Secret::new),
            outbox,
            gate,
            settings: "[admin]\ntoken = \"<redacted>\"\n".to_owned(),
        };
        (Arc::new(state), dir)
    }
}

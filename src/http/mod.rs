//! The admin listener: health, readiness, Prometheus metrics and the admin API.
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
//! * [`admin`] is the thin hyper layer that reads requests off the socket.
//! * [`probe`] is the client side of `edgebot health`.

pub mod admin;
pub mod api;
pub mod openapi;
pub mod probe;
pub mod ready;
pub mod routes;
pub mod scrape;
pub(crate) mod wire;

use crate::engine::sender::Outbox;
use crate::secret::Secret;
use crate::store::Store;
use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;
use std::sync::Arc;

pub use admin::serve_admin;

/// What the admin listener works with; built once by `edgebot serve`.
pub struct AdminState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// The bearer token of `/api/v1`; without one the API is off.
    pub token: Option<Secret>,
    /// Where `POST /api/v1/messages` queues its message.
    pub outbox: Outbox,
}

//! Outbound HTTP(S) for every client in the process — the Bot API client and the OTLP
//! exporter — built one way: rustls with the webpki roots (no OpenSSL), and names
//! resolved by the pure-Rust resolver, so a static binary never calls glibc's
//! `getaddrinfo` and its NSS modules.

pub(crate) mod backoff;
pub mod resolver;
pub mod server;
pub mod sse;

use crate::net::resolver::{PureResolver, ResolverError};
use hyper_util::client::legacy::connect::HttpConnector;
use std::time::Duration;

pub(crate) type Connector = hyper_rustls::HttpsConnector<HttpConnector<PureResolver>>;

/// A connector for `https://` and plain `http://` URLs (a local Bot API server, a test).
pub(crate) fn https_connector(connect_timeout: Duration) -> Result<Connector, ResolverError> {
    let mut http = HttpConnector::new_with_resolver(PureResolver::from_system()?);
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

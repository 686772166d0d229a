//! Client side of webhooks: posts an update to the url a bot registered, the
//! way Telegram's servers would, so webhook-mode bots can be driven in tests.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::error::FakeError;
use super::methods::WebhookState;

const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Splits `http://host[:port][/path]` into the address to connect to, the
/// Host header and the request path.
fn split_url(url: &str) -> Option<(String, &str, &str)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let has_port = match authority.rfind(':') {
        Some(colon) => !authority[colon..].contains(']'),
        None => false,
    };
    let connect = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let path = if path.starts_with('?') { "/" } else { path };
    Some((connect, authority, path))
}

pub(crate) async fn post(hook: &WebhookState, update: &Value) -> Result<u16, FakeError> {
    let (connect, host, path) =
        split_url(&hook.url).ok_or_else(|| FakeError::UnsupportedUrl(hook.url.clone()))?;
    let stream = tokio::net::TcpStream::connect(connect).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let connection = tokio::spawn(connection);
    let body = serde_json::to_vec(update).unwrap_or_default();
    let mut request = Request::post(path)
        .header(HOST, host)
        .header(CONTENT_TYPE, "application/json");
    if let Some(secret) = &hook.secret_token {
        request = request.header(SECRET_HEADER, secret.as_str());
    }
    let request = request.body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    // Read the answer fully so the bot's server sees a well-behaved client.
    response.into_body().collect().await?;
    drop(sender);
    let _ = connection.await;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn splits_urls() {
        assert_eq!(
            split_url("http://127.0.0.1:8443/hook?x=1"),
            Some(("127.0.0.1:8443".to_owned(), "127.0.0.1:8443", "/hook?x=1"))
        );
        assert_eq!(
            split_url("http://localhost"),
            Some(("localhost:80".to_owned(), "localhost", "/"))
        );
        assert_eq!(
            split_url("http://[::1]/h"),
            Some(("[::1]:80".to_owned(), "[::1]", "/h"))
        );
        assert_eq!(split_url("https://example.com/"), None);
    }
}

//! One HTTP exchange over an in-memory connection, shared by the targets that feed a
//! listener raw request bytes (`webhook_http`, `admin_http`).
//!
//! The sending side stays open until the answers are in, as a real client keeps it: the
//! listeners do not support half-closed connections, and an end of input while a request
//! is being handled ends the connection and cancels the handler. The exchange is over
//! when there are as many answers as request lines in the input, when the server closes,
//! or when it has been silent for [`QUIET`].

use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// How long the server may stay silent before the exchange counts as over, when the
/// answers cannot be counted.
const QUIET: Duration = Duration::from_millis(10);

/// Serves one connection with `serve`, sends `request` on it and returns what came back.
pub async fn exchange<F, S>(serve: S, request: &[u8]) -> Vec<u8>
where
    S: FnOnce(DuplexStream) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let (client, connection) = tokio::io::duplex(64 * 1024);
    let served = tokio::spawn(serve(connection));
    let (mut reader, mut writer) = tokio::io::split(client);
    let requests = count(request, b" HTTP/1.");
    let mut response = Vec::new();
    let send = async {
        // The server may stop reading early (413, a parse error): that is its right.
        let _ = writer.write_all(request).await;
    };
    let receive = async {
        while count(&response, b"HTTP/1.") < requests.max(1) {
            match tokio::time::timeout(QUIET, reader.read_buf(&mut response)).await {
                Ok(Ok(n)) if n > 0 => {}
                // Closed by the server, a broken pipe, or silence.
                _ => break,
            }
        }
    };
    tokio::join!(send, receive);
    // The connection is idle now: closing it ends the server's side cleanly.
    let _ = writer.shutdown().await;
    drop((reader, writer));
    served.await.expect("serving a connection never panics");
    response
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|window| *window == needle)
        .count()
}

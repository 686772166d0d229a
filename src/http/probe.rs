//! `edgebot health [--ready]`: asks a running edgebot's admin listener whether it is
//! alive (or ready), for container health checks where no curl is installed.
//!
//! One HTTP/1.1 GET with `Connection: close` over a plain socket is all it takes; a full
//! HTTP client would add nothing here.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most of an answer read; readiness answers are a few hundred bytes.
const MAX_ANSWER: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{addr}: no answer within {} ms", .timeout.as_millis())]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("{addr}: not an HTTP answer")]
    Malformed { addr: SocketAddr },
    /// The listener answered, but not 200; `body` says why (for `/health/ready`, the
    /// failing checks).
    #[error("{addr}: HTTP {status}: {body}")]
    Status {
        addr: SocketAddr,
        status: u16,
        body: String,
    },
}

/// GETs `/health` (or `/health/ready` when `ready`) at `addr`; `Ok` on a 200 within
/// `timeout`.
pub async fn probe(addr: SocketAddr, ready: bool, timeout: Duration) -> Result<(), ProbeError> {
    let path = if ready { "/health/ready" } else { "/health" };
    let (status, body) = tokio::time::timeout(timeout, get(addr, path))
        .await
        .map_err(|_| ProbeError::Timeout { addr, timeout })?
        .map_err(|source| ProbeError::Io { addr, source })?
        .ok_or(ProbeError::Malformed { addr })?;
    if status == 200 {
        Ok(())
    } else {
        Err(ProbeError::Status { addr, status, body })
    }
}

/// The status and body of one GET; `None` when the answer is not HTTP.
async fn get(addr: SocketAddr, path: &str) -> std::io::Result<Option<(u16, String)>> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         User-Agent: edgebot-probe\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer);
    let Some((head, body)) = answer.split_once("\r\n\r\n") else {
        return Ok(None);
    };
    let status = head
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok());
    Ok(status.map(|status| (status, body.trim().to_owned())))
}

//! The bodies of the fake LLM server's answers: a whole JSON document, or a stream of
//! server-sent events written by a task of its own, paced, optionally cut into pieces at
//! random byte offsets (each piece its own HTTP chunk, so a client's reads split
//! characters, lines and JSON), and optionally broken off midway.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::shutdown::Shutdown;

/// The longest piece a split stream writes at once.
const MAX_PIECE: usize = 12;

/// The error a streamed body ends with when it is broken off: the serving loop then
/// closes the connection without finishing the answer.
#[derive(Debug, thiserror::Error)]
#[error("the answer was broken off, as a fault asked")]
pub(crate) struct BrokenOff;

/// The body of an answer.
#[derive(Debug)]
pub(crate) enum AnswerBody {
    /// The whole body at once, sent with its length; `None` once sent.
    Whole(Option<Bytes>),
    /// Pieces as the writing task sends them, sent chunked.
    Streamed {
        pieces: mpsc::Receiver<Result<Bytes, BrokenOff>>,
        /// The task broke the stream off: the next poll ends the body with the error.
        breaking: bool,
    },
}

impl AnswerBody {
    pub(crate) fn whole(bytes: impl Into<Bytes>) -> AnswerBody {
        AnswerBody::Whole(Some(bytes.into()))
    }
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = BrokenOff;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BrokenOff>>> {
        match self.get_mut() {
            Self::Whole(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
            Self::Streamed { breaking: true, .. } => Poll::Ready(Some(Err(BrokenOff))),
            Self::Streamed { pieces, breaking } => match ready!(pieces.poll_recv(cx)) {
                // Hyper drops what it has not flushed when a body fails, so first let it
                // flush (it does whenever the body is pending), and fail on the next poll.
                Some(Err(BrokenOff)) => {
                    *breaking = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                piece => Poll::Ready(piece.map(|piece| piece.map(Frame::data))),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Whole(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Whole(bytes) => {
                let len = bytes.as_ref().map_or(0, Bytes::len);
                SizeHint::with_exact(u64::try_from(len).unwrap_or(u64::MAX))
            }
            Self::Streamed { .. } => SizeHint::default(),
        }
    }
}

/// How a stream is written.
#[derive(Debug)]
pub(crate) struct Pacing {
    /// The pause before each event but the first.
    pub(crate) delay: Duration,
    /// Cuts each event into pieces at offsets drawn from this generator.
    pub(crate) split: Option<fastrand::Rng>,
    /// Break the stream off after this many events.
    pub(crate) stop_after: Option<usize>,
}

/// A body that writes `events` as `pacing` says, from a task that ends with the stream,
/// when the client goes away, or at shutdown (which breaks the stream off).
pub(crate) fn stream(events: Vec<Bytes>, mut pacing: Pacing, mut shutdown: Shutdown) -> AnswerBody {
    let (pieces, body) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut broken = false;
        for (index, event) in events.into_iter().enumerate() {
            broken = pacing.stop_after == Some(index)
                || (index > 0 && !pacing.delay.is_zero() && shutdown.sleep(pacing.delay).await);
            if broken {
                break;
            }
            for piece in cut(event, pacing.split.as_mut()) {
                if pieces.send(Ok(piece)).await.is_err() {
                    return;
                }
            }
        }
        if broken {
            let _ = pieces.send(Err(BrokenOff)).await;
        }
    });
    AnswerBody::Streamed {
        pieces: body,
        breaking: false,
    }
}

/// `event` whole, or cut at random offsets into pieces of 1 to [`MAX_PIECE`] bytes.
fn cut(mut event: Bytes, split: Option<&mut fastrand::Rng>) -> Vec<Bytes> {
    let Some(rng) = split else {
        return vec![event];
    };
    let mut pieces = Vec::new();
    while !event.is_empty() {
        let len = rng.usize(1..=MAX_PIECE).min(event.len());
        pieces.push(event.split_to(len));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_pieces_add_up_and_stay_short() {
        let event = Bytes::from("data: {\"content\":\"Привет 😀\"}\n\n");
        assert_eq!(cut(event.clone(), None), vec![event.clone()]);
        let mut rng = fastrand::Rng::with_seed(7);
        let pieces = cut(event.clone(), Some(&mut rng));
        assert!(pieces.len() > 1);
        assert!(pieces.iter().all(|p| (1..=MAX_PIECE).contains(&p.len())));
        assert_eq!(pieces.concat(), event.to_vec());
    }
}

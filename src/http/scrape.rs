//! `/metrics`: the gauges that describe state are refreshed when scraped, then the whole
//! registry is encoded.
//!
//! Queue depths and the file size come from the store's table lengths, which redb keeps,
//! so they cost a read transaction. Active users need a scan of every user; its result is
//! cached for [`ACTIVE_USERS_TTL`] so that frequent scrapes of a large bot stay cheap.

use super::AdminState;
use crate::calendar::UnixSecs;
use crate::store::records::UserRecord;
use crate::store::{Store, StoreError};
use crate::telemetry::metrics::WindowLabels;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub(crate) const ACTIVE_USERS_TTL: Duration = Duration::from_secs(30);
/// Users read per store call while counting.
const PAGE: usize = 1000;

/// The windows of `edgebot_active_users`, with their length in seconds.
pub(crate) const WINDOWS: [(&str, i64); 3] =
    [("24h", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400)];

/// How many users were seen within each of [`WINDOWS`], in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ActiveUsers(pub [u64; 3]);

/// Counts users by `last_seen` over pages that `page(after, limit)` returns in id order
/// (as [`Store::users`] does); a page shorter than asked for is the last.
pub(crate) fn count_active_users<E>(
    mut page: impl FnMut(Option<i64>, usize) -> Result<Vec<UserRecord>, E>,
    now: UnixSecs,
) -> Result<ActiveUsers, E> {
    let mut counts = [0u64; 3];
    let mut after = None;
    loop {
        let users = page(after, PAGE)?;
        for user in &users {
            for (count, (_, window)) in counts.iter_mut().zip(WINDOWS) {
                if user.last_seen > now - window {
                    *count += 1;
                }
            }
        }
        match users.last() {
            Some(last) if users.len() == PAGE => after = Some(last.id),
            _ => return Ok(ActiveUsers(counts)),
        }
    }
}

/// The last count and when it was taken. Scrapes that find it stale wait for one scan
/// rather than each starting their own.
#[derive(Debug, Default)]
pub(crate) struct ActiveUsersCache {
    last: Mutex<Option<(Instant, ActiveUsers)>>,
}

impl ActiveUsersCache {
    pub(crate) async fn get(&self, store: &Store) -> Result<ActiveUsers, StoreError> {
        let mut last = self.last.lock().await;
        if let Some((at, counts)) = *last
            && at.elapsed() < ACTIVE_USERS_TTL
        {
            return Ok(counts);
        }
        let store = store.clone();
        let counts = tokio::task::spawn_blocking(move || {
            count_active_users(|after, limit| store.users(after, limit), UnixSecs::now())
        })
        .await
        .map_err(|e| StoreError::CommitFailed(format!("the user scan panicked: {e}")))??;
        *last = Some((Instant::now(), counts));
        Ok(counts)
    }
}

/// Refreshes the scrape-time gauges and encodes every metric. A store that cannot be
/// read leaves its gauges as they were: the counters are still worth scraping.
pub(crate) async fn render(state: &AdminState, cache: &ActiveUsersCache) -> String {
    let metrics = &state.metrics;
    let store = state.store.clone();
    let stats = tokio::task::spawn_blocking(move || store.stats()).await;
    match stats {
        Ok(Ok(stats)) => {
            metrics.inbox_depth.set(saturating_i64(stats.inbox));
            metrics.outbox_depth.set(saturating_i64(stats.outbox));
            metrics.store_bytes.set(saturating_i64(stats.file_bytes));
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: store stats unavailable"),
        Err(e) => tracing::warn!(error = %e, "metrics: store stats panicked"),
    }
    match cache.get(&state.store).await {
        Ok(ActiveUsers(counts)) => {
            for ((window, _), count) in WINDOWS.into_iter().zip(counts) {
                metrics
                    .active_users
                    .get_or_create(&WindowLabels { window })
                    .set(saturating_i64(count));
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: active users unavailable"),
    }
    metrics.encode()
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::UserDelta;

    fn user(id: i64, last_seen: UnixSecs) -> UserRecord {
        UserDelta::new(id, last_seen).apply(None)
    }

    #[test]
    fn windows_count_users_across_pages() {
        let now = UnixSecs(100 * 86_400);
        // More than a page, so the cursor is followed.
        let users: Vec<UserRecord> = (0..2500)
            .map(|id| {
                let age = match id % 4 {
                    0 => 3_600,
                    1 => 3 * 86_400,
                    2 => 20 * 86_400,
                    _ => 60 * 86_400,
                };
                user(id, now - age)
            })
            .collect();
        let mut calls = 0;
        let counts = count_active_users(
            |after, limit| {
                calls += 1;
                Ok::<_, ()>(
                    users
                        .iter()
                        .filter(|u| after.is_none_or(|a| u.id > a))
                        .take(limit)
                        .cloned()
                        .collect(),
                )
            },
            now,
        )
        .unwrap();
        assert_eq!(counts, ActiveUsers([625, 1250, 1875]));
        assert_eq!(calls, 3);
    }
}

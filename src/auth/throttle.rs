//! Login backoff: after a few failures for one account name or from one address, each
//! further attempt waits twice as long as the last (up to 15 minutes), so guessing is
//! bounded however many requests arrive. Kept in memory: a restart forgets it, which
//! costs a guesser a restart of the bot per few attempts.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failures allowed before the first wait.
const FREE_FAILURES: u32 = 3;
const FIRST_WAIT: Duration = Duration::from_secs(2);
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Keys remembered at most; past this the quietest are forgotten first.
const CAPACITY: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    fn wait(&self) -> Duration {
        let over = self.count.saturating_sub(FREE_FAILURES);
        if over == 0 {
            return Duration::ZERO;
        }
        FIRST_WAIT
            .saturating_mul(1u32.checked_shl(over - 1).unwrap_or(u32::MAX))
            .min(MAX_WAIT)
    }
}

/// Failed sign-ins per key (an account name, an address).
#[derive(Debug, Default)]
pub(crate) struct LoginThrottle {
    failures: Mutex<HashMap<String, Failures>>,
}

impl LoginThrottle {
    /// How long the caller must still wait before trying any of `keys`, if at all.
    pub(crate) fn wait(&self, keys: &[String], now: Instant) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        keys.iter()
            .filter_map(|key| failures.get(key))
            .map(|f| {
                f.wait()
                    .saturating_sub(now.saturating_duration_since(f.last))
            })
            .filter(|left| !left.is_zero())
            .max()
    }

    pub(crate) fn failed(&self, keys: &[String], now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() + keys.len() > CAPACITY {
            failures.retain(|_, f| now.saturating_duration_since(f.last) < MAX_WAIT);
            while failures.len() + keys.len() > CAPACITY {
                let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                failures.remove(&oldest);
            }
        }
        for key in keys {
            let entry = failures.entry(key.clone()).or_insert(Failures {
                count: 0,
                last: now,
            });
            entry.count = entry.count.saturating_add(1);
            entry.last = now;
        }
    }

    pub(crate) fn succeeded(&self, keys: &[String]) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            failures.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_after_the_free_failures_and_end_on_success() {
        let throttle = LoginThrottle::default();
        let keys = vec!["account:alice".to_owned(), "address:10.0.0.1".to_owned()];
        let start = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(throttle.wait(&keys, start), None);
            throttle.failed(&keys, start);
        }
        assert_eq!(throttle.wait(&keys, start), None);
        throttle.failed(&keys, start);
        assert_eq!(throttle.wait(&keys, start), Some(FIRST_WAIT));
        throttle.failed(&keys, start);
        assert_eq!(throttle.wait(&keys, start), Some(FIRST_WAIT * 2));
        assert_eq!(throttle.wait(&keys, start + FIRST_WAIT * 2), None);
        // Another address guessing the same account waits too.
        let other = vec!["account:alice".to_owned(), "address:10.0.0.2".to_owned()];
        assert!(throttle.wait(&other, start).is_some());
        for _ in 0..100 {
            throttle.failed(&keys, start);
        }
        assert_eq!(throttle.wait(&keys, start), Some(MAX_WAIT));
        throttle.succeeded(&keys);
        assert_eq!(throttle.wait(&keys, start), None);
    }

    #[test]
    fn memory_is_bounded() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..CAPACITY + 50 {
            throttle.failed(&[format!("address:{i}")], now);
        }
        assert!(throttle.failures.lock().unwrap().len() <= CAPACITY);
    }
}

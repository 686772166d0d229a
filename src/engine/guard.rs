//! The guard: a per-user inbound limit in front of the handlers.
//!
//! Each user has a token bucket (governor, keyed by user id). Past it, the user gets one
//! friendly notice per cooldown and everything else is dropped (still counted in their
//! profile, just not answered), so one flooding user cannot make the bot flood Telegram.

use crate::config::InboundLimits;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What the guard says about one update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    /// Over the limit: tell the user to slow down, once per cooldown.
    Notify,
    /// Over the limit, already told.
    Drop,
}

pub struct Guard {
    limits: Option<Limits>,
}

struct Limits {
    per_user: DefaultKeyedRateLimiter<i64>,
    notices: DefaultKeyedRateLimiter<i64>,
    checks: AtomicU64,
}

/// How often the limiters forget users who went quiet, in checks.
const FORGET_EVERY: u64 = 65_536;

impl Guard {
    pub fn new(config: &InboundLimits) -> Guard {
        let limits = config.enabled.then(|| {
            let cooldown = Duration::from_secs(config.notice_cooldown_secs.max(1));
            Limits {
                per_user: RateLimiter::keyed(
                    Quota::per_second(config.per_second).allow_burst(config.burst),
                ),
                notices: RateLimiter::keyed(
                    Quota::with_period(cooldown).expect("cooldown is at least a second"),
                ),
                checks: AtomicU64::new(0),
            }
        });
        Guard { limits }
    }

    pub(crate) fn check(&self, user_id: i64) -> Verdict {
        let Some(limits) = &self.limits else {
            return Verdict::Pass;
        };
        if limits.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            limits.per_user.retain_recent();
            limits.notices.retain_recent();
        }
        if limits.per_user.check_key(&user_id).is_ok() {
            return Verdict::Pass;
        }
        match limits.notices.check_key(&user_id) {
            Ok(()) => Verdict::Notify,
            Err(_) => Verdict::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    #[test]
    fn a_burst_passes_then_one_notice_then_drops() {
        let guard = Guard::new(&InboundLimits {
            enabled: true,
            per_second: NonZeroU32::MIN,
            burst: NonZeroU32::new(3).unwrap(),
            notice_cooldown_secs: 60,
        });
        let verdicts: Vec<_> = (0..6).map(|_| guard.check(1)).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Pass,
                Verdict::Pass,
                Verdict::Pass,
                Verdict::Notify,
                Verdict::Drop,
                Verdict::Drop
            ]
        );
        assert_eq!(
            guard.check(2),
            Verdict::Pass,
            "another user has their own bucket"
        );
    }

    #[test]
    fn switched_off_everything_passes() {
        let guard = Guard::new(&InboundLimits {
            enabled: false,
            ..InboundLimits::default()
        });
        assert!((0..100).all(|_| guard.check(1) == Verdict::Pass));
    }
}

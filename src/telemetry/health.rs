//! What readiness is made of: facts the running parts report as they work.
//!
//! The sender and the poller mark each call to Telegram; the model loader marks the
//! models. `/health/ready` reads these, and probes the store itself.

use crate::calendar::UnixSecs;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};

/// How long after its last success Telegram still counts as reachable.
pub const API_FRESHNESS_SECS: i64 = 120;

#[derive(Debug, Default)]
pub struct Health {
    /// The last successful call to the Bot API, a [`UnixSecs`]; 0 before the first.
    last_api_success: AtomicI64,
    /// The last failed call (network error or 5xx), a [`UnixSecs`]; 0 before the first.
    last_api_failure: AtomicI64,
    models: AtomicU8,
}

/// Where the models are on their way to serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ModelsState {
    /// Switched off in the config: nothing to wait for.
    Off = 0,
    Loading = 1,
    Loaded = 2,
    Failed = 3,
}

impl ModelsState {
    fn from_u8(value: u8) -> ModelsState {
        match value {
            1 => ModelsState::Loading,
            2 => ModelsState::Loaded,
            3 => ModelsState::Failed,
            _ => ModelsState::Off,
        }
    }
}

impl Health {
    pub fn api_succeeded(&self, now: UnixSecs) {
        self.last_api_success.store(now.get(), Ordering::Relaxed);
    }

    pub fn api_failed(&self, now: UnixSecs) {
        self.last_api_failure.store(now.get(), Ordering::Relaxed);
    }

    pub fn set_models(&self, state: ModelsState) {
        self.models.store(state as u8, Ordering::Relaxed);
    }

    /// Telegram is reachable when a call succeeded recently and no failure came after it.
    pub(crate) fn api_reachable(&self, now: UnixSecs) -> bool {
        let success = UnixSecs(self.last_api_success.load(Ordering::Relaxed));
        let failure = UnixSecs(self.last_api_failure.load(Ordering::Relaxed));
        success > UnixSecs(0) && success >= failure && success >= now - API_FRESHNESS_SECS
    }

    pub(crate) fn models(&self) -> ModelsState {
        ModelsState::from_u8(self.models.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachability_follows_the_latest_outcome() {
        let health = Health::default();
        assert!(
            !health.api_reachable(UnixSecs(100)),
            "nothing succeeded yet"
        );
        health.api_succeeded(UnixSecs(100));
        assert!(health.api_reachable(UnixSecs(110)));
        health.api_failed(UnixSecs(111));
        assert!(!health.api_reachable(UnixSecs(112)));
        health.api_succeeded(UnixSecs(113));
        assert!(health.api_reachable(UnixSecs(114)));
        assert!(
            !health.api_reachable(UnixSecs(113 + API_FRESHNESS_SECS + 1)),
            "stale"
        );
    }

    #[test]
    fn models_state_round_trips() {
        let health = Health::default();
        assert_eq!(health.models(), ModelsState::Off);
        for state in [
            ModelsState::Loading,
            ModelsState::Loaded,
            ModelsState::Failed,
        ] {
            health.set_models(state);
            assert_eq!(health.models(), state);
        }
    }
}

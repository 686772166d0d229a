//! Optional enforcement of Telegram's broadcast limits, so a bot's own rate
//! limiter can be tested against a server that pushes back the way the real
//! one does: with 429 and a `retry_after` in whole seconds.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The limits to enforce on message-sending calls. `Default` gives the limits
/// Telegram documents for bots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloodLimits {
    /// Minimum spacing of messages to one private chat (chat id > 0).
    pub private_chat_interval: Duration,
    /// Messages per minute to one group or channel (chat id < 0).
    pub group_per_minute: u32,
    /// Messages per second over all chats.
    pub global_per_second: u32,
}

impl Default for FloodLimits {
    fn default() -> Self {
        Self {
            private_chat_interval: Duration::from_secs(1),
            group_per_minute: 20,
            global_per_second: 30,
        }
    }
}

/// Sliding windows of accepted sends.
#[derive(Debug)]
pub(crate) struct FloodState {
    limits: FloodLimits,
    global: VecDeque<Instant>,
    private_last: HashMap<i64, Instant>,
    groups: HashMap<i64, VecDeque<Instant>>,
}

/// Telegram never asks to wait less than a second.
fn whole_seconds(wait: Duration) -> u32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

/// How long until the oldest entry leaves a full window, after dropping
/// entries already outside it.
fn window_wait(
    window: &mut VecDeque<Instant>,
    span: Duration,
    capacity: u32,
    now: Instant,
) -> Option<Duration> {
    while window
        .front()
        .is_some_and(|&t| now.duration_since(t) >= span)
    {
        window.pop_front();
    }
    if window.len() < capacity as usize {
        return None;
    }
    let oldest = *window.front()?;
    Some(span.saturating_sub(now.duration_since(oldest)))
}

impl FloodState {
    pub(crate) fn new(limits: FloodLimits) -> Self {
        Self {
            limits,
            global: VecDeque::new(),
            private_last: HashMap::new(),
            groups: HashMap::new(),
        }
    }

    /// Admits a send to `chat_id` at `now` and counts it, or returns the
    /// `retry_after` to answer with; refused sends are not counted.
    pub(crate) fn admit(&mut self, chat_id: i64, now: Instant) -> Result<(), u32> {
        let mut wait = window_wait(
            &mut self.global,
            Duration::from_secs(1),
            self.limits.global_per_second,
            now,
        );
        if chat_id > 0 {
            if let Some(&last) = self.private_last.get(&chat_id) {
                let since = now.duration_since(last);
                if since < self.limits.private_chat_interval {
                    let chat_wait = self.limits.private_chat_interval - since;
                    wait = Some(wait.map_or(chat_wait, |w| w.max(chat_wait)));
                }
            }
        } else {
            let window = self.groups.entry(chat_id).or_default();
            if let Some(group_wait) = window_wait(
                window,
                Duration::from_secs(60),
                self.limits.group_per_minute,
                now,
            ) {
                wait = Some(wait.map_or(group_wait, |w| w.max(group_wait)));
            }
        }
        if let Some(wait) = wait {
            return Err(whole_seconds(wait));
        }
        self.global.push_back(now);
        if chat_id > 0 {
            self.private_last.insert(chat_id, now);
        } else {
            self.groups.entry(chat_id).or_default().push_back(now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_chat_spacing_and_global_cap() {
        let limits = FloodLimits {
            global_per_second: 3,
            ..FloodLimits::default()
        };
        let mut flood = FloodState::new(limits);
        let t0 = Instant::now();
        assert_eq!(flood.admit(1, t0), Ok(()));
        assert_eq!(flood.admit(1, t0 + Duration::from_millis(100)), Err(1));
        assert_eq!(flood.admit(2, t0), Ok(()));
        assert_eq!(flood.admit(3, t0), Ok(()));
        assert_eq!(flood.admit(4, t0), Err(1));
        assert_eq!(flood.admit(4, t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn group_minute_window() {
        let limits = FloodLimits {
            group_per_minute: 2,
            ..FloodLimits::default()
        };
        let mut flood = FloodState::new(limits);
        let t0 = Instant::now();
        assert_eq!(flood.admit(-5, t0), Ok(()));
        assert_eq!(flood.admit(-5, t0 + Duration::from_secs(2)), Ok(()));
        assert_eq!(flood.admit(-5, t0 + Duration::from_secs(10)), Err(50));
        assert_eq!(flood.admit(-6, t0 + Duration::from_secs(10)), Ok(()));
        assert_eq!(flood.admit(-5, t0 + Duration::from_secs(60)), Ok(()));
    }
}

//! The one backoff for every retried call (the sender, long polling, the start-up
//! connection to Telegram): exponential from a start to a cap, each wait jittered to
//! between half and one and a half of its nominal value so that many retriers spread out.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    start: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(start: Duration, max: Duration) -> Backoff {
        Backoff {
            start,
            max,
            next: start,
        }
    }

    /// The wait before the next attempt; each call doubles the following one, up to the
    /// cap.
    pub fn next_wait(&mut self) -> Duration {
        let nominal = self.next;
        self.next = (self.next * 2).min(self.max);
        nominal.mul_f64(0.5 + fastrand::f64())
    }

    /// After a success: the next failure waits the shortest time again.
    pub fn reset(&mut self) {
        self.next = self.start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let waits: Vec<Duration> = (0..5).map(|_| backoff.next_wait()).collect();
        let nominal = [100, 200, 350, 350, 350];
        for (wait, nominal) in waits.iter().zip(nominal) {
            let nominal = Duration::from_millis(nominal);
            assert!(
                *wait >= nominal / 2 && *wait <= nominal.mul_f64(1.5),
                "{wait:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_wait() <= Duration::from_millis(150));
    }
}

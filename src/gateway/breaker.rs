//! A circuit breaker per service: after N failed calls in a row it opens, and for a
//! cool-down every call is refused at once (the user gets the apology without waiting on
//! a service that is down); then one trial call is let through, which closes it again
//! or opens it for another cool-down.
//!
//! It is plain state over times handed in, so its tests need no clock and no network.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Breaker {
    failures_to_open: u32,
    cooldown: Duration,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The cool-down is over and one trial call is in flight.
    Trial,
}

/// Whether a call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Call,
    /// The one call that decides whether the breaker closes.
    Trial,
    Refused,
}

impl Breaker {
    pub(crate) fn new(failures_to_open: u32, cooldown: Duration) -> Breaker {
        Breaker {
            failures_to_open: failures_to_open.max(1),
            cooldown,
            state: State::Closed { failures: 0 },
        }
    }

    pub(crate) fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            State::Closed { .. } => Admission::Call,
            State::Open { until } if now >= until => {
                self.state = State::Trial;
                Admission::Trial
            }
            State::Open { .. } | State::Trial => Admission::Refused,
        }
    }

    /// Records how an admitted call went. `healthy` is false for what says the service
    /// is unwell (timeouts, connection errors, 5xx, responses outside the contract).
    pub(crate) fn record(&mut self, admission: Admission, healthy: bool, now: Instant) {
        self.state = match (self.state, admission, healthy) {
            (State::Trial, Admission::Trial, true) => State::Closed { failures: 0 },
            (State::Trial, Admission::Trial, false) => self.open(now),
            (State::Closed { .. }, _, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, _, false) => {
                let failures = failures.saturating_add(1);
                if failures >= self.failures_to_open {
                    self.open(now)
                } else {
                    State::Closed { failures }
                }
            }
            // A call admitted before the breaker opened, finishing late, changes nothing.
            (state, _, _) => state,
        };
    }

    fn open(&self, now: Instant) -> State {
        State::Open {
            until: now + self.cooldown,
        }
    }

    /// For the `service_breaker_state` gauge: 0 closed, 1 trial, 2 open.
    pub(crate) fn gauge(&self) -> i64 {
        match self.state {
            State::Closed { .. } => 0,
            State::Trial => 1,
            State::Open { .. } => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_n_failures_in_a_row_and_a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(3, Duration::from_secs(10));
        for _ in 0..2 {
            assert_eq!(breaker.admit(t0), Admission::Call);
            breaker.record(Admission::Call, false, t0);
        }
        breaker.record(Admission::Call, true, t0);
        for _ in 0..2 {
            breaker.record(Admission::Call, false, t0);
        }
        assert_eq!(
            breaker.admit(t0),
            Admission::Call,
            "2 failures since the success"
        );
        breaker.record(Admission::Call, false, t0);
        assert_eq!(breaker.gauge(), 2);
        assert_eq!(
            breaker.admit(t0 + Duration::from_secs(9)),
            Admission::Refused
        );
    }

    #[test]
    fn one_trial_after_the_cooldown_closes_or_reopens_it() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(1, Duration::from_secs(10));
        breaker.record(Admission::Call, false, t0);
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(breaker.admit(t1), Admission::Trial);
        assert_eq!(breaker.gauge(), 1);
        assert_eq!(breaker.admit(t1), Admission::Refused, "one trial at a time");
        breaker.record(Admission::Trial, false, t1);
        assert_eq!(
            breaker.admit(t1 + Duration::from_secs(5)),
            Admission::Refused
        );
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(breaker.admit(t2), Admission::Trial);
        breaker.record(Admission::Trial, true, t2);
        assert_eq!(breaker.gauge(), 0);
        assert_eq!(breaker.admit(t2), Admission::Call);
    }

    #[test]
    fn a_late_call_does_not_close_an_open_breaker() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(1, Duration::from_secs(10));
        breaker.record(Admission::Call, false, t0);
        breaker.record(Admission::Call, true, t0);
        assert_eq!(breaker.admit(t0), Admission::Refused);
    }
}

//! Flood-limit windows measured from the fake Bot API's arrival times, shared by the
//! sender tests and the sender's property test.

use edgebot::fake::botapi::RecordedCall;
use std::time::Duration;

/// Network jitter between the sender's clock and the fake's recorder.
pub const TOLERANCE: Duration = Duration::from_millis(15);

/// The most calls in any window of `width`, over the calls' arrival times.
pub fn busiest_window(calls: &[&RecordedCall], width: Duration) -> usize {
    let mut times: Vec<Duration> = calls.iter().map(|c| c.since_start).collect();
    times.sort();
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= width - TOLERANCE {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

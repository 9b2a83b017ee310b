//! When to try a failed send again. The schedule is data (config `retry_schedule_ms`):
//! entry `n` is the delay before attempt `n + 1`, the first counted from when the job was
//! queued. Delays get ±20 % jitter so retries from many conversations do not arrive in step.

use std::time::Duration;

use crate::adapters::SendError;

/// The smallest wait after a 429 that gave no `Retry-After`.
const RATE_LIMIT_FLOOR: Duration = Duration::from_secs(1);

/// How long to wait before the next attempt, or `None` when the job should be
/// dead-lettered. `attempts_made` counts the attempt that just failed; `jitter` is a
/// factor offset in [-0.2, 0.2].
pub fn next_delay(
    schedule_ms: &[u64],
    attempts_made: u32,
    error: &SendError,
    max_retry_after: Duration,
    jitter: f64,
) -> Option<Duration> {
    let (retry_after, floor) = match error {
        SendError::Permanent { .. } => return None,
        SendError::Retryable { retry_after, .. } => (*retry_after, Duration::ZERO),
        SendError::RateLimited { retry_after, .. } => (*retry_after, RATE_LIMIT_FLOOR),
    };
    let scheduled = *schedule_ms.get(attempts_made as usize)?;
    let jittered = Duration::from_millis(scheduled).mul_f64(1.0 + jitter.clamp(-0.2, 0.2));
    let asked = retry_after.unwrap_or_default().min(max_retry_after);
    Some(jittered.max(asked).max(floor))
}

/// A random jitter factor for [`next_delay`].
pub fn jitter() -> f64 {
    (fastrand::f64() - 0.5) * 0.4
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULE: &[u64] = &[0, 1000, 5000];
    const MAX: Duration = Duration::from_secs(3600);

    fn retryable() -> SendError {
        SendError::Retryable {
            reason: "HTTP 503".into(),
            retry_after: None,
        }
    }

    #[test]
    fn follows_the_schedule_then_dead_letters() {
        let e = retryable();
        assert_eq!(
            next_delay(SCHEDULE, 1, &e, MAX, 0.0),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            next_delay(SCHEDULE, 2, &e, MAX, 0.0),
            Some(Duration::from_secs(5))
        );
        assert_eq!(next_delay(SCHEDULE, 3, &e, MAX, 0.0), None);
    }

    #[test]
    fn permanent_failures_dead_letter_at_once() {
        let e = SendError::Permanent {
            reason: "HTTP 400".into(),
        };
        assert_eq!(next_delay(SCHEDULE, 1, &e, MAX, 0.0), None);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let e = retryable();
        assert_eq!(
            next_delay(SCHEDULE, 1, &e, MAX, 0.2),
            Some(Duration::from_millis(1200))
        );
        assert_eq!(
            next_delay(SCHEDULE, 1, &e, MAX, -0.9),
            Some(Duration::from_millis(800))
        );
        for _ in 0..1000 {
            let j = jitter();
            assert!((-0.2..=0.2).contains(&j));
        }
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let limited = |secs| SendError::RateLimited {
            reason: "HTTP 429".into(),
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            next_delay(SCHEDULE, 1, &limited(30), MAX, 0.0),
            Some(Duration::from_secs(30))
        );
        // A shorter Retry-After than the schedule does not hurry the schedule.
        assert_eq!(
            next_delay(SCHEDULE, 2, &limited(2), MAX, 0.0),
            Some(Duration::from_secs(5))
        );
        // An absurd Retry-After is capped.
        assert_eq!(
            next_delay(SCHEDULE, 1, &limited(1_000_000), MAX, 0.0),
            Some(MAX)
        );
        // A 429 without Retry-After still waits a moment.
        let bare = SendError::RateLimited {
            reason: "HTTP 429".into(),
            retry_after: None,
        };
        assert_eq!(
            next_delay(&[0, 0], 1, &bare, MAX, 0.0),
            Some(RATE_LIMIT_FLOOR)
        );
    }
}

//! Backpressure for the reply API: a reply waits while its channel's outbox is behind, so
//! that replies are accepted no faster than they go out (docs/ARCHITECTURE.md §4).
//!
//! The measure is the one a rep's reply suffers: how long the jobs the worker just leased
//! had waited since they fell due (queued, or their retry's time came). While the outbox
//! keeps up that is a few milliseconds; when more replies come in than go out it grows
//! without bound, and so would the time from reply to receipt. Paced, it stays near the
//! target and the producers of replies wait instead, which bounds the work queued to what
//! they keep in flight. The measure is per channel: jobs in backoff are not due and never
//! leased, so a platform that is down paces nothing; a platform that is slow paces only the
//! replies to it, because only its jobs wait behind their conversation's previous send.
//! It is the worker's view of the shared queue, so replicas on PostgreSQL pace alike.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a reply waited to be accepted, and whether the outbox caught up by then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paced {
    /// The channel was not behind: no wait.
    AtOnce,
    /// The channel caught up after this wait.
    Eased(Duration),
    /// Still behind after the longest wait; the reply is accepted anyway.
    TimedOut(Duration),
}

/// The channels' latest queueing delays, as the delivery worker's leases measure them.
#[derive(Default)]
pub struct Pacer {
    channels: Mutex<HashMap<String, Channel>>,
}

/// One channel's measure and the replies waiting on it.
#[derive(Default)]
struct Channel {
    /// The longest a job of the latest lease that took any of the channel's jobs had
    /// waited since it fell due; zero once a lease found none of its jobs waiting.
    delay: Duration,
    /// Wakes waiting replies: all of them when the channel catches up, one per leased
    /// job while it is a little behind.
    wake: Arc<Notify>,
}

impl Pacer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one lease: `waits` holds each leased job's channel and how long it had been
    /// due. `drained` means the lease took every due job, so a channel it took nothing
    /// from has nothing waiting.
    ///
    /// A channel at or under `target` lets every waiting reply in. Between the target and
    /// twice it, each leased job lets one in, so the queue holds its length: the replies
    /// enter as fast as they leave, in the order they came. Further behind, none enters
    /// until the queue has shortened.
    pub fn leased<'a>(
        &self,
        waits: impl IntoIterator<Item = (&'a str, Duration)>,
        drained: bool,
        target: Duration,
    ) {
        let mut latest: HashMap<&str, (Duration, usize)> = HashMap::new();
        for (channel, waited) in waits {
            let (longest, jobs) = latest.entry(channel).or_default();
            *longest = (*longest).max(waited);
            *jobs += 1;
        }
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if drained {
            for (name, channel) in channels.iter_mut() {
                if !latest.contains_key(name.as_str()) && channel.delay > target {
                    channel.delay = Duration::ZERO;
                    channel.wake.notify_waiters();
                }
            }
        }
        for (name, (waited, jobs)) in latest {
            let channel = channels.entry(name.to_owned()).or_default();
            channel.delay = waited;
            if waited <= target {
                channel.wake.notify_waiters();
            } else if waited <= target * 2 {
                for _ in 0..jobs {
                    channel.wake.notify_one();
                }
            }
        }
    }

    /// The channel's latest queueing delay (zero when the worker has not seen it wait).
    pub fn delay(&self, channel: &str) -> Duration {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.get(channel).map(|c| c.delay).unwrap_or_default()
    }

    /// Waits while `channel`'s jobs wait longer than `target` to be leased, until a lease
    /// lets the reply in, for at most `max_wait`. A zero `target` turns pacing off.
    pub async fn admit(&self, channel: &str, target: Duration, max_wait: Duration) -> Paced {
        if target.is_zero() {
            return Paced::AtOnce;
        }
        let wake = {
            let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            match channels.get(channel) {
                Some(c) if c.delay > target => c.wake.clone(),
                _ => return Paced::AtOnce,
            }
        };
        let started = Instant::now();
        let woken = wake.notified();
        tokio::pin!(woken);
        // Registered before the second look, so a wake between the two is not missed.
        woken.as_mut().enable();
        if self.delay(channel) <= target {
            return Paced::Eased(started.elapsed());
        }
        match tokio::time::timeout_at(started + max_wait, woken).await {
            Ok(()) => Paced::Eased(started.elapsed()),
            Err(_) => Paced::TimedOut(started.elapsed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Duration = Duration::from_millis(50);
    const LONG: Duration = Duration::from_secs(3600);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test]
    async fn a_channel_the_worker_never_saw_wait_is_not_paced() {
        let pacer = Pacer::new();
        assert_eq!(pacer.admit("telegram", TARGET, LONG).await, Paced::AtOnce);
    }

    #[tokio::test]
    async fn a_target_of_zero_turns_pacing_off() {
        let pacer = Pacer::new();
        pacer.leased([("telegram", ms(5_000))], false, TARGET);
        assert_eq!(
            pacer.admit("telegram", Duration::ZERO, LONG).await,
            Paced::AtOnce
        );
    }

    fn waiting(pacer: &Arc<Pacer>, channel: &'static str) -> tokio::task::JoinHandle<Paced> {
        let pacer = pacer.clone();
        tokio::spawn(async move { pacer.admit(channel, TARGET, LONG).await })
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_waits_until_a_lease_shows_its_channel_caught_up() {
        let pacer = Arc::new(Pacer::new());
        pacer.leased([("telegram", ms(400))], false, TARGET);
        let waiting = waiting(&pacer, "telegram");
        tokio::time::sleep(ms(100)).await;
        // Far behind: no reply goes in.
        pacer.leased([("telegram", ms(300))], false, TARGET);
        tokio::time::sleep(ms(100)).await;
        assert!(!waiting.is_finished());
        pacer.leased([("telegram", ms(20))], false, TARGET);
        assert_eq!(waiting.await.expect("admit"), Paced::Eased(ms(200)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_little_behind_each_leased_job_lets_one_reply_in_in_order() {
        let pacer = Arc::new(Pacer::new());
        pacer.leased([("telegram", ms(400))], false, TARGET);
        let first = waiting(&pacer, "telegram");
        tokio::time::sleep(ms(1)).await;
        let second = waiting(&pacer, "telegram");
        tokio::time::sleep(ms(1)).await;
        pacer.leased([("telegram", ms(80))], false, TARGET);
        tokio::time::sleep(ms(1)).await;
        assert!(first.is_finished(), "first");
        assert!(!second.is_finished(), "second");
        pacer.leased([("telegram", ms(70)), ("line", ms(70))], false, TARGET);
        assert_eq!(second.await.expect("admit"), Paced::Eased(ms(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_that_took_every_due_job_clears_the_channels_it_took_nothing_from() {
        let pacer = Arc::new(Pacer::new());
        pacer.leased([("telegram", ms(400)), ("line", ms(400))], false, TARGET);
        let waiting = waiting(&pacer, "telegram");
        tokio::time::sleep(ms(10)).await;
        pacer.leased([("line", ms(200))], true, TARGET);
        assert_eq!(waiting.await.expect("admit"), Paced::Eased(ms(10)));
        assert_eq!(pacer.delay("telegram"), Duration::ZERO);
        assert_eq!(pacer.delay("line"), ms(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_short_of_its_slots_that_took_a_channel_keeps_its_measure() {
        let pacer = Pacer::new();
        pacer.leased([("slow", ms(900))], true, TARGET);
        assert_eq!(pacer.delay("slow"), ms(900));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_channel_does_not_pace_replies_to_another() {
        let pacer = Pacer::new();
        pacer.leased([("slow", ms(2_000)), ("fast", ms(3))], true, TARGET);
        assert_eq!(pacer.admit("fast", TARGET, LONG).await, Paced::AtOnce);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_still_behind_after_the_longest_wait_is_accepted_anyway() {
        let pacer = Pacer::new();
        pacer.leased([("telegram", ms(400))], false, TARGET);
        assert_eq!(
            pacer.admit("telegram", TARGET, ms(250)).await,
            Paced::TimedOut(ms(250))
        );
    }

    #[test]
    fn a_lease_measures_a_channel_by_its_longest_wait() {
        let pacer = Pacer::new();
        pacer.leased(
            [
                ("telegram", ms(10)),
                ("telegram", ms(70)),
                ("telegram", ms(30)),
            ],
            false,
            TARGET,
        );
        assert_eq!(pacer.delay("telegram"), ms(70));
    }
}

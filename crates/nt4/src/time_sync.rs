//! The client's clock against the server's (NT4 spec, "Timestamps" and the time-sync
//! message, id -1): the client sends its local time, the server answers with the same
//! value and its own time; the offset is `server time + RTT/2 − local time at the answer`.
//!
//! The local clock is `CLOCK_MONOTONIC` in microseconds ([`monotonic_us`]), the clock V4L2
//! stamps camera buffers with, so an application turns any such timestamp into server time
//! with one addition ([`TimeSync::server_time_us`]). On a robot the server's clock is the
//! FPGA's (`Timer.getFPGATimestamp()`, µs).
//!
//! The offset comes from the round trip with the lowest RTT among the last
//! [`WINDOW`] measurements: a short round trip bounds the error best (at most RTT/2, when
//! the two directions took all of it and none), and forgetting old measurements lets the
//! offset follow the two clocks drifting apart (tens of ppm between crystals: a
//! measurement kept for an hour would be off by tens of milliseconds).

use std::collections::VecDeque;

/// Measurements the offset is chosen from (one every 3 s with NT 4.1: about 24 s).
pub const WINDOW: usize = 8;
/// A round trip longer than this is not used (spec: the server answers at once).
pub const MAX_RTT_US: i64 = 5_000_000;

/// The server's clock as this client knows it: `server time = local time + offset_us`,
/// local time being `CLOCK_MONOTONIC` in µs ([`monotonic_us`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSync {
    /// Server time minus local time, µs.
    pub offset_us: i64,
    /// The round trip of the measurement the offset comes from, µs: the offset is right
    /// within half of it.
    pub rtt_us: i64,
    /// When that measurement's answer arrived, local time (µs).
    pub measured_at_us: i64,
}

impl TimeSync {
    /// The server time (µs) of `local_us`, a `CLOCK_MONOTONIC` time in µs.
    pub fn server_time_us(&self, local_us: i64) -> i64 {
        local_us.saturating_add(self.offset_us)
    }
}

/// Why a time-sync answer was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error(
        "time-sync answer echoes {sent_us} µs, which gives a round trip of {rtt_us} µs \
         (expected 0 to {MAX_RTT_US} µs): not an echo of a request of this connection"
    )]
    BadEcho { sent_us: i64, rtt_us: i64 },
}

/// The measurements of one connection and the offset they give.
#[derive(Debug, Default)]
pub(crate) struct ClockFilter {
    recent: VecDeque<TimeSync>,
}

impl ClockFilter {
    /// Records the answer to a request sent at local time `sent_us`, carrying the server's
    /// time `server_us`, received at local time `now_us`. Returns the offset in force after
    /// it (the lowest round trip of the last [`WINDOW`]).
    pub(crate) fn record(
        &mut self,
        sent_us: i64,
        server_us: i64,
        now_us: i64,
    ) -> Result<TimeSync, SyncError> {
        let rtt_us = now_us.saturating_sub(sent_us);
        if !(0..=MAX_RTT_US).contains(&rtt_us) {
            return Err(SyncError::BadEcho { sent_us, rtt_us });
        }
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(TimeSync {
            offset_us: server_us.saturating_add(rtt_us / 2).saturating_sub(now_us),
            rtt_us,
            measured_at_us: now_us,
        });
        Ok(self.best().unwrap_or_else(|| unreachable!("just pushed")))
    }

    /// The offset in force: the lowest round trip of the window (the newest among equals).
    pub(crate) fn best(&self) -> Option<TimeSync> {
        self.recent
            .iter()
            .rev()
            .min_by_key(|sync| sync.rtt_us)
            .copied()
    }
}

/// `CLOCK_MONOTONIC` now, in microseconds: the client's local clock.
pub fn monotonic_us() -> i64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists
    // on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec * 1_000_000 + now.tv_nsec / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_takes_half_the_round_trip() {
        let mut filter = ClockFilter::default();
        // Sent at 1,000, the server stamped 50,600 on the way, answered at 1,400.
        let sync = filter.record(1_000, 50_600, 1_400).expect("a good echo");
        assert_eq!(sync.rtt_us, 400);
        assert_eq!(sync.offset_us, 50_600 + 200 - 1_400);
        assert_eq!(sync.measured_at_us, 1_400);
        assert_eq!(sync.server_time_us(1_400), 50_800);
    }

    #[test]
    fn the_lowest_round_trip_wins() {
        let mut filter = ClockFilter::default();
        filter.record(0, 10_000, 1_000).expect("echo");
        let short = filter.record(2_000, 11_500, 2_200).expect("echo");
        let after_long = filter.record(3_000, 13_000, 5_000).expect("echo");
        assert_eq!(after_long, short);
        assert_eq!(short.rtt_us, 200);
    }

    #[test]
    fn old_measurements_are_forgotten_so_drift_is_followed() {
        let mut filter = ClockFilter::default();
        let first = filter.record(0, 1_000_000, 100).expect("echo");
        // The server's clock runs ahead by 1 µs per measurement; every later round trip
        // is longer than the first.
        let mut last = first;
        for n in 1..=WINDOW as i64 {
            let sent = n * 3_000_000;
            last = filter
                .record(sent, 1_000_000 + sent + n, sent + 300)
                .expect("echo");
        }
        assert_ne!(last, first, "the first measurement left the window");
        assert_eq!(last.rtt_us, 300);
        assert_eq!(last.offset_us, 1_000_000 + WINDOW as i64 + 150 - 300);
    }

    #[test]
    fn answers_that_are_no_echo_are_refused() {
        let mut filter = ClockFilter::default();
        assert_eq!(
            filter.record(5_000, 1, 4_000),
            Err(SyncError::BadEcho {
                sent_us: 5_000,
                rtt_us: -1_000
            })
        );
        assert!(filter.record(0, 1, MAX_RTT_US + 1).is_err());
        assert_eq!(filter.best(), None);
    }

    #[test]
    fn the_local_clock_is_the_monotonic_one() {
        let before = std::time::Instant::now();
        let a = monotonic_us();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = monotonic_us();
        let elapsed = i64::try_from(before.elapsed().as_micros()).expect("small");
        // Both are read to the whole µs: one may round down where the other does not.
        assert!(b - a >= 2_000 && b - a <= elapsed + 1, "{a} {b} {elapsed}");
    }
}

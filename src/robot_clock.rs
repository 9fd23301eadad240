//! The robot's clock as frcstream knows it: the offset from `CLOCK_MONOTONIC` (the clock
//! frames are stamped with, `frame::monotonic_us`) to the NetworkTables server's time (on a
//! robot, the FPGA time of `Timer.getFPGATimestamp()`, µs), while it is synchronised.
//!
//! The NetworkTables side writes it (`networktables::robot_clock_feed`); HTTP reads it for
//! each part's `X-Robot-Timestamp` and `/stats.json` without knowing NetworkTables exists.
//! Atomics only: reading it costs a load on the frame path.

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

/// What [`RobotClock::offset`] holds while not synchronised.
const NOT_SYNCHRONISED: i64 = i64::MIN;

/// The offset to the robot's clock, shared by the thread that measures it and the readers.
#[derive(Debug)]
pub struct RobotClock {
    /// Robot time minus `CLOCK_MONOTONIC`, µs; [`NOT_SYNCHRONISED`] when unknown.
    offset_us: AtomicI64,
    /// The round trip the offset was measured with, µs (its error is at most half).
    rtt_us: AtomicI64,
}

/// A synchronised clock: robot time = monotonic time + `offset_us`, within `rtt_us / 2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RobotClockSync {
    pub offset_us: i64,
    pub rtt_us: i64,
}

impl Default for RobotClock {
    fn default() -> RobotClock {
        RobotClock {
            offset_us: AtomicI64::new(NOT_SYNCHRONISED),
            rtt_us: AtomicI64::new(0),
        }
    }
}

impl RobotClock {
    /// Stores a new measurement, or forgets the offset (`None`: NetworkTables is down).
    pub fn set(&self, sync: Option<RobotClockSync>) {
        match sync {
            Some(sync) => {
                self.rtt_us.store(sync.rtt_us, Relaxed);
                // Never the sentinel: an offset of i64::MIN is one microsecond off.
                self.offset_us
                    .store(sync.offset_us.max(NOT_SYNCHRONISED + 1), Relaxed);
            }
            None => self.offset_us.store(NOT_SYNCHRONISED, Relaxed),
        }
    }

    /// The offset and its round trip, while synchronised.
    pub fn sync(&self) -> Option<RobotClockSync> {
        let offset_us = self.offset_us.load(Relaxed);
        (offset_us != NOT_SYNCHRONISED).then(|| RobotClockSync {
            offset_us,
            rtt_us: self.rtt_us.load(Relaxed),
        })
    }

    /// The robot time (µs) of `monotonic_us` (a frame's `captured_us`), while synchronised.
    pub fn robot_time_us(&self, monotonic_us: u64) -> Option<i64> {
        let offset_us = self.offset_us.load(Relaxed);
        (offset_us != NOT_SYNCHRONISED).then(|| {
            i64::try_from(monotonic_us)
                .unwrap_or(i64::MAX)
                .saturating_add(offset_us)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_starts_unsynchronised() {
        let clock = RobotClock::default();
        assert_eq!(clock.sync(), None);
        assert_eq!(clock.robot_time_us(1_000), None);
    }

    #[test]
    fn robot_time_is_monotonic_time_plus_the_offset_until_forgotten() {
        let clock = RobotClock::default();
        let sync = RobotClockSync {
            offset_us: -400,
            rtt_us: 120,
        };
        clock.set(Some(sync));
        assert_eq!(clock.sync(), Some(sync));
        assert_eq!(clock.robot_time_us(1_000), Some(600));
        clock.set(None);
        assert_eq!(clock.robot_time_us(1_000), None);
    }

    #[test]
    fn the_lowest_offset_is_still_an_offset() {
        let clock = RobotClock::default();
        clock.set(Some(RobotClockSync {
            offset_us: i64::MIN,
            rtt_us: 0,
        }));
        assert!(clock.sync().is_some());
        assert_eq!(clock.robot_time_us(0), Some(i64::MIN + 1));
    }
}

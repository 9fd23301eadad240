//! Rate control: [`Ticker`] paces generated sources, [`Pacer`] thins a stream of frames
//! down to a target rate (a camera's fps setting, or one client's `fps=` parameter).

use std::time::{Duration, Instant};

/// Sleeps a generated source from one frame time to the next.
pub struct Ticker {
    interval: Duration,
    next: Instant,
}

impl Ticker {
    pub fn new(fps: u32) -> Ticker {
        Ticker {
            interval: Duration::from_secs(1) / fps.max(1),
            next: Instant::now(),
        }
    }

    /// Sleeps until the next tick, at most `timeout`. True when the tick came.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let now = Instant::now();
        if self.next > now {
            let wait = self.next - now;
            if wait > timeout {
                std::thread::sleep(timeout);
                return false;
            }
            std::thread::sleep(wait);
        }
        self.next += self.interval;
        // After a stall, start afresh rather than bursting to catch up.
        let now = Instant::now();
        if self.next + self.interval < now {
            self.next = now + self.interval;
        }
        true
    }
}

/// Lets through frames at no more than a target rate, spread evenly: a 30 fps source
/// limited to 20 fps passes two frames of every three.
#[derive(Debug, Default, Clone)]
pub struct Pacer {
    next_due_us: u64,
}

impl Pacer {
    /// Whether the frame stamped `timestamp_us` should go out at `fps`.
    pub fn admit(&mut self, timestamp_us: u64, fps: u32) -> bool {
        let interval = 1_000_000 / u64::from(fps.max(1));
        // Frames arrive with jitter: accept one that is a little early.
        let slack = interval / 8;
        if timestamp_us + slack < self.next_due_us {
            return false;
        }
        self.next_due_us = if self.next_due_us + interval < timestamp_us {
            // Far behind (first frame, or after a pause): restart the schedule from here.
            timestamp_us + interval
        } else {
            self.next_due_us + interval
        };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(source_fps: u64, target_fps: u32, seconds: u64) -> usize {
        let mut pacer = Pacer::default();
        let interval = 1_000_000 / source_fps;
        (0..source_fps * seconds)
            .filter(|i| pacer.admit(1_000_000 + i * interval, target_fps))
            .count()
    }

    #[test]
    fn a_pacer_passes_the_target_rate() {
        assert_eq!(admitted(30, 30, 10), 300);
        assert_eq!(admitted(30, 60, 10), 300);
        let ten = admitted(30, 10, 10);
        assert!((99..=101).contains(&ten), "{ten}");
        let twenty = admitted(30, 20, 10);
        assert!((199..=201).contains(&twenty), "{twenty}");
        let five = admitted(25, 5, 10);
        assert!((49..=51).contains(&five), "{five}");
    }

    #[test]
    fn a_pacer_restarts_after_a_pause() {
        let mut pacer = Pacer::default();
        assert!(pacer.admit(1_000_000, 10));
        assert!(!pacer.admit(1_050_000, 10));
        assert!(pacer.admit(9_000_000, 10));
    }
}

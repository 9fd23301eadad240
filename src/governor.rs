//! A camera's part of the robot's bandwidth budget: the caps on its quality and fps, its
//! floors (`min_quality`, `min_fps`), and [`step`], the rule that moves the caps from what
//! it sees: over its share, quality falls first, then fps; well under it for a while, they
//! climb back, fps first. The thresholds apart ([`CLIMB_BELOW`]) and the waits
//! ([`DOWN_EVERY`], [`UP_AFTER`]) are the hysteresis that keeps it from oscillating.
//!
//! Each camera owns one (the capture thread reads the caps in force); the `budget`
//! thread (`budget.rs`) decides the shares and calls [`step`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::CameraConfig;
use crate::lock::lock;
use crate::stats::round2;

/// How often the governor looks.
pub const TICK: Duration = Duration::from_millis(250);
/// Least time between two steps down (new frames must show the last step's effect).
pub const DOWN_EVERY: Duration = Duration::from_millis(500);
/// How long the demand must stay under [`CLIMB_BELOW`] of the share before a step up.
pub const UP_AFTER: Duration = Duration::from_secs(2);
/// The demand must be under this part of the share for a step up.
pub const CLIMB_BELOW: f64 = 0.8;
/// Quality steps.
const QUALITY_STEP: u32 = 5;

/// A camera's part of the budget: its floors, and the caps the governor set.
pub struct Governor {
    weight: f64,
    min_quality: u32,
    min_fps: u32,
    /// The caps in force; 0 is none.
    quality_cap: AtomicU32,
    fps_cap: AtomicU32,
    /// The robot's budget, bits per second (0: off), for reports.
    budget_bps: AtomicU64,
    state: Mutex<State>,
}

struct State {
    reason: &'static str,
    share_bps: f64,
    demand_bps: f64,
    frame_bytes: f64,
    last_seq: u64,
    encodes: u64,
    last_down: Option<Instant>,
    /// Since when the demand has been low enough to climb.
    low_since: Option<Instant>,
}

/// The governor's choice for a camera, for `/stats.json` and NetworkTables.
#[derive(Debug, Serialize)]
pub struct GovernorReport {
    /// Quality and fps in force (the settings, or the governor's caps under them).
    pub quality: u8,
    pub fps: u32,
    pub quality_capped: bool,
    pub fps_capped: bool,
    pub reason: &'static str,
    /// The camera's share of the budget and what it would send its remote clients.
    pub share_mbit: f64,
    pub demand_mbit: f64,
    pub weight: f64,
    pub min_quality: u32,
    pub min_fps: u32,
}

impl Governor {
    pub fn new(config: &CameraConfig) -> Governor {
        Governor {
            weight: config.weight,
            min_quality: u32::from(config.min_quality),
            min_fps: config.min_fps,
            quality_cap: AtomicU32::new(0),
            fps_cap: AtomicU32::new(0),
            budget_bps: AtomicU64::new(0),
            state: Mutex::new(State {
                reason: "no budget",
                share_bps: 0.0,
                demand_bps: 0.0,
                frame_bytes: 0.0,
                last_seq: 0,
                encodes: 0,
                last_down: None,
                low_since: None,
            }),
        }
    }

    /// The quality in force for a camera set to `setting`.
    pub fn quality(&self, setting: u8) -> u8 {
        match self.quality_cap.load(Ordering::Relaxed) {
            0 => setting,
            cap => setting.min(cap as u8),
        }
    }

    /// The fps in force for a camera set to `setting`.
    pub fn fps(&self, setting: u32) -> u32 {
        match self.fps_cap.load(Ordering::Relaxed) {
            0 => setting,
            cap => setting.min(cap),
        }
    }

    /// The robot's budget in Mbit/s (0: off).
    pub fn budget_mbit(&self) -> f64 {
        self.budget_bps.load(Ordering::Relaxed) as f64 / 1e6
    }

    pub fn report(&self, quality_setting: u8, fps_setting: u32) -> GovernorReport {
        let state = lock(&self.state);
        let quality = self.quality(quality_setting);
        let fps = self.fps(fps_setting);
        GovernorReport {
            quality,
            fps,
            quality_capped: quality < quality_setting,
            fps_capped: fps < fps_setting,
            reason: state.reason,
            share_mbit: round2(state.share_bps / 1e6),
            demand_mbit: round2(state.demand_bps / 1e6),
            weight: self.weight,
            min_quality: self.min_quality,
            min_fps: self.min_fps,
        }
    }

    /// The camera's weight in the robot's budget.
    pub fn weight(&self) -> f64 {
        self.weight
    }

    /// The robot's budget, bits per second (0: off), for reports.
    pub fn set_budget_bps(&self, budget_bps: f64) {
        self.budget_bps.store(budget_bps as u64, Ordering::Relaxed);
    }

    /// Takes in the camera's newest frame (its sequence number and size) and its encode
    /// count; returns the frame size the governor goes by (a running mean, 0 before the
    /// first frame) and whether the camera encodes (its quality can be lowered).
    pub fn observe(&self, latest_seq: u64, latest_bytes: usize, encodes: u64) -> (f64, bool) {
        let mut state = lock(&self.state);
        if latest_seq != state.last_seq && latest_bytes > 0 {
            state.last_seq = latest_seq;
            let bytes = latest_bytes as f64;
            state.frame_bytes = if state.frame_bytes == 0.0 {
                bytes
            } else {
                0.5 * state.frame_bytes + 0.5 * bytes
            };
        }
        let encoded = encodes != state.encodes;
        state.encodes = encodes;
        (state.frame_bytes, encoded)
    }

    /// No caps, for `reason` (no budget, no clients across the radio).
    pub fn release(&self, reason: &'static str) {
        self.quality_cap.store(0, Ordering::Relaxed);
        self.fps_cap.store(0, Ordering::Relaxed);
        let mut state = lock(&self.state);
        state.reason = reason;
        state.demand_bps = 0.0;
        state.share_bps = 0.0;
        state.low_since = None;
    }
}

/// What the governor sees of a camera at one tick.
#[derive(Debug, Clone, Copy)]
pub struct Sight {
    pub quality_setting: u32,
    pub fps_setting: u32,
    /// The camera encodes its frames (its quality can be lowered).
    pub encoded: bool,
    pub frame_bytes: f64,
    pub remote_clients: usize,
    pub share_bps: f64,
}

/// One step of a camera's governor: sets its caps from what it sees.
pub fn step(governor: &Governor, sight: Sight, now: Instant) {
    let mut state = lock(&governor.state);
    let quality = governor.quality(sight.quality_setting.min(255) as u8) as u32;
    let fps = governor.fps(sight.fps_setting);
    let demand = sight.frame_bytes * 8.0 * f64::from(fps) * sight.remote_clients as f64;
    state.demand_bps = demand;
    state.share_bps = sight.share_bps;
    let cap = |value: u32, setting: u32| if value >= setting { 0 } else { value };
    if demand > sight.share_bps {
        state.low_since = None;
        if state
            .last_down
            .is_some_and(|at| now.duration_since(at) < DOWN_EVERY)
        {
            return;
        }
        if sight.encoded && quality > governor.min_quality {
            let step = if demand > 1.3 * sight.share_bps {
                2 * QUALITY_STEP
            } else {
                QUALITY_STEP
            };
            let lower = quality.saturating_sub(step).max(governor.min_quality);
            governor
                .quality_cap
                .store(cap(lower, sight.quality_setting), Ordering::Relaxed);
            state.reason = "over the share: quality lowered";
        } else if fps > governor.min_fps {
            let fitting = (f64::from(fps) * sight.share_bps / demand * 0.95).floor() as u32;
            let lower = fitting.min(fps - 1).max(governor.min_fps);
            governor
                .fps_cap
                .store(cap(lower, sight.fps_setting), Ordering::Relaxed);
            state.reason = "over the share: fps lowered";
        } else {
            state.reason = "over the share, at the floors (min_quality, min_fps)";
            return;
        }
        state.last_down = Some(now);
        return;
    }
    let capped = fps < sight.fps_setting || quality < sight.quality_setting;
    if !capped {
        state.reason = "within the share";
        state.low_since = None;
        return;
    }
    if demand >= CLIMB_BELOW * sight.share_bps {
        state.reason = "at the share";
        state.low_since = None;
        return;
    }
    let since = *state.low_since.get_or_insert(now);
    state.reason = "under the share: climbing back";
    if now.duration_since(since) < UP_AFTER {
        return;
    }
    if fps < sight.fps_setting {
        let room = (f64::from(fps) * CLIMB_BELOW * sight.share_bps / demand.max(1.0)).floor();
        let higher = (room as u32).clamp(fps + 1, sight.fps_setting);
        governor
            .fps_cap
            .store(cap(higher, sight.fps_setting), Ordering::Relaxed);
    } else {
        let higher = (quality + QUALITY_STEP).min(sight.quality_setting);
        // Frame size grows about in proportion with quality in the range the governor
        // works in: a step that would go over the share is not taken.
        if demand * f64::from(higher) / f64::from(quality.max(1)) > 0.95 * sight.share_bps {
            state.reason = "at the share";
            return;
        }
        governor
            .quality_cap
            .store(cap(higher, sight.quality_setting), Ordering::Relaxed);
    }
    // The next step up waits for this one's frames to be measured.
    state.low_since = Some(now);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn governor() -> Governor {
        Governor::new(&CameraConfig::embedded_default())
    }

    /// A camera whose frames are `bytes_at(quality)` big, at 30 fps, one remote client,
    /// under a 3 Mbit/s share: steps the governor `ticks` times, 250 ms apart.
    fn run(
        governor: &Governor,
        share: f64,
        bytes_at: impl Fn(u32) -> f64,
        start: Instant,
        ticks: u32,
    ) -> Instant {
        let mut now = start;
        for _ in 0..ticks {
            let quality = u32::from(governor.quality(50));
            let sight = Sight {
                quality_setting: 50,
                fps_setting: 30,
                encoded: true,
                frame_bytes: bytes_at(quality),
                remote_clients: 1,
                share_bps: share,
            };
            step(governor, sight, now);
            now += TICK;
        }
        now
    }

    #[test]
    fn over_the_share_quality_falls_first_then_fps_and_climbs_back() {
        let governor = governor();
        // 700 bytes per quality point: 35 kB at 50, 8.4 Mbit/s at 30 fps; 3.4 at 20.
        let bytes = |q: u32| 700.0 * f64::from(q);
        let start = Instant::now();
        let now = run(&governor, 3e6, bytes, start, 40);
        let (q, f) = (governor.quality(50), governor.fps(30));
        assert_eq!(
            q,
            20,
            "quality down to its floor first ({f} fps, {:?})",
            governor.report(50, 30)
        );
        assert!(f < 30, "then fps: {f}");
        let demand = bytes(u32::from(q)) * 8.0 * f64::from(f);
        assert!(demand <= 3e6, "within the share: {demand}");
        assert!(demand > 0.7 * 3e6, "not far under it: {demand}");
        // Stable: ten more seconds change nothing.
        let now = run(&governor, 3e6, bytes, now, 40);
        assert_eq!((governor.quality(50), governor.fps(30)), (q, f));
        // Room again (a camera left the budget): fps climbs back first, then quality.
        let now = run(&governor, 30e6, bytes, now, 20);
        assert_eq!(governor.fps(30), 30);
        run(&governor, 30e6, bytes, now, 80);
        assert_eq!(governor.quality(50), 50);
        assert_eq!(governor.report(50, 30).reason, "within the share");
    }

    #[test]
    fn floors_hold() {
        let governor = governor();
        run(
            &governor,
            0.1e6,
            |q| 500.0 * f64::from(q),
            Instant::now(),
            60,
        );
        assert_eq!((governor.quality(50), governor.fps(30)), (20, 5));
        assert!(governor.report(50, 30).reason.contains("floors"));
    }
}

//! A camera's part of the robot's bandwidth budget: the caps on its quality and size, its
//! floors (`min_quality`, `min_fps`, `min_width`/`min_height`), and [`step`], the rule that
//! moves the caps from what it sees. Over its share, quality falls first, then fps, then
//! size; well under it for a while, they climb back in the opposite order. The thresholds
//! apart ([`CLIMB_BELOW`]) and the waits ([`DOWN_EVERY`], [`UP_AFTER`]) are the hysteresis
//! that keeps it from oscillating.
//!
//! fps is not lowered at the camera: the radio (`http/radio.rs`) gives each camera's
//! remote clients the turns its share carries, and a turn takes the newest frame. So the
//! rate the share carries is the fps the driver gets, and the frame that goes is at most
//! one capture interval old (capturing at that lower rate instead would make each frame
//! up to one delivered interval old when its turn comes). The governor reports that rate
//! as the fps in force, and shrinks the frames only when it falls under `min_fps` at the
//! lowest quality.
//!
//! Camera MJPEG, passed through untouched within its share, is transcoded (at the capped
//! quality, and size) when it is over: the capture thread asks [`Governor::transcode`].
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
/// How long there must be room before a step up.
pub const UP_AFTER: Duration = Duration::from_secs(2);
/// A step up is taken only when what it would send is under this part of the share.
pub const CLIMB_BELOW: f64 = 0.8;
/// Quality steps.
const QUALITY_STEP: u32 = 5;
/// Frames are shrunk by halves, at most this many times.
const MAX_HALVINGS: u32 = 3;

/// A camera's part of the budget: its floors, and the caps the governor set.
pub struct Governor {
    weight: f64,
    min_quality: u32,
    min_fps: u32,
    min_size: (u32, u32),
    /// The quality cap in force; 0 is none.
    quality_cap: AtomicU32,
    /// How many times the frames are halved in width and height.
    halvings: AtomicU32,
    /// Twice the rate the whole budget carries of the camera's frames (0: not known).
    budget_fps: AtomicU32,
    /// The robot's budget, bits per second (0: off), for reports.
    budget_bps: AtomicU64,
    state: Mutex<State>,
}

struct State {
    reason: &'static str,
    share_bps: f64,
    demand_bps: f64,
    /// The fps the share carries at the frame size now (0: no budget).
    carried_fps: f64,
    frame_bytes: f64,
    /// The frame size of camera MJPEG passed through, for the step back to it.
    passthrough_bytes: f64,
    last_seq: u64,
    /// The camera's encode and passthrough counts when last looked, and which of them
    /// moved last (whether it encodes or passes camera MJPEG through).
    counts: (u64, u64),
    encodes: bool,
    last_down: Option<Instant>,
    /// Since when there has been room for the next step up.
    room_since: Option<Instant>,
}

/// The governor's choice for a camera, for `/stats.json` and NetworkTables.
#[derive(Debug, Serialize)]
pub struct GovernorReport {
    /// Quality in force (the setting, or the governor's cap under it).
    pub quality: u8,
    /// The fps the camera's share carries to its remote clients (the setting when it
    /// carries all of it).
    pub fps: u32,
    pub quality_capped: bool,
    pub fps_capped: bool,
    /// Frames shrunk to this size (`None`: the camera's own).
    pub size: Option<(u32, u32)>,
    /// Camera MJPEG is transcoded to fit the share.
    pub transcoding: bool,
    pub reason: &'static str,
    /// The camera's share of the budget and what it would send its remote clients at its
    /// fps setting.
    pub share_mbit: f64,
    pub demand_mbit: f64,
    pub weight: f64,
    pub min_quality: u32,
    pub min_fps: u32,
    pub min_size: (u32, u32),
}

impl Governor {
    pub fn new(config: &CameraConfig) -> Governor {
        Governor {
            weight: config.weight,
            min_quality: u32::from(config.min_quality),
            min_fps: config.min_fps,
            min_size: config.min_size,
            quality_cap: AtomicU32::new(0),
            halvings: AtomicU32::new(0),
            budget_fps: AtomicU32::new(0),
            budget_bps: AtomicU64::new(0),
            state: Mutex::new(State {
                reason: "no budget",
                share_bps: 0.0,
                demand_bps: 0.0,
                carried_fps: 0.0,
                frame_bytes: 0.0,
                passthrough_bytes: 0.0,
                last_seq: 0,
                counts: (0, 0),
                encodes: true,
                last_down: None,
                room_since: None,
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

    /// The size frames of `size` are shrunk to, if they are.
    pub fn shrunk(&self, size: (u32, u32)) -> Option<(u32, u32)> {
        match self.halvings.load(Ordering::Relaxed) {
            0 => None,
            n => Some(((size.0 >> n).max(2) & !1, (size.1 >> n).max(2) & !1)),
        }
    }

    /// What the capture thread must make of a frame of `size` the camera produced
    /// (encoded at the quality in force, or camera MJPEG passed through when
    /// `passed_through`), for a camera whose quality is set to `setting`: `None` to publish
    /// it as it is, else the size and quality to transcode it to.
    pub fn transcode(
        &self,
        size: (u32, u32),
        setting: u8,
        passed_through: bool,
    ) -> Option<(Option<(u32, u32)>, u8)> {
        let shrunk = self.shrunk(size);
        let quality = self.quality(setting);
        let requality = passed_through && quality < setting;
        (shrunk.is_some() || requality).then_some((shrunk, quality))
    }

    /// How many frames a second of a camera at `fps` may be transcoded for the budget:
    /// twice as many as the whole budget carries (at least `min_fps`). A frame is then at
    /// most half its crossing time old when its turn comes; more transcodes would only be
    /// skipped by the radio (measured on F3: 44% of a core unpaced, 32% paced so, the same
    /// latency; 21% paced at once what the budget carries, but the MJPEG camera's p95 went
    /// from 1.5 to 2.0 times its floor).
    pub fn transcode_fps(&self, fps: u32) -> u32 {
        match self.budget_fps.load(Ordering::Relaxed) {
            0 => fps,
            carried => carried.max(self.min_fps).min(fps),
        }
    }

    /// The robot's budget in Mbit/s (0: off).
    pub fn budget_mbit(&self) -> f64 {
        self.budget_bps.load(Ordering::Relaxed) as f64 / 1e6
    }

    pub fn report(
        &self,
        quality_setting: u8,
        fps_setting: u32,
        size: (u32, u32),
    ) -> GovernorReport {
        let state = lock(&self.state);
        let quality = self.quality(quality_setting);
        let fps = match state.carried_fps {
            carried if carried > 0.0 => (carried.floor() as u32).min(fps_setting),
            _ => fps_setting,
        };
        GovernorReport {
            quality,
            fps,
            quality_capped: quality < quality_setting,
            fps_capped: fps < fps_setting,
            size: self.shrunk(size),
            transcoding: state.passthrough_bytes > 0.0 && quality < quality_setting,
            reason: state.reason,
            share_mbit: round2(state.share_bps / 1e6),
            demand_mbit: round2(state.demand_bps / 1e6),
            weight: self.weight,
            min_quality: self.min_quality,
            min_fps: self.min_fps,
            min_size: self.min_size,
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
    /// and passthrough counts; returns the frame size the governor goes by (a running
    /// mean, 0 before the first frame) and whether the camera encodes (else it passes
    /// camera MJPEG through: the count that moved last says).
    pub fn observe(
        &self,
        latest_seq: u64,
        latest_bytes: usize,
        (encodes, passthroughs): (u64, u64),
    ) -> (f64, bool) {
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
        let (encodes_then, passthroughs_then) = state.counts;
        if passthroughs != passthroughs_then {
            state.encodes = false;
        } else if encodes != encodes_then {
            state.encodes = true;
        }
        state.counts = (encodes, passthroughs);
        (state.frame_bytes, state.encodes)
    }

    /// No caps, for `reason` (no budget, no clients across the radio).
    pub fn release(&self, reason: &'static str) {
        self.quality_cap.store(0, Ordering::Relaxed);
        self.halvings.store(0, Ordering::Relaxed);
        self.budget_fps.store(0, Ordering::Relaxed);
        let mut state = lock(&self.state);
        state.reason = reason;
        state.demand_bps = 0.0;
        state.share_bps = 0.0;
        state.carried_fps = 0.0;
        state.room_since = None;
    }

    fn set_quality_cap(&self, quality: u32, setting: u32) {
        let cap = if quality >= setting { 0 } else { quality };
        self.quality_cap.store(cap, Ordering::Relaxed);
    }
}

/// What the governor sees of a camera at one tick.
#[derive(Debug, Clone, Copy)]
pub struct Sight {
    pub quality_setting: u32,
    pub fps_setting: u32,
    /// The camera encodes its frames (else it passes camera MJPEG through).
    pub encoded: bool,
    /// The mean size of the frames published now.
    pub frame_bytes: f64,
    /// The camera's own frame size.
    pub size: (u32, u32),
    pub remote_clients: usize,
    pub share_bps: f64,
}

impl Sight {
    /// The fps the share carries with frames of `bytes`.
    fn carried_fps(&self, bytes: f64) -> f64 {
        self.share_bps / (bytes * 8.0 * self.remote_clients.max(1) as f64).max(1.0)
    }
}

/// One step of a camera's governor: sets its caps from what it sees.
pub fn step(governor: &Governor, sight: Sight, now: Instant) {
    let mut state = lock(&governor.state);
    let quality = u32::from(governor.quality(sight.quality_setting.min(255) as u8));
    let halvings = governor.halvings.load(Ordering::Relaxed);
    let passing_through = !sight.encoded && quality >= sight.quality_setting && halvings == 0;
    if passing_through {
        state.passthrough_bytes = sight.frame_bytes;
    } else if sight.encoded {
        state.passthrough_bytes = 0.0;
    }
    let carried = sight.carried_fps(sight.frame_bytes);
    let fps_setting = f64::from(sight.fps_setting);
    state.carried_fps = carried;
    let budget_bps = governor.budget_bps.load(Ordering::Relaxed) as f64;
    let twice_the_budget = 2.0 * budget_bps / (sight.frame_bytes * 8.0).max(1.0);
    governor
        .budget_fps
        .store(twice_the_budget.ceil().min(1e6) as u32, Ordering::Relaxed);
    state.demand_bps = sight.share_bps * fps_setting / carried.max(1e-9);
    state.share_bps = sight.share_bps;
    // Frames shrunk because the share carried less than min_fps grow back as soon as the
    // whole size would carry min_fps with room, whether or not the fps setting fits.
    let grown = sight.carried_fps(sight.frame_bytes * 4.0) * CLIMB_BELOW;
    if halvings > 0 && grown >= f64::from(governor.min_fps) {
        climb(&mut state, now, || {
            governor.halvings.store(halvings - 1, Ordering::Relaxed);
        });
        return;
    }
    if carried < fps_setting {
        state.room_since = None;
        step_down(governor, &mut state, sight, quality, carried, now);
        return;
    }
    step_up(governor, &mut state, sight, quality, now);
}

/// The share does not carry the fps setting: lower quality, else let fps fall (the radio
/// does), else shrink.
fn step_down(
    governor: &Governor,
    state: &mut State,
    sight: Sight,
    quality: u32,
    carried: f64,
    now: Instant,
) {
    if state
        .last_down
        .is_some_and(|at| now.duration_since(at) < DOWN_EVERY)
    {
        return;
    }
    let halvings = governor.halvings.load(Ordering::Relaxed);
    let can_shrink = halvings < MAX_HALVINGS
        && (sight.size.0 >> (halvings + 1)) >= governor.min_size.0
        && (sight.size.1 >> (halvings + 1)) >= governor.min_size.1;
    if quality > governor.min_quality {
        let step = if carried < 0.75 * f64::from(sight.fps_setting) {
            2 * QUALITY_STEP
        } else {
            QUALITY_STEP
        };
        let lower = quality.saturating_sub(step).max(governor.min_quality);
        governor.set_quality_cap(lower, sight.quality_setting);
        state.reason = if sight.encoded {
            "over the share: quality lowered"
        } else {
            "over the share: camera MJPEG transcoded at a lower quality"
        };
    } else if carried < f64::from(governor.min_fps) && can_shrink {
        governor.halvings.store(halvings + 1, Ordering::Relaxed);
        state.reason = "over the share at min_fps: size lowered";
    } else if carried >= f64::from(governor.min_fps) {
        state.reason = "over the share: fps lowered to what the share carries";
        return;
    } else {
        state.reason = "over the share, at the floors (min_quality, min_fps, min size)";
        return;
    }
    state.last_down = Some(now);
}

/// The share carries the fps setting: after [`UP_AFTER`] with room, quality climbs back,
/// a step only when its frames would still fit under [`CLIMB_BELOW`]. (Size comes back
/// first, in [`step`].)
fn step_up(governor: &Governor, state: &mut State, sight: Sight, quality: u32, now: Instant) {
    if quality >= sight.quality_setting {
        state.reason = "within the share";
        state.room_since = None;
        return;
    }
    let room_for =
        |bytes: f64| sight.carried_fps(bytes) * CLIMB_BELOW >= f64::from(sight.fps_setting);
    // Frames grow about with quality in the range the governor works in; back to camera
    // MJPEG, with the size it had.
    let next_bytes = if !sight.encoded
        && quality + QUALITY_STEP >= sight.quality_setting
        && state.passthrough_bytes > 0.0
    {
        state.passthrough_bytes
    } else {
        sight.frame_bytes * f64::from(quality + QUALITY_STEP) / f64::from(quality.max(1))
    };
    if !room_for(next_bytes) {
        state.reason = "at the share";
        state.room_since = None;
        return;
    }
    climb(state, now, || {
        let higher = (quality + QUALITY_STEP).min(sight.quality_setting);
        governor.set_quality_cap(higher, sight.quality_setting);
    });
}

/// There is room for a step up: takes it (`step_up`) once there has been room for
/// [`UP_AFTER`]; the next one waits as long again, for this one's frames to be measured.
fn climb(state: &mut State, now: Instant, step_up: impl FnOnce()) {
    let since = *state.room_since.get_or_insert(now);
    state.reason = "under the share: climbing back";
    if now.duration_since(since) < UP_AFTER {
        return;
    }
    step_up();
    state.room_since = Some(now);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn governor() -> Governor {
        Governor::new(&CameraConfig::embedded_default())
    }

    /// A camera at 640x480, set to quality 50 and 30 fps, whose frames are
    /// `bytes_at(quality, halvings)` big, one remote client, under `share` bits per second:
    /// steps the governor `ticks` times, 250 ms apart.
    fn run(
        governor: &Governor,
        share: f64,
        bytes_at: impl Fn(u32, u32) -> f64,
        start: Instant,
        ticks: u32,
    ) -> Instant {
        let mut now = start;
        for _ in 0..ticks {
            let quality = u32::from(governor.quality(50));
            let halvings = governor.halvings.load(Ordering::Relaxed);
            let sight = Sight {
                quality_setting: 50,
                fps_setting: 30,
                encoded: true,
                frame_bytes: bytes_at(quality, halvings),
                size: (640, 480),
                remote_clients: 1,
                share_bps: share,
            };
            step(governor, sight, now);
            now += TICK;
        }
        now
    }

    /// 700 bytes per quality point at 640x480, a quarter of that per halving.
    fn bytes(quality: u32, halvings: u32) -> f64 {
        700.0 * f64::from(quality) / f64::from(1u32 << (2 * halvings))
    }

    fn fps(governor: &Governor) -> u32 {
        governor.report(50, 30, (640, 480)).fps
    }

    #[test]
    fn over_the_share_quality_falls_first_then_fps_and_climbs_back() {
        let governor = governor();
        // 35 kB at 50: 8.4 Mbit/s at 30 fps; 14 kB at 20: 10.7 fps in 1.2 Mbit/s.
        let start = Instant::now();
        let now = run(&governor, 1.2e6, bytes, start, 40);
        let report = governor.report(50, 30, (640, 480));
        assert_eq!(
            report.quality, 20,
            "quality down to its floor first: {report:?}"
        );
        assert_eq!(
            report.fps, 10,
            "then fps, to what the share carries: {report:?}"
        );
        assert_eq!(report.size, None, "fps is above min_fps: the size stays");
        // Stable: ten more seconds change nothing.
        let now = run(&governor, 1.2e6, bytes, now, 40);
        assert_eq!((governor.quality(50), fps(&governor)), (20, 10));
        // Room again (a camera left the budget): fps first, then quality.
        let now = run(&governor, 30e6, bytes, now, 1);
        assert_eq!(fps(&governor), 30);
        run(&governor, 30e6, bytes, now, 80);
        assert_eq!(governor.quality(50), 50);
        assert_eq!(
            governor.report(50, 30, (640, 480)).reason,
            "within the share"
        );
    }

    #[test]
    fn under_min_fps_at_the_lowest_quality_the_size_falls_and_comes_back() {
        let governor = governor();
        // 14 kB at quality 20 carries 2.7 fps in 0.3 Mbit/s: under min_fps (5).
        let now = run(&governor, 0.3e6, bytes, Instant::now(), 40);
        let report = governor.report(50, 30, (640, 480));
        assert_eq!(report.quality, 20);
        assert_eq!(report.size, Some((320, 240)), "{report:?}");
        assert!(report.fps >= 5, "{report:?}");
        // The default floor is 320x180: 160x120 is not taken however tight the share.
        run(&governor, 0.05e6, bytes, now, 40);
        let report = governor.report(50, 30, (640, 480));
        assert_eq!(report.size, Some((320, 240)));
        assert!(report.reason.contains("floors"), "{report:?}");
        // Room: at 3 Mbit/s the whole size carries 26 fps of quality 20, well over
        // min_fps though not the fps setting: the size comes back, before quality.
        let now = run(&governor, 3e6, bytes, Instant::now() + UP_AFTER * 100, 12);
        let report = governor.report(50, 30, (640, 480));
        assert_eq!((report.size, report.quality), (None, 20), "{report:?}");
        run(&governor, 30e6, bytes, now, 100);
        assert_eq!(governor.quality(50), 50);
    }

    #[test]
    fn camera_mjpeg_is_transcoded_only_while_over_its_share() {
        let governor = governor();
        let mut now = Instant::now();
        // Camera MJPEG of 100 kB passed through; transcoded, 700 bytes per quality point.
        let sight = |governor: &Governor, share: f64| {
            let transcoding = governor.transcode((640, 480), 50, true).is_some();
            Sight {
                quality_setting: 50,
                fps_setting: 30,
                encoded: false,
                frame_bytes: if transcoding {
                    700.0 * f64::from(governor.quality(50))
                } else {
                    100_000.0
                },
                size: (640, 480),
                remote_clients: 1,
                share_bps: share,
            }
        };
        // 24 Mbit/s at 30 fps: within a 30 Mbit/s share, passed through.
        step(&governor, sight(&governor, 30e6), now);
        assert_eq!(governor.transcode((640, 480), 50, true), None);
        // In a 6 Mbit/s share: transcoded until it fits.
        for _ in 0..40 {
            now += TICK;
            step(&governor, sight(&governor, 6e6), now);
        }
        let (size, quality) = governor
            .transcode((640, 480), 50, true)
            .expect("transcoded");
        assert_eq!(size, None);
        assert!(700.0 * f64::from(quality) * 8.0 * 30.0 <= 6e6, "{quality}");
        assert!(governor.report(50, 30, (640, 480)).transcoding);
        // The share grows back to 30 Mbit/s: passed through again.
        for _ in 0..200 {
            now += TICK;
            step(&governor, sight(&governor, 30e6), now);
        }
        assert_eq!(governor.transcode((640, 480), 50, true), None);
        // An encoding camera's frames are never transcoded for quality alone.
        governor.quality_cap.store(30, Ordering::Relaxed);
        assert_eq!(governor.transcode((640, 480), 50, false), None);
    }

    #[test]
    fn transcodes_are_paced_at_twice_what_the_whole_budget_carries() {
        let governor = governor();
        governor.set_budget_bps(4e6);
        // 40 kB frames: the whole 4 Mbit/s carries 12.5 a second.
        let sight = Sight {
            quality_setting: 50,
            fps_setting: 30,
            encoded: false,
            frame_bytes: 40_000.0,
            size: (1280, 720),
            remote_clients: 1,
            share_bps: 2e6,
        };
        step(&governor, sight, Instant::now());
        assert_eq!(governor.transcode_fps(30), 25);
        assert_eq!(
            governor.transcode_fps(15),
            15,
            "never more than the camera's fps"
        );
        governor.release("no clients across the radio");
        assert_eq!(governor.transcode_fps(30), 30);
    }
}

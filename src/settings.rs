//! The settings model: every setting a team can set, described once.
//!
//! [`TABLE`] says, for each setting, its key, type, range, default, unit, who may change
//! it and whether a change made while running is saved. Everything that checks, shows or
//! changes a setting reads it from here, so a range is written in exactly one place:
//!
//! - the config file's validation (`config.rs`), whose messages name the key and line;
//! - a stream URL's per-client parameters (`http/routes.rs`: `fps`, `compression`,
//!   `resolution`, clamped to these ranges);
//! - `POST /<camera>`, `/settings.json` (cscore's property JSON, which the web page reads
//!   its fields' ranges from) and `/config.json` (`http/settings.rs`);
//! - the NetworkTables topics `/frcstream/<camera>/<key>` (`networktables/`);
//! - the library's and the Python package's `set_fps`/`set_quality`.
//!
//! The *values* of the run-time settings live in each camera ([`LiveSettings`]) and change
//! through one path, [`Camera::change`](crate::camera::Camera::change), whoever writes
//! ([`Writer`]). Each accepted change is announced on the camera's [`ChangeFeed`]: the
//! NetworkTables publisher hears of a change made over HTTP the moment it is made.

use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::Serialize;

use crate::lock::lock;

/// What a setting holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number.
    Int,
    /// A number that may have a fraction (TOML writes it as an integer or a float).
    Number,
}

/// Where a setting may be changed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only in the config file: it shapes threads, buffers or ports set up at start.
    ConfigOnly,
    /// The config file, and at run time by any [`Writer`]: HTTP, NetworkTables, the library.
    RunTime,
    /// A stream URL's parameter: one client's view, never stored.
    PerClient,
}

/// One setting: its name and the rules for its values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    /// The key, as written in the config file, a URL, a POST and a topic name.
    pub key: &'static str,
    pub kind: Kind,
    pub min: f64,
    pub max: f64,
    /// The value when nothing sets it.
    pub default: f64,
    /// The unit, for people: `fps`, `%`, `Mbit/s`; empty when there is none.
    pub unit: &'static str,
    /// What it does, in a few words (shown on the page and in errors).
    pub about: &'static str,
    pub scope: Scope,
    /// Whether a change made while running is saved in the state file.
    pub saved: bool,
}

/// A value outside a setting's range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key} {value} is out of range ({min}–{max})")]
pub struct OutOfRange {
    pub key: &'static str,
    /// The value as it was given.
    pub value: String,
    pub min: f64,
    pub max: f64,
}

impl Spec {
    /// The range of a whole-number setting.
    pub fn int_range(&self) -> RangeInclusive<i64> {
        self.min as i64..=self.max as i64
    }

    /// The default of a whole-number setting.
    pub fn int_default(&self) -> i64 {
        self.default as i64
    }

    /// `value` if it is in range, as the `u32` every whole-number setting fits in.
    pub fn check_int(&self, value: i64) -> Result<u32, OutOfRange> {
        match u32::try_from(value) {
            Ok(v) if self.int_range().contains(&value) => Ok(v),
            _ => Err(self.out_of_range(value)),
        }
    }

    /// A number setting's `value` if it is in range.
    pub fn check_number(&self, value: f64) -> Result<f64, OutOfRange> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(self.out_of_range(value))
        }
    }

    /// `value` brought into range (for per-client parameters, which are lenient).
    pub fn clamp_int(&self, value: i64) -> i64 {
        value.clamp(self.min as i64, self.max as i64)
    }

    fn out_of_range(&self, value: impl fmt::Display) -> OutOfRange {
        OutOfRange {
            key: self.key,
            value: value.to_string(),
            min: self.min,
            max: self.max,
        }
    }
}

// --- A camera's settings ------------------------------------------------------------------

/// Frames per second sent to clients (at most what the source delivers).
pub const FPS: Spec = Spec {
    key: "fps",
    kind: Kind::Int,
    min: 1.0,
    max: 120.0,
    default: 30.0,
    unit: "fps",
    about: "frames per second sent to clients",
    scope: Scope::RunTime,
    saved: true,
};

/// JPEG quality of the frames frcstream encodes (camera MJPEG passes through as it is).
pub const QUALITY: Spec = Spec {
    key: "quality",
    kind: Kind::Int,
    min: 1.0,
    max: 100.0,
    // At 640x480 about 25 KB a frame: 30 fps of it already fills most of the 7 Mbit/s
    // the field allows.
    default: 50.0,
    unit: "",
    about: "JPEG quality of encoded frames",
    scope: Scope::RunTime,
    saved: true,
};

/// Width the camera captures at (even: YUYV packs pixels in pairs).
pub const WIDTH: Spec = Spec {
    key: "width",
    kind: Kind::Int,
    min: 16.0,
    max: 4096.0,
    default: 640.0,
    unit: "px",
    about: "width the camera captures at",
    scope: Scope::ConfigOnly,
    saved: false,
};

/// Height the camera captures at.
pub const HEIGHT: Spec = Spec {
    key: "height",
    default: 480.0,
    about: "height the camera captures at",
    ..WIDTH
};

/// The camera's part of the robot's bandwidth budget, relative to the other cameras'.
pub const WEIGHT: Spec = Spec {
    key: "weight",
    kind: Kind::Number,
    // More than 0: checked apart, a range cannot say "above".
    min: 0.0,
    max: 1000.0,
    default: 1.0,
    unit: "",
    about: "share of the bandwidth budget, relative to the other cameras",
    scope: Scope::ConfigOnly,
    saved: false,
};

/// The lowest quality the budget's governor may lower the camera to.
pub const MIN_QUALITY: Spec = Spec {
    key: "min_quality",
    default: 20.0,
    about: "lowest quality the bandwidth budget may lower the camera to",
    scope: Scope::ConfigOnly,
    saved: false,
    ..QUALITY
};

/// The lowest fps the budget's governor may lower the camera to.
pub const MIN_FPS: Spec = Spec {
    key: "min_fps",
    default: 5.0,
    about: "lowest fps the bandwidth budget may lower the camera to",
    scope: Scope::ConfigOnly,
    saved: false,
    ..FPS
};

/// The settings every writer may change while the camera streams, in the order they are
/// shown (cscore's property list, the page, NetworkTables).
pub const RUN_TIME: [&Spec; 2] = [&FPS, &QUALITY];

// --- The server's ---------------------------------------------------------------------------

/// The robot's bandwidth budget for all cameras and clients across the radio; 0 is off.
pub const MAX_MBIT: Spec = Spec {
    key: "max_mbit",
    kind: Kind::Number,
    min: 0.0,
    max: 10_000.0,
    // The default camera (640x480@30, about 6 Mbit/s) fits under the 4 Mbit/s of an
    // OpenMesh radio with room for NetworkTables and the driver station.
    default: 3.0,
    unit: "Mbit/s",
    about: "bandwidth budget for every camera and client across the radio (0: off)",
    scope: Scope::ConfigOnly,
    saved: false,
};

/// How many clients may stream at once.
pub const MAX_CLIENTS: Spec = Spec {
    key: "max_clients",
    kind: Kind::Int,
    min: 1.0,
    max: 200.0,
    default: 20.0,
    unit: "",
    about: "clients streaming at once",
    scope: Scope::ConfigOnly,
    saved: false,
};

/// The TCP port (0: any free one, for tests).
pub const PORT: Spec = Spec {
    key: "port",
    kind: Kind::Int,
    min: 0.0,
    max: 65535.0,
    default: 1181.0,
    unit: "",
    about: "TCP port of the streams (FRC allows 1180–1190)",
    scope: Scope::ConfigOnly,
    saved: false,
};

/// The team number, which gives the roboRIO's address `10.TE.AM.2` (so TE.AM ≤ 255.99).
pub const TEAM: Spec = Spec {
    key: "team",
    kind: Kind::Int,
    min: 1.0,
    max: 25599.0,
    default: 0.0,
    unit: "",
    about: "team number: the NetworkTables server is the roboRIO at 10.TE.AM.2",
    scope: Scope::ConfigOnly,
    saved: false,
};

// --- A client's view (stream URL parameters) -----------------------------------------------

/// `compression=`: the quality of this client's stream; -1 is the camera's own.
pub const COMPRESSION: Spec = Spec {
    key: "compression",
    kind: Kind::Int,
    min: -1.0,
    max: 100.0,
    default: -1.0,
    unit: "",
    about: "this client's JPEG quality (-1: the camera's)",
    scope: Scope::PerClient,
    saved: false,
};

/// One side of `resolution=WxH`: the capture size's range (0 asks for the camera's own).
pub const STREAM_SIDE: Spec = Spec {
    key: "resolution",
    default: 0.0,
    about: "this client's frame size (0: the camera's)",
    scope: Scope::PerClient,
    ..WIDTH
};

/// Every setting, for documentation and for checks that no two disagree.
pub const TABLE: [&Spec; 13] = [
    &FPS,
    &QUALITY,
    &WIDTH,
    &HEIGHT,
    &WEIGHT,
    &MIN_QUALITY,
    &MIN_FPS,
    &MAX_MBIT,
    &MAX_CLIENTS,
    &PORT,
    &TEAM,
    &COMPRESSION,
    &STREAM_SIDE,
];

/// The run-time setting called `key`, if there is one.
pub fn run_time(key: &str) -> Option<&'static Spec> {
    RUN_TIME.into_iter().find(|spec| spec.key == key)
}

// --- Live values and who changed them -------------------------------------------------------

/// Who changed a setting while running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// `POST /<camera>`, `?action=command`, the page.
    Http,
    /// The robot or a dashboard, through a `/frcstream/<camera>/` or `Property/` topic.
    NetworkTables,
    /// A program through the library (`PushedStream`) or the Python package.
    Library,
}

impl Writer {
    /// For log lines: "set over NetworkTables".
    pub fn as_str(self) -> &'static str {
        match self {
            Writer::Http => "HTTP",
            Writer::NetworkTables => "NetworkTables",
            Writer::Library => "the program",
        }
    }
}

/// The values of a camera's run-time settings ([`RUN_TIME`]), read without a lock by the
/// capture, encode and HTTP threads. Written only by [`Camera`](crate::camera::Camera)'s
/// change path, which checks them against the table first.
pub struct LiveSettings {
    fps: AtomicU32,
    quality: AtomicU32,
}

impl LiveSettings {
    /// Starting values, already checked (they come from the validated config).
    pub fn new(fps: u32, quality: u8) -> LiveSettings {
        LiveSettings {
            fps: AtomicU32::new(fps),
            quality: AtomicU32::new(u32::from(quality)),
        }
    }

    /// Frames per second published to clients (at most what the source delivers).
    pub fn fps(&self) -> u32 {
        self.fps.load(Ordering::Relaxed)
    }

    /// JPEG quality used when frames are encoded.
    pub fn quality(&self) -> u8 {
        // QUALITY's range keeps it within a byte.
        self.quality.load(Ordering::Relaxed).min(u32::from(u8::MAX)) as u8
    }

    /// The value of the run-time setting `spec`.
    pub fn get(&self, spec: &Spec) -> i64 {
        match spec.key {
            "fps" => i64::from(self.fps()),
            "quality" => i64::from(self.quality()),
            _ => spec.int_default(),
        }
    }

    /// Checks `value` against `spec` and stores it; returns the value before.
    pub(crate) fn set(&self, spec: &Spec, value: i64) -> Result<i64, OutOfRange> {
        let checked = spec.check_int(value)?;
        let before = match spec.key {
            "fps" => self.fps.swap(checked, Ordering::Relaxed),
            "quality" => self.quality.swap(checked, Ordering::Relaxed),
            _ => return Err(spec.out_of_range(value)),
        };
        Ok(i64::from(before))
    }
}

/// Where a value in force comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// frcstream's default, or for a control the camera's own value.
    Default,
    /// The config file.
    Config,
    /// The state file: changed in an earlier run.
    Saved,
    /// Changed in this run (over HTTP or NetworkTables; saved too when a state file is on).
    Changed,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::Config => "config",
            Origin::Saved => "saved",
            Origin::Changed => "changed",
        }
    }
}

/// A setting or control of a camera that was changed while running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub camera: String,
    /// `fps`, `quality` or a control's name.
    pub key: String,
    pub writer: Writer,
}

/// Who hears of a camera's changes: each subscriber gets every change after it
/// subscribed. A subscriber that falls behind by [`ChangeFeed::BACKLOG`] changes loses the
/// newest ones (a send never waits); subscribers therefore also look at the values now and
/// then, as the NetworkTables publisher does once a second.
#[derive(Default)]
pub struct ChangeFeed {
    subscribers: Mutex<Vec<(SubscriberId, Sender<Changed>)>>,
    next_id: AtomicU64,
}

/// A subscriber of a [`ChangeFeed`], for [`ChangeFeed::unsubscribe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberId(u64);

impl ChangeFeed {
    pub const BACKLOG: usize = 256;

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> Receiver<Changed> {
        let (sender, receiver) = crossbeam_channel::bounded(Self::BACKLOG);
        self.subscribe_with(sender);
        receiver
    }

    /// Adds `sender` as a subscriber (one receiver for several cameras). A subscriber whose
    /// receiver is gone is forgotten at the next change; one that comes and goes often
    /// (a page's event stream) unsubscribes as it leaves.
    pub fn subscribe_with(&self, sender: Sender<Changed>) -> SubscriberId {
        let id = SubscriberId(self.next_id.fetch_add(1, Ordering::Relaxed));
        lock(&self.subscribers).push((id, sender));
        id
    }

    /// Forgets the subscriber `id`.
    pub fn unsubscribe(&self, id: SubscriberId) {
        lock(&self.subscribers).retain(|(subscriber, _)| *subscriber != id);
    }

    /// How many subscribers there are.
    pub fn subscriber_count(&self) -> usize {
        lock(&self.subscribers).len()
    }

    /// Tells every subscriber; forgets those that are gone.
    pub fn announce(&self, change: &Changed) {
        lock(&self.subscribers).retain(|(_, s)| match s.try_send(change.clone()) {
            Ok(()) | Err(TrySendError::Full(_)) => true,
            Err(TrySendError::Disconnected(_)) => false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_range_is_well_formed_and_holds_its_default() {
        for spec in TABLE {
            assert!(spec.min <= spec.max, "{}", spec.key);
            let default_in_range = (spec.min..=spec.max).contains(&spec.default);
            // A team number has no default; a per-client side's 0 means "the camera's".
            let no_default = matches!(spec.key, "team" | "resolution");
            assert!(default_in_range || no_default, "{}", spec.key);
            if spec.kind == Kind::Int {
                assert_eq!(spec.min.fract(), 0.0, "{}", spec.key);
                assert_eq!(spec.max.fract(), 0.0, "{}", spec.key);
            }
        }
    }

    #[test]
    fn keys_are_unique_within_a_scope() {
        for (i, a) in TABLE.iter().enumerate() {
            for b in &TABLE[i + 1..] {
                assert!(a.key != b.key || a.scope != b.scope, "{}", a.key);
            }
        }
    }

    #[test]
    fn the_budgets_floors_share_their_settings_ranges() {
        assert_eq!(MIN_FPS.int_range(), FPS.int_range());
        assert_eq!(MIN_QUALITY.int_range(), QUALITY.int_range());
        assert_eq!(STREAM_SIDE.int_range(), WIDTH.int_range());
    }

    #[test]
    fn values_out_of_range_are_refused_with_the_range() {
        assert_eq!(FPS.check_int(15), Ok(15));
        let refused = FPS.check_int(0).expect_err("0 fps");
        assert_eq!(refused.to_string(), "fps 0 is out of range (1–120)");
        assert!(QUALITY.check_int(101).is_err());
        assert!(QUALITY.check_int(i64::MAX).is_err());
        assert!(QUALITY.check_int(-1).is_err());
        assert_eq!(
            MAX_MBIT
                .check_number(-0.5)
                .expect_err("negative")
                .to_string(),
            "max_mbit -0.5 is out of range (0–10000)"
        );
        assert_eq!(COMPRESSION.clamp_int(250), 100);
        assert_eq!(COMPRESSION.clamp_int(-7), -1);
    }

    #[test]
    fn live_settings_change_only_to_values_in_range() {
        let live = LiveSettings::new(30, 50);
        assert_eq!(live.set(&FPS, 12), Ok(30));
        assert!(live.set(&QUALITY, 0).is_err());
        assert_eq!((live.fps(), live.quality()), (12, 50));
        assert_eq!(live.get(&QUALITY), 50);
    }

    #[test]
    fn every_subscriber_hears_of_a_change_and_the_gone_are_forgotten() {
        let feed = ChangeFeed::default();
        let first = feed.subscribe();
        let second = feed.subscribe();
        drop(second);
        let change = Changed {
            camera: "front".into(),
            key: "fps".into(),
            writer: Writer::Http,
        };
        feed.announce(&change);
        assert_eq!(first.try_recv(), Ok(change));
        assert_eq!(feed.subscriber_count(), 1);
        for _ in 0..ChangeFeed::BACKLOG + 10 {
            feed.announce(&Changed {
                camera: "front".into(),
                key: "quality".into(),
                writer: Writer::NetworkTables,
            });
        }
        assert_eq!(
            first.len(),
            ChangeFeed::BACKLOG,
            "a full subscriber loses the newest"
        );
        let (sender, _receiver) = crossbeam_channel::bounded(1);
        let id = feed.subscribe_with(sender);
        assert_eq!(feed.subscriber_count(), 2);
        feed.unsubscribe(id);
        assert_eq!(feed.subscriber_count(), 1);
    }
}

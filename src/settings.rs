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
//!
//! Each run-time value is [`Layered`]: the team's normal value, the match profile's
//! (`[camera.match]`, for the settings whose [`Spec::in_match`] names that table) and a
//! change made during a match; which is in force follows the [`Profile`]
//! (`match_profile.rs` says how they compose).

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
    /// The match profile's table that may set it (`[camera.match]`, `[server.match]`), if
    /// any: a value in force while the FMS is attached (`match_profile.rs`).
    pub in_match: Option<MatchTable>,
}

/// The config tables of the match profile, in force while the FMS is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchTable {
    /// `[camera.match]`: a camera's run-time settings.
    Camera,
    /// `[server.match]`: the server's settings that can change while running.
    Server,
}

impl MatchTable {
    /// The table as written in the config file.
    pub fn section(self) -> &'static str {
        match self {
            MatchTable::Camera => "[camera.match]",
            MatchTable::Server => "[server.match]",
        }
    }
}

/// The settings a match profile's `table` may set, in the table's order.
pub fn match_settings(table: MatchTable) -> impl Iterator<Item = &'static Spec> {
    TABLE
        .into_iter()
        .filter(move |spec| spec.in_match == Some(table))
}

/// The setting `key` of the match profile's `table`, if it may set one.
pub fn match_setting(table: MatchTable, key: &str) -> Option<&'static Spec> {
    match_settings(table).find(|spec| spec.key == key)
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
    in_match: Some(MatchTable::Camera),
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
    in_match: Some(MatchTable::Camera),
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
    in_match: None,
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
    in_match: None,
};

/// The lowest quality the budget's governor may lower the camera to.
pub const MIN_QUALITY: Spec = Spec {
    key: "min_quality",
    default: 20.0,
    about: "lowest quality the bandwidth budget may lower the camera to",
    scope: Scope::ConfigOnly,
    saved: false,
    in_match: None,
    ..QUALITY
};

/// The lowest fps the budget's governor may lower the camera to.
pub const MIN_FPS: Spec = Spec {
    key: "min_fps",
    default: 5.0,
    about: "lowest fps the bandwidth budget may lower the camera to",
    scope: Scope::ConfigOnly,
    saved: false,
    in_match: None,
    ..FPS
};

/// The narrowest the budget's governor may shrink the camera's frames to.
pub const MIN_WIDTH: Spec = Spec {
    key: "min_width",
    default: 320.0,
    about: "narrowest the bandwidth budget may shrink the camera's frames to",
    scope: Scope::ConfigOnly,
    saved: false,
    in_match: None,
    ..WIDTH
};

/// The lowest height the budget's governor may shrink the camera's frames to.
pub const MIN_HEIGHT: Spec = Spec {
    key: "min_height",
    default: 180.0,
    about: "lowest height the bandwidth budget may shrink the camera's frames to",
    ..MIN_WIDTH
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
    in_match: Some(MatchTable::Server),
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
    in_match: None,
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
    in_match: None,
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
    in_match: None,
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
    in_match: None,
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
pub const TABLE: [&Spec; 15] = [
    &FPS,
    &QUALITY,
    &WIDTH,
    &HEIGHT,
    &WEIGHT,
    &MIN_QUALITY,
    &MIN_FPS,
    &MIN_WIDTH,
    &MIN_HEIGHT,
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
    /// The match profile, switched by the FMS (`match_profile.rs`).
    MatchProfile,
}

impl Writer {
    /// For log lines: "set over NetworkTables".
    pub fn as_str(self) -> &'static str {
        match self {
            Writer::Http => "HTTP",
            Writer::NetworkTables => "NetworkTables",
            Writer::Library => "the program",
            Writer::MatchProfile => "the match profile",
        }
    }
}

/// Which set of values is in force: the team's own, or the match profile's while the FMS
/// is attached (`match_profile.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    Normal,
    Match,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Normal => "normal",
            Profile::Match => "match",
        }
    }
}

/// Which layer of a [`Layered`] value is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The team's value: the config's, a saved one, or one changed in this run.
    Normal,
    /// The match profile's value (`[camera.match]`, `[server.match]`).
    Match,
    /// A change made during the match to a value the match profile sets: in force until
    /// the match ends, never saved.
    MatchChange,
}

/// One setting's values in each profile. The in-force value is the normal one, except
/// during a match for a setting the match profile sets: then a change made during the
/// match, or else the profile's value. A match's end drops the change made during it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layered<T> {
    normal: T,
    in_match: Option<T>,
    match_change: Option<T>,
}

impl<T: Copy> Layered<T> {
    pub fn new(normal: T, in_match: Option<T>) -> Layered<T> {
        Layered {
            normal,
            in_match,
            match_change: None,
        }
    }

    /// The layer in force under `profile`.
    pub fn layer(&self, profile: Profile) -> Layer {
        match (profile, self.in_match, self.match_change) {
            (Profile::Match, Some(_), Some(_)) => Layer::MatchChange,
            (Profile::Match, Some(_), None) => Layer::Match,
            _ => Layer::Normal,
        }
    }

    /// The value in force under `profile`.
    pub fn in_force(&self, profile: Profile) -> T {
        match self.layer(profile) {
            Layer::Normal => self.normal,
            Layer::Match => self.in_match.unwrap_or(self.normal),
            Layer::MatchChange => self.match_change.unwrap_or(self.normal),
        }
    }

    /// A writer's value under `profile`: a change during the match to what the profile
    /// sets, else the normal value. Returns the layer that took it.
    fn set(&mut self, profile: Profile, value: T) -> Layer {
        if profile == Profile::Match && self.in_match.is_some() {
            self.match_change = Some(value);
            Layer::MatchChange
        } else {
            self.normal = value;
            Layer::Normal
        }
    }

    /// The normal value put back (restored or forgotten), and any match change dropped.
    fn restore(&mut self, value: T) {
        self.normal = value;
        self.match_change = None;
    }

    /// A profile switch: a change made during the match ends with it.
    fn end_match_change(&mut self) {
        self.match_change = None;
    }
}

/// A value a writer stored: the value in force before, and the layer that took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub before: i64,
    pub layer: Layer,
}

/// The values of a camera's run-time settings ([`RUN_TIME`]) in force, read without a lock
/// by the capture, encode and HTTP threads, and their layers ([`Layered`]: normal, match
/// profile) behind a lock, which only writers take. Written only by
/// [`Camera`](crate::camera::Camera)'s change path and profile switch, which check values
/// against the table first.
pub struct LiveSettings {
    fps: AtomicU32,
    quality: AtomicU32,
    layers: Mutex<Layers>,
}

struct Layers {
    profile: Profile,
    /// Why the profile is in force, in words: "FMS attached: Qualification 12 at ...".
    reason: String,
    /// One per [`RUN_TIME`] setting, in its order.
    values: [Layered<u32>; RUN_TIME.len()],
}

/// Why the normal profile is in force before anything says otherwise.
pub const NO_MATCH_YET: &str = "no FMS seen";

impl LiveSettings {
    /// Starting values, already checked (they come from the validated config).
    pub fn new(fps: u32, quality: u8) -> LiveSettings {
        LiveSettings {
            fps: AtomicU32::new(fps),
            quality: AtomicU32::new(u32::from(quality)),
            layers: Mutex::new(Layers {
                profile: Profile::Normal,
                reason: NO_MATCH_YET.to_owned(),
                values: [
                    Layered::new(fps, None),
                    Layered::new(u32::from(quality), None),
                ],
            }),
        }
    }

    /// With the match profile's values (`[camera.match]`); one out of range is left out
    /// (the config's validation refused it already).
    pub fn with_match<'a>(
        self,
        values: impl IntoIterator<Item = &'a (&'static Spec, f64)>,
    ) -> Self {
        {
            let mut layers = lock(&self.layers);
            for (spec, value) in values {
                if let (Some(i), Ok(value)) = (run_time_index(spec), spec.check_int(*value as i64))
                {
                    layers.values[i].in_match = Some(value);
                }
            }
        }
        self
    }

    /// Whether the match profile sets any of these settings.
    pub fn has_match_values(&self) -> bool {
        lock(&self.layers)
            .values
            .iter()
            .any(|value| value.in_match.is_some())
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

    /// The value in force of the run-time setting `spec`.
    pub fn get(&self, spec: &Spec) -> i64 {
        match self.in_force(spec) {
            Some(atomic) => i64::from(atomic.load(Ordering::Relaxed)),
            None => spec.int_default(),
        }
    }

    /// The profile in force and why.
    pub fn profile(&self) -> (Profile, String) {
        let layers = lock(&self.layers);
        (layers.profile, layers.reason.clone())
    }

    /// Which layer of `spec` is in force (a setting not run-time: `Normal`).
    pub fn layer(&self, spec: &Spec) -> Layer {
        let layers = lock(&self.layers);
        run_time_index(spec).map_or(Layer::Normal, |i| layers.values[i].layer(layers.profile))
    }

    /// Checks `value` against `spec` and stores it where a writer's value goes now: the
    /// normal value, or during a match the match change of a setting the profile sets.
    pub(crate) fn set(&self, spec: &Spec, value: i64) -> Result<Stored, OutOfRange> {
        let checked = spec.check_int(value)?;
        let i = run_time_index(spec).ok_or_else(|| spec.out_of_range(value))?;
        let mut layers = lock(&self.layers);
        let profile = layers.profile;
        let layer = layers.values[i].set(profile, checked);
        let before = self.publish(spec, layers.values[i].in_force(profile));
        Ok(Stored { before, layer })
    }

    /// Puts the normal value of `spec` back to `value` (saved, or the config's when changes
    /// are forgotten) and drops a change made during the match; returns the value in force
    /// before.
    pub(crate) fn restore(&self, spec: &Spec, value: i64) -> Result<i64, OutOfRange> {
        let checked = spec.check_int(value)?;
        let i = run_time_index(spec).ok_or_else(|| spec.out_of_range(value))?;
        let mut layers = lock(&self.layers);
        let profile = layers.profile;
        layers.values[i].restore(checked);
        Ok(self.publish(spec, layers.values[i].in_force(profile)))
    }

    /// Puts `profile` in force for `reason`; returns the settings whose value in force
    /// changed. Changes made during a match end with a switch either way.
    pub(crate) fn switch_profile(&self, profile: Profile, reason: &str) -> Vec<&'static Spec> {
        let mut layers = lock(&self.layers);
        layers.reason = reason.to_owned();
        if layers.profile == profile {
            return Vec::new();
        }
        layers.profile = profile;
        let mut changed = Vec::new();
        for (spec, value) in RUN_TIME.into_iter().zip(&mut layers.values) {
            value.end_match_change();
            let now = value.in_force(profile);
            if self.publish(spec, now) != i64::from(now) {
                changed.push(spec);
            }
        }
        changed
    }

    /// Stores the value in force for the readers; returns the one before.
    fn publish(&self, spec: &Spec, value: u32) -> i64 {
        self.in_force(spec).map_or(spec.int_default(), |atomic| {
            i64::from(atomic.swap(value, Ordering::Relaxed))
        })
    }

    fn in_force(&self, spec: &Spec) -> Option<&AtomicU32> {
        match spec.key {
            "fps" => Some(&self.fps),
            "quality" => Some(&self.quality),
            _ => None,
        }
    }
}

/// Where `spec` stands in [`RUN_TIME`].
fn run_time_index(spec: &Spec) -> Option<usize> {
    RUN_TIME.iter().position(|s| s.key == spec.key)
}

/// A server setting the match profile may set ([`MatchTable::Server`]: `max_mbit`): its
/// value in each profile, and the one in force, read without a lock. Nothing else writes
/// it while running.
pub struct ProfiledNumber {
    values: Layered<f64>,
    in_force: AtomicU64,
}

impl ProfiledNumber {
    pub fn new(normal: f64, in_match: Option<f64>) -> ProfiledNumber {
        ProfiledNumber {
            values: Layered::new(normal, in_match),
            in_force: AtomicU64::new(normal.to_bits()),
        }
    }

    /// The value in force.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.in_force.load(Ordering::Relaxed))
    }

    /// Whether the match profile sets it.
    pub fn has_match_value(&self) -> bool {
        self.values.in_match.is_some()
    }

    /// The largest value any profile gives it.
    pub fn highest(&self) -> f64 {
        self.values.normal.max(self.values.in_match.unwrap_or(0.0))
    }

    /// Puts `profile`'s value in force; returns it when it changed.
    pub fn switch_profile(&self, profile: Profile) -> Option<f64> {
        let now = self.values.in_force(profile);
        let before = f64::from_bits(self.in_force.swap(now.to_bits(), Ordering::Relaxed));
        (before != now).then_some(now)
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
    /// Changed in this run (over HTTP or NetworkTables; saved too when a state file is on,
    /// unless it was changed during a match on top of the match profile).
    Changed,
    /// The match profile (`[camera.match]`), in force while the FMS is attached.
    Match,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::Config => "config",
            Origin::Saved => "saved",
            Origin::Changed => "changed",
            Origin::Match => "match",
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
        assert_eq!(MIN_WIDTH.int_range(), WIDTH.int_range());
        assert_eq!(MIN_HEIGHT.int_range(), HEIGHT.int_range());
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
        assert_eq!(live.set(&FPS, 12).map(|stored| stored.before), Ok(30));
        assert!(live.set(&QUALITY, 0).is_err());
        assert_eq!((live.fps(), live.quality()), (12, 50));
        assert_eq!(live.get(&QUALITY), 50);
    }

    #[test]
    fn a_match_profile_sets_only_its_own_settings_and_changes_during_it_end_with_it() {
        let live = LiveSettings::new(30, 50).with_match(&[(&FPS, 10.0)]);
        assert_eq!(
            live.switch_profile(Profile::Match, "FMS attached"),
            vec![&FPS]
        );
        assert_eq!((live.fps(), live.quality()), (10, 50));
        assert_eq!(live.layer(&FPS), Layer::Match);
        assert_eq!(live.layer(&QUALITY), Layer::Normal);
        // A dashboard during the match: over the profile's fps, the normal quality.
        let stored = live.set(&FPS, 15).expect("in range");
        assert_eq!(
            stored,
            Stored {
                before: 10,
                layer: Layer::MatchChange
            }
        );
        let stored = live.set(&QUALITY, 40).expect("in range");
        assert_eq!(
            stored,
            Stored {
                before: 50,
                layer: Layer::Normal
            }
        );
        assert_eq!((live.fps(), live.quality()), (15, 40));
        assert!(live.switch_profile(Profile::Match, "again").is_empty());
        assert_eq!(live.profile(), (Profile::Match, "again".to_owned()));
        // The match ends: the normal fps, the quality changed during it stays.
        assert_eq!(live.switch_profile(Profile::Normal, "FMS gone"), vec![&FPS]);
        assert_eq!((live.fps(), live.quality()), (30, 40));
        // The next match starts from the profile again, not from the last match's change.
        live.switch_profile(Profile::Match, "FMS attached");
        assert_eq!(live.fps(), 10);
        assert_eq!(
            live.restore(&FPS, 20),
            Ok(10),
            "the normal value, under the match"
        );
        assert_eq!(live.fps(), 10);
        live.switch_profile(Profile::Normal, "FMS gone");
        assert_eq!(live.fps(), 20);
    }

    #[test]
    fn the_match_profile_may_set_the_cameras_run_time_settings_and_the_budget_only() {
        let camera: Vec<&str> = match_settings(MatchTable::Camera).map(|s| s.key).collect();
        assert_eq!(camera, ["fps", "quality"]);
        for spec in match_settings(MatchTable::Camera) {
            assert!(run_time(spec.key).is_some(), "{} is run-time", spec.key);
        }
        let server: Vec<&str> = match_settings(MatchTable::Server).map(|s| s.key).collect();
        assert_eq!(server, ["max_mbit"]);
        assert_eq!(match_setting(MatchTable::Camera, "min_fps"), None);
        assert_eq!(match_setting(MatchTable::Server, "fps"), None);
        let budget = ProfiledNumber::new(3.0, Some(1.5));
        assert_eq!((budget.get(), budget.highest()), (3.0, 3.0));
        assert_eq!(budget.switch_profile(Profile::Match), Some(1.5));
        assert_eq!(budget.switch_profile(Profile::Match), None);
        assert_eq!(budget.get(), 1.5);
        let unset = ProfiledNumber::new(0.0, None);
        assert_eq!(unset.switch_profile(Profile::Match), None);
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

//! A camera as the rest of the program sees it: its name, live settings, newest-frame slot,
//! statistics and current mode. The capture thread writes into it; HTTP and NetworkTables
//! read from it and change its settings, which are recorded in the state file
//! (`saved_settings.rs`) when one is in use.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::config::{CameraConfig, SourceSpec};
use crate::controls::{CameraControls, ControlError, ControlValue};
use crate::frame_slot::FrameSlot;
use crate::governor::{Governor, GovernorReport};
use crate::lock::lock;
use crate::robot_clock::RobotClock;
use crate::saved_settings::{ConfigValues, StateFile, Verdict, verdict};
use crate::settings::{
    self, ChangeFeed, Changed, Layer, LiveSettings, Origin, OutOfRange, Profile, Spec, Writer,
};
use crate::source::Mode;
use crate::stats::CameraStats;
use crate::variants::{VariantSource, Variants};

pub struct Camera {
    pub name: String,
    /// fps and quality in force (read freely; changed only through [`Camera::change`]).
    pub settings: LiveSettings,
    /// Who hears of changes to the settings and controls (NetworkTables).
    pub changes: ChangeFeed,
    pub slot: Arc<FrameSlot>,
    pub stats: Arc<CameraStats>,
    /// V4L2 controls (empty for other sources).
    pub controls: Arc<CameraControls>,
    /// The other sizes and qualities clients are watching.
    pub variants: Variants,
    mode: Mutex<Mode>,
    source: Mutex<String>,
    connected: AtomicBool,
    /// Why the camera is not streaming, in words a team can act on; `None` while it is.
    problem: Mutex<Option<String>>,
    /// Bumped by the capture thread once per loop: the systemd watchdog's proof of life.
    heartbeat: AtomicU64,
    /// What the config file says, key by key.
    pub config: ConfigValues,
    /// Where fps and quality in force come from (controls keep their own).
    origins: Mutex<(Origin, Origin)>,
    /// Where changes are saved, when a state file is in use.
    state_file: OnceLock<Arc<StateFile>>,
    /// The camera's part of the robot's bandwidth budget (`budget.rs`).
    pub governor: Governor,
    /// The robot's clock, for frame times in it (set by NetworkTables while synchronised).
    pub robot_clock: Arc<RobotClock>,
}

impl Camera {
    pub fn new(config: &CameraConfig) -> Camera {
        let values = ConfigValues::of(config);
        let origins = (values.origin("fps"), values.origin("quality"));
        Camera {
            name: config.name.clone(),
            settings: LiveSettings::new(config.fps, config.quality).with_match(&config.in_match.0),
            changes: ChangeFeed::default(),
            slot: Arc::new(FrameSlot::new()),
            stats: Arc::new(CameraStats::default()),
            controls: {
                let controls = CameraControls::default();
                controls.set_wanted(
                    config
                        .controls
                        .iter()
                        .map(|c| (c.name.clone(), c.value.clone(), c.line)),
                );
                Arc::new(controls)
            },
            variants: Variants::default(),
            mode: Mutex::new(Mode {
                width: config.width,
                height: config.height,
                format: "YUYV",
                fps: config.fps,
            }),
            source: Mutex::new(config.source.to_string()),
            connected: AtomicBool::new(false),
            problem: Mutex::new(None),
            heartbeat: AtomicU64::new(0),
            config: values,
            origins: Mutex::new(origins),
            state_file: OnceLock::new(),
            governor: Governor::new(config),
            robot_clock: Arc::default(),
        }
    }

    /// The capture time of the newest frame in the robot's clock (µs), while that clock is
    /// synchronised and a frame was published.
    pub fn frame_robot_time_us(&self) -> Option<i64> {
        let newest = self.slot.latest();
        (newest.seq > 0)
            .then_some(newest.captured_us)
            .and_then(|captured_us| self.robot_clock.robot_time_us(captured_us))
    }

    /// The JPEG quality frames are encoded at: the setting, or less under the budget.
    pub fn quality_in_force(&self) -> u8 {
        self.governor.quality(self.settings.quality())
    }

    /// The fps frames are captured and published at: the setting. (The budget lowers the
    /// rate that crosses the radio, not this: `governor.rs`.)
    pub fn fps_in_force(&self) -> u32 {
        self.settings.fps()
    }

    /// The budget's governor's choice for this camera now.
    pub fn governor_report(&self) -> GovernorReport {
        self.governor.report(
            self.settings.quality(),
            self.settings.fps(),
            self.mode().size(),
        )
    }

    /// The mode the source delivers (as negotiated, which may differ from the config).
    pub fn mode(&self) -> Mode {
        lock(&self.mode).clone()
    }

    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.mode) = mode;
    }

    /// What the source is, e.g. `test pattern`.
    pub fn source_description(&self) -> String {
        lock(&self.source).clone()
    }

    pub fn set_source_description(&self, description: String) {
        *lock(&self.source) = description;
    }

    /// Why the camera is not streaming (the last error from the source), or `None`.
    pub fn problem(&self) -> Option<String> {
        lock(&self.problem).clone()
    }

    pub fn set_problem(&self, problem: Option<String>) {
        *lock(&self.problem) = problem;
    }

    /// The source's description, with the problem while there is one: what dashboards
    /// show (`/CameraPublisher/<name>/description`).
    pub fn description(&self) -> String {
        match self.problem() {
            Some(problem) => format!("{}: {problem}", self.source_description()),
            None => self.source_description(),
        }
    }

    /// Whether the source currently delivers frames.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// Called by the capture thread once per loop, frames or not (see `systemd.rs`).
    pub fn beat(&self) {
        self.heartbeat.fetch_add(1, Ordering::Relaxed);
    }

    /// How many loops the capture thread has made.
    pub fn heartbeat(&self) -> u64 {
        self.heartbeat.load(Ordering::Relaxed)
    }
}

/// Why a change was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    OutOfRange(#[from] OutOfRange),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("{key} must be a whole number, not {value}")]
    NotANumber { key: String, value: String },
    #[error("unknown setting `{0}`: use fps, quality or a control of the camera")]
    Unknown(String),
    #[error("nothing to change: send fps=.., quality=.. or a control")]
    Empty,
}

impl Eq for OutOfRange {}

impl Camera {
    /// The one way a setting or control changes while running, whoever asks (`writer`):
    /// every value is checked against the settings table (`settings.rs`) or the control's
    /// own range first, and if any is bad nothing changes. An accepted change is recorded
    /// (origin `changed`, saved in the state file) unless it is the value in force
    /// already (NetworkTables echoes values back), and announced on [`Camera::changes`].
    pub fn change(
        &self,
        writer: Writer,
        changes: &[(String, ControlValue)],
    ) -> Result<(), ChangeError> {
        if changes.is_empty() {
            return Err(ChangeError::Empty);
        }
        let mut checked = Vec::with_capacity(changes.len());
        for (key, value) in changes {
            let change = match settings::run_time(key) {
                Some(spec) => {
                    let value = whole_number(key, value)?;
                    spec.check_int(value)?;
                    Checked::Setting(spec, value)
                }
                None if self.controls.has(key) => {
                    self.controls.check_value(key, value)?;
                    Checked::Control(key.clone(), value.clone())
                }
                None => return Err(ChangeError::Unknown(key.clone())),
            };
            checked.push(change);
        }
        for change in checked {
            match change {
                Checked::Setting(spec, value) => self.set_setting(writer, spec, value)?,
                Checked::Control(name, value) => {
                    let raw = self.controls.set(&name, &value)?;
                    self.record(&name, raw);
                    self.announce(&name, writer);
                }
            }
        }
        Ok(())
    }

    fn set_setting(
        &self,
        writer: Writer,
        spec: &'static Spec,
        value: i64,
    ) -> Result<(), OutOfRange> {
        let stored = self.settings.set(spec, value)?;
        if value != stored.before {
            // A change made during a match on top of the match profile ends with the match:
            // not the team's value, not saved.
            if stored.layer == Layer::Normal {
                self.set_origin(spec.key, Origin::Changed);
                if spec.saved {
                    self.record(spec.key, value);
                }
            }
            self.announce(spec.key, writer);
        }
        Ok(())
    }

    /// Puts the robot-wide `profile` in force for this camera (`match_profile.rs`): each
    /// setting whose value in force changes is announced, by [`Writer::MatchProfile`].
    /// Nothing is saved or marked `changed`.
    pub fn switch_profile(&self, profile: Profile, reason: &str) {
        for spec in self.settings.switch_profile(profile, reason) {
            self.announce(spec.key, Writer::MatchProfile);
        }
    }

    fn announce(&self, key: &str, writer: Writer) {
        self.changes.announce(&Changed {
            camera: self.name.clone(),
            key: key.to_owned(),
            writer,
        });
    }

    /// Saves a change in the state file, if there is one.
    fn record(&self, key: &str, value: i64) {
        if let Some(file) = self.state_file.get() {
            file.record(&self.name, key, value, self.config.written(key));
        }
    }

    /// From now on changes are saved in `file` (once; later calls are ignored).
    pub fn save_changes_to(&self, file: Arc<StateFile>) {
        let _ = self.state_file.set(file);
    }

    /// The state file changes are saved in, if any.
    pub fn state_file(&self) -> Option<&Arc<StateFile>> {
        self.state_file.get()
    }

    /// Puts a run-time setting back to a value from the state file (at start): checked
    /// like any change, marked `saved`, not saved again.
    pub fn restore_saved(&self, key: &str, value: i64) -> Result<(), ChangeError> {
        let spec = settings::run_time(key).ok_or_else(|| ChangeError::Unknown(key.to_owned()))?;
        self.settings.restore(spec, value)?;
        self.set_origin(key, Origin::Saved);
        Ok(())
    }

    /// At start: applies this camera's saved values that [`verdict`] lets through (controls
    /// when the camera connects), drops those the config overrides now, logs each, and from
    /// then on saves the camera's changes in `file`. Never fails: a value that does not fit
    /// is skipped with a log line.
    pub fn restore_saved_settings(&self, file: &Arc<StateFile>, config: &CameraConfig) {
        let camera = self;
        let name = &camera.name;
        let mut controls = Vec::new();
        for (key, saved) in file.saved(name).entries() {
            let config_now = camera.config.written(&key);
            if verdict(&saved, config_now.as_ref()) == Verdict::ConfigChanged {
                log::info!(
                    "camera \"{name}\": saved {key} = {} dropped: the config file's {key} changed since \
                 (was {}, now {}); the config wins",
                    saved.value,
                    show(saved.config.as_ref()),
                    show(config_now.as_ref())
                );
                file.drop_key(name, &key);
                continue;
            }
            let applied = match settings::run_time(&key) {
                Some(_) => camera
                    .restore_saved(&key, saved.value)
                    .map_err(|e| e.to_string()),
                None if !matches!(config.source, SourceSpec::V4l2(_)) => {
                    log::info!(
                        "camera \"{name}\": saved control {key} skipped: the camera has no controls"
                    );
                    continue;
                }
                None => {
                    controls.push((key.clone(), ControlValue::Int(saved.value)));
                    Ok(())
                }
            };
            match applied {
                Ok(()) => {
                    log::info!("camera \"{name}\": {key} = {} (saved)", saved.value);
                }
                Err(reason) => {
                    log::warn!("camera \"{name}\": saved {key} skipped: {reason}");
                    file.drop_key(name, &key);
                }
            }
        }
        camera.controls.set_saved(controls);
        camera.save_changes_to(Arc::clone(file));
    }

    fn set_origin(&self, key: &str, origin: Origin) {
        let mut origins = lock(&self.origins);
        match key {
            "fps" => origins.0 = origin,
            "quality" => origins.1 = origin,
            _ => {}
        }
    }

    /// Where the value in force of `key` (fps, quality, a control) comes from: during a
    /// match, `match` for the match profile's value, `changed` for a change on top of it.
    pub fn origin(&self, key: &str) -> Origin {
        let normal = match key {
            "fps" => lock(&self.origins).0,
            "quality" => lock(&self.origins).1,
            name => return self.controls.origin(name),
        };
        match settings::run_time(key).map(|spec| self.settings.layer(spec)) {
            Some(Layer::Match) => Origin::Match,
            Some(Layer::MatchChange) => Origin::Changed,
            _ => normal,
        }
    }

    /// fps, quality and every control not at the camera's own value, with their origins.
    pub fn origins(&self) -> BTreeMap<String, Origin> {
        let mut origins: BTreeMap<String, Origin> = self.controls.origins().into_iter().collect();
        for spec in settings::RUN_TIME {
            origins.insert(spec.key.into(), self.origin(spec.key));
        }
        origins
    }

    /// Drops the saved values and this run's changes: fps, quality and controls go back to
    /// the config file's values (a control the file does not set, to the camera's default).
    pub fn forget_changes(&self, writer: Writer) {
        if let Some(file) = self.state_file.get() {
            file.forget_camera(&self.name);
        }
        for spec in settings::RUN_TIME {
            let value = match spec.key {
                "fps" => i64::from(self.config.fps),
                _ => i64::from(self.config.quality),
            };
            // The config's values passed the same checks: these cannot fail.
            if let Ok(before) = self.settings.restore(spec, value) {
                self.set_origin(spec.key, self.config.origin(spec.key));
                if before != value {
                    self.announce(spec.key, writer);
                }
            }
        }
        for (name, origin) in self.controls.origins() {
            if !matches!(origin, Origin::Saved | Origin::Changed) {
                continue;
            }
            match self
                .controls
                .restore(&name, self.config.written(&name).as_ref())
            {
                Ok(()) => self.announce(&name, writer),
                Err(e) => log::warn!("camera \"{}\": {name} not set back: {e}", self.name),
            }
        }
        log::info!(
            "camera \"{}\": saved settings forgotten; back to the config's values",
            self.name
        );
    }
}

/// A config value for a log line: `30`, `"manual"`, or `not set`.
fn show(value: Option<&ControlValue>) -> String {
    value.map_or_else(|| "not set".to_owned(), ToString::to_string)
}

enum Checked {
    Setting(&'static Spec, i64),
    Control(String, ControlValue),
}

fn whole_number(key: &str, value: &ControlValue) -> Result<i64, ChangeError> {
    match value {
        ControlValue::Int(v) => Ok(*v),
        ControlValue::Text(t) => t.trim().parse().map_err(|_| ChangeError::NotANumber {
            key: key.to_owned(),
            value: format!("\"{t}\""),
        }),
        ControlValue::Bool(b) => Err(ChangeError::NotANumber {
            key: key.to_owned(),
            value: b.to_string(),
        }),
    }
}

impl VariantSource for Camera {
    fn name(&self) -> &str {
        &self.name
    }

    fn slot(&self) -> &Arc<FrameSlot> {
        &self.slot
    }

    fn size_and_fps(&self) -> (u32, u32, u32) {
        let mode = self.mode();
        (mode.width, mode.height, mode.fps)
    }

    fn quality(&self) -> u8 {
        self.settings.quality()
    }

    fn variants(&self) -> &Variants {
        &self.variants
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_carries_the_problem_while_there_is_one() {
        let camera = Camera::new(&CameraConfig::embedded_default());
        let plain = camera.description();
        camera.set_problem(Some("the USB bus is out of bandwidth".into()));
        assert_eq!(
            camera.description(),
            format!("{plain}: the USB bus is out of bandwidth")
        );
        camera.set_problem(None);
        assert_eq!(camera.description(), plain);
    }

    #[test]
    fn a_change_with_one_bad_value_changes_nothing() {
        let camera = Camera::new(&CameraConfig::embedded_default());
        let change = |pairs: &[(&str, ControlValue)]| {
            let pairs: Vec<(String, ControlValue)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            camera.change(Writer::Http, &pairs)
        };
        assert!(
            change(&[
                ("fps", ControlValue::Int(10)),
                ("quality", ControlValue::Text("40".into()))
            ])
            .is_ok()
        );
        assert_eq!((camera.settings.fps(), camera.settings.quality()), (10, 40));
        for bad in [
            vec![
                ("fps", ControlValue::Int(12)),
                ("quality", ControlValue::Int(0)),
            ],
            vec![("fps", ControlValue::Text("fast".into()))],
            vec![
                ("fps", ControlValue::Int(12)),
                ("zoom", ControlValue::Int(1)),
            ],
            vec![("quality", ControlValue::Bool(true))],
            vec![],
        ] {
            assert!(change(&bad).is_err(), "{bad:?}");
            assert_eq!((camera.settings.fps(), camera.settings.quality()), (10, 40));
        }
    }

    fn set(camera: &Camera, writer: Writer, key: &str, value: i64) -> Result<(), ChangeError> {
        camera.change(writer, &[(key.to_owned(), ControlValue::Int(value))])
    }

    #[test]
    fn settings_refuse_out_of_range_values_and_keep_the_old_one() {
        let camera = Camera::new(&CameraConfig::embedded_default());
        assert!(set(&camera, Writer::Library, "fps", 15).is_ok());
        assert_eq!(camera.settings.fps(), 15);
        let err = set(&camera, Writer::Library, "fps", 0).expect_err("0 fps");
        assert_eq!(err.to_string(), "fps 0 is out of range (1–120)");
        assert!(set(&camera, Writer::Http, "fps", -3).is_err());
        assert!(set(&camera, Writer::Http, "quality", 101).is_err());
        assert!(set(&camera, Writer::NetworkTables, "quality", i64::MAX).is_err());
        assert_eq!(camera.settings.fps(), 15);
        assert_eq!(
            i64::from(camera.settings.quality()),
            settings::QUALITY.int_default()
        );
    }

    #[test]
    fn every_writer_goes_one_way_and_each_real_change_is_announced_once() {
        let camera = Camera::new(&CameraConfig::embedded_default());
        let heard = camera.changes.subscribe();
        set(&camera, Writer::Http, "fps", 12).expect("fps over HTTP");
        set(&camera, Writer::NetworkTables, "fps", 12).expect("the echo");
        set(&camera, Writer::Library, "quality", 70).expect("quality");
        assert!(set(&camera, Writer::NetworkTables, "quality", 0).is_err());
        let got: Vec<(String, Writer)> = heard.try_iter().map(|c| (c.key, c.writer)).collect();
        assert_eq!(
            got,
            vec![
                ("fps".to_owned(), Writer::Http),
                ("quality".to_owned(), Writer::Library)
            ]
        );
        assert_eq!(camera.origin("fps"), Origin::Changed);
        camera.forget_changes(Writer::Http);
        assert_eq!((camera.settings.fps(), camera.settings.quality()), (30, 50));
        assert_eq!(heard.try_iter().count(), 2, "forgetting announces both");
        assert_eq!(camera.origin("fps"), Origin::Default);
    }
}

//! A camera as the rest of the program sees it: its name, live settings, newest-frame slot,
//! statistics and current mode. The capture thread writes into it; HTTP and NetworkTables
//! read from it and change its settings, which are recorded in the state file
//! (`saved_settings.rs`) when one is in use.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::budget::Governor;
use crate::config::{CameraConfig, FPS_RANGE, QUALITY_RANGE};
use crate::controls::{CameraControls, ControlError, ControlValue};
use crate::frame_slot::FrameSlot;
use crate::lock::lock;
use crate::saved_settings::{ConfigValues, Origin, StateFile};
use crate::source::Mode;
use crate::stats::CameraStats;
use crate::variants::{VariantSource, Variants};

pub struct Camera {
    pub name: String,
    pub settings: Settings,
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
}

impl Camera {
    pub fn new(config: &CameraConfig) -> Camera {
        let values = ConfigValues::of(config);
        let origins = (values.origin("fps"), values.origin("quality"));
        Camera {
            name: config.name.clone(),
            settings: Settings::new(config.fps, u32::from(config.quality)),
            slot: Arc::new(FrameSlot::new()),
            stats: Arc::new(CameraStats::default()),
            controls: {
                let controls = CameraControls::default();
                controls.set_wanted(
                    config
                        .controls
                        .iter()
                        .map(|c| (c.name.clone(), c.value.clone()))
                        .collect(),
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
        }
    }

    /// The JPEG quality frames are encoded at: the setting, or less under the budget.
    pub fn quality_in_force(&self) -> u8 {
        self.governor.quality(self.settings.quality())
    }

    /// The fps frames are published at: the setting, or less under the budget.
    pub fn fps_in_force(&self) -> u32 {
        self.governor.fps(self.settings.fps())
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

/// A change asked for by a client (HTTP POST, `?action=command`, NetworkTables).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Setting(#[from] SettingError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("{key} must be a whole number, not {value}")]
    NotANumber { key: String, value: String },
    #[error("unknown setting `{0}`: use fps, quality or a control of the camera")]
    Unknown(String),
    #[error("nothing to change: send fps=.., quality=.. or a control")]
    Empty,
}

impl Camera {
    /// Applies several changes at once: every value is checked first, and if any is bad
    /// nothing changes. `fps` and `quality` are the stream settings; other keys are
    /// camera controls.
    pub fn change(&self, changes: &[(String, ControlValue)]) -> Result<(), ChangeError> {
        if changes.is_empty() {
            return Err(ChangeError::Empty);
        }
        let mut checked = Vec::with_capacity(changes.len());
        for (key, value) in changes {
            let change = match key.as_str() {
                "fps" => Checked::Fps(whole_number(key, value)?),
                "quality" => Checked::Quality(whole_number(key, value)?),
                name if self.controls.has(name) => {
                    self.controls.check_value(name, value)?;
                    Checked::Control(name.to_owned(), value.clone())
                }
                other => return Err(ChangeError::Unknown(other.to_owned())),
            };
            match &change {
                Checked::Fps(v) => in_range("fps", *v, &FPS_RANGE).map(|_| ())?,
                Checked::Quality(v) => in_range("quality", *v, &QUALITY_RANGE).map(|_| ())?,
                Checked::Control(..) => {}
            }
            checked.push(change);
        }
        for change in checked {
            match change {
                Checked::Fps(v) => self.set_fps(v)?,
                Checked::Quality(v) => self.set_quality(v)?,
                Checked::Control(name, value) => {
                    let raw = self.controls.set(&name, &value)?;
                    self.record(&name, raw);
                }
            }
        }
        Ok(())
    }

    /// Sets fps for a client (HTTP, NetworkTables): checked, and recorded as a change
    /// unless it is the value in force already (NetworkTables echoes values back).
    pub fn set_fps(&self, value: i64) -> Result<(), SettingError> {
        let before = i64::from(self.settings.fps());
        self.settings.set_fps(value)?;
        if value != before {
            lock(&self.origins).0 = Origin::Changed;
            self.record("fps", value);
        }
        Ok(())
    }

    /// Sets quality for a client, as [`Camera::set_fps`].
    pub fn set_quality(&self, value: i64) -> Result<(), SettingError> {
        let before = i64::from(self.settings.quality());
        self.settings.set_quality(value)?;
        if value != before {
            lock(&self.origins).1 = Origin::Changed;
            self.record("quality", value);
        }
        Ok(())
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

    /// Marks fps or quality as coming from the state file (applied at start).
    pub fn mark_saved(&self, key: &str) {
        let mut origins = lock(&self.origins);
        match key {
            "fps" => origins.0 = Origin::Saved,
            "quality" => origins.1 = Origin::Saved,
            _ => {}
        }
    }

    /// Where the value in force of `key` (fps, quality, a control) comes from.
    pub fn origin(&self, key: &str) -> Origin {
        match key {
            "fps" => lock(&self.origins).0,
            "quality" => lock(&self.origins).1,
            name => self.controls.origin(name),
        }
    }

    /// fps, quality and every control not at the camera's own value, with their origins.
    pub fn origins(&self) -> BTreeMap<String, Origin> {
        let (fps, quality) = *lock(&self.origins);
        let mut origins: BTreeMap<String, Origin> = self.controls.origins().into_iter().collect();
        origins.insert("fps".into(), fps);
        origins.insert("quality".into(), quality);
        origins
    }

    /// Drops the saved values and this run's changes: fps, quality and controls go back to
    /// the config file's values (a control the file does not set, to the camera's default).
    pub fn forget_changes(&self) {
        if let Some(file) = self.state_file.get() {
            file.forget_camera(&self.name);
        }
        {
            let mut origins = lock(&self.origins);
            // The config's values passed validation: these cannot fail.
            let _ = self.settings.set_fps(i64::from(self.config.fps));
            let _ = self.settings.set_quality(i64::from(self.config.quality));
            *origins = (self.config.origin("fps"), self.config.origin("quality"));
        }
        for (name, origin) in self.controls.origins() {
            if !matches!(origin, Origin::Saved | Origin::Changed) {
                continue;
            }
            if let Err(e) = self
                .controls
                .restore(&name, self.config.written(&name).as_ref())
            {
                log::warn!("camera \"{}\": {name} not set back: {e}", self.name);
            }
        }
        log::info!(
            "camera \"{}\": saved settings forgotten; back to the config's values",
            self.name
        );
    }
}

enum Checked {
    Fps(i64),
    Quality(i64),
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

/// Settings that can change while the camera streams. Each is validated on the way in.
pub struct Settings {
    fps: AtomicU32,
    quality: AtomicU32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error("{name} {value} is out of range ({min}–{max})")]
    OutOfRange {
        name: &'static str,
        value: i64,
        min: u32,
        max: u32,
    },
}

impl Settings {
    fn new(fps: u32, quality: u32) -> Settings {
        Settings {
            fps: AtomicU32::new(fps),
            quality: AtomicU32::new(quality),
        }
    }

    /// Frames per second published to clients (at most what the source delivers).
    pub fn fps(&self) -> u32 {
        self.fps.load(Ordering::Relaxed)
    }

    /// JPEG quality used when frames are encoded.
    pub fn quality(&self) -> u8 {
        self.quality.load(Ordering::Relaxed) as u8
    }

    pub fn set_fps(&self, value: i64) -> Result<(), SettingError> {
        let value = in_range("fps", value, &FPS_RANGE)?;
        self.fps.store(value, Ordering::Relaxed);
        Ok(())
    }

    pub fn set_quality(&self, value: i64) -> Result<(), SettingError> {
        let value = in_range("quality", value, &QUALITY_RANGE)?;
        self.quality.store(value, Ordering::Relaxed);
        Ok(())
    }
}

fn in_range(
    name: &'static str,
    value: i64,
    range: &std::ops::RangeInclusive<u32>,
) -> Result<u32, SettingError> {
    match u32::try_from(value) {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(SettingError::OutOfRange {
            name,
            value,
            min: *range.start(),
            max: *range.end(),
        }),
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
            camera.change(&pairs)
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

    #[test]
    fn settings_refuse_out_of_range_values_and_keep_the_old_one() {
        let camera = Camera::new(&CameraConfig::embedded_default());
        assert!(camera.settings.set_fps(15).is_ok());
        assert_eq!(camera.settings.fps(), 15);
        let err = camera.settings.set_fps(0).expect_err("0 fps");
        assert_eq!(err.to_string(), "fps 0 is out of range (1–120)");
        assert!(camera.settings.set_fps(-3).is_err());
        assert!(camera.settings.set_quality(101).is_err());
        assert!(camera.settings.set_quality(i64::MAX).is_err());
        assert_eq!(camera.settings.fps(), 15);
        assert_eq!(camera.settings.quality(), crate::config::DEFAULT_QUALITY);
    }
}

//! Camera controls (brightness, exposure, white balance, ...): what a camera offers, get
//! and set by name with validation, and the values to apply again after every reconnect.
//!
//! The capture thread attaches the device when it opens it and detaches it when the
//! camera goes away; HTTP and NetworkTables set controls through [`CameraControls::set`]
//! from their own threads. A value set while the camera is away is kept and applied when
//! it returns, as are the values from the config file and those saved in an earlier run
//! (`saved_settings.rs`; applied after the config's, and never fatal).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::settings::Origin;
pub use crate::source::v4l2::device::ControlKind;
use crate::source::v4l2::device::{self, RawControl};

/// A control value as a person writes it: a number, a boolean or a menu entry's name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ControlValue {
    Int(i64),
    Bool(bool),
    Text(String),
}

impl fmt::Display for ControlValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlValue::Int(v) => write!(f, "{v}"),
            ControlValue::Bool(v) => write!(f, "{v}"),
            ControlValue::Text(v) => write!(f, "\"{v}\""),
        }
    }
}

/// A control of the camera, with its current value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Control {
    /// `brightness`, `exposure_time_absolute`: the driver's label in lower case with
    /// underscores, as `v4l2-ctl` names controls.
    pub name: String,
    /// The driver's own label, e.g. `Exposure Time, Absolute`.
    pub label: String,
    pub kind: ControlKind,
    pub min: i64,
    pub max: i64,
    pub step: i64,
    pub default: i64,
    pub value: i64,
    /// Menu entries: (value, name).
    pub menu: Vec<(i64, String)>,
    pub read_only: bool,
    #[serde(skip)]
    id: u32,
}

/// A control's name in a message: `` `brightness` ``, with the config line that sets it
/// when the value came from the config file: `` `brightness` (line 14) ``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlName {
    pub name: String,
    pub config_line: Option<usize>,
}

impl ControlName {
    fn new(name: &str) -> ControlName {
        ControlName {
            name: name.to_owned(),
            config_line: None,
        }
    }
}

impl fmt::Display for ControlName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.name)?;
        match self.config_line {
            Some(line) => write!(f, " (line {line})"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("unknown control {name}; this camera has: {known}")]
    Unknown { name: ControlName, known: String },
    #[error("{name} = {value} is out of range ({min}–{max}, step {step})")]
    OutOfRange {
        name: ControlName,
        value: i64,
        min: i64,
        max: i64,
        step: i64,
    },
    #[error("{name} = {value} is not one of its entries: {entries}")]
    NotAnEntry {
        name: ControlName,
        value: String,
        entries: String,
    },
    #[error("{name} takes {expected}, not {value}")]
    WrongType {
        name: ControlName,
        expected: &'static str,
        value: String,
    },
    #[error("{name} is read-only")]
    ReadOnly { name: ControlName },
    #[error("camera refused {name} = {value}: {reason}")]
    Device {
        name: ControlName,
        value: i64,
        reason: String,
    },
    #[error("the camera is not connected and its controls are not known yet")]
    NotConnected,
}

impl ControlError {
    /// The same error, naming the config line that set the value.
    fn at_config_line(mut self, line: Option<usize>) -> ControlError {
        match &mut self {
            ControlError::Unknown { name, .. }
            | ControlError::OutOfRange { name, .. }
            | ControlError::NotAnEntry { name, .. }
            | ControlError::WrongType { name, .. }
            | ControlError::ReadOnly { name }
            | ControlError::Device { name, .. } => name.config_line = line,
            ControlError::NotConnected => {}
        }
        self
    }
}

/// `Exposure Time, Absolute` → `exposure_time_absolute`.
pub fn normalize_name(label: &str) -> String {
    let mut name = String::with_capacity(label.len());
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.is_empty() && !name.ends_with('_') {
            name.push('_');
        }
    }
    while name.ends_with('_') {
        name.pop();
    }
    name
}

impl Control {
    fn from_raw(raw: &RawControl, value: i64) -> Control {
        Control {
            name: normalize_name(&raw.label),
            label: raw.label.clone(),
            kind: raw.kind,
            min: raw.minimum,
            max: raw.maximum,
            step: raw.step.max(1),
            default: raw.default,
            value,
            menu: raw.menu.clone(),
            read_only: raw.flags & v4l::v4l_sys::V4L2_CTRL_FLAG_READ_ONLY != 0,
            id: raw.id,
        }
    }

    /// The raw value `value` means for this control, or why it is refused.
    pub fn resolve(&self, value: &ControlValue) -> Result<i64, ControlError> {
        if self.read_only {
            return Err(ControlError::ReadOnly {
                name: ControlName::new(&self.name),
            });
        }
        let wrong = |expected: &'static str| ControlError::WrongType {
            name: ControlName::new(&self.name),
            expected,
            value: value.to_string(),
        };
        let raw = match (self.kind, value) {
            (ControlKind::Boolean | ControlKind::Button, ControlValue::Bool(b)) => i64::from(*b),
            (ControlKind::Boolean | ControlKind::Button, ControlValue::Text(t)) => {
                match t.to_ascii_lowercase().as_str() {
                    "true" | "on" | "yes" | "1" => 1,
                    "false" | "off" | "no" | "0" => 0,
                    _ => return Err(wrong("true or false")),
                }
            }
            (ControlKind::Menu | ControlKind::IntegerMenu, ControlValue::Text(t)) => {
                return self.menu_entry(t);
            }
            (_, ControlValue::Int(v)) => *v,
            (_, ControlValue::Text(t)) => t.trim().parse::<i64>().map_err(|_| wrong("a number"))?,
            (_, ControlValue::Bool(_)) => return Err(wrong("a number")),
        };
        self.check_raw(raw)
    }

    fn check_raw(&self, raw: i64) -> Result<i64, ControlError> {
        if matches!(self.kind, ControlKind::Menu | ControlKind::IntegerMenu) {
            if self.menu.iter().any(|(v, _)| *v == raw) {
                return Ok(raw);
            }
            return Err(self.not_an_entry(&raw.to_string()));
        }
        // In i128: `raw - min` of a value from a config file must not overflow.
        let on_step = (i128::from(raw) - i128::from(self.min)) % i128::from(self.step.max(1)) == 0;
        if raw < self.min || raw > self.max || !on_step {
            return Err(ControlError::OutOfRange {
                name: ControlName::new(&self.name),
                value: raw,
                min: self.min,
                max: self.max,
                step: self.step,
            });
        }
        Ok(raw)
    }

    /// A menu entry by name: exact (normalised) or its first word (`manual` for
    /// `Manual Mode`).
    fn menu_entry(&self, text: &str) -> Result<i64, ControlError> {
        let wanted = normalize_name(text);
        if let Ok(raw) = text.trim().parse::<i64>() {
            return self.check_raw(raw);
        }
        let exact = self.menu.iter().find(|(_, n)| normalize_name(n) == wanted);
        let first_word = || {
            self.menu
                .iter()
                .find(|(_, n)| normalize_name(n).split('_').next() == Some(wanted.as_str()))
        };
        exact
            .or_else(first_word)
            .map(|(v, _)| *v)
            .ok_or_else(|| self.not_an_entry(text))
    }

    fn not_an_entry(&self, value: &str) -> ControlError {
        let entries: Vec<String> = self
            .menu
            .iter()
            .map(|(v, n)| format!("{v} \"{}\"", normalize_name(n)))
            .collect();
        ControlError::NotAnEntry {
            name: ControlName::new(&self.name),
            value: value.to_owned(),
            entries: entries.join(", "),
        }
    }
}

/// The controls of one camera.
#[derive(Default)]
pub struct CameraControls {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    device: Option<Arc<OwnedFd>>,
    controls: Vec<Control>,
    /// Values set by config, HTTP or NetworkTables, to apply after every (re)connect.
    wanted: Vec<(String, ControlValue)>,
    /// Values saved in an earlier run, applied after `wanted` at every connect; one the
    /// camera refuses is logged and left out (the config's value stays).
    saved: Vec<(String, ControlValue)>,
    /// Names the config file sets.
    from_config: BTreeSet<String>,
    /// The config line of each control the file sets, for messages.
    config_lines: HashMap<String, usize>,
    /// Names changed in this run.
    changed: BTreeSet<String>,
}

impl CameraControls {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::lock::lock(&self.state)
    }

    /// The camera's controls with their current values (as last known while it is away).
    pub fn list(&self) -> Vec<Control> {
        let mut state = self.lock();
        if let Some(fd) = state.device.clone() {
            for control in &mut state.controls {
                if let Ok(value) = device::control_value(&fd, control.id) {
                    control.value = value;
                }
            }
        }
        state.controls.clone()
    }

    /// Sets a control by name, checked against what the camera offers; it is applied again
    /// after every reconnect. Returns the raw value set.
    pub fn set(&self, name: &str, value: &ControlValue) -> Result<i64, ControlError> {
        let mut state = self.lock();
        let raw = match state.device.clone() {
            Some(fd) => apply(&fd, &mut state.controls, name, value)?,
            // Away, but known from before: checked now, applied when the camera is back.
            None if !state.controls.is_empty() => {
                let index = find(&state.controls, name)?;
                let raw = state.controls[index].resolve(value)?;
                state.controls[index].value = raw;
                raw
            }
            None => return Err(ControlError::NotConnected),
        };
        remember(&mut state.wanted, name, value);
        state.saved.retain(|(n, _)| n != name);
        state.changed.insert(name.to_owned());
        Ok(raw)
    }

    /// Where the value in force of control `name` comes from.
    pub fn origin(&self, name: &str) -> Origin {
        let state = self.lock();
        if state.changed.contains(name) {
            Origin::Changed
        } else if state.saved.iter().any(|(n, _)| n == name) {
            Origin::Saved
        } else if state.from_config.contains(name) {
            Origin::Config
        } else {
            Origin::Default
        }
    }

    /// The controls whose value comes from somewhere else than the camera itself.
    pub fn origins(&self) -> Vec<(String, Origin)> {
        let names: BTreeSet<String> = {
            let state = self.lock();
            let saved = state.saved.iter().map(|(n, _)| n.clone());
            state
                .from_config
                .iter()
                .chain(&state.changed)
                .cloned()
                .chain(saved)
                .collect()
        };
        names
            .into_iter()
            .map(|name| {
                let origin = self.origin(&name);
                (name, origin)
            })
            .collect()
    }

    /// Values saved in an earlier run, to apply after the config's at every connect.
    pub fn set_saved(&self, saved: Vec<(String, ControlValue)>) {
        self.lock().saved = saved;
    }

    /// Undoes a change or a saved value of `name`: back to the config file's value, or
    /// without one to the camera's default, and no longer applied at connects.
    pub fn restore(&self, name: &str, config: Option<&ControlValue>) -> Result<(), ControlError> {
        let mut state = self.lock();
        state.saved.retain(|(n, _)| n != name);
        state.changed.remove(name);
        match config {
            Some(value) => remember(&mut state.wanted, name, value),
            None => state.wanted.retain(|(n, _)| n != name),
        }
        let Ok(index) = find(&state.controls, name) else {
            return Ok(()); // not known yet: nothing is in force
        };
        let value = match config {
            Some(value) => value.clone(),
            None => ControlValue::Int(state.controls[index].default),
        };
        match state.device.clone() {
            Some(fd) => apply(&fd, &mut state.controls, name, &value).map(|_| ()),
            None => {
                let raw = state.controls[index].resolve(&value)?;
                state.controls[index].value = raw;
                Ok(())
            }
        }
    }

    /// Checks a value against the control's range without setting it.
    pub fn check_value(&self, name: &str, value: &ControlValue) -> Result<i64, ControlError> {
        let state = self.lock();
        if state.device.is_none() && state.controls.is_empty() {
            return Err(ControlError::NotConnected);
        }
        state.controls[find(&state.controls, name)?].resolve(value)
    }

    /// Whether `name` is a control of this camera.
    pub fn has(&self, name: &str) -> bool {
        self.lock().controls.iter().any(|c| c.name == name)
    }

    /// Values to apply at every connect, e.g. from the config file (not checked until the
    /// camera is there).
    /// Each entry is a name, its value and the config line that sets it (for messages).
    pub fn set_wanted(&self, wanted: impl IntoIterator<Item = (String, ControlValue, usize)>) {
        let mut state = self.lock();
        state.wanted.clear();
        state.from_config.clear();
        state.config_lines.clear();
        for (name, value, line) in wanted {
            state.from_config.insert(name.clone());
            state.config_lines.insert(name.clone(), line);
            state.wanted.push((name, value));
        }
    }

    /// Checks the wanted values against the controls a camera offers without setting
    /// anything: an unknown name or an out-of-range value is found as soon as the device
    /// opens, even when it cannot stream (busy, no format yet).
    pub fn check(&self, raw_controls: &[RawControl]) -> Vec<ControlError> {
        let (wanted, lines) = {
            let state = self.lock();
            (state.wanted.clone(), state.config_lines.clone())
        };
        let controls: Vec<Control> = raw_controls
            .iter()
            .map(|raw| Control::from_raw(raw, raw.default))
            .collect();
        wanted
            .iter()
            .filter_map(|(name, value)| {
                find(&controls, name)
                    .and_then(|index| controls[index].resolve(value))
                    .err()
                    .map(|e| e.at_config_line(lines.get(name).copied()))
            })
            .collect()
    }

    /// Called by the capture thread once it has opened the device: learns the controls and
    /// applies the wanted values, mode controls (menus, booleans) before numbers so that
    /// e.g. manual exposure is on before the exposure time is set. Returns what failed.
    pub fn attach(&self, fd: Arc<OwnedFd>, raw_controls: &[RawControl]) -> Vec<ControlError> {
        let mut state = self.lock();
        state.controls = raw_controls
            .iter()
            .map(|raw| {
                Control::from_raw(
                    raw,
                    device::control_value(&fd, raw.id).unwrap_or(raw.default),
                )
            })
            .collect();
        let wanted = modes_first(&state.controls, state.wanted.clone());
        let mut errors = Vec::new();
        for (name, value) in &wanted {
            if let Err(e) = apply(&fd, &mut state.controls, name, value) {
                errors.push(e.at_config_line(state.config_lines.get(name).copied()));
            }
        }
        let saved = modes_first(&state.controls, state.saved.clone());
        for (name, value) in &saved {
            if let Err(e) = apply(&fd, &mut state.controls, name, value) {
                log::warn!("saved setting not applied: {e}; the state file keeps it");
                state.saved.retain(|(n, _)| n != name);
            }
        }
        state.device = Some(fd);
        errors
    }

    /// Called by the capture thread when the device is gone or closed.
    pub fn detach(&self) {
        self.lock().device = None;
    }
}

/// Mode controls (menus, booleans) before numbers, so that e.g. manual exposure is on
/// before the exposure time is set.
fn modes_first(
    controls: &[Control],
    mut values: Vec<(String, ControlValue)>,
) -> Vec<(String, ControlValue)> {
    values.sort_by_key(|(name, _)| {
        let kind = controls.iter().find(|c| c.name == *name).map(|c| c.kind);
        !matches!(kind, Some(ControlKind::Menu | ControlKind::Boolean))
    });
    values
}

/// The index of control `name`, or the error listing the camera's controls.
fn find(controls: &[Control], name: &str) -> Result<usize, ControlError> {
    controls
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| ControlError::Unknown {
            name: ControlName::new(name),
            known: controls
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

fn apply(
    fd: &OwnedFd,
    controls: &mut [Control],
    name: &str,
    value: &ControlValue,
) -> Result<i64, ControlError> {
    let control = &mut controls[find(controls, name)?];
    let raw = control.resolve(value)?;
    device::set_control_value(fd, control.id, raw).map_err(|e| ControlError::Device {
        name: ControlName::new(name),
        value: raw,
        reason: e.to_string(),
    })?;
    control.value = raw;
    Ok(raw)
}

fn remember(wanted: &mut Vec<(String, ControlValue)>, name: &str, value: &ControlValue) {
    wanted.retain(|(n, _)| n != name);
    wanted.push((name.to_owned(), value.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(kind: ControlKind) -> Control {
        Control {
            name: "x".into(),
            label: "X".into(),
            kind,
            min: 0,
            max: 255,
            step: 5,
            default: 128,
            value: 128,
            menu: vec![
                (1, "Manual Mode".into()),
                (3, "Aperture Priority Mode".into()),
            ],
            read_only: false,
            id: 1,
        }
    }

    #[test]
    fn names_follow_v4l2_ctl() {
        assert_eq!(
            normalize_name("Exposure Time, Absolute"),
            "exposure_time_absolute"
        );
        assert_eq!(
            normalize_name("White Balance Temperature, Auto"),
            "white_balance_temperature_auto"
        );
        assert_eq!(normalize_name("Brightness"), "brightness");
        assert_eq!(normalize_name("  Gain (dB) "), "gain_db");
    }

    #[test]
    fn integers_are_checked_for_range_and_step() {
        let c = control(ControlKind::Integer);
        assert_eq!(c.resolve(&ControlValue::Int(140)), Ok(140));
        assert!(matches!(
            c.resolve(&ControlValue::Int(141)),
            Err(ControlError::OutOfRange { .. })
        ));
        assert!(matches!(
            c.resolve(&ControlValue::Int(300)),
            Err(ControlError::OutOfRange { .. })
        ));
        assert!(matches!(
            c.resolve(&ControlValue::Int(-5)),
            Err(ControlError::OutOfRange { .. })
        ));
        assert_eq!(c.resolve(&ControlValue::Text("20".into())), Ok(20));
        assert!(matches!(
            c.resolve(&ControlValue::Bool(true)),
            Err(ControlError::WrongType { .. })
        ));
        assert!(matches!(
            c.resolve(&ControlValue::Text("bright".into())),
            Err(ControlError::WrongType { .. })
        ));
    }

    #[test]
    fn extreme_values_are_out_of_range_not_a_panic() {
        let c = Control {
            min: i64::from(i32::MIN),
            max: i64::from(i32::MAX),
            step: 1,
            ..control(ControlKind::Integer)
        };
        for value in [i64::MAX, i64::MIN] {
            assert!(matches!(
                c.resolve(&ControlValue::Int(value)),
                Err(ControlError::OutOfRange { .. })
            ));
        }
        assert_eq!(c.resolve(&ControlValue::Int(-5)), Ok(-5));
    }

    #[test]
    fn menus_take_entry_names_or_values() {
        let c = control(ControlKind::Menu);
        assert_eq!(c.resolve(&ControlValue::Text("manual".into())), Ok(1));
        assert_eq!(
            c.resolve(&ControlValue::Text("Aperture Priority Mode".into())),
            Ok(3)
        );
        assert_eq!(c.resolve(&ControlValue::Int(3)), Ok(3));
        let err = c.resolve(&ControlValue::Int(2)).expect_err("not an entry");
        assert!(err.to_string().contains("manual_mode"), "{err}");
        assert!(c.resolve(&ControlValue::Text("shutter".into())).is_err());
    }

    #[test]
    fn booleans_and_read_only() {
        let c = Control {
            max: 1,
            step: 1,
            ..control(ControlKind::Boolean)
        };
        assert_eq!(c.resolve(&ControlValue::Bool(true)), Ok(1));
        assert_eq!(c.resolve(&ControlValue::Text("off".into())), Ok(0));
        let mut locked = control(ControlKind::Integer);
        locked.read_only = true;
        assert!(matches!(
            locked.resolve(&ControlValue::Int(5)),
            Err(ControlError::ReadOnly { .. })
        ));
    }

    #[test]
    fn without_a_camera_nothing_is_set_but_wanted_values_wait() {
        let controls = CameraControls::default();
        assert_eq!(
            controls.set("brightness", &ControlValue::Int(1)),
            Err(ControlError::NotConnected)
        );
        controls.set_wanted([("brightness".into(), ControlValue::Int(1), 7)]);
        assert!(controls.list().is_empty());
    }

    #[test]
    fn while_the_camera_is_away_known_controls_are_checked_and_kept_for_its_return() {
        let raw = RawControl {
            id: 1,
            label: "Brightness".into(),
            kind: ControlKind::Integer,
            minimum: 0,
            maximum: 255,
            step: 1,
            default: 128,
            flags: 0,
            menu: Vec::new(),
        };
        let controls = CameraControls::default();
        // Any descriptor will do to learn the controls; /dev/null answers no ioctl.
        let fd = std::fs::File::open("/dev/null").expect("/dev/null");
        controls.attach(Arc::new(OwnedFd::from(fd)), std::slice::from_ref(&raw));
        controls.detach();
        assert_eq!(controls.set("brightness", &ControlValue::Int(90)), Ok(90));
        assert_eq!(controls.list()[0].value, 90, "shown as the value to come");
        assert!(matches!(
            controls.set("brightness", &ControlValue::Int(300)),
            Err(ControlError::OutOfRange { .. })
        ));
        assert!(matches!(
            controls.set("zoom", &ControlValue::Int(1)),
            Err(ControlError::Unknown { .. })
        ));
        let wanted = controls.lock().wanted.clone();
        assert_eq!(
            wanted,
            vec![("brightness".to_owned(), ControlValue::Int(90))]
        );
    }
    fn brightness() -> RawControl {
        RawControl {
            id: 1,
            label: "Brightness".into(),
            kind: ControlKind::Integer,
            minimum: 0,
            maximum: 255,
            step: 1,
            default: 128,
            flags: 0,
            menu: Vec::new(),
        }
    }

    fn dev_null() -> Arc<OwnedFd> {
        let fd = std::fs::File::open("/dev/null").expect("/dev/null");
        Arc::new(OwnedFd::from(fd))
    }

    #[test]
    fn errors_about_the_configs_values_name_their_line() {
        let controls = CameraControls::default();
        controls.set_wanted([
            ("brightness".into(), ControlValue::Int(300), 14),
            ("zoom".into(), ControlValue::Int(1), 15),
        ]);
        let messages: Vec<String> = controls
            .check(&[brightness()])
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            messages[0].starts_with("`brightness` (line 14) = 300 is out of range"),
            "{messages:?}"
        );
        assert!(
            messages[1].starts_with("unknown control `zoom` (line 15);"),
            "{messages:?}"
        );
        // A change at run time has no line.
        controls.attach(dev_null(), &[brightness()]);
        let refused = controls.set("brightness", &ControlValue::Int(300));
        assert!(
            refused
                .expect_err("out of range")
                .to_string()
                .starts_with("`brightness` = 300"),
        );
    }

    #[test]
    fn saved_values_are_never_fatal_and_say_where_values_come_from() {
        let controls = CameraControls::default();
        controls.set_wanted([("brightness".into(), ControlValue::Int(100), 7)]);
        controls.set_saved(vec![
            ("brightness".into(), ControlValue::Int(140)),
            ("zoom".into(), ControlValue::Int(3)),
        ]);
        assert_eq!(controls.origin("brightness"), Origin::Saved);
        assert_eq!(controls.origin("zoom"), Origin::Saved);
        // The check at open looks at the config's values only: an unknown saved control
        // (another camera plugged in) is no error.
        assert!(controls.check(&[brightness()]).is_empty());
        // /dev/null refuses every ioctl: the config's value is an error to report, the
        // saved ones are logged and left out.
        let errors = controls.attach(dev_null(), &[brightness()]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(controls.origin("zoom"), Origin::Default);
        assert_eq!(controls.origin("brightness"), Origin::Config);
        assert_eq!(
            controls.origins(),
            vec![("brightness".to_owned(), Origin::Config)]
        );
    }

    #[test]
    fn a_change_is_changed_and_restore_goes_back_to_config_or_default() {
        let controls = CameraControls::default();
        controls.set_wanted([("brightness".into(), ControlValue::Int(100), 7)]);
        controls.attach(dev_null(), &[brightness()]);
        controls.detach();
        assert_eq!(controls.set("brightness", &ControlValue::Int(90)), Ok(90));
        assert_eq!(controls.origin("brightness"), Origin::Changed);
        assert_eq!(
            controls.restore("brightness", Some(&ControlValue::Int(100))),
            Ok(())
        );
        assert_eq!(controls.origin("brightness"), Origin::Config);
        assert_eq!(controls.list()[0].value, 100);
        assert_eq!(
            controls.lock().wanted,
            vec![("brightness".to_owned(), ControlValue::Int(100))]
        );
        // Without a config value: the camera's default, and nothing applied at connects.
        controls.set_wanted(Vec::new());
        controls
            .set("brightness", &ControlValue::Int(90))
            .expect("set");
        assert_eq!(controls.restore("brightness", None), Ok(()));
        assert_eq!(controls.origin("brightness"), Origin::Default);
        assert_eq!(controls.list()[0].value, 128);
        assert!(controls.lock().wanted.is_empty());
    }
}

//! Settings changed at run time — fps, quality and camera controls set over HTTP or
//! NetworkTables — saved in a state file, so that a restart or a power cycle keeps what the
//! team tuned from the dashboard.
//!
//! The file is a small JSON document, by camera name:
//!
//! ```json
//! {"version": 1, "cameras": {"front": {
//!     "fps": {"value": 15, "config": 30},
//!     "controls": {"brightness": {"value": 140, "config": null}}}}}
//! ```
//!
//! Beside each saved value is the config file's value it overrode (`null`: the key was not
//! in the file). At start a saved value is applied only if the config's value for that key
//! is still the same ([`verdict`]): a team that edits a key in the config file gets the
//! config's value, and the saved one is dropped with a log line.
//!
//! Changes are recorded in memory ([`StateFile::record`]) and written by a thread of its
//! own ([`Writer`]) at most once per [`WRITE_DELAY`], so a burst of slider moves is one
//! write and nobody waits on the disk. A write is atomic: a temporary file in the same
//! directory, fsync, rename, fsync of the directory. A file that cannot be read or parsed is
//! logged, moved aside (`settings.json.corrupt`) and replaced by an empty document: it never
//! stops frcstream and never overrides the config.
//!
//! Where the file is: `[server] state_file` in the config, else systemd's
//! `$STATE_DIRECTORY/settings.json`, else `$XDG_STATE_HOME/frcstream/settings.json` or
//! `~/.local/state/frcstream/settings.json` ([`resolve_path`], used by the command; the
//! library saves nothing unless given a path).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{CameraConfig, StateFileSetting};
use crate::controls::ControlValue;
use crate::settings::Origin;

/// The file name under a state directory.
pub const FILE_NAME: &str = "settings.json";
/// A larger file is not read (it cannot be one frcstream wrote).
pub const MAX_FILE_SIZE: u64 = 1 << 20;
/// Changes are written this long after the first of a burst, and no more often.
pub const WRITE_DELAY: Duration = Duration::from_millis(250);
/// The version of the document this frcstream reads and writes.
const VERSION: u32 = 1;

/// The state file to use: the command line's (`""` is off), else the config's, else
/// `$STATE_DIRECTORY/settings.json` (systemd's `StateDirectory=`), else
/// `$XDG_STATE_HOME/frcstream/settings.json`, else `$HOME/.local/state/frcstream/...`.
/// `None`: nothing is saved. `env` reads an environment variable.
pub fn resolve_path(
    command_line: Option<&Path>,
    setting: &StateFileSetting,
    env: impl Fn(&str) -> Option<OsString>,
) -> Option<PathBuf> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    match (command_line, setting) {
        (Some(path), _) if path.as_os_str().is_empty() => None,
        (Some(path), _) => Some(path.to_owned()),
        (None, StateFileSetting::Off) => None,
        (None, StateFileSetting::Path(path)) => Some(path.clone()),
        (None, StateFileSetting::Unset) => {
            // systemd may give several directories, separated by ':'; ours is the first.
            let systemd = set("STATE_DIRECTORY").and_then(|dirs| {
                let first = dirs.to_string_lossy().split(':').next()?.to_owned();
                Some(PathBuf::from(first))
            });
            if let Some(dir) = systemd.filter(|d| d.is_absolute()) {
                return Some(dir.join(FILE_NAME));
            }
            let xdg = set("XDG_STATE_HOME").filter(|d| d.is_absolute());
            let home = || set("HOME").map(|h| h.join(".local/state"));
            xdg.or_else(home)
                .map(|dir| dir.join("frcstream").join(FILE_NAME))
        }
    }
}

/// The whole state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub version: u32,
    #[serde(default)]
    pub cameras: BTreeMap<String, CameraEntry>,
}

impl Default for Document {
    fn default() -> Self {
        Document {
            version: VERSION,
            cameras: BTreeMap::new(),
        }
    }
}

/// The saved values of one camera.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CameraEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<SavedValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<SavedValue>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub controls: BTreeMap<String, SavedValue>,
}

impl CameraEntry {
    fn is_empty(&self) -> bool {
        self.fps.is_none() && self.quality.is_none() && self.controls.is_empty()
    }

    /// The entry of `key` (`fps`, `quality` or a control name).
    fn slot(&mut self, key: &str) -> SlotMut<'_> {
        match key {
            "fps" => SlotMut::Setting(&mut self.fps),
            "quality" => SlotMut::Setting(&mut self.quality),
            name => SlotMut::Control(&mut self.controls, name.to_owned()),
        }
    }

    /// Every saved key with its value.
    pub fn entries(&self) -> Vec<(String, SavedValue)> {
        let settings = [("fps", &self.fps), ("quality", &self.quality)]
            .into_iter()
            .filter_map(|(key, value)| value.clone().map(|v| (key.to_owned(), v)));
        let controls = self.controls.iter().map(|(k, v)| (k.clone(), v.clone()));
        settings.chain(controls).collect()
    }
}

enum SlotMut<'a> {
    Setting(&'a mut Option<SavedValue>),
    Control(&'a mut BTreeMap<String, SavedValue>, String),
}

impl SlotMut<'_> {
    fn put(self, value: SavedValue) {
        match self {
            SlotMut::Setting(slot) => *slot = Some(value),
            SlotMut::Control(map, name) => {
                map.insert(name, value);
            }
        }
    }

    fn take(self) -> Option<SavedValue> {
        match self {
            SlotMut::Setting(slot) => slot.take(),
            SlotMut::Control(map, name) => map.remove(&name),
        }
    }
}

/// A value changed at run time, and the config file's value it overrode (`None`: the key
/// was not in the config file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedValue {
    pub value: i64,
    #[serde(default)]
    pub config: Option<ControlValue>,
}

/// What to do at start with a saved value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The config's value for the key is the one it overrode: the saved value applies.
    Apply,
    /// The config's value was edited since: the config wins, the saved value is dropped.
    ConfigChanged,
}

/// The rule: a saved value applies only if the config file's value for its key is still
/// the one it overrode when it was saved.
pub fn verdict(saved: &SavedValue, config_now: Option<&ControlValue>) -> Verdict {
    if saved.config.as_ref() == config_now {
        Verdict::Apply
    } else {
        Verdict::ConfigChanged
    }
}

/// What a camera's config file says, key by key, as the rule compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigValues {
    /// fps and quality in force when nothing else set them (the file's or the default).
    pub fps: u32,
    pub quality: u8,
    fps_written: bool,
    quality_written: bool,
    controls: Vec<(String, ControlValue)>,
}

impl ConfigValues {
    pub fn of(config: &CameraConfig) -> ConfigValues {
        ConfigValues {
            fps: config.fps,
            quality: config.quality,
            fps_written: config.fps_in_file,
            quality_written: config.quality_in_file,
            controls: config
                .controls
                .iter()
                .map(|c| (c.name.clone(), c.value.clone()))
                .collect(),
        }
    }

    /// The value the config file writes for `key`, `None` when the key is not in it.
    pub fn written(&self, key: &str) -> Option<ControlValue> {
        match key {
            "fps" => self
                .fps_written
                .then(|| ControlValue::Int(i64::from(self.fps))),
            "quality" => self
                .quality_written
                .then(|| ControlValue::Int(i64::from(self.quality))),
            name => self
                .controls
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone()),
        }
    }

    /// `Config` when the file writes `key`, else `Default`.
    pub fn origin(&self, key: &str) -> Origin {
        match self.written(key) {
            Some(_) => Origin::Config,
            None => Origin::Default,
        }
    }
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read it: {0}")]
    Read(#[source] io::Error),
    #[error("it is larger than 1 MiB")]
    TooLarge,
    #[error("it is not a valid settings file: {0}")]
    Corrupt(#[source] serde_json::Error),
    #[error("it is version {found}; this frcstream reads version 1")]
    Version { found: u32 },
}

impl LoadError {
    /// Whether the file is there but unusable, and moved aside so that it is kept for a
    /// look and not read again.
    fn is_bad_content(&self) -> bool {
        !matches!(self, LoadError::Read(_))
    }
}

/// Reads the state file: `None` if there is none.
pub fn read_document(path: &Path) -> Result<Option<Document>, LoadError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LoadError::Read(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(LoadError::Read)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(LoadError::TooLarge);
    }
    let document: Document = serde_json::from_slice(&bytes).map_err(LoadError::Corrupt)?;
    if document.version != VERSION {
        return Err(LoadError::Version {
            found: document.version,
        });
    }
    Ok(Some(document))
}

/// The state file's document, or an empty one when there is none or it is unusable (one
/// warning, and a corrupt file moved aside to `<file>.corrupt`).
pub fn load_or_empty(path: &Path) -> Document {
    match read_document(path) {
        Ok(Some(document)) => document,
        Ok(None) => {
            log::info!(
                "saved settings: none yet in {} (written when a setting is changed)",
                path.display()
            );
            Document::default()
        }
        Err(e) if e.is_bad_content() => {
            let aside = aside_path(path);
            match fs::rename(path, &aside) {
                Ok(()) => log::warn!(
                    "saved settings {}: {e}; moved aside to {}; starting from the config",
                    path.display(),
                    aside.display()
                ),
                Err(move_error) => log::warn!(
                    "saved settings {}: {e}; cannot move it aside ({move_error}); starting from the config",
                    path.display()
                ),
            }
            Document::default()
        }
        Err(e) => {
            log::warn!(
                "saved settings {}: {e}; starting from the config",
                path.display()
            );
            Document::default()
        }
    }
}

/// `settings.json` → `settings.json.corrupt`.
pub fn aside_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".corrupt");
    PathBuf::from(name)
}

/// `settings.json` → `settings.json.tmp` (same directory, so the rename is atomic).
fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Replaces `path` with `bytes` atomically: a reader sees the old file or the new one,
/// never a part, also after a power cut (the data and the rename are synced).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let temporary = temporary_path(path);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written?;
    File::open(dir)?.sync_all()
}

/// Deletes the saved settings (`--forget-settings`). Returns whether there were any.
pub fn forget_file(path: &Path) -> io::Result<bool> {
    let _ = fs::remove_file(temporary_path(path));
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The state file of a running frcstream: the document in memory, changes recorded from
/// any thread, written by the [`Writer`].
pub struct StateFile {
    path: PathBuf,
    shared: Mutex<Shared>,
    wake: Condvar,
    writes: AtomicU64,
}

struct Shared {
    document: Document,
    /// Changed since the last write.
    dirty: bool,
    stop: bool,
    /// The last write failed (so a failing disk is one warning, not one per change).
    failing: bool,
}

impl StateFile {
    /// Reads `path` (see [`load_or_empty`]); nothing is written until something changes.
    pub fn open(path: &Path) -> Arc<StateFile> {
        Arc::new(StateFile {
            path: path.to_owned(),
            shared: Mutex::new(Shared {
                document: load_or_empty(path),
                dirty: false,
                stop: false,
                failing: false,
            }),
            wake: Condvar::new(),
            writes: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many times the file was written.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        crate::lock::lock(&self.shared)
    }

    /// The saved values of `camera`.
    pub fn saved(&self, camera: &str) -> CameraEntry {
        self.lock()
            .document
            .cameras
            .get(camera)
            .cloned()
            .unwrap_or_default()
    }

    /// The names of cameras with saved values.
    pub fn cameras(&self) -> Vec<String> {
        self.lock().document.cameras.keys().cloned().collect()
    }

    /// Records a value set at run time; `config` is the config file's value for the key.
    pub fn record(&self, camera: &str, key: &str, value: i64, config: Option<ControlValue>) {
        let mut shared = self.lock();
        let entry = shared
            .document
            .cameras
            .entry(camera.to_owned())
            .or_default();
        entry.slot(key).put(SavedValue { value, config });
        shared.dirty = true;
        self.wake.notify_one();
    }

    /// Drops the saved value of one key (unusable at start).
    pub fn drop_key(&self, camera: &str, key: &str) {
        let mut shared = self.lock();
        let Some(entry) = shared.document.cameras.get_mut(camera) else {
            return;
        };
        if entry.slot(key).take().is_some() {
            if entry.is_empty() {
                shared.document.cameras.remove(camera);
            }
            shared.dirty = true;
            self.wake.notify_one();
        }
    }

    /// Drops every saved value of `camera`.
    pub fn forget_camera(&self, camera: &str) {
        let mut shared = self.lock();
        if shared.document.cameras.remove(camera).is_some() {
            shared.dirty = true;
            self.wake.notify_one();
        }
    }

    /// Starts the thread that writes changes.
    pub fn start_writer(self: &Arc<Self>) -> io::Result<Writer> {
        let file = Arc::clone(self);
        let thread = std::thread::Builder::new()
            .name("settings-writer".into())
            .spawn(move || file.write_loop())?;
        Ok(Writer {
            file: Arc::clone(self),
            thread: Some(thread),
        })
    }

    /// Waits for a change, lets a burst settle for [`WRITE_DELAY`], writes; until stopped
    /// (and then writes what is left).
    fn write_loop(&self) {
        loop {
            let mut shared = self.lock();
            while !shared.dirty && !shared.stop {
                shared = wait(&self.wake, shared, None);
            }
            let settle_until = Instant::now() + WRITE_DELAY;
            while !shared.stop {
                let left = settle_until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                shared = wait(&self.wake, shared, Some(left));
            }
            let stop = shared.stop;
            if shared.dirty {
                shared.dirty = false;
                let bytes = serde_json::to_vec_pretty(&shared.document);
                drop(shared);
                self.write(bytes);
            }
            if stop {
                return;
            }
        }
    }

    fn write(&self, bytes: serde_json::Result<Vec<u8>>) {
        let result = bytes
            .map_err(io::Error::other)
            .and_then(|bytes| write_atomically(&self.path, &bytes));
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut shared = self.lock();
        match result {
            Ok(()) if shared.failing => {
                shared.failing = false;
                log::info!("saved settings: {} written again", self.path.display());
            }
            Ok(()) => log::debug!("saved settings: wrote {}", self.path.display()),
            Err(e) if shared.failing => {
                log::debug!("saved settings: cannot write {}: {e}", self.path.display());
            }
            Err(e) => {
                shared.failing = true;
                log::warn!(
                    "saved settings: cannot write {}: {e}; changes are not saved until it works",
                    self.path.display()
                );
            }
        }
    }
}

fn wait<'a>(
    wake: &Condvar,
    guard: MutexGuard<'a, Shared>,
    timeout: Option<Duration>,
) -> MutexGuard<'a, Shared> {
    match timeout {
        None => wake.wait(guard).unwrap_or_else(|p| p.into_inner()),
        Some(timeout) => match wake.wait_timeout(guard, timeout) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        },
    }
}

/// The `settings-writer` thread. Stopping (or dropping) it writes what is still pending.
pub struct Writer {
    file: Arc<StateFile>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Writes pending changes and ends the thread.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.file.lock().stop = true;
        self.file.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::Camera;
    use crate::settings::Writer;

    /// A directory of its own for each test, removed at the end.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("frcstream-saved-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("scratch dir");
            Scratch(dir)
        }

        fn file(&self) -> PathBuf {
            self.0.join(FILE_NAME)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn saved(value: i64, config: Option<i64>) -> SavedValue {
        SavedValue {
            value,
            config: config.map(ControlValue::Int),
        }
    }

    #[test]
    fn a_document_round_trips_through_the_file() {
        let scratch = Scratch::new("round-trip");
        let mut document = Document::default();
        let entry = CameraEntry {
            fps: Some(saved(15, Some(30))),
            quality: None,
            controls: BTreeMap::from([
                ("brightness".to_owned(), saved(140, None)),
                (
                    "auto_exposure".to_owned(),
                    SavedValue {
                        value: 1,
                        config: Some(ControlValue::Text("aperture".into())),
                    },
                ),
            ]),
        };
        document.cameras.insert("front".into(), entry);
        let bytes = serde_json::to_vec(&document).expect("serialize");
        write_atomically(&scratch.file(), &bytes).expect("write");
        let read = read_document(&scratch.file())
            .expect("read")
            .expect("there");
        assert_eq!(read, document);
        assert!(
            !temporary_path(&scratch.file()).exists(),
            "no temporary left"
        );
    }

    #[test]
    fn a_write_replaces_the_whole_file_and_makes_its_directory() {
        let scratch = Scratch::new("atomic");
        let path = scratch.0.join("deeper/still/settings.json");
        write_atomically(
            &path,
            b"{\"version\": 1, \"cameras\": {}, \"pad\": \"long\"}",
        )
        .expect("first write");
        write_atomically(&path, b"{\"version\":1}").expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"{\"version\":1}");
        // A leftover temporary from a crash mid-write is simply overwritten.
        fs::write(temporary_path(&path), b"half").expect("leftover");
        write_atomically(&path, b"{\"version\":1,\"cameras\":{}}").expect("third write");
        assert_eq!(
            read_document(&path).expect("read"),
            Some(Document::default())
        );
        assert!(!temporary_path(&path).exists());
    }

    #[test]
    fn no_file_is_an_empty_document_and_no_error() {
        let scratch = Scratch::new("none");
        assert!(matches!(read_document(&scratch.file()), Ok(None)));
        assert_eq!(load_or_empty(&scratch.file()), Document::default());
        assert!(!aside_path(&scratch.file()).exists());
    }

    #[test]
    fn corrupt_truncated_and_wrong_typed_files_are_moved_aside() {
        let scratch = Scratch::new("corrupt");
        let good = br#"{"version":1,"cameras":{"cam":{"fps":{"value":10,"config":null}}}}"#;
        for bad in [
            &b"{\"version\":1,\"cameras\":{\"cam\":{\"fps\":{\"val"[..],
            b"",
            b"\x00\x00\x00\x00",
            br#"{"version":1,"cameras":{"cam":{"fps":{"value":"ten"}}}}"#,
            br#"{"version":1,"cameras":{"cam":{"fps":{"value":1.5}}}}"#,
            br#"{"version":1,"cameras":[]}"#,
            br#"{"cameras":{}}"#,
            br#"{"version":7,"cameras":{}}"#,
            b"[1,2,3]",
        ] {
            fs::write(scratch.file(), bad).expect("write");
            assert!(
                read_document(&scratch.file()).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert_eq!(load_or_empty(&scratch.file()), Document::default());
            assert!(!scratch.file().exists(), "moved away");
            assert_eq!(fs::read(aside_path(&scratch.file())).expect("kept"), bad);
        }
        fs::write(scratch.file(), good).expect("write");
        let document = load_or_empty(&scratch.file());
        assert_eq!(document.cameras["cam"].fps, Some(saved(10, None)));
    }

    #[test]
    fn a_file_over_the_size_bound_is_not_read() {
        let scratch = Scratch::new("size");
        let mut big = b"{\"version\":1,\"cameras\":{},\"pad\":\"".to_vec();
        big.resize(MAX_FILE_SIZE as usize + 10, b'x');
        big.extend_from_slice(b"\"}");
        fs::write(scratch.file(), &big).expect("write");
        assert!(matches!(
            read_document(&scratch.file()),
            Err(LoadError::TooLarge)
        ));
        assert_eq!(load_or_empty(&scratch.file()), Document::default());
        assert!(aside_path(&scratch.file()).exists());
    }

    #[test]
    fn an_unreadable_file_is_an_error_to_log_not_to_move() {
        let scratch = Scratch::new("unreadable");
        // A directory where the file should be: open succeeds, read fails (EISDIR).
        fs::create_dir_all(scratch.file()).expect("dir");
        let error = read_document(&scratch.file()).expect_err("unreadable");
        assert!(matches!(error, LoadError::Read(_)), "{error}");
        assert_eq!(load_or_empty(&scratch.file()), Document::default());
        assert!(scratch.file().is_dir(), "left where it is");
    }

    #[test]
    fn the_config_wins_when_its_value_for_the_key_changed() {
        let thirty = ControlValue::Int(30);
        assert_eq!(verdict(&saved(15, Some(30)), Some(&thirty)), Verdict::Apply);
        assert_eq!(
            verdict(&saved(15, Some(30)), Some(&ControlValue::Int(20))),
            Verdict::ConfigChanged
        );
        // The key was not in the file when saved: adding it, even with the same value as
        // the default, is an edit.
        assert_eq!(verdict(&saved(15, None), None), Verdict::Apply);
        assert_eq!(
            verdict(&saved(15, None), Some(&thirty)),
            Verdict::ConfigChanged
        );
        // Removing it from the file is one too.
        assert_eq!(verdict(&saved(15, Some(30)), None), Verdict::ConfigChanged);
        let manual = ControlValue::Text("manual".into());
        let saved_menu = SavedValue {
            value: 3,
            config: Some(manual.clone()),
        };
        assert_eq!(verdict(&saved_menu, Some(&manual)), Verdict::Apply);
        assert_eq!(
            verdict(&saved_menu, Some(&ControlValue::Text("aperture".into()))),
            Verdict::ConfigChanged
        );
    }

    #[test]
    fn config_values_know_which_keys_the_file_writes() {
        let mut config = CameraConfig::embedded_default();
        let values = ConfigValues::of(&config);
        assert_eq!(values.written("fps"), None);
        assert_eq!(values.origin("fps"), Origin::Default);
        config.fps_in_file = true;
        config.fps = 20;
        config.controls = vec![crate::config::ControlSetting {
            name: "brightness".into(),
            value: ControlValue::Int(140),
            line: 9,
        }];
        let values = ConfigValues::of(&config);
        assert_eq!(values.written("fps"), Some(ControlValue::Int(20)));
        assert_eq!(values.written("quality"), None);
        assert_eq!(values.written("brightness"), Some(ControlValue::Int(140)));
        assert_eq!(values.origin("brightness"), Origin::Config);
        assert_eq!(values.origin("contrast"), Origin::Default);
    }

    #[test]
    fn the_path_follows_command_line_config_systemd_then_xdg() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let all = env(&[
            ("STATE_DIRECTORY", "/var/lib/frcstream"),
            ("XDG_STATE_HOME", "/home/pi/.state"),
            ("HOME", "/home/pi"),
        ]);
        let unset = StateFileSetting::Unset;
        let configured = StateFileSetting::Path("/etc/x.json".into());
        let path = |p: &str| Some(PathBuf::from(p));
        assert_eq!(
            resolve_path(Some(Path::new("/tmp/s.json")), &configured, all),
            path("/tmp/s.json")
        );
        assert_eq!(resolve_path(Some(Path::new("")), &configured, all), None);
        assert_eq!(resolve_path(None, &configured, all), path("/etc/x.json"));
        assert_eq!(resolve_path(None, &StateFileSetting::Off, all), None);
        assert_eq!(
            resolve_path(None, &unset, all),
            path("/var/lib/frcstream/settings.json")
        );
        assert_eq!(
            resolve_path(None, &unset, env(&[("STATE_DIRECTORY", "/a:/b")])),
            path("/a/settings.json")
        );
        assert_eq!(
            resolve_path(
                None,
                &unset,
                env(&[("XDG_STATE_HOME", "/home/pi/.state"), ("HOME", "/home/pi")])
            ),
            path("/home/pi/.state/frcstream/settings.json")
        );
        assert_eq!(
            resolve_path(
                None,
                &unset,
                env(&[("XDG_STATE_HOME", "relative"), ("HOME", "/home/pi")])
            ),
            path("/home/pi/.local/state/frcstream/settings.json")
        );
        assert_eq!(resolve_path(None, &unset, env(&[])), None);
    }

    #[test]
    fn a_burst_of_changes_is_one_write_and_stopping_writes_the_rest() {
        let scratch = Scratch::new("writer");
        let file = StateFile::open(&scratch.file());
        let writer = file.start_writer().expect("writer");
        for value in 1..=60 {
            file.record("cam", "fps", value, Some(ControlValue::Int(30)));
        }
        std::thread::sleep(WRITE_DELAY * 3);
        assert_eq!(file.writes(), 1, "60 changes in a burst, one write");
        let written = read_document(&scratch.file())
            .expect("read")
            .expect("there");
        assert_eq!(written.cameras["cam"].fps, Some(saved(60, Some(30))));
        // A change just before stopping is not lost.
        file.record("cam", "brightness", 7, None);
        file.record("other", "quality", 40, None);
        writer.stop();
        let written = read_document(&scratch.file())
            .expect("read")
            .expect("there");
        assert_eq!(
            written.cameras["cam"].controls["brightness"],
            saved(7, None)
        );
        assert_eq!(written.cameras["other"].quality, Some(saved(40, None)));
        assert_eq!(file.writes(), 2);
    }

    #[test]
    fn dropping_and_forgetting_remove_values_from_the_next_write() {
        let scratch = Scratch::new("forget");
        let file = StateFile::open(&scratch.file());
        let writer = file.start_writer().expect("writer");
        file.record("cam", "fps", 10, None);
        file.record("cam", "quality", 20, None);
        file.record("back", "fps", 5, None);
        file.drop_key("cam", "fps");
        file.forget_camera("back");
        file.drop_key("nobody", "fps");
        writer.stop();
        let written = read_document(&scratch.file())
            .expect("read")
            .expect("there");
        assert_eq!(written.cameras.len(), 1);
        assert_eq!(written.cameras["cam"].fps, None);
        assert_eq!(written.cameras["cam"].quality, Some(saved(20, None)));
        assert_eq!(
            StateFile::open(&scratch.file()).saved("cam").entries(),
            vec![("quality".to_owned(), saved(20, None))]
        );
        assert!(forget_file(&scratch.file()).expect("forget"));
        assert!(!forget_file(&scratch.file()).expect("again"));
        assert!(!scratch.file().exists());
    }

    #[test]
    fn a_file_that_cannot_be_written_is_logged_and_nothing_breaks() {
        let scratch = Scratch::new("unwritable");
        // A plain file where the directory should be.
        fs::write(scratch.0.join("blocker"), b"").expect("blocker");
        let file = StateFile::open(&scratch.0.join("blocker/settings.json"));
        let writer = file.start_writer().expect("writer");
        file.record("cam", "fps", 10, None);
        writer.stop();
        assert_eq!(file.writes(), 1);
        assert!(file.lock().failing);
    }
    #[test]
    fn at_start_saved_values_apply_unless_the_config_changed_their_key() {
        let scratch = Scratch::new("restore");
        let mut document = Document::default();
        let entry = CameraEntry {
            // The config still says 30: applies.
            fps: Some(saved(12, Some(30))),
            // Saved over the default; the config writes quality = 60 now: the config wins.
            quality: Some(saved(35, None)),
            // A test pattern has no controls: skipped, kept.
            controls: BTreeMap::from([("brightness".to_owned(), saved(1, None))]),
        };
        document.cameras.insert("cam".into(), entry);
        let odd = CameraEntry {
            fps: Some(saved(500, None)),
            ..CameraEntry::default()
        };
        document.cameras.insert("odd".into(), odd);
        let bytes = serde_json::to_vec(&document).expect("json");
        write_atomically(&scratch.file(), &bytes).expect("write");

        let mut config = CameraConfig::embedded_default();
        config.fps_in_file = true;
        config.quality = 60;
        config.quality_in_file = true;
        let camera = Camera::new(&config);
        let file = StateFile::open(&scratch.file());
        camera.restore_saved_settings(&file, &config);
        assert_eq!((camera.settings.fps(), camera.settings.quality()), (12, 60));
        assert_eq!(camera.origin("fps"), Origin::Saved);
        assert_eq!(camera.origin("quality"), Origin::Config);
        let kept = file.saved("cam");
        assert_eq!(kept.fps, Some(saved(12, Some(30))));
        assert_eq!(kept.quality, None, "dropped: the config changed");
        assert_eq!(kept.controls.len(), 1);

        let odd_config = CameraConfig {
            name: "odd".into(),
            ..CameraConfig::embedded_default()
        };
        let odd = Camera::new(&odd_config);
        odd.restore_saved_settings(&file, &odd_config);
        assert_eq!(odd.settings.fps(), 30, "out of range: skipped");
        assert_eq!(odd.origin("fps"), Origin::Default);
        assert_eq!(file.saved("odd"), CameraEntry::default());

        // From now on changes are recorded with the config value they override.
        let set = |key: &str, value: i64| {
            camera.change(Writer::Http, &[(key.to_owned(), ControlValue::Int(value))])
        };
        set("quality", 40).expect("quality");
        assert_eq!(file.saved("cam").quality, Some(saved(40, Some(60))));
        assert_eq!(camera.origin("quality"), Origin::Changed);
        // Setting the value in force (NetworkTables echoes) is no change.
        set("fps", 12).expect("fps");
        assert_eq!(camera.origin("fps"), Origin::Saved);

        camera.forget_changes(Writer::Http);
        assert_eq!((camera.settings.fps(), camera.settings.quality()), (30, 60));
        assert_eq!(camera.origin("fps"), Origin::Config);
        assert_eq!(camera.origin("quality"), Origin::Config);
        assert_eq!(file.saved("cam"), CameraEntry::default());
    }
}

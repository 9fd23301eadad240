//! The configuration file: what it may contain, its defaults, and errors that name the
//! file, the line and the key.
//!
//! The file is TOML (see `config/frcstream.toml` for a complete, commented example).
//! Parsing is strict: unknown keys, wrong types and out-of-range values are errors, never
//! silently ignored, because a typo in a camera setting found on the field is too late.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::controls::ControlValue;
use crate::settings::{self, Kind, MatchTable, Spec};

mod switch;
pub use switch::SwitchConfig;

/// A config file larger than this is refused (a real one is a few kilobytes).
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;
/// Cameras in one config; a coprocessor's USB bus carries four or so.
pub const MAX_CAMERAS: usize = 16;
/// Pixels per second one camera may be configured for: 1920x1080 at 60 fps.
pub const MAX_CAMERA_PIXEL_RATE: u64 = 1920 * 1080 * 60;
/// Pixels per second of all cameras together: two cameras at the largest rate.
pub const MAX_TOTAL_PIXEL_RATE: u64 = 2 * MAX_CAMERA_PIXEL_RATE;

/// Where `frcstream` looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/frcstream/frcstream.toml";

/// The first FRC camera port (cscore's `kBasePort`); the field allows TCP 1180–1190.
pub const DEFAULT_PORT: u16 = settings::PORT.default as u16;

/// Names that would collide with the server's own URLs (`/<name>.mjpg`, `/stats.json`, ...).
const RESERVED_NAMES: &[&str] = &[
    "stream", "snapshot", "stats", "settings", "config", "fps", "quality", "index", "events",
];

/// The whole configuration, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub cameras: Vec<CameraConfig>,
    /// `[[switch]]` tables: streams that show one of several cameras (`config/switch.rs`).
    pub switches: Vec<SwitchConfig>,
    /// The `[networktables]` section; `None` (no section) means NetworkTables is off.
    pub networktables: Option<NetworkTablesConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; `0.0.0.0` is every interface.
    pub bind: IpAddr,
    /// TCP port; 0 picks a free port (useful for tests).
    #[serde(deserialize_with = "port")]
    pub port: u16,
    /// Streaming clients allowed at once over all cameras; more get `503`.
    #[serde(deserialize_with = "client_limit")]
    pub max_clients: usize,
    /// Refuse changes of settings over HTTP (for events where the pit Wi-Fi is not
    /// trusted). NetworkTables and the config file still apply.
    pub read_only: bool,
    /// `state_file`: where settings changed at run time are saved (`saved_settings.rs`).
    #[serde(deserialize_with = "state_file_setting")]
    pub state_file: StateFileSetting,
    /// The robot's bandwidth budget for every camera and client together (Mbit/s) across
    /// the radio; loopback clients do not count. 0 turns it off (`budget.rs`).
    #[serde(deserialize_with = "max_mbit")]
    pub max_mbit: f64,
    /// A POST to a path that names no camera changes the first camera's settings instead of
    /// a 404, as the Python `MjpgServer` frcstream began from did. Not in the file: only
    /// the Python package's `MjpgServer` sets it.
    #[serde(skip)]
    pub post_to_any_path: bool,
    /// `[server.match]`: the server's values while the FMS is attached (`max_mbit`).
    #[serde(rename = "match", deserialize_with = "server_match")]
    pub in_match: MatchSettings,
}

/// A `[camera.match]` or `[server.match]` table: the values in force while the FMS is
/// attached (`match_profile.rs`), each checked against its setting in the settings table,
/// in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MatchSettings(pub Vec<(&'static Spec, f64)>);

impl MatchSettings {
    /// The value the table gives `key`, if it sets it.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.0
            .iter()
            .find(|(spec, _)| spec.key == key)
            .map(|(_, value)| *value)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The default budget ([`settings::MAX_MBIT`] says why).
pub const DEFAULT_MAX_MBIT: f64 = settings::MAX_MBIT.default;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: IpAddr::from([0, 0, 0, 0]),
            port: DEFAULT_PORT,
            max_clients: settings::MAX_CLIENTS.default as usize,
            read_only: false,
            state_file: StateFileSetting::Unset,
            max_mbit: DEFAULT_MAX_MBIT,
            post_to_any_path: false,
            in_match: MatchSettings::default(),
        }
    }
}

/// One camera: where its frames come from and how they are encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraConfig {
    pub name: String,
    pub source: SourceSpec,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub quality: u8,
    pub format: PixelFormatChoice,
    /// `[camera.controls]`: V4L2 controls to set after every (re)connect, in file order.
    pub controls: Vec<ControlSetting>,
    /// A port of its own (cscore's convention: 1182, 1183, ...), besides the main port.
    pub port: Option<u16>,
    /// Whether `fps` and `quality` are written in the file (else they are the defaults):
    /// a saved value is compared with what the file says (`saved_settings.rs`).
    pub fps_in_file: bool,
    pub quality_in_file: bool,
    /// The camera's part of the robot's budget, relative to the other cameras'.
    pub weight: f64,
    /// Floors of the budget's governor: it lowers quality, then fps, then size, never below
    /// these.
    pub min_quality: u8,
    pub min_fps: u32,
    /// `min_width`, `min_height`.
    pub min_size: (u32, u32),
    /// `[camera.match]`: fps and quality while the FMS is attached.
    pub in_match: MatchSettings,
}

/// One entry of `[camera.controls]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlSetting {
    pub name: String,
    pub value: ControlValue,
    /// Line in the config file, for error messages.
    pub line: usize,
}

impl CameraConfig {
    /// The built-in camera used when there is no configuration file at all.
    pub fn embedded_default() -> Self {
        CameraConfig {
            name: "cam".to_owned(),
            source: SourceSpec::TestPattern,
            width: default_width(),
            height: default_height(),
            fps: default_fps(),
            quality: DEFAULT_QUALITY,
            format: PixelFormatChoice::Auto,
            controls: Vec::new(),
            port: None,
            fps_in_file: false,
            quality_in_file: false,
            weight: default_weight(),
            min_quality: DEFAULT_MIN_QUALITY,
            min_fps: DEFAULT_MIN_FPS,
            min_size: (DEFAULT_MIN_WIDTH, DEFAULT_MIN_HEIGHT),
            in_match: MatchSettings::default(),
        }
    }
}

/// JPEG quality used when a camera does not set one ([`settings::QUALITY`]).
pub const DEFAULT_QUALITY: u8 = settings::QUALITY.default as u8;

/// Where a camera's frames come from, as written in `source = "..."`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// `test-pattern`: a generated YUYV picture with a frame counter.
    TestPattern,
    /// `folder:<dir>`: the `*.jpg` files of a folder, replayed in name order (MJPEG passthrough).
    JpegFolder(PathBuf),
    /// `pushed`: frames are pushed by a program through the library.
    Pushed,
    /// `v4l2:<device>`: a USB camera, e.g. `v4l2:/dev/v4l/by-id/usb-...-video-index0`.
    V4l2(PathBuf),
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::TestPattern => write!(f, "test-pattern"),
            SourceSpec::JpegFolder(dir) => write!(f, "folder:{}", dir.display()),
            SourceSpec::Pushed => write!(f, "pushed"),
            SourceSpec::V4l2(path) => write!(f, "v4l2:{}", path.display()),
        }
    }
}

impl std::str::FromStr for SourceSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "test-pattern" {
            return Ok(SourceSpec::TestPattern);
        }
        if text == "pushed" {
            return Ok(SourceSpec::Pushed);
        }
        if let Some(device) = text.strip_prefix("v4l2:") {
            if !device.starts_with("/dev/") {
                return Err("`v4l2:` needs a device path under /dev, e.g. \"v4l2:/dev/v4l/by-id/usb-...-video-index0\" (frcstream --list-cameras shows them)".to_owned());
            }
            return Ok(SourceSpec::V4l2(PathBuf::from(device)));
        }
        if let Some(dir) = text.strip_prefix("folder:") {
            if dir.is_empty() {
                return Err("`folder:` needs a directory, e.g. \"folder:/home/pi/frames\"".into());
            }
            return Ok(SourceSpec::JpegFolder(PathBuf::from(dir)));
        }
        Err(format!(
            "unknown source \"{text}\": expected \"v4l2:/dev/...\", \"test-pattern\", \"folder:<dir>\" or \"pushed\""
        ))
    }
}

/// The pixel format asked of a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormatChoice {
    /// MJPEG where the source offers it at the requested size, else YUYV.
    Auto,
    Mjpeg,
    Yuyv,
}

/// A configuration that could not be used, with where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read config {path}: {what}")]
    NotAFile { path: PathBuf, what: String },
    #[error(
        "cannot read config {path}: it is over {MAX_CONFIG_BYTES} bytes; a config file is a few kilobytes"
    )]
    TooLarge { path: PathBuf },
    #[error("config {path}, {location}: {message}")]
    Invalid {
        path: PathBuf,
        location: Location,
        message: String,
    },
}

/// Line, column and key of a problem in the file. Any part may be unknown.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Location {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub key: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(line) = self.line {
            match self.column {
                Some(column) => parts.push(format!("line {line}, column {column}")),
                None => parts.push(format!("line {line}")),
            }
        }
        if let Some(key) = &self.key {
            parts.push(format!("key `{key}`"));
        }
        if parts.is_empty() {
            parts.push("whole file".to_owned());
        }
        write!(f, "{}", parts.join(", "))
    }
}

impl Location {
    fn at(text: &str, span: Option<std::ops::Range<usize>>, key: Option<String>) -> Location {
        let (line, column) = match span {
            Some(span) => {
                let (line, column) = line_and_column(text, span.start);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        Location { line, column, key }
    }
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Config {
    /// The configuration used when no file exists.
    pub fn embedded_default() -> Config {
        Config {
            server: ServerConfig::default(),
            cameras: vec![CameraConfig::embedded_default()],
            switches: Vec::new(),
            networktables: None,
        }
    }

    /// Reads and validates a configuration file.
    ///
    /// Only a regular file of at most [`MAX_CONFIG_BYTES`] is read: `/dev/zero`, a FIFO or
    /// a directory fail at once with a message, never read forever.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        use std::io::Read;
        let read_error = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        // O_NONBLOCK: opening a FIFO with no writer must not block; a regular file ignores it.
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
                .map_err(read_error)?
        };
        let metadata = file.metadata().map_err(read_error)?;
        if !metadata.is_file() {
            let kind = metadata.file_type();
            let what = if kind.is_dir() {
                "it is a directory"
            } else {
                "it is a device, FIFO or socket"
            };
            return Err(ConfigError::NotAFile {
                path: path.to_owned(),
                what: format!("{what}, not a regular file"),
            });
        }
        let mut bytes = Vec::new();
        (&file)
            .take(MAX_CONFIG_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
            });
        }
        let text = String::from_utf8(bytes).map_err(|_| ConfigError::NotAFile {
            path: path.to_owned(),
            what: "it is not UTF-8 text".to_owned(),
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |location: Location, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            location,
            message,
        };
        let document = toml::Deserializer::parse(text).map_err(|err| {
            invalid(
                Location::at(text, err.span(), None),
                err.message().to_owned(),
            )
        })?;
        let raw: RawConfig = serde_path_to_error::deserialize(document).map_err(|err| {
            let key = Some(user_key(&err.path().to_string())).filter(|k| !k.is_empty());
            let inner = err.into_inner();
            let value = inner.span().and_then(|span| text.get(span));
            invalid(
                Location::at(text, inner.span(), key),
                plain_message(inner.message(), value),
            )
        })?;
        raw.validate(text).map_err(|(span, key, message)| {
            invalid(Location::at(text, Some(span), Some(key)), message)
        })
    }
}

/// The file as written, before cross-field checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default, rename = "camera")]
    cameras: Vec<RawCamera>,
    #[serde(default, rename = "switch")]
    switches: Vec<switch::RawSwitch>,
    #[serde(default)]
    networktables: Option<Spanned<RawNetworkTables>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCamera {
    name: Spanned<String>,
    #[serde(default = "default_source", deserialize_with = "source_spec")]
    source: SourceSpec,
    #[serde(default = "default_width", deserialize_with = "width")]
    width: u32,
    #[serde(default = "default_height", deserialize_with = "height")]
    height: u32,
    #[serde(default, deserialize_with = "fps")]
    fps: Option<u32>,
    #[serde(default, deserialize_with = "quality")]
    quality: Option<u8>,
    #[serde(default = "default_format")]
    format: Spanned<PixelFormatChoice>,
    #[serde(default = "no_controls")]
    controls: Spanned<ControlTable>,
    #[serde(default)]
    port: Option<Spanned<u16>>,
    #[serde(default = "default_weight", deserialize_with = "weight")]
    weight: f64,
    #[serde(default, deserialize_with = "min_quality")]
    min_quality: Option<u8>,
    #[serde(default, deserialize_with = "min_fps")]
    min_fps: Option<u32>,
    #[serde(default, deserialize_with = "min_width")]
    min_width: Option<u32>,
    #[serde(default, deserialize_with = "min_height")]
    min_height: Option<u32>,
    #[serde(default, rename = "match", deserialize_with = "camera_match")]
    in_match: MatchSettings,
}

type ValidationError = (std::ops::Range<usize>, String, String);

impl RawConfig {
    fn validate(self, text: &str) -> Result<Config, ValidationError> {
        if self.cameras.is_empty() {
            return Err((
                0..0,
                "camera".to_owned(),
                "no camera configured: add at least one [[camera]] table".to_owned(),
            ));
        }
        if let Some(extra) = self.cameras.get(MAX_CAMERAS) {
            return Err((
                extra.name.span(),
                format!("camera[{MAX_CAMERAS}]"),
                format!(
                    "{} cameras configured; at most {MAX_CAMERAS} (each one is a capture thread and its buffers)",
                    self.cameras.len()
                ),
            ));
        }
        let mut cameras: Vec<CameraConfig> = Vec::with_capacity(self.cameras.len());
        let mut total_rate = 0u64;
        for (index, raw) in self.cameras.into_iter().enumerate() {
            let key = |field: &str| format!("camera[{index}].{field}");
            let name_span = raw.name.span();
            let fps = raw.fps.unwrap_or_else(default_fps);
            let rate = u64::from(raw.width) * u64::from(raw.height) * u64::from(fps);
            let mpx = |rate: u64| rate as f64 / 1e6;
            if rate > MAX_CAMERA_PIXEL_RATE {
                return Err((
                    name_span,
                    format!("camera[{index}]"),
                    format!(
                        "{}x{} at {} fps is {:.1} Mpixel/s, over the limit of {:.1} Mpixel/s per camera (1920x1080 at 60 fps): lower width, height or fps",
                        raw.width,
                        raw.height,
                        fps,
                        mpx(rate),
                        mpx(MAX_CAMERA_PIXEL_RATE)
                    ),
                ));
            }
            total_rate += rate;
            if total_rate > MAX_TOTAL_PIXEL_RATE {
                return Err((
                    name_span,
                    format!("camera[{index}]"),
                    format!(
                        "cameras 0 to {index} together make {:.1} Mpixel/s, over the limit of {:.1} Mpixel/s for all cameras: lower sizes or fps",
                        mpx(total_rate),
                        mpx(MAX_TOTAL_PIXEL_RATE)
                    ),
                ));
            }
            let name = raw.name.into_inner();
            check_camera_name(&name).map_err(|m| (name_span.clone(), key("name"), m))?;
            if let Some(first) = cameras.iter().position(|c| c.name == name) {
                return Err((
                    name_span,
                    key("name"),
                    format!(
                        "duplicate camera name \"{name}\" (also camera[{first}]): names must be unique, they are the stream URLs"
                    ),
                ));
            }
            let format_span = raw.format.span();
            let format = raw.format.into_inner();
            check_format_for_source(&raw.source, format)
                .map_err(|m| (format_span, key("format"), m))?;
            let controls_span = raw.controls.span();
            let controls =
                control_settings(raw.controls.into_inner(), text).map_err(|(key, m)| {
                    (
                        controls_span.clone(),
                        format!("camera[{index}].controls.{key}"),
                        m,
                    )
                })?;
            if !controls.is_empty() && !matches!(raw.source, SourceSpec::V4l2(_)) {
                return Err((
                    controls_span,
                    key("controls"),
                    "[camera.controls] only applies to v4l2 cameras".to_owned(),
                ));
            }
            let port = match raw.port {
                Some(port) => {
                    let span = port.span();
                    let port = port.into_inner();
                    let taken =
                        port == self.server.port || cameras.iter().any(|c| c.port == Some(port));
                    if port == 0 || taken {
                        return Err((
                            span,
                            key("port"),
                            format!(
                                "port {port} is already the server's or another camera's port (or 0); each camera needs its own"
                            ),
                        ));
                    }
                    Some(port)
                }
                None => None,
            };
            cameras.push(CameraConfig {
                name,
                source: raw.source,
                width: raw.width,
                height: raw.height,
                fps: raw.fps.unwrap_or_else(default_fps),
                quality: raw.quality.unwrap_or_else(default_quality),
                format,
                controls,
                port,
                fps_in_file: raw.fps.is_some(),
                quality_in_file: raw.quality.is_some(),
                weight: raw.weight,
                min_quality: raw.min_quality.unwrap_or(DEFAULT_MIN_QUALITY),
                min_fps: raw.min_fps.unwrap_or(DEFAULT_MIN_FPS),
                min_size: (
                    raw.min_width.unwrap_or(DEFAULT_MIN_WIDTH),
                    raw.min_height.unwrap_or(DEFAULT_MIN_HEIGHT),
                ),
                in_match: raw.in_match,
            });
        }
        let networktables = self
            .networktables
            .map(RawNetworkTables::validate)
            .transpose()?;
        let switches = switch::validate_switches(self.switches, &cameras)?;
        Ok(Config {
            server: self.server,
            cameras,
            switches,
            networktables,
        })
    }
}

/// `[camera.controls]` as written: each key with where it stands in the file.
type ControlTable = std::collections::BTreeMap<Spanned<String>, toml::Value>;

/// `[camera.controls]` entries: numbers, booleans or menu entry names, with their lines,
/// in file order.
fn control_settings(
    table: ControlTable,
    text: &str,
) -> Result<Vec<ControlSetting>, (String, String)> {
    let mut settings = Vec::new();
    for (key, value) in table {
        let line = line_and_column(text, key.span().start).0;
        let name = key.into_inner();
        let value = match value {
            toml::Value::Integer(v) => ControlValue::Int(v),
            toml::Value::Boolean(v) => ControlValue::Bool(v),
            toml::Value::String(v) => ControlValue::Text(v),
            other => {
                return Err((
                    name,
                    format!(
                        "a control takes a number, true/false or a menu entry name, not a {}",
                        other.type_str()
                    ),
                ));
            }
        };
        settings.push(ControlSetting { name, value, line });
    }
    settings.sort_by_key(|s| s.line);
    Ok(settings)
}

// -------------------------------------------------------------------------------------------
// [networktables]

/// The `[networktables]` section: where the NT4 server is and who frcstream is to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkTablesConfig {
    /// `enabled = false` keeps the section but turns NetworkTables off.
    pub enabled: bool,
    pub server: NtServerSpec,
    /// The name frcstream connects with (`/nt/<client_name>`); the server appends `@N`.
    pub client_name: String,
    /// `advertise = ["10.12.34.11", "frcvision.local"]`: the hosts `streams` lists, in
    /// this order, instead of the machine's own addresses.
    pub advertise: Option<Vec<String>>,
}

/// At most this many hosts in `advertise`.
pub const MAX_ADVERTISED_HOSTS: usize = 16;

/// The NT4 server, as written in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NtServerSpec {
    /// `team = 1234`: the roboRIO at `10.12.34.2`, port 5810.
    Team(u16),
    /// `server = "host[:port]"`, port 5810 unless given.
    Address(String),
}

impl NtServerSpec {
    /// `host[:port]` to connect to.
    pub fn address(&self) -> String {
        match self {
            NtServerSpec::Team(team) => format!("10.{}.{}.2:5810", team / 100, team % 100),
            NtServerSpec::Address(address) => address.clone(),
        }
    }

    /// The robot network's first three octets (10.TE.AM), from the team number or from a
    /// server given as a 10.x.y.z address.
    pub fn robot_network(&self) -> Option<[u8; 3]> {
        match self {
            NtServerSpec::Team(team) => Some([10, (team / 100) as u8, (team % 100) as u8]),
            NtServerSpec::Address(address) => {
                let host = address
                    .rsplit_once(':')
                    .map_or(address.as_str(), |(h, _)| h);
                let ip: std::net::Ipv4Addr = host.parse().ok()?;
                let [a, b, c, _] = ip.octets();
                (a == 10).then_some([a, b, c])
            }
        }
    }
}

impl fmt::Display for NtServerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NtServerSpec::Team(team) => write!(f, "team {team}'s robot ({})", self.address()),
            NtServerSpec::Address(address) => f.write_str(address),
        }
    }
}

/// A serde path as the user wrote the key. A `Spanned` value is a struct to serde, whose
/// fields carry serde's prefix for names no format can write (`$__`); those segments are
/// dropped. No TOML key the config takes starts with `$`.
fn user_key(path: &str) -> String {
    let key: Vec<&str> = path
        .split('.')
        .filter(|part| !part.is_empty() && !part.starts_with("$__"))
        .collect();
    key.join(".")
}

/// The TOML type of a value as written, for values serde names wrongly (a date is a "map"
/// to serde).
fn toml_type_name(value: &str) -> &'static str {
    match value.trim().parse::<toml::value::Datetime>() {
        Ok(datetime) => match (datetime.date, datetime.time) {
            (Some(_), Some(_)) => "a date-time",
            (Some(_), None) => "a date",
            _ => "a time",
        },
        Err(_) => "a table",
    }
}

/// serde's message with TOML's type names: "a table", "an array", "a date", "an integer".
fn plain_message(message: &str, value: Option<&str>) -> String {
    let found = |serde_name: &str| -> String {
        match serde_name {
            "map" => value.map_or("a table", toml_type_name).to_owned(),
            "sequence" => "an array".to_owned(),
            other => {
                let (kind, shown) = other.split_once(' ').unwrap_or((other, ""));
                let kind = match kind {
                    "integer" => "an integer",
                    "floating" => return format!("a float {}", shown.trim_start_matches("point ")),
                    "boolean" => "a boolean",
                    "string" => "a string",
                    _ => return other.to_owned(),
                };
                format!("{kind} {shown}").trim_end().to_owned()
            }
        }
    };
    let expected = |serde_name: &str| -> String {
        match serde_name {
            "i64" | "u64" | "i32" | "u32" | "u16" | "u8" | "usize" => "an integer".to_owned(),
            "a map" => "a table".to_owned(),
            "a sequence" => "an array of tables".to_owned(),
            other if other.starts_with("struct ") => "a table".to_owned(),
            other => other.to_owned(),
        }
    };
    if message == "wanted string or table" {
        let found = value.map_or("something else", toml_type_name);
        return format!("invalid type: {found}, expected a string");
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((what, wanted)) = rest.rsplit_once(", expected ") {
            return format!(
                "invalid type: {}, expected {}",
                found(what),
                expected(wanted)
            );
        }
    }
    message.to_owned()
}

/// The default NetworkTables client name.
pub const DEFAULT_NT_CLIENT_NAME: &str = "frcstream";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetworkTables {
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default, deserialize_with = "team")]
    team: Option<Spanned<u16>>,
    #[serde(default)]
    server: Option<Spanned<String>>,
    #[serde(default = "default_client_name")]
    client_name: Spanned<String>,
    #[serde(default)]
    advertise: Option<Spanned<Vec<String>>>,
}

impl RawNetworkTables {
    fn validate(
        section: Spanned<RawNetworkTables>,
    ) -> Result<NetworkTablesConfig, ValidationError> {
        let section_span = section.span();
        let raw = section.into_inner();
        let key = |field: &str| format!("networktables.{field}");
        let server = match (raw.team, raw.server) {
            (Some(_), Some(server)) => {
                return Err((
                    server.span(),
                    key("server"),
                    "set either `team` or `server`, not both".to_owned(),
                ));
            }
            (None, None) => {
                return Err((
                    section_span,
                    "networktables".to_owned(),
                    "[networktables] needs `team = <number>` (the robot at 10.TE.AM.2) or \
                     `server = \"host[:port]\"`"
                        .to_owned(),
                ));
            }
            (Some(team), None) => NtServerSpec::Team(team.into_inner()),
            (None, Some(server)) => {
                let span = server.span();
                let server = server.into_inner();
                if crate::networktables::parse_server(&server).is_none() {
                    return Err((
                        span,
                        key("server"),
                        format!(
                            "server \"{server}\" is not a host name or address with an optional \
                             port, e.g. \"10.12.34.2\" or \"localhost:5810\""
                        ),
                    ));
                }
                NtServerSpec::Address(server)
            }
        };
        let name_span = raw.client_name.span();
        let client_name = raw.client_name.into_inner();
        check_client_name(&client_name).map_err(|m| (name_span, key("client_name"), m))?;
        let advertise = match raw.advertise {
            Some(hosts) => {
                let span = hosts.span();
                let hosts = hosts.into_inner();
                check_advertised_hosts(&hosts).map_err(|m| (span, key("advertise"), m))?;
                Some(hosts)
            }
            None => None,
        };
        Ok(NetworkTablesConfig {
            enabled: raw.enabled,
            server,
            client_name,
            advertise,
        })
    }
}

/// `advertise`: 1 to [`MAX_ADVERTISED_HOSTS`] host names or addresses, each usable as the
/// host of a URL.
fn check_advertised_hosts(hosts: &[String]) -> Result<(), String> {
    if hosts.is_empty() || hosts.len() > MAX_ADVERTISED_HOSTS {
        return Err(format!(
            "advertise lists {} hosts: give 1 to {MAX_ADVERTISED_HOSTS} (or leave it out to \
             advertise the machine's own addresses)",
            hosts.len()
        ));
    }
    for host in hosts {
        let ok = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !ok {
            return Err(format!(
                "advertise: \"{host}\" is not a host name or IPv4 address (e.g. \"10.12.34.11\" \
                 or \"frcvision.local\"; the port is the camera's own)"
            ));
        }
    }
    Ok(())
}

fn check_client_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!(
            "client name \"{name}\" must be 1 to 64 characters long"
        ));
    }
    if name.contains('@') || name.chars().any(char::is_control) {
        return Err(format!(
            "client name \"{name}\" may not contain '@' (the server appends @N) or control characters"
        ));
    }
    Ok(())
}

fn default_true() -> bool {
    true
}
fn default_client_name() -> Spanned<String> {
    Spanned::new(0..0, DEFAULT_NT_CLIENT_NAME.to_owned())
}
fn team<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Spanned<u16>>, D::Error> {
    let team = Spanned::<i64>::deserialize(d)?;
    let span = team.span();
    let value = settings::TEAM
        .check_int(team.into_inner())
        .map_err(serde::de::Error::custom)?;
    // TEAM's range keeps it within u16.
    Ok(Some(Spanned::new(span, value as u16)))
}

/// `[server] state_file` as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StateFileSetting {
    /// Not in the config: the command picks the default place (`saved_settings::resolve_path`); the
    /// library saves nothing.
    #[default]
    Unset,
    /// `state_file = ""`: nothing is saved or restored.
    Off,
    /// `state_file = "/absolute/path.json"`.
    Path(PathBuf),
}

/// Deserializes `state_file`: `""` or an absolute path.
fn state_file_setting<'de, D: Deserializer<'de>>(d: D) -> Result<StateFileSetting, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(StateFileSetting::Off);
    }
    if !Path::new(&text).is_absolute() {
        return Err(serde::de::Error::custom(format!(
            "state_file \"{text}\" must be an absolute path, or \"\" to save nothing"
        )));
    }
    Ok(StateFileSetting::Path(PathBuf::from(text)))
}

/// A camera name must be usable as a URL path segment and a NetworkTables key.
pub fn check_camera_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 32 {
        return Err(format!(
            "camera name \"{name}\" must be 1 to 32 characters long"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "camera name \"{name}\" may only use letters, digits, '-' and '_' (it is part of the stream URL)"
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!(
            "camera name \"{name}\" is reserved for the server's own URLs; pick another"
        ));
    }
    Ok(())
}

fn check_format_for_source(source: &SourceSpec, format: PixelFormatChoice) -> Result<(), String> {
    match (source, format) {
        (_, PixelFormatChoice::Auto) => Ok(()),
        (SourceSpec::TestPattern, PixelFormatChoice::Yuyv) => Ok(()),
        (SourceSpec::JpegFolder(_), PixelFormatChoice::Mjpeg) => Ok(()),
        (SourceSpec::Pushed | SourceSpec::V4l2(_), _) => Ok(()),
        (SourceSpec::TestPattern, PixelFormatChoice::Mjpeg) => {
            Err("the test pattern makes YUYV frames: use format = \"yuyv\" or \"auto\"".into())
        }
        (SourceSpec::JpegFolder(_), PixelFormatChoice::Yuyv) => {
            Err("a JPEG folder is MJPEG: use format = \"mjpeg\" or \"auto\"".into())
        }
    }
}

fn default_source() -> SourceSpec {
    SourceSpec::TestPattern
}
fn default_width() -> u32 {
    settings::WIDTH.int_default() as u32
}
fn default_height() -> u32 {
    settings::HEIGHT.int_default() as u32
}
fn default_fps() -> u32 {
    settings::FPS.int_default() as u32
}
fn default_quality() -> u8 {
    DEFAULT_QUALITY
}
fn default_weight() -> f64 {
    settings::WEIGHT.default
}
/// The governor's floors unless a camera sets its own.
pub const DEFAULT_MIN_QUALITY: u8 = settings::MIN_QUALITY.default as u8;
pub const DEFAULT_MIN_FPS: u32 = settings::MIN_FPS.default as u32;
pub const DEFAULT_MIN_WIDTH: u32 = settings::MIN_WIDTH.default as u32;
pub const DEFAULT_MIN_HEIGHT: u32 = settings::MIN_HEIGHT.default as u32;
fn no_controls() -> Spanned<ControlTable> {
    Spanned::new(0..0, ControlTable::new())
}
fn default_format() -> Spanned<PixelFormatChoice> {
    Spanned::new(0..0, PixelFormatChoice::Auto)
}

/// A whole-number setting of the table, checked against its range.
fn int_setting<'de, D: Deserializer<'de>>(d: D, spec: &Spec) -> Result<u32, D::Error> {
    spec.check_int(i64::deserialize(d)?)
        .map_err(serde::de::Error::custom)
}

/// A number setting of the table (TOML may write it as an integer or a float).
fn number_setting<'de, D: Deserializer<'de>>(d: D, spec: &Spec) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Int(i64),
        Float(f64),
    }
    let value = match Number::deserialize(d)? {
        Number::Int(v) => v as f64,
        Number::Float(v) => v,
    };
    spec.check_number(value).map_err(serde::de::Error::custom)
}

fn width<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let width = int_setting(d, &settings::WIDTH)?;
    if width % 2 != 0 {
        return Err(serde::de::Error::custom(format!(
            "width {width} must be even (YUYV packs pixels in pairs)"
        )));
    }
    Ok(width)
}
fn height<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    int_setting(d, &settings::HEIGHT)
}
fn fps<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    int_setting(d, &settings::FPS).map(Some)
}
fn quality<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    // QUALITY's range keeps it within a byte.
    int_setting(d, &settings::QUALITY).map(|v| Some(v as u8))
}
fn min_fps<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    int_setting(d, &settings::MIN_FPS).map(Some)
}
fn min_width<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    int_setting(d, &settings::MIN_WIDTH).map(Some)
}
fn min_height<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    int_setting(d, &settings::MIN_HEIGHT).map(Some)
}
fn min_quality<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    int_setting(d, &settings::MIN_QUALITY).map(|v| Some(v as u8))
}
fn max_mbit<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    number_setting(d, &settings::MAX_MBIT)
}
fn weight<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let weight = number_setting(d, &settings::WEIGHT)?;
    if weight <= 0.0 {
        return Err(serde::de::Error::custom("weight must be more than 0"));
    }
    Ok(weight)
}
fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    // PORT's range is u16's.
    int_setting(d, &settings::PORT).map(|v| v as u16)
}
fn client_limit<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    int_setting(d, &settings::MAX_CLIENTS).map(|v| v as usize)
}
fn camera_match<'de, D: Deserializer<'de>>(d: D) -> Result<MatchSettings, D::Error> {
    d.deserialize_map(MatchTableVisitor(MatchTable::Camera))
}
fn server_match<'de, D: Deserializer<'de>>(d: D) -> Result<MatchSettings, D::Error> {
    d.deserialize_map(MatchTableVisitor(MatchTable::Server))
}

/// Reads a match table key by key: each value is read by its setting's own deserializer
/// (so an error names the key and its line); a key the table may not set is refused with
/// the keys it may.
struct MatchTableVisitor(MatchTable);

impl<'de> Visitor<'de> for MatchTableVisitor {
    type Value = MatchSettings;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a table of {}", allowed_in_match(self.0))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MatchSettings, A::Error> {
        let mut values = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            values.push(map.next_value_seed(MatchValue {
                table: self.0,
                key: &key,
            })?);
        }
        Ok(MatchSettings(values))
    }
}

/// One value of a match table, read as its setting says.
struct MatchValue<'k> {
    table: MatchTable,
    key: &'k str,
}

impl<'de> DeserializeSeed<'de> for MatchValue<'_> {
    type Value = (&'static Spec, f64);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let Some(spec) = settings::match_setting(self.table, self.key) else {
            return Err(serde::de::Error::custom(format!(
                "{} cannot set `{}`: it takes {} (the settings that can change while running)",
                self.table.section(),
                self.key,
                allowed_in_match(self.table)
            )));
        };
        let value = match spec.kind {
            Kind::Int => f64::from(int_setting(d, spec)?),
            Kind::Number => number_setting(d, spec)?,
        };
        Ok((spec, value))
    }
}

/// `fps, quality`: the keys a match table takes.
fn allowed_in_match(table: MatchTable) -> String {
    let keys: Vec<&str> = settings::match_settings(table).map(|s| s.key).collect();
    keys.join(", ")
}

fn source_spec<'de, D: Deserializer<'de>>(d: D) -> Result<SourceSpec, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    fn error_text(text: &str) -> String {
        match parse(text) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn minimal_camera_gets_defaults() {
        let config = parse("[[camera]]\nname = \"front\"\n").expect("valid");
        assert_eq!(config.server, ServerConfig::default());
        assert_eq!(config.cameras.len(), 1);
        let camera = &config.cameras[0];
        assert_eq!(camera.name, "front");
        assert_eq!(camera.source, SourceSpec::TestPattern);
        assert_eq!((camera.width, camera.height, camera.fps), (640, 480, 30));
    }

    #[test]
    fn state_file_and_which_keys_the_file_writes() {
        let config = parse("[[camera]]\nname = \"a\"\nquality = 50\n").expect("valid");
        assert_eq!(config.server.state_file, StateFileSetting::Unset);
        let camera = &config.cameras[0];
        assert!(!camera.fps_in_file && camera.quality_in_file);
        let off = parse("[server]\nstate_file = \"\"\n[[camera]]\nname = \"a\"\n").expect("valid");
        assert_eq!(off.server.state_file, StateFileSetting::Off);
        let at = parse("[server]\nstate_file = \"/tmp/s.json\"\n[[camera]]\nname = \"a\"\n")
            .expect("valid");
        assert_eq!(
            at.server.state_file,
            StateFileSetting::Path("/tmp/s.json".into())
        );
        let message = error_text("[server]\nstate_file = \"s.json\"\n[[camera]]\nname = \"a\"\n");
        assert!(
            message.contains("line 2") && message.contains("absolute"),
            "{message}"
        );
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../config/frcstream.toml");
        let config = parse(text).expect("config/frcstream.toml must stay valid");
        assert_eq!(config.server.port, DEFAULT_PORT);
        assert_eq!(config.cameras[0].name, "cam");
        assert_eq!(
            config.networktables, None,
            "NetworkTables stays commented out"
        );
        let uncommented = text.replace("#[networktables]", "[networktables]");
        let uncommented = uncommented.replace("#team = 1234", "team = 1234");
        let uncommented = uncommented
            .replace("#[server.match]\n#max_mbit", "[server.match]\nmax_mbit")
            .replace(
                "#[camera.match]\n#fps = 15\n#quality",
                "[camera.match]\nfps = 15\nquality",
            );
        let nt = parse(&uncommented).expect("the commented sections are valid");
        assert_eq!(nt.server.in_match.get("max_mbit"), Some(2.0));
        assert_eq!(nt.cameras[0].in_match.get("quality"), Some(30.0));
        assert_eq!(
            nt.networktables.map(|n| n.server),
            Some(NtServerSpec::Team(1234))
        );
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let message = error_text("[[camera]]\nname = \"a\"\nfsp = 30\n");
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains("fsp"), "{message}");
        assert!(message.contains("test.toml"), "{message}");
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let message = error_text("[[camera]]\nname = \"a\"\nfps = \"fast\"\n");
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains("camera[0].fps"), "{message}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let message = error_text("[server]\nport = 70000\n[[camera]]\nname = \"a\"\n");
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("server.port"), "{message}");
        assert!(
            message.contains("port 70000 is out of range (0–65535)"),
            "{message}"
        );
        let message = error_text("[[camera]]\nname = \"a\"\nquality = 0\n");
        assert!(message.contains("out of range"), "{message}");
        assert!(message.contains("camera[0].quality"), "{message}");
    }

    #[test]
    fn the_budget_and_its_floors() {
        let config = parse("[[camera]]\nname = \"a\"\n").expect("valid");
        assert_eq!(config.server.max_mbit, DEFAULT_MAX_MBIT);
        let camera = &config.cameras[0];
        assert_eq!(
            (camera.weight, camera.min_quality, camera.min_fps),
            (1.0, 20, 5)
        );
        let config = parse(
            "[server]\nmax_mbit = 0\n[[camera]]\nname = \"a\"\nweight = 2.5\n\
             min_quality = 30\nmin_fps = 10\nmin_width = 160\nmin_height = 120\n",
        )
        .expect("valid");
        assert_eq!(config.server.max_mbit, 0.0);
        let camera = &config.cameras[0];
        assert_eq!(
            (camera.weight, camera.min_quality, camera.min_fps),
            (2.5, 30, 10)
        );
        assert_eq!(camera.min_size, (160, 120));
        let message = error_text("[[camera]]\nname = \"a\"\nmin_width = 8\n");
        assert!(
            message.contains("camera[0].min_width") && message.contains("line 3"),
            "{message}"
        );
        let message = error_text("[server]\nmax_mbit = -1\n[[camera]]\nname = \"a\"\n");
        assert!(message.contains("server.max_mbit"), "{message}");
        let message = error_text("[[camera]]\nname = \"a\"\nweight = 0\n");
        assert!(
            message.contains("camera[0].weight") && message.contains("more than 0"),
            "{message}"
        );
        let message = error_text("[[camera]]\nname = \"a\"\nmin_fps = 0\n");
        assert!(message.contains("camera[0].min_fps"), "{message}");
    }

    #[test]
    fn match_tables_take_the_run_time_settings_with_their_ranges() {
        let config = parse(
            "[server]\nmax_mbit = 4\n[server.match]\nmax_mbit = 2.5\n\
             [[camera]]\nname = \"front\"\nfps = 30\n[camera.match]\nfps = 10\nquality = 30\n\
             [[camera]]\nname = \"back\"\n",
        )
        .expect("valid");
        assert_eq!(config.server.in_match.get("max_mbit"), Some(2.5));
        let front = &config.cameras[0].in_match;
        assert_eq!(
            (front.get("fps"), front.get("quality")),
            (Some(10.0), Some(30.0))
        );
        assert!(config.cameras[1].in_match.is_empty());
        let cases = [
            (
                "[[camera]]\nname = \"a\"\n[camera.match]\nfps = 0\n",
                "line 4",
                "key `camera[0].match.fps`",
                "fps 0 is out of range (1–120)",
            ),
            (
                "[[camera]]\nname = \"a\"\n[camera.match]\nquality = 30\nwidth = 320\n",
                "line 5",
                "key `camera[0].match.width`",
                "[camera.match] cannot set `width`: it takes fps, quality",
            ),
            (
                "[[camera]]\nname = \"a\"\n[camera.match]\nquality = \"low\"\n",
                "line 4",
                "key `camera[0].match.quality`",
                "expected an integer",
            ),
            (
                "[server.match]\nmax_mbit = -2\n[[camera]]\nname = \"a\"\n",
                "line 2",
                "key `server.match.max_mbit`",
                "max_mbit -2 is out of range (0–10000)",
            ),
            (
                "[server.match]\nport = 1182\n[[camera]]\nname = \"a\"\n",
                "line 2",
                "key `server.match.port`",
                "[server.match] cannot set `port`: it takes max_mbit",
            ),
        ];
        for (text, line, key, reason) in cases {
            let message = error_text(text);
            for part in [line, key, reason] {
                assert!(message.contains(part), "{text:?}: {message}");
            }
        }
    }

    #[test]
    fn duplicate_names_are_refused_at_the_second() {
        let message = error_text("[[camera]]\nname = \"a\"\n[[camera]]\nname = \"a\"\n");
        assert!(message.contains("line 4"), "{message}");
        assert!(message.contains("duplicate camera name"), "{message}");
    }

    #[test]
    fn bad_names_and_sources_are_refused() {
        assert!(error_text("[[camera]]\nname = \"my cam\"\n").contains("letters, digits"));
        assert!(error_text("[[camera]]\nname = \"stream\"\n").contains("reserved"));
        assert!(
            error_text("[[camera]]\nname = \"a\"\nsource = \"webcam\"\n")
                .contains("unknown source")
        );
    }

    #[test]
    fn each_camera_gets_its_own_control_lines_and_order() {
        // Camera 1 sets auto_exposure first; camera 2 sets the exposure first and the
        // mode after. Each keeps its own lines, so each gets its own order.
        let config = parse(
            "[[camera]]\nname = \"front\"\nsource = \"v4l2:/dev/video0\"\n[camera.controls]\n\
             auto_exposure = \"manual\"\nexposure_time_absolute = 20\n\
             [[camera]]\nname = \"back\"\nsource = \"v4l2:/dev/video1\"\n[camera.controls]\n\
             exposure_time_absolute = 30\nauto_exposure = \"manual\"\n",
        )
        .expect("valid");
        let placed = |camera: &CameraConfig| -> Vec<(String, usize)> {
            camera
                .controls
                .iter()
                .map(|c| (c.name.clone(), c.line))
                .collect()
        };
        assert_eq!(
            placed(&config.cameras[0]),
            [
                ("auto_exposure".to_owned(), 5),
                ("exposure_time_absolute".to_owned(), 6)
            ]
        );
        assert_eq!(
            placed(&config.cameras[1]),
            [
                ("exposure_time_absolute".to_owned(), 11),
                ("auto_exposure".to_owned(), 12)
            ]
        );
    }

    #[test]
    fn v4l2_cameras_take_controls_in_file_order() {
        let config = parse(
            "[[camera]]\nname = \"front\"\nsource = \"v4l2:/dev/video0\"\n[camera.controls]\nexposure_time_absolute = 20\nauto_exposure = \"manual\"\nhflip = true\n",
        )
        .expect("valid");
        let camera = &config.cameras[0];
        assert_eq!(
            camera.source,
            SourceSpec::V4l2(PathBuf::from("/dev/video0"))
        );
        let names: Vec<&str> = camera.controls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["exposure_time_absolute", "auto_exposure", "hflip"]);
        assert_eq!(camera.controls[0].line, 5);
        assert_eq!(
            camera.controls[1].value,
            ControlValue::Text("manual".into())
        );
        let message = error_text("[[camera]]\nname = \"a\"\n[camera.controls]\nbrightness = 1\n");
        assert!(message.contains("only applies to v4l2"), "{message}");
        let message = error_text(
            "[[camera]]\nname = \"a\"\nsource = \"v4l2:/dev/video0\"\n[camera.controls]\nbrightness = 1.5\n",
        );
        assert!(
            message.contains("camera[0].controls.brightness"),
            "{message}"
        );
        assert!(
            error_text("[[camera]]\nname = \"a\"\nsource = \"v4l2:video0\"\n")
                .contains("under /dev")
        );
    }

    #[test]
    fn cameras_may_have_ports_of_their_own() {
        let config = parse("[[camera]]\nname = \"a\"\nport = 1182\n[[camera]]\nname = \"b\"\n")
            .expect("valid");
        assert_eq!(config.cameras[0].port, Some(1182));
        assert_eq!(config.cameras[1].port, None);
        let message = error_text("[[camera]]\nname = \"a\"\nport = 1181\n");
        assert!(
            message.contains("camera[0].port") && message.contains("line 3"),
            "{message}"
        );
        let message = error_text(
            "[[camera]]\nname = \"a\"\nport = 1182\n[[camera]]\nname = \"b\"\nport = 1182\n",
        );
        assert!(message.contains("camera[1].port"), "{message}");
    }

    #[test]
    fn a_file_without_cameras_is_refused() {
        assert!(error_text("[server]\nport = 1181\n").contains("no camera configured"));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let message = error_text("[[camera]]\nname = \"a\n");
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn without_a_networktables_section_nt_is_off() {
        let config = parse("[[camera]]\nname = \"a\"\n").expect("valid");
        assert_eq!(config.networktables, None);
        assert_eq!(Config::embedded_default().networktables, None);
    }

    #[test]
    fn a_team_number_gives_the_roborio_address() {
        let config =
            parse("[networktables]\nteam = 1234\n[[camera]]\nname = \"a\"\n").expect("valid");
        let nt = config.networktables.expect("section");
        assert!(nt.enabled);
        assert_eq!(nt.client_name, "frcstream");
        assert_eq!(nt.server, NtServerSpec::Team(1234));
        assert_eq!(nt.server.address(), "10.12.34.2:5810");
        assert_eq!(NtServerSpec::Team(5).address(), "10.0.5.2:5810");
        assert_eq!(NtServerSpec::Team(254).address(), "10.2.54.2:5810");
        assert_eq!(NtServerSpec::Team(25599).address(), "10.255.99.2:5810");
    }

    #[test]
    fn a_server_address_client_name_and_switch() {
        let text = "[networktables]\nserver = \"localhost:5811\"\nclient_name = \"pi-front\"\n\
                    enabled = false\n[[camera]]\nname = \"a\"\n";
        let nt = parse(text).expect("valid").networktables.expect("section");
        assert!(!nt.enabled);
        assert_eq!(nt.client_name, "pi-front");
        assert_eq!(nt.server, NtServerSpec::Address("localhost:5811".into()));
        assert_eq!(nt.server.address(), "localhost:5811");
    }

    #[test]
    fn networktables_errors_name_line_and_key() {
        let camera = "[[camera]]\nname = \"a\"\n";
        let both = error_text(&format!(
            "[networktables]\nteam = 1234\nserver = \"10.0.0.2\"\n{camera}"
        ));
        assert!(both.contains("line 3"), "{both}");
        assert!(both.contains("networktables.server"), "{both}");
        assert!(both.contains("either `team` or `server`"), "{both}");

        let neither = error_text(&format!("{camera}\n[networktables]\nenabled = true\n"));
        assert!(neither.contains("line 4"), "{neither}");
        assert!(neither.contains("key `networktables`"), "{neither}");
        assert!(neither.contains("needs `team"), "{neither}");

        for team in ["0", "25600", "-1"] {
            let message = error_text(&format!("[networktables]\nteam = {team}\n{camera}"));
            assert!(message.contains("line 2"), "{message}");
            assert!(message.contains("networktables.team"), "{message}");
            assert!(message.contains("out of range (1–25599)"), "{message}");
        }
        let message = error_text(&format!("[networktables]\nteam = \"1234\"\n{camera}"));
        assert!(message.contains("networktables.team"), "{message}");

        let message = error_text(&format!("[networktables]\nserver = \"a b:1\"\n{camera}"));
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("networktables.server"), "{message}");

        let message = error_text(&format!(
            "[networktables]\nteam = 1\nclient_name = \"a@b\"\n{camera}"
        ));
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains("networktables.client_name"), "{message}");

        let message = error_text(&format!("[networktables]\nteam = 1\nteem = 2\n{camera}"));
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains("teem"), "{message}");
    }

    #[test]
    fn keys_are_as_written_and_types_are_named_as_toml_names_them() {
        let message =
            error_text("[[camera]]\nname = \"a\"\n[[camera]]\nname = \"b\"\nport = 1979-05-27\n");
        assert!(!message.contains("serde"), "{message}");
        assert!(message.contains("key `camera[1].port`"), "{message}");
        assert!(message.contains("line 5"), "{message}");
        assert!(
            message.contains("invalid type: a date, expected an integer"),
            "{message}"
        );
        let cases = [
            (
                "[[camera]]\nname = \"a\"\nfps = [1]\n",
                "an array, expected an integer",
            ),
            ("[[camera]]\nname = \"a\"\nfps = 1.5\n", "a float `1.5`"),
            (
                "[[camera]]\nname = \"a\"\nport = {a = 1}\n",
                "a table, expected an integer",
            ),
            (
                "[server]\nread_only = 07:32:00\n[[camera]]\nname = \"a\"\n",
                "a time, expected a boolean",
            ),
            (
                "[[camera]]\nname = \"a\"\nformat = 1979-05-27T07:32:00Z\n",
                "a date-time, expected a string",
            ),
            (
                "server = 5\n[[camera]]\nname = \"a\"\n",
                "an integer `5`, expected a table",
            ),
            ("[[camera]]\nname = 5\n", "key `camera[0].name`"),
            (
                "[networktables]\nteam = true\n[[camera]]\nname = \"a\"\n",
                "a boolean `true`, expected an integer",
            ),
        ];
        for (text, expected) in cases {
            let message = error_text(text);
            assert!(message.contains(expected), "{text:?}: {message}");
            assert!(!message.contains("$__"), "{message}");
        }
    }

    #[test]
    fn cameras_and_pixel_rates_are_bounded() {
        let many: String = (0..=MAX_CAMERAS)
            .map(|i| format!("[[camera]]\nname = \"c{i}\"\nwidth = 160\nheight = 120\n"))
            .collect();
        let message = error_text(&many);
        assert!(
            message.contains(&format!("key `camera[{MAX_CAMERAS}]`")),
            "{message}"
        );
        assert!(
            message.contains(&format!("line {}", 4 * MAX_CAMERAS + 2)),
            "{message}"
        );
        let huge = "[[camera]]\nname = \"a\"\nwidth = 4096\nheight = 4096\nfps = 120\n";
        let message = error_text(huge);
        assert!(
            message.contains("line 2, column 8, key `camera[0]`"),
            "{message}"
        );
        assert!(message.contains("per camera"), "{message}");
        let big = "[[camera]]\nname = \"a\"\nwidth = 1920\nheight = 1080\nfps = 60\n";
        parse(big).expect("1080p60 is allowed");
        let three = format!(
            "{big}{}{}",
            big.replace("\"a\"", "\"b\""),
            big.replace("\"a\"", "\"c\"")
        );
        let message = error_text(&three);
        assert!(message.contains("key `camera[2]`"), "{message}");
        assert!(message.contains("for all cameras"), "{message}");
    }

    #[test]
    fn only_a_regular_file_of_bounded_size_is_read() {
        let started = std::time::Instant::now();
        let message = Config::load(Path::new("/dev/zero"))
            .expect_err("not a file")
            .to_string();
        assert!(message.contains("not a regular file"), "{message}");
        let message = Config::load(Path::new("/tmp"))
            .expect_err("a directory")
            .to_string();
        assert!(message.contains("directory"), "{message}");
        let path = std::env::temp_dir().join(format!("frcstream-big-{}.toml", std::process::id()));
        std::fs::write(&path, vec![b'#'; MAX_CONFIG_BYTES + 1]).expect("write");
        let message = Config::load(&path).expect_err("too large").to_string();
        let _ = std::fs::remove_file(&path);
        assert!(message.contains("over 1048576 bytes"), "{message}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}

//! frcstream on NetworkTables: one thread that shows the cameras to dashboards and the
//! robot, and takes settings from them.
//!
//! For every camera `<name>` it publishes, through the crate's own [`NtClient`]:
//!
//! - `/CameraPublisher/<name>/` as cscore's CameraServer writes it, so Shuffleboard and
//!   Elastic list the camera: `source` (string, `cv:` for the software sources,
//!   `usb:<path>` for V4L2), `description` (string), `connected` (boolean, follows
//!   [`Camera::is_connected`]), `streams` (string[], see [`stream_urls`]), `mode` (string,
//!   `"640x480 YUYV 30 fps"`) and `modes` (string[]). All are normal (timestamped) writes,
//!   sent again whenever they change. For a camera with controls (V4L2), every control as
//!   cscore publishes it: `Property/<control>` (int, boolean or string, a default a dashboard
//!   may write) and `PropertyInfo/<control>/{min,max,step,default}` (int) and `.../choices`
//!   (string[] for menus), see [`property_topics`]; looked at once a second. A write to a
//!   `Property/` topic changes the control (validated like HTTP), or is refused and the
//!   value in force written back.
//! - Statistics under `/frcstream/<name>/`: `captured_fps`, `delivered_fps`,
//!   `mbit_per_second`, `latency_ms` (double; median capture-to-send latency),
//!   `quality_in_force`, `fps_in_force` and `budget_share_mbit` (the bandwidth budget's
//!   choice, `budget.rs`; double) and `clients`
//!   (int), looked at every 500 ms and sent only when they changed.
//! - Settings under `/frcstream/<name>/`: `fps` and `quality` (int, `retained`), written with
//!   timestamp 0 (a default) and subscribed to. A write by the robot or a dashboard goes
//!   through [`Settings`](crate::camera::Settings) validation: accepted, it changes the
//!   stream at once; refused (out of range, not an int), it costs one log line and the value
//!   in force is written back with a normal timestamp, which wins over the refused write. A
//!   setting changed anywhere else (HTTP, [`PushedStream::set_fps`](crate::PushedStream)) is
//!   noticed within 100 ms and published, so NetworkTables and HTTP never disagree.
//!
//! Because the settings are written as defaults, the robot's or a dashboard's value wins
//! and survives that client leaving; after a server restart frcstream sends the values in
//! force again (still as defaults). `retained` keeps them on the server while frcstream
//! itself is away, so a restarted frcstream picks up a dashboard's setting.
//!
//! The thread only reads the cameras' atomics and statistics and calls the NT client, whose
//! calls never wait for the network: it never blocks capture or HTTP.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use log::{debug, info, warn};
use serde_json::json;

use super::log_limit::RefusalLog;
use super::{NtClient, NtClientConfig, NtError, NtType, NtUpdate, NtValue};
use crate::camera::{Camera, SettingError};
use crate::config::{NetworkTablesConfig, SourceSpec};
use crate::stats::round2;

/// How often the camera's state (connected, description, mode, settings) is compared with
/// what was published.
const STATE_INTERVAL: Duration = Duration::from_millis(100);
/// How often statistics are published (when they changed). "A few times a second".
const STATS_INTERVAL: Duration = Duration::from_millis(500);
/// How often the machine's addresses are read again (a DHCP lease may come late).
const ADDRESS_INTERVAL: Duration = Duration::from_secs(5);
/// How often camera controls are read (each read is an ioctl per control).
const PROPERTY_INTERVAL: Duration = Duration::from_secs(1);

/// A camera as NetworkTables shows it: the camera, what cscore would call its source, and
/// where its stream is served.
pub struct NtCamera {
    pub camera: Arc<Camera>,
    /// The `source` value: `usb:/dev/video0`, `cv:`.
    pub source: String,
    /// The HTTP server of its stream.
    pub server: SocketAddr,
    /// The stream's path before `?action=stream`: `/` on a port of its own (cscore's URL
    /// exactly), `/<name>/` on the shared port.
    pub path: String,
}

impl NtCamera {
    /// `shared` is the main server; `own` the camera's own server, if it has a port of its own.
    pub fn new(
        camera: Arc<Camera>,
        spec: &SourceSpec,
        shared: SocketAddr,
        own: Option<SocketAddr>,
    ) -> NtCamera {
        let (server, path) = match own {
            Some(own) => (own, "/".to_owned()),
            None => (shared, format!("/{}/", camera.name)),
        };
        NtCamera {
            source: cscore_source(spec),
            camera,
            server,
            path,
        }
    }
}

/// cscore's `source` value for a camera's source: `usb:<path>` for a V4L2 camera, `cv:` for
/// frames made by software (cscore's `CvSource`).
pub fn cscore_source(spec: &SourceSpec) -> String {
    match spec {
        SourceSpec::V4l2(path) => format!("usb:{}", path.display()),
        SourceSpec::TestPattern | SourceSpec::JpegFolder(_) | SourceSpec::Pushed => {
            "cv:".to_owned()
        }
    }
}

/// The URLs a dashboard can stream from, as `streams` lists them:
/// `mjpg:http://<host>:<port><path>?action=stream`, one per host of `hosts` (see
/// [`Advertised::hosts`]). When the server is bound to one address and the hosts were not
/// set in the config, only that address.
pub fn stream_urls(server: SocketAddr, path: &str, hosts: &Advertised) -> Vec<String> {
    let port = server.port();
    let url = |host: &str| format!("mjpg:http://{host}:{port}{path}?action=stream");
    match (server.ip(), hosts) {
        (_, Advertised::Configured(hosts)) => hosts.iter().map(|h| url(h)).collect(),
        (IpAddr::V4(ip), _) if !ip.is_unspecified() => vec![url(&ip.to_string())],
        (IpAddr::V6(ip), _) if !ip.is_unspecified() => vec![url(&format!("[{ip}]"))],
        (_, Advertised::Found(hosts)) => hosts.iter().map(|h| url(h)).collect(),
    }
}

/// The hosts `streams` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advertised {
    /// `[networktables] advertise`, as written.
    Configured(Vec<String>),
    /// This machine's reachable addresses ([`crate::host_addresses::advertised_addresses`]), then
    /// `<hostname>.local`.
    Found(Vec<String>),
}

impl Advertised {
    /// The configured hosts, or the ones found on this machine now.
    pub fn hosts(configured: Option<&[String]>, robot_network: Option<[u8; 3]>) -> Advertised {
        match configured {
            Some(hosts) => Advertised::Configured(hosts.to_vec()),
            None => Advertised::found(
                &crate::host_addresses::interface_addresses(),
                robot_network,
                crate::host_addresses::hostname().as_deref(),
            ),
        }
    }

    fn found(
        addresses: &[crate::host_addresses::InterfaceAddress],
        robot_network: Option<[u8; 3]>,
        hostname: Option<&str>,
    ) -> Advertised {
        let mut hosts: Vec<String> =
            crate::host_addresses::advertised_addresses(addresses, robot_network)
                .iter()
                .map(Ipv4Addr::to_string)
                .collect();
        // The mDNS name is the short host name; last, as mDNS often fails on the field.
        if let Some(short) = hostname.and_then(|h| h.split('.').next()) {
            if !short.is_empty() {
                hosts.push(format!("{short}.local"));
            }
        }
        Advertised::Found(hosts)
    }
}

/// The NetworkTables thread and its client; see the [module docs](self). Dropping it stops
/// both (the server then removes frcstream's topics, except the retained settings).
pub struct CameraPublisher {
    client: Arc<NtClient>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl CameraPublisher {
    /// Starts the NT client and the publisher thread. Returns at once: the client connects
    /// (and reconnects) in the background; until then nothing waits for it.
    pub fn start(
        config: &NetworkTablesConfig,
        cameras: Vec<NtCamera>,
    ) -> Result<CameraPublisher, NtError> {
        let client = Arc::new(NtClient::start(NtClientConfig::new(
            config.server.address(),
            config.client_name.clone(),
        ))?);
        info!(
            "NetworkTables: publishing {} camera(s) to {} as \"{}\"",
            cameras.len(),
            config.server,
            config.client_name
        );
        let (stop, stop_rx) = crossbeam_channel::bounded(0);
        let worker = Worker::new(
            Arc::clone(&client),
            cameras,
            config.advertise.clone(),
            config.server.robot_network(),
        );
        let thread = std::thread::Builder::new()
            .name("nt-publisher".into())
            .spawn(move || worker.run(&stop_rx))
            .map_err(NtError::Spawn)?;
        Ok(CameraPublisher {
            client,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Whether the connection to the NT server is up.
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// Stops the thread and closes the connection (the same as dropping it).
    pub fn stop(self) {}
}

impl Drop for CameraPublisher {
    fn drop(&mut self) {
        // Closing the channel wakes the thread at once.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("NetworkTables publisher thread panicked");
            }
        }
        // `client` drops after this, the last reference: it closes the connection.
    }
}

/// A setting the robot may change over NetworkTables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    Fps,
    Quality,
}

impl Setting {
    fn name(self) -> &'static str {
        match self {
            Setting::Fps => "fps",
            Setting::Quality => "quality",
        }
    }

    fn get(self, camera: &Camera) -> i64 {
        match self {
            Setting::Fps => i64::from(camera.settings.fps()),
            Setting::Quality => i64::from(camera.settings.quality()),
        }
    }

    fn set(self, camera: &Camera, value: i64) -> Result<(), SettingError> {
        match self {
            Setting::Fps => camera.set_fps(value),
            Setting::Quality => camera.set_quality(value),
        }
    }
}

/// Why a value written to a setting topic is not taken.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum TopicWriteError {
    #[error("{0}")]
    Invalid(#[from] SettingError),
    #[error("a {0} value, not an int")]
    WrongType(NtType),
}

/// Checks a value written to `setting` and applies it to `camera`.
fn apply_setting(
    camera: &Camera,
    setting: Setting,
    value: &NtValue,
) -> Result<i64, TopicWriteError> {
    match value {
        NtValue::Int(v) => {
            setting.set(camera, *v)?;
            Ok(*v)
        }
        other => Err(TopicWriteError::WrongType(other.nt_type())),
    }
}

/// A value for a log line: `-3`, `"fast"`, cut to a readable length.
fn show(value: &NtValue) -> String {
    super::log_limit::shown(value)
}

struct SettingTopic {
    setting: Setting,
    topic: String,
    /// The value NetworkTables holds as far as this thread knows.
    published: i64,
    /// Refused values, so a dashboard repeating or flooding them warns once a second.
    last_refused: super::log_limit::RefusalLog,
}

/// Statistics topics, in the order of [`CameraTopics::stats_values`].
const DOUBLE_STATS: [&str; 7] = [
    "captured_fps",
    "delivered_fps",
    "mbit_per_second",
    "latency_ms",
    // The bandwidth budget's choice (`budget.rs`): what is in force, and the share.
    "quality_in_force",
    "fps_in_force",
    "budget_share_mbit",
];

/// One camera's topics and what was last published on them.
struct CameraTopics {
    camera: Arc<Camera>,
    source: String,
    server: SocketAddr,
    path: String,
    /// `/CameraPublisher/<name>/`
    root: String,
    /// `/frcstream/<name>/`
    own: String,
    connected: Option<bool>,
    description: Option<String>,
    mode: Option<String>,
    streams: Option<Vec<String>>,
    stats: [Option<f64>; DOUBLE_STATS.len()],
    clients: Option<i64>,
    settings: [SettingTopic; 2],
    /// Property topics published so far, by topic name.
    properties: std::collections::HashMap<String, PropertyState>,
}

/// A published property topic and the value it holds as far as this thread knows.
struct PropertyState {
    /// The control it shows.
    control: String,
    /// Whether it is the `Property/<name>` value topic (dashboards write those).
    is_value: bool,
    value: NtValue,
    /// Refused writes, so a dashboard repeating or flooding them warns once a second.
    last_refused: super::log_limit::RefusalLog,
}

impl CameraTopics {
    fn new(camera: NtCamera) -> CameraTopics {
        let name = camera.camera.name.clone();
        let own = format!("/frcstream/{name}/");
        let setting = |setting: Setting| SettingTopic {
            setting,
            topic: format!("{own}{}", setting.name()),
            published: setting.get(&camera.camera),
            last_refused: Default::default(),
        };
        CameraTopics {
            settings: [setting(Setting::Fps), setting(Setting::Quality)],
            root: format!("/CameraPublisher/{name}/"),
            own,
            camera: camera.camera,
            source: camera.source,
            server: camera.server,
            path: camera.path,
            connected: None,
            description: None,
            mode: None,
            streams: None,
            stats: [None; DOUBLE_STATS.len()],
            clients: None,
            properties: std::collections::HashMap::new(),
        }
    }

    fn stats_values(&self) -> [f64; DOUBLE_STATS.len()] {
        let camera = &self.camera;
        let stats = &camera.stats;
        let governor = camera
            .governor
            .report(camera.settings.quality(), camera.settings.fps());
        [
            round2(stats.captured.rate()),
            round2(stats.delivered.rate()),
            round2(stats.bytes_sent.rate() * 8.0 / 1e6),
            stats.latency.summary().p50_ms,
            f64::from(governor.quality),
            f64::from(governor.fps),
            governor.share_mbit,
        ]
    }
}

struct Worker {
    nt: Arc<NtClient>,
    cameras: Vec<CameraTopics>,
    /// `[networktables] advertise`, if set.
    configured_hosts: Option<Vec<String>>,
    robot_network: Option<[u8; 3]>,
    /// What `streams` lists, refreshed as interfaces come and go.
    hosts: Advertised,
}

impl Worker {
    fn new(
        nt: Arc<NtClient>,
        cameras: Vec<NtCamera>,
        configured_hosts: Option<Vec<String>>,
        robot_network: Option<[u8; 3]>,
    ) -> Worker {
        let hosts = Advertised::hosts(configured_hosts.as_deref(), robot_network);
        match &hosts {
            Advertised::Configured(list) => info!(
                "NetworkTables: streams advertised at {} ([networktables] advertise)",
                list.join(", ")
            ),
            Advertised::Found(list) => {
                info!("NetworkTables: streams advertised at {}", list.join(", "))
            }
        }
        Worker {
            nt,
            cameras: cameras.into_iter().map(CameraTopics::new).collect(),
            configured_hosts,
            robot_network,
            hosts,
        }
    }

    fn run(mut self, stop: &Receiver<()>) {
        let updates = self.publish_all();
        let now = Instant::now();
        let (mut next_state, mut next_stats, mut next_properties) = (now, now, now);
        let mut next_addresses = now + ADDRESS_INTERVAL;
        loop {
            let now = Instant::now();
            if now >= next_state {
                self.refresh_state();
                next_state = now + STATE_INTERVAL;
            }
            if now >= next_stats {
                self.refresh_stats();
                next_stats = now + STATS_INTERVAL;
            }
            if now >= next_properties {
                self.refresh_properties();
                next_properties = now + PROPERTY_INTERVAL;
            }
            if now >= next_addresses {
                self.hosts =
                    Advertised::hosts(self.configured_hosts.as_deref(), self.robot_network);
                next_addresses = now + ADDRESS_INTERVAL;
            }
            let wait = next_state
                .min(next_stats)
                .min(next_properties)
                .min(next_addresses)
                .saturating_duration_since(Instant::now());
            crossbeam_channel::select! {
                recv(stop) -> _ => break,
                recv(updates) -> update => match update {
                    Ok(update) => self.on_update(update),
                    Err(_) => break, // the client is gone
                },
                default(wait) => {}
            }
        }
    }

    /// Publishes every topic and subscribes to the settings.
    fn publish_all(&mut self) -> Receiver<NtUpdate> {
        let none = serde_json::Value::Null;
        let mut setting_topics = Vec::new();
        for cam in &self.cameras {
            for (key, ty) in [
                ("source", NtType::String),
                ("description", NtType::String),
                ("connected", NtType::Boolean),
                ("streams", NtType::StringArray),
                ("mode", NtType::String),
                ("modes", NtType::StringArray),
            ] {
                self.publish(&format!("{}{key}", cam.root), ty, none.clone());
            }
            set(
                &self.nt,
                &format!("{}source", cam.root),
                cam.source.as_str(),
            );
            for key in DOUBLE_STATS {
                self.publish(&format!("{}{key}", cam.own), NtType::Double, none.clone());
            }
            self.publish(&format!("{}clients", cam.own), NtType::Int, none.clone());
            for st in &cam.settings {
                self.publish(&st.topic, NtType::Int, json!({"retained": true}));
                if let Err(e) = self.nt.set_default(&st.topic, st.published) {
                    warn!("NetworkTables: cannot set {}: {e}", st.topic);
                }
                setting_topics.push(st.topic.clone());
            }
            setting_topics.push(format!("{}Property/", cam.root));
            setting_topics.push(format!("{}RawProperty/", cam.root));
        }
        let prefixes: Vec<&str> = setting_topics.iter().map(String::as_str).collect();
        self.nt.subscribe(&prefixes)
    }

    fn publish(&self, topic: &str, ty: NtType, properties: serde_json::Value) {
        if let Err(e) = self.nt.publish(topic, ty, properties) {
            warn!("NetworkTables: cannot publish {topic}: {e}");
        }
    }

    /// Publishes what changed in each camera's state and settings.
    fn refresh_state(&mut self) {
        let nt = &*self.nt;
        for cam in &mut self.cameras {
            let camera = &cam.camera;
            let root = &cam.root;
            let connected = camera.is_connected();
            if cam.connected != Some(connected) {
                set(nt, &format!("{root}connected"), connected);
                cam.connected = Some(connected);
            }
            let description = camera.description();
            if cam.description.as_ref() != Some(&description) {
                set(nt, &format!("{root}description"), description.as_str());
                cam.description = Some(description);
            }
            let mode = camera.mode().to_string();
            if cam.mode.as_ref() != Some(&mode) {
                set(nt, &format!("{root}mode"), mode.as_str());
                // Sources offer one mode today; V4L2 will list what the device offers.
                set(nt, &format!("{root}modes"), vec![mode.clone()]);
                cam.mode = Some(mode);
            }
            let streams = stream_urls(cam.server, &cam.path, &self.hosts);
            if cam.streams.as_ref() != Some(&streams) {
                set(nt, &format!("{root}streams"), streams.clone());
                cam.streams = Some(streams);
            }
            for st in &mut cam.settings {
                let now = st.setting.get(camera);
                if now != st.published {
                    debug!(
                        "camera \"{}\": {} is now {now}, publishing it",
                        camera.name,
                        st.setting.name()
                    );
                    set(nt, &st.topic, now);
                    st.published = now;
                }
            }
        }
    }

    /// Publishes the statistics that changed.
    fn refresh_stats(&mut self) {
        let nt = &*self.nt;
        for cam in &mut self.cameras {
            let values = cam.stats_values();
            for ((key, last), value) in DOUBLE_STATS.iter().zip(&mut cam.stats).zip(values) {
                if *last != Some(value) {
                    set(nt, &format!("{}{key}", cam.own), value);
                    *last = Some(value);
                }
            }
            let clients = cam.camera.stats.client_count() as i64;
            if cam.clients != Some(clients) {
                set(nt, &format!("{}clients", cam.own), clients);
                cam.clients = Some(clients);
            }
        }
    }

    /// Publishes each camera's controls, and what changed in them since.
    fn refresh_properties(&mut self) {
        let nt = &*self.nt;
        for cam in &mut self.cameras {
            let controls = cam.camera.controls.list();
            if controls.is_empty() {
                continue;
            }
            let descriptions: Vec<PropertyDescription> =
                controls.iter().filter_map(describe_control).collect();
            for topic in property_topics(&cam.camera.name, &descriptions) {
                let is_value = topic.write == TopicWrite::Default;
                match cam.properties.get_mut(&topic.topic) {
                    None => {
                        if let Err(e) = nt.publish(&topic.topic, topic.ty, serde_json::Value::Null)
                        {
                            warn!("NetworkTables: cannot publish {}: {e}", topic.topic);
                            continue;
                        }
                        if is_value {
                            if let Err(e) = nt.set_default(&topic.topic, topic.value.clone()) {
                                warn!("NetworkTables: cannot set {}: {e}", topic.topic);
                            }
                        } else {
                            set(nt, &topic.topic, topic.value.clone());
                        }
                        let control = property_control_name(&topic.topic);
                        cam.properties.insert(
                            topic.topic,
                            PropertyState {
                                control,
                                is_value,
                                value: topic.value,
                                last_refused: Default::default(),
                            },
                        );
                    }
                    Some(state) if state.value != topic.value => {
                        // Changed elsewhere (HTTP, the config after a reconnect): publish it.
                        set(nt, &topic.topic, topic.value.clone());
                        state.value = topic.value;
                    }
                    Some(_) => {}
                }
            }
        }
    }

    /// A value a dashboard wrote to a `Property/<control>` topic.
    fn on_property_update(&mut self, update: &NtUpdate) -> bool {
        let nt = &*self.nt;
        let Some((camera, state)) = self.cameras.iter_mut().find_map(|cam| {
            let camera = &cam.camera;
            cam.properties
                .get_mut(&update.topic)
                .filter(|state| state.is_value)
                .map(|state| (camera, state))
        }) else {
            return false;
        };
        if update.value.nt_type() == state.value.nt_type()
            && nt.value(&update.topic).as_ref() != Some(&update.value)
        {
            return true; // older than a value this client wrote since
        }
        if update.value == state.value {
            return true;
        }
        let refused = match control_value(&update.value) {
            Some(value) => camera
                .change(&[(state.control.clone(), value)])
                .err()
                .map(|e| e.to_string()),
            None => Some(format!(
                "a {:?} value is not a control value",
                update.value.nt_type()
            )),
        };
        match refused {
            None => {
                info!(
                    "camera \"{}\": {} set to {} over NetworkTables",
                    camera.name,
                    state.control,
                    show(&update.value)
                );
                state.value = update.value.clone();
                state.last_refused.clear();
            }
            Some(reason) => {
                let line = format!(
                    "camera \"{}\": refused {} = {} from NetworkTables: {reason}",
                    camera.name,
                    update.topic,
                    show(&update.value)
                );
                match state.last_refused.refused(&update.value, Instant::now()) {
                    Some(unwarned) => warn!("{line}{}", RefusalLog::suffix(unwarned)),
                    None => debug!("{line} (again)"),
                }
                set(nt, &update.topic, state.value.clone());
            }
        }
        true
    }

    /// A value the robot or a dashboard wrote to a setting.
    fn on_update(&mut self, update: NtUpdate) {
        if self.on_property_update(&update) {
            return;
        }
        let nt = &*self.nt;
        let Some((camera, st)) = self.cameras.iter_mut().find_map(|cam| {
            let camera = &cam.camera;
            cam.settings
                .iter_mut()
                .find(|st| st.topic == update.topic)
                .map(|st| (camera, st))
        }) else {
            return; // a prefix match of another topic
        };
        // An update that already lost against a newer write of ours (a setting changed over
        // HTTP while reconnecting) is not the topic's value any more: the newer one stands.
        if matches!(update.value, NtValue::Int(_))
            && nt.value(&update.topic).as_ref() != Some(&update.value)
        {
            debug!(
                "NetworkTables: {} = {} is older than this client's value; ignored",
                update.topic,
                show(&update.value)
            );
            return;
        }
        let in_force = st.setting.get(camera);
        match apply_setting(camera, st.setting, &update.value) {
            Ok(value) => {
                st.published = value;
                st.last_refused.clear();
                if value != in_force {
                    info!(
                        "camera \"{}\": {} {in_force} -> {value} (set over NetworkTables)",
                        camera.name,
                        st.setting.name()
                    );
                }
            }
            Err(refusal) => {
                let line = format!(
                    "camera \"{}\": refused {} = {} from NetworkTables: {refusal}; {} stays {in_force}",
                    camera.name,
                    update.topic,
                    show(&update.value),
                    st.setting.name()
                );
                match st.last_refused.refused(&update.value, Instant::now()) {
                    Some(unwarned) => warn!("{line}{}", RefusalLog::suffix(unwarned)),
                    None => debug!("{line} (again)"),
                }
                // A normal, timestamped write: newer than the refused one, so it wins.
                set(nt, &update.topic, in_force);
                st.published = in_force;
            }
        }
    }
}

/// A normal write; failing means a topic this module did not publish (a bug), logged.
fn set(nt: &NtClient, topic: &str, value: impl Into<NtValue>) {
    if let Err(e) = nt.set(topic, value) {
        warn!("NetworkTables: cannot set {topic}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Camera controls as cscore's properties

/// The control a property topic belongs to: the last path segment of `Property/<name>`,
/// the one before the last of `PropertyInfo/<name>/<key>`.
fn property_control_name(topic: &str) -> String {
    let mut parts = topic.rsplit('/');
    let last = parts.next().unwrap_or_default();
    let parent = parts.next().unwrap_or_default();
    if parent.ends_with("Property") {
        last.to_owned()
    } else {
        parent.to_owned()
    }
}

/// A control as cscore's property: buttons have none.
fn describe_control(control: &crate::controls::Control) -> Option<PropertyDescription> {
    use crate::controls::ControlKind;
    let kind = match control.kind {
        ControlKind::Button => return None,
        ControlKind::Boolean => PropertyKind::Boolean {
            value: control.value != 0,
        },
        ControlKind::Integer => PropertyKind::Integer {
            value: control.value,
            min: control.min,
            max: control.max,
            step: control.step,
            default: control.default,
        },
        ControlKind::Menu | ControlKind::IntegerMenu => {
            // cscore lists choices by value, with "" where the driver has no entry.
            let last = control
                .menu
                .iter()
                .map(|(v, _)| *v)
                .max()
                .unwrap_or(0)
                .clamp(0, 255);
            let choices = (0..=last)
                .map(|v| {
                    control
                        .menu
                        .iter()
                        .find(|(value, _)| *value == v)
                        .map(|(_, name)| name.clone())
                        .unwrap_or_default()
                })
                .collect();
            PropertyKind::Enum {
                value: control.value,
                min: control.min,
                max: control.max,
                step: control.step,
                default: control.default,
                choices,
            }
        }
    };
    Some(PropertyDescription {
        name: control.name.clone(),
        kind,
    })
}

/// An NT value as a control value: ints, booleans, strings (menu entries), and doubles that
/// are whole numbers (some dashboards send numbers as doubles).
fn control_value(value: &NtValue) -> Option<crate::controls::ControlValue> {
    use crate::controls::ControlValue;
    match value {
        NtValue::Int(v) => Some(ControlValue::Int(*v)),
        NtValue::Boolean(v) => Some(ControlValue::Bool(*v)),
        NtValue::String(v) => Some(ControlValue::Text(v.clone())),
        NtValue::Double(v) if v.fract() == 0.0 && v.abs() < 1e15 => {
            Some(ControlValue::Int(*v as i64))
        }
        _ => None,
    }
}

/// A camera control as a dashboard sees it, for `Property/<name>` and
/// `PropertyInfo/<name>/...`. A [`Control`](crate::controls::Control) maps to it by kind:
/// `Integer` to [`PropertyKind::Integer`], `Boolean` to [`PropertyKind::Boolean`], `Menu` and
/// `IntegerMenu` to [`PropertyKind::Enum`] (choices indexed by value, `""` for gaps, as
/// cscore lists them), and `Button` to nothing (cscore has no button property).
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyDescription {
    /// The control's name, e.g. `brightness`; cscore names V4L2 controls in lower case
    /// with `_`, and prefixes the ones it hides with `raw_`.
    pub name: String,
    pub kind: PropertyKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PropertyKind {
    Boolean {
        value: bool,
    },
    Integer {
        value: i64,
        min: i64,
        max: i64,
        step: i64,
        default: i64,
    },
    /// A menu: `value` is the index into `choices`.
    Enum {
        value: i64,
        min: i64,
        max: i64,
        step: i64,
        default: i64,
        choices: Vec<String>,
    },
    String {
        value: String,
    },
}

/// How cscore writes a property topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicWrite {
    /// `setDefault` (timestamp 0): the value a dashboard may change.
    Default,
    /// A normal write: information.
    Set,
}

/// One topic of a property.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyTopic {
    pub topic: String,
    pub ty: NtType,
    pub value: NtValue,
    pub write: TopicWrite,
}

/// The topics cscore's CameraServer (2025+, NT4) publishes for a camera's properties:
/// `Property/<name>` (boolean, int or string; a default, so dashboards can write it) and for
/// integers and menus `PropertyInfo/<name>/{min,max,step,default}` (int) and for menus
/// `PropertyInfo/<name>/choices` (string[]). Names starting with `raw_` go under
/// `RawProperty/` and `RawPropertyInfo/` instead.
///
/// The publisher writes each as `write` says, subscribes to the `Property/` ones, and
/// treats a write like `fps`: validated, applied, or refused and written back.
pub fn property_topics(camera: &str, properties: &[PropertyDescription]) -> Vec<PropertyTopic> {
    let mut topics = Vec::new();
    for property in properties {
        let (value_dir, info_dir) = if property.name.starts_with("raw_") {
            ("RawProperty", "RawPropertyInfo")
        } else {
            ("Property", "PropertyInfo")
        };
        let value_topic = format!("/CameraPublisher/{camera}/{value_dir}/{}", property.name);
        let info = |key: &str| {
            format!(
                "/CameraPublisher/{camera}/{info_dir}/{}/{key}",
                property.name
            )
        };
        let mut push = |topic: String, ty: NtType, value: NtValue, write: TopicWrite| {
            topics.push(PropertyTopic {
                topic,
                ty,
                value,
                write,
            })
        };
        match &property.kind {
            PropertyKind::Boolean { value } => push(
                value_topic,
                NtType::Boolean,
                (*value).into(),
                TopicWrite::Default,
            ),
            PropertyKind::String { value } => push(
                value_topic,
                NtType::String,
                value.as_str().into(),
                TopicWrite::Default,
            ),
            PropertyKind::Integer {
                value,
                min,
                max,
                step,
                default,
            }
            | PropertyKind::Enum {
                value,
                min,
                max,
                step,
                default,
                ..
            } => {
                push(
                    value_topic,
                    NtType::Int,
                    (*value).into(),
                    TopicWrite::Default,
                );
                for (key, v) in [
                    ("min", min),
                    ("max", max),
                    ("step", step),
                    ("default", default),
                ] {
                    push(info(key), NtType::Int, (*v).into(), TopicWrite::Set);
                }
                if let PropertyKind::Enum { choices, .. } = &property.kind {
                    push(
                        info("choices"),
                        NtType::StringArray,
                        choices.clone().into(),
                        TopicWrite::Set,
                    );
                }
            }
        }
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CameraConfig;

    fn found(addresses: &[(&str, [u8; 4])], hostname: Option<&str>) -> Advertised {
        let addresses: Vec<crate::host_addresses::InterfaceAddress> = addresses
            .iter()
            .map(
                |&(interface, address)| crate::host_addresses::InterfaceAddress {
                    interface: interface.to_owned(),
                    address: address.into(),
                    has_device: true,
                },
            )
            .collect();
        Advertised::found(&addresses, Some([10, 12, 34]), hostname)
    }

    #[test]
    fn streams_list_reachable_addresses_robot_network_first_and_mdns_last() {
        let any: SocketAddr = "0.0.0.0:1181".parse().expect("addr");
        let hosts = found(
            &[
                ("wlan0", [172, 22, 11, 2]),
                ("docker0", [172, 17, 0, 1]),
                ("eth0", [10, 12, 34, 11]),
                ("eth1", [169, 254, 3, 4]),
            ],
            Some("frcpi"),
        );
        assert_eq!(
            stream_urls(any, "/front/", &hosts),
            vec![
                "mjpg:http://10.12.34.11:1181/front/?action=stream",
                "mjpg:http://172.22.11.2:1181/front/?action=stream",
                "mjpg:http://frcpi.local:1181/front/?action=stream",
            ]
        );
        assert_eq!(
            stream_urls(any, "/front/", &found(&[], Some("frcpi.lan"))),
            vec!["mjpg:http://frcpi.local:1181/front/?action=stream"]
        );
        assert!(stream_urls(any, "/front/", &found(&[], None)).is_empty());
        // A camera with a port of its own: cscore's URL exactly.
        let own: SocketAddr = "0.0.0.0:1182".parse().expect("addr");
        assert_eq!(
            stream_urls(
                own,
                "/",
                &found(&[("eth0", [10, 12, 34, 11])], Some("frcpi"))
            ),
            vec![
                "mjpg:http://10.12.34.11:1182/?action=stream",
                "mjpg:http://frcpi.local:1182/?action=stream",
            ]
        );
    }

    #[test]
    fn configured_hosts_are_advertised_as_written() {
        let any: SocketAddr = "0.0.0.0:1181".parse().expect("addr");
        let hosts = Advertised::hosts(
            Some(&["frcvision.local".to_owned(), "10.12.34.11".to_owned()]),
            None,
        );
        assert_eq!(
            stream_urls(any, "/cam/", &hosts),
            vec![
                "mjpg:http://frcvision.local:1181/cam/?action=stream",
                "mjpg:http://10.12.34.11:1181/cam/?action=stream",
            ]
        );
        let bound: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        assert_eq!(
            stream_urls(bound, "/cam/", &hosts)[0],
            "mjpg:http://frcvision.local:40000/cam/?action=stream"
        );
    }

    #[test]
    fn streams_of_a_bound_server_name_only_its_address() {
        let hosts = found(&[("eth0", [10, 12, 34, 11])], Some("frcpi"));
        let bound: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        assert_eq!(
            stream_urls(bound, "/cam/", &hosts),
            vec!["mjpg:http://127.0.0.1:40000/cam/?action=stream"]
        );
        let bound: SocketAddr = "[::1]:1181".parse().expect("addr");
        assert_eq!(
            stream_urls(bound, "/cam/", &hosts),
            vec!["mjpg:http://[::1]:1181/cam/?action=stream"]
        );
    }

    #[test]
    fn sources_are_named_as_cscore_names_them() {
        assert_eq!(cscore_source(&SourceSpec::TestPattern), "cv:");
        assert_eq!(cscore_source(&SourceSpec::Pushed), "cv:");
        let usb = SourceSpec::V4l2("/dev/v4l/by-id/usb-cam-video-index0".into());
        assert_eq!(
            cscore_source(&usb),
            "usb:/dev/v4l/by-id/usb-cam-video-index0"
        );
    }

    #[test]
    fn a_camera_streams_from_its_own_port_or_under_its_name() {
        let camera = Arc::new(Camera::new(&CameraConfig::embedded_default()));
        let shared: SocketAddr = "0.0.0.0:1181".parse().expect("addr");
        let own: SocketAddr = "0.0.0.0:1182".parse().expect("addr");
        let spec = SourceSpec::TestPattern;
        let on_shared = NtCamera::new(Arc::clone(&camera), &spec, shared, None);
        assert_eq!(on_shared.server, shared);
        assert_eq!(on_shared.path, format!("/{}/", camera.name));
        let on_own = NtCamera::new(camera, &spec, shared, Some(own));
        assert_eq!((on_own.server, on_own.path.as_str()), (own, "/"));
    }

    #[test]
    fn settings_take_ints_in_range_only() {
        let camera = Camera::new(&CameraConfig::embedded_default());
        assert_eq!(
            apply_setting(&camera, Setting::Fps, &NtValue::Int(5)),
            Ok(5)
        );
        assert_eq!(camera.settings.fps(), 5);
        for bad in [
            NtValue::Int(-3),
            NtValue::Int(0),
            NtValue::Int(121),
            NtValue::String("fast".into()),
            NtValue::Double(10.0),
            NtValue::Boolean(true),
        ] {
            let refusal = apply_setting(&camera, Setting::Fps, &bad).expect_err("refused");
            assert!(!refusal.to_string().is_empty());
        }
        assert_eq!(camera.settings.fps(), 5, "unchanged by refused values");
        assert_eq!(
            apply_setting(&camera, Setting::Fps, &NtValue::String("fast".into()))
                .expect_err("string")
                .to_string(),
            "a string value, not an int"
        );
        assert_eq!(
            apply_setting(&camera, Setting::Quality, &NtValue::Int(20)),
            Ok(20)
        );
        assert_eq!(camera.settings.quality(), 20);
        assert!(apply_setting(&camera, Setting::Quality, &NtValue::Int(101)).is_err());
        assert_eq!(show(&NtValue::String("fast".into())), "\"fast\"");
        assert_eq!(show(&NtValue::Int(-3)), "-3");
    }

    #[test]
    fn property_topics_name_their_control() {
        assert_eq!(
            property_control_name("/CameraPublisher/cam/Property/brightness"),
            "brightness"
        );
        assert_eq!(
            property_control_name("/CameraPublisher/cam/PropertyInfo/brightness/min"),
            "brightness"
        );
        assert_eq!(
            property_control_name("/CameraPublisher/cam/RawProperty/raw_x"),
            "raw_x"
        );
        assert_eq!(
            control_value(&NtValue::Double(12.0)),
            Some(crate::controls::ControlValue::Int(12))
        );
        assert_eq!(control_value(&NtValue::Double(12.5)), None);
        assert_eq!(control_value(&NtValue::StringArray(vec![])), None);
    }

    #[test]
    fn property_topics_are_cscores() {
        let properties = vec![
            PropertyDescription {
                name: "brightness".into(),
                kind: PropertyKind::Integer {
                    value: 50,
                    min: 0,
                    max: 100,
                    step: 1,
                    default: 50,
                },
            },
            PropertyDescription {
                name: "power_line_frequency".into(),
                kind: PropertyKind::Enum {
                    value: 2,
                    min: 0,
                    max: 2,
                    step: 1,
                    default: 2,
                    choices: vec!["Disabled".into(), "50 Hz".into(), "60 Hz".into()],
                },
            },
            PropertyDescription {
                name: "raw_exposure_auto_priority".into(),
                kind: PropertyKind::Boolean { value: false },
            },
        ];
        let topics = property_topics("cam", &properties);
        let find = |t: &str| {
            topics
                .iter()
                .find(|p| p.topic == t)
                .unwrap_or_else(|| panic!("{t} missing from {topics:#?}"))
        };
        let value = find("/CameraPublisher/cam/Property/brightness");
        assert_eq!(
            (value.ty, &value.value, value.write),
            (NtType::Int, &NtValue::Int(50), TopicWrite::Default)
        );
        let max = find("/CameraPublisher/cam/PropertyInfo/brightness/max");
        assert_eq!((max.ty, &max.value), (NtType::Int, &NtValue::Int(100)));
        assert_eq!(max.write, TopicWrite::Set);
        let choices = find("/CameraPublisher/cam/PropertyInfo/power_line_frequency/choices");
        assert_eq!(choices.ty, NtType::StringArray);
        let raw = find("/CameraPublisher/cam/RawProperty/raw_exposure_auto_priority");
        assert_eq!(raw.ty, NtType::Boolean);
        assert_eq!(topics.len(), 5 + 6 + 1);
    }
}

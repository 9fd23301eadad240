//! frcstream on NetworkTables: one thread that shows the cameras to dashboards and the
//! robot, and takes settings from them.
//!
//! For every camera `<name>` it publishes, through the crate's own [`NtClient`]:
//!
//! - cscore's topics under `/CameraPublisher/<name>/` (`cscore_layout.rs` says which and
//!   how), so Shuffleboard and Elastic list the camera: `source`, `description`,
//!   `connected`, `streams`, `mode` and `modes`, normal (timestamped) writes sent again
//!   whenever they change (looked at every 100 ms); for a camera with controls (V4L2),
//!   every control as cscore's `Property/<control>` and `PropertyInfo/...`.
//! - Statistics under `/frcstream/<name>/`: `captured_fps`, `delivered_fps`,
//!   `mbit_per_second`, `latency_ms` (double; median capture-to-send latency),
//!   `quality_in_force`, `fps_in_force`, `width_in_force`, `height_in_force` and
//!   `budget_share_mbit` (the bandwidth budget's choice, `budget.rs`; double), `clients` and `frame_robot_time_us` (int: the newest
//!   frame's capture time in the robot's clock while it is synchronised,
//!   `robot_clock_feed.rs`), looked at every 500 ms and sent only when they changed.
//! - The run-time settings of the settings table (`settings.rs`: `fps`, `quality`) under
//!   `/frcstream/<name>/` (int, `retained`), written with timestamp 0 (a default) and
//!   subscribed to.
//!
//! A write by the robot or a dashboard to a setting or a `Property/` topic goes the one
//! way every writer goes, [`Camera::change`] (checked against the settings table or the
//! control's range): accepted, it changes the stream at once; refused (out of range, a
//! wrong type), it costs one log line (fewer when repeated, `log_limit.rs`) and the value in
//! force is written back with a normal timestamp, which wins over the refused write. A
//! change made by any other writer (HTTP, the library) arrives on the camera's change feed
//! and is published at once; once a second the values are compared anyway, so nothing
//! missed stays unpublished. NetworkTables and HTTP never disagree.
//!
//! Because the settings are written as defaults, the robot's or a dashboard's value wins
//! and survives that client leaving; after a server restart frcstream sends the values in
//! force again (still as defaults). `retained` keeps them on the server while frcstream
//! itself is away, so a restarted frcstream picks up a dashboard's setting.
//!
//! The thread only reads the cameras' atomics and statistics and calls the NT client, whose
//! calls never wait for the network: it never blocks capture or HTTP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use log::{debug, info, warn};
use serde_json::json;

use super::Wake;
use super::cscore_layout::{
    Advertised, CAMERA_TOPICS, PropertyDescription, TopicWrite, camera_root, control_value,
    cscore_source, describe_control, property_control_name, property_topics, stream_urls,
};
use super::log_limit::RefusalLog;
use super::{NtClient, NtClientConfig, NtError, NtType, NtUpdate, NtValue};
use super::{publish_logged, set_logged as set};
use crate::camera::{Camera, ChangeError};
use crate::config::{NetworkTablesConfig, SourceSpec};
use crate::controls::ControlValue;
use crate::settings::{self, Changed, Spec, Writer};
use crate::stats::round2;
use crate::threads::StoppableThread;

/// How often the camera's state (connected, description, mode, streams) is compared with
/// what was published.
const STATE_INTERVAL: Duration = Duration::from_millis(100);
/// How often statistics are published (when they changed). "A few times a second".
const STATS_INTERVAL: Duration = Duration::from_millis(500);
/// How often the machine's addresses are read again (a DHCP lease may come late).
const ADDRESS_INTERVAL: Duration = Duration::from_secs(5);
/// How often camera controls are read (each read is an ioctl per control) and settings
/// compared with what was published, besides the change feed.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(1);

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

/// The NetworkTables thread and its client; see the [module docs](self). Dropping it stops
/// both (the server then removes frcstream's topics, except the retained settings).
pub struct CameraPublisher {
    // Before `client`: the thread stops first, then the connection closes.
    _thread: StoppableThread,
    client: Arc<NtClient>,
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
        let worker = Worker::new(
            Arc::clone(&client),
            cameras,
            config.advertise.clone(),
            config.server.robot_network(),
        );
        let thread = StoppableThread::spawn("nt-publisher", move |stop| worker.run(&stop))
            .map_err(NtError::Spawn)?;
        Ok(CameraPublisher {
            _thread: thread,
            client,
        })
    }

    /// Whether the connection to the NT server is up.
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// The NT client (a clone sharing the connection), for features with threads and
    /// topics of their own (`fms.rs`, `robot_clock_feed.rs`, `switch_publisher.rs`).
    pub fn client(&self) -> NtClient {
        NtClient::clone(&self.client)
    }

    /// Stops the thread and closes the connection (the same as dropping it).
    pub fn stop(self) {}
}

/// Statistics topics, in the order of [`CameraTopics::stats_values`].
const DOUBLE_STATS: [&str; 9] = [
    "captured_fps",
    "delivered_fps",
    "mbit_per_second",
    "latency_ms",
    // The bandwidth budget's choice (`budget.rs`): what is in force (fps: what the share
    // carries across the radio; the size: the camera's, or shrunk), and the share.
    "quality_in_force",
    "fps_in_force",
    "width_in_force",
    "height_in_force",
    "budget_share_mbit",
];

/// What a writable topic changes, and which values it reads.
#[derive(Debug, Clone)]
enum Target {
    /// A run-time setting of the table: ints only.
    Setting(&'static Spec),
    /// A camera control (`Property/<name>`): ints, booleans, menu entry names.
    Control(String),
}

impl Target {
    fn key(&self) -> &str {
        match self {
            Target::Setting(spec) => spec.key,
            Target::Control(name) => name,
        }
    }

    /// The written value as a change, or why it cannot be one.
    fn read(&self, value: &NtValue) -> Result<ControlValue, TopicWriteError> {
        let read = match self {
            Target::Setting(_) => match value {
                NtValue::Int(v) => Some(ControlValue::Int(*v)),
                _ => None,
            },
            Target::Control(_) => control_value(value),
        };
        read.ok_or(TopicWriteError::WrongType(value.nt_type()))
    }
}

/// Why a value written to a topic is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum TopicWriteError {
    #[error("{0}")]
    Invalid(#[from] ChangeError),
    #[error("a {0} value, not an int")]
    WrongType(NtType),
}

/// Checks a written value and applies it the one way every writer goes.
fn apply(camera: &Camera, target: &Target, value: &NtValue) -> Result<(), TopicWriteError> {
    let change = target.read(value)?;
    camera.change(Writer::NetworkTables, &[(target.key().to_owned(), change)])?;
    Ok(())
}

/// A value for a log line: `-3`, `"fast"`, cut to a readable length.
fn show(value: &NtValue) -> String {
    super::log_limit::shown(value)
}

/// A topic the robot or a dashboard may write, and what this thread last knew of it.
struct WritableTopic {
    target: Target,
    /// The value NetworkTables holds as far as this thread knows.
    published: NtValue,
    /// Refused values, so a dashboard repeating or flooding them warns once a second.
    last_refused: RefusalLog,
}

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
    frame_robot_time_us: Option<i64>,
    /// Topics dashboards write: the settings, then the controls as they are found.
    writable: HashMap<String, WritableTopic>,
    /// `PropertyInfo/` topics published so far, with their values.
    property_info: HashMap<String, NtValue>,
}

impl CameraTopics {
    fn new(camera: NtCamera) -> CameraTopics {
        let name = camera.camera.name.clone();
        let own = format!("/frcstream/{name}/");
        let writable = settings::RUN_TIME
            .into_iter()
            .map(|spec| {
                let topic = WritableTopic {
                    target: Target::Setting(spec),
                    published: NtValue::Int(camera.camera.settings.get(spec)),
                    last_refused: RefusalLog::default(),
                };
                (format!("{own}{}", spec.key), topic)
            })
            .collect();
        CameraTopics {
            root: camera_root(&name),
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
            frame_robot_time_us: None,
            writable,
            property_info: HashMap::new(),
        }
    }

    fn stats_values(&self) -> [f64; DOUBLE_STATS.len()] {
        let camera = &self.camera;
        let stats = &camera.stats;
        let governor = camera.governor_report();
        let (width, height) = governor.size.unwrap_or_else(|| camera.mode().size());
        [
            round2(stats.captured.rate()),
            round2(stats.delivered.rate()),
            round2(stats.bytes_sent.rate() * 8.0 / 1e6),
            stats.latency.summary().p50_ms,
            f64::from(governor.quality),
            f64::from(governor.fps),
            f64::from(width),
            f64::from(height),
            governor.share_mbit,
        ]
    }

    /// Publishes each setting whose value is not what NetworkTables was last told.
    fn publish_settings(&mut self, nt: &NtClient) {
        for (topic, writable) in &mut self.writable {
            let Target::Setting(spec) = writable.target else {
                continue;
            };
            let now = NtValue::Int(self.camera.settings.get(spec));
            if now != writable.published {
                debug!(
                    "camera \"{}\": {} is now {}, publishing it",
                    self.camera.name,
                    spec.key,
                    show(&now)
                );
                set(nt, topic, now.clone());
                writable.published = now;
            }
        }
    }

    /// Publishes the camera's controls, and what changed in them since.
    fn publish_properties(&mut self, nt: &NtClient) {
        let controls = self.camera.controls.list();
        if controls.is_empty() {
            return;
        }
        let descriptions: Vec<PropertyDescription> =
            controls.iter().filter_map(describe_control).collect();
        for topic in property_topics(&self.camera.name, &descriptions) {
            let known = match topic.write {
                TopicWrite::Default => self.writable.get(&topic.topic).map(|w| &w.published),
                TopicWrite::Set => self.property_info.get(&topic.topic),
            };
            match known {
                None => {
                    if let Err(e) = nt.publish(&topic.topic, topic.ty, serde_json::Value::Null) {
                        warn!("NetworkTables: cannot publish {}: {e}", topic.topic);
                        continue;
                    }
                    if topic.write == TopicWrite::Default {
                        if let Err(e) = nt.set_default(&topic.topic, topic.value.clone()) {
                            warn!("NetworkTables: cannot set {}: {e}", topic.topic);
                        }
                    } else {
                        set(nt, &topic.topic, topic.value.clone());
                    }
                }
                // Changed elsewhere (HTTP, the config after a reconnect): publish it.
                Some(value) if *value != topic.value => set(nt, &topic.topic, topic.value.clone()),
                Some(_) => continue,
            }
            match topic.write {
                TopicWrite::Default => {
                    let control = property_control_name(&topic.topic);
                    let published = topic.value.clone();
                    self.writable
                        .entry(topic.topic)
                        .or_insert_with(|| WritableTopic {
                            target: Target::Control(control),
                            published,
                            last_refused: RefusalLog::default(),
                        })
                        .published = topic.value;
                }
                TopicWrite::Set => {
                    self.property_info.insert(topic.topic, topic.value);
                }
            }
        }
    }
}

struct Worker {
    nt: Arc<NtClient>,
    cameras: Vec<CameraTopics>,
    /// Changes to the cameras' settings and controls, from every writer.
    changes: Receiver<Changed>,
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
        let (feed, changes) = crossbeam_channel::bounded(settings::ChangeFeed::BACKLOG);
        for camera in &cameras {
            camera.camera.changes.subscribe_with(feed.clone());
        }
        Worker {
            nt,
            cameras: cameras.into_iter().map(CameraTopics::new).collect(),
            changes,
            configured_hosts,
            robot_network,
            hosts,
        }
    }

    fn run(mut self, stop: &Receiver<()>) {
        let updates = self.publish_all();
        let now = Instant::now();
        let (mut next_state, mut next_stats, mut next_reconcile) = (now, now, now);
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
            if now >= next_reconcile {
                self.reconcile();
                next_reconcile = now + RECONCILE_INTERVAL;
            }
            if now >= next_addresses {
                self.hosts =
                    Advertised::hosts(self.configured_hosts.as_deref(), self.robot_network);
                next_addresses = now + ADDRESS_INTERVAL;
            }
            let wait = next_state
                .min(next_stats)
                .min(next_reconcile)
                .min(next_addresses)
                .saturating_duration_since(Instant::now());
            match super::next_wake(stop, &updates, &self.changes, wait) {
                Wake::Stop => break,
                Wake::Update(update) => self.on_update(update),
                Wake::Change(change) => self.on_change(&change),
                Wake::Due => {}
            }
        }
    }

    /// Publishes every topic and subscribes to the settings.
    fn publish_all(&mut self) -> Receiver<NtUpdate> {
        let none = serde_json::Value::Null;
        let mut setting_topics = Vec::new();
        for cam in &self.cameras {
            for (key, ty) in CAMERA_TOPICS {
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
            for key in ["clients", "frame_robot_time_us"] {
                self.publish(&format!("{}{key}", cam.own), NtType::Int, none.clone());
            }
            for (topic, writable) in &cam.writable {
                self.publish(topic, NtType::Int, json!({"retained": true}));
                if let Err(e) = self.nt.set_default(topic, writable.published.clone()) {
                    warn!("NetworkTables: cannot set {topic}: {e}");
                }
                setting_topics.push(topic.clone());
            }
            setting_topics.push(format!("{}Property/", cam.root));
            setting_topics.push(format!("{}RawProperty/", cam.root));
        }
        let prefixes: Vec<&str> = setting_topics.iter().map(String::as_str).collect();
        self.nt.subscribe(&prefixes)
    }

    fn publish(&self, topic: &str, ty: NtType, properties: serde_json::Value) {
        publish_logged(&self.nt, topic, ty, properties);
    }

    /// Publishes what changed in each camera's state.
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
                // The mode the source delivers: one, as negotiated.
                set(nt, &format!("{root}modes"), vec![mode.clone()]);
                cam.mode = Some(mode);
            }
            let streams = stream_urls(cam.server, &cam.path, &self.hosts);
            if cam.streams.as_ref() != Some(&streams) {
                set(nt, &format!("{root}streams"), streams.clone());
                cam.streams = Some(streams);
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
            let robot_time = cam.camera.frame_robot_time_us();
            if let Some(robot_us) = robot_time.filter(|_| cam.frame_robot_time_us != robot_time) {
                set(nt, &format!("{}frame_robot_time_us", cam.own), robot_us);
                cam.frame_robot_time_us = robot_time;
            }
        }
    }

    /// Compares every setting and control with what was published (a control can change
    /// by a reconnect, a change can be missed by a full feed).
    fn reconcile(&mut self) {
        for cam in &mut self.cameras {
            cam.publish_settings(&self.nt);
            cam.publish_properties(&self.nt);
        }
    }

    /// A writer changed a camera's setting or control: publish it now.
    fn on_change(&mut self, change: &Changed) {
        let Some(cam) = self
            .cameras
            .iter_mut()
            .find(|cam| cam.camera.name == change.camera)
        else {
            return;
        };
        if settings::run_time(&change.key).is_some() {
            cam.publish_settings(&self.nt);
        } else {
            cam.publish_properties(&self.nt);
        }
    }

    /// A value the robot or a dashboard wrote to a setting or a control.
    fn on_update(&mut self, update: NtUpdate) {
        let nt = &*self.nt;
        let Some((camera, writable)) = self.cameras.iter_mut().find_map(|cam| {
            let camera = &cam.camera;
            cam.writable
                .get_mut(&update.topic)
                .map(|writable| (camera, writable))
        }) else {
            return; // a prefix match of another topic
        };
        // An update that already lost against a newer write of ours (a setting changed over
        // HTTP while reconnecting) is not the topic's value any more: the newer one stands.
        if update.value.nt_type() == writable.published.nt_type()
            && nt.value(&update.topic).as_ref() != Some(&update.value)
        {
            debug!(
                "NetworkTables: {} = {} is older than this client's value; ignored",
                update.topic,
                show(&update.value)
            );
            return;
        }
        if update.value == writable.published {
            return;
        }
        let key = writable.target.key().to_owned();
        match apply(camera, &writable.target, &update.value) {
            Ok(()) => {
                info!(
                    "camera \"{}\": {key} {} -> {} (set over NetworkTables)",
                    camera.name,
                    show(&writable.published),
                    show(&update.value)
                );
                writable.published = update.value;
                writable.last_refused.clear();
            }
            Err(refusal) => {
                let in_force = writable.published.clone();
                let line = format!(
                    "camera \"{}\": refused {} = {} from NetworkTables: {refusal}; {key} stays {}",
                    camera.name,
                    update.topic,
                    show(&update.value),
                    show(&in_force)
                );
                writable.last_refused.log(&update.value, &line);
                // A normal, timestamped write: newer than the refused one, so it wins.
                set(nt, &update.topic, in_force);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CameraConfig;

    /// Checks a value written to a setting's topic and applies it to `camera`.
    fn apply_setting(
        camera: &Camera,
        spec: &'static Spec,
        value: &NtValue,
    ) -> Result<i64, TopicWriteError> {
        apply(camera, &Target::Setting(spec), value).map(|_| camera.settings.get(spec))
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
            apply_setting(&camera, &settings::FPS, &NtValue::Int(5)),
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
            let refusal = apply_setting(&camera, &settings::FPS, &bad).expect_err("refused");
            assert!(!refusal.to_string().is_empty());
        }
        assert_eq!(camera.settings.fps(), 5, "unchanged by refused values");
        assert_eq!(
            apply_setting(&camera, &settings::FPS, &NtValue::String("fast".into()))
                .expect_err("string")
                .to_string(),
            "a string value, not an int"
        );
        assert_eq!(
            apply_setting(&camera, &settings::QUALITY, &NtValue::Int(20)),
            Ok(20)
        );
        assert_eq!(camera.settings.quality(), 20);
        assert!(apply_setting(&camera, &settings::QUALITY, &NtValue::Int(101)).is_err());
        assert_eq!(show(&NtValue::String("fast".into())), "\"fast\"");
        assert_eq!(show(&NtValue::Int(-3)), "-3");
    }
}

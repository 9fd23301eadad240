//! The switched streams on NetworkTables: a thread of its own (`nt-switches`) on a clone of
//! the camera publisher's client (one connection).
//!
//! For every switch `<name>`:
//!
//! - `/frcstream/<name>/selected` (string, `retained`): the camera shown, written as a
//!   default and subscribed to, so robot code or a dashboard button selects a camera by
//!   writing its name. The write goes the one way every writer goes, [`Switch::select`]; a
//!   name that is none of the switch's cameras (or a value that is not a string) is refused,
//!   logged (fewer when repeated, `log_limit.rs`) and the camera in force written back with
//!   a normal timestamp, which wins. A selection made over HTTP arrives on the switch's
//!   change feed and is published at once.
//! - cscore's topics under `/CameraPublisher/<name>/`, so Shuffleboard and Elastic list the
//!   switch as a camera: `source` is `cv:` (cscore's `addSwitchedCamera` serves a `CvSource`
//!   of its own), `streams` the switch's URLs, and `connected`, `mode`, `modes` and
//!   `description` those of the camera shown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use log::{debug, warn};
use serde_json::json;

use super::Wake;
use super::cscore_layout::{Advertised, CAMERA_TOPICS, camera_root, stream_urls};
use super::log_limit::{RefusalLog, shown};
use super::{NtClient, NtError, NtType, NtUpdate, NtValue};
use super::{publish_logged as publish, set_logged as set};
use crate::settings::{self, Changed, Writer};
use crate::switch::{SELECTED, Switch};
use crate::threads::StoppableThread;

/// How often the shown camera's state is compared with what was published.
const STATE_INTERVAL: Duration = Duration::from_millis(100);
/// How often the machine's addresses are read again (a DHCP lease may come late).
const ADDRESS_INTERVAL: Duration = Duration::from_secs(5);

/// Where the switches' streams are served and which hosts `streams` lists.
pub struct SwitchServer {
    /// The HTTP server the switches' streams are on.
    pub address: SocketAddr,
    /// `[networktables] advertise`, if set.
    pub configured_hosts: Option<Vec<String>>,
    pub robot_network: Option<[u8; 3]>,
}

/// The `nt-switches` thread; dropping it stops the thread (before the client's last handle
/// goes, which closes the connection).
pub struct SwitchPublisher {
    _thread: StoppableThread,
}

impl SwitchPublisher {
    /// Starts publishing `switches` on `nt` (a clone of the camera publisher's client).
    pub fn start(
        nt: NtClient,
        switches: Vec<Arc<Switch>>,
        server: SwitchServer,
    ) -> Result<SwitchPublisher, NtError> {
        let (feed, changes) = crossbeam_channel::bounded(settings::ChangeFeed::BACKLOG);
        for switch in &switches {
            switch.changes.subscribe_with(feed.clone());
        }
        let hosts = Advertised::hosts(server.configured_hosts.as_deref(), server.robot_network);
        let worker = Worker {
            switches: switches.into_iter().map(SwitchTopics::new).collect(),
            nt,
            changes,
            server,
            hosts,
        };
        let thread = StoppableThread::spawn("nt-switches", move |stop| worker.run(&stop))
            .map_err(NtError::Spawn)?;
        Ok(SwitchPublisher { _thread: thread })
    }
}

/// One switch's topics and what was last published on them.
struct SwitchTopics {
    switch: Arc<Switch>,
    /// `/CameraPublisher/<name>/`
    root: String,
    /// `/frcstream/<name>/selected`
    selected_topic: String,
    /// The selection NetworkTables holds as far as this thread knows.
    selected: String,
    last_refused: RefusalLog,
    /// The shown camera's state and the switch's URLs, as last published.
    connected: Option<bool>,
    description: Option<String>,
    mode: Option<String>,
    streams: Option<Vec<String>>,
}

impl SwitchTopics {
    fn new(switch: Arc<Switch>) -> SwitchTopics {
        SwitchTopics {
            root: camera_root(&switch.name),
            selected_topic: format!("/frcstream/{}/{SELECTED}", switch.name),
            selected: switch.selected().name.clone(),
            last_refused: RefusalLog::default(),
            connected: None,
            description: None,
            mode: None,
            streams: None,
            switch,
        }
    }

    /// Publishes the selection if NetworkTables was told another one.
    fn publish_selected(&mut self, nt: &NtClient) {
        let now = self.switch.selected().name.clone();
        if now != self.selected {
            set(nt, &self.selected_topic, now.as_str());
            self.selected = now;
        }
    }

    /// A value the robot or a dashboard wrote to `selected`.
    fn on_write(&mut self, nt: &NtClient, value: NtValue) {
        // A write that already lost against a newer one of ours is not the value any more.
        if matches!(value, NtValue::String(_))
            && nt.value(&self.selected_topic).as_ref() != Some(&value)
        {
            debug!(
                "NetworkTables: {} = {} is older than this client's value; ignored",
                self.selected_topic,
                shown(&value)
            );
            return;
        }
        let result = match &value {
            NtValue::String(name) if *name == self.selected => return,
            NtValue::String(name) => self
                .switch
                .select(Writer::NetworkTables, name)
                .map_err(|refusal| refusal.to_string()),
            other => Err(format!("a {} value, not a string", other.nt_type())),
        };
        match result {
            Ok(()) => {
                self.selected = self.switch.selected().name.clone();
                self.last_refused.clear();
            }
            Err(reason) => {
                let line = format!(
                    "switch \"{}\": refused {} = {} from NetworkTables: {reason}; it stays {}",
                    self.switch.name,
                    self.selected_topic,
                    shown(&value),
                    self.selected
                );
                self.last_refused.log(&value, &line);
                // A normal, timestamped write: newer than the refused one, so it wins.
                set(nt, &self.selected_topic, self.selected.as_str());
            }
        }
    }

    /// Publishes what changed of the shown camera's state and the switch's URLs.
    fn refresh_state(&mut self, nt: &NtClient, server: SocketAddr, hosts: &Advertised) {
        let camera = self.switch.selected();
        let root = &self.root;
        let connected = camera.is_connected();
        if self.connected != Some(connected) {
            set(nt, &format!("{root}connected"), connected);
            self.connected = Some(connected);
        }
        let description = format!("switched ({}): {}", camera.name, camera.description());
        if self.description.as_ref() != Some(&description) {
            set(nt, &format!("{root}description"), description.as_str());
            self.description = Some(description);
        }
        let mode = camera.mode().to_string();
        if self.mode.as_ref() != Some(&mode) {
            set(nt, &format!("{root}mode"), mode.as_str());
            set(nt, &format!("{root}modes"), vec![mode.clone()]);
            self.mode = Some(mode);
        }
        let streams = stream_urls(server, &format!("/{}/", self.switch.name), hosts);
        if self.streams.as_ref() != Some(&streams) {
            set(nt, &format!("{root}streams"), streams.clone());
            self.streams = Some(streams);
        }
    }
}

struct Worker {
    nt: NtClient,
    switches: Vec<SwitchTopics>,
    /// Selections made by any writer.
    changes: Receiver<Changed>,
    server: SwitchServer,
    hosts: Advertised,
}

impl Worker {
    fn run(mut self, stop: &Receiver<()>) {
        let updates = self.publish_all();
        let mut next_state = Instant::now();
        let mut next_addresses = Instant::now() + ADDRESS_INTERVAL;
        loop {
            let now = Instant::now();
            if now >= next_addresses {
                self.hosts = Advertised::hosts(
                    self.server.configured_hosts.as_deref(),
                    self.server.robot_network,
                );
                next_addresses = now + ADDRESS_INTERVAL;
            }
            if now >= next_state {
                for topics in &mut self.switches {
                    topics.refresh_state(&self.nt, self.server.address, &self.hosts);
                    // Anything the feed could not carry (a full feed) is published here.
                    topics.publish_selected(&self.nt);
                }
                next_state = now + STATE_INTERVAL;
            }
            let wait = next_state.saturating_duration_since(Instant::now());
            match super::next_wake(stop, &updates, &self.changes, wait) {
                Wake::Stop => break,
                Wake::Update(update) => self.on_update(update),
                Wake::Change(change) => self.on_change(&change),
                Wake::Due => {}
            }
        }
    }

    /// Publishes every switch's topics and subscribes to the selections.
    fn publish_all(&mut self) -> Receiver<NtUpdate> {
        for topics in &self.switches {
            for (key, ty) in CAMERA_TOPICS {
                publish(&self.nt, &format!("{}{key}", topics.root), ty, json!(null));
            }
            set(&self.nt, &format!("{}source", topics.root), "cv:");
            publish(
                &self.nt,
                &topics.selected_topic,
                NtType::String,
                json!({"retained": true}),
            );
            if let Err(e) = self
                .nt
                .set_default(&topics.selected_topic, topics.selected.as_str())
            {
                warn!("NetworkTables: cannot set {}: {e}", topics.selected_topic);
            }
        }
        let prefixes: Vec<&str> = self
            .switches
            .iter()
            .map(|t| t.selected_topic.as_str())
            .collect();
        self.nt.subscribe(&prefixes)
    }

    fn on_update(&mut self, update: NtUpdate) {
        if let Some(topics) = self
            .switches
            .iter_mut()
            .find(|t| t.selected_topic == update.topic)
        {
            topics.on_write(&self.nt, update.value);
        }
    }

    /// A writer selected a camera: publish it now.
    fn on_change(&mut self, change: &Changed) {
        if let Some(topics) = self
            .switches
            .iter_mut()
            .find(|t| t.switch.name == change.camera)
        {
            topics.publish_selected(&self.nt);
        }
    }
}

//! The streamer: builds a camera, a source and a capture thread for each configured camera,
//! starts the HTTP server over them, and stops it all. The binary is a thin shell around
//! it; tests, benchmarks and vision programs drive it the same way.
//!
//! Everything started is held by one [`Running`], which stops it all in order when dropped:
//! a start that fails half-way leaves no thread behind, and neither does a `Streamer`
//! dropped without [`Streamer::stop`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::camera::Camera;
use crate::capture;
use crate::config::StateFileSetting;
use crate::config::{CameraConfig, Config, SourceSpec};
use crate::http::radio::Radio;
use crate::http::{HttpServer, Limits};
use crate::match_profile::MatchProfiles;
use crate::networktables::fms::FmsWatch;
use crate::networktables::{
    CameraPublisher, NtCamera, NtError, RobotClockFeed, SwitchPublisher, SwitchServer,
};
use crate::saved_settings::{self, StateFile};
use crate::settings::ProfiledNumber;
use crate::source::jpeg_folder::JpegFolder;
use crate::source::pushed::{PushedStream, pushed_stream};
use crate::source::test_pattern::TestPattern;
use crate::source::v4l2::{self, V4l2Source};
use crate::source::{FrameSource, SourceError};
use crate::switch::{Switch, SwitchError};
use crate::threads;

/// How long stopping waits for the capture and budget threads.
const STOP_WAIT: Duration = Duration::from_millis(900);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {address}: {source} (is another streamer using the port?)")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("camera \"{camera}\": {source}")]
    Source { camera: String, source: SourceError },
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("{0}")]
    Switch(#[from] SwitchError),
    #[error("NetworkTables: {0}")]
    NetworkTables(#[source] NtError),
    #[error("stopped during start-up (signal)")]
    Interrupted,
}

pub struct Streamer {
    running: Running,
    pushed: HashMap<String, PushedStream>,
    /// The main server's address (with the real port when 0 was asked for).
    http_addr: SocketAddr,
}

/// What start-up has started so far. Dropping it stops it all (NetworkTables first, then
/// capture and HTTP, the last settings write, then the threads are joined for a while).
#[derive(Default)]
struct Running {
    cameras: Vec<Arc<Camera>>,
    switches: Vec<Arc<Switch>>,
    stop: Arc<AtomicBool>,
    capture_threads: Vec<JoinHandle<()>>,
    http: Option<HttpServer>,
    /// Servers of cameras with a port of their own, by camera name.
    camera_servers: Vec<(String, HttpServer)>,
    networktables: Option<CameraPublisher>,
    /// Gives the cameras the robot's clock while NetworkTables has it.
    robot_clock: Option<RobotClockFeed>,
    /// Switches the match profile from the robot's `/FMSInfo/` (with NetworkTables).
    fms: Option<FmsWatch>,
    /// Publishes the switched streams and takes their `selected` (with NetworkTables).
    switch_publisher: Option<SwitchPublisher>,
    /// Writes settings changed at run time to the state file, when there is one.
    settings_writer: Option<saved_settings::Writer>,
    /// The bandwidth budget's governor thread (`budget.rs`), unless `max_mbit = 0`.
    budget: Option<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // First, so nothing about cameras being torn down reaches NetworkTables (the clock
        // feed, the FMS watch and the switch publisher hold clones of the client: the
        // connection closes with all).
        drop(self.switch_publisher.take());
        drop(self.fms.take());
        drop(self.robot_clock.take());
        drop(self.networktables.take());
        self.stop.store(true, Ordering::SeqCst);
        for camera in &self.cameras {
            camera.slot.close();
        }
        drop(self.http.take());
        self.camera_servers.clear();
        // After HTTP and NetworkTables: the last change made is written too.
        if let Some(writer) = self.settings_writer.take() {
            writer.stop();
        }
        if let Some(budget) = self.budget.take() {
            self.capture_threads.push(budget);
        }
        join_for_a_while(&mut self.capture_threads);
    }
}

impl Streamer {
    /// Opens every camera's source, starts the capture threads and the HTTP server.
    pub fn start(config: &Config) -> Result<Streamer, StartError> {
        Streamer::start_unless(config, &AtomicBool::new(false))
    }

    /// [`Streamer::start`], giving up as soon as `interrupted` is set (SIGTERM during
    /// start-up): what was started is stopped and [`StartError::Interrupted`] returned.
    /// A step that fails (a port taken, a camera that cannot work) stops what the steps
    /// before it started, as the interruption does.
    pub fn start_unless(config: &Config, interrupted: &AtomicBool) -> Result<Streamer, StartError> {
        let mut running = Running::default();
        let mut pushed = HashMap::new();
        let state_file = open_state_file(config);
        for camera_config in &config.cameras {
            if interrupted.load(Ordering::SeqCst) {
                return Err(StartError::Interrupted);
            }
            let camera = Arc::new(Camera::new(camera_config));
            if let Some(file) = &state_file {
                camera.restore_saved_settings(file, camera_config);
            }
            let (source, connected) = open_source(camera_config, &camera, &mut pushed)?;
            let thread = capture::spawn(
                Arc::clone(&camera),
                source,
                connected,
                Arc::clone(&running.stop),
            )
            .map_err(StartError::Thread)?;
            running.capture_threads.push(thread);
            running.cameras.push(camera);
        }
        if interrupted.load(Ordering::SeqCst) {
            return Err(StartError::Interrupted);
        }
        if let Some(file) = &state_file {
            running.settings_writer = Some(file.start_writer().map_err(StartError::Thread)?);
        }
        let address = SocketAddr::new(config.server.bind, config.server.port);
        let limits = Limits {
            max_streams: config.server.max_clients,
            read_only: config.server.read_only,
            post_to_any_path: config.server.post_to_any_path,
        };
        for switch_config in &config.switches {
            let switch = Switch::new(switch_config, &running.cameras)?;
            running.switches.push(Arc::new(switch));
        }
        // One radio for every server: their remote clients take turns on it.
        let radio = Arc::new(Radio::default());
        let http = HttpServer::start_with_switches(
            address,
            running.cameras.clone(),
            running.switches.clone(),
            limits,
            Arc::clone(&radio),
        )
        .map_err(|source| StartError::Bind { address, source })?;
        let http_addr = http.local_addr();
        running.http = Some(http);
        for (camera, camera_config) in running.cameras.iter().zip(&config.cameras) {
            if let Some(port) = camera_config.port {
                let address = SocketAddr::new(config.server.bind, port);
                let server = HttpServer::start_with_switches(
                    address,
                    vec![Arc::clone(camera)],
                    Vec::new(),
                    limits,
                    Arc::clone(&radio),
                )
                .map_err(|source| StartError::Bind { address, source })?;
                running.camera_servers.push((camera.name.clone(), server));
            }
        }
        let max_mbit = Arc::new(ProfiledNumber::new(
            config.server.max_mbit,
            config.server.in_match.get("max_mbit"),
        ));
        running.budget = crate::budget::spawn(
            Arc::clone(&max_mbit),
            running.cameras.clone(),
            radio,
            Arc::clone(&running.stop),
        )
        .map_err(StartError::Thread)?;
        running.networktables = match &config.networktables {
            Some(nt) if nt.enabled => {
                let nt_cameras = running
                    .cameras
                    .iter()
                    .zip(&config.cameras)
                    .map(|(camera, camera_config)| {
                        let own = running
                            .camera_servers
                            .iter()
                            .find(|(name, _)| *name == camera.name)
                            .map(|(_, server)| server.local_addr());
                        NtCamera::new(Arc::clone(camera), &camera_config.source, http_addr, own)
                    })
                    .collect();
                Some(CameraPublisher::start(nt, nt_cameras).map_err(StartError::NetworkTables)?)
            }
            Some(_) => {
                log::info!("NetworkTables: off ([networktables] enabled = false)");
                None
            }
            None => {
                log::info!("NetworkTables: off (no [networktables] section in the config)");
                None
            }
        };
        if let Some(publisher) = &running.networktables {
            let feed = RobotClockFeed::start(publisher.client(), running.cameras.clone());
            running.robot_clock = Some(feed.map_err(StartError::Thread)?);
        }
        running.fms = watch_fms(&running, max_mbit)?;
        if let (Some(publisher), Some(nt)) = (&running.networktables, &config.networktables) {
            if !running.switches.is_empty() {
                let server = SwitchServer {
                    address: http_addr,
                    configured_hosts: nt.advertise.clone(),
                    robot_network: nt.server.robot_network(),
                };
                running.switch_publisher = Some(
                    SwitchPublisher::start(publisher.client(), running.switches.clone(), server)
                        .map_err(StartError::NetworkTables)?,
                );
            }
        }
        Ok(Streamer {
            running,
            pushed,
            http_addr,
        })
    }

    /// The address the server listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The address of the server of a camera that has a port of its own.
    pub fn camera_addr(&self, name: &str) -> Option<SocketAddr> {
        self.running
            .camera_servers
            .iter()
            .find(|(camera, _)| camera == name)
            .map(|(_, server)| server.local_addr())
    }

    pub fn cameras(&self) -> &[Arc<Camera>] {
        &self.running.cameras
    }

    /// The switched streams (`[[switch]]`), in config order.
    pub fn switches(&self) -> &[Arc<Switch>] {
        &self.running.switches
    }

    /// Each camera's capture-loop count, in camera order (the systemd watchdog's input).
    pub fn heartbeats(&self) -> Vec<u64> {
        self.running
            .cameras
            .iter()
            .map(|camera| camera.heartbeat())
            .collect()
    }

    /// The push handle of a camera configured with `source = "pushed"`.
    pub fn pushed_stream(&self, name: &str) -> Option<PushedStream> {
        self.pushed.get(name).cloned()
    }

    /// The NetworkTables publisher, when `[networktables]` turned it on.
    pub fn networktables(&self) -> Option<&CameraPublisher> {
        self.running.networktables.as_ref()
    }

    /// The URLs a user can open: the page, and each camera's stream on every address of the
    /// machine (or the bound address), and its snapshot.
    pub fn urls(&self) -> Vec<String> {
        let port = self.local_addr().port();
        let hosts: Vec<String> = match self.local_addr().ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                let mut hosts: Vec<String> = crate::host_addresses::ipv4_addresses()
                    .iter()
                    .map(|a| a.to_string())
                    .collect();
                hosts.push("127.0.0.1".to_owned());
                hosts
            }
            ip => vec![ip.to_string()],
        };
        let mut urls: Vec<String> = hosts
            .iter()
            .map(|h| format!("http://{h}:{port}/"))
            .collect();
        for camera in &self.running.cameras {
            for host in &hosts {
                urls.push(format!("http://{host}:{port}/{}.mjpg", camera.name));
            }
            urls.push(format!("http://{}:{port}/{}.jpg", hosts[0], camera.name));
        }
        urls
    }

    /// Stops capture, closes every client and waits (up to about a second) for the threads.
    /// Dropping the streamer does the same.
    pub fn stop(self) {
        drop(self);
    }
}

/// Joins the capture threads (and the budget thread) that end within about a second (a
/// thread stuck in a driver call is left behind rather than waited for).
fn join_for_a_while(threads: &mut Vec<JoinHandle<()>>) {
    let left_behind = threads::join_until(threads.drain(..), Instant::now() + STOP_WAIT);
    if left_behind > 0 {
        log::debug!("{left_behind} thread(s) did not stop in time (stuck in a driver call?)");
    }
}

/// The match profile's switch, on NetworkTables' connection; without NetworkTables the
/// normal profile stays (said once when a match profile is configured).
fn watch_fms(
    running: &Running,
    max_mbit: Arc<ProfiledNumber>,
) -> Result<Option<FmsWatch>, StartError> {
    let configured = MatchProfiles::any_configured(&running.cameras, &max_mbit);
    let profiles = MatchProfiles::new(running.cameras.clone(), max_mbit);
    match &running.networktables {
        Some(publisher) => FmsWatch::start(publisher.client(), profiles)
            .map(Some)
            .map_err(StartError::Thread),
        None => {
            if configured {
                log::warn!(
                    "[camera.match]/[server.match] never apply: the FMS is read from NetworkTables, which is off"
                );
            }
            Ok(None)
        }
    }
}

/// The state file, when `[server] state_file` names one (the command resolves the default
/// place; the library saves nothing unless told where). Logs saved cameras the config lacks.
fn open_state_file(config: &Config) -> Option<Arc<StateFile>> {
    let StateFileSetting::Path(path) = &config.server.state_file else {
        log::info!("saved settings: off (changes made at run time are lost at exit)");
        return None;
    };
    let file = StateFile::open(path);
    log::info!(
        "saved settings: {} (changes over HTTP and NetworkTables are kept across restarts)",
        path.display()
    );
    for name in file.cameras() {
        if !config.cameras.iter().any(|c| c.name == name) {
            log::info!(
                "saved settings for camera \"{name}\", which is not in the config: kept, not applied"
            );
        }
    }
    Some(file)
}

/// The camera's source, and whether it is open now. A USB camera that is not there yet is
/// not an error: it shows NO SIGNAL until it appears. One that is there but cannot work as
/// configured (a format it lacks, a control it lacks) is.
fn open_source(
    config: &CameraConfig,
    camera: &Arc<Camera>,
    pushed: &mut HashMap<String, PushedStream>,
) -> Result<(Box<dyn FrameSource>, bool), StartError> {
    let failed = |source| StartError::Source {
        camera: config.name.clone(),
        source,
    };
    let source: Box<dyn FrameSource> = match &config.source {
        SourceSpec::TestPattern => Box::new(TestPattern::new(
            &config.name,
            config.width,
            config.height,
            config.fps,
        )),
        SourceSpec::JpegFolder(dir) => Box::new(JpegFolder::open(dir, config.fps).map_err(failed)?),
        SourceSpec::Pushed => {
            let (stream, source) = pushed_stream(Arc::clone(camera));
            pushed.insert(config.name.clone(), stream);
            Box::new(source)
        }
        SourceSpec::V4l2(path) => {
            let request = v4l2::CaptureRequest {
                path: path.clone(),
                width: config.width,
                height: config.height,
                fps: config.fps,
                format: config.format,
            };
            let mut source = V4l2Source::new(request, Arc::clone(&camera.controls));
            return match source.reconnect() {
                Ok(()) => Ok((Box::new(source), true)),
                // A mistake in the config (a control the camera lacks, a value out of its
                // range): frcstream stops with the message, which names the config line.
                Err(e @ SourceError::Failed(_)) => Err(failed(e)),
                Err(e) => {
                    log::warn!(
                        "camera \"{}\": {e}; NO SIGNAL until it appears",
                        config.name
                    );
                    camera.set_problem(Some(e.reason()));
                    Ok((Box::new(source), false))
                }
            };
        }
    };
    Ok((source, true))
}

//! The streamer: builds a camera, a source and a capture thread for each configured camera,
//! starts the HTTP server over them, and stops it all. The binary is a thin shell around
//! it; tests, benchmarks and vision programs drive it the same way.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::camera::Camera;
use crate::capture;
use crate::config::{CameraConfig, Config, SourceSpec};
use crate::http::{HttpServer, Limits};
use crate::networktables::{CameraPublisher, NtCamera, NtError};
use crate::saved_settings::{self, StateFile, StateFileSetting};
use crate::source::jpeg_folder::JpegFolder;
use crate::source::pushed::{PushedStream, pushed_stream};
use crate::source::test_pattern::TestPattern;
use crate::source::v4l2::{self, V4l2Source};
use crate::source::{FrameSource, SourceError};

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
    #[error("NetworkTables: {0}")]
    NetworkTables(#[source] NtError),
    #[error("stopped during start-up (signal)")]
    Interrupted,
}

pub struct Streamer {
    cameras: Vec<Arc<Camera>>,
    pushed: HashMap<String, PushedStream>,
    stop: Arc<AtomicBool>,
    capture_threads: Vec<JoinHandle<()>>,
    http: HttpServer,
    /// Servers of cameras with a port of their own, by camera name.
    camera_servers: Vec<(String, HttpServer)>,
    networktables: Option<CameraPublisher>,
    /// Writes settings changed at run time to the state file, when there is one.
    settings_writer: Option<saved_settings::Writer>,
    /// The bandwidth budget's governor thread (`budget.rs`), unless `max_mbit = 0`.
    budget: Option<JoinHandle<()>>,
}

impl Streamer {
    /// Opens every camera's source, starts the capture threads and the HTTP server.
    pub fn start(config: &Config) -> Result<Streamer, StartError> {
        Streamer::start_unless(config, &AtomicBool::new(false))
    }

    /// [`Streamer::start`], giving up as soon as `interrupted` is set (SIGTERM during
    /// start-up): what was started is stopped and [`StartError::Interrupted`] returned.
    pub fn start_unless(config: &Config, interrupted: &AtomicBool) -> Result<Streamer, StartError> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut cameras: Vec<Arc<Camera>> = Vec::new();
        let mut pushed = HashMap::new();
        let mut capture_threads = Vec::new();
        let state_file = open_state_file(config);
        let give_up = |cameras: &[Arc<Camera>], threads: &mut Vec<JoinHandle<()>>| {
            stop.store(true, Ordering::SeqCst);
            for camera in cameras {
                camera.slot.close();
            }
            join_for_a_while(threads);
            StartError::Interrupted
        };
        for camera_config in &config.cameras {
            if interrupted.load(Ordering::SeqCst) {
                return Err(give_up(&cameras, &mut capture_threads));
            }
            let camera = Arc::new(Camera::new(camera_config));
            if let Some(file) = &state_file {
                saved_settings::restore_camera(file, &camera, camera_config);
            }
            let (source, connected) = open_source(camera_config, &camera, &mut pushed)?;
            let thread = capture::spawn(Arc::clone(&camera), source, connected, Arc::clone(&stop))
                .map_err(StartError::Thread)?;
            capture_threads.push(thread);
            cameras.push(camera);
        }
        if interrupted.load(Ordering::SeqCst) {
            return Err(give_up(&cameras, &mut capture_threads));
        }
        let settings_writer = match &state_file {
            Some(file) => Some(file.start_writer().map_err(StartError::Thread)?),
            None => None,
        };
        let address = SocketAddr::new(config.server.bind, config.server.port);
        let limits = Limits {
            max_streams: config.server.max_clients,
            read_only: config.server.read_only,
            post_to_any_path: config.server.post_to_any_path,
        };
        let http = HttpServer::start(address, cameras.clone(), limits, Arc::clone(&stop))
            .map_err(|source| StartError::Bind { address, source })?;
        let mut camera_servers = Vec::new();
        for (camera, camera_config) in cameras.iter().zip(&config.cameras) {
            if let Some(port) = camera_config.port {
                let address = SocketAddr::new(config.server.bind, port);
                let server =
                    HttpServer::start(address, vec![Arc::clone(camera)], limits, Arc::clone(&stop))
                        .map_err(|source| StartError::Bind { address, source })?;
                camera_servers.push((camera.name.clone(), server));
            }
        }
        let budget =
            crate::budget::spawn(config.server.max_mbit, cameras.clone(), Arc::clone(&stop))
                .map_err(StartError::Thread)?;
        let networktables = match &config.networktables {
            Some(nt) if nt.enabled => {
                let nt_cameras = cameras
                    .iter()
                    .zip(&config.cameras)
                    .map(|(camera, camera_config)| {
                        let own = camera_servers
                            .iter()
                            .find(|(name, _)| *name == camera.name)
                            .map(|(_, server)| server.local_addr());
                        NtCamera::new(
                            Arc::clone(camera),
                            &camera_config.source,
                            http.local_addr(),
                            own,
                        )
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
        Ok(Streamer {
            budget,
            cameras,
            pushed,
            stop,
            capture_threads,
            http,
            camera_servers,
            networktables,
            settings_writer,
        })
    }

    /// The address the server listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// The address of the server of a camera that has a port of its own.
    pub fn camera_addr(&self, name: &str) -> Option<SocketAddr> {
        self.camera_servers
            .iter()
            .find(|(camera, _)| camera == name)
            .map(|(_, server)| server.local_addr())
    }

    pub fn cameras(&self) -> &[Arc<Camera>] {
        &self.cameras
    }

    /// Each camera's capture-loop count, in camera order (the systemd watchdog's input).
    pub fn heartbeats(&self) -> Vec<u64> {
        self.cameras
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
        self.networktables.as_ref()
    }

    /// The URLs a user can open: the page, and each camera's stream on every address of the
    /// machine (or the bound address), and its snapshot.
    pub fn urls(&self) -> Vec<String> {
        let port = self.local_addr().port();
        let hosts: Vec<String> = match self.local_addr().ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                let mut hosts: Vec<String> = crate::net::ipv4_addresses()
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
        for camera in &self.cameras {
            for host in &hosts {
                urls.push(format!("http://{host}:{port}/{}.mjpg", camera.name));
            }
            urls.push(format!("http://{}:{port}/{}.jpg", hosts[0], camera.name));
        }
        urls
    }

    /// Stops capture, closes every client and waits (up to about a second) for the threads.
    pub fn stop(mut self) {
        // First, so nothing about cameras being torn down reaches NetworkTables.
        drop(self.networktables.take());
        self.stop.store(true, Ordering::SeqCst);
        for camera in &self.cameras {
            camera.slot.close();
        }
        self.http.stop();
        for (_, server) in &mut self.camera_servers {
            server.stop();
        }
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

/// Joins the capture threads (and the budget thread) that end within about a second (a
/// thread stuck in a driver call is left behind rather than waited for).
fn join_for_a_while(threads: &mut Vec<JoinHandle<()>>) {
    let deadline = Instant::now() + Duration::from_millis(900);
    for thread in threads.drain(..) {
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if thread.is_finished() {
            let _ = thread.join();
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
            let request = v4l2::Request {
                path: path.clone(),
                width: config.width,
                height: config.height,
                fps: config.fps,
                format: config.format,
            };
            let mut source = V4l2Source::new(request, Arc::clone(&camera.controls));
            return match source.reconnect() {
                Ok(()) => Ok((Box::new(source), true)),
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

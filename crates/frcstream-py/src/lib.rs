//! `frcstream._frcstream`: frcstream's own server, in a Python process.
//!
//! A [`Server`] is a [`frcstream::Streamer`] whose cameras are all `source = "pushed"`:
//! the same HTTP surface, variants, statistics and NetworkTables publication as the
//! binary. Python pushes frames into a [`Stream`] (`put_frame`), or hands a `pull`
//! callback that a thread of ours (`pull-<name>`) calls at the stream's rate while
//! someone watches (the `MjpgServer` API, in `python/frcstream/_mjpg.py`).
//!
//! Nothing Python does may crash the process: every entry point checks its input and
//! raises an exception that says what was expected; PyO3 turns a Rust panic in a method
//! into an exception, and the pull thread catches its own.

mod frames;
mod logging;
mod pull;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use frcstream::camera::Camera;
use frcstream::config::{
    CameraConfig, Config, NetworkTablesConfig, NtServerSpec, ServerConfig, SourceSpec,
    StateFileSetting, check_camera_name,
};
use frcstream::settings::{self, Spec};
use frcstream::{PushedStream, StartError, Streamer};
use pyo3::exceptions::{PyKeyError, PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::pull::{PullKind, PullThread};

/// Servers alive in this process, so `_stop_all` (registered with `atexit`) can stop their
/// pull threads before the interpreter goes away.
static LIVE: Mutex<Vec<Weak<Mutex<State>>>> = Mutex::new(Vec::new());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One stream as declared, before and after the server starts.
struct StreamSpec {
    name: String,
    width: u32,
    height: u32,
    fps: u32,
    quality: u8,
    port: Option<u16>,
}

struct Running {
    streamer: Streamer,
    pulls: Vec<PullThread>,
}

struct State {
    bind: IpAddr,
    port: u16,
    max_clients: usize,
    networktables: Option<NetworkTablesConfig>,
    state_file: StateFileSetting,
    post_to_any_path: bool,
    streams: Vec<StreamSpec>,
    /// Pull callbacks attached before start, by stream name.
    pending_pulls: Vec<(String, Py<PyAny>, PullKind)>,
    running: Option<Running>,
    stopped: bool,
}

impl Drop for State {
    /// A server dropped without `stop()` (garbage collected) still stops: its port is
    /// freed and its threads end (pull threads at their next look at the flag).
    fn drop(&mut self) {
        if let Some(mut running) = self.running.take() {
            running.pulls.clear();
            running.streamer.stop();
        }
    }
}

/// Stops a server: its pull threads, then the streamer. Never with the GIL held (a pull
/// thread may wait for it), and never holding the state's lock while waiting (a `pull()`
/// may call into the server).
fn stop_state(state: &Mutex<State>) {
    let running = {
        let mut state = lock(state);
        state.stopped = true;
        state.pending_pulls.clear();
        state.running.take()
    };
    if let Some(mut running) = running {
        for pull in running.pulls.drain(..) {
            pull.stop();
        }
        running.streamer.stop();
    }
}

/// An MJPEG server (frcstream's), with one or more streams that Python pushes frames into.
///
/// Declare streams with `add_stream`, then `start()` (or use the server as a context
/// manager, which starts it and stops it at the end of the block).
#[pyclass(module = "frcstream._frcstream", frozen)]
struct Server {
    state: Arc<Mutex<State>>,
}

fn parse_bind(bind: &str) -> PyResult<IpAddr> {
    let bind = match bind {
        "" => "0.0.0.0",
        other => other,
    };
    if let Ok(ip) = bind.parse::<IpAddr>() {
        return Ok(ip);
    }
    // A host name ("localhost"): the address it resolves to, IPv4 first.
    let addresses: Vec<SocketAddr> = (bind, 0)
        .to_socket_addrs()
        .map_err(|e| PyValueError::new_err(format!("bind address \"{bind}\": {e}")))?
        .collect();
    addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or(addresses.first())
        .map(|a| a.ip())
        .ok_or_else(|| PyValueError::new_err(format!("bind address \"{bind}\" has no address")))
}

fn start_error(error: StartError) -> PyErr {
    match &error {
        StartError::Bind { source, .. } => match source.raw_os_error() {
            Some(errno) => PyOSError::new_err((errno, error.to_string())),
            None => PyOSError::new_err(error.to_string()),
        },
        _ => PyRuntimeError::new_err(error.to_string()),
    }
}

/// `value` if it is in the range frcstream's settings table gives `spec`.
fn check_setting(spec: &Spec, value: i64) -> PyResult<u32> {
    spec.check_int(value).map_err(|_| {
        PyValueError::new_err(format!(
            "{} must be {}–{}, not {value}",
            spec.key, spec.min, spec.max
        ))
    })
}

fn check_fps(fps: i64) -> PyResult<u32> {
    check_setting(&settings::FPS, fps)
}

fn check_quality(quality: i64) -> PyResult<u8> {
    // QUALITY's range keeps it within a byte.
    check_setting(&settings::QUALITY, quality).map(|q| q as u8)
}

fn check_side(what: &str, side: i64) -> PyResult<u32> {
    let spec = if what == "height" {
        &settings::HEIGHT
    } else {
        &settings::WIDTH
    };
    check_setting(spec, side)
}

#[pymethods]
impl Server {
    #[new]
    #[pyo3(signature = (port = 1181, bind = "0.0.0.0", *, team = None, nt_server = None,
        max_clients = 20, state_file = None, post_to_any_path = false))]
    fn new(
        port: i64,
        bind: &str,
        team: Option<i64>,
        nt_server: Option<String>,
        max_clients: i64,
        state_file: Option<std::path::PathBuf>,
        post_to_any_path: bool,
    ) -> PyResult<Server> {
        logging::init();
        let port = u16::try_from(port)
            .map_err(|_| PyValueError::new_err(format!("port must be 0–65535, not {port}")))?;
        let bind = parse_bind(bind)?;
        if !(1..=1000).contains(&max_clients) {
            return Err(PyValueError::new_err(format!(
                "max_clients must be 1–1000, not {max_clients}"
            )));
        }
        let server = match (team, nt_server) {
            (Some(_), Some(_)) => {
                return Err(PyValueError::new_err("give team= or nt_server=, not both"));
            }
            (Some(team), None) => {
                // TEAM's range keeps it within u16.
                let team = check_setting(&settings::TEAM, team)?;
                Some(NtServerSpec::Team(team as u16))
            }
            (None, Some(address)) if address.trim().is_empty() => {
                return Err(PyValueError::new_err(
                    "nt_server must be \"host\" or \"host:port\"",
                ));
            }
            (None, Some(address)) => Some(NtServerSpec::Address(address)),
            (None, None) => None,
        };
        let networktables = server.map(|server| NetworkTablesConfig {
            enabled: true,
            server,
            client_name: frcstream::config::DEFAULT_NT_CLIENT_NAME.to_owned(),
            advertise: None,
        });
        let state = Arc::new(Mutex::new(State {
            bind,
            port,
            max_clients: max_clients as usize,
            networktables,
            state_file: match state_file {
                Some(path) => StateFileSetting::Path(path),
                None => StateFileSetting::Unset,
            },
            post_to_any_path,
            streams: Vec::new(),
            pending_pulls: Vec::new(),
            running: None,
            stopped: false,
        }));
        let mut live = lock(&LIVE);
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&state));
        Ok(Server { state })
    }

    /// Declares a stream served at `/<name>.mjpg` (and every other frcstream URL).
    /// `width`/`height` are its size before the first frame (the NO SIGNAL card's);
    /// frames are served at the size they are pushed at. `port`: a port of its own too.
    #[pyo3(signature = (name, *, width = 640, height = 480, fps = 30, quality = 50, port = None))]
    fn add_stream(
        slf: Bound<'_, Self>,
        name: String,
        width: i64,
        height: i64,
        fps: i64,
        quality: i64,
        port: Option<i64>,
    ) -> PyResult<Stream> {
        let server = slf.get();
        let mut state = lock(&server.state);
        if state.running.is_some() || state.stopped {
            return Err(PyRuntimeError::new_err(
                "add streams before start(): the server serves the streams it started with",
            ));
        }
        check_camera_name(&name).map_err(|e| PyValueError::new_err(format!("stream name: {e}")))?;
        if state.streams.iter().any(|s| s.name == name) {
            return Err(PyValueError::new_err(format!(
                "there is already a stream named \"{name}\""
            )));
        }
        let port = port
            .map(|p| {
                u16::try_from(p)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| PyValueError::new_err(format!("port must be 1–65535, not {p}")))
            })
            .transpose()?;
        state.streams.push(StreamSpec {
            name: name.clone(),
            width: check_side("width", width)?,
            height: check_side("height", height)?,
            fps: check_fps(fps)?,
            quality: check_quality(quality)?,
            port,
        });
        Ok(Stream {
            state: Arc::clone(&server.state),
            name,
            handle: Mutex::new(None),
        })
    }

    /// The stream named `name`.
    fn stream(&self, name: &str) -> PyResult<Stream> {
        let state = lock(&self.state);
        if !state.streams.iter().any(|s| s.name == name) {
            return Err(PyKeyError::new_err(format!("no stream named \"{name}\"")));
        }
        Ok(Stream {
            state: Arc::clone(&self.state),
            name: name.to_owned(),
            handle: Mutex::new(None),
        })
    }

    /// Binds the port(s) and starts serving. Raises OSError when a port is in use.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let mut state = lock(&self.state);
        if state.running.is_some() {
            return Ok(());
        }
        if state.stopped {
            return Err(PyRuntimeError::new_err(
                "this server was stopped: make a new one",
            ));
        }
        if state.streams.is_empty() {
            return Err(PyRuntimeError::new_err(
                "no streams: call add_stream(name) before start()",
            ));
        }
        let config = Config {
            server: ServerConfig {
                bind: state.bind,
                port: state.port,
                max_clients: state.max_clients,
                read_only: false,
                state_file: state.state_file.clone(),
                post_to_any_path: state.post_to_any_path,
                // The robot's bandwidth budget applies to Python programs too (clients
                // across the radio; loopback clients do not count).
                max_mbit: frcstream::config::DEFAULT_MAX_MBIT,
                in_match: Default::default(),
            },
            cameras: state
                .streams
                .iter()
                .map(|s| CameraConfig {
                    name: s.name.clone(),
                    source: SourceSpec::Pushed,
                    width: s.width,
                    height: s.height,
                    fps: s.fps,
                    quality: s.quality,
                    port: s.port,
                    ..CameraConfig::embedded_default()
                })
                .collect(),
            switches: Vec::new(),
            networktables: state.networktables.clone(),
        };
        // With the GIL held: releasing it while holding the state's lock could deadlock
        // with another thread that waits for the lock holding the GIL. Starting is quick.
        let _ = py;
        let streamer = Streamer::start(&config).map_err(start_error)?;
        let mut pulls = Vec::new();
        for (name, callback, kind) in std::mem::take(&mut state.pending_pulls) {
            let (stream, camera) = handles(&streamer, &name)?;
            pulls.push(
                PullThread::spawn(stream, camera, callback, kind)
                    .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread: {e}")))?,
            );
        }
        state.running = Some(Running { streamer, pulls });
        Ok(())
    }

    /// Stops serving: closes every client, stops the pull threads. Idempotent.
    fn stop(&self, py: Python<'_>) {
        let state = Arc::clone(&self.state);
        // Without the GIL: a pull thread may be waiting for it to finish its call.
        py.allow_threads(move || stop_state(&state));
    }

    /// Whether the server is serving.
    #[getter]
    fn running(&self) -> bool {
        lock(&self.state).running.is_some()
    }

    /// The port it listens on (the real one when 0 was asked for).
    #[getter]
    fn port(&self) -> u16 {
        let state = lock(&self.state);
        match &state.running {
            Some(running) => running.streamer.local_addr().port(),
            None => state.port,
        }
    }

    /// The URLs to open: the page, and each stream on every address of the machine.
    fn urls(&self) -> PyResult<Vec<String>> {
        let state = lock(&self.state);
        match &state.running {
            Some(running) => Ok(running.streamer.urls()),
            None => Err(not_running()),
        }
    }

    /// Names of the streams, in order.
    fn stream_names(&self) -> Vec<String> {
        lock(&self.state)
            .streams
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    /// Calls `pull()` from a thread of frcstream's at the stream's rate while someone
    /// watches; `kind` is "opencv", "pil" or "raw" (what `pull` returns besides `ok`).
    fn attach_pull(&self, name: &str, pull: Bound<'_, PyAny>, kind: &str) -> PyResult<()> {
        if !pull.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "pull must be a function returning (ok, image), not {}",
                type_name(&pull)
            )));
        }
        let kind = PullKind::parse(kind)?;
        let mut state = lock(&self.state);
        if !state.streams.iter().any(|s| s.name == name) {
            return Err(PyKeyError::new_err(format!("no stream named \"{name}\"")));
        }
        let py = pull.py();
        let callback = pull.unbind();
        let old = match &mut state.running {
            None => {
                state.pending_pulls.retain(|(n, _, _)| n != name);
                state.pending_pulls.push((name.to_owned(), callback, kind));
                None
            }
            Some(running) => {
                let (stream, camera) = handles(&running.streamer, name)?;
                let old = running
                    .pulls
                    .iter()
                    .position(|p| p.stream_name() == name)
                    .map(|at| running.pulls.remove(at));
                running.pulls.push(
                    PullThread::spawn(stream, camera, callback, kind).map_err(|e| {
                        PyRuntimeError::new_err(format!("cannot start a thread: {e}"))
                    })?,
                );
                old
            }
        };
        drop(state);
        if let Some(old) = old {
            // Its thread may wait for the GIL we hold.
            py.allow_threads(move || old.stop());
        }
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().start(slf.py())?;
        Ok(slf)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.stop(py);
        false
    }

    fn __repr__(&self) -> String {
        let state = lock(&self.state);
        let names: Vec<&str> = state.streams.iter().map(|s| s.name.as_str()).collect();
        match &state.running {
            Some(running) => format!(
                "<frcstream.Server on {} streams={names:?}>",
                running.streamer.local_addr()
            ),
            None => format!("<frcstream.Server (not started) streams={names:?}>"),
        }
    }
}

fn not_running() -> PyErr {
    PyRuntimeError::new_err("the server is not running: call start() first")
}

fn type_name(object: &Bound<'_, PyAny>) -> String {
    object
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// The push handle (encoding in the pushing thread: no copy of the frame, no hand-over)
/// and the camera of stream `name`.
fn handles(streamer: &Streamer, name: &str) -> PyResult<(PushedStream, Arc<Camera>)> {
    let stream = streamer
        .pushed_stream(name)
        .ok_or_else(|| PyKeyError::new_err(format!("no stream named \"{name}\"")))?
        .encode_in_caller()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the JPEG encoder: {e}")))?;
    let camera = streamer
        .cameras()
        .iter()
        .find(|c| c.name == name)
        .cloned()
        .ok_or_else(|| PyKeyError::new_err(format!("no stream named \"{name}\"")))?;
    Ok((stream, camera))
}

/// One stream of a [`Server`]: push frames into it with `put_frame`.
#[pyclass(module = "frcstream._frcstream", frozen)]
struct Stream {
    state: Arc<Mutex<State>>,
    name: String,
    /// The push handle and camera, once the server runs.
    handle: Mutex<Option<(PushedStream, Arc<Camera>)>>,
}

impl Stream {
    fn handles(&self) -> PyResult<(PushedStream, Arc<Camera>)> {
        let mut handle = lock(&self.handle);
        if let Some(h) = handle.as_ref() {
            return Ok(h.clone());
        }
        let state = lock(&self.state);
        match &state.running {
            Some(running) => {
                let h = handles(&running.streamer, &self.name)?;
                *handle = Some(h.clone());
                Ok(h)
            }
            None if state.stopped => Err(PyRuntimeError::new_err("the server has stopped")),
            None => Err(not_running()),
        }
    }

    fn spec<T>(&self, f: impl FnOnce(&mut StreamSpec) -> T) -> T {
        let mut state = lock(&self.state);
        let spec = state
            .streams
            .iter_mut()
            .find(|s| s.name == self.name)
            .expect("a Stream's spec exists");
        f(spec)
    }
}

#[pymethods]
impl Stream {
    /// The stream's name (its URL is `/<name>.mjpg`).
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Pushes a frame: a numpy ``uint8`` array (BGR ``(h, w, 3)``, gray ``(h, w)`` or
    /// ``(h, w, 1)``, YUYV ``(h, w, 2)``), a ``PIL.Image``, or a complete JPEG
    /// (``bytes``/``bytearray``/``memoryview``). ``format`` overrides the guess: "bgr",
    /// "rgb", "gray", "yuyv" or "jpeg". Encodes the frame in this thread with the GIL
    /// released, straight from the array (no copy), and returns (about half a millisecond
    /// for 640x480); when nobody watches, or the stream's fps says to skip it, returns at once.
    #[pyo3(signature = (frame, format = None))]
    fn put_frame(&self, frame: Bound<'_, PyAny>, format: Option<&str>) -> PyResult<()> {
        let (stream, _) = self.handles()?;
        frames::push(&frame, format, &stream)
    }

    /// Says the picture is lost (clients see NO SIGNAL, the page says `reason`) until the
    /// next frame.
    fn set_lost(&self, reason: &str) -> PyResult<()> {
        self.handles()?.0.lose(reason);
        Ok(())
    }

    /// Whether anyone watches (a program may skip drawing when nobody does).
    #[getter]
    fn has_viewers(&self) -> PyResult<bool> {
        Ok(self.handles()?.0.has_viewers())
    }

    /// The frame rate frames are sent at (1–120). Settable before and after start.
    #[getter]
    fn get_fps(&self) -> PyResult<u32> {
        match self.handles() {
            Ok((_, camera)) => Ok(camera.settings.fps()),
            Err(_) => Ok(self.spec(|s| s.fps)),
        }
    }

    #[setter]
    fn set_fps(&self, fps: i64) -> PyResult<()> {
        let value = check_fps(fps)?;
        match self.handles() {
            Ok((stream, _)) => stream
                .set_fps(fps)
                .map_err(|e| PyValueError::new_err(e.to_string())),
            Err(_) => {
                self.spec(|s| s.fps = value);
                Ok(())
            }
        }
    }

    /// JPEG quality of encoded frames (1–100). Settable before and after start.
    #[getter]
    fn get_quality(&self) -> PyResult<u8> {
        match self.handles() {
            Ok((_, camera)) => Ok(camera.settings.quality()),
            Err(_) => Ok(self.spec(|s| s.quality)),
        }
    }

    #[setter]
    fn set_quality(&self, quality: i64) -> PyResult<()> {
        let value = check_quality(quality)?;
        match self.handles() {
            Ok((stream, _)) => stream
                .set_quality(quality)
                .map_err(|e| PyValueError::new_err(e.to_string())),
            Err(_) => {
                self.spec(|s| s.quality = value);
                Ok(())
            }
        }
    }

    /// The size before the first frame and of the NO SIGNAL card, `(width, height)`;
    /// settable before start. Frames are served at the size they are pushed at
    /// (dashboards ask for other sizes with `?resolution=WxH`).
    #[getter]
    fn get_size(&self) -> (u32, u32) {
        self.spec(|s| (s.width, s.height))
    }

    #[setter]
    fn set_size(&self, size: (i64, i64)) -> PyResult<()> {
        let (width, height) = (check_side("width", size.0)?, check_side("height", size.1)?);
        if self.handles().is_ok() {
            return Err(PyRuntimeError::new_err(
                "set the size before start(); afterwards frames are served at the size pushed",
            ));
        }
        self.spec(|s| {
            s.width = width;
            s.height = height;
        });
        Ok(())
    }

    /// Frames published per second (encoded and sent), over the last seconds.
    #[getter]
    fn published_fps(&self) -> PyResult<f64> {
        Ok(self.handles()?.1.stats.published.rate())
    }

    /// Bytes of the newest JPEG sent (0 before the first).
    #[getter]
    fn last_frame_bytes(&self) -> PyResult<usize> {
        Ok(self.handles()?.1.slot.latest().jpeg().len())
    }

    /// What `/stats.json` says about this stream, as a dict: rates, clients, latency.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (_, camera) = self.handles()?;
        let stats = &camera.stats;
        let dict = PyDict::new(py);
        dict.set_item("captured_fps", stats.captured.rate())?;
        dict.set_item("published_fps", stats.published.rate())?;
        dict.set_item("delivered_fps", stats.delivered.rate())?;
        dict.set_item("frames_published", stats.published.total())?;
        dict.set_item("frames_delivered", stats.delivered.total())?;
        dict.set_item("bytes_per_second", stats.bytes_sent.rate())?;
        dict.set_item("clients", stats.client_count())?;
        dict.set_item("latency_max_ms", stats.latency.summary().max_ms)?;
        dict.set_item("problem", camera.problem())?;
        dict.set_item("connected", camera.is_connected())?;
        Ok(dict)
    }

    fn __repr__(&self) -> String {
        format!("<frcstream.Stream \"{}\">", self.name)
    }
}

/// Stops every server of the process (registered with `atexit`: pull threads must end
/// before the interpreter does).
#[pyfunction]
fn _stop_all(py: Python<'_>) {
    let live: Vec<Arc<Mutex<State>>> = lock(&LIVE).iter().filter_map(Weak::upgrade).collect();
    py.allow_threads(move || {
        for state in live {
            stop_state(&state);
        }
    });
}

#[pymodule]
fn _frcstream(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Server>()?;
    m.add_class::<Stream>()?;
    m.add_function(wrap_pyfunction!(_stop_all, m)?)?;
    m.add("FPS_MAX", settings::FPS.max as u32)?;
    m.add("DEFAULT_QUALITY", frcstream::config::DEFAULT_QUALITY)?;
    Ok(())
}

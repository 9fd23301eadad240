//! The HTTP server: an admission thread that accepts connections and reads request heads
//! for all of them (`admission.rs`), and a thread per request being served, on plain
//! `std::net` sockets with `httparse` for the request head.
//!
//! Why not `tiny_http`'s connection layer (the design card's crate): its task pool starves
//! connections in a burst of connects (a dashboard reconnect storm), it has no limits on
//! header size, body size or connection count, and no socket timeouts. ARCHITECTURE.md has
//! the measurements. Here every limit is explicit:
//!
//! - connections that have not sent a whole request: a budget of their own, the oldest
//!   dropped for a new one, 5 s for the whole request (`408`); they never take a place;
//! - requests being served: at most `max_clients` streams and 16 more; beyond, `503`;
//! - request head 8 KiB (`431`), body 4 KiB (`413`, chunked or not);
//! - a client that stops reading is dropped when a frame is not taken within 2 s, holding
//!   at most one frame of ours plus the kernel's socket buffer.

pub mod admission;
pub mod events;
pub mod link;
pub mod mjpeg;
pub mod pages;
pub mod part;
pub mod radio;
pub mod request;
pub mod response;
pub mod routes;
pub mod sender;
pub mod settings;
pub mod switch;

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::camera::Camera;
use crate::frame::monotonic_us;
use crate::lock::lock;
use crate::stats::{RateCounter, StreamClientStats};
use crate::switch::Switch;
use crate::threads;
use request::Request;
use response::Response;
use routes::{Route, RouteError};

/// A write that cannot make progress for this long drops the client.
const WRITE_TIMEOUT: Duration = response::WRITE_DEADLINE;
/// Kernel send buffer per connection: a few frames, so a stalled client cannot make the
/// kernel hold megabytes for it.
const SEND_BUFFER_BYTES: libc::c_int = 128 * 1024;
/// Connections beyond the stream limit allowed for pages, JSON and snapshots.
const EXTRA_CONNECTIONS: usize = 16;
/// How long a snapshot waits for a fresh frame.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);
/// A frame this recent is fresh enough for a snapshot.
const SNAPSHOT_MAX_AGE_US: u64 = 200_000;
const CONNECTION_STACK_BYTES: usize = 256 * 1024;

/// What the server needs to know, shared by its threads.
struct Shared {
    cameras: Vec<Arc<Camera>>,
    /// Switched streams; in the URL map their names follow the cameras'.
    switches: Vec<Arc<Switch>>,
    stop: Arc<AtomicBool>,
    started: Instant,
    max_streams: usize,
    /// Settings may not be changed over HTTP (config `read_only`).
    read_only: bool,
    post_to_any_path: bool,
    streams: AtomicUsize,
    connections: AtomicUsize,
    next_client_id: AtomicU64,
    /// Every connection being served, so shutdown can close them all.
    open: Mutex<HashMap<u64, TcpStream>>,
    /// Connections between requests, and stream sockets watched for hang-up.
    hub: admission::Hub,
    /// The sender thread of each frame slot this server's streams watch.
    senders: Arc<sender::Senders>,
}

impl Shared {
    /// The names streams are served under: the cameras', then the switches'.
    fn camera_names(&self) -> Vec<&str> {
        let switches = self.switches.iter().map(|s| s.name.as_str());
        self.cameras
            .iter()
            .map(|c| c.name.as_str())
            .chain(switches)
            .collect()
    }

    /// The switch a resolved name index stands for, if it is one.
    fn switch(&self, index: usize) -> Option<&Arc<Switch>> {
        index
            .checked_sub(self.cameras.len())
            .and_then(|i| self.switches.get(i))
    }

    /// The camera a resolved name index stands for: a switch's selected camera.
    fn camera(&self, index: usize) -> Arc<Camera> {
        match self.switch(index) {
            Some(switch) => switch.selected(),
            None => Arc::clone(&self.cameras[index]),
        }
    }

    /// What a stream of a resolved name shows.
    fn shown(&self, index: usize) -> mjpeg::Shown {
        match self.switch(index) {
            Some(switch) => mjpeg::Shown::Switch(Arc::clone(switch)),
            None => mjpeg::Shown::Camera(Arc::clone(&self.cameras[index])),
        }
    }
}

/// What a server allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Streaming clients at once; more get `503`.
    pub max_streams: usize,
    /// Refuse every change of settings with `403`.
    pub read_only: bool,
    /// A POST to a path that names no camera goes to the first camera (the Python
    /// `MjpgServer`'s way), instead of a 404.
    pub post_to_any_path: bool,
}

/// How long stopping waits for the accept thread and then for the requests being served
/// (their sockets shut down, each ends within its 500 ms wake-up): a thread stuck past it
/// is left behind rather than waited for.
const STOP_WAIT: Duration = Duration::from_secs(1);

/// A running server. Dropping it stops it, as [`HttpServer::stop`] does.
pub struct HttpServer {
    local_addr: SocketAddr,
    listener: TcpListener,
    accept_thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl HttpServer {
    /// Binds `address` and starts serving `cameras`.
    pub fn start(
        address: SocketAddr,
        cameras: Vec<Arc<Camera>>,
        limits: Limits,
    ) -> io::Result<HttpServer> {
        HttpServer::start_with_switches(address, cameras, Vec::new(), limits, Arc::default())
    }

    /// Binds `address` and starts serving `cameras` and the switched streams `switches`;
    /// its remote clients take turns on `radio` with those of the robot's other servers.
    pub fn start_with_switches(
        address: SocketAddr,
        cameras: Vec<Arc<Camera>>,
        switches: Vec<Arc<Switch>>,
        limits: Limits,
        radio: Arc<radio::Radio>,
    ) -> io::Result<HttpServer> {
        let listener = TcpListener::bind(address)?;
        let local_addr = listener.local_addr()?;
        let (hub, woken) = admission::Hub::new()?;
        let shared = Arc::new(Shared {
            cameras,
            switches,
            stop: Arc::new(AtomicBool::new(false)),
            started: Instant::now(),
            max_streams: limits.max_streams,
            read_only: limits.read_only,
            post_to_any_path: limits.post_to_any_path,
            streams: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            next_client_id: AtomicU64::new(1),
            open: Mutex::new(HashMap::new()),
            hub,
            senders: Arc::new(sender::Senders::new(radio)),
        });
        let accept_listener = listener.try_clone()?;
        accept_listener.set_nonblocking(true)?;
        let accept_shared = Arc::clone(&shared);
        let accept_thread = std::thread::Builder::new()
            .name("http-accept".into())
            .spawn(move || admission::run(&accept_listener, &woken, &accept_shared))?;
        Ok(HttpServer {
            local_addr,
            listener,
            accept_thread: Some(accept_thread),
            shared,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes every connection and waits, within a bound, for the accept
    /// thread and the threads of the requests being served.
    pub fn stop(&mut self) {
        if self.shared.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        // shutdown() on a listening socket wakes a blocked accept() on Linux.
        // SAFETY: the descriptor belongs to `self.listener`, which is alive.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        self.shared.hub.wake();
        threads::join_until(self.accept_thread.take(), Instant::now() + STOP_WAIT);
        self.shared.hub.clear();
        for connection in lock(&self.shared.open).values() {
            let _ = connection.shutdown(Shutdown::Both);
        }
        let connections = &self.shared.connections;
        threads::wait_until(Instant::now() + STOP_WAIT, || {
            connections.load(Ordering::SeqCst) == 0
        });
    }

    /// Requests being served now (streams and others); connections still sending a
    /// request, or idle between requests, are not counted.
    pub fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn configure(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    // SAFETY: setsockopt on a socket we own, with a pointer to a c_int of the stated size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&SEND_BUFFER_BYTES as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Serves one whole request read by the admission thread; a connection kept alive goes
/// back to it for the next one, with what the client sent past this request.
fn serve_request(
    mut stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    request: Request,
    rest: Vec<u8>,
    shared: &Shared,
) {
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let keep_alive = request.wants_keep_alive() && !shared.stop.load(Ordering::SeqCst);
    let next = respond(&mut stream, &request, peer, id, shared, keep_alive);
    if let (Ok(Next::KeepOpen), true) = (next, keep_alive) {
        if stream.set_nonblocking(true).is_ok() {
            shared.hub.give_back(admission::Parked {
                stream,
                peer,
                pending: rest,
            });
        }
    }
}

/// What happens to a connection after a response.
enum Next {
    KeepOpen,
    Close,
}

fn respond(
    stream: &mut TcpStream,
    request: &Request,
    peer: SocketAddr,
    id: u64,
    shared: &Shared,
    keep_alive: bool,
) -> io::Result<Next> {
    let head_only = request.is_head();
    let names = shared.camera_names();
    let route = match routes::resolve(&request.method, &request.path, &request.query, &names) {
        Ok(route) => route,
        Err(RouteError::NotFound) if shared.post_to_any_path && request.method == "POST" => {
            Route::Change { camera: 0 }
        }
        Err(error) => {
            let (status, body) = match error {
                RouteError::NotFound => (
                    404,
                    pages::not_found(&request.path, &routes::valid_urls(&names)),
                ),
                RouteError::MethodNotAllowed => (
                    405,
                    format!(
                        "{} is not allowed here; use GET or HEAD (POST to /<camera> to change settings)\n",
                        request.method
                    ),
                ),
                RouteError::BadParameter(reason) => (400, format!("bad request: {reason}\n")),
            };
            let mut response = Response::text(status, &body);
            if status == 405 {
                response = response.with_header("Allow", "GET, HEAD, POST");
            }
            response.write_to(stream, head_only, keep_alive)?;
            return Ok(Next::KeepOpen);
        }
    };
    let send = |stream: &mut TcpStream, response: Response<'_>| {
        response
            .write_to(stream, head_only, keep_alive)
            .map(|()| Next::KeepOpen)
    };
    match route {
        Route::Stream { camera, params } => {
            let shown = shared.shown(camera);
            let params = fit_to_camera(params, &shown.camera());
            log_adjusted_params(peer, request, &params);
            serve_stream(stream, request, &shown, &params, peer, id, shared)?;
            Ok(Next::Close)
        }
        Route::Snapshot { camera, params } => {
            let camera = &shared.camera(camera);
            log_adjusted_params(peer, request, &params);
            match snapshot(camera, &params)? {
                Some(frame) => send(stream, Response::new(200, "image/jpeg", frame.jpeg())),
                None => send(
                    stream,
                    Response::text(503, "no frame from the camera in time; try again\n"),
                ),
            }
        }
        Route::Index => {
            let html = pages::index(&shared.cameras);
            send(
                stream,
                Response::new(200, "text/html; charset=utf-8", html.as_bytes()),
            )
        }
        Route::CameraPage { camera } => {
            let html = pages::camera_page(&shared.camera(camera));
            send(
                stream,
                Response::new(200, "text/html; charset=utf-8", html.as_bytes()),
            )
        }
        Route::Events => {
            serve_events(stream, request, shared)?;
            Ok(Next::Close)
        }
        Route::Stats => {
            let json = pages::stats_json(
                &shared.cameras,
                &shared.switches,
                &shared.senders.radio,
                shared.started,
            );
            send(
                stream,
                Response::new(200, "application/json", json.as_bytes()),
            )
        }
        Route::Fps => {
            let text = format!("{}\n", shared.cameras[0].settings.fps());
            send(stream, Response::text(200, &text))
        }
        Route::Quality => {
            let text = format!("{}\n", shared.cameras[0].settings.quality());
            send(stream, Response::text(200, &text))
        }
        Route::SettingsJson { camera } => {
            let json = settings::settings_json(&shared.camera(camera));
            send(
                stream,
                Response::new(200, "application/json", json.as_bytes()),
            )
        }
        Route::ConfigJson { camera } => {
            let json = settings::config_json(&shared.camera(camera));
            send(
                stream,
                Response::new(200, "application/json", json.as_bytes()),
            )
        }
        Route::Change { camera } if shared.switch(camera).is_some() => {
            let answer = selection_answer(shared, shared.switch(camera), request);
            send(stream, answer.as_response())
        }
        Route::Change { camera } => {
            let camera = &shared.cameras[camera];
            let result = check_writable(shared)
                .and_then(|()| settings::parse_body(request))
                .and_then(|changes| settings::apply(camera, &changes));
            send(
                stream,
                settings_response(camera, result, peer).as_response(),
            )
        }
        Route::Command { camera, changes } => {
            let camera = &shared.camera(camera);
            let changes: Vec<(String, crate::controls::ControlValue)> = changes
                .into_iter()
                .map(|(k, v)| (k, crate::controls::ControlValue::Text(v)))
                .collect();
            let result = check_writable(shared).and_then(|()| settings::apply(camera, &changes));
            send(
                stream,
                settings_response(camera, result, peer).as_response(),
            )
        }
    }
}

fn check_writable(shared: &Shared) -> Result<(), settings::SettingsRequestError> {
    if shared.read_only {
        return Err(settings::SettingsRequestError {
            status: 403,
            reason: "settings are read-only on this robot (server.read_only in the config)".into(),
        });
    }
    Ok(())
}

/// The answer to a change: the values in force, or the refusal.
struct SettingsAnswer {
    status: u16,
    body: String,
    content_type: &'static str,
}

impl SettingsAnswer {
    fn as_response(&self) -> Response<'_> {
        Response::new(self.status, self.content_type, self.body.as_bytes())
    }
}

/// The answer to `POST /<switch>`: the switch as JSON, or the refusal.
fn selection_answer(
    shared: &Shared,
    switch: Option<&Arc<Switch>>,
    request: &Request,
) -> SettingsAnswer {
    let result = check_writable(shared).and_then(|()| match switch {
        Some(switch) => switch::select(switch, request),
        None => Err(settings::SettingsRequestError {
            status: 404,
            reason: "no such switch".into(),
        }),
    });
    match result {
        Ok(json) => SettingsAnswer {
            status: 200,
            body: json,
            content_type: "application/json",
        },
        Err(refusal) => SettingsAnswer {
            status: refusal.status,
            body: format!("{}\n", refusal.reason),
            content_type: "text/plain; charset=utf-8",
        },
    }
}

fn settings_response(
    camera: &Camera,
    result: Result<(), settings::SettingsRequestError>,
    peer: SocketAddr,
) -> SettingsAnswer {
    match result {
        Ok(()) => {
            log::info!(
                "{peer} changed {}: fps {}, quality {}",
                camera.name,
                camera.settings.fps(),
                camera.settings.quality()
            );
            SettingsAnswer {
                status: 200,
                body: settings::in_force_json(camera),
                content_type: "application/json",
            }
        }
        Err(refusal) => SettingsAnswer {
            status: refusal.status,
            body: format!("{}\n", refusal.reason),
            content_type: "text/plain; charset=utf-8",
        },
    }
}

/// Streams a camera or a switch if a stream place is free, else answers `503`.
fn serve_stream(
    stream: &mut TcpStream,
    request: &Request,
    shown: &mjpeg::Shown,
    params: &routes::StreamParams,
    peer: SocketAddr,
    id: u64,
    shared: &Shared,
) -> io::Result<()> {
    if request.is_head() {
        return io::Write::write_all(stream, mjpeg::stream_head().as_bytes());
    }
    let Some(place) = take_place(shared) else {
        return refuse_no_place(stream, shared);
    };
    let _place = PlaceGuard(shared, &place);
    let client_stats = Arc::new(StreamClientStats {
        id,
        peer,
        path: if request.query.is_empty() {
            request.path.clone()
        } else {
            format!("{}?{}", request.path, request.query)
        },
        connected_at: Instant::now(),
        frames: RateCounter::default(),
        bytes: RateCounter::default(),
        link: Default::default(),
    });
    log::debug!("{peer}: streaming {}", client_stats.path);
    // Watched from before the stream's first byte: a client_stats that reads the head and
    // leaves frees its place at once.
    let watch = shared.hub.watch(stream, Arc::clone(&place));
    let result = mjpeg::stream(
        stream,
        shown,
        params,
        &client_stats,
        &shared.senders,
        &shared.stop,
        |me| watch.attach(me),
    );
    drop(watch);
    log::debug!(
        "{peer}: stream of {} ended after {} frames: {}",
        client_stats.path,
        client_stats.frames.total(),
        match &result {
            Ok(()) => "server stopping".to_owned(),
            Err(e) => e.to_string(),
        }
    );
    crate::memory::want_trim();
    // A client that went away is the normal end of a stream, not an error.
    Ok(())
}

/// `GET /events`: every camera's settings as they change, holding a stream place.
fn serve_events(stream: &mut TcpStream, request: &Request, shared: &Shared) -> io::Result<()> {
    if request.is_head() {
        return io::Write::write_all(stream, events::HEAD.as_bytes());
    }
    let Some(place) = take_place(shared) else {
        return refuse_no_place(stream, shared);
    };
    let _place = PlaceGuard(shared, &place);
    // The admission thread gives the place back the moment the client hangs up.
    let _watch = shared.hub.watch(stream, Arc::clone(&place));
    // A client gone quiet in the middle of an event costs its thread the write deadline.
    let result = events::serve(
        stream,
        &shared.cameras,
        &shared.switches,
        &place.released,
        &shared.stop,
    );
    if let Err(e) = result {
        log::debug!("event stream ended: {e}");
    }
    Ok(())
}

/// A stream place, given back exactly once: by the admission thread the moment the client
/// hangs up, or by the stream's thread when the stream ends, whichever comes first.
#[derive(Default)]
pub(crate) struct StreamPlace {
    released: AtomicBool,
}

impl Shared {
    fn release_place(&self, place: &StreamPlace) {
        if !place.released.swap(true, Ordering::SeqCst) {
            self.streams.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A free stream place, if there is one. When all are taken, streams whose client already
/// hung up are ended first: a viewer that reconnects at once finds its own old place free.
fn take_place(shared: &Shared) -> Option<Arc<StreamPlace>> {
    for attempt in 0..2 {
        if shared.streams.fetch_add(1, Ordering::SeqCst) < shared.max_streams {
            return Some(Arc::new(StreamPlace::default()));
        }
        shared.streams.fetch_sub(1, Ordering::SeqCst);
        if attempt == 0 {
            admission::end_hung_up_streams(shared, 0);
        }
    }
    None
}

/// The answer when every stream place is taken.
fn refuse_no_place(stream: &mut TcpStream, shared: &Shared) -> io::Result<()> {
    let message = format!(
        "all {} stream places are taken; try again shortly\n",
        shared.max_streams
    );
    Response::text(503, &message)
        .with_header("Retry-After", "1")
        .write_to(stream, false, false)
}

/// Releases a stream place when the stream's thread is done with it.
struct PlaceGuard<'a>(&'a Shared, &'a StreamPlace);

impl Drop for PlaceGuard<'_> {
    fn drop(&mut self) {
        self.0.release_place(self.1);
    }
}

/// Clamps a client's `fps=` to the camera's rate: asking for more than the camera makes
/// is asking for every frame.
fn fit_to_camera(mut params: routes::StreamParams, camera: &Camera) -> routes::StreamParams {
    let camera_fps = camera.settings.fps();
    if let Some(fps) = params.fps.filter(|&fps| fps > camera_fps) {
        params.notes.push(format!(
            "fps={fps} is above the camera's {camera_fps} fps: every frame is sent"
        ));
        params.fps = None;
    }
    params
}

/// One log line per client for the stream parameters that were ignored or adjusted.
fn log_adjusted_params(peer: SocketAddr, request: &Request, params: &routes::StreamParams) {
    if !params.notes.is_empty() {
        log::info!(
            "{peer} {}: stream parameters adjusted: {}",
            request.path,
            params.notes.join("; ")
        );
    }
}

/// A fresh frame of `camera`, at the size and quality `params` ask for: the current one if
/// recent, else the next one.
fn snapshot(
    camera: &Arc<Camera>,
    params: &routes::StreamParams,
) -> io::Result<Option<Arc<crate::frame::Frame>>> {
    let variant = match mjpeg::variant_key(params, camera) {
        Some(key) => crate::variants::Variants::subscribe(camera, key)?,
        None => None,
    };
    let slot = variant.as_ref().map_or(&camera.slot, |v| &v.slot);
    let _viewer = slot.viewer();
    let latest = slot.latest();
    let age = monotonic_us().saturating_sub(latest.captured_us);
    if latest.seq > 0 && age < SNAPSHOT_MAX_AGE_US {
        return Ok(Some(latest));
    }
    Ok(slot.wait_newer(latest.seq, SNAPSHOT_TIMEOUT))
}

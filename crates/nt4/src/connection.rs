//! The client handle ([`NtClient`]) and its connection thread.
//!
//! The handle and the thread share one mutex-protected [`State`]: the topics the application
//! publishes (each with one retained value) and its subscriptions. The handle's methods change
//! that state and wake the thread through a socket pair; the thread never holds the mutex while
//! doing I/O. The thread waits in `poll(2)` on the websocket and the wake-up socket, so a write
//! by the application goes out at once and idle costs nothing but the protocol's pings.
//!
//! The websocket is non-blocking after the handshake. A server that stops reading makes
//! writes back up: then no new values are queued (each topic keeps only its latest value), and
//! after [`SEND_STALL_TIMEOUT`] the connection is dropped and re-established.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use log::{debug, info, warn};
use serde_json::{Map, Value as Json};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use super::NtError;
use super::protocol::{self, DataMessage, MessageError, RTT_ID, ServerMessage};
use super::value::{NtType, NtValue};

/// The standard NT4 port.
const DEFAULT_PORT: u16 = 5810;
const SUBPROTOCOL_V41: &str = "v4.1.networktables.first.wpi.edu";
const SUBPROTOCOL_V40: &str = "networktables.first.wpi.edu";
/// The `Sec-WebSocket-Protocol` offer for [`NtProtocol::V41`]: 4.1 preferred, 4.0 fallback.
const OFFER_V41: &str = "v4.1.networktables.first.wpi.edu, networktables.first.wpi.edu";
/// Time between connection attempts (ntcore's value).
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Limit for TCP connect plus websocket handshake (ntcore's value).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// 4.1 liveness: websocket PING period, and silence after which the server counts as gone.
const PING_INTERVAL: Duration = Duration::from_millis(200);
const V41_TIMEOUT: Duration = Duration::from_secs(1);
/// 4.0 liveness uses the time-sync message (spec: every 1 s, 3 s timeout).
const V40_RTT_INTERVAL: Duration = Duration::from_secs(1);
const V40_TIMEOUT: Duration = Duration::from_secs(3);
/// 4.1 re-measures the clock offset now and then; the lowest round trip wins.
const V41_RTT_INTERVAL: Duration = Duration::from_secs(3);
/// A round trip longer than this is not used for time sync.
const MAX_RTT_US: i64 = 5_000_000;
/// How long writes may stay blocked before the connection is dropped.
const SEND_STALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest message accepted from the server.
const MAX_INCOMING: usize = 2 << 20;
/// Largest amount of unsent data before the connection counts as broken.
const MAX_OUTGOING: usize = 4 << 20;
/// Updates waiting in one subscription's channel before new ones are dropped.
const SUBSCRIPTION_CAPACITY: usize = 256;
/// Messages read per loop turn, so a flooding server cannot starve the rest.
const READS_PER_TURN: usize = 256;
/// Topics the server may announce on one connection that match this client's
/// subscriptions or publications; others are not kept at all.
pub const MAX_ANNOUNCED: usize = 4096;
/// Pings from the server read (and answered by tungstenite) per window at most: a server
/// flooding pings gets its socket read less often, not a core.
const PINGS_PER_WINDOW: u32 = 5;
const PING_WINDOW: Duration = Duration::from_millis(100);
/// Publisher and subscriber ids stay within ntcore's accepted range.
const MAX_UID: i64 = 0x7fff_fff0;

/// Which protocol revisions the client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NtProtocol {
    /// Offer 4.1, fall back to 4.0 if that is all the server speaks.
    #[default]
    V41,
    /// Offer 4.0 only.
    V40,
}

impl std::fmt::Display for NtProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NtProtocol::V41 => "NT 4.1",
            NtProtocol::V40 => "NT 4.0",
        })
    }
}

/// Where to connect and as whom.
#[derive(Debug, Clone)]
pub struct NtClientConfig {
    /// `host`, `host:port` or `[ipv6]:port`; the port defaults to 5810.
    pub server: String,
    /// The name in `/nt/<client_name>`. The server makes it unique by appending `@N`.
    pub client_name: String,
    /// The revisions to offer; the default (4.1 with 4.0 fallback) suits every server.
    pub protocol: NtProtocol,
}

impl NtClientConfig {
    pub fn new(server: impl Into<String>, client_name: impl Into<String>) -> Self {
        NtClientConfig {
            server: server.into(),
            client_name: client_name.into(),
            protocol: NtProtocol::default(),
        }
    }
}

/// A value received for a subscribed topic.
#[derive(Debug, Clone, PartialEq)]
pub struct NtUpdate {
    pub topic: String,
    pub value: NtValue,
    /// Server time of the value in microseconds (0 for a default).
    pub timestamp_us: i64,
}

/// A NetworkTables 4 client; see the [module docs](super). Dropping it stops the thread.
pub struct NtClient {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// The protocol of the live connection: 0 none, 1 for 4.0, 2 for 4.1.
    connection: AtomicU8,
    stop: AtomicBool,
    /// Topics announced on the live connection and kept.
    announced: std::sync::atomic::AtomicUsize,
    /// Writing a byte here wakes the thread.
    waker: UnixStream,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn connection(&self) -> Option<NtProtocol> {
        match self.connection.load(Ordering::Acquire) {
            1 => Some(NtProtocol::V40),
            2 => Some(NtProtocol::V41),
            _ => None,
        }
    }

    fn set_connection(&self, protocol: Option<NtProtocol>) {
        let code = match protocol {
            None => 0,
            Some(NtProtocol::V40) => 1,
            Some(NtProtocol::V41) => 2,
        };
        self.connection.store(code, Ordering::Release);
    }

    fn wake(&self) {
        // Non-blocking; a full socket already holds a wake-up.
        let _ = (&self.waker).write(&[1]);
    }
}

struct State {
    topics: BTreeMap<String, Published>,
    subs: Vec<Subscription>,
    next_uid: i64,
}

impl State {
    fn alloc_uid(&mut self) -> i64 {
        let uid = self.next_uid;
        self.next_uid = if uid >= MAX_UID { 1 } else { uid + 1 };
        uid
    }
}

struct Published {
    pubuid: i64,
    ty: NtType,
    properties: Map<String, Json>,
    value: Option<Retained>,
}

/// The one value kept for a published topic.
struct Retained {
    value: NtValue,
    /// Some local write was a normal `set` (not only `set_default`s).
    strong: bool,
    /// When the application wrote it: the base of its timestamp.
    written: Instant,
    /// Server timestamp it was sent or received with on this connection; before that 1 for
    /// normal writes and 0 for defaults.
    timestamp_us: i64,
    /// Still to be sent on the current connection.
    pending: bool,
}

struct Subscription {
    subuid: i64,
    prefixes: Vec<String>,
    tx: Sender<NtUpdate>,
    /// The channel was full at the last delivery (so the drop was already logged).
    overflowing: bool,
    /// The receiver was dropped: unsubscribe.
    closed: bool,
}

impl NtClient {
    /// Validates the configuration and starts the connection thread. Returns at once; the
    /// thread connects in the background (see [`NtClient::is_connected`]).
    pub fn start(config: NtClientConfig) -> Result<NtClient, NtError> {
        let (host, port) = parse_server(&config.server)
            .ok_or_else(|| NtError::InvalidServer(config.server.clone()))?;
        let name = &config.client_name;
        if name.is_empty() || name.contains('@') || name.chars().any(char::is_control) {
            return Err(NtError::InvalidClientName(name.clone()));
        }
        let uri_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let url = format!("ws://{uri_host}:{port}/nt/{}", encode_path_segment(name));
        let (waker, wake_rx) = UnixStream::pair().map_err(NtError::Spawn)?;
        waker.set_nonblocking(true).map_err(NtError::Spawn)?;
        wake_rx.set_nonblocking(true).map_err(NtError::Spawn)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                topics: BTreeMap::new(),
                subs: Vec::new(),
                next_uid: 1,
            }),
            connection: AtomicU8::new(0),
            stop: AtomicBool::new(false),
            announced: std::sync::atomic::AtomicUsize::new(0),
            waker,
        });
        let worker = Worker {
            shared: shared.clone(),
            label: format!("{uri_host}:{port}"),
            host,
            port,
            url,
            protocol: config.protocol,
            epoch: Instant::now(),
            wake_rx,
        };
        let thread = std::thread::Builder::new()
            .name("nt4-client".into())
            .spawn(move || worker.run())
            .map_err(NtError::Spawn)?;
        Ok(NtClient {
            shared,
            thread: Some(thread),
        })
    }

    /// Starts publishing `topic` with type `ty` and `properties` (a JSON object, or null for
    /// none; e.g. `{"retained": true}` keeps the topic on the server while this client is
    /// away). Publishing a topic again with the same type does nothing.
    pub fn publish(&self, topic: &str, ty: NtType, properties: Json) -> Result<(), NtError> {
        if topic.is_empty() {
            return Err(NtError::EmptyTopic);
        }
        let properties = match properties {
            Json::Null => Map::new(),
            Json::Object(map) => map,
            _ => return Err(NtError::InvalidProperties(topic.to_owned())),
        };
        let mut state = self.shared.lock();
        if let Some(existing) = state.topics.get(topic) {
            return if existing.ty == ty {
                Ok(())
            } else {
                Err(NtError::TypeMismatch {
                    topic: topic.to_owned(),
                    published: existing.ty,
                    requested: ty,
                })
            };
        }
        let pubuid = state.alloc_uid();
        state.topics.insert(
            topic.to_owned(),
            Published {
                pubuid,
                ty,
                properties,
                value: None,
            },
        );
        drop(state);
        self.shared.wake();
        Ok(())
    }

    /// Stops publishing `topic` and forgets its value.
    pub fn unpublish(&self, topic: &str) -> Result<(), NtError> {
        let removed = self.shared.lock().topics.remove(topic);
        if removed.is_none() {
            return Err(NtError::NotPublished(topic.to_owned()));
        }
        self.shared.wake();
        Ok(())
    }

    /// Sets the value of a published topic (a normal write, timestamped now). Sent once the
    /// clock is synchronised with the server; while disconnected only the latest value is
    /// kept, and sent after the next connection's time sync.
    pub fn set(&self, topic: &str, value: impl Into<NtValue>) -> Result<(), NtError> {
        self.write(topic, value.into(), true).map(|_| ())
    }

    /// Sets the value of a published topic with timestamp 0, if it has no value yet (neither
    /// set here nor received from the server). Returns whether it did. Any other client's
    /// write wins over a default, also when this client re-sends it after a reconnect.
    pub fn set_default(&self, topic: &str, value: impl Into<NtValue>) -> Result<bool, NtError> {
        self.write(topic, value.into(), false)
    }

    fn write(&self, topic: &str, value: NtValue, strong: bool) -> Result<bool, NtError> {
        let mut state = self.shared.lock();
        let published = state
            .topics
            .get_mut(topic)
            .ok_or_else(|| NtError::NotPublished(topic.to_owned()))?;
        if !value.fits(published.ty) {
            return Err(NtError::TypeMismatch {
                topic: topic.to_owned(),
                published: published.ty,
                requested: value.nt_type(),
            });
        }
        if !strong && published.value.is_some() {
            return Ok(false);
        }
        published.value = Some(Retained {
            value,
            strong,
            written: Instant::now(),
            timestamp_us: i64::from(strong),
            pending: true,
        });
        drop(state);
        self.shared.wake();
        Ok(true)
    }

    /// The value this client holds for a topic it publishes: its latest own write, or a newer
    /// value received for it through a subscription (see the [module docs](super)). `None`
    /// if the topic is not published here or has no value yet.
    ///
    /// A subscriber can compare an update with this to tell whether the update is still the
    /// topic's value or already lost against a newer local write.
    pub fn value(&self, topic: &str) -> Option<NtValue> {
        let state = self.shared.lock();
        state
            .topics
            .get(topic)
            .and_then(|t| t.value.as_ref())
            .map(|r| r.value.clone())
    }

    /// Subscribes to all topics whose names start with one of `prefixes` (`""` is every
    /// topic except the server's `$` meta topics). The channel receives the values the server
    /// sends: other clients' writes, and on every (re)connect the current value of each
    /// matching topic (ntcore does not echo this client's own writes back). Values whose type
    /// differs from the topic's are dropped, except for topics this client publishes (see the
    /// [module docs](super)). It holds up to
    /// 256 updates; when the receiver falls behind further, new updates are dropped (and
    /// logged). Dropping the receiver unsubscribes (noticed at the next matching update).
    pub fn subscribe(&self, prefixes: &[&str]) -> Receiver<NtUpdate> {
        let (tx, rx) = crossbeam_channel::bounded(SUBSCRIPTION_CAPACITY);
        let mut state = self.shared.lock();
        let subuid = state.alloc_uid();
        state.subs.push(Subscription {
            subuid,
            prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
            tx,
            overflowing: false,
            closed: false,
        });
        drop(state);
        self.shared.wake();
        rx
    }

    /// Whether the websocket connection to the server is up.
    /// Topics the server announced on the live connection that this client keeps: those
    /// under its subscriptions' prefixes or published by it, [`MAX_ANNOUNCED`] at most.
    pub fn announced_topics(&self) -> usize {
        self.shared.announced.load(Ordering::Relaxed)
    }

    pub fn is_connected(&self) -> bool {
        self.protocol().is_some()
    }

    /// The protocol revision of the current connection, `None` while disconnected.
    pub fn protocol(&self) -> Option<NtProtocol> {
        self.shared.connection()
    }

    /// Closes the connection and joins the thread (the same as dropping the client).
    pub fn stop(self) {}
}

impl Drop for NtClient {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("NetworkTables client thread panicked");
            }
        }
    }
}

/// Parses `host`, `host:port`, `[ipv6]` or `[ipv6]:port` (or a bare IPv6 address).
pub(crate) fn parse_server(server: &str) -> Option<(String, u16)> {
    let s = server.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Some((addr.ip().to_string(), addr.port()));
    }
    if let Ok(ip) = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Some((ip.to_string(), DEFAULT_PORT));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().ok().filter(|p| *p != 0)?),
        None => (s, DEFAULT_PORT),
    };
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    valid.then(|| (host.to_owned(), port))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The thread

/// Why a connection attempt failed or a connection ended.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("cannot resolve the server address: {0}")]
    Resolve(#[source] io::Error),
    #[error("{0}")]
    Connect(#[source] io::Error),
    #[error("websocket: {0}")]
    WebSocket(#[source] Box<tungstenite::Error>),
    #[error("the server closed the connection{0}")]
    Closed(String),
    #[error("nothing heard from the server for {0:?}")]
    Silent(Duration),
    #[error("the server stopped reading (writes blocked for {0:?})")]
    SendStalled(Duration),
}

impl From<tungstenite::Error> for ConnError {
    fn from(e: tungstenite::Error) -> Self {
        ConnError::WebSocket(Box::new(e))
    }
}

fn is_would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if io.kind() == io::ErrorKind::WouldBlock)
}

struct Worker {
    shared: Arc<Shared>,
    /// `host:port` for log lines.
    label: String,
    host: String,
    port: u16,
    url: String,
    protocol: NtProtocol,
    /// Zero of the local clock sent in time-sync messages.
    epoch: Instant,
    wake_rx: UnixStream,
}

impl Worker {
    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    fn run(self) {
        let mut next_attempt = Instant::now();
        let mut failure_logged = false;
        while !self.stopping() {
            let now = Instant::now();
            if now < next_attempt {
                self.wait(None, next_attempt - now);
                continue;
            }
            next_attempt = now + RETRY_INTERVAL;
            match self.connect() {
                Ok((ws, version)) => {
                    failure_logged = false;
                    info!("NetworkTables: connected to {} ({version})", self.label);
                    self.shared.set_connection(Some(version));
                    let result = Connection::new(&self, ws, version).run();
                    self.shared.set_connection(None);
                    match result {
                        Ok(()) => info!(
                            "NetworkTables: disconnected from {} (client stopped)",
                            self.label
                        ),
                        Err(e) => warn!(
                            "NetworkTables: disconnected from {}: {e}; reconnecting",
                            self.label
                        ),
                    }
                }
                Err(e) if !failure_logged => {
                    info!(
                        "NetworkTables: cannot connect to {}: {e}; retrying every second",
                        self.label
                    );
                    failure_logged = true;
                }
                Err(e) => debug!("NetworkTables: cannot connect to {}: {e}", self.label),
            }
        }
    }

    /// Waits until `timeout` passes, the application wakes the thread, or `socket` has one
    /// of the poll events asked for. The caller then simply tries everything (reads, flush).
    fn wait(&self, socket: Option<(RawFd, libc::c_short)>, timeout: Duration) {
        let wake = pollfd(self.wake_rx.as_raw_fd(), libc::POLLIN);
        let mut fds = match socket {
            Some((fd, events)) => [wake, pollfd(fd, events)],
            None => [wake, pollfd(-1, 0)], // negative fds are ignored by poll(2)
        };
        // Round up so a sub-millisecond wait does not spin.
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        // SAFETY: `fds` is a valid, exclusively borrowed array of `pollfd` for the whole call,
        // and its length is passed alongside.
        let _ = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        let mut buf = [0u8; 64];
        while matches!((&self.wake_rx).read(&mut buf), Ok(n) if n > 0) {}
    }

    fn local_us(&self, t: Instant) -> i64 {
        i64::try_from(t.saturating_duration_since(self.epoch).as_micros()).unwrap_or(i64::MAX)
    }

    fn connect(&self) -> Result<(WebSocket<NetStream>, NtProtocol), ConnError> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let addrs = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(ConnError::Resolve)?;
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address");
        let mut tcp = None;
        for addr in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                last_error = io::ErrorKind::TimedOut.into();
                break;
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last_error = e,
            }
        }
        let tcp = tcp.ok_or(ConnError::Connect(last_error))?;
        tcp.set_nodelay(true).map_err(ConnError::Connect)?;

        let mut request = self.url.as_str().into_client_request()?;
        let offer = match self.protocol {
            NtProtocol::V41 => HeaderValue::from_static(OFFER_V41),
            NtProtocol::V40 => HeaderValue::from_static(SUBPROTOCOL_V40),
        };
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", offer);
        let config = WebSocketConfig::default()
            .read_buffer_size(16 << 10)
            .max_message_size(Some(MAX_INCOMING))
            .max_frame_size(Some(MAX_INCOMING))
            .max_write_buffer_size(MAX_OUTGOING);
        let stream = NetStream {
            tcp,
            deadline: Some(deadline),
        };
        let (mut ws, response) = tungstenite::client::client_with_config(
            request,
            stream,
            Some(config),
        )
        .map_err(|e| match e {
            HandshakeError::Failure(e) => ConnError::from(e),
            HandshakeError::Interrupted(_) => ConnError::Connect(io::ErrorKind::TimedOut.into()),
        })?;
        let version = match response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(HeaderValue::as_bytes)
        {
            Some(p) if p == SUBPROTOCOL_V41.as_bytes() => NtProtocol::V41,
            _ => NtProtocol::V40,
        };
        ws.get_mut()
            .finish_handshake()
            .map_err(ConnError::Connect)?;
        Ok((ws, version))
    }
}

/// Removes from `sent` the publisher or subscription ids no longer `live`, queueing the
/// `retire` message (unpublish, unsubscribe) for each.
fn retire_gone(
    sent: &mut HashSet<i64>,
    live: &HashSet<i64>,
    retire: fn(i64) -> Json,
    control: &mut Vec<Json>,
) {
    sent.retain(|uid| {
        let keep = live.contains(uid);
        if !keep {
            control.push(retire(*uid));
        }
        keep
    });
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// The TCP stream under the websocket: with a whole-handshake deadline (each read and write
/// gets the time left), then non-blocking.
struct NetStream {
    tcp: TcpStream,
    deadline: Option<Instant>,
}

impl NetStream {
    fn time_left(&self) -> io::Result<Option<Duration>> {
        match self.deadline {
            None => Ok(None),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(io::ErrorKind::TimedOut.into())
                } else {
                    Ok(Some(left))
                }
            }
        }
    }

    fn finish_handshake(&mut self) -> io::Result<()> {
        self.deadline = None;
        self.tcp.set_read_timeout(None)?;
        self.tcp.set_write_timeout(None)?;
        self.tcp.set_nonblocking(true)
    }
}

impl Read for NetStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(left) = self.time_left()? {
            self.tcp.set_read_timeout(Some(left))?;
        }
        self.tcp.read(buf)
    }
}

impl Write for NetStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(left) = self.time_left()? {
            self.tcp.set_write_timeout(Some(left))?;
        }
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// A topic as the server announced it on this connection.
struct Announced {
    name: String,
    ty: NtType,
}

/// One live connection: per-connection state (topic ids, clock offset) dies with it.
struct Connection<'w> {
    worker: &'w Worker,
    ws: WebSocket<NetStream>,
    version: NtProtocol,
    started: Instant,
    announced: HashMap<i64, Announced>,
    /// Publisher and subscription ids sent on this connection.
    published: HashSet<i64>,
    subscribed: HashSet<i64>,
    /// Server time minus local time (µs), from the lowest round trip so far.
    offset_us: Option<i64>,
    best_rtt_us: i64,
    last_rx: Instant,
    next_ping: Instant,
    next_rtt: Instant,
    write_blocked_since: Option<Instant>,
    malformed_logged: bool,
    /// Topic ids whose wrongly typed values were already logged.
    mistyped_logged: HashSet<i64>,
    /// Announcements beyond [`MAX_ANNOUNCED`] were logged.
    too_many_logged: bool,
    /// The server's pings in the current [`PING_WINDOW`], which started then.
    pings_in_window: u32,
    ping_window: Instant,
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        self.shared().announced.store(0, Ordering::Relaxed);
    }
}

impl<'w> Connection<'w> {
    fn new(worker: &'w Worker, ws: WebSocket<NetStream>, version: NtProtocol) -> Self {
        let now = Instant::now();
        Connection {
            worker,
            ws,
            version,
            started: now,
            announced: HashMap::new(),
            published: HashSet::new(),
            subscribed: HashSet::new(),
            offset_us: None,
            best_rtt_us: i64::MAX,
            last_rx: now,
            next_ping: now,
            next_rtt: now,
            write_blocked_since: None,
            malformed_logged: false,
            mistyped_logged: HashSet::new(),
            too_many_logged: false,
            pings_in_window: 0,
            ping_window: now,
        }
    }

    fn shared(&self) -> &'w Shared {
        &self.worker.shared
    }

    /// Runs until the application stops the client (`Ok`) or the connection fails.
    fn run(mut self) -> Result<(), ConnError> {
        // Every retained value goes out again on a new connection. Timestamps of the old
        // connection mean nothing to this one (the server may have rebooted, its clock with
        // it): as the spec says, they count as 1 for normal writes and 0 for defaults.
        for topic in self.shared().lock().topics.values_mut() {
            if let Some(value) = &mut topic.value {
                value.pending = true;
                value.timestamp_us = i64::from(value.strong);
            }
        }
        let (timeout, rtt_interval) = match self.version {
            NtProtocol::V41 => (V41_TIMEOUT, V41_RTT_INTERVAL),
            NtProtocol::V40 => (V40_TIMEOUT, V40_RTT_INTERVAL),
        };
        loop {
            if self.worker.stopping() {
                // Best effort: queue a close frame and push it out without waiting.
                let _ = self.ws.close(None);
                let _ = self.ws.flush();
                return Ok(());
            }
            let more_to_read = self.read_available()?;
            let now = Instant::now();
            if now.duration_since(self.last_rx) > timeout {
                return Err(ConnError::Silent(timeout));
            }
            match self.write_blocked_since {
                Some(since) if now.duration_since(since) > SEND_STALL_TIMEOUT => {
                    return Err(ConnError::SendStalled(SEND_STALL_TIMEOUT));
                }
                Some(_) => {}
                None => {
                    // Time sync first: the spec wants the RTT measured before other traffic.
                    if now >= self.next_rtt {
                        let mut frame = Vec::new();
                        protocol::encode_rtt_request(&mut frame, self.worker.local_us(now));
                        self.send(Message::binary(frame))?;
                        self.next_rtt = now + rtt_interval;
                    }
                    if self.version == NtProtocol::V41 && now >= self.next_ping {
                        self.send(Message::Ping(Default::default()))?;
                        self.next_ping = now + PING_INTERVAL;
                    }
                    self.send_changes()?;
                }
            }
            self.flush()?;

            let mut wait = if more_to_read {
                Duration::ZERO
            } else {
                let mut deadline = (self.last_rx + timeout).min(self.next_rtt);
                if self.version == NtProtocol::V41 {
                    deadline = deadline.min(self.next_ping);
                }
                deadline.saturating_duration_since(Instant::now())
            };
            let mut events = libc::POLLIN;
            if let Some(until) = self.pings_throttled(Instant::now()) {
                events = 0;
                wait = wait.min(until.saturating_duration_since(Instant::now()));
            }
            if self.write_blocked_since.is_some() {
                events |= libc::POLLOUT;
                wait = wait.min(SEND_STALL_TIMEOUT);
            }
            let fd = self.ws.get_ref().tcp.as_raw_fd();
            self.worker.wait(Some((fd, events)), wait);
        }
    }

    fn send(&mut self, message: Message) -> Result<(), ConnError> {
        match self.ws.write(message) {
            // Queued in the websocket's buffer; flushed when the socket is writable.
            Err(e) if is_would_block(&e) => {
                self.write_blocked_since.get_or_insert_with(Instant::now);
                Ok(())
            }
            result => Ok(result?),
        }
    }

    fn flush(&mut self) -> Result<(), ConnError> {
        match self.ws.flush() {
            Ok(()) => {
                self.write_blocked_since = None;
                Ok(())
            }
            Err(e) if is_would_block(&e) => {
                self.write_blocked_since.get_or_insert_with(Instant::now);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Server time for a local instant (never below 1: 0 means "default").
    fn server_time(&self, offset_us: i64, t: Instant) -> i64 {
        self.worker.local_us(t).saturating_add(offset_us).max(1)
    }

    /// Sends what the application changed: publishes, subscriptions, values.
    fn send_changes(&mut self) -> Result<(), ConnError> {
        let mut control = Vec::new();
        let mut values = Vec::new();
        {
            let mut state = self.shared().lock();
            let state = &mut *state;

            let live = state.topics.values().map(|t| t.pubuid).collect();
            retire_gone(
                &mut self.published,
                &live,
                protocol::unpublish_message,
                &mut control,
            );
            for (name, topic) in &mut state.topics {
                if self.published.insert(topic.pubuid) {
                    control.push(protocol::publish_message(
                        name,
                        topic.pubuid,
                        topic.ty.as_str(),
                        &topic.properties,
                    ));
                }
                let Some(retained) = &mut topic.value else {
                    continue;
                };
                if !retained.pending {
                    continue;
                }
                let timestamp_us = match (retained.strong, self.offset_us) {
                    (false, _) => 0,
                    // A value written before this connection counts as written now.
                    (true, Some(offset)) => {
                        self.server_time(offset, retained.written.max(self.started))
                    }
                    (true, None) => continue, // waits for time sync
                };
                match protocol::encode_value_message(
                    &mut values,
                    topic.pubuid,
                    timestamp_us,
                    &retained.value,
                ) {
                    Ok(()) => retained.timestamp_us = timestamp_us,
                    Err(e) => warn!("NetworkTables: not sending {name}: {e}"),
                }
                retained.pending = false;
            }

            state.subs.retain(|s| !s.closed);
            let live = state.subs.iter().map(|s| s.subuid).collect();
            retire_gone(
                &mut self.subscribed,
                &live,
                protocol::unsubscribe_message,
                &mut control,
            );
            for sub in &state.subs {
                if self.subscribed.insert(sub.subuid) {
                    control.push(protocol::subscribe_message(sub.subuid, &sub.prefixes));
                }
            }
        }
        // Control messages first: values refer to the pubuids they publish.
        if !control.is_empty() {
            self.send(Message::text(Json::Array(control).to_string()))?;
        }
        if !values.is_empty() {
            self.send(Message::binary(values))?;
        }
        Ok(())
    }

    /// Reads and handles what has arrived. Returns whether more may be waiting.
    fn read_available(&mut self) -> Result<bool, ConnError> {
        for _ in 0..READS_PER_TURN {
            if self.pings_throttled(Instant::now()).is_some() {
                return Ok(false);
            }
            match self.ws.read() {
                Ok(message) => {
                    self.last_rx = Instant::now();
                    match message {
                        Message::Text(text) => self.handle_text(text.as_str()),
                        Message::Binary(data) => self.handle_binary(&data),
                        Message::Close(frame) => {
                            let why = frame
                                .map(|f| format!(": {} {}", f.code, f.reason))
                                .unwrap_or_default();
                            return Err(ConnError::Closed(why));
                        }
                        // tungstenite answers pings itself; pongs only prove liveness.
                        Message::Ping(_) => self.pings_in_window += 1,
                        Message::Pong(_) | Message::Frame(_) => {}
                    }
                }
                Err(e) if is_would_block(&e) => return Ok(false),
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Err(ConnError::Closed(String::new()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// The end of the current ping window if the server's pings used up its budget: the
    /// socket is not read until then.
    fn pings_throttled(&mut self, now: Instant) -> Option<Instant> {
        if now.duration_since(self.ping_window) >= PING_WINDOW {
            self.ping_window = now;
            self.pings_in_window = 0;
        }
        (self.pings_in_window >= PINGS_PER_WINDOW).then_some(self.ping_window + PING_WINDOW)
    }

    fn malformed(&mut self, e: MessageError) {
        if self.malformed_logged {
            debug!(
                "NetworkTables: ignoring a message from {}: {e}",
                self.worker.label
            );
        } else {
            warn!(
                "NetworkTables: ignoring a message from {}: {e} (more are logged at debug level)",
                self.worker.label
            );
            self.malformed_logged = true;
        }
    }

    fn handle_text(&mut self, text: &str) {
        let messages = match protocol::decode_text_frame(text) {
            Ok(messages) => messages,
            Err(e) => return self.malformed(e),
        };
        for message in messages {
            match message {
                Ok(ServerMessage::Announce {
                    name,
                    id,
                    type_str,
                    pubuid,
                    ..
                }) => {
                    let ty = NtType::from_type_str(&type_str);
                    self.mistyped_logged.remove(&id);
                    let wanted = {
                        let state = self.shared().lock();
                        let ours = state.topics.get(&name).map(|t| t.ty);
                        if let Some(ours) =
                            ours.filter(|t| pubuid.is_some() && t.type_index() != ty.type_index())
                        {
                            warn!(
                                "NetworkTables: the server has {name} as {type_str}: values published as {ours} are ignored"
                            );
                        }
                        ours.is_some()
                            || state.subs.iter().any(|sub| {
                                !sub.closed && sub.prefixes.iter().any(|p| name.starts_with(p))
                            })
                    };
                    if !wanted {
                        // Not asked for: a value for it would be dropped anyway.
                        self.announced.remove(&id);
                    } else if self.announced.len() >= MAX_ANNOUNCED
                        && !self.announced.contains_key(&id)
                    {
                        if !self.too_many_logged {
                            warn!(
                                "NetworkTables: {} announced more than {MAX_ANNOUNCED} topics; ignoring the others (first: {})",
                                self.worker.label,
                                super::log_limit::shown(&NtValue::String(name))
                            );
                            self.too_many_logged = true;
                        }
                    } else {
                        self.announced.insert(id, Announced { name, ty });
                    }
                }
                Ok(ServerMessage::Unannounce { id, .. }) => {
                    self.announced.remove(&id);
                    self.mistyped_logged.remove(&id);
                }
                Ok(ServerMessage::Properties { .. }) => {}
                Err(e) => self.malformed(e),
            }
        }
        self.shared()
            .announced
            .store(self.announced.len(), Ordering::Relaxed);
    }

    fn handle_binary(&mut self, frame: &[u8]) {
        for message in protocol::decode_binary_frame(frame) {
            match message {
                Ok(m) if m.id == RTT_ID => self.time_sync(m),
                Ok(m) => self.deliver(m),
                Err(e) => self.malformed(e),
            }
        }
    }

    fn time_sync(&mut self, m: DataMessage) {
        let NtValue::Int(sent_us) = m.value else {
            return self.malformed(MessageError::BadField("time sync value"));
        };
        let now_us = self.worker.local_us(Instant::now());
        let rtt_us = now_us.saturating_sub(sent_us);
        if !(0..=MAX_RTT_US).contains(&rtt_us) {
            return self.malformed(MessageError::BadField("time sync echo"));
        }
        if rtt_us < self.best_rtt_us {
            let first = self.offset_us.is_none();
            self.best_rtt_us = rtt_us;
            self.offset_us = Some(
                m.timestamp_us
                    .saturating_add(rtt_us / 2)
                    .saturating_sub(now_us),
            );
            if first {
                debug!(
                    "NetworkTables: clock synchronised with {} (round trip {rtt_us} µs)",
                    self.worker.label
                );
            }
        }
    }

    fn deliver(&mut self, m: DataMessage) {
        let Some(topic) = self.announced.get(&m.id) else {
            debug!("NetworkTables: value for unannounced topic id {}", m.id);
            return;
        };
        let mut state = self.shared().lock();
        if !m.value.fits(topic.ty) {
            if state.topics.contains_key(&topic.name) {
                // Another client writes a value of another type to a topic published here
                // (ntcore's server forwards and caches it). The subscriber, who owns the
                // topic, gets it to refuse it and write its own value back.
                debug!(
                    "NetworkTables: {} got a {} value; passed to subscribers",
                    topic.name,
                    m.value.nt_type()
                );
            } else {
                if self.mistyped_logged.insert(m.id) {
                    warn!(
                        "NetworkTables: {} is announced as {} but got a {} value: ignored",
                        topic.name,
                        topic.ty,
                        m.value.nt_type()
                    );
                }
                return;
            }
        }
        if let Some(ours) = state
            .topics
            .get_mut(&topic.name)
            .filter(|t| m.value.fits(t.ty))
        {
            match &mut ours.value {
                // An unsent normal write, or a newer value of ours, stays.
                Some(r) if (r.pending && r.strong) || m.timestamp_us < r.timestamp_us => {}
                Some(r) => {
                    r.value = m.value.clone();
                    r.timestamp_us = m.timestamp_us;
                }
                None => {
                    ours.value = Some(Retained {
                        value: m.value.clone(),
                        strong: false,
                        written: Instant::now(),
                        timestamp_us: m.timestamp_us,
                        pending: false,
                    });
                }
            }
        }
        for sub in &mut state.subs {
            if sub.closed
                || !sub
                    .prefixes
                    .iter()
                    .any(|p| topic.name.starts_with(p.as_str()))
            {
                continue;
            }
            let update = NtUpdate {
                topic: topic.name.clone(),
                value: m.value.clone(),
                timestamp_us: m.timestamp_us,
            };
            match sub.tx.try_send(update) {
                Ok(()) => sub.overflowing = false,
                Err(TrySendError::Full(_)) => {
                    if !sub.overflowing {
                        warn!(
                            "NetworkTables: subscriber to {:?} is not keeping up; dropping updates",
                            sub.prefixes
                        );
                        sub.overflowing = true;
                    }
                }
                Err(TrySendError::Disconnected(_)) => sub.closed = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(
            parse_server("10.12.34.2"),
            Some(("10.12.34.2".into(), 5810))
        );
        assert_eq!(
            parse_server("127.0.0.1:1234"),
            Some(("127.0.0.1".into(), 1234))
        );
        assert_eq!(
            parse_server("roborio-1234-frc.local"),
            Some(("roborio-1234-frc.local".into(), 5810))
        );
        assert_eq!(parse_server("localhost:99"), Some(("localhost".into(), 99)));
        assert_eq!(parse_server("[::1]:5811"), Some(("::1".into(), 5811)));
        assert_eq!(parse_server("::1"), Some(("::1".into(), 5810)));
        assert_eq!(parse_server("[::1]"), Some(("::1".into(), 5810)));
        for bad in [
            "",
            ":5810",
            "host:",
            "host:0",
            "host:99999",
            "a b",
            "x/y:1",
            "user@host",
        ] {
            assert_eq!(parse_server(bad), None, "{bad}");
        }
    }

    #[test]
    fn client_names_are_percent_encoded() {
        assert_eq!(encode_path_segment("frcstream-1.a_b~"), "frcstream-1.a_b~");
        assert_eq!(encode_path_segment("cam front/é"), "cam%20front%2F%C3%A9");
    }

    #[test]
    fn bad_configs_are_rejected() {
        assert!(matches!(
            NtClient::start(NtClientConfig::new("a b", "x")),
            Err(NtError::InvalidServer(_))
        ));
        assert!(matches!(
            NtClient::start(NtClientConfig::new("127.0.0.1:1", "a@b")),
            Err(NtError::InvalidClientName(_))
        ));
        assert!(matches!(
            NtClient::start(NtClientConfig::new("127.0.0.1:1", "")),
            Err(NtError::InvalidClientName(_))
        ));
    }

    #[test]
    fn api_checks_happen_in_memory() {
        // Port 1 on loopback refuses: the client keeps retrying in the background.
        let nt = NtClient::start(NtClientConfig::new("127.0.0.1:1", "unit")).expect("start");
        assert!(matches!(nt.set("/a", 1), Err(NtError::NotPublished(_))));
        nt.publish("/a", NtType::Int, Json::Null).expect("publish");
        nt.publish("/a", NtType::Int, Json::Null)
            .expect("same type again");
        assert!(matches!(
            nt.publish("/a", NtType::Double, Json::Null),
            Err(NtError::TypeMismatch { .. })
        ));
        assert!(matches!(
            nt.publish("", NtType::Int, Json::Null),
            Err(NtError::EmptyTopic)
        ));
        assert!(matches!(
            nt.publish("/b", NtType::Int, Json::from(3)),
            Err(NtError::InvalidProperties(_))
        ));
        assert!(matches!(
            nt.set("/a", 1.5),
            Err(NtError::TypeMismatch { .. })
        ));
        assert!(nt.set_default("/a", 1).expect("default"));
        assert!(!nt.set_default("/a", 2).expect("default again"));
        nt.set("/a", 3).expect("set");
        assert_eq!(nt.value("/a"), Some(NtValue::Int(3)));
        assert_eq!(nt.value("/nothing"), None);
        nt.publish("/j", NtType::Json, Json::Null)
            .expect("publish json");
        nt.set("/j", "{}").expect("json takes strings");
        nt.unpublish("/a").expect("unpublish");
        assert!(matches!(nt.unpublish("/a"), Err(NtError::NotPublished(_))));
        assert!(!nt.is_connected());
        nt.stop();
    }
}

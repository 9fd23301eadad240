//! The connection thread: the one owner of the socket.
//!
//! It connects (TCP, then the websocket handshake offering NT 4.1 and 4.0), retries every
//! [`RETRY_INTERVAL`] while the server is absent, and runs one [`Session`] per live
//! connection: time sync, pings (4.1) or time-sync liveness (4.0), announcements and their
//! ids, and sending what the application changed in the shared state ([`crate::shared`]).
//! It waits in `poll(2)` on the websocket and the wake-up socket, so a write by the
//! application goes out at once and idle costs nothing but the protocol's pings; it never
//! holds the shared state's mutex while doing I/O.
//!
//! The websocket is non-blocking after the handshake. A server that stops reading makes
//! writes back up: then no new values are queued (each topic keeps only its latest value), and
//! after [`SEND_STALL_TIMEOUT`] the connection is dropped and re-established.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::TrySendError;
use log::{debug, info, warn};
use serde_json::Value as Json;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::config::{Endpoint, NtProtocol};
use crate::protocol::{self, DataMessage, MessageError, RTT_ID, ServerMessage};
use crate::shared::{NtUpdate, Retained, Shared};
use crate::time_sync::{ClockFilter, monotonic_us};
use crate::value::{NtType, NtValue};

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
/// How long writes may stay blocked before the connection is dropped.
const SEND_STALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest message accepted from the server.
const MAX_INCOMING: usize = 2 << 20;
/// Largest amount of unsent data before the connection counts as broken.
const MAX_OUTGOING: usize = 4 << 20;
/// Messages read per loop turn, so a flooding server cannot starve the rest.
const READS_PER_TURN: usize = 256;
/// Topics the server may announce on one connection that match this client's
/// subscriptions or publications; others are not kept at all.
pub const MAX_ANNOUNCED: usize = 4096;
/// Pings from the server read (and answered by tungstenite) per window at most: a server
/// flooding pings gets its socket read less often, not a core.
const PINGS_PER_WINDOW: u32 = 5;
const PING_WINDOW: Duration = Duration::from_millis(100);
/// Characters of a name from the server shown in a log line.
const MAX_SHOWN_CHARS: usize = 60;

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

/// Starts the connection thread for `endpoint`; it runs until [`Shared::stop`].
/// `wake_rx` is the thread's end of the wake-up socket pair (non-blocking).
pub(crate) fn spawn(
    shared: Arc<Shared>,
    endpoint: Endpoint,
    wake_rx: UnixStream,
) -> io::Result<JoinHandle<()>> {
    let thread = ConnectionThread {
        shared,
        endpoint,
        epoch: Instant::now(),
        epoch_us: monotonic_us(),
        wake_rx,
    };
    std::thread::Builder::new()
        .name("nt4-client".into())
        .spawn(move || thread.run())
}

/// The thread's own state, across connections.
struct ConnectionThread {
    shared: Arc<Shared>,
    endpoint: Endpoint,
    /// An instant and the same instant on the local clock of time-sync messages
    /// (`CLOCK_MONOTONIC` in µs, which `Instant` reads on Linux).
    epoch: Instant,
    epoch_us: i64,
    wake_rx: UnixStream,
}

impl ConnectionThread {
    fn stopping(&self) -> bool {
        self.shared.stopping()
    }

    /// `host:port` for log lines.
    fn label(&self) -> &str {
        &self.endpoint.label
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
                    info!("NetworkTables: connected to {} ({version})", self.label());
                    self.shared.set_connection(Some(version));
                    let result = Session::new(&self, ws, version).run();
                    self.shared.set_connection(None);
                    match result {
                        Ok(()) => info!(
                            "NetworkTables: disconnected from {} (client stopped)",
                            self.label()
                        ),
                        Err(e) => warn!(
                            "NetworkTables: disconnected from {}: {e}; reconnecting",
                            self.label()
                        ),
                    }
                }
                Err(e) if !failure_logged => {
                    info!(
                        "NetworkTables: cannot connect to {}: {e}; retrying every second",
                        self.label()
                    );
                    failure_logged = true;
                }
                Err(e) => debug!("NetworkTables: cannot connect to {}: {e}", self.label()),
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

    /// `t` on the local clock of time sync ([`monotonic_us`]).
    fn local_us(&self, t: Instant) -> i64 {
        let since_epoch =
            i64::try_from(t.saturating_duration_since(self.epoch).as_micros()).unwrap_or(i64::MAX);
        self.epoch_us.saturating_add(since_epoch)
    }

    fn connect(&self) -> Result<(WebSocket<NetStream>, NtProtocol), ConnError> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let addrs = (self.endpoint.host.as_str(), self.endpoint.port)
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

        let mut request = self.endpoint.url.as_str().into_client_request()?;
        let offer = match self.endpoint.protocol {
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

/// A name from the server for a log line: cut to [`MAX_SHOWN_CHARS`] characters.
fn shortened(name: &str) -> String {
    let count = name.chars().count();
    if count <= MAX_SHOWN_CHARS {
        return format!("{name:?}");
    }
    let head: String = name.chars().take(MAX_SHOWN_CHARS).collect();
    format!("{head:?}… ({count} characters)")
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
struct Session<'w> {
    thread: &'w ConnectionThread,
    ws: WebSocket<NetStream>,
    version: NtProtocol,
    started: Instant,
    announced: HashMap<i64, Announced>,
    /// Publisher and subscription ids sent on this connection.
    published: HashSet<i64>,
    subscribed: HashSet<i64>,
    /// Server time minus local time (µs), from the lowest recent round trip.
    offset_us: Option<i64>,
    clock: ClockFilter,
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

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.shared().set_announced(0);
        self.shared().set_time_sync(None);
    }
}

impl<'w> Session<'w> {
    fn new(thread: &'w ConnectionThread, ws: WebSocket<NetStream>, version: NtProtocol) -> Self {
        let now = Instant::now();
        Session {
            thread,
            ws,
            version,
            started: now,
            announced: HashMap::new(),
            published: HashSet::new(),
            subscribed: HashSet::new(),
            offset_us: None,
            clock: ClockFilter::default(),
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
        &self.thread.shared
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
            if self.thread.stopping() {
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
                        protocol::encode_rtt_request(&mut frame, self.thread.local_us(now));
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
            self.thread.wait(Some((fd, events)), wait);
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
        self.thread.local_us(t).saturating_add(offset_us).max(1)
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
                self.thread.label()
            );
        } else {
            warn!(
                "NetworkTables: ignoring a message from {}: {e} (more are logged at debug level)",
                self.thread.label()
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
                                self.thread.label(),
                                shortened(&name)
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
        self.shared().set_announced(self.announced.len());
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
        let now_us = self.thread.local_us(Instant::now());
        let sync = match self.clock.record(sent_us, m.timestamp_us, now_us) {
            Ok(sync) => sync,
            Err(e) => {
                debug!("NetworkTables: {e}");
                return self.malformed(MessageError::BadField("time sync echo"));
            }
        };
        if self.offset_us.is_none() {
            debug!(
                "NetworkTables: clock synchronised with {} (round trip {} µs)",
                self.thread.label(),
                sync.rtt_us
            );
        }
        self.offset_us = Some(sync.offset_us);
        self.shared().set_time_sync(Some(sync));
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

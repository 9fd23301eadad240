//! Admission: one thread (`http-accept`) accepts every connection and reads the request
//! heads of all connections that have not finished one, with `poll(2)`. Only a complete
//! request gets a thread of its own (`http-client`); a connection kept alive goes back to
//! this thread between requests. The same `poll` watches every stream's socket for
//! hang-up, so a stream place is free the moment its client goes.
//!
//! Why one thread and not a thread per connection (as before): a connection that sends
//! nothing, or a byte a second, cost a thread and a place counted against the stream limit,
//! and 36 of them locked every viewer out (issue 15). Here an unfinished connection costs a
//! socket and the bytes it sent (none while idle), and it has a budget of its own that
//! can never starve the streams:
//!
//! - at most [`MAX_PENDING`] unfinished connections, [`MAX_PENDING_PER_ADDRESS`] from one
//!   address; a new connection beyond either evicts the oldest (of that address, or of
//!   all), so the newest connection, the one a viewer just opened, is always read;
//! - [`HEAD_DEADLINE`] for the whole request from the accept (or for the next request of
//!   a kept-alive connection), not per read: trickling a byte a second does not extend it;
//! - heads are read as soon as a connection is accepted (a viewer's head is usually there
//!   already), and at most [`ACCEPT_BATCH`] connections are accepted per turn of the loop,
//!   so a flood of connects cannot keep the loop from reading.
//!
//! Threads per request rather than a pool: a stream holds its thread for its whole life
//! (it sleeps on the sender's work), `max_clients + 16` bounds them, and spawning one costs
//! tens of microseconds against a request's milliseconds.

use std::io::{self, ErrorKind, Read};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::request::{self, MAX_REQUEST_BYTES, Request, parse_request};
use super::response::Response;
use super::sender::StreamClient;
use super::{Shared, StreamPlace};
use crate::lock::lock;

/// Connections that have not finished a request (or idle between kept-alive requests).
pub const MAX_PENDING: usize = 256;
/// Of those, from one address.
pub const MAX_PENDING_PER_ADDRESS: usize = 64;
/// Time to send a whole request, head and body, counted from the accept (or from the end of
/// the previous response on a kept-alive connection).
pub const HEAD_DEADLINE: Duration = request::REQUEST_DEADLINE;
/// Connections taken from the kernel's queue per turn of the loop. Fewer than an address
/// may have pending: a connection accepted in one turn is still there to be read in the
/// next, however many more the same address opens meanwhile.
const ACCEPT_BATCH: usize = 32;
const _: () =
    assert!(ACCEPT_BATCH < MAX_PENDING_PER_ADDRESS && MAX_PENDING_PER_ADDRESS <= MAX_PENDING);
/// At most one `malloc_trim` this often (`memory.rs`).
const TRIM_INTERVAL: Duration = Duration::from_secs(1);
/// The loop looks at the stop flag at least this often.
const TICK: Duration = Duration::from_millis(500);

/// A connection handed back after a response, with what it sent past that request.
pub(super) struct Parked {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub pending: Vec<u8>,
}

/// A stream's socket watched for hang-up.
struct Watch {
    id: u64,
    fd: RawFd,
    /// The stream's client, once its stream has started.
    client: Option<Weak<StreamClient>>,
    place: Arc<StreamPlace>,
}

/// What the connection threads share with the admission thread.
pub(super) struct Hub {
    returned: Mutex<Vec<Parked>>,
    watches: Mutex<Vec<Watch>>,
    next_watch: std::sync::atomic::AtomicU64,
    /// Written to wake the admission thread from `poll`.
    wake: UnixStream,
}

impl Hub {
    /// The hub and the other end of its wake-up socket, for the admission thread.
    pub fn new() -> io::Result<(Hub, UnixStream)> {
        let (wake, woken) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        woken.set_nonblocking(true)?;
        Ok((
            Hub {
                returned: Mutex::new(Vec::new()),
                watches: Mutex::new(Vec::new()),
                next_watch: std::sync::atomic::AtomicU64::new(1),
                wake,
            },
            woken,
        ))
    }

    /// Wakes the admission thread (a full wake-up socket means it is awake already).
    pub fn wake(&self) {
        let _ = io::Write::write(&mut &self.wake, &[1]);
    }

    /// Hands a kept-alive connection back to the admission thread for its next request.
    pub fn give_back(&self, parked: Parked) {
        lock(&self.returned).push(parked);
        self.wake();
    }

    /// Connections handed back and not yet taken (closed when the server stops).
    pub fn clear(&self) {
        lock(&self.returned).clear();
    }

    /// Watches a stream's socket for hang-up while the guard lives, from before the
    /// stream's first byte: when the client closes its end, `place` is released at that
    /// moment, and the stream (its client attached with [`WatchGuard::attach`]) fails at
    /// once, whether or not a frame is being written.
    pub fn watch(&self, socket: &TcpStream, place: Arc<StreamPlace>) -> WatchGuard<'_> {
        let id = self.next_watch.fetch_add(1, Ordering::Relaxed);
        lock(&self.watches).push(Watch {
            id,
            fd: socket.as_raw_fd(),
            client: None,
            place,
        });
        self.wake();
        WatchGuard { hub: self, id }
    }
}

/// Ends a watch when dropped (before the socket is closed).
pub struct WatchGuard<'a> {
    hub: &'a Hub,
    id: u64,
}

impl WatchGuard<'_> {
    /// The stream's client now exists: a hang-up ends it. If the client hung up already,
    /// it ends now.
    pub fn attach(&self, client: &Arc<StreamClient>) {
        let mut watches = lock(&self.hub.watches);
        match watches.iter_mut().find(|w| w.id == self.id) {
            Some(watch) => watch.client = Some(Arc::downgrade(client)),
            None => {
                drop(watches);
                client.hang_up();
            }
        }
    }
}

impl Drop for WatchGuard<'_> {
    fn drop(&mut self) {
        lock(&self.hub.watches).retain(|w| w.id != self.id);
    }
}

/// Ends every watched stream whose client has hung up (closed its end, or reset), waiting
/// for one at most `timeout_ms`: the stream's place is released now, its thread ends at
/// once. Decided under the list of watches, so a descriptor closed and reused meanwhile is
/// never mistaken for a stream's.
pub(super) fn end_hung_up_streams(shared: &Shared, timeout_ms: libc::c_int) {
    let mut watches = lock(&shared.hub.watches);
    if watches.is_empty() {
        return;
    }
    let mut fds: Vec<libc::pollfd> = watches
        .iter()
        .map(|w| poll_for(w.fd, libc::POLLRDHUP))
        .collect();
    // SAFETY: `fds` is a live array of `fds.len()` pollfd structures; the descriptors stay
    // open while the watches (held locked) exist.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if ready <= 0 {
        return;
    }
    let mut index = 0;
    watches.retain(|watch| {
        let gone = fds[index].revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0;
        index += 1;
        if gone {
            shared.release_place(&watch.place);
            match watch.client.as_ref().and_then(Weak::upgrade) {
                Some(client) => client.hang_up(),
                // Not streaming yet: its first write fails.
                // SAFETY: the descriptor is open while its watch exists (held locked).
                None => unsafe {
                    libc::shutdown(watch.fd, libc::SHUT_RDWR);
                },
            }
        }
        !gone
    });
}

/// A connection that has not finished its request.
struct Pending {
    stream: TcpStream,
    peer: SocketAddr,
    /// What it sent so far (nothing allocated while it sends nothing).
    buffer: Vec<u8>,
    deadline: Instant,
}

/// The admission thread's loop; returns when the stop flag is set.
pub(super) fn run(listener: &TcpListener, woken: &UnixStream, shared: &Arc<Shared>) {
    let mut pending: Vec<Pending> = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut last_error_log: Option<Instant> = None;
    let mut last_trim = Instant::now();
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        // Memory freed by streams and variants that ended goes back to the system.
        if last_trim.elapsed() >= TRIM_INTERVAL {
            crate::memory::trim_if_wanted();
            last_trim = Instant::now();
        }
        let returned = std::mem::take(&mut *lock(&shared.hub.returned));
        for parked in returned {
            let connection = Pending {
                stream: parked.stream,
                peer: parked.peer,
                buffer: parked.pending,
                deadline: Instant::now() + HEAD_DEADLINE,
            };
            // It may hold the next request whole already (pipelining).
            if let Some(connection) = advance(connection, false, shared) {
                admit(&mut pending, connection);
            }
        }

        fds.clear();
        fds.push(poll_for(listener.as_raw_fd(), libc::POLLIN));
        fds.push(poll_for(woken.as_raw_fd(), libc::POLLIN));
        for connection in &pending {
            fds.push(poll_for(
                connection.stream.as_raw_fd(),
                libc::POLLIN | libc::POLLRDHUP,
            ));
        }
        let watch_base = fds.len();
        let watching = {
            let watches = lock(&shared.hub.watches);
            fds.extend(watches.iter().map(|w| poll_for(w.fd, libc::POLLRDHUP)));
            watches.len()
        };
        // `pending` is in order of admission, so its first deadline is the nearest.
        let wait = pending.first().map_or(TICK, |p| {
            p.deadline
                .saturating_duration_since(Instant::now())
                .min(TICK)
        });
        let timeout = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        // SAFETY: `fds` is a live array of `fds.len()` pollfd structures.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                log::warn!("http: poll failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
            continue;
        }
        if fds[1].revents != 0 {
            let mut drain = [0u8; 64];
            while matches!((&*woken).read(&mut drain), Ok(n) if n > 0) {}
        }

        // Heads that arrived, connections that closed.
        let base = 2;
        let before = std::mem::take(&mut pending);
        for (index, connection) in before.into_iter().enumerate() {
            let revents = fds[base + index].revents;
            if revents == 0 {
                pending.push(connection);
            } else if let Some(connection) = read_more(connection, shared) {
                pending.push(connection);
            }
        }

        // Streams whose client hung up.
        if fds[watch_base..watch_base + watching]
            .iter()
            .any(|fd| fd.revents != 0)
        {
            end_hung_up_streams(shared, 0);
        }

        // The whole request was due by the deadline.
        let now = Instant::now();
        pending.retain_mut(|connection| {
            if now < connection.deadline {
                return true;
            }
            if !connection.buffer.is_empty() {
                answer(&mut connection.stream, &request::ReadError::Timeout);
            }
            false
        });

        if fds[0].revents != 0 {
            accept_some(listener, &mut pending, shared, &mut last_error_log);
        }
    }
}

fn poll_for(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Accepts up to a batch of connections, reading each one's head at once.
fn accept_some(
    listener: &TcpListener,
    pending: &mut Vec<Pending>,
    shared: &Arc<Shared>,
    last_error_log: &mut Option<Instant>,
) {
    for _ in 0..ACCEPT_BATCH {
        let (stream, peer) = match listener.accept() {
            Ok(pair) => pair,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // The server is stopping: `stop()` shut the listening socket down, and accept
            // says EINVAL. Not worth a warning (the robot VM's journal showed one at every
            // service restart).
            Err(_) if shared.stop.load(Ordering::SeqCst) => return,
            Err(e) => {
                // Out of descriptors: the oldest unfinished connection makes room.
                let out_of_descriptors =
                    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    log::warn!("http: accept failed: {e}");
                    *last_error_log = Some(Instant::now());
                }
                if out_of_descriptors && !pending.is_empty() {
                    pending.remove(0);
                    continue;
                }
                // Never spin on a persistent error.
                std::thread::sleep(Duration::from_millis(20));
                return;
            }
        };
        if stream.set_nonblocking(true).is_err() {
            continue;
        }
        super::configure(&stream);
        let connection = Pending {
            stream,
            peer,
            buffer: Vec::new(),
            deadline: Instant::now() + HEAD_DEADLINE,
        };
        if let Some(connection) = read_more(connection, shared) {
            admit(pending, connection);
        }
    }
}

/// Adds an unfinished connection, evicting the oldest of its address or of all if the
/// budget is full: a new connection is always read.
fn admit(pending: &mut Vec<Pending>, connection: Pending) {
    let ip: IpAddr = connection.peer.ip();
    let same_address = pending.iter().filter(|p| p.peer.ip() == ip).count();
    if same_address >= MAX_PENDING_PER_ADDRESS {
        if let Some(oldest) = pending.iter().position(|p| p.peer.ip() == ip) {
            let evicted = pending.remove(oldest);
            log::debug!(
                "{}: dropped, unfinished (address over its budget)",
                evicted.peer
            );
        }
    } else if pending.len() >= MAX_PENDING {
        let evicted = pending.remove(0);
        log::debug!("{}: dropped, unfinished (budget full)", evicted.peer);
    }
    pending.push(connection);
}

/// Reads what the connection has sent, up to one request's worth, then looks for a whole
/// request. Returns the connection if it is still unfinished.
fn read_more(mut connection: Pending, shared: &Arc<Shared>) -> Option<Pending> {
    let mut chunk = [0u8; 4096];
    let mut closed = false;
    while connection.buffer.len() < MAX_REQUEST_BYTES {
        let room = (MAX_REQUEST_BYTES - connection.buffer.len()).min(chunk.len());
        match connection.stream.read(&mut chunk[..room]) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => connection.buffer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    advance(connection, closed, shared)
}

/// Hands a whole request to a thread of its own, answers a broken one, or keeps waiting.
fn advance(mut connection: Pending, closed: bool, shared: &Arc<Shared>) -> Option<Pending> {
    match parse_request(&connection.buffer) {
        Ok(Some((request, used))) => {
            let rest = connection.buffer.split_off(used);
            dispatch(connection.stream, connection.peer, request, rest, shared);
            None
        }
        // Gone before finishing (or between requests): nobody to answer.
        Ok(None) if closed => None,
        // Cannot happen (the parser decides before), but a full buffer must never be
        // polled again: it would be readable forever.
        Ok(None) if connection.buffer.len() >= MAX_REQUEST_BYTES => {
            let too_large = request::ReadError::BodyTooLarge(connection.buffer.len());
            answer(&mut connection.stream, &too_large);
            None
        }
        Ok(None) => Some(connection),
        Err(e) => {
            log::debug!("{}: {e:?}", connection.peer);
            answer(&mut connection.stream, &e);
            None
        }
    }
}

/// Answers a request that could not be read, without waiting (the answer is small and the
/// socket's buffer empty); the connection is then closed.
fn answer(stream: &mut TcpStream, error: &request::ReadError) {
    if let Some((status, message)) = error.response() {
        let _ = Response::text(status, &message).write_to(stream, false, false);
    }
}

/// Starts a thread for a whole request, or answers `503` when every thread place is taken.
fn dispatch(
    stream: TcpStream,
    peer: SocketAddr,
    request: Request,
    rest: Vec<u8>,
    shared: &Arc<Shared>,
) {
    let max_connections = shared.max_streams + super::EXTRA_CONNECTIONS;
    if shared.connections.load(Ordering::SeqCst) >= max_connections {
        let mut stream = stream;
        let _ = Response::text(503, "too many connections; try again shortly\n")
            .with_header("Retry-After", "1")
            .write_to(&mut stream, false, false);
        return;
    }
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
    if let Ok(copy) = stream.try_clone() {
        lock(&shared.open).insert(id, copy);
    }
    let thread_shared = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("http-client".into())
        .stack_size(super::CONNECTION_STACK_BYTES)
        .spawn(move || {
            super::serve_request(stream, peer, id, request, rest, &thread_shared);
            lock(&thread_shared.open).remove(&id);
            thread_shared.connections.fetch_sub(1, Ordering::SeqCst);
        });
    if let Err(e) = spawned {
        log::warn!("cannot start a thread for {peer}: {e}");
        lock(&shared.open).remove(&id);
        shared.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

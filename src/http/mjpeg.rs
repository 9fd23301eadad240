//! The MJPEG stream writer: `multipart/x-mixed-replace` exactly as cscore writes it
//! (boundary `boundarydonotcross`, CRLF, `Content-Length` and `X-Timestamp` in each part),
//! with the boundary sent right after each frame so browsers show it at once.
//!
//! The slot's sender thread (`sender.rs`) offers each new frame to every client with a
//! write that does not block; a client's own thread finishes what its socket could not
//! take at once, then catches up with the newest frame: a slow client skips frames, it
//! never queues them. Each part goes out in one `writev` from the shared frame buffer: no
//! per-client copy of the JPEG in the program.
//!
//! (`sendfile` from an in-memory file written once per frame was tried, to spare the
//! kernel's copy into each socket too: 10% less CPU in the VM, 25–40% more on loopback,
//! and in the VM a stream dropped now and then by the 2 s write deadline, which `writev`
//! never showed. See docs/BENCHMARKS.md.)

use std::io::{self, IoSlice, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::response::{WRITE_DEADLINE, write_all_vectored};
use super::routes::StreamParams;
use super::sender::{self, Client, ClientState, Job, Next};
use crate::camera::Camera;
use crate::frame::{Frame, FrameKind, monotonic_us};
use crate::frame_slot::FrameSlot;
use crate::stats::ClientStats;
use crate::variants::{VariantKey, Variants};

pub const BOUNDARY: &str = "boundarydonotcross";
/// What follows every JPEG: the boundary that closes its part (`BOUNDARY`, spelt out).
const PART_TAIL: &str = "\r\n--boundarydonotcross\r\n";

/// A frame older than this is not shown to a client that just connected: it would be a
/// frozen picture from before anyone watched.
const MAX_FIRST_FRAME_AGE_US: u64 = 500_000;

/// How long a client sleeps before it looks at the stop flag again.
const WAKE_INTERVAL: Duration = Duration::from_millis(500);

/// The response head of a stream, cscore's.
pub fn stream_head() -> String {
    format!(
        "HTTP/1.0 200 OK\r\n\
         Server: frcstream\r\n\
         Connection: close\r\n\
         Cache-Control: no-store, no-cache, must-revalidate, pre-check=0, post-check=0, max-age=0\r\n\
         Pragma: no-cache\r\n\
         Expires: Mon, 3 Jan 2000 12:34:56 GMT\r\n\
         Access-Control-Allow-Origin: *\r\n\
         Content-Type: multipart/x-mixed-replace;boundary={BOUNDARY}\r\n\
         \r\n"
    )
}

/// Streams `camera` to `out` until the client goes away, the write times out (a stalled
/// client), or the server stops. The slot's sender (`sender.rs`) sends the frames; this
/// thread sends the first one, and finishes parts the socket could not take at once.
///
/// `watch` is called with the client once it exists and returns a guard held while the
/// stream lasts (the server watches the socket for hang-up with it).
pub fn stream<G>(
    out: &mut TcpStream,
    camera: &Arc<Camera>,
    params: &StreamParams,
    client: &Arc<ClientStats>,
    stop: &AtomicBool,
    watch: impl FnOnce(&Arc<Client>) -> G,
) -> io::Result<()> {
    // The camera's own frames, or a variant at the size and quality this client asks for.
    let variant = match variant_key(params, camera) {
        Some(key) => Variants::subscribe(camera, key)?,
        None => None,
    };
    let slot = variant.as_ref().map_or(&camera.slot, |v| &v.slot);
    let first_boundary = format!("--{BOUNDARY}\r\n");
    write_all_vectored(
        out,
        &mut [
            IoSlice::new(stream_head().as_bytes()),
            IoSlice::new(first_boundary.as_bytes()),
        ],
    )?;
    // From here on the sender writes without blocking; this thread waits with poll().
    out.set_nonblocking(true)?;
    let _viewer = slot.viewer();
    let _registration = camera.stats.add_client(Arc::clone(client));
    let delivered = {
        let (camera, client) = (Arc::clone(camera), Arc::clone(client));
        move |frame: &Frame, bytes: usize| {
            let now = monotonic_us();
            camera
                .stats
                .latency
                .record(now.saturating_sub(frame.captured_us));
            client.frames.add(1);
            client.bytes.add(bytes as u64);
            camera.stats.delivered.add(1);
            camera.stats.bytes_sent.add(bytes as u64);
        }
    };
    // A client on this machine (a vision program) does not cross the radio.
    let remote = !out.peer_addr().is_ok_and(|a| a.ip().is_loopback());
    client.link.remote.store(remote, Ordering::Relaxed);
    let me = Arc::new(Client {
        socket: out.try_clone()?,
        // This thread sends first: the current frame if it is fresh.
        state: Mutex::new(ClientState::new(
            first_frame_floor(slot),
            params.fps,
            remote,
        )),
        wake: Condvar::new(),
        delivered: Box::new(delivered),
        stats: Arc::clone(client),
    });
    let _watch = watch(&me);
    let _subscription = sender::subscribe(slot, &me)?;
    catch_up(&me, slot)?;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let job = {
            let state = me.lock();
            let (mut state, _) = me
                .wake
                .wait_timeout_while(state, WAKE_INTERVAL, |s| s.job.is_none())
                .unwrap_or_else(PoisonError::into_inner);
            state.job.take()
        };
        match job {
            None if slot.is_closed() => return Ok(()),
            None => {}
            Some(Job::Fail(e)) => return Err(e),
            Some(Job::Finish { frame, sent }) => {
                finish(&me, &frame, sent)?;
                catch_up(&me, slot)?;
            }
            Some(Job::Wait) => catch_up(&me, slot)?,
        }
    }
}

/// Sends the rest of a part the sender started (or all of it), waiting for the socket.
fn finish(client: &Client, frame: &Frame, sent: usize) -> io::Result<()> {
    let part = Part::new(frame);
    part.send_rest(&client.socket, sent)?;
    (client.delivered)(frame, part.len());
    Ok(())
}

/// Sends the slot's newest frame while there is one this client has not had (waiting for
/// the socket, and for a remote client's link to clear), then hands the client back to
/// the sender. Deciding under the client's lock that there is none, and clearing `busy`
/// in the same breath, means a frame the sender skipped while this thread was busy is not
/// lost: it is the newest one here.
fn catch_up(client: &Client, slot: &FrameSlot) -> io::Result<()> {
    // A link that moves nothing for the write deadline drops the client, as a socket
    // that takes nothing does.
    let mut progress = (u64::MAX, Instant::now());
    loop {
        let newest = slot.latest();
        let frame = {
            let mut state = client.lock();
            match state.next_part(&newest, monotonic_us(), client) {
                Next::Nothing => {
                    state.busy = false;
                    return Ok(());
                }
                Next::Send(frame) => Some(frame),
                Next::Wait => None,
            }
        };
        let frame = match frame {
            Some(frame) => frame,
            None => {
                let (in_flight, retry_us) = client
                    .lock()
                    .link
                    .as_ref()
                    .map_or((0, 1_000), |link| (link.in_flight, link.retry_us()));
                if in_flight < progress.0 {
                    progress = (in_flight, Instant::now());
                } else if progress.1.elapsed() >= WRITE_DEADLINE {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the link to the client moved nothing for too long",
                    ));
                }
                std::thread::sleep(Duration::from_micros(retry_us));
                continue;
            }
        };
        finish(client, &frame, 0)?;
        progress = (u64::MAX, Instant::now());
    }
}

/// The sequence number a new client starts after: the current frame is sent at once if it
/// is fresh, otherwise the client waits for the next one.
fn first_frame_floor(slot: &FrameSlot) -> u64 {
    let latest = slot.latest();
    let age = monotonic_us().saturating_sub(latest.captured_us);
    if latest.seq > 0 && age < MAX_FIRST_FRAME_AGE_US {
        latest.seq - 1
    } else {
        latest.seq
    }
}

/// The variant a client's parameters ask for, or `None` for the camera's own frames:
/// `resolution=` other than the camera's size (a side of 0 is the camera's own, as in
/// cscore), or `compression=` 0–100 (-1 is the camera's own JPEG). A size is clamped to the
/// camera's, each side on its own: upscaling costs a core per client and shows nothing more.
pub fn variant_key(params: &StreamParams, camera: &Camera) -> Option<VariantKey> {
    let mode = camera.mode();
    let or_own = |side: u32, own: u32| if side == 0 { own } else { side };
    let size = params
        .resolution
        .map(|(w, h)| {
            (
                or_own(w, mode.width).min(mode.width),
                or_own(h, mode.height).min(mode.height),
            )
        })
        .filter(|&size| size != (mode.width, mode.height));
    let quality = match params.compression {
        None | Some(-1) => None,
        Some(q) => Some(q.clamp(1, 100) as u8),
    };
    (size.is_some() || quality.is_some()).then_some(VariantKey { size, quality })
}

/// The headers of a frame's part.
fn part_head(frame: &Frame) -> String {
    let mut head = format!(
        "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {}.{:06}\r\n",
        frame.jpeg().len(),
        frame.captured_us / 1_000_000,
        frame.captured_us % 1_000_000
    );
    // The NO SIGNAL card says so, for programs watching the stream (and the tests).
    if frame.kind == FrameKind::NoSignal {
        head.push_str("X-Frame-Kind: no-signal\r\n");
    }
    head.push_str("\r\n");
    head
}

/// One part of the stream: a frame's headers, its JPEG, and the boundary that ends it.
pub(crate) struct Part<'a> {
    frame: &'a Frame,
    head: String,
}

impl<'a> Part<'a> {
    pub fn new(frame: &'a Frame) -> Part<'a> {
        Part {
            frame,
            head: part_head(frame),
        }
    }

    pub fn len(&self) -> usize {
        self.head.len() + self.frame.jpeg().len() + PART_TAIL.len()
    }

    /// Sends what the non-blocking `socket` takes now of the part from byte `from` on,
    /// in one `writev`: returns how much (0 when its buffer is full).
    pub fn send_some(&self, socket: &TcpStream, from: usize) -> io::Result<usize> {
        let mut slices = [
            IoSlice::new(self.head.as_bytes()),
            IoSlice::new(self.frame.jpeg()),
            IoSlice::new(PART_TAIL.as_bytes()),
        ];
        let mut slices = &mut slices[..];
        IoSlice::advance_slices(&mut slices, from);
        match (&*socket).write_vectored(slices) {
            Ok(sent) => Ok(sent),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Sends the rest of the part from byte `from` on, waiting for the socket; a part not
    /// sent within [`WRITE_DEADLINE`] drops the client.
    pub fn send_rest(&self, socket: &TcpStream, mut from: usize) -> io::Result<()> {
        let deadline = Instant::now() + WRITE_DEADLINE;
        while from < self.len() {
            match self.send_some(socket, from) {
                Ok(0) => wait_writable(socket, deadline)?,
                Ok(sent) => from += sent,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Waits until `socket` can take more bytes, at the latest until `deadline`.
fn wait_writable(socket: &TcpStream, deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client took too long to receive",
        ));
    }
    let mut poll = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    let timeout = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
    // SAFETY: one pollfd we own, for a descriptor that stays open during the call.
    if unsafe { libc::poll(&mut poll, 1, timeout) } < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    /// A connected pair of sockets; the second's bytes are read to the end by a thread.
    fn socket_pair() -> (TcpStream, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let out = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (mut receiver, _) = listener.accept().expect("accept");
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            receiver.read_to_end(&mut got).expect("read");
            got
        });
        (out, reader)
    }

    #[test]
    fn a_part_is_framed_like_cscore() {
        let mut frame = Frame::from_jpeg(b"\xFF\xD8JPEG\xFF\xD9", 2, 2, 12_345_678);
        frame.seq = 1;
        let (out, reader) = socket_pair();
        let part = Part::new(&frame);
        part.send_rest(&out, 0).expect("send");
        drop(out);
        let expected: &[u8] = b"Content-Type: image/jpeg\r\nContent-Length: 8\r\nX-Timestamp: 12.345678\r\n\r\n\xFF\xD8JPEG\xFF\xD9\r\n--boundarydonotcross\r\n";
        assert_eq!(reader.join().expect("reader"), expected);
        assert_eq!(part.len(), expected.len());
        assert_eq!(PART_TAIL, format!("\r\n--{BOUNDARY}\r\n"));
    }

    #[test]
    fn a_part_started_elsewhere_is_finished_from_where_it_stopped() {
        let mut frame = Frame::from_jpeg(&[0x55; 70_000], 2, 2, 12_345_678);
        frame.kind = FrameKind::NoSignal;
        let (out, reader) = socket_pair();
        out.set_nonblocking(true).expect("non-blocking");
        let part = Part::new(&frame);
        part.send_rest(&out, 0).expect("send");
        part.send_rest(&out, 100).expect("send the rest");
        drop(out);
        let got = reader.join().expect("reader");
        let len = part.len();
        assert_eq!(got.len(), 2 * len - 100);
        assert_eq!(got[100..len], got[len..]);
        assert!(got.starts_with(
            b"Content-Type: image/jpeg\r\nContent-Length: 70000\r\nX-Timestamp: 12.345678\r\nX-Frame-Kind: no-signal\r\n\r\n"
        ));
    }

    #[test]
    fn a_socket_that_takes_nothing_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let out = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (receiver, _) = listener.accept().expect("accept");
        // Small socket buffers, as the server sets them: a few frames fill them.
        for (socket, option) in [(&out, libc::SO_SNDBUF), (&receiver, libc::SO_RCVBUF)] {
            let bytes: libc::c_int = 64 * 1024;
            // SAFETY: setsockopt on an open socket with a c_int of the stated size.
            unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    (&bytes as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        out.set_nonblocking(true).expect("non-blocking");
        let frame = Frame::from_jpeg(&[0x55; 4_000_000], 2, 2, 0);
        let started = Instant::now();
        let err = Part::new(&frame)
            .send_rest(&out, 0)
            .expect_err("nobody reads");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            started.elapsed() >= WRITE_DEADLINE,
            "{:?}",
            started.elapsed()
        );
    }
}

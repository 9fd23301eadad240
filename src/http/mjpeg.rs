//! An MJPEG stream request: `multipart/x-mixed-replace` with cscore's response head
//! (boundary `boundarydonotcross`), served from the camera's own frame slot or from the
//! variant at the size and quality the client asks for.
//!
//! Each part (`part.rs`) is sent right after its frame, boundary included, so browsers show
//! it at once. The slot's sender thread (`sender.rs`) offers each new frame to every client
//! with a write that does not block; a client's own thread finishes what its socket could
//! not take at once, then catches up with the newest frame: a slow client skips frames, it
//! never queues them. Each part goes out in one `writev` from the shared frame buffer: no
//! per-client copy of the JPEG in the program.
//!
//! (`sendfile` from an in-memory file written once per frame was tried, to spare the
//! kernel's copy into each socket too: 10% less CPU in the VM, 25–40% more on loopback,
//! and in the VM a stream dropped now and then by the 2 s write deadline, which `writev`
//! never showed. See docs/BENCHMARKS.md.)

use std::io::{self, IoSlice};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use arc_swap::ArcSwap;

use super::part::BOUNDARY;
use super::response::write_all_vectored;
use super::routes::StreamParams;
use super::sender::{DeliveryState, Senders, Served, StreamClient};
use crate::camera::Camera;
use crate::frame::{Frame, monotonic_us};
use crate::frame_slot::FrameSlot;
use crate::stats::StreamClientStats;
use crate::switch::Switch;
use crate::variants::{VariantKey, Variants};

/// A frame older than this is not shown to a client that just connected: it would be a
/// frozen picture from before anyone watched.
const MAX_FIRST_FRAME_AGE_US: u64 = 500_000;

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

/// What a stream shows: one camera, or whichever camera a switch selects.
pub enum Shown {
    Camera(Arc<Camera>),
    Switch(Arc<Switch>),
}

impl Shown {
    /// The camera whose frames go out now.
    pub fn camera(&self) -> Arc<Camera> {
        match self {
            Shown::Camera(camera) => Arc::clone(camera),
            Shown::Switch(switch) => switch.selected(),
        }
    }
}

/// Streams what `shown` shows to `out` until the client goes away, the write times out (a
/// stalled client), or the server stops. The slot's sender (`sender.rs`) sends the frames;
/// this thread sends the first one, and finishes parts the socket could not take at once.
/// A switch's stream moves to the selected camera's slot on the same connection: the next
/// part is the new camera's (a part carries its own JPEG, size included).
///
/// `senders` are the server's sender threads. `watch` is called with the client once it
/// exists and returns a guard held while the stream lasts (the server watches the socket
/// for hang-up with it).
pub fn stream<G>(
    out: &mut TcpStream,
    shown: &Shown,
    params: &StreamParams,
    client_stats: &Arc<StreamClientStats>,
    senders: &Arc<Senders>,
    stop: &AtomicBool,
    watch: impl FnOnce(&Arc<StreamClient>) -> G,
) -> io::Result<()> {
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
    // The camera whose statistics count what is delivered: the one shown.
    let counted = Arc::new(ArcSwap::new(shown.camera()));
    let delivered = {
        let (counted, client_stats) = (Arc::clone(&counted), Arc::clone(client_stats));
        move |frame: &Frame, bytes: usize| {
            let now = monotonic_us();
            let camera = counted.load();
            camera
                .stats
                .latency
                .record(now.saturating_sub(frame.captured_us));
            client_stats.frames.add(1);
            client_stats.bytes.add(bytes as u64);
            camera.stats.delivered.add(1);
            camera.stats.bytes_sent.add(bytes as u64);
        }
    };
    // A client on this machine (a vision program) does not cross the radio.
    let remote = !out.peer_addr().is_ok_and(|a| a.ip().is_loopback());
    client_stats.link.remote.store(remote, Ordering::Relaxed);
    let radio = match remote {
        true => Some(senders.radio.join(out)?),
        false => None,
    };
    let me = Arc::new(StreamClient {
        socket: out.try_clone()?,
        state: Mutex::new(DeliveryState::new(0, params.fps, radio)),
        wake: Condvar::new(),
        delivered: Box::new(delivered),
        stats: Arc::clone(client_stats),
        // Every camera's clock holds the same offset: a moved client keeps it right.
        robot_clock: Arc::clone(&shown.camera().robot_clock),
    });
    let _watch = watch(&me);
    let _following = match shown {
        Shown::Camera(_) => None,
        Shown::Switch(switch) => {
            let client = Arc::downgrade(&me);
            Some(switch.follow(Arc::new(move || {
                if let Some(client) = client.upgrade() {
                    client.move_on();
                }
            })))
        }
    };
    // A new client may get a frame from up to half a second ago; a moved one only the
    // current frame (a switch shows the new camera as it is now, not as it was).
    let mut max_first_age_us = MAX_FIRST_FRAME_AGE_US;
    loop {
        // Taken back before the selection is read: a switch after the read moves it again.
        me.moved();
        let camera = shown.camera();
        counted.store(Arc::clone(&camera));
        let watching = Watching {
            camera: &camera,
            params,
            client: &me,
            client_stats,
            senders,
        };
        if watching.serve(stop, max_first_age_us)? == Served::Stopped {
            return Ok(());
        }
        max_first_age_us = frame_interval_us(&camera);
    }
}

/// A stream client watching one camera: its slot or a variant of it.
struct Watching<'a> {
    camera: &'a Arc<Camera>,
    params: &'a StreamParams,
    client: &'a Arc<StreamClient>,
    client_stats: &'a Arc<StreamClientStats>,
    senders: &'a Arc<Senders>,
}

impl Watching<'_> {
    /// Serves the camera's frames (or the variant's at the client's size and quality) until
    /// the stream ends or moves; it is then no viewer of the camera any more.
    fn serve(&self, stop: &AtomicBool, max_first_age_us: u64) -> io::Result<Served> {
        let camera = self.camera;
        let variant = match variant_key(self.params, camera) {
            Some(key) => Variants::subscribe(camera, key)?,
            None => None,
        };
        let slot = variant.as_ref().map_or(&camera.slot, |v| &v.slot);
        let _viewer = slot.viewer();
        let _registration = camera
            .stats
            .add_stream_client(Arc::clone(self.client_stats));
        // This thread sends first: the current frame if it is fresh.
        self.client
            .start_on(first_frame_floor(slot, max_first_age_us));
        self.client
            .watch_on_radio(Arc::as_ptr(camera) as usize, camera.governor.weight());
        let _subscription = self.senders.subscribe(slot, self.client)?;
        self.client.serve(slot, stop)
    }
}

/// The time between two frames of `camera` at the rate in force.
fn frame_interval_us(camera: &Camera) -> u64 {
    1_000_000 / u64::from(camera.fps_in_force().max(1))
}

/// The sequence number a client starts after: the current frame is sent at once if it is
/// younger than `max_age_us`, otherwise the client waits for the next one.
fn first_frame_floor(slot: &FrameSlot, max_age_us: u64) -> u64 {
    let latest = slot.latest();
    let age = monotonic_us().saturating_sub(latest.captured_us);
    if latest.seq > 0 && age < max_age_us {
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

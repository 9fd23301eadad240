//! The MJPEG stream writer: `multipart/x-mixed-replace` exactly as cscore writes it
//! (boundary `boundarydonotcross`, CRLF, `Content-Length` and `X-Timestamp` in each part),
//! with the boundary sent right after each frame so browsers show it at once.
//!
//! Each client's thread sleeps on its camera's frame slot and writes whatever is newest
//! when it wakes: a slow client skips frames, it never queues them. Each part goes out in
//! one `writev` from the shared frame buffer: no per-client copy of the JPEG.

use std::io::{self, IoSlice, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::response::write_all_vectored;
use super::routes::StreamParams;
use crate::camera::Camera;
use crate::frame::{Frame, FrameKind, monotonic_us};
use crate::frame_slot::FrameSlot;
use crate::pacing::Pacer;
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
/// client), or the server stops.
pub fn stream<W: Write>(
    out: &mut W,
    camera: &Arc<Camera>,
    params: &StreamParams,
    client: &Arc<ClientStats>,
    stop: &AtomicBool,
) -> io::Result<()> {
    // The camera's own frames, or a variant at the size and quality this client asks for.
    let variant = match variant_key(params, camera) {
        Some(key) => Some(Variants::subscribe(camera, key)?),
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
    let _viewer = slot.viewer();
    let _registration = camera.stats.add_client(Arc::clone(client));
    let mut pacer = Pacer::default();
    let mut part_head = String::with_capacity(128);
    let mut last_seq = first_frame_floor(slot);
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Some(frame) = slot.wait_newer(last_seq, WAKE_INTERVAL) else {
            if slot.is_closed() {
                return Ok(());
            }
            continue;
        };
        last_seq = frame.seq;
        if let Some(fps) = params.fps {
            if !pacer.admit(frame.captured_us, fps) {
                continue;
            }
        }
        write_part(out, &frame, &mut part_head)?;
        let now = monotonic_us();
        camera
            .stats
            .latency
            .record(now.saturating_sub(frame.captured_us));
        let bytes = (part_head.len() + frame.jpeg().len() + PART_TAIL.len()) as u64;
        client.frames.add(1);
        client.bytes.add(bytes);
        camera.stats.delivered.add(1);
        camera.stats.bytes_sent.add(bytes);
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
/// `resolution=` other than the camera's size, or `compression=` 0–100 (-1 is the
/// camera's own JPEG).
pub fn variant_key(params: &StreamParams, camera: &Camera) -> Option<VariantKey> {
    let mode = camera.mode();
    let size = params
        .resolution
        .filter(|&size| size != (mode.width, mode.height));
    let quality = match params.compression {
        None | Some(-1) => None,
        Some(q) => Some(q.clamp(1, 100) as u8),
    };
    (size.is_some() || quality.is_some()).then_some(VariantKey { size, quality })
}

/// Writes one part: its headers, the JPEG, and the boundary that ends it.
fn write_part<W: Write>(out: &mut W, frame: &Frame, head: &mut String) -> io::Result<()> {
    use std::fmt::Write as _;
    head.clear();
    let _ = write!(
        head,
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
    write_all_vectored(
        out,
        &mut [
            IoSlice::new(head.as_bytes()),
            IoSlice::new(frame.jpeg()),
            IoSlice::new(PART_TAIL.as_bytes()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_framed_like_cscore() {
        let mut frame = Frame::from_jpeg(b"\xFF\xD8JPEG\xFF\xD9", 2, 2, 12_345_678);
        frame.seq = 1;
        let mut out = Vec::new();
        write_part(&mut out, &frame, &mut String::new()).expect("write");
        assert_eq!(
            out,
            b"Content-Type: image/jpeg\r\nContent-Length: 8\r\nX-Timestamp: 12.345678\r\n\r\n\xFF\xD8JPEG\xFF\xD9\r\n--boundarydonotcross\r\n"
        );
        assert_eq!(PART_TAIL, format!("\r\n--{BOUNDARY}\r\n"));
    }
}

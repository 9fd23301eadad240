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
use crate::frame::{Frame, monotonic_us};
use crate::pacing::Pacer;
use crate::stats::ClientStats;

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
    camera: &Camera,
    params: &StreamParams,
    client: &Arc<ClientStats>,
    stop: &AtomicBool,
) -> io::Result<()> {
    let first_boundary = format!("--{BOUNDARY}\r\n");
    write_all_vectored(
        out,
        &mut [
            IoSlice::new(stream_head().as_bytes()),
            IoSlice::new(first_boundary.as_bytes()),
        ],
    )?;
    let _viewer = camera.slot.viewer();
    let _registration = camera.stats.add_client(Arc::clone(client));
    let mut pacer = Pacer::default();
    let mut part_head = String::with_capacity(128);
    let mut last_seq = first_frame_floor(camera);
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Some(frame) = camera.slot.wait_newer(last_seq, WAKE_INTERVAL) else {
            if camera.slot.is_closed() {
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
fn first_frame_floor(camera: &Camera) -> u64 {
    let latest = camera.slot.latest();
    let age = monotonic_us().saturating_sub(latest.captured_us);
    if latest.seq > 0 && age < MAX_FIRST_FRAME_AGE_US {
        latest.seq - 1
    } else {
        latest.seq
    }
}

/// Writes one part: its headers, the JPEG, and the boundary that ends it.
fn write_part<W: Write>(out: &mut W, frame: &Frame, head: &mut String) -> io::Result<()> {
    use std::fmt::Write as _;
    head.clear();
    let _ = write!(
        head,
        "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {}.{:06}\r\n\r\n",
        frame.jpeg().len(),
        frame.captured_us / 1_000_000,
        frame.captured_us % 1_000_000
    );
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

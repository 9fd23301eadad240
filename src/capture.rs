//! The capture thread: one per camera. It pulls frames from the camera's source, applies
//! the camera's fps limit, encodes (or checks and passes through) only while someone
//! watches, and publishes the result to the camera's frame slot.
//!
//! It never waits on a client: publishing is a pointer swap. It stops when the shared stop
//! flag is set, within one poll interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::camera::Camera;
use crate::encode::{Encoder, Work};
use crate::pacing::Pacer;
use crate::source::{FrameSource, SourceError};

/// How long a source may block before the stop flag is looked at again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long to wait before asking a failed source again.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// Starts the capture thread of `camera`.
pub fn spawn(
    camera: Arc<Camera>,
    source: Box<dyn FrameSource>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("capture-{}", camera.name))
        .spawn(move || run(&camera, source, &stop))
}

fn run(camera: &Camera, mut source: Box<dyn FrameSource>, stop: &AtomicBool) {
    let mut encoder = match Encoder::new() {
        Ok(encoder) => encoder,
        Err(e) => {
            log::error!("{}: cannot start the JPEG encoder: {e}", camera.name);
            return;
        }
    };
    camera.set_mode(source.mode());
    camera.set_source_description(source.description());
    camera.set_connected(true);
    let mut pacer = Pacer::default();
    let stats = &camera.stats;
    while !stop.load(Ordering::Relaxed) {
        let frame = match source.next_frame(POLL_INTERVAL) {
            Ok(frame) => frame,
            Err(SourceError::Timeout) => continue,
            Err(e @ (SourceError::Disconnected(_) | SourceError::Failed(_))) => {
                log::warn!("{}: {e}", camera.name);
                camera.set_connected(false);
                std::thread::sleep(RETRY_INTERVAL);
                continue;
            }
        };
        stats.captured.add(1);
        if !camera.slot.has_viewers() {
            stats.idle_frames.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if !pacer.admit(frame.captured_us, camera.settings.fps()) {
            continue;
        }
        let seq = camera.slot.next_seq();
        match encoder.process(&frame, camera.settings.quality(), seq) {
            Ok((encoded, work)) => {
                let counter = match work {
                    Work::Encoded => &stats.encodes,
                    Work::PassedThrough => &stats.passthroughs,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                camera.slot.publish(encoded);
                stats.published.add(1);
            }
            Err(e) => {
                let dropped = stats.invalid_frames.fetch_add(1, Ordering::Relaxed) + 1;
                // The first bad frame, then one line per hundred: a broken camera must not
                // flood the log of a Pi.
                if dropped == 1 || dropped % 100 == 0 {
                    log::warn!("{}: dropped frame ({dropped} so far): {e}", camera.name);
                }
            }
        }
    }
    camera.slot.close();
}

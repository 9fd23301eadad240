//! Variants of a camera's stream: the same frames at another size or quality, for clients
//! that ask (`resolution=`, `compression=`, as Shuffleboard and Elastic do).
//!
//! Each distinct (size, quality) that some client watches gets one variant: a frame slot of
//! its own, fed by a thread of its own that re-encodes each new frame of the camera once
//! and shares the result with every client of that variant. An expensive variant only
//! delays its own clients: the camera's slot and the other variants go on. A variant
//! nobody watches any more ends with its last client, and its buffers with it.
//!
//! A variant knows the stream it re-encodes only through [`VariantSource`] (a camera
//! implements it): data flows from the camera to its variants, never back.
//!
//! What clients can make a camera spend is bounded: a size is never larger than the
//! camera's (`http/mjpeg.rs` clamps it), at most [`MAX_VARIANTS`] run at once, and their
//! pixels together are at most [`MAX_VARIANT_PIXEL_FACTOR`] times the camera's own. A
//! request beyond either gets the nearest variant already running (or the camera's own
//! stream), with one log line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;

use crate::frame_slot::FrameSlot;
use crate::transcode::Transcoder;

/// Variants of one camera running at once.
pub const MAX_VARIANTS: usize = 4;
/// All variants of a camera together encode at most this many times the camera's own
/// pixels per second (each variant runs at the camera's frame rate).
pub const MAX_VARIANT_PIXEL_FACTOR: u64 = 2;

/// What a variant needs of the stream it re-encodes.
pub trait VariantSource: Send + Sync + 'static {
    /// The name log lines give.
    fn name(&self) -> &str;
    /// The frames to re-encode.
    fn slot(&self) -> &Arc<FrameSlot>;
    /// The stream's width, height and frame rate now.
    fn size_and_fps(&self) -> (u32, u32, u32);
    /// The JPEG quality setting, for variants of the stream's own quality.
    fn quality(&self) -> u8;
    /// The stream's variants.
    fn variants(&self) -> &Variants;
}

/// What a variant is: a size (None: the camera's) and a quality (None: the camera's
/// quality setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VariantKey {
    pub size: Option<(u32, u32)>,
    pub quality: Option<u8>,
}

/// One variant, alive while some client holds it.
pub struct Variant {
    pub key: VariantKey,
    pub slot: Arc<FrameSlot>,
    encodes: AtomicU64,
}

impl Drop for Variant {
    fn drop(&mut self) {
        // Wakes the variant's thread so it sees nobody is left.
        self.slot.close();
    }
}

#[derive(Debug, Serialize)]
pub struct VariantReport {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub quality: Option<u8>,
    pub clients: usize,
    pub encodes: u64,
}

/// The variants of one camera.
#[derive(Default)]
pub struct Variants {
    live: Mutex<Vec<Weak<Variant>>>,
    /// Frames encoded for all variants together.
    pub encodes: AtomicU64,
}

impl Variants {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Variant>>> {
        crate::lock::lock(&self.live)
    }

    /// The variant `key` of `camera`, started if nobody watches it yet. Beyond the caps,
    /// the nearest variant running, or `None`: the camera's own stream is the nearest.
    pub fn subscribe<S: VariantSource>(
        camera: &Arc<S>,
        key: VariantKey,
    ) -> std::io::Result<Option<Arc<Variant>>> {
        let mut live = camera.variants().lock();
        live.retain(|v| v.strong_count() > 0);
        let running: Vec<Arc<Variant>> = live.iter().filter_map(Weak::upgrade).collect();
        if let Some(existing) = running.iter().find(|v| v.key == key) {
            return Ok(Some(Arc::clone(existing)));
        }
        let (width, height, fps) = camera.size_and_fps();
        let own = (width, height);
        let pixels = |key: &VariantKey| {
            let (w, h) = key.size.unwrap_or(own);
            u64::from(w) * u64::from(h)
        };
        let budget = MAX_VARIANT_PIXEL_FACTOR * u64::from(own.0) * u64::from(own.1);
        let in_use: u64 = running.iter().map(|v| pixels(&v.key)).sum();
        if running.len() >= MAX_VARIANTS || in_use + pixels(&key) > budget {
            let quality =
                |key: &VariantKey| f64::from(key.quality.unwrap_or_else(|| camera.quality()));
            let distance = |other: &VariantKey| {
                let (a, b) = (pixels(&key) as f64, pixels(other) as f64);
                (a - b).abs() / a.max(b).max(1.0) + (quality(&key) - quality(other)).abs() / 100.0
            };
            let own_key = VariantKey {
                size: None,
                quality: None,
            };
            let nearest = running
                .iter()
                .min_by(|a, b| distance(&a.key).total_cmp(&distance(&b.key)))
                .filter(|v| distance(&v.key) < distance(&own_key));
            log::info!(
                "{}: {} asked for; {} variants run with {:.1} Mpixel/s (at most {MAX_VARIANTS}, {:.1}): serving {} instead",
                camera.name(),
                describe(&key, own),
                running.len(),
                (in_use * u64::from(fps)) as f64 / 1e6,
                (budget * u64::from(fps)) as f64 / 1e6,
                nearest.map_or_else(
                    || "the camera's own stream".to_owned(),
                    |v| describe(&v.key, own)
                ),
            );
            return Ok(nearest.cloned());
        }
        let variant = Arc::new(Variant {
            key,
            slot: Arc::new(FrameSlot::new()),
            encodes: AtomicU64::new(0),
        });
        let thread_camera = Arc::clone(camera);
        let weak = Arc::downgrade(&variant);
        let slot = Arc::clone(&variant.slot);
        std::thread::Builder::new()
            .name(format!("variant-{}", camera.name()))
            .stack_size(256 * 1024)
            .spawn(move || {
                run(&*thread_camera, &weak, &slot, key);
                // The transcoder's buffers are freed; the slot's last frame goes with `slot`.
                drop(slot);
                crate::memory::want_trim();
            })?;
        live.push(Arc::downgrade(&variant));
        Ok(Some(variant))
    }

    /// The variants being watched now.
    pub fn report(&self) -> Vec<VariantReport> {
        self.lock()
            .iter()
            .filter_map(Weak::upgrade)
            .map(|v| VariantReport {
                width: v.key.size.map(|s| s.0),
                height: v.key.size.map(|s| s.1),
                quality: v.key.quality,
                clients: v.slot.viewer_count(),
                encodes: v.encodes.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// A variant as a log line says it.
fn describe(key: &VariantKey, own: (u32, u32)) -> String {
    let (w, h) = key.size.unwrap_or(own);
    match key.quality {
        Some(q) => format!("{w}x{h} at quality {q}"),
        None => format!("{w}x{h}"),
    }
}

/// How often a variant thread looks whether it still has clients while no frame comes.
const WAKE_INTERVAL: Duration = Duration::from_millis(500);

fn run(camera: &impl VariantSource, variant: &Weak<Variant>, slot: &FrameSlot, key: VariantKey) {
    let mut transcoder = match Transcoder::new() {
        Ok(t) => t,
        Err(e) => {
            log::error!("{}: cannot start a variant encoder: {e}", camera.name());
            return;
        }
    };
    // Watching the camera makes its capture thread encode while this variant has clients.
    let _viewer = camera.slot().viewer();
    let mut last_seq = 0;
    let mut failures = 0u64;
    loop {
        let frame = camera.slot().wait_newer(last_seq, WAKE_INTERVAL);
        if slot.is_closed() || camera.slot().is_closed() || variant.strong_count() == 0 {
            return;
        }
        let Some(frame) = frame else { continue };
        last_seq = frame.seq;
        let quality = key.quality.unwrap_or_else(|| camera.quality());
        match transcoder.transcode(&frame, key.size, quality, slot.next_seq()) {
            Ok(encoded) => {
                slot.publish(encoded);
                camera.variants().encodes.fetch_add(1, Ordering::Relaxed);
                if let Some(variant) = variant.upgrade() {
                    variant.encodes.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                failures += 1;
                if crate::stats::worth_a_log_line(failures) {
                    log::warn!(
                        "{}: variant {key:?} skipped a frame ({failures} so far): {e}",
                        camera.name()
                    );
                }
            }
        }
    }
}

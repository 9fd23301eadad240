//! Variants of a camera's stream: the same frames at another size or quality, for clients
//! that ask (`resolution=`, `compression=`, as Shuffleboard and Elastic do).
//!
//! Each distinct (size, quality) that some client watches gets one variant: a frame slot of
//! its own, fed by a thread of its own that re-encodes each new frame of the camera once
//! and shares the result with every client of that variant. An expensive variant only
//! delays its own clients: the camera's slot and the other variants go on. A variant
//! nobody watches any more ends with its last client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;

use crate::camera::Camera;
use crate::frame_slot::FrameSlot;
use crate::transcode::Transcoder;

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
        match self.live.lock() {
            Ok(live) => live,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The variant `key` of `camera`, started if nobody watches it yet.
    pub fn subscribe(camera: &Arc<Camera>, key: VariantKey) -> std::io::Result<Arc<Variant>> {
        let mut live = camera.variants.lock();
        live.retain(|v| v.strong_count() > 0);
        if let Some(existing) = live.iter().filter_map(Weak::upgrade).find(|v| v.key == key) {
            return Ok(existing);
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
            .name(format!("variant-{}", camera.name))
            .stack_size(256 * 1024)
            .spawn(move || run(&thread_camera, &weak, &slot, key))?;
        live.push(Arc::downgrade(&variant));
        Ok(variant)
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

/// How often a variant thread looks whether it still has clients while no frame comes.
const WAKE_INTERVAL: Duration = Duration::from_millis(500);

fn run(camera: &Camera, variant: &Weak<Variant>, slot: &FrameSlot, key: VariantKey) {
    let mut transcoder = match Transcoder::new() {
        Ok(t) => t,
        Err(e) => {
            log::error!("{}: cannot start a variant encoder: {e}", camera.name);
            return;
        }
    };
    // Watching the camera makes its capture thread encode while this variant has clients.
    let _viewer = camera.slot.viewer();
    let mut last_seq = 0;
    let mut failures = 0u64;
    loop {
        let frame = camera.slot.wait_newer(last_seq, WAKE_INTERVAL);
        if slot.is_closed() || camera.slot.is_closed() || variant.strong_count() == 0 {
            return;
        }
        let Some(frame) = frame else { continue };
        last_seq = frame.seq;
        let quality = key.quality.unwrap_or_else(|| camera.settings.quality());
        match transcoder.transcode(&frame, key.size, quality, slot.next_seq()) {
            Ok(encoded) => {
                slot.publish(encoded);
                camera.variants.encodes.fetch_add(1, Ordering::Relaxed);
                if let Some(variant) = variant.upgrade() {
                    variant.encodes.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures % 100 == 0 {
                    log::warn!(
                        "{}: variant {key:?} skipped a frame ({failures} so far): {e}",
                        camera.name
                    );
                }
            }
        }
    }
}

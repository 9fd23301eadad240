//! One bandwidth budget for the whole robot (`[server] max_mbit`).
//!
//! Everything the robot sends the driver station crosses one radio, capped by the field
//! (7 Mbit/s, 4 on OpenMesh radios) for cameras, NetworkTables and the driver station's
//! own packets together. The budget is shared across the cameras that have clients across
//! the radio, by weight (`[[camera]] weight`), then across each camera's clients. This
//! thread looks every [`TICK`] at what each camera would send them (its frame size x its
//! fps x its remote clients) against its share, and hands that to the camera's governor
//! (`governor.rs`), which lowers quality first, then fps, then size, within the camera's
//! floors, and climbs back with hysteresis. The radio (`http/radio.rs`) holds the remote
//! clients to the budget and gives each camera's the turns its share carries.
//!
//! The governor caps the settings in force; it never changes the settings themselves (what
//! a team set, saved, shown on the page). Camera MJPEG is passed through while it fits
//! its share, and transcoded while it does not. Clients on loopback (a vision program on
//! the coprocessor) do not cross the radio and do not count. The link each client
//! actually gets is followed per client by `http/link.rs` (a frame goes only when the
//! previous one has left), so a congested field lowers that client's fps even within
//! the budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::camera::Camera;
use crate::governor::{Sight, TICK, step};
use crate::http::radio::Radio;
use crate::settings::ProfiledNumber;

/// Starts the governor thread for `cameras` under the budget `max_mbit` in force (0: none;
/// when no profile gives it more than 0, the thread is not started).
pub fn spawn(
    max_mbit: Arc<ProfiledNumber>,
    cameras: Vec<Arc<Camera>>,
    radio: Arc<Radio>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Option<JoinHandle<()>>> {
    set_budget(&max_mbit, &cameras, &radio);
    if max_mbit.highest() <= 0.0 {
        return Ok(None);
    }
    std::thread::Builder::new()
        .name("budget".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let budget_bps = set_budget(&max_mbit, &cameras, &radio);
                if budget_bps > 0.0 {
                    tick(budget_bps, &cameras, Instant::now());
                }
                std::thread::sleep(TICK);
            }
        })
        .map(Some)
}

/// Tells the radio and each camera's governor the budget in force (bits per second),
/// releasing the caps when there is none; returns it.
fn set_budget(max_mbit: &ProfiledNumber, cameras: &[Arc<Camera>], radio: &Radio) -> f64 {
    let budget_bps = max_mbit.get() * 1e6;
    radio.set_budget_bps(budget_bps);
    for camera in cameras {
        camera.governor.set_budget_bps(budget_bps);
        if budget_bps <= 0.0 {
            camera.governor.release("no budget (max_mbit = 0)");
        }
    }
    budget_bps
}

fn tick(budget_bps: f64, cameras: &[Arc<Camera>], now: Instant) {
    let remote: Vec<usize> = cameras
        .iter()
        .map(|c| {
            c.stats
                .clients()
                .iter()
                .filter(|client| client.link.is_remote())
                .count()
        })
        .collect();
    let total_weight: f64 = cameras
        .iter()
        .zip(&remote)
        .filter(|(_, n)| **n > 0)
        .map(|(c, _)| c.governor.weight())
        .sum();
    for (camera, &clients) in cameras.iter().zip(&remote) {
        let governor = &camera.governor;
        if clients == 0 {
            governor.release("no clients across the radio");
            continue;
        }
        let latest = camera.slot.latest();
        let (frame_bytes, encoded) = governor.observe(
            latest.seq,
            latest.jpeg().len(),
            (
                camera.stats.encodes.load(Ordering::Relaxed),
                camera.stats.passthroughs.load(Ordering::Relaxed),
            ),
        );
        if frame_bytes == 0.0 {
            continue;
        }
        let sight = Sight {
            quality_setting: u32::from(camera.settings.quality()),
            fps_setting: camera.settings.fps(),
            encoded,
            frame_bytes,
            size: camera.mode().size(),
            remote_clients: clients,
            share_bps: budget_bps * governor.weight() / total_weight,
        };
        step(governor, sight, now);
    }
}

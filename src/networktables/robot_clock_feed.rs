//! The `nt-clock` thread: hands the NT4 client's clock offset to every camera's
//! [`RobotClock`], so frames carry their capture time in the robot's clock
//! (`X-Robot-Timestamp`, `/stats.json`, `/frcstream/<camera>/frame_robot_time_us`).
//!
//! The client measures the offset on its own connection thread (`nt4::NtClient::time_sync`,
//! the lowest of the last few round trips); this thread copies it every
//! [`FEED_INTERVAL`], and forgets it when the connection goes (a restarted server may have
//! another clock) or the thread stops. Both clocks are `CLOCK_MONOTONIC` in µs (the NT4
//! client's local clock is the one frames are stamped with, `frame::monotonic_us`), so the
//! offset is used as it is.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;
use log::info;

use super::NtClient;
use crate::camera::Camera;
use crate::robot_clock::RobotClockSync;
use crate::threads::StoppableThread;

/// How often the offset is copied: it is re-measured every 3 s (1 s with NT 4.0); this
/// only bounds how soon after a connect frames carry the robot's time.
const FEED_INTERVAL: Duration = Duration::from_millis(100);

/// The running `nt-clock` thread. Dropping it stops the thread and leaves the cameras'
/// clocks unsynchronised.
pub struct RobotClockFeed {
    _thread: StoppableThread,
}

impl RobotClockFeed {
    /// Starts copying `nt`'s clock offset into each of `cameras`' robot clocks.
    pub fn start(nt: NtClient, cameras: Vec<Arc<Camera>>) -> std::io::Result<RobotClockFeed> {
        let thread = StoppableThread::spawn("nt-clock", move |stop_rx| {
            let mut synchronised = false;
            while stop_rx.recv_timeout(FEED_INTERVAL) == Err(RecvTimeoutError::Timeout) {
                synchronised = feed(&nt, &cameras, synchronised);
            }
            set_all(&cameras, None);
        })?;
        Ok(RobotClockFeed { _thread: thread })
    }
}

/// Copies the client's offset into the cameras' clocks; logs when the clock is gained or
/// lost (`was`: whether it was synchronised). Returns whether it is now.
fn feed(nt: &NtClient, cameras: &[Arc<Camera>], was: bool) -> bool {
    let sync = nt.time_sync().map(|sync| RobotClockSync {
        offset_us: sync.offset_us,
        rtt_us: sync.rtt_us,
    });
    set_all(cameras, sync);
    match (was, sync) {
        (false, Some(sync)) => info!(
            "NetworkTables: robot clock synchronised (round trip {} µs): frames carry \
             X-Robot-Timestamp",
            sync.rtt_us
        ),
        (true, None) => info!("NetworkTables: robot clock lost with the connection"),
        _ => {}
    }
    sync.is_some()
}

fn set_all(cameras: &[Arc<Camera>], sync: Option<RobotClockSync>) {
    for camera in cameras {
        camera.robot_clock.set(sync);
    }
}

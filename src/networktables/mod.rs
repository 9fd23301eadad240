//! What frcstream publishes on NetworkTables, through the NT4 client of `crates/nt4`.
//!
//! [`camera_publisher`] (the `nt-publisher` thread) puts the cameras under `/CameraPublisher`
//! in cscore's layout ([`cscore_layout`], so dashboards list them), statistics and settings
//! under `/frcstream`, and takes setting changes from dashboards; [`switch_publisher`] (the
//! `nt-switches` thread) does the same for switched streams and their `selected` camera;
//! [`fms`] switches the match profile from the robot's `/FMSInfo/`; [`robot_clock_feed`]
//! gives the cameras the robot's clock (the client's time sync); [`log_limit`] keeps its
//! log lines about refused writes few.
//!
//! The client's types are re-exported here: they are part of frcstream's API (a
//! [`CameraPublisher`] runs on an [`NtClient`], its errors are [`NtError`]s).

pub mod camera_publisher;
pub mod cscore_layout;
pub mod fms;
mod log_limit;
pub mod robot_clock_feed;
pub mod switch_publisher;

pub use camera_publisher::{CameraPublisher, NtCamera};
pub(crate) use nt4::parse_server;
pub use nt4::{NtClient, NtClientConfig, NtError, NtType, NtUpdate, NtValue};
pub use robot_clock_feed::RobotClockFeed;

use std::time::Duration;

use crossbeam_channel::Receiver;

/// Publishes `topic`; failing means a topic name or type this program got wrong (a bug),
/// logged.
pub(crate) fn publish_logged(
    nt: &NtClient,
    topic: &str,
    ty: NtType,
    properties: serde_json::Value,
) {
    if let Err(e) = nt.publish(topic, ty, properties) {
        log::warn!("NetworkTables: cannot publish {topic}: {e}");
    }
}

/// What woke a publisher thread ([`camera_publisher`], [`switch_publisher`]).
pub(crate) enum Wake<C> {
    /// Stop: asked to, or the NT client is gone.
    Stop,
    /// A dashboard's or the robot's write to a subscribed topic.
    Update(NtUpdate),
    /// A setting or selection changed by another writer (`settings::Changed`).
    Change(C),
    /// The wait passed (or the change feed ended): time for the periodic work.
    Due,
}

/// Waits up to `wait` for `stop`, a write on NetworkTables (`updates`) or a change on the
/// feed the thread subscribed to (`changes`).
pub(crate) fn next_wake<C>(
    stop: &Receiver<()>,
    updates: &Receiver<NtUpdate>,
    changes: &Receiver<C>,
    wait: Duration,
) -> Wake<C> {
    crossbeam_channel::select! {
        recv(stop) -> _ => Wake::Stop,
        // An error: the client is gone.
        recv(updates) -> update => update.map_or(Wake::Stop, Wake::Update),
        recv(changes) -> change => change.map_or(Wake::Due, Wake::Change),
        default(wait) => Wake::Due,
    }
}

/// A normal write; failing means a topic this program did not publish (a bug), logged.
pub(crate) fn set_logged(nt: &NtClient, topic: &str, value: impl Into<NtValue>) {
    if let Err(e) = nt.set(topic, value) {
        log::warn!("NetworkTables: cannot set {topic}: {e}");
    }
}
pub use switch_publisher::{SwitchPublisher, SwitchServer};

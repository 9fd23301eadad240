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

/// A normal write; failing means a topic this program did not publish (a bug), logged.
pub(crate) fn set_logged(nt: &NtClient, topic: &str, value: impl Into<NtValue>) {
    if let Err(e) = nt.set(topic, value) {
        log::warn!("NetworkTables: cannot set {topic}: {e}");
    }
}
pub use switch_publisher::{SwitchPublisher, SwitchServer};

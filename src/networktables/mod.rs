//! What frcstream publishes on NetworkTables, through the NT4 client of `crates/nt4`.
//!
//! [`camera_publisher`] (the `nt-publisher` thread) puts the cameras under `/CameraPublisher`
//! in cscore's layout ([`cscore_layout`], so dashboards list them), statistics and settings
//! under `/frcstream`, and takes setting changes from dashboards; [`switch_publisher`] (the `nt-switches` thread) does the same for switched streams and their `selected` camera; [`log_limit`] keeps its log lines about refused writes few.
//!
//! The client's types are re-exported here: they are part of frcstream's API (a
//! [`CameraPublisher`] runs on an [`NtClient`], its errors are [`NtError`]s).

pub mod camera_publisher;
pub mod cscore_layout;
mod log_limit;
pub mod switch_publisher;

pub use camera_publisher::{CameraPublisher, NtCamera};
pub(crate) use nt4::parse_server;
pub use nt4::{NtClient, NtClientConfig, NtError, NtType, NtUpdate, NtValue};
pub use switch_publisher::{SwitchPublisher, SwitchServer};

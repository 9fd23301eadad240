//! frcstream: a low-latency MJPEG camera streamer for FRC robot coprocessors.
//!
//! The pipeline, one stage per module, data flowing one way:
//!
//! ```text
//! config ─▶ source ─▶ capture (encode) ─▶ frame_slot ─▶ http (mjpeg, pages)
//! ```
//!
//! See ARCHITECTURE.md for the threads, the invariants and the map of modules.

pub mod budget;
pub mod camera;
pub mod capture;
pub mod config;
pub mod controls;
pub mod encode;
pub mod font;
pub mod frame;
pub mod frame_slot;
pub mod governor;
pub mod host_addresses;
pub mod http;
pub mod jpeg;
pub mod lock;
pub mod match_profile;
pub mod memory;
pub mod networktables;
pub mod no_signal;
pub mod pacing;
pub mod robot_clock;
pub mod saved_settings;
pub mod settings;
pub mod source;
pub mod stats;
pub mod streamer;
pub mod switch;
pub mod systemd;
pub mod threads;
pub mod transcode;
pub mod variants;

pub use config::Config;
pub use source::pushed::{PushError, PushedStream, RawLayout};
pub use streamer::{StartError, Streamer};

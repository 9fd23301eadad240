//! A blocking NetworkTables 4 client (protocol revisions 4.1 and 4.0) on std threads, with no
//! async runtime.
//!
//! [`NtClient::start`] spawns one thread that owns the connection to the server: it connects to
//! `ws://host:port/nt/<client_name>`, retries every second (500 ms connect/handshake timeout)
//! while the server is absent, synchronises time, answers pings, and after every reconnect
//! re-publishes, re-subscribes and re-sends the latest value of every published topic.
//! The application's calls ([`NtClient::publish`], [`NtClient::set`], ...) only touch
//! in-memory state and wake the thread: they never wait for the network.
//!
//! Published topics keep one latest value each (nothing queues while disconnected).
//! [`NtClient::set`] is a normal timestamped write, sent once the clock is synchronised with
//! the server; [`NtClient::set_default`] writes with timestamp 0, so any other client's write
//! wins over it, now and after a reconnect or server restart. Values received for a topic this
//! client publishes (through a subscription) replace its retained value, so a dashboard's
//! setting is what gets re-sent after a server restart. A value of another type for a topic
//! this client publishes is never retained, but subscribers get it: ntcore's server caches
//! such a write, and only the topic's owner can write a proper value over it.
//!
//! ```no_run
//! use nt4::{NtClient, NtClientConfig, NtType};
//! let nt = NtClient::start(NtClientConfig::new("10.12.34.2", "frcstream")).expect("config");
//! nt.publish("/demo/connected", NtType::Boolean, serde_json::json!({})).expect("publish");
//! nt.set("/demo/connected", true).expect("set");
//! nt.publish("/demo/settings/exposure", NtType::Int, serde_json::json!({"retained": true})).expect("publish");
//! nt.set_default("/demo/settings/exposure", 50).expect("set_default");
//! let updates = nt.subscribe(&["/demo/settings/"]);
//! while let Ok(update) = updates.recv() {
//!     println!("{} = {:?}", update.topic, update.value);
//! }
//! ```
//!
//! The crate is two sides of one shared state: the [handle](NtClient) the application
//! calls (cheap: it changes the shared state and wakes the thread) and the connection
//! thread (the socket, reconnects, the websocket, time sync, announcements), which reads
//! the shared state when woken and never holds its lock during I/O.
//!
//! Spec: allwpilib `ntcore/doc/networktables4.adoc`. What is supported: see the crate's
//! README.

mod config;
mod connection;
mod handle;
mod protocol;
mod shared;
mod time_sync;
mod value;

pub use config::{NtClientConfig, NtProtocol, parse_server};
pub use connection::MAX_ANNOUNCED;
pub use handle::NtClient;
pub use shared::NtUpdate;
pub use time_sync::{TimeSync, monotonic_us};
pub use value::{NtType, NtValue};

/// The README's example compiles too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;

/// Errors of the client's API. Connection problems are not errors of any call: the client
/// logs them and keeps retrying.
#[derive(Debug, thiserror::Error)]
pub enum NtError {
    #[error("invalid NetworkTables server address {0:?}: expected host, host:port or [ipv6]:port")]
    InvalidServer(String),
    #[error(
        "invalid NetworkTables client name {0:?}: must be non-empty, without '@' or control characters"
    )]
    InvalidClientName(String),
    #[error("topic name must not be empty")]
    EmptyTopic,
    #[error("properties of topic {0} must be a JSON object")]
    InvalidProperties(String),
    #[error("topic {0} is not published by this client")]
    NotPublished(String),
    #[error("topic {topic} is published as {published}, not {requested}")]
    TypeMismatch {
        topic: String,
        published: NtType,
        requested: NtType,
    },
    #[error("cannot start the NetworkTables thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Entry points for the fuzz targets (`fuzz/` at the repository's root): the server's
/// binary (MessagePack) and text (JSON) frames through the client's own decoders. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes a binary frame; returns how many messages decoded well.
    pub fn binary_frame(frame: &[u8]) -> usize {
        crate::protocol::decode_binary_frame(frame)
            .filter(Result::is_ok)
            .count()
    }

    /// Decodes a text frame; returns how many messages decoded well.
    pub fn text_frame(text: &str) -> usize {
        crate::protocol::decode_text_frame(text)
            .map(|messages| messages.iter().filter(|m| m.is_ok()).count())
            .unwrap_or(0)
    }
}

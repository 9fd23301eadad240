//! The handle: [`NtClient`], the application's side of the client.
//!
//! Every call changes the state shared with the connection thread ([`crate::shared`]) and
//! wakes the thread; none waits for the network. Handles are cheap to clone and may be used
//! from any thread; the connection thread stops with the last one.

use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Receiver;
use serde_json::{Map, Value as Json};

use crate::NtError;
use crate::config::{Endpoint, NtClientConfig, NtProtocol};
use crate::connection;
use crate::shared::{NtUpdate, Published, Retained, Shared, Subscription};
use crate::time_sync::TimeSync;
use crate::value::{NtType, NtValue};

/// Updates waiting in one subscription's channel before new ones are dropped.
const SUBSCRIPTION_CAPACITY: usize = 256;

/// A NetworkTables 4 client; see the [crate docs](crate). Clones share one connection; the
/// connection thread stops when the last clone is dropped (or at [`NtClient::stop`]).
#[derive(Clone)]
pub struct NtClient {
    shared: Arc<Shared>,
    owner: Arc<ThreadOwner>,
}

impl NtClient {
    /// Validates the configuration and starts the connection thread. Returns at once; the
    /// thread connects in the background (see [`NtClient::is_connected`]).
    pub fn start(config: NtClientConfig) -> Result<NtClient, NtError> {
        let endpoint = Endpoint::new(&config)?;
        let (waker, wake_rx) = UnixStream::pair().map_err(NtError::Spawn)?;
        waker.set_nonblocking(true).map_err(NtError::Spawn)?;
        wake_rx.set_nonblocking(true).map_err(NtError::Spawn)?;
        let shared = Arc::new(Shared::new(waker));
        let thread =
            connection::spawn(shared.clone(), endpoint, wake_rx).map_err(NtError::Spawn)?;
        Ok(NtClient {
            owner: Arc::new(ThreadOwner {
                shared: shared.clone(),
                thread: Mutex::new(Some(thread)),
            }),
            shared,
        })
    }

    /// Starts publishing `topic` with type `ty` and `properties` (a JSON object, or null for
    /// none; e.g. `{"retained": true}` keeps the topic on the server while this client is
    /// away). Publishing a topic again with the same type does nothing.
    pub fn publish(&self, topic: &str, ty: NtType, properties: Json) -> Result<(), NtError> {
        if topic.is_empty() {
            return Err(NtError::EmptyTopic);
        }
        let properties = match properties {
            Json::Null => Map::new(),
            Json::Object(map) => map,
            _ => return Err(NtError::InvalidProperties(topic.to_owned())),
        };
        let mut state = self.shared.lock();
        if let Some(existing) = state.topics.get(topic) {
            return if existing.ty == ty {
                Ok(())
            } else {
                Err(NtError::TypeMismatch {
                    topic: topic.to_owned(),
                    published: existing.ty,
                    requested: ty,
                })
            };
        }
        let pubuid = state.alloc_uid();
        state.topics.insert(
            topic.to_owned(),
            Published {
                pubuid,
                ty,
                properties,
                value: None,
            },
        );
        drop(state);
        self.shared.wake();
        Ok(())
    }

    /// Stops publishing `topic` and forgets its value.
    pub fn unpublish(&self, topic: &str) -> Result<(), NtError> {
        let removed = self.shared.lock().topics.remove(topic);
        if removed.is_none() {
            return Err(NtError::NotPublished(topic.to_owned()));
        }
        self.shared.wake();
        Ok(())
    }

    /// Sets the value of a published topic (a normal write, timestamped now). Sent once the
    /// clock is synchronised with the server; while disconnected only the latest value is
    /// kept, and sent after the next connection's time sync.
    pub fn set(&self, topic: &str, value: impl Into<NtValue>) -> Result<(), NtError> {
        self.write(topic, value.into(), true).map(|_| ())
    }

    /// Sets the value of a published topic with timestamp 0, if it has no value yet (neither
    /// set here nor received from the server). Returns whether it did. Any other client's
    /// write wins over a default, also when this client re-sends it after a reconnect.
    pub fn set_default(&self, topic: &str, value: impl Into<NtValue>) -> Result<bool, NtError> {
        self.write(topic, value.into(), false)
    }

    fn write(&self, topic: &str, value: NtValue, strong: bool) -> Result<bool, NtError> {
        let mut state = self.shared.lock();
        let published = state
            .topics
            .get_mut(topic)
            .ok_or_else(|| NtError::NotPublished(topic.to_owned()))?;
        if !value.fits(published.ty) {
            return Err(NtError::TypeMismatch {
                topic: topic.to_owned(),
                published: published.ty,
                requested: value.nt_type(),
            });
        }
        if !strong && published.value.is_some() {
            return Ok(false);
        }
        published.value = Some(Retained {
            value,
            strong,
            written: Instant::now(),
            timestamp_us: i64::from(strong),
            pending: true,
        });
        drop(state);
        self.shared.wake();
        Ok(true)
    }

    /// The value this client holds for a topic it publishes: its latest own write, or a newer
    /// value received for it through a subscription (see the [crate docs](crate)). `None`
    /// if the topic is not published here or has no value yet.
    ///
    /// A subscriber can compare an update with this to tell whether the update is still the
    /// topic's value or already lost against a newer local write.
    pub fn value(&self, topic: &str) -> Option<NtValue> {
        let state = self.shared.lock();
        state
            .topics
            .get(topic)
            .and_then(|t| t.value.as_ref())
            .map(|r| r.value.clone())
    }

    /// Subscribes to all topics whose names start with one of `prefixes` (`""` is every
    /// topic except the server's `$` meta topics). The channel receives the values the server
    /// sends: other clients' writes, and on every (re)connect the current value of each
    /// matching topic (ntcore does not echo this client's own writes back). Values whose type
    /// differs from the topic's are dropped, except for topics this client publishes (see the
    /// [crate docs](crate)). It holds up to
    /// 256 updates; when the receiver falls behind further, new updates are dropped (and
    /// logged). Dropping the receiver unsubscribes (noticed at the next matching update).
    pub fn subscribe(&self, prefixes: &[&str]) -> Receiver<NtUpdate> {
        let (tx, rx) = crossbeam_channel::bounded(SUBSCRIPTION_CAPACITY);
        let mut state = self.shared.lock();
        let subuid = state.alloc_uid();
        state.subs.push(Subscription {
            subuid,
            prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
            tx,
            overflowing: false,
            closed: false,
        });
        drop(state);
        self.shared.wake();
        rx
    }

    /// Topics the server announced on the live connection that this client keeps: those
    /// under its subscriptions' prefixes or published by it, [`MAX_ANNOUNCED`](crate::MAX_ANNOUNCED) at most.
    pub fn announced_topics(&self) -> usize {
        self.shared.announced()
    }

    /// Whether the websocket connection to the server is up.
    pub fn is_connected(&self) -> bool {
        self.protocol().is_some()
    }

    /// The protocol revision of the current connection, `None` while disconnected.
    pub fn protocol(&self) -> Option<NtProtocol> {
        self.shared.connection()
    }

    /// The server's clock against the local one (`CLOCK_MONOTONIC` in µs,
    /// [`monotonic_us`](crate::monotonic_us)), from the lowest round trip of the last few
    /// time syncs of the live connection; `None` while disconnected and until the first
    /// answer of a connection (a restarted server may have another clock).
    pub fn time_sync(&self) -> Option<TimeSync> {
        self.shared.time_sync()
    }

    /// The server time (µs) of `local_us`, a `CLOCK_MONOTONIC` time in µs (a V4L2 buffer's
    /// timestamp, [`monotonic_us`](crate::monotonic_us)); `None` while the clock is not
    /// synchronised (see [`NtClient::time_sync`]).
    pub fn server_time_us(&self, local_us: i64) -> Option<i64> {
        self.time_sync().map(|sync| sync.server_time_us(local_us))
    }

    /// Closes the connection and joins the thread, for this handle and all its clones
    /// (their calls still change the in-memory state, but nothing is sent any more).
    /// Dropping the last handle does the same.
    pub fn stop(self) {
        self.owner.stop();
    }
}

/// Stops the connection thread when the last handle goes (or at [`NtClient::stop`]).
struct ThreadOwner {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl ThreadOwner {
    fn stop(&self) {
        self.shared.stop();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                log::error!("NetworkTables client thread panicked");
            }
        }
    }
}

impl Drop for ThreadOwner {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configs_are_rejected() {
        assert!(matches!(
            NtClient::start(NtClientConfig::new("a b", "x")),
            Err(NtError::InvalidServer(_))
        ));
        assert!(matches!(
            NtClient::start(NtClientConfig::new("127.0.0.1:1", "a@b")),
            Err(NtError::InvalidClientName(_))
        ));
        assert!(matches!(
            NtClient::start(NtClientConfig::new("127.0.0.1:1", "")),
            Err(NtError::InvalidClientName(_))
        ));
    }

    #[test]
    fn api_checks_happen_in_memory() {
        // Port 1 on loopback refuses: the client keeps retrying in the background.
        let nt = NtClient::start(NtClientConfig::new("127.0.0.1:1", "unit")).expect("start");
        assert!(matches!(nt.set("/a", 1), Err(NtError::NotPublished(_))));
        nt.publish("/a", NtType::Int, Json::Null).expect("publish");
        nt.publish("/a", NtType::Int, Json::Null)
            .expect("same type again");
        assert!(matches!(
            nt.publish("/a", NtType::Double, Json::Null),
            Err(NtError::TypeMismatch { .. })
        ));
        assert!(matches!(
            nt.publish("", NtType::Int, Json::Null),
            Err(NtError::EmptyTopic)
        ));
        assert!(matches!(
            nt.publish("/b", NtType::Int, Json::from(3)),
            Err(NtError::InvalidProperties(_))
        ));
        assert!(matches!(
            nt.set("/a", 1.5),
            Err(NtError::TypeMismatch { .. })
        ));
        assert!(nt.set_default("/a", 1).expect("default"));
        assert!(!nt.set_default("/a", 2).expect("default again"));
        nt.set("/a", 3).expect("set");
        assert_eq!(nt.value("/a"), Some(NtValue::Int(3)));
        assert_eq!(nt.value("/nothing"), None);
        nt.publish("/j", NtType::Json, Json::Null)
            .expect("publish json");
        nt.set("/j", "{}").expect("json takes strings");
        nt.unpublish("/a").expect("unpublish");
        assert!(matches!(nt.unpublish("/a"), Err(NtError::NotPublished(_))));
        assert!(!nt.is_connected());
        assert_eq!(nt.time_sync(), None, "no server, no clock");
        assert_eq!(nt.server_time_us(crate::monotonic_us()), None);
        nt.stop();
    }
}

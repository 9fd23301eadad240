//! The boundary between the handle and the connection thread: the state both see.
//!
//! The application's side ([`crate::NtClient`]) changes [`State`] (topics it publishes, each
//! with one retained value, and its subscriptions) under the mutex and wakes the thread through
//! a socket pair; the connection thread reads the state when woken, sends what changed, and
//! writes back what the server sent (values of published topics, connection state). Neither
//! side holds the mutex while doing I/O.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crossbeam_channel::Sender;
use serde_json::{Map, Value as Json};

use crate::config::NtProtocol;
use crate::time_sync::TimeSync;
use crate::value::{NtType, NtValue};

/// Publisher and subscriber ids stay within ntcore's accepted range.
const MAX_UID: i64 = 0x7fff_fff0;

/// A value received for a subscribed topic.
#[derive(Debug, Clone, PartialEq)]
pub struct NtUpdate {
    pub topic: String,
    pub value: NtValue,
    /// Server time of the value in microseconds (0 for a default).
    pub timestamp_us: i64,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// The protocol of the live connection: 0 none, 1 for 4.0, 2 for 4.1.
    connection: AtomicU8,
    stop: AtomicBool,
    /// Topics announced on the live connection and kept.
    announced: AtomicUsize,
    /// The live connection's clock offset, once measured.
    time_sync: Mutex<Option<TimeSync>>,
    /// Writing a byte here wakes the thread.
    waker: UnixStream,
}

impl Shared {
    /// Empty state; `waker` is the handle's end of the wake-up socket pair (non-blocking).
    pub(crate) fn new(waker: UnixStream) -> Shared {
        Shared {
            state: Mutex::new(State {
                topics: BTreeMap::new(),
                subs: Vec::new(),
                next_uid: 1,
            }),
            connection: AtomicU8::new(0),
            stop: AtomicBool::new(false),
            announced: AtomicUsize::new(0),
            time_sync: Mutex::new(None),
            waker,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn connection(&self) -> Option<NtProtocol> {
        match self.connection.load(Ordering::Acquire) {
            1 => Some(NtProtocol::V40),
            2 => Some(NtProtocol::V41),
            _ => None,
        }
    }

    pub(crate) fn set_connection(&self, protocol: Option<NtProtocol>) {
        let code = match protocol {
            None => 0,
            Some(NtProtocol::V40) => 1,
            Some(NtProtocol::V41) => 2,
        };
        self.connection.store(code, Ordering::Release);
    }

    pub(crate) fn announced(&self) -> usize {
        self.announced.load(Ordering::Relaxed)
    }

    pub(crate) fn set_announced(&self, topics: usize) {
        self.announced.store(topics, Ordering::Relaxed);
    }

    pub(crate) fn time_sync(&self) -> Option<TimeSync> {
        *self
            .time_sync
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_time_sync(&self, sync: Option<TimeSync>) {
        *self
            .time_sync
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = sync;
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Asks the thread to close the connection and end.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake();
    }

    pub(crate) fn wake(&self) {
        // Non-blocking; a full socket already holds a wake-up.
        let _ = (&self.waker).write(&[1]);
    }
}

pub(crate) struct State {
    pub(crate) topics: BTreeMap<String, Published>,
    pub(crate) subs: Vec<Subscription>,
    next_uid: i64,
}

impl State {
    pub(crate) fn alloc_uid(&mut self) -> i64 {
        let uid = self.next_uid;
        self.next_uid = if uid >= MAX_UID { 1 } else { uid + 1 };
        uid
    }
}

pub(crate) struct Published {
    pub(crate) pubuid: i64,
    pub(crate) ty: NtType,
    pub(crate) properties: Map<String, Json>,
    pub(crate) value: Option<Retained>,
}

/// The one value kept for a published topic.
pub(crate) struct Retained {
    pub(crate) value: NtValue,
    /// Some local write was a normal `set` (not only `set_default`s).
    pub(crate) strong: bool,
    /// When the application wrote it: the base of its timestamp.
    pub(crate) written: Instant,
    /// Server timestamp it was sent or received with on this connection; before that 1 for
    /// normal writes and 0 for defaults.
    pub(crate) timestamp_us: i64,
    /// Still to be sent on the current connection.
    pub(crate) pending: bool,
}

pub(crate) struct Subscription {
    pub(crate) subuid: i64,
    pub(crate) prefixes: Vec<String>,
    pub(crate) tx: Sender<NtUpdate>,
    /// The channel was full at the last delivery (so the drop was already logged).
    pub(crate) overflowing: bool,
    /// The receiver was dropped: unsubscribe.
    pub(crate) closed: bool,
}

//! One sender thread per frame slot that stream clients watch: it wakes once per
//! published frame and offers the frame to every client of that slot with a write that
//! never blocks.
//!
//! Waking every client's own thread for every frame cost more than the writes themselves
//! (measured: ~9 µs of CPU per wake-up against ~6 µs per write, 20 clients at 30 fps;
//! docs/BENCHMARKS.md). Here a frame costs one wake-up for all clients. A client's own
//! thread runs only when its socket cannot take a whole part at once (a slow client,
//! a full socket buffer): the sender hands it the frame and how much of it went, and the
//! client's thread finishes the part, waiting for the socket up to the write deadline,
//! then catches up with the newest frame and hands back to the sender. Meanwhile the
//! sender skips that client: a slow client only skips frames and never holds up anyone.

use std::io;
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use super::lock;
use super::mjpeg::Part;
use crate::frame::Frame;
use crate::frame_slot::FrameSlot;
use crate::pacing::Pacer;

/// How long the sender sleeps before it looks again whether it still has clients.
const WAKE_INTERVAL: Duration = Duration::from_millis(500);
const SENDER_STACK_BYTES: usize = 256 * 1024;

/// Work the sender hands to a client's own thread.
pub enum Job {
    /// Send the rest of this frame's part: `sent` bytes of it went already.
    Finish { frame: Arc<Frame>, sent: usize },
    /// The socket failed: the stream is over.
    Fail(io::Error),
}

pub struct ClientState {
    /// The client's thread is sending (a handed-over frame, or catching up): the sender
    /// leaves the client alone.
    pub busy: bool,
    /// The last frame sent or skipped.
    pub last_seq: u64,
    pub pacer: Pacer,
    /// The client's `fps=`.
    pub fps: Option<u32>,
    pub job: Option<Job>,
}

impl ClientState {
    /// Whether `frame` is one to send: newer than the last, and due at the client's rate.
    /// Marks it as seen either way.
    pub fn wants(&mut self, frame: &Frame) -> bool {
        if frame.seq <= self.last_seq {
            return false;
        }
        self.last_seq = frame.seq;
        self.fps
            .is_none_or(|fps| self.pacer.admit(frame.captured_us, fps))
    }
}

/// Counts a delivered frame and its bytes: called by whichever thread finished the part.
pub type Delivered = Box<dyn Fn(&Frame, usize) + Send + Sync>;

/// One stream client, as its sender and its own thread share it.
pub struct Client {
    /// The connection's socket (a second handle to it), non-blocking.
    pub socket: TcpStream,
    pub state: Mutex<ClientState>,
    pub wake: Condvar,
    pub delivered: Delivered,
}

impl Client {
    pub fn lock(&self) -> MutexGuard<'_, ClientState> {
        lock(&self.state)
    }

    /// Sends `frame` if the client is idle and wants it, without blocking; what cannot be
    /// sent at once goes to the client's own thread.
    fn offer(&self, frame: &Arc<Frame>) {
        let mut state = self.lock();
        if state.busy || !state.wants(frame) {
            return;
        }
        let part = Part::new(frame);
        match part.send_some(&self.socket, 0) {
            Ok(sent) if sent == part.len() => {
                drop(state);
                (self.delivered)(frame, sent);
            }
            Ok(sent) => {
                state.busy = true;
                state.job = Some(Job::Finish {
                    frame: Arc::clone(frame),
                    sent,
                });
                self.wake.notify_one();
            }
            Err(e) => {
                state.busy = true;
                state.job = Some(Job::Fail(e));
                self.wake.notify_one();
            }
        }
    }
}

/// The sender of one slot and the clients it serves.
struct Sender {
    slot: Arc<FrameSlot>,
    clients: Mutex<Vec<Arc<Client>>>,
}

/// Every running sender, by slot. A sender leaves the list when its last client has gone.
static SENDERS: Mutex<Vec<Weak<Sender>>> = Mutex::new(Vec::new());

/// Takes `client` off its sender's list when dropped.
pub struct Subscription {
    sender: Arc<Sender>,
    client: Arc<Client>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.sender.clients).retain(|c| !Arc::ptr_eq(c, &self.client));
    }
}

/// Puts `client` on the list of `slot`'s sender, starting the sender if there is none.
pub fn subscribe(slot: &Arc<FrameSlot>, client: &Arc<Client>) -> io::Result<Subscription> {
    let mut senders = lock(&SENDERS);
    senders.retain(|s| s.strong_count() > 0);
    let existing = senders
        .iter()
        .filter_map(Weak::upgrade)
        .find(|s| Arc::ptr_eq(&s.slot, slot));
    let sender = match existing {
        Some(sender) => sender,
        None => {
            let sender = Arc::new(Sender {
                slot: Arc::clone(slot),
                clients: Mutex::new(Vec::new()),
            });
            let running = Arc::clone(&sender);
            std::thread::Builder::new()
                .name("http-sender".into())
                .stack_size(SENDER_STACK_BYTES)
                .spawn(move || run(&running))?;
            senders.push(Arc::downgrade(&sender));
            sender
        }
    };
    lock(&sender.clients).push(Arc::clone(client));
    Ok(Subscription {
        sender,
        client: Arc::clone(client),
    })
}

fn run(sender: &Arc<Sender>) {
    let mut last_seq = sender.slot.latest().seq;
    let mut clients = Vec::new();
    loop {
        let frame = sender.slot.wait_newer(last_seq, WAKE_INTERVAL);
        if lock(&sender.clients).is_empty() || sender.slot.is_closed() {
            // Decided under the list of senders, so that no client subscribes to a
            // sender that is ending.
            let mut senders = lock(&SENDERS);
            if lock(&sender.clients).is_empty() || sender.slot.is_closed() {
                senders.retain(|s| !std::ptr::eq(s.as_ptr(), Arc::as_ptr(sender)));
                return;
            }
        }
        clients.clear();
        clients.extend(lock(&sender.clients).iter().cloned());
        let Some(frame) = frame else { continue };
        last_seq = frame.seq;
        for client in &clients {
            client.offer(&frame);
        }
    }
}

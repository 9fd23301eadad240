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
//!
//! A client across a network gets a part only when the previous one has left
//! (`link.rs`): a frame that comes while the link is still busy is skipped, and the
//! client's own thread waits for the link to clear and sends the newest frame then.
//!
//! The hand-off is all here: the sender sets a client `busy` with a [`Job`], the client's
//! own thread ([`StreamClient::serve`]) does the job, catches up and clears `busy`.
//!
//! No stream goes quiet: cscore's `HttpCamera` (Shuffleboard's reader) drops a stream that
//! brings no frame for a second, so a client that has had no part for [`KEEP_ALIVE_US`]
//! (its `fps=1`, a camera at 1 fps or a long exposure) gets its last frame again. The
//! sender looks every [`TICK`] even when no frame comes.

use std::io;
use std::net::TcpStream;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::link::Link;
use super::part::Part;
use super::radio::{Membership, Radio};
use super::response::WRITE_DEADLINE;
use crate::frame::{Frame, monotonic_us};
use crate::frame_slot::FrameSlot;
use crate::lock::lock;
use crate::pacing::Pacer;
use crate::robot_clock::RobotClock;
use crate::stats::StreamClientStats;

/// How long the sender sleeps without a new frame before it looks again for clients that
/// are due a part again, or whether it still has clients.
const TICK: Duration = Duration::from_millis(100);
/// A client that has had no part for this long gets its last frame again: with [`TICK`],
/// no gap between parts is much over half a second.
pub const KEEP_ALIVE_US: u64 = 400_000;
const SENDER_STACK_BYTES: usize = 256 * 1024;
/// How long a client's own thread sleeps before it looks at the stop flag again.
const CLIENT_WAKE_INTERVAL: Duration = Duration::from_millis(500);

/// Work the sender hands to a client's own thread.
pub enum Job {
    /// Send the rest of this frame's part: `sent` bytes of it went already, with the
    /// robot time its head was written with.
    Finish {
        frame: Arc<Frame>,
        robot_time_us: Option<i64>,
        sent: usize,
    },
    /// The link is still busy with earlier parts: wait until it clears, then send the
    /// newest frame.
    Wait,
    /// The socket failed: the stream is over.
    Fail(io::Error),
}

/// What the sender and a client's own thread share about the client's stream.
pub struct DeliveryState {
    /// The client's thread is sending (a handed-over frame, or catching up): the sender
    /// leaves the client alone.
    busy: bool,
    /// The last frame sent or skipped.
    pub last_seq: u64,
    pub pacer: Pacer,
    /// The client's `fps=`.
    pub fps: Option<u32>,
    job: Option<Job>,
    /// The frame of the last part this client was sent, to send again when it would
    /// otherwise go quiet.
    pub last_sent: Option<Arc<Frame>>,
    /// When the last part started going out (`monotonic_us`); the connect time at first.
    pub last_part_us: u64,
    /// A client across a network: its link, which must be clear before a part goes.
    /// `None` on loopback.
    pub link: Option<Link>,
    /// A client across a network: its place on the robot's radio, where it takes turns
    /// with every other remote client. `None` on loopback.
    radio: Option<Membership>,
    /// The last frame counted as held back.
    held_seq: u64,
    /// The stream is to show another slot (a switch selected another camera): the sender
    /// leaves the client alone and its own thread moves it ([`StreamClient::move_on`]).
    moving: bool,
}

/// Why [`StreamClient::serve`] returned without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The server is stopping or the slot closed: the stream is over.
    Stopped,
    /// The stream is to show another slot ([`StreamClient::move_on`]).
    Moving,
}

/// What a client is to be sent now.
pub enum Next {
    /// This frame.
    Send(Arc<Frame>),
    /// Nothing: no new frame, or none due.
    Nothing,
    /// A frame is due but the link is still busy with earlier ones.
    Wait,
}

impl DeliveryState {
    /// A new client, whose own thread sends first: frames after `last_seq` are new to it.
    /// A remote client has its place on the radio.
    pub fn new(last_seq: u64, fps: Option<u32>, radio: Option<Membership>) -> DeliveryState {
        DeliveryState {
            link: radio.is_some().then(Link::default),
            radio,
            busy: true,
            last_seq,
            pacer: Pacer::default(),
            fps,
            job: None,
            last_sent: None,
            last_part_us: monotonic_us(),
            held_seq: 0,
            moving: false,
        }
    }

    /// The frame to send now, if any: `newest` when it is new and due at the client's
    /// rate, else the last frame again when the client has had nothing for
    /// [`KEEP_ALIVE_US`]; for a remote client, only when its link is clear and the radio
    /// gives it the turn (the frame is then not marked as seen: the newest one goes when
    /// the turn comes). Records the frame as the last part.
    fn next_part(&mut self, newest: &Arc<Frame>, now_us: u64, client: &StreamClient) -> Next {
        let keep_alive =
            now_us.saturating_sub(self.last_part_us) >= KEEP_ALIVE_US && newest.seq > 0;
        if newest.seq <= self.last_seq && !keep_alive {
            return self.nothing();
        }
        if let Some(link) = &mut self.link {
            if !link.clear(&client.socket, now_us, &client.stats.link) {
                return self.wait(newest, client);
            }
        }
        let seen = (self.last_seq, self.pacer.clone());
        let frame = if self.wants(newest) {
            Arc::clone(newest)
        } else if keep_alive {
            self.last_sent.clone().unwrap_or_else(|| Arc::clone(newest))
        } else {
            return self.nothing();
        };
        if let Some(radio) = &self.radio {
            let allowance = self.link.as_ref().map_or(0, Link::allowance);
            if !radio.turn(now_us, frame.captured_us, allowance, frame.jpeg().len()) {
                (self.last_seq, self.pacer) = seen;
                return self.wait(newest, client);
            }
        }
        if let Some(link) = &mut self.link {
            link.sent(now_us, frame.jpeg().len());
            client
                .stats
                .link
                .frame_age_us
                .store(now_us.saturating_sub(frame.captured_us), Relaxed);
        }
        self.last_sent = Some(Arc::clone(&frame));
        self.last_part_us = now_us;
        Next::Send(frame)
    }

    /// Nothing to send: the client does not wait for a turn.
    fn nothing(&self) -> Next {
        if let Some(radio) = &self.radio {
            radio.idle();
        }
        Next::Nothing
    }

    /// A part is due but the link or the radio is busy: counts the newest frame as held
    /// back.
    fn wait(&mut self, newest: &Frame, client: &StreamClient) -> Next {
        if newest.seq > self.last_seq {
            self.held_back_seq(newest.seq, client);
        }
        Next::Wait
    }

    /// The part sent on the last turn is written: the radio may see its bytes in flight.
    fn written(&self) {
        if let Some(radio) = &self.radio {
            radio.written();
        }
    }

    /// Counts a new frame held back by a busy link, once per frame.
    fn held_back_seq(&mut self, seq: u64, client: &StreamClient) {
        if self.held_seq != seq {
            self.held_seq = seq;
            client.stats.link.held_back.fetch_add(1, Relaxed);
        }
    }

    /// Whether `frame` is one to send: newer than the last, and due at the client's rate.
    /// Marks it as seen either way.
    fn wants(&mut self, frame: &Frame) -> bool {
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

/// One HTTP stream client, as its sender and its own thread share it.
pub struct StreamClient {
    /// The connection's socket (a second handle to it), non-blocking.
    pub socket: TcpStream,
    pub state: Mutex<DeliveryState>,
    pub wake: Condvar,
    pub delivered: Delivered,
    /// The client's statistics, where its link figures are shown.
    pub stats: Arc<StreamClientStats>,
    /// The robot's clock, for each part's `X-Robot-Timestamp`.
    pub robot_clock: Arc<RobotClock>,
}

impl StreamClient {
    pub fn lock(&self) -> MutexGuard<'_, DeliveryState> {
        lock(&self.state)
    }

    /// Sends `newest` if the client is idle and wants it (or its last frame again if it
    /// has been quiet too long), without blocking; what cannot be sent at once goes to the
    /// client's own thread.
    fn offer(&self, newest: &Arc<Frame>, now_us: u64) {
        let mut state = self.lock();
        if state.busy || state.moving {
            return;
        }
        let frame = match state.next_part(newest, now_us, self) {
            Next::Send(frame) => frame,
            Next::Nothing => return,
            Next::Wait => {
                state.busy = true;
                state.job = Some(Job::Wait);
                self.wake.notify_one();
                return;
            }
        };
        let frame = &frame;
        let robot_time_us = self.robot_clock.robot_time_us(frame.captured_us);
        let part = Part::new(frame, robot_time_us);
        let result = part.send_some(&self.socket, 0);
        state.written();
        match result {
            Ok(sent) if sent == part.len() => {
                drop(state);
                (self.delivered)(frame, sent);
            }
            Ok(sent) => {
                state.busy = true;
                state.job = Some(Job::Finish {
                    frame: Arc::clone(frame),
                    robot_time_us,
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

    /// The client's own thread: sends the first frame, then does each job the sender
    /// hands over (the rest of a part, a wait for the link), until the stream fails, the
    /// slot closes, `stop` is set or the stream is to move to another slot (a part begun
    /// is finished first).
    pub fn serve(&self, slot: &FrameSlot, stop: &AtomicBool) -> io::Result<Served> {
        self.catch_up(slot)?;
        loop {
            if stop.load(Relaxed) {
                return Ok(Served::Stopped);
            }
            match self.next_job() {
                None if self.lock().moving => return Ok(Served::Moving),
                None if slot.is_closed() => return Ok(Served::Stopped),
                None => {}
                Some(Job::Fail(e)) => return Err(e),
                Some(Job::Finish {
                    frame,
                    robot_time_us,
                    sent,
                }) => {
                    self.finish(&frame, robot_time_us, sent)?;
                    self.catch_up(slot)?;
                }
                Some(Job::Wait) => self.catch_up(slot)?,
            }
        }
    }

    /// The job the sender handed over, waiting for one up to [`CLIENT_WAKE_INTERVAL`].
    fn next_job(&self) -> Option<Job> {
        let state = self.lock();
        let (mut state, _) = self
            .wake
            .wait_timeout_while(state, CLIENT_WAKE_INTERVAL, |s| {
                s.job.is_none() && !s.moving
            })
            .unwrap_or_else(PoisonError::into_inner);
        state.job.take()
    }

    /// Asks the client's own thread to move the stream to another slot: from now on the
    /// sender leaves it alone, and [`StreamClient::serve`] returns [`Served::Moving`] once
    /// the part in progress is finished.
    pub fn move_on(&self) {
        self.lock().moving = true;
        self.wake.notify_one();
    }

    /// Starts the stream over on a slot whose frames after `last_seq` are new to it; the
    /// client's rate, link and last part time carry over. Call before subscribing to the
    /// slot's sender: the client's own thread sends first.
    pub fn start_on(&self, last_seq: u64) {
        let mut state = self.lock();
        state.busy = true;
        state.last_seq = last_seq;
        state.held_seq = 0;
        state.last_sent = None;
    }

    /// Takes back a request to move ([`StreamClient::move_on`]) that is being carried out.
    pub fn moved(&self) {
        self.lock().moving = false;
    }

    /// Ends the stream of a client that hung up: its socket is shut down (a write in
    /// progress fails) and its thread is handed the failure (a thread waiting for work
    /// wakes).
    pub fn hang_up(&self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
        let mut state = self.lock();
        state.job = Some(Job::Fail(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "client hung up",
        )));
        self.wake.notify_one();
    }

    /// Sends the rest of a part the sender started (or all of it), waiting for the socket.
    /// `robot_time_us` is the one its head was started with: the clock may have been
    /// measured again since.
    fn finish(&self, frame: &Frame, robot_time_us: Option<i64>, sent: usize) -> io::Result<()> {
        let part = Part::new(frame, robot_time_us);
        let result = part.send_rest(&self.socket, sent);
        self.lock().written();
        result?;
        (self.delivered)(frame, part.len());
        Ok(())
    }

    /// The client now watches stream `group` (a camera), of weight `weight` on the radio.
    pub fn watch_on_radio(&self, group: usize, weight: f64) {
        if let Some(radio) = &self.lock().radio {
            radio.watch(group, weight);
        }
    }

    /// Sends the slot's newest frame while there is one this client has not had (waiting
    /// for the socket, and for a remote client's link to clear), then hands the client
    /// back to the sender. Deciding under the client's lock that there is none, and
    /// clearing `busy` in the same breath, means a frame the sender skipped while this
    /// thread was busy is not lost: it is the newest one here.
    fn catch_up(&self, slot: &FrameSlot) -> io::Result<()> {
        // A link that moves nothing for the write deadline drops the client, as a socket
        // that takes nothing does.
        let mut progress = (u64::MAX, Instant::now());
        loop {
            let newest = slot.latest();
            let frame = {
                let mut state = self.lock();
                if state.moving {
                    state.busy = false;
                    // Not waiting for a turn on the way to another camera.
                    state.nothing();
                    return Ok(());
                }
                match state.next_part(&newest, monotonic_us(), self) {
                    Next::Nothing => {
                        state.busy = false;
                        return Ok(());
                    }
                    Next::Send(frame) => Some(frame),
                    Next::Wait => None,
                }
            };
            let Some(frame) = frame else {
                let (in_flight, retry_us) = self
                    .lock()
                    .link
                    .as_ref()
                    .map_or((0, 1_000), |link| (link.in_flight, link.retry_us()));
                // Waiting for the radio's turn with nothing of its own in flight is no
                // stuck link.
                if in_flight == 0 || in_flight < progress.0 {
                    progress = (in_flight, Instant::now());
                } else if progress.1.elapsed() >= WRITE_DEADLINE {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the link to the client moved nothing for too long",
                    ));
                }
                std::thread::sleep(Duration::from_micros(retry_us));
                continue;
            };
            let robot_time_us = self.robot_clock.robot_time_us(frame.captured_us);
            self.finish(&frame, robot_time_us, 0)?;
            progress = (u64::MAX, Instant::now());
        }
    }
}

/// The sender of one slot and the clients it serves.
struct Sender {
    slot: Arc<FrameSlot>,
    clients: Mutex<Vec<Arc<StreamClient>>>,
}

/// Takes `client` off its sender's list when dropped.
pub struct Subscription {
    sender: Arc<Sender>,
    client: Arc<StreamClient>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.sender.clients).retain(|c| !Arc::ptr_eq(c, &self.client));
    }
}

/// The running senders of one HTTP server, by slot, and the robot's radio its remote
/// clients take turns on. A sender leaves when its last client has gone.
#[derive(Default)]
pub struct Senders {
    running: Mutex<Vec<Weak<Sender>>>,
    pub radio: Arc<Radio>,
}

impl Senders {
    /// The senders of a server whose remote clients take turns on `radio`.
    pub fn new(radio: Arc<Radio>) -> Senders {
        Senders {
            running: Mutex::default(),
            radio,
        }
    }

    /// Puts `client` on the list of `slot`'s sender, starting the sender if there is none.
    pub fn subscribe(
        self: &Arc<Self>,
        slot: &Arc<FrameSlot>,
        client: &Arc<StreamClient>,
    ) -> io::Result<Subscription> {
        let mut running = lock(&self.running);
        running.retain(|s| s.strong_count() > 0);
        let existing = running
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
                let (thread_sender, senders) = (Arc::clone(&sender), Arc::clone(self));
                std::thread::Builder::new()
                    .name("http-sender".into())
                    .stack_size(SENDER_STACK_BYTES)
                    .spawn(move || run(&thread_sender, &senders))?;
                running.push(Arc::downgrade(&sender));
                sender
            }
        };
        lock(&sender.clients).push(Arc::clone(client));
        Ok(Subscription {
            sender,
            client: Arc::clone(client),
        })
    }
}

fn run(sender: &Arc<Sender>, senders: &Senders) {
    let mut last_seq = sender.slot.latest().seq;
    let mut clients = Vec::new();
    loop {
        let frame = sender.slot.wait_newer(last_seq, TICK);
        if lock(&sender.clients).is_empty() || sender.slot.is_closed() {
            // Decided under the list of senders, so that no client subscribes to a
            // sender that is ending.
            let mut running = lock(&senders.running);
            if lock(&sender.clients).is_empty() || sender.slot.is_closed() {
                running.retain(|s| !std::ptr::eq(s.as_ptr(), Arc::as_ptr(sender)));
                return;
            }
        }
        clients.clear();
        clients.extend(lock(&sender.clients).iter().cloned());
        // No new frame within a tick: the newest one, for clients due a part again.
        let frame = frame.unwrap_or_else(|| sender.slot.latest());
        last_seq = last_seq.max(frame.seq);
        let now_us = monotonic_us();
        for client in &clients {
            client.offer(&frame, now_us);
        }
    }
}

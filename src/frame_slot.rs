//! The newest-frame slot: one per camera, holding only the latest encoded frame.
//!
//! Publishing is lock-free: an atomic pointer swap (`arc-swap`), an atomic increment of a
//! futex word, and a `FUTEX_WAKE` system call only when some client is asleep. The capture
//! thread therefore never waits on a client. Clients sleep on the futex word until the
//! sequence moves past the last frame they sent; a client that was busy simply finds a
//! newer frame and skips the ones in between.
//!
//! The slot also counts its viewers, so capture can skip encoding when nobody watches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::frame::Frame;

pub struct FrameSlot {
    frame: ArcSwap<Frame>,
    /// Bumped on every publish and on close; sleepers wait for it to change.
    futex_word: AtomicU32,
    sleepers: AtomicU32,
    viewers: AtomicUsize,
    next_seq: std::sync::atomic::AtomicU64,
    closed: AtomicBool,
}

impl Default for FrameSlot {
    fn default() -> Self {
        FrameSlot::new()
    }
}

impl FrameSlot {
    pub fn new() -> FrameSlot {
        FrameSlot {
            frame: ArcSwap::from_pointee(Frame::empty()),
            futex_word: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            viewers: AtomicUsize::new(0),
            next_seq: std::sync::atomic::AtomicU64::new(1),
            closed: AtomicBool::new(false),
        }
    }

    /// The sequence number for the next frame to publish.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Replaces the slot's frame with `frame` (numbered by `next_seq`) and wakes every
    /// waiting client, unless a newer frame is there already. A camera has one producer,
    /// its capture thread, except a pushed camera encoding in the program's thread, where
    /// the capture thread still draws NO SIGNAL: two producers may race between
    /// `next_seq` and `publish`, and the newest frame wins. Never blocks.
    pub fn publish(&self, frame: Arc<Frame>) {
        let previous = self.frame.rcu(|current| {
            if current.seq < frame.seq {
                Arc::clone(&frame)
            } else {
                Arc::clone(current)
            }
        });
        if previous.seq < frame.seq {
            self.wake_all();
        }
    }

    /// The latest frame (sequence 0 if none was ever published).
    pub fn latest(&self) -> Arc<Frame> {
        self.frame.load_full()
    }

    /// Waits until a frame newer than `last_seq` is published, the slot is closed, or
    /// `timeout` passes. Returns the newest frame, or `None` on timeout or close.
    pub fn wait_newer(&self, last_seq: u64, timeout: Duration) -> Option<Arc<Frame>> {
        let deadline = Instant::now() + timeout;
        loop {
            // Read the word before the frame: a publish after this read changes the word,
            // so the futex wait below returns at once instead of missing it.
            let word = self.futex_word.load(Ordering::SeqCst);
            let frame = self.frame.load_full();
            if frame.seq > last_seq {
                return Some(frame);
            }
            if self.is_closed() {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            futex_wait(&self.futex_word, word, deadline - now);
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Wakes every waiter for good: used at shutdown.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn wake_all(&self) {
        self.futex_word.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            futex_wake_all(&self.futex_word);
        }
    }

    /// Registers a viewer for as long as the guard lives.
    pub fn viewer(self: &Arc<Self>) -> ViewerGuard {
        self.viewers.fetch_add(1, Ordering::SeqCst);
        ViewerGuard {
            slot: Arc::clone(self),
        }
    }

    /// Whether anyone wants frames right now.
    pub fn has_viewers(&self) -> bool {
        self.viewers.load(Ordering::SeqCst) > 0
    }

    pub fn viewer_count(&self) -> usize {
        self.viewers.load(Ordering::SeqCst)
    }
}

/// Keeps a slot's viewer count up while it lives.
pub struct ViewerGuard {
    slot: Arc<FrameSlot>,
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.slot.viewers.fetch_sub(1, Ordering::SeqCst);
    }
}

fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: the word outlives the call; FUTEX_WAIT only reads it and sleeps while it
    // equals `expected`. Spurious and EINTR returns are handled by the caller's loop.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &timeout as *const libc::timespec,
        );
    }
}

fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    fn publish(slot: &FrameSlot, byte: u8) -> u64 {
        let mut frame = Frame::from_jpeg(&[byte; 4], 2, 2, 0);
        frame.seq = slot.next_seq();
        let seq = frame.seq;
        slot.publish(Arc::new(frame));
        seq
    }

    #[test]
    fn a_new_slot_has_no_frame() {
        let slot = FrameSlot::new();
        assert_eq!(slot.latest().seq, 0);
        assert!(slot.wait_newer(0, Duration::from_millis(10)).is_none());
    }

    #[test]
    fn publish_numbers_frames_and_keeps_only_the_newest() {
        let slot = FrameSlot::new();
        assert_eq!(publish(&slot, 1), 1);
        assert_eq!(publish(&slot, 2), 2);
        let newest = slot.wait_newer(0, Duration::ZERO).expect("a frame");
        assert_eq!((newest.seq, newest.jpeg()[0]), (2, 2));
    }

    #[test]
    fn a_frame_published_late_never_replaces_a_newer_one() {
        let slot = FrameSlot::new();
        let mut older = Frame::from_jpeg(&[1; 4], 2, 2, 0);
        older.seq = slot.next_seq();
        let mut newer = Frame::from_jpeg(&[2; 4], 2, 2, 0);
        newer.seq = slot.next_seq();
        slot.publish(Arc::new(newer));
        slot.publish(Arc::new(older));
        let latest = slot.latest();
        assert_eq!((latest.seq, latest.jpeg()[0]), (2, 2));
    }

    #[test]
    fn a_sleeping_client_wakes_on_publish() {
        let slot = Arc::new(FrameSlot::new());
        let waiter = {
            let slot = Arc::clone(&slot);
            thread::spawn(move || slot.wait_newer(0, Duration::from_secs(10)))
        };
        thread::sleep(Duration::from_millis(50));
        publish(&slot, 7);
        let got = waiter.join().expect("waiter").expect("woken with a frame");
        assert_eq!(got.jpeg()[0], 7);
    }

    #[test]
    fn close_wakes_sleepers_without_a_frame() {
        let slot = Arc::new(FrameSlot::new());
        let waiter = {
            let slot = Arc::clone(&slot);
            thread::spawn(move || slot.wait_newer(0, Duration::from_secs(10)))
        };
        thread::sleep(Duration::from_millis(50));
        slot.close();
        assert!(waiter.join().expect("waiter").is_none());
    }

    #[test]
    fn viewers_are_counted_while_their_guard_lives() {
        let slot = Arc::new(FrameSlot::new());
        assert!(!slot.has_viewers());
        let guard = slot.viewer();
        let second = slot.viewer();
        assert_eq!(slot.viewer_count(), 2);
        drop(guard);
        drop(second);
        assert!(!slot.has_viewers());
    }

    #[test]
    fn many_waiters_each_see_every_publish_or_skip_ahead() {
        let slot = Arc::new(FrameSlot::new());
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let slot = Arc::clone(&slot);
                thread::spawn(move || {
                    let mut last = 0;
                    while last < 100 {
                        match slot.wait_newer(last, Duration::from_secs(5)) {
                            Some(f) => {
                                assert!(f.seq > last);
                                last = f.seq;
                            }
                            None => panic!("timed out at {last}"),
                        }
                    }
                    last
                })
            })
            .collect();
        for i in 0..100u8 {
            publish(&slot, i);
            thread::sleep(Duration::from_micros(200));
        }
        for w in waiters {
            assert_eq!(w.join().expect("waiter"), 100);
        }
    }
}

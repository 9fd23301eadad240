//! Ending threads: within a bound, where a thread may be stuck in a system call (a
//! driver's ioctl, a socket nobody reads) and is left behind rather than waited for, so
//! stopping never hangs; and [`StoppableThread`], a background thread that ends when its
//! owner drops it.

use std::io;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

/// A background thread that waits on a stop channel (in `select!`, `recv_timeout`):
/// dropping the `StoppableThread` closes the channel, which wakes the thread at once, and
/// joins it. The thread must not block anywhere else for long.
pub struct StoppableThread {
    name: String,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StoppableThread {
    /// Starts `body` on a thread named `name`, handing it the stop channel's receiver.
    pub fn spawn(
        name: &str,
        body: impl FnOnce(Receiver<()>) + Send + 'static,
    ) -> io::Result<StoppableThread> {
        let (stop, stopped) = crossbeam_channel::bounded(0);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || body(stopped))?;
        Ok(StoppableThread {
            name: name.to_owned(),
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for StoppableThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("the {} thread panicked", self.name);
            }
        }
    }
}

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(5);

/// Joins each of `threads` that ends before `deadline`; returns how many were left behind.
pub fn join_until(threads: impl IntoIterator<Item = JoinHandle<()>>, deadline: Instant) -> usize {
    let mut left_behind = 0;
    for thread in threads {
        if wait_until(deadline, || thread.is_finished()) {
            let _ = thread.join();
        } else {
            left_behind += 1;
        }
    }
    left_behind
}

/// Waits until `done` says so or `deadline` passes; returns whether it was done.
pub fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_stoppable_thread_ends_when_dropped() {
        let (ended, has_ended) = mpsc::channel();
        let thread = StoppableThread::spawn("test-stop", move |stop| {
            let _ = stop.recv();
            let _ = ended.send(());
        })
        .expect("spawn");
        assert!(has_ended.try_recv().is_err(), "runs until dropped");
        drop(thread);
        assert_eq!(has_ended.try_recv(), Ok(()), "ended and joined by the drop");
    }

    #[test]
    fn a_thread_that_ends_is_joined_and_a_stuck_one_left_behind() {
        let quick = std::thread::spawn(|| ());
        let (release, stuck_until) = mpsc::channel::<()>();
        let stuck = std::thread::spawn(move || {
            let _ = stuck_until.recv();
        });
        let started = Instant::now();
        let deadline = started + Duration::from_millis(100);
        assert_eq!(join_until([quick, stuck], deadline), 1);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < Duration::from_secs(1), "{waited:?}");
        drop(release);
    }
}

//! Ending threads within a bound. A thread stuck in a system call (a driver's ioctl, a
//! socket nobody reads) is left behind rather than waited for: stopping never hangs.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

//! systemd: readiness and the watchdog, spoken directly (sd_notify's protocol is one
//! datagram per message to the socket named in `NOTIFY_SOCKET`; no libsystemd).
//!
//! Under `Type=notify` systemd waits for `READY=1`, which is sent once `Streamer::start` has
//! returned: every camera is open or known absent (it shows NO SIGNAL until it appears) and
//! every port is bound. Under `WatchdogSec=` systemd expects `WATCHDOG=1` at least that
//! often. It is sent only while every capture thread makes progress — each bumps its
//! camera's heartbeat once per loop, at least ten times a second even without frames —
//! so a capture thread stuck in a driver, or gone, stops the pings and systemd restarts
//! the service. Outside systemd none of this does anything.
//!
//! See `systemd/frcstream.service`.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::streamer::Streamer;

/// The service manager's notification socket, from `NOTIFY_SOCKET`.
pub struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
}

impl Notifier {
    /// `None` when not started by systemd with `Type=notify` (or the socket is unusable).
    pub fn from_env() -> Option<Notifier> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        let address = match notify_address(name.as_encoded_bytes()) {
            Ok(address) => address,
            Err(e) => {
                log::warn!("NOTIFY_SOCKET={}: {e}", name.to_string_lossy());
                return None;
            }
        };
        let socket = UnixDatagram::unbound()
            .inspect_err(|e| log::warn!("cannot make a socket to notify systemd: {e}"))
            .ok()?;
        Some(Notifier { socket, address })
    }

    /// Sends `state`: newline-separated `KEY=value` lines, e.g. `READY=1`.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        self.socket
            .send_to_addr(state.as_bytes(), &self.address)
            .map(drop)
    }
}

/// A path, or an abstract socket name written with a leading `@`.
fn notify_address(name: &[u8]) -> io::Result<SocketAddr> {
    match name.split_first() {
        Some((b'@', abstract_name)) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(abstract_name)
        }
        Some((b'/', _)) => {
            use std::os::unix::ffi::OsStrExt;
            SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(name))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an absolute path or an @abstract name",
        )),
    }
}

/// The watchdog interval systemd asks for (`WATCHDOG_USEC`), if it is meant for this
/// process (`WATCHDOG_PID`, when set, is ours).
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    let pid = std::env::var("WATCHDOG_PID").ok();
    parse_watchdog(&usec, pid.as_deref(), std::process::id())
}

fn parse_watchdog(usec: &str, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    let usec: u64 = usec.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Tells, from successive readings of the capture threads' heartbeats, which ones have not
/// moved for longer than `stall_after`.
pub struct ProgressCheck {
    stall_after: Duration,
    last: Vec<(u64, Instant)>,
}

impl ProgressCheck {
    pub fn new(stall_after: Duration, heartbeats: &[u64], now: Instant) -> ProgressCheck {
        ProgressCheck {
            stall_after,
            last: heartbeats.iter().map(|&beat| (beat, now)).collect(),
        }
    }

    /// Takes a new reading; returns the stalled threads (by index) and for how long.
    pub fn update(&mut self, heartbeats: &[u64], now: Instant) -> Vec<(usize, Duration)> {
        let mut stalled = Vec::new();
        for (index, (&beat, last)) in heartbeats.iter().zip(&mut self.last).enumerate() {
            if beat != last.0 {
                *last = (beat, now);
            } else {
                let still = now.saturating_duration_since(last.1);
                if still > self.stall_after {
                    stalled.push((index, still));
                }
            }
        }
        stalled
    }
}

/// Runs on the main thread until `stop` fires: sends `READY=1`, then, when systemd asks
/// for a watchdog, pings every quarter interval while every capture thread makes progress
/// (a thread still for half the interval counts as stuck). Sends `STOPPING=1` at the end.
pub fn supervise(streamer: &Streamer, stop: &Receiver<()>) {
    let Some(notifier) = Notifier::from_env() else {
        let _ = stop.recv();
        return;
    };
    let cameras = streamer.cameras();
    let status = format!(
        "STATUS=streaming {} camera{} on port {}",
        cameras.len(),
        if cameras.len() == 1 { "" } else { "s" },
        streamer.local_addr().port()
    );
    if let Err(e) = notifier.notify(&format!("READY=1\n{status}")) {
        log::warn!("cannot notify systemd: {e}");
    }
    let Some(interval) = watchdog_interval() else {
        let _ = stop.recv();
        let _ = notifier.notify("STOPPING=1");
        return;
    };
    log::info!(
        "systemd watchdog: {} ms; pinging while the capture threads make progress",
        interval.as_millis()
    );
    let mut check = ProgressCheck::new(interval / 2, &streamer.heartbeats(), Instant::now());
    let mut was_stalled = false;
    // Until a message or a disconnect says stop.
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(interval / 4) {
        let stalled = check.update(&streamer.heartbeats(), Instant::now());
        if stalled.is_empty() {
            let _ = notifier.notify("WATCHDOG=1");
            if was_stalled {
                log::info!("every capture thread makes progress again");
                let _ = notifier.notify(&status);
                was_stalled = false;
            }
        } else if !was_stalled {
            let names: Vec<String> = stalled
                .iter()
                .map(|&(index, still)| {
                    format!("\"{}\" ({} ms)", cameras[index].name, still.as_millis())
                })
                .collect();
            let message = format!(
                "capture thread of camera {} stuck: no more watchdog pings, systemd will restart frcstream",
                names.join(", ")
            );
            log::error!("{message}");
            let _ = notifier.notify(&format!("STATUS={message}"));
            was_stalled = true;
        }
    }
    let _ = notifier.notify("STOPPING=1");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_environment() {
        assert_eq!(
            parse_watchdog("10000000", None, 42),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_watchdog("500000", Some("42"), 42),
            Some(Duration::from_millis(500))
        );
        // Meant for another process (systemd sets WATCHDOG_PID for the main process).
        assert_eq!(parse_watchdog("500000", Some("41"), 42), None);
        assert_eq!(parse_watchdog("0", None, 42), None);
        assert_eq!(parse_watchdog("soon", None, 42), None);
    }

    #[test]
    fn notify_addresses() {
        assert!(notify_address(b"/run/systemd/notify").is_ok());
        assert!(notify_address(b"@/org/freedesktop/systemd1/notify/123").is_ok());
        assert!(notify_address(b"relative").is_err());
        assert!(notify_address(b"").is_err());
    }

    #[test]
    fn notify_sends_datagrams() {
        let dir = std::env::temp_dir().join(format!("frcstream-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier {
            socket: UnixDatagram::unbound().unwrap(),
            address: notify_address(path.as_os_str().as_encoded_bytes()).unwrap(),
        };
        notifier.notify("READY=1\nSTATUS=x").unwrap();
        let mut buffer = [0u8; 64];
        let n = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1\nSTATUS=x");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn progress_check() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut check = ProgressCheck::new(Duration::from_millis(500), &[0, 0], start);
        assert!(check.update(&[1, 1], at(100)).is_empty());
        // Camera 1 stops; within the limit it is not stuck yet.
        assert!(check.update(&[5, 1], at(500)).is_empty());
        assert!(check.update(&[9, 1], at(600)).is_empty());
        let stalled = check.update(&[12, 1], at(700));
        assert_eq!(stalled, vec![(1, Duration::from_millis(600))]);
        // It moves again.
        assert!(check.update(&[15, 2], at(800)).is_empty());
    }
}

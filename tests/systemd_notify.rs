//! The systemd protocol for real: the `frcstream` binary runs with a `NOTIFY_SOCKET` this
//! test owns (a datagram socket bound in a temporary folder) and `WATCHDOG_USEC` set, as
//! systemd would start it under `Type=notify` and `WatchdogSec=`.
//!
//! - `READY=1` arrives once, and when it does the port answers; a camera that is absent
//!   (a V4L2 device that does not exist) does not hold it back.
//! - `WATCHDOG=1` pings arrive at a quarter of the interval.
//! - A wedged capture thread stops them: the camera is a JPEG folder, and one of its files
//!   is replaced by a FIFO nobody writes, so the capture thread blocks for real in
//!   `open(2)`, as it would in a hung driver call. HTTP keeps answering (only the watchdog
//!   notices), the pings stop for longer than the interval (systemd would restart the
//!   service), and `STATUS=` names the camera.
//! - Writing a JPEG into the FIFO frees the thread: pings resume. SIGTERM sends
//!   `STOPPING=1` and the process exits 0.
//!
//! And `systemd-analyze verify` accepts `systemd/frcstream.service` (SKIPPED where
//! systemd-analyze is missing).

mod support;

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mjpeg_client as client;
use mjpeg_client::test_jpeg::flat_jpeg;

/// The watchdog interval the test asks for: pings every 500 ms, a thread still for 1 s is
/// stuck.
const WATCHDOG: Duration = Duration::from_secs(2);

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("frcstream-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Messages from the program, with the time each arrived.
struct Socket {
    socket: UnixDatagram,
}

impl Socket {
    fn bind(path: &Path) -> Socket {
        let socket = UnixDatagram::bind(path).expect("bind the notify socket");
        Socket { socket }
    }

    /// The next message within `timeout`.
    fn recv(&self, timeout: Duration) -> Option<String> {
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .unwrap();
        let mut buffer = [0u8; 4096];
        match self.socket.recv(&mut buffer) {
            Ok(n) => Some(String::from_utf8_lossy(&buffer[..n]).into_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("notify socket: {e}"),
        }
    }

    /// Every message until `until`, with arrival times.
    fn collect(&self, until: Instant) -> Vec<(Instant, String)> {
        let mut got = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return got;
            }
            if let Some(message) = self.recv(left) {
                got.push((Instant::now(), message));
            }
        }
    }
}

fn pings(messages: &[(Instant, String)]) -> Vec<Instant> {
    messages
        .iter()
        .filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1"))
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn ready_and_watchdog_over_notify_socket() {
    let scratch = Scratch::new("notify");
    let frames = scratch.0.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    std::fs::write(frames.join("a.jpg"), flat_jpeg(64, 48, 40)).unwrap();
    std::fs::write(frames.join("b.jpg"), flat_jpeg(64, 48, 200)).unwrap();
    let port = free_port();
    let config = scratch.0.join("frcstream.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1\"\nport = {port}\n\n\
             [[camera]]\nname = \"folder\"\nsource = \"folder:{}\"\nfps = 30\n\n\
             [[camera]]\nname = \"absent\"\nsource = \"v4l2:/dev/frcstream-test-no-such-camera\"\n",
            frames.display()
        ),
    )
    .unwrap();
    let socket_path = scratch.0.join("notify");
    let socket = Socket::bind(&socket_path);
    let stderr = std::fs::File::create(scratch.0.join("stderr")).unwrap();
    let mut process = Process(
        Command::new(env!("CARGO_BIN_EXE_frcstream"))
            .arg("--config")
            .arg(&config)
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string())
            .env_remove("WATCHDOG_PID")
            .env("JOURNAL_STREAM", "8:12345")
            .env("STATE_DIRECTORY", &scratch.0)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start frcstream"),
    );
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let log = || std::fs::read_to_string(scratch.0.join("stderr")).unwrap_or_default();

    // READY=1 first, and then the port answers at once.
    let started = Instant::now();
    let first = socket
        .recv(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no READY=1 within 30 s; log:\n{}", log()));
    let ready_after = started.elapsed();
    assert!(
        first.lines().any(|l| l == "READY=1"),
        "first message: {first:?}"
    );
    assert!(
        first.contains("STATUS=streaming 2 cameras"),
        "first message: {first:?}"
    );
    let response = client::get(address, "/stats.json").expect("the port answers once READY=1");
    assert_eq!(response.status, 200);
    eprintln!("READY=1 after waiting {ready_after:?}; the port answered at once");

    // Pings every quarter interval while the capture threads (the folder's, and the
    // absent camera's NO SIGNAL loop) make progress.
    let healthy = socket.collect(Instant::now() + Duration::from_secs(3));
    let healthy_pings = pings(&healthy);
    assert!(
        healthy_pings.len() >= 4,
        "only {} pings in 3 s: {healthy:?}\nlog:\n{}",
        healthy_pings.len(),
        log()
    );
    assert!(
        !healthy.iter().any(|(_, m)| m.contains("READY=1")),
        "READY=1 sent twice"
    );
    let longest_gap = healthy_pings.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        longest_gap < WATCHDOG / 2,
        "gap of {longest_gap:?} between pings"
    );

    // Wedge the folder camera's capture thread: b.jpg becomes a FIFO with no writer, so
    // its next read blocks in open(2).
    let fifo = scratch.0.join("wedge.fifo");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    std::fs::rename(&fifo, frames.join("b.jpg")).unwrap();
    let wedged_at = Instant::now();
    let wedged = socket.collect(wedged_at + Duration::from_secs(6));
    let wedged_pings = pings(&wedged);
    let last_ping = wedged_pings.last().copied().unwrap_or(wedged_at);
    let silence = wedged_at + Duration::from_secs(6) - last_ping;
    eprintln!(
        "wedged: {} more pings, the last {:?} after the wedge, then {silence:?} of silence",
        wedged_pings.len(),
        last_ping - wedged_at
    );
    assert!(
        silence > WATCHDOG + Duration::from_millis(500),
        "pings went on while the capture thread was wedged: {wedged:?}"
    );
    assert!(
        last_ping - wedged_at < Duration::from_millis(2500),
        "pings stopped only {:?} after the wedge",
        last_ping - wedged_at
    );
    assert!(
        wedged
            .iter()
            .any(|(_, m)| m.contains("STATUS=") && m.contains("\"folder\"") && m.contains("stuck")),
        "no STATUS naming the stuck camera: {wedged:?}"
    );
    // Only the watchdog sees it: the process runs and HTTP answers.
    assert!(process.0.try_wait().unwrap().is_none(), "frcstream died");
    assert_eq!(client::get(address, "/stats.json").unwrap().status, 200);
    assert!(log().contains("stuck"), "log:\n{}", log());

    // Free the thread: open the FIFO's writing end (its blocked open returns), put a real
    // file back under the name, write a JPEG into the FIFO and close it.
    {
        let mut writer = std::fs::OpenOptions::new()
            .write(true)
            .open(frames.join("b.jpg"))
            .expect("open the FIFO for writing");
        std::fs::write(scratch.0.join("b.jpg"), flat_jpeg(64, 48, 200)).unwrap();
        std::fs::rename(scratch.0.join("b.jpg"), frames.join("b.jpg")).unwrap();
        writer.write_all(&flat_jpeg(64, 48, 120)).unwrap();
    }
    let freed = socket.collect(Instant::now() + Duration::from_secs(3));
    assert!(
        pings(&freed).len() >= 2,
        "pings did not resume once the thread was free: {freed:?}\nlog:\n{}",
        log()
    );

    // SIGTERM: STOPPING=1, exit 0.
    assert_eq!(
        unsafe { libc::kill(process.0.id() as i32, libc::SIGTERM) },
        0
    );
    let stopping = socket.collect(Instant::now() + Duration::from_secs(2));
    assert!(
        stopping.iter().any(|(_, m)| m.contains("STOPPING=1")),
        "no STOPPING=1: {stopping:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = process.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "frcstream did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}; log:\n{}", log());
    // Under journald: priorities as `<N>` prefixes, no timestamps of our own.
    let text = log();
    assert!(text.lines().any(|l| l.starts_with("<6>")), "log:\n{text}");
    assert!(text.lines().any(|l| l.starts_with("<3>")), "log:\n{text}");
    assert!(
        text.lines()
            .all(|l| l.starts_with('<') && !l.contains(" INFO ")),
        "log:\n{text}"
    );
}

/// `systemd-analyze verify` on the unit, with its `ExecStart=` binary present under a
/// temporary root.
#[test]
fn unit_file_verifies() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/frcstream.service");
    let text = std::fs::read_to_string(&unit).expect("systemd/frcstream.service");
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=always",
        "SupplementaryGroups=video",
        "DeviceAllow=char-video4linux rw",
        "ExecStart=/usr/local/bin/frcstream",
    ] {
        assert!(text.contains(needed), "the unit lacks {needed}");
    }
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if !analyze.is_ok_and(|o| o.status.success()) {
        let reason = "systemd-analyze --version does not run";
        support::skip_unless_required(&support::SYSTEMD, "unit_file_verifies", reason);
        return;
    }
    let scratch = Scratch::new("verify");
    let bin = scratch.0.join("usr/local/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_frcstream"), bin.join("frcstream")).unwrap();
    let units = scratch.0.join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::copy(&unit, units.join("frcstream.service")).unwrap();
    // The units it depends on by default (sysinit.target, ...): the machine's own.
    let system_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .find(|dir| Path::new(dir).is_dir())
        .expect("systemd's unit folder");
    std::fs::create_dir_all(scratch.0.join("usr/lib/systemd")).unwrap();
    let copied = Command::new("cp")
        .arg("-r")
        .arg(system_units)
        .arg(scratch.0.join("usr/lib/systemd/"))
        .status()
        .expect("cp");
    assert!(copied.success());
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", scratch.0.display()))
        .arg(units.join("frcstream.service"))
        .output()
        .expect("systemd-analyze");
    let messages = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    // Only warnings about the unit itself count (not about systemd's own units that the
    // temporary root lacks).
    let ours: Vec<&str> = messages
        .lines()
        .filter(|l| l.contains("frcstream"))
        .collect();
    assert!(
        output.status.success() && ours.is_empty(),
        "systemd-analyze verify: {}\n{messages}",
        output.status
    );
}

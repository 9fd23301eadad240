//! frcstream against real V4L2 drivers, in the qemu rig of `vm/` (Debian's kernel, the
//! `vivid` virtual camera and `v4l2loopback`): the frcstream binary runs in the VM and the
//! tests watch its stream from the host through a forwarded port.
//!
//! - vivid, YUYV 640x480: parts decode to 640x480 and change; delivered fps and the CPU time
//!   of frcstream in the VM are printed.
//! - `[camera.controls]`: the value is what `v4l2-ctl` reads back, also after the camera
//!   came back; an unknown name and an out-of-range value exit with status 2, naming it.
//! - Unplug: `disconnect=1` (the open handle fails, the node stays) and unbind + `rmmod` +
//!   reload (the node disappears under the open handle and returns), several times: a
//!   NO SIGNAL card within 1 s on the same connection, real frames within 2 s of the device's
//!   return, threads and descriptors of the process do not grow.
//! - `--list-cameras` lists vivid's formats and controls.
//! - Saved settings: controls POSTed over HTTP are what `v4l2-ctl` reads after frcstream is
//!   started again on the same state file, also over the config's value.
//! - v4l2loopback fed JPEG files as an MJPEG camera: streamed frames are byte-identical to
//!   the files; a truncated JPEG is counted as invalid and never forwarded.
//!
//! Each test boots one VM (about 3–6 s; the rig runs one VM at a time). Where qemu cannot
//! run, the tests print SKIPPED and pass, unless FRCSTREAM_REQUIRE_VM=1.
//! `cargo test --test v4l2_vivid -- --nocapture` shows the measurements.

mod support;
use support::vm;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mjpeg_client::MjpegStream;
use mjpeg_client::test_jpeg::{Subsamp, rgb_jpeg};
use vm::Vm;

const PORT: u16 = 1181;
/// The state file of saved settings in the guest.
const STATE_FILE: &str = "/tmp/frcstream-state/settings.json";
/// Unplug cycles of each kind (disconnect=1, unbind + rmmod + reload).
const CYCLES: usize = 3;

// ------------------------------------------------------------------ payload ----

/// A scratch directory: the payload copied into the VM, and vm.py's stderr next to it.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("frcstream-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("payload")).expect("scratch dir");
        Scratch { dir }
    }

    fn payload(&self) -> PathBuf {
        self.dir.join("payload")
    }

    fn write(&self, name: &str, data: &[u8]) {
        let path = self.payload().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("payload subdir");
        }
        std::fs::write(path, data).expect("payload file");
    }

    /// The frcstream binary, without debug info.
    fn add_binary(&self) {
        vm::copy_frcstream(&self.payload());
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The camera's config. The host's client reaches the VM through qemu's user network, so
/// it is not on loopback: `max_mbit = 0` turns the robot's bandwidth budget off, as on a
/// bench, because these tests measure the driver path, not the field link.
fn camera_config(device: &str, format: &str, fps: u32, controls: &str) -> String {
    format!(
        "[server]\nbind = \"0.0.0.0\"\nport = {PORT}\nmax_mbit = 0\n\n\
         [[camera]]\nname = \"cam\"\nsource = \"v4l2:{device}\"\n\
         width = 640\nheight = 480\nfps = {fps}\nformat = \"{format}\"\n{controls}"
    )
}

// ------------------------------------------------------------ stream watcher ----

/// One part seen by the watcher.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    no_signal: bool,
    /// `X-Timestamp`: the guest's CLOCK_MONOTONIC at capture, in microseconds.
    timestamp_us: u64,
    hash: u64,
    size: (usize, usize),
    /// The JPEG itself when the watcher keeps them.
    jpeg: Option<Vec<u8>>,
}

/// Reads an MJPEG stream on its own thread (so the server never sees a stalled client
/// while the test runs commands in the guest) and records every part.
struct Watcher {
    seen: Arc<Mutex<Vec<Seen>>>,
    ended: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    socket: TcpStream,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    fn start(address: SocketAddr, path: &str, keep_jpegs: bool) -> Watcher {
        let mut stream = MjpegStream::open(address, path).expect("open the stream");
        stream
            .socket()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        let socket = stream.socket().try_clone().expect("socket clone");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, ended, stop) = (seen.clone(), ended.clone(), stop.clone());
            std::thread::spawn(move || {
                loop {
                    let part = match stream.next_part() {
                        Ok(part) => part,
                        Err(e) => {
                            if !stop.load(Ordering::Relaxed) {
                                *ended.lock().unwrap() = Some(e.to_string());
                            }
                            return;
                        }
                    };
                    let at = Instant::now();
                    let size = support::decoded_size(&part.jpeg);
                    let mut hasher = DefaultHasher::new();
                    part.jpeg.hash(&mut hasher);
                    seen.lock().unwrap().push(Seen {
                        at,
                        no_signal: part.header("x-frame-kind") == Some("no-signal"),
                        timestamp_us: part.timestamp_us().unwrap_or(0),
                        hash: hasher.finish(),
                        size,
                        jpeg: keep_jpegs.then_some(part.jpeg),
                    });
                }
            })
        };
        Watcher {
            seen,
            ended,
            stop,
            socket,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn since(&self, index: usize) -> Vec<Seen> {
        self.seen.lock().unwrap()[index..].to_vec()
    }

    fn assert_alive(&self, context: &str) {
        if let Some(e) = self.ended.lock().unwrap().as_ref() {
            panic!("{context}: the stream ended: {e}");
        }
    }

    /// Waits until `found` picks a part (from index `from` on) or `deadline` passes.
    fn wait_for(
        &self,
        from: usize,
        deadline: Instant,
        found: impl Fn(&Seen) -> bool,
    ) -> Option<(usize, Seen)> {
        loop {
            {
                let seen = self.seen.lock().unwrap();
                if let Some(i) = (from..seen.len()).find(|&i| found(&seen[i])) {
                    return Some((i, seen[i].clone()));
                }
            }
            self.assert_alive("waiting for a part");
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(mut self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.socket.shutdown(Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

// ------------------------------------------------------------ guest helpers ----

/// The pid of the frcstream process in the guest.
fn frcstream_pid(vm: &mut Vm) -> u32 {
    let out = vm.run("pidof frcstream");
    let pids: Vec<u32> = out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(pids.len(), 1, "one frcstream process in the guest: {out}");
    pids[0]
}

/// (user + system CPU ticks of `pid`, guest uptime in seconds). Ticks are 1/100 s.
fn cpu_and_uptime(vm: &mut Vm, pid: u32) -> (u64, f64) {
    let out = vm.run(&format!("cat /proc/{pid}/stat /proc/uptime"));
    let mut lines = out.lines();
    let stat = lines.next().expect("stat line");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat has (comm)")
        .1
        .split_whitespace()
        .collect();
    // utime and stime are the 14th and 15th fields, the 12th and 13th after `(comm)`.
    let ticks =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    let uptime = lines
        .next()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok())
        .expect("uptime");
    (ticks, uptime)
}

/// (threads, open descriptors) of `pid`.
fn threads_and_fds(vm: &mut Vm, pid: u32) -> (u32, u32) {
    let out = vm.run(&format!(
        "grep '^Threads:' /proc/{pid}/status | tr -dc 0-9; echo; ls /proc/{pid}/fd | wc -l"
    ));
    let mut numbers = out
        .split_whitespace()
        .map(|n| n.parse::<u32>().expect("number"));
    (
        numbers.next().expect("threads"),
        numbers.next().expect("fds"),
    )
}

/// Guest uptime in microseconds, the clock of V4L2 timestamps (no suspend in the VM).
fn parse_uptime_us(text: &str) -> u64 {
    let seconds: f64 = text
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no uptime in {text:?}"));
    (seconds * 1e6) as u64
}

fn stats_camera(address: SocketAddr) -> serde_json::Value {
    support::stats(address)["cameras"][0].clone()
}

/// The first NO SIGNAL card from part `from` on, within 1 s of `lost_at`.
fn expect_card(watcher: &Watcher, from: usize, lost_at: Instant) -> Option<(usize, Seen)> {
    watcher.wait_for(from, lost_at + Duration::from_secs(1), |s| s.no_signal)
}

/// The first real frame after part `card`, within 2 s of `returned_at`.
fn expect_frame(watcher: &Watcher, card: usize, returned_at: Instant) -> Option<Seen> {
    watcher
        .wait_for(card, returned_at + Duration::from_secs(2), |s| !s.no_signal)
        .map(|(_, seen)| seen)
}

// -------------------------------------------------------------------- vivid ----

#[test]
fn vivid_yuyv_controls_unplug_and_list_cameras() {
    let test = "v4l2_vivid::vivid_yuyv_controls_unplug_and_list_cameras";
    let started = Instant::now();
    let scratch = Scratch::new("vivid");
    scratch.add_binary();
    scratch.write(
        "yuyv.toml",
        camera_config(
            "/dev/video0",
            "yuyv",
            25,
            "[camera.controls]\nbrightness = 140\n",
        )
        .as_bytes(),
    );
    scratch.write(
        "unknown-control.toml",
        camera_config(
            "/dev/video0",
            "yuyv",
            25,
            "[camera.controls]\nexposure_time_absolute = 20\n",
        )
        .as_bytes(),
    );
    scratch.write(
        "out-of-range.toml",
        camera_config(
            "/dev/video0",
            "yuyv",
            25,
            "[camera.controls]\nbrightness = 300\n",
        )
        .as_bytes(),
    );
    let Some(mut vm) = Vm::boot(test, &scratch.payload(), &[PORT], &[], &scratch.dir) else {
        return;
    };
    eprintln!(
        "vivid: VM ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // --list-cameras: formats, sizes and controls, as config.
    let listing = vm.run("/payload/frcstream --list-cameras");
    for expected in [
        "vivid",
        "YUYV",
        "640x480 @ ",
        "25 fps",
        "source = \"v4l2:/dev/video0\"",
        "[camera.controls]",
        "# brightness = 128",
        "# horizontal_flip = false",
        "# test_pattern = \"75_colorbar\"",
        "buttons",
    ] {
        assert!(
            listing.contains(expected),
            "--list-cameras lacks {expected:?}:\n{listing}"
        );
    }
    // vivid's int64, string, bitmask and array controls are skipped, not a crash.
    assert!(!listing.contains("integer_64_bits") && !listing.contains("u8_pixel_array"));

    // Control errors in the config: exit status 2 and a message naming the control.
    let (status, output) =
        vm.exec("timeout 20 /payload/frcstream -c /payload/unknown-control.toml");
    assert_eq!(
        status, 2,
        "an unknown control exits with status 2:\n{output}"
    );
    assert!(
        output.contains("unknown control `exposure_time_absolute` (line 14)")
            && output.contains("brightness"),
        "the message names the control, its line and what the camera has:\n{output}"
    );
    let unknown = output.lines().last().unwrap_or("").to_owned();
    let (status, output) = vm.exec("timeout 20 /payload/frcstream -c /payload/out-of-range.toml");
    assert_eq!(
        status, 2,
        "an out-of-range value exits with status 2:\n{output}"
    );
    assert!(
        output.contains("`brightness` (line 14) = 300 is out of range (0–255"),
        "the message names the control and its range:\n{output}"
    );
    eprintln!(
        "vivid: control errors (exit status 2):\n  {}\n  {}",
        unknown,
        output.lines().last().unwrap_or("")
    );

    // Stream YUYV 640x480 with brightness 140.
    vm.spawn(
        "fs",
        &format!("/payload/frcstream -c /payload/yuyv.toml --state-file {STATE_FILE}"),
    );
    assert!(
        vm.wait_port(PORT, 20),
        "frcstream listens:\n{}",
        vm.log("fs")
    );
    let pid = frcstream_pid(&mut vm);
    assert_eq!(
        vm.run("v4l2-ctl -d /dev/video0 -C brightness").trim(),
        "brightness: 140"
    );
    let address = vm.addr(PORT);
    let watcher = Watcher::start(address, "/cam.mjpg", false);
    let first = watcher
        .wait_for(0, Instant::now() + Duration::from_secs(5), |_| true)
        .expect("a first part within 5 s");
    assert_eq!(first.1.size, (640, 480));

    // Delivered fps and CPU over a window.
    let (ticks0, uptime0) = cpu_and_uptime(&mut vm, pid);
    let (count0, t0) = (watcher.count(), Instant::now());
    std::thread::sleep(Duration::from_secs(5));
    let (ticks1, uptime1) = cpu_and_uptime(&mut vm, pid);
    let (count1, t1) = (watcher.count(), Instant::now());
    let delivered_fps = (count1 - count0) as f64 / (t1 - t0).as_secs_f64();
    let cpu = (ticks1 - ticks0) as f64 / 100.0 / (uptime1 - uptime0);
    let camera = stats_camera(address);
    eprintln!(
        "vivid 640x480 YUYV: driver mode {}, captured {} fps, delivered to the host {delivered_fps:.1} fps; \
         frcstream CPU in the VM (TCG, no KVM) {:.1}% of one core ({} ticks in {:.1} s)",
        camera["mode"],
        camera["captured_fps"],
        cpu * 100.0,
        ticks1 - ticks0,
        uptime1 - uptime0
    );
    assert!(delivered_fps > 0.0);
    let live = watcher.since(0);
    assert!(live.len() >= 10, "{} parts", live.len());
    for part in &live {
        assert!(!part.no_signal, "no NO SIGNAL while the camera works");
        assert_eq!(part.size, (640, 480), "every part decodes to 640x480");
    }
    let changed = live.windows(2).filter(|w| w[0].hash != w[1].hash).count();
    assert_eq!(
        changed,
        live.len() - 1,
        "consecutive frames differ (vivid draws a counter)"
    );

    // Driver trouble short of an unplug. Dropped buffers (sequence gaps) are counted.
    let drops_before = stats_camera(address)["frames"]["camera_drops"]
        .as_u64()
        .expect("camera_drops");
    vm.run(
        "v4l2-ctl -d /dev/video0 -c percentage_of_dropped_buffers=50 && sleep 1 && \
         v4l2-ctl -d /dev/video0 -c percentage_of_dropped_buffers=0",
    );
    let drops_after = stats_camera(address)["frames"]["camera_drops"]
        .as_u64()
        .expect("camera_drops");
    assert!(
        drops_after >= drops_before + 5,
        "vivid dropping half its buffers shows as camera drops: {drops_before} -> {drops_after}"
    );
    // A buffer the driver flags as damaged is skipped, the stream goes on.
    let from = watcher.count();
    vm.run("v4l2-ctl -d /dev/video0 -c inject_v4l2_buf_flag_error=1");
    let deadline = Instant::now() + Duration::from_secs(3);
    while watcher.since(from).iter().filter(|s| !s.no_signal).count() < 10 {
        assert!(
            Instant::now() < deadline,
            "frames go on after a flagged buffer"
        );
        watcher.assert_alive("after a flagged buffer");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A fatal streaming error (every DQBUF fails with EIO) is a lost camera that is
    // reopened at once.
    let from = watcher.count();
    let lost_at = Instant::now();
    vm.run("v4l2-ctl -d /dev/video0 -c inject_fatal_streaming_error=1");
    let Some((card, _)) = expect_card(&watcher, from, lost_at) else {
        panic!(
            "fatal streaming error: no NO SIGNAL within 1 s\n{}",
            vm.log("fs")
        );
    };
    let Some(frame) = expect_frame(&watcher, card, lost_at) else {
        panic!(
            "fatal streaming error: no real frame within 2 s\n{}",
            vm.log("fs")
        );
    };
    eprintln!(
        "vivid: fatal streaming error: real frames again {:.0} ms later; camera drops counted with 50% dropped buffers: {}",
        (frame.at - lost_at).as_secs_f64() * 1e3,
        drops_after - drops_before
    );

    // Unplug cycles. The first one warms up (the NO SIGNAL card's buffers); threads and
    // descriptors are compared with what they were after it.
    let mut baseline = None;
    let mut resource_log = Vec::new();
    for cycle in 0..2 * CYCLES {
        let unbind = cycle % 2 == 1;
        let what = if unbind {
            "unbind + rmmod + reload"
        } else {
            "disconnect=1"
        };
        let from = watcher.count();
        let lost_at = Instant::now();
        let out = if unbind {
            // The node disappears under the open handle (as in a USB unplug).
            vm.run("echo vivid.0 > /sys/bus/platform/drivers/vivid/unbind")
        } else {
            // The open handle fails with ENODEV; the node stays and reopens at once.
            vm.run("v4l2-ctl -d /dev/video0 -c disconnect=1 && cat /proc/uptime")
        };
        let Some((card_index, card)) = expect_card(&watcher, from, lost_at) else {
            panic!(
                "cycle {cycle} ({what}): no NO SIGNAL within 1 s\n{}",
                vm.log("fs")
            );
        };
        assert_eq!(card.size, (640, 480), "NO SIGNAL at the stream's size");
        let card_after = card.at - lost_at;
        let (returned_at, returned_guest_us) = if unbind {
            // Then the module goes (rmmod fails while frcstream still holds the device: it
            // must let go of it) and comes back: the node returns.
            let out = vm.run(
                "n=0; until rmmod vivid 2>/dev/null; do n=$((n+1)); [ $n -gt 100 ] && exit 1; usleep 20000; done; \
                 /vm/reload-vivid >/dev/null && cat /proc/uptime",
            );
            (Instant::now(), parse_uptime_us(&out))
        } else {
            (lost_at, parse_uptime_us(&out))
        };
        let Some(frame) = expect_frame(&watcher, card_index, returned_at) else {
            panic!(
                "cycle {cycle} ({what}): no real frame within 2 s of the device's return\n{}",
                vm.log("fs")
            );
        };
        assert_eq!(frame.size, (640, 480));
        let host_ms = (frame.at - returned_at).as_secs_f64() * 1e3;
        let guest_ms = frame.timestamp_us.saturating_sub(returned_guest_us) as f64 / 1e3;
        let counts = threads_and_fds(&mut vm, pid);
        resource_log.push(counts);
        baseline.get_or_insert(counts);
        eprintln!(
            "vivid: cycle {cycle}: {what}: NO SIGNAL on the host {:.0} ms after the command was sent; \
             first real frame captured {guest_ms:.0} ms after the device was back (guest clock), \
             on the host {host_ms:.0} ms after; threads {}, fds {}",
            card_after.as_secs_f64() * 1e3,
            counts.0,
            counts.1
        );
    }
    watcher.assert_alive("after the unplug cycles");
    let (threads0, fds0) = baseline.expect("cycles ran");
    // A request thread may still be finishing: look again a few times before failing.
    let mut last = *resource_log.last().expect("cycles ran");
    for _ in 0..10 {
        if last.0 <= threads0 && last.1 <= fds0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        last = threads_and_fds(&mut vm, pid);
    }
    assert!(
        last.0 <= threads0 && last.1 <= fds0,
        "threads/fds grew over the cycles: {resource_log:?}, now {last:?}"
    );

    // The config's brightness is applied again after each return (reload resets it).
    assert_eq!(
        vm.run("v4l2-ctl -d /dev/video0 -C brightness").trim(),
        "brightness: 140",
        "brightness restored after the camera came back"
    );
    let camera = stats_camera(address);
    assert_eq!(camera["connected"], true);
    assert_eq!(camera["clients"], 1, "the one client stayed connected");
    let seen = watcher.stop();
    let cards = seen.iter().filter(|s| s.no_signal).count();
    eprintln!(
        "vivid: {} parts on one connection ({cards} NO SIGNAL); frames {}; threads/fds per cycle {resource_log:?}",
        seen.len(),
        camera["frames"]
    );

    // Controls set over HTTP are saved in the state file (brightness over the config's).
    let response = mjpeg_client::request(
        address,
        "POST",
        "/cam",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"brightness=150&contrast=60",
    )
    .expect("POST answered");
    assert_eq!(response.status, 200, "{}", response.text());

    // SIGTERM stops it cleanly.
    vm.kill("fs", None);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = vm.exited("fs") {
            break status;
        }
        assert!(Instant::now() < deadline, "frcstream stops on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = vm.log("fs");
    assert_eq!(status, 0, "exit status after SIGTERM:\n{log}");
    assert!(!log.contains("panicked"), "no panic:\n{log}");

    // Started again on the same state file, the saved controls are what the camera has:
    // brightness 150 over the config's 140, contrast 60 over the driver's 128 (set back
    // in between, as a power cycle would).
    vm.run("v4l2-ctl -d /dev/video0 -c contrast=128");
    vm.spawn(
        "fs2",
        &format!("/payload/frcstream -c /payload/yuyv.toml --state-file {STATE_FILE}"),
    );
    assert!(vm.wait_port(PORT, 20), "restarted:\n{}", vm.log("fs2"));
    let controls = vm.run("v4l2-ctl -d /dev/video0 -C brightness,contrast");
    assert!(
        controls.contains("brightness: 150") && controls.contains("contrast: 60"),
        "saved controls applied after a restart: {controls}\n{}",
        vm.log("fs2")
    );
    vm.kill("fs2", None);
    eprintln!(
        "vivid: test done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Several YUYV cameras on one USB bus: uvcvideo's `VIDIOC_STREAMON` fails with ENOSPC
/// ("No space left on device"). Played with vivid and an `LD_PRELOAD` shim that answers
/// ENOSPC to STREAMON while `/tmp/usb-bus-full` exists
/// (`tests/support/enospc_streamon.c`). The stream shows NO SIGNAL, and the log and
/// `/stats.json` (the page's source) say what to do, in words; when the bus frees up the
/// camera comes back by itself.
#[test]
fn usb_bandwidth_errors_are_said_in_words() {
    let test = "v4l2_vivid::usb_bandwidth_errors_are_said_in_words";
    let scratch = Scratch::new("enospc");
    scratch.add_binary();
    let shim = scratch.payload().join("enospc_streamon.so");
    let source = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/enospc_streamon.c"
    );
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&shim)
        .arg(source)
        .arg("-ldl")
        .status()
        .expect("run cc");
    assert!(built.success(), "build the ENOSPC shim");
    scratch.write(
        "yuyv.toml",
        camera_config("/dev/video0", "yuyv", 25, "").as_bytes(),
    );
    let Some(mut vm) = Vm::boot(test, &scratch.payload(), &[PORT], &[], &scratch.dir) else {
        return;
    };
    vm.run("touch /tmp/usb-bus-full");
    vm.spawn(
        "fs",
        "LD_PRELOAD=/payload/enospc_streamon.so /payload/frcstream -c /payload/yuyv.toml",
    );
    assert!(
        vm.wait_port(PORT, 20),
        "frcstream listens:\n{}",
        vm.log("fs")
    );
    let address = vm.addr(PORT);
    let watcher = Watcher::start(address, "/cam.mjpg", false);
    let card = expect_card(&watcher, 0, Instant::now() + Duration::from_secs(2));
    assert!(card.is_some(), "NO SIGNAL while the bus is full");
    let camera = stats_camera(address);
    let problem = camera["problem"].as_str().unwrap_or_default().to_owned();
    eprintln!("usb bandwidth: /stats.json problem: {problem}");
    assert_eq!(camera["connected"], false);
    for words in ["USB bus is out of bandwidth", "MJPEG", "another USB port"] {
        assert!(problem.contains(words), "{words:?} in {problem:?}");
    }
    let log = vm.log("fs");
    assert!(
        log.contains("USB bus is out of bandwidth"),
        "the log says it:\n{log}"
    );
    // The bus frees up (another camera unplugged): frames again, the problem gone.
    let from = watcher.count();
    vm.run("rm /tmp/usb-bus-full");
    let freed_at = Instant::now();
    let frame = watcher.wait_for(from, freed_at + Duration::from_secs(2), |s| !s.no_signal);
    assert!(frame.is_some(), "frames within 2 s of the bus freeing up");
    assert_eq!(stats_camera(address)["problem"], serde_json::Value::Null);
    watcher.stop();
    vm.kill("fs", None);
}

// -------------------------------------------------------------- v4l2loopback ----

/// Distinct 640x480 JPEGs: noise over a gradient, so each is different and realistic in size.
fn test_jpegs(count: usize) -> Vec<Vec<u8>> {
    let (width, height) = (640usize, 480usize);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    (0..count)
        .map(|n| {
            let mut rgb = vec![0u8; width * height * 3];
            for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let (x, y) = (i % width, i / width);
                let noise = (seed & 0x1f) as usize;
                px[0] = ((x + n * 40 + noise) % 256) as u8;
                px[1] = ((y + n * 25) % 256) as u8;
                px[2] = ((x + y + noise) % 256) as u8;
            }
            rgb_jpeg(&rgb, width, height, 80, Subsamp::Sub2x2)
        })
        .collect()
}

#[test]
fn loopback_mjpeg_is_passed_through_and_truncated_frames_are_dropped() {
    let test = "v4l2_vivid::loopback_mjpeg_is_passed_through_and_truncated_frames_are_dropped";
    let started = Instant::now();
    let scratch = Scratch::new("loopback");
    scratch.add_binary();
    scratch.write(
        "mjpeg.toml",
        camera_config("/dev/video10", "mjpeg", 15, "").as_bytes(),
    );
    let good = test_jpegs(6);
    for (i, jpeg) in good.iter().enumerate() {
        scratch.write(&format!("jpeg/frame-{i}.jpg"), jpeg);
    }
    // Half a JPEG: no EOI. Fed between two good frames.
    let truncated = good[5][..good[5].len() / 2].to_vec();
    scratch.write("mixed/a.jpg", &good[0]);
    scratch.write("mixed/b.jpg", &truncated);
    scratch.write("mixed/c.jpg", &good[1]);
    let Some(mut vm) = Vm::boot(
        test,
        &scratch.payload(),
        &[PORT],
        &["--loopback"],
        &scratch.dir,
    ) else {
        return;
    };
    eprintln!(
        "loopback: VM ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    vm.spawn("feed", "feed-mjpeg -r 15 /payload/jpeg");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !vm.log("feed").contains("MJPG 640x480") {
        assert!(
            Instant::now() < deadline,
            "feedjpeg sets the format:\n{}",
            vm.log("feed")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let listing = vm.run("/payload/frcstream --list-cameras");
    assert!(listing.contains("MJPG"), "{listing}");
    vm.spawn("fs", "/payload/frcstream -c /payload/mjpeg.toml");
    assert!(
        vm.wait_port(PORT, 20),
        "frcstream listens:\n{}",
        vm.log("fs")
    );
    let address = vm.addr(PORT);

    // Every streamed frame is one of the fed files, byte for byte.
    let watcher = Watcher::start(address, "/cam.mjpg", true);
    let deadline = Instant::now() + Duration::from_secs(10);
    while watcher.count() < 20 {
        watcher.assert_alive("streaming MJPEG");
        assert!(Instant::now() < deadline, "20 parts within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let parts = watcher.since(0);
    let mut distinct = std::collections::HashSet::new();
    for part in parts.iter().filter(|p| !p.no_signal) {
        let jpeg = part.jpeg.as_ref().expect("kept");
        let index = good.iter().position(|g| g == jpeg).unwrap_or_else(|| {
            panic!(
                "a streamed frame ({} bytes) is not byte-identical to any fed file",
                jpeg.len()
            )
        });
        distinct.insert(index);
    }
    assert!(
        distinct.len() >= 5,
        "frames cycle through the files: {distinct:?}"
    );
    let camera = stats_camera(address);
    assert_eq!(camera["mode"], "640x480 MJPEG 15 fps");
    assert_eq!(camera["frames"]["encodes"], 0, "MJPEG is never re-encoded");
    let invalid_before = camera["frames"]["invalid"].as_u64().expect("invalid");
    eprintln!(
        "loopback: {} parts, all byte-identical to the fed files ({} distinct); captured {} fps, delivered {} fps; frames {}",
        parts.len(),
        distinct.len(),
        camera["captured_fps"],
        camera["delivered_fps"],
        camera["frames"]
    );

    // The feeder stops: no frame for 700 ms means the camera is gone, NO SIGNAL within 1 s.
    let from = watcher.count();
    vm.kill("feed", None);
    let Some((card_index, card)) =
        watcher.wait_for(from, Instant::now() + Duration::from_secs(3), |s| {
            s.no_signal
        })
    else {
        panic!("no NO SIGNAL after the feeder stopped\n{}", vm.log("fs"));
    };
    let last_live = watcher.since(0)[..card_index]
        .iter()
        .rev()
        .find(|s| !s.no_signal)
        .map(|s| s.timestamp_us)
        .expect("frames before the card");
    let silence_ms = card.timestamp_us.saturating_sub(last_live) as f64 / 1e3;
    assert!(
        silence_ms < 1000.0,
        "NO SIGNAL {silence_ms:.0} ms after the last frame: Shuffleboard reconnects after 1 s"
    );
    // Frcstream reopens the device meanwhile. v4l2loopback then hands out its last frame
    // once more, freshly stamped, in a buffer filled up with junk to 1228800 bytes (the
    // first frame after a REQBUFS): it must come out trimmed to the file. Then a truncated
    // JPEG in every third frame.
    let resumed_at = Instant::now();
    vm.spawn("feed2", "feed-mjpeg -k -r 15 /payload/mixed");
    let Some(first) = expect_frame(&watcher, card_index, resumed_at) else {
        panic!("no frame within 2 s of feeding again\n{}", vm.log("fs"));
    };
    let first_jpeg = first.jpeg.as_ref().expect("kept");
    assert!(
        good.contains(first_jpeg),
        "the first frame after reopening is a fed file, junk trimmed ({} bytes)",
        first_jpeg.len()
    );
    eprintln!(
        "loopback: feeder stopped: NO SIGNAL {silence_ms:.0} ms after the last frame (guest clock); \
         first frame after reopening seen {:.0} ms after feeding again, byte-identical to a fed file",
        (first.at - resumed_at).as_secs_f64() * 1e3
    );
    let from = watcher.count();
    std::thread::sleep(Duration::from_secs(3));
    let camera = stats_camera(address);
    let invalid_after = camera["frames"]["invalid"].as_u64().expect("invalid");
    let parts = watcher.since(from);
    watcher.assert_alive("while truncated frames were fed");
    let (mut live, mut mixed_seen) = (0, false);
    for part in parts.iter().filter(|p| !p.no_signal) {
        let jpeg = part.jpeg.as_ref().expect("kept");
        assert_ne!(jpeg, &truncated, "the truncated JPEG was forwarded");
        assert!(
            good.contains(jpeg),
            "every streamed frame is a fed file ({} bytes)",
            jpeg.len()
        );
        mixed_seen |= jpeg == &good[0] || jpeg == &good[1];
        live += 1;
    }
    assert!(live >= 10, "good frames keep coming: {live}");
    assert!(mixed_seen, "the good files of the mixed feed are streamed");
    assert!(
        invalid_after >= invalid_before + 5,
        "truncated frames are counted as invalid: {invalid_before} -> {invalid_after}\n{}",
        vm.log("fs")
    );
    let log = vm.log("fs");
    assert!(
        log.contains("dropped frame") && log.contains("EOI"),
        "the log says why:\n{log}"
    );
    eprintln!(
        "loopback: truncated frames fed: invalid {invalid_before} -> {invalid_after}, {live} good frames streamed, none truncated"
    );
    watcher.stop();
    vm.kill("fs", None);
    eprintln!(
        "loopback: test done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

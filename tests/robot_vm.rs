//! A robot in a box: the path a team takes, on a booted Debian bookworm with systemd as
//! PID 1 (`vm/robot-setup.sh`'s image under qemu, see `vm/README.md`), the real
//! `systemd/frcstream.service` with all its hardening, and `vivid` as the USB camera.
//!
//! - `deploy/deploy.sh` over ssh (a forwarded port) as the README says, with `--binary`
//!   (the VM is x86-64): the unit reaches active (running) through `Type=notify`, and
//!   `/cam.mjpg` streams vivid's frames to the host (each decoded);
//! - the hardening holds: no warning or error in `journalctl -u frcstream` and no seccomp
//!   or device denial; a control set by HTTP POST reaches the camera (`v4l2-ctl` reads it
//!   back); NetworkTables connects to WPILib's ntcore on the host;
//! - the watchdog: `kill -STOP` of the main process and systemd restarts the service
//!   within WatchdogSec + RestartSec (+ the time to start under TCG); vivid unbound: the
//!   stream shows NO SIGNAL without a restart, and frames again after it is bound back;
//! - a reboot: the service comes back by itself with the settings changed at run time
//!   (fps 12, brightness), saved in its `StateDirectory`;
//! - a second deploy changes nothing and restarts nothing; an upgrade (a different
//!   binary) restarts it exactly once.
//!
//! Needs root, qemu, and what `vm/robot-setup.sh` installs and builds (cached). Skips
//! loudly elsewhere; `FRCSTREAM_REQUIRE_ROBOT_VM=1` (CI) makes that a failure. The
//! NetworkTables step needs pyntcore (`FRCSTREAM_REQUIRE_PYNTCORE=1`).

use support::robot_vm as robot;
mod support;

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mjpeg_client::{self as client, MjpegStream};
use robot::RobotVm;
use serde_json::json;
use support::{NtServer, pyntcore, scratch_dir};

const PORT: u16 = 1181;
const NT_PORT: u16 = 5810;
/// WatchdogSec + RestartSec of the unit.
const WATCHDOG_AND_RESTART: Duration = Duration::from_secs(12);
/// What starting takes under TCG on 2 shared cores, on top.
const TCG_SLACK: Duration = Duration::from_secs(15);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Clone, Debug)]
struct Part {
    at: Instant,
    no_signal: bool,
    size: (usize, usize),
}

/// Reads `/cam.mjpg` on its own thread, decoding every part.
struct Watcher {
    parts: Arc<Mutex<Vec<Part>>>,
    ended: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    socket: TcpStream,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    fn start(address: SocketAddr) -> Option<Watcher> {
        let mut stream = MjpegStream::open(address, "/cam.mjpg").ok()?;
        stream
            .socket()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let socket = stream.socket().try_clone().ok()?;
        let parts = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (parts, ended, stop) = (parts.clone(), ended.clone(), stop.clone());
            std::thread::spawn(move || {
                loop {
                    match stream.next_part() {
                        Ok(part) => parts.lock().unwrap().push(Part {
                            at: Instant::now(),
                            no_signal: part.header("x-frame-kind") == Some("no-signal"),
                            size: support::decoded_size(&part.jpeg),
                        }),
                        Err(e) => {
                            if !stop.load(Ordering::Relaxed) {
                                *ended.lock().unwrap() = Some(e.to_string());
                            }
                            return;
                        }
                    }
                }
            })
        };
        Some(Watcher {
            parts,
            ended,
            stop,
            socket,
            thread: Some(thread),
        })
    }

    fn count(&self) -> usize {
        self.parts.lock().unwrap().len()
    }

    /// The first part from index `from` on that `found` picks, within `timeout`.
    fn wait_for(
        &self,
        from: usize,
        timeout: Duration,
        found: impl Fn(&Part) -> bool,
    ) -> Option<Part> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let parts = self.parts.lock().unwrap();
                if let Some(part) = parts[from.min(parts.len())..].iter().find(|p| found(p)) {
                    return Some(part.clone());
                }
            }
            if let Some(e) = self.ended.lock().unwrap().as_ref() {
                panic!("the stream ended: {e}");
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.socket.shutdown(Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits for the first camera frame (not a NO SIGNAL card) of a new stream connection:
/// the time it came.
fn first_frame(address: SocketAddr, timeout: Duration) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(watcher) = Watcher::start(address) {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                watcher.wait_for(0, left, |p| !p.no_signal)
            }));
            if let Ok(Some(part)) = frame {
                assert_eq!(part.size, (640, 480), "vivid's frames are 640x480");
                return Some(part.at);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn deploy(vm: &RobotVm, binary: &Path, config: &Path) -> (Output, Duration) {
    let mut command = Command::new(repo().join("deploy/deploy.sh"));
    command
        .arg("127.0.0.1")
        .args(["--ssh-port", &vm.ssh_port.to_string()])
        .args(["--identity", vm.key(), "--user", "pi"])
        .arg("--binary")
        .arg(binary)
        .arg("--config")
        .arg(config);
    let options = vm.ssh_options();
    for pair in options.chunks(2) {
        command.args(["-o", &pair[1]]);
    }
    let started = Instant::now();
    let output = command.output().expect("run deploy/deploy.sh");
    let took = started.elapsed();
    let log = dir_of(config).join("deploy.log");
    let mut previous = std::fs::read(&log).unwrap_or_default();
    previous.extend_from_slice(&output.stdout);
    previous.extend_from_slice(&output.stderr);
    let _ = std::fs::write(&log, previous);
    assert!(
        output.status.success(),
        "deploy/deploy.sh failed: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, took)
}

fn dir_of(path: &Path) -> &Path {
    path.parent().expect("a folder")
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// `objcopy` the test's binary: debug info dropped (smaller to copy), or everything
/// stripped (the "upgrade": the same program, a different file).
fn binary(dir: &Path, name: &str, how: &str) -> PathBuf {
    let out = dir.join(name);
    let ok = Command::new("objcopy")
        .arg(how)
        .arg(env!("CARGO_BIN_EXE_frcstream"))
        .arg(&out)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "objcopy {how}");
    out
}

const SERVICE: &str = "frcstream.service";
const PROPS: &str = "ActiveState,SubState,Type,NRestarts,ExecMainPID,MainPID,ActiveEnterTimestampMonotonic,InvocationID";

/// Lines of `journalctl -u frcstream` (this boot and the ones before) that say something
/// was denied: seccomp, the device cgroup, a permission.
fn denials(vm: &mut RobotVm) -> Vec<String> {
    // The kernel's lines about frcstream too: a seccomp kill or an audit record names it.
    let journal = vm.run(
        "sudo journalctl -u frcstream -o cat --no-pager; \
         sudo journalctl -k -o cat --no-pager | grep -i frcstream || true",
    );
    journal
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            [
                "denied",
                "not permitted",
                "eperm",
                "seccomp",
                "audit",
                "sigsys",
            ]
            .iter()
            .any(|w| l.contains(w))
        })
        .map(str::to_owned)
        .collect()
}

fn post(address: SocketAddr, body: &str) {
    let reply = support::post(address, "/cam", "application/x-www-form-urlencoded", body);
    assert_eq!(reply.status, 200, "POST {body}: {}", reply.text());
}

fn config_json(address: SocketAddr) -> serde_json::Value {
    let reply = client::get(address, "/cam/config.json").expect("GET /cam/config.json");
    serde_json::from_slice(&reply.body).expect("config.json is JSON")
}

#[test]
fn deploy_to_a_booted_debian_and_the_unit_holds_end_to_end() {
    let test = "deploy_to_a_booted_debian_and_the_unit_holds_end_to_end";
    let started = Instant::now();
    let dir = scratch_dir("robot-vm");
    eprintln!("robot VM: scratch folder {}", dir.display());
    let python = pyntcore(test);
    let mut nt = python.as_ref().map(|p| NtServer::start_fresh(p, &dir));
    let host_forward: Vec<(u16, u16)> = nt.iter().map(|s| (NT_PORT, s.port)).collect();

    let Some(mut vm) = RobotVm::boot(test, &dir, &[PORT], &host_forward) else {
        return;
    };
    let boot_time = vm.boot_time;
    let http = vm.addr(PORT);
    assert!(
        vm.run("ls -l /dev/video0 /dev/v4l/by-path/")
            .contains("platform-vivid.0-video-index0"),
        "vivid is loaded at boot, with udev's links"
    );
    assert_eq!(
        vm.run("id -nG")
            .split_whitespace()
            .filter(|g| *g == "video")
            .count(),
        1
    );
    assert_eq!(
        vm.run("ps -o comm= -p 1").trim(),
        "systemd",
        "systemd is PID 1"
    );

    // ------------------------------------------------------------------ deploy ----
    let config = dir.join("frcstream.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nport = {PORT}\n\n[networktables]\nserver = \"{}:{NT_PORT}\"\nclient_name = \"robot-vm\"\n\n\
             [[camera]]\nname = \"cam\"\nsource = \"v4l2:/dev/v4l/by-path/platform-vivid.0-video-index0\"\n\
             width = 640\nheight = 480\nfps = 25\n\n[camera.controls]\nbrightness = 140\n",
            robot::HOST_FROM_GUEST
        ),
    )
    .unwrap();
    let first = binary(&dir, "frcstream", "--strip-debug");
    let (output, deploy_time) = deploy(&vm, &first, &config);
    let said = text(&output);
    assert!(
        said.contains("robot: restarting frcstream.service"),
        "{said}"
    );
    assert!(said.contains("/cam.mjpg"), "the stream URLs: {said}");
    // The logs command it prints works as printed (the port too), as pi, without sudo.
    let logs = said
        .lines()
        .find_map(|l| l.strip_prefix("Logs: "))
        .unwrap_or_else(|| panic!("a Logs: line: {said}"));
    assert!(
        logs.starts_with(&format!("ssh -p {} -i ", vm.ssh_port)),
        "{logs}"
    );
    let journal = vm.run("journalctl -u frcstream -n 20 --no-pager");
    assert!(
        journal.contains("listening on"),
        "pi reads the journal:\n{journal}"
    );
    let show = vm.show(SERVICE, PROPS);
    assert_eq!(show["Type"], "notify");
    assert_eq!(
        (show["ActiveState"].as_str(), show["SubState"].as_str()),
        ("active", "running"),
        "{show:?}\n{}",
        vm.run("sudo journalctl -u frcstream -o cat --no-pager")
    );
    assert!(
        first_frame(http, Duration::from_secs(20)).is_some(),
        "frames over the forwarded port"
    );
    // Who it runs as: a dynamic user (61184-65519) with video as a supplementary group.
    let who = vm.run(&format!("ps -o uid=,supgrp= -p {}", show["MainPID"]));
    let uid: u32 = who
        .split_whitespace()
        .next()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    assert!((61184..=65519).contains(&uid), "a DynamicUser: {who}");
    assert!(who.contains("video"), "in group video: {who}");
    // The hardening as systemd scores it: dropping a line of it shows here.
    let security = vm.run("sudo systemd-analyze security --no-pager frcstream.service | tail -n 1");
    let exposure: f64 = security
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or(10.0);
    assert!(exposure <= 2.0, "systemd-analyze security: {security}");

    // From `systemctl start` (returns at READY=1) to the first frame on a new connection.
    vm.run("sudo systemctl stop frcstream");
    let t0 = Instant::now();
    // Type=notify: `systemctl start` returns at READY=1, and by then the port listens
    // (1181 = 0x049D in LISTEN, state 0A, in the guest's /proc/net/tcp).
    let (listening, tables) =
        vm.exec("sudo systemctl start frcstream && grep -i ':049D 00000000:0000 0A' /proc/net/tcp");
    let ready = t0.elapsed();
    assert_eq!(
        listening, 0,
        "port {PORT} listens when start returns:\n{tables}"
    );
    let frame = first_frame(http, Duration::from_secs(20)).expect("a frame after start");
    let start_to_frame = frame - t0;

    // --------------------------------------------------------------- hardening ----
    let watcher = Watcher::start(http).expect("open /cam.mjpg");
    assert!(
        watcher
            .wait_for(0, Duration::from_secs(10), |p| !p.no_signal)
            .is_some()
    );
    post(http, "brightness=200");
    let applied = support::wait_for(Duration::from_secs(10), || {
        let out = vm.run("v4l2-ctl -d /dev/video0 -C brightness");
        out.contains("200").then_some(out)
    });
    assert!(applied.is_some(), "v4l2-ctl reads the brightness POSTed");
    if let Some(server) = nt.as_mut() {
        let connected = "/CameraPublisher/cam/connected";
        assert!(
            server.wait_value(
                "dashboard",
                connected,
                "boolean",
                &json!(true),
                Duration::from_secs(20)
            ),
            "NetworkTables: the robot VM's camera is published on the host's ntcore\n{}",
            vm.run("sudo journalctl -u frcstream -o cat --no-pager")
        );
        let property = "/CameraPublisher/cam/Property/brightness";
        assert!(server.wait_value(
            "dashboard",
            property,
            "int",
            &json!(200),
            Duration::from_secs(10)
        ));
    }
    let warnings = vm.run("sudo journalctl -u frcstream -p warning -o cat --no-pager");
    assert!(
        warnings.trim().is_empty() || warnings.contains("-- No entries --"),
        "no warning or error from frcstream under the unit:\n{warnings}"
    );
    let denied = denials(&mut vm);
    assert!(denied.is_empty(), "denials in the journal: {denied:#?}");

    // ------------------------------------------------ unplug: NO SIGNAL, no restart ----
    let before = vm.show(SERVICE, PROPS);
    let mark = watcher.count();
    vm.run("echo vivid.0 | sudo tee /sys/bus/platform/drivers/vivid/unbind");
    assert!(
        watcher
            .wait_for(mark, Duration::from_secs(10), |p| p.no_signal)
            .is_some(),
        "NO SIGNAL after vivid is unbound"
    );
    let mark = watcher.count();
    vm.run("echo vivid.0 | sudo tee /sys/bus/platform/drivers/vivid/bind");
    assert!(
        watcher
            .wait_for(mark, Duration::from_secs(15), |p| !p.no_signal)
            .is_some(),
        "frames again once vivid is back"
    );
    let after = vm.show(SERVICE, PROPS);
    assert_eq!(
        (&before["NRestarts"], &before["ExecMainPID"]),
        (&after["NRestarts"], &after["ExecMainPID"]),
        "no restart for an unplugged camera"
    );
    drop(watcher);

    // ---------------------------------------------------------------- watchdog ----
    let pid = before["MainPID"].clone();
    let restarts: u32 = before["NRestarts"].parse().unwrap();
    let t0 = Instant::now();
    vm.run(&format!("sudo kill -STOP {pid}"));
    let restarted = support::wait_for(
        WATCHDOG_AND_RESTART + TCG_SLACK + Duration::from_secs(10),
        || {
            let now = vm.show(SERVICE, PROPS);
            (now["NRestarts"].parse::<u32>().unwrap() == restarts + 1
                && now["MainPID"] != pid
                && now["SubState"] == "running")
                .then_some(t0.elapsed())
        },
    );
    let journal = vm.run("sudo journalctl -u frcstream -o cat --no-pager");
    let watchdog_restart =
        restarted.unwrap_or_else(|| panic!("restarted by the watchdog:\n{journal}"));
    assert!(
        journal.contains("Watchdog timeout"),
        "systemd says why:\n{journal}"
    );
    assert!(
        watchdog_restart <= WATCHDOG_AND_RESTART + TCG_SLACK,
        "restarted after {watchdog_restart:?}"
    );
    assert!(
        first_frame(http, Duration::from_secs(20)).is_some(),
        "frames after the restart"
    );

    // ----------------------------------------------------------------- reboot ----
    // A change made just before a clean reboot is saved too (frcstream writes what is
    // pending when systemd stops it), so the reboot follows the POST at once.
    let boot_id = vm.run("cat /proc/sys/kernel/random/boot_id");
    post(http, "fps=12");
    // ... once NetworkTables has it: a value changed while NT was down is overwritten by
    // the server's older one when frcstream connects after the reboot (seen here:
    // `fps 12 -> 25 (set over NetworkTables)` right after `fps = 12 (saved)`), an open
    // problem of the NT side, not of the unit.
    if let Some(server) = nt.as_mut() {
        assert!(
            server.wait_value(
                "dashboard",
                "/frcstream/cam/fps",
                "int",
                &json!(12),
                Duration::from_secs(30)
            ),
            "fps 12 on NetworkTables: {}",
            server.get("/frcstream/cam/fps")
        );
    }
    let (_, said) = vm.exec("sudo systemctl reboot");
    vm.drop_master();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        vm.wait_ssh(Duration::from_secs(180)),
        "back after the reboot ({said})"
    );
    assert_ne!(
        vm.run("cat /proc/sys/kernel/random/boot_id"),
        boot_id,
        "it rebooted"
    );
    let frame = first_frame(http, Duration::from_secs(60)).expect("a frame after the reboot");
    let reboot_to_frame = frame - t0;
    let show = vm.show(SERVICE, PROPS);
    assert_eq!(show["SubState"], "running");
    let saved = vm.run("sudo cat /var/lib/private/frcstream/settings.json");
    let document: serde_json::Value = serde_json::from_str(&saved).expect("settings.json");
    let cam = &document["cameras"]["cam"];
    assert!(
        cam["fps"]["value"] == json!(12) && cam["controls"]["brightness"]["value"] == json!(200),
        "fps 12 and brightness 200 saved in the StateDirectory:\n{saved}\n{}",
        vm.run("sudo journalctl -u frcstream -o short-monotonic --no-pager")
    );
    let config_now = config_json(http);
    assert_eq!(
        config_now["fps"],
        json!(12),
        "fps 12 came back: {config_now}\n{}",
        vm.run("sudo cat /var/lib/private/frcstream/settings.json; sudo journalctl -u frcstream -o short-monotonic --no-pager")
    );
    assert!(
        vm.run("v4l2-ctl -d /dev/video0 -C brightness")
            .contains("200"),
        "brightness 200 came back"
    );

    // ---------------------------------------- second deploy; upgrade restarts once ----
    let before = vm.show(SERVICE, PROPS);
    let (output, second_deploy) = deploy(&vm, &first, &config);
    let said = text(&output);
    assert!(said.contains("nothing changed"), "{said}");
    let after = vm.show(SERVICE, PROPS);
    for key in [
        "ActiveEnterTimestampMonotonic",
        "NRestarts",
        "ExecMainPID",
        "InvocationID",
    ] {
        assert_eq!(
            before[key], after[key],
            "{key}: a second deploy restarts nothing"
        );
    }
    let upgrade = binary(&dir, "frcstream-upgrade", "--strip-all");
    let starts = |vm: &mut RobotVm| {
        vm.run("sudo journalctl -b -u frcstream -o cat --no-pager")
            .lines()
            .filter(|l| l.starts_with("Started frcstream"))
            .count()
    };
    let started_before = starts(&mut vm);
    let (output, upgrade_deploy) = deploy(&vm, &upgrade, &config);
    let said = text(&output);
    assert!(
        said.contains("installed /usr/local/bin/frcstream"),
        "{said}"
    );
    let after_upgrade = vm.show(SERVICE, PROPS);
    assert_ne!(
        after["InvocationID"], after_upgrade["InvocationID"],
        "restarted"
    );
    assert_eq!(after_upgrade["SubState"], "running");
    assert_eq!(starts(&mut vm), started_before + 1, "exactly one restart");
    assert!(first_frame(http, Duration::from_secs(20)).is_some());
    let denied = denials(&mut vm);
    assert!(denied.is_empty(), "denials in the journal: {denied:#?}");

    let journal = dir.join("journal.txt");
    std::fs::write(
        &journal,
        vm.run(
            "sudo journalctl -u frcstream -o short-monotonic --no-pager; \
             sudo systemd-analyze security --no-pager frcstream.service 2>&1 | tail -n 3",
        ),
    )
    .unwrap();
    eprintln!(
        "robot VM: the service's journal is in {}",
        journal.display()
    );
    eprintln!(
        "robot VM timings: boot to ssh {boot_time:.1?}; first deploy {deploy_time:.1?}; \
         systemctl start returned (READY) after {ready:.1?}, first frame {start_to_frame:.1?}; \
         watchdog restart {watchdog_restart:.1?}; reboot to first frame {reboot_to_frame:.1?}; \
         second deploy {second_deploy:.1?}; upgrade deploy {upgrade_deploy:.1?}; \
         whole test {:.1?}",
        started.elapsed()
    );
    if let Some(server) = nt.as_mut() {
        server.kill();
    }
}

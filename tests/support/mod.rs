//! What the integration tests share, in one folder: the skip-or-fail rule for every part a
//! test needs from the machine (`FRCSTREAM_REQUIRE_<PART>`), a real server on an ephemeral
//! port (`streamer.rs`), the project's Python venv (`pyntcore`, `cscore`), WPILib's ntcore
//! server in a Python process (`nt_server.py`, driven over stdin/stdout), a TCP proxy that
//! can cut connections or swallow them, the qemu rigs (`vm.rs`, `robot_vm.rs`), the
//! robot's field link in a network namespace (`fieldlink.rs`) and small helpers.
//! Everything listens on 127.0.0.1 only.
#![allow(dead_code, unused_imports)] // each test binary uses its own part of the support

pub mod fieldlink;
pub mod robot_vm;
pub mod streamer;
pub mod vm;

pub use streamer::{decoded_size, frame_count, post, start, start_test_pattern, stats};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::Value as Json;

/// A part of the machine some tests need and cannot run without.
#[derive(Debug, Clone, Copy)]
pub struct Part {
    /// What it is, as the messages name it.
    pub name: &'static str,
    /// `FRCSTREAM_REQUIRE_<PART>`: `1` (and nothing else) makes a missing part a failure.
    pub variable: &'static str,
    /// How to get it on this machine.
    pub install: &'static str,
}

/// The qemu V4L2 test rig (`vm/vm.py`), x86-64.
pub const VM: Part = Part {
    name: "the qemu V4L2 test VM",
    variable: "FRCSTREAM_REQUIRE_VM",
    install: "qemu-system-x86 and the VM cache: `scripts/setup.sh --test`, then `vm/setup.sh` \
              (the tests run it; it downloads into ~/.cache/frcstream-vm)",
};

/// The aarch64 build, `qemu-aarch64` and the arm64 VM.
pub const AARCH64: Part = Part {
    name: "the aarch64 toolchain, qemu-aarch64 and the arm64 VM",
    variable: "FRCSTREAM_REQUIRE_AARCH64",
    install: "`scripts/setup.sh --test` (qemu-user); deploy/build-aarch64.sh fetches the \
              aarch64 tools and vm/setup.sh the arm64 VM (network access needed once)",
};

/// The robot in a box (`vm/robot-setup.sh`).
pub const ROBOT_VM: Part = Part {
    name: "the robot VM",
    variable: "FRCSTREAM_REQUIRE_ROBOT_VM",
    install: "`scripts/setup.sh --test` (mmdebstrap, qemu-utils), then vm/robot-setup.sh \
              (the test runs it) builds the image into ~/.cache/frcstream-vm",
};

/// A throw-away OpenSSH server.
pub const SSHD: Part = Part {
    name: "OpenSSH's server (/usr/sbin/sshd)",
    variable: "FRCSTREAM_REQUIRE_SSHD",
    install: "`scripts/setup.sh --test` (apt-get install openssh-server)",
};

/// Chromium driven by chromedriver.
pub const BROWSER: Part = Part {
    name: "Chromium and chromedriver",
    variable: "FRCSTREAM_REQUIRE_BROWSER",
    install: "`scripts/setup.sh --test` (apt-get install chromium chromium-driver)",
};

/// `systemd-analyze`.
pub const SYSTEMD: Part = Part {
    name: "systemd-analyze",
    variable: "FRCSTREAM_REQUIRE_SYSTEMD",
    install: "`scripts/setup.sh --test` (apt-get install systemd)",
};

/// Network namespaces, veth pairs and `tc`: root.
pub const NETNS: Part = Part {
    name: "network namespaces (root, iproute2's ip and tc)",
    variable: "FRCSTREAM_REQUIRE_NETNS",
    install: "run the tests as root (`sudo -E cargo test ...`), with iproute2 installed",
};

/// WPILib's ntcore from PyPI, in the project's venv.
pub const PYNTCORE: Part = Part {
    name: "WPILib ntcore (pyntcore)",
    variable: "FRCSTREAM_REQUIRE_PYNTCORE",
    install: "scripts/ensure-venv.sh installs the pinned pyntcore from PyPI \
              (needs network access to PyPI and python3-venv)",
};

/// WPILib's cscore from PyPI, in the project's venv.
pub const CSCORE: Part = Part {
    name: "WPILib cscore (robotpy-cscore)",
    variable: "FRCSTREAM_REQUIRE_CSCORE",
    install: "scripts/ensure-venv.sh installs the pinned robotpy-cscore and numpy from PyPI \
              (needs network access to PyPI and python3-venv)",
};

/// The rule for every part: a variable's value asks for a failure only when it is `1`;
/// unset, empty, `0` or anything else means a missing part is skipped.
pub fn required_by(value: Option<&str>) -> bool {
    value == Some("1")
}

/// Whether `part` must be here (its variable is `1`, as in CI).
pub fn required(part: &Part) -> bool {
    required_by(std::env::var(part.variable).ok().as_deref())
}

/// What a test says when `part` is missing: the failure when it is required, else the
/// SKIPPED banner.
pub fn missing_part_message(part: &Part, test: &str, reason: &str, required: bool) -> String {
    if required {
        format!(
            "{test} needs {}, which is missing here: {reason}\n\
             to install it: {}\n\
             ({}=1 makes a missing part a failure; unset it to skip instead)",
            part.name, part.install, part.variable
        )
    } else {
        format!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !!! SKIPPED {test}: {} is missing: {reason}\n\
             !!! to install it: {}\n\
             !!! (set {}=1 to make this a failure)\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
            part.name, part.install, part.variable
        )
    }
}

/// A test that cannot run here because `part` is missing: panics when the part is
/// required (CI), else prints a loud SKIPPED banner to the real stderr, past the test
/// harness's output capture, and the test goes on to return (and pass).
pub fn skip_unless_required(part: &Part, test: &str, reason: &str) {
    let required = required(part);
    let message = missing_part_message(part, test, reason, required);
    if required {
        panic!("{message}");
    }
    let _ = std::io::stderr().write_all(message.as_bytes());
}

/// The venv's python with `pyntcore` installed, or `None` (after the SKIPPED banner) when
/// it cannot be installed (e.g. no network); a failure under `FRCSTREAM_REQUIRE_PYNTCORE=1`.
pub fn pyntcore(test: &str) -> Option<PathBuf> {
    wpilib_python(test, &PYNTCORE)
}

/// The venv's python with `robotpy-cscore` and `numpy` installed, or `None` (after the
/// SKIPPED banner) when they cannot be installed; a failure under `FRCSTREAM_REQUIRE_CSCORE=1`.
pub fn cscore(test: &str) -> Option<PathBuf> {
    wpilib_python(test, &CSCORE)
}

/// The project's venv (`scripts/ensure-venv.sh`, run once per test binary: pinned pyntcore,
/// robotpy-cscore and numpy, checked by import), or `None` when it cannot be made and
/// `part` is not required.
fn wpilib_python(test: &str, part: &Part) -> Option<PathBuf> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let python = PYTHON.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ensure-venv.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !path.is_empty() {
            Ok(PathBuf::from(path))
        } else {
            Err(format!("{} failed ({})", script.display(), out.status))
        }
    });
    match python {
        Ok(p) => Some(p.clone()),
        Err(e) => {
            skip_unless_required(part, test, e);
            None
        }
    }
}

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `command`, which must succeed (else the test fails with its status and output).
pub fn run_ok(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// [`run_ok`]'s standard output, as text.
pub fn run_stdout(command: &mut Command) -> String {
    String::from_utf8_lossy(&run_ok(command).stdout).into_owned()
}

/// Whether `tool` is a command on the PATH.
pub fn have_command(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs one of the repository's scripts that print a path (a tool or a root file system
/// they fetch once): the path, or `Err` for exit status 3 (it cannot be had here); any
/// other failure fails the test.
pub fn path_from_script(script: &str, args: &[&str]) -> Result<PathBuf, String> {
    let output = Command::new(repo().join(script))
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    match output.status.code() {
        Some(0) => Ok(PathBuf::from(
            String::from_utf8_lossy(&output.stdout).trim(),
        )),
        Some(3) => Err(format!("{script} {} cannot be had here", args.join(" "))),
        _ => panic!("{script} failed: {}", output.status),
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Polls `f` every 20 ms until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A scratch directory for one test.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("nt4-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// `tests/support/nt_server.py` running WPILib's ntcore server with a dashboard client.
pub struct NtServer {
    pub port: u16,
    pub port3: u16,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    pub stderr_path: PathBuf,
}

impl NtServer {
    /// Starts the server on `port` (NT4) and `port3` (NT3), persisting into `dir`; returns
    /// once it listens and its dashboard is connected.
    pub fn start(python: &Path, dir: &Path, port: u16, port3: u16) -> NtServer {
        NtServer::start_on(python, dir, "127.0.0.1", port, port3)
    }

    /// [`NtServer::start`] listening on `address` (an address of this machine, e.g. one end
    /// of a veth pair into a test's network namespace).
    pub fn start_on(python: &Path, dir: &Path, address: &str, port: u16, port3: u16) -> NtServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/nt_server.py");
        let stderr_path = dir.join(format!("ntcore-{port}-{}.log", unique()));
        let stderr = std::fs::File::create(&stderr_path).expect("create server log");
        let mut child = Command::new(python)
            .arg(&script)
            .arg(port.to_string())
            .arg(port3.to_string())
            .arg(dir.join("networktables.json"))
            .arg(address)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start nt_server.py");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = crossbeam_channel::unbounded();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = NtServer {
            port,
            port3,
            child,
            stdin,
            lines,
            stderr_path,
        };
        let ready = server.reply(Duration::from_secs(20));
        assert_eq!(
            ready["ready"],
            true,
            "server did not start: {ready}\n{}",
            server.stderr()
        );
        server
    }

    /// Starts a server on fresh ports.
    pub fn start_fresh(python: &Path, dir: &Path) -> NtServer {
        NtServer::start(python, dir, free_port(), free_port())
    }

    fn reply(&mut self, timeout: Duration) -> Json {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad reply {line:?}: {e}"))
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!("nt_server.py did not answer\n{}", self.stderr())
            }
            Err(RecvTimeoutError::Disconnected) => panic!("nt_server.py exited\n{}", self.stderr()),
        }
    }

    pub fn cmd(&mut self, line: &str) -> Json {
        writeln!(self.stdin, "{line}").expect("write to nt_server.py");
        self.stdin.flush().expect("flush");
        let reply = self.reply(Duration::from_secs(10));
        assert!(reply.get("error").is_none(), "{line}: {reply}");
        reply
    }

    /// `{"server": view, "dashboard": view}`; a view is `{"type", "value"}` or null.
    pub fn get(&mut self, name: &str) -> Json {
        self.cmd(&format!("get {name}"))
    }

    /// The dashboard publishes `name` as `ty` and writes `value`.
    pub fn set(&mut self, name: &str, ty: &str, value: Json) {
        self.cmd(&format!("set {name} {ty} {value}"));
    }

    /// Waits until `view` ("server" or "dashboard") of `name` has this type and value.
    pub fn wait_value(
        &mut self,
        view: &str,
        name: &str,
        ty: &str,
        value: &Json,
        timeout: Duration,
    ) -> bool {
        wait_for(timeout, || {
            let got = self.get(name);
            (got[view]["type"] == ty && got[view]["value"] == *value).then_some(())
        })
        .is_some()
    }

    /// A second client that knows no topic types publishes `name` as `ty` and writes `value`
    /// (how a dashboard could write a string to an int topic).
    pub fn set_blind(&mut self, name: &str, ty: &str, value: Json) {
        self.cmd(&format!("set_blind {name} {ty} {value}"));
    }

    pub fn topics(&mut self) -> Vec<(String, String)> {
        let reply = self.cmd("topics");
        reply["topics"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| {
                        (
                            t["name"].as_str().unwrap_or_default().to_owned(),
                            t["type"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Everything ntcore logged: (level, message).
    pub fn log(&mut self) -> Vec<(u64, String)> {
        let reply = self.cmd("log");
        reply["log"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e[0].as_u64().unwrap_or(0),
                            e[1].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts that the server logged no warning or error, nothing that reads like a protocol
    /// complaint at any level, and that `client` did connect.
    pub fn assert_clean_log(&mut self, client: &str) {
        self.assert_clean_log_except(client, &[]);
    }

    /// [`NtServer::assert_clean_log`], but lines naming one of `others` (clients a test makes
    /// misbehave on purpose) are not complaints about `client`.
    pub fn assert_clean_log_except(&mut self, client: &str, others: &[&str]) {
        const COMPLAINTS: [&str; 8] = [
            "could not decode",
            "must be",
            "out of range",
            "unrecognized",
            "unknown",
            "error",
            "invalid",
            "ignor",
        ];
        let log = self.log();
        let connected = format!("CONNECTED NT4 client '{client}");
        assert!(
            log.iter().any(|(_, m)| m.contains(&connected)),
            "no {connected:?} in the server log"
        );
        let bad: Vec<_> = log
            .iter()
            .filter(|(level, m)| {
                let lower = m.to_lowercase();
                // The persistent file is absent on a fresh server; that line is expected.
                let benign = lower.contains("persistent file")
                    || lower.contains("socket error: operation canceled");
                let other = others.iter().any(|o| m.contains(&format!("{o}@")));
                !benign && !other && (*level >= 30 || COMPLAINTS.iter().any(|c| lower.contains(c)))
            })
            .collect();
        assert!(bad.is_empty(), "the server complained: {bad:#?}");
    }

    /// `kill -9` and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for NtServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unique() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// What the proxy does with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProxyMode {
    /// Connect it through to the target port.
    Forward = 0,
    /// Accept it and never answer (a hung server).
    Blackhole = 1,
}

/// A TCP proxy on 127.0.0.1 in front of `target`, whose connections can be cut.
pub struct Proxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    accepted: Arc<AtomicUsize>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(target: u16, mode: ProxyMode) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let proxy = Proxy {
            port,
            mode: Arc::new(AtomicU8::new(mode as u8)),
            accepted: Arc::new(AtomicUsize::new(0)),
            conns: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (mode, conns, stop) = (proxy.mode.clone(), proxy.conns.clone(), proxy.stop.clone());
        let accepted = proxy.accepted.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let Ok(client) = client else { continue };
                accepted.fetch_add(1, Ordering::AcqRel);
                let mut list = conns.lock().unwrap_or_else(|e| e.into_inner());
                if mode.load(Ordering::Acquire) == ProxyMode::Blackhole as u8 {
                    list.push(client);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue; // dropping `client` refuses it
                };
                for s in [&client, &upstream] {
                    if let Ok(s) = s.try_clone() {
                        list.push(s);
                    }
                }
                for (from, to) in [(&client, &upstream), (&upstream, &client)] {
                    if let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) {
                        thread::spawn(move || {
                            let mut buf = [0u8; 16384];
                            while let Ok(n) = from.read(&mut buf) {
                                if n == 0 || to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            let _ = to.shutdown(Shutdown::Both);
                            let _ = from.shutdown(Shutdown::Both);
                        });
                    }
                }
            }
        });
        proxy
    }

    /// Closes every connection made so far (both sides); new ones are accepted as before.
    pub fn cut(&self) {
        for s in self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Acquire)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // unblock accept
        self.cut();
    }
}

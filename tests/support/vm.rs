//! A driver for the qemu test rig `vm/vm.py` (see `vm/README.md`): boots the VM with a
//! payload directory, speaks its line protocol (`exec`, `spawn`, `log`, `status`, `kill`,
//! `waitport`, `quit`), and gives the host address of each forwarded guest port.
//!
//! Where the rig cannot run (`UNAVAILABLE`: no qemu, no downloads), [`Vm::boot`] prints a
//! loud SKIPPED banner to stderr and returns `None`; with `FRCSTREAM_REQUIRE_VM=1` (the
//! arm64 VM: `FRCSTREAM_REQUIRE_AARCH64=1`), as in CI, it fails the test instead.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use super::{Part, skip_unless_required};

/// Time allowed for `READY`: setup.sh on a fresh machine (downloads, apt install of qemu,
/// the v4l2loopback build) and the wait for another test's VM (one VM at a time).
const BOOT_TIMEOUT: Duration = Duration::from_secs(600);
/// Time allowed for any one command's reply (commands in the guest bring their own
/// `timeout`).
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Vm {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    ports: Vec<(u16, u16)>,
    stderr_path: PathBuf,
}

/// Output lines and the terminator (`EXIT 0`, `OK ...`, `ERR ...`) of one command.
#[derive(Debug)]
pub struct Reply {
    pub lines: Vec<String>,
    pub end: String,
}

impl Reply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// The part a rig needs: the arm64 VM is `FRCSTREAM_REQUIRE_AARCH64`'s (as in
/// `scripts/preflight.sh`), every other `FRCSTREAM_REQUIRE_VM`'s.
fn rig_part(extra: &[&str]) -> &'static Part {
    if extra.windows(2).any(|pair| pair == ["--arch", "aarch64"]) {
        &super::AARCH64
    } else {
        &super::VM
    }
}

impl Vm {
    /// Boots the VM with `payload` copied to `/payload`, forwarding `forward` guest ports,
    /// with more `vm.py` options in `extra` (e.g. `--loopback`). `None` when the rig is
    /// unavailable here (after the SKIPPED banner). `scratch` holds vm.py's stderr.
    pub fn boot(
        test: &str,
        payload: &Path,
        forward: &[u16],
        extra: &[&str],
        scratch: &Path,
    ) -> Option<Vm> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("vm/vm.py");
        let stderr_path = scratch.join("vm.stderr");
        let stderr = File::create(&stderr_path).expect("vm.py's stderr file");
        let ports: Vec<String> = forward.iter().map(u16::to_string).collect();
        let mut command = Command::new("python3");
        command
            .arg(&script)
            .arg("--payload")
            .arg(payload)
            .args(["--forward", &ports.join(",")])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let reason = format!("cannot run python3 {}: {e}", script.display());
                skip_unless_required(rig_part(extra), test, &reason);
                return None;
            }
        };
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut vm = Vm {
            stdin: child.stdin.take(),
            child,
            lines,
            ports: Vec::new(),
            stderr_path,
        };
        let first = match vm.lines.recv_timeout(BOOT_TIMEOUT) {
            Ok(line) => line,
            Err(e) => vm.fail(&format!("no READY line from vm.py: {e:?}")),
        };
        if let Some(reason) = first.strip_prefix("UNAVAILABLE") {
            let reason = format!("vm/vm.py cannot run here: {}", reason.trim());
            skip_unless_required(rig_part(extra), test, &reason);
            return None;
        }
        let Some(ports) = first.strip_prefix("READY") else {
            vm.fail(&format!("vm.py said \"{first}\""));
        };
        vm.ports = ports
            .split_whitespace()
            .filter_map(|pair| {
                let (guest, host) = pair.split_once('=')?;
                Some((guest.parse().ok()?, host.parse().ok()?))
            })
            .collect();
        Some(vm)
    }

    /// Panics with the tail of vm.py's stderr (qemu's console on a failed boot).
    fn fail(&mut self, message: &str) -> ! {
        let _ = self.child.kill();
        let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "test VM: {message}\n--- vm.py stderr (tail) ---\n{}",
            tail.join("\n")
        );
    }

    /// The host address of a forwarded guest port.
    pub fn addr(&self, guest_port: u16) -> SocketAddr {
        let host = self
            .ports
            .iter()
            .find(|(g, _)| *g == guest_port)
            .map(|(_, h)| *h)
            .unwrap_or_else(|| panic!("guest port {guest_port} is not forwarded"));
        SocketAddr::from(([127, 0, 0, 1], host))
    }

    /// Sends one command line and reads its reply.
    pub fn command(&mut self, line: &str) -> Reply {
        assert!(!line.contains('\n'), "one line per command: {line:?}");
        let sent = self
            .stdin
            .as_mut()
            .map(|stdin| writeln!(stdin, "{line}").and_then(|()| stdin.flush()));
        if !matches!(sent, Some(Ok(()))) {
            self.fail(&format!("cannot send \"{line}\": vm.py is gone"));
        }
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let mut lines = Vec::new();
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(wait) {
                Ok(reply) => {
                    if let Some(text) = reply.strip_prefix("| ") {
                        lines.push(text.to_owned());
                    } else if reply == "|" {
                        lines.push(String::new());
                    } else {
                        return Reply { lines, end: reply };
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("no reply to \"{line}\" within {REPLY_TIMEOUT:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("vm.py exited while running \"{line}\""))
                }
            }
        }
    }

    /// Runs a shell command in the guest: (exit status, output with stderr merged).
    pub fn exec(&mut self, shell: &str) -> (i32, String) {
        let reply = self.command(&format!("exec {shell}"));
        match reply.end.strip_prefix("EXIT ") {
            Some(status) => (status.trim().parse().unwrap_or(-1), reply.text()),
            None => self.fail(&format!("exec {shell}: {}", reply.end)),
        }
    }

    /// Runs a shell command that must succeed; returns its output.
    pub fn run(&mut self, shell: &str) -> String {
        let (status, output) = self.exec(shell);
        assert_eq!(status, 0, "guest command `{shell}` failed:\n{output}");
        output
    }

    /// Starts a background command in the guest; returns the pid of its shell.
    pub fn spawn(&mut self, name: &str, shell: &str) -> u32 {
        let reply = self.command(&format!("spawn {name} {shell}"));
        match reply.end.strip_prefix("OK ") {
            Some(pid) => pid.trim().parse().unwrap_or(0),
            None => self.fail(&format!("spawn {name}: {}", reply.end)),
        }
    }

    /// The output of a spawned command so far.
    pub fn log(&mut self, name: &str) -> String {
        self.command(&format!("log {name}")).text()
    }

    /// `None` while the spawned command runs, else its exit status.
    pub fn exited(&mut self, name: &str) -> Option<i32> {
        let reply = self.command(&format!("status {name}"));
        let status = reply.end.strip_prefix("OK EXITED ")?;
        Some(status.trim().parse().unwrap_or(-1))
    }

    /// Signals a spawned command's process group (`TERM` by default).
    pub fn kill(&mut self, name: &str, signal: Option<&str>) {
        let line = match signal {
            Some(signal) => format!("kill {name} {signal}"),
            None => format!("kill {name}"),
        };
        let reply = self.command(&line);
        assert!(reply.end.starts_with("OK"), "{line}: {}", reply.end);
    }

    /// Waits until something listens on `guest_port` in the guest.
    pub fn wait_port(&mut self, guest_port: u16, seconds: u32) -> bool {
        self.command(&format!("waitport {guest_port} {seconds}"))
            .end
            .starts_with("OK")
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "quit");
        }
        // vm.py powers the guest off and exits; qemu dies with it in any case.
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies the frcstream binary into a payload folder, without debug info (the initramfs
/// lives in the guest's RAM).
pub fn copy_frcstream(payload: &Path) {
    let binary = Path::new(env!("CARGO_BIN_EXE_frcstream"));
    let target = payload.join("frcstream");
    let stripped = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(binary)
        .arg(&target)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(binary, &target).expect("copy the frcstream binary");
    }
}

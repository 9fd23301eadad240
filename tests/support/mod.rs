//! What the integration tests share, in one folder: the skip-or-fail rule for every part a
//! test needs from the machine (`FRCSTREAM_REQUIRE_<PART>`), a real server on an ephemeral
//! port (`streamer.rs`), the project's Python venv (`pyntcore`, `cscore`), WPILib's ntcore
//! server in a Python process (`crates/nt4/tests/support/nt_server.py`, driven over
//! stdin/stdout, shared with the NT4 client's tests), a TCP proxy that
//! can cut connections or swallow them, the qemu rigs (`vm.rs`, `robot_vm.rs`), the
//! robot's field link in a network namespace (`fieldlink.rs`) and small helpers.
//! Everything listens on 127.0.0.1 only.
#![allow(dead_code, unused_imports)] // each test binary uses its own part of the support

pub mod fieldlink;
pub mod robot_vm;
pub mod streamer;
pub mod viewer;
pub mod vm;

pub use streamer::{decoded_size, frame_count, post, start, start_test_pattern, stats};
pub use viewer::Viewer;

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

// The ntcore server and the proxy are the NT4 client's test support (crates/nt4/tests),
// shared by path.
#[path = "../../crates/nt4/tests/support/ntcore_server.rs"]
mod ntcore_server;
#[path = "../../crates/nt4/tests/support/proxy.rs"]
mod proxy;
#[path = "../../crates/nt4/tests/support/shared_helpers.rs"]
mod shared_helpers;
pub use ntcore_server::NtServer;
pub use proxy::{Proxy, ProxyMode};
pub use shared_helpers::{free_port, scratch_dir, wait_for};

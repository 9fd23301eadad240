//! Test support for the tests that use WPILib's own code: the project's Python venv
//! (`pyntcore`, `cscore`), WPILib's ntcore server in a Python process ([`NtServer`]) and a
//! TCP proxy that can cut connections or swallow them ([`Proxy`]), both shared with the NT4
//! client's tests in crates/nt4, and small helpers. Everything listens on
//! 127.0.0.1 only.
#![allow(dead_code)]

pub mod fieldlink;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// The venv's python with `pyntcore` installed, or `None` when it cannot be installed
/// (e.g. no network). Set `NT4_REQUIRE_PYNTCORE=1` to make that a failure instead of a skip.
pub fn pyntcore(test: &str) -> Option<PathBuf> {
    wpilib_python(test, "NT4_REQUIRE_PYNTCORE", "WPILib ntcore (pyntcore)")
}

/// The venv's python with `robotpy-cscore` and `numpy` installed, or `None` when they cannot
/// be installed. Set `FRCSTREAM_REQUIRE_CSCORE=1` to make that a failure instead of a skip.
pub fn cscore(test: &str) -> Option<PathBuf> {
    wpilib_python(
        test,
        "FRCSTREAM_REQUIRE_CSCORE",
        "WPILib cscore (robotpy-cscore)",
    )
}

/// The project's venv (`scripts/ensure-venv.sh`, run once per test binary: pinned pyntcore,
/// robotpy-cscore and numpy, checked by import), or a loud SKIPPED banner and `None` when it
/// cannot be made, or a panic when the variable `require` is set.
fn wpilib_python(test: &str, require: &str, what: &str) -> Option<PathBuf> {
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
            skip_unless_required(require, test, &format!("{what} is not available: {e}"));
            None
        }
    }
}

/// Whether the variable `require` asks that tests needing a part fail rather than skip:
/// set and not `0`.
pub fn required(require: &str) -> bool {
    std::env::var(require).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A test that cannot run here: panics when `require` is set (CI), else prints a loud
/// SKIPPED banner to the real stderr, past the test harness's output capture.
pub fn skip_unless_required(require: &str, test: &str, reason: &str) {
    if required(require) {
        panic!("{require} is set but {test} cannot run: {reason}");
    }
    let banner = format!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! SKIPPED {test}: {reason}\n\
         !!! (set {require}=1 to make this a failure)\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    let _ = std::io::stderr().write_all(banner.as_bytes());
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

// The ntcore server and the proxy are the NT4 client's test support (crates/nt4/tests),
// shared by path; not every test binary uses them.
#[path = "../../crates/nt4/tests/support/ntcore_server.rs"]
mod ntcore_server;
#[path = "../../crates/nt4/tests/support/proxy.rs"]
mod proxy;
#[allow(unused_imports)]
pub use ntcore_server::NtServer;
#[allow(unused_imports)]
pub use proxy::{Proxy, ProxyMode};

//! Test support for the NT4 client's tests: WPILib's ntcore server from the repository's
//! Python venv ([`pyntcore`], [`NtServer`]), a proxy that fails under the client
//! ([`Proxy`]), and small helpers. Everything listens on 127.0.0.1 only.
#![allow(dead_code, unused_imports)] // each test binary uses its own part

pub mod fake_server;
pub mod ntcore_server;
pub mod proxy;
pub mod shared_helpers;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

pub use fake_server::fake_server;
pub use ntcore_server::NtServer;
pub use proxy::{Proxy, ProxyMode};
pub use shared_helpers::{free_port, scratch_dir, wait_for};

/// The variable that turns a missing pyntcore from a skip into a failure (CI sets it).
pub const REQUIRE_PYNTCORE: &str = "FRCSTREAM_REQUIRE_PYNTCORE";

/// The repository's venv script (scripts/ensure-venv.sh): pinned pyntcore, made once.
fn ensure_venv_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ensure-venv.sh")
}

/// The venv's python with WPILib's ntcore (PyPI `pyntcore`) installed, or `None` with a
/// loud SKIPPED banner when it cannot be installed (e.g. no network). Panics instead when
/// [`REQUIRE_PYNTCORE`] is `1`.
pub fn pyntcore(test: &str) -> Option<PathBuf> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let python = PYTHON.get_or_init(|| {
        let script = ensure_venv_script();
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !path.is_empty() {
            Ok(PathBuf::from(path))
        } else {
            Err(format!(
                "{} failed ({}); it installs pyntcore from PyPI into a venv under target/",
                script.display(),
                out.status
            ))
        }
    });
    match python {
        Ok(p) => Some(p.clone()),
        Err(e) => {
            let reason = format!("WPILib ntcore (pyntcore) is not available: {e}");
            skip_unless_required(
                std::env::var(REQUIRE_PYNTCORE).ok().as_deref(),
                test,
                &reason,
            );
            None
        }
    }
}

/// Whether a require variable with this value asks for a failure rather than a skip: only
/// `1` does (unset, empty, `0` or anything else do not).
pub fn required(value: Option<&str>) -> bool {
    value == Some("1")
}

/// A test that cannot run here: panics when required (`require_value` is the variable's
/// value), else prints a loud SKIPPED banner to the real stderr, past the test harness's
/// output capture, and the test passes.
pub fn skip_unless_required(require_value: Option<&str>, test: &str, reason: &str) {
    if required(require_value) {
        panic!("{REQUIRE_PYNTCORE}=1 but {test} cannot run: {reason}");
    }
    let banner = format!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! SKIPPED {test}: {reason}\n\
         !!! (set {REQUIRE_PYNTCORE}=1 to make this a failure)\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    let _ = std::io::stderr().write_all(banner.as_bytes());
}

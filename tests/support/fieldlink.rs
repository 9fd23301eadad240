//! The field link for tests: `scripts/fieldlink.sh` (robot and driver station in network
//! namespaces of their own, joined by a veth pair, robot -> DS shaped by tbf), driven from
//! Rust. frcstream runs on the robot side (`ip netns exec`); a test thread joins the DS
//! side with `setns(2)` (which moves only the calling thread) and reads streams from there.
//!
//! Needs root, iproute2 and tbf: otherwise SKIPPED loudly, or a failure with
//! `FRCSTREAM_REQUIRE_NETNS=1` (as in CI).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The robot's address on the rig; the driver station is `DS_ADDR`.
pub const ROBOT_ADDR: &str = "10.99.0.1";
pub const DS_ADDR: &str = "10.99.0.2";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/fieldlink.sh")
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run fieldlink.sh: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "fieldlink.sh {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A shaped link between a robot and a driver station, taken down on drop.
pub struct FieldLink {
    pub tag: String,
}

impl FieldLink {
    /// Brings the rig up at `rate` (tc's syntax, e.g. "4mbit") with a bottleneck queue of
    /// `queue_ms`, or prints SKIPPED and returns `None` when this machine cannot.
    pub fn up(test: &str, tag: &str, rate: &str, queue_ms: u32) -> Option<FieldLink> {
        let tag = format!("{tag}{}", std::process::id() % 100_000);
        let queue = queue_ms.to_string();
        let result = run(&["check"]).and_then(|()| run(&["up", &tag, rate, &queue, "16kb"]));
        match result {
            Ok(()) => Some(FieldLink { tag }),
            Err(reason) => {
                super::skip_unless_required(&super::NETNS, test, &reason);
                None
            }
        }
    }

    /// Changes the link's rate mid-run (`tc qdisc change`), keeping its burst and queue.
    pub fn set_rate(&self, rate: &str) {
        run(&["rate", &self.tag, rate]).expect("change the link's rate");
    }

    /// A command run on the robot side of the link.
    pub fn on_robot(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &format!("fl-{}-robot", self.tag)])
            .arg(program);
        command
    }

    /// Moves the calling thread to the driver station's side: the sockets it opens from
    /// now on are the driver station's.
    pub fn enter_ds(&self) {
        let path = format!("/run/netns/fl-{}-ds", self.tag);
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns on a descriptor we hold open, for this thread only.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

impl Drop for FieldLink {
    fn drop(&mut self) {
        let _ = run(&["down", &self.tag]);
    }
}

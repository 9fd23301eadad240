//! WPILib's ntcore NT4 server in a Python process (`nt_server.py`, next to this file),
//! driven over stdin/stdout, with a dashboard client of its own: the server the NT4 client's
//! tests (crates/nt4/tests) and frcstream's NetworkTables tests (tests/, which include this
//! file by `#[path]`) run against. Listens on 127.0.0.1 unless told otherwise.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::Value as Json;

use super::{free_port, wait_for};

/// `nt_server.py`, from the root of whichever package's tests include this file.
fn script() -> PathBuf {
    const FROM_NT4: &str = "tests/support/nt_server.py";
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    let in_nt4 = package.join(FROM_NT4);
    if in_nt4.exists() {
        in_nt4
    } else {
        package.join("crates/nt4").join(FROM_NT4)
    }
}

/// `nt_server.py` (next to this file) running WPILib's ntcore server with a dashboard client.
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
        let script = script();
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

    /// The server's clock (ntcore's time base, µs), read between two readings of this
    /// process's `CLOCK_MONOTONIC` (µs): `(before, server, after)`. The server read its clock
    /// somewhere in between.
    pub fn clock(&mut self) -> (i64, i64, i64) {
        let before = nt4::monotonic_us();
        let reply = self.cmd("time");
        let after = nt4::monotonic_us();
        let server = reply["now_us"]
            .as_i64()
            .unwrap_or_else(|| panic!("time: not a number of µs: {reply}"));
        (before, server, after)
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

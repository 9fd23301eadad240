//! The `frcstream` binary: configuration errors, the embedded default, clean shutdown.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mjpeg_client::{self as client, MjpegStream};

const BINARY: &str = env!("CARGO_BIN_EXE_frcstream");

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("frcstream-cli-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs the binary on a bad config; returns its exit code and what it printed.
fn run_with_config(name: &str, text: &str) -> (Option<i32>, String) {
    let path = temp_config(name, text);
    let output = Command::new(BINARY)
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run frcstream");
    std::fs::remove_file(&path).ok();
    let mut printed = String::from_utf8_lossy(&output.stderr).into_owned();
    printed.push_str(&String::from_utf8_lossy(&output.stdout));
    (output.status.code(), printed)
}

#[test]
fn bad_configs_exit_2_naming_the_file_the_line_and_the_key() {
    let cases = [
        (
            "unknown-key",
            "[[camera]]\nname = \"cam\"\nfsp = 30\n",
            "line 3",
            "fsp",
        ),
        (
            "wrong-type",
            "[[camera]]\nname = \"cam\"\nfps = \"fast\"\n",
            "line 3",
            "camera[0].fps",
        ),
        (
            "duplicate-name",
            "[[camera]]\nname = \"cam\"\n\n[[camera]]\nname = \"cam\"\n",
            "line 5",
            "duplicate camera name",
        ),
        (
            "port-range",
            "[server]\nport = 99999\n[[camera]]\nname = \"cam\"\n",
            "line 2",
            "server.port",
        ),
        (
            "negative-port",
            "[server]\nport = -1\n[[camera]]\nname = \"cam\"\n",
            "line 2",
            "server.port",
        ),
        ("syntax", "[[camera]\nname = \"cam\"\n", "line 1", "error"),
        (
            "date-port",
            "[[camera]]\nname = \"cam\"\nport = 1979-05-27\n",
            "line 3",
            "key `camera[0].port`: invalid type: a date, expected an integer",
        ),
        (
            "pixel-rate",
            "[[camera]]\nname = \"cam\"\nwidth = 4096\nheight = 4096\nfps = 120\n",
            "line 2",
            "over the limit",
        ),
    ];
    let too_many: String = (0..17)
        .map(|i| format!("[[camera]]\nname = \"c{i}\"\nwidth = 160\nheight = 120\n"))
        .collect();
    let cases = cases
        .into_iter()
        .map(|(n, t, l, k)| (n, t.to_owned(), l, k))
        .chain([("too-many-cameras", too_many, "line 66", "camera[16]")]);
    for (name, text, line, key) in cases {
        let text = text.as_str();
        let (code, printed) = run_with_config(name, text);
        assert_eq!(code, Some(2), "{name}: exit status; printed: {printed}");
        assert!(printed.contains(line), "{name}: names {line}: {printed}");
        assert!(printed.contains(key), "{name}: names {key}: {printed}");
        assert!(
            !printed.contains("$__"),
            "{name}: keys as written: {printed}"
        );
        assert!(
            printed.contains(&format!("cli-{}-{name}.toml", std::process::id())),
            "{name}: names the file: {printed}"
        );
        assert_eq!(
            printed.trim().lines().count(),
            1,
            "{name}: one clear message: {printed}"
        );
    }
}

#[test]
fn a_missing_config_file_is_an_error_too() {
    let output = Command::new(BINARY)
        .args(["--config", "/nonexistent/frcstream.toml"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/frcstream.toml"));
}

/// Starts the binary and waits for it to log the address it listens on.
fn spawn_server(config_text: &str) -> (Child, SocketAddr, std::path::PathBuf) {
    let path = temp_config("server", config_text);
    let mut child = Command::new(BINARY)
        .arg("--config")
        .arg(&path)
        .args(["--state-file", ""])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("frcstream logs its address")
            .expect("log line");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().parse::<SocketAddr>().expect("an address");
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, address, path)
}

#[test]
fn sigterm_closes_every_client_and_exits_0_within_a_second() {
    let (mut child, address, path) =
        spawn_server("[server]\nbind = \"127.0.0.1\"\nport = 0\n[[camera]]\nname = \"cam\"\n");
    let mut stream = MjpegStream::open(address, "/cam.mjpg").expect("stream");
    stream.next_part().expect("a frame");
    let sent = Instant::now();
    // SAFETY: kill() with a pid we spawned.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "still running 1 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    println!("exited {status} after {:?}", sent.elapsed());
    assert_eq!(status.code(), Some(0));
    // The client sees the end of the stream, not a hang.
    let mut ended = false;
    for _ in 0..100 {
        if stream.next_part().is_err() {
            ended = true;
            break;
        }
    }
    assert!(ended, "the stream was closed");
    std::fs::remove_file(&path).ok();
}

#[test]
fn with_no_config_the_embedded_default_streams_cam() {
    if std::path::Path::new(frcstream::config::DEFAULT_CONFIG_PATH).exists() {
        eprintln!(
            "SKIPPED: {} exists on this machine",
            frcstream::config::DEFAULT_CONFIG_PATH
        );
        return;
    }
    if std::net::TcpListener::bind("0.0.0.0:1181").is_err() {
        eprintln!("SKIPPED: port 1181 is in use on this machine");
        return;
    }
    // The saved settings go to a place of the test's own, not the user's home.
    let state = std::env::temp_dir().join(format!("frcstream-cli-{}-state", std::process::id()));
    let mut child = Command::new(BINARY)
        .env("RUST_LOG", "info")
        .env_remove("STATE_DIRECTORY")
        .env("XDG_STATE_HOME", &state)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut log = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        let done = line.contains("listening on");
        log.push(line);
        if done {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let log = log.join("\n");
    assert!(
        log.contains("built-in default"),
        "says what it chose: {log}"
    );
    assert!(log.contains("0.0.0.0:1181"), "{log}");
    let address: SocketAddr = "127.0.0.1:1181".parse().expect("addr");
    let mut stream = MjpegStream::open(address, "/cam.mjpg").expect("/cam.mjpg");
    let part = stream.next_part().expect("frame");
    assert_eq!(support::decoded_size(&part.jpeg), (640, 480));
    assert_eq!(
        client::get(address, "/stats.json").expect("stats").status,
        200
    );
    // SAFETY: kill() with a pid we spawned.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(child.wait().expect("wait").code(), Some(0));
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn a_config_that_is_not_a_regular_file_fails_at_once() {
    for (path, reason) in [("/dev/zero", "not a regular file"), ("/tmp", "directory")] {
        let started = Instant::now();
        let output = Command::new(BINARY)
            .args(["--config", path])
            .output()
            .expect("run");
        let printed = String::from_utf8_lossy(&output.stderr);
        println!("{path}: {:?}: {}", started.elapsed(), printed.trim());
        assert_eq!(output.status.code(), Some(2), "{printed}");
        assert!(printed.contains(reason), "{printed}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

/// SIGTERM at any moment of start-up ends the program promptly: before the config is read,
/// while cameras start, or as the server starts.
#[test]
fn sigterm_during_start_up_is_honoured() {
    let cameras: String = (0..16)
        .map(|i| format!("[[camera]]\nname = \"c{i}\"\nwidth = 640\nheight = 480\n"))
        .collect();
    let path = temp_config(
        "start-up",
        &format!("[server]\nbind = \"127.0.0.1\"\nport = 0\n{cameras}"),
    );
    for delay_ms in [0u64, 2, 5, 10, 20, 40, 80] {
        let mut child = Command::new(BINARY)
            .arg("--config")
            .arg(&path)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let sent = Instant::now();
        // SAFETY: kill() with a pid we spawned.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if sent.elapsed() > Duration::from_secs(3) {
                let _ = child.kill();
                panic!("still running 3 s after SIGTERM sent {delay_ms} ms into start-up");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        println!(
            "SIGTERM {delay_ms} ms into start-up: {status} after {:?}",
            sent.elapsed()
        );
        // Killed by the signal before the handler was installed, or exit 0.
        assert!(status.code().is_none_or(|c| c == 0), "{status}");
    }
    std::fs::remove_file(&path).ok();
}

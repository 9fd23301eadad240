//! Settings changed at run time survive a restart: the real binary, stopped with SIGTERM and
//! started again on the same state file. Each test has a directory of its own for the
//! config and the state, and HOME and XDG_STATE_HOME point there too: nothing is ever
//! written to the home of whoever runs the tests.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mjpeg_client as client;
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_frcstream");

/// A directory of its own for a test, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("saved-settings-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn state_file(&self) -> PathBuf {
        self.0.join("state").join("settings.json")
    }

    /// Writes the config: the server on an ephemeral port, `server_extra` in `[server]`,
    /// and one test-pattern camera `cam` with `camera_extra` lines.
    fn config(&self, server_extra: &str, camera_extra: &str) -> PathBuf {
        let path = self.0.join("frcstream.toml");
        let text = format!(
            "[server]\nbind = \"127.0.0.1\"\nport = 0\n{server_extra}\n\
             [[camera]]\nname = \"cam\"\nwidth = 320\nheight = 240\n{camera_extra}\n"
        );
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// A config with the state file in the scratch directory; the camera writes `fps = 30`.
    fn config_with_state(&self, fps: u32) -> PathBuf {
        let server = format!("state_file = \"{}\"", self.state_file().display());
        self.config(&server, &format!("fps = {fps}"))
    }

    /// The state file as JSON.
    fn saved(&self) -> Value {
        let bytes = std::fs::read(self.state_file()).expect("state file written");
        serde_json::from_slice(&bytes).expect("state file is JSON")
    }

    fn command(&self) -> Command {
        let mut command = Command::new(BINARY);
        command
            .env_remove("STATE_DIRECTORY")
            .env("HOME", self.0.join("home"))
            .env("XDG_STATE_HOME", self.0.join("xdg"))
            .env("RUST_LOG", "info");
        command
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// frcstream running, with its log collected.
struct Server {
    child: Child,
    address: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(mut command: Command) -> Server {
        let mut child = command.stderr(Stdio::piped()).spawn().expect("spawn");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let address = loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => panic!("frcstream ended before listening; log:\n{}", join(&log)),
            };
            log.lock().unwrap().push(line.clone());
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.trim().parse::<SocketAddr>().expect("an address");
            }
        };
        let kept = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Server {
            child,
            address,
            log,
        }
    }

    fn with_config(scratch: &Scratch, config: &Path) -> Server {
        let mut command = scratch.command();
        command.arg("--config").arg(config);
        Server::start(command)
    }

    fn log(&self) -> String {
        join(&self.log)
    }

    fn post(&self, body: &str) -> client::HttpResponse {
        post(self.address, "/cam", body)
    }

    /// `(value, origin)` of a control in `/settings.json`.
    fn setting(&self, name: &str) -> (String, String) {
        let response = client::get(self.address, "/cam/settings.json").expect("settings.json");
        assert_eq!(response.status, 200);
        let json: Value = serde_json::from_slice(&response.body).expect("JSON");
        let controls = json["controls"].as_array().expect("controls");
        let control = controls
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {json}"));
        (
            control["value"].as_str().expect("value").to_owned(),
            control["origin"].as_str().expect("origin").to_owned(),
        )
    }

    /// SIGTERM, and the exit status 0 within 2 s. Returns the log.
    fn stop(mut self) -> String {
        // SAFETY: kill() with a pid we spawned.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(started.elapsed() < Duration::from_secs(2), "still running");
            std::thread::sleep(Duration::from_millis(10));
        };
        // The reader thread takes the last lines.
        std::thread::sleep(Duration::from_millis(50));
        let log = self.log();
        assert_eq!(status.code(), Some(0), "{log}");
        log
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn join(log: &Mutex<Vec<String>>) -> String {
    log.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
}

fn post(address: SocketAddr, path: &str, body: &str) -> client::HttpResponse {
    let content_type = if body.starts_with('{') {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    support::post(address, path, content_type, body)
}

fn pair(value: &str, origin: &str) -> (String, String) {
    (value.to_owned(), origin.to_owned())
}

#[test]
fn changes_survive_a_restart_and_an_edited_config_key_wins() {
    let scratch = Scratch::new("restart");
    let config = scratch.config_with_state(30);
    let server = Server::with_config(&scratch, &config);
    assert_eq!(server.setting("fps"), pair("30", "config"));
    assert_eq!(server.setting("quality"), pair("50", "default"));
    let response = server.post("fps=12&quality=35");
    assert_eq!(response.status, 200, "{}", response.text());
    let answer: Value = serde_json::from_slice(&response.body).expect("JSON");
    assert_eq!(answer["origins"]["fps"], "changed");
    assert_eq!(server.setting("fps"), pair("12", "changed"));
    server.stop();
    let saved = scratch.saved();
    let cam = &saved["cameras"]["cam"];
    assert_eq!(
        (&cam["fps"]["value"], &cam["fps"]["config"]),
        (&12.into(), &30.into())
    );
    assert_eq!(cam["quality"]["value"], 35);
    assert_eq!(
        cam["quality"]["config"],
        Value::Null,
        "not in the config file"
    );

    // Started again on the same state file: the values are back, and say so.
    let server = Server::with_config(&scratch, &config);
    assert_eq!(server.setting("fps"), pair("12", "saved"));
    assert_eq!(server.setting("quality"), pair("35", "saved"));
    let stats = support::stats(server.address);
    assert_eq!(stats["cameras"][0]["settings"]["fps"], 12);
    assert_eq!(
        stats["cameras"][0]["settings"]["origin"]["quality"],
        "saved"
    );
    let text = client::get(server.address, "/fps").expect("fps").text();
    assert_eq!(text.trim(), "12");
    server.stop();

    // The team edits fps in the config file: the config wins, quality stays saved.
    let config = scratch.config_with_state(20);
    let server = Server::with_config(&scratch, &config);
    assert_eq!(server.setting("fps"), pair("20", "config"));
    assert_eq!(server.setting("quality"), pair("35", "saved"));
    let log = server.stop();
    assert!(
        log.contains("saved fps = 12 dropped") && log.contains("the config wins"),
        "{log}"
    );
    let saved = scratch.saved();
    assert_eq!(saved["cameras"]["cam"]["fps"], Value::Null, "{saved}");
    assert_eq!(saved["cameras"]["cam"]["quality"]["value"], 35);

    // And the dropped value stays dropped when the config goes back.
    let config = scratch.config_with_state(30);
    let server = Server::with_config(&scratch, &config);
    assert_eq!(server.setting("fps"), pair("30", "config"));
    server.stop();
}

#[test]
fn post_forget_goes_back_to_the_config_and_stays_there() {
    let scratch = Scratch::new("forget-post");
    let config = scratch.config_with_state(30);
    let server = Server::with_config(&scratch, &config);
    assert_eq!(server.post("fps=12&quality=35").status, 200);
    server.stop();
    let server = Server::with_config(&scratch, &config);
    assert_eq!(server.setting("quality"), pair("35", "saved"));
    for refused in ["forget=1&fps=3", "forget=0", "{\"forget\": \"yes\"}"] {
        let response = server.post(refused);
        assert_eq!(response.status, 400, "{refused}: {}", response.text());
    }
    assert_eq!(server.setting("quality"), pair("35", "saved"));
    let response = post(server.address, "/settings", "forget=1");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(server.setting("fps"), pair("30", "config"));
    assert_eq!(server.setting("quality"), pair("50", "default"));
    server.stop();
    let saved = scratch.saved();
    assert_eq!(saved["cameras"], serde_json::json!({}), "{saved}");
    let server = Server::with_config(&scratch, &config);
    assert_eq!(server.setting("fps"), pair("30", "config"));
    assert_eq!(server.setting("quality"), pair("50", "default"));
    // JSON works too.
    assert_eq!(server.post("{\"quality\": 20}").status, 200);
    assert_eq!(server.post("{\"forget\": true}").status, 200);
    assert_eq!(server.setting("quality"), pair("50", "default"));
    server.stop();
}

#[test]
fn forget_settings_deletes_the_saved_values_and_exits() {
    let scratch = Scratch::new("forget-cli");
    let config = scratch.config_with_state(30);
    let server = Server::with_config(&scratch, &config);
    assert_eq!(server.post("quality=20").status, 200);
    server.stop();
    assert!(scratch.state_file().exists());
    let forget = |scratch: &Scratch| {
        let output = scratch
            .command()
            .arg("--config")
            .arg(&config)
            .arg("--forget-settings")
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let said = forget(&scratch);
    assert!(said.contains("deleted"), "{said}");
    assert!(!scratch.state_file().exists());
    let said = forget(&scratch);
    assert!(said.contains("no saved settings"), "{said}");
    let server = Server::with_config(&scratch, &config);
    assert_eq!(server.setting("quality"), pair("50", "default"));
    server.stop();
}

#[test]
fn a_corrupt_state_file_is_logged_moved_aside_and_the_config_used() {
    let scratch = Scratch::new("corrupt");
    let config = scratch.config_with_state(25);
    std::fs::create_dir_all(scratch.state_file().parent().expect("dir")).expect("dir");
    let garbage = b"{\"version\": 1, \"cameras\": {\"cam\": {\"fps\": {\"value\": \"tw";
    std::fs::write(scratch.state_file(), garbage).expect("write");
    let server = Server::with_config(&scratch, &config);
    assert_eq!(server.setting("fps"), pair("25", "config"));
    let stats = client::get(server.address, "/stats.json").expect("stats");
    assert_eq!(stats.status, 200);
    let log = server.log();
    let warning: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("settings.json"))
        .collect();
    assert_eq!(warning.len(), 1, "one warning naming the file: {log}");
    assert!(warning[0].contains("moved aside"), "{log}");
    let aside = scratch.state_file().with_file_name("settings.json.corrupt");
    assert_eq!(std::fs::read(&aside).expect("kept aside"), garbage);
    // Saving works again at once.
    assert_eq!(server.post("fps=9").status, 200);
    server.stop();
    assert_eq!(scratch.saved()["cameras"]["cam"]["fps"]["value"], 9);

    // A state file that cannot be read at all (here a directory) is logged, not fatal.
    let scratch = Scratch::new("unreadable");
    let config = scratch.config_with_state(25);
    std::fs::create_dir_all(scratch.state_file()).expect("dir in the way");
    let server = Server::with_config(&scratch, &config);
    assert_eq!(server.setting("fps"), pair("25", "config"));
    assert_eq!(server.post("fps=9").status, 200, "changes still work");
    let log = server.stop();
    assert!(
        log.contains("WARN") && log.contains("cannot read it"),
        "{log}"
    );
}

#[test]
fn a_burst_of_changes_right_before_sigterm_keeps_the_last() {
    let scratch = Scratch::new("burst");
    let config = scratch.config_with_state(30);
    let server = Server::with_config(&scratch, &config);
    for fps in 1..=40 {
        assert_eq!(server.post(&format!("fps={fps}")).status, 200);
    }
    server.stop();
    assert_eq!(scratch.saved()["cameras"]["cam"]["fps"]["value"], 40);
    let server = Server::with_config(&scratch, &config);
    assert_eq!(server.setting("fps"), pair("40", "saved"));
    server.stop();
}

#[test]
fn the_default_place_is_systemds_state_directory_else_xdg_and_off_saves_nothing() {
    let scratch = Scratch::new("where");
    let config = scratch.config("", "");
    let systemd_dir = scratch.0.join("var-lib-frcstream");
    std::fs::create_dir_all(&systemd_dir).expect("dir");
    let mut command = scratch.command();
    command
        .arg("--config")
        .arg(&config)
        .env("STATE_DIRECTORY", &systemd_dir);
    let server = Server::start(command);
    assert_eq!(server.post("quality=33").status, 200);
    server.stop();
    assert!(systemd_dir.join("settings.json").exists());

    let server = Server::with_config(&scratch, &config);
    assert_eq!(server.post("quality=34").status, 200);
    server.stop();
    let xdg = scratch.0.join("xdg/frcstream/settings.json");
    assert!(xdg.exists(), "without systemd: $XDG_STATE_HOME/frcstream");

    let mut command = scratch.command();
    command
        .arg("--config")
        .arg(&config)
        .args(["--state-file", ""]);
    let server = Server::start(command);
    assert_eq!(server.setting("quality"), pair("50", "default"));
    assert_eq!(server.post("quality=35").status, 200);
    let log = server.stop();
    assert!(log.contains("saved settings: off"), "{log}");
    let saved: Value = serde_json::from_slice(&std::fs::read(&xdg).expect("xdg")).expect("JSON");
    assert_eq!(saved["cameras"]["cam"]["quality"]["value"], 34, "untouched");
}

#[test]
fn read_only_refuses_forget_too() {
    let scratch = Scratch::new("read-only");
    let server_extra = format!(
        "read_only = true\nstate_file = \"{}\"",
        scratch.state_file().display()
    );
    let streamer = support::start(
        "[[camera]]\nname = \"cam\"\nwidth = 320\nheight = 240\n",
        &server_extra,
    );
    let response = post(streamer.local_addr(), "/cam", "forget=1");
    assert_eq!(response.status, 403, "{}", response.text());
    streamer.stop();
    assert!(!scratch.state_file().exists(), "nothing written");
}

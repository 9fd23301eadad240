//! What `/CameraPublisher/<name>/streams` tells a dashboard, on a machine whose interfaces
//! look like a robot coprocessor's: frcstream runs in a network namespace of the test's own
//! with the robot network on `eth0` (10.12.34.11, joined by a veth pair to the "roboRIO" at
//! 10.12.34.2, where WPILib's ntcore listens on 5810 as on a robot), a Docker bridge, a
//! Jetson's USB gadget bridge, a link-local address and a Wi-Fi address. `team = 1234`
//! finds the server at 10.12.34.2 exactly as on the field.
//!
//! Every dead entry costs Elastic about 0.6 s and cscore's `HttpCamera` about 1.25 s per
//! reconnect cycle, so only reachable addresses are listed, the robot network first and
//! `<host>.local` last; `[networktables] advertise` overrides the list.
//!
//! Needs root and iproute2 (network namespaces); otherwise SKIPPED loudly, and a failure
//! with `FRCSTREAM_REQUIRE_NETNS=1` (as in CI).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mjpeg_client::MjpegStream;
use serde_json::Value as Json;
use support::{NtServer, pyntcore, scratch_dir, wait_for};

/// The robot's addresses for a team: (roboRIO, coprocessor).
fn addresses(team: u16) -> (String, String) {
    let net = format!("10.{}.{}", team / 100, team % 100);
    (format!("{net}.2"), format!("{net}.11"))
}

fn skip(test: &str, reason: &str) {
    support::skip_unless_required(&support::NETNS, test, reason);
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace dressed as a Jetson on a robot, removed on drop.
struct Coprocessor {
    namespace: String,
    host_end: String,
}

impl Coprocessor {
    fn build(tag: &str, team: u16) -> Result<Coprocessor, String> {
        let (roborio, address) = addresses(team);
        let id = std::process::id();
        let coprocessor = Coprocessor {
            namespace: format!("frcs-{tag}-{id}"),
            host_end: format!("fr{tag}{id}"),
        };
        let ns = coprocessor.namespace.as_str();
        let host_end = coprocessor.host_end.as_str();
        ip(&["netns", "add", ns])?;
        ip(&[
            "link", "add", host_end, "type", "veth", "peer", "name", "rio", "netns", ns,
        ])?;
        ip(&["addr", "add", &format!("{roborio}/24"), "dev", host_end])?;
        ip(&["link", "set", host_end, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["-n", ns];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["link", "set", "lo", "up"])?;
        inside(&["link", "set", "rio", "name", "eth0"])?;
        // Interfaces in interface order: the robot network is not the first one.
        for (name, address) in [
            ("docker0", "172.17.0.1/16"),
            ("l4tbr0", "192.168.55.1/24"),
            ("wlan0", "192.168.1.40/24"),
            ("eth1", "169.254.7.7/16"),
        ] {
            inside(&["link", "add", name, "type", "bridge"])?;
            inside(&["addr", "add", address, "dev", name])?;
            inside(&["link", "set", name, "up"])?;
        }
        inside(&["addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
        inside(&["link", "set", "eth0", "up"])?;
        Ok(coprocessor)
    }

    /// Runs frcstream in the namespace with `config`.
    fn run_frcstream(&self, config: &Path, log: &Path) -> Child {
        let log = std::fs::File::create(log).expect("create frcstream log");
        Command::new("ip")
            .args(["netns", "exec", &self.namespace])
            .arg(env!("CARGO_BIN_EXE_frcstream"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start frcstream in the namespace")
    }
}

impl Drop for Coprocessor {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_end]);
        let _ = ip(&["netns", "del", &self.namespace]);
    }
}

/// Kills the child on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    name.trim().split('.').next().unwrap_or_default().to_owned()
}

/// Sets up the namespace and ntcore, or says why the test cannot run here.
fn robot(test: &str, tag: &str, team: u16) -> Option<(Coprocessor, NtServer, PathBuf)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip(test, "network namespaces need root");
        return None;
    }
    let coprocessor = match Coprocessor::build(tag, team) {
        Ok(c) => c,
        Err(e) => {
            skip(test, &format!("cannot build the network namespace: {e}"));
            return None;
        }
    };
    let python = pyntcore(test)?;
    let dir = scratch_dir(test);
    let port3 = support::free_port();
    let server = NtServer::start_on(&python, &dir, &addresses(team).0, 5810, port3);
    Some((coprocessor, server, dir))
}

fn write_config(dir: &Path, team: u16, networktables_extra: &str) -> PathBuf {
    let path = dir.join("frcstream.toml");
    let text = format!(
        "[server]\nport = 1181\n\
         [networktables]\nteam = {team}\n{networktables_extra}\n\
         [[camera]]\nname = \"front\"\nwidth = 320\nheight = 240\nfps = 15\n"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn advertised(server: &mut NtServer) -> Option<Vec<String>> {
    let view = server.get("/CameraPublisher/front/streams");
    let list = view["server"]["value"].as_array()?;
    Some(
        list.iter()
            .filter_map(Json::as_str)
            .map(str::to_owned)
            .collect(),
    )
}

#[test]
fn a_coprocessor_advertises_only_what_a_driver_station_can_reach() {
    let test = "a_coprocessor_advertises_only_what_a_driver_station_can_reach";
    let team = 1234;
    let Some((coprocessor, mut server, dir)) = robot(test, "a", team) else {
        return;
    };
    let (_, coprocessor_address) = addresses(team);
    let config = write_config(&dir, team, "");
    let log = dir.join("frcstream.log");
    let _frcstream = Running(coprocessor.run_frcstream(&config, &log));
    let streams =
        wait_for(Duration::from_secs(15), || advertised(&mut server)).unwrap_or_else(|| {
            panic!(
                "no streams on NetworkTables\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
    println!("advertised: {streams:?}");
    let url = |host: &str| format!("mjpg:http://{host}:1181/front/?action=stream");
    assert_eq!(
        streams,
        vec![
            url(&coprocessor_address),
            url("192.168.1.40"),
            url(&format!("{}.local", hostname())),
        ],
        "robot network first, <host>.local last; no Docker bridge, gadget network or \
         link-local address"
    );
    // The first entry is the one a driver station on the robot network reaches.
    let address: SocketAddr = format!("{coprocessor_address}:1181")
        .parse()
        .expect("address");
    let mut stream = MjpegStream::open(address, "/front/?action=stream").expect("stream");
    let part = stream.next_part().expect("a frame over the robot network");
    let image = turbojpeg::decompress(&part.jpeg, turbojpeg::PixelFormat::GRAY).expect("JPEG");
    assert_eq!((image.width, image.height), (320, 240));
}

#[test]
fn advertise_in_the_config_overrides_the_list() {
    let test = "advertise_in_the_config_overrides_the_list";
    let team = 5678;
    let Some((coprocessor, mut server, dir)) = robot(test, "b", team) else {
        return;
    };
    let config = write_config(
        &dir,
        team,
        "advertise = [\"frcvision.local\", \"10.12.34.11\"]",
    );
    let log = dir.join("frcstream.log");
    let _frcstream = Running(coprocessor.run_frcstream(&config, &log));
    let streams =
        wait_for(Duration::from_secs(15), || advertised(&mut server)).unwrap_or_else(|| {
            panic!(
                "no streams on NetworkTables\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
    assert_eq!(
        streams,
        vec![
            "mjpg:http://frcvision.local:1181/front/?action=stream",
            "mjpg:http://10.12.34.11:1181/front/?action=stream",
        ]
    );
}

//! frcstream on NetworkTables, end to end: a real `Streamer` (test-pattern cameras, HTTP on
//! 127.0.0.1) pointed at WPILib's real ntcore server (PyPI `pyntcore`, see
//! `crates/nt4/tests/support/nt_server.py`), whose own NT4 client plays the dashboard. Skipped loudly
//! when pyntcore cannot be installed (`FRCSTREAM_REQUIRE_PYNTCORE=1` makes that a failure).

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use frcstream::controls::ControlValue;
use frcstream::networktables::{NtClient, NtClientConfig, NtValue};
use frcstream::settings::Writer;
use frcstream::{Config, Streamer};
use mjpeg_client::{self as client, MjpegStream};
use serde_json::{Value as Json, json};
use support::{NtServer, Viewer, free_port, pyntcore, scratch_dir, wait_for};

/// The bound the issue sets for reconnecting after a server restart.
const RECONNECT: Duration = Duration::from_secs(2);
/// Generous bound for things that take a publisher sweep (100–500 ms) or so.
const SOON: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Helpers

/// Everything frcstream logs, kept for assertions (and echoed to stderr).
struct TestLog(Mutex<Vec<String>>);

impl log::Log for TestLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {}: {}", record.level(), record.target(), record.args());
            eprintln!("{line}");
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    }

    fn flush(&self) {}
}

fn test_log() -> &'static TestLog {
    static LOG: OnceLock<&'static TestLog> = OnceLock::new();
    LOG.get_or_init(|| {
        let log: &'static TestLog = Box::leak(Box::new(TestLog(Mutex::new(Vec::new()))));
        if log::set_logger(log).is_ok() {
            log::set_max_level(log::LevelFilter::Info);
        }
        log
    })
}

/// Lines logged so far that contain `needle`.
fn logged(needle: &str) -> Vec<String> {
    let lines = test_log().0.lock().unwrap_or_else(|e| e.into_inner());
    lines
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

/// A streamer on 127.0.0.1 with NetworkTables pointed at `nt_port` as `client`.
fn start_streamer(nt_port: u16, client: &str, cameras: &str) -> Streamer {
    test_log();
    let text = format!(
        "[server]\nbind = \"127.0.0.1\"\nport = 0\n\
         [networktables]\nserver = \"127.0.0.1:{nt_port}\"\nclient_name = \"{client}\"\n\
         {cameras}"
    );
    let config = Config::parse(&text, Path::new("test.toml")).expect("test config is valid");
    Streamer::start(&config).expect("streamer starts")
}

fn camera(name: &str, width: u32, height: u32, fps: u32) -> String {
    format!(
        "[[camera]]\nname = \"{name}\"\nwidth = {width}\nheight = {height}\nfps = {fps}\nquality = 90\n"
    )
}

fn nt_connected(streamer: &Streamer) -> bool {
    streamer.networktables().is_some_and(|nt| nt.is_connected())
}

/// The server's view of a topic: `(type, value)`, or `None` while it does not exist.
fn server_view(server: &mut NtServer, topic: &str) -> Option<(String, Json)> {
    let view = server.get(topic)["server"].clone();
    if view.is_null() {
        return None;
    }
    Some((
        view["type"].as_str().unwrap_or_default().to_owned(),
        view["value"].clone(),
    ))
}

/// Waits until the server has `topic` with this type and value.
fn wait_server(server: &mut NtServer, topic: &str, ty: &str, value: Json, timeout: Duration) {
    let ok = server.wait_value("server", topic, ty, &value, timeout);
    let got = server.get(topic);
    assert!(ok, "{topic}: wanted {ty} {value}, the server has {got}");
}

/// A number topic's value on the server (0 when absent).
fn server_number(server: &mut NtServer, topic: &str) -> f64 {
    server_view(server, topic)
        .and_then(|(_, v)| v.as_f64())
        .unwrap_or(0.0)
}

/// `mjpg:http://127.0.0.1:PORT/PATH` into an address and a path.
fn parse_stream_url(url: &str) -> (SocketAddr, String) {
    let rest = url
        .strip_prefix("mjpg:http://")
        .unwrap_or_else(|| panic!("not an mjpg: URL: {url}"));
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    (host.parse().expect("host:port"), path.to_owned())
}

/// Frame rate and mean JPEG size of `path` over `window` (the first frame is not counted).
fn measure(address: SocketAddr, path: &str, window: Duration) -> (f64, f64) {
    let mut stream = MjpegStream::open(address, path).expect("open stream");
    stream.next_part().expect("first frame");
    let start = Instant::now();
    let (mut frames, mut bytes, mut last) = (0u32, 0usize, start);
    while start.elapsed() < window {
        let part = stream.next_part().expect("a frame");
        frames += 1;
        bytes += part.jpeg.len();
        last = Instant::now();
    }
    let seconds = last.duration_since(start).as_secs_f64().max(1e-3);
    (
        f64::from(frames) / seconds,
        bytes as f64 / f64::from(frames.max(1)),
    )
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn camera_publisher_topics_are_cscores_and_stats_move() {
    let Some(python) = pyntcore("camera_publisher_topics_are_cscores_and_stats_move") else {
        return;
    };
    let dir = scratch_dir("camera-publisher");
    let mut server = NtServer::start_fresh(&python, &dir);
    let client = "frcstream-topics";
    // "back" has a port of its own, as cscore gives each camera.
    let back_port = free_port();
    let cameras = format!(
        "{}{}port = {back_port}\n",
        camera("front", 320, 240, 30),
        camera("back", 160, 120, 15)
    );
    let streamer = start_streamer(server.port, client, &cameras);
    let address = streamer.local_addr();
    assert!(
        wait_for(SOON, || nt_connected(&streamer).then_some(())).is_some(),
        "frcstream connects"
    );

    for (name, size, mode) in [
        ("front", (320, 240), "320x240 YUYV 30 fps"),
        ("back", (160, 120), "160x120 YUYV 15 fps"),
    ] {
        let root = format!("/CameraPublisher/{name}");
        // On the shared port under its name; on a port of its own exactly as cscore.
        let url = if name == "back" {
            format!("mjpg:http://127.0.0.1:{back_port}/?action=stream")
        } else {
            format!(
                "mjpg:http://127.0.0.1:{}/{name}/?action=stream",
                address.port()
            )
        };
        wait_server(
            &mut server,
            &format!("{root}/streams"),
            "string[]",
            json!([url]),
            SOON,
        );
        wait_server(
            &mut server,
            &format!("{root}/source"),
            "string",
            json!("cv:"),
            SOON,
        );
        wait_server(
            &mut server,
            &format!("{root}/description"),
            "string",
            json!("test pattern"),
            SOON,
        );
        wait_server(
            &mut server,
            &format!("{root}/connected"),
            "boolean",
            json!(true),
            SOON,
        );
        wait_server(
            &mut server,
            &format!("{root}/mode"),
            "string",
            json!(mode),
            SOON,
        );
        wait_server(
            &mut server,
            &format!("{root}/modes"),
            "string[]",
            json!([mode]),
            SOON,
        );
        let own = format!("/frcstream/{name}");
        let fps = if name == "front" { 30 } else { 15 };
        wait_server(&mut server, &format!("{own}/fps"), "int", json!(fps), SOON);
        wait_server(
            &mut server,
            &format!("{own}/quality"),
            "int",
            json!(90),
            SOON,
        );
        wait_server(
            &mut server,
            &format!("{own}/clients"),
            "int",
            json!(0),
            SOON,
        );
        for stat in [
            "captured_fps",
            "delivered_fps",
            "mbit_per_second",
            "latency_ms",
        ] {
            let view = server_view(&mut server, &format!("{own}/{stat}"));
            assert_eq!(
                view.map(|(ty, _)| ty).as_deref(),
                Some("double"),
                "{own}/{stat}"
            );
        }
        // The advertised URL streams this very camera (each has its own size).
        let (stream_address, path) = parse_stream_url(&url);
        let mut stream = MjpegStream::open(stream_address, &path).expect("the advertised URL");
        let part = stream.next_part().expect("a frame");
        let image = turbojpeg::decompress(&part.jpeg, turbojpeg::PixelFormat::GRAY).expect("JPEG");
        assert_eq!((image.width, image.height), size, "{url} streams {name}");
    }

    // `connected` follows the camera (as the V4L2 capture thread will set it on unplug).
    let front = Arc::clone(&streamer.cameras()[0]);
    front.set_connected(false);
    wait_server(
        &mut server,
        "/CameraPublisher/front/connected",
        "boolean",
        json!(false),
        SOON,
    );
    front.set_connected(true);
    wait_server(
        &mut server,
        "/CameraPublisher/front/connected",
        "boolean",
        json!(true),
        SOON,
    );

    // Statistics move while a client streams, and settle when it leaves.
    let viewer = Viewer::start(address, "/front.mjpg");
    wait_server(
        &mut server,
        "/frcstream/front/clients",
        "int",
        json!(1),
        SOON,
    );
    let moved = wait_for(SOON, || {
        let delivered = server_number(&mut server, "/frcstream/front/delivered_fps");
        let captured = server_number(&mut server, "/frcstream/front/captured_fps");
        let mbit = server_number(&mut server, "/frcstream/front/mbit_per_second");
        let latency = server_number(&mut server, "/frcstream/front/latency_ms");
        (delivered > 15.0 && captured > 15.0 && mbit > 0.1 && latency > 0.0)
            .then_some((delivered, captured, mbit, latency))
    });
    assert!(moved.is_some(), "stats while streaming: {:?}", {
        let stats: Vec<_> = [
            "captured_fps",
            "delivered_fps",
            "mbit_per_second",
            "latency_ms",
        ]
        .iter()
        .map(|s| server_number(&mut server, &format!("/frcstream/front/{s}")))
        .collect();
        stats
    });
    drop(viewer);
    wait_server(
        &mut server,
        "/frcstream/front/clients",
        "int",
        json!(0),
        SOON,
    );

    server.assert_clean_log(client);
    streamer.stop();
    // Gone with frcstream: cscore's topics are not retained.
    let gone = wait_for(SOON, || {
        server_view(&mut server, "/CameraPublisher/front/streams")
            .is_none()
            .then_some(())
    });
    assert!(gone.is_some(), "topics disappear when frcstream stops");
}

#[test]
fn dashboard_writes_change_the_stream_and_bad_ones_are_refused() {
    let Some(python) = pyntcore("dashboard_writes_change_the_stream_and_bad_ones_are_refused")
    else {
        return;
    };
    let dir = scratch_dir("settings");
    let mut server = NtServer::start_fresh(&python, &dir);
    let client = "frcstream-settings";
    let streamer = start_streamer(server.port, client, &camera("side", 320, 240, 30));
    let address = streamer.local_addr();
    let side = Arc::clone(&streamer.cameras()[0]);
    let fps_topic = "/frcstream/side/fps";
    let quality_topic = "/frcstream/side/quality";
    wait_server(&mut server, fps_topic, "int", json!(30), SOON);
    wait_server(&mut server, quality_topic, "int", json!(90), SOON);
    let window = Duration::from_millis(1500);
    let (fps_before, size_before) = measure(address, "/side.mjpg", window);
    assert!(fps_before > 15.0, "{fps_before} fps at first");

    // fps = 5: the stream slows to about 5 fps.
    server.set(fps_topic, "int", json!(5));
    assert!(wait_for(SOON, || (side.settings.fps() == 5).then_some(())).is_some());
    let (fps, _) = measure(address, "/side.mjpg", Duration::from_secs(2));
    assert!((3.5..=6.5).contains(&fps), "{fps} fps after fps = 5");

    // quality = 20: frames get smaller.
    server.set(quality_topic, "int", json!(20));
    assert!(wait_for(SOON, || (side.settings.quality() == 20).then_some(())).is_some());
    let (_, size_after) = measure(address, "/side.mjpg", window);
    assert!(
        size_after < size_before * 0.7,
        "mean frame {size_before:.0} B at quality 90, {size_after:.0} B at 20"
    );

    // fps = "fast": a string on the int topic, from a client that did not know its type.
    // ntcore's server forwards and caches it; frcstream refuses it with one log line and
    // writes 5 over it, so a dashboard that connects later gets 5, not "fast".
    server.set_blind(fps_topic, "string", json!("fast"));
    let refused_fast = "camera \"side\": refused /frcstream/side/fps = \"fast\"";
    assert!(wait_for(SOON, || (!logged(refused_fast).is_empty()).then_some(())).is_some());
    assert_eq!(side.settings.fps(), 5);
    let late = NtClient::start(NtClientConfig::new(
        format!("127.0.0.1:{}", server.port),
        "late-dashboard",
    ))
    .expect("late client");
    let updates = late.subscribe(&[fps_topic]);
    let first = updates.recv_timeout(SOON).expect("the cached value");
    assert_eq!(first.value, NtValue::Int(5), "what the server caches");
    assert_eq!(logged(refused_fast).len(), 1, "one log line per refusal");

    // fps = -3: refused by frcstream with one log line, and 5 is written back.
    server.set(fps_topic, "int", json!(-3));
    assert!(server.wait_value("dashboard", fps_topic, "int", &json!(5), SOON));
    wait_server(&mut server, fps_topic, "int", json!(5), SOON);
    assert_eq!(side.settings.fps(), 5);
    let (fps, _) = measure(address, "/side.mjpg", Duration::from_secs(2));
    assert!(
        (3.5..=6.5).contains(&fps),
        "{fps} fps after the refused writes"
    );
    let refused = logged("camera \"side\": refused /frcstream/side/fps = -3");
    assert_eq!(refused.len(), 1, "one log line per refusal: {refused:#?}");

    // A change made over HTTP reaches NetworkTables too (and one from code, as
    // PushedStream::set_fps makes it).
    let response = client::request(
        address,
        "POST",
        "/side",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"fps=12&quality=40",
    )
    .expect("POST answered");
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(server.wait_value("dashboard", fps_topic, "int", &json!(12), SOON));
    assert!(server.wait_value("dashboard", quality_topic, "int", &json!(40), SOON));
    side.change(Writer::Library, &[("fps".to_owned(), ControlValue::Int(7))])
        .expect("fps 7");
    assert!(server.wait_value("dashboard", fps_topic, "int", &json!(7), SOON));

    server.assert_clean_log_except(client, &["blind"]);
    server.assert_clean_log_except("late-dashboard", &["blind"]);
    late.stop();
    streamer.stop();
}

#[test]
fn a_dashboard_write_is_saved_and_applied_after_a_restart() {
    let Some(python) = pyntcore("a_dashboard_write_is_saved_and_applied_after_a_restart") else {
        return;
    };
    test_log();
    let dir = scratch_dir("saved");
    let mut server = NtServer::start_fresh(&python, &dir);
    let state_file = dir.join("state").join("settings.json");
    let config = |nt: &str| {
        let text = format!(
            "[server]\nbind = \"127.0.0.1\"\nport = 0\nstate_file = \"{}\"\n{nt}{}",
            state_file.display(),
            camera("kept", 160, 120, 30)
        );
        Config::parse(&text, Path::new("test.toml")).expect("test config is valid")
    };
    let nt = format!(
        "[networktables]\nserver = \"127.0.0.1:{}\"\nclient_name = \"frcstream-saved\"\n",
        server.port
    );
    let streamer = Streamer::start(&config(&nt)).expect("streamer starts");
    let kept = Arc::clone(&streamer.cameras()[0]);
    let fps_topic = "/frcstream/kept/fps";
    wait_server(&mut server, fps_topic, "int", json!(30), SOON);
    server.set(fps_topic, "int", json!(8));
    assert!(wait_for(SOON, || (kept.settings.fps() == 8).then_some(())).is_some());
    server.assert_clean_log_except("frcstream-saved", &[]);
    streamer.stop();
    let saved: Json =
        serde_json::from_slice(&std::fs::read(&state_file).expect("state file written"))
            .expect("JSON");
    assert_eq!(saved["cameras"]["kept"]["fps"]["value"], 8, "{saved}");

    // Started again without NetworkTables: the value comes from the state file alone.
    let again = Streamer::start(&config("")).expect("streamer starts again");
    let camera = &again.cameras()[0];
    assert_eq!(camera.settings.fps(), 8);
    assert_eq!(camera.origin("fps").as_str(), "saved");
    again.stop();
}

#[test]
fn absent_then_restarted_server() {
    let Some(python) = pyntcore("absent_then_restarted_server") else {
        return;
    };
    let dir = scratch_dir("restart");
    let (port, port3) = (free_port(), free_port());
    let client = "frcstream-restart";
    let streamer = start_streamer(port, client, &camera("rear", 160, 120, 30));
    let address = streamer.local_addr();
    let rear = Arc::clone(&streamer.cameras()[0]);

    // No server yet: frcstream streams anyway.
    let mut stream = MjpegStream::open(address, "/rear.mjpg").expect("stream without NT");
    for _ in 0..3 {
        stream.next_part().expect("a frame without NT");
    }
    drop(stream);
    assert!(!nt_connected(&streamer));

    // The server appears: frcstream connects (it retries every second) and publishes.
    let mut server = NtServer::start(&python, &dir, port, port3);
    let appeared = Instant::now();
    wait_server(&mut server, "/frcstream/rear/fps", "int", json!(30), SOON);
    eprintln!(
        "connected and published {:?} after the server appeared",
        appeared.elapsed()
    );
    assert!(nt_connected(&streamer));

    // The dashboard's settings...
    server.set("/frcstream/rear/fps", "int", json!(5));
    server.set("/frcstream/rear/quality", "int", json!(20));
    assert!(
        wait_for(SOON, || (rear.settings.fps() == 5
            && rear.settings.quality() == 20)
            .then_some(()))
        .is_some()
    );
    server.assert_clean_log(client);

    // ... survive kill -9 and a restart of the server on the same port.
    server.kill();
    assert!(
        wait_for(SOON, || (!nt_connected(&streamer)).then_some(())).is_some(),
        "frcstream notices the server is gone"
    );
    let restart_began = Instant::now();
    let mut server = NtServer::start(&python, &dir, port, port3);
    let restarted = Instant::now();
    let back = wait_for(SOON, || {
        let topics = server.topics();
        let has = |name: &str| topics.iter().any(|(n, _)| n == name);
        (nt_connected(&streamer)
            && has("/CameraPublisher/rear/streams")
            && has("/CameraPublisher/rear/connected")
            && server_view(&mut server, "/frcstream/rear/fps") == Some(("int".into(), json!(5)))
            && server_view(&mut server, "/frcstream/rear/quality")
                == Some(("int".into(), json!(20))))
        .then(|| restarted.elapsed())
    });
    let Some(took) = back else {
        panic!("frcstream did not come back: topics {:?}", server.topics());
    };
    eprintln!(
        "reconnected, topics and settings back {took:?} after the restarted server was up \
         ({:?} after starting its process)",
        restart_began.elapsed()
    );
    assert!(took <= RECONNECT, "back after {took:?}");
    assert_eq!((rear.settings.fps(), rear.settings.quality()), (5, 20));
    let (fps, _) = measure(address, "/rear.mjpg", Duration::from_secs(2));
    assert!((3.5..=6.5).contains(&fps), "{fps} fps after the restart");

    server.assert_clean_log(client);
    streamer.stop();
}

//! A switched driver stream (`[[switch]]`, cscore's `addSwitchedCamera`) end to end: a real
//! `Streamer` with two test-pattern cameras of different sizes, pointed at WPILib's real
//! ntcore server (PyPI `pyntcore`), whose own NT4 client plays the dashboard. One client
//! stays connected to `/driver.mjpg` while NetworkTables and then `POST /driver` switch it
//! front → back → front: it sees the sizes change on the same connection. Skipped loudly
//! when pyntcore cannot be installed (`FRCSTREAM_REQUIRE_PYNTCORE=1` makes that a failure).
//!
//! `cargo test --test switched_stream -- --nocapture` prints the switch times: from the
//! write (the dashboard's NT write, or the POST) to the first part of the new camera at
//! the client.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use frcstream::frame::monotonic_us;
use frcstream::{Config, Streamer};
use mjpeg_client::{self as client, MjpegStream};
use serde_json::json;
use support::streamer::{decoded_size, post, stats};
use support::{NtServer, pyntcore, scratch_dir, wait_for};

/// Generous bound for a publisher sweep or a switch (measured: tens of ms).
const SOON: Duration = Duration::from_secs(5);
/// Switches of each kind measured.
const ROUNDS: usize = 5;
const FRONT: (usize, usize) = (640, 480);
const BACK: (usize, usize) = (320, 240);
const SELECTED_TOPIC: &str = "/frcstream/driver/selected";

fn start_streamer(nt_port: u16) -> Streamer {
    let text = format!(
        "[server]\nbind = \"127.0.0.1\"\nport = 0\n\
         [networktables]\nserver = \"127.0.0.1:{nt_port}\"\nclient_name = \"frcstream-switch\"\n\
         [[camera]]\nname = \"front\"\nwidth = 640\nheight = 480\nfps = 30\n\
         [[camera]]\nname = \"back\"\nwidth = 320\nheight = 240\nfps = 30\n\
         [[switch]]\nname = \"driver\"\ncameras = [\"front\", \"back\"]\n"
    );
    let config = Config::parse(&text, Path::new("test.toml")).expect("test config is valid");
    Streamer::start(&config).expect("streamer starts")
}

/// Reads parts until one is `size`: how long that took from `since`. Every part is a whole
/// JPEG of one of the two cameras; the first of the new camera is current, not a frame from
/// before the switch (captured at most a frame interval, 33 ms, before it; 50 ms allowed).
fn until_size(stream: &mut MjpegStream, size: (usize, usize), since: Instant) -> Duration {
    let since_us = monotonic_us();
    loop {
        let part = stream
            .next_part()
            .expect("parts keep coming on the same connection");
        let got = decoded_size(&part.jpeg);
        assert!(got == FRONT || got == BACK, "a part of {got:?}");
        if got == size {
            let captured_us = part.timestamp_us().expect("X-Timestamp");
            assert!(
                captured_us + 50_000 >= since_us,
                "the first part of {size:?} was captured {} ms before the switch",
                since_us.saturating_sub(captured_us) / 1000
            );
            return since.elapsed();
        }
        assert!(
            since.elapsed() < SOON,
            "no part of {size:?} within {SOON:?}"
        );
    }
}

/// The next few parts are all `size`: the switch does not flip back.
fn stays(stream: &mut MjpegStream, size: (usize, usize)) {
    for _ in 0..3 {
        let part = stream.next_part().expect("parts keep coming");
        assert_eq!(decoded_size(&part.jpeg), size);
    }
}

fn post_selected(address: SocketAddr, camera: &str) -> client::HttpResponse {
    post(
        address,
        "/driver",
        "application/x-www-form-urlencoded",
        &format!("selected={camera}"),
    )
}

/// `GET /events`, read line by line.
struct EventStream(BufReader<TcpStream>);

impl EventStream {
    fn open(address: SocketAddr) -> EventStream {
        let mut socket = TcpStream::connect(address).expect("connect /events");
        socket.set_read_timeout(Some(SOON)).expect("read timeout");
        socket
            .write_all(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
            .expect("request /events");
        EventStream(BufReader::new(socket))
    }

    /// The data of the next `switch` event.
    fn next_switch_event(&mut self) -> String {
        let mut in_switch_event = false;
        loop {
            let mut line = String::new();
            let read = self.0.read_line(&mut line).expect("an event in time");
            assert!(read > 0, "/events ended");
            if line.starts_with("event: ") {
                in_switch_event = line.trim_end() == "event: switch";
            } else if in_switch_event && line.starts_with("data: ") {
                return line.trim_end().to_owned();
            }
        }
    }
}

fn summary(label: &str, times: &mut [Duration]) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "{label}: median {:.1} ms, max {:.1} ms over {} switches",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        times.len()
    )
}

#[test]
fn a_driver_stream_follows_networktables_and_post_without_reconnecting() {
    let Some(python) =
        pyntcore("a_driver_stream_follows_networktables_and_post_without_reconnecting")
    else {
        return;
    };
    let dir = scratch_dir("switched-stream");
    let mut server = NtServer::start_fresh(&python, &dir);
    let streamer = start_streamer(server.port);
    let address = streamer.local_addr();
    let (front, back) = (&streamer.cameras()[0], &streamer.cameras()[1]);

    // Published as a camera, with the selection as a default the dashboard can write.
    assert!(server.wait_value("server", SELECTED_TOPIC, "string", &json!("front"), SOON));
    assert!(server.wait_value(
        "server",
        "/CameraPublisher/driver/source",
        "string",
        &json!("cv:"),
        SOON
    ));
    let streams_ok = wait_for(SOON, || {
        let streams = server.get("/CameraPublisher/driver/streams")["server"]["value"].clone();
        let wanted = format!(
            "mjpg:http://127.0.0.1:{}/driver/?action=stream",
            address.port()
        );
        (streams.as_array()?.iter().any(|s| *s == json!(wanted))).then_some(())
    });
    assert!(streams_ok.is_some(), "streams lists the switch's URL");
    let mode_ok = wait_for(SOON, || {
        let mode = server.get("/CameraPublisher/driver/mode")["server"]["value"].clone();
        mode.as_str()?.starts_with("640x480").then_some(())
    });
    assert!(mode_ok.is_some(), "mode is the selected camera's");

    let mut stream = MjpegStream::open(address, "/driver.mjpg").expect("open /driver.mjpg");
    let connection = stream.socket().local_addr().expect("local address");
    until_size(&mut stream, FRONT, Instant::now());
    // Only the selected camera has the switch's client as a viewer.
    assert!(front.slot.has_viewers() && !back.slot.has_viewers());
    let report = stats(address);
    assert_eq!(report["switches"][0]["selected"], "front");
    assert_eq!(report["switches"][0]["clients"], 1);
    assert_eq!(report["cameras"][0]["clients"], 1);
    assert_eq!(report["cameras"][1]["clients"], 0);

    // NetworkTables: a dashboard button writes the camera's name. (The harness's second
    // client: its `dashboard` client's repeated writes to one topic after the first never
    // reach the server, a quirk of that client's timestamp-0 writes.)
    let mut over_nt = Vec::new();
    for _ in 0..ROUNDS {
        for (camera, size) in [("back", BACK), ("front", FRONT)] {
            let written = Instant::now();
            server.set_blind(SELECTED_TOPIC, "string", json!(camera));
            over_nt.push(until_size(&mut stream, size, written));
            stays(&mut stream, size);
        }
    }
    assert!(
        !back.slot.has_viewers(),
        "back lost its viewer when front came back"
    );

    // POST /driver selected=<camera>, and the selection reaches NetworkTables.
    let mut over_post = Vec::new();
    for _ in 0..ROUNDS {
        for (camera, size) in [("back", BACK), ("front", FRONT)] {
            let written = Instant::now();
            let answer = post_selected(address, camera);
            assert_eq!(answer.status, 200, "{}", answer.text());
            over_post.push(until_size(&mut stream, size, written));
            assert!(server.wait_value("dashboard", SELECTED_TOPIC, "string", &json!(camera), SOON));
            stays(&mut stream, size);
        }
    }
    assert_eq!(
        stream.socket().local_addr().expect("local address"),
        connection,
        "the same connection throughout"
    );

    // An unknown camera over NetworkTables: refused and "front" written back.
    server.set_blind(SELECTED_TOPIC, "string", json!("side"));
    assert!(server.wait_value("dashboard", SELECTED_TOPIC, "string", &json!("front"), SOON));
    assert_eq!(streamer.switches()[0].selected().name, "front");
    // Over HTTP: a 400 that names the choices; JSON works as the form does.
    let refused = post_selected(address, "side");
    assert_eq!(refused.status, 400);
    assert!(
        refused.text().contains("choose one of front, back"),
        "{}",
        refused.text()
    );
    let json_post = post(
        address,
        "/driver",
        "application/json",
        r#"{"selected": "back"}"#,
    );
    assert_eq!(json_post.status, 200, "{}", json_post.text());
    until_size(&mut stream, BACK, Instant::now());

    // The other URL forms show the selected camera, with per-client size.
    let snapshot = client::get(address, "/driver.jpg").expect("snapshot");
    assert_eq!(decoded_size(&snapshot.body), BACK);
    let mut scaled = MjpegStream::open(address, "/driver/?action=stream&resolution=160x120")
        .expect("open scaled stream");
    let part = scaled.next_part().expect("a part");
    assert_eq!(decoded_size(&part.jpeg), (160, 120));

    // The page hears of a selection on /events, with who made it.
    let mut events = EventStream::open(address);
    let opening = events.next_switch_event();
    assert!(opening.contains(r#""selected":"back""#), "{opening}");
    assert_eq!(post_selected(address, "front").status, 200);
    let event = events.next_switch_event();
    assert!(
        event.contains(r#""selected":"front""#) && event.contains(r#""writer":"HTTP""#),
        "{event}"
    );

    eprintln!(
        "{}",
        summary("switch time from the NetworkTables write", &mut over_nt)
    );
    eprintln!("{}", summary("switch time from the POST", &mut over_post));
    drop((stream, scaled));
    streamer.stop();
}

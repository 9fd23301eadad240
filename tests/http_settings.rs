//! Settings over real HTTP: POST (form and JSON), cscore's `?action=command`,
//! `/settings.json` and `/config.json`, read-only mode, and a camera on a port of its own.

mod support;

use std::net::SocketAddr;

use mjpeg_client::{self as client, MjpegStream};

use support::post;

fn in_force(address: SocketAddr) -> (String, String) {
    let fps = client::get(address, "/fps")
        .expect("fps")
        .text()
        .trim()
        .to_owned();
    let quality = client::get(address, "/quality")
        .expect("quality")
        .text()
        .trim()
        .to_owned();
    (fps, quality)
}

#[test]
fn good_values_take_effect_by_form_and_by_json() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    let response = post(
        address,
        "/cam",
        "application/x-www-form-urlencoded",
        "fps=12&quality=35",
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let answer: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON answer");
    assert_eq!(
        (answer["fps"].as_u64(), answer["quality"].as_u64()),
        (Some(12), Some(35))
    );
    assert_eq!(in_force(address), ("12".into(), "35".into()));

    let response = post(
        address,
        "/settings",
        "application/json",
        r#"{"fps": 20, "quality": 60}"#,
    );
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(in_force(address), ("20".into(), "60".into()));

    let response = post(
        address,
        "/cam/settings",
        "application/json",
        r#"{"quality": 45}"#,
    );
    assert_eq!(response.status, 200);
    assert_eq!(in_force(address), ("20".into(), "45".into()));
    streamer.stop();
}

#[test]
fn a_lower_quality_makes_smaller_frames() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    let mut stream = MjpegStream::open(address, "/cam.mjpg").expect("stream");
    let size_at = |stream: &mut MjpegStream| {
        // Let the new setting reach the encoder, then average a few frames.
        for _ in 0..3 {
            stream.next_part().expect("part");
        }
        (0..5)
            .map(|_| stream.next_part().expect("part").jpeg.len())
            .sum::<usize>()
            / 5
    };
    post(address, "/cam", "application/json", r#"{"quality": 90}"#);
    let high = size_at(&mut stream);
    post(address, "/cam", "application/json", r#"{"quality": 20}"#);
    let low = size_at(&mut stream);
    println!("quality 90: {high} bytes, quality 20: {low} bytes");
    assert!(
        low * 2 < high,
        "quality 20 ({low} B) is much smaller than 90 ({high} B)"
    );
    streamer.stop();
}

#[test]
fn bad_requests_get_the_right_4xx_and_change_nothing() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    let before = in_force(address);
    let form = "application/x-www-form-urlencoded";
    let json = "application/json";
    let huge = format!("fps={}", "1".repeat(10_000));
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        ("not a number", form, "fps=fast".into(), 400, "fps"),
        ("negative", form, "fps=-3".into(), 400, "fps"),
        ("out of range", form, "quality=101".into(), 400, "quality"),
        (
            "zero quality",
            json,
            r#"{"quality": 0}"#.into(),
            400,
            "quality",
        ),
        ("fraction", json, r#"{"fps": 7.5}"#.into(), 400, "fps"),
        ("unknown key", form, "fps=10&zoom=2".into(), 400, "zoom"),
        (
            "one good one bad",
            json,
            r#"{"fps": 10, "quality": 500}"#.into(),
            400,
            "quality",
        ),
        ("not JSON", json, "{fps: 10}".into(), 400, "JSON"),
        ("JSON array", json, "[10]".into(), 400, "JSON"),
        (
            "wrong content type",
            "text/plain",
            "fps=10".into(),
            415,
            "content type",
        ),
        ("missing body", form, String::new(), 400, "empty body"),
        ("oversize body", form, huge, 413, "limit"),
    ];
    for (what, content_type, body, status, reason) in cases {
        let response = post(address, "/cam", content_type, &body);
        assert_eq!(response.status, status, "{what}: {}", response.text());
        assert!(
            response.text().contains(reason),
            "{what}: reason names {reason}: {}",
            response.text()
        );
        assert_eq!(in_force(address), before, "{what}: nothing changed");
    }
    let unknown_camera = post(address, "/nocam", form, "fps=10");
    assert_eq!(unknown_camera.status, 404);
    streamer.stop();
}

#[test]
fn cscore_command_and_json() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    let response = client::get(address, "/?action=command&fps=15").expect("command");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(in_force(address).0, "15");
    let refused = client::get(address, "/?action=command&fps=500").expect("command");
    assert_eq!(refused.status, 400);
    assert_eq!(in_force(address).0, "15");

    let settings: serde_json::Value = serde_json::from_slice(
        &client::get(address, "/settings.json")
            .expect("settings")
            .body,
    )
    .expect("JSON");
    assert!(
        settings["controls"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );
    assert_eq!(settings["modes"][0]["width"], "640");
    let config: serde_json::Value = serde_json::from_slice(
        &client::get(address, "/cam/config.json")
            .expect("config")
            .body,
    )
    .expect("JSON");
    assert_eq!(config["fps"], 15);
    assert_eq!(config["width"], 640);
    streamer.stop();
}

#[test]
fn read_only_mode_refuses_changes_with_403() {
    let streamer = support::start("[[camera]]\nname = \"cam\"\n", "read_only = true");
    let address = streamer.local_addr();
    let response = post(address, "/cam", "application/json", r#"{"fps": 5}"#);
    assert_eq!(response.status, 403);
    assert!(response.text().contains("read-only"));
    assert_eq!(
        client::get(address, "/?action=command&fps=5")
            .expect("command")
            .status,
        403
    );
    assert_eq!(in_force(address).0, "30");
    streamer.stop();
}

#[test]
fn a_camera_streams_on_its_own_port_too() {
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let cameras = format!(
        "[[camera]]\nname = \"front\"\n[[camera]]\nname = \"back\"\nport = {free_port}\nwidth = 320\nheight = 240\n"
    );
    let streamer = support::start(&cameras, "");
    let own = streamer.camera_addr("back").expect("back has its own port");
    assert_eq!(own.port(), free_port);
    for (address, path) in [
        (own, "/stream.mjpg"),
        (own, "/?action=stream"),
        (streamer.local_addr(), "/back.mjpg"),
    ] {
        let mut stream = MjpegStream::open(address, path).expect(path);
        let part = stream.next_part().expect("part");
        assert_eq!(
            support::decoded_size(&part.jpeg),
            (320, 240),
            "{address}{path}"
        );
    }
    assert_eq!(
        client::get(own, "/front.mjpg").expect("404").status,
        404,
        "only its camera on its port"
    );
    streamer.stop();
}

/// `GET /events` as the page reads it: the event stream's `data:` lines, as JSON.
struct EventStream(std::io::BufReader<std::net::TcpStream>);

impl EventStream {
    fn open(address: SocketAddr) -> EventStream {
        use std::io::{BufRead, Write};
        let mut socket = std::net::TcpStream::connect(address).expect("connect");
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        socket
            .write_all(b"GET /events HTTP/1.1\r\nHost: robot\r\n\r\n")
            .expect("request");
        let mut reader = std::io::BufReader::new(socket);
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            assert!(reader.read_line(&mut head).expect("head") > 0, "{head}");
        }
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("Content-Type: text/event-stream"), "{head}");
        EventStream(reader)
    }

    /// The next `settings` event's data, within the read timeout.
    fn next(&mut self) -> serde_json::Value {
        use std::io::BufRead;
        loop {
            let mut line = String::new();
            let read = self.0.read_line(&mut line).expect("an event in time");
            assert!(read > 0, "the event stream ended");
            if let Some(data) = line.strip_prefix("data: ") {
                return serde_json::from_str(data.trim_end()).expect("JSON data");
            }
        }
    }
}

#[test]
fn the_page_hears_of_every_change_as_it_is_made_whoever_makes_it() {
    let streamer = support::start(
        "[[camera]]\nname = \"cam\"\n[[camera]]\nname = \"side\"\nsource = \"pushed\"\n",
        "",
    );
    let address = streamer.local_addr();
    let feeds_before: Vec<usize> = streamer
        .cameras()
        .iter()
        .map(|c| c.changes.subscriber_count())
        .collect();
    let mut events = EventStream::open(address);
    // The stream opens with every camera's values in force.
    let opening: Vec<serde_json::Value> = (0..2).map(|_| events.next()).collect();
    assert_eq!(opening[0]["camera"], "cam");
    assert_eq!(opening[0]["fps"], 30);
    assert_eq!(opening[0]["writer"], serde_json::Value::Null);
    assert_eq!(opening[1]["camera"], "side");

    let started = std::time::Instant::now();
    let response = post(
        address,
        "/cam",
        "application/x-www-form-urlencoded",
        "fps=12",
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let event = events.next();
    println!("POST to event: {:?}", started.elapsed());
    assert_eq!(
        (
            &event["camera"],
            &event["key"],
            &event["writer"],
            &event["fps"]
        ),
        (
            &serde_json::json!("cam"),
            &serde_json::json!("fps"),
            &serde_json::json!("HTTP"),
            &serde_json::json!(12)
        )
    );
    assert_eq!(event["origins"]["fps"], "changed");

    // A refused change sends nothing; the program's change comes next.
    let refused = post(
        address,
        "/cam",
        "application/x-www-form-urlencoded",
        "fps=0",
    );
    assert_eq!(refused.status, 400);
    let side = streamer.pushed_stream("side").expect("pushed camera");
    side.set_quality(40).expect("quality");
    let event = events.next();
    assert_eq!(
        (&event["camera"], &event["writer"], &event["quality"]),
        (
            &serde_json::json!("side"),
            &serde_json::json!("the program"),
            &serde_json::json!(40)
        )
    );

    // Leaving ends the stream's subscriptions: nothing piles up for pages that left.
    drop(events);
    let left = support::wait_for(std::time::Duration::from_secs(3), || {
        let now: Vec<usize> = streamer
            .cameras()
            .iter()
            .map(|c| c.changes.subscriber_count())
            .collect();
        (now == feeds_before).then_some(())
    });
    assert!(left.is_some(), "the event stream's subscriptions stayed");
}

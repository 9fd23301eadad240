//! The MJPEG server over real HTTP: stream and snapshot URLs, the wire format, HEAD and
//! 404, per-client fps, passthrough of a JPEG folder, pushed frames, and encoding only
//! while someone watches.

mod support;

use std::time::{Duration, Instant};

use mjpeg_client::test_jpeg::{Subsamp, rgb_jpeg};
use mjpeg_client::{self as client, MjpegStream};

#[test]
fn every_streamed_part_decodes_to_the_configured_size_and_frames_differ() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    for path in [
        "/cam.mjpg",
        "/stream.mjpg",
        "/?action=stream",
        "/cam/stream.mjpg",
    ] {
        let mut stream = MjpegStream::open(address, path).expect(path);
        let mut previous: Option<Vec<u8>> = None;
        for _ in 0..5 {
            let part = stream.next_part().expect("a part");
            assert_eq!(support::decoded_size(&part.jpeg), (640, 480), "{path}");
            assert!(part.timestamp_us().is_some(), "X-Timestamp in every part");
            assert_eq!(part.header("content-type"), Some("image/jpeg"));
            if let Some(previous) = &previous {
                assert_ne!(previous, &part.jpeg, "{path}: consecutive frames differ");
            }
            previous = Some(part.jpeg);
        }
    }
    streamer.stop();
}

#[test]
fn the_stream_head_is_cscores() {
    let streamer = support::start_test_pattern();
    let stream = MjpegStream::open(streamer.local_addr(), "/cam.mjpg").expect("stream");
    let header = |name: &str| {
        stream
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("content-type").as_deref(),
        Some("multipart/x-mixed-replace;boundary=boundarydonotcross")
    );
    assert_eq!(header("access-control-allow-origin").as_deref(), Some("*"));
    assert!(header("cache-control").is_some_and(|v| v.contains("no-cache")));
    streamer.stop();
}

#[test]
fn snapshots_decode() {
    let streamer = support::start_test_pattern();
    for path in [
        "/cam.jpg",
        "/cam.jpeg",
        "/?action=snapshot",
        "/snapshot.jpg",
    ] {
        let response = client::get(streamer.local_addr(), path).expect(path);
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("content-type"), Some("image/jpeg"));
        assert_eq!(support::decoded_size(&response.body), (640, 480), "{path}");
    }
    streamer.stop();
}

#[test]
fn head_requests_get_headers_only() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    let page = client::request(address, "HEAD", "/", &[], &[]).expect("HEAD /");
    assert_eq!(page.status, 200);
    assert!(page.body.is_empty());
    assert!(page.header("content-length").is_some_and(|l| l != "0"));
    let stream = client::request(address, "HEAD", "/cam.mjpg", &[], &[]).expect("HEAD stream");
    assert_eq!(stream.status, 200);
    assert!(stream.body.is_empty(), "no frames after a HEAD");
    assert!(
        stream
            .header("content-type")
            .is_some_and(|t| t.starts_with("multipart/x-mixed-replace"))
    );
    streamer.stop();
}

#[test]
fn unknown_urls_get_a_404_listing_the_valid_ones() {
    let streamer = support::start_test_pattern();
    let response = client::get(streamer.local_addr(), "/nothing-here").expect("404");
    assert_eq!(response.status, 404);
    let body = response.text();
    for url in ["/cam.mjpg", "/?action=stream", "/cam.jpg", "/stats.json"] {
        assert!(body.contains(url), "404 body lists {url}: {body}");
    }
    let deleted =
        client::request(streamer.local_addr(), "DELETE", "/cam.mjpg", &[], &[]).expect("405");
    assert_eq!(deleted.status, 405);
    streamer.stop();
}

/// Dashboards build stream URLs from user input (Elastic: `resolution=WxH`, any `fps`,
/// `compression` 0–100; Shuffleboard adds `name`; both send empty values). cscore skips
/// what it cannot use; a 400 makes Elastic retry forever, so every one of these streams.
#[test]
fn stream_urls_as_dashboards_build_them_all_stream() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    for (path, size) in [
        ("/cam.mjpg?fps=fast", (640, 480)),
        ("/cam.mjpg?size=big", (640, 480)),
        ("/cam.mjpg?fps=&resolution=&compression=", (640, 480)),
        (
            "/stream.mjpg?resolution=320x240&fps=&compression=30&name=",
            (320, 240),
        ),
        ("/?action=stream&fps=1000&compression=101", (640, 480)),
        ("/cam/?action=stream&fps=7.5&resolution=8x8", (16, 16)),
        ("/cam.mjpg?resolution=0x0&fps=-1", (640, 480)),
        ("/cam.mjpg?resolution=320x0", (320, 480)),
        // Odd sides are encoded at the even size below (4:2:0 chroma).
        ("/cam.mjpg?fps=%zz&resolution=161x121", (160, 120)),
    ] {
        let mut stream =
            MjpegStream::open(address, path).unwrap_or_else(|e| panic!("{path} must stream: {e}"));
        let part = stream.next_part().expect("a part");
        assert_eq!(support::decoded_size(&part.jpeg), size, "{path}");
    }
    for (path, size) in [
        ("/cam.jpg?resolution=&junk=1", (640, 480)),
        (
            "/?action=snapshot&resolution=320x240&compression=20",
            (320, 240),
        ),
    ] {
        let response = client::get(address, path).expect(path);
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        assert_eq!(support::decoded_size(&response.body), size, "{path}");
    }
    streamer.stop();
}

#[test]
fn a_settings_change_in_the_url_stays_strict() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    let response = client::get(address, "/?action=command&fps=%zz").expect("400");
    assert_eq!(response.status, 400);
    assert!(response.text().contains("malformed"), "{}", response.text());
    streamer.stop();
}

/// cscore's `HttpCamera` (what Shuffleboard reads streams with) reconnects when a stream
/// brings no frame for a second. A client at `fps=1`, or a camera at 1 fps, must still get
/// a part at least every half second or so: the newest frame again.
#[test]
fn no_stream_goes_quiet_for_a_second() {
    let fast = support::start_test_pattern();
    let slow = support::start(
        "[[camera]]\nname = \"slow\"\nwidth = 320\nheight = 240\nfps = 1\n",
        "",
    );
    for (address, path) in [
        (fast.local_addr(), "/cam.mjpg?fps=1"),
        (slow.local_addr(), "/slow.mjpg"),
    ] {
        let mut stream = MjpegStream::open(address, path).expect(path);
        stream.next_part().expect("first part");
        let mut last = Instant::now();
        let mut longest = Duration::ZERO;
        let mut distinct = std::collections::HashSet::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(4) {
            let part = stream.next_part().expect("a part");
            longest = longest.max(last.elapsed());
            last = Instant::now();
            distinct.insert(part.timestamp_us());
        }
        println!(
            "{path}: longest gap between parts {longest:?}, {} distinct frames in 4 s",
            distinct.len()
        );
        // About 0.5 s by design; generous for a loaded machine, and well under cscore's 1 s.
        assert!(
            longest < Duration::from_millis(900),
            "{path}: a gap of {longest:?}"
        );
        // The rate asked for still holds: about one new picture a second, not thirty.
        assert!(
            (2..=7).contains(&distinct.len()),
            "{path}: {} distinct frames",
            distinct.len()
        );
    }
    fast.stop();
    slow.stop();
}

#[test]
fn pages_and_settings_answer() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    let index = client::get(address, "/").expect("index");
    assert_eq!(index.status, 200);
    assert!(index.text().contains("/cam.mjpg"));
    assert_eq!(client::get(address, "/cam.html").expect("page").status, 200);
    assert_eq!(
        client::get(address, "/fps").expect("fps").text().trim(),
        "30"
    );
    assert_eq!(
        client::get(address, "/quality")
            .expect("quality")
            .text()
            .trim(),
        "50"
    );
    streamer.stop();
}

/// Frames per second one client receives over `window`.
fn measure_fps(stream: &mut MjpegStream, window: Duration) -> f64 {
    stream.next_part().expect("first part");
    let started = Instant::now();
    let mut frames = 0;
    while started.elapsed() < window {
        stream.next_part().expect("part");
        frames += 1;
    }
    frames as f64 / started.elapsed().as_secs_f64()
}

#[test]
fn a_client_fps_limit_slows_that_client_only() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    let slow = std::thread::spawn(move || {
        let mut stream = MjpegStream::open(address, "/cam.mjpg?fps=5").expect("slow client");
        measure_fps(&mut stream, Duration::from_secs(3))
    });
    let mut full = MjpegStream::open(address, "/cam.mjpg").expect("full-rate client");
    let full_fps = measure_fps(&mut full, Duration::from_secs(3));
    let slow_fps = slow.join().expect("slow thread");
    println!("fps=5 client: {slow_fps:.1} fps; unlimited client: {full_fps:.1} fps");
    assert!(
        (3.5..=6.5).contains(&slow_fps),
        "fps=5 client got {slow_fps:.1}"
    );
    assert!(
        full_fps > 3.0 * slow_fps,
        "the other client keeps its rate: {full_fps:.1}"
    );
    streamer.stop();
}

#[test]
fn nothing_is_encoded_while_nobody_watches() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(support::frame_count(address, "encodes"), 0);
    assert!(
        support::frame_count(address, "idle") > 5,
        "frames were captured meanwhile"
    );
    {
        let mut stream = MjpegStream::open(address, "/cam.mjpg").expect("stream");
        for _ in 0..5 {
            stream.next_part().expect("part");
        }
    }
    // The client is gone once the server notices the closed socket (next write).
    std::thread::sleep(Duration::from_millis(300));
    let after_viewing = support::frame_count(address, "encodes");
    assert!(after_viewing >= 5);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        support::frame_count(address, "encodes"),
        after_viewing,
        "encoding stops when the last viewer leaves"
    );
    streamer.stop();
}

fn write_jpeg_folder(dir: &std::path::Path) -> Vec<Vec<u8>> {
    std::fs::create_dir_all(dir).expect("temp dir");
    (0..4u8)
        .map(|i| {
            let pixels: Vec<u8> = (0..320 * 240 * 3)
                .map(|p| (p as u8).wrapping_mul(i + 1))
                .collect();
            let jpeg = rgb_jpeg(&pixels, 320, 240, 70, Subsamp::Sub2x2);
            std::fs::write(dir.join(format!("frame{i}.jpg")), &jpeg).expect("write");
            jpeg
        })
        .collect()
}

#[test]
fn a_jpeg_folder_is_passed_through_byte_for_byte() {
    let dir = std::env::temp_dir().join(format!("frcstream-it-folder-{}", std::process::id()));
    let files = write_jpeg_folder(&dir);
    // A truncated file among them is never forwarded.
    std::fs::write(dir.join("frame2b.jpg"), &files[0][..files[0].len() / 2]).expect("write");
    let cameras = format!(
        "[[camera]]\nname = \"replay\"\nsource = \"folder:{}\"\nfps = 30\n",
        dir.display()
    );
    let streamer = support::start(&cameras, "");
    let mut stream = MjpegStream::open(streamer.local_addr(), "/replay.mjpg").expect("stream");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..12 {
        let part = stream.next_part().expect("part");
        let index = files.iter().position(|f| *f == part.jpeg);
        assert!(
            index.is_some(),
            "every streamed frame is one of the files, unchanged"
        );
        seen.extend(index);
    }
    assert_eq!(seen.len(), files.len(), "all files were played");
    assert!(
        support::frame_count(streamer.local_addr(), "invalid") >= 1,
        "the truncated file was counted"
    );
    assert_eq!(
        support::frame_count(streamer.local_addr(), "encodes"),
        0,
        "nothing re-encoded"
    );
    streamer.stop();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn frames_pushed_by_a_program_are_served_like_a_camera() {
    let streamer = support::start("[[camera]]\nname = \"overlay\"\nsource = \"pushed\"\n", "");
    let pushed = streamer.pushed_stream("overlay").expect("push handle");
    assert!(!pushed.has_viewers());
    let address = streamer.local_addr();
    let pusher = std::thread::spawn(move || {
        let mut rgb = vec![0u8; 160 * 120 * 3];
        for i in 0..200u32 {
            rgb.iter_mut().for_each(|p| *p = (i * 3) as u8);
            if pushed.push_rgb(&rgb, 160, 120).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let mut stream = MjpegStream::open(address, "/overlay.mjpg").expect("stream");
    let first = stream.next_part().expect("part");
    assert_eq!(support::decoded_size(&first.jpeg), (160, 120));
    let second = stream.next_part().expect("part");
    assert_ne!(first.jpeg, second.jpeg);
    streamer.stop();
    pusher.join().expect("pusher");
}

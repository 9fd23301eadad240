//! Per-client size and quality over real HTTP: every URL form with every parameter gives
//! frames of the requested size and quality, `compression=-1` gives the source's own JPEG,
//! and each (size, quality) is encoded once per frame however many clients watch it.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mjpeg_client::MjpegStream;
use mjpeg_client::test_jpeg::{Subsamp, rgb_jpeg};

fn first_parts(address: SocketAddr, path: &str, count: usize) -> Vec<Vec<u8>> {
    let mut stream = MjpegStream::open(address, path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (0..count)
        .map(|_| {
            stream
                .next_part()
                .unwrap_or_else(|e| panic!("{path}: {e}"))
                .jpeg
        })
        .collect()
}

#[test]
fn every_url_form_with_every_parameter_gives_the_requested_size() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    let forms = [
        "/cam.mjpg?",
        "/stream.mjpg?",
        "/?action=stream&",
        "/cam/stream.mjpg?",
    ];
    let cases: [(&str, (usize, usize)); 4] = [
        ("resolution=320x240", (320, 240)),
        ("resolution=160x120&compression=30", (160, 120)),
        ("compression=30&fps=15", (640, 480)),
        ("resolution=640x480&compression=-1&name=x", (640, 480)),
    ];
    for form in forms {
        for (params, size) in cases {
            let path = format!("{form}{params}");
            for jpeg in first_parts(address, &path, 2) {
                assert_eq!(support::decoded_size(&jpeg), size, "{path}");
            }
        }
    }
    streamer.stop();
}

fn average_size(address: SocketAddr, path: &str) -> usize {
    let parts = first_parts(address, path, 6);
    parts[2..].iter().map(|p| p.len()).sum::<usize>() / 4
}

#[test]
fn compression_sets_the_quality_of_that_client() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    let fine = average_size(address, "/cam.mjpg?compression=90");
    let coarse = average_size(address, "/cam.mjpg?compression=10");
    let small = average_size(address, "/cam.mjpg?resolution=320x240&compression=10");
    println!("640x480 q90: {fine} B, q10: {coarse} B; 320x240 q10: {small} B");
    assert!(coarse * 2 < fine, "q10 {coarse} B vs q90 {fine} B");
    assert!(small < coarse, "320x240 {small} B vs 640x480 {coarse} B");
    streamer.stop();
}

#[test]
fn compression_minus_one_is_the_cameras_own_jpeg_and_sizes_scale_from_mjpeg() {
    let dir = std::env::temp_dir().join(format!("frcstream-variants-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let files: Vec<Vec<u8>> = (0..3u8)
        .map(|i| {
            let pixels: Vec<u8> = (0..640 * 480 * 3)
                .map(|p| ((p / 3) % 640) as u8 ^ (i * 40))
                .collect();
            let jpeg = rgb_jpeg(&pixels, 640, 480, 80, Subsamp::Sub2x1);
            std::fs::write(dir.join(format!("{i}.jpg")), &jpeg).expect("write");
            jpeg
        })
        .collect();
    let cameras = format!(
        "[[camera]]\nname = \"replay\"\nsource = \"folder:{}\"\nfps = 30\n",
        dir.display()
    );
    let streamer = support::start(&cameras, "");
    let address = streamer.local_addr();
    for jpeg in first_parts(address, "/replay.mjpg?compression=-1", 4) {
        assert!(
            files.contains(&jpeg),
            "compression=-1 gives a fed file, byte for byte"
        );
    }
    for jpeg in first_parts(address, "/replay.mjpg?resolution=160x120", 3) {
        assert_eq!(support::decoded_size(&jpeg), (160, 120));
    }
    for jpeg in first_parts(address, "/replay.mjpg?resolution=320x240&compression=20", 3) {
        assert_eq!(support::decoded_size(&jpeg), (320, 240));
        assert!(!files.contains(&jpeg));
    }
    streamer.stop();
    std::fs::remove_dir_all(&dir).ok();
}

fn counters(address: SocketAddr) -> (u64, u64, u64) {
    let stats = support::stats(address);
    let frames = &stats["cameras"][0]["frames"];
    let get = |k: &str| frames[k].as_u64().expect("counter");
    (get("published"), get("encodes"), get("variant_encodes"))
}

/// Encodes per published source frame while `paths` are streamed, one client each.
fn encodes_per_frame(address: SocketAddr, paths: &[&str]) -> f64 {
    let stop = Instant::now() + Duration::from_secs(4);
    let clients: Vec<_> = paths
        .iter()
        .map(|path| {
            let path = path.to_string();
            std::thread::spawn(move || {
                let mut stream = MjpegStream::open(address, &path).expect("stream");
                while Instant::now() < stop {
                    stream.next_part().expect("part");
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let (published_0, encodes_0, variants_0) = counters(address);
    std::thread::sleep(Duration::from_secs(2));
    let (published_1, encodes_1, variants_1) = counters(address);
    for client in clients {
        client.join().expect("client");
    }
    let encodes = (encodes_1 - encodes_0) + (variants_1 - variants_0);
    encodes as f64 / (published_1 - published_0).max(1) as f64
}

#[test]
fn each_variant_is_encoded_once_per_frame_for_all_its_clients() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    let one = encodes_per_frame(address, &["/cam.mjpg"; 4]);
    let two = encodes_per_frame(
        address,
        &[
            "/cam.mjpg",
            "/cam.mjpg",
            "/cam.mjpg?resolution=320x240",
            "/?action=stream&resolution=320x240",
        ],
    );
    println!(
        "encodes per source frame: 4 clients on 1 variant {one:.2}, 4 clients on 2 variants {two:.2}"
    );
    assert!((0.95..=1.05).contains(&one), "{one}");
    assert!((1.85..=2.05).contains(&two), "{two}");
    // Variants nobody watches any more are dropped.
    std::thread::sleep(Duration::from_millis(1200));
    let variants = &support::stats(address)["cameras"][0]["variants"];
    assert_eq!(variants.as_array().map(Vec::len), Some(0), "{variants}");
    streamer.stop();
}

fn variant_sizes(address: SocketAddr) -> Vec<(u64, u64)> {
    support::stats(address)["cameras"][0]["variants"]
        .as_array()
        .expect("variants")
        .iter()
        .map(|v| {
            (
                v["width"].as_u64().unwrap_or(640),
                v["height"].as_u64().unwrap_or(480),
            )
        })
        .collect()
}

/// Issue 15, finding 4: `resolution=4096x4096` on a 640x480 camera upscaled every frame
/// (a core per client). A size is clamped to the camera's, side by side, not refused.
#[test]
fn sizes_beyond_the_cameras_are_clamped_to_it() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    for (params, size) in [
        ("resolution=4096x4096", (640, 480)),
        ("resolution=1280x240", (640, 240)),
        ("resolution=4096x4096&compression=30", (640, 480)),
    ] {
        let path = format!("/cam.mjpg?{params}");
        let mut stream = MjpegStream::open(address, &path).expect("stream");
        let part = stream.next_part().expect("frame");
        assert_eq!(support::decoded_size(&part.jpeg), size, "{path}");
        for (w, h) in variant_sizes(address) {
            assert!(w <= 640 && h <= 480, "{path}: a {w}x{h} variant runs");
        }
    }
    streamer.stop();
}

/// At most 4 variants per camera, and their pixels at most twice the camera's: a request
/// beyond gets the nearest variant running. Variants end with their last client.
#[test]
fn variants_per_camera_are_capped_and_the_nearest_is_served_beyond() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    let sizes = [
        (320, 240),
        (160, 120),
        (480, 360),
        (200, 150),
        (400, 300),
        (168, 126),
    ];
    let mut streams = Vec::new();
    for (w, h) in sizes {
        let path = format!("/cam.mjpg?resolution={w}x{h}");
        let mut stream = MjpegStream::open(address, &path).expect("stream");
        let got = support::decoded_size(&stream.next_part().expect("frame").jpeg);
        println!("asked {w}x{h}, got {got:?}");
        streams.push((stream, (w, h), got));
    }
    let running = variant_sizes(address);
    println!("variants running: {running:?}");
    assert!(running.len() <= 4, "{running:?}");
    // The first four got what they asked for; the fifth and sixth the nearest running.
    for (_, asked, got) in &streams[..4] {
        assert_eq!(*got, *asked);
    }
    assert_eq!(streams[4].2, (480, 360), "400x300 is nearest to 480x360");
    assert_eq!(streams[5].2, (160, 120), "168x126 is nearest to 160x120");
    drop(streams);

    // Pixels: two more full-size qualities fit beside nothing else, a third does not.
    std::thread::sleep(Duration::from_millis(1200));
    let mut streams = Vec::new();
    for quality in [10, 20, 30] {
        let path = format!("/cam.mjpg?compression={quality}");
        let mut stream = MjpegStream::open(address, &path).expect("stream");
        stream.next_part().expect("frame");
        streams.push(stream);
    }
    let running = support::stats(address)["cameras"][0]["variants"].clone();
    assert_eq!(running.as_array().map(Vec::len), Some(2), "{running}");
    drop(streams);

    // Buffers go with the variant: none is left once its clients are gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !variant_sizes(address).is_empty() {
        assert!(Instant::now() < deadline, "variants outlived their clients");
        std::thread::sleep(Duration::from_millis(50));
    }
    streamer.stop();
}

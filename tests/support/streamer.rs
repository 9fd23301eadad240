//! A real frcstream for a test: start a server on an ephemeral port,
//! decode JPEGs, read `/stats.json`.

use std::net::SocketAddr;
use std::path::Path;

use frcstream::{Config, Streamer};
use mjpeg_client::{self as client, HttpResponse};

/// Starts a streamer on 127.0.0.1 with a free port. `cameras` is the `[[camera]]` part of
/// a config file; `server_extra` more lines for `[server]`.
pub fn start(cameras: &str, server_extra: &str) -> Streamer {
    let text = format!("[server]\nbind = \"127.0.0.1\"\nport = 0\n{server_extra}\n{cameras}");
    let config = Config::parse(&text, Path::new("test.toml")).expect("test config is valid");
    Streamer::start(&config).expect("streamer starts")
}

/// One 640x480 test-pattern camera named `cam` at 30 fps.
pub fn start_test_pattern() -> Streamer {
    start(
        "[[camera]]\nname = \"cam\"\nwidth = 640\nheight = 480\nfps = 30\n",
        "",
    )
}

/// Width and height of a JPEG, decoded by libjpeg-turbo for real.
pub fn decoded_size(jpeg: &[u8]) -> (usize, usize) {
    let image = turbojpeg::decompress(jpeg, turbojpeg::PixelFormat::GRAY).expect("JPEG decodes");
    (image.width, image.height)
}

/// `POST path` with a body of `content_type`; the response, whatever its status.
pub fn post(address: SocketAddr, path: &str, content_type: &str, body: &str) -> HttpResponse {
    client::request(
        address,
        "POST",
        path,
        &[("Content-Type", content_type)],
        body.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("POST {path} not answered: {e}"))
}

/// `/stats.json` as JSON.
pub fn stats(address: SocketAddr) -> serde_json::Value {
    let response = client::get(address, "/stats.json").expect("stats.json");
    assert_eq!(response.status, 200);
    serde_json::from_slice(&response.body).expect("stats.json is JSON")
}

/// A counter of camera 0 in `/stats.json`'s `frames`.
pub fn frame_count(address: SocketAddr, counter: &str) -> u64 {
    stats(address)["cameras"][0]["frames"][counter]
        .as_u64()
        .expect("counter")
}

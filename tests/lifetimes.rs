//! A streamer leaves no thread behind: not when a later step of its start fails (a port
//! already taken), and not when it is dropped without `stop()` while a client streams.
//! Threads are counted in `/proc/self/task`; everything runs in one test so that no other
//! test's thread comes or goes meanwhile.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use frcstream::{Config, StartError, Streamer};

const CAMERA: &str = "[[camera]]\nname = \"cam\"\nwidth = 320\nheight = 240\nfps = 30\n";

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// Waits (up to 3 s) for the thread count to be back at `before`; returns the last count.
fn settled_count(before: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let now = thread_count();
        if now <= before || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn config(server_port: u16, camera_extra: &str) -> Config {
    let text = format!(
        "[server]\nbind = \"127.0.0.1\"\nport = {server_port}\nmax_mbit = 0\n{CAMERA}{camera_extra}"
    );
    Config::parse(&text, Path::new("test.toml")).expect("test config is valid")
}

/// Starting with `config` fails for a port taken, and leaves `before` threads running.
fn assert_bind_fails_without_leaking(config: &Config, before: usize, port: &str) {
    let result = Streamer::start(config);
    assert!(
        matches!(result, Err(StartError::Bind { .. })),
        "{:?}",
        result.err()
    );
    assert_eq!(
        settled_count(before),
        before,
        "threads left by a start whose {port} was taken"
    );
}

#[test]
fn no_thread_outlives_its_streamer() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_port = taken.local_addr().expect("address").port();
    let before = thread_count();

    // The main server's port is taken: the capture thread started before it must stop.
    assert_bind_fails_without_leaking(&config(taken_port, ""), before, "server port");
    // The camera's own port is taken: the capture thread and the main server must stop.
    let camera_port = format!("port = {taken_port}\n");
    assert_bind_fails_without_leaking(&config(0, &camera_port), before, "camera port");

    // Dropped, not stopped, while a client streams (sender and client threads running).
    let streamer = Streamer::start(&config(0, "")).expect("streamer starts");
    let mut viewer = TcpStream::connect(streamer.local_addr()).expect("connect");
    std::io::Write::write_all(&mut viewer, b"GET /cam.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut first_bytes = [0u8; 4096];
    viewer
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let got = viewer.read(&mut first_bytes).expect("the stream starts");
    assert!(got > 0);
    assert!(thread_count() > before, "the streamer runs threads");
    drop(streamer);
    assert_eq!(
        settled_count(before),
        before,
        "threads left by a streamer dropped while a client streamed"
    );
}

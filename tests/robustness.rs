//! The server under stress and abuse, over real sockets: a reconnect storm, a client that
//! stops reading, too many clients, and requests that break the rules.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mjpeg_client::{self as client, MjpegStream};

fn client_count(address: SocketAddr) -> u64 {
    support::stats(address)["cameras"][0]["clients"]
        .as_u64()
        .expect("clients")
}

/// Waits until the server counts `count` clients (those that left are noticed when their
/// socket hangs up).
fn wait_for_clients(address: SocketAddr, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while client_count(address) != count {
        assert!(
            Instant::now() < deadline,
            "clients that left were not let go"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Thirty dashboards reconnecting at the same instant (after a radio blip) must all get a
/// frame at once. A thread pool with a starvation bug fails this only sometimes, so the
/// storm is repeated.
#[test]
fn a_reconnect_storm_of_30_clients_all_get_their_first_frame_within_a_second() {
    let streamer = support::start(
        "[[camera]]\nname = \"cam\"\nfps = 30\n",
        "max_clients = 100",
    );
    let address = streamer.local_addr();
    for round in 0..5 {
        let barrier = Arc::new(Barrier::new(30));
        let clients: Vec<_> = (0..30)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    let started = Instant::now();
                    let mut stream = MjpegStream::open(address, "/cam.mjpg").expect("connect");
                    stream.next_part().expect("first frame");
                    started.elapsed()
                })
            })
            .collect();
        let waits: Vec<Duration> = clients
            .into_iter()
            .map(|c| c.join().expect("client"))
            .collect();
        let slowest = waits.iter().max().copied().unwrap_or_default();
        println!("storm round {round}: slowest first frame after {slowest:?}");
        assert!(
            slowest < Duration::from_secs(1),
            "round {round}: a client waited {slowest:?}"
        );
        wait_for_clients(address, 0);
    }
    streamer.stop();
}

fn set_receive_buffer(stream: &TcpStream, bytes: libc::c_int) -> usize {
    let mut actual: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: plain setsockopt/getsockopt on a socket we own with c_int-sized buffers.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut actual as *mut libc::c_int).cast(),
            &mut len,
        );
    }
    actual as usize
}

/// A client that stops reading costs the server at most a couple of frames beyond the
/// kernel's socket buffers, is dropped after the write timeout, and does not slow the
/// other clients down meanwhile.
#[test]
fn a_stalled_client_is_dropped_and_does_not_slow_the_others() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();

    let stalled = TcpStream::connect(address).expect("connect");
    let receive_buffer = set_receive_buffer(&stalled, 32 * 1024);
    let mut stalled = stalled;
    stalled
        .write_all(b"GET /cam.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");

    let mut watcher = MjpegStream::open(address, "/cam.mjpg").expect("watcher");
    let started = Instant::now();
    let mut frames = 0u32;
    let mut largest_frame = 0usize;
    let mut stalled_dropped_after = None;
    while started.elapsed() < Duration::from_secs(6) {
        let part = watcher.next_part().expect("the watcher keeps streaming");
        largest_frame = largest_frame.max(part.jpeg.len());
        frames += 1;
        if stalled_dropped_after.is_none() && frames % 10 == 0 && client_count(address) == 1 {
            stalled_dropped_after = Some(started.elapsed());
        }
    }
    let watcher_fps = f64::from(frames) / started.elapsed().as_secs_f64();
    let captured_fps = support::stats(address)["cameras"][0]["captured_fps"]
        .as_f64()
        .expect("captured_fps");
    println!(
        "watcher: {watcher_fps:.1} fps while the source made {captured_fps:.1}; stalled client dropped after {stalled_dropped_after:?}"
    );
    let dropped_after = stalled_dropped_after.expect("the stalled client was dropped");
    assert!(
        dropped_after < Duration::from_secs(5),
        "dropped after {dropped_after:?}"
    );
    assert!(
        watcher_fps >= 0.8 * captured_fps,
        "the watcher kept its rate: {watcher_fps:.1} of {captured_fps:.1} fps"
    );

    // Everything the server ever sent the stalled client is what sits in the buffers.
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut received = Vec::new();
    stalled
        .read_to_end(&mut received)
        .expect("the server closed the connection");
    let server_send_buffer = 2 * 128 * 1024; // the kernel doubles the SO_SNDBUF asked for
    let bound = server_send_buffer + receive_buffer + 2 * largest_frame + 4096;
    println!(
        "stalled client received {} bytes (bound {bound}: send buffer {server_send_buffer}, receive buffer {receive_buffer}, 2 frames of {largest_frame})",
        received.len()
    );
    assert!(
        received.len() <= bound,
        "{} bytes > {bound}",
        received.len()
    );
    streamer.stop();
}

#[test]
fn streams_beyond_the_client_limit_get_503() {
    let streamer = support::start("[[camera]]\nname = \"cam\"\n", "max_clients = 2");
    let address = streamer.local_addr();
    let mut first = MjpegStream::open(address, "/cam.mjpg").expect("first");
    let mut second = MjpegStream::open(address, "/cam.mjpg").expect("second");
    first.next_part().expect("frame");
    second.next_part().expect("frame");
    match MjpegStream::open(address, "/cam.mjpg") {
        Err(client::ClientError::Status { status, body }) => {
            assert_eq!(status, 503);
            assert!(body.contains("stream places"), "{body}");
        }
        Err(other) => panic!("expected 503, got {other}"),
        Ok(_) => panic!("a third stream was accepted"),
    }
    // Pages still work while the stream places are full.
    assert_eq!(
        client::get(address, "/stats.json").expect("stats").status,
        200
    );
    drop(first);
    // The place frees once the server notices the client left.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match MjpegStream::open(address, "/cam.mjpg") {
            Ok(mut third) => {
                third.next_part().expect("frame");
                break;
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("the freed place was not given out: {e}"),
        }
    }
    second.next_part().expect("the second client streamed on");
    streamer.stop();
}

/// Sends raw bytes and returns the status line the server answers with. Reads only up to
/// the end of that line, within 10 s: an answer that turns out to be a stream (which never
/// ends) gives its status line instead of hanging the test.
fn raw_status(address: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = stream.write_all(bytes);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !response.contains(&b'\n') && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&response);
    text.lines().next().unwrap_or("").to_owned()
}

#[test]
fn requests_that_break_the_rules_get_their_4xx_and_streams_go_on() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    let mut watcher = MjpegStream::open(address, "/cam.mjpg").expect("watcher");
    let huge_header = format!("GET / HTTP/1.1\r\nX-Junk: {}\r\n\r\n", "a".repeat(20_000));
    let many_headers = format!("GET / HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(100));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("huge header", huge_header.into_bytes(), "431"),
        ("too many headers", many_headers.into_bytes(), "431"),
        (
            "garbage",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            "400",
        ),
        (
            "absolute URL",
            b"GET http://evil/ HTTP/1.1\r\n\r\n".to_vec(),
            "400",
        ),
        (
            "oversize body",
            b"POST /cam HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n".to_vec(),
            "413",
        ),
        (
            "body without length",
            b"POST /cam HTTP/1.1\r\n\r\n".to_vec(),
            "411",
        ),
        (
            "length and chunked at once",
            b"POST /cam HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec(),
            "400",
        ),
        (
            "unknown transfer coding",
            b"POST /cam HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec(),
            "501",
        ),
        (
            "bad content length",
            b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n".to_vec(),
            "400",
        ),
        (
            // A stream ignores a pair it cannot decode, as cscore does (tests/http_streams.rs);
            // a change of settings refuses it.
            "bad escape",
            b"GET /?action=command&fps=%G1 HTTP/1.1\r\n\r\n".to_vec(),
            "400",
        ),
    ];
    for (what, bytes, status) in cases {
        let line = raw_status(address, &bytes);
        assert!(
            line.contains(status),
            "{what}: got \"{line}\", want {status}"
        );
        watcher.next_part().expect("the watcher streams on");
    }
    streamer.stop();
}

#[test]
fn a_request_trickled_too_slowly_is_cut_off() {
    let streamer = support::start_test_pattern();
    let line = raw_status(streamer.local_addr(), b"GET / HTTP/1.1\r\nHost: x\r\n");
    assert!(line.contains("408"), "got \"{line}\"");
    streamer.stop();
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let streamer = support::start_test_pattern();
    let mut stream = TcpStream::connect(streamer.local_addr()).expect("connect");
    stream
        .write_all(b"GET /fps HTTP/1.1\r\n\r\nGET /quality HTTP/1.1\r\nConnection: close\r\n\r\n")
        .expect("two requests");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("responses");
    assert_eq!(response.matches("HTTP/1.1 200 OK").count(), 2, "{response}");
    assert!(response.ends_with("50\n"), "{response}");
    streamer.stop();
}

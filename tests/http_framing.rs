//! HTTP/1.1 message framing by RFC 9112 over real sockets: chunked request bodies are
//! parsed, and a message whose length is in doubt is refused with 400 and the connection
//! closed, so nothing after it is ever run as a request (request smuggling).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use mjpeg_client as client;

/// Sends `bytes`, reads until the server closes, and returns everything it answered.
fn exchange(address: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(bytes).expect("send");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

fn quality(address: SocketAddr) -> String {
    client::get(address, "/quality").expect("quality").text()
}

#[test]
fn differing_content_lengths_are_400_and_the_smuggled_request_never_runs() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    let before = quality(address);
    // The case: the first length ends the body at "quality=41"; the rest would be
    // a second request if the first length were believed.
    let answer = exchange(
        address,
        b"POST /cam HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 10\r\nContent-Length: 40\r\n\r\n\
          quality=41GET /stats.json HTTP/1.1\r\n\r\n",
    );
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("Connection: close"), "{answer}");
    assert_eq!(quality(address), before, "the body was not applied");

    let answer = exchange(
        address,
        b"POST /cam HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n\
          a\r\nquality=42\r\n0\r\n\r\nGET /fps HTTP/1.1\r\n\r\n",
    );
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(quality(address), before, "the body was not applied");
    streamer.stop();
}

#[test]
fn a_chunked_settings_post_is_applied_and_the_next_request_served() {
    let streamer = support::start_test_pattern();
    let address = streamer.local_addr();
    let answer = exchange(
        address,
        b"POST /cam HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Transfer-Encoding: chunked\r\n\r\n\
          8\r\nquality=\r\n2;ext\r\n37\r\n0\r\n\r\n\
          GET /quality HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    assert!(answer.ends_with("37\n"), "{answer}");
    assert_eq!(quality(address).trim(), "37");
    streamer.stop();
}

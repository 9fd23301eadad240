//! Writing HTTP responses: whole ones (pages, JSON, snapshots, errors) in one system call,
//! with the headers every dashboard and browser expects.

use std::io::{self, IoSlice, Write};
use std::time::{Duration, Instant};

/// A response (or one stream part) not written whole within this time drops the client.
/// Each blocked write also times out on its own (the socket's `SO_SNDTIMEO`); this bounds
/// a client that keeps taking a few bytes at a time.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(2);

/// A complete response with a body known up front.
pub struct Response<'a> {
    pub status: u16,
    pub content_type: &'static str,
    pub body: &'a [u8],
    /// Extra header lines, each ending in CRLF.
    pub extra_headers: String,
}

impl<'a> Response<'a> {
    pub fn new(status: u16, content_type: &'static str, body: &'a [u8]) -> Response<'a> {
        Response {
            status,
            content_type,
            body,
            extra_headers: String::new(),
        }
    }

    /// A plain-text response, e.g. an error with its reason.
    pub fn text(status: u16, body: &'a str) -> Response<'a> {
        Response::new(status, "text/plain; charset=utf-8", body.as_bytes())
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.extra_headers.push_str(&format!("{name}: {value}\r\n"));
        self
    }

    /// Writes the response; the body is left out for HEAD.
    pub fn write_to<W: Write>(
        &self,
        out: &mut W,
        head_only: bool,
        keep_alive: bool,
    ) -> io::Result<()> {
        let head = format!(
            "HTTP/1.1 {} {}\r\n\
             Server: frcstream\r\n\
             Content-Type: {}\r\n\
             Content-Length: {}\r\n\
             Cache-Control: no-store, no-cache, must-revalidate, max-age=0\r\n\
             Access-Control-Allow-Origin: *\r\n\
             Connection: {}\r\n\
             {}\r\n",
            self.status,
            reason_phrase(self.status),
            self.content_type,
            self.body.len(),
            if keep_alive { "keep-alive" } else { "close" },
            self.extra_headers,
        );
        let body = if head_only { &[][..] } else { self.body };
        write_all_vectored(
            out,
            &mut [IoSlice::new(head.as_bytes()), IoSlice::new(body)],
        )
    }
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// `write_all` for several buffers, in as few system calls as the socket allows, within
/// [`WRITE_DEADLINE`].
pub fn write_all_vectored<W: Write>(out: &mut W, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    let deadline = Instant::now() + WRITE_DEADLINE;
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client took too long to receive",
            ));
        }
        match out.write_vectored(slices) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_responses_keep_the_length_but_drop_the_body() {
        let mut out = Vec::new();
        Response::text(404, "no such page")
            .write_to(&mut out, true, false)
            .expect("write");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("Content-Length: 12\r\n"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }

    /// A writer that takes at most 3 bytes per call, like a congested socket.
    struct Trickle(Vec<u8>);
    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(3);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_are_resumed() {
        let mut out = Trickle(Vec::new());
        write_all_vectored(
            &mut out,
            &mut [
                IoSlice::new(b"hello "),
                IoSlice::new(b""),
                IoSlice::new(b"world"),
            ],
        )
        .expect("write");
        assert_eq!(out.0, b"hello world");
    }
}

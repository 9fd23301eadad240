//! Reading one HTTP/1.x request from a connection, with hard limits on what a client can
//! make us hold: the request head, the body and the time it may take to send them.

use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

/// Request line plus headers; more is refused with 431.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Bodies (settings POSTs) are tiny; more is refused with 413.
pub const MAX_BODY_BYTES: usize = 4 * 1024;
/// At most this many headers; more is refused with 431.
const MAX_HEADERS: usize = 32;
/// A request must arrive whole within this time once it has started (slow-loris guard).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path, without the query; not percent-decoded.
    pub path: String,
    /// The raw query string after `?`, empty if none.
    pub query: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client wants the connection kept open after the response.
    pub fn wants_keep_alive(&self) -> bool {
        let connection = self.header("connection").unwrap_or("").to_ascii_lowercase();
        match self.minor_version {
            0 => connection.contains("keep-alive"),
            _ => !connection.contains("close"),
        }
    }

    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// Why no request could be read. Each maps to the status the client is told, if any.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The connection closed or idled out between requests: nothing to answer.
    Closed,
    /// 400, with the reason.
    Malformed(String),
    /// 408
    Timeout,
    /// 411
    LengthRequired,
    /// 413
    BodyTooLarge(usize),
    /// 431
    HeadTooLarge,
    /// 501
    Unsupported(String),
}

impl ReadError {
    /// The status and message to send, or `None` when the client is gone.
    pub fn response(&self) -> Option<(u16, String)> {
        match self {
            ReadError::Closed => None,
            ReadError::Malformed(reason) => Some((400, format!("bad request: {reason}"))),
            ReadError::Timeout => Some((408, "request not received in time".into())),
            ReadError::LengthRequired => Some((411, "a body needs a Content-Length".into())),
            ReadError::BodyTooLarge(n) => Some((
                413,
                format!("body of {n} bytes is over the limit of {MAX_BODY_BYTES}"),
            )),
            ReadError::HeadTooLarge => Some((
                431,
                format!(
                    "request head is over the limit of {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} headers"
                ),
            )),
            ReadError::Unsupported(what) => Some((501, format!("not supported: {what}"))),
        }
    }
}

/// Reads the next request. `pending` carries bytes read past the previous request
/// (pipelining) and is left holding what follows this one.
pub fn read_request<S: Read>(stream: &mut S, pending: &mut Vec<u8>) -> Result<Request, ReadError> {
    let started = Instant::now();
    let (request, head_len, body_len) = loop {
        if let Some(parsed) = parse_head(pending)? {
            break parsed;
        }
        if pending.len() >= MAX_HEAD_BYTES {
            return Err(ReadError::HeadTooLarge);
        }
        read_some(stream, pending, MAX_HEAD_BYTES, started)?;
    };
    if body_len > MAX_BODY_BYTES {
        return Err(ReadError::BodyTooLarge(body_len));
    }
    while pending.len() < head_len + body_len {
        read_some(stream, pending, head_len + body_len, started)?;
    }
    let mut request = request;
    request.body = pending[head_len..head_len + body_len].to_vec();
    pending.drain(..head_len + body_len);
    Ok(request)
}

/// Reads more bytes into `pending`, up to `limit` in all.
fn read_some<S: Read>(
    stream: &mut S,
    pending: &mut Vec<u8>,
    limit: usize,
    started: Instant,
) -> Result<(), ReadError> {
    let mut chunk = [0u8; 2048];
    let room = limit.saturating_sub(pending.len()).clamp(1, chunk.len());
    match stream.read(&mut chunk[..room]) {
        Ok(0) if pending.is_empty() => Err(ReadError::Closed),
        Ok(0) => Err(ReadError::Malformed("connection closed mid-request".into())),
        Ok(n) => {
            pending.extend_from_slice(&chunk[..n]);
            if started.elapsed() > REQUEST_DEADLINE {
                return Err(ReadError::Timeout);
            }
            Ok(())
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            if pending.is_empty() {
                Err(ReadError::Closed)
            } else {
                Err(ReadError::Timeout)
            }
        }
        Err(e) if e.kind() == ErrorKind::Interrupted => Ok(()),
        Err(_) => Err(ReadError::Closed),
    }
}

/// Parses a complete head from `buffer`: the request, the head's length and the body's.
fn parse_head(buffer: &[u8]) -> Result<Option<(Request, usize, usize)>, ReadError> {
    if buffer.is_empty() {
        return Ok(None);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buffer) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ReadError::HeadTooLarge),
        Err(e) => return Err(ReadError::Malformed(e.to_string())),
    };
    let (Some(method), Some(target), Some(minor_version)) =
        (parsed.method, parsed.path, parsed.version)
    else {
        return Err(ReadError::Malformed("incomplete request line".into()));
    };
    let mut header_list = Vec::with_capacity(parsed.headers.len());
    for header in parsed.headers.iter() {
        let value = std::str::from_utf8(header.value)
            .map_err(|_| ReadError::Malformed(format!("header {} is not UTF-8", header.name)))?;
        header_list.push((header.name.to_owned(), value.trim().to_owned()));
    }
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, query),
        None => (target, ""),
    };
    if !path.starts_with('/') {
        return Err(ReadError::Malformed(format!(
            "target \"{target}\" is not a path"
        )));
    }
    let request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        minor_version,
        headers: header_list,
        body: Vec::new(),
    };
    if request.header("transfer-encoding").is_some() {
        return Err(ReadError::Unsupported(
            "Transfer-Encoding (send a Content-Length)".into(),
        ));
    }
    let body_len = match request.header("content-length") {
        Some(value) => value.parse::<usize>().map_err(|_| {
            ReadError::Malformed(format!("Content-Length \"{value}\" is not a number"))
        })?,
        None if request.method == "POST" || request.method == "PUT" => {
            return Err(ReadError::LengthRequired);
        }
        None => 0,
    };
    Ok(Some((request, head_len, body_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Request, ReadError> {
        let mut pending = Vec::new();
        read_request(&mut &bytes[..], &mut pending)
    }

    #[test]
    fn a_plain_get_with_a_query() {
        let request = read(b"GET /?action=stream&fps=5 HTTP/1.1\r\nHost: x\r\n\r\n").expect("ok");
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("GET", "/")
        );
        assert_eq!(request.query, "action=stream&fps=5");
        assert_eq!(request.header("HOST"), Some("x"));
        assert!(request.wants_keep_alive());
    }

    #[test]
    fn pipelined_requests_are_read_one_at_a_time() {
        let bytes = b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nfps";
        let mut stream = &bytes[..];
        let mut pending = Vec::new();
        assert_eq!(
            read_request(&mut stream, &mut pending).expect("first").path,
            "/a"
        );
        let second = read_request(&mut stream, &mut pending).expect("second");
        assert_eq!(
            (second.path.as_str(), second.body.as_slice()),
            ("/b", &b"fps"[..])
        );
        assert_eq!(
            read_request(&mut stream, &mut pending),
            Err(ReadError::Closed)
        );
    }

    #[test]
    fn http_1_0_closes_unless_asked() {
        assert!(
            !read(b"GET / HTTP/1.0\r\n\r\n")
                .expect("ok")
                .wants_keep_alive()
        );
        assert!(
            read(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .expect("ok")
                .wants_keep_alive()
        );
    }

    #[test]
    fn limits_and_garbage_get_their_status() {
        let status = |bytes: &[u8]| read(bytes).err().and_then(|e| e.response()).map(|r| r.0);
        let huge_head = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert_eq!(status(huge_head.as_bytes()), Some(431));
        let many_headers = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(40));
        assert_eq!(status(many_headers.as_bytes()), Some(431));
        assert_eq!(
            status(b"POST /cam HTTP/1.1\r\nContent-Length: 99999\r\n\r\n"),
            Some(413)
        );
        assert_eq!(status(b"POST /cam HTTP/1.1\r\n\r\n"), Some(411));
        assert_eq!(
            status(b"POST /cam HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(501)
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Some(400)
        );
        assert_eq!(status(b"\x16\x03\x01garbage\r\n\r\n"), Some(400));
        assert_eq!(status(b"GET http://x/ HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x"),
            Some(400),
            "closed mid-head"
        );
        assert_eq!(status(b""), None, "closed before a request: no answer");
    }
}

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

/// Raw bytes of a chunked body (sizes, extensions, trailers included) at most; more is
/// refused with 413. Bounds what a body of tiny chunks can make us buffer.
pub const MAX_CHUNKED_BYTES: usize = 4 * MAX_BODY_BYTES;
/// Everything one request may make us buffer: its head and its body as sent.
pub const MAX_REQUEST_BYTES: usize = MAX_HEAD_BYTES + MAX_CHUNKED_BYTES;
/// A chunk-size line (with extensions) or a trailer line longer than this is refused.
const MAX_CHUNK_LINE: usize = 256;

/// Parses one whole request (head and body) from the start of `buffer`: the request and
/// how many bytes it took, `None` while more bytes are needed. Never reads past the
/// request's own framing: what follows is the next request (pipelining).
///
/// Framing follows RFC 9112 §6: a `Content-Length` (several only if they agree), or
/// `Transfer-Encoding: chunked`, never both. A framing error is final: the caller must
/// answer and close the connection, never look at the bytes that follow.
pub fn parse_request(buffer: &[u8]) -> Result<Option<(Request, usize)>, ReadError> {
    let Some((mut request, head_len, framing)) = parse_head(buffer)? else {
        if buffer.len() >= MAX_HEAD_BYTES {
            return Err(ReadError::HeadTooLarge);
        }
        return Ok(None);
    };
    let rest = &buffer[head_len..];
    match framing {
        Framing::Length(body_len) => {
            if rest.len() < body_len {
                return Ok(None);
            }
            request.body = rest[..body_len].to_vec();
            Ok(Some((request, head_len + body_len)))
        }
        Framing::Chunked => match decode_chunked(rest)? {
            Some((body, used)) => {
                request.body = body;
                Ok(Some((request, head_len + used)))
            }
            None if rest.len() >= MAX_CHUNKED_BYTES => Err(ReadError::BodyTooLarge(rest.len())),
            None => Ok(None),
        },
    }
}

/// Reads the next request. `pending` carries bytes read past the previous request
/// (pipelining) and is left holding what follows this one.
pub fn read_request<S: Read>(stream: &mut S, pending: &mut Vec<u8>) -> Result<Request, ReadError> {
    let started = Instant::now();
    loop {
        if let Some((request, used)) = parse_request(pending)? {
            pending.drain(..used);
            return Ok(request);
        }
        read_some(stream, pending, MAX_REQUEST_BYTES, started)?;
    }
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

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
}

/// Parses a complete head from `buffer`: the request, the head's length and how its body
/// is framed.
fn parse_head(buffer: &[u8]) -> Result<Option<(Request, usize, Framing)>, ReadError> {
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
    if head_len > MAX_HEAD_BYTES {
        return Err(ReadError::HeadTooLarge);
    }
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
    let framing = framing(&request)?;
    if let Framing::Length(body_len) = framing {
        if body_len > MAX_BODY_BYTES {
            return Err(ReadError::BodyTooLarge(body_len));
        }
    }
    Ok(Some((request, head_len, framing)))
}

/// The body's framing by RFC 9112 §6.3: `Transfer-Encoding` ending in `chunked`, else a
/// `Content-Length`, else none. Both at once, or lengths that disagree, are errors: a
/// message whose end is in doubt could smuggle a second request in its body.
fn framing(request: &Request) -> Result<Framing, ReadError> {
    let named = |name: &'static str| {
        request
            .headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let mut codings = named("transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .peekable();
    if codings.peek().is_some() {
        let codings: Vec<&str> = codings.collect();
        if named("content-length").next().is_some() {
            return Err(ReadError::Malformed(
                "both Transfer-Encoding and Content-Length".into(),
            ));
        }
        if request.minor_version == 0 {
            return Err(ReadError::Malformed(
                "Transfer-Encoding in an HTTP/1.0 request".into(),
            ));
        }
        let last = codings.last().copied().unwrap_or("");
        if !last.eq_ignore_ascii_case("chunked") {
            return Err(ReadError::Malformed(format!(
                "Transfer-Encoding \"{}\" does not end in chunked",
                codings.join(", ")
            )));
        }
        if codings.len() > 1 {
            return Err(ReadError::Unsupported(format!(
                "Transfer-Encoding \"{}\" (only chunked is)",
                codings.join(", ")
            )));
        }
        return Ok(Framing::Chunked);
    }
    let mut length: Option<usize> = None;
    for value in named("content-length").flat_map(|v| v.split(',')) {
        let value = value.trim();
        let parsed = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
            .then(|| value.parse::<usize>().ok())
            .flatten()
            .ok_or_else(|| {
                ReadError::Malformed(format!("Content-Length \"{value}\" is not a number"))
            })?;
        match length {
            Some(previous) if previous != parsed => {
                return Err(ReadError::Malformed(format!(
                    "Content-Lengths {previous} and {parsed} disagree"
                )));
            }
            _ => length = Some(parsed),
        }
    }
    match length {
        Some(length) => Ok(Framing::Length(length)),
        None if request.method == "POST" || request.method == "PUT" => {
            Err(ReadError::LengthRequired)
        }
        None => Ok(Framing::Length(0)),
    }
}

/// Decodes a chunked body from the start of `data` (RFC 9112 §7.1): the body and the bytes
/// it took including the last chunk and trailers, or `None` while incomplete. Chunk
/// extensions and trailer fields are read past and ignored.
fn decode_chunked(data: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ReadError> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(line) = chunk_line(&data[at..])? else {
            return Ok(None);
        };
        let size_text = line
            .text
            .split(';')
            .next()
            .unwrap_or("")
            .trim_end_matches([' ', '\t']);
        if size_text.is_empty()
            || size_text.len() > 8
            || !size_text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(ReadError::Malformed(format!(
                "chunk size \"{}\" is not a hexadecimal number",
                line.text.escape_debug()
            )));
        }
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ReadError::Malformed("chunk size out of range".into()))?;
        at += line.len;
        if size == 0 {
            // Trailer fields up to an empty line.
            loop {
                let Some(trailer) = chunk_line(&data[at..])? else {
                    return Ok(None);
                };
                at += trailer.len;
                if trailer.text.is_empty() {
                    return Ok(Some((body, at)));
                }
            }
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err(ReadError::BodyTooLarge(body.len() + size));
        }
        if data.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&data[at..at + size]);
        at += size;
        if &data[at..at + 2] != b"\r\n" {
            return Err(ReadError::Malformed(
                "chunk data not followed by CRLF".into(),
            ));
        }
        at += 2;
    }
}

/// One CRLF-terminated line of chunked framing.
struct ChunkLine<'a> {
    text: &'a str,
    /// With the CRLF.
    len: usize,
}

fn chunk_line(data: &[u8]) -> Result<Option<ChunkLine<'_>>, ReadError> {
    let window = &data[..data.len().min(MAX_CHUNK_LINE + 2)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        if window.len() >= MAX_CHUNK_LINE + 2 {
            return Err(ReadError::Malformed("chunk line too long".into()));
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&data[..end])
        .map_err(|_| ReadError::Malformed("chunk line is not text".into()))?;
    if text.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(ReadError::Malformed(
            "control character in a chunk line".into(),
        ));
    }
    Ok(Some(ChunkLine { text, len: end + 2 }))
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
            status(b"POST /cam HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
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

    #[test]
    fn a_chunked_body_is_decoded_and_what_follows_is_the_next_request() {
        let bytes = b"POST /cam HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
            4;ext=1\r\nfps=\r\n2\r\n10\r\n0\r\nX-Trailer: y\r\n\r\nGET /next HTTP/1.1\r\n\r\n";
        let mut stream = &bytes[..];
        let mut pending = Vec::new();
        let first = read_request(&mut stream, &mut pending).expect("chunked");
        assert_eq!(first.body, b"fps=10");
        let second = read_request(&mut stream, &mut pending).expect("next");
        assert_eq!(second.path, "/next");
        // Byte by byte, it is incomplete until the very end, then complete.
        for cut in 0..bytes.len() - 22 {
            assert_eq!(
                parse_request(&bytes[..cut]).map(|r| r.is_some()),
                Ok(false),
                "{cut}"
            );
        }
    }

    #[test]
    fn framing_errors_are_400_never_a_second_request() {
        let status = |bytes: &[u8]| read(bytes).err().and_then(|e| e.response()).map(|r| r.0);
        // Two lengths that disagree: the smuggling case.
        let smuggle = b"POST /cam HTTP/1.1\r\nContent-Length: 10\r\nContent-Length: 40\r\n\r\n\
            quality=41GET /stats.json HTTP/1.1\r\n\r\n";
        assert_eq!(status(smuggle), Some(400));
        assert_eq!(
            status(b"POST /cam HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\nabcd"),
            Some(400)
        );
        assert_eq!(
            status(b"POST /cam HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status(b"POST /cam HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status(b"POST /cam HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status(b"POST /cam HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            Some(400)
        );
        assert_eq!(
            status(b"POST /cam HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n"),
            Some(400)
        );
        // Agreeing lengths are one length.
        let same = read(b"POST /cam HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc")
            .expect("agreeing lengths");
        assert_eq!(same.body, b"abc");
    }

    #[test]
    fn chunked_bodies_keep_the_body_limits() {
        let status = |bytes: &[u8]| read(bytes).err().and_then(|e| e.response()).map(|r| r.0);
        let big = format!(
            "POST /cam HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            MAX_BODY_BYTES + 1
        );
        assert_eq!(status(big.as_bytes()), Some(413));
        let tiny_chunks = format!(
            "POST /cam HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{}",
            "0000001;aaaaaaaaaaaa\r\nx\r\n".repeat(2000)
        );
        assert_eq!(status(tiny_chunks.as_bytes()), Some(413));
        let long_line = format!(
            "POST /cam HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;{}\r\n",
            "e".repeat(1000)
        );
        assert_eq!(status(long_line.as_bytes()), Some(400));
    }
}

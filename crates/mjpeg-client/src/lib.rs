//! A small blocking HTTP and MJPEG client: what frcstream's integration tests, benchmarks
//! and load tool (`examples/mjpeg_load.rs`) use to watch a stream the way a dashboard
//! does. A dev-dependency only: it is not part of the shipped library or binary.
//!
//! It parses `multipart/x-mixed-replace` by its boundary and each part's
//! `Content-Length`, and checks that every part is a complete JPEG. [`test_jpeg`] makes the
//! JPEGs tests feed to frcstream.

pub mod test_jpeg;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("bad response: {0}")]
    Protocol(String),
    #[error("HTTP status {status}: {body}")]
    Status { status: u16, body: String },
}

/// A whole HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Sends `GET path` (or any method, with a body) and reads the whole response. The
/// connection is closed afterwards.
pub fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpResponse, ClientError> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader)?;
    let mut body = Vec::new();
    match find_header(&headers, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) if method != "HEAD" => {
            body.resize(len, 0);
            reader.read_exact(&mut body)?;
        }
        Some(_) => {}
        None => {
            reader.read_to_end(&mut body)?;
        }
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// `GET path`.
pub fn get(address: SocketAddr, path: &str) -> Result<HttpResponse, ClientError> {
    request(address, "GET", path, &[], &[])
}

/// Reads a status line and headers.
fn read_head<R: BufRead>(reader: &mut R) -> Result<(u16, Vec<(String, String)>), ClientError> {
    let status_line = read_line(reader)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| ClientError::Protocol(format!("status line \"{status_line}\"")))?;
    let headers = read_headers(reader)?;
    Ok((status, headers))
}

fn read_headers<R: BufRead>(reader: &mut R) -> Result<Vec<(String, String)>, ClientError> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            return Ok(headers);
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| ClientError::Protocol(format!("header line \"{line}\"")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
        if headers.len() > 100 {
            return Err(ClientError::Protocol("more than 100 headers".into()));
        }
    }
}

/// One line without its CRLF; an error at end of stream.
fn read_line<R: BufRead>(reader: &mut R) -> Result<String, ClientError> {
    let mut line = Vec::new();
    let n = reader.take(16 * 1024).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(ClientError::Io(io::Error::from(
            io::ErrorKind::UnexpectedEof,
        )));
    }
    while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| ClientError::Protocol("line is not UTF-8".into()))
}

/// One part of an MJPEG stream.
#[derive(Debug, Clone)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub jpeg: Vec<u8>,
}

impl Part {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The `X-Timestamp` header in microseconds (frcstream sends `CLOCK_MONOTONIC`).
    pub fn timestamp_us(&self) -> Option<u64> {
        let value = self.header("x-timestamp")?;
        let (seconds, fraction) = value.split_once('.').unwrap_or((value, "0"));
        let fraction = format!("{fraction:0<6}");
        Some(seconds.parse::<u64>().ok()? * 1_000_000 + fraction.get(..6)?.parse::<u64>().ok()?)
    }
}

/// A connected MJPEG stream.
pub struct MjpegStream {
    reader: BufReader<TcpStream>,
    boundary: String,
    pub headers: Vec<(String, String)>,
    /// Bytes read so far, headers included.
    pub bytes_read: u64,
}

impl MjpegStream {
    /// Opens `path` on `address` and reads the response head.
    pub fn open(address: SocketAddr, path: &str) -> Result<MjpegStream, ClientError> {
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
        MjpegStream::start(stream, path)
    }

    /// Sends the request on an already connected socket and reads the response head.
    pub fn start(mut stream: TcpStream, path: &str) -> Result<MjpegStream, ClientError> {
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let address = stream.peer_addr()?;
        stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes())?;
        let mut reader = BufReader::with_capacity(256 * 1024, stream);
        let (status, headers) = read_head(&mut reader)?;
        if status != 200 {
            let mut body = String::new();
            let _ = reader.take(4096).read_to_string(&mut body);
            return Err(ClientError::Status { status, body });
        }
        let content_type = find_header(&headers, "content-type").unwrap_or("");
        let boundary = content_type
            .split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))
            .ok_or_else(|| ClientError::Protocol(format!("no boundary in \"{content_type}\"")))?
            .trim_matches('"')
            .to_owned();
        Ok(MjpegStream {
            reader,
            boundary,
            headers,
            bytes_read: 0,
        })
    }

    /// The underlying socket (to set timeouts, or to shut it down).
    pub fn socket(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// Reads the next part; checks it is a whole JPEG (SOI ... EOI).
    pub fn next_part(&mut self) -> Result<Part, ClientError> {
        let delimiter = format!("--{}", self.boundary);
        loop {
            let line = read_line(&mut self.reader)?;
            self.bytes_read += line.len() as u64 + 2;
            if line == delimiter {
                break;
            }
            if !line.is_empty() {
                return Err(ClientError::Protocol(format!(
                    "expected the boundary, got \"{line}\""
                )));
            }
        }
        let headers = read_headers(&mut self.reader)?;
        let length = find_header(&headers, "content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or_else(|| ClientError::Protocol("part without Content-Length".into()))?;
        if length > 64 * 1024 * 1024 {
            return Err(ClientError::Protocol(format!("part of {length} bytes")));
        }
        let mut jpeg = vec![0; length];
        self.reader.read_exact(&mut jpeg)?;
        self.bytes_read += length as u64
            + headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 4)
                .sum::<usize>() as u64;
        if !(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9])) {
            return Err(ClientError::Protocol("part is not a complete JPEG".into()));
        }
        Ok(Part { headers, jpeg })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn part_with_timestamp(value: &str) -> Part {
        Part {
            headers: vec![("X-Timestamp".into(), value.into())],
            jpeg: Vec::new(),
        }
    }

    #[test]
    fn timestamp_is_read_in_microseconds() {
        assert_eq!(
            part_with_timestamp("12.345678").timestamp_us(),
            Some(12_345_678)
        );
        assert_eq!(part_with_timestamp("12.5").timestamp_us(), Some(12_500_000));
        assert_eq!(part_with_timestamp("7").timestamp_us(), Some(7_000_000));
        assert_eq!(
            part_with_timestamp("1.1234567").timestamp_us(),
            Some(1_123_456)
        );
        assert_eq!(part_with_timestamp("x.5").timestamp_us(), None);
    }

    #[test]
    fn head_gives_status_and_headers_case_insensitively() {
        let mut input = Cursor::new(&b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc"[..]);
        let (status, headers) = read_head(&mut input).expect("a well-formed head");
        assert_eq!(status, 404);
        assert_eq!(find_header(&headers, "content-length"), Some("3"));
    }

    #[test]
    fn malformed_heads_are_protocol_errors() {
        for head in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        ] {
            let result = read_head(&mut Cursor::new(head));
            assert!(
                matches!(result, Err(ClientError::Protocol(_))),
                "{result:?}"
            );
        }
        let result = read_head(&mut Cursor::new(&b""[..]));
        assert!(matches!(result, Err(ClientError::Io(_))), "{result:?}");
    }
}

//! The dashboards' own ways of reading a stream, against a real `Streamer` on 127.0.0.1
//! with three cameras: `cam` (640x480 test pattern, the first: `/stream.mjpg`), `side`
//! (424x240) and `gone` (a V4L2 camera whose device does not exist: NO SIGNAL, 320x240).
//!
//! - Shuffleboard reads streams with WPILib's cscore: `HttpCamera` + `CvSink` from the
//!   pinned `robotpy-cscore` (`tests/support/cscore_reader.py`, in the venv of
//!   `scripts/ensure-venv.sh`). Skipped loudly when the venv cannot be made;
//!   `FRCSTREAM_REQUIRE_CSCORE=1` makes that a failure.
//! - Elastic finds frames by scanning the bytes for JPEG start and end markers and ignores
//!   the multipart headers: [`ElasticReader`] does the same, and every frame it finds must
//!   decode (libjpeg-turbo, warnings are errors) to the size asked for.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use frcstream::Streamer;
use serde_json::Value as Json;

/// The three cameras, first to last: name and the size they stream at.
const CAMERAS: [(&str, (usize, usize)); 3] = [
    ("cam", (640, 480)),
    ("side", (424, 240)),
    ("gone", (320, 240)),
];

fn start_three_cameras() -> Streamer {
    support::start(
        "[[camera]]\nname = \"cam\"\nwidth = 640\nheight = 480\nfps = 30\n\
         [[camera]]\nname = \"side\"\nwidth = 424\nheight = 240\nfps = 15\n\
         [[camera]]\nname = \"gone\"\nsource = \"v4l2:/dev/frcstream-test-no-such-camera\"\n\
         width = 320\nheight = 240\nfps = 30\n",
        "max_clients = 40",
    )
}

// ---------------------------------------------------------------------------------------------
// Shuffleboard: cscore's HttpCamera + CvSink

/// What `cscore_reader.py` saw: one JSON object per frame, and its summary line; and how
/// many connections its HttpCamera made.
struct CscoreRead {
    frames: Vec<Json>,
    summary: Json,
    connections: usize,
}

impl CscoreRead {
    /// Every frame's (width, height, channels).
    fn shapes(&self) -> Vec<(u64, u64, u64)> {
        self.frames
            .iter()
            .map(|f| {
                let n = |k: &str| f[k].as_u64().unwrap_or(0);
                (n("width"), n("height"), n("channels"))
            })
            .collect()
    }

    fn fps(&self) -> f64 {
        self.summary["fps"].as_f64().unwrap_or(0.0)
    }

    /// Every warning and error cscore logged while reading (a broken-off stream, a bad
    /// response, a part that is not a JPEG), and the sink's errors.
    fn complaints(&self) -> Vec<String> {
        ["warnings", "errors"]
            .iter()
            .flat_map(|k| match self.summary[k].as_array() {
                Some(list) => list
                    .iter()
                    .map(|w| w.as_str().map_or_else(|| w.to_string(), str::to_owned))
                    .collect(),
                None => vec![format!("no {k} list")],
            })
            .collect()
    }

    /// cscore connected once and kept that connection: no reconnect (it reconnects when a
    /// second passes without a frame, or when a stream breaks off), nothing to complain of.
    fn assert_one_quiet_connection(&self, path: &str) {
        assert_eq!(
            self.connections, 1,
            "{path}: cscore reconnected: {}",
            self.summary
        );
        assert_eq!(self.complaints(), Vec::<String>::new(), "{path}");
    }
}

/// Opens `http://<address><path>` with cscore's `HttpCamera` and grabs `frames` frames,
/// then more until `seconds` have passed since the first. Panics with cscore's error
/// (`CvSink::getError`, its warnings) when no frame comes for 5 s. The camera connects
/// through a proxy that counts its connections.
fn cscore_read(
    python: &Path,
    address: SocketAddr,
    path: &str,
    frames: usize,
    seconds: f64,
) -> CscoreRead {
    let proxy = support::Proxy::start(address.port(), support::ProxyMode::Forward);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/cscore_reader.py");
    let url = format!("http://127.0.0.1:{}{path}", proxy.port);
    let mut child = Command::new(python)
        .arg(&script)
        .arg(&url)
        .arg(frames.to_string())
        .args(["--timeout", "5", "--seconds", &seconds.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cscore_reader.py");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    // Generous: python and cscore start, cscore waits 250 ms before it connects, and the
    // helper gives up by itself after 5 s without a frame.
    let deadline = Instant::now() + Duration::from_secs(30 + seconds as u64);
    while child
        .try_wait()
        .expect("wait for cscore_reader.py")
        .is_none()
    {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().expect("cscore_reader.py exit status");
    let stdout = stdout.join().expect("stdout");
    let stderr = stderr.join().expect("stderr");
    let lines: Vec<Json> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{url}: bad line {l:?}: {e}")))
        .collect();
    let summary = lines.last().cloned().unwrap_or(Json::Null);
    assert!(
        status.success() && summary["done"] == true,
        "cscore's HttpCamera did not read {path} ({status}):\n{summary}\n{stderr}"
    );
    let read = CscoreRead {
        frames: lines[..lines.len() - 1].to_vec(),
        summary,
        connections: proxy.accepted(),
    };
    println!(
        "cscore {path}: {} frames, {:.1} fps, largest gap {} s, {} connection(s), complaints {:?}",
        read.frames.len(),
        read.fps(),
        read.summary["max_gap"],
        read.connections,
        read.complaints(),
    );
    read
}

#[test]
fn shuffleboard_gets_the_size_and_rate_it_asks_for() {
    let Some(python) = support::cscore("shuffleboard_gets_the_size_and_rate_it_asks_for") else {
        return;
    };
    let streamer = start_three_cameras();
    // What Shuffleboard asks for: it rewrites `/?action=stream` to `/stream.mjpg?` and
    // appends its resolution, fps and compression.
    let read = cscore_read(
        &python,
        streamer.local_addr(),
        "/stream.mjpg?resolution=320x240&fps=15&compression=30",
        16,
        2.0,
    );
    assert!(
        read.shapes().iter().all(|&s| s == (320, 240, 3)),
        "every frame is 320x240 BGR: {:?}",
        read.shapes()
    );
    // 15 fps from a 30 fps camera: clearly thinned, clearly not starved (loose bounds: a
    // shared machine).
    assert!(
        (6.0..=24.0).contains(&read.fps()),
        "about 15 fps: {}",
        read.summary
    );
    read.assert_one_quiet_connection("/stream.mjpg");
    streamer.stop();
}

#[test]
fn shuffleboard_reads_each_camera_by_name_and_the_first_at_cscores_url() {
    let Some(python) =
        support::cscore("shuffleboard_reads_each_camera_by_name_and_the_first_at_cscores_url")
    else {
        return;
    };
    let streamer = start_three_cameras();
    let address = streamer.local_addr();
    for (path, (width, height)) in [
        ("/side/stream.mjpg", (424, 240)),
        ("/cam/stream.mjpg", (640, 480)),
        ("/?action=stream", (640, 480)),
        (
            "/side/stream.mjpg?resolution=160x120&compression=30",
            (160, 120),
        ),
    ] {
        let read = cscore_read(&python, address, path, 5, 0.0);
        let want = (width, height, 3);
        assert!(
            read.shapes().iter().all(|&s| s == want),
            "{path}: every frame is {want:?}: {:?}",
            read.shapes()
        );
        read.assert_one_quiet_connection(path);
    }
    streamer.stop();
}

#[test]
fn shuffleboard_keeps_showing_a_lost_cameras_no_signal_card() {
    let Some(python) = support::cscore("shuffleboard_keeps_showing_a_lost_cameras_no_signal_card")
    else {
        return;
    };
    let streamer = start_three_cameras();
    let address = streamer.local_addr();
    // cscore reconnects after a second without a frame; NO SIGNAL comes twice a second,
    // so the connection holds.
    let read = cscore_read(&python, address, "/gone/stream.mjpg", 3, 3.0);
    assert!(
        read.shapes().iter().all(|&s| s == (320, 240, 3)),
        "NO SIGNAL at the camera's size: {:?}",
        read.shapes()
    );
    read.assert_one_quiet_connection("/gone/stream.mjpg");
    // And at the size Shuffleboard asks for.
    let path = "/gone/stream.mjpg?resolution=160x120&fps=15&compression=30";
    let read = cscore_read(&python, address, path, 3, 0.0);
    assert!(
        read.shapes().iter().all(|&s| s == (160, 120, 3)),
        "{path}: {:?}",
        read.shapes()
    );
    read.assert_one_quiet_connection(path);
    streamer.stop();
}

#[test]
fn shuffleboard_keeps_a_one_fps_stream() {
    let Some(python) = support::cscore("shuffleboard_keeps_a_one_fps_stream") else {
        return;
    };
    let streamer = start_three_cameras();
    let read = cscore_read(
        &python,
        streamer.local_addr(),
        "/stream.mjpg?resolution=320x240&fps=1&compression=30",
        2,
        8.0,
    );
    assert!(
        read.shapes().iter().all(|&s| s == (320, 240, 3)),
        "{:?}",
        read.shapes()
    );
    // A frame a second: cscore must still never see a second without one.
    read.assert_one_quiet_connection("/stream.mjpg?fps=1");
    streamer.stop();
}

// ---------------------------------------------------------------------------------------------
// Elastic: JPEG markers in the raw bytes

/// Finds frames the way Elastic's `MjpegController` does (`lib/widgets/mjpeg.dart`): a frame
/// starts at every `FF D8` (a frame in progress is dropped), ends at the first `FF D9`
/// after it, and every byte outside a frame — part headers, boundaries — is ignored;
/// `Content-Length` is never read.
///
/// Elastic runs these rules over each chunk the socket hands it, which has two slips of
/// its own, whatever the server sends: a frame whose `FF D8` is split between two chunks
/// is missed, and a byte is dropped (the frame then does not decode) when a chunk ends
/// right after `FF D8` or is one byte long. Here the previous byte is carried across
/// reads instead, so a test never fails on where the kernel happened to cut a read.
#[derive(Default)]
struct MarkerScanner {
    frame: Vec<u8>,
    in_frame: bool,
    previous: Option<u8>,
}

impl MarkerScanner {
    /// Scans `bytes`; appends every frame completed in them to `frames`.
    fn feed(&mut self, bytes: &[u8], frames: &mut Vec<Vec<u8>>) {
        for &byte in bytes {
            let after_ff = self.previous == Some(0xFF);
            self.previous = Some(byte);
            if after_ff && byte == 0xD8 {
                self.frame.clear();
                self.frame.extend_from_slice(&[0xFF, 0xD8]);
                self.in_frame = true;
                continue;
            }
            if !self.in_frame {
                continue;
            }
            self.frame.push(byte);
            if after_ff && byte == 0xD9 {
                frames.push(std::mem::take(&mut self.frame));
                self.in_frame = false;
            }
        }
    }
}

/// A stream read as Elastic reads it: Dart's `http` client sends the request, the head is
/// checked for a 2xx status, and the body goes through a [`MarkerScanner`].
struct ElasticReader {
    socket: TcpStream,
    scanner: MarkerScanner,
    frames: Vec<Vec<u8>>,
    buffer: Vec<u8>,
}

impl ElasticReader {
    fn open(address: SocketAddr, path: &str) -> ElasticReader {
        let mut socket = TcpStream::connect_timeout(&address, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{path}: connect: {e}"));
        // Elastic's own timeout for the response head, and then for each read.
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        // What dart:io sends for `http.Request('GET', url)`.
        let request = format!(
            "GET {path} HTTP/1.1\r\nuser-agent: Dart/3.7 (dart:io)\r\n\
             accept-encoding: gzip\r\ncontent-length: 0\r\nhost: {address}\r\n\r\n"
        );
        socket
            .write_all(request.as_bytes())
            .unwrap_or_else(|e| panic!("{path}: send: {e}"));
        let mut head = Vec::new();
        let mut buffer = vec![0; 64 * 1024];
        let body_start = loop {
            let n = socket
                .read(&mut buffer)
                .unwrap_or_else(|e| panic!("{path}: response head: {e}"));
            assert!(n > 0, "{path}: closed before the response head");
            head.extend_from_slice(&buffer[..n]);
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            assert!(head.len() < 16 * 1024, "{path}: endless response head");
        };
        let status_line = String::from_utf8_lossy(&head[..head.len().min(64)]).into_owned();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(
            (200..300).contains(&status),
            "{path}: {}",
            String::from_utf8_lossy(&head)
        );
        let mut reader = ElasticReader {
            socket,
            scanner: MarkerScanner::default(),
            frames: Vec::new(),
            buffer,
        };
        let rest = head[body_start..].to_vec();
        reader.scanner.feed(&rest, &mut reader.frames);
        reader
    }

    /// The next frame found in the stream.
    fn next_frame(&mut self, path: &str) -> Vec<u8> {
        while self.frames.is_empty() {
            let n = self
                .socket
                .read(&mut self.buffer)
                .unwrap_or_else(|e| panic!("{path}: no frame: {e}"));
            assert!(n > 0, "{path}: the stream ended");
            self.scanner.feed(&self.buffer[..n], &mut self.frames);
        }
        self.frames.remove(0)
    }
}

/// Width and height of a JPEG Elastic found, decoded by libjpeg-turbo for real; a truncated
/// or corrupt frame is an error (libjpeg-turbo's warnings included).
fn decode(jpeg: &[u8], path: &str) -> (usize, usize) {
    let image = turbojpeg::decompress(jpeg, turbojpeg::PixelFormat::GRAY).unwrap_or_else(|e| {
        panic!(
            "{path}: a frame Elastic found ({} bytes) does not decode: {e}",
            jpeg.len()
        )
    });
    (image.width, image.height)
}

#[test]
fn elastic_gets_whole_frames_of_the_asked_size_from_every_stream_url() {
    let streamer = start_three_cameras();
    let address = streamer.local_addr();
    // Every stream URL of the README: each camera's three, and cscore's two for the first.
    let mut urls: Vec<(String, (usize, usize))> = Vec::new();
    for (name, size) in CAMERAS {
        for form in [
            format!("/{name}.mjpg"),
            format!("/{name}/stream.mjpg"),
            format!("/{name}/?action=stream"),
        ] {
            urls.push((form, size));
        }
    }
    for form in ["/stream.mjpg", "/?action=stream"] {
        urls.push((form.to_owned(), CAMERAS[0].1));
    }
    // Elastic's parameters, in its order, alone and together (its width is always even).
    let parameters: [(&str, Option<(usize, usize)>); 5] = [
        ("", None),
        ("resolution=160x120", Some((160, 120))),
        ("fps=10", None),
        ("compression=30", None),
        ("resolution=160x120&fps=10&compression=30", Some((160, 120))),
    ];
    let readers: Vec<_> = urls
        .into_iter()
        .map(|(url, size)| {
            thread::spawn(move || {
                for (query, asked) in parameters {
                    let path = match (query.is_empty(), url.contains('?')) {
                        (true, _) => url.clone(),
                        (false, true) => format!("{url}&{query}"),
                        (false, false) => format!("{url}?{query}"),
                    };
                    let mut reader = ElasticReader::open(address, &path);
                    for _ in 0..3 {
                        let jpeg = reader.next_frame(&path);
                        assert_eq!(decode(&jpeg, &path), asked.unwrap_or(size), "{path}");
                    }
                }
            })
        })
        .collect();
    for reader in readers {
        if let Err(panic) = reader.join() {
            std::panic::resume_unwind(panic);
        }
    }
    streamer.stop();
}

#[test]
fn the_elastic_scanner_finds_frames_across_reads_and_ignores_everything_else() {
    let jpeg = |fill: u8| [&[0xFF, 0xD8, 0xFF, 0xE0][..], &[fill; 5], &[0xFF, 0xD9]].concat();
    let (first, second) = (jpeg(1), jpeg(2));
    let mut stream = Vec::new();
    stream.extend_from_slice(b"\r\n--boundarydonotcross\r\nContent-Type: image/jpeg\r\n\r\n");
    stream.extend_from_slice(&first);
    // A frame cut short is dropped by the next start marker.
    stream.extend_from_slice(b"\r\n--x\r\n\r\n\xFF\xD8\xFF\xE0\x00");
    stream.extend_from_slice(b"\r\n--x\r\nContent-Length: 999\r\n\r\n");
    stream.extend_from_slice(&second);
    stream.extend_from_slice(b"\xFF\xD9 an end marker outside a frame");
    for cut in 1..stream.len() {
        let mut scanner = MarkerScanner::default();
        let mut frames = Vec::new();
        for chunk in stream.chunks(cut) {
            scanner.feed(chunk, &mut frames);
        }
        assert_eq!(
            frames,
            vec![first.clone(), second.clone()],
            "reads of {cut} bytes"
        );
    }
}

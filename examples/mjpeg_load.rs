//! The load tool: N concurrent MJPEG clients against any stream URL, for benchmarks.
//!
//! Every client parses the multipart stream, checks each part is a complete JPEG, and
//! counts frames and bytes. Latency, from a time stamp to the arrival of the part's last
//! byte, comes from one of:
//!
//! - `--latency header` (default): the part's `X-Timestamp` read as `CLOCK_MONOTONIC`, as
//!   frcstream sends it (the capture time), for a server on this host;
//! - `--latency barcode`: a time stamp drawn into the picture by the program that fed the
//!   frame (`bench/frames.py` draws it, `examples/bench_pushed.rs` too): 40 blocks of
//!   16x16 pixels across the top left, the low 32 bits of `CLOCK_MONOTONIC` in
//!   microseconds and an 8-bit check, black for 0 and white for 1. It reads the same for
//!   any server, whatever clock its own headers use (cscore's `X-Timestamp` is
//!   `wpi::Now()`, the wall clock at start plus the monotonic time since);
//! - `--latency none`.
//!
//! With `--pid`, the server's CPU time, RSS and thread count are sampled from
//! `/proc/<pid>` over the measured window; `--feeder-thread NAME` takes the CPU time of
//! the thread of that name (a benchmark's frame feeder, living in the server's process)
//! out of the server's and reports it on its own. `--marks` prints `window start` and
//! `window end` on stderr, for a driver sampling a server elsewhere (in a VM).
//! `--trace FILE` writes one line per frame of the window (seconds since the window's
//! start, latency in ms or -1, JPEG bytes), for following a stream through a change of
//! the link (`bench/fieldlink.sh`). Prints one JSON line.
//!
//!     cargo run --release --example mjpeg_load -- \
//!         --url http://127.0.0.1:1181/cam.mjpg --clients 4 --seconds 10 --pid 1234

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use frcstream::frame::monotonic_us;
use mjpeg_client::{MjpegStream, Part};
use turbojpeg::{Decompressor, Image, PixelFormat, ScalingFactor};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Latency {
    Header,
    Barcode,
    None,
}

struct Options {
    address: SocketAddr,
    path: String,
    clients: usize,
    seconds: f64,
    warmup: f64,
    pid: Option<u32>,
    latency: Latency,
    feeder_thread: Option<String>,
    marks: bool,
    trace: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: mjpeg_load --url http://host:port/path [--clients N] [--seconds S] \
         [--warmup S] [--pid PID] [--feeder-thread NAME] [--latency header|barcode|none] \
         [--marks] [--trace FILE]"
    );
    std::process::exit(2)
}

fn parse_options() -> Options {
    let mut url = None;
    let mut options = Options {
        address: SocketAddr::from(([127, 0, 0, 1], 1181)),
        path: "/".into(),
        clients: 1,
        seconds: 10.0,
        warmup: 1.0,
        pid: None,
        latency: Latency::Header,
        feeder_thread: None,
        marks: false,
        trace: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--url" => url = Some(value()),
            "--clients" => options.clients = value().parse().unwrap_or_else(|_| usage()),
            "--seconds" => options.seconds = value().parse().unwrap_or_else(|_| usage()),
            "--warmup" => options.warmup = value().parse().unwrap_or_else(|_| usage()),
            "--pid" => options.pid = Some(value().parse().unwrap_or_else(|_| usage())),
            "--latency" => {
                options.latency = match value().as_str() {
                    "header" => Latency::Header,
                    "barcode" => Latency::Barcode,
                    "none" => Latency::None,
                    _ => usage(),
                }
            }
            "--no-latency" => options.latency = Latency::None,
            "--feeder-thread" => options.feeder_thread = Some(value()),
            "--marks" => options.marks = true,
            "--trace" => options.trace = Some(value()),
            _ => usage(),
        }
    }
    let url = url.unwrap_or_else(|| usage());
    let rest = url.strip_prefix("http://").unwrap_or_else(|| usage());
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    options.path = format!("/{path}");
    options.address = host
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| usage());
    options
}

/// What one client saw in the measured window.
#[derive(Default)]
struct ClientResult {
    frames: u64,
    bytes: u64,
    invalid: u64,
    /// Parts whose picture carried no readable time stamp (`--latency barcode`).
    unstamped: u64,
    latencies_us: Vec<u64>,
    /// (seconds since the window's start, latency in µs if known, JPEG bytes) per frame.
    trace: Vec<(f64, Option<u64>, usize)>,
    error: Option<String>,
}

/// Reads the time stamp a feeder drew into the picture (see the module comment). Decoding
/// at 1/8 scale turns each 8x8 block into one pixel: the stamp's 16x16 blocks are two.
struct BarcodeReader {
    decompressor: Decompressor,
    pixels: Vec<u8>,
}

/// Bits in the stamp: 32 of time, 8 of check.
const STAMP_BITS: usize = 40;

/// The check byte of a stamp: its four bytes XORed, and 0x5A so that all-black fails.
fn stamp_check(stamp: u32) -> u8 {
    let b = stamp.to_le_bytes();
    b[0] ^ b[1] ^ b[2] ^ b[3] ^ 0x5A
}

impl BarcodeReader {
    fn new() -> BarcodeReader {
        let mut decompressor = Decompressor::new().expect("a libjpeg-turbo decompressor");
        decompressor
            .set_scaling_factor(ScalingFactor::ONE_EIGHTH)
            .expect("1/8 scaling");
        BarcodeReader {
            decompressor,
            pixels: Vec::new(),
        }
    }

    fn read(&mut self, jpeg: &[u8]) -> Option<u32> {
        let header = self.decompressor.read_header(jpeg).ok()?;
        let (width, height) = (header.width.div_ceil(8), header.height.div_ceil(8));
        if width < 2 * STAMP_BITS || height < 2 {
            return None;
        }
        self.pixels.resize(width * height, 0);
        let image = Image {
            pixels: self.pixels.as_mut_slice(),
            width,
            pitch: width,
            height,
            format: PixelFormat::GRAY,
        };
        self.decompressor.decompress(jpeg, image).ok()?;
        let mut value = 0u64;
        for bit in 0..STAMP_BITS {
            let level = u16::from(self.pixels[2 * bit]) + u16::from(self.pixels[2 * bit + 1]);
            if level >= 256 {
                value |= 1 << bit;
            }
        }
        let stamp = value as u32;
        (stamp_check(stamp) == (value >> 32) as u8).then_some(stamp)
    }
}

/// Microseconds from the part's time stamp to now, if it has one.
fn latency_us(part: &Part, latency: Latency, barcode: &mut BarcodeReader) -> Option<u64> {
    match latency {
        Latency::Header => Some(monotonic_us().saturating_sub(part.timestamp_us()?)),
        Latency::Barcode => {
            // Now first: decoding the stamp takes time that is not the server's.
            let now = monotonic_us() as u32;
            let age = now.wrapping_sub(barcode.read(&part.jpeg)?);
            // An age over half the 32-bit range is a stamp from the future: not ours.
            (age < 1 << 31).then_some(u64::from(age))
        }
        Latency::None => None,
    }
}

fn run_client(
    options: &Options,
    barrier: &Barrier,
    window_start: Instant,
    window_end: Instant,
) -> ClientResult {
    let mut result = ClientResult::default();
    let mut barcode = BarcodeReader::new();
    let stream = MjpegStream::open(options.address, &options.path);
    barrier.wait();
    let mut stream = match stream {
        Ok(stream) => stream,
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    };
    loop {
        let part = stream.next_part();
        let now = Instant::now();
        if now >= window_end {
            break;
        }
        match part {
            Ok(part) => {
                if now < window_start {
                    continue;
                }
                result.frames += 1;
                result.bytes += part.jpeg.len() as u64;
                let latency = latency_us(&part, options.latency, &mut barcode);
                match latency {
                    Some(us) => result.latencies_us.push(us),
                    None if options.latency == Latency::Barcode => result.unstamped += 1,
                    None => {}
                }
                if options.trace.is_some() {
                    let at = now.duration_since(window_start).as_secs_f64();
                    result.trace.push((at, latency, part.jpeg.len()));
                }
            }
            Err(mjpeg_client::ClientError::Protocol(_)) => result.invalid += 1,
            Err(e) => {
                result.error = Some(e.to_string());
                break;
            }
        }
    }
    result
}

/// CPU time of a process, in milliseconds: all its threads, the ended ones too. Read
/// from its CPU-time clock (nanoseconds), else from `/proc/<pid>/stat` (clock ticks).
fn cpu_ms(pid: u32) -> Option<f64> {
    let mut clock: libc::clockid_t = 0;
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: both calls only write into the variables we own and pass.
    let ok = unsafe {
        libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) == 0
            && libc::clock_gettime(clock, &mut now) == 0
    };
    if ok {
        return Some(now.tv_sec as f64 * 1e3 + now.tv_nsec as f64 / 1e6);
    }
    stat_cpu_ms(&format!("/proc/{pid}/stat"))
}

/// CPU time of one thread, in milliseconds: `schedstat` (nanoseconds), else `stat`.
fn thread_cpu_ms(pid: u32, tid: u32) -> Option<f64> {
    let schedstat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat"));
    if let Some(ns) = schedstat
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
    {
        return Some(ns / 1e6);
    }
    stat_cpu_ms(&format!("/proc/{pid}/task/{tid}/stat"))
}

/// The thread of `pid` called `name`.
fn find_thread(pid: u32, name: &str) -> Option<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
}

fn stat_cpu_ms(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks * 1000.0 / per_second)
}

fn status_field(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0
}

fn main() {
    let options = Arc::new(parse_options());
    let barrier = Arc::new(Barrier::new(options.clients + 1));
    let start = Instant::now() + Duration::from_millis(200);
    let window_start = start + Duration::from_secs_f64(options.warmup);
    let window_end = window_start + Duration::from_secs_f64(options.seconds);
    let threads: Vec<_> = (0..options.clients)
        .map(|_| {
            let options = Arc::clone(&options);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || run_client(&options, &barrier, window_start, window_end))
        })
        .collect();
    barrier.wait();
    let feeder = match (options.pid, &options.feeder_thread) {
        (Some(pid), Some(name)) => match find_thread(pid, name) {
            Some(tid) => Some((pid, tid)),
            None => {
                eprintln!("mjpeg_load: process {pid} has no thread called {name}");
                std::process::exit(1)
            }
        },
        _ => None,
    };
    std::thread::sleep(window_start.saturating_duration_since(Instant::now()));
    if options.marks {
        eprintln!("window start");
    }
    let cpu_before = options.pid.and_then(cpu_ms);
    let feeder_before = feeder.and_then(|(pid, tid)| thread_cpu_ms(pid, tid));
    let mut rss_max = 0;
    let mut threads_max = 0;
    while Instant::now() < window_end {
        if let Some(pid) = options.pid {
            rss_max = rss_max.max(status_field(pid, "VmRSS:").unwrap_or(0));
            threads_max = threads_max.max(status_field(pid, "Threads:").unwrap_or(0));
        }
        std::thread::sleep(
            Duration::from_millis(250).min(window_end.saturating_duration_since(Instant::now())),
        );
    }
    let cpu_after = options.pid.and_then(cpu_ms);
    let feeder_after = feeder.and_then(|(pid, tid)| thread_cpu_ms(pid, tid));
    if options.marks {
        eprintln!("window end");
    }
    let results: Vec<ClientResult> = threads.into_iter().filter_map(|t| t.join().ok()).collect();
    if let Some(path) = &options.trace {
        let mut text = String::new();
        for (at, latency, bytes) in results.iter().flat_map(|r| r.trace.iter()) {
            let ms = latency.map_or(-1.0, |us| us as f64 / 1000.0);
            text.push_str(&format!("{at:.4} {ms:.2} {bytes}\n"));
        }
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("mjpeg_load: cannot write {path}: {e}");
        }
    }
    let frames: u64 = results.iter().map(|r| r.frames).sum();
    let bytes: u64 = results.iter().map(|r| r.bytes).sum();
    let invalid: u64 = results.iter().map(|r| r.invalid).sum();
    let unstamped: u64 = results.iter().map(|r| r.unstamped).sum();
    let errors: Vec<String> = results.iter().filter_map(|r| r.error.clone()).collect();
    let mut latencies: Vec<u64> = results
        .iter()
        .flat_map(|r| r.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let process_cpu_ms = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    let feeder_cpu_ms = match (feeder_before, feeder_after) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    // The server's own work: the process less the feeder thread living in it.
    let server_cpu_ms = process_cpu_ms.map(|ms| ms - feeder_cpu_ms.unwrap_or(0.0));
    let per_frame = |ms: Option<f64>| ms.map(|ms| ms / frames.max(1) as f64);
    let report = serde_json::json!({
        "url": format!("http://{}{}", options.address, options.path),
        "clients": options.clients,
        "seconds": options.seconds,
        "frames": frames,
        "fps_per_client": frames as f64 / options.seconds / options.clients as f64,
        "mbit_per_second": bytes as f64 * 8.0 / options.seconds / 1e6,
        "invalid_parts": invalid,
        "unstamped_parts": unstamped,
        "errors": errors,
        "latency_ms": if latencies.is_empty() { serde_json::Value::Null } else { serde_json::json!({
            "from": match options.latency {
                Latency::Header => "X-Timestamp",
                Latency::Barcode => "stamp in the picture",
                Latency::None => "",
            },
            "count": latencies.len(),
            "p50": percentile(&latencies, 0.5),
            "p95": percentile(&latencies, 0.95),
            "p99": percentile(&latencies, 0.99),
        })},
        "server_cpu_ms": server_cpu_ms,
        "server_cpu_percent": server_cpu_ms.map(|ms| ms / 10.0 / options.seconds),
        "server_cpu_ms_per_delivered_frame": per_frame(server_cpu_ms),
        "feeder_cpu_ms": feeder_cpu_ms,
        "feeder_cpu_ms_per_delivered_frame": per_frame(feeder_cpu_ms),
        "process_cpu_ms_per_delivered_frame": per_frame(process_cpu_ms),
        "server_rss_kib": options.pid.map(|_| rss_max),
        "server_threads": options.pid.map(|_| threads_max),
    });
    println!("{report}");
}

//! The load tool: N concurrent MJPEG clients against any stream URL, for benchmarks.
//!
//! Every client parses the multipart stream, checks each part is a complete JPEG, and
//! counts frames and bytes. Where the server stamps parts with `CLOCK_MONOTONIC`
//! (frcstream's `X-Timestamp`) and runs on this host, the capture-to-arrival latency is
//! measured. With `--pid`, the server's CPU time, RSS and thread count are sampled from
//! `/proc/<pid>` over the measured window. Prints one JSON line.
//!
//!     cargo run --release --example mjpeg_load -- \
//!         --url http://127.0.0.1:1181/cam.mjpg --clients 4 --seconds 10 --pid 1234

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use frcstream::client::MjpegStream;
use frcstream::frame::monotonic_us;

struct Options {
    address: SocketAddr,
    path: String,
    clients: usize,
    seconds: f64,
    warmup: f64,
    pid: Option<u32>,
    latency: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: mjpeg_load --url http://host:port/path [--clients N] [--seconds S] \
         [--warmup S] [--pid PID] [--no-latency]"
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
        latency: true,
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
            "--no-latency" => options.latency = false,
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
    latencies_us: Vec<u64>,
    error: Option<String>,
}

fn run_client(
    options: &Options,
    barrier: &Barrier,
    window_start: Instant,
    window_end: Instant,
) -> ClientResult {
    let mut result = ClientResult::default();
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
                if options.latency {
                    if let Some(stamp) = part.timestamp_us() {
                        result
                            .latencies_us
                            .push(monotonic_us().saturating_sub(stamp));
                    }
                }
            }
            Err(frcstream::client::ClientError::Protocol(_)) => result.invalid += 1,
            Err(e) => {
                result.error = Some(e.to_string());
                break;
            }
        }
    }
    result
}

/// utime + stime of a process, in milliseconds.
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
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
    std::thread::sleep(window_start.saturating_duration_since(Instant::now()));
    let cpu_before = options.pid.and_then(cpu_ms);
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
    let results: Vec<ClientResult> = threads.into_iter().filter_map(|t| t.join().ok()).collect();
    let frames: u64 = results.iter().map(|r| r.frames).sum();
    let bytes: u64 = results.iter().map(|r| r.bytes).sum();
    let invalid: u64 = results.iter().map(|r| r.invalid).sum();
    let errors: Vec<String> = results.iter().filter_map(|r| r.error.clone()).collect();
    let mut latencies: Vec<u64> = results
        .iter()
        .flat_map(|r| r.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let server_cpu_ms = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    let report = serde_json::json!({
        "url": format!("http://{}{}", options.address, options.path),
        "clients": options.clients,
        "seconds": options.seconds,
        "frames": frames,
        "fps_per_client": frames as f64 / options.seconds / options.clients as f64,
        "mbit_per_second": bytes as f64 * 8.0 / options.seconds / 1e6,
        "invalid_parts": invalid,
        "errors": errors,
        "latency_ms": if latencies.is_empty() { serde_json::Value::Null } else { serde_json::json!({
            "p50": percentile(&latencies, 0.5),
            "p95": percentile(&latencies, 0.95),
            "p99": percentile(&latencies, 0.99),
        })},
        "server_cpu_ms": server_cpu_ms,
        "server_cpu_percent": server_cpu_ms.map(|ms| ms / 10.0 / options.seconds),
        "server_cpu_ms_per_delivered_frame": server_cpu_ms.map(|ms| ms / frames.max(1) as f64),
        "server_rss_kib": options.pid.map(|_| rss_max),
        "server_threads": options.pid.map(|_| threads_max),
    });
    println!("{report}");
}

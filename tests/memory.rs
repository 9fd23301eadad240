//! Memory given back after churn (issue 15, finding 8 of the report): 1,000 connect /
//! read-a-frame / disconnect cycles, a third of them reset, must leave the server's RSS
//! within 2 MiB of where it started. The server runs as its own process so its RSS is its
//! own.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mjpeg_client::{self as client, MjpegStream};

const BINARY: &str = env!("CARGO_BIN_EXE_frcstream");

struct Server {
    child: Child,
    address: SocketAddr,
    config: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

fn start(cameras: &str) -> Server {
    let config = std::env::temp_dir().join(format!("frcstream-memory-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        format!("[server]\nbind = \"127.0.0.1\"\nport = 0\nmax_clients = 40\n{cameras}"),
    )
    .expect("config");
    // FRCSTREAM_BINARY measures another build (docs/RELIABILITY.md: before and after).
    let binary = std::env::var("FRCSTREAM_BINARY").unwrap_or_else(|_| BINARY.to_owned());
    let mut child = Command::new(binary)
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let address = loop {
        let line = lines.next().expect("log").expect("line");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().parse().expect("address");
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        address,
        config,
    }
}

/// Resident set of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Connects, reads one frame and disconnects, `count` times, from 16 threads at once; every
/// third connection is reset (SO_LINGER 0) instead of closed.
fn churn(address: SocketAddr, count: usize, path: &'static str) {
    let threads: Vec<_> = (0..16)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..count / 16 {
                    let mut stream = open_retrying(address, path);
                    stream.next_part().expect("frame");
                    if (i + t) % 3 == 0 {
                        reset(stream.socket());
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("churn");
    }
}

/// Opens a stream, retrying a 503 (a build that frees places late; docs/RELIABILITY.md).
fn open_retrying(address: SocketAddr, path: &str) -> MjpegStream {
    for _ in 0..200 {
        match MjpegStream::open(address, path) {
            Ok(stream) => return stream,
            Err(client::ClientError::Status { status: 503, .. }) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("{path}: {e}"),
        }
    }
    panic!("{path}: 503 for 2 s");
}

fn reset(socket: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt with a linger structure of the stated size on an open socket.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn settle(address: SocketAddr) {
    // Clients gone, variants ended.
    std::thread::sleep(Duration::from_millis(1500));
    let _ = client::get(address, "/stats.json");
}

#[test]
fn rss_after_1000_churn_cycles_stays_within_2_mib_of_the_baseline() {
    let server = start("[[camera]]\nname = \"cam\"\nwidth = 640\nheight = 480\nfps = 30\n");
    let pid = server.child.id();
    // Baseline: after a first client and a first variant, so that one-time costs (thread
    // stacks of the sender, the encoder's buffers) are in it.
    churn(server.address, 16, "/cam.mjpg");
    churn(server.address, 16, "/cam.mjpg?resolution=320x240");
    settle(server.address);
    let baseline = rss_kib(pid);
    let mut after = Vec::new();
    for round in 0..4 {
        churn(server.address, 1008, "/cam.mjpg");
        settle(server.address);
        after.push(rss_kib(pid));
        println!(
            "round {round}: RSS {} KiB (baseline {baseline} KiB)",
            after[round]
        );
    }
    // Full-size variants too (upscaling requests are clamped to the camera's size).
    for _ in 0..3 {
        churn(
            server.address,
            48,
            "/cam.mjpg?resolution=4096x4096&compression=20",
        );
    }
    settle(server.address);
    let after_variants = rss_kib(pid);
    println!("after 144 variant clients: RSS {after_variants} KiB");
    let worst = after
        .iter()
        .copied()
        .chain([after_variants])
        .max()
        .unwrap_or(0);
    assert!(
        worst <= baseline + 2048,
        "RSS {worst} KiB after churn, baseline {baseline} KiB"
    );
}

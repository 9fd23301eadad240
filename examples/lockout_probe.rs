//! The lockout probe of issue 15: holds N connections that send nothing (`idle`) or a
//! request head a byte a second (`trickle`), each re-opened as soon as the server drops
//! it, and meanwhile opens new streams (first frame) and snapshots, one after the other.
//! Prints how many were served and the slowest, for docs/RELIABILITY.md.
//!
//!     cargo run --example lockout_probe -- 127.0.0.1:1181 500 idle 20
//!
//! Traffic goes only to the address given; run it against a server on 127.0.0.1.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mjpeg_client::{self as client, MjpegStream};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: lockout_probe <address> <connections> <idle|trickle> <probes>";
    let (Some(address), Some(count), Some(mode), Some(probes)) = (
        args.first().and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(1).and_then(|a| a.parse::<usize>().ok()),
        args.get(2).filter(|m| *m == "idle" || *m == "trickle"),
        args.get(3).and_then(|a| a.parse::<usize>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let trickle = mode == "trickle";
    let stop = Arc::new(AtomicBool::new(false));
    let reopened = Arc::new(AtomicU64::new(0));
    let attackers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, reopened) = (Arc::clone(&stop), Arc::clone(&reopened));
            std::thread::spawn(move || hold(address, count / 4, trickle, &stop, &reopened))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let (mut streams, mut snapshots) = (Vec::new(), Vec::new());
    for _ in 0..probes {
        let started = Instant::now();
        let served = MjpegStream::open(address, "/cam.mjpg")
            .ok()
            .and_then(|mut s| s.next_part().ok())
            .is_some();
        streams.push((served, started.elapsed()));
        let started = Instant::now();
        let served = client::get(address, "/cam.jpg").is_ok_and(|r| r.status == 200);
        snapshots.push((served, started.elapsed()));
    }
    stop.store(true, Ordering::SeqCst);
    for attacker in attackers {
        let _ = attacker.join();
    }
    let report = |what: &str, results: &[(bool, Duration)]| {
        let served: Vec<Duration> = results.iter().filter(|r| r.0).map(|r| r.1).collect();
        let slowest = served.iter().max().copied().unwrap_or_default();
        let within_1s = served
            .iter()
            .filter(|d| **d < Duration::from_secs(1))
            .count();
        println!(
            "{what}: {} of {} served ({within_1s} within 1 s), slowest served {slowest:.1?}",
            served.len(),
            results.len()
        );
    };
    println!(
        "{count} {mode} connections, {} re-opened after the server dropped them",
        reopened.load(Ordering::SeqCst)
    );
    report("streams (first frame)", &streams);
    report("snapshots", &snapshots);
}

fn hold(address: SocketAddr, count: usize, trickle: bool, stop: &AtomicBool, reopened: &AtomicU64) {
    let head = b"GET /cam.mjpg HTTP/1.1\r\nX-Slow: ";
    let mut slots: Vec<Option<(TcpStream, usize, Instant)>> = (0..count).map(|_| None).collect();
    let give_up = Instant::now() + Duration::from_secs(600);
    while !stop.load(Ordering::SeqCst) && Instant::now() < give_up {
        for slot in &mut slots {
            let alive = match slot {
                None => false,
                Some((socket, sent, last)) => {
                    let mut buffer = [0u8; 512];
                    let alive = match socket.read(&mut buffer) {
                        Ok(0) => false,
                        Ok(_) => true,
                        Err(e) => e.kind() == ErrorKind::WouldBlock,
                    };
                    if alive && trickle && last.elapsed() >= Duration::from_secs(1) {
                        let _ = socket.write(&[head.get(*sent).copied().unwrap_or(b'a')]);
                        *sent += 1;
                        *last = Instant::now();
                    }
                    alive
                }
            };
            if !alive {
                if slot.is_some() {
                    reopened.fetch_add(1, Ordering::Relaxed);
                }
                *slot = TcpStream::connect_timeout(&address, Duration::from_secs(1))
                    .ok()
                    .filter(|s| s.set_nonblocking(true).is_ok())
                    .map(|s| (s, 0, Instant::now()));
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

//! frcstream serving frames a program pushes: the frcstream side of the cscore comparison
//! (`bench/cscore.sh`). A thread named `feeder` draws the same BGR frames as cscore's
//! feeder (`bench/frames.py`: a scrolling texture, a bouncing block, a time stamp in the
//! picture) at a fixed rate and pushes each with `PushedStream::push_bgr`, as a Rust vision
//! program would; frcstream encodes it once for all clients.
//!
//!     cargo run --release --example bench_pushed -- TEXTURE WIDTH HEIGHT FPS PORT QUALITY
//!
//! The stream is `http://127.0.0.1:PORT/bench.mjpg`. Prints `READY <pid>` once serving;
//! stops on SIGINT or SIGTERM.
//!
//!     bench_pushed --write-jpegs DIR COUNT TEXTURE WIDTH HEIGHT QUALITY
//!
//! writes the first COUNT of those frames (without a stamp) as JPEG files instead, the
//! camera MJPEG of the passthrough benchmark (`bench/ustreamer.sh`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use frcstream::config::{CameraConfig, Config, SourceSpec};
use frcstream::frame::monotonic_us;
use frcstream::source::pushed::PushedStream;
use frcstream::source::test_pattern::bounce;

const STAMP_BITS: usize = 40;
const STAMP_BLOCK: usize = 16;
const BLOCK_BGR: [u8; 3] = [200, 90, 235];

fn usage() -> ! {
    eprintln!(
        "usage: bench_pushed TEXTURE WIDTH HEIGHT FPS PORT QUALITY\n       \
         bench_pushed --write-jpegs DIR COUNT TEXTURE WIDTH HEIGHT QUALITY"
    );
    std::process::exit(2)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--write-jpegs") {
        return write_jpegs(&args[1..]);
    }
    if args.len() != 6 {
        usage();
    }
    let number = |i: usize| args[i].parse::<usize>().unwrap_or_else(|_| usage());
    let (width, height, fps, port, quality) =
        (number(1), number(2), number(3), number(4), number(5));
    let texture = std::fs::read(&args[0])?;
    if texture.len() != 2 * width * height * 3 {
        return Err(format!("{} is not a {width}x{height} texture", args[0]).into());
    }

    let mut config = Config::embedded_default();
    config.server.bind = [127, 0, 0, 1].into();
    config.server.port = port as u16;
    config.cameras = vec![CameraConfig {
        name: "bench".into(),
        source: SourceSpec::Pushed,
        width: width as u32,
        height: height as u32,
        // The camera's fps limit above the feed rate: cscore's server has none.
        fps: (2 * fps) as u32,
        quality: quality as u8,
        ..CameraConfig::embedded_default()
    }];
    let streamer = frcstream::Streamer::start(&config)?;
    let stream = streamer.pushed_stream("bench").ok_or("no pushed camera")?;

    let stop = Arc::new(AtomicBool::new(false));
    let (stopped_tx, stopped) = crossbeam_channel::bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = stopped_tx.try_send(());
    })?;
    let feeder = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("feeder".into())
            .spawn(move || feed(&stream, &texture, width, height, fps, &stop))?
    };
    println!("READY {}", std::process::id());
    let _ = stopped.recv();
    stop.store(true, Ordering::Relaxed);
    let _ = feeder.join();
    streamer.stop();
    Ok(())
}

fn write_jpegs(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    if args.len() != 6 {
        usage();
    }
    let number = |i: usize| args[i].parse::<usize>().unwrap_or_else(|_| usage());
    let (count, width, height, quality) = (number(1), number(3), number(4), number(5));
    let texture = std::fs::read(&args[2])?;
    let mut frame = vec![0u8; width * height * 3];
    std::fs::create_dir_all(&args[0])?;
    for index in 0..count {
        draw(&mut frame, &texture, width, height, index);
        let image = turbojpeg::Image {
            pixels: frame.as_slice(),
            width,
            pitch: width * 3,
            height,
            format: turbojpeg::PixelFormat::BGR,
        };
        let jpeg = turbojpeg::compress(image, quality as i32, turbojpeg::Subsamp::Sub2x2)?;
        std::fs::write(format!("{}/frame-{index:03}.jpg", args[0]), &*jpeg)?;
    }
    Ok(())
}

/// Draws and pushes frames at `fps` until `stop`.
fn feed(
    stream: &PushedStream,
    texture: &[u8],
    width: usize,
    height: usize,
    fps: usize,
    stop: &AtomicBool,
) {
    let mut frame = vec![0u8; width * height * 3];
    let period = Duration::from_secs(1) / fps as u32;
    let mut due = Instant::now();
    let mut index = 0;
    while !stop.load(Ordering::Relaxed) {
        draw(&mut frame, texture, width, height, index);
        stamp(&mut frame, width);
        if let Err(e) = stream.push_bgr(&frame, width as u32, height as u32) {
            eprintln!("push: {e}");
            return;
        }
        index += 1;
        due += period;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > period {
            due = now; // fell behind: start afresh rather than burst
        }
    }
}

/// Frame `index` without its stamp, as `Frames.draw` in bench/frames.py.
fn draw(frame: &mut [u8], texture: &[u8], width: usize, height: usize, index: usize) {
    let row = width * 3;
    let shift = (index * 4) % width;
    for y in 0..height {
        let source = &texture[y * 2 * row + shift * 3..][..row];
        frame[y * row..][..row].copy_from_slice(source);
    }
    let block = (height / 6).max(8);
    let x = bounce(index * 7, width - block);
    let y = bounce(index * 7 * 3 / 5, height - block);
    for line in frame[y * row..].chunks_exact_mut(row).take(block) {
        for pixel in line[x * 3..][..block * 3].chunks_exact_mut(3) {
            pixel.copy_from_slice(&BLOCK_BGR);
        }
    }
}

/// Draws the time stamp (now) into the top left corner, as `Frames.stamp`.
fn stamp(frame: &mut [u8], width: usize) {
    let stamp = monotonic_us() as u32;
    let b = stamp.to_le_bytes();
    let check = b[0] ^ b[1] ^ b[2] ^ b[3] ^ 0x5A;
    let value = u64::from(stamp) | u64::from(check) << 32;
    let row = width * 3;
    for line in frame.chunks_exact_mut(row).take(STAMP_BLOCK) {
        for (bit, block) in line[..STAMP_BITS * STAMP_BLOCK * 3]
            .chunks_exact_mut(STAMP_BLOCK * 3)
            .enumerate()
        {
            block.fill(if value >> bit & 1 == 1 { 255 } else { 0 });
        }
    }
}

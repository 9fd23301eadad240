//! The encoder alone against bare libjpeg-turbo on the same frames.
//!
//! frcstream's path: packed YUYV from the camera → planar 4:2:0 → compress from YUV, into
//! a reused frame. Bare: `tj3CompressFromYUVPlanes8` on planes that are already planar
//! (the cheapest libjpeg-turbo can do; a camera never delivers that). Both at the same
//! quality, alternating in one run so machine noise hits both alike. Prints one JSON line.
//!
//!     cargo run --release --example encode_bench -- [WIDTH HEIGHT QUALITY ROUNDS]

use std::time::{Duration, Instant};

use frcstream::encode::Encoder;
use frcstream::frame::{CapturedFrame, Pixels};
use frcstream::source::FrameSource;
use frcstream::source::test_pattern::TestPattern;
use turbojpeg::{Compressor, Subsamp, YuvPlanesImage};

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// YUYV → I420 the simplest way, only to give the bare encoder its planes.
fn to_planes(yuyv: &[u8], width: usize, height: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let y: Vec<u8> = yuyv.iter().step_by(2).copied().collect();
    let (cw, ch) = (width / 2, height.div_ceil(2));
    let mut u = vec![0; cw * ch];
    let mut v = vec![0; cw * ch];
    for row in 0..ch {
        for col in 0..cw {
            let i = (2 * row * width + 2 * col) * 2;
            u[row * cw + col] = yuyv[i + 1];
            v[row * cw + col] = yuyv[i + 3];
        }
    }
    (y, u, v)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (width, height, quality, rounds) = (arg(1, 640), arg(2, 480), arg(3, 50), arg(4, 20));
    let mut pattern = TestPattern::new("bench", width as u32, height as u32, 10_000);
    let frames: Vec<Vec<u8>> = (0..30)
        .map(|_| {
            pattern
                .next_frame(Duration::from_secs(1))
                .map(|f| f.pixels.data().to_vec())
        })
        .collect::<Result<_, _>>()?;
    let planes: Vec<_> = frames.iter().map(|f| to_planes(f, width, height)).collect();

    let mut encoder = Encoder::new()?;
    let mut bare = Compressor::new()?;
    bare.set_quality(quality as i32)?;
    bare.set_subsamp(Subsamp::Sub2x2)?;
    let mut bare_out = vec![0u8; bare.buf_len(width, height)?];
    let (mut ours, mut theirs) = (Duration::ZERO, Duration::ZERO);
    let (mut our_bytes, mut their_bytes) = (0usize, 0usize);
    let mut seq = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        for frame in &frames {
            seq += 1;
            let captured = CapturedFrame {
                pixels: Pixels::Yuyv(frame),
                width: width as u32,
                height: height as u32,
                captured_us: 0,
                dropped_before: 0,
            };
            let (encoded, _) = encoder.process(&captured, quality as u8, seq)?;
            our_bytes += encoded.jpeg().len();
        }
        ours += started.elapsed();
        let started = Instant::now();
        for (y, u, v) in &planes {
            let image = YuvPlanesImage {
                y_plane: y.as_slice(),
                u_plane: u.as_slice(),
                v_plane: v.as_slice(),
                width,
                height,
                y_stride: width,
                u_stride: width / 2,
                v_stride: width / 2,
                subsamp: Subsamp::Sub2x2,
            };
            their_bytes += bare.compress_yuv_planes_to_slice(&image, &mut bare_out)?;
        }
        theirs += started.elapsed();
    }
    let count = (rounds * frames.len()) as f64;
    let ours_ms = ours.as_secs_f64() * 1000.0 / count;
    let theirs_ms = theirs.as_secs_f64() * 1000.0 / count;
    println!(
        "{}",
        serde_json::json!({
            "size": format!("{width}x{height}"),
            "quality": quality,
            "frames": count,
            "frcstream_ms_per_frame": ours_ms,
            "bare_libjpeg_turbo_ms_per_frame": theirs_ms,
            "ratio": ours_ms / theirs_ms,
            "frcstream_avg_bytes": our_bytes as f64 / count,
            "bare_avg_bytes": their_bytes as f64 / count,
        })
    );
    Ok(())
}

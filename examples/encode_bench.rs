//! The encoder alone against bare libjpeg-turbo on the same frames (`bench/encode.sh`).
//!
//! Two inputs, one JSON line each:
//! - `yuyv`, a camera's: frcstream de-interleaves packed YUYV to planar 4:2:0 and
//!   compresses from YUV into a reused frame. Bare: `tj3CompressFromYUVPlanes8` on planes
//!   that are already planar (the cheapest libjpeg-turbo can do; a camera never delivers
//!   that). Frames: the test pattern.
//! - `bgr`, a vision program's (`PushedStream::push_bgr`, cscore's `CvSource`): frcstream
//!   compresses the packed BGR. Bare: `tj3Compress8` on the same pixels. Frames: the
//!   texture of the cscore comparison, scrolled (bench/frames.py), when a texture file is
//!   given; else the test pattern's frames turned into BGR.
//!
//! Both at the same quality, 4:2:0, libjpeg-turbo's default (accurate) DCT, alternating in
//! one run so machine noise hits both alike. (The fast DCT was tried: with libjpeg-turbo
//! 3.1's AVX2 code it compresses no faster here, so frcstream keeps the accurate one.)
//!
//!     cargo run --release --example encode_bench -- [WIDTH HEIGHT QUALITY ROUNDS [TEXTURE]]

use std::time::{Duration, Instant};

use frcstream::encode::Encoder;
use frcstream::frame::{CapturedFrame, Pixels};
use frcstream::source::FrameSource;
use frcstream::source::test_pattern::TestPattern;
use turbojpeg::{Compressor, Image, PixelFormat, Subsamp, YuvPlanesImage};

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

/// YUYV → BGR (BT.601 full range), to make BGR frames from the test pattern.
fn to_bgr(yuyv: &[u8]) -> Vec<u8> {
    let mut bgr = Vec::with_capacity(yuyv.len() / 2 * 3);
    for pair in yuyv.chunks_exact(4) {
        let (u, v) = (f32::from(pair[1]) - 128.0, f32::from(pair[3]) - 128.0);
        for y in [pair[0], pair[2]] {
            let y = f32::from(y);
            let clamp = |x: f32| x.clamp(0.0, 255.0) as u8;
            bgr.extend_from_slice(&[
                clamp(y + 1.772 * u),
                clamp(y - 0.344_136 * u - 0.714_136 * v),
                clamp(y + 1.402 * v),
            ]);
        }
    }
    bgr
}

fn captured(pixels: Pixels<'_>, width: usize, height: usize) -> CapturedFrame<'_> {
    CapturedFrame {
        pixels,
        width: width as u32,
        height: height as u32,
        captured_us: 0,
        dropped_before: 0,
    }
}

fn yuv(planes: &(Vec<u8>, Vec<u8>, Vec<u8>), width: usize, height: usize) -> YuvPlanesImage<&[u8]> {
    YuvPlanesImage {
        y_plane: planes.0.as_slice(),
        u_plane: planes.1.as_slice(),
        v_plane: planes.2.as_slice(),
        width,
        height,
        y_stride: width,
        u_stride: width / 2,
        v_stride: width / 2,
        subsamp: Subsamp::Sub2x2,
    }
}

fn bgr_image(pixels: &[u8], width: usize, height: usize) -> Image<&[u8]> {
    Image {
        pixels,
        width,
        pitch: width * 3,
        height,
        format: PixelFormat::BGR,
    }
}

/// Times `f` over every frame, `rounds` times in all, interleaved with the other runs.
struct Timer {
    total: Duration,
    bytes: usize,
}

impl Timer {
    fn new() -> Timer {
        Timer {
            total: Duration::ZERO,
            bytes: 0,
        }
    }

    fn run<T>(&mut self, frames: &[T], mut f: impl FnMut(&T) -> usize) {
        let started = Instant::now();
        for frame in frames {
            self.bytes += f(frame);
        }
        self.total += started.elapsed();
    }

    fn ms(&self, count: f64) -> f64 {
        self.total.as_secs_f64() * 1000.0 / count
    }
}

fn report(input: &str, size: (usize, usize), quality: usize, count: f64, timers: [&Timer; 2]) {
    let [ours, bare] = timers.map(|t| t.ms(count));
    println!(
        "{}",
        serde_json::json!({
            "input": input,
            "size": format!("{}x{}", size.0, size.1),
            "quality": quality,
            "frames": count,
            "frcstream_ms_per_frame": ours,
            "bare_libjpeg_turbo_ms_per_frame": bare,
            "ratio": ours / bare,
            "frcstream_avg_bytes": timers[0].bytes as f64 / count,
            "bare_avg_bytes": timers[1].bytes as f64 / count,
        })
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (width, height, quality, rounds) = (arg(1, 640), arg(2, 480), arg(3, 50), arg(4, 20));
    let texture = std::env::args().nth(5);
    let mut pattern = TestPattern::new("bench", width as u32, height as u32, 10_000);
    let yuyv_frames: Vec<Vec<u8>> = (0..30)
        .map(|_| {
            pattern
                .next_frame(Duration::from_secs(1))
                .map(|f| f.pixels.data().to_vec())
        })
        .collect::<Result<_, _>>()?;
    let planes: Vec<_> = yuyv_frames
        .iter()
        .map(|f| to_planes(f, width, height))
        .collect();
    let bgr_frames: Vec<Vec<u8>> = match &texture {
        Some(path) => {
            let texture = std::fs::read(path)?;
            let row = width * 3;
            if texture.len() != 2 * row * height {
                return Err(format!("{path} is not a {width}x{height} texture").into());
            }
            (0..30)
                .map(|index| {
                    let shift = (index * 4) % width;
                    (0..height)
                        .flat_map(|y| &texture[y * 2 * row + shift * 3..][..row])
                        .copied()
                        .collect()
                })
                .collect()
        }
        None => yuyv_frames.iter().map(|f| to_bgr(f)).collect(),
    };

    let mut encoder = Encoder::new()?;
    let mut bare = Compressor::new()?;
    bare.set_quality(quality as i32)?;
    bare.set_subsamp(Subsamp::Sub2x2)?;
    let mut out = vec![0u8; bare.buf_len(width, height)?];
    let count = (rounds * 30) as f64;
    let mut seq = 0;

    let (mut ours, mut theirs) = (Timer::new(), Timer::new());
    for _ in 0..rounds {
        ours.run(&yuyv_frames, |frame| {
            seq += 1;
            let (encoded, _) = encoder
                .process(
                    &captured(Pixels::Yuyv(frame), width, height),
                    quality as u8,
                    seq,
                )
                .expect("encode");
            encoded.jpeg().len()
        });
        theirs.run(&planes, |p| {
            bare.compress_yuv_planes_to_slice(&yuv(p, width, height), &mut out)
                .expect("bare")
        });
    }
    report("yuyv", (width, height), quality, count, [&ours, &theirs]);

    let (mut ours, mut theirs) = (Timer::new(), Timer::new());
    for _ in 0..rounds {
        ours.run(&bgr_frames, |frame| {
            seq += 1;
            let (encoded, _) = encoder
                .process(
                    &captured(Pixels::Bgr(frame), width, height),
                    quality as u8,
                    seq,
                )
                .expect("encode");
            encoded.jpeg().len()
        });
        theirs.run(&bgr_frames, |frame| {
            bare.compress_to_slice(bgr_image(frame, width, height), &mut out)
                .expect("bare")
        });
    }
    report("bgr", (width, height), quality, count, [&ours, &theirs]);
    Ok(())
}

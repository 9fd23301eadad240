//! The encoder: turns a captured frame into the JPEG that clients receive.
//!
//! - JPEG input (camera MJPEG, files, a program's JPEG) is checked and passed through
//!   untouched, with the standard Huffman tables inserted when the camera left them out.
//! - YUYV is de-interleaved to planar 4:2:0 and compressed from YUV with libjpeg-turbo,
//!   never through RGB (2–2.5x faster, see `notes/crates.md`).
//! - RGB, BGR and grayscale from programs are compressed directly.
//!
//! The compressor, the planar buffers and the output frames are reused: in the steady
//! state nothing is allocated per frame.

use std::collections::VecDeque;
use std::sync::Arc;

use turbojpeg::{Compressor, Image, PixelFormat, Subsamp, YuvPlanesImage};

use crate::frame::{CapturedFrame, Frame, FrameKind, Pixels};
use crate::jpeg::{self, JpegError};

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("invalid JPEG from the source: {0}")]
    InvalidJpeg(#[from] JpegError),
    #[error("{format} frame of {got} bytes is too short for {width}x{height}")]
    FrameTooShort {
        format: &'static str,
        got: usize,
        width: u32,
        height: u32,
    },
    #[error("odd width {0}: YUYV needs an even width")]
    OddWidth(u32),
    #[error("libjpeg-turbo: {0}")]
    Turbojpeg(#[from] turbojpeg::Error),
}

/// Whether a frame was encoded or passed through (for the statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    Encoded,
    PassedThrough,
}

pub struct Encoder {
    compressor: Compressor,
    quality: u8,
    planes: PlanarBuffers,
    pool: FramePool,
}

impl Encoder {
    pub fn new() -> Result<Encoder, EncodeError> {
        Ok(Encoder {
            compressor: Compressor::new()?,
            quality: 0,
            planes: PlanarBuffers::default(),
            pool: FramePool::default(),
        })
    }

    /// Encodes (or checks and passes through) `frame` at `quality` into a frame ready for
    /// the slot. `seq` is the sequence number it will be published under.
    pub fn process(
        &mut self,
        frame: &CapturedFrame<'_>,
        quality: u8,
        seq: u64,
    ) -> Result<(Arc<Frame>, Work), EncodeError> {
        self.process_as(frame, quality, seq, FrameKind::Live)
    }

    /// [`Encoder::process`], marking the frame as `kind` (e.g. the NO SIGNAL card).
    pub fn process_as(
        &mut self,
        frame: &CapturedFrame<'_>,
        quality: u8,
        seq: u64,
        kind: FrameKind,
    ) -> Result<(Arc<Frame>, Work), EncodeError> {
        let mut out = self.pool.take();
        let target = Arc::get_mut(&mut out).expect("the pool hands out unshared frames");
        let result = self.fill(frame, quality, target);
        target.seq = seq;
        target.captured_us = frame.captured_us;
        target.kind = kind;
        // Kept even on error: the buffer is still good for the next frame.
        self.pool.keep(&out);
        result.map(|work| (out, work))
    }

    fn fill(
        &mut self,
        frame: &CapturedFrame<'_>,
        quality: u8,
        target: &mut Frame,
    ) -> Result<Work, EncodeError> {
        match frame.pixels {
            Pixels::Jpeg(data) => {
                let info = jpeg::check(data)?;
                jpeg::copy_with_huffman_tables(data, &info, &mut target.buffer);
                target.len = target.buffer.len();
                target.width = info.width;
                target.height = info.height;
                Ok(Work::PassedThrough)
            }
            _ => {
                self.encode_raw(frame, quality, target)?;
                target.width = frame.width;
                target.height = frame.height;
                Ok(Work::Encoded)
            }
        }
    }

    fn encode_raw(
        &mut self,
        frame: &CapturedFrame<'_>,
        quality: u8,
        out: &mut Frame,
    ) -> Result<(), EncodeError> {
        let (width, height) = (frame.width as usize, frame.height as usize);
        let bytes_per_pixel = frame.pixels.bytes_per_pixel().unwrap_or(1);
        let data = frame.pixels.data();
        if data.len() < width * height * bytes_per_pixel {
            return Err(EncodeError::FrameTooShort {
                format: frame.pixels.format_name(),
                got: data.len(),
                width: frame.width,
                height: frame.height,
            });
        }
        if quality != self.quality {
            self.compressor.set_quality(i32::from(quality))?;
            self.quality = quality;
        }
        let subsamp = match frame.pixels {
            Pixels::Gray(_) => Subsamp::Gray,
            _ => Subsamp::Sub2x2,
        };
        self.compressor.set_subsamp(subsamp)?;
        let needed = self.compressor.buf_len(width, height)?;
        if out.buffer.len() < needed {
            // Zeroed allocation: the kernel maps pages lazily, so only what the JPEG
            // actually uses costs memory.
            out.buffer = vec![0; needed];
        }
        let len = match frame.pixels {
            Pixels::Yuyv(yuyv) => {
                if width % 2 != 0 {
                    return Err(EncodeError::OddWidth(frame.width));
                }
                self.planes.fill_from_yuyv(yuyv, width, height);
                let image = self.planes.image(width, height);
                self.compressor
                    .compress_yuv_planes_to_slice(&image, &mut out.buffer)?
            }
            Pixels::Rgb(pixels) | Pixels::Bgr(pixels) | Pixels::Gray(pixels) => {
                let format = match frame.pixels {
                    Pixels::Rgb(_) => PixelFormat::RGB,
                    Pixels::Bgr(_) => PixelFormat::BGR,
                    _ => PixelFormat::GRAY,
                };
                let image = Image {
                    pixels,
                    width,
                    pitch: width * bytes_per_pixel,
                    height,
                    format,
                };
                self.compressor.compress_to_slice(image, &mut out.buffer)?
            }
            Pixels::Jpeg(_) => unreachable!("JPEG frames are passed through"),
        };
        out.len = len;
        Ok(())
    }
}

/// Planar 4:2:0 buffers reused from frame to frame.
#[derive(Default)]
struct PlanarBuffers {
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl PlanarBuffers {
    /// De-interleaves packed YUYV into planar I420, averaging the chroma of each row pair.
    fn fill_from_yuyv(&mut self, yuyv: &[u8], width: usize, height: usize) {
        let chroma_width = width / 2;
        let chroma_height = height.div_ceil(2);
        self.y.resize(width * height, 0);
        self.u.resize(chroma_width * chroma_height, 0);
        self.v.resize(chroma_width * chroma_height, 0);
        let row_bytes = width * 2;
        for pair in 0..chroma_height {
            let top_row = 2 * pair;
            let bottom_row = (top_row + 1).min(height - 1);
            let top = &yuyv[top_row * row_bytes..][..row_bytes];
            let bottom = &yuyv[bottom_row * row_bytes..][..row_bytes];
            let u = &mut self.u[pair * chroma_width..][..chroma_width];
            let v = &mut self.v[pair * chroma_width..][..chroma_width];
            average_chroma(top, bottom, u, v);
            copy_luma(top, &mut self.y[top_row * width..][..width]);
            if bottom_row != top_row {
                copy_luma(bottom, &mut self.y[bottom_row * width..][..width]);
            }
        }
    }

    fn image(&self, width: usize, height: usize) -> YuvPlanesImage<&[u8]> {
        YuvPlanesImage {
            y_plane: &self.y,
            u_plane: &self.u,
            v_plane: &self.v,
            width,
            height,
            y_stride: width,
            u_stride: width / 2,
            v_stride: width / 2,
            subsamp: Subsamp::Sub2x2,
        }
    }
}

// The de-interleaving below works on eight bytes (four pixels, `Y0 U0 Y1 V0 Y2 U1 Y3 V1`)
// at a time as one little-endian u64: a handful of shifts and masks instead of eight byte
// moves. De-interleave plus compression went from 1.02x to 0.86x the time of libjpeg-turbo
// compressing ready-made planes at 640x480 (1.07x to 0.92x at 1280x720; bench/encode.sh).
// It is plain integer code: as fast on an ARM coprocessor, and in an emulator.

/// Every other byte of each 16-bit lane: the low bytes of four lanes.
const LOW_BYTES: u64 = 0x00FF_00FF_00FF_00FF;

fn word(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("eight bytes"))
}

/// The luma of a YUYV row.
fn copy_luma(yuyv_row: &[u8], luma_row: &mut [u8]) {
    let mut pixels = yuyv_row.chunks_exact(8);
    let mut luma = luma_row.chunks_exact_mut(4);
    for (pixels, luma) in (&mut pixels).zip(&mut luma) {
        // Y0 @0, Y1 @16, Y2 @32, Y3 @48 → Y0 Y1 @0, Y2 Y3 @32 → Y0 Y1 Y2 Y3 @0.
        let y = word(pixels) & LOW_BYTES;
        let y = (y | y >> 8) & 0x0000_FFFF_0000_FFFF;
        luma.copy_from_slice(&((y | y >> 16) as u32).to_le_bytes());
    }
    for (pair, luma) in pixels
        .remainder()
        .chunks_exact(2)
        .zip(luma.into_remainder())
    {
        *luma = pair[0];
    }
}

/// The chroma of two YUYV rows, averaged (rounding up) into a row of U and one of V.
fn average_chroma(top: &[u8], bottom: &[u8], u: &mut [u8], v: &mut [u8]) {
    let mut top = top.chunks_exact(8);
    let mut bottom = bottom.chunks_exact(8);
    let mut u = u.chunks_exact_mut(2);
    let mut v = v.chunks_exact_mut(2);
    for (((t, b), u), v) in (&mut top).zip(&mut bottom).zip(&mut u).zip(&mut v) {
        // U0 @0, V0 @16, U1 @32, V1 @48 in each; the 16-bit lanes hold the sums.
        let (t, b) = (word(t) >> 8 & LOW_BYTES, word(b) >> 8 & LOW_BYTES);
        let mean = (t + b + 0x0001_0001_0001_0001) >> 1 & LOW_BYTES;
        u.copy_from_slice(&[mean as u8, (mean >> 32) as u8]);
        v.copy_from_slice(&[(mean >> 16) as u8, (mean >> 48) as u8]);
    }
    let tails = top
        .remainder()
        .chunks_exact(4)
        .zip(bottom.remainder().chunks_exact(4));
    for ((t, b), (u, v)) in tails.zip(u.into_remainder().iter_mut().zip(v.into_remainder())) {
        *u = ((u16::from(t[1]) + u16::from(b[1]) + 1) >> 1) as u8;
        *v = ((u16::from(t[3]) + u16::from(b[3]) + 1) >> 1) as u8;
    }
}

/// Recently published frames, reused once no client holds them any more.
#[derive(Default)]
pub(crate) struct FramePool {
    recent: VecDeque<Arc<Frame>>,
}

/// Frames kept for reuse. The slot holds one and each client at most one, usually the
/// same: a handful covers the steady state; beyond it a frame is allocated afresh.
const POOL_SIZE: usize = 6;

impl FramePool {
    /// A frame nobody else holds: a released one from the pool, or a new one.
    pub(crate) fn take(&mut self) -> Arc<Frame> {
        // No weak references are ever made, so a strong count of one means only the pool
        // holds it, and nobody can clone it any more.
        let free = self.recent.iter().position(|f| Arc::strong_count(f) == 1);
        match free.and_then(|i| self.recent.remove(i)) {
            Some(frame) => frame,
            None => Arc::new(Frame::empty()),
        }
    }

    pub(crate) fn keep(&mut self, frame: &Arc<Frame>) {
        self.recent.push_back(Arc::clone(frame));
        if self.recent.len() > POOL_SIZE {
            self.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yuyv_gradient(width: usize, height: usize) -> Vec<u8> {
        let mut data = vec![0u8; width * height * 2];
        for (i, px) in data.chunks_exact_mut(4).enumerate() {
            let x = (i * 2) % width;
            let y = (i * 2) / width;
            px[0] = (x * 255 / width) as u8;
            px[1] = 90;
            px[2] = ((x + 1) * 255 / width) as u8;
            px[3] = (y * 255 / height) as u8;
        }
        data
    }

    fn captured(pixels: Pixels<'_>, width: u32, height: u32) -> CapturedFrame<'_> {
        CapturedFrame {
            pixels,
            width,
            height,
            captured_us: 42,
            dropped_before: 0,
        }
    }

    #[test]
    fn yuyv_encodes_to_a_jpeg_of_the_same_size() {
        let data = yuyv_gradient(320, 240);
        let mut encoder = Encoder::new().expect("encoder");
        let (frame, work) = encoder
            .process(&captured(Pixels::Yuyv(&data), 320, 240), 75, 1)
            .expect("encode");
        assert_eq!(work, Work::Encoded);
        let header = turbojpeg::read_header(frame.jpeg()).expect("decodable");
        assert_eq!((header.width, header.height), (320, 240));
        assert_eq!(frame.captured_us, 42);
    }

    #[test]
    fn deinterleave_keeps_luma_and_averages_chroma() {
        // 2x2 image: row 0 = Y 10,20 U 100 V 200; row 1 = Y 30,40 U 50 V 0.
        let yuyv = [10, 100, 20, 200, 30, 50, 40, 0];
        let mut planes = PlanarBuffers::default();
        planes.fill_from_yuyv(&yuyv, 2, 2);
        assert_eq!(planes.y, [10, 20, 30, 40]);
        assert_eq!((planes.u[0], planes.v[0]), (75, 100));
        // Odd height: the last row pairs with itself.
        planes.fill_from_yuyv(&yuyv[..4], 2, 1);
        assert_eq!(planes.y, [10, 20]);
        assert_eq!((planes.u[0], planes.v[0]), (100, 200));
    }

    #[test]
    fn deinterleave_matches_the_byte_by_byte_definition_at_any_size() {
        // Widths with and without a tail of two pixels past the last eight bytes; an odd
        // height.
        for (width, height) in [(16, 4), (6, 3), (642, 5)] {
            let yuyv: Vec<u8> = (0..width * height * 2)
                .map(|i| (i * 151 % 256) as u8)
                .collect();
            let mut planes = PlanarBuffers::default();
            planes.fill_from_yuyv(&yuyv, width, height);
            let at = |x: usize, y: usize, byte: usize| u16::from(yuyv[(y * width + x) * 2 + byte]);
            for y in 0..height {
                for x in 0..width {
                    assert_eq!(planes.y[y * width + x], yuyv[(y * width + x) * 2]);
                }
            }
            for cy in 0..height.div_ceil(2) {
                let (top, bottom) = (2 * cy, (2 * cy + 1).min(height - 1));
                for cx in 0..width / 2 {
                    let mean =
                        |byte| ((at(2 * cx, top, byte) + at(2 * cx, bottom, byte) + 1) >> 1) as u8;
                    assert_eq!(
                        planes.u[cy * width / 2 + cx],
                        mean(1),
                        "{width}x{height} u {cx},{cy}"
                    );
                    assert_eq!(
                        planes.v[cy * width / 2 + cx],
                        mean(3),
                        "{width}x{height} v {cx},{cy}"
                    );
                }
            }
        }
    }

    #[test]
    fn encoded_colours_survive_the_round_trip() {
        // A flat YUYV frame decodes to the same flat colour.
        let data: Vec<u8> = [120u8, 80, 120, 160].repeat(64 * 64 / 2);
        let mut encoder = Encoder::new().expect("encoder");
        let (frame, _) = encoder
            .process(&captured(Pixels::Yuyv(&data), 64, 64), 95, 1)
            .expect("encode");
        let yuv = turbojpeg::decompress_to_yuv(frame.jpeg()).expect("decode");
        let y = yuv.pixels[0] as i32;
        assert!((y - 120).abs() <= 2, "luma {y}");
    }

    #[test]
    fn rgb_bgr_and_gray_encode() {
        let mut encoder = Encoder::new().expect("encoder");
        let rgb = vec![200u8; 48 * 32 * 3];
        let gray = vec![99u8; 48 * 32];
        for pixels in [Pixels::Rgb(&rgb), Pixels::Bgr(&rgb), Pixels::Gray(&gray)] {
            let (frame, _) = encoder
                .process(&captured(pixels, 48, 32), 80, 1)
                .expect("encode");
            let header = turbojpeg::read_header(frame.jpeg()).expect("decodable");
            assert_eq!((header.width, header.height), (48, 32));
        }
    }

    #[test]
    fn short_frames_are_refused_not_read_past_their_end() {
        let mut encoder = Encoder::new().expect("encoder");
        let short = vec![0u8; 100];
        let err = encoder
            .process(&captured(Pixels::Yuyv(&short), 320, 240), 75, 1)
            .expect_err("too short");
        assert!(matches!(err, EncodeError::FrameTooShort { .. }), "{err}");
    }

    #[test]
    fn jpeg_passes_through_byte_identical() {
        let data = yuyv_gradient(64, 48);
        let mut encoder = Encoder::new().expect("encoder");
        let (encoded, _) = encoder
            .process(&captured(Pixels::Yuyv(&data), 64, 48), 70, 1)
            .expect("encode");
        let original = encoded.jpeg().to_vec();
        let (passed, work) = encoder
            .process(&captured(Pixels::Jpeg(&original), 0, 0), 10, 2)
            .expect("pass");
        assert_eq!(work, Work::PassedThrough);
        assert_eq!(passed.jpeg(), original.as_slice());
        assert_eq!((passed.width, passed.height), (64, 48));
        let truncated = &original[..original.len() - 10];
        assert!(
            encoder
                .process(&captured(Pixels::Jpeg(truncated), 0, 0), 10, 3)
                .is_err()
        );
    }

    #[test]
    fn frames_are_reused_once_released() {
        let data = yuyv_gradient(64, 48);
        let mut encoder = Encoder::new().expect("encoder");
        let (first, _) = encoder
            .process(&captured(Pixels::Yuyv(&data), 64, 48), 70, 1)
            .expect("encode");
        let first_buffer = first.buffer.as_ptr();
        drop(first);
        let (second, _) = encoder
            .process(&captured(Pixels::Yuyv(&data), 64, 48), 70, 2)
            .expect("encode");
        assert_eq!(second.buffer.as_ptr(), first_buffer, "buffer reused");
        // While a client holds a frame, it is not overwritten.
        let (third, _) = encoder
            .process(&captured(Pixels::Yuyv(&data), 64, 48), 70, 3)
            .expect("encode");
        assert_ne!(third.buffer.as_ptr(), second.buffer.as_ptr());
        assert_eq!(second.seq, 2);
    }
}

//! Re-encoding a camera's JPEG at another size or quality, for clients that ask for it
//! (`resolution=`, `compression=`).
//!
//! The JPEG is decoded straight to planar YUV, shrunk first by libjpeg-turbo's DCT scaling
//! (1/2, 1/4, 1/8 cost almost nothing), then resampled to the exact size (bilinear) and
//! compressed from YUV. No RGB on the way; buffers are reused from frame to frame.

use std::sync::Arc;

use turbojpeg::{Compressor, Decompressor, ScalingFactor, Subsamp, YuvImage, YuvPlanesImage};

use crate::encode::{EncodeError, FramePool};
use crate::frame::Frame;
use crate::settings;

/// Geometry of one plane in libjpeg-turbo's planar layout (row alignment 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plane {
    offset: usize,
    width: usize,
    height: usize,
}

/// The planes of a `width`x`height` image in `subsamp`, as `tj3DecompressToYUV8` lays them
/// out (widths and heights padded to whole MCU columns and rows).
fn plane_layout(width: usize, height: usize, subsamp: Subsamp) -> Vec<Plane> {
    let (mcu_w, mcu_h) = (subsamp.mcu_width(), subsamp.mcu_height());
    let luma_w = width.div_ceil(mcu_w / 8) * (mcu_w / 8);
    let luma_h = height.div_ceil(mcu_h / 8) * (mcu_h / 8);
    let luma = Plane {
        offset: 0,
        width: luma_w,
        height: luma_h,
    };
    if subsamp == Subsamp::Gray {
        return vec![luma];
    }
    let chroma_w = luma_w * 8 / mcu_w;
    let chroma_h = luma_h * 8 / mcu_h;
    let u = Plane {
        offset: luma_w * luma_h,
        width: chroma_w,
        height: chroma_h,
    };
    let v = Plane {
        offset: u.offset + chroma_w * chroma_h,
        ..u
    };
    vec![luma, u, v]
}

/// The smallest DCT scaling that still gives at least `target` in both directions.
fn scaling_for(width: usize, height: usize, target: (usize, usize)) -> ScalingFactor {
    [
        ScalingFactor::ONE_EIGHTH,
        ScalingFactor::ONE_QUARTER,
        ScalingFactor::ONE_HALF,
    ]
    .into_iter()
    .find(|f| f.scale(width) >= target.0 && f.scale(height) >= target.1)
    .unwrap_or(ScalingFactor::ONE)
}

/// Bilinear resampling of one 8-bit plane (16.16 fixed point).
fn resize_plane(
    src: &[u8],
    src_w: usize,
    src_h: usize,
    dst: &mut [u8],
    dst_w: usize,
    dst_h: usize,
) {
    if src_w == 0 || src_h == 0 {
        dst.fill(128);
        return;
    }
    let step_x = ((src_w << 16) / dst_w.max(1)) as i64;
    let step_y = ((src_h << 16) / dst_h.max(1)) as i64;
    let max_x = (src_w - 1) as i64;
    let max_y = (src_h - 1) as i64;
    for y in 0..dst_h {
        let fy = (y as i64 * step_y + step_y / 2 - 0x8000).max(0);
        let y0 = (fy >> 16).min(max_y) as usize;
        let y1 = (y0 + 1).min(max_y as usize);
        let wy = fy & 0xFFFF;
        let row0 = &src[y0 * src_w..][..src_w];
        let row1 = &src[y1 * src_w..][..src_w];
        let out = &mut dst[y * dst_w..][..dst_w];
        for (x, pixel) in out.iter_mut().enumerate() {
            let fx = (x as i64 * step_x + step_x / 2 - 0x8000).max(0);
            let x0 = (fx >> 16).min(max_x) as usize;
            let x1 = (x0 + 1).min(max_x as usize);
            let wx = fx & 0xFFFF;
            let top = i64::from(row0[x0]) * (0x10000 - wx) + i64::from(row0[x1]) * wx;
            let bottom = i64::from(row1[x0]) * (0x10000 - wx) + i64::from(row1[x1]) * wx;
            let value = (top >> 16) * (0x10000 - wy) + (bottom >> 16) * wy;
            *pixel = ((value + 0x8000) >> 16).clamp(0, 255) as u8;
        }
    }
}

/// Re-encodes frames; one per variant thread.
pub struct Transcoder {
    decompressor: Decompressor,
    compressor: Compressor,
    quality: u8,
    decoded: Vec<u8>,
    planes: [Vec<u8>; 3],
    pool: FramePool,
}

impl Transcoder {
    pub fn new() -> Result<Transcoder, EncodeError> {
        let mut compressor = Compressor::new()?;
        compressor.set_subsamp(Subsamp::Sub2x2)?;
        Ok(Transcoder {
            decompressor: Decompressor::new()?,
            compressor,
            quality: 0,
            decoded: Vec::new(),
            planes: Default::default(),
            pool: FramePool::default(),
        })
    }

    /// `source` at `size` (None: its own) and `quality`, as a new frame numbered `seq`.
    pub fn transcode(
        &mut self,
        source: &Frame,
        size: Option<(u32, u32)>,
        quality: u8,
        seq: u64,
    ) -> Result<Arc<Frame>, EncodeError> {
        let header = self.decompressor.read_header(source.jpeg())?;
        let (width, height) = (header.width, header.height);
        // Never larger than the source: upscaling costs a core and shows nothing more
        // (the budget may have shrunk the camera's frames under a client's size).
        let target = match size {
            Some((w, h)) => (
                settings::STREAM_SIDE.clamp_int(i64::from(w)) as usize & !1,
                settings::STREAM_SIDE.clamp_int(i64::from(h)) as usize & !1,
            ),
            None => (width, height),
        };
        let target = (
            target.0.min(width).max(2) & !1,
            target.1.min(height).max(2) & !1,
        );
        let scaling = scaling_for(width, height, target);
        self.decompressor.set_scaling_factor(scaling)?;
        let (scaled_w, scaled_h) = (scaling.scale(width), scaling.scale(height));
        let subsamp = header.subsamp;
        let len = turbojpeg::yuv_pixels_len(scaled_w, 1, scaled_h, subsamp)?;
        if self.decoded.len() < len {
            self.decoded.resize(len, 0);
        }
        let image = YuvImage {
            pixels: &mut self.decoded[..len],
            width: scaled_w,
            align: 1,
            height: scaled_h,
            subsamp,
        };
        self.decompressor.decompress_to_yuv(source.jpeg(), image)?;
        self.resample(scaled_w, scaled_h, subsamp, target);
        if quality != self.quality {
            self.compressor.set_quality(i32::from(quality))?;
            self.quality = quality;
        }
        self.compress(source, target, seq)
    }

    /// Fills `self.planes` with I420 at `target` from the decoded image.
    fn resample(&mut self, width: usize, height: usize, subsamp: Subsamp, target: (usize, usize)) {
        let (tw, th) = target;
        let chroma = (tw / 2, th / 2);
        let layout = plane_layout(width, height, subsamp);
        let sizes = [(tw, th), chroma, chroma];
        for (index, (w, h)) in sizes.into_iter().enumerate() {
            let out = &mut self.planes[index];
            out.resize(w * h, 0);
            match layout.get(index) {
                Some(plane) => {
                    let data =
                        &self.decoded[plane.offset..plane.offset + plane.width * plane.height];
                    // Only the image's own part of a padded plane is resampled.
                    let (used_w, used_h) = if index == 0 {
                        (width, height)
                    } else {
                        (
                            (width * plane.width)
                                .div_ceil(layout[0].width)
                                .min(plane.width),
                            (height * plane.height)
                                .div_ceil(layout[0].height)
                                .min(plane.height),
                        )
                    };
                    resize_cropped(data, plane.width, used_w, used_h, out, w, h);
                }
                None => out.fill(128), // grayscale source: neutral chroma
            }
        }
    }

    fn compress(
        &mut self,
        source: &Frame,
        (tw, th): (usize, usize),
        seq: u64,
    ) -> Result<Arc<Frame>, EncodeError> {
        let mut out = self.pool.take();
        let target = Arc::get_mut(&mut out).expect("the pool hands out unshared frames");
        let needed = self.compressor.buf_len(tw, th)?;
        if target.buffer.len() < needed {
            target.buffer = vec![0; needed];
        }
        let image = YuvPlanesImage {
            y_plane: self.planes[0].as_slice(),
            u_plane: self.planes[1].as_slice(),
            v_plane: self.planes[2].as_slice(),
            width: tw,
            height: th,
            y_stride: tw,
            u_stride: tw / 2,
            v_stride: tw / 2,
            subsamp: Subsamp::Sub2x2,
        };
        let result = self
            .compressor
            .compress_yuv_planes_to_slice(&image, &mut target.buffer);
        match result {
            Ok(len) => {
                target.len = len;
                target.seq = seq;
                target.captured_us = source.captured_us;
                target.width = tw as u32;
                target.height = th as u32;
                // NO SIGNAL stays NO SIGNAL at every size.
                target.kind = source.kind;
                self.pool.keep(&out);
                Ok(out)
            }
            Err(e) => {
                self.pool.keep(&out);
                Err(e.into())
            }
        }
    }
}

/// Resamples the top-left `used_w`x`used_h` of a plane `stride` wide.
fn resize_cropped(
    src: &[u8],
    stride: usize,
    used_w: usize,
    used_h: usize,
    dst: &mut [u8],
    dst_w: usize,
    dst_h: usize,
) {
    if stride == used_w {
        resize_plane(&src[..used_w * used_h], used_w, used_h, dst, dst_w, dst_h);
        return;
    }
    let mut cropped = Vec::with_capacity(used_w * used_h);
    for row in src.chunks(stride).take(used_h) {
        cropped.extend_from_slice(&row[..used_w]);
    }
    resize_plane(&cropped, used_w, used_h, dst, dst_w, dst_h);
}

#[cfg(test)]
mod tests {
    use super::*;
    use mjpeg_client::test_jpeg::rgb_jpeg;

    fn jpeg(width: usize, height: usize, subsamp: Subsamp) -> Frame {
        let pixels: Vec<u8> = (0..width * height * 3)
            .map(|i| ((i % (width * 3)) * 255 / (width * 3)) as u8)
            .collect();
        let data = rgb_jpeg(&pixels, width, height, 90, subsamp);
        let mut frame = Frame::from_jpeg(&data, width as u32, height as u32, 77);
        frame.seq = 1;
        frame
    }

    #[test]
    fn every_size_and_subsampling_comes_out_as_asked_but_never_larger_than_the_source() {
        let mut transcoder = Transcoder::new().expect("transcoder");
        for subsamp in [
            Subsamp::Sub2x2,
            Subsamp::Sub2x1,
            Subsamp::None,
            Subsamp::Gray,
        ] {
            let source = jpeg(640, 480, subsamp);
            for size in [
                (320, 240),
                (160, 120),
                (80, 60),
                (640, 480),
                (300, 200),
                (1280, 720),
                (642, 482),
            ] {
                let out = transcoder
                    .transcode(&source, Some(size), 50, 2)
                    .unwrap_or_else(|e| panic!("{subsamp:?} {size:?}: {e}"));
                let header = turbojpeg::read_header(out.jpeg()).expect("decodable");
                assert_eq!(
                    (header.width as u32, header.height as u32),
                    (size.0.min(640), size.1.min(480)),
                    "{subsamp:?}"
                );
                assert_eq!((out.seq, out.captured_us), (2, 77));
            }
        }
    }

    #[test]
    fn quality_changes_the_size() {
        let mut transcoder = Transcoder::new().expect("transcoder");
        let source = jpeg(320, 240, Subsamp::Sub2x2);
        let high = transcoder
            .transcode(&source, None, 95, 1)
            .expect("high")
            .jpeg()
            .len();
        let low = transcoder
            .transcode(&source, None, 10, 2)
            .expect("low")
            .jpeg()
            .len();
        assert!(low < high, "{low} < {high}");
    }

    #[test]
    fn resampling_keeps_flat_areas_flat() {
        let src = vec![100u8; 64 * 48];
        let mut dst = vec![0u8; 20 * 10];
        resize_plane(&src, 64, 48, &mut dst, 20, 10);
        assert!(dst.iter().all(|&p| p == 100));
    }

    #[test]
    fn dct_scaling_is_chosen_to_stay_above_the_target() {
        assert_eq!(scaling_for(640, 480, (320, 240)), ScalingFactor::ONE_HALF);
        assert_eq!(scaling_for(640, 480, (300, 200)), ScalingFactor::ONE_HALF);
        assert_eq!(scaling_for(640, 480, (80, 60)), ScalingFactor::ONE_EIGHTH);
        assert_eq!(scaling_for(640, 480, (1280, 720)), ScalingFactor::ONE);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut transcoder = Transcoder::new().expect("transcoder");
        let junk = Frame::from_jpeg(&[0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9], 2, 2, 0);
        assert!(
            transcoder
                .transcode(&junk, Some((320, 240)), 50, 1)
                .is_err()
        );
    }
}

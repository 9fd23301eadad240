//! The test pattern: a YUYV picture at the configured size and rate, with textured content
//! that scrolls, a bouncing block and a frame counter, so every frame differs and JPEG
//! sizes are like a camera's. It is the embedded default's source and the benchmarks' input.

use std::time::Duration;

use super::{FrameSource, Mode, SourceError};
use crate::font::YuyvCanvas;
use crate::frame::{CapturedFrame, Pixels, monotonic_us};
use crate::pacing::Ticker;

pub struct TestPattern {
    name: String,
    width: usize,
    height: usize,
    fps: u32,
    /// The background, twice as wide as the frame so it can scroll.
    texture: Vec<u8>,
    frame: Vec<u8>,
    counter: u64,
    ticker: Ticker,
}

impl TestPattern {
    pub fn new(name: &str, width: u32, height: u32, fps: u32) -> TestPattern {
        let (width, height) = (width as usize, height as usize);
        TestPattern {
            name: name.to_owned(),
            width,
            height,
            fps,
            texture: make_texture(width * 2, height),
            frame: vec![0; width * height * 2],
            counter: 0,
            ticker: Ticker::new(fps),
        }
    }

    /// Draws frame number `counter` into `self.frame`.
    fn render(&mut self) {
        let (width, height) = (self.width, self.height);
        let row_bytes = width * 2;
        // Scroll by an even number of pixels so the U/V pairing stays aligned.
        let shift = ((self.counter as usize * 4) % width) & !1;
        for row in 0..height {
            let source = &self.texture[row * row_bytes * 2 + shift * 2..][..row_bytes];
            self.frame[row * row_bytes..][..row_bytes].copy_from_slice(source);
        }
        let mut canvas = YuyvCanvas {
            data: &mut self.frame,
            width,
            height,
        };
        let block = (height / 6).max(8);
        let span_x = width.saturating_sub(block).max(1);
        let span_y = height.saturating_sub(block).max(1);
        let t = self.counter as usize * 7;
        let x = bounce(t, span_x);
        let y = bounce(t * 3 / 5, span_y);
        canvas.fill_rect(x, y, block, block, [235, 90, 200]);
        let scale = (height / 120).max(1);
        let label = format!("{} {:06}", self.name, self.counter);
        let label_width = crate::font::text_width(&label, scale);
        canvas.fill_rect(0, 0, label_width + 4 * scale, 11 * scale, [16, 128, 128]);
        canvas.draw_text(2 * scale, 2 * scale, scale, &label, 235);
    }
}

/// Position of something moving back and forth over `span` pixels.
pub fn bounce(t: usize, span: usize) -> usize {
    let phase = t % (2 * span);
    if phase < span {
        phase
    } else {
        2 * span - phase
    }
}

/// A smooth, camera-like YUYV texture: value noise at two scales over colour gradients.
fn make_texture(width: usize, height: usize) -> Vec<u8> {
    let coarse = NoiseGrid::new(width / 24 + 2, height / 24 + 2, 0x9E37_79B9);
    let fine = NoiseGrid::new(width / 6 + 2, height / 6 + 2, 0x85EB_CA6B);
    let mut data = vec![0u8; width * height * 2];
    for y in 0..height {
        for x in 0..width {
            let luma = 0.7 * coarse.sample(x as f32 / 24.0, y as f32 / 24.0)
                + 0.3 * fine.sample(x as f32 / 6.0, y as f32 / 6.0);
            let i = (y * width + x) * 2;
            data[i] = (16.0 + luma * 219.0) as u8;
            data[i + 1] = if x % 2 == 0 {
                (64 + (x * 128 / width)) as u8
            } else {
                (192 - (y * 128 / height.max(1))) as u8
            };
        }
    }
    data
}

/// Random values on a grid, interpolated between the points.
struct NoiseGrid {
    width: usize,
    values: Vec<f32>,
}

impl NoiseGrid {
    fn new(width: usize, height: usize, seed: u32) -> NoiseGrid {
        let mut state = seed;
        let values = (0..width * height)
            .map(|_| {
                // xorshift32: deterministic, so every run draws the same pattern.
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state & 0xFFFF) as f32 / 65535.0
            })
            .collect();
        NoiseGrid { width, values }
    }

    fn sample(&self, x: f32, y: f32) -> f32 {
        let (x0, y0) = (x as usize, y as usize);
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let at = |gx: usize, gy: usize| self.values[gy * self.width + gx];
        let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
        let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    }
}

impl FrameSource for TestPattern {
    fn description(&self) -> String {
        "test pattern".to_owned()
    }

    fn mode(&self) -> Mode {
        Mode {
            width: self.width as u32,
            height: self.height as u32,
            format: "YUYV",
            fps: self.fps,
        }
    }

    fn next_frame(&mut self, timeout: Duration) -> Result<CapturedFrame<'_>, SourceError> {
        if !self.ticker.wait(timeout) {
            return Err(SourceError::Timeout);
        }
        let captured_us = monotonic_us();
        self.counter += 1;
        self.render();
        Ok(CapturedFrame {
            pixels: Pixels::Yuyv(&self.frame),
            width: self.width as u32,
            height: self.height as u32,
            captured_us,
            dropped_before: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_configured_size_and_differ() {
        let mut pattern = TestPattern::new("cam", 160, 120, 1000);
        let first = pattern
            .next_frame(Duration::from_secs(1))
            .expect("frame")
            .pixels
            .data()
            .to_vec();
        assert_eq!(first.len(), 160 * 120 * 2);
        let second = pattern.next_frame(Duration::from_secs(1)).expect("frame");
        assert_ne!(first.as_slice(), second.pixels.data());
    }

    #[test]
    fn frames_come_at_the_configured_rate() {
        let mut pattern = TestPattern::new("cam", 32, 32, 20);
        // The first frame is due at once; the next 50 ms later.
        assert!(pattern.next_frame(Duration::from_millis(10)).is_ok());
        assert_eq!(
            pattern.next_frame(Duration::from_millis(1)).err(),
            Some(SourceError::Timeout)
        );
    }

    #[test]
    fn tiny_sizes_do_not_panic() {
        let mut pattern = TestPattern::new("a-very-long-camera-name", 16, 16, 1000);
        for _ in 0..5 {
            pattern.next_frame(Duration::from_secs(1)).expect("frame");
        }
    }
}

//! The "NO SIGNAL" card: what clients see while a camera is gone. It is drawn at the
//! stream's size, names the camera and counts the seconds since the signal was lost, so
//! every card differs from the last (a frozen picture is never shown).

use std::fmt::Write as _;

use crate::font::{self, YuyvCanvas};

pub struct NoSignalCard {
    width: usize,
    height: usize,
    camera: String,
    yuyv: Vec<u8>,
    /// The "LOST N S AGO" line, rewritten in place: nothing is allocated per card.
    lost: String,
}

const BACKGROUND: [u8; 3] = [40, 128, 128];
const BAND: [u8; 3] = [76, 84, 255];

impl NoSignalCard {
    pub fn new(camera: &str, width: u32, height: u32) -> NoSignalCard {
        NoSignalCard {
            width: width as usize,
            height: height as usize,
            camera: camera.to_uppercase(),
            yuyv: vec![0; width as usize * height as usize * 2],
            lost: String::with_capacity(32),
        }
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width as u32, self.height as u32)
    }

    /// Draws the card for `seconds` since the signal was lost; returns YUYV pixels.
    pub fn render(&mut self, seconds: u64) -> &[u8] {
        let (width, height) = (self.width, self.height);
        let mut canvas = YuyvCanvas {
            data: &mut self.yuyv,
            width,
            height,
        };
        canvas.fill_rect(0, 0, width, height, BACKGROUND);
        let title = "NO SIGNAL";
        let scale = (width / (font::text_width(title, 1) + 8)).clamp(1, 8);
        let band_height = (font::CELL_HEIGHT + 4) * scale;
        let band_top = height.saturating_sub(band_height) / 2;
        canvas.fill_rect(0, band_top, width, band_height, BAND);
        let x = width.saturating_sub(font::text_width(title, scale)) / 2;
        canvas.draw_text(x, band_top + 2 * scale, scale, title, 235);
        let small = (scale / 3).max(1);
        self.lost.clear();
        let _ = write!(self.lost, "LOST {seconds} S AGO");
        let mut y = band_top + band_height + 2 * small * font::CELL_HEIGHT / 2;
        for line in [self.camera.as_str(), self.lost.as_str()] {
            let x = width.saturating_sub(font::text_width(line, small)) / 2;
            canvas.draw_text(x, y, small, line, 200);
            y += (font::CELL_HEIGHT + 3) * small;
        }
        &self.yuyv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_fit_any_size_and_change_every_second() {
        for (w, h) in [(640, 480), (16, 16), (1920, 1080), (320, 240)] {
            let mut card = NoSignalCard::new("front", w, h);
            let first = card.render(0).to_vec();
            assert_eq!(first.len(), (w * h * 2) as usize);
            if w >= 320 {
                assert_ne!(first, card.render(1), "{w}x{h}");
            }
        }
    }
}

//! A vision program streaming its own annotated frames, like cscore's `CvSource`:
//! it takes frames from the test pattern (a stand-in for a camera it processes), draws a
//! "target" box and crosshair on them, and pushes them to the camera `overlay`, which is
//! served exactly like a camera at http://<host>:1181/overlay.mjpg
//!
//!     cargo run --release --example overlay            # then open the printed URL
//!     cargo run --release --example overlay -- 5       # stop after 5 seconds

use std::time::{Duration, Instant};

use frcstream::config::{CameraConfig, Config, SourceSpec};
use frcstream::font::YuyvCanvas;
use frcstream::source::FrameSource;
use frcstream::source::test_pattern::TestPattern;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let run_for = std::env::args().nth(1).and_then(|s| s.parse::<u64>().ok());

    let mut config = Config::embedded_default();
    config.cameras = vec![CameraConfig {
        name: "overlay".into(),
        source: SourceSpec::Pushed,
        ..CameraConfig::embedded_default()
    }];
    let streamer = frcstream::Streamer::start(&config)?;
    for url in streamer.urls() {
        log::info!("open {url}");
    }
    let overlay = streamer
        .pushed_stream("overlay")
        .ok_or("no pushed camera")?;
    // Settings are changeable from code, validated like everywhere else.
    overlay.set_fps(20)?;
    overlay.set_quality(60)?;

    let (width, height) = (640usize, 480usize);
    let mut camera = TestPattern::new("vision", width as u32, height as u32, 30);
    let mut frame = vec![0u8; width * height * 2];
    let started = Instant::now();
    let mut frames = 0u64;
    while run_for.is_none_or(|seconds| started.elapsed() < Duration::from_secs(seconds)) {
        let captured = match camera.next_frame(Duration::from_millis(100)) {
            Ok(captured) => captured,
            Err(_) => continue,
        };
        // Drawing costs time: skip it when nobody watches.
        if !overlay.has_viewers() {
            continue;
        }
        frame.copy_from_slice(captured.pixels.data());
        draw_target(&mut frame, width, height, frames);
        overlay.push_yuyv(&frame, width as u32, height as u32)?;
        frames += 1;
    }
    streamer.stop();
    Ok(())
}

/// A box around a pretend target that drifts across the picture, and a crosshair.
fn draw_target(frame: &mut [u8], width: usize, height: usize, n: u64) {
    let mut canvas = YuyvCanvas {
        data: frame,
        width,
        height,
    };
    let green = [150, 44, 21];
    let (cx, cy) = (width / 2, height / 2);
    canvas.fill_rect(cx - 20, cy - 1, 40, 2, green);
    canvas.fill_rect(cx - 1, cy - 20, 2, 40, green);
    let x = 40 + (n as usize * 3) % (width - 160);
    let y = height / 3;
    for (dx, dy, w, h) in [(0, 0, 80, 3), (0, 57, 80, 3), (0, 0, 3, 60), (77, 0, 3, 60)] {
        canvas.fill_rect(x + dx, y + dy, w, h, green);
    }
    canvas.draw_text(x, y + 66, 2, "TARGET", 235);
}

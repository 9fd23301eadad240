//! What the server says about itself: the HTML pages (`/`, `/<name>.html`) and
//! `/stats.json`. Everything is generated here, embedded in the binary: the field has no
//! internet, so nothing comes from a CDN.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Serialize;

use crate::camera::Camera;
use crate::stats::{ClientReport, LatencySummary, round2};

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1em;background:#111;color:#eee}\
a{color:#7cf}figure{display:inline-block;margin:0 1em 1em 0}\
img{max-width:100%;background:#222;display:block}figcaption{font-size:.9em;color:#aaa}";

/// The index: every camera with its live stream and its URLs.
pub fn index(cameras: &[Arc<Camera>]) -> String {
    let mut html = page_start("frcstream");
    html.push_str("<h1>frcstream</h1>\n");
    for camera in cameras {
        html.push_str(&camera_figure(camera));
    }
    html.push_str("<p><a href=\"/stats.json\">/stats.json</a></p>\n</body></html>\n");
    html
}

/// One camera's page.
pub fn camera_page(camera: &Camera) -> String {
    let mut html = page_start(&format!("{} — frcstream", camera.name));
    html.push_str(&camera_figure(camera));
    html.push_str("<p><a href=\"/\">all cameras</a></p>\n</body></html>\n");
    html
}

fn page_start(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(title)
    )
}

fn camera_figure(camera: &Camera) -> String {
    let name = escape(&camera.name);
    format!(
        "<figure><img src=\"/{name}.mjpg\" alt=\"{name}\">\
         <figcaption><b>{name}</b> — {mode} — {source}<br>\
         stream <a href=\"/{name}.mjpg\">/{name}.mjpg</a> · \
         snapshot <a href=\"/{name}.jpg\">/{name}.jpg</a></figcaption></figure>\n",
        mode = escape(&camera.mode().to_string()),
        source = escape(&camera.source_description()),
    )
}

#[derive(Serialize)]
struct StatsReport {
    uptime_seconds: f64,
    cameras: Vec<CameraReport>,
}

#[derive(Serialize)]
struct CameraReport {
    name: String,
    source: String,
    mode: String,
    connected: bool,
    settings: SettingsReport,
    /// Frames per second: from the source, into the slot, and sent to all clients together.
    captured_fps: f64,
    published_fps: f64,
    delivered_fps: f64,
    bytes_per_second: f64,
    mbit_per_second: f64,
    clients: usize,
    frames: FrameCounts,
    latency: LatencySummary,
    client_list: Vec<ClientReport>,
    /// Other sizes and qualities being watched, each encoded once per frame.
    variants: Vec<crate::variants::VariantReport>,
}

#[derive(Serialize)]
struct SettingsReport {
    fps: u32,
    quality: u8,
}

#[derive(Serialize)]
struct FrameCounts {
    captured: u64,
    published: u64,
    encodes: u64,
    passthroughs: u64,
    /// Corrupt frames from the source, dropped.
    invalid: u64,
    /// Frames not encoded because nobody watched.
    idle: u64,
    /// Frames the camera dropped (sequence gaps).
    camera_drops: u64,
    delivered: u64,
    /// Frames re-encoded for variants (other sizes or qualities), all variants together.
    variant_encodes: u64,
}

/// `/stats.json`.
pub fn stats_json(cameras: &[Arc<Camera>], started: Instant) -> String {
    let report = StatsReport {
        uptime_seconds: round2(started.elapsed().as_secs_f64()),
        cameras: cameras.iter().map(|c| camera_report(c)).collect(),
    };
    serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn camera_report(camera: &Camera) -> CameraReport {
    let stats = &camera.stats;
    let bytes_per_second = stats.bytes_sent.rate().round();
    CameraReport {
        name: camera.name.clone(),
        source: camera.source_description(),
        mode: camera.mode().to_string(),
        connected: camera.is_connected(),
        settings: SettingsReport {
            fps: camera.settings.fps(),
            quality: camera.settings.quality(),
        },
        captured_fps: round2(stats.captured.rate()),
        published_fps: round2(stats.published.rate()),
        delivered_fps: round2(stats.delivered.rate()),
        bytes_per_second,
        mbit_per_second: round2(bytes_per_second * 8.0 / 1e6),
        clients: stats.client_count(),
        frames: FrameCounts {
            captured: stats.captured.total(),
            published: stats.published.total(),
            encodes: stats.encodes.load(Ordering::Relaxed),
            passthroughs: stats.passthroughs.load(Ordering::Relaxed),
            invalid: stats.invalid_frames.load(Ordering::Relaxed),
            idle: stats.idle_frames.load(Ordering::Relaxed),
            camera_drops: stats.camera_drops.load(Ordering::Relaxed),
            delivered: stats.delivered.total(),
            variant_encodes: camera.variants.encodes.load(Ordering::Relaxed),
        },
        latency: stats.latency.summary(),
        client_list: stats.client_reports(),
        variants: camera.variants.report(),
    }
}

/// The body of a 404: what exists.
pub fn not_found(path: &str, urls: &[String]) -> String {
    let mut text = format!("404: nothing at {path}\n\nValid URLs:\n");
    for url in urls {
        text.push_str("  ");
        text.push_str(url);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CameraConfig;

    #[test]
    fn names_are_escaped_in_pages() {
        assert_eq!(
            escape("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }

    #[test]
    fn stats_json_lists_each_camera() {
        let camera = Arc::new(Camera::new(&CameraConfig::embedded_default()));
        let json: serde_json::Value =
            serde_json::from_str(&stats_json(&[camera], Instant::now())).expect("json");
        assert_eq!(json["cameras"][0]["name"], "cam");
        assert_eq!(json["cameras"][0]["frames"]["encodes"], 0);
        assert_eq!(json["cameras"][0]["settings"]["fps"], 30);
    }
}

//! What the server says about itself: the page (`/`, `/<name>.html`) and `/stats.json`.
//!
//! The page is one HTML document with its style and script inlined (`assets/`), embedded
//! in the binary: the field has no internet, so nothing comes from a CDN, and one request
//! loads it all. The script builds the cameras from `/stats.json` and
//! `/<name>/settings.json`; the server only fills in the title and a fallback list of
//! links for browsers without JavaScript.

use super::radio::{Radio, RadioReport};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde::Serialize;

use crate::camera::Camera;
use crate::robot_clock::RobotClockSync;
use crate::stats::{LatencySummary, StreamClientReport, round2};
use crate::switch::{Switch, SwitchReport};

const SHELL: &str = include_str!("assets/index.html");
const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The index: every camera with its live stream, stats and settings.
pub fn index(cameras: &[Arc<Camera>]) -> String {
    let count = match cameras.len() {
        1 => "1 camera".to_owned(),
        n => format!("{n} cameras"),
    };
    page("frcstream", "", &count, cameras.iter().map(|c| &**c))
}

/// One camera's page: the same page, showing that camera only.
pub fn camera_page(camera: &Camera) -> String {
    page(
        &format!("{} — frcstream", camera.name),
        &camera.name,
        "<a href=\"/\">all cameras</a>",
        std::iter::once(camera),
    )
}

/// Fills the shell. `where_html` is trusted markup; everything else is escaped.
fn page<'a>(
    title: &str,
    only: &str,
    where_html: &str,
    cameras: impl Iterator<Item = &'a Camera>,
) -> String {
    let mut links = String::new();
    for camera in cameras {
        let name = escape(&camera.name);
        links.push_str(&format!(
            "<p><b>{name}</b>: <a href=\"/{name}.mjpg\">stream</a> · \
             <a href=\"/{name}.jpg\">snapshot</a></p>"
        ));
    }
    // The script and style are inserted last so that nothing in them is taken for a
    // placeholder.
    SHELL
        .replace("{{TITLE}}", &escape(title))
        .replace("{{CAMERA}}", &escape(only))
        .replace("{{WHERE}}", where_html)
        .replace("{{NOSCRIPT}}", &links)
        .replace("{{STYLE}}", STYLE.trim_end())
        .replace("{{APP}}", script())
}

/// The script as served: without indentation and comment lines (a tenth smaller; the
/// source in `assets/` stays readable). Lines stay lines, so nothing changes meaning.
fn script() -> &'static str {
    static SERVED: OnceLock<String> = OnceLock::new();
    SERVED.get_or_init(|| {
        SCRIPT
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

#[derive(Serialize)]
struct StatsReport {
    uptime_seconds: f64,
    /// Switched streams: the camera each shows, its clients.
    switches: Vec<SwitchReport>,
    /// The robot's bandwidth budget and what the clients across the radio use of it.
    budget: BudgetReport,
    cameras: Vec<CameraReport>,
}

#[derive(Serialize)]
struct BudgetReport {
    /// `[server] max_mbit`; 0 is off.
    max_mbit: f64,
    /// Sent to clients across the radio (not loopback), all cameras, over the last second.
    used_mbit: f64,
    remote_clients: usize,
    /// The turns the remote clients take (`http/radio.rs`).
    radio: RadioReport,
}

fn budget_report(cameras: &[Arc<Camera>], radio: &Radio) -> BudgetReport {
    let remote: Vec<_> = cameras
        .iter()
        .flat_map(|c| c.stats.clients())
        .filter(|c| c.link.is_remote())
        .collect();
    let used: f64 = remote.iter().map(|c| c.bytes.rate()).sum();
    BudgetReport {
        max_mbit: cameras.first().map_or(0.0, |c| c.governor.budget_mbit()),
        used_mbit: round2(used * 8.0 / 1e6),
        remote_clients: remote.len(),
        radio: radio.report(),
    }
}

#[derive(Serialize)]
struct CameraReport {
    name: String,
    source: String,
    mode: String,
    connected: bool,
    /// Why the camera is not streaming (e.g. the USB bus is out of bandwidth), or null.
    problem: Option<String>,
    /// The values in force: the match profile's while the FMS is attached.
    settings: SettingsReport,
    /// `normal` or `match` (`match_profile.rs`), and why.
    profile: crate::settings::Profile,
    profile_reason: String,
    /// Frames per second: from the source, into the slot, and sent to all clients together.
    captured_fps: f64,
    published_fps: f64,
    delivered_fps: f64,
    bytes_per_second: f64,
    mbit_per_second: f64,
    clients: usize,
    frames: FrameCounts,
    /// Capture to send, ms.
    latency: LatencySummary,
    /// The offset to the robot's clock (NetworkTables server time) and its round trip, µs,
    /// while synchronised.
    robot_clock: Option<RobotClockSync>,
    /// The newest frame's capture time in the robot's clock, µs.
    frame_robot_time_us: Option<i64>,
    client_list: Vec<StreamClientReport>,
    /// Other sizes and qualities being watched, each encoded once per frame.
    variants: Vec<crate::variants::VariantReport>,
    /// The bandwidth budget's choice for this camera, and why.
    governor: crate::governor::GovernorReport,
}

#[derive(Serialize)]
struct SettingsReport {
    fps: u32,
    quality: u8,
    /// Where fps, quality and each control not at the camera's own value come from.
    origin: std::collections::BTreeMap<String, crate::settings::Origin>,
}

#[derive(Serialize)]
struct FrameCounts {
    captured: u64,
    published: u64,
    encodes: u64,
    passthroughs: u64,
    budget_transcodes: u64,
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
pub fn stats_json(
    cameras: &[Arc<Camera>],
    switches: &[Arc<Switch>],
    radio: &Radio,
    started: Instant,
) -> String {
    let report = StatsReport {
        switches: switches.iter().map(|s| s.report()).collect(),
        uptime_seconds: round2(started.elapsed().as_secs_f64()),
        budget: budget_report(cameras, radio),
        cameras: cameras.iter().map(|c| camera_report(c)).collect(),
    };
    serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn camera_report(camera: &Camera) -> CameraReport {
    let stats = &camera.stats;
    let (profile, profile_reason) = camera.settings.profile();
    let bytes_per_second = stats.bytes_sent.rate().round();
    CameraReport {
        name: camera.name.clone(),
        source: camera.source_description(),
        mode: camera.mode().to_string(),
        connected: camera.is_connected(),
        problem: camera.problem(),
        settings: SettingsReport {
            fps: camera.settings.fps(),
            quality: camera.settings.quality(),
            origin: camera.origins(),
        },
        profile,
        profile_reason,
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
            budget_transcodes: stats.budget_transcodes.load(Ordering::Relaxed),
            invalid: stats.invalid_frames.load(Ordering::Relaxed),
            idle: stats.idle_frames.load(Ordering::Relaxed),
            camera_drops: stats.camera_drops.load(Ordering::Relaxed),
            delivered: stats.delivered.total(),
            variant_encodes: camera.variants.encodes.load(Ordering::Relaxed),
        },
        latency: stats.latency.summary(),
        robot_clock: camera.robot_clock.sync(),
        frame_robot_time_us: camera.frame_robot_time_us(),
        client_list: stats.stream_client_reports(),
        variants: camera.variants.report(),
        governor: camera.governor_report(),
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
    fn the_page_is_one_self_contained_document() {
        let camera = Arc::new(Camera::new(&CameraConfig::embedded_default()));
        let html = index(&[Arc::clone(&camera)]);
        assert!(html.starts_with("<!DOCTYPE html>"));
        for placeholder in [
            "{{TITLE}}",
            "{{CAMERA}}",
            "{{WHERE}}",
            "{{NOSCRIPT}}",
            "{{STYLE}}",
            "{{APP}}",
        ] {
            assert!(!html.contains(placeholder), "{placeholder} was left");
        }
        assert!(html.contains("<style>:root{") && html.contains("MAX_LIVE"));
        // Nothing from elsewhere: the field has no internet.
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(
            html.contains("href=\"/cam.mjpg\""),
            "links without JavaScript"
        );
        // 20,000 before the switches' selector (1.2 KB) came, 21,000 before the budget's
        // size and the radio's turns.
        assert!(html.len() < 21_500, "the page is {} bytes", html.len());
        let page = camera_page(&camera);
        assert!(page.contains("data-camera=\"cam\"") && page.contains("<title>cam — frcstream"));
    }

    /// `/stats.json` of a server with `camera` alone, no switch, no budget.
    fn stats_of(camera: Arc<Camera>) -> serde_json::Value {
        let text = stats_json(&[camera], &[], &Radio::default(), Instant::now());
        serde_json::from_str(&text).expect("json")
    }

    #[test]
    fn stats_json_lists_each_camera() {
        let camera = Arc::new(Camera::new(&CameraConfig::embedded_default()));
        let json = stats_of(camera);
        assert_eq!(json["cameras"][0]["name"], "cam");
        assert_eq!(json["cameras"][0]["frames"]["encodes"], 0);
        assert_eq!(json["cameras"][0]["settings"]["fps"], 30);
        assert_eq!(json["cameras"][0]["settings"]["origin"]["fps"], "default");
        // The budget's governor has not capped anything without clients.
        assert_eq!(json["cameras"][0]["governor"]["quality"], 50);
        assert_eq!(json["cameras"][0]["governor"]["quality_capped"], false);
        assert_eq!(json["budget"]["used_mbit"], 0.0);
        // No NetworkTables, no robot clock.
        assert_eq!(json["cameras"][0]["robot_clock"], serde_json::Value::Null);
        assert_eq!(
            json["cameras"][0]["frame_robot_time_us"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn stats_json_shows_the_robot_clock_and_the_newest_frame_in_it() {
        let camera = Arc::new(Camera::new(&CameraConfig::embedded_default()));
        camera.robot_clock.set(Some(RobotClockSync {
            offset_us: 5_000,
            rtt_us: 300,
        }));
        let mut frame = crate::frame::Frame::from_jpeg(b"\xFF\xD8\xFF\xD9", 2, 2, 1_000);
        frame.seq = 1;
        camera.slot.publish(Arc::new(frame));
        let json = stats_of(camera);
        assert_eq!(json["cameras"][0]["robot_clock"]["offset_us"], 5_000);
        assert_eq!(json["cameras"][0]["robot_clock"]["rtt_us"], 300);
        assert_eq!(json["cameras"][0]["frame_robot_time_us"], 6_000);
    }
}

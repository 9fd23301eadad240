//! `GET /events`: the settings of every camera as Server-Sent Events, so the web page
//! hears of a change the moment any writer makes it (HTTP, NetworkTables, the library)
//! instead of polling for it.
//!
//! The stream starts with one `settings` event per camera (the values in force, with
//! their origins: the page starts in sync), then sends one whenever a camera's change feed
//! (`settings::ChangeFeed`) announces a change, and a comment line every
//! [`KEEP_ALIVE`] so proxies and the browser keep the connection. Each event's data is the
//! JSON a POST answers (`http/settings.rs::in_force_json`) with the camera's name and who
//! changed it:
//!
//! ```text
//! event: settings
//! data: {"camera":"front","key":"fps","writer":"NetworkTables","fps":15,"quality":50,"controls":{..},"origins":{..}}
//! ```
//!
//! A switched stream's selection comes the same way, as a `switch` event (the switch as
//! `/stats.json` shows it, and who selected):
//!
//! ```text
//! event: switch
//! data: {"name":"driver","selected":"back","cameras":["front","back"],"clients":1,"writer":"NetworkTables"}
//! ```
//!
//! An event stream holds one of the server's stream places, like an MJPEG client.

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use serde_json::{Value, json};

use super::settings::in_force_json;
use crate::camera::Camera;
use crate::settings::{ChangeFeed, Changed, SubscriberId};
use crate::switch::Switch;

/// How often a comment line keeps a quiet stream open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// How often the thread looks at the stop flag and whether the client left.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// The response head: an event stream, not cached, the body until the connection closes.
pub const HEAD: &str = "HTTP/1.1 200 OK\r\n\
    Content-Type: text/event-stream\r\n\
    Cache-Control: no-cache\r\n\
    X-Accel-Buffering: no\r\n\
    Connection: close\r\n\r\n";

/// One `settings` event: the camera's values in force, and the change that caused it
/// (none for the events a stream opens with).
pub fn settings_event(camera: &Camera, change: Option<&Changed>) -> String {
    let mut data: Value = serde_json::from_str(&in_force_json(camera)).unwrap_or(Value::Null);
    if let Some(object) = data.as_object_mut() {
        object.insert("camera".into(), json!(camera.name));
        object.insert("key".into(), json!(change.map(|c| &c.key)));
        object.insert("writer".into(), json!(change.map(|c| c.writer.as_str())));
    }
    format!("event: settings\ndata: {data}\n\n")
}

/// Streams events to `stream` until the client leaves (`gone`), a write fails or the
/// server stops.
pub fn serve(
    stream: &mut TcpStream,
    cameras: &[Arc<Camera>],
    switches: &[Arc<Switch>],
    gone: &AtomicBool,
    stop: &AtomicBool,
) -> io::Result<()> {
    let (sender, changes) = crossbeam_channel::bounded(ChangeFeed::BACKLOG);
    let _subscribed = Subscribed(
        cameras
            .iter()
            .map(|camera| (camera, camera.changes.subscribe_with(sender.clone())))
            .collect(),
    );
    let _switches_subscribed = SwitchesSubscribed(
        switches
            .iter()
            .map(|switch| (switch, switch.changes.subscribe_with(sender.clone())))
            .collect(),
    );
    drop(sender);
    let mut opening = String::from("retry: 1000\n\n");
    for camera in cameras {
        opening.push_str(&settings_event(camera, None));
    }
    for switch in switches {
        opening.push_str(&switch_event(switch, None));
    }
    stream.write_all(HEAD.as_bytes())?;
    stream.write_all(opening.as_bytes())?;
    let mut last_write = Instant::now();
    while !stop.load(Ordering::Relaxed) && !gone.load(Ordering::Relaxed) {
        match changes.recv_timeout(LOOK_EVERY) {
            Ok(change) => {
                let event = match switches.iter().find(|s| s.name == change.camera) {
                    Some(switch) => switch_event(switch, Some(&change)),
                    None => event_for(cameras, &change),
                };
                stream.write_all(event.as_bytes())?;
                last_write = Instant::now();
            }
            Err(RecvTimeoutError::Timeout) => {
                if last_write.elapsed() >= KEEP_ALIVE {
                    stream.write_all(b": keep-alive\n\n")?;
                    last_write = Instant::now();
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    Ok(())
}

/// This stream's subscriptions, ended when it ends.
struct Subscribed<'a>(Vec<(&'a Arc<Camera>, SubscriberId)>);

impl Drop for Subscribed<'_> {
    fn drop(&mut self) {
        for (camera, id) in &self.0 {
            camera.changes.unsubscribe(*id);
        }
    }
}

/// This stream's subscriptions to switches, ended when it ends.
struct SwitchesSubscribed<'a>(Vec<(&'a Arc<Switch>, SubscriberId)>);

impl Drop for SwitchesSubscribed<'_> {
    fn drop(&mut self) {
        for (switch, id) in &self.0 {
            switch.changes.unsubscribe(*id);
        }
    }
}

/// One `switch` event: the camera a switch shows, and who selected it (none for the
/// events a stream opens with).
pub fn switch_event(switch: &Switch, change: Option<&Changed>) -> String {
    let mut data = serde_json::to_value(switch.report()).unwrap_or(Value::Null);
    if let Some(object) = data.as_object_mut() {
        object.insert("writer".into(), json!(change.map(|c| c.writer.as_str())));
    }
    format!("event: switch\ndata: {data}\n\n")
}

/// The event for a change: the changed camera's values now (several changes in a row
/// each send the newest values; the page only ever shows the newest).
fn event_for(cameras: &[Arc<Camera>], change: &Changed) -> String {
    cameras
        .iter()
        .find(|camera| camera.name == change.camera)
        .map(|camera| settings_event(camera, Some(change)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CameraConfig;

    #[test]
    fn an_event_carries_the_values_in_force_and_who_changed_them() {
        let camera = Camera::new(&CameraConfig::embedded_default());
        let change = Changed {
            camera: "cam".into(),
            key: "fps".into(),
            writer: crate::settings::Writer::NetworkTables,
        };
        let event = settings_event(&camera, Some(&change));
        let data = event
            .strip_prefix("event: settings\ndata: ")
            .and_then(|rest| rest.strip_suffix("\n\n"))
            .expect("one event");
        assert!(!data.contains('\n'), "one data line: {data}");
        let data: Value = serde_json::from_str(data).expect("JSON");
        assert_eq!(data["camera"], "cam");
        assert_eq!(
            (&data["key"], &data["writer"]),
            (&json!("fps"), &json!("NetworkTables"))
        );
        assert_eq!(data["fps"], 30);
        assert_eq!(data["origins"]["quality"], "default");
    }
}

//! `[[switch]]` tables: a switched stream (cscore's `addSwitchedCamera`) that shows one of
//! several cameras at a time, under a name of its own.
//!
//! ```toml
//! [[switch]]
//! name = "driver"
//! cameras = ["front", "back"]   # the first is shown at start
//! ```
//!
//! A switch's name follows the camera name rules and may not be a camera's name: both are
//! stream URLs (`/driver.mjpg`) and NetworkTables keys (`/CameraPublisher/driver/`).

use serde::Deserialize;
use toml::Spanned;

use super::{CameraConfig, ValidationError, check_camera_name};

/// One switched stream, validated: its cameras exist, in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchConfig {
    pub name: String,
    /// Camera names; the first is selected at start.
    pub cameras: Vec<String>,
}

/// A `[[switch]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSwitch {
    name: Spanned<String>,
    cameras: Spanned<Vec<Spanned<String>>>,
}

/// Checks every `[[switch]]` table against the cameras and the other switches.
pub(super) fn validate_switches(
    raw: Vec<RawSwitch>,
    cameras: &[CameraConfig],
) -> Result<Vec<SwitchConfig>, ValidationError> {
    let mut switches: Vec<SwitchConfig> = Vec::with_capacity(raw.len());
    for (index, raw) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("switch[{index}].{field}");
        let name_span = raw.name.span();
        let name = raw.name.into_inner();
        check_camera_name(&name).map_err(|m| {
            (
                name_span.clone(),
                key("name"),
                m.replacen("camera", "switch", 1),
            )
        })?;
        if cameras.iter().any(|c| c.name == name) {
            return Err((
                name_span,
                key("name"),
                format!(
                    "switch name \"{name}\" is also a camera's name: both are stream URLs, pick another (e.g. \"driver\")"
                ),
            ));
        }
        if let Some(first) = switches.iter().position(|s| s.name == name) {
            return Err((
                name_span,
                key("name"),
                format!(
                    "duplicate switch name \"{name}\" (also switch[{first}]): names must be unique"
                ),
            ));
        }
        let list_span = raw.cameras.span();
        let listed = raw.cameras.into_inner();
        if listed.is_empty() {
            return Err((
                list_span,
                key("cameras"),
                "a switch needs at least one camera, e.g. cameras = [\"front\", \"back\"]"
                    .to_owned(),
            ));
        }
        let mut names: Vec<String> = Vec::with_capacity(listed.len());
        for camera in listed {
            let span = camera.span();
            let camera = camera.into_inner();
            if !cameras.iter().any(|c| c.name == camera) {
                let known: Vec<&str> = cameras.iter().map(|c| c.name.as_str()).collect();
                return Err((
                    span,
                    key("cameras"),
                    format!(
                        "\"{camera}\" is not a camera of this config (cameras: {})",
                        known.join(", ")
                    ),
                ));
            }
            if names.contains(&camera) {
                return Err((
                    span,
                    key("cameras"),
                    format!("camera \"{camera}\" is listed twice"),
                ));
            }
            names.push(camera);
        }
        switches.push(SwitchConfig {
            name,
            cameras: names,
        });
    }
    Ok(switches)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const CAMERAS: &str = "[[camera]]\nname = \"front\"\n[[camera]]\nname = \"back\"\n";

    fn error_text(switches: &str) -> String {
        let text = format!("{CAMERAS}{switches}");
        match Config::parse(&text, Path::new("test.toml")) {
            Ok(config) => panic!("accepted: {:?}", config.switches),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_switch_lists_existing_cameras_in_order() {
        let text =
            format!("{CAMERAS}[[switch]]\nname = \"driver\"\ncameras = [\"back\", \"front\"]\n");
        let config = Config::parse(&text, Path::new("test.toml")).expect("valid");
        assert_eq!(config.switches.len(), 1);
        assert_eq!(config.switches[0].name, "driver");
        assert_eq!(config.switches[0].cameras, ["back", "front"]);
    }

    #[test]
    fn bad_switches_name_key_and_line() {
        let cases = [
            (
                "[[switch]]\nname = \"front\"\ncameras = [\"back\"]\n",
                "switch[0].name",
                "line 6",
                "also a camera",
            ),
            (
                "[[switch]]\nname = \"stats\"\ncameras = [\"back\"]\n",
                "switch[0].name",
                "line 6",
                "reserved",
            ),
            (
                "[[switch]]\nname = \"a b\"\ncameras = [\"back\"]\n",
                "switch[0].name",
                "line 6",
                "switch name",
            ),
            (
                "[[switch]]\nname = \"driver\"\ncameras = []\n",
                "switch[0].cameras",
                "line 7",
                "at least one",
            ),
            (
                "[[switch]]\nname = \"driver\"\ncameras = [\"front\", \"side\"]\n",
                "switch[0].cameras",
                "line 7",
                "\"side\" is not a camera",
            ),
            (
                "[[switch]]\nname = \"driver\"\ncameras = [\"front\", \"front\"]\n",
                "switch[0].cameras",
                "line 7",
                "twice",
            ),
            (
                "[[switch]]\nname = \"driver\"\ncameras = [\"front\"]\n[[switch]]\nname = \"driver\"\ncameras = [\"back\"]\n",
                "switch[1].name",
                "line 9",
                "duplicate",
            ),
            (
                "[[switch]]\nname = \"driver\"\ncamera = [\"front\"]\n",
                "switch[0]",
                "line 7",
                "unknown field `camera`",
            ),
        ];
        for (switches, key, line, words) in cases {
            let message = error_text(switches);
            assert!(message.contains(key), "{key}: {message}");
            assert!(message.contains(line), "{line}: {message}");
            assert!(message.contains(words), "{words}: {message}");
        }
    }
}

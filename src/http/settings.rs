//! Settings over HTTP: `POST /<name>` (form-encoded or JSON), cscore's
//! `/?action=command&<control>=<value>`, `/settings.json` and `/config.json`.
//!
//! Every value is checked before anything changes (`Camera::change`); a bad request gets
//! a 4xx that says what was wrong, and the camera keeps the settings it had. `forget=1`
//! (`{"forget": true}`), alone, drops the saved settings and this run's changes
//! (`Camera::forget_changes`). Each value shown says where it comes from (`origin`:
//! `default`, `config`, `saved`, `changed`).

use serde_json::{Map, Value, json};

use super::request::Request;
use super::routes::{RouteError, parse_query};
use crate::camera::Camera;
use crate::controls::{ControlKind, ControlValue};
use crate::settings::{self, Writer};

/// Why a settings request was refused: the status and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsRequestError {
    pub status: u16,
    pub reason: String,
}

fn refuse(status: u16, reason: impl Into<String>) -> SettingsRequestError {
    SettingsRequestError {
        status,
        reason: reason.into(),
    }
}

/// The changes a POST asks for, from a form or a JSON object.
pub fn parse_body(request: &Request) -> Result<Vec<(String, ControlValue)>, SettingsRequestError> {
    if request.body.is_empty() {
        return Err(refuse(
            400,
            "empty body: send fps=..&quality=.. (form) or {\"fps\": .., \"quality\": ..} (JSON)",
        ));
    }
    let content_type = request
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    match media_type {
        "application/x-www-form-urlencoded" => parse_form(&request.body),
        "application/json" => parse_json(&request.body),
        other => Err(refuse(
            415,
            format!(
                "content type \"{other}\" is not accepted: use application/x-www-form-urlencoded or application/json"
            ),
        )),
    }
}

fn parse_form(body: &[u8]) -> Result<Vec<(String, ControlValue)>, SettingsRequestError> {
    let text = std::str::from_utf8(body).map_err(|_| refuse(400, "the form is not UTF-8"))?;
    let pairs = parse_query(text.trim()).map_err(|e| match e {
        RouteError::BadParameter(reason) => refuse(400, reason),
        _ => refuse(400, "malformed form"),
    })?;
    Ok(pairs
        .into_iter()
        .map(|(k, v)| (k, ControlValue::Text(v)))
        .collect())
}

fn parse_json(body: &[u8]) -> Result<Vec<(String, ControlValue)>, SettingsRequestError> {
    let object: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| refuse(400, format!("the body is not a JSON object: {e}")))?;
    object
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                Value::Bool(b) => ControlValue::Bool(b),
                Value::String(s) => ControlValue::Text(s),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => ControlValue::Int(i),
                    None => {
                        return Err(refuse(
                            400,
                            format!("{key} must be a whole number, not {n}"),
                        ));
                    }
                },
                other => {
                    return Err(refuse(
                        400,
                        format!("{key} must be a number, true/false or a string, not {other}"),
                    ));
                }
            };
            Ok((key, value))
        })
        .collect()
}

/// Applies the changes, all or nothing; or, for `forget`, forgets them.
pub fn apply(
    camera: &Camera,
    changes: &[(String, ControlValue)],
) -> Result<(), SettingsRequestError> {
    if asks_to_forget(changes)? {
        camera.forget_changes(Writer::Http);
        return Ok(());
    }
    camera
        .change(Writer::Http, changes)
        .map_err(|e| refuse(400, e.to_string()))
}

/// Whether the request is `forget=1` (or `true`); `forget` with anything else is refused.
fn asks_to_forget(changes: &[(String, ControlValue)]) -> Result<bool, SettingsRequestError> {
    let Some((_, value)) = changes.iter().find(|(key, _)| key == "forget") else {
        return Ok(false);
    };
    if changes.len() > 1 {
        return Err(refuse(
            400,
            "forget goes alone: send forget=1 without other settings",
        ));
    }
    let yes = match value {
        ControlValue::Bool(b) => *b,
        ControlValue::Int(i) => *i == 1,
        ControlValue::Text(t) => matches!(t.trim(), "1" | "true"),
    };
    if !yes {
        return Err(refuse(400, format!("forget takes 1 or true, not {value}")));
    }
    Ok(true)
}

/// Where each value in force comes from: `{"fps": "saved", "brightness": "config", ..}`.
fn origins_json(camera: &Camera) -> Map<String, Value> {
    camera
        .origins()
        .into_iter()
        .map(|(key, origin)| (key, json!(origin.as_str())))
        .collect()
}

/// The state file, for the page: `{"file": "/var/lib/frcstream/settings.json"}` or null.
fn saved_json(camera: &Camera) -> Value {
    json!({ "file": camera.state_file().map(|f| f.path().display().to_string()) })
}

/// The values in force, as answered to a POST: `{"fps":..,"quality":..,"controls":{..}}`.
pub fn in_force_json(camera: &Camera) -> String {
    let controls: Map<String, Value> = camera
        .controls
        .list()
        .into_iter()
        .map(|c| (c.name, json!(c.value)))
        .collect();
    json!({
        "fps": camera.settings.fps(),
        "quality": camera.settings.quality(),
        "profile": camera.settings.profile().0,
        "controls": controls,
        "origins": origins_json(camera),
    })
    .to_string()
}

/// cscore's `/settings.json`: `{"controls":[...],"modes":[...]}`, values as strings as
/// cscore writes them. frcstream's own stream settings (fps, quality) come first. Beyond
/// cscore: each control's `origin`, and `saved_settings` (the state file, or null).
pub fn settings_json(camera: &Camera) -> String {
    let mode = camera.mode();
    // frcstream's own run-time settings first, as cscore properties, from the settings
    // table; fps's default is what the source delivers.
    let mut controls: Vec<Value> = settings::RUN_TIME
        .into_iter()
        .enumerate()
        .map(|(id, spec)| {
            let default = match spec.key {
                "fps" => i64::from(mode.fps),
                _ => spec.int_default(),
            };
            let range = spec.int_range();
            cscore_control(
                spec.key,
                id,
                "2",
                *range.start(),
                *range.end(),
                1,
                default,
                camera.settings.get(spec),
                None,
            )
        })
        .collect();
    let first_control_id = controls.len();
    for (index, control) in camera.controls.list().into_iter().enumerate() {
        let (kind, menu) = match control.kind {
            ControlKind::Boolean | ControlKind::Button => ("1", None),
            ControlKind::Menu | ControlKind::IntegerMenu => {
                let menu: Map<String, Value> = control
                    .menu
                    .iter()
                    .map(|(value, name)| (value.to_string(), json!(name)))
                    .collect();
                ("8", Some(menu))
            }
            ControlKind::Integer => ("2", None),
        };
        controls.push(cscore_control(
            &control.name,
            index + first_control_id,
            kind,
            control.min,
            control.max,
            control.step,
            control.default,
            control.value,
            menu,
        ));
    }
    let pixel_format = match mode.format {
        "MJPEG" => "MJPEG",
        "YUYV" => "YUYV",
        "GRAY" => "gray",
        _ => "unknown",
    };
    for control in &mut controls {
        let name = control["name"].as_str().unwrap_or_default().to_owned();
        if let Some(object) = control.as_object_mut() {
            object.insert("origin".into(), json!(camera.origin(&name).as_str()));
        }
    }
    json!({
        "controls": controls,
        "saved_settings": saved_json(camera),
        "modes": [{
            "pixelFormat": pixel_format,
            "width": mode.width.to_string(),
            "height": mode.height.to_string(),
            "fps": mode.fps.to_string(),
        }],
    })
    .to_string()
}

#[allow(clippy::too_many_arguments)]
fn cscore_control(
    name: &str,
    id: usize,
    kind: &str,
    min: i64,
    max: i64,
    step: i64,
    default: i64,
    value: i64,
    menu: Option<Map<String, Value>>,
) -> Value {
    let mut control = json!({
        "name": name,
        "id": id.to_string(),
        "type": kind,
        "min": min.to_string(),
        "max": max.to_string(),
        "step": step.to_string(),
        "default": default.to_string(),
        "value": value.to_string(),
    });
    if let (Some(menu), Some(object)) = (menu, control.as_object_mut()) {
        object.insert("menu".into(), Value::Object(menu));
    }
    control
}

/// cscore's `/config.json`: the current mode and property values.
pub fn config_json(camera: &Camera) -> String {
    let mode = camera.mode();
    let properties: Vec<Value> = camera
        .controls
        .list()
        .into_iter()
        .map(|c| json!({"name": c.name, "value": c.value}))
        .collect();
    json!({
        "pixel format": mode.format.to_ascii_lowercase(),
        "width": mode.width,
        "height": mode.height,
        "fps": camera.settings.fps(),
        "quality": camera.settings.quality(),
        "connected": camera.is_connected(),
        "properties": properties,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CameraConfig;

    fn post(content_type: &str, body: &str) -> Request {
        let text = format!(
            "POST /cam HTTP/1.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut pending = Vec::new();
        super::super::request::read_request(&mut text.as_bytes(), &mut pending).expect("request")
    }

    #[test]
    fn forms_and_json_give_the_same_changes() {
        let form = parse_body(&post(
            "application/x-www-form-urlencoded",
            "fps=10&quality=40",
        ))
        .expect("form");
        assert_eq!(
            form,
            vec![
                ("fps".to_owned(), ControlValue::Text("10".into())),
                ("quality".to_owned(), ControlValue::Text("40".into())),
            ]
        );
        let json = parse_body(&post(
            "application/json; charset=utf-8",
            r#"{"fps": 10, "quality": "40"}"#,
        ))
        .expect("json");
        assert_eq!(
            json,
            vec![
                ("fps".to_owned(), ControlValue::Int(10)),
                ("quality".to_owned(), ControlValue::Text("40".into())),
            ]
        );
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        let status = |ct: &str, body: &str| parse_body(&post(ct, body)).map_err(|r| r.status).err();
        assert_eq!(status("text/plain", "fps=10"), Some(415));
        assert_eq!(status("application/json", "[1,2]"), Some(400));
        assert_eq!(status("application/json", "{\"fps\": 1.5}"), Some(400));
        assert_eq!(status("application/json", "{\"fps\": null}"), Some(400));
        assert_eq!(status("application/json", "{\"fps\": "), Some(400));
        assert_eq!(
            status("application/x-www-form-urlencoded", "fps=%zz"),
            Some(400)
        );
        assert_eq!(status("application/json", ""), Some(400));
    }

    #[test]
    fn cscore_json_shapes() {
        let camera = Camera::new(&CameraConfig::embedded_default());
        let settings: Value = serde_json::from_str(&settings_json(&camera)).expect("json");
        assert_eq!(settings["controls"][0]["name"], "fps");
        assert_eq!(settings["controls"][0]["value"], "30");
        assert_eq!(settings["modes"][0]["width"], "640");
        let config: Value = serde_json::from_str(&config_json(&camera)).expect("json");
        assert_eq!(config["quality"], 50);
        let in_force: Value = serde_json::from_str(&in_force_json(&camera)).expect("json");
        assert_eq!(in_force["fps"], 30);
    }
    #[test]
    fn forget_goes_alone_and_takes_1_or_true() {
        let camera = Camera::new(&CameraConfig::embedded_default());
        let changes = |pairs: &[(&str, ControlValue)]| -> Vec<(String, ControlValue)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        apply(&camera, &changes(&[("fps", ControlValue::Int(10))])).expect("fps");
        let origins: Value = serde_json::from_str(&in_force_json(&camera)).expect("json");
        assert_eq!(origins["origins"]["fps"], "changed");
        for bad in [
            changes(&[
                ("forget", ControlValue::Text("1".into())),
                ("fps", ControlValue::Int(5)),
            ]),
            changes(&[("forget", ControlValue::Text("0".into()))]),
            changes(&[("forget", ControlValue::Bool(false))]),
            changes(&[("forget", ControlValue::Text("please".into()))]),
        ] {
            let refusal = apply(&camera, &bad).expect_err("refused");
            assert_eq!(refusal.status, 400, "{bad:?}");
            assert_eq!(camera.settings.fps(), 10, "nothing changed");
        }
        for good in [
            changes(&[("forget", ControlValue::Text("1".into()))]),
            changes(&[("forget", ControlValue::Bool(true))]),
            changes(&[("forget", ControlValue::Int(1))]),
        ] {
            apply(&camera, &changes(&[("fps", ControlValue::Int(10))])).expect("fps");
            apply(&camera, &good).expect("forget");
            assert_eq!(camera.settings.fps(), 30, "{good:?}");
        }
        let settings: Value = serde_json::from_str(&settings_json(&camera)).expect("json");
        assert_eq!(settings["controls"][0]["origin"], "default");
        assert_eq!(settings["saved_settings"]["file"], Value::Null);
    }
}

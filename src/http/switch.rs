//! A switch over HTTP: `POST /<switch>` with `selected=<camera>` (form) or
//! `{"selected": "<camera>"}` (JSON) selects the camera the switch's streams show, through
//! the one write path, [`Switch::select`]; the answer is the switch as `/stats.json` shows
//! it, or a 400 that names the cameras to choose from.

use super::request::Request;
use super::settings::{SettingsRequestError, parse_body};
use crate::controls::ControlValue;
use crate::settings::Writer;
use crate::switch::{SELECTED, Switch};

/// Selects the camera a POST names; the switch as JSON, or why not.
pub fn select(switch: &Switch, request: &Request) -> Result<String, SettingsRequestError> {
    let name = selected_name(parse_body(request)?)?;
    switch
        .select(Writer::Http, &name)
        .map_err(|refusal| SettingsRequestError {
            status: 400,
            reason: refusal.to_string(),
        })?;
    serde_json::to_string(&switch.report()).map_err(|e| SettingsRequestError {
        status: 500,
        reason: format!("cannot write the answer: {e}"),
    })
}

/// The camera name of a body that has `selected` and nothing else.
fn selected_name(fields: Vec<(String, ControlValue)>) -> Result<String, SettingsRequestError> {
    let refuse = |reason: String| SettingsRequestError {
        status: 400,
        reason,
    };
    let mut name = None;
    for (key, value) in fields {
        match (key.as_str(), value) {
            (SELECTED, ControlValue::Text(camera)) => name = Some(camera),
            (SELECTED, other) => {
                return Err(refuse(format!(
                    "selected must be a camera name, not {other}"
                )));
            }
            (other, _) => {
                return Err(refuse(format!(
                    "a switch takes only `selected=<camera>`, not `{other}` (change a camera's settings at /<camera>)"
                )));
            }
        }
    }
    name.ok_or_else(|| {
        refuse("send selected=<camera> (form) or {\"selected\": \"<camera>\"} (JSON)".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, ControlValue)]) -> Vec<(String, ControlValue)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn only_a_camera_name_under_selected_is_taken() {
        assert_eq!(
            selected_name(fields(&[("selected", ControlValue::Text("back".into()))]))
                .map_err(|e| e.reason),
            Ok("back".to_owned())
        );
        for (body, words) in [
            (fields(&[("selected", ControlValue::Int(2))]), "camera name"),
            (fields(&[("fps", ControlValue::Int(2))]), "only `selected"),
            (fields(&[]), "send selected="),
        ] {
            let refusal = selected_name(body).expect_err("refused");
            assert_eq!(refusal.status, 400);
            assert!(refusal.reason.contains(words), "{}", refusal.reason);
        }
    }
}

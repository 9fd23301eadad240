//! The URL map: which request goes where, and the per-client stream parameters that
//! dashboards append (`resolution`, `fps`, `compression`), checked strictly.
//!
//! Kept apart from the handlers so the whole URL surface reads in one place and can be
//! tested without a socket.

/// A request, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// MJPEG stream of camera `camera` (an index into the server's cameras).
    Stream { camera: usize, params: StreamParams },
    /// One JPEG.
    Snapshot { camera: usize },
    /// The page listing every camera.
    Index,
    /// The page of one camera.
    CameraPage { camera: usize },
    /// Statistics as JSON.
    Stats,
    /// The first camera's fps setting, as plain text.
    Fps,
    /// The first camera's quality setting, as plain text.
    Quality,
    /// Change settings and controls of a camera (POST body, form or JSON).
    Change { camera: usize },
    /// cscore's `/?action=command&<control>=<value>`: the changes from the query.
    Command {
        camera: usize,
        changes: Vec<(String, String)>,
    },
    /// cscore's `/settings.json`: controls and modes.
    SettingsJson { camera: usize },
    /// cscore's `/config.json`: current mode and values.
    ConfigJson { camera: usize },
}

/// Per-client stream parameters (Shuffleboard's and Elastic's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamParams {
    /// Frames per second for this client only; `None` is the camera's rate.
    pub fps: Option<u32>,
    /// Requested size.
    pub resolution: Option<(u32, u32)>,
    /// JPEG quality 0–100; `Some(-1)` asks for the camera's own JPEG.
    pub compression: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed,
    BadParameter(String),
}

/// Resolves a request for `path?query` against the camera names.
pub fn resolve(
    method: &str,
    path: &str,
    query: &str,
    cameras: &[&str],
) -> Result<Route, RouteError> {
    if cameras.is_empty() {
        return Err(RouteError::NotFound);
    }
    let name_path = path.trim_start_matches('/');
    let find = |name: &str| cameras.iter().position(|c| *c == name);
    let by_suffix = |suffix: &str| name_path.strip_suffix(suffix).and_then(find);
    if method == "POST" {
        let camera = match path {
            "/settings" => Some(0),
            _ => find(name_path).or_else(|| by_suffix("/settings")),
        };
        return camera
            .map(|camera| Route::Change { camera })
            .ok_or(RouteError::NotFound);
    }
    if method != "GET" && method != "HEAD" {
        return Err(RouteError::MethodNotAllowed);
    }
    let query = parse_query(query)?;
    let action = query
        .iter()
        .find(|(k, _)| k == "action")
        .map(|(_, v)| v.as_str());
    let stream =
        |camera: usize| stream_params(&query).map(|params| Route::Stream { camera, params });
    match (path, action) {
        ("/", Some("stream")) => return stream(0),
        ("/", Some("snapshot")) => return Ok(Route::Snapshot { camera: 0 }),
        ("/", Some("command")) => {
            let changes = query
                .into_iter()
                .filter(|(k, _)| k != "action" && k != "name")
                .collect();
            return Ok(Route::Command { camera: 0, changes });
        }
        ("/", Some(other)) => {
            return Err(RouteError::BadParameter(format!(
                "action \"{other}\" is not known: use action=stream, action=snapshot or action=command"
            )));
        }
        ("/" | "/index.html", None) => return Ok(Route::Index),
        ("/stream.mjpg", _) => return stream(0),
        ("/snapshot.jpg", _) => return Ok(Route::Snapshot { camera: 0 }),
        ("/stats.json", _) => return Ok(Route::Stats),
        ("/fps", _) => return Ok(Route::Fps),
        ("/quality", _) => return Ok(Route::Quality),
        ("/settings.json", _) => return Ok(Route::SettingsJson { camera: 0 }),
        ("/config.json", _) => return Ok(Route::ConfigJson { camera: 0 }),
        _ => {}
    }
    // `/<name>/?action=...`: cscore's URLs, per camera on the shared port (NetworkTables
    // advertises `/<name>/?action=stream` for a camera without a port of its own).
    if let (Some(camera), Some(action)) = (name_path.strip_suffix('/').and_then(find), action) {
        return match action {
            "stream" => stream(camera),
            "snapshot" => Ok(Route::Snapshot { camera }),
            "command" => Ok(Route::Command {
                camera,
                changes: query
                    .into_iter()
                    .filter(|(k, _)| k != "action" && k != "name")
                    .collect(),
            }),
            other => Err(RouteError::BadParameter(format!(
                "action \"{other}\" is not known: use action=stream, action=snapshot or action=command"
            ))),
        };
    }
    if let Some(camera) = by_suffix(".mjpg").or_else(|| by_suffix("/stream.mjpg")) {
        return stream(camera);
    }
    if let Some(camera) = by_suffix(".jpg").or_else(|| by_suffix(".jpeg")) {
        return Ok(Route::Snapshot { camera });
    }
    if let Some(camera) = by_suffix(".html") {
        return Ok(Route::CameraPage { camera });
    }
    if let Some(camera) = by_suffix("/settings.json") {
        return Ok(Route::SettingsJson { camera });
    }
    if let Some(camera) = by_suffix("/config.json") {
        return Ok(Route::ConfigJson { camera });
    }
    Err(RouteError::NotFound)
}

/// The URLs a user can open, for the 404 page and the log.
pub fn valid_urls(cameras: &[&str]) -> Vec<String> {
    let mut urls = vec![
        "/".to_owned(),
        "/stream.mjpg".to_owned(),
        "/?action=stream".to_owned(),
        "/?action=snapshot".to_owned(),
        "/snapshot.jpg".to_owned(),
        "/stats.json".to_owned(),
        "/settings.json".to_owned(),
        "/config.json".to_owned(),
        "/?action=command&<control>=<value>".to_owned(),
        "/fps".to_owned(),
        "/quality".to_owned(),
        "POST /settings".to_owned(),
    ];
    for name in cameras {
        urls.push(format!("/{name}.mjpg"));
        urls.push(format!("/{name}/stream.mjpg"));
        urls.push(format!("/{name}/?action=stream"));
        urls.push(format!("/{name}.jpg"));
        urls.push(format!("/{name}.html"));
        urls.push(format!("/{name}/settings.json"));
        urls.push(format!("/{name}/config.json"));
        urls.push(format!("POST /{name}"));
    }
    urls
}

fn stream_params(query: &[(String, String)]) -> Result<StreamParams, RouteError> {
    let mut params = StreamParams::default();
    for (key, value) in query {
        match key.as_str() {
            // `name` is sent by cscore clients and ignored, as cscore does.
            "action" | "name" => {}
            "fps" => params.fps = Some(parse_fps(value)?),
            "compression" => params.compression = Some(parse_compression(value)?),
            "resolution" => params.resolution = Some(parse_resolution(value)?),
            other => {
                return Err(RouteError::BadParameter(format!(
                    "unknown parameter \"{other}\": streams take resolution=WxH, fps=N and compression=0..100 (or -1)"
                )));
            }
        }
    }
    // fps=0 is cscore's "no limit".
    params.fps = params.fps.filter(|&fps| fps > 0);
    Ok(params)
}

fn bad(key: &str, value: &str, why: &str) -> RouteError {
    RouteError::BadParameter(format!("{key}=\"{value}\": {why}"))
}

fn parse_fps(value: &str) -> Result<u32, RouteError> {
    match value.parse::<u32>() {
        Ok(fps) if fps <= 120 => Ok(fps),
        _ => Err(bad(
            "fps",
            value,
            "must be a whole number from 0 (no limit) to 120",
        )),
    }
}

fn parse_compression(value: &str) -> Result<i32, RouteError> {
    match value.parse::<i32>() {
        Ok(q) if (-1..=100).contains(&q) => Ok(q),
        _ => Err(bad(
            "compression",
            value,
            "must be a JPEG quality from 0 to 100, or -1 for the camera's own JPEG",
        )),
    }
}

fn parse_resolution(value: &str) -> Result<(u32, u32), RouteError> {
    let why = "must be WIDTHxHEIGHT, each from 16 to 4096, e.g. 320x240";
    let (w, h) = value
        .split_once(['x', 'X'])
        .ok_or_else(|| bad("resolution", value, why))?;
    match (w.parse::<u32>(), h.parse::<u32>()) {
        (Ok(w), Ok(h)) if (16..=4096).contains(&w) && (16..=4096).contains(&h) => Ok((w, h)),
        _ => Err(bad("resolution", value, why)),
    }
}

/// Splits `a=1&b=x%20y` into decoded pairs.
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, RouteError> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            Ok((percent_decode(key)?, percent_decode(value)?))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` (as a space), refusing malformed escapes and non-UTF-8.
pub fn percent_decode(text: &str) -> Result<String, RouteError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        RouteError::BadParameter(format!("\"{text}\" has a malformed %-escape"))
                    })?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| RouteError::BadParameter(format!("\"{text}\" is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAMERAS: &[&str] = &["front", "back"];

    fn get(target: &str) -> Result<Route, RouteError> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        resolve("GET", path, query, CAMERAS)
    }

    fn stream(camera: usize) -> Route {
        Route::Stream {
            camera,
            params: StreamParams::default(),
        }
    }

    #[test]
    fn every_stream_url_form_resolves() {
        assert_eq!(get("/front.mjpg"), Ok(stream(0)));
        assert_eq!(get("/back.mjpg"), Ok(stream(1)));
        assert_eq!(get("/back/stream.mjpg"), Ok(stream(1)));
        assert_eq!(get("/stream.mjpg"), Ok(stream(0)));
        assert_eq!(get("/?action=stream"), Ok(stream(0)));
        assert_eq!(get("/back/?action=stream"), Ok(stream(1)));
        assert_eq!(get("/front/?action=stream"), Ok(stream(0)));
        assert_eq!(
            get("/back/?action=snapshot"),
            Ok(Route::Snapshot { camera: 1 })
        );
        assert!(matches!(
            get("/back/?action=dance"),
            Err(RouteError::BadParameter(_))
        ));
        assert_eq!(get("/side/?action=stream"), Err(RouteError::NotFound));
    }

    #[test]
    fn every_snapshot_and_page_url_resolves() {
        for (url, camera) in [
            ("/back.jpg", 1),
            ("/back.jpeg", 1),
            ("/?action=snapshot", 0),
            ("/snapshot.jpg", 0),
        ] {
            assert_eq!(get(url), Ok(Route::Snapshot { camera }), "{url}");
        }
        assert_eq!(get("/"), Ok(Route::Index));
        assert_eq!(get("/back.html"), Ok(Route::CameraPage { camera: 1 }));
        assert_eq!(get("/stats.json"), Ok(Route::Stats));
        assert_eq!(get("/fps"), Ok(Route::Fps));
        assert_eq!(get("/quality"), Ok(Route::Quality));
    }

    #[test]
    fn dashboard_parameters_are_parsed() {
        let route =
            get("/stream.mjpg?resolution=320x240&fps=10&compression=30&name=x").expect("ok");
        let params = StreamParams {
            fps: Some(10),
            resolution: Some((320, 240)),
            compression: Some(30),
        };
        assert_eq!(route, Route::Stream { camera: 0, params });
        let route = get("/?action=stream&compression=-1&fps=0").expect("ok");
        let params = StreamParams {
            fps: None,
            resolution: None,
            compression: Some(-1),
        };
        assert_eq!(route, Route::Stream { camera: 0, params });
    }

    #[test]
    fn bad_parameters_say_which_and_why() {
        for (url, needle) in [
            ("/front.mjpg?fps=fast", "fps=\"fast\""),
            ("/front.mjpg?fps=-3", "fps=\"-3\""),
            ("/front.mjpg?compression=101", "compression"),
            ("/front.mjpg?resolution=320", "resolution"),
            ("/front.mjpg?resolution=0x0", "resolution"),
            ("/front.mjpg?colour=red", "unknown parameter \"colour\""),
            ("/front.mjpg?fps=%zz", "malformed"),
            ("/?action=dance", "action"),
        ] {
            match get(url) {
                Err(RouteError::BadParameter(message)) => {
                    assert!(message.contains(needle), "{url}: {message}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn settings_urls() {
        assert_eq!(
            resolve("POST", "/back", "", CAMERAS),
            Ok(Route::Change { camera: 1 })
        );
        assert_eq!(
            resolve("POST", "/back/settings", "", CAMERAS),
            Ok(Route::Change { camera: 1 })
        );
        assert_eq!(
            resolve("POST", "/settings", "", CAMERAS),
            Ok(Route::Change { camera: 0 })
        );
        assert_eq!(get("/settings.json"), Ok(Route::SettingsJson { camera: 0 }));
        assert_eq!(
            get("/back/config.json"),
            Ok(Route::ConfigJson { camera: 1 })
        );
        assert_eq!(
            get("/?action=command&brightness=10&name=x"),
            Ok(Route::Command {
                camera: 0,
                changes: vec![("brightness".into(), "10".into())]
            })
        );
        assert_eq!(
            get("/back/?action=command&brightness=10"),
            Ok(Route::Command {
                camera: 1,
                changes: vec![("brightness".into(), "10".into())]
            })
        );
    }

    #[test]
    fn unknown_paths_and_methods() {
        assert_eq!(get("/side.mjpg"), Err(RouteError::NotFound));
        assert_eq!(get("/../etc/passwd"), Err(RouteError::NotFound));
        assert_eq!(
            resolve("DELETE", "/", "", CAMERAS),
            Err(RouteError::MethodNotAllowed)
        );
        assert!(valid_urls(CAMERAS).contains(&"/back.mjpg".to_owned()));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c").as_deref(), Ok("a b c"));
        assert!(percent_decode("%4").is_err());
        assert!(percent_decode("%ff").is_err(), "not UTF-8");
    }
}

//! The URL map: which request goes where, and the per-client stream parameters that
//! dashboards append (`resolution`, `fps`, `compression`).
//!
//! Stream and snapshot parameters are read as leniently as cscore reads them
//! (`MjpegServerImpl::ProcessCommand`): dashboards build these URLs from user input, and
//! Elastic retries a refused stream forever without showing why. Empty values, unknown
//! names and values that are not numbers are ignored; numbers out of range are clamped to
//! what can be served. Each adjustment is kept as a note for the connection's log line.
//! Settings changes (`?action=command`, POST) stay strict: there a person or a program
//! asks for a change and must hear why it was refused.
//!
//! Kept apart from the handlers so the whole URL surface reads in one place and can be
//! tested without a socket.

use crate::settings;

/// A request, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// MJPEG stream of camera `camera` (an index into the server's cameras).
    Stream { camera: usize, params: StreamParams },
    /// One JPEG (`resolution=` and `compression=` apply, as for a stream).
    Snapshot { camera: usize, params: StreamParams },
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
    /// Every camera's settings as Server-Sent Events, as they change (`http/events.rs`).
    Events,
}

/// Per-client stream parameters (Shuffleboard's and Elastic's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamParams {
    /// Frames per second for this client only; `None` is the camera's rate.
    pub fps: Option<u32>,
    /// Requested size, each side in [`settings::STREAM_SIDE`]'s range or 0 for the camera's own (as
    /// cscore reads `resolution=0x0`).
    pub resolution: Option<(u32, u32)>,
    /// JPEG quality 0–100; `Some(-1)` asks for the camera's own JPEG.
    pub compression: Option<i32>,
    /// What was ignored or adjusted, and why: logged once for the client.
    pub notes: Vec<String>,
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
    let (query, malformed) = parse_query_lenient(query);
    let action = query
        .iter()
        .find(|(k, _)| k == "action")
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty());
    let stream = |camera: usize| {
        let params = stream_params(&query, &malformed);
        Ok(Route::Stream { camera, params })
    };
    let snapshot = |camera: usize| {
        let params = stream_params(&query, &malformed);
        Ok(Route::Snapshot { camera, params })
    };
    let command = |camera: usize| match malformed.first() {
        // A change of settings is strict: a value that cannot be read is refused.
        Some(note) => Err(RouteError::BadParameter(note.clone())),
        None => Ok(Route::Command {
            camera,
            changes: query
                .iter()
                .filter(|(k, _)| k != "action" && k != "name")
                .cloned()
                .collect(),
        }),
    };
    match (path, action) {
        ("/", Some("stream")) => return stream(0),
        ("/", Some("snapshot")) => return snapshot(0),
        ("/", Some("command")) => return command(0),
        ("/", Some(other)) => {
            return Err(RouteError::BadParameter(format!(
                "action \"{other}\" is not known: use action=stream, action=snapshot or action=command"
            )));
        }
        ("/" | "/index.html", None) => return Ok(Route::Index),
        ("/stream.mjpg", _) => return stream(0),
        ("/snapshot.jpg", _) => return snapshot(0),
        ("/stats.json", _) => return Ok(Route::Stats),
        ("/events", _) => return Ok(Route::Events),
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
            "snapshot" => snapshot(camera),
            "command" => command(camera),
            other => Err(RouteError::BadParameter(format!(
                "action \"{other}\" is not known: use action=stream, action=snapshot or action=command"
            ))),
        };
    }
    if let Some(camera) = by_suffix(".mjpg").or_else(|| by_suffix("/stream.mjpg")) {
        return stream(camera);
    }
    if let Some(camera) = by_suffix(".jpg").or_else(|| by_suffix(".jpeg")) {
        return snapshot(camera);
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
        "/events".to_owned(),
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

/// Reads a stream's (or snapshot's) parameters the way cscore does: empty values,
/// unknown names and values that are not numbers are ignored, numbers out of range are
/// clamped. `malformed` are the notes of pairs that could not even be decoded.
fn stream_params(query: &[(String, String)], malformed: &[String]) -> StreamParams {
    let mut params = StreamParams {
        notes: malformed.to_vec(),
        ..StreamParams::default()
    };
    for (key, value) in query {
        let note = match key.as_str() {
            // `name` is sent by cscore clients and ignored, as cscore does.
            "action" | "name" => Ok(None),
            _ if value.trim().is_empty() => Ok(None),
            "fps" => read_fps(value).map(|(fps, note)| {
                params.fps = fps;
                note
            }),
            "compression" => read_compression(value).map(|(quality, note)| {
                params.compression = Some(quality);
                note
            }),
            "resolution" => read_resolution(value).map(|(size, note)| {
                params.resolution = size;
                note
            }),
            other => Err(format!(
                "unknown parameter \"{other}\" ignored (streams take resolution=WxH, fps=N, compression=N)"
            )),
        };
        match note {
            Ok(Some(note)) | Err(note) => params.notes.push(note),
            Ok(None) => {}
        }
    }
    params
}

/// An adjustment worth a log line, or `Err` when the value was ignored.
type Reading<T> = Result<(T, Option<String>), String>;

fn ignored(key: &str, value: &str, why: &str) -> String {
    format!("{key}=\"{}\" ignored: {why}", shorten(value))
}

/// A value as it goes into a log line: at most 40 characters.
fn shorten(value: &str) -> String {
    match value.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

/// A number as dashboards write them: `15`, `15.0`, ` 15 `, `7.5`.
fn read_number(value: &str) -> Option<f64> {
    value.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `fps=`: 0 or less is no limit (cscore's 0), fractions round to the nearest whole rate
/// (at least 1), more than frcstream can serve is clamped.
fn read_fps(value: &str) -> Reading<Option<u32>> {
    let fps = read_number(value).ok_or_else(|| ignored("fps", value, "not a number"))?;
    if fps <= 0.0 {
        let note = (fps < 0.0).then(|| format!("fps={value}: no limit, as fps=0"));
        return Ok((None, note));
    }
    let rounded = settings::FPS.clamp_int(fps.round() as i64) as u32;
    let note = (f64::from(rounded) != fps).then(|| format!("fps={value} read as {rounded}"));
    Ok((Some(rounded), note))
}

/// `compression=`: a JPEG quality, clamped to [`settings::COMPRESSION`]'s range; -1 (or
/// any negative) is the camera's own JPEG.
fn read_compression(value: &str) -> Reading<i32> {
    let quality =
        read_number(value).ok_or_else(|| ignored("compression", value, "not a number"))?;
    // The range's ends fit an i32.
    let read = settings::COMPRESSION.clamp_int(quality.round() as i64) as i32;
    let note = (f64::from(read) != quality).then(|| format!("compression={value} read as {read}"));
    Ok((read, note))
}

/// `resolution=WxH`: each side clamped to [`settings::STREAM_SIDE`]'s range; 0 is the
/// camera's own.
fn read_resolution(value: &str) -> Reading<Option<(u32, u32)>> {
    let why = "expected WIDTHxHEIGHT, e.g. 320x240";
    let (w, h) = value
        .split_once(['x', 'X', '*'])
        .ok_or_else(|| ignored("resolution", value, why))?;
    let side = |text: &str| {
        read_number(text)
            .filter(|v| *v >= 0.0)
            .map(|v| v.round().min(f64::from(u32::MAX)) as u32)
    };
    let (Some(w), Some(h)) = (side(w), side(h)) else {
        return Err(ignored("resolution", value, why));
    };
    if (w, h) == (0, 0) {
        return Ok((None, None));
    }
    let clamp = |v: u32| {
        if v == 0 {
            0
        } else {
            settings::STREAM_SIDE.clamp_int(i64::from(v)) as u32
        }
    };
    let size = (clamp(w), clamp(h));
    let note = (size != (w, h)).then(|| {
        format!(
            "resolution={value} clamped to {}x{} (each side {}–{})",
            size.0,
            size.1,
            settings::STREAM_SIDE.min,
            settings::STREAM_SIDE.max
        )
    });
    Ok((Some(size), note))
}

/// Splits `a=1&b=x%20y` into decoded pairs, leaving out pairs that cannot be decoded and
/// saying why for each.
fn parse_query_lenient(query: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut pairs = Vec::new();
    let mut malformed = Vec::new();
    for part in query.split('&').filter(|part| !part.is_empty()) {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        match (percent_decode(key), percent_decode(value)) {
            (Ok(key), Ok(value)) if !key.is_empty() => pairs.push((key, value)),
            (Ok(_), Ok(_)) => {}
            (Err(RouteError::BadParameter(why)), _) | (_, Err(RouteError::BadParameter(why))) => {
                malformed.push(format!("{} ignored: {why}", shorten(part)))
            }
            (Err(_), _) | (_, Err(_)) => malformed.push(format!("{} ignored", shorten(part))),
        }
    }
    (pairs, malformed)
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

    fn snapshot(camera: usize) -> Route {
        Route::Snapshot {
            camera,
            params: StreamParams::default(),
        }
    }

    fn params_of(url: &str) -> StreamParams {
        match get(url) {
            Ok(Route::Stream { params, .. } | Route::Snapshot { params, .. }) => params,
            other => panic!("{url}: {other:?}"),
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
        assert_eq!(get("/back/?action=snapshot"), Ok(snapshot(1)));
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
            assert_eq!(get(url), Ok(snapshot(camera)), "{url}");
        }
        assert_eq!(get("/"), Ok(Route::Index));
        assert_eq!(
            get("/?action="),
            Ok(Route::Index),
            "an empty action is none"
        );
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
            notes: vec![],
        };
        assert_eq!(route, Route::Stream { camera: 0, params });
        let route = get("/?action=stream&compression=-1&fps=0").expect("ok");
        let params = StreamParams {
            fps: None,
            resolution: None,
            compression: Some(-1),
            notes: vec![],
        };
        assert_eq!(route, Route::Stream { camera: 0, params });
        let params = params_of("/back.jpg?resolution=160x120&compression=20");
        assert_eq!(
            (params.resolution, params.compression),
            (Some((160, 120)), Some(20))
        );
    }

    #[test]
    fn empty_values_are_skipped_silently_as_cscore_does() {
        for url in [
            "/front.mjpg?fps=&resolution=&compression=",
            "/front.mjpg?fps=&&name=&resolution=%20",
            "/?action=stream&fps=",
        ] {
            let params = params_of(url);
            assert_eq!(params, StreamParams::default(), "{url}");
        }
    }

    #[test]
    fn values_that_are_not_numbers_are_ignored_with_the_reason() {
        for (url, needle) in [
            ("/front.mjpg?fps=fast", "fps=\"fast\" ignored: not a number"),
            (
                "/front.mjpg?compression=high",
                "compression=\"high\" ignored",
            ),
            ("/front.mjpg?resolution=320", "resolution=\"320\" ignored"),
            ("/front.mjpg?resolution=axb", "resolution=\"axb\" ignored"),
            (
                "/front.mjpg?resolution=-1x240",
                "resolution=\"-1x240\" ignored",
            ),
            (
                "/front.mjpg?colour=red",
                "unknown parameter \"colour\" ignored",
            ),
            ("/front.mjpg?fps=%zz", "malformed"),
            ("/front.jpg?fps=%zz", "malformed"),
        ] {
            let params = params_of(url);
            assert_eq!(
                (params.fps, params.resolution, params.compression),
                (None, None, None),
                "{url}"
            );
            assert_eq!(params.notes.len(), 1, "{url}: {:?}", params.notes);
            assert!(
                params.notes[0].contains(needle),
                "{url}: {:?}",
                params.notes
            );
        }
    }

    #[test]
    fn numbers_out_of_range_are_clamped_to_what_can_be_served() {
        // (query, fps, resolution, compression) as read.
        type Case = (&'static str, Option<u32>, Option<(u32, u32)>, Option<i32>);
        let cases: &[Case] = &[
            ("fps=1000", Some(120), None, None),
            ("fps=-3", None, None, None),
            ("fps=7.5", Some(8), None, None),
            ("fps=0.2", Some(1), None, None),
            ("fps=15.0", Some(15), None, None),
            ("compression=101", None, None, Some(100)),
            ("compression=-7", None, None, Some(-1)),
            ("compression=30.4", None, None, Some(30)),
            ("resolution=8x8", None, Some((16, 16)), None),
            ("resolution=99999x240", None, Some((4096, 240)), None),
            ("resolution=321x241", None, Some((321, 241)), None),
            ("resolution=0x0", None, None, None),
            ("resolution=320x0", None, Some((320, 0)), None),
            ("resolution=640X480", None, Some((640, 480)), None),
        ];
        for &(query, fps, resolution, compression) in cases {
            let url = format!("/front.mjpg?{query}");
            let params = params_of(&url);
            assert_eq!(
                (params.fps, params.resolution, params.compression),
                (fps, resolution, compression),
                "{url}"
            );
        }
        let clamped = params_of("/front.mjpg?fps=1000&resolution=8x8");
        assert_eq!(clamped.notes.len(), 2, "{:?}", clamped.notes);
        assert!(clamped.notes[0].contains("fps=1000 read as 120"));
        assert!(clamped.notes[1].contains("clamped to 16x16"));
    }

    #[test]
    fn a_huge_value_is_cut_short_in_the_note() {
        let long = "9".repeat(5000);
        let params = params_of(&format!("/front.mjpg?resolution={long}"));
        assert!(params.notes[0].len() < 120, "{}", params.notes[0]);
    }

    #[test]
    fn settings_changes_in_the_url_stay_strict() {
        assert!(matches!(
            get("/?action=command&brightness=%zz"),
            Err(RouteError::BadParameter(why)) if why.contains("malformed")
        ));
        assert!(matches!(
            get("/?action=dance"),
            Err(RouteError::BadParameter(why)) if why.contains("action")
        ));
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

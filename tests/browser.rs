//! The page at `/` in a real browser: Debian's `chromium`, headless, driven through
//! `chromedriver`'s WebDriver protocol (JSON over HTTP, spoken with the crate's own
//! client). `scripts/setup.sh --test` installs both.
//!
//! It checks what a person in the pits would see: each stream decodes to its real size and
//! keeps moving, the stats fill in, moving the fps slider changes the rate the server
//! reports, a bad value shows the server's reason, read-only mode locks the inputs, a
//! missing camera says NO SIGNAL. Screenshots go to `target/browser/` and their paths are
//! printed.
//!
//! Without a browser the test prints `SKIPPED: ...` and passes, unless
//! `FRCSTREAM_REQUIRE_BROWSER=1`.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use frcstream::Streamer;
use mjpeg_client as client;
use serde_json::{Value, json};

const CAMERAS: &str = "[[camera]]\nname = \"front\"\nwidth = 640\nheight = 480\nfps = 30\n\
                       [[camera]]\nname = \"back\"\nwidth = 320\nheight = 240\nfps = 15\n";

/// Where screenshots and the driver's log go: `target/browser/`.
fn output_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let dir = target.join("browser");
    std::fs::create_dir_all(&dir).expect("create target/browser");
    dir
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.push("/usr/lib/chromium".into());
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// The SKIPPED banner, or a failure under `FRCSTREAM_REQUIRE_BROWSER=1`.
fn skip(reason: &str) {
    support::skip_unless_required(
        &support::BROWSER,
        "the_page_works_in_a_real_browser",
        reason,
    );
}

/// A chromedriver process and one browser session in it. Dropping it ends the session
/// (which closes the browser) and then the driver.
struct Browser {
    driver: Child,
    address: SocketAddr,
    session: String,
    profile: PathBuf,
}

impl Browser {
    fn start(chromium: &Path, chromedriver: &Path) -> Result<Browser, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let log = output_dir().join("chromedriver.log");
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", chromedriver.display()))?;
        let profile =
            std::env::temp_dir().join(format!("frcstream-chromium-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        let mut browser = Browser {
            driver,
            address,
            session: String::new(),
            profile,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match client::get(address, "/status") {
                Ok(r) if r.status == 200 => break,
                _ if Instant::now() > deadline => {
                    return Err(format!(
                        "chromedriver did not answer (log: {})",
                        log.display()
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,1000",
            &format!("--user-data-dir={}", browser.profile.display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let answer = browser
            .call("POST", "/session", &capabilities)
            .map_err(|e| format!("chromium did not start: {e} (log: {})", log.display()))?;
        browser.session = answer["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {answer}"))?
            .to_owned();
        browser.command("POST", "/timeouts", &json!({"script": 15_000}));
        Ok(browser)
    }

    /// A WebDriver call; the answer's `value`.
    fn call(&self, method: &str, path: &str, body: &Value) -> Result<Value, String> {
        let body = if method == "POST" {
            body.to_string().into_bytes()
        } else {
            Vec::new()
        };
        let response = client::request(
            self.address,
            method,
            path,
            &[("Content-Type", "application/json")],
            &body,
        )
        .map_err(|e| format!("{method} {path}: {e}"))?;
        let answer: Value = serde_json::from_slice(&response.body)
            .map_err(|e| format!("{method} {path}: not JSON ({e}): {}", response.text()))?;
        if response.status != 200 {
            return Err(format!(
                "{method} {path}: {}: {}",
                response.status, answer["value"]
            ));
        }
        Ok(answer["value"].clone())
    }

    /// A call in the session; panics on an error.
    fn command(&self, method: &str, path: &str, body: &Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn open(&self, url: &str) {
        self.command("POST", "/url", &json!({"url": url}));
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    fn run(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            &json!({"script": script, "args": []}),
        )
    }

    /// Runs an async function body; `await` works in it.
    fn run_async(&self, body: &str) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1];\
             (async () => {{ {body} }})().then(done, e => done('error: ' + e));"
        );
        self.command(
            "POST",
            "/execute/async",
            &json!({"script": script, "args": []}),
        )
    }

    /// Polls `expression` in the page until it is truthy; returns its value.
    fn wait_for(&self, what: &str, expression: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.run(&format!("return {expression};"));
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?} (last: {value})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.command("GET", "/screenshot", &Value::Null);
        let png = base64_decode(data.as_str().expect("screenshot is base64"));
        assert!(png.starts_with(b"\x89PNG"), "screenshot is a PNG");
        let path = output_dir().join(name);
        std::fs::write(&path, png).expect("write screenshot");
        println!("screenshot: {}", path.display());
        path
    }

    fn resize(&self, width: u32, height: u32) {
        self.command(
            "POST",
            "/window/rect",
            &json!({"width": width, "height": height}),
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = self.call("DELETE", &path, &Value::Null);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// What `/stats.json` says of one camera.
fn camera_stats(address: SocketAddr, name: &str) -> Value {
    let stats = support::stats(address);
    stats["cameras"]
        .as_array()
        .expect("cameras")
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .expect("camera in stats")
}

/// JavaScript: a hash of what an image shows now, drawn through a canvas.
const FRAME_HASH: &str = "const hash = img => {\
     const c = document.createElement('canvas');\
     c.width = img.naturalWidth; c.height = img.naturalHeight;\
     const g = c.getContext('2d'); g.drawImage(img, 0, 0);\
     const d = g.getImageData(0, 0, c.width, c.height).data;\
     let h = 2166136261;\
     for (let i = 0; i < d.length; i += 7) h = Math.imul(h ^ d[i], 16777619);\
     return h >>> 0; };";

#[test]
fn the_page_works_in_a_real_browser() {
    let (Some(chromium), Some(chromedriver)) = (
        find_program(&["chromium", "chromium-browser"]),
        find_program(&["chromedriver"]),
    ) else {
        skip("chromium or chromedriver is not installed");
        return;
    };
    let started = Instant::now();
    let streamer = support::start(CAMERAS, "");
    let address = streamer.local_addr();
    let browser = match Browser::start(&chromium, &chromedriver) {
        Ok(browser) => browser,
        Err(reason) => {
            skip(&reason);
            streamer.stop();
            return;
        }
    };
    let page = client::get(address, "/").expect("the page");
    assert_eq!(page.status, 200);
    println!("the page: {} bytes, everything included", page.body.len());
    browser.open(&format!("http://{address}/"));

    // Each stream decodes to its camera's real size.
    let sizes = browser.wait_for(
        "both streams showing",
        "(() => { const i = [...document.querySelectorAll('main img')];\
           return i.length === 2 && i.every(i => i.naturalWidth > 0) &&\
             i.map(i => [i.closest('section').id, i.naturalWidth, i.naturalHeight, i.getAttribute('src')]); })()",
        Duration::from_secs(10),
    );
    println!("streams in the page: {sizes}");
    // The page listens for settings changes (/events): one subscriber on every camera's
    // change feed, which had none (no NetworkTables here).
    let listening = support::wait_for(Duration::from_secs(5), || {
        streamer
            .cameras()
            .iter()
            .all(|camera| camera.changes.subscriber_count() == 1)
            .then_some(())
    });
    assert!(listening.is_some(), "the page does not listen to /events");
    assert_eq!(sizes[0][0], "cam-front");
    assert_eq!(
        (sizes[0][1].as_u64(), sizes[0][2].as_u64()),
        (Some(640), Some(480))
    );
    assert_eq!(sizes[1][0], "cam-back");
    assert_eq!(
        (sizes[1][1].as_u64(), sizes[1][2].as_u64()),
        (Some(320), Some(240))
    );
    assert!(
        sizes[0][3]
            .as_str()
            .is_some_and(|s| s.starts_with("/front.mjpg"))
    );

    // ... and keeps changing: what the images show differs 400 ms later.
    let changes = browser.run_async(&format!(
        "{FRAME_HASH} const imgs = [...document.querySelectorAll('main img')];\
         const first = imgs.map(hash);\
         await new Promise(r => setTimeout(r, 400));\
         return imgs.map((img, i) => [first[i], hash(img)]);"
    ));
    println!("frame hashes 400 ms apart: {changes}");
    for pair in changes.as_array().expect("hashes") {
        assert_ne!(pair[0], pair[1], "a stream stopped moving: {changes}");
    }

    // The stats fill in.
    let shown = browser.wait_for(
        "stats shown",
        "(() => { const b = document.querySelector('#cam-front .stats b');\
           return parseFloat(b.textContent) > 0 && b.textContent; })()",
        Duration::from_secs(5),
    );
    println!("front camera fps shown: {shown}");
    assert!(
        browser
            .run("return document.querySelector('#cam-front .stats').textContent")
            .as_str()
            .is_some_and(|s| s.contains("Mbit/s") && s.contains("latency")),
        "stats show Mbit/s and latency"
    );

    // Moving the fps slider changes the rate the server reports.
    browser.wait_for(
        "fps slider",
        "document.querySelector('#cam-front input[type=range][data-key=fps]')",
        Duration::from_secs(5),
    );
    // First the full rate (the first rate window after start-up is partly idle).
    let deadline = Instant::now() + Duration::from_secs(6);
    let before = loop {
        let front = camera_stats(address, "front");
        if front["published_fps"].as_f64() >= Some(20.0) {
            break front;
        }
        assert!(
            Instant::now() < deadline,
            "front never reached 20 fps: {front}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(before["settings"]["fps"], 30);
    browser.run(
        "const r = document.querySelector('#cam-front input[type=range][data-key=fps]');\
         r.value = 5;\
         r.dispatchEvent(new Event('input', {bubbles: true}));\
         r.dispatchEvent(new Event('change', {bubbles: true}));",
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while camera_stats(address, "front")["settings"]["fps"] != 5 {
        assert!(Instant::now() < deadline, "settings.fps did not become 5");
        std::thread::sleep(Duration::from_millis(50));
    }
    browser.wait_for(
        "the page confirms",
        "document.querySelector('#cam-front .msg').textContent.includes('fps 5') &&\
         document.querySelector('#cam-front input[type=number][data-key=fps]').value === '5'",
        Duration::from_secs(3),
    );
    // The rate is measured over 1 s windows: a window that starts after the change.
    let changed = Instant::now();
    let deadline = changed + Duration::from_secs(6);
    let published = loop {
        std::thread::sleep(Duration::from_millis(200));
        let published = camera_stats(address, "front")["published_fps"]
            .as_f64()
            .expect("published_fps");
        if changed.elapsed() > Duration::from_millis(1500) && (3.0..=7.0).contains(&published) {
            break published;
        }
        assert!(
            Instant::now() < deadline,
            "published {published} fps after moving the slider to 5"
        );
    };
    println!(
        "fps slider: settings.fps 30 -> 5, published_fps {} -> {published}",
        before["published_fps"]
    );
    assert_eq!(camera_stats(address, "back")["settings"]["fps"], 15);
    browser.wait_for(
        "the page shows the new rate",
        "parseFloat(document.querySelector('#cam-front .stats b').textContent) <= 7",
        Duration::from_secs(3),
    );

    // A value the server refuses: its reason is shown, the input goes back, nothing changes.
    browser.run(
        "const n = document.querySelector('#cam-front input[type=number][data-key=fps]');\
         n.value = 500; n.dispatchEvent(new Event('change', {bubbles: true}));",
    );
    let refusal = browser.wait_for(
        "refusal shown",
        "(() => { const m = document.querySelector('#cam-front .msg.err');\
           return m && m.textContent; })()",
        Duration::from_secs(3),
    );
    println!("refusal shown: {refusal}");
    assert!(
        refusal.as_str().is_some_and(|s| s.contains("fps")),
        "{refusal}"
    );
    assert_eq!(camera_stats(address, "front")["settings"]["fps"], 5);
    browser.wait_for(
        "input back to the value in force",
        "document.querySelector('#cam-front input[type=number][data-key=fps]').value === '5'",
        Duration::from_secs(2),
    );

    // Under its name the page says where the value comes from: changed here. "Forget saved
    // settings" puts it back to the config's, and says so.
    let fps_origin = "document.querySelector('#cam-front input[type=number][data-key=fps]')\
                      .parentNode.querySelector('span').dataset.origin";
    browser.wait_for(
        "fps shown as changed",
        &format!("{fps_origin} === 'changed'"),
        Duration::from_secs(3),
    );
    browser.run("document.querySelector('#cam-front button[data-key=forget]').click()");
    browser.wait_for(
        "fps back to the config's",
        &format!(
            "{fps_origin} === 'config' &&\
             document.querySelector('#cam-front input[type=number][data-key=fps]').value === '30'"
        ),
        Duration::from_secs(3),
    );
    let front = camera_stats(address, "front");
    assert_eq!(front["settings"]["fps"], 30, "{front}");
    assert_eq!(front["settings"]["origin"]["fps"], "config", "{front}");

    // The per-viewer stream size changes this image's URL only.
    let resized = browser.run_async(
        "const s = document.querySelector('#cam-front select.viewsize');\
         s.value = '320x240'; s.dispatchEvent(new Event('change', {bubbles: true}));\
         const img = document.querySelector('#cam-front img');\
         for (let i = 0; i < 40 && !(img.getAttribute('src') || '').includes('resolution'); i++)\
           await new Promise(r => setTimeout(r, 50));\
         await new Promise(r => setTimeout(r, 1500));\
         return [img.getAttribute('src'), img.naturalWidth, img.naturalHeight];",
    );
    println!("view size 320x240: {resized}");
    assert_eq!(resized[0], "/front.mjpg?resolution=320x240");
    assert!(
        resized[1].as_u64() > Some(0),
        "the stream still shows: {resized}"
    );
    browser.run(
        "const s = document.querySelector('#cam-front select.viewsize');\
         s.value = ''; s.dispatchEvent(new Event('change', {bubbles: true}));",
    );
    browser.wait_for(
        "full size again",
        "document.querySelector('#cam-front img').naturalWidth === 640",
        Duration::from_secs(5),
    );
    // Back to a rate that looks alive in the screenshot.
    client::request(
        address,
        "POST",
        "/front",
        &[("Content-Type", "application/json")],
        br#"{"fps": 30}"#,
    )
    .expect("reset fps");
    std::thread::sleep(Duration::from_millis(2200));
    browser.screenshot("index.png");
    browser.resize(412, 915);
    std::thread::sleep(Duration::from_millis(300));
    browser.screenshot("index-phone.png");
    browser.resize(1280, 1000);
    camera_controls(&browser, address);
    streamer.stop();

    // Read-only, with a camera that is not there: NO SIGNAL, and the first refusal locks
    // every setting with the server's reason.
    read_only_and_no_signal(&browser);
    println!("browser test took {:.1} s", started.elapsed().as_secs_f64());
}

/// Camera controls as a V4L2 camera lists them (the test pattern has none, so the
/// page is handed a camera's settings.json): a slider and a number for integers, a
/// checkbox for booleans, a list for menus; a change goes to the server, whose refusal
/// (this camera has no brightness) is shown and undone. Then: a camera's own page, and a
/// stream that is restarted (as after the robot comes back) opens a new connection.
fn camera_controls(browser: &Browser, address: SocketAddr) {
    let rows = browser.run_async(
        "const k = (name, type, min, max, def, value, menu) =>\
           ({name, type, min: '' + min, max: '' + max, step: '1', default: '' + def, value: '' + value, menu});\
         const fake = {controls: [k('fps', '2', 1, 120, 30, 30), k('quality', '2', 1, 100, 50, 50),\
           k('brightness', '2', 0, 255, 128, 140), k('contrast', '2', 0, 95, 32, 32),\
           k('white_balance_automatic', '1', 0, 1, 1, 1),\
           k('power_line_frequency', '8', 0, 2, 1, 2, {0: 'Disabled', 1: '50 Hz', 2: '60 Hz'}),\
           k('auto_exposure', '8', 1, 3, 3, 1, {1: 'Manual Mode', 3: 'Aperture Priority Mode'}),\
           k('exposure_time_absolute', '2', 3, 2047, 250, 156)], modes: []};\
         const real = window.get;\
         window.get = async url => url === '/front/settings.json' ? new Response(JSON.stringify(fake)) : real(url);\
         await loadSettings(cams[0]);\
         window.get = real;\
         const d = document.querySelector('#cam-front details'); d.open = true;\
         const q = s => document.querySelector('#cam-front ' + s);\
         return [d.querySelector('summary').textContent,\
           q('input[type=range][data-key=brightness]').value, q('input[type=number][data-key=brightness]').value,\
           q('input[type=checkbox][data-key=white_balance_automatic]').checked,\
           q('select[data-key=power_line_frequency]').selectedOptions[0].textContent];",
    );
    println!("camera controls: {rows}");
    assert_eq!(
        rows,
        json!(["Camera controls (6)", "140", "140", true, "60 Hz"])
    );
    browser.run(
        "const r = document.querySelector('#cam-front input[type=range][data-key=brightness]');\
         r.value = 200; r.dispatchEvent(new Event('input', {bubbles: true}));\
         r.dispatchEvent(new Event('change', {bubbles: true}));",
    );
    let refusal = browser.wait_for(
        "the server's refusal",
        "(() => { const m = document.querySelector('#cam-front .msg.err');\
           return m && m.textContent.includes('brightness') && m.textContent; })()",
        Duration::from_secs(3),
    );
    println!("refusal shown: {refusal}");
    browser.wait_for(
        "the slider goes back",
        "document.querySelector('#cam-front input[type=range][data-key=brightness]').value === '140'",
        Duration::from_secs(2),
    );
    browser.resize(1280, 1400);
    std::thread::sleep(Duration::from_millis(300));
    browser.screenshot("controls.png");
    browser.resize(1280, 1000);

    // A restarted stream is a new connection, even with the same URL.
    let client_id = || camera_stats(address, "back")["client_list"][0]["id"].clone();
    let before = client_id();
    browser.run("restart(cams[1]);");
    let deadline = Instant::now() + Duration::from_secs(5);
    while client_id() == before || client_id().is_null() {
        assert!(Instant::now() < deadline, "the stream was not reopened");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A camera's own page shows that camera only.
    browser.open(&format!("http://{}/back.html", address));
    let shown = browser.wait_for(
        "the camera's page",
        "(() => { const c = [...document.querySelectorAll('main section')].map(s => s.id);\
           const i = document.querySelector('main img');\
           return i && i.naturalWidth === 320 && c; })()",
        Duration::from_secs(10),
    );
    assert_eq!(shown, json!(["cam-back"]));
}

/// Four cameras: the browser holds at most 3 streams, so the fourth shows snapshots until
/// "Live" swaps it in. One camera is missing (NO SIGNAL). The server is read-only: the
/// first refusal locks every setting with the server's reason.
fn read_only_and_no_signal(browser: &Browser) {
    let streamer: Streamer = support::start(
        "[[camera]]\nname = \"front\"\nwidth = 320\nheight = 240\nfps = 15\n\
         [[camera]]\nname = \"gone\"\nsource = \"v4l2:/dev/frcstream-test-no-such-camera\"\n\
         [[camera]]\nname = \"side\"\nwidth = 320\nheight = 240\nfps = 15\n\
         [[camera]]\nname = \"rear\"\nwidth = 320\nheight = 240\nfps = 15\n",
        "read_only = true",
    );
    let address = streamer.local_addr();
    browser.open(&format!("http://{address}/"));
    browser.wait_for(
        "NO SIGNAL shown",
        "(() => { const c = document.querySelector('#cam-gone');\
           return c && c.classList.contains('off') &&\
             getComputedStyle(c.querySelector('.nosig')).display !== 'none'; })()",
        Duration::from_secs(10),
    );

    // Three live streams, the fourth camera as snapshots that keep changing.
    let sources = browser.wait_for(
        "three streams and a snapshot",
        "(() => { const s = [...document.querySelectorAll('main img')].map(i => i.getAttribute('src') || '');\
           const rear = document.querySelector('#cam-rear img');\
           return s.filter(u => u.endsWith('.mjpg')).length === 3 && s[3].startsWith('blob:') &&\
             rear.naturalWidth === 320 && s; })()",
        Duration::from_secs(10),
    );
    println!("four cameras: {sources}");
    let snapshots = browser.run_async(&format!(
        "{FRAME_HASH} const img = document.querySelector('#cam-rear img');\
         const first = [img.src, hash(img)];\
         await new Promise(r => setTimeout(r, 2200));\
         return [first, [img.src, hash(img)]];"
    ));
    assert_ne!(
        snapshots[0], snapshots[1],
        "the snapshot is refreshed: {snapshots}"
    );
    let streams_open = || -> Vec<u64> {
        let stats = support::stats(address);
        stats["cameras"]
            .as_array()
            .expect("cameras")
            .iter()
            .map(|c| c["clients"].as_u64().unwrap_or(99))
            .collect()
    };
    assert_eq!(streams_open(), vec![1, 1, 1, 0], "streams per camera");
    browser.run("document.querySelector('#cam-rear .go').click();");
    browser.wait_for(
        "rear live, front to snapshots",
        "document.querySelector('#cam-rear img').getAttribute('src') === '/rear.mjpg' &&\
         !document.querySelector('#cam-front img').getAttribute('src')?.endsWith('.mjpg')",
        Duration::from_secs(3),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while streams_open() != vec![0, 1, 1, 1] {
        assert!(
            Instant::now() < deadline,
            "streams per camera after the swap: {:?}",
            streams_open()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    browser.run(
        "const r = document.querySelector('#cam-side input[type=range][data-key=fps]');\
         r.value = 5; r.dispatchEvent(new Event('change', {bubbles: true}));",
    );
    let banner = browser.wait_for(
        "read-only banner",
        "(() => { const b = document.getElementById('banner'); return !b.hidden && b.textContent; })()",
        Duration::from_secs(3),
    );
    println!("read-only banner: {banner}");
    assert!(
        banner.as_str().is_some_and(|s| s.contains("read-only")),
        "{banner}"
    );
    let enabled = browser
        .run("return [...document.querySelectorAll('[data-key]')].filter(i => !i.disabled).length");
    assert_eq!(enabled, 0, "every setting is disabled after the 403");
    assert_eq!(camera_stats(address, "side")["settings"]["fps"], 15);
    assert_eq!(
        browser.run("return document.querySelector('#cam-side select.viewsize').disabled"),
        false,
        "the view size is this browser's own choice and stays usable"
    );
    std::thread::sleep(Duration::from_millis(1200));
    browser.screenshot("read-only.png");
    streamer.stop();
}

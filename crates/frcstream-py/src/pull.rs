//! The thread that calls a Python `pull()` callback (the `MjpgServer` API): one per
//! pulled stream, named `pull-<name>`. It calls `pull()` only while someone watches, at
//! the stream's fps setting (taking the GIL for the call and the conversion only), and
//! pushes what it returns. A `pull()` that raises or returns `ok=False` is logged once (and
//! again only with a different message, or after it worked again); after 0.3 s of
//! failing, clients see NO SIGNAL with the reason on the page, until a frame comes.
//! A panic here is caught and logged: the thread goes on.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use frcstream::PushedStream;
use frcstream::camera::Camera;
use frcstream::pacing::Ticker;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::frames;

/// How long `pull()` may fail before clients see NO SIGNAL (a single `ok=False` from a
/// camera is not a lost camera).
const LOST_AFTER: Duration = Duration::from_millis(300);
/// How often the thread looks for viewers (and the stop flag) while nobody watches.
const IDLE_POLL: Duration = Duration::from_millis(10);

/// What `pull()` returns besides `ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullKind {
    /// A BGR numpy array (`cv2.VideoCapture.read()`).
    OpenCv,
    /// A `PIL.Image`.
    Pil,
    /// JPEG bytes (`bytes`, `bytearray`; a `str` is encoded as UTF-8, as the seed did).
    Raw,
}

impl PullKind {
    pub fn parse(kind: &str) -> PyResult<PullKind> {
        match kind {
            "opencv" => Ok(PullKind::OpenCv),
            "pil" => Ok(PullKind::Pil),
            "raw" => Ok(PullKind::Raw),
            other => Err(PyValueError::new_err(format!(
                "kind must be \"opencv\", \"pil\" or \"raw\", not \"{other}\""
            ))),
        }
    }
}

pub struct PullThread {
    name: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PullThread {
    pub fn spawn(
        stream: PushedStream,
        camera: Arc<Camera>,
        callback: Py<PyAny>,
        kind: PullKind,
    ) -> std::io::Result<PullThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let name = stream.name().to_owned();
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("pull-{name}"))
            .spawn(move || {
                let mut puller = Puller {
                    stream,
                    camera,
                    callback,
                    kind,
                    failing_since: None,
                    logged: None,
                    lost: false,
                };
                puller.run(&thread_stop);
                // The callback is a Python object: release it with the GIL, unless the
                // interpreter is on its way out (then it is leaked, harmlessly).
                if !thread_stop.load(Ordering::SeqCst) || python_alive() {
                    Python::with_gil(|_| drop(puller));
                } else {
                    std::mem::forget(puller);
                }
            })?;
        Ok(PullThread {
            name,
            stop,
            thread: Some(thread),
        })
    }

    pub fn stream_name(&self) -> &str {
        &self.name
    }

    /// Stops the thread and waits for it. Call without the GIL: the thread may be
    /// waiting for it to finish a `pull()`.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for PullThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn python_alive() -> bool {
    // SAFETY: Py_IsInitialized may be called at any time, with or without the GIL.
    unsafe { pyo3::ffi::Py_IsInitialized() != 0 }
}

struct Puller {
    stream: PushedStream,
    camera: Arc<Camera>,
    callback: Py<PyAny>,
    kind: PullKind,
    failing_since: Option<Instant>,
    /// The last failure logged, so a failing `pull()` is logged once, not per call.
    logged: Option<String>,
    lost: bool,
}

impl Puller {
    fn run(&mut self, stop: &AtomicBool) {
        let mut fps = 0;
        let mut ticker = Ticker::new(1);
        while !stop.load(Ordering::SeqCst) {
            if !self.stream.has_viewers() {
                std::thread::sleep(IDLE_POLL);
                fps = 0;
                continue;
            }
            let wanted = self.camera.settings.fps();
            if wanted != fps {
                fps = wanted;
                ticker = Ticker::new(fps);
            }
            if !ticker.wait(Duration::from_millis(100)) || stop.load(Ordering::SeqCst) {
                continue;
            }
            if !python_alive() {
                return;
            }
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                Python::with_gil(|py| self.pull_once(py))
            }));
            match outcome {
                Ok(Ok(())) => self.worked(),
                Ok(Err(reason)) => self.failed(reason),
                Err(_) => {
                    self.failed("frcstream's pull thread panicked (a bug: please report it)".into())
                }
            }
        }
    }

    /// Calls `pull()` and pushes the image. `Err` holds what to log and show.
    fn pull_once(&self, py: Python<'_>) -> Result<(), String> {
        let result = self
            .callback
            .call0(py)
            .map_err(|e| format!("pull() raised {}", describe(py, &e)))?;
        let result = result.bind(py);
        let pair = result.downcast::<PyTuple>().ok().filter(|t| t.len() == 2).ok_or_else(|| {
            format!(
                "pull() must return (ok, image), as cv2.VideoCapture.read() does; it returned {}",
                short_repr(result)
            )
        })?;
        let ok = pair
            .get_item(0)
            .and_then(|o| o.is_truthy())
            .unwrap_or(false);
        if !ok {
            return Err("pull() returned ok=False".to_owned());
        }
        let image = pair.get_item(1).map_err(|e| e.to_string())?;
        let pushed = match self.kind {
            PullKind::OpenCv => {
                if image.is_none() {
                    return Err("pull() returned (True, None): no image".to_owned());
                }
                frames::push(&image, Some("bgr"), &self.stream).or_else(|e| {
                    // A gray or YUYV Mat is fine too.
                    if e.is_instance_of::<pyo3::exceptions::PyValueError>(py) {
                        frames::push(&image, None, &self.stream)
                    } else {
                        Err(e)
                    }
                })
            }
            PullKind::Pil => frames::push(&image, None, &self.stream),
            PullKind::Raw => {
                let image = match image.downcast::<pyo3::types::PyString>() {
                    Ok(text) => {
                        pyo3::types::PyBytes::new(py, text.to_string().as_bytes()).into_any()
                    }
                    Err(_) => image,
                };
                frames::push(&image, Some("jpeg"), &self.stream)
            }
        };
        pushed.map_err(|e| {
            format!(
                "pull() returned an image frcstream cannot use: {}",
                describe(py, &e)
            )
        })
    }

    fn worked(&mut self) {
        if self.failing_since.take().is_some() && self.logged.is_some() {
            log::warn!("{}: pull() works again", self.stream.name());
            self.logged = None;
        }
        self.lost = false;
    }

    fn failed(&mut self, reason: String) {
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if self.logged.as_deref() != Some(reason.as_str()) {
            log::error!(
                "{}: {reason} (NO SIGNAL while it fails; logged once)",
                self.stream.name()
            );
            self.logged = Some(reason.clone());
        }
        if since.elapsed() >= LOST_AFTER && !self.lost {
            self.stream.lose(&reason);
            self.lost = true;
        }
    }
}

/// `ValueError: message`, and where it was raised, from the traceback's last frame.
fn describe(py: Python<'_>, error: &PyErr) -> String {
    let kind = error
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "an exception".to_owned());
    let mut text = format!("{kind}: {}", error.value(py));
    if let Some(traceback) = error.traceback(py) {
        let mut last = traceback;
        while let Ok(Some(next)) = last
            .getattr("tb_next")
            .and_then(|n| n.extract::<Option<Bound<'_, pyo3::types::PyTraceback>>>())
        {
            last = next;
        }
        let file = last
            .getattr("tb_frame")
            .and_then(|f| f.getattr("f_code"))
            .and_then(|c| c.getattr("co_filename"))
            .and_then(|f| f.extract::<String>());
        let line = last.getattr("tb_lineno").and_then(|l| l.extract::<u32>());
        if let (Ok(file), Ok(line)) = (file, line) {
            text.push_str(&format!(" (at {file}:{line})"));
        }
    }
    text
}

fn short_repr(object: &Bound<'_, PyAny>) -> String {
    let text = object
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".to_owned());
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(80).collect::<String>())
    } else {
        text
    }
}

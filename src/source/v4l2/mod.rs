//! USB cameras through V4L2: the frame source, device discovery for `--list-cameras` and
//! the embedded default.
//!
//! - Cameras are named by path; `/dev/v4l/by-id/...` and `/dev/v4l/by-path/...` keep two
//!   identical cameras from swapping after a reboot.
//! - `format = "auto"` takes MJPEG when the camera offers it at the requested size, else
//!   YUYV. What the driver grants is logged when it differs from what was asked.
//! - Few buffers, and the newest filled one is always taken (older ones go straight back
//!   to the driver): latency stays at one frame. The buffer's monotonic timestamp is the
//!   capture time; sequence gaps are counted as camera drops.
//! - An unplug (ENODEV, a failed dequeue, no frame for a second) is reported as
//!   `Disconnected`; the capture thread then shows NO SIGNAL and calls `reconnect` until the
//!   camera is back, which restores the mode and the controls.

// The kernel's names (`v4l2_ctrl_type_V4L2_CTRL_TYPE_INTEGER`, ...) are matched as they are.
#[allow(non_upper_case_globals)]
pub mod device;
pub mod discover;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use device::{Device, FourCc, Granted, Stream};

use super::{FrameSource, Mode, SourceError};
use crate::config::PixelFormatChoice;
use crate::controls::CameraControls;
use crate::frame::{CapturedFrame, Pixels};

/// Buffers asked of the driver: enough to capture while one is being encoded, few enough
/// that nothing old piles up.
const BUFFER_COUNT: u32 = 3;

/// No frame for this long (or for three frame intervals at low rates) means the camera is
/// gone: some drivers never report ENODEV. Short enough that the NO SIGNAL card reaches
/// clients before Shuffleboard's one-second watchdog reconnects.
const FRAME_TIMEOUT: Duration = Duration::from_millis(700);

/// How long without a frame means the camera is gone, at `fps`.
fn frame_timeout(fps: u32) -> Duration {
    if fps == 0 {
        return FRAME_TIMEOUT;
    }
    FRAME_TIMEOUT.max(Duration::from_secs(3) / fps)
}

/// What the config asks of a V4L2 camera.
#[derive(Debug, Clone)]
pub struct CaptureRequest {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub format: PixelFormatChoice,
}

struct Open {
    stream: Stream,
    granted: Granted,
    frame_timeout: Duration,
    /// Kept so the device stays open for control access until the stream is gone.
    _device: Device,
}

pub struct V4l2Source {
    request: CaptureRequest,
    controls: Arc<CameraControls>,
    open: Option<Open>,
    mode: Mode,
    last_frame: Instant,
    last_sequence: Option<u32>,
    /// The buffer dequeued for the frame being handed out, and the drops before it.
    pending: Option<(device::Dequeued, u32)>,
    /// Scratch for YUYV rows the driver padded (bytes per line > width * 2).
    packed: Vec<u8>,
}

impl V4l2Source {
    /// A source for `request`; nothing is opened until [`FrameSource::reconnect`].
    pub fn new(request: CaptureRequest, controls: Arc<CameraControls>) -> V4l2Source {
        let mode = Mode {
            width: request.width,
            height: request.height,
            format: "YUYV",
            fps: request.fps,
        };
        V4l2Source {
            request,
            controls,
            open: None,
            mode,
            last_frame: Instant::now(),
            last_sequence: None,
            pending: None,
            packed: Vec::new(),
        }
    }

    fn close(&mut self) {
        self.controls.detach();
        self.open = None;
        self.last_sequence = None;
    }

    fn open_device(&mut self) -> Result<Open, SourceError> {
        let path = &self.request.path;
        let device = Device::open(path).map_err(|e| open_error(path, &e))?;
        // Controls are checked before anything else, so a wrong name or value in the
        // config is reported at start even when the camera is busy.
        let raw_controls = device.controls();
        let errors = self.controls.check(&raw_controls);
        if !errors.is_empty() {
            return Err(control_errors(path, &errors));
        }
        let fourcc = choose_format(&device, &self.request)?;
        let granted = device
            .set_mode(
                self.request.width,
                self.request.height,
                fourcc,
                self.request.fps,
            )
            .map_err(|e| {
                SourceError::Disconnected(format!("{}: setting the format: {e}", path.display()))
            })?;
        if !(granted.fourcc.is_jpeg() || granted.fourcc == FourCc::YUYV) {
            return Err(SourceError::Failed(format!(
                "{}: the driver gave {} instead of {fourcc}",
                path.display(),
                granted.fourcc
            )));
        }
        let asked = (
            self.request.width,
            self.request.height,
            fourcc,
            self.request.fps,
        );
        let got = (granted.width, granted.height, granted.fourcc, granted.fps);
        if asked != got {
            log::info!(
                "{}: asked for {}x{} {} at {} fps, the driver granted {}x{} {} at {} fps",
                path.display(),
                asked.0,
                asked.1,
                asked.2,
                asked.3,
                got.0,
                got.1,
                got.2,
                got.3
            );
        }
        let stream = Stream::start(&device, BUFFER_COUNT)
            .map_err(|e| stream_start_error(path, &granted, &e))?;
        let control_fd: Arc<OwnedFd> = Arc::new(
            device
                .fd()
                .try_clone()
                .map_err(|e| SourceError::Disconnected(e.to_string()))?,
        );
        // Values were checked above; what the driver still refuses (EBUSY, EIO from a USB
        // camera) is logged, not fatal: the camera must come back after a reconnect.
        for error in self.controls.attach(control_fd, &raw_controls) {
            log::warn!("{}: [camera.controls]: {error}", path.display());
        }
        Ok(Open {
            stream,
            frame_timeout: frame_timeout(granted.fps),
            granted,
            _device: device,
        })
    }

    /// Takes the newest filled buffer, giving older ones back to the driver; also returns
    /// how many frames the camera dropped (sequence gaps) since the last one.
    fn newest_buffer(&mut self) -> Result<Option<(device::Dequeued, u32)>, SourceError> {
        let Some(open) = self.open.as_mut() else {
            return Err(SourceError::Disconnected("not open".into()));
        };
        let lost = |e: std::io::Error| SourceError::Disconnected(format!("dequeue failed: {e}"));
        let mut newest: Option<device::Dequeued> = None;
        let mut drops = 0u32;
        while let Some(buffer) = open.stream.dequeue().map_err(lost)? {
            if let Some(last) = self.last_sequence {
                drops += buffer
                    .sequence
                    .wrapping_sub(last)
                    .saturating_sub(1)
                    .min(1000);
            }
            self.last_sequence = Some(buffer.sequence);
            if let Some(previous) = newest.replace(buffer) {
                open.stream.requeue(previous.index).map_err(lost)?;
            }
        }
        match newest {
            // A buffer the driver marks as damaged is given back, not shown.
            Some(buffer) if buffer.flags & v4l::v4l_sys::V4L2_BUF_FLAG_ERROR != 0 => {
                open.stream.requeue(buffer.index).map_err(lost)?;
                Ok(None)
            }
            Some(buffer) => Ok(Some((buffer, drops))),
            None => Ok(None),
        }
    }

    /// The frame of the pending buffer.
    fn lend_pending(&mut self) -> Result<CapturedFrame<'_>, SourceError> {
        let V4l2Source {
            open,
            pending,
            packed,
            ..
        } = self;
        let (Some(open), Some((buffer, drops))) = (open.as_mut(), pending.take()) else {
            return Err(SourceError::Timeout);
        };
        let granted = open.granted;
        let data = open
            .stream
            .lend(buffer.index, buffer.bytes_used)
            .ok_or_else(|| SourceError::Disconnected("driver returned an unknown buffer".into()))?;
        let pixels = if granted.fourcc.is_jpeg() {
            Pixels::Jpeg(data)
        } else {
            Pixels::Yuyv(pack_rows(data, granted, packed))
        };
        Ok(CapturedFrame {
            pixels,
            width: granted.width,
            height: granted.height,
            captured_us: buffer.timestamp_us,
            dropped_before: drops,
        })
    }
}

/// YUYV rows without the driver's padding: `data` itself when there is none.
fn pack_rows<'a>(data: &'a [u8], granted: Granted, packed: &'a mut Vec<u8>) -> &'a [u8] {
    let row = granted.width as usize * 2;
    let stride = granted.bytes_per_line as usize;
    if stride <= row {
        return data;
    }
    packed.clear();
    for line in data.chunks(stride).take(granted.height as usize) {
        packed.extend_from_slice(&line[..row.min(line.len())]);
    }
    packed
}

/// Why streaming could not start. `ENOSPC` from `VIDIOC_STREAMON` is the USB host
/// controller refusing the isochronous bandwidth the mode needs (typically several YUYV
/// cameras on one bus): said in words a team can act on, since "No space left on device"
/// sends people looking at their SD card.
fn stream_start_error(path: &Path, granted: &Granted, error: &std::io::Error) -> SourceError {
    if error.raw_os_error() == Some(libc::ENOSPC) {
        let format_hint = if granted.fourcc.is_jpeg() {
            "a lower size or rate"
        } else {
            "MJPEG (format = \"mjpeg\"), a lower size or rate"
        };
        return SourceError::Disconnected(format!(
            "{}: the USB bus is out of bandwidth for {}x{} {} at {} fps (VIDIOC_STREAMON: \
             {error}): use {format_hint}, or plug the camera into another USB port",
            path.display(),
            granted.width,
            granted.height,
            granted.fourcc,
            granted.fps
        ));
    }
    SourceError::Disconnected(format!("{}: starting the stream: {error}", path.display()))
}

fn control_errors(path: &Path, errors: &[crate::controls::ControlError]) -> SourceError {
    let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    SourceError::Failed(format!(
        "{}: [camera.controls]: {}",
        path.display(),
        messages.join("; ")
    ))
}

fn open_error(path: &Path, e: &std::io::Error) -> SourceError {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => SourceError::Disconnected(format!(
            "{}: permission denied (is the user in the `video` group?)",
            path.display()
        )),
        Some(libc::EBUSY) => SourceError::Disconnected(format!(
            "{}: busy (another program is using the camera)",
            path.display()
        )),
        _ => SourceError::Disconnected(format!("{}: {e}", path.display())),
    }
}

/// The pixel format to ask for.
fn choose_format(device: &Device, request: &CaptureRequest) -> Result<FourCc, SourceError> {
    let formats: Vec<FourCc> = device.formats().into_iter().map(|(f, _)| f).collect();
    let mjpeg = formats.iter().copied().find(|f| f.is_jpeg());
    let has_yuyv = formats.contains(&FourCc::YUYV);
    let listed = || {
        formats
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let path = request.path.display();
    match request.format {
        PixelFormatChoice::Mjpeg => mjpeg.ok_or_else(|| {
            SourceError::Failed(format!(
                "{path}: format = \"mjpeg\" but the camera offers only {}",
                listed()
            ))
        }),
        PixelFormatChoice::Yuyv if has_yuyv => Ok(FourCc::YUYV),
        PixelFormatChoice::Yuyv => Err(SourceError::Failed(format!(
            "{path}: format = \"yuyv\" but the camera offers only {}",
            listed()
        ))),
        PixelFormatChoice::Auto => {
            let mjpeg_at_size = mjpeg.filter(|&f| device.offers(f, request.width, request.height));
            match (mjpeg_at_size, has_yuyv, mjpeg) {
                (Some(f), _, _) => Ok(f),
                (None, true, _) => Ok(FourCc::YUYV),
                (None, false, Some(f)) => Ok(f),
                (None, false, None) => Err(SourceError::Failed(format!(
                    "{path}: the camera offers neither MJPEG nor YUYV (only {})",
                    listed()
                ))),
            }
        }
    }
}

impl FrameSource for V4l2Source {
    fn description(&self) -> String {
        format!("usb:{}", self.request.path.display())
    }

    fn mode(&self) -> Mode {
        self.mode.clone()
    }

    fn reconnect(&mut self) -> Result<(), SourceError> {
        self.close();
        let open = self.open_device()?;
        let granted = open.granted;
        self.mode = Mode {
            width: granted.width,
            height: granted.height,
            format: if granted.fourcc.is_jpeg() {
                "MJPEG"
            } else {
                "YUYV"
            },
            fps: if granted.fps > 0 {
                granted.fps
            } else {
                self.request.fps
            },
        };
        self.open = Some(open);
        self.last_frame = Instant::now();
        Ok(())
    }

    fn next_frame(&mut self, timeout: Duration) -> Result<CapturedFrame<'_>, SourceError> {
        if let Err(e) = self.take_next_buffer(timeout) {
            if matches!(e, SourceError::Disconnected(_)) {
                self.close();
            }
            return Err(e);
        }
        self.lend_pending()
    }
}

impl V4l2Source {
    /// Waits for the next filled buffer and keeps it as pending.
    fn take_next_buffer(&mut self, timeout: Duration) -> Result<(), SourceError> {
        let Some(open) = self.open.as_mut() else {
            return Err(SourceError::Disconnected("camera not open".into()));
        };
        open.stream
            .release()
            .map_err(|e| SourceError::Disconnected(format!("requeue failed: {e}")))?;
        let ready = open
            .stream
            .wait(timeout.as_millis().min(i32::MAX as u128) as i32)
            .map_err(|e| SourceError::Disconnected(format!("poll: {e}")))?;
        if !ready {
            if self.last_frame.elapsed() > open.frame_timeout {
                return Err(SourceError::Disconnected(format!(
                    "no frame for {} ms",
                    self.last_frame.elapsed().as_millis()
                )));
            }
            return Err(SourceError::Timeout);
        }
        match self.newest_buffer()? {
            Some(pending) => {
                self.last_frame = Instant::now();
                self.pending = Some(pending);
                Ok(())
            }
            None => Err(SourceError::Timeout),
        }
    }
}

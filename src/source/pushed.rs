//! Frames pushed by a program: the library's counterpart of cscore's `CvSource`.
//!
//! A vision program gets a [`PushedStream`] for a camera configured with
//! `source = "pushed"` and calls `push_rgb`, `push_bgr`, `push_yuyv`, `push_gray` or
//! `push_jpeg` whenever it has a picture. The stream is served exactly like a camera.
//!
//! Pushing never waits for the camera's capture thread: the frame is copied into a
//! recycled buffer and handed to it over a one-place channel; if the capture thread has not
//! taken the previous frame yet, that stale frame is replaced. A handle made with
//! [`PushedStream::encode_in_caller`] instead encodes in the pushing thread, straight from
//! the program's pixels: no copy and no hand-over, at the price of the encode's time in
//! that thread. When nobody watches, the push returns at once without copying anything.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use super::{FrameSource, Mode, SourceError};
use crate::camera::{Camera, ChangeError};
use crate::capture::FramePipe;
use crate::controls::ControlValue;
use crate::encode::EncodeError;
use crate::frame::{CapturedFrame, Pixels, monotonic_us};
use crate::lock::lock;
use crate::settings::{self, Writer};

/// The largest frame side a program may push.
const MAX_SIDE: u32 = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Jpeg,
    Yuyv,
    Rgb,
    Bgr,
    Gray,
}

impl Format {
    fn pixels(self, data: &[u8]) -> Pixels<'_> {
        match self {
            Format::Jpeg => Pixels::Jpeg(data),
            Format::Yuyv => Pixels::Yuyv(data),
            Format::Rgb => Pixels::Rgb(data),
            Format::Bgr => Pixels::Bgr(data),
            Format::Gray => Pixels::Gray(data),
        }
    }
}

struct PushedFrame {
    data: Vec<u8>,
    format: Format,
    width: u32,
    height: u32,
    captured_us: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("frame of {got} bytes is too short for {width}x{height} ({needed} bytes needed)")]
    TooShort {
        got: usize,
        needed: usize,
        width: u32,
        height: u32,
    },
    #[error(
        "frame size {width}x{height} is not usable (1–{MAX_SIDE} per side, even width for YUYV)"
    )]
    BadSize { width: u32, height: u32 },
    #[error("the streamer has stopped")]
    Stopped,
}

/// The handle a program pushes frames into. Cheap to clone; every clone feeds the same camera.
#[derive(Clone)]
pub struct PushedStream {
    camera: Arc<Camera>,
    frames: Sender<PushedFrame>,
    /// A second receiver, used only to take back a frame the capture thread has not
    /// picked up yet, so the newest push always wins.
    stale: Receiver<PushedFrame>,
    recycled: Receiver<Vec<u8>>,
    lost: Lost,
    /// The encoder of pushes made through this handle and its clones, when they encode in
    /// the pushing thread ([`PushedStream::encode_in_caller`]).
    in_caller: Option<Arc<Mutex<InCaller>>>,
}

/// What encoding in the pushing thread needs: the capture thread's encoder and pacer, and
/// a buffer to pack padded rows into.
struct InCaller {
    pipe: FramePipe,
    rows: Vec<u8>,
}

impl InCaller {
    /// Counts, paces, encodes and publishes `data` as the capture thread does a frame.
    fn encode(&mut self, camera: &Camera, format: Format, data: &[u8], width: u32, height: u32) {
        let frame = CapturedFrame {
            pixels: format.pixels(data),
            width,
            height,
            captured_us: monotonic_us(),
            dropped_before: 0,
        };
        self.pipe.handle(camera, &frame);
    }
}

/// Why the program has no picture now (`PushedStream::lose`), shared by both ends.
type Lost = Arc<Mutex<Option<String>>>;

/// The capture side of a pushed stream.
pub struct PushedSource {
    frames: Receiver<PushedFrame>,
    recycle: Sender<Vec<u8>>,
    current: Option<PushedFrame>,
    mode: Mode,
    lost: Lost,
}

fn lost_reason(lost: &Lost) -> Option<String> {
    lock(lost).clone()
}

/// Makes the two ends of a pushed camera.
pub fn pushed_stream(camera: Arc<Camera>) -> (PushedStream, PushedSource) {
    let (frames_tx, frames_rx) = crossbeam_channel::bounded(1);
    let (recycle_tx, recycle_rx) = crossbeam_channel::bounded(4);
    let mut mode = camera.mode();
    mode.format = "pushed";
    let lost = Lost::default();
    let source = PushedSource {
        frames: frames_rx.clone(),
        recycle: recycle_tx,
        current: None,
        mode,
        lost: Arc::clone(&lost),
    };
    let stream = PushedStream {
        camera,
        frames: frames_tx,
        stale: frames_rx,
        recycled: recycle_rx,
        lost,
        in_caller: None,
    };
    (stream, source)
}

impl PushedStream {
    /// The camera's name (its stream is `/<name>.mjpg`).
    pub fn name(&self) -> &str {
        &self.camera.name
    }

    /// This handle, made to encode each frame in the thread that pushes it (with the
    /// capture thread's counting, pacing and publishing), straight from the caller's
    /// pixels: no copy into a buffer and no hand-over to the capture thread, which then
    /// only draws NO SIGNAL while the program says its picture is lost. A push then takes
    /// the encode's time (about half a millisecond for 640x480 here) and waits for a push
    /// of a clone in another thread to finish encoding. Clones share the encoder.
    pub fn encode_in_caller(mut self) -> Result<PushedStream, EncodeError> {
        self.in_caller = Some(Arc::new(Mutex::new(InCaller {
            pipe: FramePipe::new()?,
            rows: Vec::new(),
        })));
        Ok(self)
    }

    /// Whether any client watches. A program may skip drawing its overlay when not.
    pub fn has_viewers(&self) -> bool {
        self.camera.slot.has_viewers()
    }

    /// A complete JPEG, served as it is (after a check of its markers).
    pub fn push_jpeg(&self, jpeg: &[u8]) -> Result<(), PushError> {
        self.push(Format::Jpeg, jpeg, 0, 0)
    }

    /// Packed YUYV (4:2:2), two bytes per pixel.
    pub fn push_yuyv(&self, data: &[u8], width: u32, height: u32) -> Result<(), PushError> {
        self.push(Format::Yuyv, data, width, height)
    }

    /// Packed RGB, three bytes per pixel.
    pub fn push_rgb(&self, data: &[u8], width: u32, height: u32) -> Result<(), PushError> {
        self.push(Format::Rgb, data, width, height)
    }

    /// Packed BGR, three bytes per pixel (OpenCV's `Mat` order).
    pub fn push_bgr(&self, data: &[u8], width: u32, height: u32) -> Result<(), PushError> {
        self.push(Format::Bgr, data, width, height)
    }

    /// 8-bit grayscale, one byte per pixel.
    pub fn push_gray(&self, data: &[u8], width: u32, height: u32) -> Result<(), PushError> {
        self.push(Format::Gray, data, width, height)
    }

    /// Limits the rate frames are sent at ([`settings::FPS`] gives the range). A change
    /// like one over HTTP: shown as `changed`, saved when the streamer has a state file,
    /// and published on NetworkTables.
    pub fn set_fps(&self, fps: i64) -> Result<(), ChangeError> {
        self.set(&settings::FPS, fps)
    }

    /// Sets the JPEG quality of encoded frames ([`settings::QUALITY`]), as
    /// [`PushedStream::set_fps`].
    pub fn set_quality(&self, quality: i64) -> Result<(), ChangeError> {
        self.set(&settings::QUALITY, quality)
    }

    fn set(&self, spec: &settings::Spec, value: i64) -> Result<(), ChangeError> {
        self.camera.change(
            Writer::Library,
            &[(spec.key.to_owned(), ControlValue::Int(value))],
        )
    }

    /// Says the program has no picture, and why (its camera failed, a callback raised):
    /// clients see NO SIGNAL and the camera's `problem` is `reason` until the next push.
    pub fn lose(&self, reason: &str) {
        *lock(&self.lost) = Some(reason.to_owned());
    }

    /// The picture is back without a push yet (see [`PushedStream::lose`]).
    pub fn found(&self) {
        *lock(&self.lost) = None;
    }

    /// Packed RGB, BGR, gray or YUYV rows `stride` bytes apart (`stride` at least a row's
    /// bytes): a padded image or a region of a larger one, copied row by row.
    pub fn push_rows(
        &self,
        layout: RawLayout,
        data: &[u8],
        width: u32,
        height: u32,
        stride: usize,
    ) -> Result<(), PushError> {
        let format = layout.format();
        let needed = required_len(format, width, height)?;
        let row = needed / height as usize;
        if stride == row {
            return self.push(format, data, width, height);
        }
        let last_end = (height as usize - 1)
            .checked_mul(stride)
            .and_then(|start| start.checked_add(row));
        if stride < row || last_end.is_none_or(|end| data.len() < end) {
            return Err(PushError::TooShort {
                got: data.len(),
                needed: last_end.unwrap_or(usize::MAX),
                width,
                height,
            });
        }
        let pack = |buffer: &mut Vec<u8>| {
            for y in 0..height as usize {
                buffer.extend_from_slice(&data[y * stride..y * stride + row]);
            }
        };
        let Some(in_caller) = &self.in_caller else {
            return self.push_with(format, width, height, needed, pack);
        };
        if !self.admit()? {
            return Ok(());
        }
        let mut in_caller = lock(in_caller);
        let mut rows = std::mem::take(&mut in_caller.rows);
        rows.clear();
        pack(&mut rows);
        in_caller.encode(&self.camera, format, &rows, width, height);
        in_caller.rows = rows;
        Ok(())
    }

    fn push(&self, format: Format, data: &[u8], width: u32, height: u32) -> Result<(), PushError> {
        let needed = required_len(format, width, height)?;
        if data.len() < needed {
            return Err(PushError::TooShort {
                got: data.len(),
                needed,
                width,
                height,
            });
        }
        let used = if format == Format::Jpeg {
            data.len()
        } else {
            needed
        };
        let data = &data[..used];
        match &self.in_caller {
            Some(in_caller) => {
                if self.admit()? {
                    lock(in_caller).encode(&self.camera, format, data, width, height);
                }
                Ok(())
            }
            None => self.push_with(format, width, height, used, |buffer| {
                buffer.extend_from_slice(data);
            }),
        }
    }

    /// Whether a push goes on to be encoded: the picture is back, and someone watches
    /// (when nobody does, the frame is only counted).
    fn admit(&self) -> Result<bool, PushError> {
        if self.camera.slot.is_closed() {
            return Err(PushError::Stopped);
        }
        self.found();
        if self.camera.slot.has_viewers() {
            return Ok(true);
        }
        let stats = &self.camera.stats;
        stats.captured.add(1);
        stats
            .idle_frames
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(false)
    }

    /// Hands a frame of `len` bytes, written by `fill` into a recycled buffer, to the
    /// capture thread; counts it only when nobody watches.
    fn push_with(
        &self,
        format: Format,
        width: u32,
        height: u32,
        len: usize,
        fill: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), PushError> {
        if !self.admit()? {
            return Ok(());
        }
        let mut buffer = self.recycled.try_recv().unwrap_or_default();
        buffer.clear();
        buffer.reserve(len);
        fill(&mut buffer);
        let mut frame = PushedFrame {
            data: buffer,
            format,
            width,
            height,
            captured_us: monotonic_us(),
        };
        loop {
            match self.frames.try_send(frame) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(back)) => {
                    frame = back;
                    // Replace the frame the capture thread has not taken yet.
                    let _ = self.stale.try_recv();
                }
                Err(TrySendError::Disconnected(_)) => return Err(PushError::Stopped),
            }
        }
    }
}

/// The raw pixel layouts [`PushedStream::push_rows`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawLayout {
    Yuyv,
    Rgb,
    Bgr,
    Gray,
}

impl RawLayout {
    fn format(self) -> Format {
        match self {
            RawLayout::Yuyv => Format::Yuyv,
            RawLayout::Rgb => Format::Rgb,
            RawLayout::Bgr => Format::Bgr,
            RawLayout::Gray => Format::Gray,
        }
    }

    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            RawLayout::Yuyv => 2,
            RawLayout::Rgb | RawLayout::Bgr => 3,
            RawLayout::Gray => 1,
        }
    }
}

fn required_len(format: Format, width: u32, height: u32) -> Result<usize, PushError> {
    let bytes_per_pixel = match format {
        Format::Jpeg => return Ok(4),
        Format::Yuyv => 2,
        Format::Rgb | Format::Bgr => 3,
        Format::Gray => 1,
    };
    let side_ok = |side: u32| (1..=MAX_SIDE).contains(&side);
    if !side_ok(width) || !side_ok(height) || (format == Format::Yuyv && width % 2 != 0) {
        return Err(PushError::BadSize { width, height });
    }
    Ok(width as usize * height as usize * bytes_per_pixel)
}

impl FrameSource for PushedSource {
    fn description(&self) -> String {
        "frames pushed by a program".to_owned()
    }

    fn mode(&self) -> Mode {
        self.mode.clone()
    }

    fn reconnect(&mut self) -> Result<(), SourceError> {
        match lost_reason(&self.lost) {
            Some(reason) => Err(SourceError::Disconnected(reason)),
            None => Ok(()),
        }
    }

    fn next_frame(&mut self, timeout: Duration) -> Result<CapturedFrame<'_>, SourceError> {
        if let Some(done) = self.current.take() {
            let _ = self.recycle.try_send(done.data);
        }
        if let Some(reason) = lost_reason(&self.lost) {
            return Err(SourceError::Disconnected(reason));
        }
        let frame = match self.frames.recv_timeout(timeout) {
            Ok(frame) => self.current.insert(frame),
            Err(RecvTimeoutError::Timeout) => return Err(SourceError::Timeout),
            // The program dropped every handle: nothing more will come.
            Err(RecvTimeoutError::Disconnected) => return Err(SourceError::Timeout),
        };
        Ok(CapturedFrame {
            pixels: frame.format.pixels(&frame.data),
            width: frame.width,
            height: frame.height,
            captured_us: frame.captured_us,
            dropped_before: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CameraConfig, SourceSpec};

    fn pushed_camera() -> (Arc<Camera>, PushedStream, PushedSource) {
        let mut config = CameraConfig::embedded_default();
        config.source = SourceSpec::Pushed;
        let camera = Arc::new(Camera::new(&config));
        let (stream, source) = pushed_stream(Arc::clone(&camera));
        (camera, stream, source)
    }

    #[test]
    fn the_newest_push_wins_and_nothing_blocks() {
        let (camera, stream, mut source) = pushed_camera();
        let _viewer = camera.slot.viewer();
        for shade in 0..10u8 {
            stream.push_gray(&[shade; 8 * 4], 8, 4).expect("push");
        }
        let frame = source.next_frame(Duration::from_secs(1)).expect("frame");
        assert_eq!(frame.pixels.data()[0], 9);
        assert_eq!((frame.width, frame.height), (8, 4));
        assert_eq!(
            source.next_frame(Duration::from_millis(10)).err(),
            Some(SourceError::Timeout)
        );
    }

    #[test]
    fn without_viewers_a_push_is_counted_but_not_copied() {
        let (camera, stream, mut source) = pushed_camera();
        stream.push_rgb(&[0; 4 * 4 * 3], 4, 4).expect("push");
        assert_eq!(camera.stats.captured.total(), 1);
        assert!(source.next_frame(Duration::from_millis(10)).is_err());
    }

    #[test]
    fn bad_sizes_are_refused() {
        let (_camera, stream, _source) = pushed_camera();
        assert!(matches!(
            stream.push_rgb(&[0; 10], 4, 4),
            Err(PushError::TooShort { needed: 48, .. })
        ));
        assert!(matches!(
            stream.push_yuyv(&[0; 100], 3, 2),
            Err(PushError::BadSize { .. })
        ));
        assert!(matches!(
            stream.push_gray(&[0; 10], 0, 10),
            Err(PushError::BadSize { .. })
        ));
    }

    #[test]
    fn padded_rows_are_packed() {
        let (camera, stream, mut source) = pushed_camera();
        let _viewer = camera.slot.viewer();
        // 2x2 gray in rows of 4 bytes: the padding must not reach the frame.
        stream
            .push_rows(RawLayout::Gray, &[1, 2, 99, 99, 3, 4], 2, 2, 4)
            .expect("push");
        let frame = source.next_frame(Duration::from_secs(1)).expect("frame");
        assert_eq!(frame.pixels.data(), &[1, 2, 3, 4]);
        assert!(matches!(
            stream.push_rows(RawLayout::Gray, &[1, 2, 99, 99, 3], 2, 2, 4),
            Err(PushError::TooShort { needed: 6, .. })
        ));
    }

    #[test]
    fn encoding_in_the_caller_publishes_without_the_capture_thread() {
        let (camera, stream, mut source) = pushed_camera();
        let stream = stream.encode_in_caller().expect("encoder");
        stream.push_gray(&[50; 16 * 8], 16, 8).expect("push");
        assert_eq!(
            camera.slot.latest().seq,
            0,
            "nobody watches: nothing encoded"
        );
        assert_eq!(
            camera
                .stats
                .idle_frames
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        let _viewer = camera.slot.viewer();
        stream.push_gray(&[50; 16 * 8], 16, 8).expect("push");
        let first = camera.slot.latest();
        assert_eq!((first.width, first.height), (16, 8));
        assert_eq!(camera.stats.published.total(), 1);
        // Padded rows are packed first; the padding must not reach the picture.
        let mut padded = vec![0u8; 8 * 20];
        for row in padded.chunks_exact_mut(20) {
            row[..16].fill(200);
        }
        std::thread::sleep(Duration::from_millis(40)); // past the camera's fps
        stream
            .push_rows(RawLayout::Gray, &padded, 16, 8, 20)
            .expect("push");
        let second = camera.slot.latest();
        assert!(second.seq > first.seq);
        let gray =
            turbojpeg::decompress(second.jpeg(), turbojpeg::PixelFormat::GRAY).expect("decodable");
        assert!(gray.pixels.iter().all(|&v| v > 190), "{:?}", gray.pixels);
        assert_eq!(
            source.next_frame(Duration::from_millis(10)).err(),
            Some(SourceError::Timeout),
            "nothing handed to the capture thread"
        );
        assert_eq!(camera.stats.captured.total(), 3);
    }

    #[test]
    fn a_lost_picture_is_reported_until_the_next_push() {
        let (camera, stream, mut source) = pushed_camera();
        let _viewer = camera.slot.viewer();
        stream.lose("pull() raised ValueError");
        assert_eq!(
            source.next_frame(Duration::from_millis(10)).err(),
            Some(SourceError::Disconnected("pull() raised ValueError".into()))
        );
        assert!(source.reconnect().is_err());
        stream.push_gray(&[7; 4], 2, 2).expect("push");
        assert!(source.reconnect().is_ok());
        assert_eq!(
            source
                .next_frame(Duration::from_secs(1))
                .expect("frame")
                .pixels
                .data()[0],
            7
        );
    }

    #[test]
    fn settings_from_code_are_validated() {
        let (camera, stream, _source) = pushed_camera();
        stream.set_fps(10).expect("fps");
        assert_eq!(camera.settings.fps(), 10);
        assert_eq!(camera.origin("fps").as_str(), "changed");
        assert!(stream.set_quality(0).is_err());
        assert_eq!(camera.origin("quality").as_str(), "default");
    }
}

//! The capture thread: one per camera. It pulls frames from the camera's source, applies
//! the camera's fps limit, encodes (or checks and passes through) only while someone
//! watches, and publishes the result to the camera's frame slot.
//!
//! When the source is lost (an unplugged camera), it publishes a NO SIGNAL card twice a
//! second, so clients keep their connection and never see a frozen picture, and asks the
//! source to reconnect four times a second until it is back.
//!
//! It never waits on a client: publishing is a pointer swap. It stops when the shared stop
//! flag is set, within one poll interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::camera::Camera;
use crate::encode::{EncodeError, Encoder, Work};
use crate::frame::{CapturedFrame, Frame, FrameKind, Pixels, monotonic_us};
use crate::no_signal::NoSignalCard;
use crate::pacing::Pacer;
use crate::source::{FrameSource, SourceError};
use crate::stats::worth_a_log_line;
use crate::transcode::Transcoder;

/// How long a source may block before the stop flag is looked at again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often a lost source is asked to reconnect.
const RECONNECT_INTERVAL: Duration = Duration::from_millis(250);
/// How often the NO SIGNAL card is sent while the source is lost (Shuffleboard drops a
/// stream that sends nothing for a second).
const NO_SIGNAL_INTERVAL: Duration = Duration::from_millis(500);

/// Starts the capture thread of `camera`. `connected` says whether the source is open.
pub fn spawn(
    camera: Arc<Camera>,
    source: Box<dyn FrameSource>,
    connected: bool,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("capture-{}", camera.name))
        .spawn(move || {
            let mut capture = match Capture::new(&camera, source) {
                Ok(capture) => capture,
                Err(e) => {
                    log::error!("{}: cannot start the JPEG encoder: {e}", camera.name);
                    return;
                }
            };
            capture.run(connected, &stop);
            camera.slot.close();
        })
}

struct Capture<'a> {
    camera: &'a Camera,
    source: Box<dyn FrameSource>,
    pipe: FramePipe,
    no_signal: Option<NoSignalCard>,
}

impl<'a> Capture<'a> {
    fn new(
        camera: &'a Camera,
        source: Box<dyn FrameSource>,
    ) -> Result<Self, crate::encode::EncodeError> {
        Ok(Capture {
            camera,
            source,
            pipe: FramePipe::new()?,
            no_signal: None,
        })
    }

    fn run(&mut self, mut connected: bool, stop: &AtomicBool) {
        self.camera
            .set_source_description(self.source.description());
        if connected {
            self.on_connected();
        }
        while !stop.load(Ordering::Relaxed) {
            self.camera.beat();
            if !connected {
                connected = self.recover(stop);
                continue;
            }
            match self.source.next_frame(POLL_INTERVAL) {
                Ok(frame) => self.pipe.handle(self.camera, &frame),
                Err(SourceError::Timeout) => {}
                Err(e @ (SourceError::Disconnected(_) | SourceError::Failed(_))) => {
                    log::warn!(
                        "{}: camera lost: {e}; showing NO SIGNAL until it is back",
                        self.camera.name
                    );
                    self.camera.set_problem(Some(e.reason()));
                    connected = false;
                }
            }
        }
    }

    fn on_connected(&mut self) {
        self.camera.set_mode(self.source.mode());
        self.camera.set_problem(None);
        self.camera.set_connected(true);
    }

    /// Shows NO SIGNAL and retries the source until it is back (true) or stop is set.
    fn recover(&mut self, stop: &AtomicBool) -> bool {
        self.camera.set_connected(false);
        let lost_at = Instant::now();
        let mut next_card = lost_at;
        let mut next_try = lost_at;
        let mut last_error = String::new();
        while !stop.load(Ordering::Relaxed) {
            self.camera.beat();
            let now = Instant::now();
            if now >= next_card {
                self.publish_no_signal(lost_at.elapsed().as_secs());
                next_card += NO_SIGNAL_INTERVAL;
            }
            if now >= next_try {
                match self.source.reconnect() {
                    Ok(()) => {
                        log::info!(
                            "{}: camera back after {} ms: {}",
                            self.camera.name,
                            lost_at.elapsed().as_millis(),
                            self.source.mode()
                        );
                        self.on_connected();
                        return true;
                    }
                    Err(e) => {
                        let message = e.to_string();
                        if message != last_error {
                            log::info!(
                                "{}: still waiting for the camera: {message}",
                                self.camera.name
                            );
                            self.camera.set_problem(Some(e.reason()));
                            last_error = message;
                        }
                    }
                }
                next_try = Instant::now() + RECONNECT_INTERVAL;
            }
            let wake = next_card.min(next_try);
            std::thread::sleep(
                wake.saturating_duration_since(Instant::now())
                    .min(POLL_INTERVAL),
            );
        }
        false
    }

    fn publish_no_signal(&mut self, seconds: u64) {
        if !self.camera.slot.has_viewers() {
            return;
        }
        let mode = self.camera.mode();
        let (width, height) = (mode.width.max(16) & !1, mode.height.max(16));
        let card = match &mut self.no_signal {
            Some(card) if card.size() == (width, height) => card,
            slot => slot.insert(NoSignalCard::new(&self.camera.name, width, height)),
        };
        let frame = CapturedFrame {
            pixels: Pixels::Yuyv(card.render(seconds)),
            width,
            height,
            captured_us: monotonic_us(),
            dropped_before: 0,
        };
        let seq = self.camera.slot.next_seq();
        let quality = self.camera.quality_in_force();
        match self
            .pipe
            .encoder
            .process_as(&frame, quality, seq, FrameKind::NoSignal)
        {
            Ok((encoded, _)) => self.camera.slot.publish(encoded),
            Err(e) => log::warn!("{}: cannot draw NO SIGNAL: {e}", self.camera.name),
        }
    }
}

/// What turns a camera's frames into the frames it publishes, kept from frame to frame by
/// the capture thread (or the thread of a program pushing frames): the encoder, the pacer
/// of the camera's fps, and the transcoder the budget calls on.
pub(crate) struct FramePipe {
    pub encoder: Encoder,
    pacer: Pacer,
    /// Started when the budget's governor first asks for a smaller frame.
    transcoder: Option<Transcoder>,
    /// Paces those transcodes ([`Governor::transcode_fps`]).
    transcode_pacer: Pacer,
}

impl FramePipe {
    pub fn new() -> Result<FramePipe, EncodeError> {
        Ok(FramePipe {
            encoder: Encoder::new()?,
            pacer: Pacer::default(),
            transcoder: None,
            transcode_pacer: Pacer::default(),
        })
    }

    /// Counts a frame, and unless nobody watches or the camera's fps says to skip it,
    /// encodes (or checks and passes through) and publishes it: made smaller first when
    /// the budget's governor says it is over the camera's share.
    pub fn handle(&mut self, camera: &Camera, frame: &CapturedFrame<'_>) {
        let stats = &camera.stats;
        stats.captured.add(1);
        if frame.dropped_before > 0 {
            stats
                .camera_drops
                .fetch_add(u64::from(frame.dropped_before), Ordering::Relaxed);
        }
        if !camera.slot.has_viewers() {
            stats.idle_frames.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !self.pacer.admit(frame.captured_us, camera.fps_in_force()) {
            return;
        }
        let seq = camera.slot.next_seq();
        match self.make(camera, frame, seq) {
            Ok(Some(made)) => {
                camera.slot.publish(made);
                stats.published.add(1);
            }
            Ok(None) => {}
            Err(e) => {
                let dropped = stats.invalid_frames.fetch_add(1, Ordering::Relaxed) + 1;
                if worth_a_log_line(dropped) {
                    log::warn!("{}: dropped frame ({dropped} so far): {e}", camera.name);
                }
            }
        }
    }

    /// The frame to publish as `seq`, counted by what it took; `None` for a frame the
    /// budget's transcoding skips.
    fn make(
        &mut self,
        camera: &Camera,
        frame: &CapturedFrame<'_>,
        seq: u64,
    ) -> Result<Option<Arc<Frame>>, EncodeError> {
        let stats = &camera.stats;
        let (made, work) = self
            .encoder
            .process(frame, camera.quality_in_force(), seq)?;
        let passed_through = work == Work::PassedThrough;
        let counter = match work {
            Work::Encoded => &stats.encodes,
            Work::PassedThrough => &stats.passthroughs,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let Some((size, quality)) = camera.governor.transcode(
            (made.width, made.height),
            camera.settings.quality(),
            passed_through,
        ) else {
            return Ok(Some(made));
        };
        // Transcoding costs a decode and an encode: paced at twice what the whole budget
        // carries of these frames (`Governor::transcode_fps`).
        let fps = camera.governor.transcode_fps(camera.fps_in_force());
        if !self.transcode_pacer.admit(made.captured_us, fps) {
            return Ok(None);
        }
        match self.smaller(&made, size, quality, seq) {
            Ok(smaller) => {
                stats.budget_transcodes.fetch_add(1, Ordering::Relaxed);
                Ok(Some(smaller))
            }
            Err(e) => {
                // The frame as the camera made it is still good: better over the share
                // than no frame.
                let failed = stats
                    .budget_transcode_failures
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                if worth_a_log_line(failed) {
                    log::warn!(
                        "{}: cannot make a frame smaller for the bandwidth budget ({failed} so far), sending it as it is: {e}",
                        camera.name
                    );
                }
                Ok(Some(made))
            }
        }
    }

    /// `made` transcoded to `size` (None: its own) and `quality`, as frame `seq`.
    fn smaller(
        &mut self,
        made: &Frame,
        size: Option<(u32, u32)>,
        quality: u8,
        seq: u64,
    ) -> Result<Arc<Frame>, EncodeError> {
        let transcoder = match &mut self.transcoder {
            Some(transcoder) => transcoder,
            empty => empty.insert(Transcoder::new()?),
        };
        transcoder.transcode(made, size, quality, seq)
    }
}

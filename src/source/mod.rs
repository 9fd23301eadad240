//! Frame sources: where a camera's pictures come from, behind one small interface so the
//! capture thread treats them all alike.
//!
//! - [`test_pattern`]: a generated YUYV picture with moving content and a frame counter.
//! - [`jpeg_folder`]: the JPEG files of a folder replayed as an MJPEG camera.
//! - [`pushed`]: frames a program pushes in (the library's answer to cscore's `CvSource`).
//! - [`v4l2`]: USB cameras.

pub mod jpeg_folder;
pub mod pushed;
pub mod test_pattern;
pub mod v4l2;

use std::fmt;
use std::time::Duration;

use crate::frame::CapturedFrame;

/// A source of frames, run by its camera's capture thread.
pub trait FrameSource: Send {
    /// What the source is, for the log and the web page (`test pattern`, `folder:/x`, ...).
    fn description(&self) -> String;

    /// The mode the source delivers.
    fn mode(&self) -> Mode;

    /// Waits at most `timeout` for the next frame. The frame borrows the source's buffer
    /// until the next call.
    fn next_frame(&mut self, timeout: Duration) -> Result<CapturedFrame<'_>, SourceError>;

    /// (Re)opens the device after `Disconnected`, restoring its mode and settings. Sources
    /// that cannot go away have nothing to do.
    fn reconnect(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}

/// Size, pixel format and rate of a source, shown as cscore shows a video mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mode {
    pub width: u32,
    pub height: u32,
    pub format: &'static str,
    pub fps: u32,
}

impl Mode {
    /// Width and height.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}x{} {} {} fps",
            self.width, self.height, self.format, self.fps
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// No frame within the timeout; not an error by itself.
    #[error("no frame yet")]
    Timeout,
    /// The device went away; the capture thread shows NO SIGNAL and retries.
    #[error("source disconnected: {0}")]
    Disconnected(String),
    /// The source cannot work as configured.
    #[error("{0}")]
    Failed(String),
}

impl SourceError {
    /// The reason alone, without the kind: what a person is shown as the camera's problem.
    pub fn reason(&self) -> String {
        match self {
            SourceError::Timeout => "no frame yet".to_owned(),
            SourceError::Disconnected(reason) | SourceError::Failed(reason) => reason.clone(),
        }
    }
}

//! Frames as they move through the pipeline: raw pixels borrowed from a source, and the
//! encoded JPEG that the frame slot hands to clients.

/// Pixel data of one captured frame, borrowed from the source's buffer.
#[derive(Debug, Clone, Copy)]
pub enum Pixels<'a> {
    /// A complete JPEG (camera MJPEG, a JPEG file, a program's own JPEG).
    Jpeg(&'a [u8]),
    /// Packed 4:2:2 `Y0 U Y1 V`, two bytes per pixel.
    Yuyv(&'a [u8]),
    /// Packed 8-bit `R G B`.
    Rgb(&'a [u8]),
    /// Packed 8-bit `B G R` (OpenCV's order).
    Bgr(&'a [u8]),
    /// 8-bit grayscale.
    Gray(&'a [u8]),
}

impl Pixels<'_> {
    /// Bytes per pixel of the raw formats; `None` for JPEG.
    pub fn bytes_per_pixel(&self) -> Option<usize> {
        match self {
            Pixels::Jpeg(_) => None,
            Pixels::Yuyv(_) => Some(2),
            Pixels::Rgb(_) | Pixels::Bgr(_) => Some(3),
            Pixels::Gray(_) => Some(1),
        }
    }

    pub fn data(&self) -> &[u8] {
        match self {
            Pixels::Jpeg(d)
            | Pixels::Yuyv(d)
            | Pixels::Rgb(d)
            | Pixels::Bgr(d)
            | Pixels::Gray(d) => d,
        }
    }

    /// Short name of the format, as in a mode string (`640x480 YUYV 30 fps`).
    pub fn format_name(&self) -> &'static str {
        match self {
            Pixels::Jpeg(_) => "MJPEG",
            Pixels::Yuyv(_) => "YUYV",
            Pixels::Rgb(_) => "RGB24",
            Pixels::Bgr(_) => "BGR24",
            Pixels::Gray(_) => "GRAY",
        }
    }
}

/// One frame handed out by a source. `captured_us` is `CLOCK_MONOTONIC` in microseconds,
/// the clock V4L2 stamps its buffers with.
#[derive(Debug, Clone, Copy)]
pub struct CapturedFrame<'a> {
    pub pixels: Pixels<'a>,
    pub width: u32,
    pub height: u32,
    pub captured_us: u64,
    /// Frames the device dropped just before this one (gaps in its sequence numbers).
    pub dropped_before: u32,
}

/// What a published frame shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A picture from the source.
    Live,
    /// The placeholder shown while the source is gone.
    NoSignal,
}

/// An encoded frame as stored in the frame slot and shared by every client.
///
/// The JPEG bytes live in `buffer[..len]`: the buffer keeps its full size between uses so
/// that the encoder can reuse it without clearing it (see `encode::FramePool`).
#[derive(Debug)]
pub struct Frame {
    /// Increases by one for every frame published to a slot; 0 means "no frame yet".
    pub seq: u64,
    pub captured_us: u64,
    pub width: u32,
    pub height: u32,
    pub kind: FrameKind,
    pub(crate) buffer: Vec<u8>,
    pub(crate) len: usize,
}

impl Frame {
    /// The empty frame a slot starts with.
    pub fn empty() -> Frame {
        Frame {
            seq: 0,
            captured_us: 0,
            width: 0,
            height: 0,
            kind: FrameKind::Live,
            buffer: Vec::new(),
            len: 0,
        }
    }

    /// A frame holding a copy of `jpeg`.
    pub fn from_jpeg(jpeg: &[u8], width: u32, height: u32, captured_us: u64) -> Frame {
        Frame {
            seq: 0,
            captured_us,
            width,
            height,
            kind: FrameKind::Live,
            buffer: jpeg.to_vec(),
            len: jpeg.len(),
        }
    }

    /// The encoded JPEG.
    pub fn jpeg(&self) -> &[u8] {
        &self.buffer[..self.len]
    }
}

/// `CLOCK_MONOTONIC` now, in microseconds: the clock of V4L2 buffer timestamps and of
/// the `X-Timestamp` header.
pub fn monotonic_us() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

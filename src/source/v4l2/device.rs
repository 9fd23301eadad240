//! A V4L2 capture device at the ioctl level: open, capabilities, format and frame-rate
//! negotiation, enumeration, mmap streaming and controls.
//!
//! The kernel structures and ioctl codes come from the `v4l` crate (`v4l::v4l_sys`,
//! `v4l::v4l2::vidioc`); the calls are made here because the crate's own paths panic on
//! things a camera may do: its stream `Drop` panics on a `STREAMOFF` error other than
//! ENODEV, its `Format` conversion `expect`s known colorspaces, and its control queries
//! panic on unknown control types (issue #98 of the crate). Nothing here panics on what a
//! device reports; every failure is an `io::Error`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use v4l::v4l_sys::*;
use v4l::v4l2::vidioc;

/// A four-character pixel format code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub u32);

impl FourCc {
    pub const MJPEG: FourCc = FourCc::from_bytes(*b"MJPG");
    pub const JPEG: FourCc = FourCc::from_bytes(*b"JPEG");
    pub const YUYV: FourCc = FourCc::from_bytes(*b"YUYV");

    pub const fn from_bytes(b: [u8; 4]) -> FourCc {
        FourCc(u32::from_le_bytes(b))
    }

    pub fn is_jpeg(self) -> bool {
        self == FourCc::MJPEG || self == FourCc::JPEG
    }
}

impl std::fmt::Display for FourCc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.0.to_le_bytes();
        for b in bytes {
            let c = if b.is_ascii_graphic() { b as char } else { '?' };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// Runs one ioctl, retrying on EINTR.
///
/// # Safety
/// `arg` must point to the structure the request expects, valid for the call.
unsafe fn ioctl<T>(fd: &OwnedFd, request: vidioc::_IOC_TYPE, arg: &mut T) -> io::Result<()> {
    loop {
        // SAFETY: the caller guarantees `arg` matches `request`; the fd is open.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg as *mut T) };
        if rc != -1 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// A kernel structure for which all-zero bytes are a valid value: how V4L2 asks for a
/// request to be filled in.
///
/// # Safety
///
/// Implement it only for plain C structures (integers, arrays of them, unions of such,
/// raw pointers), never for a type with references, `NonNull`, enums or `bool`s, for which
/// zero bytes are no value at all.
unsafe trait ValidWhenZeroed: Sized {}

// SAFETY: bindgen's plain C structures of `videodev2.h`: integers, byte arrays, unions of
// them and raw pointers (`v4l2_buffer.m.planes`), all valid as zero.
unsafe impl ValidWhenZeroed for v4l2_capability {}
// SAFETY: as above.
unsafe impl ValidWhenZeroed for v4l2_fmtdesc {}
// SAFETY: as above.
unsafe impl ValidWhenZeroed for v4l2_frmsizeenum {}
// SAFETY: as above.
unsafe impl ValidWhenZeroed for v4l2_frmivalenum {}
// SAFETY: as above.
unsafe impl ValidWhenZeroed for v4l2_format {}
// SAFETY: as above.
unsafe impl ValidWhenZeroed for v4l2_streamparm {}
// SAFETY: as above.
unsafe impl ValidWhenZeroed for v4l2_requestbuffers {}
// SAFETY: as above.
unsafe impl ValidWhenZeroed for v4l2_buffer {}
// SAFETY: as above.
unsafe impl ValidWhenZeroed for v4l2_query_ext_ctrl {}
// SAFETY: as above.
unsafe impl ValidWhenZeroed for v4l2_querymenu {}

/// A zero-initialised kernel structure.
fn zeroed<T: ValidWhenZeroed>() -> T {
    // SAFETY: `T: ValidWhenZeroed` promises that all-zero bytes are a valid `T`.
    unsafe { std::mem::zeroed() }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

const CAPTURE: u32 = v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE;

/// An open capture device.
pub struct Device {
    fd: OwnedFd,
    pub card: String,
    pub bus_info: String,
}

/// What the driver granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    pub width: u32,
    pub height: u32,
    pub fourcc: FourCc,
    pub bytes_per_line: u32,
    /// Frames per second, rounded; 0 when the driver does not say.
    pub fps: u32,
}

/// One size a format offers, with its frame rates.
#[derive(Debug, Clone, PartialEq)]
pub enum SizeRange {
    Discrete {
        width: u32,
        height: u32,
    },
    Stepwise {
        min_width: u32,
        max_width: u32,
        step_width: u32,
        min_height: u32,
        max_height: u32,
        step_height: u32,
    },
}

impl SizeRange {
    pub fn contains(&self, width: u32, height: u32) -> bool {
        match *self {
            SizeRange::Discrete {
                width: w,
                height: h,
            } => w == width && h == height,
            SizeRange::Stepwise {
                min_width,
                max_width,
                step_width,
                min_height,
                max_height,
                step_height,
            } => {
                (min_width..=max_width).contains(&width)
                    && (min_height..=max_height).contains(&height)
                    && (width - min_width) % step_width.max(1) == 0
                    && (height - min_height) % step_height.max(1) == 0
            }
        }
    }
}

impl Device {
    /// Opens a capture device (non-blocking; frames are waited for with `poll`).
    pub fn open(path: &Path) -> io::Result<Device> {
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        // SAFETY: open with a valid C string; the result is checked.
        let raw = unsafe {
            libc::open(
                c_path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a freshly opened descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut caps: v4l2_capability = zeroed();
        // SAFETY: VIDIOC_QUERYCAP takes a v4l2_capability.
        unsafe { ioctl(&fd, vidioc::VIDIOC_QUERYCAP, &mut caps)? };
        let device_caps = if caps.capabilities & V4L2_CAP_DEVICE_CAPS != 0 {
            caps.device_caps
        } else {
            caps.capabilities
        };
        if device_caps & V4L2_CAP_VIDEO_CAPTURE == 0 || device_caps & V4L2_CAP_STREAMING == 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "not a video capture device with streaming (a metadata node?)",
            ));
        }
        Ok(Device {
            fd,
            card: c_string(&caps.card),
            bus_info: c_string(&caps.bus_info),
        })
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The pixel formats the device offers, with their descriptions.
    pub fn formats(&self) -> Vec<(FourCc, String)> {
        let mut formats = Vec::new();
        for index in 0..64 {
            let mut desc: v4l2_fmtdesc = zeroed();
            desc.index = index;
            desc.type_ = CAPTURE;
            // SAFETY: VIDIOC_ENUM_FMT takes a v4l2_fmtdesc.
            if unsafe { ioctl(&self.fd, vidioc::VIDIOC_ENUM_FMT, &mut desc) }.is_err() {
                break;
            }
            formats.push((FourCc(desc.pixelformat), c_string(&desc.description)));
        }
        formats
    }

    /// The frame sizes of a format.
    pub fn sizes(&self, fourcc: FourCc) -> Vec<SizeRange> {
        let mut sizes = Vec::new();
        for index in 0..256 {
            let mut size: v4l2_frmsizeenum = zeroed();
            size.index = index;
            size.pixel_format = fourcc.0;
            // SAFETY: VIDIOC_ENUM_FRAMESIZES takes a v4l2_frmsizeenum.
            if unsafe { ioctl(&self.fd, vidioc::VIDIOC_ENUM_FRAMESIZES, &mut size) }.is_err() {
                break;
            }
            // SAFETY: the union member read is the one `type_` says is valid.
            let range = unsafe {
                match size.type_ {
                    v4l2_frmsizetypes_V4L2_FRMSIZE_TYPE_DISCRETE => SizeRange::Discrete {
                        width: size.__bindgen_anon_1.discrete.width,
                        height: size.__bindgen_anon_1.discrete.height,
                    },
                    _ => {
                        let s = size.__bindgen_anon_1.stepwise;
                        SizeRange::Stepwise {
                            min_width: s.min_width,
                            max_width: s.max_width,
                            step_width: s.step_width,
                            min_height: s.min_height,
                            max_height: s.max_height,
                            step_height: s.step_height,
                        }
                    }
                }
            };
            let stepwise = matches!(range, SizeRange::Stepwise { .. });
            sizes.push(range);
            if stepwise {
                break; // a stepwise range is the only entry
            }
        }
        sizes
    }

    /// The frame rates of a format at a size, as frames per second (discrete values, or
    /// the minimum and maximum of a range).
    pub fn frame_rates(&self, fourcc: FourCc, width: u32, height: u32) -> Vec<f64> {
        let mut rates = Vec::new();
        for index in 0..64 {
            let mut interval: v4l2_frmivalenum = zeroed();
            interval.index = index;
            interval.pixel_format = fourcc.0;
            interval.width = width;
            interval.height = height;
            // SAFETY: VIDIOC_ENUM_FRAMEINTERVALS takes a v4l2_frmivalenum.
            if unsafe { ioctl(&self.fd, vidioc::VIDIOC_ENUM_FRAMEINTERVALS, &mut interval) }
                .is_err()
            {
                break;
            }
            let fps = |f: v4l2_fract| {
                if f.numerator == 0 {
                    0.0
                } else {
                    f64::from(f.denominator) / f64::from(f.numerator)
                }
            };
            // SAFETY: the union member read is the one `type_` says is valid.
            unsafe {
                if interval.type_ == v4l2_frmivaltypes_V4L2_FRMIVAL_TYPE_DISCRETE {
                    rates.push(fps(interval.__bindgen_anon_1.discrete));
                } else {
                    let s = interval.__bindgen_anon_1.stepwise;
                    rates.push(fps(s.max));
                    rates.push(fps(s.min));
                    break;
                }
            }
        }
        rates
    }

    /// Whether `fourcc` is offered at `width`x`height`.
    pub fn offers(&self, fourcc: FourCc, width: u32, height: u32) -> bool {
        self.sizes(fourcc).iter().any(|s| s.contains(width, height))
    }

    /// Sets the format and frame rate; returns what the driver granted.
    pub fn set_mode(
        &self,
        width: u32,
        height: u32,
        fourcc: FourCc,
        fps: u32,
    ) -> io::Result<Granted> {
        let mut format: v4l2_format = zeroed();
        format.type_ = CAPTURE;
        // Writing a union field is safe; the capture format uses `pix`.
        format.fmt.pix.width = width;
        format.fmt.pix.height = height;
        format.fmt.pix.pixelformat = fourcc.0;
        format.fmt.pix.field = v4l2_field_V4L2_FIELD_ANY;
        // SAFETY: VIDIOC_S_FMT takes a v4l2_format; the driver writes back what it chose.
        unsafe { ioctl(&self.fd, vidioc::VIDIOC_S_FMT, &mut format)? };
        // SAFETY: for a capture format the driver fills `pix`.
        let pix = unsafe { format.fmt.pix };
        let mut parm: v4l2_streamparm = zeroed();
        parm.type_ = CAPTURE;
        parm.parm.capture.timeperframe = v4l2_fract {
            numerator: 1,
            denominator: fps.max(1),
        };
        // SAFETY: VIDIOC_S_PARM takes a v4l2_streamparm. Not every driver supports it.
        let granted_fps = match unsafe { ioctl(&self.fd, vidioc::VIDIOC_S_PARM, &mut parm) } {
            Ok(()) => {
                // SAFETY: the driver fills `capture` for a capture stream.
                let frac = unsafe { parm.parm.capture.timeperframe };
                if frac.numerator == 0 {
                    0
                } else {
                    (f64::from(frac.denominator) / f64::from(frac.numerator)).round() as u32
                }
            }
            Err(_) => 0,
        };
        Ok(Granted {
            width: pix.width,
            height: pix.height,
            fourcc: FourCc(pix.pixelformat),
            bytes_per_line: pix.bytesperline,
            fps: granted_fps,
        })
    }
}

/// One mmap'd buffer.
struct Mapping {
    address: *mut libc::c_void,
    length: usize,
}

/// An mmap streaming session on a device. Stopping and unmapping happen on drop and never
/// panic, whatever state the device is in (unplugged included).
pub struct Stream {
    fd: OwnedFd,
    mappings: Vec<Mapping>,
    /// The buffer lent out as the current frame, to queue again before the next dequeue.
    held: Option<u32>,
}

// SAFETY: the mappings are plain memory owned by this struct; only the thread that owns the
// `Stream` touches them.
unsafe impl Send for Stream {}

/// A dequeued buffer.
pub struct Dequeued {
    pub index: u32,
    pub bytes_used: usize,
    pub sequence: u32,
    pub flags: u32,
    pub timestamp_us: u64,
}

impl Stream {
    /// Allocates `count` buffers, queues them and starts streaming.
    pub fn start(device: &Device, count: u32) -> io::Result<Stream> {
        let fd = device.fd.try_clone()?;
        let mut request: v4l2_requestbuffers = zeroed();
        request.count = count;
        request.type_ = CAPTURE;
        request.memory = v4l2_memory_V4L2_MEMORY_MMAP;
        // SAFETY: VIDIOC_REQBUFS takes a v4l2_requestbuffers.
        unsafe { ioctl(&fd, vidioc::VIDIOC_REQBUFS, &mut request)? };
        let mut stream = Stream {
            fd,
            mappings: Vec::new(),
            held: None,
        };
        for index in 0..request.count {
            let mut buffer = stream.buffer_desc(index);
            // SAFETY: VIDIOC_QUERYBUF takes a v4l2_buffer.
            unsafe { ioctl(&stream.fd, vidioc::VIDIOC_QUERYBUF, &mut buffer)? };
            // SAFETY: mapping the region the driver reported for this buffer.
            let address = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    buffer.length as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    stream.fd.as_raw_fd(),
                    buffer.m.offset as libc::off_t,
                )
            };
            if address == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            stream.mappings.push(Mapping {
                address,
                length: buffer.length as usize,
            });
            stream.queue(index)?;
        }
        let mut kind = CAPTURE;
        // SAFETY: VIDIOC_STREAMON takes the buffer type.
        unsafe { ioctl(&stream.fd, vidioc::VIDIOC_STREAMON, &mut kind)? };
        Ok(stream)
    }

    fn buffer_desc(&self, index: u32) -> v4l2_buffer {
        let mut buffer: v4l2_buffer = zeroed();
        buffer.index = index;
        buffer.type_ = CAPTURE;
        buffer.memory = v4l2_memory_V4L2_MEMORY_MMAP;
        buffer
    }

    fn queue(&self, index: u32) -> io::Result<()> {
        let mut buffer = self.buffer_desc(index);
        // SAFETY: VIDIOC_QBUF takes a v4l2_buffer.
        unsafe { ioctl(&self.fd, vidioc::VIDIOC_QBUF, &mut buffer) }
    }

    /// Gives back the buffer lent out by the last `next`.
    pub fn release(&mut self) -> io::Result<()> {
        match self.held.take() {
            Some(index) => self.queue(index),
            None => Ok(()),
        }
    }

    /// Waits up to `timeout_ms` for a frame. `Ok(None)` on timeout.
    pub fn wait(&self, timeout_ms: i32) -> io::Result<bool> {
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one pollfd we own.
        let rc = unsafe { libc::poll(&mut poll, 1, timeout_ms) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(err)
            };
        }
        if poll.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        }
        Ok(rc > 0)
    }

    /// Dequeues one filled buffer without blocking; `Ok(None)` when none is ready.
    pub fn dequeue(&mut self) -> io::Result<Option<Dequeued>> {
        let mut buffer = self.buffer_desc(0);
        // SAFETY: VIDIOC_DQBUF takes a v4l2_buffer.
        match unsafe { ioctl(&self.fd, vidioc::VIDIOC_DQBUF, &mut buffer) } {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
        let monotonic =
            buffer.flags & V4L2_BUF_FLAG_TIMESTAMP_MASK == V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC;
        let timestamp_us = if monotonic {
            buffer.timestamp.tv_sec as u64 * 1_000_000 + buffer.timestamp.tv_usec as u64
        } else {
            crate::frame::monotonic_us()
        };
        Ok(Some(Dequeued {
            index: buffer.index,
            bytes_used: buffer.bytesused as usize,
            sequence: buffer.sequence,
            flags: buffer.flags,
            timestamp_us,
        }))
    }

    /// Requeues a buffer that will not be used.
    pub fn requeue(&self, index: u32) -> io::Result<()> {
        self.queue(index)
    }

    /// Lends out buffer `index`, up to `len` bytes, until the next `release`.
    pub fn lend(&mut self, index: u32, len: usize) -> Option<&[u8]> {
        let mapping = self.mappings.get(index as usize)?;
        self.held = Some(index);
        let len = len.min(mapping.length);
        // SAFETY: the mapping is `length` bytes, alive while `self` is, and the driver does
        // not write a buffer while it is dequeued (held).
        Some(unsafe { std::slice::from_raw_parts(mapping.address as *const u8, len) })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let mut kind = CAPTURE;
        // SAFETY: VIDIOC_STREAMOFF takes the buffer type. Errors (ENODEV after an unplug)
        // are of no consequence here.
        let _ = unsafe { ioctl(&self.fd, vidioc::VIDIOC_STREAMOFF, &mut kind) };
        for mapping in &self.mappings {
            // SAFETY: unmapping what `start` mapped, once.
            unsafe { libc::munmap(mapping.address, mapping.length) };
        }
        let mut request: v4l2_requestbuffers = zeroed();
        request.type_ = CAPTURE;
        request.memory = v4l2_memory_V4L2_MEMORY_MMAP;
        // SAFETY: freeing the buffers (count 0) after unmapping them.
        let _ = unsafe { ioctl(&self.fd, vidioc::VIDIOC_REQBUFS, &mut request) };
    }
}

/// The kind of a control, as frcstream handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlKind {
    Integer,
    Boolean,
    Menu,
    IntegerMenu,
    Button,
}

/// A control as the driver describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawControl {
    pub id: u32,
    pub label: String,
    pub kind: ControlKind,
    pub minimum: i64,
    pub maximum: i64,
    pub step: i64,
    pub default: i64,
    pub flags: u32,
    pub menu: Vec<(i64, String)>,
}

impl Device {
    /// Every control of a type frcstream handles. Controls of other types (strings,
    /// bitmasks, 64-bit, arrays and other compound controls) are skipped, never a panic.
    pub fn controls(&self) -> Vec<RawControl> {
        let mut controls = Vec::new();
        let mut query: v4l2_query_ext_ctrl = zeroed();
        query.id = V4L2_CTRL_FLAG_NEXT_CTRL;
        for _ in 0..1024 {
            // SAFETY: VIDIOC_QUERY_EXT_CTRL takes a v4l2_query_ext_ctrl.
            if unsafe { ioctl(&self.fd, vidioc::VIDIOC_QUERY_EXT_CTRL, &mut query) }.is_err() {
                break;
            }
            let kind = match query.type_ {
                v4l2_ctrl_type_V4L2_CTRL_TYPE_INTEGER => Some(ControlKind::Integer),
                v4l2_ctrl_type_V4L2_CTRL_TYPE_BOOLEAN => Some(ControlKind::Boolean),
                v4l2_ctrl_type_V4L2_CTRL_TYPE_MENU => Some(ControlKind::Menu),
                v4l2_ctrl_type_V4L2_CTRL_TYPE_INTEGER_MENU => Some(ControlKind::IntegerMenu),
                v4l2_ctrl_type_V4L2_CTRL_TYPE_BUTTON => Some(ControlKind::Button),
                _ => None,
            };
            // Arrays and payload controls (vivid's `u8_2x3x4x5_array`, strings) carry more
            // than one value: not settable as a number, so skipped like unknown types.
            let scalar = query.nr_of_dims == 0 && query.flags & V4L2_CTRL_FLAG_HAS_PAYLOAD == 0;
            if let (Some(kind), true) = (kind, scalar) {
                if query.flags & V4L2_CTRL_FLAG_DISABLED == 0 {
                    let name_bytes: Vec<u8> = query.name.iter().map(|&c| c as u8).collect();
                    let mut control = RawControl {
                        id: query.id,
                        label: c_string(&name_bytes),
                        kind,
                        minimum: query.minimum,
                        maximum: query.maximum,
                        step: query.step.min(i64::MAX as u64) as i64,
                        default: query.default_value,
                        flags: query.flags,
                        menu: Vec::new(),
                    };
                    if matches!(kind, ControlKind::Menu | ControlKind::IntegerMenu) {
                        control.menu = self.menu_items(&query, kind);
                    }
                    controls.push(control);
                }
            }
            query.id |= V4L2_CTRL_FLAG_NEXT_CTRL;
        }
        controls
    }

    fn menu_items(&self, query: &v4l2_query_ext_ctrl, kind: ControlKind) -> Vec<(i64, String)> {
        let mut items = Vec::new();
        let (low, high) = (
            query.minimum.max(0),
            query.maximum.min(query.minimum.max(0).saturating_add(64)),
        );
        for index in low..=high {
            let mut item: v4l2_querymenu = zeroed();
            item.id = query.id;
            item.index = index as u32;
            // SAFETY: VIDIOC_QUERYMENU takes a v4l2_querymenu. Drivers may refuse indices
            // inside the range: those are skipped.
            if unsafe { ioctl(&self.fd, vidioc::VIDIOC_QUERYMENU, &mut item) }.is_err() {
                continue;
            }
            // SAFETY: the union member read matches the control's kind.
            let label = unsafe {
                match kind {
                    ControlKind::IntegerMenu => {
                        let value = item.__bindgen_anon_1.value;
                        value.to_string()
                    }
                    _ => c_string(&item.__bindgen_anon_1.name),
                }
            };
            items.push((index, label));
        }
        items
    }

    /// The current value of a control.
    pub fn control_value(&self, id: u32) -> io::Result<i64> {
        control_value(&self.fd, id)
    }
}

/// The current value of a control, on any descriptor of the device.
pub fn control_value(fd: &OwnedFd, id: u32) -> io::Result<i64> {
    let mut control = v4l2_control { id, value: 0 };
    // SAFETY: VIDIOC_G_CTRL takes a v4l2_control.
    unsafe { ioctl(fd, vidioc::VIDIOC_G_CTRL, &mut control)? };
    Ok(i64::from(control.value))
}

/// Sets a control, on any descriptor of the device.
pub fn set_control_value(fd: &OwnedFd, id: u32, value: i64) -> io::Result<()> {
    let value = i32::try_from(value)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "value out of 32-bit range"))?;
    let mut control = v4l2_control { id, value };
    // SAFETY: VIDIOC_S_CTRL takes a v4l2_control.
    unsafe { ioctl(fd, vidioc::VIDIOC_S_CTRL, &mut control) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourcc_codes() {
        assert_eq!(FourCc::YUYV.to_string(), "YUYV");
        assert_eq!(FourCc::MJPEG.to_string(), "MJPG");
        assert!(FourCc::JPEG.is_jpeg());
        assert_eq!(FourCc(0x00FF_0041).to_string(), "A???");
    }

    #[test]
    fn stepwise_sizes() {
        let range = SizeRange::Stepwise {
            min_width: 16,
            max_width: 1920,
            step_width: 2,
            min_height: 16,
            max_height: 1080,
            step_height: 1,
        };
        assert!(range.contains(640, 480));
        assert!(!range.contains(641, 480));
        assert!(!range.contains(4000, 480));
        assert!(
            SizeRange::Discrete {
                width: 640,
                height: 480
            }
            .contains(640, 480)
        );
    }

    #[test]
    fn opening_a_non_device_fails_cleanly() {
        assert!(Device::open(Path::new("/dev/null")).is_err());
        assert!(Device::open(Path::new("/nonexistent/video0")).is_err());
    }
}

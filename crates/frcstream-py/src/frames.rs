//! Python objects to pushed frames: numpy arrays (read in place through numpy's array
//! interface), other buffers, `PIL.Image`s and JPEG bytes. Every refusal says what was
//! expected and how to get it.
//!
//! The extension is built for the stable ABI of Python 3.9 (Debian 11's, the oldest a
//! coprocessor image has), where the C buffer protocol is not part of the stable ABI; so
//! arrays are read through `__array_interface__` (numpy's, version 3): the data pointer,
//! shape and strides, without a copy. The frame is encoded from there in the caller's
//! thread with the GIL released (the stream's handle encodes in the caller, see
//! `handles` in lib.rs): no copy of the pixels, no hand-over to the capture thread.

use frcstream::PushedStream;
use frcstream::source::pushed::{PushError, RawLayout};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView, PyTuple};

use crate::type_name;

/// What the caller said the frame is (`format=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    Bgr,
    Rgb,
    Gray,
    Yuyv,
    Jpeg,
}

impl Hint {
    pub fn parse(format: Option<&str>) -> PyResult<Option<Hint>> {
        let Some(format) = format else {
            return Ok(None);
        };
        Ok(Some(match format.to_ascii_lowercase().as_str() {
            "bgr" => Hint::Bgr,
            "rgb" => Hint::Rgb,
            "gray" | "grey" | "mono" => Hint::Gray,
            "yuyv" | "yuy2" => Hint::Yuyv,
            "jpeg" | "jpg" | "mjpeg" => Hint::Jpeg,
            other => {
                return Err(PyValueError::new_err(format!(
                    "format must be \"bgr\", \"rgb\", \"gray\", \"yuyv\" or \"jpeg\", not \"{other}\""
                )));
            }
        }))
    }
}

/// Pushes rows packed without padding, from the bytes of a Python `bytes` object the caller
/// holds, with the GIL released.
fn push_packed(
    py: Python<'_>,
    stream: &PushedStream,
    layout: RawLayout,
    data: &[u8],
    width: u32,
    height: u32,
) -> PyResult<()> {
    let stride = width as usize * layout.bytes_per_pixel();
    let pixels = Pixels {
        ptr: data.as_ptr(),
        len: data.len(),
    };
    // SAFETY: `data` belongs to an immutable `bytes` the caller holds until this returns.
    py.allow_threads(|| stream.push_rows(layout, unsafe { pixels.slice() }, width, height, stride))
        .map_err(push_error)
}

pub fn push_error(error: PushError) -> PyErr {
    match error {
        PushError::Stopped => PyRuntimeError::new_err("the server has stopped"),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// A read-only byte range that outlives the GIL release because the Python object owning
/// it is held by the caller for the whole call.
struct Pixels {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the pointer is only read, while the object that owns the memory is referenced
// by the calling frame (see `push_raw`).
unsafe impl Send for Pixels {}
// SAFETY: as above; nothing writes through it.
unsafe impl Sync for Pixels {}

impl Pixels {
    /// SAFETY: the memory must stay valid for as long as the slice is used.
    unsafe fn slice(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Pushes `frame` (see `Stream.put_frame`).
pub fn push(frame: &Bound<'_, PyAny>, format: Option<&str>, stream: &PushedStream) -> PyResult<()> {
    let hint = Hint::parse(format)?;
    let py = frame.py();
    if let Ok(bytes) = frame.downcast::<PyBytes>() {
        return push_jpeg(py, bytes.as_bytes(), hint, stream);
    }
    if let Ok(array) = frame.downcast::<PyByteArray>() {
        let bytes = array.to_vec();
        return push_jpeg(py, &bytes, hint, stream);
    }
    if is_pil_image(frame) {
        return push_pil(frame, hint, stream);
    }
    if let Ok(interface) = frame.getattr("__array_interface__") {
        return push_array(frame, &interface, hint, stream);
    }
    if let Ok(view) = frame.downcast::<PyMemoryView>() {
        return push_memoryview(view, hint, stream);
    }
    Err(PyTypeError::new_err(format!(
        "expected a frame: a numpy uint8 array (BGR (h, w, 3), gray (h, w), YUYV (h, w, 2)), \
         a PIL.Image or JPEG bytes; got {}",
        type_name(frame)
    )))
}

fn push_jpeg(
    py: Python<'_>,
    data: &[u8],
    hint: Option<Hint>,
    stream: &PushedStream,
) -> PyResult<()> {
    if let Some(hint @ (Hint::Bgr | Hint::Rgb | Hint::Gray | Hint::Yuyv)) = hint {
        return Err(PyTypeError::new_err(format!(
            "format {hint:?} needs the frame as a numpy array of shape (h, w[, channels]): \
             bytes have no width and height"
        )));
    }
    if !data.starts_with(&[0xFF, 0xD8]) {
        return Err(PyValueError::new_err(format!(
            "bytes must be a complete JPEG (starting with FF D8), got {} bytes starting with {:02X?}; \
             raw pixels go in a numpy array of shape (h, w[, channels])",
            data.len(),
            &data[..data.len().min(4)]
        )));
    }
    let pixels = Pixels {
        ptr: data.as_ptr(),
        len: data.len(),
    };
    // SAFETY: `data` belongs to a bytes object (immutable) or a Vec held by the caller.
    py.allow_threads(|| stream.push_jpeg(unsafe { pixels.slice() }))
        .map_err(push_error)
}

fn is_pil_image(frame: &Bound<'_, PyAny>) -> bool {
    let module = frame
        .get_type()
        .getattr("__module__")
        .and_then(|m| m.extract::<String>())
        .unwrap_or_default();
    module.starts_with("PIL.") && frame.hasattr("tobytes").unwrap_or(false)
}

fn push_pil(image: &Bound<'_, PyAny>, hint: Option<Hint>, stream: &PushedStream) -> PyResult<()> {
    let py = image.py();
    if hint == Some(Hint::Jpeg) {
        return Err(PyTypeError::new_err(
            "format \"jpeg\" takes bytes; a PIL.Image is pushed as its pixels",
        ));
    }
    let mode: String = image.getattr("mode")?.extract()?;
    let (image, layout) = match mode.as_str() {
        "RGB" => (image.clone(), RawLayout::Rgb),
        "L" => (image.clone(), RawLayout::Gray),
        // Palette, RGBA, CMYK, 16-bit...: what the picture shows, as RGB.
        _ => (image.call_method1("convert", ("RGB",))?, RawLayout::Rgb),
    };
    let (width, height): (i64, i64) = image.getattr("size")?.extract()?;
    let bytes = image.call_method0("tobytes")?;
    let bytes = bytes.downcast::<PyBytes>()?;
    let data = bytes.as_bytes();
    let (width, height) = sides(width, height)?;
    push_packed(py, stream, layout, data, width, height)
}

fn sides(width: i64, height: i64) -> PyResult<(u32, u32)> {
    let side = |v: i64| u32::try_from(v).ok().filter(|v| (1..=8192).contains(v));
    match (side(width), side(height)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(PyValueError::new_err(format!(
            "frame size {width}x{height} is not usable (1–8192 pixels per side)"
        ))),
    }
}

/// The layout of an image of `shape` (after the dtype check), and its width.
fn layout_of(shape: &[i64], hint: Option<Hint>) -> PyResult<(RawLayout, i64)> {
    let shape_text = format!("{shape:?}").replace('[', "(").replace(']', ")");
    match (shape, hint) {
        (_, Some(Hint::Jpeg)) => Err(PyTypeError::new_err(
            "format \"jpeg\" takes bytes (a complete JPEG), not an array",
        )),
        ([_, w], None | Some(Hint::Gray)) => Ok((RawLayout::Gray, *w)),
        ([_, w], Some(Hint::Yuyv)) if w % 2 == 0 => Ok((RawLayout::Yuyv, w / 2)),
        ([_, w, 1], None | Some(Hint::Gray)) => Ok((RawLayout::Gray, *w)),
        ([_, w, 2], None | Some(Hint::Yuyv)) => Ok((RawLayout::Yuyv, *w)),
        ([_, w, 3], None | Some(Hint::Bgr)) => Ok((RawLayout::Bgr, *w)),
        ([_, w, 3], Some(Hint::Rgb)) => Ok((RawLayout::Rgb, *w)),
        ([_, _, 4], _) => Err(PyValueError::new_err(format!(
            "expected 1 (gray), 2 (YUYV) or 3 (BGR) channels, got 4 (shape {shape_text}): \
             drop alpha first, e.g. cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)"
        ))),
        ([_, _, c], None) => Err(PyValueError::new_err(format!(
            "expected 1 (gray), 2 (YUYV) or 3 (BGR) channels, got {c} (shape {shape_text})"
        ))),
        ([_, _] | [_, _, _], Some(hint)) => Err(PyValueError::new_err(format!(
            "an array of shape {shape_text} is not {}: expected {}",
            format!("{hint:?}").to_uppercase(),
            match hint {
                Hint::Bgr | Hint::Rgb => "(height, width, 3)",
                Hint::Gray => "(height, width) or (height, width, 1)",
                Hint::Yuyv => "(height, width, 2) or (height, 2 * width)",
                Hint::Jpeg => unreachable!(),
            }
        ))),
        _ => Err(PyValueError::new_err(format!(
            "expected an image of shape (height, width) (gray) or (height, width, channels), \
             got an array of shape {shape_text}"
        ))),
    }
}

fn push_array(
    frame: &Bound<'_, PyAny>,
    interface: &Bound<'_, PyAny>,
    hint: Option<Hint>,
    stream: &PushedStream,
) -> PyResult<()> {
    let py = frame.py();
    let interface = interface.downcast::<PyDict>().map_err(|_| {
        PyTypeError::new_err("__array_interface__ is not a dict: pass a numpy array")
    })?;
    let get = |key: &str| -> PyResult<Bound<'_, PyAny>> {
        interface.get_item(key)?.ok_or_else(|| {
            PyTypeError::new_err(format!(
                "__array_interface__ has no \"{key}\": pass a numpy array"
            ))
        })
    };
    let typestr: String = get("typestr")?.extract()?;
    if typestr != "|u1" {
        let dtype = frame
            .getattr("dtype")
            .and_then(|d| d.str().map(|s| s.to_string()))
            .unwrap_or(typestr);
        return Err(PyTypeError::new_err(format!(
            "expected an array of dtype uint8 (8-bit pixels, as OpenCV gives), got dtype {dtype}: \
             convert it, e.g. frame.astype(numpy.uint8) (scale floats in 0–1 by 255 first)"
        )));
    }
    let shape: Vec<i64> = get("shape")?.extract()?;
    let (layout, width) = layout_of(&shape, hint)?;
    let (width, height) = sides(width, shape[0])?;
    let bytes_per_pixel = layout.bytes_per_pixel() as i64;
    let row = i64::from(width) * bytes_per_pixel;
    let strides: Option<Vec<i64>> = match interface.get_item("strides")? {
        Some(s) if !s.is_none() => Some(s.extract()?),
        _ => None,
    };
    // Pixels of a row must be packed (the channels of a pixel, then the next pixel); rows
    // may be apart (a region of a larger image, padded rows).
    let row_stride = match &strides {
        None => row,
        Some(strides) => {
            let packed = match strides.as_slice() {
                [_, 1] => true,
                [_, pixel, 1] => *pixel == shape[2],
                _ => false,
            };
            if !packed || strides[0] < row {
                let shape_text = format!("{shape:?}").replace('[', "(").replace(']', ")");
                let strides_text = format!("{strides:?}").replace('[', "(").replace(']', ")");
                return Err(PyValueError::new_err(format!(
                    "cannot read this non-contiguous array (shape {shape_text}, strides \
                     {strides_text}): each row's pixels must be packed, rows top to bottom; \
                     pass numpy.ascontiguousarray(frame)"
                )));
            }
            strides[0]
        }
    };
    let data = get("data")?;
    let address: usize = match data.downcast::<PyTuple>() {
        Ok(tuple) => tuple.get_item(0)?.extract()?,
        Err(_) => {
            return Err(PyTypeError::new_err(
                "the array's memory is not addressable (its __array_interface__ has no data \
                 pointer): pass numpy.ascontiguousarray(frame)",
            ));
        }
    };
    if address == 0 {
        return Err(PyValueError::new_err("the array has no data"));
    }
    let len = (height as usize - 1) * row_stride as usize + row as usize;
    let pixels = Pixels {
        ptr: address as *const u8,
        len,
    };
    // SAFETY: numpy guarantees `shape`/`strides` describe memory at `address`; the array
    // (`frame`) is referenced by the caller until the push returns.
    py.allow_threads(|| {
        stream.push_rows(
            layout,
            unsafe { pixels.slice() },
            width,
            height,
            row_stride as usize,
        )
    })
    .map_err(push_error)
}

/// A buffer without numpy's interface (a `memoryview` of an `array.array`, ...): read in
/// C order through `tobytes()` (one copy), when it holds bytes.
fn push_memoryview(
    view: &Bound<'_, PyMemoryView>,
    hint: Option<Hint>,
    stream: &PushedStream,
) -> PyResult<()> {
    let py = view.py();
    let format: String = view.getattr("format")?.extract()?;
    let bytes = view.call_method0("tobytes")?;
    let bytes = bytes.downcast::<PyBytes>()?;
    if hint == Some(Hint::Jpeg) || (hint.is_none() && bytes.as_bytes().starts_with(&[0xFF, 0xD8])) {
        return push_jpeg(py, bytes.as_bytes(), hint, stream);
    }
    if format != "B" {
        return Err(PyTypeError::new_err(format!(
            "expected a buffer of unsigned bytes (format \"B\"), got format \"{format}\""
        )));
    }
    let shape: Vec<i64> = view.getattr("shape")?.extract()?;
    let (layout, width) = layout_of(&shape, hint)?;
    let (width, height) = sides(width, shape[0])?;
    let data = bytes.as_bytes();
    push_packed(py, stream, layout, data, width, height)
}

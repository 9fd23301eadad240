//! Cheap structural checks of JPEG data from cameras and files, and the standard Huffman
//! tables that many USB cameras leave out of their MJPEG frames.
//!
//! A truncated or corrupt JPEG makes Chrome stop drawing a stream for good, so every JPEG
//! that is passed through is checked here first: SOI at the start, EOI at the end, and
//! well-formed marker segments up to the start of the scan.

/// What was learnt about a JPEG that passed the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegInfo {
    /// Length of the JPEG proper: trailing zero padding after EOI is not part of it.
    pub len: usize,
    /// Whether a DHT (Huffman table) segment precedes the scan.
    pub has_huffman_tables: bool,
    /// Offset of the SOS marker.
    pub scan_offset: usize,
    /// Size from the SOF segment.
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JpegError {
    #[error("too short to be a JPEG ({0} bytes)")]
    TooShort(usize),
    #[error("does not start with the SOI marker")]
    NoStartMarker,
    #[error("does not end with the EOI marker (truncated frame?)")]
    NoEndMarker,
    #[error("marker segment at byte {0} runs past the end")]
    BrokenSegment(usize),
    #[error("no start-of-frame segment before the scan")]
    NoFrameHeader,
}

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const DHT: u8 = 0xC4;

/// Checks the structure of a JPEG up to its scan and its end marker. Costs a walk over the
/// header segments only, never over the entropy-coded data.
pub fn check(data: &[u8]) -> Result<JpegInfo, JpegError> {
    if data.len() < 4 {
        return Err(JpegError::TooShort(data.len()));
    }
    if data[0] != 0xFF || data[1] != SOI {
        return Err(JpegError::NoStartMarker);
    }
    let mut info = walk_headers(data)?;
    info.len = end_of_image(data, info.scan_offset)?;
    Ok(info)
}

/// Where the JPEG ends: after its EOI marker. Inside the scan, 0xFF is always stuffed
/// (`FF 00`) or a restart marker, so the first FF D9 after the scan starts is the end.
/// What follows is cut off: zero padding, junk, or - in a driver buffer whose `bytesused`
/// was not updated (v4l2loopback after a new REQBUFS) - the tail of an older, longer JPEG
/// that ends in an EOI of its own: so the last two bytes prove nothing, the scan is searched.
fn end_of_image(data: &[u8], scan_offset: usize) -> Result<usize, JpegError> {
    let scan = &data[scan_offset..];
    let mut from = 0;
    while let Some(at) = next_ff(scan, from) {
        if scan.get(at + 1) == Some(&EOI) {
            return Ok(scan_offset + at + 2);
        }
        from = at + 1;
    }
    Err(JpegError::NoEndMarker)
}

/// The index of the next 0xFF byte in `data` from `from` on. Eight bytes at a time: most
/// of a frame's scan has no 0xFF, and this runs over every passed-through frame.
fn next_ff(data: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut at = from;
    while at + 8 <= data.len() {
        let word = u64::from_le_bytes(data[at..at + 8].try_into().ok()?);
        // A zero byte in !word is a 0xFF byte in word.
        let inverted = !word;
        if inverted.wrapping_sub(ONES) & !inverted & HIGHS != 0 {
            break;
        }
        at += 8;
    }
    data.get(at..)?
        .iter()
        .position(|&b| b == 0xFF)
        .map(|pos| at + pos)
}

/// Walks the marker segments from SOI to SOS.
fn walk_headers(data: &[u8]) -> Result<JpegInfo, JpegError> {
    let len = data.len();
    let mut pos = 2;
    let mut has_huffman_tables = false;
    let mut size = None;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        if data.get(pos) != Some(&0xFF) {
            return Err(JpegError::BrokenSegment(pos));
        }
        while data.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let marker = *data.get(pos).ok_or(JpegError::BrokenSegment(pos))?;
        let marker_offset = pos - 1;
        pos += 1;
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            continue; // standalone markers carry no length
        }
        let length = match data.get(pos..pos + 2) {
            Some(bytes) => usize::from(u16::from_be_bytes([bytes[0], bytes[1]])),
            None => return Err(JpegError::BrokenSegment(marker_offset)),
        };
        if length < 2 || pos + length > len {
            return Err(JpegError::BrokenSegment(marker_offset));
        }
        let segment = &data[pos + 2..pos + length];
        match marker {
            DHT => has_huffman_tables = true,
            SOS => {
                let (width, height) = size.ok_or(JpegError::NoFrameHeader)?;
                return Ok(JpegInfo {
                    len,
                    has_huffman_tables,
                    scan_offset: marker_offset,
                    width,
                    height,
                });
            }
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if marker != 0xC8 && marker != 0xCC => {
                if segment.len() < 5 {
                    return Err(JpegError::BrokenSegment(marker_offset));
                }
                let height = u16::from_be_bytes([segment[1], segment[2]]);
                let width = u16::from_be_bytes([segment[3], segment[4]]);
                size = Some((u32::from(width), u32::from(height)));
            }
            EOI => return Err(JpegError::NoFrameHeader),
            _ => {}
        }
        pos += length;
    }
}

/// Copies `data` into `out`, inserting the standard Huffman tables before the scan when the
/// JPEG has none (as cscore and ustreamer do for cameras that omit them).
pub fn copy_with_huffman_tables(data: &[u8], info: &JpegInfo, out: &mut Vec<u8>) {
    out.clear();
    if info.has_huffman_tables {
        out.extend_from_slice(&data[..info.len]);
    } else {
        out.reserve(info.len + STANDARD_HUFFMAN_SEGMENT_LEN);
        out.extend_from_slice(&data[..info.scan_offset]);
        append_standard_huffman_segment(out);
        out.extend_from_slice(&data[info.scan_offset..info.len]);
    }
}

// The standard tables of ITU-T T.81 Annex K.3 (libjpeg's jstdhuff.c): for each table,
// the count of codes of each length 1..=16, then the symbols.
const DC_LUMINANCE_COUNTS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_CHROMINANCE_COUNTS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const DC_SYMBOLS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const AC_LUMINANCE_COUNTS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
#[rustfmt::skip]
const AC_LUMINANCE_SYMBOLS: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
    0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];
const AC_CHROMINANCE_COUNTS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
#[rustfmt::skip]
const AC_CHROMINANCE_SYMBOLS: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
    0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];

/// (class << 4 | table id, code counts, symbols) of the four standard tables.
const STANDARD_TABLES: [(u8, &[u8; 16], &[u8]); 4] = [
    (0x00, &DC_LUMINANCE_COUNTS, &DC_SYMBOLS),
    (0x10, &AC_LUMINANCE_COUNTS, &AC_LUMINANCE_SYMBOLS),
    (0x01, &DC_CHROMINANCE_COUNTS, &DC_SYMBOLS),
    (0x11, &AC_CHROMINANCE_COUNTS, &AC_CHROMINANCE_SYMBOLS),
];

/// Bytes of the one DHT segment holding all four standard tables, marker included.
const STANDARD_HUFFMAN_SEGMENT_LEN: usize = 4 + 4 * 17 + 12 + 162 + 12 + 162;

fn append_standard_huffman_segment(out: &mut Vec<u8>) {
    let length = (STANDARD_HUFFMAN_SEGMENT_LEN - 2) as u16;
    out.extend_from_slice(&[0xFF, DHT]);
    out.extend_from_slice(&length.to_be_bytes());
    for (class_and_id, counts, symbols) in STANDARD_TABLES {
        out.push(class_and_id);
        out.extend_from_slice(counts);
        out.extend_from_slice(symbols);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mjpeg_client::test_jpeg::{Subsamp, rgb_jpeg};

    fn sample_jpeg(width: usize, height: usize) -> Vec<u8> {
        let pixels: Vec<u8> = (0..width * height * 3)
            .map(|i| ((i * 7) ^ (i / 97)) as u8)
            .collect();
        rgb_jpeg(&pixels, width, height, 80, Subsamp::Sub2x2)
    }

    /// Removes every DHT segment, as cameras that rely on the standard tables do.
    fn strip_huffman_tables(jpeg: &[u8]) -> Vec<u8> {
        let info = check(jpeg).expect("valid");
        let mut out = jpeg[..2].to_vec();
        let mut pos = 2;
        while pos < info.scan_offset {
            let length = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            if jpeg[pos + 1] != DHT {
                out.extend_from_slice(&jpeg[pos..pos + 2 + length]);
            }
            pos += 2 + length;
        }
        out.extend_from_slice(&jpeg[info.scan_offset..]);
        out
    }

    #[test]
    fn a_real_jpeg_passes_with_its_size() {
        let jpeg = sample_jpeg(64, 48);
        let info = check(&jpeg).expect("valid");
        assert_eq!((info.width, info.height), (64, 48));
        assert!(info.has_huffman_tables);
        assert_eq!(info.len, jpeg.len());
    }

    #[test]
    fn zero_padding_after_the_end_is_trimmed() {
        let mut jpeg = sample_jpeg(32, 32);
        let real_len = jpeg.len();
        jpeg.extend_from_slice(&[0; 100]);
        assert_eq!(check(&jpeg).expect("valid").len, real_len);
    }

    #[test]
    fn junk_after_the_end_is_cut_off() {
        let jpeg = sample_jpeg(32, 32);
        let mut padded = jpeg.clone();
        padded.extend((0..5000u32).map(|i| (i * 7 + 1) as u8 | 1));
        assert_eq!(check(&padded).expect("valid").len, jpeg.len());
    }

    #[test]
    fn the_tail_of_an_older_frame_in_a_reused_buffer_is_cut_off() {
        // A new, shorter JPEG written over an older one in the same buffer, with the old
        // length: the data ends in the old frame's EOI.
        let old = sample_jpeg(128, 96);
        let new = sample_jpeg(32, 32);
        assert!(new.len() < old.len());
        let mut buffer = new.clone();
        buffer.extend_from_slice(&old[new.len()..]);
        assert!(buffer.ends_with(&[0xFF, 0xD9]));
        assert_eq!(check(&buffer).expect("valid").len, new.len());
    }

    #[test]
    fn the_end_marker_is_found_at_any_alignment() {
        let jpeg = sample_jpeg(32, 32);
        for junk in 0..9 {
            let mut padded = jpeg.clone();
            padded.extend(std::iter::repeat_n(0x55, junk));
            assert_eq!(check(&padded).expect("valid").len, jpeg.len(), "{junk}");
        }
        for cut in 1..12 {
            assert!(check(&jpeg[..jpeg.len() - cut]).is_err(), "{cut}");
        }
        assert_eq!(next_ff(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF], 0), Some(9));
        assert_eq!(next_ff(&[0xFF; 3], 1), Some(1));
        assert_eq!(next_ff(&[1; 20], 0), None);
        assert_eq!(next_ff(&[1; 20], 25), None);
    }

    #[test]
    fn truncated_and_garbled_frames_are_refused() {
        let jpeg = sample_jpeg(128, 96);
        assert_eq!(check(&jpeg[..jpeg.len() - 10]), Err(JpegError::NoEndMarker));
        assert!(check(&jpeg[..jpeg.len() / 2]).is_err());
        assert_eq!(check(&jpeg[1..]), Err(JpegError::NoStartMarker));
        assert_eq!(check(&[0xFF, 0xD8]), Err(JpegError::TooShort(2)));
        assert!(check(&[0xFF, 0xD8, 0xFF, 0xE0, 0x7F, 0xFF, 0xFF, 0xD9]).is_err());
        let mut no_markers = jpeg.clone();
        no_markers[2] = 0x00;
        assert!(check(&no_markers).is_err());
    }

    #[test]
    fn the_standard_tables_are_the_ones_libjpeg_turbo_writes() {
        let jpeg = sample_jpeg(64, 48);
        let stripped = strip_huffman_tables(&jpeg);
        let info = check(&stripped).expect("valid without tables");
        assert!(!info.has_huffman_tables);
        let mut fixed = Vec::new();
        copy_with_huffman_tables(&stripped, &info, &mut fixed);
        let original = turbojpeg::decompress(&jpeg, turbojpeg::PixelFormat::RGB).expect("decode");
        let repaired =
            turbojpeg::decompress(&fixed, turbojpeg::PixelFormat::RGB).expect("decode repaired");
        assert_eq!(original.pixels, repaired.pixels);
    }

    /// The payloads of all DHT segments before the scan, concatenated.
    fn huffman_payloads(jpeg: &[u8]) -> Vec<u8> {
        let info = check(jpeg).expect("valid");
        let mut payloads = Vec::new();
        let mut pos = 2;
        while pos < info.scan_offset {
            let length = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            if jpeg[pos + 1] == DHT {
                payloads.extend_from_slice(&jpeg[pos + 4..pos + 2 + length]);
            }
            pos += 2 + length;
        }
        payloads
    }

    #[test]
    fn the_inserted_segment_holds_exactly_libjpeg_turbos_tables() {
        let jpeg = sample_jpeg(64, 48);
        let stripped = strip_huffman_tables(&jpeg);
        let mut fixed = Vec::new();
        copy_with_huffman_tables(&stripped, &check(&stripped).expect("valid"), &mut fixed);
        assert_eq!(huffman_payloads(&fixed), huffman_payloads(&jpeg));
        assert_eq!(
            fixed.len(),
            jpeg.len() - 3 * 4,
            "one segment header instead of four"
        );
    }

    #[test]
    fn a_jpeg_with_tables_is_copied_untouched() {
        let jpeg = sample_jpeg(32, 32);
        let info = check(&jpeg).expect("valid");
        let mut out = Vec::new();
        copy_with_huffman_tables(&jpeg, &info, &mut out);
        assert_eq!(out, jpeg);
    }
}

//! The JPEG structure check every source frame goes through, and the Huffman table
//! insertion it may call for: never panics; what it accepts starts with SOI.
#![no_main]

use frcstream::jpeg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = jpeg::check(data) {
        assert!(data.starts_with(&[0xFF, 0xD8]));
        let mut out = Vec::new();
        jpeg::copy_with_huffman_tables(data, &info, &mut out);
    }
});

//! NT4 text frames (JSON control messages: announce, unannounce, properties) from the
//! server: never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        nt4::fuzzing::text_frame(text);
    }
});

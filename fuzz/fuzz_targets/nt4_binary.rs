//! NT4 binary frames (MessagePack value messages) from the server: never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nt4::fuzzing::binary_frame(data);
});

//! The HTTP request parser (head, Content-Length or chunked body, RFC 9112 framing):
//! never panics, never claims more bytes than it was given, and a request it accepts
//! parses the same when the bytes arrive one at a time.
#![no_main]

use frcstream::http::request::parse_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = parse_request(data);
    if let Ok(Some((request, used))) = &whole {
        assert!(*used <= data.len());
        assert!(request.body.len() <= frcstream::http::request::MAX_BODY_BYTES);
        // Framing in doubt is never accepted (issue 15: request smuggling).
        if request.header("transfer-encoding").is_some() {
            assert!(request.header("content-length").is_none());
        }
        // Incremental arrival: every prefix is incomplete or the same request.
        for cut in [1, data.len() / 2, used.saturating_sub(1)] {
            if let Ok(Some((early, n))) = parse_request(&data[..cut.min(data.len())]) {
                assert_eq!((early.path, n), (request.path.clone(), *used));
            }
        }
    }
});

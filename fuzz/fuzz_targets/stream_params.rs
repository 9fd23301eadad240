//! URL routing and the stream parameters (`resolution=`, `compression=`, `fps=`, percent
//! escapes): never panics, whatever the method, path and query.
#![no_main]

use frcstream::http::routes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (path, query) = text.split_once('?').unwrap_or((&text, ""));
    for method in ["GET", "HEAD", "POST"] {
        let _ = routes::resolve(method, path, query, &["cam", "front"]);
    }
    let _ = routes::parse_query(&text);
});

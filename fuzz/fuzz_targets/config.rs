//! The config file parser and validation: never panics; every refusal names a place.
#![no_main]

use frcstream::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, std::path::Path::new("fuzz.toml")) {
        Ok(config) => {
            // The bounds of issue 15: cameras and pixel rates.
            assert!((1..=frcstream::config::MAX_CAMERAS).contains(&config.cameras.len()));
            let rates = config
                .cameras
                .iter()
                .map(|c| u64::from(c.width) * u64::from(c.height) * u64::from(c.fps));
            let mut total = 0;
            for rate in rates {
                assert!(rate <= frcstream::config::MAX_CAMERA_PIXEL_RATE);
                total += rate;
            }
            assert!(total <= frcstream::config::MAX_TOTAL_PIXEL_RATE);
        }
        Err(ConfigError::Invalid { message, .. }) => {
            assert!(!message.contains("$__serde_spanned"), "{message}")
        }
        Err(_) => {}
    }
});

//! The extension's log: frcstream's own lines (the `log` crate) to standard error, as the
//! binary writes them. `FRCSTREAM_LOG` (env_logger syntax, e.g. `info`, `debug`) sets the
//! level; the default is `warn` (camera problems, failing `pull()` callbacks), so
//! importing frcstream into a vision program adds no chatter.

use std::sync::Once;

pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let env = env_logger::Env::new()
            .filter_or("FRCSTREAM_LOG", "warn")
            .write_style("FRCSTREAM_LOG_STYLE");
        let _ = env_logger::Builder::from_env(env)
            .format_target(false)
            .format_timestamp_millis()
            .try_init();
    });
}

//! Log lines about what the robot or a dashboard wrote, kept readable and few: a refused
//! value is shown cut to [`MAX_SHOWN_CHARS`], and each topic warns at most
//! [`WARN_BURST`] times in a row, then once per [`WARN_INTERVAL`] (the rest go to debug,
//! counted in the next warning).
//!
//! A hostile or broken client wrote 510–557 refused values a second, each logged in full
//! (70,000 characters a line): on a coprocessor that is the journal's disk and CPU.

use std::time::{Duration, Instant};

use nt4::NtValue;

/// Characters of a value shown in a log line.
pub const MAX_SHOWN_CHARS: usize = 60;
/// Warnings per topic in a burst (a user trying a few wrong values sees each one)...
pub const WARN_BURST: u32 = 5;
/// ...then one per topic at most this often.
pub const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// A value for a log line: `-3`, `"fast"`, `"aaaa…" (70000 characters)`, `int[] of 5000`.
pub fn shown(value: &NtValue) -> String {
    fn list<T: std::fmt::Debug>(kind: &str, items: &[T]) -> String {
        if items.len() <= 8 {
            let text = format!("{items:?}");
            if text.chars().count() <= MAX_SHOWN_CHARS {
                return text;
            }
        }
        format!("{kind}[] of {}", items.len())
    }
    match value {
        NtValue::Boolean(v) => v.to_string(),
        NtValue::Double(v) => v.to_string(),
        NtValue::Int(v) => v.to_string(),
        NtValue::Float(v) => v.to_string(),
        NtValue::String(v) => {
            let count = v.chars().count();
            if count <= MAX_SHOWN_CHARS {
                format!("{v:?}")
            } else {
                let head: String = v.chars().take(MAX_SHOWN_CHARS).collect();
                format!("{:?}… ({count} characters)", head)
            }
        }
        NtValue::Raw(v) => format!("{} raw bytes", v.len()),
        NtValue::BooleanArray(v) => list("boolean", v),
        NtValue::DoubleArray(v) => list("double", v),
        NtValue::IntArray(v) => list("int", v),
        NtValue::FloatArray(v) => list("float", v),
        NtValue::StringArray(v) => format!("string[] of {}", v.len()),
    }
}

/// Refusals of one topic: whether the next one is worth a warning.
#[derive(Debug, Default)]
pub struct RefusalLog {
    last_value: Option<NtValue>,
    /// Warnings used from the burst, and when they were last counted down.
    used: u32,
    counted: Option<Instant>,
    /// Refusals logged at debug level since the last warning.
    unwarned: u64,
}

impl RefusalLog {
    /// Records a refusal of `value`: `Some(n)` if it deserves a warning (`n` refusals went to
    /// debug since the last one), `None` for debug: the same value again, or the burst of
    /// warnings is used up.
    pub fn refused(&mut self, value: &NtValue, now: Instant) -> Option<u64> {
        // One warning of the burst comes back per interval.
        let counted = *self.counted.get_or_insert(now);
        let back = (now.duration_since(counted).as_millis() / WARN_INTERVAL.as_millis()) as u32;
        if back > 0 {
            self.used = self.used.saturating_sub(back);
            self.counted = Some(counted + WARN_INTERVAL * back);
        }
        let repeated = self.last_value.as_ref() == Some(value);
        if repeated || self.used >= WARN_BURST {
            self.unwarned += 1;
            if !repeated {
                self.last_value = Some(value.clone());
            }
            return None;
        }
        self.last_value = Some(value.clone());
        self.used += 1;
        Some(std::mem::take(&mut self.unwarned))
    }

    /// Logs the refusal of `value` described by `line`: a warning when it is news
    /// ([`RefusalLog::refused`]), else at debug level.
    pub fn log(&mut self, value: &NtValue, line: &str) {
        match self.refused(value, Instant::now()) {
            Some(unwarned) => log::warn!("{line}{}", RefusalLog::suffix(unwarned)),
            None => log::debug!("{line} (again)"),
        }
    }

    /// A value was accepted: the next refusal is news.
    pub fn clear(&mut self) {
        self.last_value = None;
    }

    /// A suffix for a warning after `unwarned` quieter refusals.
    pub fn suffix(unwarned: u64) -> String {
        if unwarned == 0 {
            String::new()
        } else {
            format!(" ({unwarned} more refused since the last warning, logged at debug level)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut() {
        let long = NtValue::String("a".repeat(70_000));
        let text = shown(&long);
        assert!(text.len() < 100, "{text}");
        assert!(text.ends_with("(70000 characters)"), "{text}");
        assert_eq!(shown(&NtValue::String("fast".into())), "\"fast\"");
        assert_eq!(shown(&NtValue::IntArray(vec![1, 2])), "[1, 2]");
        assert_eq!(shown(&NtValue::IntArray(vec![7; 5000])), "int[] of 5000");
        assert_eq!(shown(&NtValue::Raw(vec![0; 9])), "9 raw bytes");
    }

    #[test]
    fn a_flood_of_refusals_warns_once_a_second_per_topic() {
        let mut log = RefusalLog::default();
        let start = Instant::now();
        let mut warnings = Vec::new();
        // 550 different values a second for 3 seconds, as the hostile dashboard sent.
        for i in 0..1650u64 {
            let now = start + Duration::from_micros(i * 1_000_000 / 550);
            if let Some(unwarned) = log.refused(&NtValue::Int(i as i64), now) {
                warnings.push(unwarned);
            }
        }
        // The burst, then one a second.
        assert!((7..=9).contains(&warnings.len()), "{warnings:?}");
        assert_eq!(warnings[..5], [0; 5]);
        assert!(warnings[5] >= 500, "{warnings:?}");
        // The same value again is never a warning; after an accepted one it is news.
        let later = start + Duration::from_secs(10);
        assert!(log.refused(&NtValue::Int(1), later).is_some());
        assert!(
            log.refused(&NtValue::Int(1), later + WARN_INTERVAL * 2)
                .is_none()
        );
        log.clear();
        assert!(
            log.refused(&NtValue::Int(1), later + WARN_INTERVAL * 4)
                .is_some()
        );
        // A user trying a few wrong values sees each one.
        let mut fresh = RefusalLog::default();
        for value in [-3, 0, 999, -1, 500] {
            assert!(fresh.refused(&NtValue::Int(value), later).is_some());
        }
    }
}

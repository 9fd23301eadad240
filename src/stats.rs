//! Counters and rates for `/stats.json` and NetworkTables: frames captured and
//! delivered, bytes per client, drops, encodes, capture-to-send latency.
//!
//! Every counter is written by one thread (the capture thread or one client's thread) and
//! read by whoever asks; updates are atomics plus an uncontended `try_lock` once a second.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::lock::lock;

/// Whether the `count`th failure of something that can fail on every frame is worth a log
/// line: the first, then one per hundred (a broken camera must not flood the log of a Pi).
pub fn worth_a_log_line(count: u64) -> bool {
    count == 1 || count % 100 == 0
}

/// Length of the window a rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// A running total with its rate over the last complete second.
pub struct RateCounter {
    total: AtomicU64,
    window: Mutex<RateWindow>,
}

struct RateWindow {
    started: Instant,
    total_at_start: u64,
    rate: f64,
}

impl Default for RateCounter {
    fn default() -> Self {
        RateCounter {
            total: AtomicU64::new(0),
            window: Mutex::new(RateWindow {
                started: Instant::now(),
                total_at_start: 0,
                rate: 0.0,
            }),
        }
    }
}

impl RateCounter {
    pub fn add(&self, amount: u64) {
        let total = self.total.fetch_add(amount, Ordering::Relaxed) + amount;
        // Only the writer rolls the window; a reader holding the lock just delays it.
        if let Ok(mut window) = self.window.try_lock() {
            let elapsed = window.started.elapsed();
            if elapsed >= RATE_WINDOW {
                window.rate = (total - window.total_at_start) as f64 / elapsed.as_secs_f64();
                window.started = Instant::now();
                window.total_at_start = total;
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Events per second over the last window; decays to 0 when events stop.
    pub fn rate(&self) -> f64 {
        let window = lock(&self.window);
        let elapsed = window.started.elapsed();
        if elapsed < 2 * RATE_WINDOW {
            window.rate
        } else {
            // No event has rolled the window for a while: the rate is what came since.
            (self.total() - window.total_at_start) as f64 / elapsed.as_secs_f64()
        }
    }
}

/// The last few capture-to-send latencies, in microseconds.
#[derive(Default)]
pub struct LatencyWindow {
    samples: Mutex<VecDeque<u32>>,
}

const LATENCY_SAMPLES: usize = 256;

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

impl LatencyWindow {
    pub fn record(&self, micros: u64) {
        let mut samples = lock(&self.samples);
        if samples.len() == LATENCY_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(micros.min(u64::from(u32::MAX)) as u32);
    }

    pub fn summary(&self) -> LatencySummary {
        let mut sorted: Vec<u32> = lock(&self.samples).iter().copied().collect();
        if sorted.is_empty() {
            return LatencySummary::default();
        }
        sorted.sort_unstable();
        let at =
            |q: f64| f64::from(sorted[((sorted.len() - 1) as f64 * q).round() as usize]) / 1000.0;
        LatencySummary {
            p50_ms: at(0.5),
            p95_ms: at(0.95),
            max_ms: at(1.0),
        }
    }
}

/// One connected streaming client.
pub struct StreamClientStats {
    pub id: u64,
    pub peer: SocketAddr,
    pub path: String,
    pub connected_at: Instant,
    pub frames: RateCounter,
    pub bytes: RateCounter,
    /// What the stream's sender knows of the client's link (remote clients only).
    pub link: StreamLinkStats,
}

/// A remote client's link as its sender sees it (`http/link.rs`): written by whichever
/// thread sends to the client, read by `/stats.json` and the budget's governor.
#[derive(Default)]
pub struct StreamLinkStats {
    /// The client crosses a network (not loopback): the in-flight limit and the budget
    /// apply to it.
    pub remote: std::sync::atomic::AtomicBool,
    /// The rate the link delivers, bytes per second (0: not known yet).
    pub rate_bytes_per_second: AtomicU64,
    /// Bytes sent and not yet acknowledged, when last looked at.
    pub in_flight_bytes: AtomicU64,
    /// Age of the last frame sent when it started going out, microseconds.
    pub frame_age_us: AtomicU64,
    /// New frames not sent because the previous one had not left yet.
    pub held_back: AtomicU64,
}

#[derive(Debug, Serialize)]
pub struct LinkReport {
    /// The rate the link to this client delivers, estimated from TCP (Mbit/s).
    pub rate_mbit: f64,
    pub in_flight_bytes: u64,
    /// How old the last frame was when it started going out (ms).
    pub frame_age_ms: f64,
    /// Frames not sent because the previous one was still on its way.
    pub held_back_frames: u64,
}

#[derive(Debug, Serialize)]
pub struct StreamClientReport {
    pub id: u64,
    pub peer: String,
    pub path: String,
    pub seconds_connected: f64,
    pub fps: f64,
    pub bytes_per_second: f64,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    /// Across a network: its link as the sender sees it. Loopback clients: null.
    pub link: Option<LinkReport>,
}

impl StreamClientStats {
    pub fn report(&self) -> StreamClientReport {
        StreamClientReport {
            id: self.id,
            peer: self.peer.to_string(),
            path: self.path.clone(),
            seconds_connected: self.connected_at.elapsed().as_secs_f64(),
            fps: round2(self.frames.rate()),
            bytes_per_second: self.bytes.rate().round(),
            frames_sent: self.frames.total(),
            bytes_sent: self.bytes.total(),
            link: self.link.report(),
        }
    }
}

impl StreamLinkStats {
    pub fn is_remote(&self) -> bool {
        self.remote.load(Ordering::Relaxed)
    }

    pub fn rate_bytes_per_second(&self) -> u64 {
        self.rate_bytes_per_second.load(Ordering::Relaxed)
    }

    fn report(&self) -> Option<LinkReport> {
        self.is_remote().then(|| LinkReport {
            rate_mbit: round2(self.rate_bytes_per_second() as f64 * 8.0 / 1e6),
            in_flight_bytes: self.in_flight_bytes.load(Ordering::Relaxed),
            frame_age_ms: round2(self.frame_age_us.load(Ordering::Relaxed) as f64 / 1e3),
            held_back_frames: self.held_back.load(Ordering::Relaxed),
        })
    }
}

/// Everything counted for one camera.
#[derive(Default)]
pub struct CameraStats {
    /// Frames the source delivered.
    pub captured: RateCounter,
    /// Frames published to the slot (after the fps limit and only with viewers).
    pub published: RateCounter,
    /// Raw frames compressed to JPEG.
    pub encodes: AtomicU64,
    /// JPEG frames passed through untouched.
    pub passthroughs: AtomicU64,
    /// Frames made smaller for the bandwidth budget (`governor.rs`), and frames sent as
    /// they were because that failed.
    pub budget_transcodes: AtomicU64,
    pub budget_transcode_failures: AtomicU64,
    /// Frames from the source that were corrupt (bad JPEG, short buffer) and dropped.
    pub invalid_frames: AtomicU64,
    /// Frames the source delivered while nobody watched: not encoded.
    pub idle_frames: AtomicU64,
    /// Frames the camera itself dropped (gaps in its sequence numbers).
    pub camera_drops: AtomicU64,
    /// Frames all clients together were sent.
    pub delivered: RateCounter,
    pub bytes_sent: RateCounter,
    pub latency: LatencyWindow,
    clients: Mutex<Vec<Arc<StreamClientStats>>>,
}

impl CameraStats {
    /// Registers a client until the returned guard is dropped.
    pub fn add_stream_client(
        self: &Arc<Self>,
        client: Arc<StreamClientStats>,
    ) -> ClientRegistration {
        self.lock_clients().push(Arc::clone(&client));
        ClientRegistration {
            stats: Arc::clone(self),
            id: client.id,
        }
    }

    pub fn client_count(&self) -> usize {
        self.lock_clients().len()
    }

    /// The clients connected now.
    pub fn clients(&self) -> Vec<Arc<StreamClientStats>> {
        self.lock_clients().clone()
    }

    pub fn stream_client_reports(&self) -> Vec<StreamClientReport> {
        self.lock_clients().iter().map(|c| c.report()).collect()
    }

    fn lock_clients(&self) -> std::sync::MutexGuard<'_, Vec<Arc<StreamClientStats>>> {
        lock(&self.clients)
    }
}

/// Removes a client from its camera's list when dropped.
pub struct ClientRegistration {
    stats: Arc<CameraStats>,
    id: u64,
}

impl Drop for ClientRegistration {
    fn drop(&mut self) {
        self.stats.lock_clients().retain(|c| c.id != self.id);
    }
}

pub fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_counter_measures_events_per_second() {
        let counter = RateCounter::default();
        for _ in 0..11 {
            counter.add(10);
            std::thread::sleep(Duration::from_millis(100));
        }
        counter.add(10);
        let rate = counter.rate();
        assert!((50.0..=130.0).contains(&rate), "rate {rate}");
        assert_eq!(counter.total(), 120);
    }

    #[test]
    fn a_fresh_counter_reads_zero() {
        assert_eq!(RateCounter::default().rate(), 0.0);
    }

    #[test]
    fn latency_percentiles() {
        let window = LatencyWindow::default();
        for ms in 1..=100u64 {
            window.record(ms * 1000);
        }
        let summary = window.summary();
        assert_eq!(summary.max_ms, 100.0);
        assert!((50.0..=51.0).contains(&summary.p50_ms), "{summary:?}");
        assert!((95.0..=96.0).contains(&summary.p95_ms), "{summary:?}");
    }

    #[test]
    fn clients_leave_the_list_when_their_registration_drops() {
        let stats = Arc::new(CameraStats::default());
        let client = Arc::new(StreamClientStats {
            id: 7,
            peer: "127.0.0.1:9".parse().expect("addr"),
            path: "/cam.mjpg".into(),
            connected_at: Instant::now(),
            frames: RateCounter::default(),
            bytes: RateCounter::default(),
            link: StreamLinkStats::default(),
        });
        let registration = stats.add_stream_client(client);
        assert_eq!(stats.client_count(), 1);
        drop(registration);
        assert_eq!(stats.client_count(), 0);
    }
}

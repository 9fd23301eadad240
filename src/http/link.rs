//! Never more in flight than the link can carry.
//!
//! On the field, robot -> driver station goes through a radio capped at 4 or 7 Mbit/s
//! with a deep queue. A stream that writes each frame as it comes fills the socket buffer
//! and the radio's queue, and the driver sees the past (measured behind a 4 Mbit/s link
//! with a 200 ms queue: p95 605 ms, 12x the time one frame takes to cross). So, for a
//! client across a network, a new frame goes out only when the previous one has left:
//! the bytes the kernel holds for the socket (`SIOCOUTQ`: not sent, or sent and not yet
//! acknowledged) are at most what the link moves in a few milliseconds. Frames that come
//! meanwhile are skipped; when the link is clear, the newest one goes. A client on a slow
//! link gets fresh frames at a lower rate, never old ones.
//!
//! The link's rate is measured from the bytes the peer acknowledged (`TCP_INFO`'s
//! `tcpi_bytes_acked`) while each part crossed ([`Link`]). Loopback clients (a vision program on the coprocessor) do not
//! cross the radio: they are not held back.

use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;

use crate::stats::StreamLinkStats;

/// The link is clear when at most this much is in flight, or what the link moves in
/// [`CLEAR_US`] if that is more: the next part then follows with no gap on the wire.
pub const MIN_ALLOWANCE_BYTES: u64 = 1_500;
const CLEAR_US: u64 = 3_000;

/// What a link of `rate` bytes per second moves in [`CLEAR_US`].
fn clear_bytes_at(rate: u64) -> u64 {
    rate * CLEAR_US / 1_000_000
}

/// What the kernel says of a TCP socket's sending side.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketQueue {
    /// Bytes not sent yet or not acknowledged yet.
    pub in_flight: u64,
    /// The kernel's latest delivery-rate sample, bytes per second (0 before any).
    pub delivery_rate: u64,
    pub bytes_acked: u64,
    pub rtt_us: u32,
}

/// Reads `SIOCOUTQ` and `TCP_INFO` of `socket`.
pub fn query(socket: &TcpStream) -> std::io::Result<SocketQueue> {
    let fd = socket.as_raw_fd();
    let mut outq: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one c_int we own.
    if unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut outq) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: an all-zero tcp_info is a valid value (integers only).
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, which we own.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(SocketQueue {
        in_flight: outq.max(0) as u64,
        delivery_rate: info.tcpi_delivery_rate,
        bytes_acked: info.tcpi_bytes_acked,
        rtt_us: info.tcpi_rtt,
    })
}

/// One remote client's link: its rate estimate, and whether it is clear for a part.
///
/// The rate is measured per part: the bytes acknowledged from the moment a part went out
/// to the moment the link was seen clear again, over that time. When the client's thread
/// was waiting for the link (it looks every few ms), that time is exact and the sample
/// goes into a moving average: this is how a slower link is noticed. When the link was
/// found clear only at the next frame, the part took less than that: the sample is a
/// lower bound and only ever raises the estimate. (The kernel's `tcpi_delivery_rate` was
/// tried first: behind a token bucket its samples include the bucket's burst at the
/// line's speed, and the highest of them was hundreds of Mbit/s on a 4 Mbit/s link.)
#[derive(Debug, Default)]
pub struct Link {
    /// The estimate: bytes per second, 0 until one part was measured.
    pub rate: u64,
    pub in_flight: u64,
    /// Bytes acknowledged when last looked.
    acked: u64,
    /// The part on its way: when it went, the bytes acknowledged then, and whether the
    /// link has been seen busy since.
    part: Option<(u64, u64, bool)>,
    /// The size of the last part sent.
    part_bytes: u64,
}

/// Weight of a new exact sample in the moving average.
const EWMA_NEW: f64 = 0.3;
/// A part shorter than this (keep-alive or header only) says little of the rate.
const MIN_SAMPLE_BYTES: u64 = 4_000;

impl Link {
    /// Takes a look at the socket; whether a new part may go now. A socket that cannot be
    /// asked is clear (the write will report what is wrong with it).
    pub fn clear(&mut self, socket: &TcpStream, now_us: u64, report: &StreamLinkStats) -> bool {
        let Ok(queue) = query(socket) else {
            return true;
        };
        let clear = self.observe(queue, now_us);
        report
            .rate_bytes_per_second
            .store(self.rate, Ordering::Relaxed);
        report
            .in_flight_bytes
            .store(self.in_flight, Ordering::Relaxed);
        clear
    }

    /// A part of `bytes` goes out now (right after a look that found the link clear).
    pub fn sent(&mut self, now_us: u64, bytes: usize) {
        self.part_bytes = bytes as u64;
        self.part = Some((now_us, self.acked, false));
    }

    /// What may still be in flight for the link to count as clear: what it moves in a few
    /// ms, but never half a part or more. (A token bucket's burst makes the rate look far
    /// higher than the link sustains; the cap keeps a wrong estimate from letting two
    /// parts in flight.)
    pub fn allowance(&self) -> u64 {
        MIN_ALLOWANCE_BYTES.max(clear_bytes_at(self.rate).min(self.part_bytes / 2))
    }

    fn observe(&mut self, queue: SocketQueue, now_us: u64) -> bool {
        self.in_flight = queue.in_flight;
        self.acked = queue.bytes_acked;
        let clear = self.in_flight <= self.allowance();
        match &mut self.part {
            Some((_, _, waited)) if !clear => *waited = true,
            Some((since, acked_then, waited)) => {
                let bytes = self.acked.saturating_sub(*acked_then);
                let us = now_us.saturating_sub(*since).max(1);
                if bytes >= MIN_SAMPLE_BYTES {
                    let sample = bytes * 1_000_000 / us;
                    self.rate = if *waited && self.rate > 0 {
                        (self.rate as f64 * (1.0 - EWMA_NEW) + sample as f64 * EWMA_NEW) as u64
                    } else {
                        self.rate.max(sample)
                    };
                }
                self.part = None;
            }
            None => {}
        }
        clear
    }

    /// How long to wait before looking again while the link is not clear: about the time
    /// the excess takes to drain, between 1 and 10 ms.
    pub fn retry_us(&self) -> u64 {
        let excess = self.in_flight.saturating_sub(self.allowance());
        let drain = excess * 1_000_000 / self.rate.max(100_000);
        drain.clamp(1_000, 10_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(in_flight: u64, bytes_acked: u64) -> SocketQueue {
        SocketQueue {
            in_flight,
            bytes_acked,
            ..SocketQueue::default()
        }
    }

    #[test]
    fn the_rate_is_measured_per_part() {
        let mut link = Link::default();
        assert!(link.observe(queue(0, 0), 0));
        link.sent(0, 50_000);
        // 50 kB acknowledged over 100 ms, the client's thread waiting meanwhile.
        assert!(!link.observe(queue(40_000, 10_000), 20_000));
        assert!(link.observe(queue(0, 50_000), 100_000));
        assert_eq!(link.rate, 500_000);
        // The link halves: exact samples pull the estimate down.
        for i in 0..20u64 {
            link.sent(1_000_000 * (i + 1), 50_000);
            assert!(!link.observe(
                queue(40_000, 50_000 * (i + 1) + 10_000),
                1_000_000 * (i + 1) + 50_000
            ));
            assert!(link.observe(queue(0, 50_000 * (i + 2)), 1_000_000 * (i + 1) + 200_000));
        }
        assert!((250_000..260_000).contains(&link.rate), "{}", link.rate);
        // Found clear only later: a lower bound, which does not lower the estimate.
        link.sent(30_000_000, 50_000);
        assert!(link.observe(queue(0, 50_000 * 22), 31_000_000));
        assert!((250_000..260_000).contains(&link.rate), "{}", link.rate);
    }

    #[test]
    fn the_link_is_clear_when_what_is_left_drains_within_a_few_ms() {
        let mut link = Link {
            rate: 500_000,
            in_flight: 20_000,
            part_bytes: 200_000,
            ..Link::default()
        };
        assert_eq!(link.allowance(), MIN_ALLOWANCE_BYTES);
        assert_eq!(link.retry_us(), 10_000);
        link.in_flight = 2_000;
        assert_eq!(link.retry_us(), 1_000);
        link.rate = 12_500_000; // 100 Mbit/s
        assert_eq!(link.allowance(), 37_500);
        // Never half a part: a burst's rate estimate does not let a second part go.
        link.rate = 100_000_000;
        link.part_bytes = 16_000;
        assert_eq!(link.allowance(), 8_000);
    }
}

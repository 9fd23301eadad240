//! The radio every remote client's stream crosses: one part in flight at a time across all
//! of them, turns shared by weight, and the robot's budget as the rate they share.
//!
//! `link.rs` keeps each client's own socket from holding more than its link moves in a
//! few milliseconds. That is not enough when several clients share one radio: each has at
//! most one part in flight, yet a small frame of one camera waits in the radio's queue
//! behind a large frame of another (measured, three cameras on a 4 Mbit/s link: p95 7–8×
//! the small streams' own crossing time). So while the robot has a budget
//! (`[server] max_mbit`), the remote clients of every server of the process take turns:
//!
//! - **The radio is clear** when the bytes every member's socket still holds
//!   (`SIOCOUTQ`) are down to what the link moves in a few milliseconds.
//! - **Whose turn** among the members waiting with a part: start-time fair queueing. Each
//!   member's last part moved its virtual finish time on by its bytes over its weight (its
//!   camera's weight, split across the camera's remote clients); the smallest start time
//!   goes next. Bytes, not frames, are shared: a camera with frames twice as large gets
//!   half the frames. Within [`SLACK`] of the smallest start time, the member with the
//!   freshest frame goes first: a frame captured just now goes before one about to be
//!   replaced, and what the others lose in order they get back within the slack.
//! - **The budget is the rate**: a token bucket filled at `max_mbit`, which a part may
//!   overdraw (it then waits out the debt), so the remote streams together stay under the
//!   budget whatever their cameras capture.
//!
//! A turn goes to the newest frame of the member whose turn it is, so a frame's age when it
//! goes is at most its camera's frame interval, however long the member waited. Without a
//! budget (`max_mbit = 0`, a bench) the radio is off and every member may always send.

use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::link::MIN_ALLOWANCE_BYTES;
use crate::lock::lock;

/// A waiting member that has not asked again for this long has stopped waiting (its
/// thread moved on, or failed): the turn is not kept for it.
const STALE_US: u64 = 30_000;
/// The bytes in flight are measured at most this often.
const MEASURE_EVERY_US: u64 = 500;
/// A granted part keeps the radio busy until it is written, at most this long.
const GRANT_HOLD_US: u64 = 50_000;
/// The token bucket holds at most this long a time's worth of the budget.
const BURST_US: u64 = 50_000;
/// How far a member may be ahead of the front of the queue (in bytes: its start time's
/// lead times its weight) and still go first with a fresher frame: about two small frames.
const SLACK: f64 = 32_000.0;
/// A part holds the radio at most this many times the time its bytes take at the budget,
/// plus [`HOLD_EXTRA_US`]: the bytes of a client that stopped reading, or sits behind a
/// slower link than the others, do not stop everyone else's turns.
const HOLD_FACTOR: u64 = 3;
const HOLD_EXTRA_US: u64 = 50_000;
/// Frames captured this close together count as equally fresh.
const SAME_AGE_US: u64 = 5_000;

/// The robot's radio, shared by every HTTP server of the process.
#[derive(Default)]
pub struct Radio {
    /// The budget, bits per second; turns are taken while it is more than 0.
    budget_bps: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    members: Vec<Member>,
    next_id: u64,
    /// The smallest start time of the members waiting when the last part was granted.
    virtual_time: f64,
    /// When the members' bytes in flight were last measured.
    measured_us: Option<u64>,
    /// A part granted and not written yet: its member, and when.
    granted: Option<(u64, u64)>,
    /// The token bucket: bytes that may go now (negative: a debt), as of `tokens_at_us`.
    tokens: f64,
    tokens_at_us: u64,
}

struct Member {
    id: u64,
    /// The member's socket (its own handle, closed when the member leaves).
    socket: TcpStream,
    /// Which stream it watches (members of one stream split its weight) and that weight.
    group: usize,
    weight: f64,
    finish: f64,
    /// Since when it waits with a part, and when it last asked.
    waiting_since: Option<u64>,
    asked_us: u64,
    /// When the frame it would send was captured.
    frame_captured_us: u64,
    /// Its last part: when it was granted, and its bytes.
    part_us: u64,
    part_bytes: u64,
    /// What its socket held when last measured.
    in_flight: u64,
}

/// What `/stats.json` shows of the radio.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct RadioReport {
    pub turns: bool,
    pub members: usize,
    pub waiting: usize,
    pub in_flight_bytes: u64,
}

impl Radio {
    /// Turns on (a budget of `budget_bps` bits per second) or off (0).
    pub fn set_budget_bps(&self, budget_bps: f64) {
        self.budget_bps
            .store(budget_bps.max(0.0) as u64, Ordering::Relaxed);
    }

    /// Makes `socket`'s client a member; it leaves when the membership is dropped.
    pub fn join(self: &Arc<Self>, socket: &TcpStream) -> std::io::Result<Membership> {
        let socket = socket.try_clone()?;
        let mut state = lock(&self.state);
        state.next_id += 1;
        let id = state.next_id;
        let finish = state.virtual_time;
        state.members.push(Member {
            id,
            socket,
            group: 0,
            weight: 1.0,
            finish,
            waiting_since: None,
            asked_us: 0,
            frame_captured_us: 0,
            part_us: 0,
            part_bytes: 0,
            in_flight: 0,
        });
        Ok(Membership {
            radio: Arc::clone(self),
            id,
        })
    }

    pub fn report(&self) -> RadioReport {
        let state = lock(&self.state);
        RadioReport {
            turns: self.budget_bps.load(Ordering::Relaxed) > 0,
            members: state.members.len(),
            waiting: state
                .members
                .iter()
                .filter(|m| m.waiting_since.is_some())
                .count(),
            in_flight_bytes: state.members.iter().map(|m| m.in_flight).sum(),
        }
    }
}

/// A remote client's place on the radio.
pub struct Membership {
    radio: Arc<Radio>,
    id: u64,
}

impl Membership {
    /// The member now watches stream `group`, whose weight is `weight`.
    pub fn watch(&self, group: usize, weight: f64) {
        let mut state = lock(&self.radio.state);
        if let Some(member) = state.member(self.id) {
            member.group = group;
            member.weight = weight.max(1e-3);
        }
    }

    /// Whether the member may send a part of `bytes` now, the frame captured at
    /// `captured_us`; `allowance` is what its link may hold and count as clear. A `true`
    /// is a turn, taken: the caller sends at once, then calls [`Membership::written`].
    pub fn turn(&self, now_us: u64, captured_us: u64, allowance: u64, bytes: usize) -> bool {
        let budget_bps = self.radio.budget_bps.load(Ordering::Relaxed);
        if budget_bps == 0 {
            return true;
        }
        let mut state = lock(&self.radio.state);
        let Some(me) = state.member(self.id) else {
            return true;
        };
        me.asked_us = now_us;
        me.frame_captured_us = captured_us;
        me.waiting_since.get_or_insert(now_us);
        state.refill(now_us, budget_bps);
        state.forget_stale_waiters(now_us);
        let turn = state.tokens >= 0.0
            && state.clear(now_us, budget_bps, allowance)
            && state.next_turn() == Some(self.id);
        if turn {
            state.take_turn(self.id, bytes as u64, now_us);
        }
        turn
    }

    /// The part sent on the last turn is in the kernel's hands: its bytes show in flight.
    pub fn written(&self) {
        let mut state = lock(&self.radio.state);
        if state.granted.is_some_and(|(id, _)| id == self.id) {
            state.granted = None;
            state.measured_us = None;
        }
    }

    /// Stops waiting (the member has nothing to send).
    pub fn idle(&self) {
        let mut state = lock(&self.radio.state);
        if let Some(me) = state.member(self.id) {
            me.waiting_since = None;
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut state = lock(&self.radio.state);
        state.members.retain(|m| m.id != self.id);
        if state.granted.is_some_and(|(id, _)| id == self.id) {
            state.granted = None;
        }
    }
}

impl State {
    fn member(&mut self, id: u64) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    /// The member's weight: its stream's, split across the stream's members.
    fn share_of(&self, member: &Member) -> f64 {
        let peers = self
            .members
            .iter()
            .filter(|m| m.group == member.group)
            .count();
        member.weight / peers.max(1) as f64
    }

    /// Member `id` takes its turn with a part of `bytes`: its finish time moves on, the
    /// bucket pays, and the radio is busy until the part is written.
    fn take_turn(&mut self, id: u64, bytes: u64, now_us: u64) {
        // The virtual time moves to the smallest start of those waiting (not to this
        // member's, which may be ahead within the slack: the others keep their due).
        let first = self.first_start().unwrap_or(self.virtual_time);
        let virtual_time = self.virtual_time;
        let Some(share) = self
            .members
            .iter()
            .find(|m| m.id == id)
            .map(|m| self.share_of(m))
        else {
            return;
        };
        let Some(me) = self.member(id) else {
            return;
        };
        let start = me.finish.max(virtual_time);
        me.finish = start + bytes as f64 / share;
        me.waiting_since = None;
        me.part_us = now_us;
        me.part_bytes = bytes;
        self.virtual_time = first.min(start).max(virtual_time);
        self.tokens -= bytes as f64;
        self.granted = Some((id, now_us));
    }

    fn refill(&mut self, now_us: u64, budget_bps: u64) {
        let bytes_per_us = budget_bps as f64 / 8.0 / 1e6;
        let elapsed = now_us.saturating_sub(self.tokens_at_us) as f64;
        let burst = bytes_per_us * BURST_US as f64;
        self.tokens = (self.tokens + elapsed * bytes_per_us).min(burst);
        // Threads pass their own `now`: the clock never goes back here.
        self.tokens_at_us = self.tokens_at_us.max(now_us);
    }

    fn forget_stale_waiters(&mut self, now_us: u64) {
        for member in &mut self.members {
            if now_us.saturating_sub(member.asked_us) > STALE_US {
                member.waiting_since = None;
            }
        }
    }

    /// Whether no part is on its way: none granted and not yet written, and what the
    /// members' sockets hold is down to `allowance` (the asking member's link's). A part
    /// out for longer than it should take at the budget ([`HOLD_FACTOR`]) no longer
    /// counts: its client reads too slowly or not at all, and only it waits for it.
    fn clear(&mut self, now_us: u64, budget_bps: u64, allowance: u64) -> bool {
        if let Some((_, at)) = self.granted {
            if now_us.saturating_sub(at) < GRANT_HOLD_US {
                return false;
            }
            self.granted = None;
        }
        let fresh = self
            .measured_us
            .is_some_and(|at| now_us.saturating_sub(at) < MEASURE_EVERY_US);
        if !fresh {
            for member in &mut self.members {
                member.in_flight = super::link::query(&member.socket).map_or(0, |q| q.in_flight);
            }
            self.measured_us = Some(now_us);
        }
        let holding = |m: &Member| {
            let crossing_us = m.part_bytes * 8 * 1_000_000 / budget_bps.max(1);
            now_us.saturating_sub(m.part_us) < HOLD_FACTOR * crossing_us + HOLD_EXTRA_US
        };
        let in_flight: u64 = self
            .members
            .iter()
            .filter(|m| holding(m))
            .map(|m| m.in_flight)
            .sum();
        in_flight <= MIN_ALLOWANCE_BYTES.max(allowance)
    }

    /// The smallest start time of the waiting members.
    fn first_start(&self) -> Option<f64> {
        self.members
            .iter()
            .filter(|m| m.waiting_since.is_some())
            .map(|m| m.finish.max(self.virtual_time))
            .min_by(f64::total_cmp)
    }

    /// Whose turn it is: of the waiting members within [`SLACK`] of the smallest start
    /// time, the one with the freshest frame; frames captured within [`SAME_AGE_US`] of
    /// the freshest count as fresh as it, and of those the one furthest behind goes (then
    /// the longest-waiting). Cameras that capture in step take turns at going first.
    fn next_turn(&self) -> Option<u64> {
        let start = |m: &Member| m.finish.max(self.virtual_time);
        let first = self.first_start()?;
        let eligible = || {
            self.members
                .iter()
                .filter(|m| m.waiting_since.is_some())
                .filter(move |m| (start(m) - first) * self.share_of(m) <= SLACK)
        };
        let freshest = eligible().map(|m| m.frame_captured_us).max()?;
        eligible()
            .filter(|m| m.frame_captured_us + SAME_AGE_US >= freshest)
            .min_by(|a, b| {
                start(a)
                    .total_cmp(&start(b))
                    .then(a.waiting_since.cmp(&b.waiting_since))
            })
            .map(|m| m.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// `n` connected sockets (the server's ends), and their peers kept open.
    fn sockets(n: usize) -> Vec<(TcpStream, TcpStream)> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        (0..n)
            .map(|_| {
                let peer = TcpStream::connect(addr).expect("connect");
                let (ours, _) = listener.accept().expect("accept");
                (ours, peer)
            })
            .collect()
    }

    #[test]
    fn off_every_member_may_always_send() {
        let radio = Arc::new(Radio::default());
        let pairs = sockets(2);
        let a = radio.join(&pairs[0].0).expect("join");
        let b = radio.join(&pairs[1].0).expect("join");
        assert!(a.turn(0, 0, 0, 10_000));
        assert!(b.turn(1, 0, 0, 10_000), "no budget: no turns");
    }

    /// Members of `radio` watching the streams `watching` (stream, weight), each always
    /// with a frame of its `frame_bytes`, asked every millisecond for `ms` ms (the loopback
    /// peers take the bytes at once: only the turns and the bucket decide). The bytes each
    /// member sent.
    fn send_for(
        radio: &Arc<Radio>,
        watching: &[(usize, f64)],
        frame_bytes: &[usize],
        ms: u64,
    ) -> Vec<usize> {
        let pairs = sockets(watching.len());
        let members: Vec<Membership> = pairs
            .iter()
            .map(|(ours, _)| radio.join(ours).expect("join"))
            .collect();
        for (member, &(stream, weight)) in members.iter().zip(watching) {
            member.watch(stream, weight);
        }
        let mut sent = vec![0usize; members.len()];
        for now in (0..ms).map(|ms| ms * 1_000) {
            for (i, member) in members.iter().enumerate() {
                if member.turn(now, 0, 0, frame_bytes[i]) {
                    member.written();
                    sent[i] += frame_bytes[i];
                }
            }
        }
        sent
    }

    #[test]
    fn turns_share_bytes_by_weight_and_the_budget_bounds_the_rate() {
        let radio = Arc::new(Radio::default());
        radio.set_budget_bps(4e6);
        // Two streams of weight 1 with 16 kB frames, one of weight 2 with 40 kB frames.
        let watching = [(1, 1.0), (2, 1.0), (3, 2.0)];
        let sent = send_for(&radio, &watching, &[16_000, 16_000, 40_000], 10_000);
        let total: usize = sent.iter().sum();
        let mbit = total as f64 * 8.0 / 10.0 / 1e6;
        assert!(
            (3.8..=4.2).contains(&mbit),
            "the budget is the rate: {mbit}"
        );
        let shares: Vec<f64> = sent.iter().map(|s| *s as f64 / total as f64).collect();
        for (share, want) in shares.iter().zip([0.25, 0.25, 0.5]) {
            assert!((share - want).abs() < 0.05, "bytes by weight: {shares:?}");
        }
    }

    #[test]
    fn members_of_one_stream_split_its_weight() {
        let radio = Arc::new(Radio::default());
        radio.set_budget_bps(8e6);
        let watching = [(1, 1.0), (1, 1.0), (2, 1.0)];
        let sent = send_for(&radio, &watching, &[10_000; 3], 5_000);
        let stream_two = sent[2] as f64 / sent.iter().sum::<usize>() as f64;
        assert!((stream_two - 0.5).abs() < 0.05, "{sent:?}");
    }

    #[test]
    fn a_granted_part_holds_the_radio_until_written_and_a_leaver_frees_it() {
        let radio = Arc::new(Radio::default());
        radio.set_budget_bps(100e6);
        let pairs = sockets(2);
        let a = radio.join(&pairs[0].0).expect("join");
        let b = radio.join(&pairs[1].0).expect("join");
        assert!(a.turn(1_000, 0, 0, 5_000));
        assert!(!b.turn(2_000, 0, 0, 5_000), "a's part is not written yet");
        drop(a);
        assert!(b.turn(3_000, 0, 0, 5_000), "a left: the radio is clear");
    }

    #[test]
    fn a_member_that_stopped_asking_does_not_keep_the_turn() {
        let radio = Arc::new(Radio::default());
        radio.set_budget_bps(1e9);
        let pairs = sockets(2);
        let a = radio.join(&pairs[0].0).expect("join");
        let b = radio.join(&pairs[1].0).expect("join");
        // a asks while b's large part goes: a waits, and is behind.
        assert!(b.turn(1_000, 0, 0, 50_000));
        assert!(!a.turn(2_000, 0, 0, 10_000), "b's part is on its way");
        b.written();
        assert!(!b.turn(3_000, 0, 0, 50_000), "a's turn");
        // a had nothing after all: b goes.
        a.idle();
        assert!(b.turn(3_000, 0, 0, 50_000), "a stopped waiting");
        // a asks once more and goes quiet: after STALE_US it no longer holds b back.
        assert!(!a.turn(4_000, 0, 0, 10_000));
        b.written();
        assert!(!b.turn(5_000, 0, 0, 50_000));
        assert!(b.turn(4_000 + STALE_US + 1, 0, 0, 50_000));
    }

    #[test]
    fn within_the_slack_the_fresher_frame_goes_first() {
        let radio = Arc::new(Radio::default());
        radio.set_budget_bps(1e9);
        let pairs = sockets(3);
        let [a, b, c] = [0, 1, 2].map(|i| radio.join(&pairs[i].0).expect("join"));
        for (stream, member) in [&a, &b, &c].into_iter().enumerate() {
            member.watch(stream, 1.0);
        }
        // a and b wait, neither behind; b's frame was captured 19 ms after a's.
        assert!(c.turn(30_000, 0, 0, 1_000));
        assert!(!a.turn(30_000, 10_000, 0, 16_000), "c's part is on its way");
        assert!(!b.turn(30_000, 29_000, 0, 40_000));
        c.written();
        assert!(!a.turn(30_100, 10_000, 0, 16_000), "b's frame is fresher");
        assert!(b.turn(30_100, 29_000, 0, 40_000));
        b.written();
        // b is now more than the slack ahead: a goes, however old its frame.
        assert!(!b.turn(31_000, 31_000, 0, 40_000));
        assert!(a.turn(31_000, 10_000, 0, 16_000));
    }

    #[test]
    fn a_client_that_stops_reading_holds_the_radio_only_for_its_part_s_time() {
        let radio = Arc::new(Radio::default());
        radio.set_budget_bps(1e9);
        let pairs = sockets(2);
        let a = radio.join(&pairs[0].0).expect("join");
        let b = radio.join(&pairs[1].0).expect("join");
        assert!(a.turn(0, 0, 0, 30_000));
        // a's peer reads nothing: its socket fills and stays full.
        let stuck = &pairs[0].0;
        stuck.set_nonblocking(true).expect("non-blocking");
        let chunk = [0u8; 65_536];
        while std::io::Write::write(&mut &*stuck, &chunk).is_ok() {}
        a.written();
        assert!(!b.turn(10_000, 0, 0, 30_000), "a's bytes are on their way");
        assert!(
            b.turn(HOLD_EXTRA_US + 10_000, 0, 0, 30_000),
            "a's part has held the radio for longer than it should take"
        );
    }
}

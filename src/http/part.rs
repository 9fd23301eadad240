//! One part of cscore's multipart MJPEG stream on the wire: its headers (`Content-Length`,
//! `X-Timestamp`; `X-Robot-Timestamp` while the robot's clock is known), the shared JPEG bytes and the boundary that closes it, written with one
//! `writev` and no copy of the JPEG; a part the socket could not take at once is finished
//! from where it stopped, within the write deadline.

use std::io::{self, IoSlice, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Instant;

use super::response::WRITE_DEADLINE;
use crate::frame::{Frame, FrameKind};

pub const BOUNDARY: &str = "boundarydonotcross";
/// What follows every JPEG: the boundary that closes its part (`BOUNDARY`, spelt out).
const PART_TAIL: &str = "\r\n--boundarydonotcross\r\n";

/// The headers of a frame's part. `robot_time_us` is its capture time in the robot's clock
/// (the NetworkTables server's, µs, as `Timer.getFPGATimestamp()` logs count), when known.
fn part_head(frame: &Frame, robot_time_us: Option<i64>) -> String {
    let mut head = format!(
        "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {}.{:06}\r\n",
        frame.jpeg().len(),
        frame.captured_us / 1_000_000,
        frame.captured_us % 1_000_000
    );
    if let Some(robot_us) = robot_time_us {
        head.push_str(&format!("X-Robot-Timestamp: {robot_us}\r\n"));
    }
    // The NO SIGNAL card says so, for programs watching the stream (and the tests).
    if frame.kind == FrameKind::NoSignal {
        head.push_str("X-Frame-Kind: no-signal\r\n");
    }
    head.push_str("\r\n");
    head
}

/// One part of the stream: a frame's headers, its JPEG, and the boundary that ends it.
pub(crate) struct Part<'a> {
    frame: &'a Frame,
    head: String,
}

impl<'a> Part<'a> {
    /// The part of `frame`, with its capture time in the robot's clock when known.
    pub fn new(frame: &'a Frame, robot_time_us: Option<i64>) -> Part<'a> {
        Part {
            frame,
            head: part_head(frame, robot_time_us),
        }
    }

    pub fn len(&self) -> usize {
        self.head.len() + self.frame.jpeg().len() + PART_TAIL.len()
    }

    /// Sends what the non-blocking `socket` takes now of the part from byte `from` on,
    /// in one `writev`: returns how much (0 when its buffer is full).
    pub fn send_some(&self, socket: &TcpStream, from: usize) -> io::Result<usize> {
        let mut slices = [
            IoSlice::new(self.head.as_bytes()),
            IoSlice::new(self.frame.jpeg()),
            IoSlice::new(PART_TAIL.as_bytes()),
        ];
        let mut slices = &mut slices[..];
        IoSlice::advance_slices(&mut slices, from);
        match (&*socket).write_vectored(slices) {
            Ok(sent) => Ok(sent),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Sends the rest of the part from byte `from` on, waiting for the socket; a part not
    /// sent within [`WRITE_DEADLINE`] drops the client.
    pub fn send_rest(&self, socket: &TcpStream, mut from: usize) -> io::Result<()> {
        let deadline = Instant::now() + WRITE_DEADLINE;
        while from < self.len() {
            match self.send_some(socket, from) {
                Ok(0) => wait_writable(socket, deadline)?,
                Ok(sent) => from += sent,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Waits until `socket` can take more bytes, at the latest until `deadline`.
fn wait_writable(socket: &TcpStream, deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client took too long to receive",
        ));
    }
    let mut poll = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    let timeout = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
    // SAFETY: one pollfd we own, for a descriptor that stays open during the call.
    if unsafe { libc::poll(&mut poll, 1, timeout) } < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    /// A connected pair of sockets; the second's bytes are read to the end by a thread.
    fn socket_pair() -> (TcpStream, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let out = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (mut receiver, _) = listener.accept().expect("accept");
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            receiver.read_to_end(&mut got).expect("read");
            got
        });
        (out, reader)
    }

    #[test]
    fn a_part_is_framed_like_cscore() {
        let mut frame = Frame::from_jpeg(b"\xFF\xD8JPEG\xFF\xD9", 2, 2, 12_345_678);
        frame.seq = 1;
        let (out, reader) = socket_pair();
        let part = Part::new(&frame, None);
        part.send_rest(&out, 0).expect("send");
        drop(out);
        let expected: &[u8] = b"Content-Type: image/jpeg\r\nContent-Length: 8\r\nX-Timestamp: 12.345678\r\n\r\n\xFF\xD8JPEG\xFF\xD9\r\n--boundarydonotcross\r\n";
        assert_eq!(reader.join().expect("reader"), expected);
        assert_eq!(part.len(), expected.len());
        assert_eq!(PART_TAIL, format!("\r\n--{BOUNDARY}\r\n"));
    }

    #[test]
    fn a_part_carries_the_robot_time_while_it_is_known() {
        let frame = Frame::from_jpeg(b"\xFF\xD8JPEG\xFF\xD9", 2, 2, 12_345_678);
        let part = Part::new(&frame, Some(98_765_432));
        assert_eq!(
            part.head,
            "Content-Type: image/jpeg\r\nContent-Length: 8\r\nX-Timestamp: 12.345678\r\n\
             X-Robot-Timestamp: 98765432\r\n\r\n"
        );
        assert_eq!(part.len(), part.head.len() + 8 + PART_TAIL.len());
        assert!(!Part::new(&frame, None).head.contains("Robot"));
    }

    #[test]
    fn a_part_started_elsewhere_is_finished_from_where_it_stopped() {
        let mut frame = Frame::from_jpeg(&[0x55; 70_000], 2, 2, 12_345_678);
        frame.kind = FrameKind::NoSignal;
        let (out, reader) = socket_pair();
        out.set_nonblocking(true).expect("non-blocking");
        let part = Part::new(&frame, None);
        part.send_rest(&out, 0).expect("send");
        part.send_rest(&out, 100).expect("send the rest");
        drop(out);
        let got = reader.join().expect("reader");
        let len = part.len();
        assert_eq!(got.len(), 2 * len - 100);
        assert_eq!(got[100..len], got[len..]);
        assert!(got.starts_with(
            b"Content-Type: image/jpeg\r\nContent-Length: 70000\r\nX-Timestamp: 12.345678\r\nX-Frame-Kind: no-signal\r\n\r\n"
        ));
    }

    #[test]
    fn a_socket_that_takes_nothing_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let out = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (receiver, _) = listener.accept().expect("accept");
        // Small socket buffers, as the server sets them: a few frames fill them.
        for (socket, option) in [(&out, libc::SO_SNDBUF), (&receiver, libc::SO_RCVBUF)] {
            let bytes: libc::c_int = 64 * 1024;
            // SAFETY: setsockopt on an open socket with a c_int of the stated size.
            unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    (&bytes as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        out.set_nonblocking(true).expect("non-blocking");
        let frame = Frame::from_jpeg(&[0x55; 4_000_000], 2, 2, 0);
        let started = Instant::now();
        let err = Part::new(&frame, None)
            .send_rest(&out, 0)
            .expect_err("nobody reads");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            started.elapsed() >= WRITE_DEADLINE,
            "{:?}",
            started.elapsed()
        );
    }
}

//! A stream client that keeps reading in a thread of its own until dropped: frames are
//! only captured and published while someone watches.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use mjpeg_client::MjpegStream;

/// A client that keeps reading a stream until dropped.
pub struct Viewer {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Viewer {
    pub fn start(address: SocketAddr, path: &str) -> Viewer {
        let mut stream = MjpegStream::open(address, path).expect("open stream");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread =
            thread::spawn(
                move || {
                    while !flag.load(Ordering::Relaxed) && stream.next_part().is_ok() {}
                },
            );
        Viewer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

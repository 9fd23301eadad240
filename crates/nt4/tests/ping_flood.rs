//! A server flooding pings costs the client little. In a test binary of its own: the
//! client thread's CPU time is read from `/proc/self/task` by the thread's name, so no
//! other test's client may run in the same process.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use nt4::{NtClient, NtClientConfig};
use support::fake_server;

/// CPU time (user + system) of this process's thread named `name`, in clock ticks.
fn thread_cpu_ticks(name: &str) -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        return Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?);
    }
    None
}

/// Issue 15: a server flooding pings and never reading cost the client 88% of a core.
/// Pings are read (and answered) at a bounded rate.
#[test]
fn a_ping_flood_costs_the_client_little() {
    let _ = env_logger::builder().is_test(true).try_init();
    let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(1);
    let port = fake_server("v4.1.networktables.first.wpi.edu", move |n, ws| {
        if n > 0 {
            return;
        }
        let _ = go_tx.send(());
        let _ = ws.get_mut().set_nonblocking(true);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match ws.write(tungstenite::Message::Ping(Default::default())) {
                Ok(()) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let _ = ws.flush();
                }
                Err(_) => return,
            }
        }
    });
    let nt = NtClient::start(NtClientConfig::new(format!("127.0.0.1:{port}"), "victim"))
        .expect("start client");
    go_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("connected");
    thread::sleep(Duration::from_millis(100));
    let before = thread_cpu_ticks("nt4-client").expect("the client thread");
    thread::sleep(Duration::from_millis(1500));
    let after = thread_cpu_ticks("nt4-client").expect("the client thread");
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let busy = (after - before) as f64 / ticks_per_second / 1.5;
    println!(
        "client thread during a ping flood: {:.0}% of a core",
        busy * 100.0
    );
    assert!(busy < 0.3, "{:.0}% of a core", busy * 100.0);
    nt.stop();
}

//! A TCP proxy on 127.0.0.1 whose connections can be cut or swallowed: a network that fails
//! under a client (the NT4 client's tests; frcstream's tests include this file by `#[path]`).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// What the proxy does with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProxyMode {
    /// Connect it through to the target port.
    Forward = 0,
    /// Accept it and never answer (a hung server).
    Blackhole = 1,
}

/// A TCP proxy on 127.0.0.1 in front of `target`, whose connections can be cut.
pub struct Proxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    accepted: Arc<AtomicUsize>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(target: u16, mode: ProxyMode) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let proxy = Proxy {
            port,
            mode: Arc::new(AtomicU8::new(mode as u8)),
            accepted: Arc::new(AtomicUsize::new(0)),
            conns: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (mode, conns, stop) = (proxy.mode.clone(), proxy.conns.clone(), proxy.stop.clone());
        let accepted = proxy.accepted.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let Ok(client) = client else { continue };
                accepted.fetch_add(1, Ordering::AcqRel);
                let mut list = conns.lock().unwrap_or_else(|e| e.into_inner());
                if mode.load(Ordering::Acquire) == ProxyMode::Blackhole as u8 {
                    list.push(client);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue; // dropping `client` refuses it
                };
                for s in [&client, &upstream] {
                    if let Ok(s) = s.try_clone() {
                        list.push(s);
                    }
                }
                for (from, to) in [(&client, &upstream), (&upstream, &client)] {
                    if let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) {
                        thread::spawn(move || {
                            let mut buf = [0u8; 16384];
                            while let Ok(n) = from.read(&mut buf) {
                                if n == 0 || to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            let _ = to.shutdown(Shutdown::Both);
                            let _ = from.shutdown(Shutdown::Both);
                        });
                    }
                }
            }
        });
        proxy
    }

    /// Closes every connection made so far (both sides); new ones are accepted as before.
    pub fn cut(&self) {
        for s in self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Acquire)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // unblock accept
        self.cut();
    }
}

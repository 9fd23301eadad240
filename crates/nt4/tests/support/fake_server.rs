//! A WebSocket server on 127.0.0.1 that plays a script instead of NT4: for tests of what
//! a broken or hostile server does to the client.

use std::net::TcpListener;
use std::thread;

/// A fake NT4 server for hostile input: answers the handshake with `subprotocol`, then runs
/// `script` on the websocket.
// tungstenite's handshake callback returns its large error type by value.
#[allow(clippy::result_large_err)]
pub fn fake_server(
    subprotocol: &'static str,
    script: impl Fn(usize, &mut tungstenite::WebSocket<std::net::TcpStream>) + Send + 'static,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let callback =
                |_req: &tungstenite::handshake::server::Request,
                 mut resp: tungstenite::handshake::server::Response| {
                    resp.headers_mut().insert(
                        "Sec-WebSocket-Protocol",
                        tungstenite::http::HeaderValue::from_static(subprotocol),
                    );
                    Ok(resp)
                };
            let Ok(mut ws) = tungstenite::accept_hdr(stream, callback) else {
                continue;
            };
            script(n, &mut ws);
        }
    });
    port
}

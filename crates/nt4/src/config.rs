//! Where the client connects and as whom: [`NtClientConfig`], checked into an [`Endpoint`]
//! (the websocket URL) before the connection thread starts.

use std::net::{IpAddr, SocketAddr};

use crate::NtError;

/// The standard NT4 port.
const DEFAULT_PORT: u16 = 5810;

/// Which protocol revisions the client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NtProtocol {
    /// Offer 4.1, fall back to 4.0 if that is all the server speaks.
    #[default]
    V41,
    /// Offer 4.0 only.
    V40,
}

impl std::fmt::Display for NtProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NtProtocol::V41 => "NT 4.1",
            NtProtocol::V40 => "NT 4.0",
        })
    }
}

/// Where to connect and as whom.
#[derive(Debug, Clone)]
pub struct NtClientConfig {
    /// `host`, `host:port` or `[ipv6]:port`; the port defaults to 5810.
    pub server: String,
    /// The name in `/nt/<client_name>`. The server makes it unique by appending `@N`.
    pub client_name: String,
    /// The revisions to offer; the default (4.1 with 4.0 fallback) suits every server.
    pub protocol: NtProtocol,
}

impl NtClientConfig {
    /// A configuration for `server` (see [`NtClientConfig::server`]) offering 4.1 with the
    /// 4.0 fallback.
    pub fn new(server: impl Into<String>, client_name: impl Into<String>) -> Self {
        NtClientConfig {
            server: server.into(),
            client_name: client_name.into(),
            protocol: NtProtocol::default(),
        }
    }
}

/// A checked configuration: what the connection thread connects to.
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `ws://host:port/nt/<client name, percent-encoded>`.
    pub(crate) url: String,
    /// `host:port` (IPv6 in brackets), for log lines.
    pub(crate) label: String,
    pub(crate) protocol: NtProtocol,
}

impl Endpoint {
    pub(crate) fn new(config: &NtClientConfig) -> Result<Endpoint, NtError> {
        let (host, port) = parse_server(&config.server)
            .ok_or_else(|| NtError::InvalidServer(config.server.clone()))?;
        let name = &config.client_name;
        if name.is_empty() || name.contains('@') || name.chars().any(char::is_control) {
            return Err(NtError::InvalidClientName(name.clone()));
        }
        let uri_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        Ok(Endpoint {
            url: format!("ws://{uri_host}:{port}/nt/{}", encode_path_segment(name)),
            label: format!("{uri_host}:{port}"),
            host,
            port,
            protocol: config.protocol,
        })
    }
}

/// Parses a server address as [`NtClientConfig::server`] takes it: `host`, `host:port`,
/// `[ipv6]`, `[ipv6]:port` or a bare IPv6 address. Returns the host and the port (5810 when
/// not given), or `None` for anything else, so a program can check an address from its
/// configuration before starting a client.
pub fn parse_server(server: &str) -> Option<(String, u16)> {
    let s = server.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Some((addr.ip().to_string(), addr.port()));
    }
    if let Ok(ip) = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Some((ip.to_string(), DEFAULT_PORT));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().ok().filter(|p| *p != 0)?),
        None => (s, DEFAULT_PORT),
    };
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    valid.then(|| (host.to_owned(), port))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(
            parse_server("10.12.34.2"),
            Some(("10.12.34.2".into(), 5810))
        );
        assert_eq!(
            parse_server("127.0.0.1:1234"),
            Some(("127.0.0.1".into(), 1234))
        );
        assert_eq!(
            parse_server("roborio-1234-frc.local"),
            Some(("roborio-1234-frc.local".into(), 5810))
        );
        assert_eq!(parse_server("localhost:99"), Some(("localhost".into(), 99)));
        assert_eq!(parse_server("[::1]:5811"), Some(("::1".into(), 5811)));
        assert_eq!(parse_server("::1"), Some(("::1".into(), 5810)));
        assert_eq!(parse_server("[::1]"), Some(("::1".into(), 5810)));
        for bad in [
            "",
            ":5810",
            "host:",
            "host:0",
            "host:99999",
            "a b",
            "x/y:1",
            "user@host",
        ] {
            assert_eq!(parse_server(bad), None, "{bad}");
        }
    }

    #[test]
    fn client_names_are_percent_encoded() {
        assert_eq!(encode_path_segment("frcstream-1.a_b~"), "frcstream-1.a_b~");
        assert_eq!(encode_path_segment("cam front/é"), "cam%20front%2F%C3%A9");
    }
}

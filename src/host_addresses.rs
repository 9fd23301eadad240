//! The machine's own addresses, for the URLs frcstream prints and advertises on
//! NetworkTables: only addresses a driver station can reach, the robot network first,
//! because mDNS often fails on the field.
//!
//! Every advertised URL that does not answer costs a dashboard time on each reconnect
//! cycle (measured: Elastic about 0.6 s, cscore's `HttpCamera` about 1.25 s per dead
//! entry), so container bridges, link-local addresses and USB gadget networks (a Jetson's
//! `l4tbr0` at 192.168.55.1) are left out.

use std::net::Ipv4Addr;
use std::path::Path;

/// An IPv4 address of an interface that is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    /// The interface's name, e.g. `eth0`.
    pub interface: String,
    pub address: Ipv4Addr,
    /// Whether the interface is backed by a device (not under `/sys/devices/virtual`).
    pub has_device: bool,
}

/// Name prefixes of interfaces that a driver station never reaches: container and VM
/// bridges, tunnels and VPNs, USB gadget networks to a laptop on the bench.
const UNREACHABLE_INTERFACE_PREFIXES: &[&str] = &[
    "docker",
    "br-",
    "veth",
    "virbr",
    "lxcbr",
    "lxdbr",
    "cni",
    "flannel",
    "cali",
    "podman",
    "vboxnet",
    "vmnet",
    "tun",
    "tap",
    "wg",
    "tailscale",
    "zt",
    "l4tbr",
    "usb",
    "rndis",
    "ifb",
];

/// IPv4 addresses of the interfaces that are up, loopback excluded, in interface order.
pub fn ipv4_addresses() -> Vec<Ipv4Addr> {
    interface_addresses()
        .into_iter()
        .map(|a| a.address)
        .collect()
}

/// The IPv4 addresses of the interfaces that are up, loopback excluded, in interface
/// order, with what is known of each interface.
pub fn interface_addresses() -> Vec<InterfaceAddress> {
    let mut found: Vec<InterfaceAddress> = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we walk read-only and free with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return found;
        }
        let mut entry = list;
        while !entry.is_null() {
            let ifa = &*entry;
            let up = ifa.ifa_flags & libc::IFF_UP as libc::c_uint != 0;
            if up
                && !ifa.ifa_addr.is_null()
                && !ifa.ifa_name.is_null()
                && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET
            {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let address = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                let interface = std::ffi::CStr::from_ptr(ifa.ifa_name)
                    .to_string_lossy()
                    .into_owned();
                if !address.is_loopback() && !found.iter().any(|a| a.address == address) {
                    let has_device = has_device(&interface);
                    found.push(InterfaceAddress {
                        interface,
                        address,
                        has_device,
                    });
                }
            }
            entry = ifa.ifa_next;
        }
        libc::freeifaddrs(list);
    }
    found
}

/// Whether `/sys/class/net/<interface>` is a device rather than a virtual interface.
fn has_device(interface: &str) -> bool {
    std::fs::canonicalize(Path::new("/sys/class/net").join(interface))
        .map(|path| !path.starts_with("/sys/devices/virtual"))
        .unwrap_or(false)
}

/// The addresses worth advertising to a driver station, best first.
///
/// Left out: link-local addresses (169.254/16) and interfaces a driver station never
/// reaches ([`UNREACHABLE_INTERFACE_PREFIXES`]). Of the rest, interfaces backed by a
/// device win; only when there are none (frcstream in a container or a network
/// namespace) are virtual ones kept. Order: the robot network `robot_network` (10.TE.AM.x,
/// as a /24) first, then other 10/8 addresses, then the rest, each in interface order.
pub fn advertised_addresses(
    addresses: &[InterfaceAddress],
    robot_network: Option<[u8; 3]>,
) -> Vec<Ipv4Addr> {
    let reachable: Vec<&InterfaceAddress> = addresses
        .iter()
        .filter(|a| !a.address.is_loopback() && !a.address.is_link_local())
        .filter(|a| {
            !UNREACHABLE_INTERFACE_PREFIXES
                .iter()
                .any(|prefix| a.interface.starts_with(prefix))
        })
        .collect();
    let with_device: Vec<&InterfaceAddress> =
        reachable.iter().copied().filter(|a| a.has_device).collect();
    let mut chosen = if with_device.is_empty() {
        reachable
    } else {
        with_device
    };
    let rank = |a: &InterfaceAddress| {
        let octets = a.address.octets();
        match robot_network {
            Some(net) if octets[..3] == net => 0,
            _ if octets[0] == 10 => 1,
            _ => 2,
        }
    };
    chosen.sort_by_key(|a| rank(a));
    chosen.into_iter().map(|a| a.address).collect()
}

/// The host name, for `<hostname>.local`.
pub fn hostname() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most buffer.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if rc != 0 {
        return None;
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8(buffer[..end].to_vec())
        .ok()
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(interface: &str, address: [u8; 4], has_device: bool) -> InterfaceAddress {
        InterfaceAddress {
            interface: interface.to_owned(),
            address: Ipv4Addr::from(address),
            has_device,
        }
    }

    #[test]
    fn addresses_exclude_loopback() {
        assert!(ipv4_addresses().iter().all(|a| !a.is_loopback()));
        assert!(hostname().is_some());
    }

    #[test]
    fn a_jetson_advertises_its_robot_address_only() {
        let jetson = [
            at("docker0", [172, 17, 0, 1], false),
            at("l4tbr0", [192, 168, 55, 1], false),
            at("wlan0", [192, 168, 1, 40], true),
            at("eth0", [10, 12, 34, 11], true),
            at("eth1", [169, 254, 12, 1], true),
            at("br-5f2a", [172, 18, 0, 1], false),
        ];
        assert_eq!(
            advertised_addresses(&jetson, Some([10, 12, 34])),
            [
                Ipv4Addr::new(10, 12, 34, 11),
                Ipv4Addr::new(192, 168, 1, 40)
            ]
        );
    }

    #[test]
    fn the_robot_network_comes_first_then_other_tens() {
        let pi = [
            at("wlan0", [192, 168, 1, 40], true),
            at("eth1", [10, 99, 0, 5], true),
            at("eth0", [10, 12, 34, 11], true),
        ];
        let order = |network| advertised_addresses(&pi, network);
        assert_eq!(
            order(Some([10, 12, 34])),
            [
                Ipv4Addr::new(10, 12, 34, 11),
                Ipv4Addr::new(10, 99, 0, 5),
                Ipv4Addr::new(192, 168, 1, 40)
            ]
        );
        assert_eq!(
            order(None),
            [
                Ipv4Addr::new(10, 99, 0, 5),
                Ipv4Addr::new(10, 12, 34, 11),
                Ipv4Addr::new(192, 168, 1, 40)
            ]
        );
    }

    #[test]
    fn in_a_container_the_virtual_interfaces_are_all_there_is() {
        let container = [
            at("eth0", [10, 12, 34, 11], false),
            at("docker0", [172, 17, 0, 1], false),
            at("lo0", [169, 254, 1, 1], false),
        ];
        assert_eq!(
            advertised_addresses(&container, Some([10, 12, 34])),
            [Ipv4Addr::new(10, 12, 34, 11)]
        );
        assert!(advertised_addresses(&[], None).is_empty());
    }
}

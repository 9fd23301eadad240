//! The machine's own addresses, for the URLs frcstream prints (and advertises): static
//! IPv4 addresses first, because mDNS often fails on the field.

use std::net::Ipv4Addr;

/// IPv4 addresses of the interfaces that are up, loopback excluded, in interface order.
pub fn ipv4_addresses() -> Vec<Ipv4Addr> {
    let mut addresses = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we walk read-only and free with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return addresses;
        }
        let mut entry = list;
        while !entry.is_null() {
            let ifa = &*entry;
            let up = ifa.ifa_flags & libc::IFF_UP as libc::c_uint != 0;
            if up
                && !ifa.ifa_addr.is_null()
                && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET
            {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let address = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !address.is_loopback() && !addresses.contains(&address) {
                    addresses.push(address);
                }
            }
            entry = ifa.ifa_next;
        }
        libc::freeifaddrs(list);
    }
    addresses
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

    #[test]
    fn addresses_exclude_loopback() {
        assert!(ipv4_addresses().iter().all(|a| !a.is_loopback()));
        assert!(hostname().is_some());
    }
}

//! The `ip("...")` matcher: a single address, a CIDR prefix or an address range, for IPv4 and
//! IPv6. As a line filter it looks for any address in the line that matches.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::StageError;

const IPV4_CHARSET: &[u8] = b"0123456789.";
const IPV6_CHARSET: &[u8] = b"0123456789abcdefABCDEF:.";

#[derive(Debug, Clone)]
enum Matcher {
    Addr(IpAddr),
    Prefix(IpAddr, u8),
    Range(IpAddr, IpAddr),
}

/// A compiled `ip("...")` pattern.
#[derive(Debug, Clone)]
pub(crate) struct IpMatcher {
    m: Matcher,
}

/// Parses an address the way Go's `netip.ParseAddr` does (no zones: the line scanner never
/// includes `%`). IPv4 rejects leading zeros.
fn parse_addr(s: &str) -> Option<IpAddr> {
    if s.contains(':') {
        s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        // std rejects octets with leading zeros, like Go
        s.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    }
}

fn same_family(a: &IpAddr, b: &IpAddr) -> bool {
    matches!((a, b), (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)))
}

fn to_u128(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(*v)),
        IpAddr::V6(v) => u128::from(*v),
    }
}

impl IpMatcher {
    /// Compiles a pattern: `192.168.0.1`, `192.168.0.0/16`, `192.168.0.1-192.168.0.23` or the
    /// IPv6 equivalents.
    pub(crate) fn new(pattern: &str) -> Result<IpMatcher, StageError> {
        let invalid = || StageError::IpPattern(pattern.to_string());
        if let Some(a) = parse_addr(pattern) {
            return Ok(IpMatcher { m: Matcher::Addr(a) });
        }
        if let Some((addr, bits)) = pattern.split_once('/') {
            let a = parse_addr(addr).ok_or_else(invalid)?;
            if bits.is_empty()
                || !bits.bytes().all(|c| c.is_ascii_digit())
                || (bits.len() > 1 && bits.starts_with('0'))
            {
                return Err(invalid());
            }
            let bits: u8 = bits.parse().map_err(|_| invalid())?;
            let max = if a.is_ipv4() { 32 } else { 128 };
            if bits > max {
                return Err(invalid());
            }
            return Ok(IpMatcher { m: Matcher::Prefix(a, bits) });
        }
        if let Some((from, to)) = pattern.split_once('-') {
            let from = parse_addr(from).ok_or_else(invalid)?;
            let to = parse_addr(to).ok_or_else(invalid)?;
            if !same_family(&from, &to) || to_u128(&to) < to_u128(&from) {
                return Err(invalid());
            }
            return Ok(IpMatcher { m: Matcher::Range(from, to) });
        }
        Err(invalid())
    }

    /// True when `ip` matches the pattern (same address family only).
    pub(crate) fn contains(&self, ip: &IpAddr) -> bool {
        match &self.m {
            Matcher::Addr(a) => a == ip,
            Matcher::Prefix(a, bits) => {
                if !same_family(a, ip) {
                    return false;
                }
                let width = if a.is_ipv4() { 32 } else { 128 };
                if *bits == 0 {
                    return true;
                }
                let shift = width - u32::from(*bits);
                (to_u128(a) >> shift) == (to_u128(ip) >> shift)
            }
            Matcher::Range(from, to) => {
                same_family(from, ip) && to_u128(from) <= to_u128(ip) && to_u128(ip) <= to_u128(to)
            }
        }
    }

    /// True when the value (a whole label value, or a line) contains a matching address,
    /// scanning the way Loki does.
    pub(crate) fn matches_in(&self, line: &str) -> bool {
        let b = line.as_bytes();
        let n = b.len();
        let at = |i: usize| if i < n { b[i] } else { 0 };
        let mut i = 0;
        while i < n {
            let v4 = i + 3 < n
                && b[i].is_ascii_digit()
                && (b[i + 1] == b'.' || b[i + 2] == b'.' || b[i + 3] == b'.');
            let charset = if v4 {
                Some(IPV4_CHARSET)
            } else if ipv6_hint([at(i), at(i + 1), at(i + 2), at(i + 3), at(i + 4)]) {
                Some(IPV6_CHARSET)
            } else {
                None
            };
            if let Some(cs) = charset {
                let len = b[i..].iter().take_while(|c| cs.contains(c)).count();
                // the span is ASCII, so slicing is on char boundaries
                if let Some(ip) = parse_addr(&line[i..i + len]) {
                    if self.contains(&ip) {
                        return true;
                    }
                }
                i += len;
            }
            i += 1;
        }
        false
    }
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

fn ipv6_hint(p: [u8; 5]) -> bool {
    (p[0] == b':' && p[1] == b':' && is_hex(p[2]))
        || (is_hex(p[0]) && p[1] == b':')
        || (is_hex(p[0]) && is_hex(p[1]) && p[2] == b':')
        || (is_hex(p[0]) && is_hex(p[1]) && is_hex(p[2]) && p[3] == b':')
        || (is_hex(p[0]) && is_hex(p[1]) && is_hex(p[2]) && is_hex(p[3]) && p[4] == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_in_lines() {
        let m = IpMatcher::new("173.234.31.0/24").unwrap();
        assert!(m.matches_in(
            "Dec 10 sshd[24208]: Failed password for root from 173.234.31.186 port 38926 ssh2"
        ));
        assert!(!m.matches_in("Failed password for root from 173.234.32.186 port 38926"));
        assert!(!m.matches_in("rhost=173.234.31.1866"));
        let r = IpMatcher::new("192.168.0.1-192.168.0.23").unwrap();
        assert!(r.matches_in("from 192.168.0.5:22"));
        assert!(!r.matches_in("from 192.168.0.24"));
        let v6 = IpMatcher::new("2001:db8::/32").unwrap();
        assert!(v6.matches_in("client 2001:db8::1 connected"));
        assert!(!v6.matches_in("client 2001:db9::1 connected"));
        let one = IpMatcher::new("::1").unwrap();
        assert!(one.matches_in("x ::1"));
        assert!(IpMatcher::new("300.1.1.1").is_err());
        assert!(IpMatcher::new("1.2.3.4-1.2.3.1").is_err());
        assert_eq!(
            IpMatcher::new("nope").unwrap_err().to_string(),
            r#"ip: invalid pattern: "nope""#
        );
    }
}

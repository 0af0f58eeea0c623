//! The EHLO name of a connection when the caller set none: an RFC 5321
//! address literal of its local end.
//!
//! What it does: [`address_literal`] writes `[192.0.2.7]` or
//! `[IPv6:2001:db8::7]` (RFC 5321 4.1.3), the IPv6 text in RFC 5952's
//! canonical form (lowercase, no leading zeros, the first longest run of
//! two or more zero groups as `::`, IPv4-mapped addresses as
//! `::ffff:192.0.2.7`), the same text `core::net`'s `Display` gives.
//!
//! What it does not: check that the name is this host's; servers accept
//! a literal of the connection's own local end.
//!
//! Why it is built this way: `core::fmt` and the standard IPv6 formatter
//! take 2.5 KB of a firmware image whose budget is 64 KiB; digits written
//! straight into an [`Out`] take a few hundred bytes.

use crate::config::Bounded;
use crate::index;
use crate::out::{put_decimal, FixedBuf, Out};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The EHLO name when neither the caller's name nor the local address is
/// known.
pub(crate) const LOOPBACK_LITERAL: &[u8] = b"[127.0.0.1]";

/// The address literal of `ip`.
pub(crate) fn address_literal(ip: IpAddr) -> Bounded<80> {
    // The longest literal, `[IPv6:` + 45 + `]`, is 52 bytes.
    let mut buf = FixedBuf::<64>::new();
    match ip {
        IpAddr::V4(v4) => {
            buf.put(b"[");
            put_ipv4(&mut buf, v4);
        }
        IpAddr::V6(v6) => {
            buf.put(b"[IPv6:");
            put_ipv6(&mut buf, v6);
        }
    }
    buf.put(b"]");
    Bounded::from_slice(buf.as_bytes())
}

fn put_ipv4(out: &mut dyn Out, ip: Ipv4Addr) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.put(b".");
        }
        put_decimal(out, octet.into());
    }
}

fn put_ipv6(out: &mut dyn Out, ip: Ipv6Addr) {
    if let Some(v4) = ip.to_ipv4_mapped() {
        out.put(b"::ffff:");
        return put_ipv4(out, v4);
    }
    let groups = ip.segments();
    let (start, len) = longest_zero_run(&groups);
    if len < 2 {
        return put_groups(out, &groups);
    }
    put_groups(out, index::get(&groups, ..start));
    out.put(b"::");
    put_groups(out, index::get(&groups, start + len..));
}

/// Where the first longest run of zero groups starts, and its length.
fn longest_zero_run(groups: &[u16; 8]) -> (usize, usize) {
    let (mut best, mut run) = ((0, 0), (0, 0));
    for (i, &g) in groups.iter().enumerate() {
        run = match (g, run.1) {
            (0, 0) => (i, 1),
            (0, n) => (run.0, n + 1),
            _ => (i + 1, 0),
        };
        if run.1 > best.1 {
            best = run;
        }
    }
    best
}

fn put_groups(out: &mut dyn Out, groups: &[u16]) {
    for (i, &g) in groups.iter().enumerate() {
        if i > 0 {
            out.put(b":");
        }
        put_hex(out, g);
    }
}

/// `g` in lowercase hex without leading zeros.
fn put_hex(out: &mut dyn Out, g: u16) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = g.to_be_bytes();
    let nibbles = [
        digits[0] >> 4,
        digits[0] & 15,
        digits[1] >> 4,
        digits[1] & 15,
    ];
    let first = nibbles.iter().position(|&n| n != 0).unwrap_or(3);
    for &n in index::get(&nibbles, first..) {
        out.put(core::slice::from_ref(index::get(DIGITS, n as usize)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    fn literal(ip: IpAddr) -> std::string::String {
        std::string::String::from_utf8(address_literal(ip).as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn literals_as_rfc_5321_and_5952_write_them() {
        let cases: [(IpAddr, &str); 10] = [
            (IpAddr::from([10, 1, 2, 3]), "[10.1.2.3]"),
            (IpAddr::from([0, 0, 0, 0]), "[0.0.0.0]"),
            (IpAddr::from([255, 255, 255, 255]), "[255.255.255.255]"),
            (
                IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 7]),
                "[IPv6:2001:db8::7]",
            ),
            (IpAddr::from([0u16; 8]), "[IPv6:::]"),
            (IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]), "[IPv6:::1]"),
            (IpAddr::from([1, 0, 0, 1, 0, 0, 0, 1]), "[IPv6:1:0:0:1::1]"),
            (
                IpAddr::from([1, 0, 1, 1, 1, 1, 1, 1]),
                "[IPv6:1:0:1:1:1:1:1:1]",
            ),
            (
                IpAddr::from([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0207]),
                "[IPv6:::ffff:192.0.2.7]",
            ),
            (
                IpAddr::from([0xfe80, 0xabcd, 0xef, 0x1234, 0x5678, 0x9abc, 0xdef0, 0xffff]),
                "[IPv6:fe80:abcd:ef:1234:5678:9abc:def0:ffff]",
            ),
        ];
        for (ip, text) in cases {
            assert_eq!(literal(ip), text);
        }
    }

    proptest::proptest! {
        /// The same text as `core::net`'s `Display`, for any address and
        /// for groups drawn mostly from zero (runs of every length).
        #[test]
        fn literals_match_the_standard_formatter(
            groups in proptest::array::uniform8(proptest::prop_oneof![
                3 => proptest::strategy::Just(0u16),
                1 => proptest::strategy::Just(0xffffu16),
                2 => proptest::num::u16::ANY,
            ]),
            v4 in proptest::array::uniform4(proptest::num::u8::ANY),
        ) {
            let v6 = Ipv6Addr::from(groups);
            proptest::prop_assert_eq!(literal(IpAddr::V6(v6)), format!("[IPv6:{v6}]"));
            let v4 = Ipv4Addr::from(v4);
            proptest::prop_assert_eq!(literal(IpAddr::V4(v4)), format!("[{v4}]"));
        }
    }
}

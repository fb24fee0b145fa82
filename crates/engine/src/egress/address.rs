//! What kind of address an IP is, for the egress rules: public, or one of the classes a
//! tool call may not reach by default (loopback, private, link-local, metadata, …).
//!
//! The decision: the classes are one table of ranges, first match wins, with the
//! metadata hosts first (one of them, Azure's 168.63.129.16, sits in public space).
//! IPv6 forms that carry an IPv4 address to an IPv4 host (IPv4-mapped, NAT64, 6to4) are
//! classified by the address they carry, so `[::ffff:127.0.0.1]` is loopback; and any
//! IPv6 address outside global unicast (`2000::/3`) is reserved, so a range the table
//! forgot is denied rather than public.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The class of an address, as the egress rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Globally routable: reachable unless the allow list says otherwise.
    Public,
    /// This machine (`127.0.0.0/8`, `::1`).
    Loopback,
    /// A private network: RFC 1918, carrier-grade NAT (`100.64.0.0/10`), IPv6 unique
    /// local (`fc00::/7`).
    Private,
    /// Link-local (`169.254.0.0/16`, `fe80::/10`).
    LinkLocal,
    /// A cloud provider's instance metadata service, which hands out credentials.
    Metadata,
    /// Special-purpose space that is not public: documentation, benchmarking, "this
    /// network", reserved for future use, deprecated IPv6 ranges.
    Reserved,
    /// `0.0.0.0`, `::`: on Linux, a connection there reaches this machine.
    Unspecified,
    /// Multicast and the IPv4 limited broadcast: not a host.
    Multicast,
}

/// Which patterns can open an address class (see [`Class::reach`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Any URL the allow list accepts (an empty list accepts every URL).
    Always,
    /// Only a URL matched by a pattern that names its host exactly: the IP literal, or
    /// a host name that resolves there.
    WhenNamed,
    /// Only a URL matched by a pattern that names this address as an IP literal: no
    /// host name may lead here.
    WhenNamedLiterally,
    /// No pattern opens it.
    Never,
}

impl Class {
    /// Which patterns can open this class.
    pub fn reach(self) -> Reach {
        match self {
            Class::Public => Reach::Always,
            Class::Loopback | Class::Private | Class::LinkLocal | Class::Reserved => {
                Reach::WhenNamed
            }
            Class::Metadata => Reach::WhenNamedLiterally,
            Class::Unspecified | Class::Multicast => Reach::Never,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Public => "a public address",
            Class::Loopback => "a loopback address",
            Class::Private => "a private address",
            Class::LinkLocal => "a link-local address",
            Class::Metadata => "a cloud metadata address",
            Class::Reserved => "a reserved address",
            Class::Unspecified => "the unspecified address",
            Class::Multicast => "a multicast or broadcast address",
        })
    }
}

/// An address's class and the range that gave it (`"10.0.0.0/8"`), for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    /// The class.
    pub class: Class,
    /// The range it fell in, as written in the table (`"public"` for public space).
    pub range: &'static str,
}

/// IPv4 ranges that are not public, most specific first: (network, prefix, class, label).
const V4: &[([u8; 4], u8, Class, &str)] = &[
    (
        [169, 254, 169, 254],
        32,
        Class::Metadata,
        "169.254.169.254: AWS, GCP, Azure, OCI",
    ),
    (
        [169, 254, 170, 2],
        32,
        Class::Metadata,
        "169.254.170.2: AWS ECS",
    ),
    (
        [169, 254, 170, 23],
        32,
        Class::Metadata,
        "169.254.170.23: AWS EKS",
    ),
    (
        [169, 254, 0, 23],
        32,
        Class::Metadata,
        "169.254.0.23: Tencent Cloud",
    ),
    (
        [100, 100, 100, 200],
        32,
        Class::Metadata,
        "100.100.100.200: Alibaba Cloud",
    ),
    (
        [168, 63, 129, 16],
        32,
        Class::Metadata,
        "168.63.129.16: Azure",
    ),
    (
        [192, 0, 0, 192],
        32,
        Class::Metadata,
        "192.0.0.192: Oracle Cloud",
    ),
    ([0, 0, 0, 0], 32, Class::Unspecified, "0.0.0.0"),
    ([0, 0, 0, 0], 8, Class::Reserved, "0.0.0.0/8"),
    ([10, 0, 0, 0], 8, Class::Private, "10.0.0.0/8"),
    ([100, 64, 0, 0], 10, Class::Private, "100.64.0.0/10"),
    ([127, 0, 0, 0], 8, Class::Loopback, "127.0.0.0/8"),
    ([169, 254, 0, 0], 16, Class::LinkLocal, "169.254.0.0/16"),
    ([172, 16, 0, 0], 12, Class::Private, "172.16.0.0/12"),
    ([192, 0, 0, 0], 24, Class::Reserved, "192.0.0.0/24"),
    ([192, 0, 2, 0], 24, Class::Reserved, "192.0.2.0/24"),
    ([192, 88, 99, 0], 24, Class::Reserved, "192.88.99.0/24"),
    ([192, 168, 0, 0], 16, Class::Private, "192.168.0.0/16"),
    ([198, 18, 0, 0], 15, Class::Reserved, "198.18.0.0/15"),
    ([198, 51, 100, 0], 24, Class::Reserved, "198.51.100.0/24"),
    ([203, 0, 113, 0], 24, Class::Reserved, "203.0.113.0/24"),
    ([224, 0, 0, 0], 4, Class::Multicast, "224.0.0.0/4"),
    (
        [255, 255, 255, 255],
        32,
        Class::Multicast,
        "255.255.255.255",
    ),
    ([240, 0, 0, 0], 4, Class::Reserved, "240.0.0.0/4"),
];

/// IPv6 ranges that are not public and carry no IPv4 address, most specific first.
const V6: &[(u128, u8, Class, &str)] = &[
    (
        0xfd00_0ec2_0000_0000_0000_0000_0000_0254,
        128,
        Class::Metadata,
        "fd00:ec2::254: AWS",
    ),
    (
        0xfd00_0ec2_0000_0000_0000_0000_0000_0023,
        128,
        Class::Metadata,
        "fd00:ec2::23: AWS EKS",
    ),
    (0, 128, Class::Unspecified, "::"),
    (1, 128, Class::Loopback, "::1"),
    (0xfc00 << 112, 7, Class::Private, "fc00::/7"),
    (0xfe80 << 112, 10, Class::LinkLocal, "fe80::/10"),
    (0xfec0 << 112, 10, Class::Reserved, "fec0::/10"),
    (0xff00 << 112, 8, Class::Multicast, "ff00::/8"),
    (
        0x0064_ff9b_0001 << 80,
        48,
        Class::Reserved,
        "64:ff9b:1::/48",
    ),
    (0x2001 << 112, 23, Class::Reserved, "2001::/23"),
    (0x2001_0db8 << 96, 32, Class::Reserved, "2001:db8::/32"),
    (0x3fff << 112, 20, Class::Reserved, "3fff::/20"),
];

/// The class of `ip`.
pub fn classify(ip: IpAddr) -> Classified {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match carried_v4(v6) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Classified {
    let bits = u32::from(ip);
    V4.iter()
        .find(|(net, prefix, _, _)| in_range(bits, u32::from_be_bytes(*net), *prefix))
        .map_or(PUBLIC, |&(_, _, class, range)| Classified { class, range })
}

fn classify_v6(ip: Ipv6Addr) -> Classified {
    let bits = u128::from(ip);
    if let Some(&(_, _, class, range)) = V6
        .iter()
        .find(|(net, prefix, _, _)| in_range(bits, *net, *prefix))
    {
        return Classified { class, range };
    }
    if in_range(bits, 0x2000 << 112, 3) {
        PUBLIC
    } else {
        Classified {
            class: Class::Reserved,
            range: "outside 2000::/3",
        }
    }
}

const PUBLIC: Classified = Classified {
    class: Class::Public,
    range: "public",
};

/// The IPv4 address an IPv6 address delivers to, for the forms that do: IPv4-mapped
/// (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::/48`).
fn carried_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if in_range(bits, 0xffff << 32, 96) || in_range(bits, 0x0064_ff9b << 96, 96) {
        return Some(low);
    }
    if in_range(bits, 0x2002 << 112, 16) {
        return Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    None
}

/// Whether `bits` is in `net/prefix` (for `u32` or `u128` addresses).
fn in_range<T>(bits: T, net: T, prefix: u8) -> bool
where
    T: Copy + PartialEq + std::ops::Shr<u32, Output = T>,
{
    let width = (std::mem::size_of::<T>() * 8) as u32;
    let shift = width - u32::from(prefix);
    // A shift by the full width overflows; a /0 holds everything.
    shift == width || bits >> shift == net >> shift
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ip: &str) -> Class {
        classify(ip.parse().unwrap()).class
    }

    #[test]
    fn every_class_is_recognised_in_both_families() {
        let cases = [
            ("8.8.8.8", Class::Public),
            ("1.1.1.1", Class::Public),
            ("2606:4700:4700::1111", Class::Public),
            ("2001:4860:4860::8888", Class::Public),
            ("127.0.0.1", Class::Loopback),
            ("127.255.255.254", Class::Loopback),
            ("::1", Class::Loopback),
            ("10.0.0.1", Class::Private),
            ("172.16.0.1", Class::Private),
            ("172.31.255.255", Class::Private),
            ("192.168.1.1", Class::Private),
            ("100.64.0.1", Class::Private),
            ("100.127.255.255", Class::Private),
            ("fc00::1", Class::Private),
            ("fd12:3456::1", Class::Private),
            ("169.254.1.1", Class::LinkLocal),
            ("fe80::1", Class::LinkLocal),
            ("febf::1", Class::LinkLocal),
            ("0.0.0.0", Class::Unspecified),
            ("::", Class::Unspecified),
            ("224.0.0.1", Class::Multicast),
            ("239.255.255.250", Class::Multicast),
            ("255.255.255.255", Class::Multicast),
            ("ff02::1", Class::Multicast),
            ("0.1.2.3", Class::Reserved),
            ("192.0.2.1", Class::Reserved),
            ("198.18.0.1", Class::Reserved),
            ("198.51.100.7", Class::Reserved),
            ("203.0.113.9", Class::Reserved),
            ("240.0.0.1", Class::Reserved),
            ("2001:db8::1", Class::Reserved),
            ("fec0::1", Class::Reserved),
            ("100::1", Class::Reserved),
            ("::2", Class::Reserved),
        ];
        for (ip, expected) in cases {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn range_edges_fall_on_the_right_side() {
        assert_eq!(class("172.15.255.255"), Class::Public);
        assert_eq!(class("172.32.0.0"), Class::Public);
        assert_eq!(class("100.63.255.255"), Class::Public);
        assert_eq!(class("100.128.0.0"), Class::Public);
        assert_eq!(class("11.0.0.0"), Class::Public);
        assert_eq!(class("9.255.255.255"), Class::Public);
        assert_eq!(class("223.255.255.255"), Class::Public);
        assert_eq!(class("fbff::1"), Class::Reserved, "outside 2000::/3");
        assert_eq!(class("2001:200::1"), Class::Public, "past 2001::/23");
    }

    #[test]
    fn the_metadata_addresses_are_their_own_class() {
        for ip in [
            "169.254.169.254",
            "169.254.170.2",
            "169.254.170.23",
            "169.254.0.23",
            "100.100.100.200",
            "168.63.129.16",
            "192.0.0.192",
            "fd00:ec2::254",
            "fd00:ec2::23",
        ] {
            assert_eq!(class(ip), Class::Metadata, "{ip}");
        }
        assert_eq!(Class::Metadata.reach(), Reach::WhenNamedLiterally);
        assert_eq!(
            class("168.63.129.17"),
            Class::Public,
            "only the one Azure host"
        );
    }

    #[test]
    fn ipv6_forms_carrying_an_ipv4_address_are_classified_by_it() {
        let cases = [
            ("::ffff:127.0.0.1", Class::Loopback),
            ("::ffff:10.0.0.1", Class::Private),
            ("::ffff:169.254.169.254", Class::Metadata),
            ("::ffff:0.0.0.0", Class::Unspecified),
            ("::ffff:192.168.0.1", Class::Private),
            ("::ffff:100.64.0.1", Class::Private),
            ("::ffff:169.254.9.9", Class::LinkLocal),
            ("::ffff:224.0.0.1", Class::Multicast),
            ("::ffff:8.8.8.8", Class::Public),
            ("64:ff9b::127.0.0.1", Class::Loopback),
            ("64:ff9b::a9fe:a9fe", Class::Metadata),
            ("64:ff9b::8.8.8.8", Class::Public),
            ("2002:7f00:1::1", Class::Loopback),
            ("2002:a00:1::", Class::Private),
            ("2002:808:808::1", Class::Public),
        ];
        for (ip, expected) in cases {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn reach_follows_the_class() {
        assert_eq!(Class::Public.reach(), Reach::Always);
        for c in [
            Class::Loopback,
            Class::Private,
            Class::LinkLocal,
            Class::Reserved,
        ] {
            assert_eq!(c.reach(), Reach::WhenNamed, "{c}");
        }
        for c in [Class::Unspecified, Class::Multicast] {
            assert_eq!(c.reach(), Reach::Never, "{c}");
        }
    }

    #[test]
    fn ranges_are_named_for_messages() {
        let got = classify("10.1.2.3".parse().unwrap());
        assert_eq!(got.range, "10.0.0.0/8");
        let got = classify("::ffff:127.0.0.1".parse().unwrap());
        assert_eq!(got.range, "127.0.0.0/8");
    }
}

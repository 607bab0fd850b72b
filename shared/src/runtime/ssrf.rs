//! Where webhooks may go. Unless `STEWRD_WEBHOOK_ALLOW_PRIVATE=true`, a URL whose
//! host is (or resolves to) a loopback, private, link-local, CGNAT, unspecified,
//! multicast, documentation or cloud-metadata address is refused when it is set,
//! and again when it is sent to (the sender filters the addresses it connects to,
//! so a DNS answer that changes in between cannot get through).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Why a webhook URL is refused. Every address-related refusal is the one
/// [`UrlRefusal::NotPublic`], whatever the cause (a private address, a special
/// one, a name that does not resolve), so that the answer tells nobody what a
/// name resolves to inside our network.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    #[error("is not a valid URL")]
    Invalid,
    #[error("must be an http:// or https:// URL with a host")]
    Scheme,
    #[error("must not carry credentials")]
    Credentials,
    #[error("is too long")]
    TooLong,
    #[error(
        "must point to a host on the public internet (it must resolve, and only to public addresses)"
    )]
    NotPublic,
}

/// Longest accepted URL.
pub const MAX_URL_LEN: usize = 2048;

/// Why an address may not be reached, or `None` if it may. For logs only:
/// callers answer with [`UrlRefusal::NotPublic`].
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => "unspecified",
        (127, ..) => "loopback",
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => "private",
        (169, 254, _) => "link-local or metadata",
        (100, 64..=127, _) => "shared (CGNAT)",
        (192, 0, 0)
        | (192, 0, 2)
        | (192, 88, 99)
        | (198, 51, 100)
        | (203, 0, 113)
        | (198, 18..=19, _) => "reserved",
        (224..=239, ..) => "multicast",
        (240..=255, ..) => "reserved",
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address stands for, where it embeds one that a
/// router or translator on the way may deliver to: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-translated (`::ffff:0:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`), 6to4
/// (`2002:aabb:ccdd::`) and Teredo (the client address, bit-inverted).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let joined = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match ip.segments() {
        [0, 0, 0, 0, 0, 0xffff, hi, lo]
        | [0, 0, 0, 0, 0xffff, 0, hi, lo]
        | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo]
        | [0x2002, hi, lo, ..] => Some(joined(hi, lo)),
        [0x2001, 0, .., hi, lo] => Some(joined(!hi, !lo)),
        _ => None,
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        return forbidden_v4(v4);
    }
    let segments = ip.segments();
    Some(match segments[0] {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        // IPv4-compatible (deprecated) ::a.b.c.d
        0 if segments[1..6] == [0; 5] => "reserved",
        // Discard-only 100::/64.
        0x100 if segments[1..4] == [0; 3] => "reserved",
        // Local-use NAT64 (64:ff9b:1::/48): a translator inside some network,
        // whatever IPv4 address it embeds and in whichever layout.
        0x64 if segments[1] == 0xff9b && segments[2] == 1 => "reserved",
        s if s & 0xfe00 == 0xfc00 => "private",
        s if s & 0xffc0 == 0xfe80 => "link-local",
        s if s & 0xffc0 == 0xfec0 => "site-local",
        s if s & 0xff00 == 0xff00 => "multicast",
        0x2001 if segments[1] == 0x0db8 => "documentation",
        0x3fff if segments[1] & 0xf000 == 0 => "documentation",
        _ => return None,
    })
}

/// Parses and checks a webhook URL's form (scheme, credentials, length) and, for
/// an IP host, its address. A domain host still has to be resolved and checked.
pub fn parse_webhook_url(text: &str, allow_private: bool) -> Result<Url, UrlRefusal> {
    if text.len() > MAX_URL_LEN {
        return Err(UrlRefusal::TooLong);
    }
    let url = Url::parse(text).map_err(|_| UrlRefusal::Invalid)?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err(UrlRefusal::Scheme);
    }
    // The URL standard lets `*`, `!` and the like through in a host; no DNS
    // name has them (international names arrive here as punycode).
    if let Some(Host::Domain(domain)) = url.host()
        && !domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(UrlRefusal::Invalid);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefusal::Credentials);
    }
    if !allow_private {
        // The URL parser has already normalized odd IPv4 forms (2130706433, 0x7f000001).
        let literal = match url.host() {
            Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            _ => None,
        };
        if literal.and_then(forbidden_reason).is_some() {
            return Err(UrlRefusal::NotPublic);
        }
    }
    Ok(url)
}

/// Fully checks a webhook URL when it is set: its form, and every address its
/// host resolves to.
pub async fn check_webhook_url(text: &str, allow_private: bool) -> Result<Url, UrlRefusal> {
    let url = parse_webhook_url(text, allow_private)?;
    if allow_private {
        return Ok(url);
    }
    if let Some(Host::Domain(domain)) = url.host() {
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses: Vec<_> = tokio::net::lookup_host((domain, port))
            .await
            .map_err(|_| UrlRefusal::NotPublic)?
            .collect();
        if addresses.is_empty() || addresses.iter().any(|a| forbidden_reason(a.ip()).is_some()) {
            return Err(UrlRefusal::NotPublic);
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_forbidden() {
        for text in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2001:db8::1",
            // Embedded IPv4 in other forms, site-local and other special ranges.
            "64:ff9b:1::7f00:1",
            "64:ff9b:1::808:808",
            "2002:7f00:1::",
            "2002:a00:1::1",
            "::ffff:0:7f00:1",
            "::ffff:0:a9fe:a9fe",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "fec0::1",
            "feff::1",
            "100::1",
            "3fff::1",
        ] {
            let ip: IpAddr = text.parse().expect("an address");
            assert!(forbidden_reason(ip).is_some(), "{text} allowed");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for text in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::ffff:0:808:808",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
        ] {
            let ip: IpAddr = text.parse().expect("an address");
            assert_eq!(forbidden_reason(ip), None, "{text} refused");
        }
    }

    #[test]
    fn odd_encodings_of_loopback_are_caught() {
        for url in [
            "http://2130706433/hook",
            "http://0x7f000001/hook",
            "http://0177.0.0.1/hook",
            "http://127.1/hook",
            "http://[::ffff:7f00:1]/hook",
            "http://[::1]:8080/",
            "http://[64:ff9b:1::7f00:1]/",
            "http://[2002:7f00:1::]/",
            "http://[::ffff:0:7f00:1]/",
            "http://[fec0::1]/",
        ] {
            assert_eq!(
                parse_webhook_url(url, false),
                Err(UrlRefusal::NotPublic),
                "{url} passed"
            );
            assert!(parse_webhook_url(url, true).is_ok());
        }
    }

    #[test]
    fn malformed_urls_are_refused_even_when_private_is_allowed() {
        assert_eq!(
            parse_webhook_url("ftp://example.com", true),
            Err(UrlRefusal::Scheme)
        );
        assert_eq!(
            parse_webhook_url("not a url", true),
            Err(UrlRefusal::Invalid)
        );
        assert_eq!(
            parse_webhook_url("https://user:pw@example.com", true),
            Err(UrlRefusal::Credentials)
        );
        for no_dns_name in ["http://A0bA*", "https://a!b.com/x", "http://a$b"] {
            assert_eq!(
                parse_webhook_url(no_dns_name, true),
                Err(UrlRefusal::Invalid),
                "{no_dns_name}"
            );
        }
        for fine in ["https://bücher.example/x", "http://my_host:8080/"] {
            assert!(parse_webhook_url(fine, true).is_ok(), "{fine}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(parse_webhook_url(&long, true), Err(UrlRefusal::TooLong));
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_and_one_not_resolving_get_the_same_refusal() {
        for url in [
            "http://localhost:9/hook",
            "http://ip6-localhost:9/hook",
            "http://no-such-host.invalid/hook",
        ] {
            assert_eq!(
                check_webhook_url(url, false).await,
                Err(UrlRefusal::NotPublic),
                "{url}"
            );
        }
        assert!(
            check_webhook_url("http://localhost:9/hook", true)
                .await
                .is_ok()
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn any_text_is_checked_without_panicking(text in "\\PC{0,300}") {
            let _ = parse_webhook_url(&text, false);
            let _ = parse_webhook_url(&format!("http://{text}/"), false);
        }

        #[test]
        fn a_forbidden_ipv4_address_is_forbidden_in_every_ipv6_form(a in 0..=255u8, b in 0..=255u8, c in 0..=255u8, d in 0..=255u8) {
            let v4 = Ipv4Addr::new(a, b, c, d);
            let [hi, lo] = [u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])];
            let forms = [
                Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, hi, lo),
                Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, hi, lo),
                Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo),
                Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1),
                Ipv6Addr::new(0x2001, 0, 0x4136, 0xe378, 0x8000, 0x63bf, !hi, !lo),
            ];
            for form in forms {
                proptest::prop_assert_eq!(forbidden_reason(IpAddr::V6(form)).is_some(), forbidden_v4(v4).is_some(), "{}", form);
                let url = format!("http://[{form}]/");
                proptest::prop_assert_eq!(parse_webhook_url(&url, false).is_err(), forbidden_v4(v4).is_some(), "{}", url);
            }
        }
    }
}

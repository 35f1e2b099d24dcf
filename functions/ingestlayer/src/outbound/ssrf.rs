//! Where an outbound webhook may connect: public unicast addresses only.
//!
//! A webhook URL is the user's to choose, so without a guard it could aim our function at
//! the instance metadata service (`169.254.169.254`, `fd00:ec2::254`), at a database inside
//! the VPC, or at loopback. The guard runs where the connection is made: on every address
//! a host name resolves to, at connect time (a name that resolved to a public address when
//! the pipeline was saved and to a private one now is refused then), and on literal
//! addresses in the URL, which no resolver sees. Redirects are not followed and no proxy is
//! used, so neither can lead around it.
//!
//! [`Guard::allow_local`] turns it off for local development (`make dev` posts to a
//! receiver on 127.0.0.1); template.yaml never sets it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Whether private addresses are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Guard {
    pub allow_local: bool,
}

impl Guard {
    /// Why a connection to `ip` is refused, or `None` when it may be made.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allow_local {
            return None;
        }
        forbidden(ip)
    }
}

/// Why `ip` is no public unicast address, or `None` when it is one.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "an unspecified address (0.0.0.0/8)",
        (127, _, _) => "a loopback address",
        (10, _, _) => "a private address (10.0.0.0/8)",
        (172, 16..=31, _) => "a private address (172.16.0.0/12)",
        (192, 168, _) => "a private address (192.168.0.0/16)",
        (169, 254, _) => "a link-local address (169.254.0.0/16, where instance metadata lives)",
        (100, 64..=127, _) => "a shared address (100.64.0.0/10, carrier-grade NAT)",
        (192, 0, 0) => "an IETF protocol address (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18..=19, _) => "a benchmarking address (198.18.0.0/15)",
        (224..=239, _, _) => "a multicast address",
        (240..=255, _, _) => "a reserved or broadcast address",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4).map(|_| "an IPv4-mapped address of a non-public IPv4 address");
    }
    let s = ip.segments();
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => "the unspecified address (::)",
        [0, 0, 0, 0, 0, 0, 0, 1] => "a loopback address (::1)",
        // NAT64 (64:ff9b::/96) embeds an IPv4 address: judge that one.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => {
            let v4 = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
            return forbidden_v4(v4).map(|_| "a NAT64 address of a non-public IPv4 address");
        }
        // 6to4 (2002::/16) embeds one too.
        [0x2002, hi, lo, ..] => {
            let v4 = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
            return forbidden_v4(v4).map(|_| "a 6to4 address of a non-public IPv4 address");
        }
        [0, 0, 0, 0, 0, 0, _, _] => "an IPv4-compatible address (deprecated)",
        [x, ..] if x & 0xfe00 == 0xfc00 => {
            "a unique local address (fc00::/7, where EC2's IPv6 metadata lives)"
        }
        [x, ..] if x & 0xffc0 == 0xfe80 => "a link-local address (fe80::/10)",
        [x, ..] if x & 0xff00 == 0xff00 => "a multicast address",
        [0x2001, 0x0db8, ..] => "a documentation address (2001:db8::/32)",
        [0x2001, 0, ..] => "a Teredo address (2001::/32)",
        [0x0100, 0, 0, 0, ..] => "a discard-only address (100::/64)",
        _ => return None,
    })
}

/// A resolver for reqwest that resolves as the system does and keeps only the addresses
/// the guard allows; a name left with none fails, naming why.
pub struct GuardedResolver {
    pub guard: Guard,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.guard;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?
                .collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match guard.refuses(a.ip()) {
                    Some(why) => {
                        refused = Some((a.ip(), why));
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                let why = match refused {
                    Some((ip, why)) => Refused(format!("{host} resolves to {ip}, {why}")),
                    None => Refused(format!("{host} resolves to no address")),
                };
                return Err(Box::new(why) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A connection the guard refused, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// Checks a webhook URL before anything is sent: `https` (or `http` when local addresses
/// are allowed), a host, and when the host is a literal address, an allowed one.
pub fn check_url(url: &url::Url, guard: Guard) -> Result<(), String> {
    match url.scheme() {
        "https" => {}
        "http" if guard.allow_local => {}
        "http" => return Err("must use https".into()),
        other => return Err(format!("has scheme {other:?}; it must be https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("carries credentials; put them in the webhook's secret instead".into());
    }
    let ip = match url.host() {
        None => return Err("has no host".into()),
        Some(url::Host::Domain(_)) => return Ok(()),
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
    };
    match guard.refuses(ip) {
        Some(why) => Err(format!("points at {ip}, {why}")),
        None => Ok(()),
    }
}

/// The HTTP client webhook deliveries use: the guarded resolver, no redirects, no proxy.
pub fn client(guard: Guard, timeout: std::time::Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { guard }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(std::time::Duration::from_secs(5))
        .user_agent(concat!("ingestlayer/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> bool {
        forbidden(s.parse().unwrap()).is_some()
    }

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.170",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2002:7f00:1::1",
            "2001:db8::1",
            "::127.0.0.1",
        ] {
            assert!(refused(ip), "{ip} should be refused");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.1.1",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
            "2002:0101:0101::1",
        ] {
            assert!(!refused(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn the_local_development_switch_allows_everything() {
        let local = Guard { allow_local: true };
        assert_eq!(local.refuses("127.0.0.1".parse().unwrap()), None);
        assert!(Guard::default()
            .refuses("127.0.0.1".parse().unwrap())
            .is_some());
    }

    #[test]
    fn urls_are_checked_for_scheme_credentials_and_literal_addresses() {
        let strict = Guard::default();
        let check = |u: &str, g: Guard| check_url(&url::Url::parse(u).unwrap(), g);
        assert_eq!(check("https://hooks.example.com/x", strict), Ok(()));
        assert_eq!(check("https://1.1.1.1/x", strict), Ok(()));
        assert!(check("http://hooks.example.com/x", strict)
            .unwrap_err()
            .contains("https"));
        assert!(check("ftp://hooks.example.com/x", strict)
            .unwrap_err()
            .contains("ftp"));
        assert!(check("https://user:pw@hooks.example.com/", strict)
            .unwrap_err()
            .contains("credentials"));
        let e = check("https://169.254.169.254/latest/meta-data", strict).unwrap_err();
        assert!(
            e.contains("169.254.169.254") && e.contains("link-local"),
            "{e}"
        );
        assert!(check("https://[::1]:8443/", strict)
            .unwrap_err()
            .contains("loopback"));
        // Decimal and hex spellings of 127.0.0.1 are parsed as the address they are.
        assert!(check("https://2130706433/", strict).is_err());
        assert!(check("https://0x7f.0.0.1/", strict).is_err());
        let local = Guard { allow_local: true };
        assert_eq!(check("http://127.0.0.1:3005/hook", local), Ok(()));
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_at_connect_time() {
        use reqwest::dns::Resolve;
        let strict = GuardedResolver {
            guard: Guard::default(),
        };
        let err = match strict.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("localhost resolves to") && err.contains("loopback"),
            "{err}"
        );
        let local = GuardedResolver {
            guard: Guard { allow_local: true },
        };
        let addrs: Vec<_> = local
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}

//! Login and registration attempts per client address (GCRA, via `governor`).
//!
//! The limiter lives in the process: behind a load balancer each replica counts on its own,
//! which bounds guessing per replica. That is the intended trade-off for the `small` and
//! `medium` profiles; a shared limiter would be another adapter.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use poem::http::HeaderMap;
use poem::web::RemoteAddr;

/// Past this many tracked addresses, idle ones are forgotten so the map stays bounded.
const MAX_TRACKED_BEFORE_CLEANUP: usize = 10_000;

/// Counts attempts per client address; `attempts_per_minute` may come in a burst, then they
/// replenish evenly over the minute.
pub struct AuthRateLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl AuthRateLimiter {
    pub fn new(attempts_per_minute: NonZeroU32) -> Self {
        let clock = DefaultClock::default();
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(attempts_per_minute)),
            clock,
        }
    }

    /// Records one attempt from `client`.
    ///
    /// # Errors
    /// The number of whole seconds (at least 1) to wait when the client is over its quota.
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        if self.limiter.len() > MAX_TRACKED_BEFORE_CLEANUP {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&client)
            .map_err(|not_until| retry_after_secs(not_until.wait_time_from(self.clock.now())))
    }
}

/// Seconds for a `Retry-After` header: rounded up, never 0 (which would invite a retry storm).
fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// The address a request counts against: the peer address, or, when the server sits behind a
/// trusted proxy, the last `X-Forwarded-For` entry — the one that proxy appended itself.
/// Earlier entries are whatever the client claimed and are never trusted.
pub fn client_ip(remote: &RemoteAddr, headers: &HeaderMap, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
            .next_back();
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    remote
        .as_socket_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |addr| {
            addr.ip().to_canonical()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::Addr;
    use poem::http::HeaderValue;

    fn peer(ip: &str) -> RemoteAddr {
        RemoteAddr(Addr::SocketAddr(
            format!("{ip}:5000").parse().expect("socket address"),
        ))
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                "x-forwarded-for",
                HeaderValue::from_str(value).expect("header"),
            );
        }
        headers
    }

    #[test]
    fn the_peer_address_counts_unless_the_proxy_is_trusted() {
        let headers = forwarded(&["203.0.113.9"]);
        assert_eq!(
            client_ip(&peer("10.0.0.1"), &headers, false),
            "10.0.0.1".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            client_ip(&peer("10.0.0.1"), &headers, true),
            "203.0.113.9".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn only_the_entry_the_trusted_proxy_appended_counts() {
        let headers = forwarded(&["1.1.1.1, 2.2.2.2", "198.51.100.7"]);
        assert_eq!(
            client_ip(&peer("10.0.0.1"), &headers, true),
            "198.51.100.7".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn garbage_in_forwarded_for_falls_back_to_the_peer() {
        let headers = forwarded(&["not-an-ip, also bad"]);
        assert_eq!(
            client_ip(&peer("10.0.0.1"), &headers, true),
            "10.0.0.1".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn ipv4_mapped_peers_count_as_their_ipv4_address() {
        assert_eq!(
            client_ip(&peer("[::ffff:10.0.0.1]"), &HeaderMap::new(), false),
            "10.0.0.1".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn attempts_beyond_the_quota_are_refused_with_a_wait() {
        let limiter = AuthRateLimiter::new(NonZeroU32::new(2).expect("non-zero"));
        let client: IpAddr = "192.0.2.1".parse().expect("ip");
        assert!(limiter.check(client).is_ok());
        assert!(limiter.check(client).is_ok());
        let wait = limiter.check(client).expect_err("over quota");
        assert!((1..=30).contains(&wait), "{wait}");
        assert!(limiter.check("192.0.2.2".parse().expect("ip")).is_ok());
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }
}

//! Login throttling: a password guesser gets growing delays, then a temporary lockout.
//!
//! * Per client (IPv4 address, IPv6 /64, since one host usually holds a whole /64): attempts
//!   run one at a time behind the client's gate, so parallel guesses queue instead of being
//!   checked together; each failure waits `BASE_DELAY * 2^(failures-1)` (at most `MAX_DELAY`)
//!   before answering, still holding the gate; after `max_failures` failures the client is
//!   locked out for `lockout` (HTTP 429 with `Retry-After`, the correct password included).
//!   A success forgets the client's failures; so do `lockout` quiet seconds.
//! * Global: at most `GLOBAL_CONCURRENCY` password checks at once over all clients, and once
//!   more than `GLOBAL_SOFT_LIMIT` failures happened within `lockout`, every failure waits
//!   `MAX_DELAY`, which slows an attacker spread over many addresses. There is no global
//!   lockout: that would let anyone lock the analyst out.
//! * Counted in the process-wide metrics (`nta_dashboard_login_*`, on the operator's
//!   `metrics_addr`), never on the dashboard's public `/metrics`, and logged with the address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedMutexGuard, Semaphore};
use tokio::time::Instant;
use tracing::{debug, info, warn};

const BASE_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(4);
const GLOBAL_CONCURRENCY: usize = 4;
const GLOBAL_SOFT_LIMIT: usize = 100;
/// Clients remembered at most; beyond it the quiet ones are forgotten first.
const MAX_CLIENTS: usize = 10_000;

#[derive(Default)]
struct Client {
    failures: u32,
    last_failure: Option<Instant>,
    locked_until: Option<Instant>,
    gate: Arc<tokio::sync::Mutex<()>>,
}

struct Book {
    clients: HashMap<IpAddr, Client>,
    /// Times of recent failures of every client (pruned to the `lockout` window).
    global: std::collections::VecDeque<Instant>,
}

pub struct Throttle {
    max_failures: u32,
    lockout: Duration,
    book: Mutex<Book>,
    checks: Semaphore,
}

/// A login may go ahead: holds the client's gate and a global slot until dropped.
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    key: IpAddr,
    _gate: OwnedMutexGuard<()>,
    _slot: tokio::sync::SemaphorePermit<'a>,
}

/// The client is locked out for this long.
#[derive(Debug)]
pub struct Locked(pub Duration);

/// IPv6 clients are keyed by their /64 (a host picks any address in it).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

impl Throttle {
    pub fn new(max_failures: u32, lockout: Duration) -> Throttle {
        Throttle {
            max_failures: max_failures.max(1),
            lockout,
            book: Mutex::new(Book { clients: HashMap::new(), global: Default::default() }),
            checks: Semaphore::new(GLOBAL_CONCURRENCY),
        }
    }

    fn locked(&self, key: IpAddr, now: Instant) -> Option<Locked> {
        let book = self.book.lock().unwrap();
        let until = book.clients.get(&key)?.locked_until?;
        (until > now).then(|| Locked(until - now))
    }

    /// Waits for this client's turn (and a global slot); `Err` while it is locked out.
    pub async fn begin(&self, ip: IpAddr) -> Result<Attempt<'_>, Locked> {
        let key = client_key(ip);
        if let Some(l) = self.locked(key, Instant::now()) {
            return Err(self.refused(ip, l));
        }
        let gate = {
            let mut book = self.book.lock().unwrap();
            if book.clients.len() >= MAX_CLIENTS && !book.clients.contains_key(&key) {
                self.prune(&mut book, Instant::now());
            }
            book.clients.entry(key).or_default().gate.clone()
        };
        let gate = gate.lock_owned().await;
        let slot = self.checks.acquire().await.expect("never closed");
        // It may have been locked out while this attempt queued behind the others.
        if let Some(l) = self.locked(key, Instant::now()) {
            return Err(self.refused(ip, l));
        }
        Ok(Attempt { throttle: self, key, _gate: gate, _slot: slot })
    }

    fn refused(&self, ip: IpAddr, l: Locked) -> Locked {
        metrics::counter!("nta_dashboard_login_refused_total").increment(1);
        // Debug only: a locked-out client could otherwise flood the log (the lockout itself is a
        // warning, and the metric counts these).
        debug!(client = %ip, retry_after_s = l.0.as_secs(), "login refused: client locked out");
        l
    }

    /// Forgets clients with no recent failure and no lockout, and clients nobody waits on
    /// when that is not enough.
    fn prune(&self, book: &mut Book, now: Instant) {
        let window = self.lockout;
        book.clients.retain(|_, c| {
            Arc::strong_count(&c.gate) > 1
                || c.locked_until.is_some_and(|t| t > now)
                || c.last_failure.is_some_and(|t| now.duration_since(t) < window)
        });
        if book.clients.len() >= MAX_CLIENTS {
            book.clients.retain(|_, c| Arc::strong_count(&c.gate) > 1);
        }
    }
}

impl Attempt<'_> {
    /// The password was right: the client's failures are forgotten.
    pub fn succeeded(self) {
        let mut book = self.throttle.book.lock().unwrap();
        if let Some(c) = book.clients.get_mut(&self.key) {
            c.failures = 0;
            c.locked_until = None;
        }
    }

    /// The password was wrong: records it, then waits the client's delay before returning
    /// (still holding its gate, so its next attempt waits too).
    pub async fn failed(self, ip: IpAddr) {
        let t = self.throttle;
        let now = Instant::now();
        let delay = {
            let mut book = t.book.lock().unwrap();
            while book.global.front().is_some_and(|f| now.duration_since(*f) > t.lockout) {
                book.global.pop_front();
            }
            book.global.push_back(now);
            let busy = book.global.len() > GLOBAL_SOFT_LIMIT;
            let c = book.clients.entry(self.key).or_default();
            if c.last_failure.is_some_and(|f| now.duration_since(f) > t.lockout) {
                c.failures = 0;
            }
            c.failures += 1;
            c.last_failure = Some(now);
            metrics::counter!("nta_dashboard_login_failures_total").increment(1);
            let grown = BASE_DELAY.saturating_mul(1 << (c.failures - 1).min(8)).min(MAX_DELAY);
            if c.failures >= t.max_failures {
                c.locked_until = Some(now + t.lockout);
                c.failures = 0;
                metrics::counter!("nta_dashboard_login_lockouts_total").increment(1);
                warn!(client = %ip, lockout_s = t.lockout.as_secs(), "too many failed logins: client locked out");
            } else {
                info!(client = %ip, failures = c.failures, "failed login");
            }
            if busy {
                MAX_DELAY
            } else {
                grown
            }
        };
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(client_key(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
    }

    #[tokio::test]
    async fn lockout_after_max_failures_then_expiry() {
        let t = Throttle::new(3, Duration::from_secs(2));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            t.begin(ip).await.unwrap().failed(ip).await;
        }
        let Err(Locked(left)) = t.begin(ip).await else { panic!("not locked out") };
        assert!(left <= Duration::from_secs(2), "{left:?}");
        t.begin(other).await.expect("another client is not locked").succeeded();
        tokio::time::sleep(left + Duration::from_millis(50)).await;
        t.begin(ip).await.expect("lockout expired").succeeded();
    }
}

//! Who is using the console: sessions, their cookie, and the token every form carries.
//!
//! Signing in (with an access key and its secret, or the connection's client certificate)
//! opens a session: a random 256-bit token in an `HttpOnly`, `SameSite=Strict` cookie (and
//! `Secure` over TLS), valid for [`IDLE`] without use and [`LIFETIME`] at most. Sessions live
//! in the server's memory: a restart signs everyone out. Each session has its own CSRF token,
//! which every state-changing request must carry (a form's `csrf` field or the `X-Quiver-CSRF`
//! header htmx sends); a cross-site request also has no cookie (`SameSite=Strict`) and a
//! foreign `Origin`, each refused on its own.
//!
//! Without `--auth` there is nothing to sign in with: a visitor gets a session with no
//! principal at once, so that forms are protected the same way.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ring::rand::{SecureRandom, SystemRandom};

/// The session cookie's name.
pub const COOKIE: &str = "quiver_console";
/// A session unused for this long is closed.
pub const IDLE: Duration = Duration::from_secs(60 * 60);
/// A session is closed this long after sign-in, used or not.
pub const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Most sessions held; past it the least recently used is closed. Bounds what visitors can
/// make the server hold (without `--auth`, each new visitor opens one).
pub const MAX_SESSIONS: usize = 10_000;

/// A signed-in user, as the handlers see it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The principal; `None` on a server without authentication.
    pub principal: Option<String>,
    /// The token forms must carry.
    pub csrf: String,
}

struct Entry {
    session: Session,
    opened: Instant,
    used: Instant,
}

pub struct Sessions {
    entries: Mutex<HashMap<String, Entry>>,
    idle: Duration,
    lifetime: Duration,
    random: SystemRandom,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new(IDLE, LIFETIME)
    }
}

impl Sessions {
    pub fn new(idle: Duration, lifetime: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            idle,
            lifetime,
            random: SystemRandom::new(),
        }
    }

    fn token(&self) -> String {
        let mut bytes = [0u8; 32];
        self.random
            .fill(&mut bytes)
            .expect("the system's random source works");
        hex::encode(bytes)
    }

    /// Opens a session for `principal`; returns its cookie token and the session.
    pub fn open(&self, principal: Option<String>) -> (String, Session) {
        let token = self.token();
        let session = Session {
            principal,
            csrf: self.token(),
        };
        let now = Instant::now();
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_SESSIONS {
            entries.retain(|_, e| self.live(e, now));
            if entries.len() >= MAX_SESSIONS
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.used)
                    .map(|(t, _)| t.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            token.clone(),
            Entry {
                session: session.clone(),
                opened: now,
                used: now,
            },
        );
        (token, session)
    }

    fn live(&self, entry: &Entry, now: Instant) -> bool {
        now.duration_since(entry.used) < self.idle
            && now.duration_since(entry.opened) < self.lifetime
    }

    /// The live session of `token`, marked as used; an expired one is closed.
    pub fn get(&self, token: &str) -> Option<Session> {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        let entry = entries.get_mut(token)?;
        if !self.live(entry, now) {
            entries.remove(token);
            return None;
        }
        entry.used = now;
        Some(entry.session.clone())
    }

    /// Closes `token`'s session (signing out).
    pub fn close(&self, token: &str) {
        self.entries.lock().remove(token);
    }

    /// How long a session lasts at most, for the cookie's `Max-Age`.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Sessions held (live or not yet noticed expired).
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `Set-Cookie` value opening a session.
pub fn cookie(token: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value closing it.
pub fn expired_cookie(secure: bool) -> String {
    cookie("", Duration::ZERO, secure)
}

/// The session token among a request's `Cookie` headers.
pub fn token_of<'a>(cookies: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    cookies
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Compares a submitted CSRF token with the session's in constant time.
pub fn csrf_matches(session: &Session, submitted: Option<&str>) -> bool {
    let Some(submitted) = submitted else {
        return false;
    };
    let (a, b) = (session.csrf.as_bytes(), submitted.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_at_their_lifetime() {
        let sessions = Sessions::new(Duration::from_millis(50), Duration::from_millis(120));
        let (token, session) = sessions.open(Some("alice".into()));
        assert_eq!(token.len(), 64);
        assert_ne!(token, session.csrf);
        assert_eq!(
            sessions.get(&token).unwrap().principal.as_deref(),
            Some("alice")
        );
        // Used within the idle time: it lives on, until its lifetime.
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(30));
            assert!(sessions.get(&token).is_some());
        }
        std::thread::sleep(Duration::from_millis(40));
        assert!(sessions.get(&token).is_none(), "past its lifetime");
        assert!(sessions.is_empty(), "an expired session is removed");
        let (idle, _) = sessions.open(None);
        std::thread::sleep(Duration::from_millis(60));
        assert!(sessions.get(&idle).is_none(), "idle too long");
        assert!(sessions.get("not-a-token").is_none());
    }

    #[test]
    fn signing_out_closes_the_session_and_the_cookie() {
        let sessions = Sessions::default();
        let (token, _) = sessions.open(None);
        sessions.close(&token);
        assert!(sessions.get(&token).is_none());
        let set = cookie(&token, LIFETIME, true);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(set.ends_with("; Secure") && set.contains("Max-Age=43200"));
        assert!(expired_cookie(false).contains("Max-Age=0"));
        assert!(!expired_cookie(false).contains("Secure"));
    }

    #[test]
    fn the_token_is_found_among_other_cookies() {
        let headers = ["a=1; quiver_console=abc; b=2"];
        assert_eq!(token_of(headers.into_iter()), Some("abc"));
        assert_eq!(token_of(["quiver_console="].into_iter()), None);
        assert_eq!(token_of(["x=quiver_console"].into_iter()), None);
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let session = Session {
            principal: None,
            csrf: "abcd".into(),
        };
        assert!(csrf_matches(&session, Some("abcd")));
        assert!(!csrf_matches(&session, Some("abce")));
        assert!(!csrf_matches(&session, Some("abc")));
        assert!(!csrf_matches(&session, None));
    }

    #[test]
    fn the_least_recently_used_session_makes_room() {
        let sessions = Sessions::default();
        let (first, _) = sessions.open(None);
        let mut last = String::new();
        for _ in 1..MAX_SESSIONS {
            last = sessions.open(None).0;
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        sessions.open(None);
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.get(&first).is_none(), "the oldest made room");
        assert!(sessions.get(&last).is_some());
    }
}

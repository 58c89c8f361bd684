//! Pure authentication and authorisation helpers: password hashes, SASL response parsing and
//! per-vhost permission checks. No I/O and no user store here; the broker's user registry calls
//! these.
//!
//! Responsibilities and invariants:
//! - Password hashes use RabbitMQ's `rabbit_password_hashing_sha256` layout,
//!   `base64(salt ++ sha256(salt ++ password))` with a 4-byte salt, so `password_hash` values in a
//!   RabbitMQ definitions export import unchanged and Warren's exports load into RabbitMQ.
//! - Verifying a password compares digests in constant time, and a malformed stored hash (bad
//!   base64, wrong length, empty for a password-less user) never verifies.
//! - SASL parsers take untrusted bytes from the network: they return `None` on anything malformed
//!   and never panic or read out of bounds.
//! - Permissions are RabbitMQ's three regular expressions (configure, write, read), searched
//!   unanchored in the resource name; an empty expression grants nothing.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use regex::Regex;
use sha2::{Digest, Sha256};

/// Salt length RabbitMQ uses (`rand:uniform(16#ffffffff)` packed as 32 bits).
const SALT_LEN: usize = 4;
/// SHA-256 output length.
const DIGEST_LEN: usize = 32;

/// SHA-256 of salt followed by password, as RabbitMQ salts.
fn salted_digest(salt: &[u8], password: &str) -> [u8; DIGEST_LEN] {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(password.as_bytes());
    hasher.finalize().into()
}

/// Hashes `password` with a fresh random salt in RabbitMQ's SHA-256 format,
/// `base64(salt[4] ++ sha256(salt[4] ++ password))`, so definitions move between Warren and
/// RabbitMQ without resetting passwords.
#[must_use]
pub fn hash_password(password: &str) -> String {
    let salt: [u8; SALT_LEN] = rand::random();
    let mut raw = [0u8; SALT_LEN + DIGEST_LEN];
    raw[..SALT_LEN].copy_from_slice(&salt);
    raw[SALT_LEN..].copy_from_slice(&salted_digest(&salt, password));
    BASE64.encode(raw)
}

/// Whether `password` matches a hash made by [`hash_password`] or exported by RabbitMQ (with
/// `rabbit_password_hashing_sha256`). The digest is compared in constant time so response timing
/// does not reveal how much of it matched; malformed hashes, including the empty hash of a
/// password-less user, never match.
#[must_use]
pub fn check_password(password_hash: &str, password: &str) -> bool {
    let Ok(raw) = BASE64.decode(password_hash) else {
        return false;
    };
    if raw.len() != SALT_LEN + DIGEST_LEN {
        return false;
    }
    let (salt, stored) = raw.split_at(SALT_LEN);
    constant_time_eq(stored, &salted_digest(salt, password))
}

/// Byte equality whose running time depends only on the lengths, not on where bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

/// Parses a SASL PLAIN response (RFC 4616), `authzid NUL authcid NUL password`, into
/// `(user, password)`. The authorisation identity may be non-empty and is ignored, since Warren
/// has no impersonation; more or fewer than two NULs, or non-UTF-8 names, give `None`.
#[must_use]
pub fn parse_plain(response: &[u8]) -> Option<(String, String)> {
    let mut fields = response.split(|&b| b == 0);
    let _authzid = fields.next()?;
    let user = fields.next()?;
    let password = fields.next()?;
    if fields.next().is_some() {
        return None;
    }
    Some((
        String::from_utf8(user.to_vec()).ok()?,
        String::from_utf8(password.to_vec()).ok()?,
    ))
}

/// A field value of an AMQPLAIN table, as far as credentials care.
#[derive(Clone, Copy)]
enum Field<'a> {
    /// A long or short string's bytes.
    Str(&'a [u8]),
    /// A well-formed value of any other type, which cannot be a credential.
    Other,
}

/// Bounds-checked cursor over an AMQPLAIN response.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u32_len(&mut self) -> Option<usize> {
        let bytes: [u8; 4] = self.take(4)?.try_into().ok()?;
        usize::try_from(u32::from_be_bytes(bytes)).ok()
    }

    /// Reads one field value; `None` when truncated or of an unknown type.
    fn value(&mut self) -> Option<Field<'a>> {
        let kind = self.u8()?;
        let fixed = match kind {
            b'S' => {
                let len = self.u32_len()?;
                return self.take(len).map(Field::Str);
            }
            // AMQP 0-9-1's short string; RabbitMQ reads `s` as a short int, but some clients
            // send LOGIN/PASSWORD this way.
            b's' => {
                let len = usize::from(self.u8()?);
                return self.take(len).map(Field::Str);
            }
            // Length-prefixed values we have no use for: skip them whole.
            b'x' | b'A' | b'F' => self.u32_len()?,
            b'V' => 0,
            b't' | b'b' | b'B' => 1,
            b'U' | b'u' => 2,
            b'I' | b'i' | b'f' => 4,
            b'D' => 5,
            b'l' | b'L' | b'd' | b'T' => 8,
            _ => return None,
        };
        self.take(fixed)?;
        Some(Field::Other)
    }
}

/// Parses an AMQPLAIN response, an AMQP field table *without* its 4-byte length prefix holding
/// `LOGIN` and `PASSWORD` (long `S` or short `s` strings), into `(user, password)`. Old clients
/// (py-amqp, php-amqplib, Bunny) still offer it. The first occurrence of each key counts, as in
/// RabbitMQ; other keys are skipped. Anything truncated, of unknown type, a non-string LOGIN or
/// PASSWORD, or non-UTF-8 gives `None`.
#[must_use]
pub fn parse_amqplain(response: &[u8]) -> Option<(String, String)> {
    let mut reader = Reader { rest: response };
    let mut login: Option<Field<'_>> = None;
    let mut password: Option<Field<'_>> = None;
    while !reader.rest.is_empty() {
        let key_len = usize::from(reader.u8()?);
        let key = reader.take(key_len)?;
        let value = reader.value()?;
        match key {
            b"LOGIN" if login.is_none() => login = Some(value),
            b"PASSWORD" if password.is_none() => password = Some(value),
            _ => {}
        }
    }
    let (Some(Field::Str(login)), Some(Field::Str(password))) = (login, password) else {
        return None;
    };
    Some((
        String::from_utf8(login.to_vec()).ok()?,
        String::from_utf8(password.to_vec()).ok()?,
    ))
}

/// One permission's regular expression; `None` is the empty pattern, which RabbitMQ treats as
/// granting nothing (it substitutes `^$`, and the only resource named "" — the default exchange —
/// is checked as `amq.default`).
///
/// Shared behind an `Arc`: every connection of a user clones its permissions, and cloning a
/// `Regex` itself gives the clone its own match-cache pool (about 1.4 KiB each, three per
/// connection, which heaptrack showed as a fifth of an idle connection's memory).
#[derive(Clone, Debug)]
struct Rule(Option<std::sync::Arc<Regex>>);

impl Rule {
    fn new(pattern: &str) -> Result<Self, regex::Error> {
        if pattern.is_empty() {
            return Ok(Self(None));
        }
        Regex::new(pattern).map(|re| Self(Some(std::sync::Arc::new(re))))
    }

    fn allows(&self, resource: &str) -> bool {
        self.0.as_ref().is_some_and(|re| re.is_match(resource))
    }

    fn pattern(&self) -> &str {
        self.0.as_ref().map_or("", |re| re.as_str())
    }
}

/// A user's rights in one vhost, as RabbitMQ defines them: three regular expressions matched
/// (unanchored search) against resource names. Configure covers declare/delete, write covers
/// publishing to an exchange and binding a queue/exchange as destination, read covers consuming,
/// getting, purging and being the source of a binding. An empty expression grants nothing.
///
/// Callers check the default exchange under the name `amq.default`, as RabbitMQ does. Patterns
/// use the `regex` crate's syntax, which covers what RabbitMQ users write in practice but has no
/// look-around or back-references; such patterns fail to compile here.
#[derive(Clone, Debug)]
pub struct Permissions {
    /// Resources the user may declare or delete.
    configure: Rule,
    /// Resources the user may publish to or bind into.
    write: Rule,
    /// Resources the user may consume from, purge or bind from.
    read: Rule,
}

impl Permissions {
    /// Compiles the three expressions, failing on the first invalid one so a bad
    /// `set_permissions` or definitions import is refused instead of silently denying.
    ///
    /// # Errors
    ///
    /// The first pattern the `regex` crate cannot compile.
    pub fn new(configure: &str, write: &str, read: &str) -> Result<Self, regex::Error> {
        Ok(Self {
            configure: Rule::new(configure)?,
            write: Rule::new(write)?,
            read: Rule::new(read)?,
        })
    }

    /// `.*` for all three, what RabbitMQ grants the default user and `set_permissions` examples
    /// use.
    #[must_use]
    pub fn full() -> Self {
        let all = Rule(Some(std::sync::Arc::new(
            Regex::new(".*").expect("\".*\" is a valid regular expression"),
        )));
        Self {
            configure: all.clone(),
            write: all.clone(),
            read: all,
        }
    }

    /// Whether the user may declare or delete `resource`.
    pub fn can_configure(&self, resource: &str) -> bool {
        self.configure.allows(resource)
    }

    /// Whether the user may publish to, or bind into, `resource`.
    pub fn can_write(&self, resource: &str) -> bool {
        self.write.allows(resource)
    }

    /// Whether the user may consume from, purge, or bind from `resource`.
    pub fn can_read(&self, resource: &str) -> bool {
        self.read.allows(resource)
    }

    /// The `(configure, write, read)` source patterns, for definitions export and the
    /// management API.
    pub fn patterns(&self) -> (&str, &str, &str) {
        (
            self.configure.pattern(),
            self.write.pattern(),
            self.read.pattern(),
        )
    }
}

impl PartialEq for Permissions {
    /// Equal when the source patterns are, so re-applying the same permissions is a no-op.
    fn eq(&self, other: &Self) -> bool {
        self.patterns() == other.patterns()
    }
}

impl Eq for Permissions {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// From RabbitMQ's "Credentials and Passwords" guide; verified to be
    /// base64(salt ++ sha256(salt ++ "test12")).
    const RABBIT_DOC_HASH: &str = "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR";

    #[test]
    fn rabbitmq_documentation_vector() {
        assert!(check_password(RABBIT_DOC_HASH, "test12"));
        assert!(!check_password(RABBIT_DOC_HASH, "test13"));
        assert!(!check_password(RABBIT_DOC_HASH, ""));
        assert!(!check_password(RABBIT_DOC_HASH, "test12 "));
    }

    #[test]
    fn hash_layout_matches_rabbitmq() {
        let hash = hash_password("guest");
        let raw = BASE64
            .decode(&hash)
            .expect("hash_password emits valid base64");
        assert_eq!(raw.len(), 36);
        let expected = salted_digest(&raw[..4], "guest");
        assert_eq!(&raw[4..], &expected);
        assert_eq!(hash.len(), 48);
    }

    #[test]
    fn hashes_are_salted() {
        let a = hash_password("same");
        let b = hash_password("same");
        let c = hash_password("same");
        // Three 32-bit salts colliding is a 2^-64 event.
        assert!(a != b || b != c);
        assert!(check_password(&a, "same") && check_password(&b, "same"));
    }

    #[test]
    fn malformed_hashes_never_match() {
        for bad in [
            "",
            "not base64!",
            "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2PO",
            "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR==",
            "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV",
            "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2PORAAAA",
            "AAAA",
        ] {
            assert!(!check_password(bad, "test12"), "{bad:?}");
            assert!(!check_password(bad, ""), "{bad:?}");
        }
    }

    #[test]
    fn unicode_passwords_hash_as_utf8() {
        let h = hash_password("pässwörd ✓");
        assert!(check_password(&h, "pässwörd ✓"));
        assert!(!check_password(&h, "password ✓"));
    }

    #[test]
    fn constant_time_eq_basics() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn plain_responses() {
        let ok = |u: &str, p: &str| Some((u.to_owned(), p.to_owned()));
        assert_eq!(parse_plain(b"\0guest\0guest"), ok("guest", "guest"));
        assert_eq!(parse_plain(b"admin\0guest\0secret"), ok("guest", "secret"));
        assert_eq!(parse_plain(b"\0user\0"), ok("user", ""));
        assert_eq!(parse_plain(b"\0\0pw"), ok("", "pw"));
        assert_eq!(parse_plain("\0jöhn\0pä ss".as_bytes()), ok("jöhn", "pä ss"));
        assert_eq!(parse_plain(b""), None);
        assert_eq!(parse_plain(b"guest"), None);
        assert_eq!(parse_plain(b"guest\0guest"), None);
        assert_eq!(parse_plain(b"\0guest"), None);
        assert_eq!(parse_plain(b"\0guest\0pass\0"), None);
        assert_eq!(parse_plain(b"\0guest\0pa\0ss"), None);
        assert_eq!(parse_plain(b"\0gu\xffest\0pass"), None);
        assert_eq!(parse_plain(b"\0guest\0pa\xc3"), None);
    }

    /// Encodes a table body the way clients do for AMQPLAIN.
    fn amqplain(entries: &[(&[u8], u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, kind, value) in entries {
            out.push(u8::try_from(key.len()).expect("test keys are short"));
            out.extend_from_slice(key);
            out.push(*kind);
            match kind {
                b'S' | b'x' | b'A' | b'F' => {
                    let len = u32::try_from(value.len()).expect("test values are short");
                    out.extend_from_slice(&len.to_be_bytes());
                }
                b's' => out.push(u8::try_from(value.len()).expect("test values are short")),
                _ => {}
            }
            out.extend_from_slice(value);
        }
        out
    }

    #[test]
    fn amqplain_long_and_short_strings() {
        let ok = Some(("guest".to_owned(), "secret".to_owned()));
        let long = amqplain(&[(b"LOGIN", b'S', b"guest"), (b"PASSWORD", b'S', b"secret")]);
        assert_eq!(parse_amqplain(&long), ok);
        let short = amqplain(&[(b"LOGIN", b's', b"guest"), (b"PASSWORD", b's', b"secret")]);
        assert_eq!(parse_amqplain(&short), ok);
        let reversed = amqplain(&[(b"PASSWORD", b'S', b"secret"), (b"LOGIN", b's', b"guest")]);
        assert_eq!(parse_amqplain(&reversed), ok);
        let empty_pw = amqplain(&[(b"LOGIN", b'S', b"guest"), (b"PASSWORD", b'S', b"")]);
        assert_eq!(
            parse_amqplain(&empty_pw),
            Some(("guest".to_owned(), String::new()))
        );
    }

    #[test]
    fn amqplain_literal_bytes() {
        // As py-amqp sends it: table body with long strings.
        let bytes = b"\x05LOGINS\x00\x00\x00\x05guest\x08PASSWORDS\x00\x00\x00\x05guest";
        assert_eq!(
            parse_amqplain(bytes),
            Some(("guest".to_owned(), "guest".to_owned()))
        );
    }

    #[test]
    fn amqplain_skips_other_fields_and_keeps_first_occurrence() {
        let t = amqplain(&[
            (b"flag", b't', &[1]),
            (b"LOGIN", b'S', b"first"),
            (b"n", b'I', &[0, 0, 0, 7]),
            (b"d", b'D', &[2, 0, 0, 0, 1]),
            (b"v", b'V', &[]),
            (b"ts", b'T', &[0; 8]),
            (b"bin", b'x', b"\0\0"),
            (b"nested", b'F', &[]),
            (b"LOGIN", b'S', b"second"),
            (b"PASSWORD", b'S', b"pw"),
            (b"u16", b'u', &[0, 1]),
        ]);
        assert_eq!(
            parse_amqplain(&t),
            Some(("first".to_owned(), "pw".to_owned()))
        );
    }

    #[test]
    fn amqplain_rejects_malformed() {
        let good = amqplain(&[(b"LOGIN", b'S', b"guest"), (b"PASSWORD", b'S', b"guest")]);
        // Every strict prefix is truncated somewhere, except the one ending right after LOGIN,
        // which lacks PASSWORD.
        for cut in 0..good.len() {
            assert_eq!(parse_amqplain(&good[..cut]), None, "cut at {cut}");
        }
        // With the 4-byte length prefix, which the response must not carry.
        let mut prefixed = u32::try_from(good.len())
            .expect("short")
            .to_be_bytes()
            .to_vec();
        prefixed.extend_from_slice(&good);
        assert_eq!(parse_amqplain(&prefixed), None);
        // Missing keys, wrong value types, unknown type tags, bad UTF-8.
        assert_eq!(
            parse_amqplain(&amqplain(&[(b"LOGIN", b'S', b"guest")])),
            None
        );
        assert_eq!(
            parse_amqplain(&amqplain(&[(b"PASSWORD", b'S', b"guest")])),
            None
        );
        assert_eq!(
            parse_amqplain(&amqplain(&[
                (b"LOGIN", b'I', &[0, 0, 0, 1]),
                (b"PASSWORD", b'S', b"guest")
            ])),
            None
        );
        assert_eq!(
            parse_amqplain(&amqplain(&[
                (b"LOGIN", b'S', b"guest"),
                (b"PASSWORD", b'x', b"guest")
            ])),
            None
        );
        assert_eq!(
            parse_amqplain(&amqplain(&[
                (b"LOGIN", b'S', b"guest"),
                (b"PASSWORD", b'S', b"guest"),
                (b"odd", b'Z', b"")
            ])),
            None
        );
        assert_eq!(
            parse_amqplain(&amqplain(&[
                (b"LOGIN", b'S', b"gu\xffest"),
                (b"PASSWORD", b'S', b"guest")
            ])),
            None
        );
        // Key names are case-sensitive.
        assert_eq!(
            parse_amqplain(&amqplain(&[
                (b"login", b'S', b"guest"),
                (b"PASSWORD", b'S', b"guest")
            ])),
            None
        );
        // A length that runs past the end must not be trusted.
        assert_eq!(parse_amqplain(b"\x05LOGINS\xff\xff\xff\xffguest"), None);
        assert_eq!(parse_amqplain(b""), None);
    }

    #[test]
    fn permissions_full_and_none() {
        let full = Permissions::full();
        assert_eq!(full.patterns(), (".*", ".*", ".*"));
        for r in ["", "amq.default", "q1", "anything at all"] {
            assert!(full.can_configure(r) && full.can_write(r) && full.can_read(r));
        }
        let none = Permissions::new("", "", "").expect("empty patterns are valid");
        assert_eq!(none.patterns(), ("", "", ""));
        for r in ["", "amq.default", "q1"] {
            assert!(!none.can_configure(r) && !none.can_write(r) && !none.can_read(r));
        }
    }

    #[test]
    fn permissions_are_unanchored_searches() {
        let p = Permissions::new("^tmp-", "orders", "^(q1|q2)$").expect("valid patterns");
        assert!(p.can_configure("tmp-123"));
        assert!(!p.can_configure("x-tmp-123"));
        assert!(p.can_write("orders"));
        assert!(p.can_write("eu.orders.v2"));
        assert!(!p.can_write("order"));
        assert!(p.can_read("q1") && p.can_read("q2"));
        assert!(!p.can_read("q12"));
        assert_eq!(p.patterns(), ("^tmp-", "orders", "^(q1|q2)$"));
        let users_own = Permissions::new("^user-.*", "^user-.*", "^amq\\.").expect("valid");
        assert!(users_own.can_read("amq.topic"));
        assert!(!users_own.can_read("amqXtopic"));
    }

    #[test]
    fn permissions_reject_invalid_regexes() {
        assert!(Permissions::new("(", ".*", ".*").is_err());
        assert!(Permissions::new(".*", "[", ".*").is_err());
        assert!(Permissions::new(".*", ".*", "a{2,1}").is_err());
    }

    #[test]
    fn permissions_equality_follows_patterns() {
        let a = Permissions::new(".*", "", "^q$").expect("valid");
        let b = a.clone();
        assert_eq!(a, b);
        assert_ne!(a, Permissions::full());
        assert_eq!(
            Permissions::full(),
            Permissions::new(".*", ".*", ".*").expect("valid")
        );
    }

    proptest! {
        #[test]
        fn plain_never_panics(bytes in any::<Vec<u8>>()) {
            let _ = parse_plain(&bytes);
        }

        #[test]
        fn amqplain_never_panics(bytes in any::<Vec<u8>>()) {
            let _ = parse_amqplain(&bytes);
        }

        #[test]
        fn amqplain_never_panics_on_near_valid_input(
            user in ".{0,20}",
            pass in ".{0,20}",
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = amqplain(&[
                (b"LOGIN", b'S', user.as_bytes()),
                (b"PASSWORD", b'S', pass.as_bytes()),
            ]);
            prop_assert_eq!(parse_amqplain(&bytes), Some((user.clone(), pass.clone())));
            for (i, b) in flips {
                let at = i.index(bytes.len());
                bytes[at] = b;
            }
            let len = cut.index(bytes.len() + 1);
            let _ = parse_amqplain(&bytes[..len]);
        }

        #[test]
        fn plain_round_trip(
            authz in "[^\u{0}]{0,8}",
            user in "[^\u{0}]{0,20}",
            pass in "[^\u{0}]{0,20}",
        ) {
            let response = format!("{authz}\0{user}\0{pass}");
            prop_assert_eq!(parse_plain(response.as_bytes()), Some((user, pass)));
        }

        #[test]
        fn hash_then_check_round_trips(password in ".{0,40}", other in ".{0,40}") {
            let hash = hash_password(&password);
            prop_assert!(check_password(&hash, &password));
            prop_assert_eq!(check_password(&hash, &other), other == password);
        }

        #[test]
        fn check_password_never_panics(hash in any::<String>(), password in any::<String>()) {
            let _ = check_password(&hash, &password);
        }
    }
}

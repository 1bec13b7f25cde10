//! Secrets in the configuration: masked wherever the config is shown (`/config`, logs,
//! error messages), as Loki masks them.
//!
//! - [`Secret`] holds a credential (`secret_access_key`, `session_token`). It serializes, and
//!   prints with `{:?}`, as `********` (empty stays empty), like Loki's `flagext.Secret`.
//! - [`SecretUrl`] holds a URL that may carry `user:password@` (`storage_config.aws.s3`,
//!   `dynamodb_url`). It serializes and prints with the password replaced by `xxxxx`, as Go's
//!   `url.Redacted` does in Loki's `/config`.
//! - [`redact_value`] masks the blocks Skald keeps as raw YAML (`ruler`,
//!   `query_range`, ...): the values of the keys Loki types as secrets, and URL passwords.
//!
//! The clear text is reachable only through `expose()`, at the few places that sign requests.

use std::borrow::Cow;

use serde::{Deserialize, Serialize, Serializer};

/// `scheme://user:password@host/...` with the password shown as `xxxxx` (one routine, in
/// `skald-chunk-store`, which also reads such URLs).
pub use skald_chunk_store::redact_url;

/// What a set secret shows as (Loki's `flagext.Secret`).
pub const MASK: &str = "********";

/// Keys whose values Loki types as secrets (`flagext.Secret`) in the blocks it knows.
const SECRET_KEYS: &[&str] = &[
    "secret_access_key",
    "session_token",
    "password",
    "secret_key",
    "access_key_secret",
    "client_secret",
    "application_credential_secret",
    "account_key",
    "connection_string",
    "service_account",
    "sas_token",
    "bearer_token",
    "credentials",
    "kms_encryption_context",
    "key",
];

/// A credential: deserialized as a plain string, shown as `********`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The clear text, for signing requests; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no secret is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn shown(&self) -> &'static str {
        if self.is_empty() {
            ""
        } else {
            MASK
        }
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.shown())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.shown())
    }
}

/// A URL that may hold `user:password@`: shown with the password as `xxxxx`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL with its password, for building clients; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no URL is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The URL with its password masked, for messages.
    pub fn redacted(&self) -> Cow<'_, str> {
        redact_url(&self.0)
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Masks, in place, the values of secret keys and the passwords of URLs anywhere in `v`.
pub fn redact_value(v: &mut serde_yaml::Value) {
    use serde_yaml::Value;
    match v {
        Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                let secret_key = k.as_str().is_some_and(|k| SECRET_KEYS.contains(&k));
                match val {
                    Value::String(s) if secret_key && !s.is_empty() => *s = MASK.to_string(),
                    Value::Number(_) if secret_key => *val = Value::String(MASK.to_string()),
                    _ => redact_value(val),
                }
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(redact_value),
        Value::String(s) => {
            if let Cow::Owned(r) = redact_url(s) {
                *s = r;
            }
        }
        Value::Tagged(t) => redact_value(&mut t.value),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Masks every occurrence of the given secrets in `text` (for messages built by libraries
/// that may quote a URL or a credential back).
pub fn scrub<'a>(text: &'a str, secrets: &[&str]) -> Cow<'a, str> {
    let mut out = Cow::Borrowed(text);
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        if out.contains(*s) {
            out = Cow::Owned(out.replace(*s, MASK));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_serialize_masked() {
        let s: Secret = serde_yaml::from_str("Sup3rS3cret").unwrap();
        assert_eq!(s.expose(), "Sup3rS3cret");
        assert_eq!(serde_yaml::to_string(&s).unwrap().trim(), "'********'");
        assert_eq!(format!("{s:?}"), "\"********\"");
        let empty = Secret::default();
        assert_eq!(serde_json::to_string(&empty).unwrap(), "\"\"");
    }

    #[test]
    fn url_passwords_are_masked_like_go() {
        assert_eq!(
            redact_url("s3://AKID:Sup3r@127.0.0.1:8333/bucket"),
            "s3://AKID:xxxxx@127.0.0.1:8333/bucket"
        );
        let u: SecretUrl = serde_yaml::from_str("s3://k:Sup3r@h/b").unwrap();
        assert_eq!(u.expose(), "s3://k:Sup3r@h/b");
        assert!(!format!("{u:?}{u}").contains("Sup3r"));
        assert!(!serde_json::to_string(&u).unwrap().contains("Sup3r"));
    }

    #[test]
    fn raw_blocks_are_masked() {
        let mut v: serde_yaml::Value = serde_yaml::from_str(
            "ruler:\n  storage:\n    s3:\n      secret_access_key: Sup3r\n      access_key_id: AK\n      endpoint: http://u:Sup3r@h\n  list: [ 'redis://:Sup3r@h:6379' ]\n  password: ''\n",
        )
        .unwrap();
        redact_value(&mut v);
        let text = serde_yaml::to_string(&v).unwrap();
        assert!(!text.contains("Sup3r"), "{text}");
        assert!(text.contains("access_key_id: AK"), "{text}");
        assert!(text.contains("secret_access_key: '********'"), "{text}");
        assert!(text.contains("password: ''"), "{text}");
    }

    #[test]
    fn scrub_replaces_secrets() {
        assert_eq!(scrub("bad url s3://k:Sup3r@h", &["Sup3r", ""]), "bad url s3://k:********@h");
    }
}

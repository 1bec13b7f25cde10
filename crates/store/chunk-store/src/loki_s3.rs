//! Loki's `storage_config.aws` S3 keys ([`LokiS3Settings`]) read into an [`S3Config`], and
//! [`redact_url`], which masks the password of a URL for messages.
//!
//! The server keeps the serde block (with its secret types) and hands the plain values here;
//! how Loki's `s3://` URL forms, `bucketnames`, `endpoint` and the credential keys combine is
//! known in this crate only.

use std::borrow::Cow;

use crate::store::{S3Config, S3Credentials};

/// What the password of a URL shows as (Go's `url.URL.Redacted`).
pub const URL_PASSWORD_MASK: &str = "xxxxx";

/// `scheme://user:password@host/...` with the password replaced by `xxxxx`; anything else
/// unchanged.
///
/// The userinfo ends at the last `@`: an unescaped `/` or `@` in a secret stays inside it, as
/// [`S3Config::from_loki`] and `skald-index`'s `dynamodb_url` reading take such URLs.
pub fn redact_url(s: &str) -> Cow<'_, str> {
    let Some(scheme_end) = s.find("://") else { return Cow::Borrowed(s) };
    let rest_start = scheme_end + 3;
    let rest = &s[rest_start..];
    let Some(at) = rest.rfind('@') else { return Cow::Borrowed(s) };
    let userinfo = &rest[..at];
    let Some(colon) = userinfo.find(':') else { return Cow::Borrowed(s) };
    let mut out = String::with_capacity(s.len());
    out.push_str(&s[..rest_start]);
    out.push_str(&userinfo[..colon]);
    out.push(':');
    out.push_str(URL_PASSWORD_MASK);
    out.push_str(&rest[at..]);
    Cow::Owned(out)
}

/// Loki's `storage_config.aws` S3 keys, as plain values (empty = unset). `{:?}` shows neither
/// the secrets nor the URL's password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LokiS3Settings {
    /// `s3`: `s3://region/bucket`, `s3://key:secret@region/bucket` or
    /// `s3://key:secret@host:port/bucket` (a host with a dot or a port is an endpoint reached
    /// over HTTP); key and secret URL-escaped.
    pub s3: String,
    /// `bucketnames`: the bucket (instead of the URL's); one bucket.
    pub bucketnames: String,
    /// `endpoint`: `host:port` or a URL; `https` unless `insecure` or the URL says `http`.
    pub endpoint: String,
    /// `region`.
    pub region: String,
    /// `access_key_id` (else the URL's, else `AWS_ACCESS_KEY_ID`).
    pub access_key_id: String,
    /// `secret_access_key`.
    pub secret_access_key: String,
    /// `session_token`.
    pub session_token: String,
    /// `insecure`: plain HTTP to `endpoint`.
    pub insecure: bool,
    /// `s3forcepathstyle`: path-style requests (`endpoint/bucket/key`).
    pub s3forcepathstyle: bool,
}

impl std::fmt::Debug for LokiS3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LokiS3Settings")
            .field("s3", &redact_url(&self.s3))
            .field("bucketnames", &self.bucketnames)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("insecure", &self.insecure)
            .field("s3forcepathstyle", &self.s3forcepathstyle)
            .finish_non_exhaustive()
    }
}

/// Why Loki's `storage_config.aws` keys name no usable bucket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3SettingsError {
    /// `s3` is not an `s3://` URL.
    #[error("storage_config.aws.s3 `{url}` must start with s3://")]
    NotS3Url {
        /// The URL, its password masked.
        url: String,
    },
    /// The URL's key or secret is not UTF-8 once unescaped.
    #[error("storage_config.aws.s3: credentials are not valid UTF-8")]
    Credentials(#[source] std::str::Utf8Error),
    /// `bucketnames` lists more than one bucket.
    #[error("storage_config.aws.bucketnames: several buckets are not supported yet; name one")]
    SeveralBuckets,
    /// Neither the URL nor `bucketnames` names a bucket.
    #[error("storage_config.aws names no bucket (s3: s3://<region>/<bucket>, or bucketnames)")]
    NoBucket,
}

fn unescape(s: &str) -> Result<String, S3SettingsError> {
    Ok(percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map_err(S3SettingsError::Credentials)?
        .into_owned())
}

impl S3Config {
    /// The bucket and how to reach it, from Loki's URL and the explicit keys (which win). The
    /// region is `region`, else the URL's, else `AWS_REGION`, else `us-east-1`.
    pub fn from_loki(s: &LokiS3Settings) -> Result<S3Config, S3SettingsError> {
        let mut out = S3Config { region: "us-east-1".to_string(), ..Default::default() };
        let mut region_from_url = false;
        if !s.s3.is_empty() {
            let rest = s
                .s3
                .strip_prefix("s3://")
                .ok_or_else(|| S3SettingsError::NotS3Url { url: redact_url(&s.s3).into_owned() })?;
            let (userinfo, hostpath) = match rest.rsplit_once('@') {
                Some((u, h)) => (Some(u), h),
                None => (None, rest),
            };
            let (host, bucket) = hostpath.split_once('/').unwrap_or((hostpath, ""));
            if let Some(u) = userinfo {
                let (k, secret) = u.split_once(':').unwrap_or((u, ""));
                out.credentials = Some(S3Credentials {
                    access_key_id: unescape(k)?,
                    secret_access_key: unescape(secret)?,
                    session_token: None,
                });
            }
            if host.contains('.') || host.contains(':') {
                out.endpoint = Some(format!("http://{host}"));
                out.force_path_style = true;
            } else if !host.is_empty() {
                out.region = host.to_string();
                region_from_url = true;
            }
            out.bucket = bucket.trim_matches('/').to_string();
        }
        if !s.bucketnames.is_empty() {
            let names: Vec<&str> =
                s.bucketnames.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            if names.len() > 1 {
                return Err(S3SettingsError::SeveralBuckets);
            }
            out.bucket = names.first().map(|s| s.to_string()).unwrap_or_default();
        }
        if out.bucket.is_empty() {
            return Err(S3SettingsError::NoBucket);
        }
        if !s.endpoint.is_empty() {
            out.endpoint = Some(if s.endpoint.contains("://") {
                s.endpoint.clone()
            } else if s.insecure {
                format!("http://{}", s.endpoint)
            } else {
                format!("https://{}", s.endpoint)
            });
        }
        if !s.region.is_empty() {
            out.region = s.region.clone();
        } else if !region_from_url {
            if let Ok(r) = std::env::var("AWS_REGION") {
                out.region = r;
            }
        }
        if s.s3forcepathstyle {
            out.force_path_style = true;
        }
        if !s.access_key_id.is_empty() {
            out.credentials = Some(S3Credentials {
                access_key_id: s.access_key_id.clone(),
                secret_access_key: s.secret_access_key.clone(),
                session_token: (!s.session_token.is_empty()).then(|| s.session_token.clone()),
            });
        }
        Ok(out)
    }

    /// The secrets this config holds (secret key, session token), to mask in messages of
    /// libraries that may quote them back.
    pub fn secrets(&self) -> Vec<&str> {
        self.credentials
            .iter()
            .flat_map(|c| [c.secret_access_key.as_str(), c.session_token.as_deref().unwrap_or("")])
            .filter(|s| !s.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s3: &str) -> LokiS3Settings {
        LokiS3Settings { s3: s3.to_string(), ..Default::default() }
    }

    #[test]
    fn loki_s3_urls() {
        let c = S3Config::from_loki(&url("s3://ap-northeast-1/logs")).unwrap();
        assert_eq!(
            (c.region.as_str(), c.bucket.as_str(), c.endpoint.clone()),
            ("ap-northeast-1", "logs", None)
        );
        let c = S3Config::from_loki(&url("s3://AK%2B:S%40K@127.0.0.1:8333/logs")).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert!(c.force_path_style);
        assert_eq!(c.secrets(), ["S@K"]);
        let cred = c.credentials.unwrap();
        assert_eq!((cred.access_key_id.as_str(), cred.secret_access_key.as_str()), ("AK+", "S@K"));
        let c = S3Config::from_loki(&LokiS3Settings {
            bucketnames: "b".into(),
            endpoint: "minio:9000".into(),
            insecure: true,
            region: "eu-west-1".into(),
            access_key_id: "a".into(),
            secret_access_key: "s".into(),
            s3forcepathstyle: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://minio:9000"));
        assert_eq!((c.region.as_str(), c.bucket.as_str()), ("eu-west-1", "b"));
        assert!(c.force_path_style);
        let c = S3Config::from_loki(&LokiS3Settings {
            bucketnames: "b".into(),
            endpoint: "s3.example.com".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("https://s3.example.com"));
        assert!(S3Config::from_loki(&url("http://x/b")).is_err());
        let region_only = LokiS3Settings { region: "x".into(), ..Default::default() };
        assert!(S3Config::from_loki(&region_only).unwrap_err().to_string().contains("no bucket"));
        let two = LokiS3Settings { bucketnames: "a,b".into(), ..Default::default() };
        assert!(S3Config::from_loki(&two).unwrap_err().to_string().contains("several"));
    }

    #[test]
    fn secrets_stay_out_of_messages() {
        let err = S3Config::from_loki(&url("http://k:Sup3r@h/b")).unwrap_err().to_string();
        assert_eq!(err, "storage_config.aws.s3 `http://k:xxxxx@h/b` must start with s3://");
        let s = LokiS3Settings {
            s3: "s3://k:Sup3r@h/b".into(),
            secret_access_key: "Sup3r".into(),
            session_token: "Sup3r".into(),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("Sup3r"));
        let err = S3Config::from_loki(&url("s3://k:%ff@h/b")).unwrap_err().to_string();
        assert_eq!(err, "storage_config.aws.s3: credentials are not valid UTF-8");
    }

    #[test]
    fn url_passwords_are_masked_like_go() {
        assert_eq!(
            redact_url("s3://AKID:Sup3r@127.0.0.1:8333/bucket"),
            "s3://AKID:xxxxx@127.0.0.1:8333/bucket"
        );
        assert_eq!(redact_url("dynamodb://k:s%40c@host:8000"), "dynamodb://k:xxxxx@host:8000");
        // an unescaped `@` or `/` in the password is still covered
        assert_eq!(redact_url("s3://k:a@b/c@host/bucket"), "s3://k:xxxxx@host/bucket");
        assert_eq!(redact_url("s3://eu-west-1/bucket"), "s3://eu-west-1/bucket");
        assert_eq!(redact_url("s3://user@host/bucket"), "s3://user@host/bucket");
        assert_eq!(redact_url("plain text"), "plain text");
    }
}

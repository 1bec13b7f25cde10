//! Credentials from a web identity token (EKS's IAM roles for service accounts, "IRSA"): the
//! pod's projected token (`AWS_WEB_IDENTITY_TOKEN_FILE`) is exchanged for temporary
//! credentials of `AWS_ROLE_ARN` with STS `AssumeRoleWithWebIdentity`, as the AWS SDKs'
//! default chain does. The SDK's identity cache keeps them and asks again 2.5 to 5 minutes
//! before they expire (`DynamoClientConfig::connect` sets the margin, the SDK jitters it); the token file is read anew each time,
//! since the kubelet rotates it.
//!
//! STS is reached at `AWS_ENDPOINT_URL_STS` when set (the SDKs' variable), else at the
//! regional endpoint `https://sts.<region>.amazonaws.com`. The call is unsigned (the token is
//! the proof), a form POST answered in XML.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials};
use aws_sdk_dynamodb::config::Credentials;

/// Where the token and the role come from, and where STS is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebIdentity {
    /// `AWS_WEB_IDENTITY_TOKEN_FILE`.
    pub token_file: String,
    /// `AWS_ROLE_ARN`.
    pub role_arn: String,
    /// `AWS_ROLE_SESSION_NAME`, else `skald-<unix seconds>`.
    pub session_name: String,
    /// The STS URL.
    pub sts_url: String,
}

impl WebIdentity {
    /// From the environment, when `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN` are both
    /// set; `region` picks the regional STS endpoint.
    pub fn from_env(region: &str) -> Option<WebIdentity> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let token_file = var("AWS_WEB_IDENTITY_TOKEN_FILE")?;
        let role_arn = var("AWS_ROLE_ARN")?;
        let session_name = var("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| {
            let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            format!("skald-{secs}")
        });
        let sts_url = var("AWS_ENDPOINT_URL_STS")
            .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
        Some(WebIdentity { token_file, role_arn, session_name, sts_url })
    }
}

/// The provider the DynamoDB client asks for credentials.
#[derive(Debug)]
pub struct WebIdentityProvider {
    identity: WebIdentity,
    http: reqwest::Client,
}

impl WebIdentityProvider {
    /// A provider for `identity`.
    pub fn new(identity: WebIdentity) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        WebIdentityProvider { identity, http }
    }

    async fn assume_role(&self) -> Result<Credentials, CredentialsError> {
        let id = &self.identity;
        let token = tokio::fs::read_to_string(&id.token_file).await.map_err(|e| {
            CredentialsError::invalid_configuration(format!(
                "cannot read AWS_WEB_IDENTITY_TOKEN_FILE {}: {e}",
                id.token_file
            ))
        })?;
        let form: String = percent_encoding_form(&[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", &id.role_arn),
            ("RoleSessionName", &id.session_name),
            ("WebIdentityToken", token.trim()),
        ]);
        let resp = self
            .http
            .post(&id.sts_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| {
                CredentialsError::provider_error(format!("cannot reach STS at {}: {e}", id.sts_url))
            })?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| {
            CredentialsError::provider_error(format!("cannot read STS's answer: {e}"))
        })?;
        if !status.is_success() {
            let code = xml_text(&body, "Code").unwrap_or_default();
            let message = xml_text(&body, "Message").unwrap_or_default();
            return Err(CredentialsError::provider_error(format!(
                "STS AssumeRoleWithWebIdentity for {} answered {status}: {code} {message}",
                id.role_arn
            )));
        }
        parse_credentials(&body).map_err(CredentialsError::unhandled)
    }
}

impl ProvideCredentials for WebIdentityProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.assume_role())
    }
}

/// `application/x-www-form-urlencoded` of `pairs`.
fn percent_encoding_form(pairs: &[(&str, &str)]) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The text of the first `<tag>...</tag>` in `xml`, its five entities decoded.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml.get(start..)?.find(&close)?;
    let raw = xml.get(start..start + len)?.trim();
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// Why STS's answer holds no usable credentials.
#[derive(Debug, thiserror::Error)]
pub enum StsAnswerError {
    /// A field is missing.
    #[error("STS's answer has no {0}")]
    Missing(&'static str),
    /// `Expiration` is not an RFC 3339 time.
    #[error("STS's answer has an Expiration that is not a time: {0}")]
    Expiration(String),
}

/// The credentials in an `AssumeRoleWithWebIdentityResponse`.
fn parse_credentials(xml: &str) -> Result<Credentials, StsAnswerError> {
    let field = |t: &'static str| xml_text(xml, t).ok_or(StsAnswerError::Missing(t));
    let key = field("AccessKeyId")?;
    let secret = field("SecretAccessKey")?;
    let token = field("SessionToken")?;
    let expiration = field("Expiration")?;
    let t = skald_gocompat::time::layout::parse("2006-01-02T15:04:05Z07:00", &expiration)
        .ok_or_else(|| StsAnswerError::Expiration(expiration.clone()))?;
    let secs = u64::try_from(t.secs).map_err(|_| StsAnswerError::Expiration(expiration.clone()))?;
    let expiry = UNIX_EPOCH + Duration::new(secs, t.nsec);
    Ok(Credentials::new(key, secret, Some(token), Some(expiry), "web-identity"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sts_answers_parse() {
        let xml = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <SessionToken>tok/en+=&amp;x</SessionToken>
      <SecretAccessKey>secret</SecretAccessKey>
      <Expiration>2026-12-05T07:10:00.5Z</Expiration>
      <AccessKeyId>ASIAKEY</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#;
        let c = parse_credentials(xml).unwrap();
        assert_eq!(c.access_key_id(), "ASIAKEY");
        assert_eq!(c.secret_access_key(), "secret");
        assert_eq!(c.session_token(), Some("tok/en+=&x"));
        let exp = c.expiry().unwrap().duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(exp, Duration::new(1_796_454_600, 500_000_000));
        assert!(matches!(
            parse_credentials("<ErrorResponse/>"),
            Err(StsAnswerError::Missing("AccessKeyId"))
        ));
        assert_eq!(percent_encoding_form(&[("a b", "x/y=z")]), "a%20b=x%2Fy%3Dz");
    }
}

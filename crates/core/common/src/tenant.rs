//! Tenant ids as Loki (dskit) accepts them in the `X-Scope-OrgID` header.
//!
//! Rules: characters `a-z A-Z 0-9 ! - _ . * ' ( )`, at most 150 bytes, and not `.` or `..`.
//! A header may name several tenants separated by `|` (multi-tenant reads). Each part may carry
//! metadata after a `:` (`tenant:key=value`), which is stripped and not validated, as dskit does.
//!
//! One deliberate difference: a part that is empty once its metadata is stripped (`:x`, `a|:x`)
//! is refused ([`TenantError::Empty`]). Loki accepts `X-Scope-OrgID: :x` on a push as the empty
//! tenant, whose data no query can then read (its queries answer 500 "empty tenant is not
//! allowed"); Skald refuses it at the edge so that no empty tenant ever reaches the WAL or a
//! storage path.

/// Loki's response body (without the trailing newline) when `X-Scope-OrgID` is missing and
/// `auth_enabled` is true. The status is 401.
pub const NO_ORG_ID_MSG: &str = "no org id";

/// The header that carries the tenant id.
pub const ORG_ID_HEADER: &str = "X-Scope-OrgID";

/// The tenant Loki uses when `auth_enabled` is false.
pub const DEFAULT_TENANT: &str = "fake";

/// The longest tenant id accepted, in bytes.
pub const MAX_TENANT_ID_LENGTH: usize = 150;

/// The tenant a request acts for: what the server's tenant layer puts into the request's
/// extensions once it has checked `X-Scope-OrgID` (one id, or several joined by `|` for a
/// multi-tenant query). Every service's routes read it from there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantId(pub String);

const TENANT_SEPARATOR: char = '|';
const METADATA_SEPARATOR: char = ':';

/// Why a tenant id (or a list of them) was rejected. Messages are dskit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// No tenant id was given.
    #[error("no org id")]
    NoOrgId,
    /// A character outside the allowed set.
    #[error("tenant ID '{tenant_id}' contains unsupported character '{character}'")]
    UnsupportedCharacter {
        /// The offending tenant id.
        tenant_id: String,
        /// The first unsupported byte, shown as Go's `%c` shows a byte.
        character: char,
    },
    /// Longer than [`MAX_TENANT_ID_LENGTH`].
    #[error("tenant ID is too long: max 150 characters")]
    TooLong,
    /// `.` or `..`.
    #[error("tenant ID is '.' or '..'")]
    Unsafe,
    /// A tenant id that is empty once its `:` metadata is stripped (`:x`). Not a dskit error:
    /// Loki accepts such a push as the empty tenant (see the module docs).
    #[error("tenant ID is empty")]
    Empty,
    /// Several different tenants where exactly one is required.
    #[error("multiple org IDs present")]
    TooManyOrgIds,
}

fn is_valid_tenant_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'!' | b'-' | b'_' | b'.' | b'*' | b'\'' | b'(' | b')')
}

/// Checks one tenant id against dskit's rules (character set first, then length, then
/// `.`/`..`), returning the first violation.
pub fn validate_tenant_id(id: &str) -> Result<(), TenantError> {
    if let Some(&b) = id.as_bytes().iter().find(|b| !is_valid_tenant_byte(**b)) {
        return Err(TenantError::UnsupportedCharacter {
            tenant_id: id.to_string(),
            character: char::from(b),
        });
    }
    if id.len() > MAX_TENANT_ID_LENGTH {
        return Err(TenantError::TooLong);
    }
    if id == "." || id == ".." {
        return Err(TenantError::Unsafe);
    }
    Ok(())
}

fn trim_metadata(org_id: &str) -> &str {
    match org_id.find(METADATA_SEPARATOR) {
        Some(i) => &org_id[..i],
        None => org_id,
    }
}

/// Checks one tenant id as it will be used (a WAL record, a storage path): dskit's rules and
/// not empty. What every path that takes a tenant id from outside (a header, a gRPC call, a
/// WAL record) checks.
pub fn validate_stored_tenant_id(id: &str) -> Result<(), TenantError> {
    if id.is_empty() {
        return Err(TenantError::Empty);
    }
    validate_tenant_id(id)
}

/// Resolves a header value that must name exactly one tenant (the write path and most reads).
/// `t1|t1` is accepted as `t1`; `t1|t2` is [`TenantError::TooManyOrgIds`]; an empty value is
/// [`TenantError::NoOrgId`]. Metadata after `:` is stripped.
pub fn parse_tenant_id(org_id: &str) -> Result<String, TenantError> {
    if org_id.is_empty() {
        return Err(TenantError::NoOrgId);
    }
    let mut parts = org_id.split(TENANT_SEPARATOR);
    let first = trim_metadata(parts.next().unwrap_or_default());
    validate_stored_tenant_id(first)?;
    for p in parts {
        let p = trim_metadata(p);
        validate_stored_tenant_id(p)?;
        if p != first {
            return Err(TenantError::TooManyOrgIds);
        }
    }
    Ok(first.to_string())
}

/// Resolves a header value naming one or more tenants separated by `|` (multi-tenant reads):
/// every part is validated, and the result is sorted and de-duplicated. Metadata after `:` is
/// stripped. An empty value is [`TenantError::NoOrgId`].
pub fn parse_tenant_ids(org_id: &str) -> Result<Vec<String>, TenantError> {
    if org_id.is_empty() {
        return Err(TenantError::NoOrgId);
    }
    let mut ids = Vec::new();
    for part in org_id.split(TENANT_SEPARATOR) {
        let id = trim_metadata(part);
        validate_stored_tenant_id(id)?;
        ids.push(id.to_string());
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Joins tenant ids with `|`, the inverse of [`parse_tenant_ids`].
pub fn join_tenant_ids(ids: &[String]) -> String {
    ids.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids() {
        for id in ["fake", "tenant-a", "A_b.c*d'e(f)g!", "0", &"x".repeat(150), "..."] {
            assert_eq!(validate_tenant_id(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn invalid_ids_have_dskit_messages() {
        assert_eq!(
            validate_tenant_id("a/b").unwrap_err().to_string(),
            "tenant ID 'a/b' contains unsupported character '/'"
        );
        assert_eq!(
            validate_tenant_id("a b").unwrap_err().to_string(),
            "tenant ID 'a b' contains unsupported character ' '"
        );
        assert_eq!(
            validate_tenant_id(&"x".repeat(151)).unwrap_err().to_string(),
            "tenant ID is too long: max 150 characters"
        );
        assert_eq!(validate_tenant_id(".").unwrap_err().to_string(), "tenant ID is '.' or '..'");
        assert_eq!(validate_tenant_id("..").unwrap_err(), TenantError::Unsafe);
        // an empty part is valid by the character rules, as in dskit
        assert_eq!(validate_tenant_id(""), Ok(()));
        assert!(matches!(
            validate_tenant_id("é"),
            Err(TenantError::UnsupportedCharacter { character: 'Ã', .. })
        ));
        assert_eq!(TenantError::NoOrgId.to_string(), NO_ORG_ID_MSG);
    }

    #[test]
    fn single_and_multi_tenant_parsing() {
        assert_eq!(parse_tenant_id("t1").unwrap(), "t1");
        assert_eq!(parse_tenant_id("t1|t1").unwrap(), "t1");
        assert_eq!(parse_tenant_id("t1:product=k6").unwrap(), "t1");
        assert_eq!(parse_tenant_id("t1|t2").unwrap_err().to_string(), "multiple org IDs present");
        assert_eq!(parse_tenant_id("").unwrap_err().to_string(), "no org id");
        assert_eq!(parse_tenant_ids("b|a|b").unwrap(), vec!["a".to_string(), "b".to_string()]);
        assert_eq!(parse_tenant_ids("a:x=y|c").unwrap(), vec!["a".to_string(), "c".to_string()]);
        assert!(parse_tenant_ids("a|b/c").is_err());
        // an id that is empty once its metadata is stripped is refused (Loki takes it as the
        // empty tenant, whose flushes and queries then fail)
        for header in [":x", ":", "a|:x", ":x|a", "a|"] {
            assert_eq!(parse_tenant_id(header), Err(TenantError::Empty), "{header}");
            assert_eq!(parse_tenant_ids(header), Err(TenantError::Empty), "{header}");
        }
        assert_eq!(TenantError::Empty.to_string(), "tenant ID is empty");
        assert_eq!(validate_stored_tenant_id(""), Err(TenantError::Empty));
        assert_eq!(validate_stored_tenant_id("a"), Ok(()));
        assert!(validate_stored_tenant_id("a/b").is_err());
        assert_eq!(join_tenant_ids(&parse_tenant_ids("b|a").unwrap()), "a|b");
    }
}

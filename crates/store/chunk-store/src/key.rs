//! [`ChunkKey`]: where a chunk lives in the object store, and tenant-id validation.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Checks that `tenant` is safe to use as a path segment: Loki's rules
/// ([`skald_common::tenant::validate_tenant_id`]: characters `[A-Za-z0-9!-_.*'()]`, at most
/// [`MAX_TENANT_ID_LENGTH`](skald_common::tenant::MAX_TENANT_ID_LENGTH) bytes, neither `.` nor
/// `..`), and not empty.
pub fn validate_tenant(tenant: &str) -> Result<()> {
    use skald_common::tenant::{validate_tenant_id, TenantError};
    let result =
        if tenant.is_empty() { Err(TenantError::Empty) } else { validate_tenant_id(tenant) };
    result.map_err(|e| Error::InvalidTenant {
        tenant: tenant.to_string(),
        reason: match e {
            TenantError::Empty | TenantError::NoOrgId => "empty",
            TenantError::TooLong => "longer than 150 characters",
            TenantError::Unsafe => "reserved name",
            TenantError::UnsupportedCharacter { .. } => "unsupported character",
            TenantError::TooManyOrgIds => "several tenants",
        },
    })
}

/// The identity of one stored chunk. Its object path is
/// `<tenant>/chunks/<fingerprint: 16 hex>/<from: hex>-<through: hex>-<checksum: 8 hex>`,
/// lowercase hex, where `from` and `through` are nanosecond timestamps written as their
/// two's-complement `u64` bit pattern without leading zeros.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkKey {
    /// Tenant id.
    pub tenant: String,
    /// Stream fingerprint (`skald_model::fingerprint`).
    pub fingerprint: u64,
    /// First entry's timestamp, ns.
    pub from: i64,
    /// Last entry's timestamp, ns (inclusive).
    pub through: i64,
    /// CRC32C of the chunk's bytes.
    pub checksum: u32,
}

impl ChunkKey {
    /// Builds a key from its parts.
    pub fn new(
        tenant: impl Into<String>,
        fingerprint: u64,
        from: i64,
        through: i64,
        checksum: u32,
    ) -> Self {
        ChunkKey { tenant: tenant.into(), fingerprint, from, through, checksum }
    }

    /// The key of an encoded chunk of the stream with `fingerprint`.
    pub fn for_chunk(
        tenant: impl Into<String>,
        fingerprint: u64,
        chunk: &skald_chunk::EncodedChunk,
    ) -> Self {
        ChunkKey::new(tenant, fingerprint, chunk.from, chunk.through, chunk.checksum)
    }

    /// The object path. Call [`ChunkKey::validate`] first for untrusted tenants;
    /// [`crate::ChunkStore`] implementations do.
    pub fn path(&self) -> String {
        format!(
            "{}/chunks/{:016x}/{:x}-{:x}-{:08x}",
            self.tenant, self.fingerprint, self.from, self.through, self.checksum
        )
    }

    /// Checks the tenant id and that `from <= through`.
    pub fn validate(&self) -> Result<()> {
        validate_tenant(&self.tenant)?;
        if self.from > self.through {
            return Err(Error::InvalidKey { key: self.path(), reason: "from is after through" });
        }
        Ok(())
    }

    /// Parses an object path written by [`ChunkKey::path`]. Only the canonical spelling is
    /// accepted, so a key has exactly one path.
    pub fn parse(path: &str) -> Result<Self> {
        let bad = |reason| Error::InvalidKey { key: path.to_string(), reason };
        let mut parts = path.split('/');
        let (Some(tenant), Some("chunks"), Some(fp), Some(name), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(
                "expected `<tenant>/chunks/<fingerprint>/<from>-<through>-<checksum>`",
            ));
        };
        validate_tenant(tenant)?;
        let hex = |s: &str| u64::from_str_radix(s, 16).ok().filter(|_| !s.starts_with('+'));
        let fingerprint = hex(fp).ok_or_else(|| bad("fingerprint is not hex"))?;
        let mut fields = name.split('-');
        let (Some(from), Some(through), Some(checksum), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad("expected `<from>-<through>-<checksum>`"));
        };
        let from = hex(from).ok_or_else(|| bad("from is not hex"))? as i64;
        let through = hex(through).ok_or_else(|| bad("through is not hex"))? as i64;
        let checksum = hex(checksum)
            .and_then(|c| u32::try_from(c).ok())
            .ok_or_else(|| bad("checksum is not 32-bit hex"))?;
        let key = ChunkKey::new(tenant, fingerprint, from, through, checksum);
        if key.path() != path {
            return Err(bad("not in canonical form"));
        }
        key.validate()?;
        Ok(key)
    }
}

impl fmt::Display for ChunkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

impl FromStr for ChunkKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ChunkKey::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_roundtrip() {
        let k = ChunkKey::new(
            "team-a",
            0xdead_beef,
            1_700_000_000_000_000_000,
            1_700_000_360_000_000_000,
            0xab,
        );
        let p = k.path();
        assert_eq!(p, "team-a/chunks/00000000deadbeef/17979cfe362a0000-17979d5207d61000-000000ab");
        assert_eq!(ChunkKey::parse(&p).unwrap(), k);
        assert_eq!(p.parse::<ChunkKey>().unwrap(), k);
        assert_eq!(k.to_string(), p);
    }

    #[test]
    fn negative_and_extreme_times_roundtrip() {
        for (from, through) in [(-5, -1), (i64::MIN, i64::MAX), (0, 0)] {
            let k = ChunkKey::new("t", u64::MAX, from, through, u32::MAX);
            assert_eq!(ChunkKey::parse(&k.path()).unwrap(), k);
        }
    }

    #[test]
    fn rejects_bad_paths() {
        for p in [
            "",
            "t/chunks/0000000000000001/1-2",
            "t/chunk/0000000000000001/1-2-00000003",
            "t/chunks/1/1-2-00000003",
            "t/chunks/0000000000000001/01-2-00000003",
            "t/chunks/0000000000000001/1-2-3",
            "t/chunks/0000000000000001/1-2-00000003/x",
            "t/chunks/000000000000000g/1-2-00000003",
            "t/chunks/0000000000000001/2-1-00000003",
            "../chunks/0000000000000001/1-2-00000003",
            "a b/chunks/0000000000000001/1-2-00000003",
        ] {
            assert!(ChunkKey::parse(p).is_err(), "{p}");
        }
    }

    #[test]
    fn tenant_rules() {
        for ok in ["fake", "a.b", "x_y-z", "(team)*'!", &"a".repeat(150)] {
            validate_tenant(ok).unwrap();
        }
        for (bad, reason) in [
            ("", "empty"),
            (".", "reserved name"),
            ("..", "reserved name"),
            ("a/b", "unsupported character"),
            ("a b", "unsupported character"),
            ("ü", "unsupported character"),
            (&"a".repeat(151), "longer than 150 characters"),
            ("a|b", "unsupported character"),
        ] {
            let err = validate_tenant(bad).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidTenant { tenant, reason: r } if tenant == bad && *r == reason),
                "{bad}: {err}"
            );
        }
    }
}

//! Sharding by stream: shard `I` of `N` holds the streams whose [`fingerprint`] lies in
//! `[I * 2^64 / N, (I + 1) * 2^64 / N)`. The querier (index lookups), the ingesters and the
//! query-frontend all use this one rule, so the `N` shards of a query partition its streams:
//! every stream is in exactly one shard.
//!
//! [`fingerprint`]: crate::fingerprint

use std::fmt;

/// One shard of `count`: the streams whose fingerprint falls in its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    /// Which shard, `0 <= index < count`.
    pub index: u32,
    /// How many shards the streams are divided into (at least 1).
    pub count: u32,
}

/// Why a shard text (`I_of_N`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid shard {0:?}: want I_of_N with 0 <= I < N")]
pub struct ShardParseError(pub String);

impl Shard {
    /// Shard `index` of `count`, or `None` unless `index < count`.
    pub fn new(index: u32, count: u32) -> Option<Shard> {
        (index < count).then_some(Shard { index, count })
    }

    /// The shard of `count` a stream fingerprint falls in: `floor(fp * count / 2^64)`.
    pub fn index_of(fp: u64, count: u32) -> u32 {
        ((fp as u128 * count as u128) >> 64) as u32
    }

    /// Whether the stream with fingerprint `fp` is in this shard.
    pub fn contains(&self, fp: u64) -> bool {
        Self::index_of(fp, self.count) == self.index
    }

    /// Reads `I_of_N` (as [`Display`](fmt::Display) writes it).
    pub fn parse(s: &str) -> Result<Shard, ShardParseError> {
        let err = || ShardParseError(s.to_string());
        let (i, n) = s.split_once("_of_").ok_or_else(err)?;
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty();
        if !digits(i) || !digits(n) {
            return Err(err());
        }
        let i: u32 = i.parse().map_err(|_| err())?;
        let n: u32 = n.parse().map_err(|_| err())?;
        Shard::new(i, n).ok_or_else(err)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_of_{}", self.index, self.count)
    }
}

/// Whether `fp` is in `shard` (always, for no shard).
pub fn in_shard(shard: Option<Shard>, fp: u64) -> bool {
    shard.is_none_or(|s| s.contains(fp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shards_partition_every_fingerprint() {
        let mut fps: Vec<u64> = vec![0, 1, u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1];
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            fps.push(x);
        }
        for n in 1..=17u32 {
            for &fp in &fps {
                let holders: Vec<u32> =
                    (0..n).filter(|&i| Shard { index: i, count: n }.contains(fp)).collect();
                assert_eq!(holders.len(), 1, "fp {fp} n {n}: {holders:?}");
                // shard I holds [I * 2^64 / N, (I + 1) * 2^64 / N)
                let i = holders[0] as u128;
                let fp128 = fp as u128;
                assert!(i * (1u128 << 64) <= fp128 * n as u128);
                assert!(fp128 * (n as u128) < (i + 1) * (1u128 << 64));
            }
        }
    }

    #[test]
    fn shards_read_back() {
        assert_eq!(Shard::parse("3_of_8"), Ok(Shard { index: 3, count: 8 }));
        assert_eq!(Shard::parse(&Shard { index: 0, count: 1 }.to_string()).map(|s| s.count), Ok(1));
        for bad in ["8_of_8", "1_of_0", "x", "-1_of_2", "1_of_", "+1_of_2", " 1_of_2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        assert!(in_shard(None, 7));
    }
}

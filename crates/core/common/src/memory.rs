//! Handing the allocator's free memory back to the system.

/// Returns the allocator's free memory to the system. glibc keeps what a thread freed in that
/// thread's arena (and in holes below the top of a heap, which only a trim releases), so
/// without this the process keeps the peak of every burst of allocations resident. Takes a
/// few milliseconds: call it after large, rare releases (a large query, a flush), not per
/// request.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn give_back() {
    // SAFETY: `malloc_trim` only returns free pages of the allocator's arenas to the system;
    // it takes the arenas' locks itself and touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The process's resident memory in bytes (`/proc/self/statm`), `None` where it cannot be
/// read. Cheap enough to call around a request.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(page_size()))
}

#[cfg(unix)]
fn page_size() -> u64 {
    // SAFETY: `sysconf` only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

#[cfg(not(unix))]
fn page_size() -> u64 {
    4096
}

/// Other allocators return memory on their own terms: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn give_back() {}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn resident_bytes_sees_memory_being_touched() {
        let before = super::resident_bytes().unwrap();
        let touched = vec![1u8; 64 << 20];
        let after = super::resident_bytes().unwrap();
        assert!(after >= before + (32 << 20), "{before} -> {after}");
        assert_eq!(touched.iter().map(|&b| u64::from(b)).sum::<u64>(), 64 << 20);
    }

    #[test]
    fn give_back_leaves_live_memory_alone() {
        let kept: Vec<u64> = (0..100_000).collect();
        drop(vec![7u8; 8 << 20]);
        super::give_back();
        assert_eq!(kept.iter().sum::<u64>(), 99_999 * 100_000 / 2);
    }
}

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

/// Other allocators return memory on their own terms: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn give_back() {}

#[cfg(test)]
mod tests {
    #[test]
    fn give_back_leaves_live_memory_alone() {
        let kept: Vec<u64> = (0..100_000).collect();
        drop(vec![7u8; 8 << 20]);
        super::give_back();
        assert_eq!(kept.iter().sum::<u64>(), 99_999 * 100_000 / 2);
    }
}

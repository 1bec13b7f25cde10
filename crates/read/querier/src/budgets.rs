//! The memory of split queries. The query-frontend names each query it splits
//! (`X-Skald-Query-Id` on its part requests); the parts of one query that run on this querier
//! at the same time share one `limits_config.max_query_memory` budget, so that a query split
//! into parts holds no more here than it would whole. Each part counts in its own accountant
//! within that budget ([`QueryMemory::within`]) and gives back what it held when it ends.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use skald_logql::engine::{EngineError, QueryMemory};

/// The smallest prefetch window a part takes when its query's budget is short of the full
/// one: the parts of one query then read ahead less each, rather than fail.
const MIN_WINDOW: usize = 1 << 20;

/// The budgets of the split queries whose parts run here, by tenant and query id; a budget
/// lives as long as one of its parts runs.
#[derive(Default)]
pub(crate) struct Budgets {
    by_query: parking_lot::Mutex<HashMap<(String, String), Weak<QueryMemory>>>,
}

impl Budgets {
    /// The budget of query `id` of `tenant`: the one its running parts share, or a new one
    /// with `cap` bytes.
    pub(crate) fn of(&self, tenant: &str, id: &str, cap: u64) -> Arc<QueryMemory> {
        let key = (tenant.to_string(), id.to_string());
        let mut map = self.by_query.lock();
        if let Some(budget) = map.get(&key).and_then(Weak::upgrade) {
            return budget;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let budget = Arc::new(QueryMemory::new(cap));
        map.insert(key, Arc::downgrade(&budget));
        budget
    }
}

/// Charges a query's prefetch window to `mem`: `full` bytes, or, when its budget is shared
/// and partly held by other parts, the largest halving of it down to [`MIN_WINDOW`] that fits.
/// The error is the memory limit's when not even that fits. Returns the window charged.
pub(crate) fn reserve_window(mem: &QueryMemory, full: usize) -> Result<usize, EngineError> {
    let mut window = full;
    loop {
        match mem.charge(window as u64) {
            Ok(()) => return Ok(window),
            Err(e) if window / 2 < MIN_WINDOW => return Err(e),
            Err(_) => window /= 2,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parts_of_one_query_share_a_budget_while_they_run() {
        let budgets = Budgets::default();
        let a = budgets.of("t", "q1", 64 << 20);
        let b = budgets.of("t", "q1", 64 << 20);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &budgets.of("u", "q1", 64 << 20)), "per tenant");
        assert!(!Arc::ptr_eq(&a, &budgets.of("t", "q2", 64 << 20)));
        drop((a, b));
        let c = budgets.of("t", "q1", 64 << 20);
        assert_eq!(c.used(), 0, "a budget whose parts all ended starts again");
    }

    #[test]
    fn windows_shrink_to_fit_a_shared_budget() {
        let whole = Arc::new(QueryMemory::new(40 << 20));
        let parts: Vec<QueryMemory> = (0..3).map(|_| QueryMemory::within(whole.clone())).collect();
        let windows: Vec<usize> =
            parts.iter().map(|p| reserve_window(p, 16 << 20).unwrap()).collect();
        assert_eq!(windows, [16 << 20, 16 << 20, 8 << 20]);
        assert!(reserve_window(&QueryMemory::within(whole.clone()), 16 << 20).is_err());
        drop(parts);
        assert_eq!(whole.used(), 0);
        // alone, a query gets its full window
        assert_eq!(reserve_window(&QueryMemory::new(64 << 20), 16 << 20).unwrap(), 16 << 20);
    }
}

//! The store module: the chunk store and the index store of the schema periods.

use super::Modules;

/// Opens the chunk and index stores `storage_config` and `schema_config` describe.
pub fn init_store(m: &mut Modules) -> anyhow::Result<()> {
    let (cs, is) = crate::storage::build_stores(&m.config, &m.registry)?;
    m.chunk_store = Some(cs);
    m.index_store = Some(is);
    Ok(())
}

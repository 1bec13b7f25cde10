//! The table schema every DynamoDB index table has, and the table naming: the one place that
//! knows them. `skald-table-manager` creates the tables from these definitions.

use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, KeySchemaElement, KeyType, ScalarAttributeType,
};

/// The hash key attribute (string).
pub const HASH_KEY: &str = "h";
/// The range key attribute (binary).
pub const RANGE_KEY: &str = "r";
/// The payload attribute (binary; not part of the key, so not in the table definition).
pub const VALUE: &str = "v";

/// The name of table `n` of a period: `<prefix><n>`, with `n` the unix seconds of the table's
/// start divided by the table period (Loki's naming).
pub fn table_name(prefix: &str, n: i64) -> String {
    format!("{prefix}{n}")
}

/// The attribute definitions of an index table: `h` (S) and `r` (B).
pub fn attribute_definitions() -> Result<Vec<AttributeDefinition>, BuildError> {
    let attr = |name: &str, ty: ScalarAttributeType| {
        AttributeDefinition::builder().attribute_name(name).attribute_type(ty).build()
    };
    Ok(vec![attr(HASH_KEY, ScalarAttributeType::S)?, attr(RANGE_KEY, ScalarAttributeType::B)?])
}

/// The key schema of an index table: `h` HASH, `r` RANGE.
pub fn key_schema() -> Result<Vec<KeySchemaElement>, BuildError> {
    let key = |name: &str, ty: KeyType| {
        KeySchemaElement::builder().attribute_name(name).key_type(ty).build()
    };
    Ok(vec![key(HASH_KEY, KeyType::Hash)?, key(RANGE_KEY, KeyType::Range)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_h_string_hash_and_r_binary_range() {
        let attrs = attribute_definitions().unwrap();
        let attrs: Vec<_> =
            attrs.iter().map(|a| (a.attribute_name(), a.attribute_type().as_str())).collect();
        assert_eq!(attrs, [("h", "S"), ("r", "B")]);
        let keys = key_schema().unwrap();
        let keys: Vec<_> =
            keys.iter().map(|k| (k.attribute_name(), k.key_type().as_str())).collect();
        assert_eq!(keys, [("h", "HASH"), ("r", "RANGE")]);
        assert_eq!(table_name("loki_", 2628), "loki_2628");
    }
}

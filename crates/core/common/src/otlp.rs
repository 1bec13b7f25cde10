//! `limits_config.otlp_config`: how OTLP attributes are stored (Loki's key names and rules,
//! `docs/sources/shared/otel.md` and `pkg/loghttp/push/otlp_config.go`).
//!
//! The attribute lists are matched in order; the first rule whose `attributes` contain the
//! attribute name, or whose `regex` matches it (anchored, like Prometheus' relabel regexes),
//! decides. An attribute no rule matches becomes structured metadata. Unless
//! `resource_attributes.ignore_defaults` is set, the distributor's default list of resource
//! attributes (`distributor.otlp_config.default_resource_attributes_as_index_labels`) is the
//! first resource rule, with the action `index_label`.

use serde::{Deserialize, Serialize};

/// What to do with a matching attribute.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OtlpAction {
    /// Make it an index (stream) label. Resource and log attributes only.
    IndexLabel,
    /// Store it as structured metadata of each entry (the default).
    #[default]
    StructuredMetadata,
    /// Drop it.
    Drop,
}

/// One rule: an action for a list of attribute names or for the names a regex matches.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpAttributesConfig {
    /// The action; `structured_metadata` when omitted, as in Loki.
    pub action: OtlpAction,
    /// Attribute names, matched exactly (before normalization: `k8s.pod.name`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    /// A regular expression over attribute names, anchored at both ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// `otlp_config.resource_attributes`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpResourceAttributes {
    /// Leave out the default `index_label` rule for the distributor's default attribute list.
    pub ignore_defaults: bool,
    /// Rules, after the default one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes_config: Vec<OtlpAttributesConfig>,
}

/// `limits_config.otlp_config`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// Rules for resource attributes (`index_label`, `structured_metadata`, `drop`).
    pub resource_attributes: OtlpResourceAttributes,
    /// Rules for instrumentation-scope attributes (`structured_metadata`, `drop`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scope_attributes: Vec<OtlpAttributesConfig>,
    /// Rules for log-record attributes (`index_label`, `structured_metadata`, `drop`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub log_attributes: Vec<OtlpAttributesConfig>,
    /// Also make `severity_text` an index label (it is always structured metadata).
    pub severity_text_as_label: bool,
}

/// A bad `otlp_config` rule, named by its section and index (Loki's wording).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OtlpConfigError {
    /// `index_label` in `scope_attributes`.
    #[error(
        "otlp_config.{section}[{index}]: index_label action is only supported for resource_attributes and log_attributes"
    )]
    IndexLabelNotAllowed {
        /// The rule list (`scope_attributes`, ...).
        section: &'static str,
        /// The rule's position in it.
        index: usize,
    },
    /// A rule with neither `attributes` nor `regex`.
    #[error("otlp_config.{section}[{index}]: attributes or regex must be set")]
    NoAttributesOrRegex {
        /// The rule list.
        section: &'static str,
        /// The rule's position in it.
        index: usize,
    },
    /// A rule with both `attributes` and `regex`.
    #[error("otlp_config.{section}[{index}]: only one of attributes or regex must be set")]
    AttributesAndRegex {
        /// The rule list.
        section: &'static str,
        /// The rule's position in it.
        index: usize,
    },
    /// A `regex` that does not compile.
    #[error("otlp_config.{section}[{index}]: invalid regex {regex:?}: {reason}")]
    InvalidRegex {
        /// The rule list.
        section: &'static str,
        /// The rule's position in it.
        index: usize,
        /// The regex as written.
        regex: String,
        /// Why it does not compile.
        reason: regex::Error,
    },
}

fn check_rules(
    section: &'static str,
    rules: &[OtlpAttributesConfig],
    index_allowed: bool,
) -> Result<(), OtlpConfigError> {
    for (index, r) in rules.iter().enumerate() {
        if r.action == OtlpAction::IndexLabel && !index_allowed {
            return Err(OtlpConfigError::IndexLabelNotAllowed { section, index });
        }
        match (&r.regex, r.attributes.is_empty()) {
            (None, true) => return Err(OtlpConfigError::NoAttributesOrRegex { section, index }),
            (Some(_), false) => return Err(OtlpConfigError::AttributesAndRegex { section, index }),
            (Some(re), true) => {
                if let Err(reason) = regex::Regex::new(&anchored(re)) {
                    return Err(OtlpConfigError::InvalidRegex {
                        section,
                        index,
                        regex: re.clone(),
                        reason,
                    });
                }
            }
            (None, false) => {}
        }
    }
    Ok(())
}

/// The anchored form of a rule regex (Prometheus relabel semantics: `^(?s:re)$`).
pub fn anchored(re: &str) -> String {
    format!("^(?s:{re})$")
}

impl OtlpConfig {
    /// Checks the rules: each needs `attributes` or `regex` (not both), regexes must compile,
    /// and `index_label` is refused for scope attributes.
    pub fn validate(&self) -> Result<(), OtlpConfigError> {
        check_rules(
            "resource_attributes.attributes_config",
            &self.resource_attributes.attributes_config,
            true,
        )?;
        check_rules("scope_attributes", &self.scope_attributes, false)?;
        check_rules("log_attributes", &self.log_attributes, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loki_keys_and_rejects_bad_values() {
        let c: OtlpConfig = serde_yaml::from_str(
            "
resource_attributes:
  ignore_defaults: true
  attributes_config:
    - action: index_label
      attributes: [service.group]
    - action: drop
      regex: 'host\\..*'
scope_attributes:
  - action: drop
    attributes: [a]
log_attributes:
  - attributes: [user.id]
severity_text_as_label: true
",
        )
        .unwrap();
        assert!(c.resource_attributes.ignore_defaults);
        assert_eq!(c.resource_attributes.attributes_config[1].action, OtlpAction::Drop);
        assert_eq!(c.log_attributes[0].action, OtlpAction::StructuredMetadata);
        assert!(c.validate().is_ok());

        let err = serde_yaml::from_str::<OtlpConfig>(
            "log_attributes:\n  - action: index\n    attributes: [a]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown variant `index`"), "{err}");
        let err =
            serde_yaml::from_str::<OtlpConfig>("resource_attribute: {}\n").unwrap_err().to_string();
        assert!(err.contains("resource_attribute"), "{err}");

        let bad = |yaml: &str| serde_yaml::from_str::<OtlpConfig>(yaml).unwrap().validate();
        assert_eq!(
            bad("scope_attributes:\n  - action: index_label\n    attributes: [a]\n")
                .unwrap_err()
                .to_string(),
            "otlp_config.scope_attributes[0]: index_label action is only supported for resource_attributes and log_attributes"
        );
        assert_eq!(
            bad("log_attributes:\n  - action: drop\n").unwrap_err().to_string(),
            "otlp_config.log_attributes[0]: attributes or regex must be set"
        );
        assert_eq!(
            bad("log_attributes:\n  - action: drop\n    regex: a\n    attributes: [b]\n")
                .unwrap_err()
                .to_string(),
            "otlp_config.log_attributes[0]: only one of attributes or regex must be set"
        );
        assert!(bad("resource_attributes:\n  attributes_config:\n    - regex: '('\n")
            .unwrap_err()
            .to_string()
            .starts_with("otlp_config.resource_attributes.attributes_config[0]: invalid regex"));
    }
}

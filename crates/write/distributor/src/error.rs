//! Push errors. `Display` is exactly the response body Loki writes; `status_code` its status.

use skald_proto::ServiceError;

/// Why a push was (wholly or partly) rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The body, decompressed body or a label string is over its cap (413).
    #[error("request body too large: {0}")]
    BodyTooLarge(String),
    /// The body could not be decoded, or a label string could not be parsed (400). Nothing
    /// was stored.
    #[error("{0}")]
    BadRequest(String),
    /// The request has no streams at all (422).
    #[error("error at least one valid stream is required for ingestion")]
    NoStreams,
    /// Some streams or entries were invalid (400). The valid ones **were** stored. The text
    /// groups identical messages as Loki does (`N errors like: ...`).
    #[error("{0}")]
    Validation(String),
    /// The tenant's ingestion rate limit was hit (429). Nothing was stored.
    #[error("{0}")]
    RateLimited(String),
    /// A stream's rate limit was hit (429). Entries within the limit were stored.
    #[error("{0}")]
    StreamRateLimited(String),
    /// The ingester failed; its code decides the status.
    #[error("{0}")]
    Ingester(ServiceError),
}

impl PushError {
    /// The HTTP status Loki answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            PushError::BodyTooLarge(_) => 413,
            PushError::BadRequest(_) | PushError::Validation(_) => 400,
            PushError::NoStreams => 422,
            PushError::RateLimited(_) | PushError::StreamRateLimited(_) => 429,
            PushError::Ingester(e) => e.code.http_status_code(),
        }
    }

    /// True when some entries of the request were stored despite the error.
    pub fn is_partial(&self) -> bool {
        matches!(self, PushError::Validation(_) | PushError::StreamRateLimited(_))
    }
}

/// A pushed label string that does not parse. `Display` is Prometheus' parser text (what
/// follows `couldn't parse labels: ` in a push answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("1:{column}: parse error: {message}")]
pub struct LabelsError {
    /// 1-based byte column of the problem.
    pub column: usize,
    /// What is wrong there.
    pub message: String,
}

/// Go's `mime.ParseMediaType` errors, with Go's texts (a push answers them with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MediaTypeError {
    /// Empty, or no token before the `/`.
    #[error("mime: no media type")]
    NoMediaType,
    /// Something other than `/` after the type.
    #[error("mime: expected slash after first token")]
    ExpectedSlash,
    /// Nothing after the `/`.
    #[error("mime: expected token after slash")]
    ExpectedToken,
    /// Something after the subtype that is not a parameter.
    #[error("mime: unexpected content after media subtype")]
    UnexpectedContent,
    /// A parameter given twice.
    #[error("mime: duplicate parameter name")]
    DuplicateParameter,
    /// A parameter that is not `name=value`.
    #[error("mime: invalid media parameter")]
    InvalidParameter,
}

/// A structured-metadata name that cannot be normalized (a push answers it with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataNameError {
    /// The empty name.
    #[error("label name is empty")]
    Empty,
    /// A name with nothing left but `_` once normalized.
    #[error(
        "normalization for label name {} resulted in invalid name {}",
        skald_model::labels::go_quote(.name),
        skald_model::labels::go_quote(.normalized)
    )]
    Invalid {
        /// The name as pushed.
        name: String,
        /// What normalization made of it.
        normalized: String,
    },
}

/// An OTLP/JSON push body that does not map onto `ExportLogsServiceRequest`. `Display` is
/// the text a push answers with (400), e.g. `otlp json: resourceLogs[0].scopeLogs: expected
/// an array, got {}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtlpJsonError {
    /// serde_json refused the body (syntax, or the nesting limit).
    #[error("otlp json: invalid JSON: {0}")]
    InvalidJson(String),
    /// A value of the wrong type or out of range, at a JSON path such as
    /// `resourceLogs[0].scopeLogs[0].logRecords[2].timeUnixNano`.
    #[error("otlp json: {path}: {message}")]
    At {
        /// Where in the document (`$` for the root).
        path: String,
        /// What is wrong there.
        message: String,
    },
}

/// A distributor setting that is refused. `Display` is what the config check prints.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// An `otlp_config` block that `skald_common::otlp::OtlpConfig::validate` refuses.
    #[error("{0}")]
    Otlp(skald_common::otlp::OtlpConfigError),
    /// An `otlp_config` rule whose regex does not compile.
    #[error("regex {regex:?}: {message}")]
    OtlpRegex {
        /// The regex as configured.
        regex: String,
        /// The regex compiler's message.
        message: String,
    },
    /// A tenant's `distributor.otlp_config.tenant_overrides` entry.
    #[error("distributor.otlp_config.tenant_overrides.{tenant}: {message}")]
    OtlpOverride {
        /// The tenant.
        tenant: String,
        /// What `OtlpConfig::validate` said.
        message: skald_common::otlp::OtlpConfigError,
    },
    /// `distributor.elasticsearch`.
    #[error("distributor.{0}")]
    Elastic(ElasticConfigError),
}

/// A `distributor.elasticsearch` setting that is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElasticConfigError {
    /// `index_label` is not a label name.
    #[error("elasticsearch.index_label {0:?} is not a valid label name")]
    IndexLabel(String),
    /// A `label_fields` key that is not a dotted path.
    #[error("elasticsearch.label_fields: bad field path {0:?}")]
    FieldPath(String),
    /// A `label_fields` value that is not a label name.
    #[error("elasticsearch.label_fields.{field}: {label:?} is not a valid label name")]
    FieldLabel {
        /// The field path.
        field: String,
        /// The label it maps to.
        label: String,
    },
    /// A `label_prefixes` key that is not a dotted path.
    #[error("elasticsearch.label_prefixes: bad object path {0:?}")]
    PrefixPath(String),
    /// A `label_prefixes` value that cannot start a label name.
    #[error("elasticsearch.label_prefixes.{path}: {prefix:?} is not a valid label-name prefix")]
    Prefix {
        /// The object path.
        path: String,
        /// The prefix.
        prefix: String,
    },
    /// `version` is not `major.minor.patch`.
    #[error("elasticsearch.version {0:?} must look like 8.19.0")]
    Version(String),
}

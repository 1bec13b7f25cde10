use regex::Regex;

/// The four Prometheus matcher operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchType {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (anchored regex)
    Regex,
    /// `!~` (anchored regex)
    NotRegex,
}

impl MatchType {
    /// The operator as written in LogQL.
    pub fn as_str(&self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regex => "=~",
            MatchType::NotRegex => "!~",
        }
    }
}

/// Why a matcher could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MatcherError {
    /// The regex compiler's message.
    pub message: String,
}

/// A label matcher such as `job=~"web|api"`. Regexes are fully anchored, as in Prometheus.
#[derive(Debug, Clone)]
pub struct LabelMatcher {
    /// Label name.
    pub name: String,
    /// Operator.
    pub op: MatchType,
    /// The value or regex source as written.
    pub value: String,
    regex: Option<Regex>,
}

impl PartialEq for LabelMatcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl LabelMatcher {
    /// Builds a matcher, compiling the anchored regex for `=~` and `!~`.
    pub fn new(
        name: impl Into<String>,
        op: MatchType,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let value = value.into();
        let regex = match op {
            MatchType::Regex | MatchType::NotRegex => Some(
                Regex::new(&format!("^(?s:{value})$"))
                    .map_err(|e| MatcherError { message: e.to_string() })?,
            ),
            _ => None,
        };
        Ok(LabelMatcher { name: name.into(), op, value, regex })
    }

    /// Returns true when `value` (the empty string for a missing label) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchType::Equal => value == self.value,
            MatchType::NotEqual => value != self.value,
            MatchType::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchType::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Returns true when the matcher matches the empty string (and so also streams that lack
    /// the label).
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// Returns true when every matcher in `matchers` accepts `labels`.
    pub fn all_match(matchers: &[LabelMatcher], labels: &crate::Labels) -> bool {
        matchers.iter().all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
    }
}

impl std::fmt::Display for LabelMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{}", self.name, self.op.as_str(), crate::labels::go_quote(&self.value))
    }
}

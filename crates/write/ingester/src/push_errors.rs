//! The error of a push that refused some streams or entries, with a bounded size.
//!
//! Loki's ingester answers a push with one error however many streams it refused (the last
//! one's; 429 for the stream limit, 400 for entries too far behind). Skald keeps one line per
//! reason (the first stream's message, as Loki words it) and says how many more streams were
//! refused for that reason, so a push of thousands of new streams over the stream limit gets
//! a short answer instead of one line per stream; the stream limit makes it a 429.

use crate::error::IngesterError;

/// Longest message kept for one reason (a stream's labels can be long).
const MAX_MESSAGE_BYTES: usize = 1024;

/// Why a stream was refused (one line of the answer per reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The tenant's active stream limit.
    StreamLimit,
    /// Entries older than the out-of-order window.
    TooFarBehind,
}

/// The refusals of one push, grouped by reason.
#[derive(Debug, Default)]
pub(crate) struct PushErrors {
    /// Per reason: the first message and how many streams were refused for it.
    groups: Vec<(Reason, String, usize)>,
}

impl PushErrors {
    /// Whether nothing was refused.
    pub(crate) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Records a refused stream; `message` is built only for the first of its reason.
    pub(crate) fn add(&mut self, reason: Reason, message: impl FnOnce() -> String) {
        match self.groups.iter_mut().find(|g| g.0 == reason) {
            Some(g) => g.2 += 1,
            None => self.groups.push((reason, truncate(message()), 1)),
        }
    }

    /// The push's error, if anything was refused: a 429 when the stream limit refused a
    /// stream (as Loki answers it, so that clients retry later), else a 400.
    pub(crate) fn into_error(self) -> Option<IngesterError> {
        if self.is_empty() {
            return None;
        }
        let stream_limit = self.groups.iter().any(|g| g.0 == Reason::StreamLimit);
        Some(IngesterError::PushRefused { stream_limit, message: self.message() })
    }

    /// The answer: one line per reason, then how many more streams it refused.
    pub(crate) fn message(&self) -> String {
        let lines: Vec<String> = self
            .groups
            .iter()
            .map(|(_, m, n)| match n {
                1 => m.clone(),
                n => format!("{m} (and {} more streams refused for the same reason)", n - 1),
            })
            .collect();
        lines.join("\n")
    }
}

fn truncate(mut m: String) -> String {
    if m.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !m.is_char_boundary(end) {
            end -= 1;
        }
        m.truncate(end);
        m.push_str("...");
    }
    m
}

#[cfg(test)]
mod tests {
    use skald_proto::{ErrorCode, ServiceError};

    use super::*;

    /// The wire status of what was refused.
    fn code(e: PushErrors) -> ErrorCode {
        ServiceError::from(e.into_error().unwrap()).code
    }

    #[test]
    fn one_line_per_reason_with_a_count_and_a_bounded_size() {
        let mut e = PushErrors::default();
        assert!(e.is_empty());
        for i in 0..5000 {
            e.add(Reason::StreamLimit, || format!("limit stream {i}"));
        }
        e.add(Reason::TooFarBehind, || "x".repeat(10_000));
        let m = e.message();
        assert_eq!(code(e), ErrorCode::TooManyRequests);
        assert!(
            m.starts_with("limit stream 0 (and 4999 more streams refused for the same reason)\n")
        );
        assert!(m.len() < 1100 + 100, "{}", m.len());
        let mut one = PushErrors::default();
        one.add(Reason::TooFarBehind, || "only".into());
        assert_eq!(one.message(), "only");
        assert_eq!(code(one), ErrorCode::BadRequest);
        assert!(PushErrors::default().into_error().is_none());
    }

    /// A push of 5,000 new streams over a limit of 10 gets one short line naming the reason
    /// and the count, not one line per stream.
    #[tokio::test]
    async fn a_push_over_the_stream_limit_gets_a_bounded_answer() {
        use std::sync::Arc;

        use skald_model::{Entry, Label, Labels, Stream};
        use skald_proto::ingester::IngesterService;

        let limits =
            skald_common::limits::Limits { max_global_streams_per_user: 10, ..Default::default() };
        let ing = crate::Ingester::new(
            crate::IngesterConfig::default(),
            limits,
            Arc::new(skald_chunk_store::ObjectChunkStore::in_memory()),
            Arc::new(skald_index::MemIndexStore::new()),
            &prometheus::Registry::new(),
        );
        let streams: Vec<Stream> = (0..5000)
            .map(|i| Stream {
                labels: Labels::from_vec(vec![
                    Label::new("job", "many"),
                    Label::new("instance", format!("host-{i:05}-{}", "x".repeat(100))),
                ]),
                entries: vec![Entry { ts: 1, line: "l".into(), structured_metadata: vec![] }],
            })
            .collect();
        let err = ing.push("t", streams).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::TooManyRequests);
        assert!(err.message.len() < 4096, "{} bytes", err.message.len());
        assert!(err.message.starts_with("maximum active stream limit exceeded"), "{}", err.message);
        assert!(err.message.contains("(and 4989 more streams refused"), "{}", err.message);
        assert_eq!(err.message.lines().count(), 1);
    }
}

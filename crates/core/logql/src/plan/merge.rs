//! Merging the answers of a query's splits into the answer of the whole query, in the order
//! the engine gives it.

use std::collections::{BTreeMap, HashMap};

use skald_model::{Direction, Labels};

use crate::engine::{EngineError, ResultStream, Series};

/// The matrix of a range query from the matrices of its splits (as [`split_range`] cuts
/// them; `parts` oldest first): each series' samples concatenated in time order (a series
/// may be missing from some parts), and the series in the order the engine gives the whole
/// query `start..=end` at `step_ns` (which depends on how many splits Loki's frontend would cut
/// it into; see `engine::metric::sort_matrix`; 0: the step unknown, counted by hours;
/// `max_range_ns`: the query's largest `[range]`, [`max_range`](super::max_range)).
///
/// The whole may hold more series than any part: [`check_series_limit`] gives the engine's
/// error for it.
///
/// [`split_range`]: super::split_range
pub fn merge_matrix(
    parts: Vec<Vec<Series>>,
    start: i64,
    end: i64,
    step_ns: i64,
    max_range_ns: i64,
) -> Vec<Series> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<Series> = Vec::new();
    for part in parts {
        for s in part {
            match index.get(&s.labels) {
                Some(&i) => out[i].samples.extend(s.samples),
                None => {
                    index.insert(s.labels.clone(), out.len());
                    out.push(s);
                }
            }
        }
    }
    crate::engine::sort_matrix(&mut out, start, end, step_ns, max_range_ns);
    out
}

/// The engine's error for a range query whose matrix holds more than `max_series` series
/// (`limits_config.max_query_series`), for a matrix merged by [`merge_matrix`]: the whole
/// query fails exactly when one of its splits fails or the merged matrix is too large.
pub fn check_series_limit(series: &[Series], max_series: usize) -> Result<(), EngineError> {
    if series.len() > max_series {
        return Err(crate::engine::series_limit_error(max_series));
    }
    Ok(())
}

/// The error of a split query from the errors of its failed splits (in split order): the
/// error the engine gives the whole query.
///
/// The engine fails a range aggregation on the first series (in label order) carrying
/// `__error__` that has a sample in one of the query's windows, so when every error is such
/// a pipeline error, the whole query's names the smallest series any split names. Exact
/// when one range aggregation fails; when several would (both sides of a binary operation),
/// the engine fails on the first it evaluates, which the errors no longer tell. Other
/// errors: the first in split order. `None` when `errors` is empty.
pub fn merge_errors(errors: Vec<EngineError>) -> Option<EngineError> {
    let named: Option<Vec<Labels>> = errors.iter().map(pipeline_error_series).collect();
    match named {
        Some(series) if !errors.is_empty() => {
            let (i, _) = series.iter().enumerate().min_by(|a, b| a.1.cmp(b.1))?;
            errors.into_iter().nth(i)
        }
        _ => errors.into_iter().next(),
    }
}

/// The series a pipeline error names (`... for series: '{a="1", ...}'.`), read back with the
/// selector parser (the labels are printed with Go's quoting, which it reads).
fn pipeline_error_series(e: &EngineError) -> Option<Labels> {
    let EngineError::Pipeline(msg) = e else { return None };
    let rest = msg.strip_prefix("pipeline error: ")?;
    let (_, rest) = rest.split_once(" for series: '")?;
    let (printed, _) = rest.split_once("'.\n")?;
    if printed == "{}" {
        return Some(Labels::default());
    }
    let matchers = crate::syntax::parse_matchers(printed).ok()?;
    Some(Labels::from_vec(
        matchers.into_iter().map(|m| skald_model::Label::new(m.name, m.value)).collect(),
    ))
}

/// The streams of a log query from the streams of its splits (as [`split_log_range`] cuts
/// them; `parts` in `direction` order, newest first for `Backward`): each stream's entries
/// concatenated, then cut to the `limit` entries nearest the query's edge overall (nearest
/// first; at equal timestamps by stream labels, and within a stream in the order the parts
/// give them), with the streams ordered by their printed label set.
///
/// Exact for queries without `interval` (the engine's interval thinning carries from one
/// entry to the next across a split edge, so it cannot be split), up to which entries of the
/// farthest timestamp a cut keeps (see the ranking below). Entries with one
/// timestamp all lie in one split (the splits are `[start, end)`), so an entry is never in
/// two parts.
///
/// [`split_log_range`]: super::split_log_range
pub fn merge_streams(
    parts: Vec<Vec<ResultStream>>,
    limit: usize,
    direction: Direction,
) -> Vec<ResultStream> {
    // Concatenate per stream, keyed as the engine keys its answer: by printed labels.
    let mut streams: BTreeMap<String, ResultStream> = BTreeMap::new();
    for part in parts {
        for s in part {
            match streams.get_mut(&s.labels.to_string()) {
                Some(m) => m.entries.extend(s.entries),
                None => {
                    streams.insert(s.labels.to_string(), s);
                }
            }
        }
    }
    let mut streams: Vec<ResultStream> = streams.into_values().collect();
    let total: usize = streams.iter().map(|s| s.entries.len()).sum();
    if total > limit {
        // Rank every entry nearest the edge first, then by labels, then in stream order. The
        // engine ranks entries of one timestamp by the stream they were stored in, which the
        // parts no longer carry, so which of them a cut keeps can differ from the whole
        // query's (Loki's frontend breaks such ties in its heap's order). A stream's kept
        // entries are a prefix of its entries (they are in direction order), so counting them
        // per stream is enough.
        let backward = direction == Direction::Backward;
        let mut ranked: Vec<(i64, usize)> = streams
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.entries.iter().map(move |e| (e.ts, i)))
            .collect();
        ranked.sort_by(|a, b| {
            let by_ts = if backward { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) };
            by_ts.then_with(|| streams[a.1].labels.cmp(&streams[b.1].labels))
        });
        let mut keep = vec![0usize; streams.len()];
        for &(_, i) in ranked.iter().take(limit) {
            keep[i] += 1;
        }
        for (s, k) in streams.iter_mut().zip(keep) {
            s.entries.truncate(k);
        }
        streams.retain(|s| !s.entries.is_empty());
    }
    streams
}

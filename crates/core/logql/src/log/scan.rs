//! Block-level line filtering: the literals every matching line must contain (see
//! [`super::required_literals`]) searched with `memchr::memmem` over a whole buffer of
//! concatenated lines, mapping hits back to lines; then (built with
//! [`LiteralScan::for_stages`]) the selector's line filters that apply to the stored line,
//! so that the source hands on only lines the pipeline can accept. A selector with no literal
//! but a regex filter that needs no context (no anchors or word boundaries, never empty), such
//! as Grafana's case-insensitive `|~ "(?i)error"`, has that regex searched over the whole
//! buffer instead of line by line.

use memchr::memmem;

use super::filter::{translate_go_regex, LineFilterC};
use crate::syntax::ast::{LineFilterOp, LineFilterValue, ParserStage, Stage};

/// A compiled set of required literals, and of line filters on the stored line.
#[derive(Debug, Clone)]
pub struct LiteralScan {
    finders: Vec<memmem::Finder<'static>>,
    /// Without literals: a line filter's regex that every matching line matches and that can
    /// be searched across line boundaries ([`block_searcher`]).
    searcher: Option<regex::bytes::Regex>,
    filters: Vec<LineFilterC>,
}

/// The regex of a `|~` filter as a search over a whole buffer of concatenated lines: `None`
/// unless it has no look-around (`^`, `$`, `\b`: their meaning changes once lines are
/// concatenated), cannot match the empty string, and its matches have a bounded length. Then
/// a line contains a match exactly when the same bytes match inside the buffer, and a
/// leftmost search from any position finds the first such line at or after it (or a match
/// spanning lines before it, which is checked and skipped). The bound keeps each search
/// short: a greedy `.*` would scan to the end of the block from every line.
fn block_searcher(src: &str) -> Option<regex::bytes::Regex> {
    let translated = translate_go_regex(src);
    let hir = regex_syntax::Parser::new().parse(&translated).ok()?;
    let props = hir.properties();
    if !props.look_set().is_empty()
        || props.minimum_len().is_none_or(|n| n == 0)
        || props.maximum_len().is_none()
    {
        return None;
    }
    regex::bytes::Regex::new(&translated).ok()
}

impl LiteralScan {
    /// Compiles the literals (empty ones are ignored).
    pub fn new<S: AsRef<str>>(literals: &[S]) -> Self {
        let finders = literals
            .iter()
            .map(AsRef::as_ref)
            .filter(|l| !l.is_empty())
            .map(|l| memmem::Finder::new(l.as_bytes()).into_owned())
            .collect();
        LiteralScan { finders, searcher: None, filters: Vec::new() }
    }

    /// The required literals of `stages` (see [`super::required_literals`]) and every line
    /// filter that applies to the stored line (those before any `line_format`, `decolorize`
    /// or `unpack`): a line one of them rejects, the pipeline rejects. A filter that does not
    /// compile is left out (the pipeline reports it).
    pub fn for_stages(stages: &[Stage]) -> Self {
        let mut scan = LiteralScan::new(&super::required_literals(stages));
        for s in stages {
            match s {
                Stage::LineFilter(f) => {
                    let Ok(filter) = LineFilterC::new(f) else { continue };
                    scan.filters.push(filter);
                    if let (LineFilterOp::Regex, true, LineFilterValue::Literal(re)) =
                        (f.op, f.or.is_empty(), &f.value)
                    {
                        if scan.finders.is_empty() && scan.searcher.is_none() {
                            scan.searcher = block_searcher(re);
                        }
                    }
                }
                Stage::LineFormat(_) | Stage::Decolorize | Stage::Parser(ParserStage::Unpack) => {
                    break
                }
                _ => {}
            }
        }
        scan
    }

    /// True when there is nothing to search for (every line matches).
    pub fn is_empty(&self) -> bool {
        self.finders.is_empty() && self.filters.is_empty()
    }

    /// True when the line filters accept `line`.
    fn filters_accept(&self, line: &[u8]) -> bool {
        self.filters.iter().all(|f| f.matches(line))
    }

    /// False when no line stored anywhere in `buf` can match, because the first literal is
    /// absent. `buf` may be any superset of the line bytes (a whole raw block, say).
    pub fn may_match(&self, buf: &[u8]) -> bool {
        match (self.finders.first(), &self.searcher) {
            (Some(f), _) => f.find(buf).is_some(),
            (None, Some(re)) => re.is_match(buf),
            (None, None) => true,
        }
    }

    /// True when `line` contains every literal and passes the line filters.
    pub fn line_matches(&self, line: &[u8]) -> bool {
        self.finders.iter().all(|f| f.find(line).is_some()) && self.filters_accept(line)
    }

    /// Calls `on_match` with the index of every line that contains every literal, ascending.
    /// Line `i` is `buf[line_ends[i-1]..line_ends[i]]` (from 0 for the first); `line_ends`
    /// must be ascending and within `buf`. Without literals every line matches.
    pub fn for_each_match(&self, buf: &[u8], line_ends: &[u32], mut on_match: impl FnMut(usize)) {
        let Some((first, rest)) = self.finders.split_first() else {
            if let Some(re) = &self.searcher {
                return self.for_each_regex_match(re, buf, line_ends, on_match);
            }
            let mut start = 0usize;
            for (i, &end) in line_ends.iter().enumerate() {
                let end = (end as usize).min(buf.len());
                if self.filters.is_empty() || self.filters_accept(&buf[start.min(end)..end]) {
                    on_match(i);
                }
                start = end;
            }
            return;
        };
        let end_of_lines = line_ends.last().map_or(0, |&e| (e as usize).min(buf.len()));
        let buf = &buf[..end_of_lines];
        let mut pos = 0;
        while pos < buf.len() {
            let Some(off) = first.find(&buf[pos..]) else { break };
            let hit = pos + off;
            // The first line whose end is past the hit contains it (empty lines never do).
            let i = line_ends.partition_point(|&e| (e as usize) <= hit);
            let Some(&end) = line_ends.get(i) else { break };
            let start = if i == 0 { 0 } else { line_ends[i - 1] as usize };
            let (start, end) = (start.min(buf.len()), (end as usize).min(buf.len()));
            // A hit that spans two lines does not count: look again inside this line.
            if hit + first.needle().len() <= end {
                let line = &buf[start..end];
                if rest.iter().all(|f| f.find(line).is_some()) && self.filters_accept(line) {
                    on_match(i);
                }
                pos = end;
            } else {
                pos = hit + 1;
            }
        }
    }

    /// [`Self::for_each_match`] with the block searcher: each hit's line is checked with the
    /// line filters (a hit may span two lines), and the search goes on at the next line.
    fn for_each_regex_match(
        &self,
        re: &regex::bytes::Regex,
        buf: &[u8],
        line_ends: &[u32],
        mut on_match: impl FnMut(usize),
    ) {
        let end_of_lines = line_ends.last().map_or(0, |&e| (e as usize).min(buf.len()));
        let buf = &buf[..end_of_lines];
        let mut pos = 0;
        while pos < buf.len() {
            let Some(hit) = re.find_at(buf, pos) else { break };
            // The first line whose end is past the hit's start contains it.
            let i = line_ends.partition_point(|&e| (e as usize) <= hit.start());
            let Some(&end) = line_ends.get(i) else { break };
            let start = if i == 0 { 0 } else { line_ends[i - 1] as usize };
            let (start, end) = (start.min(buf.len()), (end as usize).min(buf.len()));
            if self.filters_accept(&buf[start..end]) {
                on_match(i);
            }
            pos = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(lines: &[&str]) -> (Vec<u8>, Vec<u32>) {
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            ends.push(buf.len() as u32);
        }
        (buf, ends)
    }

    fn matches(lits: &[&str], lines: &[&str]) -> Vec<usize> {
        let (buf, ends) = block(lines);
        let mut out = Vec::new();
        LiteralScan::new(lits).for_each_match(&buf, &ends, |i| out.push(i));
        // The block scan agrees with a per-line check.
        let scan = LiteralScan::new(lits);
        let per_line: Vec<usize> =
            (0..lines.len()).filter(|&i| scan.line_matches(lines[i].as_bytes())).collect();
        assert_eq!(out, per_line, "{lits:?} {lines:?}");
        out
    }

    #[test]
    fn finds_lines_with_every_literal() {
        assert_eq!(matches(&["err"], &["ok", "error a", "", "x err", "e", "rr"]), vec![1, 3]);
        assert_eq!(matches(&["a", "b"], &["a", "ab", "ba", "b", "aab"]), vec![1, 2, 4]);
        assert_eq!(matches(&[], &["x", ""]), vec![0, 1]);
    }

    #[test]
    fn hits_across_line_boundaries_do_not_count() {
        // "ab" only occurs across the boundary of lines 0 and 1, then inside line 2.
        assert_eq!(matches(&["ab"], &["xa", "bx", "zabz"]), vec![2]);
        assert_eq!(matches(&["aa"], &["a", "a", "a", "aa"]), vec![3]);
    }

    #[test]
    fn line_filters_on_the_stored_line_apply_too() {
        let stages = |q: &str| match crate::syntax::parse_expr(q) {
            Ok(crate::syntax::ast::Expr::Log(s)) => s.stages,
            other => panic!("{other:?}"),
        };
        let (buf, ends) = block(&["an Error", "ok", "error x", "fine", "ERROR y"]);
        let run = |q: &str| {
            let mut out = Vec::new();
            LiteralScan::for_stages(&stages(q)).for_each_match(&buf, &ends, |i| out.push(i));
            out
        };
        assert_eq!(run(r#"{a="b"} |~ "(?i)error""#), vec![0, 2, 4]);
        assert_eq!(run(r#"{a="b"} |= "error" != "x""#), Vec::<usize>::new());
        assert_eq!(run(r#"{a="b"} | json |~ "^[a-z]+$""#), vec![1, 3]);
        // after line_format the line is another: filters from there on are the pipeline's
        assert_eq!(run(r#"{a="b"} | line_format "x" |~ "y""#), vec![0, 1, 2, 3, 4]);
        assert!(LiteralScan::for_stages(&stages(r#"{a="b"} | json"#)).is_empty());
    }

    #[test]
    fn regex_filters_without_context_are_searched_across_the_block() {
        let stages = |q: &str| match crate::syntax::parse_expr(q) {
            Ok(crate::syntax::ast::Expr::Log(s)) => s.stages,
            other => panic!("{other:?}"),
        };
        let lines = [
            "an Error",
            "er",
            "ror",
            "ok",
            "xERRORx",
            "",
            "erRor",
            "fail: e",
            "faile",
            "ab",
            "a",
            "b",
            "ſ",
            "ERR",
            "OR",
            "error at end error",
        ];
        let (buf, ends) = block(&lines);
        for (re, searched) in [
            ("(?i)error", true),
            ("(?i)err.r", true),
            ("fail.*e", false),
            ("fail.{0,3}e", true),
            ("a|b", true),
            ("(?i)s", true),
            ("^a", false),
            ("b$", false),
            (r"\berror", false),
            ("x*", false),
        ] {
            let scan = LiteralScan::for_stages(&stages(&format!(r#"{{a="b"}} |~ `{re}`"#)));
            assert_eq!(scan.searcher.is_some(), searched, "{re}");
            let mut out = Vec::new();
            scan.for_each_match(&buf, &ends, |i| out.push(i));
            // the same lines as the regex line by line (hits across lines do not count)
            let per_line = regex::Regex::new(re).unwrap();
            let want: Vec<usize> =
                (0..lines.len()).filter(|&i| per_line.is_match(lines[i])).collect();
            assert_eq!(out, want, "{re}");
            assert_eq!(scan.may_match(&buf), !want.is_empty(), "{re}");
        }
        // random blocks over a small alphabet, where hits across lines are common
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let alphabet = ['e', 'E', 'r', 'R', 'o', 'O', 'x', 's', 'ſ', ' '];
        for _ in 0..300 {
            let lines: Vec<String> = (0..next(12))
                .map(|_| (0..next(7)).map(|_| alphabet[next(10) as usize]).collect())
                .collect();
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let (buf, ends) = block(&refs);
            for re in ["(?i)error", "(?i)ro", "e.*r", "(?i)s", "[eo]{2}"] {
                let scan = LiteralScan::for_stages(&stages(&format!(r#"{{a="b"}} |~ `{re}`"#)));
                let mut out = Vec::new();
                scan.for_each_match(&buf, &ends, |i| out.push(i));
                let per_line = regex::Regex::new(re).unwrap();
                let want: Vec<usize> =
                    (0..refs.len()).filter(|&i| per_line.is_match(refs[i])).collect();
                assert_eq!(out, want, "{re} {refs:?}");
            }
        }
        // no line holds a match, but the concatenation does ("er" + "ror")
        let (buf, ends) = block(&["er", "ror"]);
        let scan = LiteralScan::for_stages(&stages(r#"{a="b"} |~ "(?i)error""#));
        let mut out = Vec::new();
        scan.for_each_match(&buf, &ends, |i| out.push(i));
        assert!(out.is_empty());
    }

    #[test]
    fn may_match_is_a_superset_check() {
        let s = LiteralScan::new(&["needle"]);
        assert!(s.may_match(b"hay needle hay"));
        assert!(!s.may_match(b"haystack"));
        assert!(LiteralScan::new::<&str>(&[]).may_match(b""));
    }
}

//! Log-template mining with Drain (P. He, J. Zhu, Z. Zheng, M. R. Lyu, "Drain: An Online Log
//! Parsing Approach with Fixed Depth Tree", ICWS 2017), tuned the way Loki's pattern ingester
//! documents it: lines are split into tokens, a fixed-depth prefix tree (first level: token
//! count, then the leading tokens) leads to a short list of candidate templates, the most
//! similar template above a threshold absorbs the line (tokens that differ become `<_>`),
//! otherwise the line starts a new template.
//!
//! Written for Skald from the paper and from the behaviour Loki documents and shows (settings,
//! placeholder, tokenisation of unstructured, logfmt and JSON lines, per-template sample
//! chunks); no Loki code was ported.
//!
//! Each template counts its lines in `sample_interval` buckets, grouped in chunks that span
//! at most `max_chunk_age`; [`Drain::patterns`] re-buckets them by a query step.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The placeholder for a variable token.
pub(crate) const PARAM: &str = "<_>";

/// Lines with fewer tokens are not mined.
const MIN_TOKENS: usize = 4;
/// Lines with more tokens are not mined.
const MAX_TOKENS: usize = 80;
/// The tokenizer stops splitting after this many tokens (the rest is one token).
const TOKEN_CAP: usize = 127;
/// How long a template set that evicts too much stops learning (in log time).
const BLOCK_NS: i64 = 10 * 60 * 1_000_000_000;

/// Top-level JSON fields whose text is mined, in order (Loki's default
/// `pattern_ingester_tokenizable_json_fields_default`).
pub(crate) const JSON_MESSAGE_FIELDS: &[&str] =
    &["log", "message", "msg", "msg_", "_msg", "content"];

/// Drain's settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DrainSettings {
    /// Tree depth; the tree descends through `depth - 2` levels below the token count.
    pub depth: usize,
    /// Share of equal tokens a line needs to join a template.
    pub similarity: f64,
    /// Children per tree node before new tokens share the `<_>` branch.
    pub max_children: usize,
    /// Templates kept (least recently used are evicted); 0 means unlimited.
    pub max_clusters: usize,
    /// Evicted/added templates ratio above which learning pauses for 10 minutes.
    pub max_eviction_ratio: f64,
    /// Longer lines (or JSON message texts) are skipped.
    pub max_line_length: usize,
    /// Resolution of the line counts, in ms.
    pub sample_interval_ms: i64,
    /// Longest span of one sample chunk, in ms.
    pub max_chunk_age_ms: i64,
}

impl Default for DrainSettings {
    fn default() -> Self {
        DrainSettings {
            depth: 30,
            similarity: 0.3,
            max_children: 15,
            max_clusters: 300,
            max_eviction_ratio: 0.25,
            max_line_length: 3000,
            sample_interval_ms: 10_000,
            max_chunk_age_ms: 3_600_000,
        }
    }
}

/// How a stream's lines are split into tokens, guessed from its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineFormat {
    /// `{...}`: the text of the first message field is mined.
    Json,
    /// `key=value ...`: keys and values are tokens.
    Logfmt,
    /// Anything else: split at spaces and punctuation.
    Unstructured,
}

fn logfmt_line_regex() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // key=value pairs separated by single spaces; keys are ASCII word characters, values
        // are either quoted or free of (ASCII) white space.
        let pair = r#"[0-9A-Za-z_]+?=([^"][^\t\n\f\r ]*?|".+?")"#;
        // a constant pattern (compiled by the tests): this cannot panic
        regex::Regex::new(&format!("^({pair} )*?({pair})+$"))
            .unwrap_or_else(|e| unreachable!("constant regex: {e}"))
    })
}

/// Guesses a stream's line format from one line.
pub(crate) fn detect_format(line: &str) -> LineFormat {
    if line.len() < 2 {
        LineFormat::Unstructured
    } else if line.starts_with('{') && line.ends_with('}') {
        LineFormat::Json
    } else if logfmt_line_regex().is_match(line) {
        LineFormat::Logfmt
    } else {
        LineFormat::Unstructured
    }
}

/// A line split into tokens. `spaces` lists, for each space of the line, the index of the
/// token it follows (so a template can be printed with the line's spacing).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Tokens {
    pub tokens: Vec<String>,
    pub spaces: Vec<usize>,
}

fn unicode_class(c: char) -> &'static regex::Regex {
    static RE: OnceLock<[regex::Regex; 3]> = OnceLock::new();
    let set = RE.get_or_init(|| {
        // constant patterns (compiled by the tests): this cannot panic
        let mk =
            |p: &str| regex::Regex::new(p).unwrap_or_else(|e| unreachable!("constant regex: {e}"));
        [mk(r"^\p{L}$"), mk(r"^\p{N}$"), mk(r"^\p{P}$")]
    });
    match c {
        'L' => &set[0],
        'N' => &set[1],
        _ => &set[2],
    }
}

fn char_in(c: char, class: char) -> bool {
    let mut buf = [0u8; 4];
    unicode_class(class).is_match(c.encode_utf8(&mut buf))
}

/// Unicode letter (category L).
fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else {
        char_in(c, 'L')
    }
}

/// Unicode number (category N).
fn is_number(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_digit()
    } else {
        char_in(c, 'N')
    }
}

/// Unicode punctuation (category P); ASCII symbols such as `$+<=>^|~` are not punctuation.
fn is_punct(c: char) -> bool {
    if c.is_ascii() {
        matches!(
            c,
            '!' | '"'
                | '#'
                | '%'
                | '&'
                | '\''
                | '('
                | ')'
                | '*'
                | ','
                | '-'
                | '.'
                | '/'
                | ':'
                | ';'
                | '?'
                | '@'
                | '['
                | '\\'
                | ']'
                | '_'
                | '{'
                | '}'
        )
    } else {
        char_in(c, 'P')
    }
}

/// Splits unstructured text: a space ends a token; `=` and punctuation other than
/// `_ - . : /` are tokens of their own; letters, digits, symbols and other characters stay
/// inside tokens. Leading spaces are not remembered.
fn split_punctuation(text: &str) -> Tokens {
    let mut out = Tokens::default();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if out.tokens.len() >= TOKEN_CAP {
            break;
        }
        if is_letter(c) || is_number(c) || matches!(c, '_' | '-' | '.' | ':' | '/') {
            continue;
        }
        let alone = c == '=' || is_punct(c);
        if c != ' ' && !alone {
            continue;
        }
        if i > start {
            out.tokens.push(text[start..i].to_string());
        }
        if c == ' ' {
            if let Some(last) = out.tokens.len().checked_sub(1) {
                out.spaces.push(last);
            }
        } else {
            out.tokens.push(c.to_string());
        }
        start = i + c.len_utf8();
    }
    if start < text.len() {
        out.tokens.push(text[start..].to_string());
    }
    out
}

/// Prints tokens with the spacing recorded in `spaces`.
fn join_spaced(tokens: &[String], spaces: &[usize]) -> String {
    let mut s = String::new();
    let mut next = 0;
    for (i, t) in tokens.iter().enumerate() {
        s.push_str(t);
        while next < spaces.len() && spaces[next] == i {
            s.push(' ');
            next += 1;
        }
    }
    s
}

/// Keys whose values are always variable in logfmt lines.
fn is_variable_key(key: &str) -> bool {
    key == "t"
        || key.eq_ignore_ascii_case("ts")
        || key.eq_ignore_ascii_case("traceID")
        || key.eq_ignore_ascii_case("time")
        || key.eq_ignore_ascii_case("timestamp")
}

/// Reads logfmt pairs (go-logfmt's scan, `skald_gocompat::logfmt::go_logfmt`). `None` when
/// the line is not clean logfmt (a quote inside a key or an unquoted value, an empty key, an
/// unterminated or badly escaped quoted value; escapes are unescaped strictly, as JSON).
fn parse_logfmt_pairs(line: &str) -> Option<Vec<(String, String)>> {
    use skald_gocompat::logfmt::go_logfmt::{Scanner, Value};
    let mut sc = Scanner::new(line.as_bytes());
    let mut pairs = Vec::new();
    while let Some(pair) = sc.next_pair().ok()? {
        let key = line.get(pair.key)?;
        let value = match pair.value {
            Value::None => String::new(),
            Value::Plain(r) | Value::Quoted { raw: r, escaped: false } => line.get(r)?.to_string(),
            Value::Quoted { raw, escaped: true } => {
                serde_json::from_str::<String>(line.get(raw.start - 1..raw.end + 1)?).ok()?
            }
        };
        pairs.push((key.to_string(), value));
    }
    Some(pairs)
}

/// Prints `key value key value ...` tokens as a logfmt line; `None` when a key cannot be
/// written (empty, or with white space, `=` or `"`).
fn join_logfmt(tokens: &[String]) -> Option<String> {
    let mut out = String::new();
    for (n, pair) in tokens.chunks(2).enumerate() {
        let key = &pair[0];
        if key.is_empty() || key.chars().any(skald_gocompat::logfmt::encode::needs_quotes) {
            return None;
        }
        if n > 0 {
            out.push(' ');
        }
        out.push_str(key);
        out.push('=');
        // Loki hands go-logfmt the value as `[]byte`, which it does not quote when it reads `null`
        skald_gocompat::logfmt::encode::write_bytes_value(
            &mut out,
            pair.get(1).map_or("", String::as_str),
        );
    }
    Some(out)
}

/// The raw (still escaped) text of the first top-level string field named in `fields`.
fn json_message(line: &str, fields: &[&str]) -> Option<String> {
    let mut found: Vec<(String, String)> = Vec::new();
    crate::detected::json_top_level_strings(line, &mut found);
    fields.iter().find_map(|f| found.iter().find(|(k, _)| k == f).map(|(_, v)| v.clone()))
}

impl LineFormat {
    /// Splits a line into tokens; `None` when the line cannot be mined.
    pub(crate) fn tokenize(self, line: &str, max_len: usize) -> Option<Tokens> {
        match self {
            LineFormat::Unstructured => (line.len() <= max_len).then(|| split_punctuation(line)),
            LineFormat::Logfmt => {
                if line.len() > max_len {
                    return None;
                }
                let pairs = parse_logfmt_pairs(line)?;
                let mut tokens = Vec::with_capacity(pairs.len() * 2);
                for (k, v) in pairs {
                    let variable = is_variable_key(&k);
                    tokens.push(k);
                    tokens.push(if variable { PARAM.to_string() } else { v });
                }
                Some(Tokens { tokens, spaces: Vec::new() })
            }
            LineFormat::Json => {
                let msg = json_message(line, JSON_MESSAGE_FIELDS)?;
                (msg.len() <= max_len).then(|| split_punctuation(&msg))
            }
        }
    }

    /// Prints a template; `None` when it cannot be printed.
    pub(crate) fn render(self, t: &Tokens) -> Option<String> {
        let s = match self {
            LineFormat::Unstructured => join_spaced(&t.tokens, &t.spaces),
            LineFormat::Logfmt => join_logfmt(&t.tokens)?,
            LineFormat::Json => format!("{PARAM}{}{PARAM}", join_spaced(&t.tokens, &t.spaces)),
        };
        Some(collapse_params(&s))
    }
}

/// Collapses runs of adjacent placeholders (`<_><_>`) into one.
pub(crate) fn collapse_params(s: &str) -> String {
    let double = "<_><_>";
    if !s.contains(double) {
        return s.to_string();
    }
    let mut out = s.to_string();
    while out.contains(double) {
        out = out.replace(double, PARAM);
    }
    out
}

/// Line counts of one template: `(bucket start ms, lines)` in chunks of at most
/// `max_chunk_age`.
#[derive(Debug, Clone, Default)]
struct Samples {
    chunks: Vec<Vec<(i64, i64)>>,
}

impl Samples {
    fn add(&mut self, ts_ms: i64, interval: i64, max_age: i64) {
        let bucket = ts_ms - ts_ms.rem_euclid(interval);
        let Some(chunk) = self.chunks.last_mut() else {
            self.chunks.push(vec![(bucket, 1)]);
            return;
        };
        let (first, _) = chunk[0];
        let last = chunk.len() - 1;
        if chunk[last].0 == bucket {
            chunk[last].1 += 1;
        } else if bucket - first >= max_age {
            self.chunks.push(vec![(bucket, 1)]);
        } else if bucket > chunk[last].0 {
            chunk.push((bucket, 1));
        }
        // an entry older than the newest bucket is not counted (input is in time order)
    }

    /// Counts in `[from, through)` (ms) by `step`: each chunk's buckets from its first to its
    /// last bucket in range, empty steps included as zeros; the raw buckets when `step`
    /// equals the sample interval.
    fn for_range(
        &self,
        from: i64,
        through: i64,
        step: i64,
        interval: i64,
        out: &mut Vec<(i64, i64)>,
    ) {
        for chunk in &self.chunks {
            let inside: Vec<&(i64, i64)> =
                chunk.iter().filter(|(t, _)| *t >= from && *t < through).collect();
            let (Some(first), Some(last)) = (inside.first(), inside.last()) else { continue };
            if step == interval {
                out.extend(inside.iter().map(|&&s| s));
                continue;
            }
            let first_step = first.0 - first.0.rem_euclid(step);
            let last_step = last.0 - last.0.rem_euclid(step);
            let n = ((last_step - first_step) / step + 1) as usize;
            let mut steps: Vec<(i64, i64)> =
                (0..n).map(|k| (first_step + k as i64 * step, 0)).collect();
            for (t, c) in inside {
                let k = ((t - first_step) / step) as usize;
                if let Some(s) = steps.get_mut(k) {
                    s.1 += c;
                }
            }
            out.extend(steps);
        }
    }
}

#[derive(Debug)]
struct Template {
    tokens: Tokens,
    samples: Samples,
    last_used: u64,
}

/// A node of the prefix tree.
#[derive(Debug, Default)]
struct Node {
    children: Vec<(String, usize)>,
    templates: Vec<u32>,
}

impl Node {
    fn child(&self, key: &str) -> Option<usize> {
        self.children.iter().find(|(k, _)| k == key).map(|(_, n)| *n)
    }
}

/// One Drain instance: the templates of one stream and level.
#[derive(Debug)]
pub(crate) struct Drain {
    settings: DrainSettings,
    format: LineFormat,
    nodes: Vec<Node>,
    templates: HashMap<u32, Template>,
    next_id: u32,
    clock: u64,
    added: u64,
    evicted: u64,
    blocked_until: Option<i64>,
}

impl Drain {
    /// An empty template set for lines of `format`.
    pub(crate) fn new(settings: DrainSettings, format: LineFormat) -> Drain {
        Drain {
            settings,
            format,
            nodes: vec![Node::default()],
            templates: HashMap::new(),
            next_id: 0,
            clock: 0,
            added: 0,
            evicted: 0,
            blocked_until: None,
        }
    }

    /// Number of live templates.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.templates.len()
    }

    /// Learning pauses for 10 minutes (of log time) once more than `max_eviction_ratio` of
    /// the templates added were evicted again.
    fn allowed(&mut self, ts_ns: i64) -> bool {
        if let Some(until) = self.blocked_until {
            if ts_ns < until {
                return false;
            }
            self.blocked_until = None;
            self.added = 0;
            self.evicted = 0;
        }
        if self.added > 0
            && self.evicted as f64 / self.added as f64 > self.settings.max_eviction_ratio
        {
            self.blocked_until = Some(ts_ns.saturating_add(BLOCK_NS));
            return false;
        }
        self.added += 1;
        true
    }

    /// Learns one line at `ts_ns`. Returns false when the line was not mined.
    pub(crate) fn train(&mut self, line: &str, ts_ns: i64) -> bool {
        if !self.allowed(ts_ns) {
            return false;
        }
        let Some(tokens) = self.format.tokenize(line, self.settings.max_line_length) else {
            return false;
        };
        let n = tokens.tokens.len();
        if !(MIN_TOKENS..=MAX_TOKENS).contains(&n) {
            return false;
        }
        self.clock += 1;
        let ts_ms = ts_ns.div_euclid(1_000_000);
        let (interval, max_age) =
            (self.settings.sample_interval_ms, self.settings.max_chunk_age_ms);
        if let Some(id) = self.best_match(&tokens.tokens) {
            if let Some(t) = self.templates.get_mut(&id) {
                for (have, seen) in t.tokens.tokens.iter_mut().zip(&tokens.tokens) {
                    if have != seen && have != PARAM {
                        *have = PARAM.to_string();
                    }
                }
                t.samples.add(ts_ms, interval, max_age);
                t.last_used = self.clock;
            }
            return true;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut samples = Samples::default();
        samples.add(ts_ms, interval, max_age);
        self.insert_into_tree(id, &tokens.tokens);
        self.templates.insert(id, Template { tokens, samples, last_used: self.clock });
        self.evict_over_capacity();
        true
    }

    fn evict_over_capacity(&mut self) {
        let max = self.settings.max_clusters;
        while max > 0 && self.templates.len() > max {
            let Some(oldest) =
                self.templates.iter().min_by_key(|(_, t)| t.last_used).map(|(id, _)| *id)
            else {
                return;
            };
            self.templates.remove(&oldest);
            self.evicted += 1;
        }
    }

    /// How many leading tokens of an `n`-token line lead through the tree below the
    /// token-count level: `depth - 3` at most (the root and the token-count level count
    /// towards the depth), never the last token.
    fn prefix_tokens(&self, n: usize) -> usize {
        self.settings.depth.saturating_sub(2).min(n).saturating_sub(1)
    }

    /// The leaf a line reaches, following exact tokens or else the `<_>` branch.
    fn find_leaf(&self, tokens: &[String]) -> Option<usize> {
        let mut node = self.nodes[0].child(&tokens.len().to_string())?;
        for token in tokens.iter().take(self.prefix_tokens(tokens.len())) {
            node = self.nodes[node].child(token).or_else(|| self.nodes[node].child(PARAM))?;
        }
        Some(node)
    }

    /// The most similar template in the line's leaf, if similar enough: the share of
    /// positions where the template has the line's token; ties go to the template with more
    /// placeholders.
    fn best_match(&self, tokens: &[String]) -> Option<u32> {
        let leaf = self.find_leaf(tokens)?;
        let mut best: Option<(f64, usize, u32)> = None;
        for id in &self.nodes[leaf].templates {
            let Some(t) = self.templates.get(id) else { continue };
            if t.tokens.tokens.len() != tokens.len() {
                continue;
            }
            let mut equal = 0usize;
            let mut params = 0usize;
            for (have, seen) in t.tokens.tokens.iter().zip(tokens) {
                if have == PARAM {
                    params += 1;
                } else if have == seen {
                    equal += 1;
                }
            }
            let sim = equal as f64 / tokens.len() as f64;
            let better = match best {
                None => true,
                Some((bs, bp, _)) => sim > bs || (sim == bs && params > bp),
            };
            if better {
                best = Some((sim, params, *id));
            }
        }
        best.filter(|(sim, _, _)| *sim >= self.settings.similarity).map(|(_, _, id)| id)
    }

    fn new_node(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.nodes.len() - 1
    }

    fn add_child(&mut self, parent: usize, key: &str) -> usize {
        let child = self.new_node();
        self.nodes[parent].children.push((key.to_string(), child));
        child
    }

    /// Adds a new template to the tree. Tokens with digits go down the `<_>` branch; a node
    /// takes new token children until `max_children`, after which tokens share `<_>`.
    fn insert_into_tree(&mut self, id: u32, tokens: &[String]) {
        let count = tokens.len().to_string();
        let mut node = match self.nodes[0].child(&count) {
            Some(n) => n,
            None => self.add_child(0, &count),
        };
        for token in tokens.iter().take(self.prefix_tokens(tokens.len())) {
            node = if let Some(next) = self.nodes[node].child(token) {
                next
            } else {
                let wildcard = self.nodes[node].child(PARAM);
                let children = self.nodes[node].children.len();
                let max = self.settings.max_children;
                if token.chars().any(is_number) {
                    match wildcard {
                        Some(w) => w,
                        None => self.add_child(node, PARAM),
                    }
                } else {
                    match wildcard {
                        Some(_) if children < max => self.add_child(node, token),
                        Some(w) => w,
                        None if children + 1 < max => self.add_child(node, token),
                        None => self.add_child(node, PARAM),
                    }
                }
            };
        }
        let templates = &self.templates;
        let leaf = &mut self.nodes[node].templates;
        leaf.retain(|t| templates.contains_key(t));
        leaf.push(id);
    }

    /// Every printable template with its line counts in `[from, through)` (ms) by `step`.
    pub(crate) fn patterns(
        &self,
        from: i64,
        through: i64,
        step: i64,
    ) -> Vec<(String, Vec<(i64, i64)>)> {
        let mut out = Vec::new();
        for t in self.templates.values() {
            let Some(pattern) = self.format.render(&t.tokens) else { continue };
            if pattern.is_empty() {
                continue;
            }
            let mut samples = Vec::new();
            t.samples.for_range(
                from,
                through,
                step,
                self.settings.sample_interval_ms,
                &mut samples,
            );
            if !samples.is_empty() {
                out.push((pattern, samples));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;

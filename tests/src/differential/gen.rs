//! The request generator, in Rust: the same grammar rules and the same draws as
//! `tests/tools/differential_gen.py` (the recorder's), so the same seed gives the same requests
//! (the differential test checks this against `requests.json`). The property test uses it to
//! draw many more queries than were recorded.

use skald_common::splitmix::SplitMix64;

const NS: i64 = 1_000_000_000;
/// 2026-11-08T00:00:00Z, where the differential dataset starts.
pub const T0: i64 = 1_794_096_000 * NS;

const SELECTORS_EQ: &[(&str, &[&str])] = &[
    ("app", &["api", "web", "mixed", "legacy", "bulk", "batch", "nope"]),
    ("cluster", &["c1", "c2"]),
    ("namespace", &["prod", "dev", "infra", "jobs"]),
    ("pod", &["api-0", "web-1", "mixed-0", "legacy-1"]),
    ("host", &["h1"]),
    ("service_name", &["api", "web", "unknown_service"]),
];
const REGEXES: &[&str] =
    &["api|web", ".+", "leg.*", "c[12]", "mixed|legacy|bulk", "(?i)API", "a.*", ".*-0", ""];
const FIELDS_NUM: &[&str] = &["status", "bytes", "user_id", "ratio", "nested_deep_n", "n"];
const FIELDS_STR: &[&str] = &[
    "level",
    "msg",
    "method",
    "path",
    "user",
    "user_name",
    "severity",
    "client",
    "app",
    "cluster",
    "trace_id",
    "region",
    "span_id",
    "detected_level",
    "__error__",
];
const WORDS: &[&str] = &[
    "error",
    "timeout",
    "GET",
    "status=500",
    "caf",
    "alice",
    "\u{e9}lodie",
    "level=info",
    "Connection",
    "bulk",
    r#"\""#,
    "503",
    "api/v1",
    "x",
    "",
];
const LINE_REGEXES: &[&str] = &[
    "err.*",
    "(?i)timeout",
    r"status=(4|5)\\d\\d",
    r"^\\{",
    "[0-9]+ms",
    "user=(alice|bob)",
    "worker-[0-3]",
    ".",
    r"\\x1b",
];
const PATTERNS: &[&str] = &[
    "<_> <level> [<worker>] <_>",
    "<date> <time> <level> <_>",
    "level=<level> <_>",
    "<_>status=<status> <_>",
    r#"{\"level\":\"<lvl>\"<_>"#,
];
const LINE_PATTERNS: &[&str] = &[
    "<_> INFO [<_>] <_>",
    "<_> status=500 <_>",
    "level=error <_>",
    "{<_>",
    "<_>timeout<_>",
    "<_> ERROR <_>",
];
const REGEXP_PARSERS: &[&str] = &[
    r"(?P<lvl>[A-Z]+) \\[(?P<w>worker-\\d)\\]",
    r"level=(?P<lv>\\w+)",
    r#"\"status\":(?P<st>\\d+)"#,
    r"(?P<num>\\d+)ms",
];
const TEMPLATES: &[&str] = &[
    "{{.level}}",
    "{{ .msg | ToUpper }}",
    "{{.status}} {{.path}}",
    "{{ __line__ | len }}",
    "{{ __timestamp__ | unixEpoch }}",
    r#"{{ if eq .level \"error\" }}E{{ else }}O{{ end }}"#,
    r#"{{ .user | default \"anon\" }}"#,
    r#"{{ printf \"%s-%s\" .app .level }}"#,
    "{{ .status | int | add 1 }}",
    "{{ trunc 10 __line__ }}",
    "{{ .latency | duration }}",
    r#"{{ __line__ | replace \"a\" \"4\" }}"#,
    "{{ .client }}:{{ .cluster }}",
    r#"{{ regexReplaceAll \"[0-9]+\" __line__ \"N\" }}"#,
    "{{ .nope }}",
    "{{ upper .app }}",
    "{{ __line__ | trim }}",
    "{{ .size | bytes }}",
];
const RANGES: &[&str] = &["1m", "5m", "30s", "10m", "1h", "90s", "2m30s", "1m1s", "17s", "3h"];
const IPS: &[&str] =
    &["10.0.0.0/8", "192.168.0.0/16", "10.0.1.1", "172.16.0.0-172.16.3.255", "::1"];
const SET_OPS: &[&str] = &["and", "or", "unless"];
const CMP_OPS: &[&str] = &["==", "!=", ">", "<", ">=", "<="];

/// The generator: a SplitMix64 stream and the grammar rules.
pub struct Gen {
    r: SplitMix64,
}

fn uniq(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

impl Gen {
    /// A generator whose draws are fixed by `seed`.
    pub fn new(seed: u64) -> Gen {
        Gen { r: SplitMix64::new(seed) }
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.r.below(n)
    }

    pub(crate) fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }

    pub(crate) fn pct(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    pub(crate) fn weighted<T: Clone>(&mut self, pairs: &[(T, usize)]) -> T {
        let total: usize = pairs.iter().map(|p| p.1).sum();
        let mut x = self.below(total);
        for (v, w) in pairs {
            if x < *w {
                return v.clone();
            }
            x -= w;
        }
        pairs[0].0.clone()
    }

    // ---- selectors ----

    fn matcher(&mut self) -> String {
        let (name, values) = SELECTORS_EQ[self.below(SELECTORS_EQ.len())];
        let op = self.weighted(&[("=", 60), ("!=", 12), ("=~", 20), ("!~", 8)]);
        if op == "=~" || op == "!~" {
            let all: Vec<&str> = REGEXES.iter().chain(values.iter()).copied().collect();
            return format!("{name}{op}\"{}\"", self.pick(&all));
        }
        format!("{name}{op}\"{}\"", self.pick(values))
    }

    pub(crate) fn selector(&mut self) -> String {
        let a =
            format!("app=\"{}\"", self.pick(&["api", "web", "mixed", "legacy", "bulk", "batch"]));
        let b = format!("cluster=\"{}\"", self.pick(&["c1", "c2"]));
        let c = format!("app=~\"{}\"", self.pick(&["api|web", ".+", "mixed|legacy", "a.*"]));
        let d = format!("namespace=\"{}\"", self.pick(&["prod", "dev", "infra", "jobs"]));
        let e = format!("service_name=\"{}\"", self.pick(&["api", "unknown_service", "web"]));
        let f = self.matcher();
        let first = self.weighted(&[(a, 55), (b, 10), (c, 15), (d, 10), (e, 5), (f, 2)]);
        let n = self.weighted(&[(0, 75), (1, 20), (2, 5)]);
        let mut ms = vec![first];
        for _ in 0..n {
            ms.push(self.matcher());
        }
        format!("{{{}}}", ms.join(", "))
    }

    // ---- pipeline ----

    fn line_filter(&mut self) -> String {
        let op = self.pick(&["|=", "!=", "|~", "!~", "|>", "!>", "|="]);
        let mut arg = if op == "|>" || op == "!>" {
            format!("\"{}\"", self.pick(LINE_PATTERNS))
        } else if op == "|~" || op == "!~" {
            format!("\"{}\"", self.pick(LINE_REGEXES))
        } else if self.pct(8) {
            format!("ip(\"{}\")", self.pick(IPS))
        } else if self.pct(85) {
            format!("\"{}\"", self.pick(WORDS))
        } else {
            format!("`{}`", self.pick(&[r"a\b", "GET", "{"]))
        };
        if self.pct(12) && !arg.starts_with("ip(") {
            arg.push_str(&format!(" or \"{}\"", self.pick(WORDS)));
        }
        format!("{op} {arg}")
    }

    fn parser(&mut self) -> String {
        let re = format!("| regexp \"{}\"", self.pick(REGEXP_PARSERS));
        let pat = format!("| pattern \"{}\"", self.pick(PATTERNS));
        let s = |x: &str| x.to_string();
        self.weighted(&[
            (s("| json"), 25),
            (s("| logfmt"), 20),
            (s(r#"| json lvl="level", uid="user.id", t="tags[0]", deep="nested.deep.er""#), 6),
            (s("| json status, level"), 3),
            (s("| logfmt --strict"), 4),
            (s("| logfmt --keep-empty"), 3),
            (s(r#"| logfmt level, st="status""#), 3),
            (re, 8),
            (pat, 8),
            (s("| unpack"), 3),
        ])
    }

    fn cmp_num(&mut self) -> &'static str {
        self.pick(&[">", ">=", "<", "<=", "==", "!=", "="])
    }

    fn label_filter(&mut self, depth: usize) -> String {
        let comb = if depth < 2 { 8 } else { 0 };
        let kind = self.weighted(&[
            ("str", 35),
            ("num", 25),
            ("dur", 12),
            ("bytes", 8),
            ("ip", 4),
            ("err", 8),
            ("comb", comb),
        ]);
        match kind {
            "str" => {
                let op = self.pick(&["=", "!=", "=~", "!~"]);
                let v = self.pick(&[
                    "info",
                    "error",
                    "warn",
                    "debug",
                    "api",
                    "alice",
                    "",
                    ".+",
                    "e.*",
                    "c1",
                    "unknown",
                    "INFO",
                    "JSONParserErr",
                ]);
                format!("{}{op}\"{v}\"", self.pick(FIELDS_STR))
            }
            "num" => {
                let f = self.pick(FIELDS_NUM);
                let op = self.cmp_num();
                let v = self.pick(&["200", "400", "499.5", "0", "1e3", "-1", "50000", "3"]);
                format!("{f} {op} {v}")
            }
            "dur" => {
                let f = self.pick(&["latency", "duration"]);
                let op = self.cmp_num();
                let v = self.pick(&["10ms", "1s", "500us", "1m", "250ms", "1.5s"]);
                format!("{f} {op} {v}")
            }
            "bytes" => {
                let f = self.pick(&["size"]);
                let op = self.cmp_num();
                let v = self.pick(&["1KB", "10KiB", "500B", "1MB", "2.5KB"]);
                format!("{f} {op} {v}")
            }
            "ip" => {
                let f = self.pick(&["client", "app"]);
                let op = self.pick(&["=", "!="]);
                format!("{f}{op}ip(\"{}\")", self.pick(IPS))
            }
            "err" => self
                .pick(&[
                    r#"__error__="""#,
                    r#"__error__!="""#,
                    r#"__error__="JSONParserErr""#,
                    r#"__error__=~"Logfmt.*""#,
                ])
                .to_string(),
            _ => {
                let a = self.label_filter(depth + 1);
                let b = self.label_filter(depth + 1);
                let joined = format!("{a} {} {b}", self.pick(&["and", "or", ",", "and"]));
                if self.pct(50) {
                    format!("({joined})")
                } else {
                    joined
                }
            }
        }
    }

    fn stage(&mut self, parsed: bool) -> (String, bool) {
        let k = if !parsed {
            self.weighted(&[
                ("filter", 40),
                ("parser", 45),
                ("decolorize", 3),
                ("lf", 6),
                ("labelfilter", 6),
            ])
        } else {
            self.weighted(&[
                ("filter", 15),
                ("parser", 4),
                ("labelfilter", 40),
                ("lf", 12),
                ("lfmt", 10),
                ("drop", 8),
                ("keep", 6),
                ("decolorize", 2),
            ])
        };
        match k {
            "filter" => (self.line_filter(), parsed),
            "parser" => (self.parser(), true),
            "labelfilter" => (format!("| {}", self.label_filter(0)), parsed),
            "lf" => (format!("| line_format \"{}\"", self.pick(TEMPLATES)), parsed),
            "lfmt" => {
                let mut parts = Vec::new();
                for _ in 0..1 + self.below(2) {
                    let name = self.pick(&["lvl", "x", "app", "st", "level"]);
                    if self.pct(50) {
                        parts.push(format!(
                            "{name}={}",
                            self.pick(&["level", "status", "cluster", "pod"])
                        ));
                    } else {
                        parts.push(format!("{name}=\"{}\"", self.pick(TEMPLATES)));
                    }
                }
                let names = uniq(
                    parts.iter().map(|p| p.split('=').next().unwrap_or("").to_string()).collect(),
                );
                if names.len() < parts.len() {
                    parts.truncate(1);
                }
                (format!("| label_format {}", parts.join(", ")), parsed)
            }
            "drop" => {
                let items = (0..1 + self.below(2))
                    .map(|_| {
                        self.pick(&[
                            "level",
                            "__error__",
                            "__error_details__",
                            "status",
                            "pod",
                            "msg",
                            r#"level="info""#,
                            r#"status="200""#,
                            "detected_level",
                        ])
                        .to_string()
                    })
                    .collect();
                (format!("| drop {}", uniq(items).join(", ")), parsed)
            }
            "keep" => {
                let items = (0..1 + self.below(3))
                    .map(|_| {
                        self.pick(&[
                            "level",
                            "app",
                            "status",
                            "pod",
                            r#"level="error""#,
                            "cluster",
                            "msg",
                        ])
                        .to_string()
                    })
                    .collect();
                (format!("| keep {}", uniq(items).join(", ")), parsed)
            }
            _ => ("| decolorize".to_string(), parsed),
        }
    }

    pub(crate) fn pipeline(&mut self, max_stages: usize) -> Vec<String> {
        let (mut parts, mut parsed) = (Vec::new(), false);
        for _ in 0..self.below(max_stages + 1) {
            let (s, p) = self.stage(parsed);
            parsed = p;
            parts.push(s);
        }
        parts
    }

    /// A log query.
    pub fn log_query(&mut self) -> String {
        let parts = self.pipeline(4);
        let mut all = vec![self.selector()];
        all.extend(parts);
        all.join(" ")
    }

    // ---- metric queries ----

    fn offset(&mut self) -> String {
        if self.pct(10) {
            format!(" offset {}", self.pick(&["1m", "5m", "30s", "1h", "-1m"]))
        } else {
            String::new()
        }
    }

    fn range_agg(&mut self) -> String {
        let fn_ = self.weighted(&[
            ("count_over_time", 25),
            ("rate", 18),
            ("bytes_over_time", 7),
            ("bytes_rate", 6),
            ("absent_over_time", 4),
            ("unwrap", 40),
        ]);
        if fn_ != "unwrap" {
            let parts = self.pipeline(3);
            let mut all = vec![self.selector()];
            all.extend(parts);
            let range = self.pick(RANGES);
            return format!("{fn_}({} [{range}]{})", all.join(" "), self.offset());
        }
        let fn_ = self.pick(&[
            "sum_over_time",
            "avg_over_time",
            "min_over_time",
            "max_over_time",
            "stddev_over_time",
            "stdvar_over_time",
            "quantile_over_time",
            "first_over_time",
            "last_over_time",
            "rate",
            "rate_counter",
        ]);
        let parser = self.pick(&["| json", "| logfmt", "| logfmt", "| json"]);
        let parts = self.pipeline(2);
        let field = self.weighted(&[
            ("status", 25),
            ("bytes", 15),
            ("duration(latency)", 15),
            ("bytes(size)", 10),
            ("user_id", 5),
            ("ratio", 5),
            ("level", 3),
            ("duration_seconds(latency)", 4),
            ("latency", 4),
            ("n", 4),
        ]);
        let tail = if self.pct(60) {
            r#" | __error__="""#.to_string()
        } else if self.pct(10) {
            format!(" | {}", self.label_filter(0))
        } else {
            String::new()
        };
        let mut all = vec![self.selector(), parser.to_string()];
        all.extend(parts);
        let inner = format!("{} | unwrap {field}{tail}", all.join(" "));
        let mut grouping = String::new();
        if !["rate", "rate_counter", "sum_over_time"].contains(&fn_) && self.pct(25) {
            let how = self.pick(&["by", "without"]);
            let labels = (0..1 + self.below(2))
                .map(|_| self.pick(&["app", "pod", "cluster", "level", "namespace"]).to_string())
                .collect();
            grouping = format!(" {how} ({})", uniq(labels).join(", "));
        }
        if fn_ == "quantile_over_time" {
            let q = self.pick(&["0.5", "0.99", "0", "1", "0.9"]);
            let range = self.pick(RANGES);
            return format!(
                "quantile_over_time({q}, {inner} [{range}]{}){grouping}",
                self.offset()
            );
        }
        let range = self.pick(RANGES);
        format!("{fn_}({inner} [{range}]{}){grouping}", self.offset())
    }

    fn grouping(&mut self) -> String {
        if !self.pct(60) {
            return String::new();
        }
        let labels = (0..1 + self.below(3))
            .map(|_| {
                self.pick(&[
                    "app",
                    "cluster",
                    "pod",
                    "namespace",
                    "level",
                    "status",
                    "service_name",
                    "detected_level",
                    "nope",
                ])
                .to_string()
            })
            .collect();
        let labels = uniq(labels).join(", ");
        format!(" {} ({labels})", self.pick(&["by", "by", "without"]))
    }

    fn vector_agg(&mut self, depth: usize) -> String {
        let op = self.pick(&[
            "sum",
            "avg",
            "min",
            "max",
            "count",
            "stddev",
            "stdvar",
            "topk",
            "bottomk",
            "sort",
            "sort_desc",
            "sum",
            "count",
        ]);
        let inner = self.metric(depth + 1, true);
        if op == "topk" || op == "bottomk" {
            let g = self.grouping();
            return format!("{op}{g}({}, {inner})", self.pick(&["1", "2", "3", "10"]));
        }
        if op == "sort" || op == "sort_desc" {
            return format!("{op}({inner})");
        }
        let g = self.grouping();
        if self.pct(50) {
            format!("{op}{g}({inner})")
        } else {
            format!("{op}({inner}){g}")
        }
    }

    fn binop(&mut self, depth: usize) -> String {
        let op = self.weighted(&[
            ("+", 15),
            ("-", 8),
            ("*", 10),
            ("/", 10),
            ("%", 3),
            ("^", 2),
            ("==", 5),
            ("!=", 3),
            (">", 8),
            ("<", 5),
            (">=", 3),
            ("<=", 3),
            ("and", 5),
            ("or", 5),
            ("unless", 4),
        ]);
        let setop = SET_OPS.contains(&op);
        let mut left = self.metric(depth + 1, setop);
        let mut right =
            if self.pct(40) && !setop { self.scalar() } else { self.metric(depth + 1, setop) };
        if self.pct(15) {
            std::mem::swap(&mut left, &mut right);
        }
        let mut modifier = String::new();
        if CMP_OPS.contains(&op) && self.pct(40) {
            modifier.push_str(" bool");
        }
        if self.pct(20) {
            let on = self.pick(&["on", "ignoring"]);
            let labels = self.pick(&["app", "cluster", "app, pod", ""]);
            modifier.push_str(&format!(" {on} ({labels})"));
            if !setop && self.pct(40) {
                modifier.push_str(&format!(
                    " {}",
                    self.pick(&["group_left", "group_right", "group_left (pod)"])
                ));
            }
        }
        let expr = format!("{left} {op}{modifier} {right}");
        if self.pct(50) {
            format!("({expr})")
        } else {
            expr
        }
    }

    pub(crate) fn scalar(&mut self) -> String {
        self.pick(&["1", "2", "0", "0.5", "-1", "100", "1e2", "vector(1)", "vector(0)", "3.25"])
            .to_string()
    }

    /// A metric query (`vector_only`: never a bare scalar).
    pub fn metric(&mut self, depth: usize, vector_only: bool) -> String {
        if depth >= 3 {
            return self.range_agg();
        }
        let scalar = if vector_only { 0 } else { 2 };
        let k = self.weighted(&[
            ("range", 40),
            ("vagg", 30),
            ("bin", 15),
            ("lr", 4),
            ("vec", 3),
            ("paren", 3),
            ("scalar", scalar),
        ]);
        match k {
            "range" => self.range_agg(),
            "vagg" => self.vector_agg(depth),
            "bin" => self.binop(depth),
            "lr" => {
                let inner = self.metric(depth + 1, false);
                let dst = self.pick(&["dst", "app", "x"]);
                let rep = self.pick(&["$1", "v-$1", "${1}x", ""]);
                let src = self.pick(&["app", "pod", "cluster", "nope"]);
                let re = self.pick(&[
                    "(.*)",
                    "a(.*)",
                    r"(.+)-(\\d)",
                    "(.*)",
                    "a(.*)",
                    r"(.+)-(\\d)",
                    "[",
                ]);
                format!("label_replace({inner}, \"{dst}\", \"{rep}\", \"{src}\", \"{re}\")")
            }
            "vec" => format!("vector({})", self.pick(&["1", "0", "2.5"])),
            "paren" => format!("({})", self.metric(depth + 1, false)),
            _ => self.scalar(),
        }
    }

    pub(crate) fn broken(&mut self) -> String {
        self.pick(&[
            r#"{app="api""#,
            r#"rate({app="api"}[1m]"#,
            r#"sum by app (rate({app="api"}[1m]))"#,
            r#"{app="api"} |~ "[""#,
            r#"count_over_time({app="api"})"#,
            "{}",
            r#"{app=""}"#,
            r#"nope({app="api"}[1m])"#,
            r#"{app="api"} | json | unwrap"#,
            r#"topk(rate({app="api"}[1m]))"#,
            r#"{app="api"} | line_format "{{.x""#,
            r#"sum(count_over_time({app="api"}[0s]))"#,
            r#"{app="api"} | foo"#,
            r#"quantile_over_time(2, {app="api"} | json | unwrap status [1m])"#,
        ])
        .to_string()
    }
}

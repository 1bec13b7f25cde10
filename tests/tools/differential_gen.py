"""Generates the differential requests: LogQL queries and request parameters (standard library).

`requests(seed, count)` is deterministic. Every request is `{name, path, params}` where a
list-valued param is a repeated one (`match[]`). The grammar rules below cover every stage and
operator of LogQL; add a rule here when Loki adds a feature, then re-record
(scripts/record-differential.sh).
"""

from differential_data import NS, T0, SplitMix64

MIN = 60 * NS
SELECTORS_EQ = [("app", ["api", "web", "mixed", "legacy", "bulk", "batch", "nope"]),
                ("cluster", ["c1", "c2"]), ("namespace", ["prod", "dev", "infra", "jobs"]),
                ("pod", ["api-0", "web-1", "mixed-0", "legacy-1"]), ("host", ["h1"]),
                ("service_name", ["api", "web", "unknown_service"])]
REGEXES = ["api|web", ".+", "leg.*", "c[12]", "mixed|legacy|bulk", "(?i)API", "a.*", ".*-0", ""]
FIELDS_NUM = ["status", "bytes", "user_id", "ratio", "nested_deep_n", "n"]
FIELDS_STR = ["level", "msg", "method", "path", "user", "user_name", "severity", "client", "app",
              "cluster", "trace_id", "region", "span_id", "detected_level", "__error__"]
FIELDS_DUR = ["latency", "duration"]
FIELDS_BYTES = ["size"]
WORDS = ["error", "timeout", "GET", "status=500", "caf", "alice", "\u00e9lodie", "level=info",
         "Connection", "bulk", "\\\"", "503", "api/v1", "x", ""]
LINE_REGEXES = ["err.*", "(?i)timeout", "status=(4|5)\\\\d\\\\d", "^\\\\{", "[0-9]+ms", "user=(alice|bob)",
                "worker-[0-3]", ".", "\\\\x1b"]
PATTERNS = ["<_> <level> [<worker>] <_>", "<date> <time> <level> <_>", "level=<level> <_>",
            "<_>status=<status> <_>", "{\\\"level\\\":\\\"<lvl>\\\"<_>"]
LINE_PATTERNS = ["<_> INFO [<_>] <_>", "<_> status=500 <_>", "level=error <_>", "{<_>", "<_>timeout<_>",
                 "<_> ERROR <_>"]
REGEXP_PARSERS = ["(?P<lvl>[A-Z]+) \\\\[(?P<w>worker-\\\\d)\\\\]", "level=(?P<lv>\\\\w+)",
                  "\\\"status\\\":(?P<st>\\\\d+)", "(?P<num>\\\\d+)ms"]
TEMPLATES = ["{{.level}}", "{{ .msg | ToUpper }}", "{{.status}} {{.path}}", "{{ __line__ | len }}",
             "{{ __timestamp__ | unixEpoch }}", "{{ if eq .level \\\"error\\\" }}E{{ else }}O{{ end }}",
             "{{ .user | default \\\"anon\\\" }}", "{{ printf \\\"%s-%s\\\" .app .level }}",
             "{{ .status | int | add 1 }}", "{{ trunc 10 __line__ }}", "{{ .latency | duration }}",
             "{{ __line__ | replace \\\"a\\\" \\\"4\\\" }}", "{{ .client }}:{{ .cluster }}",
             "{{ regexReplaceAll \\\"[0-9]+\\\" __line__ \\\"N\\\" }}", "{{ .nope }}", "{{ upper .app }}",
             "{{ __line__ | trim }}", "{{ .size | bytes }}"]
RANGES = ["1m", "5m", "30s", "10m", "1h", "90s", "2m30s", "1m1s", "17s", "3h"]
IPS = ["10.0.0.0/8", "192.168.0.0/16", "10.0.1.1", "172.16.0.0-172.16.3.255", "::1"]


class Gen:
    def __init__(self, seed):
        self.r = SplitMix64(seed)

    def pick(self, seq):
        return self.r.choice(seq)

    def pct(self, p):
        return self.r.chance(p)

    # ---- selectors ----
    def matcher(self):
        name, values = self.pick(SELECTORS_EQ)
        op = self.r.weighted([("=", 60), ("!=", 12), ("=~", 20), ("!~", 8)])
        if op in ("=~", "!~"):
            return '%s%s"%s"' % (name, op, self.pick(REGEXES + values))
        return '%s%s"%s"' % (name, op, self.pick(values))

    def selector(self):
        first = self.r.weighted([
            ('app="%s"' % self.pick(["api", "web", "mixed", "legacy", "bulk", "batch"]), 55),
            ('cluster="%s"' % self.pick(["c1", "c2"]), 10),
            ('app=~"%s"' % self.pick(["api|web", ".+", "mixed|legacy", "a.*"]), 15),
            ('namespace="%s"' % self.pick(["prod", "dev", "infra", "jobs"]), 10),
            ('service_name="%s"' % self.pick(["api", "unknown_service", "web"]), 5),
            (self.matcher(), 2),
        ])
        ms = [first] + [self.matcher() for _ in range(self.r.weighted([(0, 75), (1, 20), (2, 5)]))]
        return "{%s}" % ", ".join(ms)

    # ---- pipeline ----
    def line_filter(self):
        op = self.pick(["|=", "!=", "|~", "!~", "|>", "!>", "|="])
        if op in ("|>", "!>"):
            arg = '"%s"' % self.pick(LINE_PATTERNS)
        elif op in ("|~", "!~"):
            arg = '"%s"' % self.pick(LINE_REGEXES)
        elif self.pct(8):
            arg = 'ip("%s")' % self.pick(IPS)
        else:
            arg = '"%s"' % self.pick(WORDS) if self.pct(85) else "`%s`" % self.pick(["a\\b", "GET", "{"])
        if self.pct(12) and not arg.startswith("ip("):
            arg += ' or "%s"' % self.pick(WORDS)
        return "%s %s" % (op, arg)

    def parser(self):
        return self.r.weighted([
            ("| json", 25), ("| logfmt", 20),
            ('| json lvl="level", uid="user.id", t="tags[0]", deep="nested.deep.er"', 6),
            ("| json status, level", 3),
            ("| logfmt --strict", 4), ("| logfmt --keep-empty", 3), ("| logfmt level, st=\"status\"", 3),
            ('| regexp "%s"' % self.pick(REGEXP_PARSERS), 8),
            ('| pattern "%s"' % self.pick(PATTERNS), 8), ("| unpack", 3),
        ])

    def cmp_num(self):
        return self.pick([">", ">=", "<", "<=", "==", "!=", "="])

    def label_filter(self, depth=0):
        kind = self.r.weighted([("str", 35), ("num", 25), ("dur", 12), ("bytes", 8), ("ip", 4),
                                ("err", 8), ("comb", 8 if depth < 2 else 0)])
        if kind == "str":
            op = self.pick(["=", "!=", "=~", "!~"])
            v = self.pick(["info", "error", "warn", "debug", "api", "alice", "", ".+", "e.*", "c1",
                           "unknown", "INFO", "JSONParserErr"])
            return '%s%s"%s"' % (self.pick(FIELDS_STR), op, v)
        if kind == "num":
            return "%s %s %s" % (self.pick(FIELDS_NUM), self.cmp_num(),
                                 self.pick(["200", "400", "499.5", "0", "1e3", "-1", "50000", "3"]))
        if kind == "dur":
            return "%s %s %s" % (self.pick(FIELDS_DUR), self.cmp_num(),
                                 self.pick(["10ms", "1s", "500us", "1m", "250ms", "1.5s"]))
        if kind == "bytes":
            return "%s %s %s" % (self.pick(FIELDS_BYTES), self.cmp_num(),
                                 self.pick(["1KB", "10KiB", "500B", "1MB", "2.5KB"]))
        if kind == "ip":
            return '%s%sip("%s")' % (self.pick(["client", "app"]), self.pick(["=", "!="]), self.pick(IPS))
        if kind == "err":
            return self.pick(['__error__=""', '__error__!=""', '__error__="JSONParserErr"',
                              '__error__=~"Logfmt.*"'])
        a, b = self.label_filter(depth + 1), self.label_filter(depth + 1)
        joined = "%s %s %s" % (a, self.pick(["and", "or", ",", "and"]), b)
        return "(%s)" % joined if self.pct(50) else joined

    def stage(self, parsed):
        if not parsed:
            k = self.r.weighted([("filter", 40), ("parser", 45), ("decolorize", 3), ("lf", 6),
                                 ("labelfilter", 6)])
        else:
            k = self.r.weighted([("filter", 15), ("parser", 4), ("labelfilter", 40), ("lf", 12),
                                 ("lfmt", 10), ("drop", 8), ("keep", 6), ("decolorize", 2)])
        if k == "filter":
            return self.line_filter(), parsed
        if k == "parser":
            return self.parser(), True
        if k == "labelfilter":
            return "| " + self.label_filter(), parsed
        if k == "lf":
            return '| line_format "%s"' % self.pick(TEMPLATES), parsed
        if k == "lfmt":
            parts = []
            for _ in range(1 + self.r.below(2)):
                name = self.pick(["lvl", "x", "app", "st", "level"])
                if self.pct(50):
                    parts.append("%s=%s" % (name, self.pick(["level", "status", "cluster", "pod"])))
                else:
                    parts.append('%s="%s"' % (name, self.pick(TEMPLATES)))
            if len(set(p.split("=")[0] for p in parts)) < len(parts):
                parts = parts[:1]
            return "| label_format " + ", ".join(parts), parsed
        if k == "drop":
            items = [self.pick(["level", "__error__", "__error_details__", "status", "pod", "msg",
                                'level="info"', 'status="200"', "detected_level"])
                     for _ in range(1 + self.r.below(2))]
            return "| drop " + ", ".join(dict.fromkeys(items)), parsed
        if k == "keep":
            items = [self.pick(["level", "app", "status", "pod", 'level="error"', "cluster", "msg"])
                     for _ in range(1 + self.r.below(3))]
            return "| keep " + ", ".join(dict.fromkeys(items)), parsed
        return "| decolorize", parsed

    def pipeline(self, max_stages=4):
        parts, parsed = [], False
        for _ in range(self.r.below(max_stages + 1)):
            s, parsed = self.stage(parsed)
            parts.append(s)
        return parts, parsed

    def log_query(self):
        parts, _ = self.pipeline()
        return " ".join([self.selector()] + parts)

    # ---- metric queries ----
    def rng_(self):
        return self.pick(RANGES)

    def offset(self):
        return " offset %s" % self.pick(["1m", "5m", "30s", "1h", "-1m"]) if self.pct(10) else ""

    def range_agg(self):
        fn = self.r.weighted([("count_over_time", 25), ("rate", 18), ("bytes_over_time", 7),
                              ("bytes_rate", 6), ("absent_over_time", 4), ("unwrap", 40)])
        if fn != "unwrap":
            parts, _ = self.pipeline(3)
            return "%s(%s [%s]%s)" % (fn, " ".join([self.selector()] + parts), self.rng_(), self.offset())
        fn = self.pick(["sum_over_time", "avg_over_time", "min_over_time", "max_over_time",
                        "stddev_over_time", "stdvar_over_time", "quantile_over_time", "first_over_time",
                        "last_over_time", "rate", "rate_counter"])
        parser = self.pick(["| json", "| logfmt", "| logfmt", "| json"])
        parts, _ = self.pipeline(2)
        field = self.r.weighted([("status", 25), ("bytes", 15), ("duration(latency)", 15),
                                 ("bytes(size)", 10), ("user_id", 5), ("ratio", 5), ("level", 3),
                                 ("duration_seconds(latency)", 4), ("latency", 4), ("n", 4)])
        tail = ""
        if self.pct(60):
            tail = " | __error__=\"\""
        elif self.pct(10):
            tail = " | %s" % self.label_filter()
        inner = " ".join([self.selector(), parser] + parts) + " | unwrap %s%s" % (field, tail)
        grouping = ""
        if fn not in ("rate", "rate_counter", "sum_over_time") and self.pct(25):
            grouping = " %s (%s)" % (self.pick(["by", "without"]),
                                     ", ".join(dict.fromkeys(self.pick(["app", "pod", "cluster", "level", "namespace"])
                                                             for _ in range(1 + self.r.below(2)))))
        if fn == "quantile_over_time":
            return "quantile_over_time(%s, %s [%s]%s)%s" % (
                self.pick(["0.5", "0.99", "0", "1", "0.9"]), inner, self.rng_(), self.offset(), grouping)
        return "%s(%s [%s]%s)%s" % (fn, inner, self.rng_(), self.offset(), grouping)

    def grouping(self):
        if not self.pct(60):
            return ""
        labels = ", ".join(dict.fromkeys(self.pick(["app", "cluster", "pod", "namespace", "level",
                                                    "status", "service_name", "detected_level", "nope"])
                                         for _ in range(1 + self.r.below(3))))
        return " %s (%s)" % (self.pick(["by", "by", "without"]), labels)

    def vector_agg(self, depth):
        op = self.pick(["sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk",
                        "sort", "sort_desc", "sum", "count"])
        inner = self.metric(depth + 1, True)
        if op in ("topk", "bottomk"):
            g = self.grouping()
            return "%s%s(%s, %s)" % (op, g, self.pick(["1", "2", "3", "10"]), inner)
        if op in ("sort", "sort_desc"):
            return "%s(%s)" % (op, inner)
        g = self.grouping()
        if self.pct(50):
            return "%s%s(%s)" % (op, g, inner)
        return "%s(%s)%s" % (op, inner, g)

    def binop(self, depth):
        op = self.r.weighted([("+", 15), ("-", 8), ("*", 10), ("/", 10), ("%", 3), ("^", 2),
                              ("==", 5), ("!=", 3), (">", 8), ("<", 5), (">=", 3), ("<=", 3),
                              ("and", 5), ("or", 5), ("unless", 4)])
        left = self.metric(depth + 1, op in ("and", "or", "unless"))
        setop = op in ("and", "or", "unless")
        right = self.scalar() if self.pct(40) and not setop else self.metric(depth + 1, setop)
        if self.pct(15):
            left, right = right, left
        mod = ""
        if op in ("==", "!=", ">", "<", ">=", "<=") and self.pct(40):
            mod += " bool"
        if self.pct(20):
            mod += " %s (%s)" % (self.pick(["on", "ignoring"]), self.pick(["app", "cluster", "app, pod", ""]))
            if op not in ("and", "or", "unless") and self.pct(40):
                mod += " %s" % self.pick(["group_left", "group_right", "group_left (pod)"])
        expr = "%s %s%s %s" % (left, op, mod, right)
        return "(%s)" % expr if self.pct(50) else expr

    def scalar(self):
        return self.pick(["1", "2", "0", "0.5", "-1", "100", "1e2", "vector(1)", "vector(0)", "3.25"])

    def metric(self, depth=0, vector_only=False):
        if depth >= 3:
            return self.range_agg()
        k = self.r.weighted([("range", 40), ("vagg", 30), ("bin", 15), ("lr", 4), ("vec", 3),
                             ("paren", 3), ("scalar", 0 if vector_only else 2)])
        if k == "range":
            return self.range_agg()
        if k == "vagg":
            return self.vector_agg(depth)
        if k == "bin":
            return self.binop(depth)
        if k == "lr":
            return 'label_replace(%s, "%s", "%s", "%s", "%s")' % (
                self.metric(depth + 1), self.pick(["dst", "app", "x"]), self.pick(["$1", "v-$1", "${1}x", ""]),
                self.pick(["app", "pod", "cluster", "nope"]),
                self.pick(["(.*)", "a(.*)", "(.+)-(\\\\d)", "(.*)", "a(.*)", "(.+)-(\\\\d)", "["]))
        if k == "vec":
            return "vector(%s)" % self.pick(["1", "0", "2.5"])
        if k == "paren":
            return "(%s)" % self.metric(depth + 1)
        return self.scalar()

    def broken(self):
        return self.pick(['{app="api"', 'rate({app="api"}[1m]', 'sum by app (rate({app="api"}[1m]))',
                          '{app="api"} |~ "["', 'count_over_time({app="api"})', '{}',
                          '{app=""}', 'nope({app="api"}[1m])', '{app="api"} | json | unwrap',
                          'topk(rate({app="api"}[1m]))', '{app="api"} | line_format "{{.x"',
                          'sum(count_over_time({app="api"}[0s]))', '{app="api"} | foo',
                          'quantile_over_time(2, {app="api"} | json | unwrap status [1m])'])

    # ---- parameters ----
    def when(self, ns):
        f = self.r.weighted([("ns", 70), ("rfc", 12), ("secs", 10), ("fsecs", 8)])
        if f == "ns":
            return str(ns)
        if f == "secs":
            return str(ns // NS)
        if f == "fsecs":
            return "%d.%03d" % (ns // NS, ns // 1_000_000 % 1000)
        return rfc3339(ns)

    def window(self):
        kind = self.r.weighted([("main", 70), ("edge", 10), ("backfill", 8), ("wide", 7), ("empty", 5)])
        if kind == "main":
            start = T0 + self.r.below(50) * MIN
            if self.pct(30):
                start += self.r.below(60_000) * 1_000_000 + self.r.below(1000)
            end = start + self.pick([5, 10, 17, 30, 45, 60, 70, 120]) * MIN
        elif kind == "edge":
            start = T0 - self.r.below(10) * MIN
            end = T0 + self.r.below(70) * MIN + 1
        elif kind == "backfill":
            start = T0 - 3 * 86400 * NS - self.r.below(10) * MIN
            end = start + self.pick([5, 20, 60]) * MIN
        elif kind == "wide":
            start = T0 - 3 * 86400 * NS - 3600 * NS
            end = T0 + 2 * 3600 * NS
        else:
            start = T0 + 5 * 3600 * NS
            end = start + 30 * MIN
        return start, end

    def step(self, start, end):
        span_s = max(1, (end - start) // NS)
        s = self.r.weighted([("fixed", 55), ("odd", 20), ("frac", 10), ("long", 5), ("auto", 10)])
        if s == "fixed":
            return self.pick(["15s", "30s", "1m", "60", "5m", "2m", "1m30s", "10s"]) if span_s <= 7200 \
                else self.pick(["1h", "2h", "3600", "30m"])
        if s == "odd":
            return str(max(7, span_s // 97 + self.r.below(13)))
        if s == "frac":
            return "%d.%d" % (max(5, span_s // 200) + self.r.below(40), 1 + self.r.below(9))
        if s == "long":
            return "%ds" % (span_s + 1 + self.r.below(3600))
        return None

    # ---- requests ----
    def range_request(self, query, metric):
        start, end = self.window()
        p = {"query": query, "start": self.when(start), "end": self.when(end)}
        if metric:
            st = self.step(start, end)
            if st is not None:
                p["step"] = st
            if self.pct(10):
                p["limit"] = str(self.pick([10, 100, 1000]))
        else:
            if self.pct(80):
                p["limit"] = str(self.pick([1, 5, 20, 50, 100, 100, 250]))
            if self.pct(60):
                p["direction"] = self.pick(["backward", "forward", "FORWARD"])
            if self.pct(12):
                p["interval"] = self.pick(["10s", "1m", "30", "5m"])
            if self.pct(5):
                p["step"] = self.pick(["1m", "15s"])
        return {"path": "/loki/api/v1/query_range", "params": p}

    def instant_request(self):
        t = T0 + self.r.below(75) * MIN + (self.r.below(60000) * 1_000_000 if self.pct(30) else 0)
        if self.pct(2):
            q = self.log_query()
        elif self.pct(5):
            q = self.scalar()
        else:
            q = self.metric()
        p = {"query": q, "time": self.when(t)}
        if self.pct(10):
            p["limit"] = str(self.pick([5, 100]))
        if self.pct(5):
            p["direction"] = "forward"
        return {"path": "/loki/api/v1/query", "params": p}

    def meta_request(self):
        start, end = self.window()
        kind = self.r.weighted([("labels", 12), ("values", 14), ("series", 14), ("stats", 10),
                                ("volume", 10), ("volume_range", 8), ("dlabels", 8), ("dfields", 10),
                                ("dvalues", 8), ("since", 4), ("patterns", 2)])
        p = {"start": self.when(start), "end": self.when(end)}
        sel = self.selector()
        if kind == "since":
            p = {"end": str(end), "since": self.pick(["1h", "30m", "72h", "5m"])}
            kind = self.pick(["labels", "values", "series"])
        if kind == "labels":
            if self.pct(50):
                p["query"] = sel
            return {"path": "/loki/api/v1/labels", "params": p}
        if kind == "values":
            name = self.pick(["app", "cluster", "pod", "namespace", "host", "service_name", "nope", "level"])
            if self.pct(50):
                p["query"] = sel
            return {"path": "/loki/api/v1/label/%s/values" % name, "params": p}
        if kind == "series":
            n = 1 + self.r.below(2)
            p["match[]"] = [self.selector() for _ in range(n)]
            return {"path": "/loki/api/v1/series", "params": p}
        if kind == "stats":
            p["query"] = sel
            return {"path": "/loki/api/v1/index/stats", "params": p}
        if kind in ("volume", "volume_range"):
            p["query"] = sel
            if self.pct(40):
                p["limit"] = str(self.pick([1, 3, 100]))
            if self.pct(30):
                p["targetLabels"] = self.pick(["app", "cluster,pod", "namespace"])
            if self.pct(20):
                p["aggregateBy"] = self.pick(["labels", "series"])
            if kind == "volume_range":
                p["step"] = self.pick(["60", "5m", "1h", "17m"])
                return {"path": "/loki/api/v1/index/volume_range", "params": p}
            return {"path": "/loki/api/v1/index/volume", "params": p}
        if kind == "dlabels":
            p["query"] = sel
            return {"path": "/loki/api/v1/detected_labels", "params": p}
        if kind == "dfields":
            parts, _ = self.pipeline(2)
            p["query"] = " ".join([sel] + parts)
            if self.pct(30):
                p["limit"] = str(self.pick([5, 100, 1000]))
            if self.pct(20):
                p["line_limit"] = str(self.pick([10, 100]))
            return {"path": "/loki/api/v1/detected_fields", "params": p}
        if kind == "dvalues":
            name = self.pick(["level", "status", "latency", "user", "msg", "detected_level", "nope", "client"])
            p["query"] = sel
            return {"path": "/loki/api/v1/detected_field/%s/values" % name, "params": p}
        p["query"] = sel
        p["step"] = "1m"
        return {"path": "/loki/api/v1/patterns", "params": p}

    def request(self):
        k = self.r.weighted([("log", 33), ("metric", 35), ("instant", 14), ("meta", 16), ("broken", 2)])
        if k == "log":
            return self.range_request(self.log_query(), False)
        if k == "metric":
            return self.range_request(self.metric(), True)
        if k == "instant":
            return self.instant_request()
        if k == "meta":
            return self.meta_request()
        return self.range_request(self.broken(), False)


def rfc3339(ns):
    import datetime as dt
    secs, frac = divmod(ns, NS)
    text = dt.datetime.fromtimestamp(secs, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += (".%09d" % frac).rstrip("0")
    return text + "Z"


def requests(seed, count):
    g = Gen(seed)
    out = []
    for i in range(count):
        r = g.request()
        r["name"] = "d%05d" % (i + 1)
        out.append({"name": r["name"], "path": r["path"], "params": r["params"]})
    return out

"""The differential dataset: push bodies for `differential.py` (standard library only).

Deterministic: the same seed gives byte-identical bodies. Tenant `tenant-d`. T0 is
2026-11-08T00:00:00Z; the main streams span T0 to about T0+1h, a backfilled stream lies three
days earlier. What the bodies hold (see tests/data/differential/README.md):

* 16 main streams `{app, cluster, namespace, pod}`: app `api` (JSON lines), `web` (logfmt),
  `mixed` (JSON, logfmt, lines that are both and lines that are neither) and `legacy` (plain
  text with some non-UTF-8 bytes), two clusters, two pods each. 260 entries per stream, some
  with the same timestamp as the one before (a different line, or the very same line again),
  some out of order inside a body; structured metadata on some entries.
* `{cluster="c2", namespace="infra", host="h1"}`: a stream with no service-name label.
* `{app="bulk", ...}`: very long lines (2 KB to 140 KB).
* Then bodies that test the write path: out-of-order entries within Loki's window (accepted),
  entries too far behind the stream's newest one (rejected), a line over 256 KB (rejected),
  and a backfilled stream three days before T0.
"""

import hashlib
import json

import loki_reference

T0_S = 1794096000  # 2026-11-08T00:00:00Z
NS = 1_000_000_000
MS = 1_000_000
T0 = T0_S * NS
TENANT = "tenant-d"
PER_STREAM = 260
MAX_PER_BODY = 1000


class SplitMix64(loki_reference.SplitMix64):
    """loki_reference.py's SplitMix64 (as skald_common::splitmix), with percent chances."""

    def chance(self, percent):
        return self.below(100) < percent


LEVELS = [("info", 60), ("debug", 15), ("warn", 15), ("error", 10)]
USERS = ["alice", "bob", "carol", "dave", "eve", "mallory", "trent", "\u00e9lodie", "\u65e5\u672c"]
PATHS = ["/api/v1/users", "/api/v1/orders", "/health", "/login", "/static/app.js", "/api/v2/search"]
MSGS = ["request served", "cache miss", "upstream timeout", "retrying request",
        "connection reset by peer", "user logged in", "slow query", "payment accepted"]
STATUSES = [(200, 60), (201, 8), (204, 5), (301, 4), (404, 10), (429, 3), (500, 7), (503, 3)]


def ip(rng):
    return rng.choice(["10.0.%d.%d", "192.168.%d.%d", "172.16.%d.%d"]) % (rng.below(4), rng.below(256))


def duration(rng):
    unit = rng.choice(["ms", "ms", "s", "us", "m"])
    if unit == "m":
        return "%dm%ds" % (1 + rng.below(3), rng.below(60))
    if unit == "s":
        return "%d.%ds" % (rng.below(10), rng.below(10))
    return "%d%s" % (1 + rng.below(900), unit)


def size(rng):
    return rng.choice(["%dB" % rng.below(1000), "%d.%dKB" % (rng.below(100), rng.below(10)),
                       "%dKiB" % rng.below(64), "%d.%dMB" % (rng.below(5), rng.below(10))])


def trace_id(key):
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def json_line(rng, i):
    status = rng.weighted(STATUSES)
    obj = {
        "level": rng.weighted(LEVELS),
        "msg": rng.choice(MSGS),
        "method": rng.choice(["GET", "POST", "PUT", "DELETE"]),
        "path": rng.choice(PATHS),
        "status": status,
        "latency": duration(rng),
        "size": size(rng),
        "bytes": rng.below(100000),
        "user": {"id": rng.below(500), "name": rng.choice(USERS)},
        "tags": [rng.choice(["a", "b", "c"])],
        "client": ip(rng),
    }
    if i % 9 == 4:
        obj["ratio"] = rng.below(1000) / 7.0
    if i % 13 == 6:
        obj["nested"] = {"deep": {"er": rng.choice(["x", "y"]), "n": rng.below(10)}}
    if i % 17 == 8:
        del obj["level"]
        obj["severity"] = rng.choice(["WARNING", "ERROR", "INFO"])
    line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    if i % 41 == 40:
        line = line[: len(line) // 2]
    return line


def logfmt_line(rng, i):
    level = rng.weighted(LEVELS)
    msg = rng.choice(MSGS)
    if i % 7 == 3:
        msg = "\x1b[31m%s\x1b[0m" % msg
    parts = ["level=%s" % level, 'msg="%s"' % msg, "status=%d" % rng.weighted(STATUSES),
             "latency=%s" % duration(rng), "size=%s" % size(rng),
             "user=%s" % rng.choice(USERS), "client=%s" % ip(rng)]
    if i % 11 == 5:
        parts.append("user_agent=")
    if i % 19 == 7:
        parts.append('err="quoted \\"inner\\" text"')
    if i % 23 == 11:
        parts.append("dup=1 dup=2")
    return " ".join(parts)


def plain_line(rng, i, t_ns):
    level = rng.weighted(LEVELS).upper()
    secs = (t_ns // NS) % 86400
    head = "2026-11-08 %02d:%02d:%02d.%03d %s [worker-%d]" % (
        secs // 3600, secs // 60 % 60, secs % 60, t_ns // MS % 1000, level, rng.below(6))
    tail = rng.choice([
        "Connection from %s port %d closed" % (ip(rng), 1024 + rng.below(60000)),
        "processed %d items in %s" % (rng.below(1000), duration(rng)),
        "disk usage at %d%%" % rng.below(100),
        "GET %s took %s" % (rng.choice(PATHS), duration(rng)),
    ])
    line = "%s %s" % (head, tail)
    if i % 29 == 13:
        # invalid UTF-8: a Latin-1 byte and two bytes that never occur in UTF-8
        line += " caf\udce9 \udcff\udcfe end"
    if i % 31 == 2:
        line += "   "
    return line


def mixed_line(rng, i, t_ns):
    kind = i % 4
    if kind == 0:
        return json_line(rng, i)
    if kind == 1:
        return logfmt_line(rng, i)
    if kind == 2:
        # both: valid JSON whose text also reads as logfmt pairs
        return json.dumps({"msg": "level=%s status=%d" % (rng.weighted(LEVELS), rng.weighted(STATUSES)),
                           "n": rng.below(100)}, separators=(",", ":"))
    return plain_line(rng, i, t_ns)


def stream_entries(rng, app, k, n):
    """n entries of one main stream; k is the stream's number (a timestamp offset in us)."""
    entries = []
    t = T0 + k * 1000
    for i in range(n):
        step = 13 * NS + rng.below(2000) * MS
        if i % 37 == 36:
            step = 0  # same timestamp, another line
        t += step
        if app == "api":
            line = json_line(rng, i)
        elif app == "web":
            line = logfmt_line(rng, i)
        elif app == "mixed":
            line = mixed_line(rng, i, t)
        else:
            line = plain_line(rng, i, t)
        meta = None
        if app == "api" and i % 5 == 2:
            meta = {"trace_id": trace_id("%s:%d:%d" % (app, k, i)), "user": rng.choice(USERS[:5])}
        elif app == "web" and i % 7 == 1:
            meta = {"span_id": trace_id("span:%d:%d" % (k, i))[:8]}
        elif app == "mixed" and i % 11 == 3:
            meta = {"region": rng.choice(["eu", "us"])}
        entries.append((t, line, meta))
        if i % 53 == 52:
            entries.append((t, line, meta))  # the very same entry again
    # a few pairs swapped: out of order inside the body
    for j in range(5, len(entries) - 1, 47):
        entries[j], entries[j + 1] = entries[j + 1], entries[j]
    return entries


def main_streams(rng):
    streams = []
    k = 0
    for app in ["api", "web", "mixed", "legacy"]:
        for cluster in ["c1", "c2"]:
            for pod in range(2):
                labels = {"app": app, "cluster": cluster,
                          "namespace": "prod" if pod == 0 else "dev", "pod": "%s-%d" % (app, pod)}
                streams.append((labels, stream_entries(rng, app, k, PER_STREAM)))
                k += 1
    infra = []
    t = T0 + 500 * MS
    for i in range(200):
        t += 17 * NS + rng.below(1000) * MS
        infra.append((t, plain_line(rng, i, t), None))
    streams.append(({"cluster": "c2", "namespace": "infra", "host": "h1"}, infra))
    bulk = []
    for i, n in enumerate([2000, 9000, 30000, 70000, 140000, 4000, 16000]):
        unit = "%d-%s " % (i, rng.choice(["alpha", "beta", "gamma"]))
        line = ("level=info bulk=%d " % i + unit * (n // len(unit) + 1))[:n]
        bulk.append((T0 + (5 + i * 8) * 60 * NS + 123 * MS, line, None))
    streams.append(({"app": "bulk", "cluster": "c1", "namespace": "prod", "pod": "bulk-0"}, bulk))
    return streams


def pack(streams):
    bodies, current, count = [], [], 0
    for labels, entries in streams:
        pos = 0
        while pos < len(entries):
            if count == MAX_PER_BODY:
                bodies.append(current)
                current, count = [], 0
            take = min(MAX_PER_BODY - count, len(entries) - pos)
            current.append((labels, entries[pos:pos + take]))
            count += take
            pos += take
    if current:
        bodies.append(current)
    return bodies


def encode(body):
    streams = []
    for labels, entries in body:
        values = [[str(t), line, meta] if meta else [str(t), line] for t, line, meta in entries]
        streams.append({"stream": labels, "values": values})
    text = json.dumps({"streams": streams}, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "surrogateescape")


def bodies(seed=1):
    """[(name, bytes)] in push order."""
    rng = SplitMix64(seed * 1000 + 7)
    out = [encode(b) for b in pack(main_streams(rng))]
    api0 = {"app": "api", "cluster": "c1", "namespace": "prod", "pod": "api-0"}
    web1 = {"app": "web", "cluster": "c2", "namespace": "dev", "pod": "web-1"}
    # out of order, within the hour before each stream's newest entry: accepted
    late = [(T0 + 50 * 60 * NS + i * 7 * NS + 1, logfmt_line(rng, i), None) for i in range(30)]
    out.append(encode([(web1, late)]))
    # two days behind the stream's newest entry: rejected; one recent entry in the same body
    behind = [(T0 - 2 * 86400 * NS + i * NS, json_line(rng, i), None) for i in range(3)]
    behind.append((T0 + 59 * 60 * NS + 5, json_line(rng, 3), None))
    out.append(encode([(api0, behind)]))
    # a line over 256 KB: rejected
    out.append(encode([({"app": "bulk", "cluster": "c1", "namespace": "prod", "pod": "bulk-0"},
                        [(T0 + 58 * 60 * NS, "x" * 300000, None)])]))
    # backfill: a stream three days old
    old = T0 - 3 * 86400 * NS
    batch = [(old + i * 3 * NS + rng.below(1000) * MS, logfmt_line(rng, i), None) for i in range(200)]
    out.append(encode([({"app": "batch", "cluster": "c1", "namespace": "jobs"}, batch)]))
    return [("push-%04d.json" % (i + 1), b) for i, b in enumerate(out)]

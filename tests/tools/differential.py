#!/usr/bin/env python3
"""Records the differential corpus (tests/data/differential) from a real Loki.

Standard library only. Subcommands:
  bodies   --out DIR [--seed N]              write the push bodies (DIR/push-NNNN.json)
  requests --out FILE [--seed N] [--count N] write the generated requests (JSON list)
  record   --url URL --dir DIR [--wait S] [--workers N]
           push DIR/push/* in name order (statuses to DIR/push-results.json), POST /flush,
           wait, run every request of DIR/requests.json, and write DIR/answers.jsonl.gz (one
           `{name, status, content_type, body}` per line, in request order). A body that is
           JSON is stored parsed; other UTF-8 text as a string; anything else as
           `{"base64": ...}` under `body_bytes`.
  check    --url URL --dir DIR                run the requests again and count answers that
           differ from the recorded ones (Loki against itself)

scripts/record-differential.sh runs the whole recording against a fresh Loki.
"""

import argparse
import base64
import concurrent.futures
import gzip
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import differential_data  # noqa: E402
import differential_gen  # noqa: E402


def http(method, url, headers, body=None, timeout=120):
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read()


def encode_params(params):
    pairs = []
    for key, value in params.items():
        for v in (value if isinstance(value, list) else [value]):
            pairs.append((key, v))
    return urllib.parse.urlencode(pairs)


def stored_body(raw):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "body_bytes", {"base64": base64.b64encode(raw).decode()}
    try:
        return "body", json.loads(text)
    except ValueError:
        return "body", text


def cmd_bodies(args):
    os.makedirs(args.out, exist_ok=True)
    for name, body in differential_data.bodies(args.seed):
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(body)
    print("bodies written to %s" % args.out)


def cmd_requests(args):
    reqs = differential_gen.requests(args.seed, args.count)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(r, ensure_ascii=False, sort_keys=True) for r in reqs) + "\n]\n")
    print("%d requests written to %s" % (len(reqs), args.out))


def run_one(url, tenant, r):
    q = encode_params(r["params"])
    full = url.rstrip("/") + r["path"] + ("?" + q if q else "")
    status, ctype, raw = http("GET", full, {"X-Scope-OrgID": tenant})
    key, body = stored_body(raw)
    return {"name": r["name"], "status": status, "content_type": ctype, key: body}


def run_all(url, tenant, reqs, workers):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda r: run_one(url, tenant, r), reqs))


def cmd_record(args):
    push_dir = os.path.join(args.dir, "push")
    names = sorted(n for n in os.listdir(push_dir) if n.startswith("push-"))
    results = []
    for name in names:
        with open(os.path.join(push_dir, name), "rb") as f:
            body = f.read()
        status, ctype, raw = http("POST", args.url.rstrip("/") + "/loki/api/v1/push",
                                  {"Content-Type": "application/json", "X-Scope-OrgID": args.tenant}, body)
        results.append({"file": name, "status": status, "content_type": ctype,
                        "body": raw.decode("utf-8", "replace")})
        print("pushed %s: %d %s" % (name, status, raw[:200].decode("utf-8", "replace").strip()))
        time.sleep(args.pause)
    with open(os.path.join(args.dir, "push-results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, ensure_ascii=False)
        f.write("\n")
    status, _, raw = http("POST", args.url.rstrip("/") + "/flush", {})
    print("flush: %d %s" % (status, raw[:100]))
    time.sleep(args.wait)
    with open(os.path.join(args.dir, "requests.json"), encoding="utf-8") as f:
        reqs = json.load(f)
    started = time.time()
    answers = run_all(args.url, args.tenant, reqs, args.workers)
    print("%d requests in %.1f s" % (len(answers), time.time() - started))
    out = os.path.join(args.dir, "answers.jsonl.gz")
    with gzip.GzipFile(out, "wb", compresslevel=9, mtime=0) as f:
        for a in answers:
            f.write((json.dumps(a, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
    counts = {}
    for a in answers:
        counts[a["status"]] = counts.get(a["status"], 0) + 1
    print("statuses: %s; written %s (%d bytes)" % (counts, out, os.path.getsize(out)))


def without_stats(answer):
    """The answer without the `stats` objects (timings differ on every run) and with the lists
    Loki builds from Go maps sorted (see tests/data/reference/README.md)."""
    def clean(v):
        if isinstance(v, dict):
            out = {k: clean(x) for k, x in v.items() if k != "stats"}
            for k in ("detectedLabels", "fields", "values"):
                if isinstance(out.get(k), list):
                    out[k] = sorted(out[k], key=lambda x: json.dumps(x, sort_keys=True))
            return out
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v
    return clean(answer)


def cmd_check(args):
    with open(os.path.join(args.dir, "requests.json"), encoding="utf-8") as f:
        reqs = json.load(f)
    with gzip.open(os.path.join(args.dir, "answers.jsonl.gz"), "rt", encoding="utf-8") as f:
        recorded = [json.loads(line) for line in f]
    again = run_all(args.url, args.tenant, reqs, args.workers)
    differ = [b["name"] for a, b in zip(recorded, again) if without_stats(a) != without_stats(b)]
    print("%d of %d answers differ from the recording: %s" % (len(differ), len(again), differ[:50]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bodies")
    b.add_argument("--out", required=True)
    b.add_argument("--seed", type=int, default=1)
    r = sub.add_parser("requests")
    r.add_argument("--out", required=True)
    r.add_argument("--seed", type=int, default=20)
    r.add_argument("--count", type=int, default=5200)
    for name in ("record", "check"):
        c = sub.add_parser(name)
        c.add_argument("--url", required=True)
        c.add_argument("--dir", required=True)
        c.add_argument("--tenant", default=differential_data.TENANT)
        c.add_argument("--workers", type=int, default=4)
        c.add_argument("--wait", type=float, default=30)
        c.add_argument("--pause", type=float, default=0.2)
    args = ap.parse_args()
    {"bodies": cmd_bodies, "requests": cmd_requests, "record": cmd_record, "check": cmd_check}[args.cmd](args)


if __name__ == "__main__":
    main()

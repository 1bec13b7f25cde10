#!/usr/bin/env python3
"""Peak RSS of queries over unflushed ingester data (issue 13 item 11).
usage: unflushed.py SKALD_BIN MB"""
import json, os, random, subprocess, sys, threading, time, urllib.request, urllib.parse, socket, shutil

bin_, mb = sys.argv[1], int(sys.argv[2])
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
http, grpc = free_port(), free_port()
d = f"/tmp/skald-unflushed-{os.getpid()}"; shutil.rmtree(d, ignore_errors=True); os.makedirs(d)
open(f"{d}/c.yaml", "w").write(f"""server:
  http_listen_port: {http}
  grpc_listen_port: {grpc}
  log_level: warn
common:
  path_prefix: {d}/data
ingester:
  flush_check_period: 1h
  chunk_idle_period: 2h
limits_config:
  ingestion_rate_mb: 10000
  ingestion_burst_size_mb: 10000
  per_stream_rate_limit: 10000MB
  per_stream_rate_limit_burst: 10000MB
  max_query_length: 0
""")
p = subprocess.Popen([bin_, f"-config.file={d}/c.yaml"], stderr=open(f"{d}/log", "w"))
url = f"http://127.0.0.1:{http}"
for _ in range(300):
    try:
        if urllib.request.urlopen(url + "/ready", timeout=1).status == 200: break
    except Exception: time.sleep(0.1)
def rss():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1]) // 1024
random.seed(1)
words = ["GET", "POST", "user", "session", "ok", "error", "timeout", "db", "cache", "miss", "hit", "req", "id"]
now = time.time_ns(); start = now - 50 * 60 * 10**9
total = 0; n = 0; streams = 10
target = mb * 1_000_000
per = 20000
while total < target:
    vals = {s: [] for s in range(streams)}
    for i in range(per):
        line = " ".join(random.choice(words) + str(random.randint(0, 99999)) for _ in range(25))
        if n % 100_000 == 0: line += " needle-5kald"
        ts = start + n * 1000
        vals[n % streams].append([str(ts), line]); total += len(line); n += 1
    body = json.dumps({"streams": [{"stream": {"job": f"j{s}"}, "values": v} for s, v in vals.items()]}).encode()
    r = urllib.request.urlopen(urllib.request.Request(url + "/loki/api/v1/push", body, {"Content-Type": "application/json"}), timeout=600)
    assert r.status == 204
print(f"pushed {total/1e6:.0f} MB raw, {n} lines, unflushed; RSS {rss()} MB", flush=True)
time.sleep(3)
def run(name, q, extra):
    base = rss(); peak = [base]; stop = [False]
    def sample():
        while not stop[0]:
            peak[0] = max(peak[0], rss()); time.sleep(0.02)
    t = threading.Thread(target=sample); t.start()
    params = {"query": q, "start": str(start - 1), "end": str(now + 10**9), **extra}
    t0 = time.time()
    body = urllib.request.urlopen(url + "/loki/api/v1/query_range?" + urllib.parse.urlencode(params), timeout=900).read()
    took = time.time() - t0
    stop[0] = True; t.join()
    time.sleep(2)
    res = json.loads(body)["data"]["result"]
    print(f"{name}: {took:.1f}s, {len(res)} series; RSS before {base} MB, peak {peak[0]} MB (+{peak[0]-base}), 2 s after {rss()} MB", flush=True)
run("needle |= (limit 100)", '{job=~".+"} |= "needle-5kald"', {"limit": "100"})
run("count_over_time", 'sum by (job) (count_over_time({job=~".+"}[1m]))', {"step": "60"})
run("no filter, limit 100", '{job=~".+"}', {"limit": "100"})
p.terminate(); p.wait(timeout=120)
shutil.rmtree(d, ignore_errors=True)

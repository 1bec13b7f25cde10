"""Pushes logs to Skald with two unmodified Python client libraries (run by
tests/tests/shippers.rs `python_clients`):

- the official `elasticsearch` client: `info()` (product check) and `helpers.bulk`;
- `python-logging-loki`'s `LokiHandler`, with the tenant header set on its session.

Usage: python_clients.py <skald url> <tenant>
"""
import datetime
import logging
import sys

import elasticsearch
import elasticsearch.helpers
import logging_loki

url, tenant = sys.argv[1], sys.argv[2]

es = elasticsearch.Elasticsearch(url, headers={"X-Scope-OrgID": tenant}, request_timeout=30)
info = es.info()
print("elasticsearch client", elasticsearch.__versionstr__, "sees version", info["version"]["number"])
now = datetime.datetime.now(datetime.timezone.utc)
actions = (
    {
        "_index": "py-logs",
        "_source": {
            "@timestamp": (now + datetime.timedelta(milliseconds=i)).isoformat(),
            "message": f"bulk doc {i}",
            "n": i,
        },
    }
    for i in range(20)
)
ok, errors = elasticsearch.helpers.bulk(es, actions)
print("bulk stored", ok, "errors", errors)
assert ok == 20 and not errors, (ok, errors)

handler = logging_loki.LokiHandler(
    url=url + "/loki/api/v1/push", tags={"application": "py-app"}, version="1"
)
handler.emitter.session.headers["X-Scope-OrgID"] = tenant
logger = logging.getLogger("skald-test")
logger.addHandler(handler)
logger.propagate = False
logger.warning("disk almost full")
handler.close()
print("loki handler pushed")

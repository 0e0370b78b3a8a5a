#!/usr/bin/env python3
"""The gateway's own share of a cold start (issue 4).

Starts the gateway (tests/integration/harness.py, free loopback ports) with one spawned
model: fake-llama with --load-ms L, so the backend's load time is known exactly. Then,
N times: unload the model (POST /admin/models/m/unload, which returns once the process
has exited), send one chat request and wait for its answer. fake-llama logs every request
it receives with CLOCK_MONOTONIC timestamps (the same clock as ours), /health probes
included, so for each cold start:

    share = (first /health answered 200 by the backend) - (request sent) - L

is the time the gateway adds to the start: parsing and queueing the request, fork/exec,
the backend process starting up until it listens (exec, libraries, socket), and the
readiness probe's lag after the load. Also printed: the whole cold request as the client
sees it (answer received - request sent - L).

Usage: bench/cold_start.py [--runs 20] [--load-ms 500] [--quiet-backend] [--build-dir DIR]
--quiet-backend runs fake-llama with --quiet: it then prints nothing while loading, so the
gateway has only its /health polling (backends.health_interval_ms) to notice readiness.
"""
import argparse
import json
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--load-ms", type=int, default=500)
    ap.add_argument("--health-interval-ms", type=int, default=50)
    ap.add_argument("--quiet-backend", action="store_true")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    os.environ["GW_BUILD_DIR"] = a.build_dir
    import harness  # noqa: E402  (reads GW_BUILD_DIR at import)

    cmd = [harness.FAKE_BIN, "--port", "${PORT}", "--alias", "${MODEL}",
           "--load-ms", str(a.load_ms)] + (["--quiet"] if a.quiet_backend else [])
    g = harness.Gateway({"m": {"command": cmd}},
                        extra={"log": {"level": "warn"},
                               "backends": {"health_interval_ms": a.health_interval_ms,
                                            "stop_grace_ms": 2000}})
    body = json.dumps({"model": "m", "max_tokens": 1,
                       "messages": [{"role": "user", "content": "hi"}]})
    share, client = [], []
    try:
        for _ in range(a.runs):
            st, _, resp = harness.request("127.0.0.1", g.port, "POST", "/admin/models/m/unload")
            assert st == 200, resp
            t0 = harness.now_us()
            st, _, resp = harness.request("127.0.0.1", g.port, "POST", "/v1/chat/completions",
                                          body)
            t1 = harness.now_us()
            assert st == 200, resp
            st, _, log = harness.request("127.0.0.1", g.port, "GET", "/upstream/m/__fake/log")
            assert st == 200, log
            ok = [r["t_start_us"] for r in json.loads(log)
                  if r["path"] == "/health" and r["status"] == 200]
            share.append((ok[0] - t0) / 1000.0 - a.load_ms)
            client.append((t1 - t0) / 1000.0 - a.load_ms)
    finally:
        rc = g.stop()
    if rc != 0:
        print("gateway exit status %r\n%s" % (rc, g.stderr()[-2000:]), file=sys.stderr)
        return 1

    print("cold starts: %d, backend load time %d ms (fake-llama --load-ms%s), "
          "health_interval_ms %d" % (a.runs, a.load_ms,
                                     ", --quiet" if a.quiet_backend else "",
                                     a.health_interval_ms))
    for name, xs in (("gateway share: first /health 200 - request - load", share),
                     ("client view:   answer received - request - load", client)):
        print("  %-52s median %6.1f ms  p90 %6.1f ms  min %6.1f  max %6.1f" %
              (name, statistics.median(xs), pct(xs, 90), min(xs), max(xs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

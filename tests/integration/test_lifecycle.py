"""Backend lifecycle (issue 4): the gateway starts, health-checks, swaps, restarts and
stops its backends. fake-llama is the spawned command (--load-ms, --fail-load,
--ignore-sigterm); every process runs on a free 127.0.0.1 port and every wait is bounded.
"""
import datetime
import json
import os
import re
import signal
import threading
import time
import unittest

from harness import (FAKE_BIN, Conn, GatewayTestCase, request, sse_events, wait_for)

CHAT = "/v1/chat/completions"


def fake_cmd(*args):
    return [FAKE_BIN, "--port", "${PORT}", "--alias", "${MODEL}"] + list(args)


def spawned(*args, vram=None, ttl=None, start_timeout=None, env=None):
    m = {"command": fake_cmd(*args)}
    if vram is not None:
        m["vram_mb"] = vram
    if ttl is not None:
        m["ttl_s"] = ttl
    if start_timeout is not None:
        m["start_timeout_ms"] = start_timeout
    if env is not None:
        m["env"] = env
    return m


def chat_body(model, stream=False, **kw):
    b = {"model": model, "messages": [{"role": "user", "content": "Hello there"}],
         "max_tokens": 4, "stream": stream}
    b.update(kw)
    return b


def pid_alive(pid):
    """True while /proc/PID exists and is not a zombie (a zombie no longer runs)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def log_time(line):
    ts = line.split(" ", 1)[0]
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


DEFAULT_BACKENDS = {"start_timeout_ms": 10000, "stop_grace_ms": 1000,
                    "restart_backoff_ms": 100, "restart_backoff_max_ms": 1000,
                    "health_interval_ms": 50, "loading_ping_ms": 200}


class Lifecycle(GatewayTestCase):
    def gw(self, models, **backends):
        b = dict(DEFAULT_BACKENDS)
        b.update(backends)
        self.g = self.gateway(models, {"backends": b})
        return self.g

    # ------------------------------------------------------------------ helpers

    def post(self, path, body=None, timeout=30):
        st, hdrs, resp = request("127.0.0.1", self.g.port, "POST", path,
                                 json.dumps(body) if body is not None else b"", timeout=timeout)
        return st, dict((k.lower(), v) for k, v in hdrs), resp

    def chat(self, model, timeout=30, **kw):
        return self.post(CHAT, chat_body(model, **kw), timeout)

    def models(self):
        st, _, body = request("127.0.0.1", self.g.port, "GET", "/v1/models")
        self.assertEqual(st, 200)
        return {m["id"]: m for m in json.loads(body)["data"] if "alias_of" not in m}

    def state(self, model):
        return self.models()[model]

    def wait_state(self, model, state, timeout=10):
        return wait_for(lambda: self.state(model)["state"] == state and self.state(model),
                        timeout, 0.02, "%s to be %s" % (model, state))

    def starts(self, model):
        """Log lines of the processes the gateway started for model."""
        return [l for l in self.g.stderr().splitlines()
                if "model %s: started pid" % model in l]

    def in_threads(self, fns):
        out = [None] * len(fns)

        def run(i):
            try:
                out[i] = fns[i]()
            except Exception as e:  # reported by the caller's assertions
                out[i] = e
        ts = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        return out

    # ------------------------------------------------------------------ cold start

    def test_cold_start_many_waiters_one_process(self):
        self.gw({"m": spawned("--load-ms", "600")})
        self.assertEqual(self.state("m")["state"], "stopped")
        self.assertIsNone(self.state("m")["pid"])
        t0 = time.monotonic()
        res = self.in_threads([lambda: self.chat("m") for _ in range(6)] +
                              [lambda: self.chat("m", stream=True) for _ in range(2)])
        elapsed = time.monotonic() - t0
        for r in res:
            self.assertNotIsInstance(r, Exception)
            self.assertEqual(r[0], 200, r)
        for r in res[:6]:
            self.assertEqual(json.loads(r[2])["model"], "m")
        for r in res[6:]:
            ev = sse_events(r[2])
            self.assertEqual(ev[0], ": loading model m")  # committed while loading
            self.assertEqual(ev[-1], "[DONE]")
            data = [e for e in ev if not e.startswith(":")]
            self.assertEqual(json.loads(data[0])["model"], "m")
        self.assertGreaterEqual(elapsed, 0.55)
        self.assertLess(elapsed, 5)
        self.assertEqual(len(self.starts("m")), 1, self.g.stderr()[-3000:])
        info = self.state("m")
        self.assertEqual(info["state"], "ready")
        self.assertTrue(pid_alive(info["pid"]))
        self.assertGreater(info["port"], 0)
        # the backend really is on that port, on loopback
        st, _, _ = request("127.0.0.1", info["port"], "GET", "/health")
        self.assertEqual(st, 200)
        # ROCm: device 0 only, unless the model's env says otherwise
        with open("/proc/%d/environ" % info["pid"], "rb") as f:
            env = f.read().split(b"\0")
        self.assertIn(b"HIP_VISIBLE_DEVICES=0", env)
        # its output is in the gateway log, prefixed with the model name
        self.assertIn("[m] fake-llama listening on 127.0.0.1:%d" % info["port"], self.g.stderr())

    def test_env_and_model_variable(self):
        self.gw({"m": spawned(env={"HIP_VISIBLE_DEVICES": "1", "FAKE_NAME": "x-${MODEL}-${PORT}"})})
        st, _, body = self.chat("m")
        self.assertEqual(st, 200, body)
        info = self.state("m")
        with open("/proc/%d/environ" % info["pid"], "rb") as f:
            env = f.read().split(b"\0")
        self.assertIn(b"HIP_VISIBLE_DEVICES=1", env)
        self.assertNotIn(b"HIP_VISIBLE_DEVICES=0", env)
        self.assertIn(("FAKE_NAME=x-m-%d" % info["port"]).encode(), env)
        with open("/proc/%d/cmdline" % info["pid"], "rb") as f:
            argv = f.read().split(b"\0")
        self.assertEqual(argv[1:5], [b"--port", str(info["port"]).encode(), b"--alias", b"m"])

    def test_token_ids_through_a_spawned_backend(self):
        # the token-ID prelude (/tokenize, /apply-template) waits for the start too
        self.gw({"m": spawned("--load-ms", "300")})
        res = self.in_threads([lambda: self.chat("m", max_tokens=3, return_token_ids=True),
                               lambda: self.chat("m", stream=True, max_tokens=3,
                                                 return_token_ids=True)])
        st, _, body = res[0]
        self.assertEqual(st, 200, body)
        j = json.loads(body)
        self.assertEqual(len(j["choices"][0]["token_ids"]), 3)
        self.assertEqual(len(j["prompt_token_ids"]), j["usage"]["prompt_tokens"])
        st, _, body = res[1]
        self.assertEqual(st, 200, body)
        ev = sse_events(body)
        self.assertEqual(ev[-1], "[DONE]")
        chunks = [json.loads(e) for e in ev[:-1] if not e.startswith(":")]
        ids = [i for c in chunks for ch in c["choices"] for i in ch.get("token_ids") or []]
        self.assertEqual(ids, j["choices"][0]["token_ids"])
        self.assertEqual(len(self.starts("m")), 1)

    def test_vocabulary_fetched_again_after_a_restart(self):
        # the tokenizer cache belongs to one backend process: a new process is asked again
        self.gw({"m": spawned()})

        def vocab_fetches():
            st, _, body = request("127.0.0.1", self.g.port, "GET", "/upstream/m/__fake/log")
            self.assertEqual(st, 200, body)
            return [r for r in json.loads(body) if r["path"] == "/tokenize" and
                    isinstance(json.loads(r["body"]).get("content"), list)]
        self.assertEqual(self.chat("m", max_tokens=2, return_token_ids=True)[0], 200)
        self.assertEqual(len(vocab_fetches()), 1)
        self.assertEqual(self.chat("m", max_tokens=2, return_token_ids=True)[0], 200)
        self.assertEqual(len(vocab_fetches()), 1)  # cached
        self.assertEqual(self.post("/admin/models/m/unload")[0], 200)
        self.assertEqual(self.chat("m", max_tokens=2, return_token_ids=True)[0], 200)
        self.assertEqual(len(vocab_fetches()), 1)  # the new process's log: fetched again
        self.assertEqual(len(self.starts("m")), 2)

    def test_port_taken_while_stopped(self):
        import socket
        self.gw({"m": spawned()})
        self.assertEqual(self.chat("m")[0], 200)
        port = self.state("m")["port"]
        self.assertEqual(self.post("/admin/models/m/unload")[0], 200)
        squatter = socket.socket()
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen(1)
        try:
            st, _, body = self.chat("m")
            self.assertEqual(st, 200, body)
            info = self.state("m")
            self.assertNotEqual(info["port"], port)
            self.assertIn("model m: port %d is taken by another process; the backend moves to "
                          "port %d" % (port, info["port"]), self.g.stderr())
        finally:
            squatter.close()

    def test_queue_bound(self):
        self.gw({"m": spawned("--load-ms", "1500")}, queue_max=2)
        res = self.in_threads([lambda: self.chat("m") for _ in range(4)])
        codes = sorted(r[0] for r in res)
        self.assertEqual(codes, [200, 200, 503, 503], res)
        for r in res:
            if r[0] == 503:
                self.assertEqual(r[1].get("retry-after"), "1")
                err = json.loads(r[2])["error"]
                self.assertEqual(err["code"], "overloaded")
                self.assertIn("'m'", err["message"])

    def test_loading_comments_keep_a_stream_open(self):
        self.gw({"m": spawned("--load-ms", "900")}, loading_ping_ms=200)
        st, hdrs, body = self.chat("m", stream=True)
        self.assertEqual(st, 200)
        self.assertEqual(hdrs["content-type"], "text/event-stream")
        ev = sse_events(body)
        pings = [e for e in ev if e == ": loading model m"]
        self.assertGreaterEqual(len(pings), 3, ev)
        self.assertEqual(ev[-1], "[DONE]")

    def test_client_gone_while_waiting(self):
        self.gw({"m": spawned("--load-ms", "600")})
        conns = []
        for stream in (False, True):
            c = Conn(self.g.port)
            c.send_request("POST", CHAT, chat_body("m", stream=stream))
            conns.append(c)
        wait_for(lambda: self.state("m")["queued"] == 2, 5, 0.01, "two waiting requests")
        wait_for(lambda: self.state("m")["pid"], 5, 0.01, "the backend to be started")
        for c in conns:
            c.close()
        wait_for(lambda: self.state("m")["queued"] == 0, 5, 0.01, "the waits to be withdrawn")
        info = self.wait_state("m", "ready")  # the start goes on; nothing leaks
        self.assertEqual(info["inflight"], 0)
        st, _, body = self.chat("m")
        self.assertEqual(st, 200, body)
        self.assertEqual(len(self.starts("m")), 1)

    def test_gateway_sigterm_while_starting(self):
        self.gw({"m": spawned("--load-ms", "5000")}, stop_grace_ms=300)
        res = {}

        def waiting():
            try:
                res["a"] = self.chat("m")
            except (EOFError, OSError) as e:  # the gateway closed it: expected too
                res["a"] = e
        t = threading.Thread(target=waiting)
        t.start()
        c = Conn(self.g.port)
        c.send_request("POST", CHAT, chat_body("m", stream=True))
        wait_for(lambda: self.state("m")["queued"] == 2, 5, 0.01, "two waiting requests")
        pid = wait_for(lambda: self.state("m")["pid"], 5, 0.01, "the backend's pid")
        self._procs.remove(self.g)
        t0 = time.monotonic()
        rc = self.g.stop(signal.SIGTERM, timeout=10)
        self.assertEqual(rc, 0, self.g.stderr()[-3000:])
        self.assertLess(time.monotonic() - t0, 3)
        self.assertNotIn("Sanitizer", self.g.stderr())
        t.join(10)
        c.close()
        self.assertIn("a", res)  # answered (503, shutting down) or closed, not left hanging
        self.assertFalse(pid_alive(pid))

    # ------------------------------------------------------------------ failed starts

    def test_start_timeout(self):
        self.gw({"m": spawned("--load-ms", "30000", start_timeout=700)})
        t0 = time.monotonic()
        st, hdrs, body = self.chat("m")
        elapsed = time.monotonic() - t0
        self.assertEqual(st, 503, body)
        self.assertGreater(elapsed, 0.6)
        self.assertLess(elapsed, 3)
        err = json.loads(body)["error"]
        self.assertIn("model 'm' failed to start", err["message"])
        self.assertIn("not ready within 700 ms", err["message"])
        self.assertNotIn("fake-llama", err["message"])  # stderr goes to the log only
        pid = int(re.search(r"model m: started pid (\d+)", self.g.stderr()).group(1))
        wait_for(lambda: not pid_alive(pid), 5, 0.02, "the timed-out backend to be killed")
        info = self.wait_state("m", "failed")
        self.assertIsNone(info["pid"])
        self.assertIn("not ready within", info["last_error"])

    def test_fail_load_answers_at_once(self):
        self.gw({"m": spawned("--load-ms", "200", "--fail-load", start_timeout=20000)})
        t0 = time.monotonic()
        st, _, body = self.chat("m")
        elapsed = time.monotonic() - t0
        self.assertEqual(st, 503, body)
        self.assertLess(elapsed, 3)  # the exit, not the 20 s timeout
        err = json.loads(body)["error"]
        self.assertEqual(err["code"], "backend_not_ready")
        self.assertIn("model 'm' failed to start", err["message"])
        self.assertIn("exited with status 1", err["message"])
        log = self.g.stderr()
        self.assertIn("[m] fake-llama: error: failed to load model", log)
        self.assertRegex(log, r"model m failed to start .*last stderr lines: .*failed to load")
        # a waiting stream gets the failure as an error event, without [DONE]
        time.sleep(0.15)  # past the first backoff (100 ms)
        st, hdrs, body = self.chat("m", stream=True)
        self.assertEqual(st, 200)
        ev = sse_events(body)
        self.assertEqual(ev[0], ": loading model m")
        self.assertNotIn("[DONE]", ev)
        self.assertIn("failed to start", json.loads(ev[-1])["error"]["message"])

    def test_exec_failure(self):
        self.gw({"m": {"command": ["/nonexistent/llama-server", "--port", "${PORT}"]}})
        st, _, body = self.chat("m")
        self.assertEqual(st, 503, body)
        self.assertIn("cannot execute /nonexistent/llama-server: No such file or directory",
                      json.loads(body)["error"]["message"])

    def test_restart_backoff_grows(self):
        self.gw({"m": spawned("--load-ms", "50", "--fail-load")},
                restart_backoff_ms=200, restart_backoff_max_ms=5000)
        deadline = time.monotonic() + 8
        backing_off = 0
        while len(self.starts("m")) < 4 and time.monotonic() < deadline:
            st, hdrs, body = self.chat("m")
            self.assertEqual(st, 503, body)
            if "next attempt in" in body.decode():
                backing_off += 1
            time.sleep(0.02)
        times = [log_time(l) for l in self.starts("m")]
        self.assertGreaterEqual(len(times), 4, self.g.stderr()[-3000:])
        gaps = [b - a for a, b in zip(times, times[1:])]
        # the backoff doubles after each failed start...
        delays = [int(d) for d in re.findall(r"model m failed to start \(failure \d+ in a "
                                             r"row\).*next start allowed in (\d+) ms",
                                             self.g.stderr())]
        self.assertEqual(delays[:3], [200, 400, 800])
        # ...and the starts really are that far apart (plus the 50 ms load), growing
        for gap, delay in zip(gaps, delays):
            self.assertGreater(gap, (delay + 50) / 1000.0 - 0.01, (gaps, delays))
        self.assertGreater(gaps[1], gaps[0] + 0.1, gaps)
        self.assertGreater(gaps[2], gaps[1] + 0.2, gaps)
        self.assertGreater(backing_off, 0)
        info = self.state("m")
        self.assertEqual(info["state"], "failed")
        self.assertGreaterEqual(info["failures"], 3)

    # ------------------------------------------------------------------ crash

    def test_sigkill_mid_stream_then_restart(self):
        self.gw({"m": spawned()})
        self.assertEqual(self.chat("m")[0], 200)
        pid = self.state("m")["pid"]
        c = Conn(self.g.port)
        c.send_request("POST", CHAT, chat_body("m", stream=True, max_tokens=200,
                                               fake_token_ms=50))
        status, _, _, _ = c.read_head()
        self.assertEqual(status, 200)
        got = []
        nonstream = []
        t = threading.Thread(target=lambda: nonstream.append(
            self.chat("m", max_tokens=200, fake_token_ms=50)))
        t.start()
        port = self.state("m")["port"]

        def generating():
            st, _, log = request("127.0.0.1", port, "GET", "/__fake/log")
            return len([r for r in json.loads(log) if r["outcome"] == "in_progress"]) == 2
        wait_for(generating, 10, 0.01, "both requests to reach the backend")

        def on_chunk(data):
            got.append(data)
            if len(got) == 2:
                os.kill(pid, signal.SIGKILL)
        c.read_chunks(on_chunk)
        c.close()
        t.join(30)
        ev = sse_events(b"".join(got))
        self.assertNotIn("[DONE]", ev)
        err = json.loads(ev[-1])["error"]
        self.assertEqual(err["code"], "backend_disconnected")
        self.assertEqual(nonstream[0][0], 502, nonstream)
        info = self.wait_state("m", "failed")
        self.assertIn("killed by signal 9", info["last_error"])
        self.assertIsNone(info["pid"])
        # the next request starts it again, in a new process
        st, _, body = self.chat("m")
        self.assertEqual(st, 200, body)
        info = self.state("m")
        self.assertEqual(info["state"], "ready")
        self.assertNotEqual(info["pid"], pid)
        self.assertEqual(len(self.starts("m")), 2)

    # ------------------------------------------------------------------ idle unload

    def test_ttl_unload_and_restart(self):
        self.gw({"m": spawned(ttl=1), "keep": spawned()})
        self.assertEqual(self.chat("m")[0], 200)
        self.assertEqual(self.chat("keep")[0], 200)
        pid = self.state("m")["pid"]
        t0 = time.monotonic()
        self.wait_state("m", "stopped", timeout=6)
        self.assertGreater(time.monotonic() - t0, 0.5)
        wait_for(lambda: not pid_alive(pid), 3, 0.02, "the idle backend to exit")
        self.assertIn("idle for 1 s (ttl_s)", self.g.stderr())
        self.assertEqual(self.state("keep")["state"], "ready")  # ttl 0 (default): never
        st, _, body = self.chat("m")
        self.assertEqual(st, 200, body)
        self.assertNotEqual(self.state("m")["pid"], pid)

    def test_ttl_never_unloads_a_busy_model(self):
        self.gw({"m": spawned(ttl=1)})
        st, _, body = self.chat("m", stream=True, max_tokens=40, fake_token_ms=60)
        self.assertEqual(st, 200)
        self.assertEqual(sse_events(body)[-1], "[DONE]")  # 2.4 s, longer than the ttl
        self.assertNotIn("idle for", self.g.stderr())

    # ------------------------------------------------------------------ VRAM budget

    def test_swap_evicts_least_recently_used_idle(self):
        self.gw({"a": spawned(vram=400), "b": spawned(vram=400), "c": spawned(vram=400)},
                vram_budget_mb=1000)
        self.assertEqual(self.chat("a")[0], 200)
        self.assertEqual(self.chat("b")[0], 200)
        pid_a = self.state("a")["pid"]
        st, _, body = self.chat("c")
        self.assertEqual(st, 200, body)
        m = self.models()
        self.assertEqual(m["a"]["state"], "stopped")  # least recently used
        self.assertEqual(m["b"]["state"], "ready")
        self.assertEqual(m["c"]["state"], "ready")
        self.assertFalse(pid_alive(pid_a))
        self.assertIn("evicted, least recently used idle model, to make room for c",
                      self.g.stderr())

    def test_swap_waits_for_busy_model(self):
        self.gw({"a": spawned(vram=600), "b": spawned(vram=600)}, vram_budget_mb=1000)
        self.assertEqual(self.chat("a")[0], 200)
        done = {}

        def long_stream():
            r = self.chat("a", stream=True, max_tokens=25, fake_token_ms=60)
            done["a"] = time.monotonic()
            return r

        def swap():
            time.sleep(0.3)
            r = self.chat("b")
            done["b"] = time.monotonic()
            return r
        watcher = []

        def watch():
            time.sleep(0.8)
            watcher.append(self.models())
        ra, rb, _ = self.in_threads([long_stream, swap, watch])
        self.assertEqual(ra[0], 200)
        self.assertEqual(sse_events(ra[2])[-1], "[DONE]")  # never cut for the swap
        self.assertEqual(rb[0], 200, rb)
        self.assertGreater(done["b"], done["a"])
        # while a streamed, b waited and a stayed ready
        self.assertEqual(watcher[0]["a"]["state"], "ready")
        self.assertEqual(watcher[0]["b"]["state"], "starting")
        self.assertEqual(watcher[0]["b"]["queued"], 1)
        m = self.models()
        self.assertEqual(m["a"]["state"], "stopped")
        self.assertEqual(m["b"]["state"], "ready")

    def test_swap_gives_up_after_the_bound(self):
        self.gw({"a": spawned(vram=600), "b": spawned(vram=600)}, vram_budget_mb=1000,
                swap_wait_ms=500)
        self.assertEqual(self.chat("a")[0], 200)
        res = {}

        def long_stream():
            res["a"] = self.chat("a", stream=True, max_tokens=40, fake_token_ms=50)

        t = threading.Thread(target=long_stream)
        t.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        st, hdrs, body = self.chat("b")
        elapsed = time.monotonic() - t0
        self.assertEqual(st, 503, body)
        self.assertEqual(hdrs.get("retry-after"), "1")
        msg = json.loads(body)["error"]["message"]
        self.assertIn("model 'b' cannot be loaded now", msg)
        self.assertIn("a (600 MB, ready, 1 in flight)", msg)
        self.assertGreater(elapsed, 0.4)
        self.assertLess(elapsed, 1.5)
        t.join(30)
        self.assertEqual(sse_events(res["a"][2])[-1], "[DONE]")
        self.assertEqual(self.state("b")["state"], "stopped")

    # ------------------------------------------------------------------ admin

    def test_admin_load_and_unload(self):
        fixed = self.fake()
        self.gw({"m": spawned("--load-ms", "300"), "fixed": {"upstream": fixed.url}})
        st, _, body = self.post("/admin/models/m/load")
        self.assertEqual(st, 200, body)
        j = json.loads(body)
        self.assertEqual(j["state"], "ready")
        self.assertTrue(pid_alive(j["pid"]))
        self.assertGreater(j["port"], 0)
        # loading a ready model answers at once
        st, _, body = self.post("/admin/models/m/load")
        self.assertEqual(json.loads(body)["pid"], j["pid"])
        # a busy model is not unloaded
        res = {}
        t = threading.Thread(target=lambda: res.update(
            a=self.chat("m", stream=True, max_tokens=10, fake_token_ms=60)))
        t.start()
        wait_for(lambda: self.state("m")["inflight"] == 1, 5, 0.01, "the stream to start")
        st, _, body = self.post("/admin/models/m/unload")
        self.assertEqual(st, 409, body)
        self.assertEqual(json.loads(body)["error"]["code"], "model_busy")
        t.join(30)
        self.assertEqual(sse_events(res["a"][2])[-1], "[DONE]")
        wait_for(lambda: self.state("m")["inflight"] == 0, 5, 0.01, "the stream to end")
        st, _, body = self.post("/admin/models/m/unload")
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["state"], "stopped")
        self.assertFalse(pid_alive(j["pid"]))
        # models with a fixed upstream are not managed; unknown ones do not exist
        self.assertEqual(self.post("/admin/models/fixed/load")[0], 400)
        self.assertEqual(self.post("/admin/models/nope/load")[0], 404)
        self.assertEqual(self.post("/admin/models/m/reload")[0], 404)
        self.assertEqual(self.state("fixed").get("pid", "absent"), "absent")

    # ------------------------------------------------------------------ gateway exit

    def test_gateway_sigterm_stops_every_child(self):
        self.gw({"a": spawned(), "hang": spawned("--ignore-sigterm")},
                preload=["a", "hang"], stop_grace_ms=500)
        self.wait_state("a", "ready")
        self.wait_state("hang", "ready")
        pids = [self.state(m)["pid"] for m in ("a", "hang")]
        t0 = time.monotonic()
        self._procs.remove(self.g)
        rc = self.g.stop(signal.SIGTERM, timeout=10)
        elapsed = time.monotonic() - t0
        log = self.g.stderr()
        self.assertEqual(rc, 0, log[-3000:])
        self.assertNotIn("AddressSanitizer", log)
        self.assertGreater(elapsed, 0.45)  # the grace for the one that hangs
        self.assertLess(elapsed, 5)
        for pid in pids:
            self.assertFalse(pid_alive(pid), pid)
        self.assertIn("[hang] fake-llama: cleaning up before exit... (--ignore-sigterm", log)
        self.assertRegex(log, r"model hang: pid \d+ still running 500 ms after SIGTERM: sent "
                              r"SIGKILL")
        self.assertRegex(log, r"model hang: pid \d+ was killed by signal 9")
        self.assertRegex(log, r"model a: pid \d+ exited with status 0")

    def test_gateway_sigkill_leaves_no_child(self):
        self.gw({"a": spawned(), "b": spawned("--ignore-sigterm")}, preload=["a", "b"])
        self.wait_state("a", "ready")
        self.wait_state("b", "ready")
        pids = [self.state(m)["pid"] for m in ("a", "b")]
        self.assertTrue(all(pid_alive(p) for p in pids))
        self._procs.remove(self.g)
        self.g.p.kill()
        self.g.p.wait(10)
        self.g.p.stdout.close()
        os.unlink(self.g.conf_file.name)
        wait_for(lambda: not any(pid_alive(p) for p in pids), 5, 0.02,
                 "the children of a SIGKILLed gateway to die")


if __name__ == "__main__":
    unittest.main()

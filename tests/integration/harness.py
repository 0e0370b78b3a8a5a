"""Integration-test harness: real processes on loopback, no mocks of the gateway.

Starts fake-llama stand-ins and the llama-gateway binary on free 127.0.0.1 ports,
writes the gateway's configuration, and offers a raw HTTP/1.1 client (exact bytes,
status, headers, chunked SSE) so that tests assert what actually crossed the wire.
Every wait is bounded in time. Binaries come from GW_BUILD_DIR (default ./build).
"""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("GW_BUILD_DIR", os.path.join(ROOT, "build"))
GATEWAY_BIN = os.path.join(BUILD, "gateway", "llama-gateway")
FAKE_BIN = os.path.join(BUILD, "tests", "fake_llama", "fake-llama")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def now_us():
    return time.monotonic_ns() // 1000


def wait_for(pred, timeout=10.0, interval=0.01, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Proc:
    """A child process whose stdout announces 'listening on 127.0.0.1:PORT'."""

    def __init__(self, argv, name, env=None, cwd=None):
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=name + "-", suffix=".log", delete=False)
        self.argv = argv
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log,
                                  env=env, cwd=cwd, start_new_session=True)
        self.port = None
        deadline = time.monotonic() + 15
        line = b""
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                break
            if b"listening on" in line:
                self.port = int(line.strip().rsplit(b":", 1)[1])
                break
        if self.port is None:
            self.stop()
            raise AssertionError("%s did not start: %r\n%s" % (name, line, self.stderr()))

    def stderr(self):
        try:
            with open(self.log.name, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.p.poll() is None:
            try:
                self.p.send_signal(sig)
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)
        if self.p.stdout:
            self.p.stdout.close()
        self.log.close()  # the file stays on disk: stderr() reads it by name
        return self.p.returncode


class Fake(Proc):
    def __init__(self, *args, alias=None):
        argv = [FAKE_BIN, "--port", "0", "--quiet"]
        if alias:
            argv += ["--alias", alias]
        argv += list(args)
        super().__init__(argv, "fake-llama")

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def log_records(self):
        st, _, body = request("127.0.0.1", self.port, "GET", "/__fake/log")
        assert st == 200, body
        return json.loads(body)

    def reset(self):
        request("127.0.0.1", self.port, "POST", "/__fake/reset", b"")


class Gateway(Proc):
    def __init__(self, models, extra=None, config=None):
        conf = config if config is not None else {
            "listen": {"host": "127.0.0.1", "port": 0, "threads": 2},
            "log": {"level": "debug"},
            "models": models,
        }
        if extra:
            for k, v in extra.items():
                if isinstance(v, dict) and isinstance(conf.get(k), dict):
                    conf[k].update(v)
                else:
                    conf[k] = v
        self.conf_file = tempfile.NamedTemporaryFile("w", prefix="gw-", suffix=".json",
                                                     delete=False)
        json.dump(conf, self.conf_file)
        self.conf_file.close()
        super().__init__([GATEWAY_BIN, "--config", self.conf_file.name], "llama-gateway")

    def stop(self, sig=signal.SIGTERM, timeout=10):
        rc = super().stop(sig, timeout)
        os.unlink(self.conf_file.name)
        return rc


# --------------------------------------------------------------------- raw HTTP client

class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value) in order
        self.body = body
        self.raw_head = raw_head

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)


class Conn:
    """One keep-alive HTTP/1.1 connection with exact control over bytes."""

    def __init__(self, port, host="127.0.0.1", timeout=30, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_request(self, method, path, body=None, headers=None):
        hdrs = [("Host", "127.0.0.1")]
        if body is not None:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            elif isinstance(body, str):
                body = body.encode()
            hdrs.append(("Content-Type", "application/json"))
            hdrs.append(("Content-Length", str(len(body))))
        for k, v in (headers or {}).items():
            hdrs = [(a, b) for a, b in hdrs if a.lower() != k.lower()]
            if v is not None:
                hdrs.append((k, v))
        head = "%s %s HTTP/1.1\r\n" % (method, path)
        head += "".join("%s: %s\r\n" % kv for kv in hdrs) + "\r\n"
        self.sock.sendall(head.encode() + (body or b""))

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        ver, status, reason = (lines[0].decode().split(" ", 2) + [""])[:3]
        headers = []
        for l in lines[1:]:
            k, v = l.decode("latin-1").split(":", 1)
            headers.append((k.strip(), v.strip()))
        return int(status), reason, headers, head

    def read_chunks(self, on_chunk=None):
        """Reads a chunked body; returns the list of chunk payloads."""
        chunks = []
        while True:
            size = int(self._line().split(b";")[0], 16)
            if size == 0:
                self._line()
                return chunks
            while len(self.buf) < size + 2:
                self._fill()
            data, self.buf = self.buf[:size], self.buf[size + 2:]
            chunks.append(data)
            if on_chunk:
                on_chunk(data)

    def read_response(self, method="GET"):
        status, reason, headers, head = self.read_head()
        r = Response(status, reason, headers, b"", head)
        te = r.header("Transfer-Encoding")
        if method == "HEAD" or status in (204, 304):
            return r
        if te and "chunked" in te.lower():
            r.chunks = self.read_chunks()
            r.body = b"".join(r.chunks)
        elif r.header("Content-Length") is not None:
            n = int(r.header("Content-Length"))
            while len(self.buf) < n:
                self._fill()
            r.body, self.buf = self.buf[:n], self.buf[n:]
        else:
            try:
                while True:
                    self._fill()
            except EOFError:
                pass
            r.body, self.buf = self.buf, b""
        return r

    def request(self, method, path, body=None, headers=None):
        self.send_request(method, path, body, headers)
        return self.read_response(method)


def request(host, port, method, path, body=None, headers=None, timeout=30):
    c = Conn(port, host, timeout)
    try:
        r = c.request(method, path, body, headers)
    finally:
        c.close()
    return r.status, r.headers, r.body


def sse_events(body):
    """Splits an SSE body into its event data strings (comments returned as ':...')."""
    out = []
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    for block in text.split("\n\n"):
        if not block:
            continue
        data = []
        for line in block.split("\n"):
            if line.startswith(":"):
                out.append(line)
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line.startswith("data:"):
                data.append(line[5:])
        if data:
            out.append("\n".join(data))
    return out


class GatewayTestCase(unittest.TestCase):
    """Base class: subclasses call self.fake(...) and self.gateway(...) in setUp."""

    def setUp(self):
        self._procs = []
        # a cleanup, not tearDown: it also runs when a subclass's setUp fails after it
        # started processes, so no fake-llama or gateway outlives its test
        self.addCleanup(self._stop_procs)

    def _stop_procs(self):
        # stop every process first, then judge the gateways' exits
        stopped = [(p, p.stop()) for p in reversed(self._procs)]
        for p, rc in stopped:
            if isinstance(p, Gateway):
                err = p.stderr()
                self.assertNotIn("ERROR: AddressSanitizer", err, err[-4000:])
                self.assertNotIn("ERROR: LeakSanitizer", err, err[-4000:])
                self.assertNotIn("runtime error:", err, err[-4000:])
                self.assertEqual(rc, 0, "gateway exit code %r\n%s" % (rc, err[-4000:]))

    def fake(self, *args, alias=None):
        f = Fake(*args, alias=alias)
        self._procs.append(f)
        return f

    def gateway(self, models, extra=None, config=None):
        g = Gateway(models, extra, config)
        self._procs.append(g)
        return g

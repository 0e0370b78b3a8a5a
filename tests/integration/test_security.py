"""LAN security (issue 5): API keys, the safe default, TLS, CORS, limits, request ids.

Every test runs the real gateway in front of a real fake-llama on 127.0.0.1 and asserts
what crossed the wire: status, the exact OpenAI error fields, the headers, and what
reached (or did not reach) the backend. Keys come from `llama-gateway keygen`, TLS
certificates from `openssl req -x509` at test time.
"""
import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (GATEWAY_BIN, Conn, GatewayTestCase, request, sse_events, wait_for)

CHAT = "/v1/chat/completions"
COMPL = "/v1/completions"


def chat_body(model, stream=False, **kw):
    b = {"model": model, "messages": [{"role": "user", "content": "Hello there"}],
         "max_tokens": 8, "stream": stream}
    b.update(kw)
    return b


def keygen(name):
    """Runs `llama-gateway keygen NAME`; returns (key, config entry dict, full output)."""
    out = subprocess.run([GATEWAY_BIN, "keygen", name], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    lines = [l for l in out.splitlines() if not l.startswith("#")]
    key = lines[0]
    entry = json.loads("{" + lines[1] + "}")
    return key, entry, out


def sha(key):
    return hashlib.sha256(key.encode()).hexdigest()


def run_gateway(conf, *args, timeout=10):
    """Runs the gateway to completion (for configurations it must refuse)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(conf, f)
    try:
        return subprocess.run([GATEWAY_BIN, "--config", f.name] + list(args),
                              capture_output=True, text=True, timeout=timeout)
    finally:
        os.unlink(f.name)


def recv_all(sock, timeout=5.0):
    """Reads until EOF (or reset); returns the bytes read."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                break
            data += d
    except (ConnectionResetError, BrokenPipeError):
        pass
    return data


def parse_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = {}
    for l in lines[1:]:
        k, v = l.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


class SecurityCase(GatewayTestCase):
    def assert_oai_error(self, body, typ, code, param=None):
        e = json.loads(body)["error"]
        self.assertEqual(set(e.keys()), {"message", "type", "param", "code"}, e)
        self.assertEqual(e["type"], typ, e)
        self.assertEqual(e["code"], code, e)
        self.assertEqual(e["param"], param, e)
        self.assertTrue(e["message"])
        return e


# ====================================================================== API keys

class ApiKeys(SecurityCase):
    def setUp(self):
        super().setUp()
        self.a = self.fake(alias="backend-a")
        self.b = self.fake(alias="backend-b")
        self.full, full_entry, _ = keygen("full")
        self.lim, lim_entry, _ = keygen("limited")
        self.one, one_entry, _ = keygen("one-at-a-time")
        lim_entry["limited"]["models"] = ["gpt-4o-mini"]  # an alias of alpha
        one_entry["one-at-a-time"]["max_concurrent"] = 1
        keys = {}
        for e in (full_entry, lim_entry, one_entry):
            keys.update(e)
        self.gw = self.gateway({
            "alpha": {"upstream": self.a.url, "aliases": ["gpt-4o-mini", "a2"]},
            "beta": {"upstream": self.b.url},
        }, extra={"auth": {"keys": keys}})
        self.port = self.gw.port

    def req(self, method, path, body=None, key=None, headers=None):
        h = dict(headers or {})
        if key is not None:
            h["Authorization"] = "Bearer " + key
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        return request("127.0.0.1", self.port, method, path, body, h)

    def test_keygen_output(self):
        key, entry, out = keygen("laptop")
        self.assertRegex(key, r"^sk-gw-[A-Za-z0-9_-]{43}$")
        self.assertEqual(entry, {"laptop": {"sha256": sha(key)}})
        self.assertIn("shown only now", out)
        self.assertNotEqual(keygen("laptop")[0], key)  # random each time
        for bad in ("", "a b", "x/y", "k" * 65):
            r = subprocess.run([GATEWAY_BIN, "keygen", bad], capture_output=True, text=True,
                               timeout=10)
            self.assertEqual(r.returncode, 2, bad)
            self.assertEqual(r.stdout, "")
        r = subprocess.run([GATEWAY_BIN, "keygen"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2)

    def test_health_is_open(self):
        for path in ("/health", "/v1/health"):
            st, hdrs, body = self.req("GET", path)
            self.assertEqual((st, body), (200, b'{"status":"ok"}'), path)

    def test_every_other_route_needs_a_key(self):
        cases = [("GET", "/v1/models", None), ("GET", "/v1/models/alpha", None),
                 ("POST", CHAT, chat_body("alpha")), ("POST", COMPL, {"model": "alpha",
                                                                      "prompt": "x"}),
                 ("POST", "/v1/embeddings", {"model": "alpha", "input": "x"}),
                 ("GET", "/upstream/alpha/props", None),
                 ("POST", "/upstream/alpha/tokenize", {"content": "x"}),
                 ("GET", "/v2/unknown", None),     # 401 before 404: no probing
                 ("GET", CHAT, None),              # 401 before 405
                 ("DELETE", "/v1/models", None)]
        for method, path, body in cases:
            st, hdrs, resp = self.req(method, path, body)
            h = dict((k.lower(), v) for k, v in hdrs)
            self.assertEqual(st, 401, (method, path, resp))
            e = self.assert_oai_error(resp, "authentication_error", "invalid_api_key")
            self.assertIn("Missing API key", e["message"])
            self.assertEqual(h["www-authenticate"], 'Bearer realm="llama-gateway"')
            self.assertRegex(h["x-request-id"], r"^[0-9a-f]{16}$")
            self.assertEqual(h["content-type"], "application/json")
        # nothing reached a backend
        self.assertEqual(self.a.log_records() + self.b.log_records(), [])

    def test_wrong_and_malformed_keys(self):
        wrong = self.full[:-1] + ("A" if self.full[-1] != "A" else "B")
        for hdrs, msg in [({"Authorization": "Bearer " + wrong}, "Invalid API key"),
                          ({"Authorization": "Bearer " + self.full + "x"}, "Invalid API key"),
                          ({"Authorization": "Bearer " + sha(self.full)}, "Invalid API key"),
                          ({"X-Api-Key": "sk-nope"}, "Invalid API key"),
                          ({"Authorization": "Basic " + self.full}, "Malformed API key"),
                          ({"Authorization": "Bearer"}, "Malformed API key"),
                          ({"Authorization": "Bearer a b"}, "Malformed API key"),
                          ({"Authorization": self.full}, "Malformed API key")]:
            st, h, resp = self.req("GET", "/v1/models", headers=hdrs)
            self.assertEqual(st, 401, hdrs)
            e = self.assert_oai_error(resp, "authentication_error", "invalid_api_key")
            self.assertIn(msg, e["message"])
            self.assertNotIn(self.full, e["message"])  # never echoed

    def test_bearer_and_x_api_key_accepted(self):
        for hdrs in ({"Authorization": "Bearer " + self.full},
                     {"Authorization": "bearer   " + self.full + "  "},
                     {"X-Api-Key": self.full},
                     {"Authorization": "Basic dXNlcjpwdw==", "X-Api-Key": self.full}):
            st, _, resp = self.req("GET", "/v1/models", headers=hdrs)
            self.assertEqual(st, 200, (hdrs, resp))

    def test_keys_not_forwarded_and_not_logged(self):
        st, _, resp = self.req("POST", CHAT, chat_body("alpha"), key=self.full,
                               headers={"X-Api-Key": self.lim})
        self.assertEqual(st, 200, resp)
        st, _, resp = self.req("POST", "/upstream/beta/tokenize", {"content": "hi"},
                               headers={"X-Api-Key": self.full})
        self.assertEqual(st, 200, resp)
        for fake in (self.a, self.b):
            rec = fake.log_records()[-1]
            self.assertNotIn("authorization", rec["headers"])
            self.assertNotIn("x-api-key", rec["headers"])
            self.assertNotIn(self.full, json.dumps(rec))
        # a wrong key is not logged either
        self.req("GET", "/v1/models", key="sk-gw-guessed-key-for-the-log-test")
        log = wait_for(lambda: (lambda s: s if "status=401" in s else None)(self.gw.stderr()),
                       5, what="401 log line")
        for secret in (self.full, self.lim, self.one, "sk-gw-guessed-key-for-the-log-test",
                       sha(self.full)):
            self.assertNotIn(secret, log)
        self.assertRegex(log, r"POST /v1/chat/completions model=alpha status=200 .* key=full ")
        self.assertRegex(log, r"GET /v1/models model=- status=401 .* key=- client=127\.0\.0\.1")
        self.assertIn("auth: 3 API keys (full, limited, one-at-a-time)", log)

    def test_model_allow_list(self):
        # the allowed model, under every one of its names
        for name in ("alpha", "gpt-4o-mini", "a2"):
            st, _, resp = self.req("POST", CHAT, chat_body(name), key=self.lim)
            self.assertEqual(st, 200, (name, resp))
        st, h, resp = self.req("POST", CHAT, chat_body("beta"), key=self.lim)
        self.assertEqual(st, 403)
        e = self.assert_oai_error(resp, "permission_error", "model_not_allowed", "model")
        self.assertEqual(e["message"],
                         "The API key 'limited' is not allowed to use the model 'beta'")
        self.assertTrue(dict(h).get("X-Request-Id"))
        # the token-ID path (return_token_ids / stop_token_ids) is checked the same way
        for extra in ({"return_token_ids": True}, {"stop_token_ids": [2]}):
            for stream in (False, True):
                st, _, resp = self.req("POST", CHAT, chat_body("beta", stream=stream, **extra),
                                       key=self.lim)
                self.assertEqual(st, 403, (extra, stream, resp))
                st, _, resp = self.req("POST", COMPL, {"model": "beta", "prompt": "x",
                                                       "max_tokens": 2, **extra}, key=self.lim)
                self.assertEqual(st, 403, (extra, resp))
        st, _, resp = self.req("POST", CHAT, chat_body("a2", return_token_ids=True), key=self.lim)
        self.assertEqual(st, 200, resp)
        self.assertEqual(self.b.log_records(), [])
        # an unknown model stays a 404
        st, _, resp = self.req("POST", CHAT, chat_body("nope"), key=self.lim)
        self.assertEqual(st, 404)
        # /v1/models lists only what the key may use
        st, _, resp = self.req("GET", "/v1/models", key=self.lim)
        self.assertEqual([m["id"] for m in json.loads(resp)["data"]],
                         ["alpha", "gpt-4o-mini", "a2"])
        st, _, resp = self.req("GET", "/v1/models", key=self.full)
        self.assertEqual([m["id"] for m in json.loads(resp)["data"]],
                         ["alpha", "gpt-4o-mini", "a2", "beta"])
        st, _, resp = self.req("GET", "/v1/models/beta", key=self.lim)
        self.assertEqual(st, 403)
        self.assert_oai_error(resp, "permission_error", "model_not_allowed", "model")
        st, _, resp = self.req("GET", "/v1/models/a2", key=self.lim)
        self.assertEqual(st, 200)
        # /upstream/{model}/... too
        st, _, resp = self.req("GET", "/upstream/beta/props", key=self.lim)
        self.assertEqual(st, 403)
        self.assert_oai_error(resp, "permission_error", "model_not_allowed", "model")
        st, _, resp = self.req("GET", "/upstream/alpha/props", key=self.lim)
        self.assertEqual(st, 200)
        self.assertEqual(self.b.log_records(), [])

    def test_concurrency_limit_429(self):
        c = Conn(self.port)
        c.send_request("POST", CHAT, chat_body("alpha", stream=True, max_tokens=30,
                                               fake_token_ms=40),
                       headers={"Authorization": "Bearer " + self.one})
        st, _, _, _ = c.read_head()
        self.assertEqual(st, 200)
        # the key's one slot is taken: 429 with Retry-After, nothing forwarded
        n_before = len(self.a.log_records())
        st, h, resp = self.req("POST", CHAT, chat_body("alpha"), key=self.one)
        self.assertEqual(st, 429, resp)
        e = self.assert_oai_error(resp, "rate_limit_error", "rate_limit_exceeded")
        self.assertIn("one-at-a-time", e["message"])
        self.assertEqual(dict(h)["Retry-After"], "1")
        st, h, resp = self.req("GET", "/v1/models", key=self.one)
        self.assertEqual(st, 429)
        self.assertEqual(len(self.a.log_records()), n_before)
        # other keys are not affected
        self.assertEqual(self.req("GET", "/v1/models", key=self.full)[0], 200)
        ev = sse_events(b"".join(c.read_chunks()))
        self.assertEqual(ev[-1], "[DONE]")
        # the slot is free again once the stream has finished
        wait_for(lambda: self.req("GET", "/v1/models", key=self.one)[0] == 200, 5,
                 what="slot released")
        # and a client that disconnects mid-stream releases it too
        c.send_request("POST", CHAT, chat_body("alpha", stream=True, max_tokens=100,
                                               fake_token_ms=40),
                       headers={"Authorization": "Bearer " + self.one})
        self.assertEqual(c.read_head()[0], 200)
        self.assertEqual(self.req("GET", "/v1/models", key=self.one)[0], 429)
        c.close()
        wait_for(lambda: self.req("GET", "/v1/models", key=self.one)[0] == 200, 5,
                 what="slot released after disconnect")

    def test_sequential_requests_never_429(self):
        # a key limited to one request at a time, used strictly one after the other, each
        # on a new connection: the slot must be free as soon as an answer has arrived
        for i in range(100):
            st, _, resp = self.req("GET" if i % 2 else "POST", "/v1/models" if i % 2 else CHAT,
                                   None if i % 2 else chat_body("alpha", max_tokens=2),
                                   key=self.one)
            self.assertEqual(st, 200, (i, resp))

    def test_unauthenticated_large_body_refused_without_reading(self):
        c = Conn(self.port)
        c.sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: application/json\r\nContent-Length: 999999999\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 401)  # not 413, and not after reading 1 GB
        self.assert_oai_error(r.body, "authentication_error", "invalid_api_key")
        c.close()

    def test_request_id(self):
        st, h, _ = self.req("GET", "/v1/models", key=self.full,
                            headers={"X-Request-Id": "client-id_1.2:3"})
        self.assertEqual(dict(h)["X-Request-Id"], "client-id_1.2:3")
        for bad in ("has space", "x" * 65, "semi;colon", "caf\u00e9".encode().decode("latin-1")):
            st, h, _ = self.req("GET", "/v1/models", key=self.full, headers={"X-Request-Id": bad})
            self.assertRegex(dict(h)["X-Request-Id"], r"^[0-9a-f]{16}$", bad)
        ids = set()
        for _ in range(50):
            ids.add(dict(self.req("GET", "/health")[1])["X-Request-Id"])
        self.assertEqual(len(ids), 50)
        # the log line of a request carries its id
        st, h, _ = self.req("GET", "/v1/models", key=self.full)
        rid = dict(h)["X-Request-Id"]
        wait_for(lambda: "req=%s key=full" % rid in self.gw.stderr(), 5, what="log line")


# ====================================================================== safe default

class SafeDefault(SecurityCase):
    MODELS = {"m": {"upstream": "http://127.0.0.1:9"}}

    def test_refuses_non_loopback_without_keys(self):
        for host in ("0.0.0.0", "::", "192.0.2.1"):
            conf = {"listen": {"host": host, "port": 0}, "models": self.MODELS}
            for args in ((), ("--check-config",)):
                r = run_gateway(conf, *args)
                self.assertEqual(r.returncode, 1, (host, args, r.stderr))
                self.assertIn("is not a loopback address and no API key is configured", r.stderr)
                self.assertIn("auth.allow_unauthenticated", r.stderr)
                self.assertNotIn("listening", r.stdout)

    def test_keys_or_explicit_flag_allow_it(self):
        key, entry, _ = keygen("lan")
        r = run_gateway({"listen": {"host": "0.0.0.0"}, "auth": {"keys": entry},
                         "models": self.MODELS}, "--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run_gateway({"listen": {"host": "0.0.0.0"},
                         "auth": {"allow_unauthenticated": True}, "models": self.MODELS},
                        "--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_allowed_unauthenticated_warns(self):
        # 192.0.2.1 (TEST-NET-1) is on no interface here: the gateway warns, then fails to
        # bind, so the test never listens on a non-loopback address.
        r = run_gateway({"listen": {"host": "192.0.2.1", "port": 0},
                         "auth": {"allow_unauthenticated": True}, "models": self.MODELS})
        self.assertIn(" warn  auth: NO API KEYS on non-loopback address 192.0.2.1", r.stderr)
        self.assertIn("cannot listen on 192.0.2.1", r.stderr)
        self.assertEqual(r.returncode, 1)

    def test_backend_credentials_not_logged(self):
        f = self.fake()
        url = f.url.replace("http://", "http://gw:s3cret-pw@")
        gw = self.gateway({"m": {"upstream": url, "api_key": "backend-secret-key"}})
        st, _, _ = request("127.0.0.1", gw.port, "POST", CHAT, json.dumps(chat_body("m")))
        self.assertEqual(st, 200)
        self.assertEqual(f.log_records()[-1]["headers"].get("authorization"),
                         "Bearer backend-secret-key")
        log = wait_for(lambda: (lambda s: s if "status=200" in s else None)(gw.stderr()), 5,
                       what="the access log line")
        self.assertNotIn("s3cret-pw", log)
        self.assertNotIn("backend-secret-key", log)
        self.assertIn("model m -> http://***@127.0.0.1:%d" % f.port, log)

    def test_loopback_without_keys_is_open(self):
        f = self.fake()
        gw = self.gateway({"m": {"upstream": f.url}})
        st, _, _ = request("127.0.0.1", gw.port, "POST", CHAT, json.dumps(chat_body("m")))
        self.assertEqual(st, 200)
        self.assertIn("auth: off (no API keys; loopback address 127.0.0.1 only)", gw.stderr())
        self.assertNotIn(" warn ", gw.stderr())


# ====================================================================== TLS

class TlsConn(Conn):
    """harness.Conn over TLS (verifying the test certificate)."""

    def __init__(self, port, cafile, timeout=30):
        ctx = ssl.create_default_context(cafile=cafile)
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.buf = b""


def make_cert(d, cn="localhost"):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


class Tls(SecurityCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="gw-tls-")
        cls.cert, cls.key = make_cert(cls.dir)
        cls.cert2, cls.key2 = make_cert(tempfile.mkdtemp(prefix="gw-tls2-", dir=cls.dir),
                                        "other")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.f = self.fake()
        self.apikey, entry, _ = keygen("tls-client")
        self.gw = self.gateway({"m": {"upstream": self.f.url, "aliases": ["gpt-4o-mini"]}},
                               extra={"tls": {"cert": self.cert, "key": self.key},
                                      "auth": {"keys": entry},
                                      "timeouts": {"request_ms": 1500}})
        self.port = self.gw.port
        self.auth = {"Authorization": "Bearer " + self.apikey}

    def test_python_ssl_client(self):
        c = TlsConn(self.port, self.cert)
        self.assertIn(c.sock.version(), ("TLSv1.3", "TLSv1.2"))
        r = c.request("GET", "/health")
        self.assertEqual((r.status, r.body), (200, b'{"status":"ok"}'))
        r = c.request("GET", "/v1/models")
        self.assertEqual(r.status, 401)
        r = c.request("POST", CHAT, chat_body("gpt-4o-mini"), headers=self.auth)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["model"], "gpt-4o-mini")
        # streaming over TLS, same connection (keep-alive)
        r = c.request("POST", CHAT, chat_body("m", stream=True, max_tokens=6), headers=self.auth)
        ev = sse_events(r.body)
        self.assertEqual(ev[-1], "[DONE]")
        self.assertTrue(all(json.loads(e)["model"] == "m" for e in ev[:-1]))
        c.close()

    def test_curl(self):
        base = "https://127.0.0.1:%d" % self.port
        out = subprocess.run(["curl", "-sS", "--cacert", self.cert, "-H",
                              "Authorization: Bearer " + self.apikey, base + "/v1/models"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["data"][0]["id"], "m")
        out = subprocess.run(["curl", "-sS", "-N", "--cacert", self.cert, "-H",
                              "Authorization: Bearer " + self.apikey, "-H",
                              "Content-Type: application/json", "-d",
                              json.dumps(chat_body("m", stream=True)), base + CHAT],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(sse_events(out.stdout)[-1], "[DONE]")
        # a certificate the client does not trust: the handshake fails
        out = subprocess.run(["curl", "-sS", "--cacert", self.cert2, base + "/health"],
                             capture_output=True, text=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        # plain HTTP to the HTTPS port gets no HTTP answer
        out = subprocess.run(["curl", "-sS", "-m", "5", "http://127.0.0.1:%d/health" % self.port],
                             capture_output=True, text=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        self.assertNotIn("status", out.stdout)

    def test_tls_12_minimum(self):
        def handshake(flag):
            p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.port,
                                flag, "-cipher", "DEFAULT@SECLEVEL=0"],
                               input="", capture_output=True, text=True, timeout=30)
            return p.stdout
        self.assertIn("Protocol  : TLSv1.2", handshake("-tls1_2"))
        self.assertIn("Cipher is (NONE)", handshake("-tls1_1"))

    def test_silent_tls_client_is_closed(self):
        s = socket.create_connection(("127.0.0.1", self.port))
        t0 = time.monotonic()
        self.assertEqual(recv_all(s, timeout=10), b"")  # no handshake, no bytes, closed
        self.assertLess(time.monotonic() - t0, 5)
        s.close()

    def test_bad_tls_files(self):
        d = tempfile.mkdtemp(dir=self.dir)
        notpem = os.path.join(d, "x.pem")
        with open(notpem, "w") as fh:
            fh.write("not a certificate\n")
        models = {"m": {"upstream": self.f.url}}
        for tls, msg in [
                ({"cert": os.path.join(d, "missing.pem"), "key": self.key},
                 "tls.cert: %s: No such file or directory" % os.path.join(d, "missing.pem")),
                ({"cert": notpem, "key": self.key}, "tls.cert: %s: not a PEM file" % notpem),
                ({"cert": self.cert, "key": notpem}, "tls.key: %s: not a PEM file" % notpem),
                ({"cert": self.key, "key": self.key},
                 "tls.cert: %s: no PEM certificate could be read" % self.key),
                ({"cert": self.cert, "key": self.cert},
                 "tls.key: %s: no unencrypted PEM private key could be read" % self.cert),
                ({"cert": self.cert, "key": self.key2},
                 "tls.key: %s: does not match the certificate in %s" % (self.key2, self.cert)),
                ({"cert": self.cert}, "tls: cert and key must be given together")]:
            r = run_gateway({"listen": {"host": "127.0.0.1", "port": 0}, "tls": tls,
                             "models": models})
            self.assertEqual(r.returncode, 1, (tls, r.stderr))
            self.assertIn(msg, r.stderr)
            self.assertNotIn("BEGIN", r.stderr)  # no key material in messages


# ====================================================================== CORS

class Cors(SecurityCase):
    A = "http://webui.lan:3000"
    B = "http://evil.example"

    def start(self, origins=None, keys=True):
        self.f = self.fake()
        extra = {}
        self.key = None
        if keys:
            self.key, entry, _ = keygen("browser")
            extra["auth"] = {"keys": entry}
        if origins is not None:
            extra["cors"] = {"origins": origins, "max_age_s": 120}
        self.gw = self.gateway({"m": {"upstream": self.f.url}}, extra=extra)
        self.port = self.gw.port

    def preflight(self, origin, path=CHAT, req_headers="authorization, content-type"):
        h = {"Origin": origin, "Access-Control-Request-Method": "POST"}
        if req_headers:
            h["Access-Control-Request-Headers"] = req_headers
        st, hdrs, body = request("127.0.0.1", self.port, "OPTIONS", path, None, h)
        return st, {k.lower(): v for k, v in hdrs}, body

    def test_nothing_allowed_by_default(self):
        self.start(origins=None)
        st, h, body = self.preflight(self.A)
        self.assertEqual(st, 204)
        self.assertNotIn("access-control-allow-origin", h)
        self.assertNotIn("access-control-allow-methods", h)
        self.assertTrue(h["x-request-id"])
        st, hdrs, body = request("127.0.0.1", self.port, "POST", CHAT,
                                 json.dumps(chat_body("m")),
                                 {"Origin": self.A, "Authorization": "Bearer " + self.key})
        self.assertEqual(st, 200)
        h = {k.lower(): v for k, v in hdrs}
        # fake-llama sends its own Access-Control-Allow-Origin: never relayed
        self.assertNotIn("access-control-allow-origin", h)
        self.assertNotIn("vary", h)
        self.assertEqual([r["method"] for r in self.f.log_records()], ["POST"])

    def test_allow_list(self):
        self.start(origins=[self.A])
        # preflight from an allowed origin: no key needed, never forwarded
        st, h, body = self.preflight(self.A, req_headers="authorization, content-type, "
                                                         "x-stainless-os")
        self.assertEqual((st, body), (204, b""))
        self.assertEqual(h["access-control-allow-origin"], self.A)
        self.assertEqual(h["access-control-allow-methods"], "GET, HEAD, POST, OPTIONS")
        self.assertEqual(h["access-control-allow-headers"],
                         "authorization, content-type, x-stainless-os")
        self.assertEqual(h["access-control-max-age"], "120")
        self.assertIn("Origin", h["vary"])
        st, h, _ = self.preflight(self.A, path="/upstream/m/props", req_headers=None)
        self.assertEqual(st, 204)
        self.assertEqual(h["access-control-allow-headers"],
                         "Authorization, Content-Type, X-Api-Key, X-Request-Id")
        # from another origin: answered, but nothing allowed
        st, h, _ = self.preflight(self.B)
        self.assertEqual(st, 204)
        self.assertNotIn("access-control-allow-origin", h)
        self.assertEqual(self.f.log_records(), [])

        # actual responses: the allowed origin is echoed, with Vary: Origin
        auth = {"Authorization": "Bearer " + self.key}
        for origin, allowed in ((self.A, True), (self.B, False)):
            hdrs = dict(auth, Origin=origin)
            st, hh, _ = request("127.0.0.1", self.port, "POST", CHAT,
                                json.dumps(chat_body("m")), hdrs)
            h = {k.lower(): v for k, v in hh}
            self.assertEqual(st, 200)
            self.assertEqual(h.get("vary"), "Origin")
            self.assertEqual(h.get("access-control-allow-origin"), origin if allowed else None)
            # the stream too
            c = Conn(self.port)
            r = c.request("POST", CHAT, chat_body("m", stream=True), hdrs)
            self.assertEqual(r.header("Access-Control-Allow-Origin"),
                             origin if allowed else None)
            self.assertEqual(r.header("Access-Control-Expose-Headers"),
                             "X-Request-Id, Retry-After" if allowed else None)
            c.close()
        # an error for an allowed origin is readable by the page (401 included)
        st, hh, body = request("127.0.0.1", self.port, "GET", "/v1/models", None,
                               {"Origin": self.A})
        self.assertEqual(st, 401)
        self.assertEqual(dict((k.lower(), v) for k, v in hh)["access-control-allow-origin"],
                         self.A)

    def test_plain_options_is_not_a_preflight(self):
        self.start(origins=["*"])
        st, hdrs, body = request("127.0.0.1", self.port, "OPTIONS", CHAT, None,
                                 {"Origin": self.B})  # no Access-Control-Request-Method
        self.assertEqual(st, 401)
        st, h, _ = self.preflight(self.B)
        self.assertEqual(h["access-control-allow-origin"], self.B)  # "*" allows any
        st, h, _ = self.preflight("http://a\x01b")
        self.assertNotIn("access-control-allow-origin", h)


# ====================================================================== limits

class Limits(SecurityCase):
    def setUp(self):
        super().setUp()
        self.f = self.fake()
        self.gw = self.gateway({"m": {"upstream": self.f.url}}, extra={
            "limits": {"max_body_bytes": 4096, "max_headers": 20, "max_header_bytes": 2048,
                       "max_url_bytes": 256, "max_json_depth": 16,
                       "max_connections_per_ip": 12},
            "timeouts": {"request_ms": 1000}})
        self.port = self.gw.port

    def raw(self, data, timeout=5):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.sendall(data)
        out = recv_all(s, timeout)
        s.close()
        return out

    def test_body_413(self):
        big = json.dumps(chat_body("m", pad="x" * 5000))
        st, h, resp = request("127.0.0.1", self.port, "POST", CHAT, big)
        self.assertEqual(st, 413)
        self.assert_oai_error(resp, "invalid_request_error", "request_too_large")
        self.assertTrue(dict(h).get("X-Request-Id"))
        # chunked, no Content-Length: found while reading
        c = Conn(self.port)
        body = big.encode()
        c.sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n" +
                       b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 1000]), body[i:i + 1000])
                                for i in range(0, len(body), 1000)) + b"0\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 413)
        c.close()
        self.assertEqual(self.f.log_records(), [])

    def test_header_count_431(self):
        head = "GET /v1/models HTTP/1.1\r\nHost: x\r\n" + "".join(
            "X-H%d: v\r\n" % i for i in range(25)) + "\r\n"
        st, h, body = parse_response(self.raw(head.encode()))
        self.assertEqual(st, 431)
        e = self.assert_oai_error(body, "invalid_request_error",
                                  "request_header_fields_too_large")
        self.assertIn("26 header fields; the limit is 20", e["message"])
        self.assertEqual(h["connection"], "close")
        self.assertTrue(h["x-request-id"])

    def test_header_size_431(self):
        head = "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n" % ("a" * 3000)
        st, h, body = parse_response(self.raw(head.encode()))
        self.assertEqual(st, 431)
        e = self.assert_oai_error(body, "invalid_request_error",
                                  "request_header_fields_too_large")
        self.assertIn("the limit is 2048", e["message"])
        # far beyond the connection's memory, libmicrohttpd answers 431 itself (HTML body)
        head = "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n" % ("a" * 100000)
        st, h, body = parse_response(self.raw(head.encode()))
        self.assertEqual(st, 431)

    def test_url_414(self):
        st, h, body = parse_response(self.raw(
            ("GET /v1/models/%s HTTP/1.1\r\nHost: x\r\n\r\n" % ("m" * 300)).encode()))
        self.assertEqual(st, 414)
        self.assert_oai_error(body, "invalid_request_error", "uri_too_long")
        self.assertTrue(h["x-request-id"])
        st, _, _ = request("127.0.0.1", self.port, "GET", "/v1/models?" + "q" * 200)
        self.assertEqual(st, 200)  # within the limit

    def test_json_depth(self):
        ok = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
              "x": [[[[[[[[[[1]]]]]]]]]]}  # depth 12
        st, _, resp = request("127.0.0.1", self.port, "POST", CHAT, json.dumps(ok))
        self.assertEqual(st, 200, resp)
        deep = '{"model":"m","messages":[],"x":' + "[" * 17 + "]" * 17 + "}"
        st, h, resp = request("127.0.0.1", self.port, "POST", CHAT, deep)
        self.assertEqual(st, 400)
        e = self.assert_oai_error(resp, "invalid_request_error", "json_too_deep")
        self.assertEqual(e["message"], "the JSON request body is nested deeper than 16 levels")
        # brackets inside strings do not count
        st, _, _ = request("127.0.0.1", self.port, "POST", CHAT,
                           json.dumps(chat_body("m", stop=["[" * 50])))
        self.assertEqual(st, 200)
        # raw pass-through bodies are checked too
        st, _, resp = request("127.0.0.1", self.port, "POST", "/upstream/m/tokenize",
                              '{"content":' + "[" * 20 + "]" * 20 + "}")
        self.assertEqual(st, 400)
        self.assertEqual(len(self.f.log_records()), 2)  # only the two good requests

    def test_slow_body_408_and_close(self):
        body = json.dumps(chat_body("m")).encode()
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        t0 = time.monotonic()
        try:
            for i in range(len(body)):  # one byte every 100 ms: ~10 s for the body
                s.sendall(body[i:i + 1])
                time.sleep(0.1)
                if time.monotonic() - t0 > 5:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = recv_all(s)
        elapsed = time.monotonic() - t0
        s.close()
        st, h, resp = parse_response(raw)
        self.assertEqual(st, 408)
        self.assert_oai_error(resp, "invalid_request_error", "request_timeout")
        self.assertEqual(h["connection"], "close")
        self.assertRegex(h["x-request-id"], r"^[0-9a-f]{16}$")
        self.assertLess(elapsed, 3.0)
        self.assertEqual(self.f.log_records(), [])
        wait_for(lambda: "POST /v1/chat/completions model=- status=408" in self.gw.stderr(), 5,
                 what="408 in the log")

    def test_slow_headers_408(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(b"GET /v1/models HTTP/1.1\r\n")
        t0 = time.monotonic()
        try:
            for i in range(50):
                s.sendall(b"X-%d: y\r\n" % i)
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        st, h, resp = parse_response(recv_all(s))
        self.assertEqual(st, 408)
        self.assertLess(time.monotonic() - t0, 3.0)
        s.close()

    def test_idle_connection_closed(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        t0 = time.monotonic()
        self.assertEqual(recv_all(s), b"")
        self.assertLess(time.monotonic() - t0, 2.5)
        s.close()
        # a keep-alive connection that goes quiet after a request is closed too
        c = Conn(self.port)
        self.assertEqual(c.request("GET", "/health").status, 200)
        t0 = time.monotonic()
        self.assertEqual(recv_all(c.sock), b"")
        self.assertLess(time.monotonic() - t0, 2.5)
        c.close()

    def test_connections_per_address(self):
        held = [socket.create_connection(("127.0.0.1", self.port)) for _ in range(12)]
        try:
            time.sleep(0.2)
            extra = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            # the 13th connection from this address is closed at once, before any request
            self.assertEqual(recv_all(extra, 2), b"")
            extra.close()
        finally:
            for s in held:
                s.close()
        def served():
            try:
                return request("127.0.0.1", self.port, "GET", "/health")[0] == 200
            except (OSError, EOFError):  # MHD may not have seen every close yet
                return False
        wait_for(served, 5, what="a new connection once the others closed")


class TotalConnections(SecurityCase):
    def test_max_connections(self):
        f = self.fake()
        # 2 workers x 3: the seventh connection waits in the backlog until one closes
        gw = self.gateway({"m": {"upstream": f.url}},
                          extra={"limits": {"max_connections": 6,
                                            "max_connections_per_ip": 0},
                                 "timeouts": {"request_ms": 20000}})
        held = []
        for _ in range(6):
            c = Conn(gw.port, timeout=5)
            self.assertEqual(c.request("GET", "/health").status, 200)
            held.append(c)
        waiting = Conn(gw.port, timeout=1)
        waiting.send_request("GET", "/health")
        with self.assertRaises(socket.timeout):
            waiting.read_response()
        held.pop().close()
        waiting.sock.settimeout(5)
        self.assertEqual(waiting.read_response().status, 200)
        waiting.close()
        for c in held:
            c.close()


if __name__ == "__main__":
    unittest.main()

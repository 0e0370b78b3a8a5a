#!/usr/bin/env python3
"""selftest.py - checks fake-llama against the llama-server behaviours it reproduces.

Usage: selftest.py PATH/TO/fake-llama [--asan]

Starts the binary (new build, then old build), runs the scenarios, sends SIGTERM and
checks a clean exit (and, with --asan, that no sanitizer report was printed).
Standard library only.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1]
ASAN = "--asan" in sys.argv
FAILS = []

# vocabulary ids (see README.md)
BOS, EOS, EOT, PH1, ENDOFTEXT = 1, 2, 3, 4, 8
FACES, MU, MERGE, VIEW, COM = 393, 394, 389, 392, 395
HI, SPACE, THIS = 387, 273, 374
EMOJI = [16 + 0xF0, 16 + 0x9F, 16 + 0x98, 16 + 0x80]  # 😀 as byte tokens
LONE_CONT = 16 + 0xB2
MSGS = [{"role": "user", "content": "Hello there"}]


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what)


class Server:
    def __init__(self, *args):
        self.tmp = tempfile.mkdtemp()
        pf = os.path.join(self.tmp, "port")
        self.err = open(os.path.join(self.tmp, "stderr"), "w+")
        self.p = subprocess.Popen([BIN, "--port-file", pf, *args], stdout=subprocess.PIPE,
                                  stderr=self.err, text=True)
        line = self.p.stdout.readline()
        assert line.startswith("fake-llama listening on 127.0.0.1:"), line
        self.port = int(line.strip().rsplit(":", 1)[1])
        check(int(open(pf).read()) == self.port, "port file")

    def wait_ready(self):
        for _ in range(500):
            st, _, _ = self.req("GET", "/health")
            if st == 200:
                return
            time.sleep(0.01)
        raise RuntimeError("not ready")

    def req(self, method, path, body=None, headers=None, raw=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data, headers=headers or {})
        r = c.getresponse()
        out = r.read()
        hdrs = dict((k.lower(), v) for k, v in r.getheaders())
        c.close()
        return r.status, hdrs, out

    def json(self, method, path, body=None, **kw):
        st, h, out = self.req(method, path, body, **kw)
        return st, h, json.loads(out)

    def sse(self, path, body):
        st, h, out = self.req("POST", path, body)
        events = [e[len("data: "):] for e in out.decode().split("\n\n") if e]
        return st, h, events

    def stop(self):
        t = time.time()
        self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(10)
        check(rc == 0, "exit code 0 after SIGTERM (got %d)" % rc)
        check(time.time() - t < 2, "prompt exit after SIGTERM")
        self.err.seek(0)
        err = self.err.read()
        if ASAN:
            check("Sanitizer" not in err and "runtime error" not in err,
                  "sanitizer report:\n" + err[-3000:])


def chunks(events):
    return [json.loads(e) for e in events if e != "[DONE]"]


def contents(evs):
    return [c["choices"][0]["delta"].get("content") for c in evs if c.get("choices")]


def test_new():
    s = Server("--load-ms", "200", "--parallel", "2")
    st, h, b = s.json("GET", "/health")
    check(st == 503 and b == {"error": {"message": "Loading model", "type": "unavailable_error",
                                         "code": 503}}, "503 while loading")
    check(h.get("connection") == "close", "Connection: close on 503")
    s.wait_ready()

    st, h, b = s.json("GET", "/v1/models")
    check(b["data"][0]["meta"]["n_vocab"] == 512, "n_vocab 512")
    check(b["data"][0]["id"] == "models/fake-llama.gguf", "model id is the path")

    # plain chat, deterministic
    st, h, b1 = s.json("POST", "/v1/chat/completions", {"messages": MSGS, "max_tokens": 8})
    st, h, b2 = s.json("POST", "/v1/chat/completions", {"messages": MSGS, "max_tokens": 8,
                                                         "model": "whatever"})
    check(b1["choices"][0]["message"]["content"] == b2["choices"][0]["message"]["content"],
          "deterministic output")
    check(b2["model"] == "models/fake-llama.gguf", "new build never echoes model")
    check(b1["usage"]["prompt_tokens"] == 9 and b1["usage"]["completion_tokens"] == 8, "usage")
    check(list(b1.keys()) == ["choices", "created", "model", "system_fingerprint", "object",
                              "usage", "id", "timings"], "chat key order")
    check(h["content-type"] == "application/json; charset=utf-8", "json content type")

    # 12c / 22b: stop spanning tokens, held back then released as "mer"
    st, h, ev = s.sse("/v1/chat/completions", {
        "messages": MSGS, "stream": True, "fake_tokens": [FACES, MU, MERGE, VIEW, COM],
        "stop": ["ge vi"], "logprobs": True, "top_logprobs": 1})
    cs = chunks(ev)
    check(ev[-1] == "[DONE]", "[DONE]")
    check(contents(cs) == [None, " faces", "ム", "mer", None], "22b deltas %r" % contents(cs))
    mer = cs[3]
    item = mer["choices"][0]["logprobs"]["content"][0]
    check(item["id"] == VIEW and item["token"] == "mer", "released text in next token's item")
    check("timings" in mer, "stop partial carries timings")
    check(cs[-1]["choices"][0]["finish_reason"] == "stop", "finish stop")
    check(h.get("x-accel-buffering") == "no", "X-Accel-Buffering")

    # 22: token-aligned stop: no chunk and no item for the stop token
    st, h, ev = s.sse("/v1/chat/completions", {
        "messages": MSGS, "stream": True, "fake_tokens": [FACES, MU, MERGE, VIEW],
        "stop": ["merge"], "logprobs": True, "top_logprobs": 1})
    check(contents(chunks(ev)) == [None, " faces", "ム", None], "22 deltas")

    # 22e non-stream: items trimmed by the stop word's token count (merge = 1 token)
    st, h, b = s.json("POST", "/v1/chat/completions", {
        "messages": MSGS, "fake_tokens": [FACES, MU, MERGE, VIEW], "stop": ["merge"],
        "logprobs": True, "top_logprobs": 2})
    items = b["choices"][0]["logprobs"]["content"]
    check([i["id"] for i in items] == [FACES, MU], "22e trimmed items")
    check(len(items[0]["top_logprobs"]) == 2, "top_logprobs count")
    check(b["choices"][0]["message"]["content"] == " facesム", "22e content")

    # 22d: held for two tokens, released into the next token's item
    st, h, ev = s.sse("/v1/chat/completions", {
        "messages": MSGS, "stream": True, "fake_tokens": [FACES, MERGE, VIEW, COM],
        "stop": ["merge viX"], "logprobs": True, "top_logprobs": 1})
    cs = chunks(ev)
    check(contents(cs) == [None, " faces", "merge view", " COM", None], "22d %r" % contents(cs))

    # 23: EOG in a chat stream: no chunk, no item; non-stream includes the EOG item
    st, h, ev = s.sse("/v1/chat/completions", {
        "messages": MSGS, "stream": True, "fake_tokens": [FACES, MU, EOS, VIEW],
        "logprobs": True, "top_logprobs": 1})
    cs = chunks(ev)
    check(contents(cs) == [None, " faces", "ム", None], "23 deltas")
    check(cs[-1]["choices"][0]["finish_reason"] == "stop", "23 finish stop")
    st, h, b = s.json("POST", "/v1/chat/completions", {
        "messages": MSGS, "fake_tokens": [FACES, MU, EOS], "logprobs": True, "top_logprobs": 1})
    items = b["choices"][0]["logprobs"]["content"]
    check(items[-1]["id"] == EOS and items[-1]["token"] == "" and items[-1]["bytes"] == [],
          "23c EOG item")

    # 23f: control token: no chunk; generation continues
    st, h, ev = s.sse("/v1/chat/completions", {
        "messages": MSGS, "stream": True, "fake_tokens": [FACES, PH1, MU],
        "logprobs": True, "top_logprobs": 1})
    cs = chunks(ev)
    check(contents(cs) == [None, " faces", "ム", None], "23f deltas")
    check(cs[-1]["choices"][0]["finish_reason"] == "length", "script end = length")

    # 23d: /v1/completions stream: every token has a chunk and an item, EOG included
    st, h, ev = s.sse("/v1/completions", {
        "prompt": "Hello there", "stream": True, "fake_tokens": [FACES, EOS], "logprobs": 1})
    cs = chunks(ev)
    check([c["choices"][0]["text"] for c in cs] == [" faces", "", ""], "23d texts")
    check(cs[1]["choices"][0]["logprobs"]["content"][0]["id"] == EOS, "23d EOG item")
    check("usage" in cs[-1] and cs[-1]["choices"][0]["logprobs"] is None, "23d final chunk")

    # 31: emoji from byte tokens: one item on the completing token with the whole char
    st, h, ev = s.sse("/v1/chat/completions", {
        "messages": MSGS, "stream": True, "fake_tokens": [HI, SPACE] + EMOJI + [THIS, EOT],
        "logprobs": True, "top_logprobs": 1})
    cs = chunks(ev)
    check(contents(cs) == [None, "Hi", " ", "😀", " this", None], "31 deltas")
    it = cs[3]["choices"][0]["logprobs"]["content"][0]
    check(it["id"] == EMOJI[3] and it["bytes"] == [240, 159, 152, 128], "31 item")

    # 25: __verbose with every generated id
    st, h, b = s.json("POST", "/v1/chat/completions", {
        "messages": MSGS, "fake_tokens": [HI] + EMOJI + [EOT], "return_tokens": True,
        "verbose": True})
    check(b["__verbose"]["tokens"] == [HI] + EMOJI + [EOT], "25 __verbose.tokens")
    check(list(b.keys())[-2:] == ["__verbose", "timings"], "__verbose placement")
    st, h, ev = s.sse("/v1/chat/completions", {
        "messages": MSGS, "stream": True, "fake_tokens": [HI, EOT], "return_tokens": True,
        "verbose": True})
    fin = chunks(ev)[-1]
    check(fin["__verbose"]["tokens"] == [] and fin["__verbose"]["content"] == "", "25c")

    # 34g / 34f: lone continuation byte
    st, h, ev = s.sse("/v1/chat/completions", {
        "messages": MSGS, "stream": True, "fake_tokens": [LONE_CONT, HI]})
    check(len(ev) == 1 and json.loads(ev[0])["error"]["code"] == 500, "34g error event only")
    st, h, b = s.json("POST", "/v1/chat/completions", {
        "messages": MSGS, "fake_tokens": [HI, LONE_CONT, HI]})
    check(st == 500 and "peg-native" in b["error"]["message"], "34f 500")
    # 34h: only incomplete bytes: finish chunk only
    st, h, ev = s.sse("/v1/chat/completions", {
        "messages": MSGS, "stream": True, "fake_tokens": EMOJI[:2]})
    cs = chunks(ev)
    check(len(cs) == 1 and cs[0]["choices"][0]["finish_reason"] == "length", "34h")

    # 11 / 11b include_usage
    st, h, ev = s.sse("/v1/chat/completions", {
        "messages": MSGS, "stream": True, "max_tokens": 2,
        "stream_options": {"include_usage": True}})
    cs = chunks(ev)
    check(cs[-1]["choices"] == [] and "usage" in cs[-1] and "timings" in cs[-1], "11 usage chunk")
    check("timings" not in cs[-2], "11 finish chunk without timings")

    # n = 2
    st, h, ev = s.sse("/v1/chat/completions", {"messages": MSGS, "stream": True, "n": 2,
                                                "max_tokens": 2})
    cs = chunks(ev)
    check(sorted(c["choices"][0]["index"] for c in cs) == [0] * 4 + [1] * 4, "n=2 chunks")

    # native
    st, h, ev = s.sse("/completion", {"prompt": "Hello there", "stream": True,
                                      "fake_tokens": [FACES, EOS]})
    cs = [json.loads(e) for e in ev]
    check([c["tokens"] for c in cs] == [[FACES], [EOS], []] and cs[-1]["stop"], "26c native")
    check("[DONE]" not in ev, "native: no [DONE]")

    # tokenize / detokenize
    st, h, b = s.json("POST", "/tokenize", {"content": "<|end|>é😀", "with_pieces": True})
    check(b["tokens"][0] == {"id": EOT, "piece": "<|end|>"} and
          b["tokens"][2] == {"id": EMOJI[0], "piece": [240]}, "tokenize pieces")
    st, h, b = s.json("POST", "/tokenize", {"content": "<|end|>", "parse_special": False})
    check(EOT not in b["tokens"], "parse_special false")
    st, h, b = s.json("POST", "/detokenize", {"tokens": [BOS, EOT] + EMOJI})
    check(b["content"] == "<s><|end|>😀", "detokenize")
    st, h, b = s.json("POST", "/detokenize", {"tokens": EMOJI[:2]})
    check(b["content"] == "\ufffd", "detokenize partial utf8")
    st, h, b = s.json("POST", "/detokenize", {"tokens": [99999999]})
    check(st == 500 and "99999999" in b["error"]["message"], "detokenize out of range")
    st, h, b = s.json("POST", "/apply-template", {"messages": MSGS})
    check(b == {"prompt": "<|user|>\nHello there<|end|>\n<|assistant|>\n"}, "apply-template")

    # errors
    st, h, b = s.json("POST", "/v1/chat/completions", raw="")
    check(st == 500 and "empty input" in b["error"]["message"], "14h empty body")
    check(h.get("connection") == "close", "Connection: close on 500")
    st, h, b = s.json("POST", "/v1/chat/completions", {"model": "x"})
    check(st == 400 and b["error"]["message"] == "'messages' is required", "14c")
    st, h, b = s.json("POST", "/v1/chat/completions", {"messages": MSGS, "top_logprobs": 2})
    check(st == 400, "14d")
    st, h, b = s.json("POST", "/v1/chat/completions", {"messages": MSGS, "max_tokens": "abc"})
    check(st == 400 and "type must be number, but is string" in b["error"]["message"], "29e")
    st, h, b = s.json("GET", "/v1/chat/completions")
    check(st == 404 and list(b["error"].keys()) == ["message", "type", "code"], "29f")
    st, h, b = s.json("GET", "/metrics")
    check(st == 501, "metrics 501")
    st, h, b = s.json("POST", "/v1/chat/completions", {"messages": MSGS, "stop": [1]})
    check(st == 400, "non-string stop 400")
    st, h, b = s.json("POST", "/v1/chat/completions", {"messages": MSGS, "stop": ""})
    check(st == 200 and b["choices"][0]["message"]["content"] == "" and
          b["usage"]["completion_tokens"] == 1, "empty stop string stops after 1 token")

    # embeddings echo the model
    st, h, b = s.json("POST", "/v1/embeddings", {"input": "hello", "model": "emb"})
    check(b["model"] == "emb" and len(b["data"][0]["embedding"]) == 64, "embeddings")

    # disconnect during a stall is recorded promptly
    s.req("POST", "/__fake/reset")
    sock = socket.create_connection(("127.0.0.1", s.port))
    body = json.dumps({"messages": MSGS, "stream": True,
                       "fake_fault": {"stall_after": 1, "stall_ms": 10000}})
    sock.sendall(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(body), body)).encode())
    time.sleep(0.2)
    t_close = time.monotonic_ns() // 1000
    sock.close()
    time.sleep(0.1)
    st, h, log = s.json("GET", "/__fake/log")
    rec = log[-1]
    check(rec["outcome"] == "cancelled" and rec["t_cancel_us"] is not None and
          0 <= rec["t_cancel_us"] - t_close < 20000, "cancel recorded promptly %r" % rec)

    # die_after: chunked body cut
    try:
        st, h, ev = s.sse("/v1/chat/completions", {"messages": MSGS, "stream": True,
                                                    "fake_fault": {"die_after": 2}})
        check(False, "die_after should cut the body")
    except http.client.IncompleteRead:
        pass
    st, h, log = s.json("GET", "/__fake/log")
    check(log[-1]["outcome"] == "died", "died recorded")

    # slots: a third request waits without headers while two run
    def start_slow():
        k = socket.create_connection(("127.0.0.1", s.port))
        bd = json.dumps({"messages": MSGS, "stream": True, "max_tokens": 3, "fake_token_ms": 150})
        k.sendall(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                   % (len(bd), bd)).encode())
        return k
    a, b_, c = start_slow(), start_slow(), None
    time.sleep(0.1)
    c = start_slow()
    c.settimeout(0.2)
    try:
        got = c.recv(100)
    except socket.timeout:
        got = b""
    check(got == b"", "deferred request gets no headers")
    c.settimeout(5)
    check(c.recv(100).startswith(b"HTTP/1.1 200"), "deferred request runs later")
    for k in (a, b_, c):
        k.close()

    # api key
    s.stop()
    s = Server("--api-key", "sekret")
    s.wait_ready()
    st, h, b = s.json("GET", "/v1/models")
    check(st == 401 and b["error"]["type"] == "authentication_error", "401 without key")
    st, h, b = s.json("GET", "/v1/models", headers={"Authorization": "Bearer sekret"})
    check(st == 200, "200 with bearer")
    st, h, b = s.json("GET", "/v1/models", headers={"X-Api-Key": "sekret"})
    check(st == 200, "200 with X-Api-Key")
    s.stop()


def test_old():
    s = Server("--build", "old", "--alias", "tiny")
    s.wait_ready()
    st, h, b = s.json("POST", "/v1/chat/completions", {"messages": MSGS, "model": "gpt-x",
                                                        "max_tokens": 2})
    check(b["model"] == "gpt-x" and "prompt_tokens_details" not in b["usage"], "old: echo model")
    st, h, ev = s.sse("/v1/chat/completions", {
        "messages": MSGS, "stream": True, "fake_tokens": [FACES, MERGE, VIEW, EOS],
        "stop": ["ge vi"], "logprobs": True, "top_logprobs": 0})
    cs = chunks(ev)
    check(contents(cs) == [" faces", "", "mer", None], "old: no role chunk, empty held chunk %r"
          % contents(cs))
    check(len(cs[0]["choices"][0]["logprobs"]["content"][0]["top_logprobs"]) == 1,
          "old: top_logprobs 0 gives 1")
    check("usage" in cs[-1], "old: usage in finish chunk")
    st, h, b = s.json("POST", "/v1/chat/completions", {"messages": MSGS, "n": 2})
    check(st == 500, "old: n=2 is 500")
    st, h, b = s.json("POST", "/v1/chat/completions", {
        "messages": MSGS, "fake_tokens": [HI, LONE_CONT]})
    check(st == 200 and b["choices"][0]["message"]["content"] == "Hi\ufffd", "old: U+FFFD")
    s.stop()


test_new()
test_old()
print("selftest: %d failure(s)" % len(FAILS))
sys.exit(1 if FAILS else 0)

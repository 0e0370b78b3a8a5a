"""Token IDs (issue 3): stop_token_ids in, token_ids out, against the stand-in backend.

fake-llama's vocabulary (tests/fake_llama/README.md): BOS <s>=1, EOG </s>=2 and
<|end|>=3, control <|placeholder1|>=4, byte tokens 16+byte, words from 272 (e.g.
" faces"=393, "ム"=394, "merge"=389, "mer"=390, "ge"=391, " view"=392, " COM"=395,
"azz"=396, " peak"=397). 😀 is the byte tokens [256,175,168,144].
"""
import json
import threading
import unittest

from harness import Conn, GatewayTestCase, request, sse_events, wait_for

CHAT = "/v1/chat/completions"
COMPL = "/v1/completions"
MSG = [{"role": "user", "content": "Hello there"}]
EMOJI = [256, 175, 168, 144]


def chunks_of(body):
    ev = sse_events(body)
    return [json.loads(e) for e in ev if e != "[DONE]" and not e.startswith(":")], ev


class TokBase(GatewayTestCase):
    build = "new"

    def setUp(self):
        super().setUp()
        self.f = self.fake("--build", self.build, "--n-ctx", "8192")
        self.gw = self.gateway({"m": {"upstream": self.f.url, "aliases": ["alias-m"]}})

    def post(self, path, body):
        st, hdrs, resp = request("127.0.0.1", self.gw.port, "POST", path, json.dumps(body))
        return st, resp

    def chat(self, stream=False, **kw):
        b = {"model": "m", "messages": MSG, "max_tokens": 12, "return_token_ids": True,
             "stream": stream}
        b.update(kw)
        st, resp = self.post(CHAT, b)
        self.assertEqual(st, 200, resp)
        return chunks_of(resp) if stream else json.loads(resp)

    def cmpl(self, stream=False, **kw):
        b = {"model": "m", "prompt": "Hello there", "max_tokens": 12, "return_token_ids": True,
             "stream": stream}
        b.update(kw)
        st, resp = self.post(COMPL, b)
        self.assertEqual(st, 200, resp)
        return chunks_of(resp) if stream else json.loads(resp)

    def detok(self, ids):
        st, resp = self.post("/upstream/m/detokenize", {"tokens": ids})
        self.assertEqual(st, 200)
        return json.loads(resp)["content"]

    def stream_ids(self, chunks, index=0):
        ids = []
        for c in chunks:
            for ch in c["choices"]:
                if ch["index"] == index:
                    ids += ch["token_ids"]
        return ids

    def stream_text(self, chunks, chat=True):
        out = ""
        for c in chunks:
            for ch in c["choices"]:
                out += (ch["delta"].get("content") or "") if chat else ch["text"]
        return out

    def finish(self, chunks):
        return [ch for c in chunks for ch in c["choices"] if ch.get("finish_reason")][-1]

    def upstream_body(self, path):
        recs = [r for r in self.f.log_records() if r["path"] == path]
        return json.loads(recs[-1]["body"])


class Invariant(TokBase):
    """detokenize(token_ids) == text, token for token, same order, streamed or not; the
    count equals usage.completion_tokens."""

    PROMPTS = ["Hello there", "the quick brown fox", "tell me about birds", "café données",
               "日本語 world", "a", "question: yes or no?", "Map the river", "üß€λ", "x" * 40,
               "Once upon a time", "model token stream", "moon and sun", "3 + 4 = ?",
               "data time rain", "Mike and Stanley", "museum chart", "boat river stone",
               "enjoyed the Theatre", "established useful spot"]

    def test_chat_many_prompts(self):
        for p in self.PROMPTS:
            msgs = [{"role": "user", "content": p}]
            ns = self.chat(messages=msgs)
            ch = ns["choices"][0]
            text = ch["message"]["content"]
            self.assertTrue(ch["token_ids_complete"], ch)
            self.assertEqual(len(ch["token_ids"]), ns["usage"]["completion_tokens"])
            self.assertEqual(self.detok(ch["token_ids"]), text)
            self.assertNotIn("logprobs", ch)  # not asked for: stripped again
            self.assertNotIn("__verbose", ns)
            self.assertEqual(ns["model"], "m")
            self.assertEqual(len(ns["prompt_token_ids"]), ns["usage"]["prompt_tokens"])

            chunks, ev = self.chat(stream=True, messages=msgs,
                                   stream_options={"include_usage": True})
            self.assertEqual(ev[-1], "[DONE]")
            self.assertEqual(self.stream_ids(chunks), ch["token_ids"])
            self.assertEqual(self.stream_text(chunks), text)
            # token for token: each chunk's IDs detokenize to that chunk's delta
            for c in chunks:
                for x in c["choices"]:
                    if x["token_ids"]:
                        self.assertEqual(self.detok(x["token_ids"]), x["delta"]["content"])
                    self.assertNotIn("logprobs", x)
            self.assertEqual(chunks[0]["prompt_token_ids"], ns["prompt_token_ids"])
            self.assertTrue(all("prompt_token_ids" not in c for c in chunks[1:]))
            self.assertTrue(self.finish(chunks)["token_ids_complete"])
            self.assertEqual(chunks[-1]["usage"]["completion_tokens"], len(ch["token_ids"]))

    def test_completions_many_prompts(self):
        for p in self.PROMPTS[:10]:
            ns = self.cmpl(prompt=p)
            ch = ns["choices"][0]
            self.assertTrue(ch["token_ids_complete"])
            self.assertEqual(len(ch["token_ids"]), ns["usage"]["completion_tokens"])
            self.assertEqual(self.detok(ch["token_ids"]), ch["text"])
            self.assertIsNone(ch["logprobs"])
            self.assertEqual(len(ch["prompt_token_ids"]), ns["usage"]["prompt_tokens"])
            chunks, ev = self.cmpl(stream=True, prompt=p)
            self.assertEqual(self.stream_ids(chunks), ch["token_ids"])
            self.assertEqual(self.stream_text(chunks, chat=False), ch["text"])
            self.assertEqual(chunks[0]["choices"][0]["prompt_token_ids"], ch["prompt_token_ids"])

    def test_prompt_token_ids_are_what_the_backend_evaluates(self):
        ns = self.chat()
        st, resp = self.post("/upstream/m/apply-template", {"messages": MSG})
        prompt = json.loads(resp)["prompt"]
        st, resp = self.post("/upstream/m/tokenize", {"content": prompt, "add_special": True})
        self.assertEqual(ns["prompt_token_ids"], json.loads(resp)["tokens"])
        self.assertEqual(ns["prompt_token_ids"][0], 1)  # BOS as the model adds it

    def test_upstream_request_rewrite(self):
        self.chat(stream=True, stop=["zzz", ""], stop_token_ids=[389, 389])
        b = self.upstream_body(CHAT)
        self.assertNotIn("return_token_ids", b)
        self.assertNotIn("stop_token_ids", b)
        self.assertEqual(b["stop"], ["zzz", "merge"])  # client's first, deduped, no ""
        self.assertIs(b["logprobs"], True)
        self.assertEqual(b["top_logprobs"], 1)  # the smallest useful count
        self.assertIs(b["timings_per_token"], True)
        self.assertIs(b["stream_options"]["include_usage"], True)
        self.cmpl()
        b = self.upstream_body(COMPL)
        self.assertEqual(b["logprobs"], 1)
        self.assertIs(b["return_tokens"], True)
        self.assertIs(b["verbose"], True)

    def test_client_logprobs_kept_exactly(self):
        ns = self.chat(logprobs=True, top_logprobs=2)
        items = ns["choices"][0]["logprobs"]["content"]
        self.assertEqual(len(items), len(ns["choices"][0]["token_ids"]))
        self.assertTrue(all(len(i["top_logprobs"]) == 2 for i in items))
        self.assertEqual([i["id"] for i in items], ns["choices"][0]["token_ids"])
        # top_logprobs 0: llama-server would turn logprobs off; the client gets the
        # sampled token's logprob and no alternatives, as OpenAI defines it
        ns = self.chat(logprobs=True, top_logprobs=0)
        items = ns["choices"][0]["logprobs"]["content"]
        self.assertTrue(items and all(i["top_logprobs"] == [] for i in items))
        chunks, _ = self.chat(stream=True, logprobs=True, top_logprobs=0)
        items = [i for c in chunks for x in c["choices"] if x.get("logprobs")
                 for i in x["logprobs"]["content"]]
        self.assertTrue(items and all(i["top_logprobs"] == [] for i in items))

    def test_timings_where_llama_server_puts_them(self):
        chunks, _ = self.chat(stream=True)
        self.assertTrue(all("timings" not in c for c in chunks[:-1]))
        self.assertIn("timings", chunks[-1])
        chunks, _ = self.chat(stream=True, timings_per_token=True)
        self.assertTrue(all("timings" in c for c in chunks[1:]))

    def test_alias_and_model_name(self):
        b = {"model": "alias-m", "messages": MSG, "max_tokens": 4, "return_token_ids": True}
        st, resp = self.post(CHAT, b)
        self.assertEqual(json.loads(resp)["model"], "alias-m")

    def test_tokenizer_cache_single_flight(self):
        n = 8
        res = [None] * n

        def go(i):
            res[i] = self.post(CHAT, {"model": "m", "messages": MSG, "max_tokens": 3,
                                      "return_token_ids": True, "stream": i % 2 == 0})[0]
        ths = [threading.Thread(target=go, args=(i,)) for i in range(n)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(30)
        self.assertEqual(res, [200] * n)
        self.chat()
        recs = self.f.log_records()
        vocab_calls = [r for r in recs if r["path"] == "/tokenize" and
                       isinstance(json.loads(r["body"]).get("content"), list)]
        self.assertEqual(len(vocab_calls), 1)  # one batched call for all IDs, shared
        self.assertEqual(len(json.loads(vocab_calls[0]["body"])["content"]), 512)
        self.assertEqual(len([r for r in recs if r["path"] == "/v1/models"]), 1)


class Gaps(TokBase):
    """Every gap llama-server b10587 leaves in chat streams, reproduced by the stand-in."""

    def test_eog_in_chat_stream_is_reported_missing(self):
        toks = [393, 394, 389, 3]
        chunks, _ = self.chat(stream=True, fake_tokens=toks)
        fin = self.finish(chunks)
        self.assertEqual(self.stream_ids(chunks), [393, 394, 389])
        self.assertFalse(fin["token_ids_complete"])
        self.assertEqual(fin["token_ids_missing"],
                         [{"position": 3, "count": 1,
                           "reason": "end_of_generation_token_not_reported"}])
        self.assertIsNone(fin["stop_reason"])
        # non-stream and completions streams report it: complete there
        ns = self.chat(fake_tokens=toks)
        self.assertEqual(ns["choices"][0]["token_ids"], toks)
        self.assertTrue(ns["choices"][0]["token_ids_complete"])
        chunks, _ = self.cmpl(stream=True, fake_tokens=toks)
        self.assertEqual(self.stream_ids(chunks), toks)
        self.assertTrue(self.finish(chunks)["token_ids_complete"])

    def test_control_token_without_text(self):
        toks = [393, 4, 394, 395]
        chunks, _ = self.chat(stream=True, fake_tokens=toks, max_tokens=4)
        fin = self.finish(chunks)
        self.assertEqual(self.stream_ids(chunks), [393, 394, 395])
        self.assertEqual(fin["token_ids_missing"],
                         [{"position": 1, "count": 1, "reason": "token_without_text"}])
        ns = self.chat(fake_tokens=toks, max_tokens=4)
        self.assertEqual(ns["choices"][0]["token_ids"], toks)

    def test_stop_string_completing_token_recovered(self):
        # stop "merge": token 389 completes it and sends no text -> no item
        toks = [393, 394, 389, 392]
        chunks, _ = self.chat(stream=True, fake_tokens=toks, stop=["merge"])
        fin = self.finish(chunks)
        self.assertEqual(self.stream_text(chunks), " facesム")
        self.assertEqual(self.stream_ids(chunks), [393, 394, 389])
        self.assertTrue(fin["token_ids_complete"])
        self.assertEqual(fin["stop_reason"], "merge")

    def test_held_back_text_released_into_next_item(self):
        # stop "azz peaX": "azz" is held back, released with " peak" under id 397
        toks = [393, 396, 397, 392]
        chunks, _ = self.chat(stream=True, fake_tokens=toks, max_tokens=4, stop=["azz peaX"])
        self.assertEqual(self.stream_text(chunks), " facesazz peak view")
        self.assertEqual(self.stream_ids(chunks), toks)
        self.assertTrue(self.finish(chunks)["token_ids_complete"])
        released = [x for c in chunks for x in c["choices"]
                    if x["delta"].get("content") == "azz peak"][0]
        self.assertEqual(released["token_ids"], [396, 397])

    def test_held_back_then_stop_hits(self):
        # stop "ge vi": "merge" held, then " view" completes the stop; "mer" is sent
        toks = [393, 394, 389, 392, 395]
        chunks, _ = self.chat(stream=True, fake_tokens=toks, stop=["ge vi"])
        self.assertEqual(self.stream_text(chunks), " facesムmer")
        self.assertEqual(self.stream_ids(chunks), [393, 394, 389, 392])
        fin = self.finish(chunks)
        self.assertTrue(fin["token_ids_complete"])
        self.assertEqual(fin["stop_reason"], "ge vi")

    def test_multibyte_character_byte_tokens(self):
        toks = [393] + EMOJI + [394]
        chunks, _ = self.chat(stream=True, fake_tokens=toks, max_tokens=6)
        self.assertEqual(self.stream_ids(chunks), toks)
        self.assertTrue(self.finish(chunks)["token_ids_complete"])
        emoji = [x for c in chunks for x in c["choices"] if x["delta"].get("content") == "😀"]
        self.assertEqual(emoji[0]["token_ids"], EMOJI)
        ns = self.chat(fake_tokens=toks, max_tokens=6)
        self.assertEqual(ns["choices"][0]["token_ids"], toks)
        self.assertEqual(self.detok(toks), ns["choices"][0]["message"]["content"])

    def test_invalid_utf8_error_event(self):
        toks = [393, 178, 394]  # a lone continuation byte
        chunks, ev = self.chat(stream=True, fake_tokens=toks)
        self.assertNotIn("[DONE]", ev)
        self.assertIn("error", json.loads(ev[-1]))

    def test_speculative_decoding_tokens_without_items(self):
        # draft-accepted tokens come without probabilities: only every 3rd chunk has an item
        ns = self.chat(max_tokens=10)
        ids = ns["choices"][0]["token_ids"]
        chunks, _ = self.chat(stream=True, max_tokens=10, fake_spec_every=3)
        self.assertEqual(self.stream_ids(chunks), ids)
        self.assertTrue(self.finish(chunks)["token_ids_complete"])
        self.assertEqual(self.stream_text(chunks), ns["choices"][0]["message"]["content"])
        # ... also when the last tokens come without items and an EOG ends the stream
        toks = [393, 394, 392, 395, 3]
        chunks, _ = self.chat(stream=True, fake_tokens=toks, fake_spec_every=2)
        fin = self.finish(chunks)
        self.assertEqual(self.stream_ids(chunks), toks[:4])
        self.assertEqual(fin["token_ids_missing"],
                         [{"position": 4, "count": 1,
                           "reason": "end_of_generation_token_not_reported"}])

    def test_tools_with_stream_get_no_logprobs(self):
        tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
        chunks, _ = self.chat(stream=True, tools=tools, max_tokens=3)
        b = self.upstream_body(CHAT)
        self.assertNotIn("logprobs", b)  # llama-server answers 400 to logprobs+tools+stream
        fin = self.finish(chunks)
        self.assertFalse(fin["token_ids_complete"])
        self.assertEqual(fin["token_ids_missing"][0]["count"], 3)


class OldBuild(TokBase):
    build = "old"

    def test_old_build_items_for_every_token(self):
        toks = [393, 394, 389, 4, 392, 3]
        chunks, _ = self.chat(stream=True, fake_tokens=toks, max_tokens=10)
        self.assertEqual(self.stream_ids(chunks), toks)
        self.assertTrue(self.finish(chunks)["token_ids_complete"])
        chunks, _ = self.chat(stream=True, fake_tokens=[393, 396, 397, 392], max_tokens=4,
                              stop=["azz peaX"])
        self.assertEqual(self.stream_ids(chunks), [393, 396, 397, 392])

    def test_old_build_nonstream_without_verbose(self):
        ns = self.chat(fake_tokens=[393, 394, 392, 3], max_tokens=10)
        self.assertEqual(ns["choices"][0]["token_ids"], [393, 394, 392, 3])
        self.assertTrue(ns["choices"][0]["token_ids_complete"])
        # byte tokens get no item in non-stream: said, not hidden
        ns = self.chat(fake_tokens=[393] + EMOJI, max_tokens=5)
        ch = ns["choices"][0]
        self.assertFalse(ch["token_ids_complete"])
        self.assertEqual(ch["token_ids_missing"][0]["count"], 3)


class StopTokenIds(TokBase):
    def test_validation(self):
        cases = [("x", "stop_token_ids"), ([1, "2"], "stop_token_ids"), ([-1], "stop_token_ids"),
                 ([True], "stop_token_ids"), ([512], "stop_token_ids"),
                 (list(range(65)), "stop_token_ids")]
        for v, param in cases:
            st, resp = self.post(CHAT, {"model": "m", "messages": MSG, "stop_token_ids": v})
            self.assertEqual(st, 400, (v, resp))
            e = json.loads(resp)["error"]
            self.assertEqual(e["param"], param)
            self.assertEqual(e["type"], "invalid_request_error")
        st, resp = self.post(CHAT, {"model": "m", "messages": MSG, "return_token_ids": "yes"})
        self.assertEqual(st, 400)
        self.assertEqual(json.loads(resp)["error"]["param"], "return_token_ids")
        self.assertIn("512", json.loads(self.post(CHAT, {
            "model": "m", "messages": MSG, "stop_token_ids": [999]})[1])["error"]["message"])

    def test_normal_token_stop_text_included(self):
        toks = [393, 394, 389, 392, 395]
        chunks, _ = self.chat(stream=True, fake_tokens=toks, stop_token_ids=[389])
        fin = self.finish(chunks)
        self.assertEqual(self.stream_text(chunks), " facesムmerge")  # vLLM: included
        self.assertEqual(fin["stop_reason"], 389)
        self.assertEqual(fin["finish_reason"], "stop")
        self.assertEqual(self.stream_ids(chunks), [393, 394, 389])
        ns = self.chat(fake_tokens=toks, stop_token_ids=[389])
        ch = ns["choices"][0]
        self.assertEqual(ch["message"]["content"], " facesムmerge")
        self.assertEqual(ch["stop_reason"], 389)
        self.assertEqual(ch["token_ids"], [393, 394, 389])
        ns = self.cmpl(fake_tokens=toks, stop_token_ids=[389])
        self.assertEqual(ns["choices"][0]["text"], " facesムmerge")
        self.assertEqual(ns["choices"][0]["stop_reason"], 389)

    def test_special_token_stop_text_excluded_and_enforced(self):
        # <|placeholder1|>=4 is a control token: rendered "", so no stop string can fire
        toks = [393, 394, 4, 392, 395, 392, 395]
        for stream in (False, True):
            self.f.reset()
            if stream:
                chunks, ev = self.chat(stream=True, fake_tokens=toks, stop_token_ids=[4],
                                       fake_token_ms=30, max_tokens=7)
                fin = self.finish(chunks)
                text = self.stream_text(chunks)
                self.assertEqual(ev[-1], "[DONE]")
                self.assertEqual(fin["token_ids"], [4])
            else:
                ns = self.chat(fake_tokens=toks, stop_token_ids=[4], max_tokens=7)
                fin = ns["choices"][0]
                text = fin["message"]["content"]
                self.assertEqual(fin["token_ids"], [393, 394, 4])
                self.assertEqual(ns["usage"]["completion_tokens"], 3)
            self.assertEqual(text, " facesム")  # nothing after the stop token
            self.assertEqual(fin["finish_reason"], "stop")
            self.assertEqual(fin["stop_reason"], 4)
        # the streamed request was cut at the backend: it did not generate all 7 tokens
        rec = wait_for(lambda: [r for r in self.f.log_records() if r["path"] == CHAT and
                                r["outcome"] != "in_progress"], 5, what="backend end")[-1]
        self.assertEqual(rec["outcome"], "cancelled")
        self.assertLess(rec["tokens_sent"], 7)

    def test_special_token_stop_completions_stream_exact(self):
        toks = [393, 394, 4, 392, 395]
        chunks, ev = self.cmpl(stream=True, fake_tokens=toks, stop_token_ids=[4], max_tokens=5,
                               fake_token_ms=20)
        fin = self.finish(chunks)
        self.assertEqual(self.stream_ids(chunks), [393, 394, 4])
        self.assertTrue(fin["token_ids_complete"])
        self.assertEqual(fin["stop_reason"], 4)
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], 3)
        self.assertEqual(ev[-1], "[DONE]")

    def test_stop_ids_without_return_token_ids(self):
        b = {"model": "m", "messages": MSG, "max_tokens": 8, "stop_token_ids": [389],
             "fake_tokens": [393, 389, 392]}
        st, resp = self.post(CHAT, b)
        ch = json.loads(resp)["choices"][0]
        self.assertNotIn("token_ids", ch)
        self.assertEqual(ch["stop_reason"], 389)
        self.assertEqual(ch["message"]["content"], " facesmerge")


class Transparent(TokBase):
    """The upstream body is the client's bytes spliced: only the members the gateway owns
    change (README, Token IDs); floats, escapes, whitespace and key order of everything
    else reach the backend exactly as sent."""

    EXT = ('"x_ext" : {\n  "f": 0.7, "e": 1e-5,\t"s":"caf\\u00e9 \\/ \\"q\\""  ,'
           '"n":[1 , 2.50, -0.0]\n}')
    HEAD = ('{"model":"m",  "messages":[{"role":"user","content":"Hello \\u0074here"}],'
            '"temperature":0.7,"top_p":0.95,"max_tokens":6,')

    def raw(self, path, text):
        st, _, resp = request("127.0.0.1", self.gw.port, "POST", path, text.encode())
        self.assertEqual(st, 200, resp)
        return resp

    def sent(self, path):
        return [r for r in self.f.log_records() if r["path"] == path][-1]["body"]

    def test_chat_stream_bytes_reach_backend(self):
        text = (self.HEAD + '"stream":true,\n  "stream_options": { "include_usage" : false,'
                ' "x": 0.7 },\n  ' + self.EXT + ',\n  "return_token_ids" : true ,'
                '"stop_token_ids":[389]\n}')
        chunks, ev = chunks_of(self.raw(CHAT, text))
        self.assertEqual(ev[-1], "[DONE]")
        self.assertTrue(self.stream_ids(chunks))
        self.assertTrue(all("usage" not in c for c in chunks))  # the client said false
        self.assertEqual(
            self.sent(CHAT),
            self.HEAD + '"stream":true,\n  "stream_options": { "include_usage" : true,'
            ' "x": 0.7 },\n  ' + self.EXT + ',"stop":["merge"],"logprobs":true,'
            '"top_logprobs":1,"verbose":true,"timings_per_token":true\n}')

    def test_chat_nonstream_bytes_reach_backend(self):
        text = ('\n ' + self.HEAD + '"return_token_ids":true,' + self.EXT +
                ' , "logprobs" : false , "seed" : 42 }\n')
        ns = json.loads(self.raw(CHAT, text))
        ch = ns["choices"][0]
        self.assertEqual(len(ch["token_ids"]), ns["usage"]["completion_tokens"])
        self.assertNotIn("logprobs", ch)  # not asked for: stripped again
        self.assertEqual(
            self.sent(CHAT),
            '\n ' + self.HEAD + self.EXT + ' , "logprobs" : true , "seed" : 42,'
            '"top_logprobs":1,"verbose":true,"return_tokens":true }\n')

    def test_completions_stream_bytes_reach_backend(self):
        text = ('{"model":"m","prompt":"Hello there","temperature":0.7,"top_p":0.95,'
                '"stream":true,"return_token_ids":true,"max_tokens":4,' + self.EXT + '}')
        chunks, ev = chunks_of(self.raw(COMPL, text))
        self.assertEqual(ev[-1], "[DONE]")
        self.assertEqual(
            self.sent(COMPL),
            '{"model":"m","prompt":"Hello there","temperature":0.7,"top_p":0.95,'
            '"stream":true,"max_tokens":4,' + self.EXT + ',"logprobs":1,"verbose":true,'
            '"timings_per_token":true}')


class Loading(GatewayTestCase):
    def test_token_ids_while_backend_loads_is_503(self):
        f = self.fake("--load-ms", "3000")
        gw = self.gateway({"m": {"upstream": f.url}})
        b = json.dumps({"model": "m", "messages": MSG, "max_tokens": 2, "return_token_ids": True})
        st, hdrs, resp = request("127.0.0.1", gw.port, "POST", CHAT, b)
        self.assertEqual(st, 503, resp)
        self.assertEqual(json.loads(resp)["error"]["message"], "Loading model")
        self.assertIn(("Retry-After", "1"), hdrs)


class CacheRestart(GatewayTestCase):
    def test_vocab_cache_dropped_when_backend_restarts(self):
        f = self.fake()
        port = f.port
        gw = self.gateway({"m": {"upstream": f.url}})
        b = json.dumps({"model": "m", "messages": MSG, "max_tokens": 2, "return_token_ids": True})
        self.assertEqual(request("127.0.0.1", gw.port, "POST", CHAT, b)[0], 200)
        f.stop()
        self.assertEqual(request("127.0.0.1", gw.port, "POST", CHAT, b)[0], 502)
        f2 = self.fake("--port", str(port))
        self.assertEqual(f2.port, port)
        wait_for(lambda: request("127.0.0.1", port, "GET", "/health")[0] == 200, 10,
                 what="restarted backend ready")
        self.assertEqual(request("127.0.0.1", gw.port, "POST", CHAT, b)[0], 200)
        vocab_calls = [r for r in f2.log_records() if r["path"] == "/tokenize" and
                       isinstance(json.loads(r["body"]).get("content"), list)]
        self.assertEqual(len(vocab_calls), 1)


if __name__ == "__main__":
    unittest.main()

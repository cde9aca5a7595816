#!/usr/bin/env python3
"""lf-serve against real clients: the official openai package, curl, prometheus_client's parser,
and raw sockets for hostile input.

    python3 tests/clients/serve_clients.py --server build/lf-serve --model tests/fixtures/models/tiny_chat

Starts the server itself (port 0, a random 40-character API key in LARGEFORGE_API_KEY, a temporary
serve.yaml with the keys configs/serve.yaml shows: CORS origin, 2 s header timeout, 1 MiB body
limit), runs every check (openai's completions, chat, streaming, logprobs, models and errors; curl;
/metrics through prometheus_client's parser; hostile input over raw sockets; a slowloris client),
prints one line per check ("PASS name", "FAIL name: why", "SKIP name: why"), stops the
server with SIGTERM and checks that it exits 0 within 10 s.
Exit status: 0 every check passed (skips allowed), 1 a check failed, 2 bad arguments,
3 a required package is missing (pip install -r tests/clients/requirements.txt).
"""
import argparse
import http.client
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time

try:
    import openai
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as e:  # the C test that runs this reports "skipped" on 3
    print(f"missing package {e.name}: pip install -r {os.path.dirname(os.path.abspath(__file__))}/requirements.txt",
          file=sys.stderr)
    sys.exit(3)
try:
    import tokenizers  # optional: the reference count of prompt tokens
except ImportError:
    tokenizers = None

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROMPT = "In the beginning God created"
MAX_TOKENS = 12
CHAT = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say something."}]
ERROR_CODES = {  # the contract's codes and their HTTP status; HTTP-layer errors (408, 413, 431) have none
    "INVALID_REQUEST": 400, "AUTHENTICATION_FAILED": 401, "FORBIDDEN": 403, "MODEL_NOT_FOUND": 404,
    "NOT_FOUND": 404, "METHOD_NOT_ALLOWED": 405, "RATE_LIMITED": 429, "INTERNAL_ERROR": 500,
    "MODEL_OVERLOADED": 503, "TIMEOUT": 504}
METRICS = {"inference_requests_total": "counter", "inference_latency_seconds": "histogram",
           "tokens_generated_total": "counter", "prompt_tokens_total": "counter", "active_requests": "gauge",
           "queue_length": "gauge", "kv_cache_usage_ratio": "gauge", "time_to_first_token_seconds": "histogram",
           "inter_token_latency_seconds": "histogram"}
CORS_ORIGIN = "http://allowed.example"


class Fail(Exception):
    pass


class Skip(Exception):
    pass


def expect(cond, why):
    if not cond:
        raise Fail(why)


# -- the server under test


class Server:
    """lf-serve as a subprocess: stdout read for the listening line, stderr kept in a file."""

    def __init__(self, args, key, config):
        self.key = key
        self.model = args.name or os.path.basename(os.path.normpath(args.model))
        self.cmd = [args.server, "inference", "--model", args.model, "--host", "127.0.0.1", "--port", "0"]
        if args.name:
            self.cmd += ["--name", args.name]
        if args.threads:
            self.cmd += ["--threads", str(args.threads)]
        if config:
            self.cmd += ["--config", config]
        self.err = tempfile.NamedTemporaryFile(prefix="lf-serve-", suffix=".err", delete=False)
        self.proc = None
        self.host = self.port = None
        self.lines = []

    def start(self, timeout=60):
        env = dict(os.environ, LARGEFORGE_API_KEY=self.key)
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.err,
                                     env=env, text=True)
        got = threading.Event()

        def pump():  # reads stdout to its end so the server never blocks on a full pipe
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                m = re.fullmatch(r"listening on http://(\S+):(\d+)", line.strip())
                if m and not got.is_set():
                    self.host, self.port = m.group(1).strip("[]"), int(m.group(2))
                    got.set()
            got.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        got.wait(timeout)
        expect(self.port, f"no 'listening on http://HOST:PORT' line on stdout (exit {self.proc.poll()}, "
                          f"stdout {self.lines[:3]}, stderr: {self.stderr_tail()})")
        while time.monotonic() < deadline:
            expect(self.proc.poll() is None, f"exited {self.proc.returncode} while loading: {self.stderr_tail()}")
            try:
                status, _, body = request(self, "GET", "/health", auth=False, timeout=5)
            except OSError:
                status, body = 0, b""
            if status == 200:
                return json.loads(body)
            expect(status in (0, 503), f"/health answered {status} while loading: {body[:200]!r}")
            time.sleep(0.1)
        raise Fail(f"/health not 200 within {timeout} s")

    def url(self, path=""):
        return f"http://{self.host}:{self.port}{path}"

    def stderr_tail(self, n=600):
        with open(self.err.name, "rb") as f:
            return f.read()[-n:].decode("utf-8", "replace").strip()

    def stop(self):
        """SIGTERM; returns (exit status or None when it did not exit, seconds)."""
        if not self.proc or self.proc.poll() is not None:
            return (self.proc.returncode if self.proc else None), 0.0
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
            self.proc.kill()
            self.proc.wait()
        return rc, time.monotonic() - t


# -- HTTP helpers: http.client for ordinary requests, raw sockets for hostile ones


def request(srv, method, path, body=None, auth=True, headers=None, timeout=30):
    """One request on a fresh connection; returns (status, {lowercased header: value}, body bytes)."""
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=timeout)
    h = dict(headers or {})
    if auth:
        h["Authorization"] = f"Bearer {srv.key}"
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


class RawResponse:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body


def read_response(sock, timeout=10.0, pending=None):
    """Reads one HTTP response from sock; None when the server closed (or reset) without one.
    pending: a one-item list holding bytes read past the previous response (pipelining)."""
    pending = pending if pending is not None else [b""]
    buf, deadline = pending[0], time.monotonic() + timeout

    def more():
        nonlocal buf
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            raise Fail(f"no complete response within {timeout} s (got {buf[:120]!r})")
        buf += data
        return bool(data)

    while b"\r\n\r\n" not in buf:
        if not more():
            return None if not buf else _fail_partial(buf)
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ", lines[0] + " ")
    expect(m, f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    buf = rest
    if "chunked" in headers.get("transfer-encoding", ""):
        body = b""
        while True:
            while b"\r\n" not in buf:
                expect(more(), "connection closed inside a chunked body")
            size_line, buf = buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(buf) < size + 2:
                expect(more(), "connection closed inside a chunk")
            body, buf = body + buf[:size], buf[size + 2:]
            if size == 0:
                break
    elif "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            expect(more(), f"connection closed after {len(buf)} of {n} body bytes")
        body, buf = buf[:n], buf[n:]
    else:
        while more():
            pass
        body, buf = buf, b""
    pending[0] = buf
    return RawResponse(int(m.group(1)), headers, body)


def _fail_partial(buf):
    raise Fail(f"connection closed inside the response head: {buf[:120]!r}")


def raw_exchange(srv, data, timeout=10.0):
    """Sends data whole on a fresh connection, then reads one response."""
    with socket.create_connection((srv.host, srv.port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before it read everything (413, 431)
        return read_response(s, timeout)


def raw_post(srv, path, body, auth="default", extra=b""):
    if auth == "default":
        auth = f"Bearer {srv.key}"
    head = f"POST {path} HTTP/1.1\r\nHost: {srv.host}\r\nContent-Type: application/json\r\n"
    if auth is not None:
        head += f"Authorization: {auth}\r\n"
    return (head + f"Content-Length: {len(body)}\r\nConnection: close\r\n").encode() + extra + b"\r\n" + body


def raw_get(srv, path, auth=True, extra=b""):
    head = f"GET {path} HTTP/1.1\r\nHost: {srv.host}\r\nConnection: close\r\n"
    if auth:
        head += f"Authorization: Bearer {srv.key}\r\n"
    return head.encode() + extra + b"\r\n"


def error_body(body, status, code=None, param="-"):
    """Checks the contract's error shape; code None: any code (HTTP-layer errors); param "-": any."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise Fail(f"{status} without a JSON body: {body[:120]!r}")
    err = doc.get("error") if isinstance(doc, dict) else None
    expect(isinstance(err, dict), f"{status} body has no error object: {body[:200]!r}")
    for k in ("message", "type", "param", "code"):
        expect(k in err, f"{status} error lacks {k!r}: {body[:200]!r}")
    expect(isinstance(err["message"], str) and err["message"], f"empty error message: {body[:200]!r}")
    expect(isinstance(err["type"], str), f"error type not a string: {body[:200]!r}")
    expect(err["param"] is None or isinstance(err["param"], str), f"error param neither null nor string: {err}")
    if code is not None:
        expect(ERROR_CODES[code] == status, f"the table pairs {code} with {status}")
        expect(err["code"] == code, f"code {err['code']!r}, want {code!r} ({err['message']!r})")
    if param != "-":
        ok = err["param"] in param if isinstance(param, tuple) else err["param"] == param
        expect(ok, f"param {err['param']!r}, want {param!r} ({err['message']!r})")
    return err


def sse_events(text):
    """Splits an event stream into its data payloads; checks every event is one data line."""
    expect(text.endswith("\n\n"), f"stream does not end with a blank line: {text[-60:]!r}")
    out = []
    for ev in text[:-2].split("\n\n"):
        lines = [ln for ln in ev.split("\n") if ln and not ln.startswith(":")]
        expect(len(lines) == 1 and lines[0].startswith("data: "), f"odd event {ev[:120]!r}")
        out.append(lines[0][6:])
    expect(out and out[-1] == "[DONE]", f"stream does not end with data: [DONE] (last {out[-1:]!r})")
    expect("[DONE]" not in out[:-1], "[DONE] before the end")
    return [json.loads(x) for x in out[:-1]]


# -- metrics


def scrape(srv):
    status, headers, body = request(srv, "GET", "/metrics", auth=False)
    expect(status == 200, f"/metrics answered {status}")
    return headers, body.decode()


def metric_families(text):
    try:
        return {f.name: f for f in text_string_to_metric_families(text)}
    except Exception as e:
        raise Fail(f"prometheus_client cannot parse /metrics: {e}")


def family(fams, name):
    """The family for a contract name; the parser drops a counter's _total suffix."""
    f = fams.get(name) or (fams.get(name[:-6]) if name.endswith("_total") else None)
    expect(f is not None, f"metric {name} missing")
    return f


def metric_sum(fams, name, model, sample=None, **labels):
    """Sum of a metric's samples (sample name: default the family's own) with model and labels."""
    f = family(fams, name)
    want = sample or (name if f.type != "histogram" else name + "_count")
    return sum(s.value for s in f.samples
               if s.name == want and s.labels.get("model") == model
               and all(s.labels.get(k) == v for k, v in labels.items()))


def by_status(fams, model):
    out = {}
    for s in family(fams, "inference_requests_total").samples:
        if s.labels.get("model") == model and s.name.endswith("_total"):
            out[s.labels.get("status")] = out.get(s.labels.get("status"), 0) + s.value
    return out


# -- the checks: each takes the context and raises Fail or Skip


class Ctx:
    def __init__(self, srv, args, cfg):
        self.srv, self.args, self.cfg = srv, args, cfg
        self.model = srv.model
        self.client = openai.OpenAI(base_url=srv.url("/v1"), api_key=srv.key, max_retries=0, timeout=60)
        self.greedy = {}  # "cmpl" / "chat": the non-streaming greedy answer
        tok_cfg = os.path.join(args.model, "tokenizer_config.json")
        try:
            with open(tok_cfg) as f:
                self.tok_cfg = json.load(f)
        except (OSError, ValueError):
            self.tok_cfg = {}
        self.has_template = bool(self.tok_cfg.get("chat_template")) or os.path.exists(
            os.path.join(args.model, "chat_template.jinja"))
        self.chat_skip = None
        self.notes = []  # printed after the checks
        self.slowloris = None


def usage_ok(u, max_tokens, finish, what):
    expect(u is not None, f"{what}: no usage")
    expect(u.prompt_tokens > 0, f"{what}: prompt_tokens {u.prompt_tokens}")
    expect(u.total_tokens == u.prompt_tokens + u.completion_tokens,
           f"{what}: total_tokens {u.total_tokens} != {u.prompt_tokens} + {u.completion_tokens}")
    expect(0 <= u.completion_tokens <= max_tokens, f"{what}: completion_tokens {u.completion_tokens} > {max_tokens}")
    if finish == "length":
        expect(u.completion_tokens == max_tokens,
               f"{what}: finish_reason length with {u.completion_tokens} of max_tokens {max_tokens}")


def recent(t):
    return isinstance(t, int) and abs(t - time.time()) < 600


def check_health(ctx):
    status, headers, body = request(ctx.srv, "GET", "/health", auth=False)
    expect(status == 200, f"/health {status}")
    doc = json.loads(body)
    expect(doc == {"status": "ok", "model": ctx.model}, f"/health body {doc}")
    ct = headers.get("content-type", "")
    expect(ct.startswith("application/json"), f"content-type {ct!r}")


def check_models_list(ctx):
    page = ctx.client.models.list()
    ids = [m.id for m in page.data]
    expect(ids == [ctx.model], f"models {ids}, want [{ctx.model!r}]")
    m = page.data[0]
    expect(m.object == "model" and m.owned_by == "largeforge" and recent(m.created), f"model entry {m}")
    _, _, body = request(ctx.srv, "GET", "/v1/models")
    expect(json.loads(body).get("object") == "list", f"/v1/models object: {body[:120]!r}")
    one = ctx.client.models.retrieve(ctx.model)
    expect(one.id == ctx.model and one.object == "model", f"models.retrieve: {one}")
    expect_api_error(lambda: ctx.client.models.retrieve("no-such-model"), openai.NotFoundError, 404, "MODEL_NOT_FOUND")


def greedy_completion(ctx, **kw):
    return ctx.client.completions.create(model=ctx.model, prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0, **kw)


def check_completion(ctx):
    r = greedy_completion(ctx)
    expect(r.object == "text_completion", f"object {r.object!r}")
    expect(r.id.startswith("cmpl-"), f"id {r.id!r}")
    expect(r.model == ctx.model and recent(r.created), f"model {r.model!r} created {r.created!r}")
    expect(len(r.choices) == 1 and r.choices[0].index == 0, f"choices {r.choices}")
    c = r.choices[0]
    expect(isinstance(c.text, str), f"text {c.text!r}")
    expect(c.finish_reason in ("stop", "length"), f"finish_reason {c.finish_reason!r}")
    expect(c.logprobs is None, f"logprobs {c.logprobs!r} without asking")
    usage_ok(r.usage, MAX_TOKENS, c.finish_reason, "completion")
    ctx.greedy["cmpl"] = r
    again = greedy_completion(ctx)
    expect(again.choices[0].text == c.text, f"greedy not repeatable: {c.text!r} then {again.choices[0].text!r}")
    one = ctx.client.completions.create(model=ctx.model, prompt=PROMPT, max_tokens=1, temperature=0)
    usage_ok(one.usage, 1, one.choices[0].finish_reason, "max_tokens 1")
    expect(c.text.startswith(one.choices[0].text), f"max_tokens 1 gave {one.choices[0].text!r}, 12 gave {c.text!r}")
    listed = ctx.client.completions.create(model=ctx.model, prompt=[PROMPT], max_tokens=MAX_TOKENS, temperature=0)
    expect(listed.choices[0].text == c.text, f"prompt [str] gave {listed.choices[0].text!r}, str {c.text!r}")


def check_prompt_tokens(ctx):
    """usage.prompt_tokens against HF tokenizers on the model's tokenizer.json (special tokens as its
    post-processor adds them, as transformers does)."""
    ref = ctx.greedy.get("cmpl")
    if ref is None:
        raise Skip("needs completion")
    if tokenizers is None:
        raise Skip("the tokenizers package is not installed")
    tok = tokenizers.Tokenizer.from_file(os.path.join(ctx.args.model, "tokenizer.json"))
    n = len(tok.encode(PROMPT, add_special_tokens=True).ids)
    expect(ref.usage.prompt_tokens == n, f"prompt_tokens {ref.usage.prompt_tokens} for {PROMPT!r}, HF tokenizers: {n}")


def stream_parts(chunks, kind):
    """(concatenated text, finish_reason, usage, role) from a list of streamed chunks; checks their shape."""
    want = "text_completion" if kind == "cmpl" else "chat.completion.chunk"
    expect(chunks, "no chunks")
    ids = {c.id for c in chunks}
    expect(len(ids) == 1, f"chunk ids differ: {ids}")
    text, finish, usage, role, after_finish = "", None, None, None, False
    for i, c in enumerate(chunks):
        expect(c.object == want, f"chunk {i} object {c.object!r}, want {want!r}")
        if not c.choices:
            expect(c.usage is not None and i == len(chunks) - 1, f"chunk {i} has no choices and is not the usage one")
            usage = c.usage
            continue
        expect(not after_finish, f"chunk {i} after the finish_reason chunk")
        expect(c.usage is None, f"chunk {i} carries usage before the end")
        ch = c.choices[0]
        if kind == "cmpl":
            text += ch.text or ""
        else:
            if i == 0:
                role = ch.delta.role
            else:
                expect(ch.delta.role in (None, "assistant"), f"chunk {i} role {ch.delta.role!r}")
            text += ch.delta.content or ""
        if ch.finish_reason is not None:
            finish, after_finish = ch.finish_reason, True
    expect(finish in ("stop", "length"), f"no finish_reason chunk (last {chunks[-1]})")
    return text, finish, usage, role


def check_completion_stream(ctx):
    ref = ctx.greedy.get("cmpl")
    if ref is None:
        raise Skip("needs completion")
    chunks = list(greedy_completion(ctx, stream=True, stream_options={"include_usage": True}))
    text, finish, usage, _ = stream_parts(chunks, "cmpl")
    want = ref.choices[0].text
    expect(text == want, f"streamed {text!r}, non-streaming {want!r}")
    expect(finish == ref.choices[0].finish_reason, f"finish {finish!r}, non-streaming {ref.choices[0].finish_reason!r}")
    expect(usage is not None, "include_usage: no final usage chunk")
    expect(usage.model_dump() == ref.usage.model_dump(), f"usage {usage}, non-streaming {ref.usage}")
    plain = list(greedy_completion(ctx, stream=True))
    text2, _, usage2, _ = stream_parts(plain, "cmpl")
    expect(usage2 is None, "usage chunk without include_usage")
    expect(text2 == want, f"streamed (no usage) {text2!r}, non-streaming {want!r}")


def greedy_chat(ctx, **kw):
    return ctx.client.chat.completions.create(model=ctx.model, messages=CHAT, max_tokens=MAX_TOKENS, temperature=0,
                                              **kw)


def check_chat(ctx):
    try:
        r = greedy_chat(ctx)
    except openai.BadRequestError as e:
        if ctx.has_template:
            raise
        ctx.chat_skip = f"the model has no chat template; the server answered 400 {e.code}: {e.message}"
        raise Skip(ctx.chat_skip)
    expect(r.object == "chat.completion", f"object {r.object!r}")
    expect(r.id and r.model == ctx.model and recent(r.created), f"id {r.id!r} model {r.model!r} created {r.created}")
    expect(len(r.choices) == 1 and r.choices[0].index == 0, f"choices {r.choices}")
    c = r.choices[0]
    expect(c.message.role == "assistant" and isinstance(c.message.content, str), f"message {c.message}")
    expect(c.finish_reason in ("stop", "length"), f"finish_reason {c.finish_reason!r}")
    usage_ok(r.usage, MAX_TOKENS, c.finish_reason, "chat")
    ctx.greedy["chat"] = r
    again = ctx.client.chat.completions.create(model=ctx.model, messages=CHAT, max_completion_tokens=MAX_TOKENS,
                                               temperature=0)
    expect(again.choices[0].message.content == c.message.content,
           f"max_completion_tokens gave {again.choices[0].message.content!r}, max_tokens {c.message.content!r}")
    parts = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in CHAT]
    p = ctx.client.chat.completions.create(model=ctx.model, messages=parts, max_tokens=MAX_TOKENS, temperature=0)
    expect(p.choices[0].message.content == c.message.content and p.usage.prompt_tokens == r.usage.prompt_tokens,
           f"content parts gave {p.choices[0].message.content!r} ({p.usage.prompt_tokens} prompt tokens), "
           f"strings {c.message.content!r} ({r.usage.prompt_tokens})")


def check_chat_stream(ctx):
    ref = ctx.greedy.get("chat")
    if ref is None:
        raise Skip(ctx.chat_skip or "needs chat")
    chunks = list(greedy_chat(ctx, stream=True, stream_options={"include_usage": True}))
    text, finish, usage, role = stream_parts(chunks, "chat")
    expect(role == "assistant", f"first delta role {role!r}")
    want = ref.choices[0].message.content
    expect(text == want, f"streamed {text!r}, non-streaming {want!r}")
    expect(finish == ref.choices[0].finish_reason, f"finish {finish!r}, non-streaming {ref.choices[0].finish_reason!r}")
    expect(usage is not None and usage.model_dump() == ref.usage.model_dump(), f"usage {usage}, want {ref.usage}")


def check_stop(ctx):
    ref = ctx.greedy.get("cmpl")
    if ref is None:
        raise Skip("needs completion")
    text = ref.choices[0].text
    ok = set(string.ascii_letters + string.digits)
    at = next((i for i in range(1, len(text) - 1) if text[i] in ok and text[i + 1] in ok), None)
    if at is None:
        raise Skip(f"no two-letter stop string in the greedy output {text!r}")
    stop = text[at:at + 2]
    want = text[:text.find(stop)]
    r = greedy_completion(ctx, stop=[stop])
    expect(r.choices[0].text == want and r.choices[0].finish_reason == "stop",
           f"stop {stop!r}: {r.choices[0].text!r} ({r.choices[0].finish_reason}), want {want!r} (stop)")
    chunks = list(greedy_completion(ctx, stop=stop, stream=True))
    got, finish, _, _ = stream_parts(chunks, "cmpl")
    expect(got == want and finish == "stop", f"streamed stop {stop!r}: {got!r} ({finish}), want {want!r}")


def check_sampling_params(ctx):
    """Every sampling parameter the contract accepts, as the openai client sends them."""
    common = dict(max_tokens=4, temperature=0.8, top_p=0.5, presence_penalty=0.5, frequency_penalty=0.5, seed=7,
                  stop=["\n", "zz"], user="serve_clients", extra_body={"top_k": 5, "min_p": 0.1,
                                                                       "repetition_penalty": 1.1})
    r = ctx.client.completions.create(model=ctx.model, prompt=PROMPT, best_of=1, echo=False, n=1, **common)
    expect(r.choices[0].finish_reason in ("stop", "length"), f"completion: {r}")
    if ctx.greedy.get("chat") is not None:
        r = ctx.client.chat.completions.create(model=ctx.model, messages=CHAT, n=1, **common)
        expect(r.choices[0].finish_reason in ("stop", "length"), f"chat: {r}")


def check_seed(ctx):
    kw = dict(model=ctx.model, prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=1.0, top_p=1.0, seed=1234)
    a = ctx.client.completions.create(**kw).choices[0].text
    b = ctx.client.completions.create(**kw).choices[0].text
    expect(a == b, f"seed 1234 gave {a!r} then {b!r}")


def check_completion_logprobs(ctx):
    k = 3
    r = greedy_completion(ctx, logprobs=k)
    c = r.choices[0]
    lp = c.logprobs
    expect(lp is not None, "no logprobs")
    n = r.usage.completion_tokens
    expect(lp.tokens is not None and len(lp.tokens) == n, f"{len(lp.tokens or [])} tokens for {n} completion tokens")
    expect(len(lp.token_logprobs) == n and all(isinstance(x, float) and x <= 0 for x in lp.token_logprobs),
           f"token_logprobs {lp.token_logprobs}")
    expect(lp.text_offset is not None and len(lp.text_offset) == n and lp.text_offset == sorted(lp.text_offset),
           f"text_offset {lp.text_offset}")
    if not any(t.startswith("bytes:") for t in lp.tokens):
        expect("".join(lp.tokens) == c.text, f"tokens {lp.tokens} do not make the text {c.text!r}")
        # OpenAI does not pin the unit down; a Python client slices str by characters
        chars = [sum(len(t) for t in lp.tokens[:i]) for i in range(n)]
        if lp.text_offset != chars:
            ctx.notes.append(f"completion logprobs: text_offset {lp.text_offset} are not the character offsets "
                             f"{chars} of tokens {lp.tokens}")
    expect(lp.top_logprobs is not None and len(lp.top_logprobs) == n, f"top_logprobs {lp.top_logprobs}")
    for i, top in enumerate(lp.top_logprobs):
        expect(len(top) == k, f"top_logprobs[{i}] has {len(top)} entries, want {k}: {top}")
        expect(all(v <= 0 for v in top.values()), f"top_logprobs[{i}] {top}")
        # greedy: the chosen token is the most likely one
        expect(math.isclose(lp.token_logprobs[i], max(top.values()), abs_tol=1e-4),
               f"token {i}: logprob {lp.token_logprobs[i]} is not the top one {top}")
    ref = ctx.greedy.get("cmpl")
    if ref:
        expect(c.text == ref.choices[0].text, f"with logprobs {c.text!r}, without {ref.choices[0].text!r}")
    zero = greedy_completion(ctx, logprobs=0).choices[0].logprobs  # the chosen tokens' logprobs, at most
    expect(zero is not None and len(zero.token_logprobs or []) == n, f"logprobs=0: {zero}")
    expect(all(len(t or {}) <= 1 for t in zero.top_logprobs or []),
           f"logprobs=0 gave alternatives: {zero.top_logprobs}")


def no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    expect(not dup, f"a JSON object repeats the keys {dup}: a client keeps one of each ({dict(pairs)})")
    return dict(pairs)


def check_logprobs_json(ctx):
    """Every object in a logprobs answer has distinct keys; top_logprobs maps token text to logprob,
    so tokens that print alike (partial UTF-8 sequences all print as U+FFFD) need distinct names."""
    for path, body in (("/v1/completions", {"model": ctx.model, "prompt": PROMPT, "max_tokens": MAX_TOKENS,
                                            "temperature": 0, "logprobs": 5}),
                       ("/v1/chat/completions", {"model": ctx.model, "messages": CHAT, "max_tokens": MAX_TOKENS,
                                                 "temperature": 0, "logprobs": True, "top_logprobs": 5})):
        status, _, raw = request(ctx.srv, "POST", path, body)
        if status == 400 and path.endswith("chat/completions") and ctx.greedy.get("chat") is None:
            continue
        expect(status == 200, f"{path}: {status} {raw[:200]!r}")
        json.loads(raw, object_pairs_hook=no_duplicate_keys)


def check_chat_logprobs(ctx):
    if ctx.greedy.get("chat") is None:
        raise Skip(ctx.chat_skip or "needs chat")
    k = 3
    r = greedy_chat(ctx, logprobs=True, top_logprobs=k)
    c = r.choices[0]
    expect(c.logprobs is not None and c.logprobs.content is not None, f"logprobs {c.logprobs}")
    items = c.logprobs.content
    n = r.usage.completion_tokens
    expect(len(items) == n, f"{len(items)} logprob entries for {n} completion tokens")
    raw = b""
    for i, it in enumerate(items):
        expect(it.logprob <= 0, f"entry {i} logprob {it.logprob}")
        expect(len(it.top_logprobs) == k, f"entry {i}: {len(it.top_logprobs)} top_logprobs, want {k}")
        tops = [t.logprob for t in it.top_logprobs]
        expect(all(v <= 0 for v in tops) and tops == sorted(tops, reverse=True), f"entry {i} top logprobs {tops}")
        expect(math.isclose(it.logprob, tops[0], abs_tol=1e-4),
               f"entry {i}: greedy pick {it.logprob} is not the top one {tops}")
        if it.bytes is not None:  # a token that is not whole UTF-8 is named "bytes:\\xe2\\x80", as OpenAI does
            spelled = ("bytes:" + "".join(f"\\x{b:02x}" for b in it.bytes)).encode() \
                if it.token.startswith("bytes:") else bytes(it.bytes)
            expect(spelled == it.token.encode(), f"entry {i}: bytes {it.bytes} do not spell token {it.token!r}")
            raw += bytes(it.bytes)
    if raw and all(it.bytes is not None for it in items):
        expect(raw.decode("utf-8", "replace") == c.message.content,
               f"bytes spell {raw.decode('utf-8', 'replace')!r}, content {c.message.content!r}")
    ref = ctx.greedy["chat"].choices[0].message.content
    expect(c.message.content == ref, f"with logprobs {c.message.content!r}, without {ref!r}")


def check_concurrent(ctx):
    """Four requests at once (continuous batching) give the answers each gives alone."""
    ref, chat = ctx.greedy.get("cmpl"), ctx.greedy.get("chat")
    if ref is None:
        raise Skip("needs completion")
    jobs = [("cmpl stream", lambda: stream_parts(list(greedy_completion(ctx, stream=True)), "cmpl")[0],
             ref.choices[0].text),
            ("cmpl stream short", lambda: stream_parts(list(ctx.client.completions.create(
                model=ctx.model, prompt=PROMPT, max_tokens=4, temperature=0, stream=True)), "cmpl")[0], None),
            ("cmpl", lambda: greedy_completion(ctx).choices[0].text, ref.choices[0].text)]
    if chat:
        jobs.append(("chat stream", lambda: stream_parts(list(greedy_chat(ctx, stream=True)), "chat")[0],
                     chat.choices[0].message.content))
    out = [None] * len(jobs)

    def run(i):
        try:
            out[i] = jobs[i][1]()
        except Exception as e:
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for (what, _, want), got in zip(jobs, out):
        expect(not isinstance(got, Exception) and got is not None, f"{what}: {got!r}")
        if want is None:  # max_tokens 4: a prefix of the 12-token answer, in tokens; compare as text
            want = ref.choices[0].text
            expect(want.startswith(got.rstrip("\ufffd")), f"{what}: {got!r} is not a prefix of {want!r}")
        else:
            expect(got == want, f"{what}: {got!r} at once, {want!r} alone")


def check_pipelined(ctx):
    """Three requests in one write on one connection: three answers, in order."""
    srv = ctx.srv
    body = json.dumps({"model": ctx.model, "prompt": PROMPT, "max_tokens": 2, "temperature": 0}).encode()
    post = raw_post(srv, "/v1/completions", body).replace(b"Connection: close\r\n", b"")
    data = raw_get(srv, "/v1/models").replace(b"Connection: close\r\n", b"") + post + raw_get(srv, "/health")
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(data)
        pending = [b""]
        got = [read_response(s, 10, pending) for _ in range(3)]
    expect(all(got), f"answers {[g and g.status for g in got]}")
    expect([g.status for g in got] == [200, 200, 200], f"statuses {[g.status for g in got]}")
    expect(json.loads(got[0].body).get("object") == "list", f"first answer {got[0].body[:100]!r}")
    expect(json.loads(got[1].body).get("object") == "text_completion", f"second answer {got[1].body[:100]!r}")
    expect(json.loads(got[2].body).get("status") == "ok", f"third answer {got[2].body[:100]!r}")


def check_chunked_body(ctx):
    """A request body sent chunked (Transfer-Encoding: chunked), as streaming HTTP clients do."""
    ref = ctx.greedy.get("cmpl")
    if ref is None:
        raise Skip("needs completion")
    srv = ctx.srv
    body = json.dumps({"model": ctx.model, "prompt": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0}).encode()
    parts = [body[:10], body[10:25], body[25:]]
    head = raw_post(srv, "/v1/completions", b"").replace(b"Content-Length: 0", b"Transfer-Encoding: chunked")
    r = raw_exchange(srv, head + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n")
    expect(r is not None and r.status == 200, f"chunked body: {r and r.status} {r and r.body[:200]!r}")
    expect(json.loads(r.body)["choices"][0]["text"] == ref.choices[0].text, f"chunked body gave {r.body[:200]!r}")


def check_nul_in_strings(ctx):
    """A JSON string may hold \\u0000: the server keeps it or refuses the field, never cuts the string there."""
    srv, m = ctx.srv, ctx.model
    bad = []
    st, _, raw = request(srv, "POST", "/v1/completions", {"model": m + "\u0000zzz", "prompt": "hi", "max_tokens": 1})
    if st == 200:
        bad.append(f"model {m + chr(0) + 'zzz'!r} was served as {m!r} (want 404 MODEL_NOT_FOUND or 400)")
    prompts = ("hi", "hi\u0000xyz more words")
    counts = []
    for p in prompts:
        st, _, raw = request(srv, "POST", "/v1/completions", {"model": m, "prompt": p, "max_tokens": 1})
        counts.append((st, json.loads(raw)))
    st, doc = counts[1]
    if st == 400:
        # the body is refused whole: its message names the byte of the \u0000
        error_body(json.dumps(doc).encode(), 400, "INVALID_REQUEST")
        expect("byte" in doc["error"]["message"], f"the NUL's place is not named: {doc['error']['message']!r}")
    else:
        n = doc["usage"]["prompt_tokens"]
        if tokenizers:
            tok = tokenizers.Tokenizer.from_file(os.path.join(ctx.args.model, "tokenizer.json"))
            want = len(tok.encode(prompts[1], add_special_tokens=True).ids)
            if n != want:
                bad.append(f"prompt {prompts[1]!r}: prompt_tokens {n}, HF tokenizers {want}")
        elif n == counts[0][1]["usage"]["prompt_tokens"]:
            bad.append(f"prompt {prompts[1]!r} counts as many tokens as 'hi' ({n})")
    if ctx.greedy.get("chat") is not None:
        pt = []
        for content in ("a", "a\u0000bcd efg"):
            st, _, raw = request(srv, "POST", "/v1/chat/completions",
                                 {"model": m, "messages": [{"role": "user", "content": content}], "max_tokens": 1})
            pt.append((st, json.loads(raw)))
        if pt[1][0] == 200 and pt[1][1]["usage"]["prompt_tokens"] == pt[0][1]["usage"]["prompt_tokens"]:
            bad.append(f"chat content {'a' + chr(0) + 'bcd efg'!r} counts as many prompt tokens as 'a' "
                       f"({pt[0][1]['usage']['prompt_tokens']})")
    expect(not bad, "; ".join(bad))


def check_errors_auth(ctx):
    bad = openai.OpenAI(base_url=ctx.srv.url("/v1"), api_key="x" * 40, max_retries=0, timeout=30)
    for what, call in (("models.list", lambda: bad.models.list()),
                       ("completions", lambda: bad.completions.create(model=ctx.model, prompt="a", max_tokens=1))):
        try:
            call()
            raise Fail(f"{what} with a wrong key succeeded")
        except openai.AuthenticationError as e:
            expect(e.status_code == 401 and e.code == "AUTHENTICATION_FAILED",
                   f"{what}: status {e.status_code} code {e.code!r}")
        except openai.APIStatusError as e:
            raise Fail(f"{what}: {type(e).__name__} {e.status_code} {e.code!r}, want AuthenticationError 401")


def expect_api_error(call, cls, status, code, param="-"):
    try:
        call()
    except cls as e:
        expect(e.status_code == status and e.code == code, f"status {e.status_code} code {e.code!r}: {e.message}")
        if param != "-":
            expect(e.param == param, f"param {e.param!r}, want {param!r}: {e.message}")
        return
    except openai.APIStatusError as e:
        raise Fail(f"{type(e).__name__} {e.status_code} {e.code!r}, want {cls.__name__} {status}: {e.message}")
    raise Fail(f"succeeded, want {cls.__name__} {status}")


def check_errors_model(ctx):
    c = ctx.client
    expect_api_error(lambda: c.completions.create(model="no-such-model", prompt="a", max_tokens=1),
                     openai.NotFoundError, 404, "MODEL_NOT_FOUND")
    expect_api_error(lambda: c.chat.completions.create(model="no-such-model", messages=CHAT, max_tokens=1),
                     openai.NotFoundError, 404, "MODEL_NOT_FOUND")


def check_errors_params(ctx):
    c, m = ctx.client, ctx.model
    cases = [("temperature 'hot'", lambda: c.completions.create(model=m, prompt="a", max_tokens=1, temperature="hot"),
              "temperature"),
             ("n=2", lambda: c.completions.create(model=m, prompt="a", max_tokens=1, n=2), "n"),
             ("chat n=2", lambda: c.chat.completions.create(model=m, messages=CHAT, max_tokens=1, n=2), "n"),
             ("best_of=2", lambda: c.completions.create(model=m, prompt="a", max_tokens=1, best_of=2), "best_of"),
             ("echo", lambda: c.completions.create(model=m, prompt="a", max_tokens=1, echo=True), "echo"),
             ("logprobs=21", lambda: c.completions.create(model=m, prompt="a", max_tokens=1, logprobs=21), "logprobs"),
             ("streamed logprobs", lambda: list(c.completions.create(model=m, prompt="a", max_tokens=1, logprobs=2,
                                                                     stream=True)), "logprobs"),
             ("top_logprobs=21", lambda: c.chat.completions.create(model=m, messages=CHAT, max_tokens=1, logprobs=True,
                                                                   top_logprobs=21), "top_logprobs"),
             ("unknown field", lambda: c.completions.create(model=m, prompt="a", max_tokens=1,
                                                            extra_body={"frobnicate": 1}), "frobnicate"),
             ("chat unknown field", lambda: c.chat.completions.create(model=m, messages=CHAT, max_tokens=1,
                                                                      extra_body={"frobnicate": 1}), "frobnicate")]
    bad = []
    for what, call, param in cases:
        try:
            expect_api_error(call, openai.BadRequestError, 400, "INVALID_REQUEST", param)
        except Fail as e:
            bad.append(f"{what}: {e}")
    expect(not bad, "; ".join(bad))


# -- curl


def curl(ctx, *args, timeout=30):
    r = subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args], capture_output=True, timeout=timeout + 5)
    expect(r.returncode == 0, f"curl {' '.join(args[:3])}: exit {r.returncode}: {r.stderr.decode()[:200]}")
    return r.stdout


def curl_head_body(ctx, *args):
    """curl -D - style: (status, headers, body) of the last response."""
    out = curl(ctx, "-D", "-", *args)
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def check_curl_completion(ctx):
    ref = ctx.greedy.get("cmpl")
    if ref is None:
        raise Skip("needs completion")
    if not shutil.which("curl"):
        raise Skip("no curl")
    body = json.dumps({"model": ctx.model, "prompt": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0})
    out = curl(ctx, ctx.srv.url("/v1/completions"), "-H", f"Authorization: Bearer {ctx.srv.key}",
               "-H", "Content-Type: application/json", "-d", body)
    doc = json.loads(out)
    expect(doc.get("object") == "text_completion", f"object {doc.get('object')!r}")
    expect(doc["choices"][0]["text"] == ref.choices[0].text, f"curl {doc['choices'][0]['text']!r}, openai "
                                                             f"{ref.choices[0].text!r}")
    expect(doc["usage"] == ref.usage.model_dump(exclude_none=True), f"usage {doc['usage']}, openai {ref.usage}")


def check_curl_stream(ctx):
    ref = ctx.greedy.get("cmpl")
    if ref is None:
        raise Skip("needs completion")
    body = json.dumps({"model": ctx.model, "prompt": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0,
                       "stream": True, "stream_options": {"include_usage": True}})
    status, headers, out = curl_head_body(ctx, "-N", ctx.srv.url("/v1/completions"), "-H",
                                          f"Authorization: Bearer {ctx.srv.key}", "-H",
                                          "Content-Type: application/json", "-d", body)
    expect(status == 200, f"status {status}")
    ct = headers.get("content-type", "")
    expect(ct.startswith("text/event-stream"), f"content-type {ct!r}")
    events = sse_events(out.decode())
    text = "".join(e["choices"][0]["text"] for e in events if e["choices"])
    expect(text == ref.choices[0].text, f"curl stream {text!r}, non-streaming {ref.choices[0].text!r}")
    expect(events[-1]["choices"] == [] and events[-1]["usage"] == ref.usage.model_dump(exclude_none=True),
           f"last event {events[-1]}")
    expect(all(e["object"] == "text_completion" for e in events), "chunk objects")


def check_curl_health_metrics(ctx):
    status, headers, body = curl_head_body(ctx, ctx.srv.url("/health"))
    expect(status == 200 and json.loads(body) == {"status": "ok", "model": ctx.model}, f"/health {status} {body!r}")
    status, headers, body = curl_head_body(ctx, ctx.srv.url("/metrics"))
    expect(status == 200, f"/metrics {status}")
    ct = headers.get("content-type", "")
    expect(ct.startswith("text/plain") and "version=0.0.4" in ct, f"/metrics content-type {ct!r}")


def check_curl_cors(ctx):
    if not ctx.cfg.get("cors"):
        raise Skip(ctx.cfg.get("note") or "no CORS setting in configs/serve.yaml")
    url = ctx.srv.url("/v1/completions")
    status, headers, _ = curl_head_body(ctx, "-X", "OPTIONS", url, "-H", f"Origin: {CORS_ORIGIN}", "-H",
                                        "Access-Control-Request-Method: POST", "-H",
                                        "Access-Control-Request-Headers: authorization, content-type")
    expect(status == 204, f"preflight {status}")
    expect(headers.get("access-control-allow-origin") in (CORS_ORIGIN, "*"),
           f"preflight Access-Control-Allow-Origin {headers.get('access-control-allow-origin')!r}")
    methods = headers.get("access-control-allow-methods", "").upper()
    allowed_headers = headers.get("access-control-allow-headers", "").lower()
    expect("POST" in methods, f"Access-Control-Allow-Methods {methods!r}")
    expect("authorization" in allowed_headers or allowed_headers == "*",
           f"Access-Control-Allow-Headers {allowed_headers!r}")
    status, headers, _ = curl_head_body(ctx, "-X", "OPTIONS", url, "-H", "Origin: http://evil.example", "-H",
                                        "Access-Control-Request-Method: POST")
    expect("access-control-allow-origin" not in headers, f"a foreign origin got {headers}")
    status, headers, _ = curl_head_body(ctx, ctx.srv.url("/v1/models"), "-H", f"Origin: {CORS_ORIGIN}", "-H",
                                        f"Authorization: Bearer {ctx.srv.key}")
    expect(status == 200 and headers.get("access-control-allow-origin") in (CORS_ORIGIN, "*"),
           f"GET with Origin: {status} {headers.get('access-control-allow-origin')!r}")


# -- metrics


def check_metrics_parse(ctx):
    _, text = scrape(ctx.srv)
    fams = metric_families(text)
    for name, typ in METRICS.items():
        f = family(fams, name)
        expect(f.type == typ, f"{name} is a {f.type}, want {typ}")
        expect(any(s.labels.get("model") == ctx.model for s in f.samples), f"{name} has no model={ctx.model!r} sample")
        if typ == "histogram":
            b = [(float(s.labels["le"]), s.value) for s in f.samples if s.name == name + "_bucket"
                 and s.labels.get("model") == ctx.model]
            expect(b and b[-1][0] == math.inf, f"{name}: no +Inf bucket")
            expect([x for x, _ in b] == sorted(x for x, _ in b) and [v for _, v in b] == sorted(v for _, v in b),
                   f"{name}: buckets not cumulative {b}")
            expect(b[-1][1] == metric_sum(fams, name, ctx.model), f"{name}: +Inf bucket != _count")
    u = metric_sum(fams, "kv_cache_usage_ratio", ctx.model)
    expect(0 <= u <= 1, f"kv_cache_usage_ratio {u}")
    # every sample line after a TYPE belongs to that family (the parser does not insist)
    current = None
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            current = line.split()[2]
        elif line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            expect(current and (name == current or re.fullmatch(re.escape(current) + r"_(bucket|sum|count)", name)),
                   f"sample {name} outside its family (after TYPE {current})")


def check_metrics_counts(ctx):
    m = ctx.model
    before = metric_families(scrape(ctx.srv)[1])
    s0, t0, p0 = by_status(before, m), metric_sum(before, "tokens_generated_total", m), metric_sum(
        before, "prompt_tokens_total", m)
    lat0 = metric_sum(before, "inference_latency_seconds", m)
    gen = prompt = 0
    for n in (3, 5):
        r = ctx.client.completions.create(model=m, prompt=PROMPT, max_tokens=n, temperature=0)
        gen, prompt = gen + r.usage.completion_tokens, prompt + r.usage.prompt_tokens
    chunks = list(greedy_completion(ctx, stream=True, stream_options={"include_usage": True}))
    gen, prompt = gen + chunks[-1].usage.completion_tokens, prompt + chunks[-1].usage.prompt_tokens
    try:
        ctx.client.completions.create(model=m, prompt=PROMPT, max_tokens=1, n=2)
    except openai.BadRequestError:
        pass
    after = metric_families(scrape(ctx.srv)[1])
    s1 = by_status(after, m)
    delta = {k: s1.get(k, 0) - s0.get(k, 0) for k in set(s0) | set(s1) if s1.get(k, 0) != s0.get(k, 0)}
    ok = [k for k, v in delta.items() if v == 3]
    expect(len(ok) == 1, f"inference_requests_total rose by {delta} for 3 answered requests and 1 bad one")
    expect(sum(delta.values()) == 4, f"inference_requests_total rose by {delta}: the 400 is not counted (want 3+1)")
    expect(metric_sum(after, "tokens_generated_total", m) - t0 == gen,
           f"tokens_generated_total rose by {metric_sum(after, 'tokens_generated_total', m) - t0}, usage says {gen}")
    expect(metric_sum(after, "prompt_tokens_total", m) - p0 == prompt,
           f"prompt_tokens_total rose by {metric_sum(after, 'prompt_tokens_total', m) - p0}, usage says {prompt}")
    expect(metric_sum(after, "inference_latency_seconds", m) - lat0 >= 3,
           f"inference_latency_seconds_count rose by {metric_sum(after, 'inference_latency_seconds', m) - lat0}")
    expect(metric_sum(after, "active_requests", m) == 0 and metric_sum(after, "queue_length", m) == 0,
           "active_requests or queue_length not 0 when idle")


def check_metrics_disconnect(ctx):
    srv = ctx.srv
    body = json.dumps({"model": ctx.model, "prompt": PROMPT, "max_tokens": 200, "temperature": 0, "stream": True})
    sock = socket.create_connection((srv.host, srv.port), timeout=10)
    sock.sendall(raw_post(srv, "/v1/completions", body.encode()).replace(b"Connection: close\r\n", b""))
    got = b""
    while got.partition(b"\r\n\r\n")[2].count(b"data: ") < 2:  # two events read, then the client goes away
        data = sock.recv(4096)
        expect(data, f"stream closed before two events: {got[:200]!r}")
        got += data
    expect(got.startswith(b"HTTP/1.1 200"), f"stream answered {got[:60]!r}")
    during = metric_sum(metric_families(scrape(srv)[1]), "active_requests", ctx.model)
    sock.close()
    deadline, now = time.monotonic() + 5, None
    while time.monotonic() < deadline:
        now = metric_sum(metric_families(scrape(srv)[1]), "active_requests", ctx.model)
        if now == 0:
            break
        time.sleep(0.1)
    expect(now == 0, f"active_requests still {now} 5 s after the client left (was {during} while streaming)")
    ctx.notes.append(f"active_requests was {during:g} while the 200-token stream was open")


# -- hostile input over raw sockets


def hostile_cases(srv, m, limits):
    """(name, request bytes, status, code or None (HTTP layer: any), param or "-")."""
    def body(**kw):
        return json.dumps(dict({"model": m, "prompt": "hi", "max_tokens": 1}, **kw)).encode()

    def chat(**kw):
        return json.dumps(dict({"model": m, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
                               **kw)).encode()

    cmpl, chat_path = "/v1/completions", "/v1/chat/completions"
    pad = b"X-Pad: " + b"a" * (limits["header"] + 1024) + b"\r\n"
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(limits["headers"] + 10))
    return [
        ("malformed_json", raw_post(srv, cmpl, b'{"model": "%s", "prompt": "hi",' % m.encode()), 400,
         "INVALID_REQUEST", "-"),
        ("json_not_object", raw_post(srv, cmpl, b"[1, 2, 3]"), 400, "INVALID_REQUEST", "-"),
        ("empty_body", raw_post(srv, cmpl, b""), 400, "INVALID_REQUEST", "-"),
        ("trailing_garbage", raw_post(srv, cmpl, body() + b" x"), 400, "INVALID_REQUEST", "-"),
        ("missing_model", raw_post(srv, cmpl, json.dumps({"prompt": "hi"}).encode()), 400, "INVALID_REQUEST", "model"),
        ("missing_prompt", raw_post(srv, cmpl, json.dumps({"model": m}).encode()), 400, "INVALID_REQUEST", "prompt"),
        ("max_tokens_string", raw_post(srv, cmpl, body(max_tokens="8")), 400, "INVALID_REQUEST", "max_tokens"),
        ("max_tokens_negative", raw_post(srv, cmpl, body(max_tokens=-1)), 400, "INVALID_REQUEST", "max_tokens"),
        ("max_tokens_fraction", raw_post(srv, cmpl, body(max_tokens=1.5)), 400, "INVALID_REQUEST", "max_tokens"),
        ("prompt_number", raw_post(srv, cmpl, body(prompt=5)), 400, "INVALID_REQUEST", "prompt"),
        ("temperature_bool", raw_post(srv, cmpl, body(temperature=True)), 400, "INVALID_REQUEST", "temperature"),
        ("temperature_negative", raw_post(srv, cmpl, body(temperature=-1)), 400, "INVALID_REQUEST", "temperature"),
        ("stop_number", raw_post(srv, cmpl, body(stop=7)), 400, "INVALID_REQUEST", "stop"),
        ("stream_string", raw_post(srv, cmpl, body(stream="yes")), 400, "INVALID_REQUEST", "stream"),
        ("unknown_field", raw_post(srv, cmpl, body(frobnicate=1)), 400, "INVALID_REQUEST", "frobnicate"),
        ("invalid_utf8", raw_post(srv, cmpl, body(prompt="@@").replace(b"@@", b"\xff\xfe")), 400, "INVALID_REQUEST",
         (None, "prompt")),
        ("messages_string", raw_post(srv, chat_path, chat(messages="hi")), 400, "INVALID_REQUEST", "messages"),
        ("messages_bad_role", raw_post(srv, chat_path, chat(messages=[{"role": "wizard", "content": "hi"}])), 400,
         "INVALID_REQUEST", ("messages", "messages[0].role", "role")),
        ("messages_content_number", raw_post(srv, chat_path, chat(messages=[{"role": "user", "content": 3}])), 400,
         "INVALID_REQUEST", ("messages", "messages[0].content", "content")),
        ("unknown_path", raw_get(srv, "/v1/nothing"), 404, "NOT_FOUND", "-"),
        ("wrong_method", raw_get(srv, cmpl), 405, "METHOD_NOT_ALLOWED", "-"),
        ("no_authorization", raw_post(srv, cmpl, body(), auth=None), 401, "AUTHENTICATION_FAILED", "-"),
        ("wrong_key", raw_post(srv, cmpl, body(), auth="Bearer " + "y" * 40), 401, "AUTHENTICATION_FAILED", "-"),
        ("key_prefix", raw_post(srv, cmpl, body(), auth="Bearer " + srv.key[:-1]), 401, "AUTHENTICATION_FAILED", "-"),
        ("key_longer", raw_post(srv, cmpl, body(), auth="Bearer " + srv.key + "z"), 401, "AUTHENTICATION_FAILED", "-"),
        ("basic_scheme", raw_post(srv, cmpl, body(), auth="Basic " + srv.key), 401, "AUTHENTICATION_FAILED", "-"),
        ("models_no_auth", raw_get(srv, "/v1/models", auth=False), 401, "AUTHENTICATION_FAILED", "-"),
        ("body_over_limit", raw_post(srv, cmpl, b"").replace(b"Content-Length: 0", b"Content-Length: %d" %
                                                            (limits["body"] + 1)), 413, None, "-"),
        ("chunk_over_limit", raw_post(srv, cmpl, b"").replace(b"Content-Length: 0", b"Transfer-Encoding: chunked")
         + b"%x\r\n" % (limits["body"] + 1), 413, None, "-"),
        ("header_over_limit", raw_get(srv, "/v1/models", extra=pad), 431, None, "-"),
        ("too_many_headers", raw_get(srv, "/v1/models", extra=many), 431, None, "-"),
    ]


def check_hostile(ctx, case):
    name, data, status, code, param = case
    r = raw_exchange(ctx.srv, data)
    expect(r is not None, "the server closed without an answer")
    expect(r.status == status, f"HTTP {r.status}, want {status}: {r.body[:200]!r}")
    error_body(r.body, r.status, code, param)
    expect(ctx.srv.proc.poll() is None, f"the server died ({ctx.srv.proc.returncode})")


def check_after_hostile(ctx):
    r = ctx.client.completions.create(model=ctx.model, prompt=PROMPT, max_tokens=2, temperature=0)
    expect(r.choices[0].finish_reason in ("stop", "length"), f"{r}")


class Slowloris(threading.Thread):
    """A client that sends its request head one byte per 0.5 s and never finishes it."""

    def __init__(self, srv, timeout_s):
        super().__init__(daemon=True)
        self.srv, self.timeout_s, self.result = srv, timeout_s, None

    def run(self):
        try:
            self.result = self.attempt()
        except Exception as e:
            self.result = f"{type(e).__name__}: {e}"

    def attempt(self):
        head = f"POST /v1/completions HTTP/1.1\r\nHost: {self.srv.host}\r\n".encode()
        s = socket.create_connection((self.srv.host, self.srv.port), timeout=5)
        t0, i, limit = time.monotonic(), 0, self.timeout_s + 5
        try:
            while time.monotonic() - t0 < limit:
                byte = head[i:i + 1] if i < len(head) else b"Xa: b\r\n"[(i - len(head)) % 7:][:1]
                try:
                    s.send(byte)
                except (BrokenPipeError, ConnectionResetError):
                    break
                i += 1
                s.settimeout(0.5)
                try:
                    s.recv(1, socket.MSG_PEEK)
                    break  # an answer, or EOF
                except socket.timeout:
                    pass
            took = time.monotonic() - t0
            if took >= limit:
                return f"still open after {took:.1f} s (header timeout {self.timeout_s} s, {i} bytes sent)"
            r = read_response(s, 5)
            if r is None:
                return ("ok", f"closed after {took:.1f} s without an answer")
            if r.status != 408:
                return f"answered {r.status} after {took:.1f} s, want 408: {r.body[:120]!r}"
            error_body(r.body, 408)
            return ("ok", f"408 after {took:.1f} s")
        finally:
            s.close()


def check_slowloris(ctx):
    t = ctx.slowloris
    t.join(t.timeout_s + 15)
    expect(not t.is_alive(), "the slowloris client did not finish")
    expect(isinstance(t.result, tuple), str(t.result))
    ctx.notes.append("slowloris: " + t.result[1])


# -- the temporary config


def serve_config(tmpdir):
    """A temporary serve.yaml with the keys configs/serve.yaml shows (set or commented out) under
    server: CORS for CORS_ORIGIN, a 2 s header timeout, a 1 MiB body limit. Returns {"path",
    "cors", "header_timeout" (s), "body_limit" (bytes), "note"}, the keys that apply."""
    template = os.path.join(REPO, "configs", "serve.yaml")
    if not os.path.exists(template):
        return {"note": "configs/serve.yaml does not exist yet: no config file, CORS untested"}
    keys, in_server = set(), False
    with open(template) as f:
        for line in f:
            if re.match(r"^server:\s*(#.*)?$", line):
                in_server = True
            elif re.match(r"^[^\s#]", line):
                in_server = False
            elif in_server:
                m = re.match(r"^ {2}#? ?([a-z_]+):", line)
                if m:
                    keys.add(m.group(1))
    out, lines = {}, []
    if "cors_origins" in keys:
        lines.append(f'  cors_origins: ["{CORS_ORIGIN}"]')
        out["cors"] = True
    else:
        out["note"] = "configs/serve.yaml has no server.cors_origins: CORS untested"
    for k in sorted(keys):
        if k.startswith("header_timeout"):
            lines.append(f"  {k}: " + ("2000" if k.endswith("_ms") else "2"))
            out["header_timeout"] = 2.0
        elif k == "max_body_mb":
            lines.append(f"  {k}: 1")
            out["body_limit"] = 1 << 20
    if lines:
        out["path"] = os.path.join(tmpdir, "serve.yaml")
        with open(out["path"], "w") as f:
            f.write("server:\n" + "\n".join(lines) + "\n")
    return out


# -- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", required=True, help="path of lf-serve")
    ap.add_argument("--model", required=True, help="a LargeForge model dir")
    ap.add_argument("--name", help="served model id (default: the dir's name)")
    ap.add_argument("--threads", type=int, default=0, help="--threads for the server (default: its own)")
    ap.add_argument("--no-config", action="store_true", help="start the server without a temporary config")
    ap.add_argument("--only", help="comma-separated check names (or prefixes) to run")
    args = ap.parse_args()
    if not os.access(args.server, os.X_OK):
        print(f"{args.server}: not an executable", file=sys.stderr)
        return 2
    tmpdir = tempfile.mkdtemp(prefix="lf-serve-clients-")
    cfg = {"note": "--no-config"} if args.no_config else serve_config(tmpdir)
    key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
    srv = Server(args, key, cfg.get("path"))
    counts, t_start = {"PASS": 0, "FAIL": 0, "SKIP": 0}, time.monotonic()

    def report(name, fn, *a):
        if args.only and not any(name.startswith(p) for p in args.only.split(",")):
            return
        try:
            fn(*a)
            verdict = "PASS"
        except Skip as e:
            verdict = f"SKIP {name}: {e}"
        except Fail as e:
            verdict = f"FAIL {name}: {e}"
        except openai.APIStatusError as e:
            verdict = f"FAIL {name}: {type(e).__name__} {e.status_code} {e.code!r}: {e.message}"
        except Exception as e:
            verdict = f"FAIL {name}: {type(e).__name__}: {e}"
        counts[verdict[:4]] += 1
        print(verdict if verdict != "PASS" else f"PASS {name}", flush=True)

    try:
        return run_all(args, srv, cfg, report, counts, t_start)
    finally:
        if srv.proc and srv.proc.poll() is None:  # a crash above: never leave the server running
            srv.proc.kill()
            srv.proc.wait()
        shutil.rmtree(tmpdir, ignore_errors=True)
        os.unlink(srv.err.name)


def run_all(args, srv, cfg, report, counts, t_start):
    started = {}
    report("server_start", lambda: started.update(srv.start() or {}))
    if not started:
        srv.stop()
        print(f"server stderr: {srv.stderr_tail()}", file=sys.stderr)
        return 1
    if cfg.get("note"):
        print(f"note: {cfg['note']}")
    ctx = Ctx(srv, args, cfg)
    run_slow = not args.only or any("slowloris".startswith(p) for p in args.only.split(","))
    ctx.slowloris = Slowloris(srv, cfg.get("header_timeout", 10.0))
    if run_slow:
        ctx.slowloris.start()  # in the background: it takes the header timeout
    checks = [("health", check_health), ("openai_models_list", check_models_list),
              ("openai_completion", check_completion), ("prompt_tokens", check_prompt_tokens),
              ("openai_completion_stream", check_completion_stream),
              ("openai_chat", check_chat), ("openai_chat_stream", check_chat_stream), ("openai_stop", check_stop),
              ("openai_sampling_params", check_sampling_params),
              ("openai_seed", check_seed), ("openai_completion_logprobs", check_completion_logprobs),
              ("openai_chat_logprobs", check_chat_logprobs), ("logprobs_json", check_logprobs_json),
              ("openai_concurrent", check_concurrent), ("openai_error_auth", check_errors_auth),
              ("openai_error_model", check_errors_model), ("openai_error_params", check_errors_params),
              ("curl_completion", check_curl_completion), ("curl_stream", check_curl_stream),
              ("curl_health_metrics", check_curl_health_metrics), ("curl_cors", check_curl_cors),
              ("metrics_parse", check_metrics_parse), ("metrics_counts", check_metrics_counts),
              ("metrics_disconnect", check_metrics_disconnect), ("raw_pipelined", check_pipelined),
              ("raw_chunked_body", check_chunked_body), ("nul_in_strings", check_nul_in_strings)]
    for name, fn in checks:
        report(name, fn, ctx)
    limits = {"header": 16384, "headers": 100, "body": cfg.get("body_limit", 8 << 20)}  # the HTTP layer's defaults
    for case in hostile_cases(srv, ctx.model, limits):
        report("hostile/" + case[0], check_hostile, ctx, case)
    report("after_hostile", check_after_hostile, ctx)
    if run_slow:
        report("slowloris", check_slowloris, ctx)
    for n in ctx.notes:
        print(f"note: {n}")

    def stop():
        rc, took = srv.stop()
        expect(rc == 0, f"exit status {rc} after SIGTERM ({took:.1f} s): {srv.stderr_tail(300)}")

    report("sigterm", stop)
    if counts["FAIL"]:
        print(f"server stderr (tail): {srv.stderr_tail()}", file=sys.stderr)
    print(f"serve_clients: {counts['PASS']} pass, {counts['FAIL']} fail, {counts['SKIP']} skip "
          f"({time.monotonic() - t_start:.1f} s)")
    return 1 if counts["FAIL"] else 0



if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""`charlm serve` against real clients: the official `openai` Python package, raw HTTP, and
64 concurrent streaming clients. Run by scripts/test_serve.sh, which starts the server.

    python3 scripts/test_serve.py http://127.0.0.1:PORT [--load-seconds 20] [--clients 64]

Exits non-zero on the first failed check; prints the load figures (not asserted: timings
are noisy) as one JSON line prefixed "load:".
"""
import argparse
import asyncio
import http.client
import json
import socket
import statistics
import sys
import time
import urllib.parse

import openai

failures = 0


def check(ok, what):
    global failures
    print(("ok: " if ok else "FAIL: ") + what, flush=True)
    if not ok:
        failures += 1


def raw(base, method, path, body=None, headers=None):
    """One request on its own connection: (status, headers, body bytes)."""
    u = urllib.parse.urlparse(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    headers = dict(headers or {})
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def error_of(data):
    return json.loads(data)["error"]


def client_checks(base, client, model):
    # Non-streaming, seeded: the same seed gives the same text.
    a = client.completions.create(model=model, prompt="(lynx [", max_tokens=50, seed=7, temperature=0.9)
    b = client.completions.create(model=model, prompt="(lynx [", max_tokens=50, seed=7, temperature=0.9)
    check(a.object == "text_completion" and len(a.choices) == 1, "a completion object with one choice")
    check(len(a.choices[0].text) == 50 and a.choices[0].finish_reason == "length", "50 characters, finish 'length'")
    check(a.choices[0].text == b.choices[0].text, "the same seed gives the same text")
    c = client.completions.create(model=model, prompt="(lynx [", max_tokens=50, seed=8, temperature=0.9)
    check(c.choices[0].text != a.choices[0].text, "another seed gives another text")
    check(a.usage.prompt_tokens == 7 and a.usage.completion_tokens == 50 and a.usage.total_tokens == 57, "usage")

    # Streaming gives the same text in pieces, then [DONE] (the client stops there). The server
    # sends what was generated since its last write as one chunk, and 50 characters often come
    # as one: the pieces are counted on a long stream.
    pieces, finish = [], None
    for chunk in client.completions.create(model=model, prompt="(lynx [", max_tokens=50, seed=7, temperature=0.9,
                                           stream=True):
        pieces.append(chunk.choices[0].text)
        finish = chunk.choices[0].finish_reason or finish
    check("".join(pieces) == a.choices[0].text and finish == "length", "streamed: the same text")
    long = client.completions.create(model=model, prompt="(", max_tokens=20000, seed=7)
    pieces = [chunk.choices[0].text for chunk in client.completions.create(
        model=model, prompt="(", max_tokens=20000, seed=7, stream=True)]
    texts = [p for p in pieces if p]
    check("".join(pieces) == long.choices[0].text and len(texts) >= 2,
          f"20,000 characters streamed in {len(texts)} pieces of text, the same text")
    usage = [ch.usage for ch in client.completions.create(
        model=model, prompt="(", max_tokens=5, stream=True, stream_options={"include_usage": True}) if ch.usage]
    check(len(usage) == 1 and usage[0].completion_tokens == 5, "stream_options.include_usage")

    # n > 1: samples seeded seed + i, each like a single request with that seed.
    many = client.completions.create(model=model, prompt="<", max_tokens=30, n=3, seed=100)
    check(sorted(ch.index for ch in many.choices) == [0, 1, 2], "n=3 gives choices 0, 1, 2")
    third = client.completions.create(model=model, prompt="<", max_tokens=30, seed=102)
    check(many.choices[2].text == third.choices[0].text, "choice i is the sample of seed + i")
    check(len({ch.text for ch in many.choices}) > 1, "the samples differ")

    # logprobs: one entry per character, the chosen one among or below the top alternatives.
    lp = client.completions.create(model=model, prompt="(", max_tokens=20, logprobs=3, seed=1).choices[0].logprobs
    ok = len(lp.tokens) == 20 and len(lp.token_logprobs) == 20 and all(len(t) == 3 for t in lp.top_logprobs)
    ok = ok and all(x <= 0 for x in lp.token_logprobs)
    ok = ok and all(max(top.values()) >= x - 1e-9 for top, x in zip(lp.top_logprobs, lp.token_logprobs))
    check(ok, "logprobs: tokens, token_logprobs, top_logprobs (3 each)")

    # Temperature 0 is deterministic whatever the seed; a stop string ends the text before it.
    t0 = [client.completions.create(model=model, prompt="(ant ", max_tokens=40, temperature=0, seed=s).choices[0].text
          for s in (1, 2)]
    check(t0[0] == t0[1], "temperature 0 ignores the seed")
    free = a.choices[0].text
    stop = free[20:22]
    cut = client.completions.create(model=model, prompt="(lynx [", max_tokens=50, seed=7, temperature=0.9,
                                    stop=[stop]).choices[0]
    check(cut.finish_reason == "stop" and cut.text == free[:free.index(stop)], f"stop {stop!r} cuts the text there")
    echo = client.completions.create(model=model, prompt="(ant", max_tokens=5, echo=True, seed=1).choices[0].text
    check(echo.startswith("(ant") and len(echo) == 9, "echo returns the prompt first")

    # Errors arrive as the client's exceptions, naming the field.
    try:
        client.completions.create(model=model, prompt="(", max_tokens=10 ** 9)
        check(False, "max_tokens beyond the limit is refused")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and "max_tokens" in str(e), "max_tokens beyond the limit: 400 naming it")
    try:
        client.completions.create(model=model, prompt="日本 (", max_tokens=3)
        check(False, "unseen prompt characters are refused")
    except openai.BadRequestError as e:
        check("U+65E5" in str(e) and e.body.get("param") == "prompt", "unseen prompt characters: 400 naming them")
    try:
        client.completions.create(model=model, prompt="(", max_tokens=3, temperature="hot")
        check(False, "a string temperature is refused")
    except openai.BadRequestError as e:
        check("temperature" in str(e), "a wrong type: 400 naming the field")
    models = client.models.list()
    check([m.id for m in models.data] == [model], "models.list")


def bad_input_checks(base):
    s, _, d = raw(base, "POST", "/v1/completions", body=b"{not json", headers={"Content-Type": "application/json"})
    check(s == 400 and "JSON" in error_of(d)["message"], "malformed JSON: 400")
    s, _, d = raw(base, "POST", "/v1/completions", body=b'{"n": "3"}')
    check(s == 400 and error_of(d)["param"] == "n", "n as a string: 400 naming n")
    s, _, d = raw(base, "POST", "/v1/completions", body=b"x" * (10 << 20))
    check(s == 413 and error_of(d)["type"] == "invalid_request_error", "a 10 MB body: 413")
    s, _, d = raw(base, "POST", "/v1/completions", body=b'{"prompt": "("}', headers={"Content-Type": "text/plain"})
    check(s == 415, "a text/plain post (what a cross-site form can send): 415")
    s, _, d = raw(base, "GET", "/v1/models", headers={"Host": "attacker.example"})
    check(s == 403, "another host name without an API key (DNS rebinding): 403")
    s, _, d = raw(base, "POST", "/v1/completions", body=b"[" * 100000 + b"]" * 100000)
    check(s == 400 and "nests" in error_of(d)["message"], "deeply nested JSON: 400")
    s, _, d = raw(base, "GET", "/v1/nothing")
    check(s == 404 and "error" in json.loads(d), "an unknown path: 404 in OpenAI's shape")
    s, _, _ = raw(base, "GET", "/%2e%2e/%2e%2e/etc/passwd")
    check(s == 404, "no path traversal")
    # A client that vanishes mid-stream: its generation stops and the server goes on. A million
    # characters take this model seconds; test_serve.sh checks in the server's log that
    # each of the three ended as stopped (499) rather than complete.
    u = urllib.parse.urlparse(base)
    body = b'{"prompt": "(", "max_tokens": 1000000, "stream": true}'
    for _ in range(3):
        sock = socket.create_connection((u.hostname, u.port))
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        sock.recv(2000)
        sock.close()
    deadline = time.time() + 5
    while time.time() < deadline and json.loads(raw(base, "GET", "/health")[2])["running"] > 0:
        time.sleep(0.05)
    check(json.loads(raw(base, "GET", "/health")[2])["running"] == 0, "vanished clients' generations stopped")
    s, _, d = raw(base, "POST", "/v1/completions", body=b'{"prompt": "(", "max_tokens": 5}')
    check(s == 200 and len(json.loads(d)["choices"][0]["text"]) == 5, "and the server keeps serving")


async def stream_once(host, port, body):
    """One streaming completion over its own connection, read as raw chunked SSE:
    (seconds to the first text, characters, finish reason, saw [DONE])."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n")[0].decode())
        first, chars, finish, done, pending = None, 0, None, False, b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                break
            pending += (await reader.readexactly(size + 2))[:-2]
            *events, pending = pending.split(b"\n\n")
            for event in events:
                data = event[6:]
                if data == b"[DONE]":
                    done = True
                    continue
                choice = json.loads(data)["choices"][0]
                if choice["text"] and first is None:
                    first = time.perf_counter() - start
                chars += len(choice["text"])
                finish = choice["finish_reason"] or finish
        return first, chars, finish, done
    finally:
        writer.close()


def load(base, model, clients, seconds, max_tokens, prompt="("):
    """`clients` concurrent clients, each streaming completions back to back for `seconds`
    (asyncio over raw sockets: the official client's parsing would be the bottleneck)."""
    u = urllib.parse.urlparse(base)

    async def run(n, duration):
        results, errors = [], []
        stop_at = time.perf_counter() + duration

        async def worker(k):
            i = 0
            while time.perf_counter() < stop_at:
                body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "seed": k * 100000 + i,
                                   "stream": True}).encode()
                t0 = time.perf_counter()
                try:
                    first, chars, finish, done = await stream_once(u.hostname, u.port, body)
                    results.append((first, chars, time.perf_counter() - t0,
                                    done and finish == "length" and chars == max_tokens))
                except Exception as e:  # noqa: BLE001 - every failure counts
                    errors.append(repr(e))
                i += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(n)))
        return results, errors, time.perf_counter() - t0

    many, many_errors, elapsed = asyncio.run(run(clients, seconds))
    one, _, one_elapsed = asyncio.run(run(1, min(seconds, 5)))
    incomplete = sum(1 for r in many if not r[3])
    check(not many_errors, f"load: {clients} clients for {seconds:g} s, no errors {many_errors[:3]}")
    check(incomplete == 0 and len(many) >= clients, f"load: all {len(many)} streams complete ({incomplete} not)")
    ttfc = sorted(r[0] for r in many if r[0] is not None)

    def pct(p):
        return round(ttfc[min(len(ttfc) - 1, int(p * len(ttfc)))] * 1000, 1) if ttfc else None

    figures = {
        "clients": clients, "seconds": round(elapsed, 1), "requests": len(many),
        "requests_per_s": round(len(many) / elapsed, 2), "ttfc_p50_ms": pct(0.5), "ttfc_p99_ms": pct(0.99),
        "chars_per_s": round(sum(r[1] for r in many) / elapsed),
        "one_client_chars_per_s": round(sum(r[1] for r in one) / one_elapsed) if one else None,
        "one_client_ttfc_ms": round(statistics.median(r[0] for r in one if r[0]) * 1000, 1) if one else None,
        "max_tokens": max_tokens,
    }
    print("load: " + json.dumps(figures), flush=True)
    return figures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("--load-seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--only-load", action="store_true")
    ap.add_argument("--prompt", default="(", help="the load's prompt (the brackets model knows '(')")
    args = ap.parse_args()
    client = openai.OpenAI(base_url=args.base + "/v1", api_key="none", max_retries=0)
    model = client.models.list().data[0].id
    if not args.only_load:
        client_checks(args.base, client, model)
        bad_input_checks(args.base)
    if args.load_seconds > 0:
        load(args.base, model, args.clients, args.load_seconds, args.max_tokens, args.prompt)
    print(f"{failures} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

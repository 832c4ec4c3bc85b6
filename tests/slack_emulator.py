#!/usr/bin/env python3
"""A scriptable Slack emulator for fluxrelay's tests (stdlib only, 127.0.0.1 only).

It answers incoming-webhook POSTs (any path) and the Web API's chat.postMessage
and chat.update (paths ending in "/chat.postMessage", "/chat.update") like
Slack does, records every request, and can be scripted per path with a queue
of responses followed by a default.

Web API messages are kept like Slack keeps them: chat.postMessage answers
with the channel's id ("#name" maps to a stable "C…" id per name; an id is
kept as given) and an increasing ts ("1700000000.000100" style), and stores
the message under (channel id, ts); a post with thread_ts is a reply in that
thread. chat.update edits a stored message by channel id and ts: "text",
"attachments" and "blocks" given replace the old ones, absent ones are kept
(as Slack does); the answer is ok with channel and ts, or message_not_found
(unknown ts, or a deleted message), cant_update_message (a message made
uneditable with lock_message), channel_not_found (a "#name" instead of an id,
or an unknown id). Errors and rate limits are scripted as for any path:
emu.script(base + "/chat.update", Response.bot_ratelimited(2)).

    emu.channel_id("#flux")         # the id chat.postMessage answers for "#flux"
    emu.top_level("#flux")          # [Message] not in a thread (broadcast replies too)
    emu.thread("#flux", ts)         # [parent, reply, ...] in ts order
    emu.message("#flux", ts)        # Message: .text .attachments .blocks .edits ...
    emu.wait_for(lambda: ..., timeout=10)
    emu.delete_message("#flux", ts) # later updates answer message_not_found
    emu.lock_message("#flux", ts)   # later updates answer cant_update_message

Importable:

    emu = SlackEmulator().start()
    url = emu.url("/services/T000/B000/XXXX")
    emu.script("/services/T000/B000/XXXX", Response(500, "rollup_error"), Response.ok())
    ...
    emu.wait_requests(2, path="/services/T000/B000/XXXX", timeout=10)
    emu.requests      # list of Request(time, path, headers, body, json, answer)
    emu.stop()

Standalone (benchmarks): `python3 tests/slack_emulator.py --port N` answers every
POST with 200 "ok" (chat.postMessage paths with ok:true JSON), prints its port on
the first line of stdout and runs until SIGINT/SIGTERM. Requests are counted, not
kept.

Every wait is bounded: delays end early when the emulator stops, and the
wait_* helpers take a timeout.
"""
import argparse
import email.utils
import hashlib
import http.server
import json
import signal
import socket
import sys
import threading
import time


class Response:
    """One scripted answer.

    status/body/headers: what to answer (body str or bytes; a dict/list is sent
    as JSON; a callable is called with the Request and returns one of those,
    e.g. a receiver that echoes what it was sent). delay: seconds to wait
    before answering (e.g. beyond the client's timeout). drop: close the
    connection without answering.
    """

    def __init__(self, status=200, body="ok", headers=None, delay=0.0, drop=False):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.delay = delay
        self.drop = drop

    def __repr__(self):
        if self.drop:
            return "Response(drop)"
        return "Response(%d, %r%s)" % (self.status, self.body,
                                      ", delay=%s" % self.delay if self.delay else "")

    # ---- incoming webhook answers ----
    @classmethod
    def ok(cls):
        return cls(200, "ok")

    @classmethod
    def error(cls, status, text):
        """An incoming-webhook error: status with Slack's plain-text error string."""
        return cls(status, text)

    @classmethod
    def rate_limited(cls, retry_after=None):
        """429; retry_after: seconds (int/float/str), a datetime-like epoch via
        http_date(), or None for no header."""
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return cls(429, "rate_limited", headers)

    @classmethod
    def slow(cls, delay, then=None):
        r = then or cls.ok()
        return cls(r.status, r.body, r.headers, delay=delay)

    @classmethod
    def dropped(cls):
        return cls(drop=True)

    # ---- Web API answers (HTTP 200 + JSON) ----
    @classmethod
    def bot_ok(cls):
        """ok:true; ts and channel are filled from the request by the emulator."""
        return cls(200, None)

    @classmethod
    def bot_error(cls, error, status=200, headers=None):
        return cls(status, {"ok": False, "error": error}, headers)

    @classmethod
    def bot_ratelimited(cls, retry_after=None, status=429):
        """The Web API's rate limit: HTTP 429 (or 200) with error
        "ratelimited" and Retry-After (seconds) unless None."""
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return cls(status, {"ok": False, "error": "ratelimited"}, headers)


def http_date(epoch):
    """An HTTP-date (IMF-fixdate) for a Retry-After header."""
    return email.utils.formatdate(epoch, usegmt=True)


class Request:
    """One request as received."""

    def __init__(self, t, method, path, headers, body):
        self.time = t                 # time.monotonic() when fully read
        self.method = method
        self.path = path
        self.headers = headers        # dict, lower-cased names
        self.body = body              # bytes
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None
        self.answer = None            # the Response used
        self.result = None            # the JSON answered for a Web API call (dict), if any

    def attachments(self):
        if isinstance(self.json, dict):
            return self.json.get("attachments") or []
        return []

    def __repr__(self):
        return "Request(%s %s, %d bytes, answer=%r)" % (self.method, self.path,
                                                      len(self.body), self.answer)


class Message:
    """One Web API message as Slack stores it (the emulator's view)."""

    def __init__(self, channel, ts, payload, thread_ts=None):
        self.channel = channel        # channel id
        self.ts = ts
        self.thread_ts = thread_ts    # parent's ts for a reply, else None
        self.broadcast = bool(payload.get("reply_broadcast")) if thread_ts else False
        self.text = payload.get("text")
        self.attachments = payload.get("attachments")
        self.blocks = payload.get("blocks")
        self.posted = payload         # the chat.postMessage body
        self.edits = []               # chat.update bodies applied, in order
        self.deleted = False
        self.locked = False

    def apply_update(self, payload):
        for key in ("text", "attachments", "blocks"):
            if key in payload:
                setattr(self, key, payload[key])
        self.edits.append(payload)

    def colors(self):
        return [a.get("color") for a in self.attachments or []]

    def titles(self):
        return [a.get("title") for a in self.attachments or []]

    def __repr__(self):
        return "Message(%s %s%s, text=%r, titles=%r, edits=%d)" % (
            self.channel, self.ts, " in %s" % self.thread_ts if self.thread_ts else "",
            self.text, self.titles(), len(self.edits))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"     # keep-alive, so connection reuse is visible
    server_version = "slack-emulator"

    def log_message(self, fmt, *args):   # quiet
        pass

    def setup(self):
        super().setup()
        # Headers and body are separate writes: without this, Nagle plus the
        # client's delayed ACK add ~40 ms to every keep-alive answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = b""
        while len(data) < n:
            chunk = self.rfile.read(n - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def _answer(self, status, body, headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            ctype = "application/json; charset=utf-8"
        else:
            ctype = "text/html"
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        hdrs = dict(headers)
        if "Content-Type" not in hdrs:
            hdrs["Content-Type"] = ctype
        if not self.server.emulator.keepalive:
            hdrs["Connection"] = "close"
            self.close_connection = True
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_GET(self):
        self._answer(405, "invalid_method", {"Allow": "POST"})

    def do_POST(self):
        emu = self.server.emulator
        body = self._read_body()
        req = Request(time.monotonic(), "POST", self.path,
                      {k.lower(): v for k, v in self.headers.items()}, body)
        resp = emu._next_response(req)
        req.answer = resp
        emu._record(req)
        if resp.delay:
            emu._stopping.wait(resp.delay)
        if resp.drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        body_out = resp.body
        if callable(body_out):
            body_out = body_out(req)
        if body_out is None:       # bot_ok: Slack's own answer, from the message store
            body_out = emu._web_api(req)
        if isinstance(body_out, dict):
            req.result = body_out
        try:
            self._answer(resp.status, body_out, resp.headers)
        except OSError:
            # The client gave up (timeout) before the answer: fine.
            self.close_connection = True


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A client killed with -9 resets its kept-alive connection: not an error.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class SlackEmulator:
    def __init__(self, port=0, record=True, keepalive=True):
        """keepalive=False answers "Connection: close" every time, so each
        client request opens a new connection (no silent client retries on
        a dropped reused connection)."""
        self._port = port
        self.keepalive = keepalive
        self._record_all = record
        self._lock = threading.Condition()
        self._scripts = {}            # path -> list of Response
        self._defaults = {}           # path -> Response
        self._default = None          # for every other path; None = by path kind
        self._rules = {}              # path -> fn(Request) -> Response or None
        self._stopping = threading.Event()
        self._last_ts = 0             # microseconds of the last ts handed out
        self._channels = {}           # "#name" -> id
        self._messages = {}           # (channel id, ts) -> Message
        self.requests = []
        self.count = 0
        self.server = None
        self._thread = None

    # ---- life cycle ----
    def start(self):
        self.server = _Server(("127.0.0.1", self._port), _Handler)
        self.server.emulator = self
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self._thread.join(5)
            self.server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def url(self, path="/"):
        if not path.startswith("/"):
            path = "/" + path
        return "http://127.0.0.1:%d%s" % (self.port, path)

    # ---- scripting ----
    def script(self, path, *responses):
        """Append responses to path's queue (used once each, in order)."""
        with self._lock:
            self._scripts.setdefault(path, []).extend(responses)

    def set_default(self, response, path=None):
        """The answer once path's queue is empty (path None = every path)."""
        with self._lock:
            if path is None:
                self._default = response
            else:
                self._defaults[path] = response

    def set_rule(self, path, fn):
        """fn(request) -> Response, or None to fall through to the script and
        the defaults; consulted first for every request to path."""
        with self._lock:
            self._rules[path] = fn

    def reset(self):
        with self._lock:
            self._rules.clear()
            self._scripts.clear()
            self._defaults.clear()
            self._default = None
            self.requests = []
            self.count = 0
            self._messages.clear()

    def _next_response(self, req):
        path = req.path
        with self._lock:
            rule = self._rules.get(path)
            if rule is not None:
                r = rule(req)
                if r is not None:
                    return r
            q = self._scripts.get(path)
            if q:
                return q.pop(0)
            if path in self._defaults:
                return self._defaults[path]
            if self._default is not None:
                return self._default
        if path.endswith("/chat.postMessage") or path.endswith("/chat.update"):
            return Response.bot_ok()
        return Response.ok()

    def _new_ts(self):
        """An increasing ts near the wall clock, in steps of at least 100 µs."""
        with self._lock:
            now = int(time.time() * 10000) * 100
            self._last_ts = max(now, self._last_ts + 100)
            return "%d.%06d" % divmod(self._last_ts, 1000000)

    @staticmethod
    def _id_for(name):
        return "C" + hashlib.sha1(name.encode()).hexdigest()[:10].upper()

    def _resolve(self, channel, create):
        """The id of a channel given as "#name", "name" or an id (None when
        unknown and not create)."""
        if not isinstance(channel, str) or channel == "":
            return None
        if channel[0] in "CDG" and channel[1:].isalnum() and channel.upper() == channel:
            return channel
        name = channel if channel.startswith("#") else "#" + channel
        with self._lock:
            if name not in self._channels:
                if not create:
                    return None
                self._channels[name] = self._id_for(name)
            return self._channels[name]

    def _web_api(self, req):
        """Slack's answer to a successful-by-default Web API call, with the
        message store updated (under the lock)."""
        body = req.json if isinstance(req.json, dict) else {}
        if req.path.endswith("/chat.update"):
            return self._update(body)
        channel = self._resolve(body.get("channel"), True)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        ts = self._new_ts()
        thread_ts = body.get("thread_ts")
        with self._lock:
            self._messages[(channel, ts)] = Message(channel, ts, body, thread_ts or None)
            self._lock.notify_all()
        return {"ok": True, "channel": channel, "ts": ts,
                "message": {"type": "message", "text": body.get("text", "")}}

    def _update(self, body):
        channel = body.get("channel")
        ts = body.get("ts")
        # chat.update takes an id only: a "#name" is not found.
        if not isinstance(channel, str) or channel.startswith("#"):
            return {"ok": False, "error": "channel_not_found"}
        with self._lock:
            if channel not in self._channels.values() and not any(
                    c == channel for (c, _) in self._messages):
                return {"ok": False, "error": "channel_not_found"}
            m = self._messages.get((channel, ts))
            if m is None or m.deleted:
                return {"ok": False, "error": "message_not_found"}
            if m.locked:
                return {"ok": False, "error": "cant_update_message"}
            m.apply_update(body)
            self._lock.notify_all()
            return {"ok": True, "channel": channel, "ts": ts, "text": m.text or ""}

    def _record(self, req):
        with self._lock:
            self.count += 1
            if self._record_all:
                self.requests.append(req)
            self._lock.notify_all()

    # ---- inspection ----
    def requests_for(self, path=None):
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def delivered(self, path=None):
        """Requests answered with a 2xx (and, for the Web API, ok:true)."""
        out = []
        for r in self.requests_for(path):
            a = r.answer
            if a.drop or a.delay or not 200 <= a.status < 300:
                continue
            if isinstance(a.body, dict) and not a.body.get("ok", False):
                continue
            if isinstance(r.result, dict) and not r.result.get("ok", False):
                continue
            out.append(r)
        return out

    # ---- the Web API's messages ----
    def channel_id(self, channel):
        """The id chat.postMessage answers for channel ("#name" or an id)."""
        if isinstance(channel, str) and not channel.startswith("#") and \
                channel[:1] in "CDG" and channel.upper() == channel:
            return channel
        name = channel if channel.startswith("#") else "#" + channel
        return self._id_for(name)

    def messages(self, channel=None):
        """Every stored message (of a channel), in ts order."""
        cid = None if channel is None else self.channel_id(channel)
        with self._lock:
            ms = [m for m in self._messages.values() if cid is None or m.channel == cid]
        return sorted(ms, key=lambda m: (m.channel, float(m.ts)))

    def message(self, channel, ts):
        with self._lock:
            return self._messages.get((self.channel_id(channel), ts))

    def top_level(self, channel=None):
        """What the channel shows: messages not in a thread, and broadcast replies."""
        return [m for m in self.messages(channel)
                if m.thread_ts is None or m.broadcast]

    def parents(self, channel=None):
        """Messages that are not replies, in ts order."""
        return [m for m in self.messages(channel) if m.thread_ts is None]

    def thread(self, channel, ts):
        """[parent, reply, ...] in ts order ([] when no such parent)."""
        cid = self.channel_id(channel)
        with self._lock:
            parent = self._messages.get((cid, ts))
            replies = [m for m in self._messages.values()
                       if m.channel == cid and m.thread_ts == ts]
        if parent is None:
            return []
        return [parent] + sorted(replies, key=lambda m: float(m.ts))

    def delete_message(self, channel, ts):
        with self._lock:
            self._messages[(self.channel_id(channel), ts)].deleted = True

    def lock_message(self, channel, ts):
        with self._lock:
            self._messages[(self.channel_id(channel), ts)].locked = True

    def wait_for(self, predicate, timeout=10.0, what="condition"):
        """Wait until predicate() (called without the lock) is true; return its
        value. Raises AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            v = predicate()
            if v:
                return v
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("emulator: %s not reached after %ss; messages: %r" % (
                    what, timeout, self.messages()[-8:]))
            with self._lock:
                self._lock.wait(min(left, 0.1))

    def wait_requests(self, count, path=None, timeout=10.0, delivered=False):
        """Wait until `count` requests (to path, or anywhere) were received (or
        delivered); return them. Raises AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                got = self.delivered(path) if delivered else self.requests_for(path)
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("emulator: %d/%d requests to %s after %ss: %r" % (
                        len(got), count, path or "any path", timeout, got[-5:]))
                self._lock.wait(min(left, 0.1))

    def wait_attachments(self, count, path=None, timeout=10.0):
        """Wait until delivered messages carry `count` attachments in total;
        return the list of attachments in arrival order."""
        deadline = time.monotonic() + timeout
        while True:
            atts = [a for r in self.delivered(path) for a in r.attachments()]
            if len(atts) >= count:
                return atts
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("emulator: %d/%d attachments to %s after %ss" % (
                    len(atts), count, path or "any path", timeout))
            with self._lock:
                self._lock.wait(min(left, 0.1))


def _main():
    ap = argparse.ArgumentParser(description="Slack emulator answering 200 ok.")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    emu = SlackEmulator(port=args.port, record=False).start()
    print(emu.port, flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(1.0):
        pass
    emu.stop()
    print("requests=%d" % emu.count, file=sys.stderr, flush=True)


if __name__ == "__main__":
    _main()

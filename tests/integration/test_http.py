"""HTTP API of SPEC §4: every route and status code, against the real daemon."""
import hashlib
import hmac
import http.client
import json
import re
import socket
import time
import unittest

import frtest

CONSOLE = """
providers = ( { name = "console"; type = "console"; } );
alerts = ( { name = "all"; providers = ["console"]; severity = "info";
             sources = ( { kind = "*"; } ); } );
dedup = { window = 0; };
"""

EVENT = frtest.fixture("01")


class HttpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = frtest.Daemon(CONSOLE + "listen: { max_body = 4096; };\n")

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        cls.d.cleanup()
        assert rc == 0, "daemon exit code %r" % rc

    def assertJsonError(self, status, body, want_status, field=None):
        self.assertEqual(status, want_status, body)
        doc = json.loads(body)
        self.assertIsInstance(doc.get("error"), str)
        self.assertTrue(doc["error"])
        if field is not None:
            self.assertEqual(doc.get("field"), field, doc)
        return doc

    def test_accepted(self):
        status, hdrs, doc = self.d.post(EVENT)
        self.assertEqual(status, 202)
        self.assertEqual(doc["status"], "accepted")
        self.assertRegex(doc["id"], r"^[0-9a-f]{32}$")
        self.assertEqual(doc["alerts"], ["all"])
        self.assertTrue(hdrs["content-type"].startswith("application/json"))

    def test_charset_parameter_allowed(self):
        status, _, doc = self.d.post(frtest.fixture("02"),
                                     {"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(status, 202, doc)

    def test_bad_requests(self):
        ev = json.loads(EVENT)
        cases = [
            (b"not json", ""),
            (b"{\"involvedObject\":", ""),
            (b"[1,2]", ""),
            (b"\"str\"", ""),
            (b"", ""),
            (json.dumps(dict(ev, severity="fatal")), "severity"),
            (json.dumps(dict(ev, severity=3)), "severity"),
            (json.dumps(dict(ev, message=5)), "message"),
            # a number jansson cannot hold is still a type error in a known field
            (EVENT.replace(b'"ValidationFailed"', b"1e999"), "reason"),
            (json.dumps(dict(ev, metadata={"k": 12345})).replace("12345", "-1e999"),
             "metadata.k"),
            (json.dumps(dict(ev, timestamp="yesterday")), "timestamp"),
            (json.dumps(dict(ev, metadata={"revision": 1})), "metadata.revision"),
            (json.dumps(dict(ev, involvedObject={"name": "x"})), "involvedObject.kind"),
            (json.dumps(dict(ev, involvedObject={"kind": "K", "name": ""})), "involvedObject.name"),
            (json.dumps({k: v for k, v in ev.items() if k != "involvedObject"}), "involvedObject"),
            (EVENT.replace(b"webapp", b"web\xff\xfeapp"), None),
        ]
        for body, field in cases:
            with self.subTest(body=body[:60]):
                status, _, data = self.d.request("POST", "/", body)
                self.assertJsonError(status, data, 400, field if field else None)

    def test_unknown_path(self):
        for method, path in (("GET", "/nope"), ("HEAD", "/nope"), ("GET", "/healthz/"),
                             ("GET", "/hooks/x")):
            status, _, data = self.d.request(method, path)
            self.assertEqual(status, 404, (method, path))
            if method == "GET":
                self.assertJsonError(status, data, 404)

    def test_post_any_path_is_an_event(self):
        """notification-controller accepts events on any path: a Provider
        address with a path must not lose every event (SPEC §4)."""
        for path in ("/hooks/flux", "/nope", "/healthz/", "/a/b?c=d", "//"):
            status, _, doc = self.d.post(EVENT, path=path)
            self.assertEqual(status, 202, (path, doc))
            self.assertEqual(doc["status"], "accepted", path)
        # Bad input on another path is refused the same way.
        status, _, data = self.d.request("POST", "/hooks/flux", b"not json")
        self.assertJsonError(status, data, 400)
        # Another method on such a path: 405, POST allowed.
        status, hdrs, data = self.d.request("PUT", "/hooks/flux", EVENT)
        self.assertJsonError(status, data, 405)
        self.assertEqual(hdrs.get("allow"), "POST")

    def test_wrong_method(self):
        status, hdrs, data = self.d.request("GET", "/")
        self.assertJsonError(status, data, 405)
        self.assertEqual(hdrs.get("allow"), "POST")
        status, hdrs, data = self.d.request("PUT", "/", EVENT)
        self.assertJsonError(status, data, 405)
        for path in ("/healthz", "/readyz", "/metrics"):
            status, hdrs, data = self.d.request("POST", path, EVENT)
            self.assertJsonError(status, data, 405)
            self.assertIn("GET", hdrs.get("allow", ""))

    def test_too_large_declared(self):
        body = EVENT[:-2] + b', "pad": "' + b"x" * 5000 + b'"}'
        status, _, data = self.d.request("POST", "/", body)
        self.assertJsonError(status, data, 413)

    def test_too_large_chunked(self):
        # No Content-Length: the limit is enforced while counting chunks.
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
        try:
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"x" * 1000
            for _ in range(6):
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            s.sendall(b"0\r\n\r\n")
            resp = b""
            deadline = time.monotonic() + 10
            while b"\r\n\r\n" not in resp and time.monotonic() < deadline:
                got = s.recv(4096)
                if not got:
                    break
                resp += got
            self.assertTrue(resp.startswith(b"HTTP/1.1 413"), resp[:100])
        finally:
            s.close()

    def test_content_type(self):
        for ct in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx"):
            status, _, data = self.d.request("POST", "/", EVENT, {"Content-Type": ct})
            self.assertJsonError(status, data, 415)
        # No Content-Type at all.
        conn = __import__("http.client").client.HTTPConnection("127.0.0.1", self.d.port, timeout=10)
        conn.putrequest("POST", "/")
        conn.putheader("Content-Length", str(len(EVENT)))
        conn.endheaders()
        conn.send(EVENT)
        r = conn.getresponse()
        self.assertJsonError(r.status, r.read(), 415)
        conn.close()

    def test_health(self):
        status, hdrs, data = self.d.request("GET", "/healthz")
        self.assertEqual((status, json.loads(data)), (200, {"status": "ok"}))
        status, _, data = self.d.request("GET", "/readyz")
        self.assertEqual(status, 200)
        status, _, data = self.d.request("HEAD", "/healthz")
        self.assertEqual(status, 200)

    def test_metrics_consistent(self):
        def counter(text, name):
            for line in text.splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
            return 0.0
        status, hdrs, data = self.d.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertIn("version=0.0.4", hdrs["content-type"])
        before = data.decode()
        self.d.post(EVENT)
        self.d.request("POST", "/", b"garbage")
        _, _, data = self.d.request("GET", "/metrics")
        after = data.decode()
        acc = 'fluxrelay_events_received_total{status="accepted"}'
        rej = 'fluxrelay_events_received_total{status="rejected"}'
        self.assertEqual(counter(after, acc) - counter(before, acc), 1)
        self.assertEqual(counter(after, rej) - counter(before, rej), 1)
        self.assertIn("# TYPE fluxrelay_http_request_duration_seconds histogram", after)


def write_all_then_read(port, head, body, timeout=20):
    """Send the request the way Flux's (Go) clients and Python's do: the whole
    body first, then read the answer. Returns (status, headers, body) or
    (None, error) when the connection broke under the writes or before an
    answer (what Go reports as "broken pipe" and retries)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        # A small send buffer keeps the client writing while the server
        # decides, as a client on a real network would be.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        try:
            s.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError) as e:
            return None, "write: " + repr(e)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError as e:
                return None, "read: " + repr(e)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                h, _, rest = data.partition(b"\r\n\r\n")
                cl = [l for l in h.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if cl and len(rest) >= int(cl[0].split(b":")[1]):
                    break
        if not data.startswith(b"HTTP/1.1 "):
            return None, "no answer: %r" % data[:100]
        h, _, rest = data.partition(b"\r\n\r\n")
        lines = h.split(b"\r\n")
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(b":")
            hdrs[k.strip().lower().decode()] = v.strip().decode()
        return int(lines[0].split()[1]), hdrs, rest
    finally:
        s.close()


def post_head(length, extra=""):
    return ("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n%s\r\n" % (length, extra)).encode()


class RefusalReachesClientTest(unittest.TestCase):
    """A refusal decided from the headers (413, 401, 415...) reaches a client
    that writes its whole body before it reads: the connection is not reset
    under its writes (SPEC §4). Before: 413 and a reset, so such a client saw
    "broken pipe" in about half of the tries and retried a permanent error."""

    MAX_BODY = 512 * 1024
    TOKEN = "tok-413"

    @classmethod
    def setUpClass(cls):
        cls.d = frtest.Daemon(CONSOLE + "listen: { max_body = %d; };\n"
                              "auth: { token = \"%s\"; };\n" % (cls.MAX_BODY, cls.TOKEN))

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        cls.d.cleanup()
        assert rc == 0, "daemon exit code %r" % rc

    def tries(self, head, body, want, n):
        failures = []
        for i in range(n):
            got = write_all_then_read(self.d.port, head, body)
            if got[0] != want:
                failures.append(got[:2])
                continue
            doc = json.loads(got[2])
            self.assertIsInstance(doc.get("error"), str, got)
            self.assertTrue(got[1]["content-type"].startswith("application/json"))
        self.assertEqual(failures, [], "%d of %d tries did not get %d" % (len(failures), n, want))

    def auth(self):
        return "Authorization: Bearer %s\r\n" % self.TOKEN

    def test_413_body_up_to_4x_read_and_discarded(self):
        body = b"x" * (3 * self.MAX_BODY)
        self.tries(post_head(len(body), self.auth()), body, 413, 20)

    def test_413_body_far_beyond_4x(self):
        body = b"x" * (16 * self.MAX_BODY)   # 8 MiB, 4 x the discard bound
        self.tries(post_head(len(body), self.auth()), body, 413, 10)

    def test_401_token_with_body(self):
        body = b"x" * self.MAX_BODY
        self.tries(post_head(len(body), "Authorization: Bearer wrong\r\n"), body, 401, 10)
        # Within max_body: read, then refused, and the connection stays usable.
        body = EVENT
        self.tries(post_head(len(body)), body, 401, 5)

    def test_415_with_body(self):
        body = b"x" * (3 * self.MAX_BODY)
        head = post_head(len(body), self.auth()).replace(b"application/json", b"text/plain")
        self.tries(head, body, 415, 10)

    def test_expect_100_continue_answered_from_headers(self):
        """A client that waits for 100 Continue gets the refusal at once."""
        for extra in ("", "Authorization: Bearer wrong\r\n"):
            s = socket.create_connection(("127.0.0.1", self.d.port), timeout=5)
            try:
                want = 413 if not extra else 401
                length = 10 * self.MAX_BODY if not extra else 100
                s.sendall(post_head(length, (extra or self.auth()) +
                                    "Expect: 100-continue\r\n"))
                data = s.recv(4096)
                self.assertTrue(data.startswith(b"HTTP/1.1 %d" % want), data[:100])
            finally:
                s.close()

    def test_still_accepts(self):
        status, _, doc = self.d.post(EVENT, {"Authorization": "Bearer " + self.TOKEN})
        self.assertEqual(status, 202, doc)


class MetricsListenerTest(unittest.TestCase):
    """listen.metrics_address/metrics_port: a second, plain-HTTP listener that
    serves only GET /metrics, /healthz and /readyz (SPEC §3) — never events —
    so Prometheus can scrape a fluxrelay that itself listens on loopback."""

    @classmethod
    def setUpClass(cls):
        cls.d = frtest.Daemon(CONSOLE + 'listen: { metrics_address = "127.0.0.1"; '
                              'metrics_port = 0; };\n')
        line = cls.d.wait_err(r'msg="metrics listening"')
        cls.mport = int(re.search(r"port=(\d+)", line).group(1))

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        cls.d.cleanup()
        assert rc == 0, "daemon exit code %r" % rc

    def req(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.mport, timeout=10)
        try:
            hdrs = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def test_serves_health_and_metrics(self):
        self.assertNotEqual(self.mport, self.d.port)
        status, hdrs, data = self.req("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertIn("version=0.0.4", hdrs["content-type"])
        self.assertIn(b"fluxrelay_build_info", data)
        self.assertIn(b"fluxrelay_connections_refused_total 0", data)
        self.assertEqual(self.req("GET", "/healthz")[:1], (200,))
        self.assertEqual(self.req("GET", "/readyz")[:1], (200,))
        self.assertEqual(self.req("HEAD", "/metrics")[0], 200)

    def test_no_events(self):
        before = self.d.request("GET", "/metrics")[2]
        acc = b'fluxrelay_events_received_total{status="accepted"}'
        # An earlier test's accepted events may still be on their way to the
        # log reader: wait until the log has caught up with the counter.
        n_acc = sum(int(float(l.split()[-1])) for l in before.splitlines() if l.startswith(acc))
        deadline = time.monotonic() + frtest.patience(3)
        while len([l for l in self.d.lines_err if 'msg="event accepted"' in l]) < n_acc \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        logged = len([l for l in self.d.lines_err if 'msg="event accepted"' in l])
        for path in ("/", "/hooks/flux"):
            status, _, data = self.req("POST", path, EVENT)
            self.assertEqual(status, 404, data)
            self.assertIn("error", json.loads(data))
        for path in ("/metrics", "/healthz", "/readyz"):
            status, hdrs, data = self.req("POST", path, EVENT)
            self.assertEqual(status, 405, data)
            self.assertEqual(hdrs.get("allow"), "GET, HEAD")
        self.assertEqual(self.req("GET", "/")[0], 404)
        self.assertEqual(self.req("GET", "/nope")[0], 404)
        after = self.d.request("GET", "/metrics")[2]
        self.assertEqual([l for l in before.splitlines() if l.startswith(acc)],
                         [l for l in after.splitlines() if l.startswith(acc)])
        self.assertEqual(len([l for l in self.d.lines_err if 'msg="event accepted"' in l]), logged)

    def test_main_listener_unchanged(self):
        status, _, doc = self.d.post(EVENT)
        self.assertEqual(status, 202, doc)
        self.assertEqual(self.d.request("GET", "/metrics")[0], 200)

    def test_refused_when_port_taken(self):
        """A metrics port that is in use stops the start with the reason."""
        d = frtest.Daemon(CONSOLE + 'listen: { metrics_address = "127.0.0.1"; '
                          'metrics_port = %d; };\n' % self.mport, start=False)
        try:
            r = frtest.run_cli(["-c", d.config_path, "-s", d.state_dir, "-l", "127.0.0.1:0"],
                               timeout=30)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertRegex(r.stderr.decode(),
                             r"cannot listen on 127\.0\.0\.1:%d: .*in use" % self.mport)
        finally:
            d.cleanup()


class IgnoredAndDuplicateTest(unittest.TestCase):
    def test_ignored_and_duplicate(self):
        conf = """
providers = ( { name = "console"; type = "console"; } );
alerts = ( { name = "errors"; providers = ["console"]; severity = "error";
             sources = ( { kind = "Kustomization"; } ); } );
dedup = { window = 60; };
"""
        d = frtest.Daemon(conf)
        try:
            status, _, doc = d.post(frtest.fixture("02"))   # info GitRepository
            self.assertEqual((status, doc), (202, {"status": "ignored"}))
            status, _, first = d.post(frtest.fixture("01"))
            self.assertEqual(first["status"], "accepted")
            status, _, second = d.post(frtest.fixture("01"))
            self.assertEqual(status, 202)
            self.assertEqual(second, {"status": "duplicate", "id": first["id"]})
            # One console line only.
            d.wait_out(r'"author_name":"kustomization/webapp.apps"')
            time.sleep(0.5)
            self.assertEqual(len([l for l in d.lines_out if "webapp.apps" in l]), 1)
            # "accepted" is logged once, with the stored id; the duplicate is
            # logged as such, never as accepted under an id that was not stored.
            accepted = [l for l in d.lines_err if 'msg="event accepted"' in l]
            self.assertEqual(len(accepted), 1, "\n".join(d.lines_err))
            self.assertIn("event_id=" + first["id"], accepted[0])
            d.wait_err(r'msg="event duplicate" event_id=' + first["id"])
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()


class NulAndLargeNumbersTest(unittest.TestCase):
    def test_accepted(self):
        """\\u0000 (Go's json.Marshal writes it for a NUL byte) is valid JSON and
        shows as U+FFFD, with the text after it kept; numbers beyond 64-bit
        integers or doubles in unknown fields are ignored like any unknown
        field (SPEC 5). Both were 400, and Flux does not retry a 400."""
        d = frtest.Daemon(CONSOLE)
        try:
            body = (b'{"involvedObject":{"kind":"K","name":"n"},"severity":"error",'
                    b'"message":"a\\u0000b-after-nul","reason":"r\\u0000",'
                    b'"metadata":{"k\\u0000":"v\\u0000w"},"x\\u0000":["\\u0000"]}')
            status, _, doc = d.post(body)
            self.assertEqual(status, 202, doc)
            self.assertEqual(doc["status"], "accepted")
            d.wait_out(r'a(\ufffd|\\ufffd)b-after-nul')
            for extra in (b'"x":99999999999999999999999', b'"x":1e999',
                          b'"x":{"y":[-1e999,{"z":-99999999999999999999}]}'):
                with self.subTest(extra=extra):
                    body = frtest.fixture("01").rstrip()[:-1] + b"," + extra + b"}"
                    status, _, doc = d.post(body)
                    self.assertEqual(status, 202, doc)
                    self.assertEqual(doc["status"], "accepted")
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()


class DuplicateKeysTest(unittest.TestCase):
    def test_last_value_wins(self):
        """A member name given twice is no 400: Go's decoders keep the last
        value, and so does fluxrelay."""
        conf = """
providers = ( { name = "console"; type = "console"; } );
alerts = ( { name = "errors"; providers = ["console"]; severity = "error";
             sources = ( { kind = "Kustomization"; } ); } );
dedup = { window = 0; };
"""
        d = frtest.Daemon(conf)
        try:
            body = frtest.fixture("01")          # an error event
            self.assertIn(b'"severity": "error"', body)
            first_info = b'{"severity": "info", ' + body.lstrip()[1:]
            last_info = body.rstrip()[:-1] + b', "severity": "info"}'
            status, _, doc = d.post(first_info)
            self.assertEqual(status, 202, doc)
            self.assertEqual(doc["status"], "accepted")
            status, _, doc = d.post(last_info)
            self.assertEqual((status, doc), (202, {"status": "ignored"}))
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()


class AuthTest(unittest.TestCase):
    KEY = "hmac-test-key"
    TOKEN = "tok-123"

    def start(self, auth):
        return frtest.Daemon(CONSOLE + "auth: { %s };\n" % auth)

    def sig(self, body, alg="sha256", key=None):
        mac = hmac.new((key or self.KEY).encode(), body, getattr(hashlib, alg)).hexdigest()
        return "%s=%s" % (alg, mac)

    def test_hmac(self):
        d = self.start('hmac_key = "%s";' % self.KEY)
        try:
            status, _, doc = d.post(EVENT)
            self.assertEqual(status, 401, doc)
            self.assertNotIn(self.KEY, json.dumps(doc))
            status, _, doc = d.post(EVENT, {"X-Signature": self.sig(EVENT, key="wrong")})
            self.assertEqual(status, 401)
            status, _, doc = d.post(EVENT, {"X-Signature": self.sig(EVENT + b" ")})
            self.assertEqual(status, 401)
            for alg in ("sha1", "sha224", "sha256", "sha384", "sha512"):
                status, _, doc = d.post(EVENT, {"X-Signature": self.sig(EVENT, alg)})
                self.assertEqual(status, 202, (alg, doc))
            status, _, doc = d.post(EVENT, {"X-Signature": "sha1=00," + self.sig(EVENT)})
            self.assertEqual(status, 202)
            # Health and metrics stay open.
            self.assertEqual(d.request("GET", "/healthz")[0], 200)
            self.assertEqual(d.request("GET", "/metrics")[0], 200)
        finally:
            self.assertEqual(d.stop(), 0)
            self.assertFalse(any(self.KEY in l for l in d.lines_err))
            d.cleanup()

    def test_rotation_previous_key(self):
        d = self.start('hmac_key = "new-key"; hmac_key_previous = "%s";' % self.KEY)
        try:
            # Old key (Flux not switched yet), new key (switched), anything else.
            self.assertEqual(d.post(EVENT, {"X-Signature": self.sig(EVENT)})[0], 202)
            self.assertEqual(d.post(EVENT, {"X-Signature": self.sig(EVENT, key="new-key")})[0], 202)
            self.assertEqual(d.post(EVENT, {"X-Signature": self.sig(EVENT, key="other")})[0], 401)
            self.assertEqual(d.post(EVENT)[0], 401)
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()

    def test_previous_key_alone_is_invalid(self):
        work = frtest.tempfile.mkdtemp()
        path = frtest.os.path.join(work, "c.conf")
        with open(path, "w") as f:
            f.write(CONSOLE + 'auth: { hmac_key_previous = "old"; };\n')
        r = frtest.run_cli(["--check-config", "-c", path])
        self.assertEqual(r.returncode, 78)
        self.assertRegex(r.stderr.decode(), r"c\.conf:\d+: auth\.hmac_key_previous: needs hmac_key")
        self.assertNotIn("old", r.stderr.decode().replace("hmac_key", ""))

    def test_signature_item_limit(self):
        """At most 16 comma-separated X-Signature items (SPEC §4): 17 are
        refused before any HMAC, even with a valid one among them. Before, every
        item cost an HMAC over the body (hundreds of items and a 1 MiB body:
        most of a second of CPU per request)."""
        d = self.start('hmac_key = "%s";' % self.KEY)
        try:
            wrong = ["sha1=%040d" % i for i in range(20)]
            good = self.sig(EVENT)
            status, _, doc = d.post(EVENT, {"X-Signature": ",".join(wrong[:15] + [good])})
            self.assertEqual(status, 202, doc)
            status, _, doc = d.post(EVENT, {"X-Signature": ",".join(wrong[:16] + [good])})
            self.assertEqual(status, 401, doc)
            self.assertEqual(doc["error"], "more than 16 signatures")
            status, _, doc = d.post(EVENT, {"X-Signature": "," * 16 + good})
            self.assertEqual((status, doc["error"]), (401, "more than 16 signatures"))
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()

    def test_token_checked_before_signature(self):
        """With both configured the token is checked first, from the headers:
        a client without it costs no HMAC and is answered before its body is
        even sent."""
        d = self.start('token = "%s"; hmac_key = "%s";' % (self.TOKEN, self.KEY))
        try:
            many = ",".join(["sha1=%040d" % i for i in range(17)])
            status, _, doc = d.post(EVENT, {"Authorization": "Bearer nope", "X-Signature": many})
            self.assertEqual((status, doc["error"]), (401, "invalid bearer token"))
            status, _, doc = d.post(EVENT, {"Authorization": "Bearer " + self.TOKEN,
                                            "X-Signature": many})
            self.assertEqual((status, doc["error"]), (401, "more than 16 signatures"))
            # Headers only, body withheld (Expect: 100-continue): the wrong
            # token is refused at once, the right one is invited to send.
            for token, want in (("nope", b"HTTP/1.1 401"), (self.TOKEN, b"HTTP/1.1 100")):
                s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
                try:
                    s.sendall(post_head(len(EVENT), "Authorization: Bearer %s\r\n"
                                        "X-Signature: %s\r\nExpect: 100-continue\r\n" % (
                                            token, self.sig(EVENT))))
                    self.assertTrue(s.recv(4096).startswith(want))
                finally:
                    s.close()
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()

    def test_key_file_with_newline(self):
        """`kubectl create secret --from-file` keeps a file's trailing newline
        and Flux signs with the Secret's bytes as stored: a key file ending in
        a newline verifies signatures made with and without it (SPEC §3)."""
        work = frtest.tempfile.mkdtemp()
        try:
            for name, text in (("key", "flux-key\n"), ("old", "old-key\r\n")):
                with open(frtest.os.path.join(work, name), "w", newline="") as f:
                    f.write(text)
            d = self.start('hmac_key_file = "%s/key"; hmac_key_previous_file = "%s/old";'
                           % (work, work))
            try:
                for key in ("flux-key\n", "flux-key", "old-key\r\n", "old-key"):
                    status, _, doc = d.post(EVENT, {"X-Signature": self.sig(EVENT, key=key)})
                    self.assertEqual(status, 202, (key, doc))
                for key in ("flux-key\n\n", "flux-key\r\n", "old-key\r", "other"):
                    status, _, doc = d.post(EVENT, {"X-Signature": self.sig(EVENT, key=key)})
                    self.assertEqual(status, 401, (key, doc))
            finally:
                self.assertEqual(d.stop(), 0)
                self.assertFalse(any("flux-key" in l for l in d.lines_err))
                d.cleanup()
        finally:
            frtest.shutil.rmtree(work, ignore_errors=True)

    def test_token_and_both(self):
        d = self.start('token = "%s"; hmac_key = "%s";' % (self.TOKEN, self.KEY))
        try:
            status, hdrs, _ = d.post(EVENT, {"X-Signature": self.sig(EVENT)})
            self.assertEqual(status, 401)
            self.assertEqual(hdrs.get("www-authenticate"), "Bearer")
            status, _, _ = d.post(EVENT, {"Authorization": "Bearer nope",
                                          "X-Signature": self.sig(EVENT)})
            self.assertEqual(status, 401)
            status, _, _ = d.post(EVENT, {"Authorization": "Bearer " + self.TOKEN})
            self.assertEqual(status, 401)   # signature also required
            status, _, doc = d.post(EVENT, {"Authorization": "Bearer " + self.TOKEN,
                                            "X-Signature": self.sig(EVENT)})
            self.assertEqual(status, 202, doc)
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()


class QueueFullTest(unittest.TestCase):
    def test_503_when_full(self):
        # The webhook is a closed port: deliveries stay pending.
        conf = """
queue = { max_pending = 2; backoff_initial = 30.0; };
providers = ( { name = "slack"; type = "slack"; url = "http://127.0.0.1:9/hook"; timeout = 1; } );
alerts = ( { name = "all"; providers = ["slack"]; severity = "info";
             sources = ( { kind = "*"; } ); } );
dedup = { window = 0; };
"""
        d = frtest.Daemon(conf)
        try:
            for _ in range(2):
                status, _, doc = d.post(EVENT)
                self.assertEqual(status, 202, doc)
            status, hdrs, doc = d.post(EVENT)
            self.assertEqual(status, 503, doc)
            # No Retry-After: it would shorten notification-controller's retry
            # window to two tries (SPEC §4).
            self.assertNotIn("retry-after", hdrs)
            self.assertIn("error", doc)
            d.wait_err(r'msg="event refused: queue full"')
            # "accepted" is logged for the two stored events only.
            self.assertEqual(len([l for l in d.lines_err if 'msg="event accepted"' in l]), 2,
                             "\n".join(d.lines_err))
            # Shutting down: 503 without Retry-After too (readyz as well).
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()


class ShutdownTest(unittest.TestCase):
    def body_after_sigterm(self, conf, body):
        """A POST whose headers arrive before SIGTERM and body after: its answer."""
        d = frtest.Daemon(conf)
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        try:
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body))
            time.sleep(0.3)   # the headers are read: the request is in flight
            d.send_signal(frtest.signal.SIGTERM)
            deadline = time.monotonic() + 10   # readiness falls after the log line
            while d.request("GET", "/readyz")[0] != 503 and time.monotonic() < deadline:
                time.sleep(0.01)
            s.sendall(body)
            data = b""
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            head, _, payload = data.partition(b"\r\n\r\n")
            status = int(head.split()[1])
            self.assertEqual(d.proc.wait(20), 0)
            return status, json.loads(payload), d.lines_err
        finally:
            s.close()
            d.stop()
            d.cleanup()

    def test_request_in_flight_at_sigterm_is_finished(self):
        """SPEC §8: shutdown finishes requests in flight: one whose headers came
        before SIGTERM and body after is accepted and stored, not refused."""
        matched = EVENT.encode() if isinstance(EVENT, str) else EVENT
        status, doc, lines = self.body_after_sigterm(CONSOLE, matched)
        self.assertEqual((status, doc.get("status")), (202, "accepted"), doc)
        self.assertTrue([l for l in lines if 'msg="event accepted"' in l], lines)
        ignored = CONSOLE.replace('kind = "*"', 'kind = "NoSuchKind"')
        status, doc, _ = self.body_after_sigterm(ignored, matched)
        self.assertEqual((status, doc), (202, {"status": "ignored"}))

    def test_sigterm_exits_zero(self):
        d = frtest.Daemon(CONSOLE)
        try:
            self.assertEqual(d.post(EVENT)[0], 202)
            self.assertEqual(d.stop(), 0)
            d.wait_err(r'msg="stopped"')
        finally:
            d.cleanup()


if __name__ == "__main__":
    frtest.main()

"""HTTP API of SPEC §4: every route and status code, against the real daemon."""
import hashlib
import hmac
import json
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
        for method, path in (("GET", "/nope"), ("POST", "/hooks/x"), ("GET", "/healthz/")):
            status, _, data = self.d.request(method, path, EVENT if method == "POST" else None)
            self.assertJsonError(status, data, 404)

    def test_wrong_method(self):
        status, hdrs, data = self.d.request("GET", "/")
        self.assertJsonError(status, data, 405)
        self.assertEqual(hdrs.get("allow"), "POST")
        status, hdrs, data = self.d.request("PUT", "/", EVENT)
        self.assertJsonError(status, data, 405)
        status, hdrs, data = self.d.request("POST", "/healthz", EVENT)
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
            self.assertEqual(hdrs.get("retry-after"), "5")
            self.assertIn("error", doc)
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()


class ShutdownTest(unittest.TestCase):
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

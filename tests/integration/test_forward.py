#!/usr/bin/env python3
"""Forwarding providers generic and generic-hmac (fluxrelay.conf(5)).

A local receiver (the scriptable HTTP server of slack_emulator.py, used here
as a plain receiver) gets what fluxrelay forwards. The test checks the body
byte for byte against what was posted, and the X-Signature against an HMAC
it computes itself with Python's hmac module; then the answers:
notification-controller's duplicate 429 (X-RateLimit-* and a Retry-After
HTTP date) is delivered, a plain 429 waits and retries, 5xx retries, 4xx is
a dead letter. Last, `fluxrelay import` of the Flux fixtures gives a config
on which a controller-shaped event reaches Slack (the emulator) and a
generic-hmac receiver that verifies its signature.
"""
import hashlib
import hmac
import json
import os
import re
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import frtest  # noqa: E402
from slack_emulator import Response, SlackEmulator, http_date  # noqa: E402

os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"

KEY = b"k3y-for-forwarding\n"              # a key file's bytes, newline included
ADDR_SECRET = "fwdpathsecret9c1d"           # last address segment: never logged
HEADER_SECRET = "Bearer hdr-secret-77ab"    # a header value: never logged
FLUX_FIXTURES = os.path.join(frtest.SRCDIR, "tests", "fixtures", "flux")

CASES = ["ok", "plain", "dup", "ra", "s5xx", "s404", "burst"]


def path(case):
    return "/hook/%s/%s" % (case, ADDR_SECRET)


def controller_event(name, message, namespace="apps"):
    """An event as kustomize-controller's recorder writes it: Go's json.Marshal
    (compact, '<' as \\u003c, prefixed metadata keys)."""
    doc = ('{"involvedObject":{"kind":"Kustomization","namespace":"%s","name":"%s",'
           '"uid":"7c1c6f3e-5a4b-4f59-9b7e-2f1d3c4b5a69","apiVersion":'
           '"kustomize.toolkit.fluxcd.io/v1","resourceVersion":"81234"},'
           '"severity":"error","timestamp":"2024-05-01T10:00:00Z","message":"%s",'
           '"reason":"ReconciliationFailed","metadata":{"kustomize.toolkit.fluxcd.io/'
           'revision":"main@sha1:731f7eaf3b1f7d1e2b8e1f0c5e9a3b2c1d0e9f8a"},'
           '"reportingController":"kustomize-controller","reportingInstance":'
           '"kustomize-controller-7f5d8c9b6-x2x4z"}') % (namespace, name, message)
    return doc.encode()


def signature(key, body):
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class Forward(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rcv = SlackEmulator().start()
        cls.rcv.set_default(Response(202, ""))
        cls.workdir = tempfile.mkdtemp(prefix="frtest-forward-")
        keyfile = os.path.join(cls.workdir, "hmac.key")
        with open(keyfile, "wb") as f:
            f.write(KEY)
        provs, alerts = [], []
        for case in CASES:
            typ = "generic" if case == "plain" else "generic-hmac"
            key = ' hmac_key_file = "%s";' % keyfile if typ == "generic-hmac" else ""
            provs.append('{ name = "f-%s"; type = "%s"; address = "%s";%s rate = 0; timeout = 2;'
                         ' headers = { X-Team = "platform"; Authorization = "%s"; }; }'
                         % (case, typ, cls.rcv.url(path(case)), key, HEADER_SECRET))
            alerts.append('{ name = "a-%s"; providers = [ "f-%s" ]; severity = "info";'
                          ' channel = "#ignored"; sources = ( { kind = "Kustomization";'
                          ' name = "%s"; } ); }' % (case, case, case))
        cls.state = os.path.join(cls.workdir, "state")
        conf = """
state_dir = "%s";
queue: { max_attempts = 5; backoff_initial = 0.05; backoff_max = 0.2; };
dedup: { window = 0; };
providers = ( %s );
alerts = ( %s );
""" % (cls.state, ",\n".join(provs), ",\n".join(alerts))
        cls.d = frtest.Daemon(conf, workdir=cls.workdir, state_dir=cls.state)

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.d.stop()
            assert rc == 0, "daemon exit code %r" % rc
            err = "\n".join(cls.d.lines_err)
            for secret in (ADDR_SECRET, HEADER_SECRET, "hdr-secret", KEY.decode().strip()):
                assert secret not in err, "secret %r logged" % secret
        finally:
            cls.d.cleanup()
            cls.rcv.stop()

    def post(self, body):
        status, _, doc = self.d.post(body)
        self.assertEqual(status, 202, doc)
        self.assertEqual(doc["status"], "accepted", doc)
        return doc["id"]

    def rows(self, dead=False):
        args = ["queue", "-c", self.d.config_path, "list", "--json"] + (["--dead"] if dead else [])
        r = frtest.run_cli(args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return frtest.queue_rows(r.stdout.decode())

    def rows_of(self, case, dead=False):
        return [r for r in self.rows(dead) if r.get("provider") == "f-" + case]

    def wait_no_pending(self, case, timeout=10):
        deadline = time.monotonic() + timeout
        while self.rows_of(case):
            if time.monotonic() > deadline:
                self.fail("rows still pending for %s" % case)
            time.sleep(0.1)

    def test_body_headers_signature(self):
        body = controller_event("ok", "health check failed: \\u003cnil\\u003e \\u0026 more")
        eid = self.post(body)
        req = self.rcv.wait_requests(1, path=path("ok"))[0]
        self.assertEqual(req.method, "POST")
        self.assertEqual(req.body, body, "the body is not the event as received")
        self.assertEqual(req.headers["content-type"], "application/json")
        self.assertEqual(req.headers["x-signature"], signature(KEY, body))
        self.assertEqual(req.headers["x-team"], "platform")
        self.assertEqual(req.headers["authorization"], HEADER_SECRET)
        self.assertEqual(req.headers["gotk-component"], "kustomize-controller")
        self.d.wait_err(r'msg="?delivered"?.*event_id=%s.*target=f-ok\b' % eid)
        self.wait_no_pending("ok")

    def test_generic_has_no_signature(self):
        body = controller_event("plain", "plain forward")
        self.post(body)
        req = self.rcv.wait_requests(1, path=path("plain"))[0]
        self.assertEqual(req.body, body)
        self.assertNotIn("x-signature", req.headers)

    def test_never_coalesced(self):
        bodies = [controller_event("burst", "event %d" % i) for i in range(4)]
        for b in bodies:
            self.post(b)
        reqs = self.rcv.wait_requests(4, path=path("burst"))
        self.assertEqual([r.body for r in reqs], bodies, "one request per event, in order")
        for r in reqs:
            self.assertEqual(r.headers["x-signature"], signature(KEY, r.body))

    def test_duplicate_429_is_delivered(self):
        # notification-controller's rate limiter (go-limiter httplimit) on a
        # duplicate: 429 with X-RateLimit-* and a Retry-After HTTP date.
        reset = time.time() + 300
        self.rcv.script(path("dup"), Response(429, "Too Many Requests\n", {
            "X-RateLimit-Limit": "1", "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": http_date(reset), "Retry-After": http_date(reset)}))
        eid = self.post(controller_event("dup", "already sent"))
        self.rcv.wait_requests(1, path=path("dup"))
        self.d.wait_err(r'duplicate dropped by the receiver.*event_id=%s' % eid)
        self.wait_no_pending("dup")
        self.assertEqual(self.rows_of("dup", dead=True), [])
        time.sleep(0.5)
        self.assertEqual(len(self.rcv.requests_for(path("dup"))), 1, "a duplicate was retried")

    def test_plain_429_waits_then_retries(self):
        self.rcv.script(path("ra"), Response(429, "slow down", {"Retry-After": "1"}),
                        Response(200, "ok"))
        eid = self.post(controller_event("ra", "rate limited"))
        reqs = self.rcv.wait_requests(2, path=path("ra"), timeout=15)
        self.assertGreaterEqual(reqs[1].time - reqs[0].time, 0.9, "Retry-After not honoured")
        self.assertEqual(reqs[0].body, reqs[1].body)
        self.d.wait_err(r'rate limited.*event_id=%s' % eid)
        self.d.wait_err(r'msg="?delivered"?.*event_id=%s' % eid)
        self.wait_no_pending("ra")

    def test_5xx_retried(self):
        self.rcv.script(path("s5xx"), Response(503, "busy"), Response(500, "oops"),
                        Response(200, "ok"))
        eid = self.post(controller_event("s5xx", "server error"))
        reqs = self.rcv.wait_requests(3, path=path("s5xx"), timeout=15)
        self.assertTrue(all(r.body == reqs[0].body for r in reqs))
        self.d.wait_err(r'will retry.*event_id=%s' % eid)
        self.d.wait_err(r'msg="?delivered"?.*event_id=%s' % eid)
        self.wait_no_pending("s5xx")

    def test_4xx_dead_letter(self):
        self.rcv.script(path("s404"), Response(404, "no such path %s" % ADDR_SECRET))
        eid = self.post(controller_event("s404", "not found"))
        self.rcv.wait_requests(1, path=path("s404"))
        self.d.wait_err(r'dead letter.*event_id=%s' % eid)
        deadline = time.monotonic() + 10
        dead = self.rows_of("s404", dead=True)
        while not dead and time.monotonic() < deadline:   # the recorder writes it
            time.sleep(0.1)
            dead = self.rows_of("s404", dead=True)
        self.assertEqual(len(dead), 1, dead)
        self.assertIn("HTTP 404", dead[0]["last_error"])
        self.assertNotIn(ADDR_SECRET, dead[0]["last_error"])
        time.sleep(0.3)
        self.assertEqual(len(self.rcv.requests_for(path("s404"))), 1, "a 404 was retried")

    def test_match_shows_forward(self):
        f = os.path.join(self.workdir, "ev.json")
        with open(f, "wb") as fh:
            fh.write(controller_event("ok", "x"))
        r = frtest.run_cli(["match", "-c", self.d.config_path, f])
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("target: f-ok (generic-hmac)", out)
        self.assertIn("forward: POST of the event as received", out)
        self.assertIn("X-Signature", out)
        self.assertNotIn(ADDR_SECRET, out)
        self.assertNotIn("hdr-secret", out)


class ImportedForward(unittest.TestCase):
    """The imported Flux setup: Slack and generic-hmac get the same event."""

    def test_import_then_slack_and_hmac(self):
        work = tempfile.mkdtemp(prefix="frtest-forward-import-")
        secrets = os.path.join(work, "secrets")
        conf = os.path.join(work, "fluxrelay.conf")
        r = frtest.run_cli(["import", "-o", conf, "--secrets-dir", secrets,
                            os.path.join(FLUX_FIXTURES, "walkthrough-slack.yaml"),
                            os.path.join(FLUX_FIXTURES, "v1beta3-bot-webhook-generic.yaml")])
        self.assertEqual(r.returncode, 0, r.stderr)
        with SlackEmulator() as slack, SlackEmulator() as audit:
            audit.set_default(Response(202, ""))
            with open(conf) as f:
                text = f.read()
            # Point the imported addresses at the local receivers.
            self.assertIn("https://audit.example.com/flux/events", text)
            text = text.replace("https://audit.example.com/flux/events",
                                audit.url("/flux/events"))
            for m in re.finditer(r'url_file = "([^"]+)"', text):
                with open(m.group(1), "w") as f:
                    f.write(slack.url("/services/T0/B0/walkthrough"))
            key = None
            for m in re.finditer(r'hmac_key_file = "([^"]+)"', text):
                with open(m.group(1), "rb") as f:
                    key = f.read()
            self.assertEqual(key, b"6f1c2a3b4d5e6f708192a3b4c5d6e7f8")
            state = os.path.join(work, "state")
            d = frtest.Daemon(text + '\nstate_dir = "%s";\n' % state, workdir=work,
                              state_dir=state)
            try:
                body = controller_event("infra", "apply failed: timeout", namespace="flux-system")
                status, _, doc = d.post(body)
                self.assertEqual(status, 202, doc)
                self.assertEqual(doc["status"], "accepted", doc)
                got = audit.wait_requests(1, path="/flux/events")[0]
                self.assertEqual(got.body, body)
                self.assertTrue(hmac.compare_digest(got.headers["x-signature"],
                                                    signature(key, got.body)),
                                "the receiver could not verify the signature")
                self.assertEqual(got.headers["x-team"], "platform")
                msgs = slack.wait_attachments(1, path="/services/T0/B0/walkthrough")
                self.assertIn("apply failed", json.dumps(msgs))
            finally:
                rc = d.stop()
                d.cleanup()
            self.assertEqual(rc, 0)


if __name__ == "__main__":
    frtest.main()

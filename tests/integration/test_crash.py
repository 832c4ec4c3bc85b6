#!/usr/bin/env python3
"""Durability (SPEC §8): a `kill -9` at any moment loses no acknowledged event;
pending deliveries resume after a restart on the same state directory."""
import http.client
import json
import os
import signal
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import frtest  # noqa: E402
from slack_emulator import Response, SlackEmulator  # noqa: E402

# The daemon inherits the environment: never send emulator traffic to a proxy.
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"

HOOK = "/services/T0/B0/crash-secret"


def make_config(emu, state_dir):
    return """
state_dir = "%s";
queue: { max_attempts = 1000; backoff_initial = 0.05; backoff_max = 0.3; };
dedup: { window = 0; };
providers = ( { name = "hook"; type = "slack"; url = "%s"; rate = 0; batch_max = 10; timeout = 2; } );
alerts = ( { name = "all"; providers = [ "hook" ]; severity = "info";
             sources = ( { kind = "*"; } ); } );
""" % (state_dir, emu.url(HOOK))


def event(message):
    return json.dumps({
        "involvedObject": {"kind": "Kustomization", "name": "crash", "namespace": "apps",
                           "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
        "severity": "error",
        "message": message,
        "reason": "ReconciliationFailed",
        "reportingController": "kustomize-controller",
    })


class Crash(unittest.TestCase):
    def setUp(self):
        self.emu = SlackEmulator().start()
        self.workdir = tempfile.mkdtemp(prefix="frtest-crash-")
        self.state = os.path.join(self.workdir, "state")
        self.d = frtest.Daemon(make_config(self.emu, self.state), workdir=self.workdir,
                               state_dir=self.state)

    def tearDown(self):
        try:
            self.assertEqual(self.d.stop(), 0)
        finally:
            self.d.cleanup()
            self.emu.stop()

    def delivered_texts(self):
        return [a.get("text") for r in self.emu.delivered(HOOK) for a in r.attachments()]

    def wait_all_delivered(self, msgs, timeout):
        deadline = time.monotonic() + timeout
        want = set(msgs)
        while True:
            got = set(self.delivered_texts())
            if want <= got:
                return
            if time.monotonic() > deadline:
                self.fail("%d of %d acknowledged events never delivered, e.g. %r" % (
                    len(want - got), len(want), sorted(want - got)[:5]))
            time.sleep(0.1)

    def test_kill9_with_failing_webhook(self):
        n = 30
        self.emu.set_default(Response.error(500, "rollup_error"), path=HOOK)
        msgs = ["failing-%02d" % i for i in range(n)]
        for m in msgs:
            status, _, doc = self.d.post(event(m))
            self.assertEqual((status, doc["status"]), (202, "accepted"), doc)
        self.emu.wait_requests(3, path=HOOK, timeout=5)     # it is retrying
        self.assertEqual(self.delivered_texts(), [])
        self.d.kill9()

        self.emu.set_default(Response.ok(), path=HOOK)
        self.d.start()
        self.wait_all_delivered(msgs, timeout=10)
        got = self.delivered_texts()
        # Order per target survives the crash too.
        self.assertEqual([m for m in got if m in msgs][:n], msgs)

    def test_kill9_during_concurrent_posting(self):
        accepted = []
        lock = threading.Lock()
        stop = threading.Event()

        def poster(k):
            i = 0
            conn = None
            while not stop.is_set():
                msg = "p%d-%05d" % (k, i)
                i += 1
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=5)
                    conn.request("POST", "/", body=event(msg),
                                 headers={"Content-Type": "application/json"})
                    r = conn.getresponse()
                    body = r.read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    return          # the daemon died
                if r.status == 202 and json.loads(body).get("status") == "accepted":
                    with lock:
                        accepted.append(msg)
            if conn is not None:
                conn.close()

        threads = [threading.Thread(target=poster, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with lock:
                if len(accepted) >= 200:
                    break
            time.sleep(0.01)
        self.d.kill9()
        stop.set()
        for t in threads:
            t.join(10)
        with lock:
            acked = list(accepted)
        self.assertGreater(len(acked), 20, "too few events accepted before the kill")

        self.d.start()
        self.wait_all_delivered(acked, timeout=20)
        # And per poster, acceptance order is delivery order.
        got = self.delivered_texts()
        for k in range(4):
            mine = [m for m in acked if m.startswith("p%d-" % k)]
            firsts = []
            for m in got:
                if m.startswith("p%d-" % k) and m not in firsts:
                    firsts.append(m)
            firsts = [m for m in firsts if m in set(mine)]
            self.assertEqual(firsts, mine)


    def test_sigterm_finishes_attempt_in_flight(self):
        # Paced provider: the second event is not attempted before shutdown.
        path = "/services/T0/B0/term-secret"
        self.emu.script(path, Response.slow(1.5))   # room for the checks below (timeout = 2)
        self.d.stop()
        self.d.config_path = None
        with open(os.path.join(self.workdir, "fluxrelay.conf"), "w") as f:
            f.write(make_config(self.emu, self.state).replace(HOOK, path).replace(
                "rate = 0; batch_max = 10;", "rate = 0.2; burst = 1; batch_max = 1;"))
        self.d.config_path = os.path.join(self.workdir, "fluxrelay.conf")
        self.d.start()
        for m in ("in-flight", "behind"):
            status, _, doc = self.d.post(event(m))
            self.assertEqual(status, 202, doc)
        self.emu.wait_requests(1, path=path)
        t0 = time.monotonic()
        self.d.send_signal(signal.SIGTERM)
        self.d.wait_err(r'msg="shutting down"')
        time.sleep(0.3)   # the writer has stopped by now; the attempt has not
        # While the attempt finishes, the server still answers: 503, not a
        # refused connection (SPEC §8: readyz and new POSTs 503).
        status, _, doc = self.d.request("GET", "/readyz")
        self.assertEqual(status, 503, doc)
        status, _, doc = self.d.post(event("too late"))
        self.assertEqual(status, 503, doc)
        self.assertEqual(doc, {"error": "shutting down"})
        self.assertEqual(self.d.stop(), 0)
        waited = time.monotonic() - t0
        self.assertGreaterEqual(waited, 0.5, "did not wait for the attempt in flight")
        reqs = self.emu.requests_for(path)
        self.assertEqual(len(reqs), 1, "a new attempt started during shutdown")
        self.d.wait_err(r'msg="?delivered"?.*events=1')   # acknowledged before exit

        self.d.start()
        self.emu.wait_requests(2, path=path, timeout=5)
        time.sleep(0.5)
        texts = [a.get("text") for r in self.emu.requests_for(path) for a in r.attachments()]
        self.assertEqual(texts, ["in-flight", "behind"])


if __name__ == "__main__":
    frtest.main()

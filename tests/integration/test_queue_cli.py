#!/usr/bin/env python3
"""`fluxrelay queue list|retry|purge` beside a running daemon (SPEC §2, §8), and
dedup across a restart (SPEC §7)."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import frtest  # noqa: E402
from slack_emulator import Response, SlackEmulator  # noqa: E402

# The daemon inherits the environment: never send emulator traffic to a proxy.
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"

HOOK = "/services/T0/B0/cli-secret"


def make_config(emu, state_dir):
    return """
state_dir = "%s";
queue: { max_attempts = 3; backoff_initial = 0.05; backoff_max = 0.2; };
dedup: { window = 300; normalize_durations = true; };
providers = ( { name = "hook"; type = "slack"; url = "%s"; rate = 0; batch_max = 1; timeout = 2; } );
alerts = ( { name = "all"; providers = [ "hook" ]; severity = "info";
             sources = ( { kind = "*"; } ); } );
""" % (state_dir, emu.url(HOOK))


def event(name, message):
    return json.dumps({
        "involvedObject": {"kind": "HelmRelease", "name": name, "namespace": "prod",
                           "apiVersion": "helm.toolkit.fluxcd.io/v2"},
        "severity": "error",
        "message": message,
        "reason": "UpgradeFailed",
        "metadata": {"helm.toolkit.fluxcd.io/revision": "1.2.3"},
        "reportingController": "helm-controller",
        "timestamp": "2024-05-01T10:00:00Z",
    })




class QueueCli(unittest.TestCase):
    def setUp(self):
        self.emu = SlackEmulator().start()
        self.workdir = tempfile.mkdtemp(prefix="frtest-qcli-")
        self.state = os.path.join(self.workdir, "state")
        self.d = frtest.Daemon(make_config(self.emu, self.state), workdir=self.workdir,
                               state_dir=self.state)

    def tearDown(self):
        try:
            rc = self.d.stop()
            self.assertEqual(rc, 0)
        finally:
            self.d.cleanup()
            self.emu.stop()

    def cli(self, *args):
        return frtest.run_cli(["queue", "-c", self.d.config_path] + list(args))

    def ok(self, *args):
        r = self.cli(*args)
        self.assertEqual(r.returncode, 0, "%r: %s" % (args, r.stderr.decode()))
        return r.stdout.decode()

    def dead(self):
        return frtest.queue_rows(self.ok("list", "--dead", "--json"))

    def post(self, name, message):
        status, _, doc = self.d.post(event(name, message))
        self.assertEqual(status, 202, doc)
        return doc

    def make_dead(self, n, tag):
        """n dead letters (404 channel_not_found); returns their rows."""
        self.emu.set_default(Response.error(404, "channel_not_found"), path=HOOK)
        before = len(self.dead())
        msgs = ["%s-%d" % (tag, i) for i in range(n)]
        for m in msgs:
            self.assertEqual(self.post("app-" + tag, m)["status"], "accepted")
        deadline = time.monotonic() + frtest.patience(10)
        while len(self.dead()) < before + n:
            self.assertLess(time.monotonic(), deadline, "dead letters did not appear")
            time.sleep(0.1)
        return self.dead()[-n:]      # id order: the newest n

    def wait_delivered(self, msgs, timeout):
        timeout = frtest.patience(timeout)
        deadline = time.monotonic() + timeout
        while True:
            got = [a.get("text") for r in self.emu.delivered(HOOK) for a in r.attachments()]
            if all(m in got for m in msgs):
                return got
            if time.monotonic() > deadline:
                self.fail("not delivered within %ss: %r (got %r)" % (timeout, msgs, got))
            time.sleep(0.05)

    # ---- list / retry / purge ----
    def test_list_retry_purge(self):
        rows = self.make_dead(3, "dl")
        for r in rows:
            self.assertIn("404", r["last_error"])
            self.assertIn("channel_not_found", r["last_error"])
        ids = [str(r["id"]) for r in rows]

        text = self.ok("list", "--dead")
        for i in ids:
            self.assertIn(i, text)
        self.assertIn("channel_not_found", text)
        self.assertEqual(frtest.queue_rows(self.ok("list", "--json")), [], "nothing pending")

        # retry one while the daemon runs: delivered within 2 s
        self.emu.set_default(Response.ok(), path=HOOK)
        self.ok("retry", ids[0])
        self.wait_delivered(["dl-0"], timeout=2.5)
        self.assertEqual(sorted(str(r["id"]) for r in self.dead()), sorted(ids[1:]))

        # retry --all
        self.ok("retry", "--all")
        self.wait_delivered(["dl-1", "dl-2"], timeout=2.5)
        self.assertEqual(self.dead(), [])
        delivered = [a.get("text") for r in self.emu.delivered(HOOK) for a in r.attachments()]
        self.assertEqual(sorted(delivered), ["dl-0", "dl-1", "dl-2"])

        # purge ID and purge --all
        rows = self.make_dead(3, "pg")
        ids = [str(r["id"]) for r in rows]
        self.ok("purge", ids[1])
        self.assertEqual(sorted(str(r["id"]) for r in self.dead()), sorted([ids[0], ids[2]]))
        self.ok("purge", "--all")
        self.assertEqual(self.dead(), [])
        # purged letters are gone for good: a retry --all brings nothing back
        n = len(self.emu.requests_for(HOOK))
        self.emu.set_default(Response.ok(), path=HOOK)
        self.ok("retry", "--all")
        time.sleep(1.5)
        self.assertEqual(len(self.emu.requests_for(HOOK)), n)

    def test_list_shows_what_the_daemon_parsed(self):
        """A stored body the daemon took with \\u0000 in it is shown, not blanked."""
        self.emu.set_default(Response.error(404, "channel_not_found"), path=HOOK)
        self.assertEqual(self.post("app-nul", "before\x00after")["status"], "accepted")
        deadline = time.monotonic() + frtest.patience(10)
        while not self.dead():
            self.assertLess(time.monotonic(), deadline, "no dead letter")
            time.sleep(0.1)
        row = self.dead()[-1]
        self.assertEqual(row["object"]["name"], "app-nul", row)
        self.assertEqual(row["message"], "before\ufffdafter", row)
        self.assertIn("app-nul", self.ok("list", "--dead"))

    def test_unknown_id_and_usage_errors(self):
        for args in (["retry", "999999"], ["purge", "999999"]):
            r = self.cli(*args)
            self.assertEqual(r.returncode, 1, "%r: %s" % (args, r.stderr.decode()))
        for args in ([], ["frobnicate"], ["retry"], ["purge"], ["retry", "abc"],
                     ["list", "--bogus"], ["retry", "--all", "5"]):
            r = self.cli(*args)
            self.assertEqual(r.returncode, 2, "%r: %s" % (args, r.stderr.decode()))

    # ---- dedup ----
    def test_dedup_survives_restart(self):
        first = self.post("dup", "upgrade retries exhausted")
        self.assertEqual(first["status"], "accepted")
        again = self.post("dup", "upgrade retries exhausted")
        self.assertEqual(again, {"status": "duplicate", "id": first["id"]})
        self.wait_delivered(["upgrade retries exhausted"], timeout=5)

        self.assertEqual(self.d.stop(), 0)
        self.d.start()
        after = self.post("dup", "upgrade retries exhausted")
        self.assertEqual(after, {"status": "duplicate", "id": first["id"]})
        # a different event still goes through, and the duplicate never did
        other = self.post("dup", "something else")
        self.assertEqual(other["status"], "accepted")
        self.wait_delivered(["something else"], timeout=5)
        got = [a.get("text") for r in self.emu.delivered(HOOK) for a in r.attachments()]
        self.assertEqual(got.count("upgrade retries exhausted"), 1, got)

    def test_dedup_normalizes_durations(self):
        a = self.post("dur", "Health check failed after 2.08s: timeout waiting")
        self.assertEqual(a["status"], "accepted")
        b = self.post("dur", "Health check failed after 3.1s: timeout waiting")
        self.assertEqual(b, {"status": "duplicate", "id": a["id"]})
        c = self.post("dur", "Health check failed after 3.1s: other reason")
        self.assertEqual(c["status"], "accepted")
        self.assertNotEqual(c["id"], a["id"])


class DeadLetterCauses(unittest.TestCase):
    """Dead letters that no HTTP answer causes: max_age and a removed provider."""

    CONF = """
state_dir = "%(state)s";
queue: { max_attempts = 1000; backoff_initial = 0.05; backoff_max = %(bmax)s; max_age = %(age)s; };
dedup: { window = 0; };
providers = ( %(providers)s );
alerts = ( %(alerts)s );
"""

    def setUp(self):
        self.emu = SlackEmulator().start()
        self.workdir = tempfile.mkdtemp(prefix="frtest-dlc-")
        self.state = os.path.join(self.workdir, "state")
        self.d = None

    def tearDown(self):
        try:
            if self.d is not None:
                self.assertEqual(self.d.stop(), 0)
        finally:
            if self.d is not None:
                self.d.cleanup()
            self.emu.stop()

    def conf(self, names, age=3600, bmax=0.2):
        providers = ", ".join(
            '{ name = "%s"; type = "slack"; url = "%s"; rate = 0; timeout = 2; }'
            % (n, self.emu.url("/hook/" + n)) for n in names)
        alerts = ", ".join(
            '{ name = "to-%s"; providers = [ "%s" ]; severity = "info";'
            ' sources = ( { kind = "*"; name = "%s*"; } ); }' % (n, n, n) for n in names)
        return self.CONF % {"state": self.state, "providers": providers, "alerts": alerts,
                            "age": age, "bmax": bmax}

    def dead(self):
        r = frtest.run_cli(["queue", "-c", self.d.config_path, "list", "--dead", "--json"])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        return frtest.queue_rows(r.stdout.decode())

    def wait_dead(self, n, timeout=8):
        deadline = time.monotonic() + frtest.patience(timeout)
        while True:
            rows = self.dead()
            if len(rows) >= n:
                return rows
            self.assertLess(time.monotonic(), deadline, "dead letters: %r" % rows)
            time.sleep(0.1)

    def test_max_age(self):
        # 3 s leaves room for several attempts (backoff_max 0.2 s) even with
        # the daemon under valgrind, where one attempt can take most of a second.
        self.d = frtest.Daemon(self.conf(["old"], age=3), workdir=self.workdir,
                               state_dir=self.state)
        self.emu.set_default(Response.error(503, ""), path="/hook/old")
        t0 = time.monotonic()
        self.d.post(event("old-app", "will expire"))
        rows = self.wait_dead(1, timeout=12)
        self.assertGreaterEqual(time.monotonic() - t0, 2.9)
        # SPEC §8: the dead letter keeps the last HTTP status and Slack error.
        self.assertEqual(rows[0]["last_error"], "max_age exceeded; last error: HTTP 503")
        self.assertGreater(rows[0]["attempts"], 1)     # it was retried until then
        self.d.wait_err(r'msg="?dead letter"?.*error="max_age exceeded; last error: HTTP 503"')

    def test_provider_removed_on_reload(self):
        self.d = frtest.Daemon(self.conf(["keep", "gone"], bmax=30), workdir=self.workdir,
                               state_dir=self.state)
        # "gone" fails once and then backs off for long: its rows stay pending.
        self.emu.set_default(Response.error(500, "rollup_error"), path="/hook/gone")
        for i in range(3):
            self.assertEqual(self.d.post(event("gone-app", "pending %d" % i))[2]["status"],
                             "accepted")
        self.emu.wait_requests(1, path="/hook/gone")
        with open(self.d.config_path, "w") as f:
            f.write(self.conf(["keep"]))
        self.d.send_signal(signal.SIGHUP)
        self.d.wait_err(r'msg="?configuration reloaded"?')
        rows = self.wait_dead(3)
        # SPEC §3: the stored error is exactly "provider removed", tried or
        # not; the error of the attempt before it is in the log line only.
        self.assertEqual([r["last_error"] for r in rows], ["provider removed"] * 3)
        self.assertEqual({r["provider"] for r in rows}, {"gone"})
        self.d.wait_err(r'msg="?dead letter"?.*event_id=%s\b.*target=gone .*'
                        r'error="provider removed" last_error="HTTP 500 rollup_error"'
                        % rows[0]["event_id"])
        # the remaining provider still delivers
        self.d.post(event("keep-app", "still here"))
        self.emu.wait_requests(1, path="/hook/keep", delivered=True)


class DeadLetterLifetime(unittest.TestCase):
    """queue.dead_max_age (SPEC §3) and a listing that does not grow with the queue."""

    def setUp(self):
        self.emu = SlackEmulator().start()
        self.workdir = tempfile.mkdtemp(prefix="frtest-dla-")
        self.state = os.path.join(self.workdir, "state")
        self.d = None

    def tearDown(self):
        try:
            if self.d is not None and self.d.proc is not None and self.d.proc.poll() is None:
                self.assertEqual(self.d.stop(), 0)
        finally:
            if self.d is not None:
                self.d.cleanup()
            self.emu.stop()

    def conf(self, dead_max_age):
        return """
state_dir = "%s";
queue: { dead_max_age = %s; };
dedup: { window = 0; };
providers = ( { name = "hook"; type = "slack"; url = "%s"; rate = 0; batch_max = 1; } );
alerts = ( { name = "all"; providers = [ "hook" ]; severity = "info";
             sources = ( { kind = "*"; } ); } );
""" % (self.state, dead_max_age, self.emu.url(HOOK))

    def dead(self):
        r = frtest.run_cli(["queue", "-c", self.d.config_path, "list", "--dead", "--json"])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        return frtest.queue_rows(r.stdout.decode())

    def test_dead_letters_expire(self):
        self.d = frtest.Daemon(self.conf("1.5"), workdir=self.workdir, state_dir=self.state)
        self.emu.set_default(Response.error(404, "no_service"), path=HOOK)
        for i in range(3):
            self.d.post(event("app%d" % i, "gone %d" % i))
        deadline = time.monotonic() + frtest.patience(5)
        while len(self.dead()) < 3:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        t0 = time.monotonic()
        self.assertEqual(len(self.dead()), 3)       # kept for 1.5 s ...
        # one sweep, or several when the letters were made across a sweep
        deadline = time.monotonic() + frtest.patience(6)
        while True:
            expired = sum(int(m.group(1)) for m in (
                re.search(r'msg="?dead letters expired"?.*count=(\d+)', l)
                for l in self.d.lines_err) if m)
            if expired >= 3:
                break
            self.assertLess(time.monotonic(), deadline, "expired: %d" % expired)
            time.sleep(0.05)
        self.assertEqual(expired, 3)
        self.assertEqual(self.dead(), [])           # ... then deleted
        self.assertGreater(time.monotonic() - t0, 0.5)
        status, _, body = self.d.request("GET", "/metrics")
        deadline = time.monotonic() + 3
        while 'fluxrelay_queue_dead{provider="hook"} 0' not in body.decode():
            self.assertLess(time.monotonic(), deadline, body.decode())
            time.sleep(0.1)
            status, _, body = self.d.request("GET", "/metrics")

    def test_dead_max_age_zero_keeps_them(self):
        self.d = frtest.Daemon(self.conf("0"), workdir=self.workdir, state_dir=self.state)
        self.emu.set_default(Response.error(404, "no_service"), path=HOOK)
        self.d.post(event("app", "kept"))
        deadline = time.monotonic() + frtest.patience(5)
        while len(self.dead()) < 1:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        # An old dead letter (killed a year ago) stays too.
        import sqlite3
        db = sqlite3.connect(os.path.join(self.state, "queue.db"), timeout=5)
        db.execute("UPDATE deliveries SET created_at = 1, next_attempt_at = 1 WHERE state = 1")
        db.commit()
        db.close()
        time.sleep(2.5)
        self.assertEqual(len(self.dead()), 1)

    def test_invalid_dead_max_age(self):
        self.d = frtest.Daemon(self.conf("-1"), workdir=self.workdir, state_dir=self.state,
                               start=False)
        r = frtest.run_cli(["--check-config", "-c", self.d.config_path])
        self.assertEqual(r.returncode, 78, r.stderr.decode())
        self.assertIn("queue.dead_max_age", r.stderr.decode())

    def fill_dead(self, n, size):
        """n dead letters of about size bytes each, written straight into queue.db."""
        import sqlite3
        self.d = frtest.Daemon(self.conf("0"), workdir=self.workdir, state_dir=self.state)
        self.assertEqual(self.d.stop(), 0)
        db = sqlite3.connect(os.path.join(self.state, "queue.db"))
        ev = event("big", "x" * size).encode()
        now = time.time()
        db.executemany(
            "INSERT INTO deliveries (event_id, provider, channel, alerts, extra, event, state,"
            " attempts, next_attempt_at, created_at, last_error)"
            " VALUES (?, 'hook', '', 'all', '{}', ?, 1, 3, ?, ?, 'HTTP 500 rollup_error')",
            (("%032x" % i, ev, now, now) for i in range(n)))
        db.commit()
        db.close()

    def max_rss_kib(self, args):
        """Peak RSS of one `fluxrelay queue ...` run (its output discarded)."""
        code = ("import resource, subprocess, sys\n"
                "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
                "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
        r = subprocess.run([sys.executable, "-c", code, frtest.BIN, "queue", "-c",
                            self.d.config_path] + args, capture_output=True, timeout=300)
        rc, rss = r.stdout.decode().split()
        self.assertEqual(rc, "0", r.stderr.decode())
        return int(rss)

    def test_listing_streams(self):
        if os.environ.get("FR_VALGRIND") == "1":
            self.skipTest("memory figures differ under valgrind")
        with open(frtest.BIN, "rb") as f:
            binary = f.read()
            if b"__asan_init" in binary or b"__tsan_init" in binary:
                self.skipTest("memory figures differ under a sanitizer's shadow memory")
        n = 8000
        self.fill_dead(n, 5000)           # 40 MB of events: 1.5-3x that in memory if loaded whole
        rows = frtest.queue_rows(frtest.run_cli(
            ["queue", "-c", self.d.config_path, "list", "--dead", "--json"]).stdout.decode())
        self.assertEqual(len(rows), n)
        self.assertEqual([r["id"] for r in rows], sorted(r["id"] for r in rows))
        for args in (["list", "--dead", "--json"], ["list", "--dead"]):
            rss = self.max_rss_kib(args)
            sys.stderr.write("queue %s over %d dead letters (40 MB): max RSS %d KiB\n"
                             % (" ".join(args), n, rss))
            self.assertLess(rss, 30 * 1024, args)


if __name__ == "__main__":
    frtest.main()

#!/usr/bin/env python3
"""Incidents of notify = "changes" alerts through the real daemon (SPEC §12):
one message per failure to a `slack` webhook (the emulator) and the console,
repeats counted and never duplicates, a reminder after repeat_interval, the
recovery ("Recovered after ...", the revision, the last error), fixtures 11
and 12, state surviving kill -9, `fluxrelay incidents` (text, --json, close),
the incidents_open gauge, the reloads that drop a removed alert's
incidents and those of the alerts using a provider whose threads changed, a burst of 200 failures of 20 objects (20 "opened", 20
"recovered") and the migration of a first-stage (schema version 1) queue.db
by the daemon."""
import http.client
import json
import os
import re
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import frtest  # noqa: E402
from slack_emulator import SlackEmulator  # noqa: E402


def config(emu, repeat=0, extra_alert="", ttl=""):
    return """
providers = (
  { name = "hook"; type = "slack"; url = "%s"; rate = 0; },
  { name = "con"; type = "console"; }
);
alerts = (
  { name = "helm"; providers = [ "hook", "con" ]; notify = "changes"; repeat_interval = %d;
    %s sources = ( { kind = "HelmRelease"; }, { kind = "Kustomization"; } ); }%s
);
""" % (emu.url("/hook"), repeat, "incident_ttl = %d;" % ttl if ttl else "", extra_alert)


def helm(severity, reason, message, name="podinfo", revision="6.5.4"):
    return json.dumps({
        "involvedObject": {"kind": "HelmRelease", "name": name, "namespace": "apps",
                           "apiVersion": "helm.toolkit.fluxcd.io/v2"},
        "severity": severity, "reason": reason, "message": message,
        "metadata": {"helm.toolkit.fluxcd.io/revision": revision},
        "reportingController": "helm-controller"})


FAIL = ("error", "UpgradeFailed", "Helm upgrade failed: timed out waiting for the condition")


# The first stage's schema, exactly as version 1 created it (the same text as
# test_schema_v1 in tests/unit/test_queue.c).
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT NOT NULL,
  provider TEXT NOT NULL,
  channel TEXT NOT NULL DEFAULT '',
  alerts TEXT NOT NULL DEFAULT '',
  extra TEXT NOT NULL DEFAULT '{}',
  event BLOB NOT NULL,
  state INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at REAL NOT NULL DEFAULT 0,
  created_at REAL NOT NULL,
  last_error TEXT);
CREATE INDEX IF NOT EXISTS deliveries_by_target
  ON deliveries (state, provider, channel, id);
CREATE TABLE IF NOT EXISTS dedup (
  key BLOB PRIMARY KEY, event_id TEXT NOT NULL, first_seen REAL NOT NULL)
  WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
"""


class Incidents(unittest.TestCase):
    def setUp(self):
        self.emu = SlackEmulator().start()
        self.workdir = tempfile.mkdtemp(prefix="frtest-incidents-")
        self.state = os.path.join(self.workdir, "state")
        self.d = None

    def tearDown(self):
        try:
            if self.d is not None and self.d.proc.poll() is None:
                self.assertEqual(self.d.stop(), 0)
        finally:
            if self.d is not None:
                self.d.cleanup()
            self.emu.stop()

    def start(self, text):
        self.d = frtest.Daemon(text, workdir=self.workdir, state_dir=self.state)
        return self.d

    def post(self, body, status="accepted"):
        code, _, doc = self.d.post(body)
        self.assertEqual(code, 202, doc)
        self.assertEqual(doc["status"], status, doc)
        return doc

    def hook_posts(self):
        return [r for r in self.emu.requests if r.path == "/hook"]

    def wait_posts(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.hook_posts()) < n:
            if time.monotonic() > deadline:
                self.fail("%d/%d webhook posts: %r" % (len(self.hook_posts()), n,
                                                      self.hook_posts()))
            time.sleep(0.05)
        return self.hook_posts()

    def wait_attachments(self, n, timeout=10):
        """The attachments of every post so far, once there are n (a webhook
        may coalesce messages of one target into one post)."""
        deadline = time.monotonic() + timeout
        while True:
            att = [a for r in self.hook_posts() for a in r.attachments()]
            if len(att) >= n:
                return att
            if time.monotonic() > deadline:
                self.fail("%d/%d attachments: %r" % (len(att), n, att))
            time.sleep(0.05)

    def no_more_posts(self, n, wait=1.0):
        time.sleep(wait)
        self.assertEqual(len(self.hook_posts()), n, [r.json for r in self.hook_posts()])

    def cli(self, *args, rc=0):
        r = frtest.run_cli(["incidents", "-c", self.d.config_path, "-s", self.state] +
                           list(args))
        self.assertEqual(r.returncode, rc, (r.stdout, r.stderr))
        return r

    def incidents(self):
        return json.loads(self.cli("--json").stdout)

    def gauge(self):
        _, _, body = self.d.request("GET", "/metrics")
        m = re.search(r'^fluxrelay_incidents_open\{alert="helm"\} (\d+)$', body.decode(), re.M)
        self.assertIsNotNone(m, body.decode())
        return int(m.group(1))

    def test_one_message_reminder_recovery(self):
        d = self.start(config(self.emu, repeat=3))
        self.assertEqual(self.gauge(), 0)          # at 0 from the start
        # A burst of identical failures: one "opened" message. The repeats
        # change the incident (its count), so they are never "duplicate"
        # although dedup (300 s by default) would say so.
        for _ in range(5):
            self.post(helm(*FAIL))
        posts = self.wait_posts(1)
        self.no_more_posts(1)
        att = posts[0].attachments()
        self.assertEqual(len(att), 1)
        self.assertEqual(att[0]["color"], "danger")
        self.assertEqual(att[0]["title"], "UpgradeFailed")
        # The console prints exactly what the webhook got.
        d.wait_out(r"^\{")
        self.assertEqual(d.stdout_json(), [posts[0].json])
        self.assertEqual(self.gauge(), 1)

        inc = self.incidents()
        self.assertEqual(len(inc), 1)
        self.assertEqual(set(inc[0]), {"id", "alert", "cluster", "kind", "namespace", "name",
                                       "opened_at", "last_at", "failures", "last_message",
                                       "threads"})
        self.assertEqual((inc[0]["alert"], inc[0]["cluster"], inc[0]["kind"],
                          inc[0]["namespace"], inc[0]["name"], inc[0]["failures"]),
                         ("helm", "", "HelmRelease", "apps", "podinfo", 5))
        self.assertEqual(inc[0]["last_message"], FAIL[2])
        self.assertEqual(inc[0]["threads"], [])
        self.assertRegex(inc[0]["opened_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertRegex(inc[0]["last_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        text = self.cli().stdout.decode()
        self.assertRegex(text, r"(?m)^ID +ALERT +OBJECT")
        # a webhook target has no thread: THREAD is "-"
        self.assertRegex(text, r"(?m)^ID +ALERT +OBJECT .* FAILURES  THREAD +LAST MESSAGE$")
        self.assertRegex(text, r"(?m)^%d +helm +HelmRelease/apps/podinfo .* 5  - +Helm upgrade" %
                         inc[0]["id"])

        # repeat_interval (3 s) after the opened message: a reminder.
        time.sleep(3.1)
        self.post(helm(*FAIL))
        posts = self.wait_posts(2)
        att = posts[1].attachments()[0]
        self.assertEqual(att["color"], "danger")
        self.assertEqual(att["title"], "Still failing: UpgradeFailed")
        self.assertIn("6 failures", att["text"])

        # helm-controller's RollbackSucceeded is no recovery (fixture 12).
        self.post(frtest.fixture("12-"), status="ignored")
        self.no_more_posts(2, wait=0.5)
        self.assertEqual(len(self.incidents()), 1)

        # The upgrade succeeds: "recovered", with the revision and the last error.
        self.post(helm("info", "UpgradeSucceeded", "Helm upgrade succeeded", revision="6.5.5"))
        posts = self.wait_posts(3)
        att = posts[2].attachments()[0]
        self.assertEqual(att["color"], "good")
        self.assertEqual(att["title"], "Recovered: HelmRelease/podinfo")
        self.assertRegex(att["text"], r"^Recovered after \d+s \(6 failures\)")
        self.assertIn(FAIL[2], att["text"])
        self.assertIn({"title": "revision", "value": "6.5.5", "short": False}, att["fields"])
        self.assertEqual(self.incidents(), [])
        self.assertEqual(self.gauge(), 0)
        d.wait_out(r"^\{", count=3)
        self.assertEqual(d.stdout_json(), [p.json for p in posts])
        d.wait_err(r'msg="incident recovered" alert=helm object=HelmRelease/apps/podinfo')

        # A second success has nothing to close: ignored, nothing sent.
        self.post(helm("info", "UpgradeSucceeded", "Helm upgrade succeeded", revision="6.5.5"),
                  status="ignored")
        self.no_more_posts(3, wait=0.5)

    def test_kustomize_commit_status_success_closes(self):
        self.start(config(self.emu))
        body = json.loads(frtest.fixture("11-"))
        fail = dict(body, severity="error", reason="HealthCheckFailed",
                    message="timeout waiting for: [Deployment/apps/webapp status: 'InProgress']",
                    metadata={})
        self.post(json.dumps(fail))
        self.wait_posts(1)
        # Fixture 11 carries commit_status: update and still closes the incident.
        self.post(frtest.fixture("11-"))
        posts = self.wait_posts(2)
        self.assertEqual(posts[1].attachments()[0]["title"], "Recovered: Kustomization/webapp")
        self.assertEqual(self.incidents(), [])

    def test_state_survives_kill9(self):
        self.start(config(self.emu))
        self.post(helm(*FAIL))
        self.wait_posts(1)
        # Once the delivery is recorded: a row killed before that is sent
        # again (at least once), which is not what this test is about.
        deadline = time.monotonic() + 10
        while frtest.queue_rows(frtest.run_cli(["queue", "-c", self.d.config_path, "-s",
                                                self.state, "list", "--json"]).stdout):
            self.assertLess(time.monotonic(), deadline, "the delivery was never recorded")
            time.sleep(0.1)
        self.d.kill9()
        self.d.start()
        # Still open after the restart: a repeat is counted, never a second "opened".
        self.post(helm(*FAIL))
        self.no_more_posts(1)
        self.assertEqual(self.incidents()[0]["failures"], 2)
        self.assertEqual(self.gauge(), 1)
        self.post(helm("info", "UpgradeSucceeded", "Helm upgrade succeeded"))
        posts = self.wait_posts(2)
        self.assertEqual(posts[1].attachments()[0]["title"], "Recovered: HelmRelease/podinfo")
        self.assertIn("(2 failures)", posts[1].attachments()[0]["text"])

    def test_cli_close_and_reload(self):
        self.start(config(self.emu))
        self.post(helm(*FAIL, name="a"))
        self.post(helm(*FAIL, name="b"))
        self.post(helm(*FAIL, name="c"))
        self.wait_attachments(3)
        ids = {i["name"]: i["id"] for i in self.incidents()}
        self.assertEqual(sorted(ids), ["a", "b", "c"])
        r = self.cli("close", str(ids["a"]))
        self.assertEqual(r.stdout.decode(), "closed 1 incident\n")
        self.assertEqual(sorted(i["name"] for i in self.incidents()), ["b", "c"])
        r = self.cli("close", str(ids["a"]), rc=1)
        self.assertIn("no such incident", r.stderr.decode())
        self.cli("close", rc=2)
        self.cli("close", "x1", rc=2)
        self.cli("--bogus", rc=2)
        # Closed silently: the next failure of a opens a new incident ("opened").
        self.post(helm(*FAIL, name="a"))
        att = self.wait_attachments(4)
        self.assertEqual(att[3]["title"], "UpgradeFailed")
        self.assertEqual(att[3]["author_name"], "helmrelease/a.apps")
        self.assertEqual(self.cli("close", "--all").stdout.decode(), "closed 3 incidents\n")
        self.assertEqual(self.incidents(), [])

        # SIGHUP with the alert renamed: its incidents are dropped (logged).
        self.post(helm(*FAIL, name="d"))
        self.wait_attachments(5)
        with open(self.d.config_path, "w") as f:
            f.write(config(self.emu).replace('name = "helm"', 'name = "helm2"'))
        self.d.send_signal(signal.SIGHUP)
        self.d.wait_err(r'msg="incidents dropped" alert=helm count=1')
        self.assertEqual(self.incidents(), [])

    def test_cli_leaves_out_expired_incidents(self):
        """An incident idle for its alert's incident_ttl is closed: the CLI
        does not list it, even before the daemon's sweep (once a minute,
        the first a minute after start) deletes it. An incident of an alert
        the configuration no longer has is listed as it is."""
        self.start(config(self.emu, ttl=2))
        self.post(helm(*FAIL))
        self.wait_attachments(1)
        listed = self.incidents()
        self.assertEqual([i["name"] for i in listed], ["podinfo"])
        self.assertEqual(sorted(listed[0]), ["alert", "cluster", "failures", "id", "kind",
                                             "last_at", "last_message", "name", "namespace",
                                             "opened_at", "threads"])
        deadline = time.monotonic() + 10
        while self.incidents():
            if time.monotonic() > deadline:
                self.fail("an incident past incident_ttl is still listed: %r"
                          % self.incidents())
            time.sleep(0.2)
        self.assertEqual(self.cli().stdout.decode().count("\n"), 1, "the header only")
        # Still in the database (the sweep has not run): with the alert
        # renamed in the file the CLI reads, it is listed as before.
        with open(self.d.config_path, "w") as f:
            f.write(config(self.emu, ttl=2).replace('name = "helm"', 'name = "helm2"'))
        self.assertEqual([i["alert"] for i in self.incidents()], ["helm"])

    def test_reload_toggling_threads_drops_incidents(self):
        """SIGHUP that turns a provider's threads off, or on: the incidents of
        the alerts using it are dropped (logged), other alerts keep theirs."""
        def text(threads):
            return """
providers = (
  { name = "hook"; type = "slack"; url = "%s"; rate = 0; },
  { name = "bot"; type = "slack-bot"; token = "xoxb-incidents-1"; api_url = "%s";
    channel = "#incidents"; threads = %s; rate = 0; }
);
alerts = (
  { name = "helm"; providers = [ "hook" ]; notify = "changes";
    sources = ( { kind = "HelmRelease"; } ); },
  { name = "bots"; providers = [ "bot" ]; notify = "changes";
    sources = ( { kind = "HelmRelease"; } ); }
);
""" % (self.emu.url("/hook"), self.emu.url("/api"), threads)

        def open_alerts():
            return sorted(i["alert"] for i in self.incidents())

        self.start(text("true"))
        self.post(helm(*FAIL))
        self.assertEqual(open_alerts(), ["bots", "helm"])
        for threads in ("false", "true"):
            with open(self.d.config_path, "w") as f:
                f.write(text(threads))
            self.d.send_signal(signal.SIGHUP)
            self.d.wait_err(r'msg="incidents dropped" alert=bots count=1 '
                            r'why="provider bot: threads turned %s"'
                            % ("off" if threads == "false" else "on"))
            # The line is logged once the reload's transaction has
            # committed: another process reads the drop at once.
            self.assertEqual(open_alerts(), ["helm"])
            self.post(helm(*FAIL))
            self.assertEqual(open_alerts(), ["bots", "helm"])
        helm_inc = [i for i in self.incidents() if i["alert"] == "helm"]
        self.assertEqual(helm_inc[0]["failures"], 3)
        self.assertEqual([l for l in self.d.lines_err
                          if 'msg="incidents dropped" alert=helm ' in l], [])

    def test_cli_without_database(self):
        d = frtest.Daemon(config(self.emu), workdir=self.workdir, state_dir=self.state,
                          start=False)
        r = frtest.run_cli(["incidents", "-c", d.config_path, "-s",
                            os.path.join(self.workdir, "none"), "--json"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), [])
        self.assertFalse(os.path.exists(os.path.join(self.workdir, "none")))

    def test_match_shows_the_opened_message(self):
        """`fluxrelay match` on a notify = "changes" alert: a failure shows the
        opened message it would send; a recovery, with no incident open, none."""
        d = frtest.Daemon(config(self.emu), workdir=self.workdir, state_dir=self.state,
                          start=False)
        fail = os.path.join(self.workdir, "fail.json")
        ok = os.path.join(self.workdir, "ok.json")
        with open(fail, "w") as f:
            f.write(helm(*FAIL))
        with open(ok, "w") as f:
            f.write(helm("info", "UpgradeSucceeded", "Helm upgrade succeeded"))
        r = frtest.run_cli(["match", "-c", d.config_path, fail])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode() if isinstance(r.stdout, bytes) else r.stdout
        self.assertIn("alerts: helm", out)
        self.assertEqual(out.count("kind=opened"), 2, out)     # hook and con
        self.assertIn('"color":"danger"', out)
        r = frtest.run_cli(["match", "-c", d.config_path, ok])
        self.assertEqual(r.returncode, 1, r.stderr)
        out = r.stdout.decode() if isinstance(r.stdout, bytes) else r.stdout
        self.assertIn("no alert matches", out)


    def post_all(self, bodies, workers=8):
        """POST bodies (in their order, taken by `workers` threads on keep-alive
        connections) as fast as the test can; every answer must be a 202."""
        lock = threading.Lock()
        it = iter(bodies)
        answers = []

        def worker():
            conn = http.client.HTTPConnection("127.0.0.1", self.d.port,
                                              timeout=frtest.patience(10))
            try:
                while True:
                    with lock:
                        body = next(it, None)
                    if body is None:
                        return
                    conn.request("POST", "/", body=body,
                                 headers={"Content-Type": "application/json"})
                    r = conn.getresponse()
                    data = r.read()
                    with lock:
                        answers.append((r.status, data))
            finally:
                conn.close()

        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(frtest.patience(60))
        self.assertEqual(len(answers), len(bodies))
        self.assertEqual([a for a in answers if a[0] != 202], [])
        return [json.loads(a[1]) for a in answers]

    def test_burst_of_200_failures_of_20_objects(self):
        """Issue 13: 200 failures of 20 objects, 10 each, interleaved and posted
        concurrently: 20 "opened" (the webhook may coalesce them into fewer
        posts), 20 incidents with 200 failures; one recovery each: 20
        "recovered"."""
        self.start(config(self.emu))
        names = ["obj-%02d" % i for i in range(20)]
        self.post_all([helm(*FAIL, name=n) for _ in range(10) for n in names])
        self.wait_attachments(20, frtest.patience(10))
        time.sleep(frtest.patience(1.0))    # anything more (a second "opened") would come now
        att = [a for r in self.hook_posts() for a in r.attachments()]
        self.assertEqual(len(att), 20, att)
        self.assertEqual([a["title"] for a in att], ["UpgradeFailed"] * 20)   # kind opened
        self.assertEqual([a["color"] for a in att], ["danger"] * 20)
        self.assertEqual(sorted(a["author_name"] for a in att),
                         ["helmrelease/%s.apps" % n for n in names])
        inc = self.incidents()
        self.assertEqual(sorted(i["name"] for i in inc), names)
        self.assertEqual(sum(i["failures"] for i in inc), 200)
        self.assertEqual({i["failures"] for i in inc}, {10})
        self.assertEqual(self.gauge(), 20)

        self.post_all([helm("info", "UpgradeSucceeded", "Helm upgrade succeeded", name=n)
                       for n in names])
        self.wait_attachments(40, frtest.patience(10))
        time.sleep(frtest.patience(1.0))
        att = [a for r in self.hook_posts() for a in r.attachments()]
        self.assertEqual(len(att), 40, att[20:])
        rec = att[20:]
        self.assertEqual(sorted(a["title"] for a in rec),
                         ["Recovered: HelmRelease/%s" % n for n in names])
        self.assertEqual({a["color"] for a in rec}, {"good"})
        for a in rec:
            self.assertIn("(10 failures)", a["text"])
        self.assertEqual(self.incidents(), [])
        self.assertEqual(self.gauge(), 0)

    def test_migrates_a_first_stage_queue(self):
        """A queue.db of the first stage (schema version 1) with pending
        deliveries and dead letters: the daemon migrates it in place, delivers
        the pending rows, keeps the dead letters, and opens incidents in it."""
        os.makedirs(self.state)
        path = os.path.join(self.state, "queue.db")
        now = time.time()
        db = sqlite3.connect(path)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA_V1)
        rows = [
            # event_id, state, attempts, last_error, the event
            ("e1", 0, 0, None, helm("error", "InstallFailed", "pending one", name="p1")),
            ("e2", 1, 3, "HTTP 404 no_service", helm("error", "InstallFailed", "dead one",
                                                      name="d1")),
            ("e3", 0, 2, "HTTP 500", helm("error", "InstallFailed", "pending two", name="p2")),
            ("e4", 1, 0, "HTTP 403 action_prohibited", helm("error", "InstallFailed",
                                                            "dead two", name="d2")),
        ]
        with db:
            for i, (eid, state, attempts, err, ev) in enumerate(rows):
                db.execute("INSERT INTO deliveries (event_id, provider, channel, alerts, extra, "
                           "event, state, attempts, next_attempt_at, created_at, last_error) "
                           "VALUES (?, 'hook', '', 'helm', '{}', ?, ?, ?, 0, ?, ?)",
                           (eid, ev.encode(), state, attempts, now - 60 + i, err))
            db.execute("INSERT INTO dedup (key, event_id, first_seen) VALUES (x'0102', 'e1', ?)",
                       (now,))
        db.close()

        def schema_version():
            c = sqlite3.connect(path)
            try:
                return c.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                                 ).fetchone()[0]
            finally:
                c.close()

        self.assertEqual(schema_version(), "1")
        d = self.start(config(self.emu))
        att = self.wait_attachments(2, frtest.patience(10))
        self.assertEqual(sorted(a["text"] for a in att), ["pending one", "pending two"])
        self.assertEqual(schema_version(), "2")
        dead = frtest.queue_rows(frtest.run_cli(["queue", "-c", d.config_path, "-s", self.state,
                                                 "list", "--dead", "--json"]).stdout)
        self.assertEqual([(r["event_id"], r["state"], r["attempts"], r["last_error"])
                          for r in dead],
                         [("e2", "dead", 3, "HTTP 404 no_service"),
                          ("e4", "dead", 0, "HTTP 403 action_prohibited")])
        deadline = time.monotonic() + frtest.patience(10)
        while frtest.queue_rows(frtest.run_cli(["queue", "-c", d.config_path, "-s", self.state,
                                                "list", "--json"]).stdout):
            self.assertLess(time.monotonic(), deadline, "the pending rows stay pending")
            time.sleep(0.1)

        # notify = "changes" on the migrated file: a failure opens an incident.
        self.post(helm(*FAIL))
        att = self.wait_attachments(3, frtest.patience(10))
        self.assertEqual(att[2]["title"], "UpgradeFailed")
        inc = self.incidents()
        self.assertEqual([(i["name"], i["failures"]) for i in inc], [("podinfo", 1)])
        self.assertEqual(self.gauge(), 1)

if __name__ == "__main__":
    frtest.main()

#!/usr/bin/env python3
"""A failing, slow, deleted, damaged or shared queue database (SPEC §2, §4, §8).

Disk faults come from tests/faultfs.so, an LD_PRELOAD shim built by `make
check` ($FR_FAULTFS): the test writes "fsync=eio", "write=enospc" or
"fsync=delay:S" into a control file and the daemon's calls on queue.db* fail
or stall from then on. Without the shim the cases that need it are skipped.
"""
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
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

SHIM = os.environ.get("FR_FAULTFS") or os.path.join(
    os.path.dirname(frtest.BIN), "..", "tests", "faultfs.so")
HOOK = "/services/T0/B0/faults-secret"


def have_shim():
    return os.path.exists(SHIM)


def run_once(cmd, env, cwd, timeout=10):
    """Start the daemon and wait for it to exit by itself: (exit code, stderr);
    exit code None when it was still running after timeout (then stopped)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    try:
        _, err = p.communicate(timeout=timeout)
        return p.returncode, err.decode()
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
        return None, err.decode()


def event(message, name="faulty"):
    return json.dumps({
        "involvedObject": {"kind": "Kustomization", "name": name, "namespace": "apps",
                           "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
        "severity": "error",
        "message": message,
        "reason": "ReconciliationFailed",
        "reportingController": "kustomize-controller",
    })


def config(state_dir, providers, queue="", extra="", alerts=None):
    """providers: list of (name, url, settings text); alerts: libconfig
    entries (default: one alert "all" to every provider)."""
    provs = ",\n  ".join('{ name = "%s"; type = "slack"; url = "%s"; %s }' % p
                         for p in providers)
    if alerts is None:
        alerts = ('{ name = "all"; providers = [ %s ]; severity = "info";'
                  ' sources = ( { kind = "*"; } ); }'
                  % ", ".join('"%s"' % p[0] for p in providers))
    return """
state_dir = "%s";
queue: { %s };
dedup: { window = 0; };
providers = (
  %s
);
alerts = (
  %s
);
%s
""" % (state_dir, queue, provs, alerts, extra)


class FaultCase(unittest.TestCase):
    """A daemon with the shim preloaded and a control file to steer it."""

    def start(self, providers=None, queue="backoff_initial = 0.05; backoff_max = 0.2;",
              faults=None, extra="", start=True):
        self.emu = SlackEmulator(keepalive=False).start()
        self.addCleanup(self.emu.stop)
        self.workdir = tempfile.mkdtemp(prefix="frtest-faults-")
        self.state = os.path.join(self.workdir, "state")
        self.ctl = os.path.join(self.workdir, "faults")
        if faults:
            self.set_faults(faults)
        if providers is None:
            providers = [("hook", self.emu.url(HOOK), "rate = 0; batch_max = 10; timeout = 5;")]
        env = {"FR_FAULT_CTL": self.ctl}
        if have_shim():
            env["LD_PRELOAD"] = SHIM
            # The sanitizer runtime wants to be first; the shim only wraps libc calls.
            asan = os.environ.get("ASAN_OPTIONS", "")
            env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"
        self.d = frtest.Daemon(config(self.state, providers, queue, extra), workdir=self.workdir,
                               state_dir=self.state, env=env, start=start)
        self.addCleanup(self.d.cleanup)
        return self.d

    def set_faults(self, *lines):
        tmp = self.ctl + ".tmp"
        with open(tmp, "w") as f:
            f.write("".join(l + "\n" for l in lines))
        os.rename(tmp, self.ctl)

    def clear_faults(self):
        try:
            os.unlink(self.ctl)
        except FileNotFoundError:
            pass

    def post(self, msg, expect=202, name="faulty"):
        status, _, doc = self.d.post(event(msg, name))
        if expect is not None:
            self.assertEqual(status, expect, doc)
        return status, doc

    def post_ignored(self, expect):
        """A trace event, which no alert here matches (they start at info):
        202 "ignored" while the queue is writable, else 503 like the others
        although the writer never sees it."""
        ev = json.loads(event("matches nothing", name="ignored"))
        ev["severity"] = "trace"
        status, _, doc = self.d.post(json.dumps(ev))
        self.assertEqual(status, expect, doc)
        if expect == 202:
            self.assertEqual(doc, {"status": "ignored"})
        else:
            self.assertEqual(doc, {"error": "queue not writable"})

    def readyz(self):
        return self.d.request("GET", "/readyz")[0]

    def wait_readyz(self, want, timeout):
        t0 = time.monotonic()
        while True:
            if self.readyz() == want:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                self.fail("readyz not %d after %.1f s" % (want, timeout))
            time.sleep(0.05)

    def texts(self, path=HOOK):
        return [a.get("text") for r in self.emu.requests_for(path) for a in r.attachments()]

    def queue_cli(self, *args):
        return frtest.run_cli(["queue", "-c", self.d.config_path] + list(args))


@unittest.skipUnless(have_shim(), "fault shim not built (make check builds tests/faultfs.so)")
class DiskRefusesWrites(FaultCase):
    def test_delivered_message_not_reposted_while_acks_fail(self):
        """A message Slack accepted is not posted again because its ack
        cannot be written: at most twice (here: once) while the disk is full."""
        self.start()
        # The first answer is slow so that the faults start while it is in flight.
        self.emu.script(HOOK, Response.slow(0.8))
        msgs = ["ack-%02d" % i for i in range(10)]
        for m in msgs:
            self.post(m)
        self.emu.wait_requests(1, path=HOOK)
        self.set_faults("fsync=eio", "write=enospc")
        time.sleep(5.0)
        counts = {m: self.texts().count(m) for m in msgs}
        posts = len(self.emu.requests_for(HOOK))
        sys.stderr.write("posts while the disk refused writes: %d requests, per message %r\n"
                         % (posts, sorted(set(counts.values()))))
        self.assertEqual(set(counts), set(msgs))
        self.assertLessEqual(max(counts.values()), 2, counts)
        # The disk comes back: the acknowledgements are written, nothing more is sent.
        self.clear_faults()
        deadline = time.monotonic() + 10
        while frtest.queue_rows(self.queue_cli("list", "--json").stdout.decode()):
            self.assertLess(time.monotonic(), deadline, "acks never recorded after recovery")
            time.sleep(0.2)
        self.assertEqual(self.d.stop(), 0)
        before = len(self.emu.requests_for(HOOK))
        self.d.start()
        time.sleep(1.5)
        self.assertEqual(len(self.emu.requests_for(HOOK)), before, "re-sent after restart")

    def test_failed_defer_waits_and_counts_attempts(self):
        """A transient failure whose deferral cannot be written is still
        retried after its backoff, and max_attempts still ends it."""
        self.start(queue="backoff_initial = 0.05; backoff_max = 0.2; max_attempts = 3;")
        self.emu.script(HOOK, Response.slow(0.8, Response.error(500, "rollup_error")))
        self.emu.set_default(Response.error(500, "rollup_error"), path=HOOK)
        self.post("defer-me")
        self.emu.wait_requests(1, path=HOOK)
        self.set_faults("fsync=eio", "write=enospc")
        time.sleep(4.0)
        posts = len(self.emu.requests_for(HOOK))
        sys.stderr.write("posts of one failing message while deferrals failed: %d\n" % posts)
        self.assertLessEqual(posts, 3)
        self.clear_faults()
        deadline = time.monotonic() + 10
        while True:
            dead = frtest.queue_rows(self.queue_cli("list", "--dead", "--json").stdout.decode())
            if dead:
                break
            self.assertLess(time.monotonic(), deadline, "dead letter never recorded")
            time.sleep(0.2)
        self.assertEqual(dead[0]["attempts"], 3, dead)
        self.assertIn("HTTP 500", dead[0]["last_error"])
        self.assertEqual(len(self.emu.requests_for(HOOK)), 3)

    def test_readyz_follows_failing_fsync(self):
        self.start()
        self.assertEqual(self.readyz(), 200)
        # No traffic: the periodic probe finds out.
        self.set_faults("fsync=eio")
        took = self.wait_readyz(503, 3.0)
        sys.stderr.write("readyz 503 %.2f s after fsync started failing (no traffic)\n" % took)
        self.assertLess(took, 2.0)
        self.post("while failing", expect=503)
        self.post_ignored(503)
        # It stays 503 while commits fail (the old probe wrote nothing and healed it).
        for _ in range(30):
            self.assertEqual(self.readyz(), 503)
            time.sleep(0.1)
        self.clear_faults()
        took = self.wait_readyz(200, 4.0)
        sys.stderr.write("readyz 200 %.2f s after the disk recovered\n" % took)
        self.post_ignored(202)
        self.post("recovered")
        self.emu.wait_requests(1, path=HOOK)

    def test_readyz_503_right_after_a_failing_commit(self):
        self.start()
        self.set_faults("write=enospc")
        t0 = time.monotonic()
        self.post("disk full", expect=503)
        status = self.readyz()
        took = time.monotonic() - t0
        sys.stderr.write("readyz %d %.3f s after a failing commit\n" % (status, took))
        self.assertEqual(status, 503)
        self.assertLess(took, 2.0)
        self.post_ignored(503)
        self.clear_faults()
        self.wait_readyz(200, 4.0)


@unittest.skipUnless(have_shim(), "fault shim not built (make check builds tests/faultfs.so)")
class SlowFsync(FaultCase):
    def test_slow_fsync_does_not_stall_deliveries(self):
        """With every fsync of the queue taking 1 s, a delivery waits for its
        own acceptance commit, not for other targets' acknowledgements or for
        checkpoints."""
        emu_paths = ["/services/T%d/B0/slow-secret" % i for i in range(4)]
        self.start(start=False)
        provs = [("p%d" % i, self.emu.url(emu_paths[i]), "rate = 0; batch_max = 10;")
                 for i in range(4)]
        # Each event goes to one provider: one alert per provider, by object name.
        alerts = ",\n".join(
            '{ name = "a%d"; providers = [ "p%d" ]; severity = "info";'
            ' sources = ( { kind = "*"; name = "obj%d"; } ); }' % (i, i, i) for i in range(4))
        with open(self.d.config_path, "w") as f:
            f.write(config(self.state, provs, "backoff_initial = 0.05;", alerts=alerts))
        self.set_faults("fsync=delay:1.0")
        self.d.start(timeout=60)
        sent = {}
        lock = threading.Lock()

        def poster(i):
            msg = "slow-%02d" % i
            t0 = time.monotonic()
            with lock:
                sent[msg] = t0
            status, _, _ = self.d.post(event(msg, "obj%d" % (i % 4)))
            self.assertEqual(status, 202)

        threads = []
        for i in range(24):
            th = threading.Thread(target=poster, args=(i,))
            th.start()
            threads.append(th)
            time.sleep(0.25)
        for th in threads:
            th.join(30)
        deadline = time.monotonic() + 30
        got = {}
        while len(got) < len(sent) and time.monotonic() < deadline:
            for p in emu_paths:
                for r in self.emu.requests_for(p):
                    for a in r.attachments():
                        got.setdefault(a.get("text"), r.time)
            time.sleep(0.1)
        self.assertEqual(set(got), set(sent))
        lat = sorted(got[m] - sent[m] for m in sent)
        med = statistics.median(lat)
        sys.stderr.write("1 s fsync: delivery latency (POST sent -> Slack received) median "
                         "%.2f s, max %.2f s over %d events\n" % (med, lat[-1], len(lat)))
        self.assertLess(med, 3.0, lat)


class NoFaults(FaultCase):
    def test_each_message_once_while_outcomes_are_recorded(self):
        """Outcomes are written by another thread than the one that reads the
        queue: a row read just before its acknowledgement is written must
        still count as delivered (no duplicate without any fault)."""
        paths = ["/services/T%d/B0/once-secret" % i for i in range(3)]
        self.start(start=False)
        provs = [("p%d" % i, self.emu.url(paths[i]), "rate = 0; batch_max = 1;")
                 for i in range(3)]
        with open(self.d.config_path, "w") as f:
            f.write(config(self.state, provs))
        self.d.start()
        msgs = ["once-%03d" % i for i in range(300)]
        for m in msgs:
            self.post(m)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = [t for p in paths for t in self.texts(p)]
            if len(got) >= 3 * len(msgs):
                break
            time.sleep(0.1)
        time.sleep(0.5)
        got = [t for p in paths for t in self.texts(p)]
        dups = {m: got.count(m) for m in msgs if got.count(m) != 3}
        self.assertEqual(dups, {}, "messages not posted exactly once per provider")


class DeletedDatabase(FaultCase):
    def test_deleted_queue_db_stops_accepting(self):
        self.start()
        self.post("before")
        self.post_ignored(202)
        self.emu.wait_requests(1, path=HOOK)
        os.unlink(os.path.join(self.state, "queue.db"))
        status, doc = self.post("after", expect=None)
        self.assertEqual(status, 503, doc)
        self.assertEqual(self.readyz(), 503)
        self.post("again", expect=503)
        self.post_ignored(503)
        time.sleep(1.5)
        self.assertEqual(self.readyz(), 503)
        errs = [l for l in self.d.lines_err if re.search(r"deleted or replaced", l)]
        self.assertEqual(len(errs), 1, errs)
        self.assertIn("level=error", errs[0])
        self.assertEqual(self.d.stop(), 0)

    def test_replaced_queue_db_stops_accepting(self):
        self.start()
        self.post("before")
        db = os.path.join(self.state, "queue.db")
        shutil.copy(db, db + ".copy")
        os.rename(db + ".copy", db)
        # Checked at most once a second, and before every commit.
        status, doc = self.post("after", expect=None)
        self.assertEqual(status, 503, doc)
        self.wait_readyz(503, 2.0)
        self.post_ignored(503)


class DamagedDatabase(FaultCase):
    def make_queue(self, n=300):
        """A stopped daemon's queue.db holding n pending deliveries."""
        self.start(queue="backoff_initial = 300; backoff_max = 300;")
        self.emu.set_default(Response.error(500, "down"), path=HOOK)
        for i in range(n):
            self.post("pending-%03d %s" % (i, "x" * 200))
        self.assertEqual(self.d.stop(), 0)
        return os.path.join(self.state, "queue.db")

    def start_once(self):
        return run_once(self.d.command(), self.d.env, self.workdir,
                        timeout=frtest.patience(5))

    def test_corrupted_pages_refused_at_start(self):
        db = self.make_queue()
        pristine = db + ".pristine"
        shutil.copy(db, pristine)
        with open(db, "rb") as f:
            page_size = int.from_bytes(f.read(100)[16:18], "big")
        npages = os.path.getsize(db) // page_size
        rng = random.Random(7)
        refused, started = 0, []
        for page in range(npages):
            shutil.copy(pristine, db)
            for suffix in ("-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.unlink(db + suffix)
            skip = 100 if page == 0 else 0          # keep the file header's magic
            with open(db, "r+b") as f:
                f.seek(page * page_size + skip)
                f.write(bytes(rng.randrange(256) for _ in range(page_size - skip)))
            rc, err = self.start_once()
            if rc == 1:
                self.assertIn(db, err)
                self.assertRegex(err, r"integrity check|malformed|not a database|not a fluxrelay")
                refused += 1
            else:
                started.append((page, rc, err[-300:]))
        sys.stderr.write("single-page corruptions refused at start: %d of %d\n"
                         % (refused, npages))
        self.assertEqual(started, [], "%d of %d corrupted pages not refused" % (
            len(started), npages))

    def test_foreign_sqlite_file_refused(self):
        self.start(start=False)
        os.makedirs(self.state)
        db = os.path.join(self.state, "queue.db")
        c = sqlite3.connect(db)
        c.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)")
        c.execute("INSERT INTO accounts (name) VALUES ('alice')")
        c.commit()
        c.close()
        with open(db, "rb") as f:
            before = f.read()
        rc, err = run_once(self.d.command(), self.d.env, self.workdir)
        self.assertEqual(rc, 1, err)
        self.assertIn(db, err)
        self.assertIn("not a fluxrelay queue", err)
        r = self.queue_cli("list")
        self.assertEqual(r.returncode, 1, r.stdout.decode())
        self.assertIn("not a fluxrelay queue", r.stderr.decode())
        with open(db, "rb") as f:
            self.assertEqual(f.read(), before, "the foreign file was changed")
        c = sqlite3.connect(db)
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        c.close()
        self.assertEqual(tables, ["accounts"])

    def test_malformed_at_run_time_makes_readyz_503(self):
        db = self.make_queue(n=400)
        self.d.start()
        self.assertEqual(self.readyz(), 200)
        # Let the WAL be checkpointed and restarted, so reads come from queue.db.
        time.sleep(2.0)
        with open(db, "rb") as f:
            page_size = int.from_bytes(f.read(100)[16:18], "big")
        npages = os.path.getsize(db) // page_size
        with open(db, "r+b") as f:
            for page in range(2, npages):
                f.seek(page * page_size)
                f.write(b"\xa5" * page_size)
        # Writes and reads touch the damaged pages (caches are dropped when
        # another connection commits).
        for i in range(5):
            self.d.post(event("after damage %d" % i))
            time.sleep(0.2)
        self.wait_readyz(503, 5.0)
        self.post("refused", expect=503)
        self.post_ignored(503)
        time.sleep(2.0)
        errs = [l for l in self.d.lines_err if "malformed" in l and "level=error" in l]
        self.assertEqual(len(errs), 1, "\n".join(self.d.lines_err[-20:]))
        self.assertIn("queue.db", errs[0])


class TwoDaemons(FaultCase):
    def test_second_daemon_on_same_state_dir_refused(self):
        self.start()
        rc, err = run_once([frtest.BIN, "-s", self.state, "-l", "127.0.0.1:0", "-c",
                            self.d.config_path], self.d.env, self.workdir)
        self.assertEqual(rc, 1, err)
        self.assertIn("queue.lock", err)
        self.assertIn("another fluxrelay", err)
        # The CLI does not take the lock.
        r = self.queue_cli("list")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.post("still works")
        self.assertEqual(self.d.stop(), 0)


if __name__ == "__main__":
    frtest.main()

"""SIGHUP reload under load: every request sees one whole configuration, the
new one as soon as the reload is done, and never a freed one (issue 12).

Two configurations alternate: A sends Kustomization events to alert "alpha"
and ignores GitRepository ones, B the reverse to alert "beta". Client threads
post both kinds without pause, on kept-alive and on new connections, while the
main thread reloads again and again. A request that started after a reload's
"configuration reloaded" line and ended before the next SIGHUP must be answered
by that configuration; any request must be answered by A or by B. A snapshot
used after it was freed shows as a wrong answer, a failed request, a crash or a
sanitizer report (the daemon's exit status; under ThreadSanitizer its report
file, which scripts/test checks); one freed too late, or a stale one, as a
wrong answer. Bounded: FR_RELOAD_SECONDS (6) of reloads, fewer under valgrind.
"""
import http.client
import json
import os
import signal
import threading
import time
import unittest

import frtest

COMMON = """
providers = ( { name = "console"; type = "console"; } );
dedup = { window = 0; };
queue = { sync = "normal"; };
"""
CONF_A = COMMON + """
alerts = ( { name = "alpha"; providers = ["console"]; severity = "info";
             sources = ( { kind = "Kustomization"; } ); } );
"""
CONF_B = COMMON + """
alerts = ( { name = "beta"; providers = ["console"]; severity = "info";
             sources = ( { kind = "GitRepository"; } ); } );
"""
KUSTOMIZATION = frtest.fixture("01")
GITREPOSITORY = frtest.fixture("02")
# The answer each configuration gives to each kind of event.
EXPECT = {
    ("A", "K"): ("accepted", ["alpha"]),
    ("A", "G"): ("ignored", None),
    ("B", "K"): ("ignored", None),
    ("B", "G"): ("accepted", ["beta"]),
}


def answer_of(status, doc):
    if status != 202 or not isinstance(doc, dict):
        return ("http %s" % status, doc)
    return (doc.get("status"), doc.get("alerts"))


class Client(threading.Thread):
    """Posts events until stopped; every 4th request on a new connection."""

    def __init__(self, port, seed):
        super().__init__(daemon=True)
        self.port = port
        self.seed = seed
        self.stop = threading.Event()
        self.results = []   # (start, end, kind, answer)
        self.errors = []

    def run(self):
        conn = None
        i = self.seed
        while not self.stop.is_set():
            kind = "K" if i % 2 == 0 else "G"
            body = KUSTOMIZATION if kind == "K" else GITREPOSITORY
            start = time.monotonic()
            try:
                if conn is None or i % 4 == 3:
                    if conn is not None:
                        conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                end = time.monotonic()
                doc = json.loads(data) if data else None
                self.results.append((start, end, kind, answer_of(r.status, doc)))
            except (OSError, http.client.HTTPException, ValueError) as e:
                self.errors.append("%s request failed: %r" % (kind, e))
                conn = None
                if len(self.errors) > 20:
                    return
            i += 1
        if conn is not None:
            conn.close()


class ReloadUnderLoadTest(unittest.TestCase):
    def test_reload_loop_under_load(self):
        valgrind = os.environ.get("FR_VALGRIND") == "1"
        seconds = float(os.environ.get("FR_RELOAD_SECONDS", "3" if valgrind else "6"))
        d = frtest.Daemon(CONF_A)
        clients = []
        # (config, sighup_sent, reloaded_seen): config in force from the
        # moment it is seen reloaded until the next SIGHUP is sent.
        epochs = [("A", 0.0, 0.0)]
        stuck = None
        try:
            clients = [Client(d.port, k) for k in range(4)]
            for c in clients:
                c.start()
            deadline = time.monotonic() + seconds
            n = 0
            while time.monotonic() < deadline and all(c.is_alive() for c in clients):
                n += 1
                conf = "B" if n % 2 else "A"
                with open(d.config_path, "w") as f:
                    f.write(CONF_B if conf == "B" else CONF_A)
                sent = time.monotonic()
                d.send_signal(signal.SIGHUP)
                try:
                    d.wait_err(r'msg="configuration reloaded"', timeout=30, count=n)
                except AssertionError as e:
                    stuck = str(e).splitlines()[0]
                    break
                epochs.append((conf, sent, time.monotonic()))
                time.sleep(0.02)
            epochs.append((None, time.monotonic(), None))
        finally:
            for c in clients:
                c.stop.set()
            for c in clients:
                c.join(30)
            rc = d.stop() if d.proc.poll() is None else d.proc.returncode
            time.sleep(0.2)   # the rest of a sanitizer's report
            report = [l for l in d.lines_err if "Sanitizer" in l or l.lstrip().startswith("#")]
            err = "\n".join(report[:40] or d.lines_err[-30:])
            d.cleanup()
        self.assertEqual(rc, 0, "daemon exit status %r (a sanitizer report?)\n%s" % (rc, err))
        self.assertIsNone(stuck, "a reload never finished")
        errors = [e for c in clients for e in c.errors]
        self.assertEqual(errors, [], "requests failed")
        results = [r for c in clients for r in c.results]
        reloads = len(epochs) - 2
        self.assertGreaterEqual(reloads, 5, "too few reloads to mean anything")
        self.assertGreaterEqual(len(results), 5 * reloads, "too few requests to mean anything")
        strict = 0
        for start, end, kind, answer in results:
            # Any answer must be one a whole configuration gives.
            self.assertIn(answer, (EXPECT[("A", kind)], EXPECT[("B", kind)]),
                          "%s event answered %r" % (kind, answer))
            # Within one configuration's epoch, that configuration's answer.
            for (conf, _, seen), (_, next_sent, _) in zip(epochs, epochs[1:]):
                if seen <= start and end <= next_sent:
                    strict += 1
                    self.assertEqual(answer, EXPECT[(conf, kind)],
                                     "%s event sent %.3f s after configuration %s was "
                                     "reloaded got %r" % (kind, start - seen, conf, answer))
                    break
        self.assertGreater(strict, reloads, "too few requests inside an epoch")
        print("%d reloads, %d requests, %d checked against their epoch's configuration"
              % (reloads, len(results), strict))


if __name__ == "__main__":
    frtest.main()

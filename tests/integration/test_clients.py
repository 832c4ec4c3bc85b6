#!/usr/bin/env python3
"""auth.clients: many clusters, one fluxrelay (fluxrelay.conf(5), AUTHENTICATION).

One daemon with three clients (a token, an HMAC key with a previous key, and
both) next to a top-level token. Checked: the same event from two clusters
is two events, not a duplicate; a wrong credential is 401; a source's
cluster glob selects by sender; the previous key still verifies during a
rotation; Slack messages show the cluster first (and an alert's metadata
`cluster` only for events without a client); client_events_total counts
per cluster.
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
from slack_emulator import Response, SlackEmulator  # noqa: E402

os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"

PROD_TOKEN = "prod-token-5b1e"
BOTH_TOKEN = "both-token-77c0"
GLOBAL_TOKEN = "global-token-a3f2"
STAGING_KEY = b"staging-key-new"
STAGING_OLD = b"staging-key-old"
BOTH_KEY = b"both-key-1c9d"
HOOK = "/services/T0/B0/clients"
PARKED = "/services/T0/B0/parked"


def event(name, message="health check failed", kind="Kustomization"):
    return json.dumps({
        "involvedObject": {"kind": kind, "name": name, "namespace": "apps",
                           "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
        "severity": "error", "message": message, "reason": "HealthCheckFailed",
        "reportingController": "kustomize-controller",
        "timestamp": "2024-05-01T10:00:00Z"}).encode()


def sign(key, body):
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class Clients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = SlackEmulator().start()
        cls.workdir = tempfile.mkdtemp(prefix="frtest-clients-")
        cls.state = os.path.join(cls.workdir, "state")
        conf = """
state_dir = "%s";
dedup: { window = 300; };
auth: {
  token = "%s";
  clients = (
    { name = "prod-eu-1"; token = "%s"; },
    { name = "staging"; hmac_key = "%s"; hmac_key_previous = "%s"; },
    { name = "both"; token = "%s"; hmac_key = "%s"; }
  );
};
providers = ( { name = "slack"; type = "slack"; url = "%s"; rate = 0; batch_max = 1; },
              { name = "parked"; type = "slack"; url = "%s"; rate = 0; batch_max = 1; } );
alerts = (
  { name = "parked"; providers = [ "parked" ]; severity = "info";
    sources = ( { kind = "GitRepository"; } ); },
  { name = "prod-only"; providers = [ "slack" ]; severity = "info";
    sources = ( { kind = "HelmRelease"; cluster = "prod-*"; } ); },
  { name = "all"; providers = [ "slack" ]; severity = "info";
    sources = ( { kind = "Kustomization"; } );
    metadata = { cluster = "from-alert"; }; }
);
""" % (cls.state, GLOBAL_TOKEN, PROD_TOKEN, STAGING_KEY.decode(), STAGING_OLD.decode(),
       BOTH_TOKEN, BOTH_KEY.decode(), cls.emu.url(HOOK), cls.emu.url(PARKED))
        # Slack's answer for a removed webhook: permanent, a dead letter.
        cls.emu.set_default(Response.error(404, "no_service"), PARKED)
        cls.d = frtest.Daemon(conf, workdir=cls.workdir, state_dir=cls.state)

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.d.stop()
            assert rc == 0, "daemon exit code %r" % rc
            err = "\n".join(cls.d.lines_err)
            for secret in (PROD_TOKEN, BOTH_TOKEN, GLOBAL_TOKEN, STAGING_KEY.decode()):
                assert secret not in err, "secret logged"
        finally:
            cls.d.cleanup()
            cls.emu.stop()

    def post(self, body, token=None, key=None, sig=None):
        headers = {}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        if key is not None:
            headers["X-Signature"] = sign(key, body)
        if sig is not None:
            headers["X-Signature"] = sig
        return self.d.post(body, headers)

    def accepted(self, body, **kw):
        status, _, doc = self.post(body, **kw)
        self.assertEqual(status, 202, doc)
        self.assertEqual(doc["status"], "accepted", doc)
        return doc

    def attachment_of(self, message):
        """The delivered attachment whose text is message."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for r in self.emu.delivered(HOOK):
                for a in r.attachments():
                    if a.get("text") == message:
                        return a
            time.sleep(0.05)
        self.fail("no message %r delivered" % message)

    def test_same_event_from_two_clusters_is_not_a_duplicate(self):
        body = event("dup-check", "same event, two clusters")
        a = self.accepted(body, token=PROD_TOKEN)
        b = self.accepted(body, key=STAGING_KEY)
        self.assertNotEqual(a["id"], b["id"])
        # The same cluster again is a duplicate.
        status, _, doc = self.post(body, token=PROD_TOKEN)
        self.assertEqual((status, doc["status"]), (202, "duplicate"), doc)
        status, _, doc = self.post(body, key=STAGING_KEY)
        self.assertEqual((status, doc["status"]), (202, "duplicate"), doc)
        # Slack: one message per cluster, the cluster as the first field.
        deadline = time.monotonic() + 10
        while True:
            atts = [x for r in self.emu.delivered(HOOK) for x in r.attachments()
                    if x.get("text") == "same event, two clusters"]
            if len(atts) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(sorted(x["fields"][0]["value"] for x in atts), ["prod-eu-1", "staging"])
        for x in atts:
            self.assertEqual(x["fields"][0]["title"], "cluster")
            self.assertEqual([f["title"] for f in x["fields"]].count("cluster"), 1,
                             "the alert's metadata cluster is hidden by the client's")

    def test_no_client_shows_the_alerts_cluster(self):
        self.accepted(event("global", "from the top-level token"), token=GLOBAL_TOKEN)
        a = self.attachment_of("from the top-level token")
        self.assertIn({"title": "cluster", "value": "from-alert", "short": False}, a["fields"])

    def test_queue_list_shows_the_cluster(self):
        self.accepted(event("parked-prod", "parked from prod", kind="GitRepository"),
                      token=PROD_TOKEN)
        self.accepted(event("parked-global", "parked without a client", kind="GitRepository"),
                      token=GLOBAL_TOKEN)
        deadline = time.monotonic() + frtest.patience(10)
        while True:
            out = frtest.run_cli(["queue", "-c", self.d.config_path, "list",
                                  "--dead", "--json"])
            self.assertEqual(out.returncode, 0, out.stderr)
            rows = {r["message"]: r for r in frtest.queue_rows(out.stdout.decode())}
            if len(rows) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(rows["parked from prod"]["cluster"], "prod-eu-1")
        self.assertIsNone(rows["parked without a client"]["cluster"])

    def test_wrong_credentials_401(self):
        body = event("wrong")
        cases = [
            ("no credential", {}),
            ("unknown token", {"token": "not-a-token"}),
            ("bad signature", {"key": b"some-other-key"}),
            ("client with token and key: no signature", {"token": BOTH_TOKEN}),
            ("client with token and key: another client's key",
             {"token": BOTH_TOKEN, "key": STAGING_KEY}),
            ("a token-only client's token with a signature of nobody",
             {"token": "prod-token", "key": b"x"}),
        ]
        for what, kw in cases:
            with self.subTest(what):
                status, hdrs, doc = self.post(body, **kw)
                self.assertEqual(status, 401, doc)
                # Tokens are one way in here: a refusal challenges Bearer
                # (SPEC §4) unless the token verified and the signature failed.
                want = None if kw.get("token") == BOTH_TOKEN else "Bearer"
                self.assertEqual(hdrs.get("www-authenticate"), want, (what, doc))
        # A token no client has, and no signature: said so, not "missing signature".
        status, _, doc = self.post(body, token="not-a-token")
        self.assertEqual(doc, {"error": "invalid bearer token"})
        status, _, doc = self.post(body)
        self.assertEqual(doc, {"error": "missing signature"})
        self.accepted(event("both-ok", "both credentials"), token=BOTH_TOKEN, key=BOTH_KEY)
        self.assertEqual(self.attachment_of("both credentials")["fields"][0]["value"], "both")

    def test_cluster_glob_in_source(self):
        body = event("podinfo", "helm upgrade failed", kind="HelmRelease")
        status, _, doc = self.post(body, key=STAGING_KEY)
        self.assertEqual((status, doc["status"]), (202, "ignored"), doc)
        status, _, doc = self.post(body, token=GLOBAL_TOKEN)
        self.assertEqual((status, doc["status"]), (202, "ignored"), doc)
        doc = self.accepted(body, token=PROD_TOKEN)
        self.assertEqual(doc["alerts"], ["prod-only"])

    def test_rotation_previous_key(self):
        self.accepted(event("rotation", "signed with the old key"), key=STAGING_OLD)
        self.assertEqual(self.attachment_of("signed with the old key")["fields"][0]["value"],
                         "staging")

    def test_metrics(self):
        self.accepted(event("metrics", "counted"), token=PROD_TOKEN)
        self.post(event("metrics-bad"), token=BOTH_TOKEN)    # 401: no signature
        status, _, text = self.d.request("GET", "/metrics")
        self.assertEqual(status, 200)
        text = text.decode()

        def value(cluster, st):
            m = re.search(r'^fluxrelay_client_events_total\{cluster="%s",status="%s"\} (\d+)$'
                          % (cluster, st), text, re.M)
            self.assertTrue(m, "no series for %s %s" % (cluster, st))
            return int(m.group(1))
        self.assertGreaterEqual(value("prod-eu-1", "accepted"), 1)
        self.assertGreaterEqual(value("both", "rejected"), 1)
        for c in ("prod-eu-1", "staging", "both"):
            for st in ("accepted", "ignored", "duplicate", "rejected"):
                value(c, st)      # exported from the start, 0 or more


class ClientConfig(unittest.TestCase):
    def test_many_hmac_only_clients_warn(self):
        work = tempfile.mkdtemp(prefix="frtest-clients-conf-")
        clients = ",\n".join('{ name = "c%d"; hmac_key = "k%d"; }' % (i, i) for i in range(17))
        path = os.path.join(work, "fluxrelay.conf")
        with open(path, "w") as f:
            f.write("auth: {\n  clients = (\n%s\n  );\n};\n" % clients)
        r = frtest.run_cli(["--check-config", "-c", path])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stderr.decode(), r"^%s:2: auth\.clients: warning: 17 clients have an "
                         r"HMAC key and no token" % re.escape(path))
        with open(path, "w") as f:
            f.write("auth: {\n  clients = (\n%s\n  );\n};\n" % ",\n".join(
                clients.split(",\n")[:16]))
        r = frtest.run_cli(["--check-config", "-c", path])
        self.assertEqual((r.returncode, r.stderr), (0, b""))


if __name__ == "__main__":
    frtest.main()

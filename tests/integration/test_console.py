"""The demo path: built-in defaults, console provider, and `fluxrelay match`."""
import json
import os
import signal
import time
import unittest

import frtest
from slack_emulator import Response, SlackEmulator

os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"


def expected_author(ev):
    io = ev["involvedObject"]
    a = "%s/%s" % (io["kind"].lower(), io["name"])
    if io.get("namespace"):
        a += "." + io["namespace"]
    return a


class BuiltinDefaultsTest(unittest.TestCase):
    def test_every_fixture_printed(self):
        d = frtest.Daemon()   # no -c: built-in defaults
        try:
            first = d.lines_err[0]
            self.assertRegex(first, r"built-in defaults")
            paths = frtest.fixture_paths()
            self.assertGreaterEqual(len(paths), 8)
            printed = []
            for p in paths:
                with open(p, "rb") as f:
                    body = f.read()
                status, _, doc = d.post(body)
                self.assertEqual(status, 202, (p, doc))
                # Commit-status updates are kept from Slack (commit_status_updates).
                if json.loads(body).get("metadata", {}).get(
                        "kustomize.toolkit.fluxcd.io/commit_status") == "update":
                    self.assertEqual(doc["status"], "ignored", p)
                    continue
                self.assertEqual(doc["status"], "accepted", p)
                self.assertEqual(doc["alerts"], ["all"])
                printed.append(p)
            paths = printed
            d.wait_out(r"^\{", count=len(paths), timeout=15)
            payloads = d.stdout_json()
            self.assertEqual(len(payloads), len(paths))
            for p, payload in zip(paths, payloads):
                with open(p) as f:
                    ev = json.load(f)
                att = payload["attachments"]
                self.assertEqual(len(att), 1)
                self.assertEqual(att[0]["author_name"], expected_author(ev))
                self.assertEqual(att[0]["color"], "danger" if ev["severity"] == "error" else "good")
                self.assertNotIn("text", payload)
            # Each accepted event is logged with its id.
            d.wait_err(r'msg="event accepted".*id=[0-9a-f]{32}', count=len(paths))
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()


MATCH_CONF = """
providers = ( { name = "ops"; type = "slack"; url = "https://hooks.slack.com/services/T0/B0/SECRET";
                channel = "#ops"; } );
alerts = ( { name = "errors"; providers = ["ops"]; severity = "error";
             sources = ( { kind = "Kustomization"; namespace = "apps"; } );
             summary = "production"; } );
"""


class MatchTest(unittest.TestCase):
    def setUp(self):
        self.dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), "frtest-match-%d" % os.getpid())
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "fluxrelay.conf")
        with open(self.conf, "w") as f:
            f.write(MATCH_CONF)

    def test_match_and_no_match(self):
        ev01 = os.path.join(frtest.FIXTURES, sorted(os.listdir(frtest.FIXTURES))[0])
        r = frtest.run_cli(["match", "-c", self.conf, ev01])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertIn("errors", out)
        payload = json.loads([l for l in out.splitlines() if l.strip().startswith("{")][0])
        self.assertEqual(payload["channel"], "#ops")
        fields = {f["title"]: f["value"] for f in payload["attachments"][0]["fields"]}
        self.assertEqual(fields["summary"], "production")
        self.assertNotIn("SECRET", out + r.stderr.decode())
        # An info event does not match: exit 1.
        r = frtest.run_cli(["match", "-c", self.conf, frtest.fixture_paths()[1]])
        self.assertEqual(r.returncode, 1)
        # stdin with '-'.
        with open(ev01, "rb") as f:
            r = frtest.run_cli(["match", "-c", self.conf, "-"], input=f.read())
        self.assertEqual(r.returncode, 0)

    def test_match_and_queue_need_no_credentials(self):
        # Secrets named by *_file / *_env are checked for form, not read: the
        # CLI works where the daemon's credentials are not.
        with open(self.conf, "w") as f:
            f.write(MATCH_CONF.replace(
                'url = "https://hooks.slack.com/services/T0/B0/SECRET";',
                'url_file = "${CREDENTIALS_DIRECTORY}/slack-url";')
                + 'auth = { hmac_key_env = "FR_NO_SUCH_VARIABLE"; };\n')
        env = {"CREDENTIALS_DIRECTORY": "", "FR_NO_SUCH_VARIABLE": ""}
        ev01 = frtest.fixture_paths()[0]
        r = frtest.run_cli(["match", "-c", self.conf, ev01], env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = frtest.run_cli(["queue", "-c", self.conf, "-s", os.path.join(self.dir, "state"),
                            "list", "--dead"], env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        # The daemon's own check still requires them.
        r = frtest.run_cli(["--check-config", "-c", self.conf], env=env)
        self.assertEqual(r.returncode, 78)
        self.assertIn("url_file", r.stderr.decode())
        self.assertIn("hmac_key_env", r.stderr.decode())

    def test_cli_needs_no_daemon_files(self):
        # The files only the daemon reads (TLS PEM files, a provider's ca_file
        # and headers_file) may name ${CREDENTIALS_DIRECTORY} as the example
        # does: the CLI neither serves nor sends, so it needs none of them.
        files = ('listen = { address = "127.0.0.1";\n'
                 '  tls_cert_file = "${CREDENTIALS_DIRECTORY}/tls-cert";\n'
                 '  tls_key_file = "${CREDENTIALS_DIRECTORY}/tls-key";\n'
                 '  tls_client_ca_file = "${CREDENTIALS_DIRECTORY}/client-ca"; };\n')
        conf = MATCH_CONF.replace(
            'channel = "#ops"; }',
            'channel = "#ops"; ca_file = "${CREDENTIALS_DIRECTORY}/ca.pem"; },\n'
            '  { name = "relay"; type = "generic"; address = "https://relay.example/";\n'
            '    headers_file = "${CREDENTIALS_DIRECTORY}/headers"; }')
        conf = conf.replace('providers = ["ops"]', 'providers = ["ops", "relay"]')
        self.assertIn("headers_file", conf)
        with open(self.conf, "w") as f:
            f.write(files + conf)
        os.environ.pop("CREDENTIALS_DIRECTORY", None)
        state = os.path.join(self.dir, "state-files")
        empty = os.path.join(self.dir, "empty-creds")
        os.makedirs(empty, exist_ok=True)
        ev01 = frtest.fixture_paths()[0]
        # Unset, and set to a directory without the files: the same.
        for env in (None, {"CREDENTIALS_DIRECTORY": empty}):
            r = frtest.run_cli(["match", "-c", self.conf, ev01], env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("target: relay (generic)", r.stdout.decode())
            r = frtest.run_cli(["queue", "-c", self.conf, "-s", state, "list"], env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            r = frtest.run_cli(["incidents", "-c", self.conf, "-s", state], env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
        # The daemon's check still expands and reads each, naming FILE:LINE.
        r = frtest.run_cli(["--check-config", "-c", self.conf])
        self.assertEqual(r.returncode, 78)
        err = r.stderr.decode()
        for line, key in ((2, "listen.tls_cert_file"), (3, "listen.tls_key_file"),
                          (4, "listen.tls_client_ca_file"), (7, 'provider "ops": ca_file'),
                          (9, 'provider "relay": headers_file')):
            self.assertIn("%s:%d: %s: environment variable CREDENTIALS_DIRECTORY is not set"
                          % (self.conf, line, key), err)
        r = frtest.run_cli(["--check-config", "-c", self.conf],
                           env={"CREDENTIALS_DIRECTORY": empty})
        self.assertEqual(r.returncode, 78)
        self.assertIn("%s:2: listen.tls_cert_file: cannot open %s/tls-cert"
                      % (self.conf, empty), r.stderr.decode())

    def test_match_invalid_event(self):
        r = frtest.run_cli(["match", "-c", self.conf, "-"], input=b"{")
        self.assertEqual(r.returncode, 1)
        self.assertIn("invalid event", r.stderr.decode())

    def test_match_bad_config(self):
        with open(self.conf, "w") as f:
            f.write("alerts = ( { name = 1; } );\n")
        r = frtest.run_cli(["match", "-c", self.conf, "-"], input=b"{}")
        self.assertEqual(r.returncode, 78)
        self.assertIn(self.conf + ":1", r.stderr.decode())


SUSPEND_CONF = """
dedup = { window = 0; };
queue = { backoff_initial = 0.1; backoff_max = 0.3; max_attempts = 100000; };
providers = (
  { name = "live"; type = "console"; },
  { name = "paused"; type = "slack"; url = "%(url)s"; rate = 0; suspend = %(suspend)s; }
);
alerts = (
  { name = "both"; providers = ["live", "paused"]; severity = "error";
    sources = ( { kind = "Kustomization"; } ); },
  { name = "only-paused"; providers = ["paused"]; severity = "info";
    sources = ( { kind = "GitRepository"; } ); },
  { name = "changes-paused"; providers = ["paused"]; notify = "changes";
    sources = ( { kind = "Kustomization"; } ); }
);
"""


class SuspendedProviderTest(unittest.TestCase):
    """A suspended provider gets nothing: its targets are dropped, an alert
    with no other provider does not fire (not even a notify = "changes" one),
    and rows queued for it before a reload suspended it still deliver."""

    def setUp(self):
        self.slack = SlackEmulator().start()
        self.addCleanup(self.slack.stop)
        self.url = self.slack.url("/hook")

    def conf(self, suspend):
        return SUSPEND_CONF % {"url": self.url, "suspend": "true" if suspend else "false"}

    def test_suspended_provider_gets_nothing(self):
        d = frtest.Daemon(self.conf(True))
        try:
            kustomization = frtest.fixture("01")
            gitrepository = frtest.fixture("02")
            # Only the active provider: the changes alert opened no incident.
            status, _, doc = d.post(kustomization)
            self.assertEqual(status, 202)
            self.assertEqual(doc["status"], "accepted", doc)
            self.assertEqual(doc["alerts"], ["both"])
            d.wait_err(r'msg="event accepted" event_id=%s target=live .*alerts=both kind=event$'
                       % doc["id"])
            d.wait_out(r"^\{")
            # Every provider of the alert suspended: as if no alert matched.
            status, _, doc = d.post(gitrepository)
            self.assertEqual((status, doc), (202, {"status": "ignored"}))
            r = frtest.run_cli(["queue", "-c", d.config_path, "-s", d.state_dir, "list"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("paused", r.stdout.decode())
            time.sleep(0.5)
            self.assertEqual(self.slack.requests, [])
            self.assertEqual(len(d.stdout_json()), 1)
            # `match` shows the same.
            r = frtest.run_cli(["match", "-c", d.config_path, "-"], input=kustomization)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = r.stdout.decode()
            self.assertIn("target: live", out)
            self.assertNotIn("paused", out)
            r = frtest.run_cli(["match", "-c", d.config_path, "-"], input=gitrepository)
            self.assertEqual(r.returncode, 1)
            self.assertIn("no alert matches", r.stdout.decode())
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()

    def test_rows_queued_before_a_suspend_still_deliver(self):
        self.slack.set_default(Response.error(500, "down"))
        d = frtest.Daemon(self.conf(False))
        try:
            first = json.loads(frtest.fixture("01"))
            status, _, doc = d.post(json.dumps(first))
            self.assertEqual((status, doc["status"]), (202, "accepted"))
            # Not suspended yet: the changes alert opens an incident there too.
            d.wait_err(r'msg="event accepted" event_id=%s target=live '
                       r'.*alerts=both kind=event$' % doc["id"])
            d.wait_err(r'msg="event accepted" event_id=%s target=paused '
                       r'.*alerts=both,changes-paused kind=opened$' % doc["id"])
            deadline = time.monotonic() + 10
            while not self.slack.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertTrue(self.slack.requests, "the first attempt never came")
            with open(d.config_path, "w") as f:
                f.write(self.conf(True))
            d.send_signal(signal.SIGHUP)
            d.wait_err(r'msg="configuration reloaded"')
            second = dict(first, message="after the suspend")
            status, _, doc = d.post(json.dumps(second))
            self.assertEqual((status, doc["status"]), (202, "accepted"))
            second_id = doc["id"]
            d.wait_err(r'msg="event accepted" event_id=%s target=live .*kind=event$' % second_id)
            self.slack.set_default(Response.ok())
            d.wait_err(r'msg="delivered".*target=paused', timeout=15)
            time.sleep(1.0)   # several backoff periods: nothing else comes
            # The second event was accepted for the live target only.
            self.assertEqual(len([l for l in d.lines_err if 'msg="event accepted" event_id=%s '
                                  % second_id in l]), 1, "\n".join(d.lines_err))
            texts = [json.dumps(r.json) for r in self.slack.requests]
            self.assertTrue(all(first["message"] in t for t in texts), texts)
            self.assertFalse(any("after the suspend" in t for t in texts), texts)
            self.assertEqual(self.slack.requests[-1].answer.status, 200)
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()


class CliTest(unittest.TestCase):
    def test_version_help_usage(self):
        r = frtest.run_cli(["--version"])
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.decode(), r"^fluxrelay \d+\.\d+")
        r = frtest.run_cli(["--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("--check-config", r.stdout.decode())
        r = frtest.run_cli(["--bogus"])
        self.assertEqual(r.returncode, 2)
        r = frtest.run_cli(["-l", "nonsense", "--check-config"])
        self.assertEqual(r.returncode, 2)

    def test_missing_config_is_78(self):
        r = frtest.run_cli(["-c", "/nonexistent/fluxrelay.conf", "--check-config"])
        self.assertEqual(r.returncode, 78)
        self.assertIn("/nonexistent/fluxrelay.conf", r.stderr.decode())
        r = frtest.run_cli(["--check-config"], env={"FLUXRELAY_CONFIG": "/nonexistent/x.conf"})
        self.assertEqual(r.returncode, 78)
        # The daemon too.
        r = frtest.run_cli(["-c", "/nonexistent/fluxrelay.conf", "-l", "127.0.0.1:0"])
        self.assertEqual(r.returncode, 78)


if __name__ == "__main__":
    frtest.main()

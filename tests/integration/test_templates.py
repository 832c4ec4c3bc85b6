#!/usr/bin/env python3
"""Templates, links, mentions and Block Kit (SPEC §13) through the daemon.

The README's example (tests/configs/valid-templates.conf, its webhook and API
URLs pointed at the emulator) delivers the fixtures of tests/fixtures/templates
to a Block Kit webhook, a Block Kit slack-bot, an attachments webhook and a
Block Kit console: each payload must be byte for byte the golden one that
tests/unit/test_slack_look.c renders and tests/slack-types type-checks.
`fluxrelay match` prints the same payloads. A Block Kit provider that
coalesces more events than 50 blocks hold splits them over several messages
and drops none.
"""
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

SRC = os.environ.get("FR_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
CONF = os.path.join(SRC, "tests", "configs", "valid-templates.conf")
FIXTURES = os.path.join(SRC, "tests", "fixtures", "templates")
GOLDEN = os.path.join(SRC, "tests", "golden")

HOOK = "/services/T0/B0/x"          # provider "slack" (blocks)
LEGACY = "/services/T0/B1/y"        # provider "legacy" (attachments)
API = "/api"                        # provider "bot" (blocks, Web API)
SPLIT = "/services/T0/B2/split"     # provider "split" (blocks, coalescing)

# fixture -> golden payload per provider (as test_slack_look.c pairs them)
CASES = [
    ("kustomization-health-failed.json", {
        "slack": "payload-templated-blocks.json",
        "bot": "payload-templated-blocks-bot.json",
        "legacy": "payload-templated-attachments.json",
    }),
    ("helmrelease-upgrade-failed.json", {"slack": "payload-templated-blocks-helm.json"}),
    ("kustomization-reconciled.json", {
        "slack": "payload-templated-blocks-info.json",
        "legacy": "payload-templated-attachments-info.json",
    }),
]

NSPLIT = 30


def golden(name):
    with open(os.path.join(GOLDEN, name), "rb") as f:
        return f.read().rstrip(b"\n")


def config(emu, state_dir):
    with open(CONF) as f:
        text = f.read()
    subs = [
        ('url = "https://hooks.slack.com/services/T0/B0/x";',
         'url = "%s"; rate = 0;' % emu.url(HOOK)),
        ('url = "https://hooks.slack.com/services/T0/B1/y";',
         'url = "%s"; rate = 0;' % emu.url(LEGACY)),
        ('token = "xoxb-test";', 'token = "xoxb-test"; api_url = "%s"; rate = 0;' % emu.url(API)),
        ('providers = [ "slack", "bot", "legacy" ];',
         'providers = [ "slack", "bot", "legacy", "kit" ];'),
    ]
    for old, new in subs:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    # A console twin of "slack" (same channel: same payload) and a coalescing
    # Block Kit webhook whose alert takes the Kustomizations named split-*.
    text = text.replace("providers = (", """providers = (
  { name = "kit"; type = "console"; channel = "#flux"; format = "blocks"; },
  { name = "split"; type = "slack"; url = "%s"; format = "blocks";
    rate = 1; burst = 1; batch_max = 100; },""" % emu.url(SPLIT), 1)
    text = text.replace("alerts = (", """alerts = (
  { name = "split"; providers = [ "split" ]; severity = "info";
    sources = ( { kind = "Kustomization"; name = "split-*"; } );
    metadata = { team = "platform"; tier = "backend"; };
    links = ( { text = "Run {{ .involvedObject.name }}"; url = "https://ci.example.com/{{ .involvedObject.name }}"; } );
  },""", 1)
    return """state_dir = "%s";
queue: { backoff_initial = 0.05; backoff_max = 0.2; };
dedup: { window = 0; };
log: { level = "info"; };
%s""" % (state_dir, text)


def match_payloads(fixture, conf=CONF):
    """What `fluxrelay match` prints for fixture: provider name -> payload."""
    r = frtest.run_cli(["match", "-c", conf, os.path.join(FIXTURES, fixture)])
    assert r.returncode == 0, r.stderr
    out, got = r.stdout.decode().splitlines(), {}
    for i, line in enumerate(out):
        m = re.match(r"  target: (\S+) ", line)
        if m:
            got[m.group(1)] = out[i + 1].strip().encode()
    return got


def split_event(i):
    return json.dumps({
        "involvedObject": {"kind": "Kustomization", "name": "split-%02d" % i,
                           "namespace": "apps"},
        "severity": "error" if i % 2 else "info",
        "reason": "ReconciliationFailed",
        "message": "split event %02d" % i,
        "metadata": {"revision": "main@sha1:%040x" % i, "env": "prod"},
        "reportingController": "kustomize-controller",
        "timestamp": "2024-05-01T10:00:%02dZ" % i,
    })


class Templates(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = SlackEmulator().start()
        cls.emu.set_default(Response.bot_ok(), path=API + "/chat.postMessage")
        cls.workdir = tempfile.mkdtemp(prefix="frtest-templates-")
        cls.state = os.path.join(cls.workdir, "state")
        cls.d = frtest.Daemon(config(cls.emu, cls.state), workdir=cls.workdir,
                              state_dir=cls.state)

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.d.stop()
            assert rc == 0, "daemon exit code %r" % rc
        finally:
            cls.d.cleanup()
            cls.emu.stop()

    def post(self, body):
        status, _, doc = self.d.post(body)
        self.assertEqual(status, 202, doc)
        self.assertEqual(doc["status"], "accepted", doc)
        return doc

    def test_readme_example_goldens(self):
        paths = {"slack": HOOK, "legacy": LEGACY, "bot": API + "/chat.postMessage"}
        want = {p: [] for p in paths}
        want_console = []
        for fixture, goldens in CASES:
            printed = match_payloads(fixture, self.d.config_path)
            self.assertEqual(sorted(printed), ["bot", "kit", "legacy", "slack"])
            for prov, g in goldens.items():
                self.assertEqual(printed[prov], golden(g), (fixture, prov))
            with open(os.path.join(FIXTURES, fixture), "rb") as f:
                doc = self.post(f.read())
            self.assertEqual(doc["alerts"], ["production"])
            for prov in paths:
                want[prov].append(printed[prov])
            want_console.append(printed["kit"])
            # one at a time: the order of the messages per provider is the order posted
            for prov, path in paths.items():
                self.emu.wait_requests(len(want[prov]), path=path, timeout=frtest.patience(10))
        for prov, path in paths.items():
            reqs = self.emu.wait_requests(len(want[prov]), path=path, timeout=frtest.patience(10))
            if prov == "bot":
                self.assertEqual(reqs[0].headers["authorization"], "Bearer xoxb-test")
            self.assertEqual([r.body for r in reqs], want[prov], prov)
        # the console prints the webhook's Block Kit payload, one line each
        self.assertEqual(want_console, want["slack"])
        self.d.wait_out(r'^\{.*"blocks"', count=len(want_console), timeout=frtest.patience(10))
        lines = [l.encode() for l in self.d.lines_out if '"blocks"' in l]
        self.assertEqual(lines, want_console)
        # the mention notifies only for the error events (top-level text)
        hook = [json.loads(b) for b in want["slack"]]
        self.assertTrue(hook[0]["text"].startswith("<!subteam^S0123ABCD> "))
        self.assertNotIn("subteam", hook[2]["text"])
        # the commit link from main@sha1:<sha>
        self.assertIn(b"<https://github.com/acme/fleet/commit/"
                      b"731f7eaddfb6af01cb2173e18f0f75b0ba780ef1|Commit 731f7ea>",
                      want["slack"][0])

    def test_blocks_coalesced_split_not_dropped(self):
        # The first message is answered slowly: the others pile up and go
        # coalesced, more than 50 blocks' worth, in several messages.
        self.emu.script(SPLIT, Response.slow(1.0))
        self.post(split_event(0))
        self.emu.wait_requests(1, path=SPLIT, timeout=frtest.patience(10))
        for i in range(1, NSPLIT + 1):
            self.post(split_event(i))
        seen = {}
        deadline = time.monotonic() + frtest.patience(30)
        while len(seen) < NSPLIT + 1 and time.monotonic() < deadline:
            seen = {}
            for r in self.emu.requests_for(SPLIT):
                for m in set(re.findall(r"split event (\d\d)", r.body.decode())):
                    seen[m] = seen.get(m, 0) + 1
            time.sleep(0.1)
        reqs = self.emu.requests_for(SPLIT)
        self.assertEqual(sorted(seen), ["%02d" % i for i in range(NSPLIT + 1)], reqs)
        self.assertEqual(set(seen.values()), {1}, "an event delivered twice")
        counts = []
        for r in reqs:
            doc = r.json
            self.assertLessEqual(len(doc["blocks"]), 50)
            self.assertIs(doc["unfurl_links"], False)
            self.assertNotIn("attachments", doc)
            n = len(set(re.findall(r"split event \d\d", r.body.decode())))
            counts.append(n)
            if n > 1:
                self.assertTrue(doc["text"].startswith("%d events" % n), doc["text"])
        # coalesced (more than one event in a message) and split (more than
        # one message after the first)
        self.assertGreater(max(counts), 1, counts)
        self.assertGreaterEqual(len(counts), 3, counts)
        self.assertEqual(sum(counts), NSPLIT + 1)


class MatchAndCheck(unittest.TestCase):
    def test_match_prints_golden(self):
        for fixture, goldens in CASES:
            printed = match_payloads(fixture)
            for prov, g in goldens.items():
                self.assertEqual(printed[prov], golden(g), (fixture, prov))

    def test_readme_example_is_the_tested_one(self):
        """The README's example alert is the one tested here, line for line."""
        with open(os.path.join(SRC, "README.md")) as f:
            readme = f.read()
        sec = readme[readme.index("## Templates, links and mentions"):]
        block = re.search(r"(?s)```\n(providers = .*?)```", sec).group(1)
        with open(CONF) as f:
            conf = f.read()
        lines = [l.split("#")[0].strip() for l in block.split("\n")]
        keys = ("title =", "url =", "{ text =", "mention =", "sources =", "{ kind =")
        tested = [l for l in lines if l.startswith(keys)]
        self.assertGreaterEqual(len(tested), 7, tested)
        for l in tested:
            self.assertIn(l, conf)

    def test_check_config_reports_column(self):
        path = os.path.join(SRC, "tests", "configs", "broken-templates.conf")
        r = frtest.run_cli(["--check-config", "-c", path])
        self.assertEqual(r.returncode, 78)
        err = r.stderr.decode()
        self.assertIn('%s:13: alert "names": title: column 14: unknown function "nosuch"' % path,
                      err)
        self.assertIn('%s:20: alert "multiline": text: line 2, column 11: ' % path, err)
        # a valid templated config checks OK
        r = frtest.run_cli(["--check-config", "-c", CONF])
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    frtest.main()

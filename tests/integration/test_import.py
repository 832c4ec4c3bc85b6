#!/usr/bin/env python3
"""fluxrelay import through the real binary (SPEC §2, §14).

Golden imports: every case in CASES runs `fluxrelay import` on manifests from
tests/fixtures/flux (from that directory, so names in messages are relative)
and compares standard output with tests/golden/import-<case>.conf, standard
error with tests/golden/import-<case>.stderr and the exit status. In the
goldens @SECRETS@ stands for the absolute --secrets-dir. Every config a case
writes goes through --check-config: it must be accepted (with its *_env
variables set), generic/generic-hmac providers included.
FR_UPDATE_GOLDEN=1 rewrites the goldens from the binary's output instead of
comparing (then review the diff).

Then the files --secrets-dir writes (modes, bytes, symlinks), the atomic -o,
usage errors, and the walkthrough end to end: imported with --secrets-dir, the
daemon on that config delivers an error Kustomization event to the Slack
emulator and ignores an info one (and one from another namespace, as Flux does).
"""
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import frtest  # noqa: E402
from slack_emulator import SlackEmulator  # noqa: E402

os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"

FLUX = os.path.join(frtest.SRCDIR, "tests", "fixtures", "flux")
GOLDEN = os.path.join(frtest.SRCDIR, "tests", "golden")
UPDATE = os.environ.get("FR_UPDATE_GOLDEN") == "1"
EX_DATAERR = 65

# case -> (manifests, extra arguments, exit status)
CASES = {
    "walkthrough": (["walkthrough-slack.yaml"], [], 0),
    "walkthrough-secrets-dir": (["walkthrough-slack.yaml"], ["--secrets-dir", "@SECRETS@"], 0),
    "v1beta3": (["v1beta3-bot-webhook-generic.yaml"], [], 0),
    "v1beta3-secrets-dir": (["v1beta3-bot-webhook-generic.yaml"],
                            ["--secrets-dir", "@SECRETS@"], 0),
    "two-files": (["walkthrough-slack.yaml", "v1beta3-bot-webhook-generic.yaml"], [], 0),
    "api-versions": (["api-versions.yaml"], [], 0),
    "list": (["list.yaml"], [], 0),
    "secrets": (["secrets.yaml"], [], 0),
    "secrets-secrets-dir": (["secrets.yaml"], ["--secrets-dir", "@SECRETS@"], 0),
    "missing-secret": (["missing-secret.yaml"], [], 0),
    "missing-secret-secrets-dir": (["missing-secret.yaml"], ["--secrets-dir", "@SECRETS@"], 0),
    "regex": (["regex.yaml"], [], 0),
    "clash": (["clash.yaml"], [], 0),
    "suspend": (["suspend.yaml"], [], 0),
    "timeouts": (["timeouts.yaml"], [], 0),
    "unsupported": (["unsupported.yaml"], [], 0),
    "strings": (["strings.yaml"], [], 0),
    "broken": (["broken.yaml"], [], EX_DATAERR),
    "broken-and-good": (["walkthrough-slack.yaml", "broken.yaml", "duplicate-key.yaml"], [],
                        EX_DATAERR),
    "nothing": (["nothing.yaml"], [], 1),
}

# Values that are only in Secrets: they must never reach the config text or stderr.
SECRET_VALUES = [
    "XXXXXXXXXXXXXXXXXXXXXXXX", "YYYYYYYYYYYYYYYYYYYYYYYY", "xoxb-1111111111",
    "6f1c2a3b4d5e6f708192a3b4c5d6e7f8", "BBBBBBBBBBBBBBBBBBBBBBBB", "LISTLISTLIST",
    "LASTAPPLIEDLEAK", "STRINGDATAWINS", "FROMDATA", "xoxb-3333", "xoxb-enterprise",
    "k3y-with-newline", "s3cr3t", "receiver.example.com/flux", "not-used-by-generic",
    "CORPCORPCORP", "user:pass", "hunter2",
]

# A value for each kind of *_env variable, so --check-config can read them.
ENV_VALUES = {"URL": "https://hooks.slack.com/services/T0/B0/env", "TOKEN": "xoxb-env",
              "ADDRESS": "https://receiver.example.com/env", "KEY": "hmac-env"}


def run_import(args, cwd=FLUX, input=None):
    env = dict(os.environ)
    env.pop("FLUXRELAY_CONFIG", None)
    return subprocess.run([frtest.BIN, "import"] + list(args), cwd=cwd, input=input,
                          capture_output=True, env=env, timeout=60)


def env_vars(config):
    """The variables the header asks for, each with a plausible value."""
    out = {}
    for var in re.findall(r"^#   (FLUXRELAY_[A-Z0-9_]+): ", config, re.M):
        out[var] = ENV_VALUES[re.sub(r"_[0-9]+$", "", var).rsplit("_", 1)[-1]]
    return out


class Goldens(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="frtest-import-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check_config(self, case, text, env):
        path = os.path.join(self.tmp, "%s.conf" % case)
        with open(path, "w") as f:
            f.write(text)
        r = frtest.run_cli(["--check-config", "-c", path], env=env)
        self.assertEqual(r.returncode, 0, "%s: --check-config refused the import:\n%s" % (
            case, r.stderr.decode()))
        self.assertEqual(r.stdout.decode().strip(), "configuration OK", case)

    def run_case(self, case):
        files, extra, want_rc = CASES[case]
        secrets = os.path.join(self.tmp, "secrets")
        args = [secrets if a == "@SECRETS@" else a for a in extra] + files
        r = run_import(args)
        out = r.stdout.decode().replace(secrets, "@SECRETS@")
        err = r.stderr.decode().replace(secrets, "@SECRETS@")
        gconf = os.path.join(GOLDEN, "import-%s.conf" % case)
        gerr = os.path.join(GOLDEN, "import-%s.stderr" % case)
        if UPDATE:
            if out:
                with open(gconf, "w") as f:
                    f.write(out)
            elif os.path.exists(gconf):
                os.unlink(gconf)
            with open(gerr, "w") as f:
                f.write(err)
        self.assertEqual(r.returncode, want_rc, "%s: stderr:\n%s" % (case, err))
        with open(gerr) as f:
            self.assertEqual(err, f.read(), case)
        if want_rc != 0:
            self.assertEqual(out, "", case)
            self.assertFalse(os.path.exists(gconf), case)
            self.assertFalse(os.path.exists(secrets), "%s: wrote secrets on failure" % case)
        else:
            with open(gconf) as f:
                self.assertEqual(out, f.read(), case)
            self.check_config(case, r.stdout.decode(), env_vars(out))
        for v in SECRET_VALUES:
            self.assertNotIn(v, out, "%s: a Secret's value is in the config" % case)
            self.assertNotIn(v, err, "%s: a Secret's value is on stderr" % case)


def _golden_test(case):
    def test(self):
        self.run_case(case)
    test.__name__ = "test_golden_" + case.replace("-", "_")
    return test


for _case in CASES:
    setattr(Goldens, "test_golden_" + _case.replace("-", "_"), _golden_test(_case))


class Files(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="frtest-import-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_secrets_dir_modes_and_bytes(self):
        d = os.path.join(self.tmp, "new", "secrets")
        os.mkdir(os.path.dirname(d))
        out = os.path.join(self.tmp, "fluxrelay.conf")
        r = run_import(["--secrets-dir", d, "-o", out, "secrets.yaml",
                        "v1beta3-bot-webhook-generic.yaml"])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(r.stdout, b"")
        self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700)
        want = {
            "webhook.url": b"https://hooks.slack.com/services/T00000000/B00000004/"
                           b"STRINGDATAWINSSTRINGDAT",
            "enterprise-bot.token": b"xoxb-enterprise-token",
            "forward.address": b"https://receiver.example.com/flux",
            "forward.hmac_key": b"k3y-with-newline\n",   # byte for byte, newline kept
            "forward.headers": b"Authorization: Bearer s3cr3t\nX-Team: platform\n",
            "plain.headers": b"X-Source: flux\nX-Env: prod\n",
            "slack-bot.token": b"xoxb-111111111111-2222222222222-abcdefghijklmnopqrstuvwx",
            "team-webhook.url": b"https://hooks.slack.com/services/T11111111/B22222222/"
                                b"YYYYYYYYYYYYYYYYYYYYYYYY",
            "audit.hmac_key": b"6f1c2a3b4d5e6f708192a3b4c5d6e7f8",
            "audit.headers": b"X-Team: platform\n",
        }
        self.assertEqual(sorted(os.listdir(d)), sorted(want))
        for name, data in want.items():
            p = os.path.join(d, name)
            st = os.lstat(p)
            self.assertTrue(stat.S_ISREG(st.st_mode), name)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, name)
            with open(p, "rb") as f:
                self.assertEqual(f.read(), data, name)
        with open(out) as f:
            text = f.read()
        for name in want:
            self.assertIn('_file = "%s";' % os.path.join(os.path.realpath(d), name), text)
        mask = os.umask(0)
        os.umask(mask)
        # The config holds no secret: a new file's mode, as the umask allows.
        self.assertEqual(stat.S_IMODE(os.stat(out).st_mode), 0o666 & ~mask)

    def test_secrets_dir_rerun_replaces_files_not_symlink_targets(self):
        d = os.path.join(self.tmp, "secrets")
        victim = os.path.join(self.tmp, "victim")
        with open(victim, "w") as f:
            f.write("keep me")
        os.mkdir(d, 0o755)
        os.symlink(victim, os.path.join(d, "slack.url"))
        with open(os.path.join(d, "unrelated"), "w") as f:
            f.write("left alone")
        for _ in range(2):
            r = run_import(["--secrets-dir", d, "walkthrough-slack.yaml"])
            self.assertEqual(r.returncode, 0, r.stderr.decode())
        with open(victim) as f:
            self.assertEqual(f.read(), "keep me")
        st = os.lstat(os.path.join(d, "slack.url"))
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(sorted(os.listdir(d)), ["slack.url", "unrelated"],
                         "temporary files left behind")

    def test_output_replaced_atomically_and_kept_on_failure(self):
        out = os.path.join(self.tmp, "fluxrelay.conf")
        with open(out, "w") as f:
            f.write("old\n")
        r = run_import(["-o", out, "--secrets-dir", os.path.join(self.tmp, "s"),
                        "broken.yaml"])
        self.assertEqual(r.returncode, EX_DATAERR)
        r = run_import(["-o", out, "--secrets-dir", os.path.join(self.tmp, "s"),
                        "nothing.yaml"])
        self.assertEqual(r.returncode, 1)
        with open(out) as f:
            self.assertEqual(f.read(), "old\n")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "s")))
        r = run_import(["--output=" + out, "walkthrough-slack.yaml"])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        with open(out) as f:
            self.assertTrue(f.read().startswith("# fluxrelay configuration"))
        self.assertEqual(os.listdir(self.tmp), ["fluxrelay.conf"])

    def test_unwritable_output_writes_no_secret(self):
        secrets = os.path.join(self.tmp, "secrets")
        r = run_import(["--secrets-dir", secrets, "-o", os.path.join(self.tmp, "no", "x.conf"),
                        "walkthrough-slack.yaml"])
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"-o ", r.stderr)
        self.assertFalse(os.path.exists(secrets))

    def test_stdin(self):
        with open(os.path.join(FLUX, "walkthrough-slack.yaml"), "rb") as f:
            data = f.read()
        r = run_import(["-"], input=data)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn(b"#   <stdin>\n", r.stdout)
        self.assertIn(b"# Provider flux-system/slack: <stdin>:5 (document 1)", r.stdout)
        r = run_import(["-"], input=b"a: [\n")
        self.assertEqual(r.returncode, EX_DATAERR)
        self.assertTrue(r.stderr.startswith(b"<stdin>:2: "), r.stderr)

    def test_usage(self):
        for args in ([], ["--bogus", "x.yaml"], ["-o"], ["--secrets-dir"], ["-", "-"]):
            r = run_import(args, input=b"")
            self.assertEqual(r.returncode, 2, (args, r.stderr))
        r = run_import(["no-such-file.yaml"])
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"no-such-file.yaml", r.stderr)
        r = run_import(["--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"usage: fluxrelay import", r.stdout)
        r = frtest.run_cli(["--help"])
        self.assertIn(b"fluxrelay import [-o FILE] [--secrets-dir DIR]", r.stdout)


def walkthrough_copy(path, url):
    """The walkthrough's manifests with the webhook URL pointed at the emulator."""
    with open(os.path.join(FLUX, "walkthrough-slack.yaml")) as f:
        text = f.read()
    text, n = re.subn(r'url: "https://hooks\.slack\.com/[^"]*"', 'url: "%s"' % url, text)
    assert n == 1, "the walkthrough's Secret changed shape"
    with open(path, "w") as f:
        f.write(text)


def event(kind, namespace, severity, message, reason):
    return json.dumps({
        "involvedObject": {"kind": kind, "namespace": namespace, "name": "apps",
                           "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
        "severity": severity, "timestamp": "2024-05-01T10:00:00Z", "message": message,
        "reason": reason, "reportingController": "kustomize-controller",
    })


class Walkthrough(unittest.TestCase):
    def test_imported_walkthrough_delivers_errors_only(self):
        tmp = tempfile.mkdtemp(prefix="frtest-import-")
        emu = SlackEmulator().start()
        d = None
        try:
            hook = "/services/T00000000/B00000000/walkthroughsecret"
            manifest = os.path.join(tmp, "walkthrough.yaml")
            walkthrough_copy(manifest, emu.url(hook))
            secrets = os.path.join(tmp, "secrets")
            conf = os.path.join(tmp, "fluxrelay.conf")
            r = run_import(["--secrets-dir", secrets, "-o", conf, manifest])
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertIn(b'the Secret\'s key "url" is taken as the address', r.stderr)
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(secrets, "slack.url")).st_mode),
                             0o600)
            with open(os.path.join(secrets, "slack.url")) as f:
                self.assertEqual(f.read(), emu.url(hook))
            with open(conf) as f:
                text = f.read()
            self.assertNotIn("walkthroughsecret", text)
            r = frtest.run_cli(["--check-config", "-c", conf])
            self.assertEqual(r.returncode, 0, r.stderr.decode())

            d = frtest.Daemon(text, workdir=tmp)
            status, _, doc = d.post(event("Kustomization", "flux-system", "error",
                                          "Health check timed out for [Deployment 'apps/web']",
                                          "HealthCheckFailed"))
            self.assertEqual((status, doc["status"]), (202, "accepted"), doc)
            self.assertEqual(doc["alerts"], ["flux-alerts"])
            # Info events and events of other namespaces: Flux's Alert ignores them.
            status, _, doc = d.post(event("Kustomization", "flux-system", "info",
                                          "Reconciliation finished", "ReconciliationSucceeded"))
            self.assertEqual((status, doc["status"]), (202, "ignored"), doc)
            status, _, doc = d.post(event("Kustomization", "apps", "error", "failed",
                                          "ReconciliationFailed"))
            self.assertEqual((status, doc["status"]), (202, "ignored"), doc)
            status, _, doc = d.post(event("GitRepository", "flux-system", "error", "failed",
                                          "GitOperationFailed"))
            self.assertEqual((status, doc["status"]), (202, "ignored"), doc)

            got = emu.wait_requests(1, path=hook, delivered=True)
            att = got[0].attachments()
            self.assertEqual(len(att), 1)
            self.assertEqual(att[0]["color"], "danger")
            self.assertEqual(att[0]["author_name"], "kustomization/apps.flux-system")
            self.assertIn("Health check timed out", att[0]["text"])
            d.wait_err(r"delivered", timeout=10)
            self.assertEqual(len(emu.requests_for()), 1, "more than the error was sent")
            for line in d.lines_err:
                self.assertNotIn("walkthroughsecret", line)
            self.assertEqual(d.stop(), 0)
        finally:
            if d is not None:
                d.cleanup()
            emu.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    frtest.main()

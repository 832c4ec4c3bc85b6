"""fluxrelay --check-config and config errors through the real binary.

Valid files print "configuration OK" and exit 0; every broken file in
tests/configs prints exactly its golden lines (tests/golden/conf-<name>.txt,
@FILE@ = the config path, @DIR@ = its directory) on stderr and exits 78; a
missing file named with -c or $FLUXRELAY_CONFIG exits 78.
"""
import glob
import os
import shutil
import subprocess
import tempfile
import unittest

import frtest

CONFIGS = os.path.join(frtest.SRCDIR, "tests", "configs")
GOLDEN = os.path.join(frtest.SRCDIR, "tests", "golden")
EXAMPLE = os.path.join(frtest.SRCDIR, "etc", "fluxrelay.conf")
EX_CONFIG = 78

# The environment the config fixtures expect (the unit test sets the same).
TEST_ENV = {
    "FR_TEST_SECRETS": os.path.join(CONFIGS, "secrets"),
    "FR_TEST_TLS_DIR": os.path.join(CONFIGS, "tls"),
    "FR_TEST_TOKEN": "xoxb-env-token",
    "FR_TEST_URL": "https://hooks.example.com/env",
    "FR_TEST_EMPTY": "",
}
# Variables that must be unset for the golden lines to hold.
for var in ("FR_TEST_UNSET", "CREDENTIALS_DIRECTORY", "FLUXRELAY_CONFIG"):
    os.environ.pop(var, None)


def run(args, env=None):
    e = dict(TEST_ENV)
    e.update(env or {})
    return frtest.run_cli(args, env=e)


def text(b):
    return b.decode("utf-8", "replace")


class CheckConfig(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="frtest-config-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def assert_ok(self, r, what):
        self.assertEqual(r.returncode, 0, "%s: rc %d\nstderr:\n%s" % (
            what, r.returncode, text(r.stderr)))
        self.assertEqual(text(r.stdout).strip(), "configuration OK", what)

    def test_example_config_with_credentials(self):
        creds = os.path.join(self.tmp, "creds")
        os.mkdir(creds)
        with open(os.path.join(creds, "slack-url"), "w") as f:
            f.write("https://hooks.slack.com/services/T000/B000/XXXX\n")
        with open(os.path.join(creds, "hmac-key"), "w") as f:
            f.write("example-hmac-key\n")
        r = run(["--check-config", "-c", EXAMPLE], env={"CREDENTIALS_DIRECTORY": creds})
        self.assert_ok(r, EXAMPLE)

    def test_example_config_without_credentials(self):
        # The example reads its secrets from ${CREDENTIALS_DIRECTORY}: unset, both fail.
        r = run(["--check-config", "-c", EXAMPLE])
        self.assertEqual(r.returncode, EX_CONFIG, text(r.stderr))
        lines = text(r.stderr).splitlines()
        want = [l for l in lines if "environment variable CREDENTIALS_DIRECTORY is not set" in l]
        self.assertEqual(len(want), 2, text(r.stderr))
        self.assertTrue(any("auth.hmac_key_file:" in l for l in want), want)
        self.assertTrue(any('provider "slack": url_file:' in l for l in want), want)
        for l in want:
            self.assertTrue(l.startswith(EXAMPLE + ":"), l)
        self.assertNotIn("configuration OK", text(r.stdout))

    def test_example_config_missing_credential_file(self):
        creds = os.path.join(self.tmp, "creds")
        os.mkdir(creds)
        with open(os.path.join(creds, "hmac-key"), "w") as f:
            f.write("example-hmac-key\n")
        r = run(["--check-config", "-c", EXAMPLE], env={"CREDENTIALS_DIRECTORY": creds})
        self.assertEqual(r.returncode, EX_CONFIG, text(r.stderr))
        self.assertIn("url_file: cannot open %s/slack-url: No such file or directory"
                      % creds, text(r.stderr))
        self.assertNotIn("example-hmac-key", text(r.stderr))

    def test_valid_fixtures(self):
        for name in ("valid-full.conf", "valid-minimal.conf"):
            path = os.path.join(CONFIGS, name)
            with self.subTest(name=name):
                self.assert_ok(run(["--check-config", "-c", path]), path)

    def test_valid_relative_path(self):
        # A relative -c path: relative secrets are taken against the file's directory.
        with open(os.path.join(self.tmp, "secret"), "w") as f:
            f.write("https://hooks.slack.com/services/REL\n")
        with open(os.path.join(self.tmp, "rel.conf"), "w") as f:
            f.write('providers = ( { name = "s"; type = "slack"; url_file = "secret"; } );\n')
        r = frtest.subprocess.run([frtest.BIN, "--check-config", "-c", "rel.conf"],
                                  capture_output=True, cwd=self.tmp, timeout=30,
                                  env=dict(os.environ, **TEST_ENV))
        self.assert_ok(r, "rel.conf")

    def test_broken_fixtures_golden(self):
        broken = sorted(glob.glob(os.path.join(CONFIGS, "broken-*.conf")))
        self.assertGreaterEqual(len(broken), 10)
        for path in broken:
            name = os.path.basename(path)[:-len(".conf")]
            with self.subTest(name=name):
                with open(os.path.join(GOLDEN, "conf-%s.txt" % name)) as f:
                    want = [l.replace("@FILE@", path).replace("@DIR@", CONFIGS)
                            for l in f.read().splitlines()]
                self.assertTrue(want)
                r = run(["--check-config", "-c", path])
                self.assertEqual(r.returncode, EX_CONFIG, "%s: stderr:\n%s" % (
                    name, text(r.stderr)))
                self.assertNotIn("configuration OK", text(r.stdout))
                self.assertEqual(text(r.stderr).splitlines(), want)

    def test_broken_many_every_problem(self):
        # Every problem of the many-problems file, each with its own line number.
        path = os.path.join(CONFIGS, "broken-many.conf")
        r = run(["--check-config", "-c", path])
        self.assertEqual(r.returncode, EX_CONFIG)
        lines = text(r.stderr).splitlines()
        self.assertGreaterEqual(len(lines), 20)
        nums = [int(l[len(path) + 1:].split(":", 1)[0]) for l in lines]
        self.assertEqual(nums, sorted(nums))
        self.assertGreaterEqual(len(set(nums)), 20)

    def test_secret_never_printed(self):
        r = run(["--check-config", "-c", os.path.join(CONFIGS, "broken-secrets.conf")])
        self.assertEqual(r.returncode, EX_CONFIG)
        err = text(r.stderr)
        for secret in ("inline-hmac-secret", "INLINE-SECRET", "inline-url-secret",
                       "not-http-secret", "XXXXSECRETXXXX", "xoxb-env-token"):
            self.assertNotIn(secret, err)

    def test_missing_file_option(self):
        path = os.path.join(self.tmp, "missing.conf")
        r = run(["--check-config", "-c", path])
        self.assertEqual(r.returncode, EX_CONFIG)
        self.assertEqual(text(r.stderr).splitlines(),
                         ["%s: cannot open: No such file or directory" % path])
        self.assertNotIn("configuration OK", text(r.stdout))

    def test_missing_file_env(self):
        path = os.path.join(self.tmp, "missing")
        r = run(["--check-config"], env={"FLUXRELAY_CONFIG": path})
        self.assertEqual(r.returncode, EX_CONFIG)
        self.assertIn("%s: cannot open: No such file or directory" % path, text(r.stderr))

    def test_config_from_a_pipe(self):
        """-c /dev/stdin on a pipe: the text is read once, so what it says counts."""
        e = dict(TEST_ENV)
        e.pop("FLUXRELAY_CONFIG", None)
        for body, rc, want in ((b"bogus = 1;\n", EX_CONFIG, "/dev/stdin:1: bogus: unknown key"),
                               (b"a = 1;\nb\0 = 2;\n", EX_CONFIG,
                                "/dev/stdin:2: syntax error: NUL byte"),
                               (open(os.path.join(CONFIGS, "valid-minimal.conf"), "rb").read(),
                                0, "configuration OK")):
            p = subprocess.Popen([frtest.BIN, "--check-config", "-c", "/dev/stdin"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=e)
            out, err = p.communicate(body, timeout=30)
            self.assertEqual(p.returncode, rc, text(err))
            self.assertIn(want, text(out + err))

    def test_env_names_the_file(self):
        good = os.path.join(CONFIGS, "valid-minimal.conf")
        self.assert_ok(run(["--check-config"], env={"FLUXRELAY_CONFIG": good}), good)
        bad = os.path.join(CONFIGS, "broken-bounds.conf")
        r = run(["--check-config"], env={"FLUXRELAY_CONFIG": bad})
        self.assertEqual(r.returncode, EX_CONFIG)
        self.assertIn("%s:2: listen.port: must be between 0 and 65535" % bad, text(r.stderr))

    def test_daemon_refuses_invalid_config(self):
        # The daemon exits 78 as well, before listening.
        path = os.path.join(CONFIGS, "broken-bounds.conf")
        r = run(["-c", path, "-s", os.path.join(self.tmp, "state"), "-l", "127.0.0.1:0"])
        self.assertEqual(r.returncode, EX_CONFIG, text(r.stderr))
        self.assertIn("listen.port: must be between 0 and 65535", text(r.stderr))
        self.assertNotIn("listening", text(r.stderr))
        r = run(["-s", os.path.join(self.tmp, "state"), "-l", "127.0.0.1:0"],
                env={"FLUXRELAY_CONFIG": os.path.join(self.tmp, "nope.conf")})
        self.assertEqual(r.returncode, EX_CONFIG, text(r.stderr))


if __name__ == "__main__":
    frtest.main()

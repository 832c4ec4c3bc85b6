"""Shared helpers for fluxrelay's integration tests (stdlib only).

Every test starts the real daemon on 127.0.0.1 with port 0 (the kernel picks
a free port) and reads the bound port from its "listening" log line. All waits
are bounded. Exit codes follow automake: 0 pass, 1 fail, 77 skip, 99 error.
"""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

BIN = os.environ.get("FLUXRELAY_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "src", "fluxrelay")
SRCDIR = os.environ.get("FR_SRCDIR") or os.path.join(os.path.dirname(__file__), "..")
FIXTURES = os.path.join(SRCDIR, "tests", "fixtures", "events")


def fixture_paths():
    return sorted(os.path.join(FIXTURES, f) for f in os.listdir(FIXTURES) if f.endswith(".json"))


def fixture(name_prefix):
    for p in fixture_paths():
        if os.path.basename(p).startswith(name_prefix):
            with open(p, "rb") as f:
                return f.read()
    raise KeyError(name_prefix)


def patience(seconds):
    """A wait bound for the machine the test runs on: the daemon under valgrind
    runs 10-50x slower, and a loaded CI machine more so; a bound that only says
    "soon" is stretched there (a bound that is part of the contract is not)."""
    return seconds * (4 if os.environ.get("FR_VALGRIND") == "1" else 1)


class Daemon:
    """The fluxrelay binary running in the foreground on an ephemeral port.

    stdout and stderr are collected by reader threads; `lines_out` and
    `lines_err` hold what was printed so far.
    """

    def __init__(self, config_text=None, state_dir=None, args=(), env=None,
                 workdir=None, start=True, valgrind=False):
        self.workdir = workdir or tempfile.mkdtemp(prefix="frtest-")
        self.state_dir = state_dir or os.path.join(self.workdir, "state")
        self.config_path = None
        if config_text is not None:
            self.config_path = os.path.join(self.workdir, "fluxrelay.conf")
            with open(self.config_path, "w") as f:
                f.write(config_text)
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.pop("FLUXRELAY_CONFIG", None)
        if env:
            self.env.update(env)
        self.valgrind = valgrind or os.environ.get("FR_VALGRIND") == "1"
        self.proc = None
        self.port = None
        self.lines_out = []
        self.lines_err = []
        self._cv = threading.Condition()
        if start:
            self.start()

    def command(self):
        cmd = [BIN, "-s", self.state_dir, "-l", "127.0.0.1:0"]
        if self.config_path:
            cmd += ["-c", self.config_path]
        cmd += self.args
        if self.valgrind:
            cmd = ["valgrind", "-q", "--error-exitcode=42", "--leak-check=full",
                   "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite"] + cmd
        return cmd

    def _reader(self, stream, sink):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cv:
                sink.append(line)
                self._cv.notify_all()
        stream.close()

    def start(self, timeout=20):
        self.port = None
        self.lines_out = []
        self.lines_err = []
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env,
                                     cwd=self.workdir)
        threading.Thread(target=self._reader, args=(self.proc.stdout, self.lines_out),
                         daemon=True).start()
        threading.Thread(target=self._reader, args=(self.proc.stderr, self.lines_err),
                         daemon=True).start()
        line = self.wait_err(r'msg"?[=:]"?listening"?.*port"?[=:]"?(\d+)',
                             patience(timeout) if self.valgrind else timeout)
        self.port = int(re.search(r'port"?[=:]"?(\d+)', line).group(1))
        return self

    def wait_lines(self, sink, pattern, timeout=10, count=1):
        """Wait until `count` lines of sink match pattern; return the last match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                hits = [l for l in sink if rx.search(l)]
                if len(hits) >= count:
                    return hits[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._cv.wait(0.2)):
                    raise AssertionError(
                        "timed out waiting for %r (%d/%d)\nstderr:\n%s\nstdout:\n%s" % (
                            pattern, len(hits), count, "\n".join(self.lines_err[-30:]),
                            "\n".join(self.lines_out[-10:])))
                self._cv.wait(min(left, 0.2))

    def wait_err(self, pattern, timeout=10, count=1):
        return self.wait_lines(self.lines_err, pattern, timeout, count)

    def wait_out(self, pattern, timeout=10, count=1):
        return self.wait_lines(self.lines_out, pattern, timeout, count)

    def stdout_json(self):
        out = []
        with self._cv:
            lines = list(self.lines_out)
        for l in lines:
            l = l.strip()
            if l.startswith("{"):
                out.append(json.loads(l))
        return out

    def request(self, method, path, body=None, headers=None, timeout=10):
        """Return (status, headers dict lower-cased, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            if body is not None and "Content-Type" not in hdrs:
                hdrs["Content-Type"] = "application/json"
            if isinstance(body, str):
                body = body.encode()
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def post(self, body, headers=None, path="/"):
        status, hdrs, data = self.request("POST", path, body, headers)
        try:
            doc = json.loads(data) if data else None
        except ValueError:
            doc = None
        return status, hdrs, doc

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stop the daemon; returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(5)
            raise AssertionError("daemon did not exit within %ss" % timeout)
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait(10)

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)


def run_cli(args, env=None, input=None, timeout=30):
    """Run the fluxrelay binary once; returns CompletedProcess with text output."""
    e = dict(os.environ)
    e.pop("FLUXRELAY_CONFIG", None)
    if env:
        e.update(env)
    return subprocess.run([BIN] + list(args), input=input, capture_output=True,
                          env=e, timeout=timeout)


def queue_rows(text):
    """The rows printed by `fluxrelay queue list --json`: a JSON array."""
    rows = json.loads(text)
    if not isinstance(rows, list):
        raise AssertionError("queue list --json printed %r, not an array" % text[:200])
    return rows


def main():
    """unittest entry point mapped to automake exit codes."""
    if not os.path.exists(BIN):
        print("fluxrelay binary not found at %s" % BIN, file=sys.stderr)
        sys.exit(99)
    prog = unittest.main(exit=False, verbosity=2)
    r = prog.result
    if r.errors or r.failures:
        sys.exit(1)
    if r.testsRun == 0 or len(r.skipped) == r.testsRun:
        sys.exit(77)
    sys.exit(0)

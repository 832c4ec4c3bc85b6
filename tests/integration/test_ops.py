"""Operations: SIGHUP reload, systemd notify protocol, socket activation, log format."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import frtest

BASE = """
providers = ( { name = "console"; type = "console"; } );
dedup = { window = 0; };
"""
ERRORS_ONLY = BASE + """
alerts = ( { name = "errors"; providers = ["console"]; severity = "error";
             sources = ( { kind = "*"; } ); } );
"""
EVERYTHING = BASE + """
alerts = ( { name = "everything"; providers = ["console"]; severity = "info";
             sources = ( { kind = "*"; } ); } );
"""
INFO_EVENT = frtest.fixture("02")


class ReloadTest(unittest.TestCase):
    def test_reload_valid_then_invalid(self):
        d = frtest.Daemon(ERRORS_ONLY)
        try:
            self.assertEqual(d.post(INFO_EVENT)[2], {"status": "ignored"})
            with open(d.config_path, "w") as f:
                f.write(EVERYTHING)
            d.send_signal(signal.SIGHUP)
            d.wait_err(r'msg="configuration reloaded"')
            status, _, doc = d.post(INFO_EVENT)
            self.assertEqual(doc["status"], "accepted")
            self.assertEqual(doc["alerts"], ["everything"])
            # A broken file: every problem logged with file:line, rules kept.
            with open(d.config_path, "w") as f:
                f.write(EVERYTHING + "\nbogus_key = 1;\nlisten = { port = \"x\"; };\n")
            d.send_signal(signal.SIGHUP)
            d.wait_err(r'reload failed.*%s:\d+' % d.config_path.replace(".", r"\."), count=2)
            status, _, doc = d.post(INFO_EVENT)
            self.assertEqual(doc.get("alerts"), ["everything"])
            # Still healthy and ready.
            self.assertEqual(d.request("GET", "/readyz")[0], 200)
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()


class ReloadListenTest(unittest.TestCase):
    def test_reload_applies_max_body_and_logs_the_rest(self):
        """listen.max_body applies from the next request; the other listen
        settings are logged as needing a restart."""
        d = frtest.Daemon(EVERYTHING)
        try:
            self.assertEqual(d.post(INFO_EVENT)[0], 202)
            with open(d.config_path, "w") as f:
                f.write(EVERYTHING + "listen = { max_body = 100; };\n")
            d.send_signal(signal.SIGHUP)
            d.wait_err(r'msg="configuration reloaded"')
            self.assertFalse([l for l in d.lines_err if "listen settings" in l], d.lines_err)
            status, _, doc = d.post(INFO_EVENT)
            self.assertEqual((status, doc), (413, {"error": "body larger than 100 bytes"}))
            with open(d.config_path, "w") as f:
                f.write(EVERYTHING + "listen = { max_body = 100; timeout = 3.0; };\n")
            d.send_signal(signal.SIGHUP)
            d.wait_err(r'msg="reload: listen settings \(max_connections, timeout, TLS, '
                       r'metrics listener\) change at the next restart"')
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()


class NotifyListener:
    """A NOTIFY_SOCKET datagram listener collecting sd_notify messages."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="frnotify-")
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            # surrogateescape: a message that is not UTF-8 shows, for a test to see.
            self.messages.append(data.decode("utf-8", "surrogateescape"))

    def wait(self, needle, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in m for m in self.messages):
                return
            time.sleep(0.05)
        raise AssertionError("no %r in %r" % (needle, self.messages))

    def close(self):
        self.stop = True
        self.t.join(2)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class NotifyTest(unittest.TestCase):
    def test_ready_reloading_watchdog_stopping(self):
        n = NotifyListener()
        d = frtest.Daemon(EVERYTHING, env={"NOTIFY_SOCKET": n.path, "WATCHDOG_USEC": "1000000"},
                          start=False)
        try:
            d.start()
            n.wait("READY=1")
            n.wait("WATCHDOG=1", timeout=5)
            d.send_signal(signal.SIGHUP)
            n.wait("RELOADING=1")
            d.wait_err(r'msg="configuration reloaded"')
            self.assertEqual(d.stop(), 0)
            n.wait("STOPPING=1")
            # READY comes again after the reload.
            self.assertGreaterEqual(sum("READY=1" in m for m in n.messages), 2)
        finally:
            n.close()
            d.cleanup()

    def test_reload_outcome_in_status(self):
        """systemd sends SIGHUP without waiting for the verdict, so the
        outcome of a reload is the STATUS= that `systemctl status` shows: the
        first problem with its FILE:LINE and "previous configuration" for a
        failed one, until a reload succeeds."""
        n = NotifyListener()
        d = frtest.Daemon(EVERYTHING, env={"NOTIFY_SOCKET": n.path}, start=False)
        try:
            d.start()
            n.wait("READY=1")
            with open(d.config_path, "w") as f:
                f.write(EVERYTHING + "\nbogus_key = 1;\nlisten = { port = \"x\"; };\n")
            d.send_signal(signal.SIGHUP)
            d.wait_err(r'reload failed', count=2)
            n.wait("reload failed")
            (msg,) = [m for m in n.messages if "reload failed" in m]
            fields = dict(l.split("=", 1) for l in msg.split("\n") if l)
            self.assertEqual(fields.get("READY"), "1", msg)
            status = fields["STATUS"]
            self.assertIn("previous configuration", status)
            self.assertRegex(status, r"%s:\d+: " % re.escape(d.config_path))
            self.assertIn("and 1 more, see the journal", status)
            with open(d.config_path, "w") as f:
                f.write(ERRORS_ONLY)
            d.send_signal(signal.SIGHUP)
            n.wait("configuration reloaded")
            self.assertNotIn("failed", n.messages[-1])
        finally:
            self.assertEqual(d.stop(), 0)
            n.close()
            d.cleanup()

    def test_reload_status_is_utf8(self):
        """systemd ignores a STATUS= that is not UTF-8, which would leave the
        previous "configuration reloaded" on show: a config path with a byte
        that is not UTF-8 comes out as '?'."""
        work = tempfile.mkdtemp(prefix="frnotify-")
        conf_dir = os.path.join(work, os.fsdecode(b"caf\xc3\xa9-\xff"))
        os.makedirs(conf_dir)
        conf = os.path.join(conf_dir, "fluxrelay.conf")
        with open(conf, "w") as f:
            f.write(EVERYTHING)
        n = NotifyListener()
        d = frtest.Daemon(None, args=["-c", conf], env={"NOTIFY_SOCKET": n.path}, start=False)
        try:
            d.start()
            n.wait("READY=1")
            with open(conf, "w") as f:
                f.write(EVERYTHING + "\nbogus_key = 1;\n")
            d.send_signal(signal.SIGHUP)
            n.wait("reload failed")
            (msg,) = [m for m in n.messages if "reload failed" in m]
            msg.encode("utf-8")   # raises on the escaped byte: not UTF-8
            self.assertIn("caf\u00e9-?/fluxrelay.conf:", msg)
        finally:
            self.assertEqual(d.stop(), 0)
            n.close()
            d.cleanup()
            shutil.rmtree(work, ignore_errors=True)


class SocketActivationTest(unittest.TestCase):
    """The daemon on a listening socket passed the way systemd passes it. The
    test keeps its own copy open, as systemd does for fluxrelay.socket."""

    def setUp(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.work = tempfile.mkdtemp(prefix="frsock-")
        self.conf = os.path.join(self.work, "fluxrelay.conf")
        with open(self.conf, "w") as f:
            f.write(EVERYTHING)

    def tearDown(self):
        self.lsock.close()
        shutil.rmtree(self.work, ignore_errors=True)

    def start(self):
        env = dict(os.environ, LISTEN_FDS="1", LISTEN_FDNAMES="fluxrelay")
        env.pop("FLUXRELAY_CONFIG", None)
        fd = self.lsock.fileno()

        def to_fd3():
            if fd != 3:
                os.dup2(fd, 3)
            os.set_inheritable(3, True)
        # LISTEN_PID must be the daemon's own pid: the shell execs it in place.
        # valgrind runs the daemon in its own process: the pid stays the same.
        vg = []
        if os.environ.get("FR_VALGRIND") == "1":
            vg = ["valgrind", "-q", "--error-exitcode=42", "--leak-check=full",
                  "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite"]
        cmd = ["sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"'] + vg + [
            frtest.BIN, "-c", self.conf, "-s", os.path.join(self.work, "state")]
        # close_fds=False: the descriptor dup'ed to 3 in the child must survive.
        return subprocess.Popen(cmd, env=env, preexec_fn=to_fd3, close_fds=False,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def stop(self, p):
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        err = err.decode(errors="replace")
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("socket_activation=yes", err)
        return err

    def post(self, conn=None):
        import http.client
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request("POST", "/", INFO_EVENT, {"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, json.loads(r.read())
        finally:
            c.close()

    def test_inherited_listen_fd(self):
        p = self.start()
        try:
            status, body = self.post()
            self.assertEqual(status, 202)
            self.assertEqual(body["status"], "accepted")
        finally:
            self.stop(p)

    def test_socket_survives_the_daemon(self):
        """After the daemon exits the socket still listens (libmicrohttpd's
        stop must not shut it down), and a connection made meanwhile waits in
        its backlog for the next daemon, as systemd's socket activation needs."""
        import http.client
        p = self.start()
        try:
            self.assertEqual(self.post()[0], 202)
        finally:
            self.stop(p)
        import select
        poller = select.poll()
        poller.register(self.lsock, select.POLLIN | select.POLLHUP | select.POLLERR)
        self.assertEqual(poller.poll(0), [], "the inherited socket was shut down")
        # A client connecting while no daemon runs: queued by the kernel.
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.connect()
        p = self.start()
        try:
            status, body = self.post(c)
            self.assertEqual((status, body["status"]), (202, "accepted"))
        finally:
            self.stop(p)


class LogFormatTest(unittest.TestCase):
    def test_json_logs(self):
        d = frtest.Daemon(EVERYTHING + 'log = { format = "json"; level = "debug"; };\n')
        try:
            d.post(INFO_EVENT)
            d.wait_err(r'"msg":"event accepted"')
        finally:
            self.assertEqual(d.stop(), 0)
            d.cleanup()
        for line in d.lines_err:
            if line.startswith("==") or not line.strip():
                continue   # valgrind's own lines
            doc = json.loads(line)
            self.assertIn("time", doc)
            self.assertIn(doc["level"], ("debug", "info", "warn", "error"))


if __name__ == "__main__":
    frtest.main()

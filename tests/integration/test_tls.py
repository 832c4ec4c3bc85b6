"""HTTPS and mutual TLS on the intake (SPEC §3 listen.tls_*, §4).

A throwaway CA, a server certificate for IP 127.0.0.1, a client certificate and
a second, untrusted CA with its own client certificate are made with `openssl`
in a temporary directory for each run (the test is skipped, exit 77, when
openssl is not installed).

- tls_cert_file + tls_key_file: HTTPS works for a client trusting the CA; plain
  HTTP to the same port gets no HTTP answer; a client that does not trust the
  CA refuses the server.
- tls_client_ca_file (mTLS): POST / without a client certificate, or with one
  from another CA, is refused: the handshake completes (libmicrohttpd requests
  but does not require a certificate) and http.c answers 401 after verifying
  the peer against the CA. The right certificate is accepted (202). Health and
  metrics endpoints need no certificate.
- Broken PEM files (a certificate that does not parse, a key that does not
  parse or does not belong to the certificate, a client CA bundle without a
  certificate) are configuration errors: --check-config and the daemon's
  start both exit 78 with the file and GnuTLS's reason, so systemd's
  RestartPreventExitStatus=78 stops a restart loop.
"""
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest

import frtest

if shutil.which("openssl") is None:
    print("openssl not found: install it (apt-get install openssl) to run the TLS tests",
          file=sys.stderr)
    sys.exit(77)

EVENT = frtest.fixture("01")

CONF = """
providers = ( { name = "console"; type = "console"; } );
alerts = ( { name = "all"; providers = ["console"]; severity = "info";
             sources = ( { kind = "*"; } ); } );
dedup = { window = 0; };
listen: { tls_cert_file = "%(dir)s/server.pem"; tls_key_file = "%(dir)s/server.key";%(mtls)s };
"""


def openssl(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s" % (" ".join(args), r.stderr.decode()))


def make_ca(d, name):
    openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", name + ".key", "-out", name + ".pem", "-days", "2",
             "-subj", "/CN=fluxrelay test " + name,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)


def make_leaf(d, name, ca, ext, serial):
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write(ext)
    openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name], d)
    openssl(["x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
             "-set_serial", str(serial), "-days", "2", "-out", name + ".pem",
             "-extfile", name + ".ext"], d)


class Pki:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="frtest-tls-")
        d = self.dir
        make_ca(d, "ca")
        make_ca(d, "otherca")
        make_leaf(d, "server", "ca",
                  "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                  "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n", 1001)
        client_ext = ("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                      "extendedKeyUsage=clientAuth\n")
        make_leaf(d, "client", "ca", client_ext, 1002)
        make_leaf(d, "stranger", "otherca", client_ext, 1003)

    def path(self, name):
        return os.path.join(self.dir, name)

    def context(self, client=None, trust="ca"):
        ctx = ssl.create_default_context(cafile=self.path(trust + ".pem"))
        if client is not None:
            ctx.load_cert_chain(self.path(client + ".pem"), self.path(client + ".key"))
        return ctx

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def https(port, ctx, method, path, body=None):
    """(status, parsed JSON or raw bytes); raises ssl/OS errors."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        try:
            return r.status, json.loads(data)
        except ValueError:
            return r.status, data
    finally:
        conn.close()


class TlsBase(unittest.TestCase):
    MTLS = False

    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        mtls = (' tls_client_ca_file = "%s";' % cls.pki.path("ca.pem")) if cls.MTLS else ""
        cls.d = frtest.Daemon(CONF % {"dir": cls.pki.dir, "mtls": mtls})

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        cls.d.cleanup()
        cls.pki.cleanup()
        assert rc == 0, "daemon exit code %r" % rc


class HttpsTest(TlsBase):
    def test_listening_line_says_tls(self):
        line = self.d.wait_err(r'msg="?listening"?')
        self.assertRegex(line, r"tls=(on|yes|true|https)")

    def test_https_works(self):
        ctx = self.pki.context()
        status, doc = https(self.d.port, ctx, "GET", "/healthz")
        self.assertEqual((status, doc), (200, {"status": "ok"}))
        status, doc = https(self.d.port, ctx, "GET", "/readyz")
        self.assertEqual(status, 200, doc)
        status, doc = https(self.d.port, ctx, "POST", "/", EVENT)
        self.assertEqual(status, 202, doc)
        self.assertEqual(doc["status"], "accepted")
        # the certificate is the one made for 127.0.0.1 by our CA
        with socket.create_connection(("127.0.0.1", self.d.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                cert = s.getpeercert()
        self.assertIn(("IP Address", "127.0.0.1"), cert["subjectAltName"])

    def test_plain_http_fails(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=5)
        try:
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            status = r.status
            r.read()
        except (http.client.HTTPException, OSError):
            status = None
        finally:
            conn.close()
        self.assertIsNone(status, "plain HTTP answered %r on the TLS port" % status)
        # and the daemon is still fine
        self.assertEqual(https(self.d.port, self.pki.context(), "GET", "/healthz")[0], 200)

    def test_untrusted_server_refused_by_client(self):
        with self.assertRaises(ssl.SSLError):
            https(self.d.port, self.pki.context(trust="otherca"), "GET", "/healthz")


class MutualTlsTest(TlsBase):
    MTLS = True

    def post_status(self, ctx):
        """(status, doc), or (None, exception) when the handshake failed."""
        try:
            return https(self.d.port, ctx, "POST", "/", EVENT)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError,
                http.client.RemoteDisconnected) as e:
            return None, e

    def metric(self, name, label):
        _, text = https(self.d.port, self.pki.context(), "GET", "/metrics")
        for line in text.decode().splitlines():
            if line.startswith("fluxrelay_%s{%s}" % (name, label)):
                return float(line.split()[-1])
        return 0.0

    # The handshake succeeds either way (libmicrohttpd asks for a certificate
    # but does not require one); http.c verifies the peer for POST / and
    # answers 401 with a JSON error.
    def assertRefused(self, status, doc):
        self.assertEqual(status, 401, doc)
        self.assertEqual(doc, {"error": "client certificate required"})

    def test_without_client_certificate_refused(self):
        self.assertRefused(*self.post_status(self.pki.context()))
        self.d.wait_err(r'msg="?event rejected"?.*client certificate')

    def test_certificate_from_other_ca_refused(self):
        self.assertRefused(*self.post_status(self.pki.context(client="stranger")))

    def test_server_only_certificate_refused(self):
        """A certificate from the trusted CA that is only for servers (extended
        key usage serverAuth) does not authenticate a client, as with OpenSSL's
        "sslclient" purpose check (nginx, ...)."""
        self.assertRefused(*self.post_status(self.pki.context(client="server")))

    def test_right_certificate_accepted(self):
        status, doc = self.post_status(self.pki.context(client="client"))
        self.assertEqual(status, 202, doc)
        self.assertEqual(doc["status"], "accepted")

    def test_health_without_certificate(self):
        ctx = self.pki.context()
        for path in ("/healthz", "/readyz", "/metrics"):
            status, _ = https(self.d.port, ctx, "GET", path)
            self.assertEqual(status, 200, path)

    def test_refusals_counted_and_service_continues(self):
        before = self.metric("events_received_total", 'status="rejected"')
        before401 = self.metric("http_requests_total", 'code="401"')
        for _ in range(3):
            self.assertRefused(*self.post_status(self.pki.context(client="stranger")))
        self.assertEqual(self.metric("events_received_total", 'status="rejected"'), before + 3)
        self.assertEqual(self.metric("http_requests_total", 'code="401"'), before401 + 3)
        status, doc = self.post_status(self.pki.context(client="client"))
        self.assertEqual(status, 202, doc)
        self.assertIsNone(self.d.proc.poll())


class BrokenTlsFilesTest(unittest.TestCase):
    """Before: --check-config said "configuration OK" and the daemon exited 1
    with "address in use"; GnuTLS's reason showed only at debug level."""

    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        d = cls.pki.dir
        with open(os.path.join(d, "garbage.pem"), "w") as f:
            f.write("not PEM at all\n")
        with open(os.path.join(d, "server.pem")) as f:
            pem = f.read()
        with open(os.path.join(d, "truncated.pem"), "w") as f:
            f.write(pem[:len(pem) // 2] + "\n-----END CERTIFICATE-----\n")

    @classmethod
    def tearDownClass(cls):
        cls.pki.cleanup()

    CASES = [
        # (cert, key, client CA, setting at fault, its line, file at fault, reason)
        ("garbage.pem", "server.key", None, "tls_cert_file", 2, "garbage.pem",
         "cannot load the certificate chain: "),
        ("truncated.pem", "server.key", None, "tls_cert_file", 2, "truncated.pem",
         "cannot load the certificate chain: "),
        ("server.pem", "garbage.pem", None, "tls_key_file", 3, "garbage.pem",
         "cannot load the private key: "),
        ("server.pem", "client.key", None, "tls_key_file", 3, "client.key",
         "does not go with the certificate in "),
        ("server.pem", "server.key", "garbage.pem", "tls_client_ca_file", 4, "garbage.pem",
         "cannot load the CA certificates: "),
        ("server.pem", "server.key", "server.key", "tls_client_ca_file", 4, "server.key",
         "cannot load the CA certificates: "),
    ]

    def write_conf(self, work, cert, key, ca):
        d = self.pki.dir
        text = ('listen: {\n  tls_cert_file = "%s/%s";\n  tls_key_file = "%s/%s";\n'
                % (d, cert, d, key))
        if ca:
            text += '  tls_client_ca_file = "%s/%s";\n' % (d, ca)
        text += "};\n" + CONF.split("listen:")[0]
        path = os.path.join(work, "tls.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_check_config_and_start_exit_78(self):
        work = tempfile.mkdtemp(prefix="frtest-tlsbad-")
        try:
            for cert, key, ca, setting, line, bad, reason in self.CASES:
                with self.subTest(cert=cert, key=key, ca=ca):
                    conf = self.write_conf(work, cert, key, ca)
                    want = "%s:%d: listen.%s: %s/%s: %s" % (conf, line, setting, self.pki.dir,
                                                             bad, reason)
                    for args in (["--check-config", "-c", conf],
                                 ["-c", conf, "-s", os.path.join(work, "state"),
                                  "-l", "127.0.0.1:0"]):
                        r = frtest.run_cli(args, timeout=30)
                        err = r.stderr.decode()
                        self.assertEqual(r.returncode, 78, "%s: rc %d\n%s" % (
                            args[0], r.returncode, err))
                        lines = [l for l in err.splitlines() if l.startswith(conf)]
                        self.assertEqual(len(lines), 1, err)
                        self.assertTrue(lines[0].startswith(want), "%s\nwant %s" % (err, want))
                        # GnuTLS's reason follows.
                        self.assertGreater(len(lines[0]), len(want) + 3, lines[0])
                        self.assertNotIn("configuration OK", r.stdout.decode())
                        self.assertNotIn("listening", err)
                        self.assertNotIn("address in use", err)
            # The good files still pass.
            conf = self.write_conf(work, "server.pem", "server.key", "ca.pem")
            r = frtest.run_cli(["--check-config", "-c", conf], timeout=30)
            self.assertEqual((r.returncode, r.stdout.decode().strip()), (0, "configuration OK"),
                             r.stderr.decode())
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    frtest.main()

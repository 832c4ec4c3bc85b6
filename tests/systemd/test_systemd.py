#!/usr/bin/env python3
"""fluxrelay's systemd units under a real systemd (252, Debian 12) as PID 1 in a
podman container: what `systemd-analyze verify` cannot see.

    make check-systemd                       (from a build directory)
    python3 tests/systemd/test_systemd.py [BUILD_DIR]      (as root)

What is checked, with the installed layout (`make install prefix=/usr
sysconfdir=/etc`), the shipped etc/fluxrelay.conf and its LoadCredential=
secrets (slack-url, hmac-key, root-only files in /etc/fluxrelay):
- the service starts (Type=notify) and accepts a signed event;
- `systemctl reload` applies a valid file (an event the old rules ignored is
  accepted) and, for an invalid one, keeps the running configuration, says why
  in the journal (FILE:LINE) and in `systemctl status` (sd_notify STATUS=);
- with fluxrelay.socket, a connection starts the service; `systemctl stop
  fluxrelay.service` leaves the socket listening (not failed), and the next
  connection starts the service again.

Exit 0 pass, 1 fail, 77 skip (not root, no podman, or no image and no way to
make one), 99 setup error. Not part of `make check`: the first run builds the
container image with apt-get (network). The image and the debootstrap'd base
it is made from are kept in FR_CACHE_DIR [${XDG_CACHE_HOME:-~/.cache}/fluxrelay]
as fluxrelay-systemd-HASH.tar and bookworm-minbase.tar, and in podman's store as
localhost/fluxrelay-systemd:bookworm-HASH (HASH: of the runtime libraries
docker/Dockerfile installs, so a new library makes a new image). Set FR_KEEP_CONTAINER=1 to keep the
container for a look around (its id is printed).
"""
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.environ.get("FR_SRCDIR") or os.path.join(HERE, "..", ".."))
IMAGE = "localhost/fluxrelay-systemd:bookworm"
BASE_IMAGE = "localhost/fluxrelay-bookworm-minbase:latest"
CACHE = os.environ.get("FR_CACHE_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fluxrelay")
# podman on this kind of machine: crun refuses cgroups in hybrid mode, and the
# default open-files limit is above the sandbox's hard limit.
PODMAN_RUN_FLAGS = ["--runtime", "runc", "--ulimit", "nofile=16384:16384",
                    "--ulimit", "nproc=16384:16384"]
HMAC_KEY = "systemd-test-key"
PORT = 9292
CONF = "/etc/fluxrelay/fluxrelay.conf"
BUILD = None   # set by main()


class Skip(Exception):
    pass


def log(msg):
    print("test_systemd: %s" % msg, file=sys.stderr, flush=True)


def run(cmd, check=True, timeout=600, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError("%s exited %d:\n%s%s" % (" ".join(cmd), r.returncode, r.stdout,
                                                     r.stderr))
    return r


def image_exists(name):
    return run(["podman", "image", "exists", name], check=False).returncode == 0


def runtime_packages():
    """The runtime libraries docker/Dockerfile installs (its last apt-get line),
    so the container runs the same binary the image would."""
    text = re.sub(r"\\\n", " ", open(os.path.join(SRC, "docker", "Dockerfile")).read())
    lines = re.findall(r"apt-get install -y --no-install-recommends ([^&]*)&&", text)
    if not lines:
        raise RuntimeError("no apt-get install line in docker/Dockerfile")
    return [p for p in lines[-1].split() if p.startswith("lib")]


def image_name():
    """The image is made for one set of runtime libraries: its tag says which,
    so a Dockerfile that gains a library (libyaml for import) gets a new image
    instead of a kept one the binary cannot run in."""
    pk = hashlib.sha256(" ".join(sorted(runtime_packages())).encode()).hexdigest()[:10]
    return "localhost/fluxrelay-systemd:bookworm-%s" % pk


def ensure_image():
    global IMAGE
    IMAGE = image_name()
    if image_exists(IMAGE):
        return
    saved = os.path.join(CACHE, "fluxrelay-systemd-%s.tar" % IMAGE.rsplit("-", 1)[1])
    if os.path.exists(saved):
        log("loading %s" % saved)
        run(["podman", "load", "-i", saved])
        if image_exists(IMAGE):
            return
    if not image_exists(BASE_IMAGE):
        base = os.path.join(CACHE, "bookworm-minbase.tar")
        if not os.path.exists(base):
            if not shutil.which("debootstrap"):
                raise Skip("no image %s, no %s and no debootstrap to make it" % (IMAGE, base))
            mirror = os.environ.get("FR_MIRROR") or "http://deb.debian.org/debian"
            try:
                with open("/etc/apt/sources.list.d/debian.sources") as f:
                    m = re.search(r"(?m)^URIs:\s*(\S+)", f.read())
                    mirror = os.environ.get("FR_MIRROR") or (m.group(1) if m else mirror)
            except OSError:
                pass
            os.makedirs(CACHE, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix="debootstrap.", dir=CACHE)
            try:
                log("debootstrap --variant=minbase bookworm from %s" % mirror)
                run(["debootstrap", "--variant=minbase", "bookworm", tmp + "/root", mirror],
                    timeout=3600)
                run(["tar", "-C", tmp + "/root", "-cf", tmp + "/base.tar", "."])
                os.rename(tmp + "/base.tar", base)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        log("podman import %s" % base)
        run(["podman", "import", "--change", 'CMD ["/sbin/init"]', base, BASE_IMAGE])
    ctx = tempfile.mkdtemp(prefix="frsd-image-")
    try:
        with open(os.path.join(ctx, "Containerfile"), "w") as f:
            f.write("FROM %s\n"
                    "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y"
                    " --no-install-recommends systemd systemd-sysv dbus procps curl %s"
                    " && apt-get clean && rm -rf /var/lib/apt/lists/*\n"
                    'CMD ["/sbin/init"]\n' % (BASE_IMAGE, " ".join(runtime_packages())))
        log("podman build %s (apt-get: needs the network)" % IMAGE)
        run(["podman", "build", "--network", "host"] + PODMAN_RUN_FLAGS +
            ["-t", IMAGE, ctx], timeout=3600)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    os.makedirs(CACHE, exist_ok=True)
    run(["podman", "save", "-o", saved + ".tmp", IMAGE])
    os.rename(saved + ".tmp", saved)
    log("image saved to %s" % saved)


class Container:
    def __init__(self):
        r = run(["podman", "run", "-d", "--privileged", "--systemd=always", "--network", "none"] +
                PODMAN_RUN_FLAGS + [IMAGE, "/sbin/init"])
        self.id = r.stdout.strip()
        # Without shared mount propagation systemd cannot set up the
        # credentials directory of LoadCredential=.
        self.sh("mount --make-rshared /")
        deadline = time.monotonic() + 60
        while True:
            state = self.sh("systemctl is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("systemd in the container is %r after 60 s" % state)
            time.sleep(0.5)

    def sh(self, script, check=True, input=None, timeout=120):
        return run(["podman", "exec", "-i", self.id, "sh", "-c", script], check=check,
                   input=input, timeout=timeout)

    def write(self, path, text, mode="0644"):
        self.sh("cat > %s && chmod %s %s" % (path, mode, path), input=text)

    def remove(self):
        if os.environ.get("FR_KEEP_CONTAINER") == "1":
            log("container kept: %s" % self.id)
            return
        run(["podman", "rm", "-f", "-t", "0", self.id], check=False)


def signed_post(c, body, port=PORT):
    """POST body to fluxrelay in the container as Flux's generic-hmac Provider
    does: (HTTP status, parsed JSON or None)."""
    sig = hmac.new(HMAC_KEY.encode(), body.encode(), hashlib.sha256).hexdigest()
    r = c.sh("curl -sS -m 20 -o /dev/stdout -w '\\n%%{http_code}' "
             "-H 'Content-Type: application/json' -H 'X-Signature: sha256=%s' "
             "--data-binary @- http://127.0.0.1:%d/" % (sig, port), check=False, input=body)
    if r.returncode != 0:
        return None, r.stderr.strip()
    text, _, code = r.stdout.rpartition("\n")
    try:
        return int(code), json.loads(text)
    except ValueError:
        return int(code), text


def event(n):
    """An info event of a GitRepository; n makes each one distinct (dedup)."""
    with open(os.path.join(SRC, "tests", "fixtures", "events",
                           "02-gitrepository-fetched-revision-legacy.json")) as f:
        ev = json.load(f)
    ev["message"] = "Fetched revision: main/%040x" % n
    return json.dumps(ev)


# An alert for the event above, which the shipped etc/fluxrelay.conf ignores.
SOURCES_ALERT = """,
  { name = "sources";
    providers = [ "slack" ];
    severity = "info";
    sources = ( { kind = "GitRepository"; } );
  }
);
"""


class SystemdTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stage = tempfile.mkdtemp(prefix="frsd-stage-")
        # The installed layout: the units with /usr/sbin and /etc substituted
        # as `make install` does, the man pages, the example config.
        run(["make", "-C", BUILD, "install", "DESTDIR=" + cls.stage, "prefix=/usr",
             "sysconfdir=/etc"], timeout=600)
        cls.c = Container()
        c = cls.c
        run(["podman", "cp", cls.stage + "/.", "%s:/" % c.id])
        with open(os.path.join(cls.stage, "etc", "fluxrelay", "fluxrelay.conf")) as f:
            cls.shipped = f.read()
        # LoadCredential= sources: root-only, as docs/deploy.md tells.
        c.write("/etc/fluxrelay/slack-url", "http://127.0.0.1:9/services/T0/B0/X\n", "0600")
        c.write("/etc/fluxrelay/hmac-key", HMAC_KEY + "\n", "0600")
        # As on a minimal system (debootstrap --variant=minbase): no procps,
        # so no /bin/kill for the unit to rely on.
        c.sh("rm -f /usr/bin/kill /bin/kill")
        c.sh("systemctl daemon-reload")
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.c.remove()
        shutil.rmtree(cls.stage, ignore_errors=True)

    def post(self):
        SystemdTest.n += 1
        return signed_post(self.c, event(SystemdTest.n))

    def show(self, unit, prop):
        return self.c.sh("systemctl show -P %s %s" % (prop, unit)).stdout.strip()

    def journal(self, since):
        return self.c.sh("journalctl -q -o cat -u fluxrelay.service --since=@%d" % since,
                         check=False).stdout

    def wait_for(self, what, fn, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            v = fn()
            if v:
                return v
            if time.monotonic() > deadline:
                self.fail("timed out waiting for %s" % what)
            time.sleep(0.2)

    def test_1_reload(self):
        c = self.c
        c.write(CONF, self.shipped)
        c.sh("systemctl stop fluxrelay.socket fluxrelay.service", check=False)
        r = c.sh("systemctl start fluxrelay.service", check=False)
        self.assertEqual(r.returncode, 0, r.stderr + c.sh(
            "journalctl -q -o cat -u fluxrelay.service | tail -20").stdout)
        pid = self.show("fluxrelay.service", "MainPID")
        status, doc = self.post()
        self.assertEqual((status, doc), (202, {"status": "ignored"}))

        # A valid file: applied.
        c.write(CONF, self.shipped.rstrip().rstrip(");").rstrip() + SOURCES_ALERT)
        since = int(c.sh("date +%s").stdout)
        r = c.sh("systemctl reload fluxrelay.service", check=False)
        self.assertEqual(r.returncode, 0, "systemctl reload failed on a valid file:\n%s%s"
                         % (r.stderr, self.journal(since)))
        self.wait_for("configuration reloaded",
                      lambda: "configuration reloaded" in self.journal(since))
        status, doc = self.post()
        self.assertEqual(status, 202, doc)
        self.assertEqual((doc["status"], doc.get("alerts")), ("accepted", ["sources"]), doc)
        self.assertIn("configuration reloaded", self.show("fluxrelay.service", "StatusText"))

        # An invalid file: kept, and said so in the journal and the status.
        c.write(CONF, self.shipped.replace("port = 9292;", "port = \"x\";", 1))
        since = int(c.sh("date +%s").stdout)
        c.sh("systemctl reload fluxrelay.service", check=False)
        text = self.wait_for("reload failed in the journal",
                             lambda: re.search(r"reload failed.*%s:\d+" % re.escape(CONF),
                                               self.journal(since)))
        self.assertTrue(text)
        st = self.show("fluxrelay.service", "StatusText")
        log("after an invalid reload: StatusText=%s" % st)
        self.assertIn("reload failed", st)
        self.assertRegex(st, r"%s:\d+: " % re.escape(CONF))
        self.assertIn("reload failed", c.sh("systemctl status fluxrelay.service",
                                            check=False).stdout)
        self.assertEqual(self.show("fluxrelay.service", "ActiveState"), "active")
        self.assertEqual(self.show("fluxrelay.service", "MainPID"), pid)
        status, doc = self.post()
        self.assertEqual((status, doc.get("alerts")), (202, ["sources"]),
                         "the running configuration was not kept: %r" % (doc,))

    def test_2_socket_activation(self):
        c = self.c
        c.write(CONF, self.shipped)
        c.sh("systemctl stop fluxrelay.service")
        r = c.sh("systemctl start fluxrelay.socket", check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.show("fluxrelay.service", "ActiveState"), "inactive")
        for round_ in (1, 2):
            # The connection starts the service, which serves it.
            status, doc = self.post()
            self.assertEqual((round_, status, doc), (round_, 202, {"status": "ignored"}))
            self.assertEqual(self.show("fluxrelay.service", "ActiveState"), "active")
            self.assertIn("socket_activation=yes", self.journal(0))
            since = int(c.sh("date +%s").stdout)
            c.sh("systemctl stop fluxrelay.service", check=False)
            self.assertEqual(self.show("fluxrelay.service", "ActiveState"), "inactive")
            self.assertRegex(self.journal(since), r'msg="?stopped')
            log("round %d: after systemctl stop fluxrelay.service: socket %s/%s" % (
                round_, self.show("fluxrelay.socket", "ActiveState"),
                self.show("fluxrelay.socket", "SubState")))
            self.assertEqual(
                (round_, self.show("fluxrelay.socket", "ActiveState"),
                 self.show("fluxrelay.socket", "SubState")), (round_, "active", "listening"),
                c.sh("journalctl -q -o cat -u fluxrelay.socket | tail", check=False).stdout)


def main():
    global BUILD
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    BUILD = os.path.abspath(args[0] if args else os.environ.get("FR_BUILDDIR") or
                            os.path.join(SRC, "build"))
    try:
        if os.geteuid() != 0:
            raise Skip("needs root (podman --privileged with systemd as PID 1)")
        if not shutil.which("podman"):
            raise Skip("podman not installed (apt-get install podman runc)")
        if not os.path.exists(os.path.join(BUILD, "src", "fluxrelay")):
            print("test_systemd: no fluxrelay built in %s" % BUILD, file=sys.stderr)
            sys.exit(99)
        ensure_image()
    except Skip as e:
        print("test_systemd: SKIP: %s" % e, file=sys.stderr)
        sys.exit(77)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        print("test_systemd: setup failed: %s" % e, file=sys.stderr)
        sys.exit(99)
    prog = unittest.main(argv=sys.argv[:1], exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()

"""Packaging consistency: the systemd units, the Dockerfile, the Kubernetes
manifests, the example configurations and the man pages must agree with each
other and with the daemon.

What is checked:
- every YAML manifest under docker/k8s parses (a small loader for the YAML
  subset the manifests use; when PyYAML is importable its result must be
  identical, which also keeps the manifests inside that subset);
- names, ports, paths and secret keys agree across the sidecar patch, the
  standalone Deployment/Service/PVC, the Flux Provider/Alert, the Secret, the
  embedded fluxrelay.conf files, the Dockerfile (EXPOSE, VOLUME, ENV, user,
  HEALTHCHECK) and the systemd units (LoadCredential names vs. the
  ${CREDENTIALS_DIRECTORY}/NAME references of etc/fluxrelay.conf);
- the sidecar Component, applied the way kustomize applies it (strategic-merge
  list items prepended, JSON6902 `add` at `/-` appended) to what Flux ships
  (tests/fixtures/flux-shipped/: notification-controller's Deployment with
  flux2's patch, its Services, flux2's NetworkPolicies): notification-controller
  stays containers[0], unchanged, with its four ports; a user's `containers/0`
  patch still reaches it; fluxrelay is appended with events on 127.0.0.1:9393
  and metrics on 0.0.0.0:9394; Flux's Services and NetworkPolicies admit what
  they admitted, and the Component's policy admits 9394 and nothing else;
- `kubectl kustomize` (when kubectl is installed) renders both layouts, the
  generated ConfigMap names reach the Deployments, and the rendered
  notification-controller pod passes the same checks;
- `systemd-analyze verify` (when installed) accepts the units;
- `groff -ww` and `mandoc -Tlint` (when installed) print no warning for the
  man pages, and fluxrelay.conf(5) names every setting of
  tests/configs/valid-full.conf;
- `fluxrelay --check-config` accepts every shipped configuration (the k8s ones,
  etc/fluxrelay.conf, the examples of fluxrelay.conf(5)) with secret files in a
  temporary CREDENTIALS_DIRECTORY, and rejects them when the secrets are
  missing; so do the `--check-config` command lines the docs show. Skipped
  with a message while --check-config is not implemented, and for the sidecar
  while the build does not know listen.metrics_address/metrics_port.
"""
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import frtest

SRC = os.path.abspath(frtest.SRCDIR)
K8S = os.path.join(SRC, "docker", "k8s")
SIDECAR = os.path.join(K8S, "sidecar")
STANDALONE = os.path.join(K8S, "standalone")
DIRECT = os.path.join(K8S, "direct")
# The Flux controllers that record events (--events-addr), as gotk-components
# names their Deployments.
FLUX_EVENT_CONTROLLERS = ("source-controller", "kustomize-controller", "helm-controller",
                          "image-reflector-controller", "image-automation-controller")
FLUX_EVENTS_ADDR = "--events-addr=http://notification-controller.flux-system.svc.cluster.local./"

# notification-controller's listeners (fluxcd/notification-controller main.go
# and config/manager/deployment.yaml): (flag, default port, containerPort name).
# The sidecar shares the pod's network namespace and leaves all four as they
# are: fluxrelay takes 9393 (events, loopback) and 9394 (metrics).
NC_LISTENERS = (("--events-addr", 9090, "http"),
                ("--receiverAddr", 9292, "http-webhook"),
                ("--metrics-addr", 8080, "http-prom"),
                ("--health-addr", 9440, "healthz"))
SIDECAR_PORT = 9393
SIDECAR_METRICS_PORT = 9394
SIDECAR_METRICS_NAME = "fluxrelay-prom"

DEFAULT_PORT = 9292
CONF_PATH = "/etc/fluxrelay/fluxrelay.conf"
STATE_DIR = "/var/lib/fluxrelay"
SECRETS_DIR = "/run/secrets/fluxrelay"
SECRET_NAME = "fluxrelay"
FLUXRELAY_SECRET_KEYS = {"slack-url", "hmac-key"}
TEST_SLACK_URL = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXX"


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---------------------------------------------------------------------------
# A loader for the YAML subset of the manifests and of kubectl's output:
# block mappings and sequences (also "compact" sequences at the key's indent),
# plain / single / double quoted scalars with YAML 1.1 resolution of ints,
# octal, floats, booleans and null, one-line flow collections, literal block
# scalars (| and |-), comments and "---" document separators. Anything else
# raises YamlError, so a manifest cannot silently leave the subset.

class YamlError(Exception):
    pass


_BOOL = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}
_INT = re.compile(r"[-+]?(0|[1-9][0-9_]*)")
_OCT = re.compile(r"[-+]?0[0-7_]+")
_HEX = re.compile(r"[-+]?0x[0-9a-fA-F_]+")
_FLOAT = re.compile(r"[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?")


def _resolve_plain(s):
    if s in ("", "~", "null", "Null", "NULL"):
        return None
    if s.lower() in _BOOL and s in (s.lower(), s.capitalize(), s.upper()):
        return _BOOL[s.lower()]
    if _INT.fullmatch(s):
        return int(s.replace("_", ""), 10)
    if _OCT.fullmatch(s):
        return int(s.replace("_", ""), 8)
    if _HEX.fullmatch(s):
        return int(s.replace("_", ""), 16)
    if _FLOAT.fullmatch(s) and any(c.isdigit() for c in s):
        return float(s.replace("_", ""))
    return s


def _double_quoted(s, pos):
    """s[pos] == '"'; returns (string, index after the closing quote)."""
    out = []
    i = pos + 1
    esc = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", '"': '"', "\\": "\\", "/": "/", " ": " "}
    while i < len(s):
        c = s[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            i += 1
            if i >= len(s):
                break
            e = s[i]
            if e in esc:
                out.append(esc[e])
            elif e in "xuU":
                n = {"x": 2, "u": 4, "U": 8}[e]
                out.append(chr(int(s[i + 1:i + 1 + n], 16)))
                i += n
            else:
                raise YamlError("unsupported escape \\%s" % e)
        else:
            out.append(c)
        i += 1
    raise YamlError("unterminated double-quoted string: %s" % s)


def _single_quoted(s, pos):
    out = []
    i = pos + 1
    while i < len(s):
        if s[i] == "'":
            if s[i + 1:i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        out.append(s[i])
        i += 1
    raise YamlError("unterminated single-quoted string: %s" % s)


def _flow(s, pos):
    """A flow collection or scalar starting at s[pos]; returns (value, pos)."""
    while pos < len(s) and s[pos] == " ":
        pos += 1
    c = s[pos:pos + 1]
    if c == "[":
        items = []
        pos += 1
        while True:
            while s[pos:pos + 1] == " ":
                pos += 1
            if s[pos:pos + 1] == "]":
                return items, pos + 1
            v, pos = _flow(s, pos)
            items.append(v)
            while s[pos:pos + 1] == " ":
                pos += 1
            if s[pos:pos + 1] == ",":
                pos += 1
            elif s[pos:pos + 1] != "]":
                raise YamlError("bad flow sequence: %s" % s)
    if c == "{":
        d = {}
        pos += 1
        while True:
            while s[pos:pos + 1] == " ":
                pos += 1
            if s[pos:pos + 1] == "}":
                return d, pos + 1
            k, pos = _flow(s, pos)
            while s[pos:pos + 1] == " ":
                pos += 1
            if s[pos:pos + 1] != ":":
                raise YamlError("bad flow mapping: %s" % s)
            v, pos = _flow(s, pos + 1)
            d[k] = v
            while s[pos:pos + 1] == " ":
                pos += 1
            if s[pos:pos + 1] == ",":
                pos += 1
            elif s[pos:pos + 1] != "}":
                raise YamlError("bad flow mapping: %s" % s)
    if c == '"':
        return _double_quoted(s, pos)
    if c == "'":
        return _single_quoted(s, pos)
    end = pos
    while end < len(s) and s[end] not in ",]}" and not (
            s[end] == ":" and (end + 1 == len(s) or s[end + 1] in " ,]}")):
        end += 1
    return _resolve_plain(s[pos:end].strip()), end


def _scalar(text):
    """A complete value on one line (after "key:" or "- ")."""
    v, end = _flow(text, 0)
    if text[end:].strip():
        if text[0] in "[{\"'":
            raise YamlError("trailing text after value: %s" % text)
        return _resolve_plain(text.strip())   # plain scalar with ": " inside
    return v


def _strip_comment(line):
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "\"'" and (i == 0 or line[i - 1] in " [{,:-"):
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


class _Lines:
    def __init__(self, raw):
        self.raw = raw            # original lines (for block scalars)
        self.items = []           # [indent, content, raw index]
        for idx, line in enumerate(raw):
            if "\t" in line[:len(line) - len(line.lstrip())]:
                raise YamlError("tab in indentation: %r" % line)
            c = _strip_comment(line)
            if c.strip():
                self.items.append([len(c) - len(c.lstrip(" ")), c.strip(), idx])


def _is_seq(content):
    return content == "-" or content.startswith("- ")


def _split_key(content):
    """'key: rest' -> (key, rest) or None when the line is not a mapping entry."""
    if content[0] in "\"'":
        key, end = (_double_quoted if content[0] == '"' else _single_quoted)(content, 0)
        rest = content[end:]
        if not rest.startswith(":") or (len(rest) > 1 and rest[1] != " "):
            return None
        return key, rest[1:].strip()
    if content[0] in "[{":
        return None
    m = re.match(r"([^#]*?):(?: |$)", content)
    if not m:
        return None
    return _resolve_plain(m.group(1)), content[m.end():].strip()


def _block_scalar(lines, i, parent_indent, style):
    """Literal block scalar after the item at lines.items[i]."""
    start = lines.items[i][2] + 1
    j = start
    body = []
    indent = None
    while j < len(lines.raw):
        line = lines.raw[j]
        if line.strip() == "":
            body.append("")
            j += 1
            continue
        ind = len(line) - len(line.lstrip(" "))
        if ind <= parent_indent:
            break
        if indent is None:
            indent = ind
        if ind < indent:
            break
        body.append(line[indent:])
        j += 1
    while body and body[-1] == "":
        body.pop()
    text = "\n".join(body)
    if style == "|" and body:
        text += "\n"
    k = i + 1
    while k < len(lines.items) and lines.items[k][2] < j:
        k += 1
    return text, k


def _block(lines, i, indent):
    if _is_seq(lines.items[i][1]):
        return _seq(lines, i, indent)
    return _map(lines, i, indent)


def _value_after(lines, i, indent, rest):
    """Value of an entry whose text after 'key:' or '- ' is rest."""
    if rest in ("|", "|-"):
        return _block_scalar(lines, i, indent, rest)
    if rest and rest[0] in "|>&*!%@`":
        raise YamlError("unsupported YAML construct: %s" % rest)
    if rest:
        return _scalar(rest), i + 1
    i += 1
    if i < len(lines.items) and lines.items[i][0] > indent:
        return _block(lines, i, lines.items[i][0])
    if i < len(lines.items) and lines.items[i][0] == indent and _is_seq(lines.items[i][1]):
        return _seq(lines, i, indent)
    return None, i


def _seq(lines, i, indent):
    out = []
    while i < len(lines.items) and lines.items[i][0] == indent and _is_seq(lines.items[i][1]):
        content = lines.items[i][1]
        rest = content[1:].lstrip(" ")
        col = indent + len(content) - len(rest)
        if rest and _split_key(rest) is not None and rest[0] not in "[{":
            lines.items[i] = [col, rest, lines.items[i][2]]
            v, i = _map(lines, i, col)
        else:
            v, i = _value_after(lines, i, indent, rest)
        out.append(v)
    if i < len(lines.items) and lines.items[i][0] > indent:
        raise YamlError("bad indentation at %r" % lines.items[i][1])
    return out, i


def _map(lines, i, indent):
    out = {}
    while i < len(lines.items) and lines.items[i][0] == indent and not _is_seq(lines.items[i][1]):
        kv = _split_key(lines.items[i][1])
        if kv is None:
            raise YamlError("expected 'key: value': %r" % lines.items[i][1])
        key, rest = kv
        if key in out:
            raise YamlError("duplicate key %r" % key)
        out[key], i = _value_after(lines, i, indent, rest)
    if i < len(lines.items) and lines.items[i][0] > indent:
        raise YamlError("bad indentation at %r" % lines.items[i][1])
    return out, i


def yaml_load_all(text):
    docs = []
    chunk = []
    for line in text.split("\n") + ["---"]:
        if re.match(r"---(\s|$)", line):
            lines = _Lines(chunk)
            if lines.items:
                v, i = _block(lines, 0, lines.items[0][0])
                if i != len(lines.items):
                    raise YamlError("unparsed text at %r" % lines.items[i][1])
                docs.append(v)
            chunk = []
        else:
            chunk.append(line)
    return docs


def load_manifest(path):
    text = read(path)
    docs = yaml_load_all(text)
    try:
        import yaml   # cross-check only; the checks never need it
    except ImportError:
        return docs
    ref = [d for d in yaml.safe_load_all(text) if d is not None]
    if ref != docs:
        raise AssertionError("%s: the built-in YAML loader disagrees with PyYAML:\n%r\n%r"
                             % (path, docs, ref))
    return docs


# ---------------------------------------------------------------------------
# A reader for the libconfig syntax of fluxrelay.conf: settings, groups (dict),
# lists and arrays (list), strings (adjacent ones joined), numbers, booleans.

_LC_TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<num>[-+]?(?:0[xX][0-9a-fA-F]+L{0,2}|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?L{0,2}))
  | (?P<name>[A-Za-z*][-A-Za-z0-9_*]*)
  | (?P<punct>[=:;,{}()\[\]])
""", re.X | re.S)


def libconfig_load(text):
    toks = []
    pos = 0
    while pos < len(text):
        m = _LC_TOKEN.match(text, pos)
        if not m:
            raise ValueError("libconfig: cannot read at %r" % text[pos:pos + 30])
        pos = m.end()
        kind = m.lastgroup
        if kind == "ws":
            continue
        val = m.group(kind)
        if kind == "str":
            val = re.sub(r'\\(.)', lambda e: {"n": "\n", "t": "\t"}.get(e.group(1), e.group(1)),
                         val[1:-1])
            if toks and toks[-1][0] == "str":
                toks[-1] = ("str", toks[-1][1] + val)
                continue
        toks.append((kind, val))
    toks.append(("end", None))
    state = {"i": 0}

    def peek():
        return toks[state["i"]]

    def take(expect=None):
        t = toks[state["i"]]
        if expect is not None and t[1] != expect:
            raise ValueError("libconfig: expected %r, got %r" % (expect, t[1]))
        state["i"] += 1
        return t

    def value():
        kind, v = take()
        if kind == "str":
            return v
        if kind == "num":
            v = v.rstrip("L")
            if v.lower().startswith(("0x", "+0x", "-0x")):
                return int(v, 16)
            return float(v) if re.search(r"[.eE]", v) else int(v)
        if kind == "name" and v.lower() in ("true", "false"):
            return v.lower() == "true"
        if v == "{":
            g = settings("}")
            take("}")
            return g
        if v in ("(", "["):
            close = ")" if v == "(" else "]"
            items = []
            while peek()[1] != close:
                items.append(value())
                if peek()[1] == ",":
                    take()
            take(close)
            return items
        raise ValueError("libconfig: unexpected %r" % v)

    def settings(close):
        out = {}
        while peek()[1] != close and peek()[0] != "end":
            kind, name = take()
            if kind != "name":
                raise ValueError("libconfig: expected a setting name, got %r" % name)
            if peek()[1] not in ("=", ":"):
                raise ValueError("libconfig: expected = after %s" % name)
            take()
            if name in out:
                raise ValueError("libconfig: duplicate setting %s" % name)
            out[name] = value()
            if peek()[1] in (";", ","):
                take()
        return out

    root = settings(None)
    if peek()[0] != "end":
        raise ValueError("libconfig: trailing %r" % (peek()[1],))
    return root


def conf_setting_names(node, out=None):
    """Every setting name in a parsed libconfig tree."""
    out = set() if out is None else out
    if isinstance(node, dict):
        for k, v in node.items():
            out.add(k)
            if k != "metadata":   # user-defined keys, not settings
                conf_setting_names(v, out)
    elif isinstance(node, list):
        for v in node:
            conf_setting_names(v, out)
    return out


def conf_strings(node):
    if isinstance(node, dict):
        node = list(node.values())
    if isinstance(node, list):
        return [s for v in node for s in conf_strings(v)]
    return [node] if isinstance(node, str) else []


def credential_refs(text):
    """NAME of every ${CREDENTIALS_DIRECTORY}/NAME a config uses (comments
    do not count)."""
    return {m for s in conf_strings(libconfig_load(text))
            for m in re.findall(r"\$\{CREDENTIALS_DIRECTORY\}/([A-Za-z0-9_.-]+)", s)}


def conf_listen(conf):
    lst = conf.get("listen", {})
    return lst.get("address", "127.0.0.1"), lst.get("port", DEFAULT_PORT)


def has_settings(text):
    return bool(libconfig_load(text))


# ---------------------------------------------------------------------------
# Dockerfile and systemd unit readers.

def dockerfile_stages(text):
    """[(base image, [(INSTRUCTION, args), ...]), ...] with continuations joined."""
    joined = re.sub(r"\\\n", " ", text)
    stages = []
    for line in joined.split("\n"):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        instr, _, args = s.partition(" ")
        instr = instr.upper()
        args = re.sub(r"\s+", " ", args.strip())
        if instr == "FROM":
            stages.append((args.split()[0], []))
        elif stages:
            stages[-1][1].append((instr, args))
    return stages


def unit_load(path):
    """{section: [(key, value), ...]} of a systemd unit file."""
    out = {}
    section = None
    for line in read(path).split("\n"):
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("["):
            section = s.strip("[]")
            out.setdefault(section, [])
            continue
        k, _, v = s.partition("=")
        out[section].append((k.strip(), v.strip()))
    return out


def unit_get(unit, section, key):
    return [v for k, v in unit.get(section, []) if k == key]


# ---------------------------------------------------------------------------

def find(docs, kind, name=None):
    hits = [d for d in docs if d.get("kind") == kind
            and (name is None or d["metadata"]["name"] == name)]
    if len(hits) != 1:
        raise AssertionError("expected one %s %s, found %d" % (kind, name or "", len(hits)))
    return hits[0]


def container(spec, name):
    hits = [c for c in spec["containers"] if c["name"] == name]
    assert len(hits) == 1, "container %s: %d found" % (name, len(hits))
    return hits[0]


def mounts_by_path(c):
    return {m["mountPath"]: m for m in c.get("volumeMounts", [])}


def volumes_by_name(spec):
    return {v["name"]: v for v in spec.get("volumes", [])}


def env_of(c):
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def kustomization(path):
    docs = load_manifest(os.path.join(path, "kustomization.yaml"))
    assert len(docs) == 1
    return docs[0]


def manifests_of(path):
    """Every document of the resources (and patches) a kustomization lists."""
    k = kustomization(path)
    docs = []
    for r in k.get("resources", []):
        docs += load_manifest(os.path.join(path, r))
    return k, docs


class Layout:
    """What the checks need from one layout (sidecar or standalone)."""

    def __init__(self, path, pod_spec, pod_meta, conf_name, docs):
        self.path = path
        self.kust = kustomization(path)
        self.pod = pod_spec
        self.pod_meta = pod_meta
        self.c = container(pod_spec, "fluxrelay")
        gens = self.kust.get("configMapGenerator", [])
        assert len(gens) == 1, "one configMapGenerator expected"
        self.cm_name = gens[0]["name"]
        files = gens[0]["files"]
        assert files == ["fluxrelay.conf"], files
        self.conf_file = os.path.join(path, files[0])
        self.conf_text = read(self.conf_file)
        self.conf = libconfig_load(self.conf_text)
        self.docs = docs


class Sidecar:
    """The sidecar Component applied as kustomize applies it to Flux's shipped
    notification-controller (tests/fixtures/flux-shipped/): `dep` is Flux's
    Deployment as gotk-components.yaml has it, `out` the same after the
    Component's patches, `docs` the Component's own resources."""

    def __init__(self, deployment=None):
        k, docs = manifests_of(SIDECAR)
        self.kust = k
        self.refs = k.get("patches", [])
        self.patches = [(ref, load_manifest(os.path.join(SIDECAR, ref["path"]))[0])
                        for ref in self.refs]
        self.kinds = ["json6902" if isinstance(p, list) else "smp" for _, p in self.patches]
        self.dep = deployment if deployment is not None else gotk_nc_deployment()
        self.out = component_apply(self.dep, self.patches)
        tmpl = self.out["spec"]["template"]
        self.docs = docs
        self.lay = Layout(SIDECAR, tmpl["spec"], tmpl.get("metadata", {}), "fluxrelay.conf", docs)


def load_sidecar():
    sc = Sidecar()
    return sc.lay, sc.refs, sc.out


class JsonPatchError(Exception):
    pass


def json6902_apply(doc, ops):
    """A copy of doc with the RFC 6902 operations test, add and replace
    applied (all the sidecar's patch uses). Raises JsonPatchError when a test
    fails or a path does not exist, as kustomize fails the build."""
    doc = copy.deepcopy(doc)
    for op in ops:
        keys = [t.replace("~1", "/").replace("~0", "~") for t in op["path"].split("/")[1:]]
        try:
            node = doc
            for t in keys[:-1]:
                node = node[int(t)] if isinstance(node, list) else node[t]
            last = keys[-1]
            if isinstance(node, list) and last != "-":
                last = int(last)
                if not 0 <= last < len(node) + (op["op"] == "add"):
                    raise IndexError(last)
            if op["op"] == "test":
                if node[last] != op["value"]:
                    raise JsonPatchError("test %s: %r != %r" % (op["path"], node[last], op["value"]))
            elif op["op"] == "add":
                if last == "-":
                    node.append(copy.deepcopy(op["value"]))
                elif isinstance(node, list):
                    node.insert(last, copy.deepcopy(op["value"]))
                else:
                    node[last] = copy.deepcopy(op["value"])
            elif op["op"] == "replace":
                node[last]   # must exist
                node[last] = copy.deepcopy(op["value"])
            else:
                raise JsonPatchError("operation %s not supported here" % op["op"])
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise JsonPatchError("%s %s: no such path (%r)" % (op["op"], op["path"], e))
    return doc


# The merge keys of the Kubernetes lists a strategic-merge patch of a
# Deployment can reach here (k8s.io/api patchMergeKey); other lists are replaced.
SMP_MERGE_KEYS = {"containers": "name", "initContainers": "name", "volumes": "name",
                  "env": "name", "volumeMounts": "mountPath", "ports": "containerPort"}


def smp_apply(doc, patch, field=None):
    """A copy of doc with a strategic-merge patch applied as kustomize applies
    it: maps merge, lists with a merge key merge item by item, and the items
    the patch adds come FIRST, before the existing ones (kustomize's merge
    prepends them), in the patch's order."""
    if isinstance(doc, dict) and isinstance(patch, dict):
        out = copy.deepcopy(doc)
        for k, v in patch.items():
            out[k] = smp_apply(out[k], v, k) if k in out else copy.deepcopy(v)
        return out
    key = SMP_MERGE_KEYS.get(field)
    if key and isinstance(doc, list) and isinstance(patch, list):
        old = copy.deepcopy(doc)
        new = []
        for item in patch:
            hits = [i for i, o in enumerate(old) if o.get(key) == item.get(key)]
            if hits:
                old[hits[0]] = smp_apply(old[hits[0]], item)
            else:
                new.append(copy.deepcopy(item))
        return new + old
    return copy.deepcopy(patch)


def component_apply(dep, patches):
    """Flux's Deployment after a Component's patches [(ref, patch)], in the
    kustomization's order: each applies to the Deployment its target names."""
    for ref, patch in patches:
        t = ref.get("target", {})
        if (t.get("kind"), t.get("name")) != (dep["kind"], dep["metadata"]["name"]):
            continue
        dep = json6902_apply(dep, patch) if isinstance(patch, list) else smp_apply(dep, patch)
    return dep


def flag_port(args, flag, default):
    """The port a Go (pflag) program binds for an address flag: the last
    --flag=ADDR or --flag ADDR wins."""
    port = default
    for i, a in enumerate(args):
        if a.startswith(flag + "="):
            port = int(a.split("=", 1)[1].rsplit(":", 1)[1])
        elif a == flag and i + 1 < len(args):
            port = int(args[i + 1].rsplit(":", 1)[1])
    return port


def check_nc_pod(t, shipped, dep, conf):
    """Flux's notification-controller Deployment after the sidecar: Flux's
    container is still containers[0] and unchanged, its listeners keep their
    ports, fluxrelay comes after it on its own ports, and everything else of
    Flux's Deployment is as shipped (fluxrelay only adds)."""
    spec = dep["spec"]["template"]["spec"]
    want = shipped["spec"]["template"]["spec"]
    t.assertEqual(spec["containers"][0], want["containers"][0],
                  "notification-controller is no longer containers[0], or was changed")
    t.assertEqual(spec["containers"][:len(want["containers"])], want["containers"])
    t.assertEqual([c["name"] for c in spec["containers"]][len(want["containers"]):],
                  ["fluxrelay"], "fluxrelay must be appended after Flux's containers")
    # Flux's listeners: what each flag binds is its containerPort, as shipped.
    manager = spec["containers"][0]
    declared = {p["name"]: p["containerPort"] for p in manager["ports"]}
    t.assertEqual(declared, {n: port for _, port, n in NC_LISTENERS}, "Flux's ports were changed")
    binds = {flag: flag_port(manager.get("args", []), flag, default)
             for flag, default, _ in NC_LISTENERS}
    t.assertEqual(binds, {flag: port for flag, port, _ in NC_LISTENERS})
    # fluxrelay: its two listeners, none of them one of Flux's.
    fr = spec["containers"][-1]
    lst = conf.get("listen", {})
    ports = {"events": lst.get("port", DEFAULT_PORT), "metrics": lst.get("metrics_port")}
    t.assertEqual(ports, {"events": SIDECAR_PORT, "metrics": SIDECAR_METRICS_PORT})
    t.assertEqual(lst.get("address"), "127.0.0.1", "the event listener stays inside the pod")
    t.assertEqual(lst.get("metrics_address"), "0.0.0.0", "Prometheus scrapes the pod IP")
    t.assertEqual(fr.get("ports"), [{"containerPort": SIDECAR_METRICS_PORT,
                                     "name": SIDECAR_METRICS_NAME, "protocol": "TCP"}],
                  "only the metrics listener is a containerPort")
    used = {}
    for owner, port in [("manager", p) for p in binds.values()] + \
            [("fluxrelay", p) for p in ports.values()]:
        t.assertNotIn(port, used, "port %d used twice (%s, %s)" % (port, used.get(port), owner))
        used[port] = owner
    names = [p["name"] for c in spec["containers"] for p in c.get("ports", [])]
    t.assertEqual(len(names), len(set(names)), "containerPort names clash: %s" % names)
    # Everything else of Flux's Deployment is as shipped; fluxrelay's volumes
    # are added after Flux's.
    mine = {v["name"] for v in spec["volumes"]} - {v["name"] for v in want["volumes"]}
    t.assertTrue(all(n.startswith("fluxrelay-") for n in mine), mine)
    t.assertEqual(spec["volumes"][:len(want["volumes"])], want["volumes"])
    rest = copy.deepcopy(dep)
    rest["spec"]["template"]["spec"]["containers"] = spec["containers"][:len(want["containers"])]
    rest["spec"]["template"]["spec"]["volumes"] = spec["volumes"][:len(want["volumes"])]
    t.assertEqual(rest, shipped, "the Component changed Flux's Deployment beyond adding fluxrelay")


# ---------------------------------------------------------------------------
# What Flux ships (tests/fixtures/flux-shipped/, unchanged copies with their
# origin in each file): notification-controller's Deployment and Services, the
# JSON6902 patch flux2 applies to the Deployment, and flux2's NetworkPolicies.

FLUX_SHIPPED = os.path.join(SRC, "tests", "fixtures", "flux-shipped")
FLUX_NAMESPACE = "flux-system"


def flux_shipped(name):
    return load_manifest(os.path.join(FLUX_SHIPPED, name))


def namespaced(doc):
    doc = copy.deepcopy(doc)
    doc["metadata"]["namespace"] = FLUX_NAMESPACE
    return doc


def gotk_nc_deployment():
    """notification-controller's Deployment as gotk-components.yaml has it:
    config/manager's, with flux2's bases patch, in flux-system."""
    (dep,) = flux_shipped("notification-controller.deployment.yaml")
    (ops,) = flux_shipped("flux2.bases.notification-controller.patch.yaml")
    return namespaced(json6902_apply(dep, ops))


def gotk_components_text():
    """A gotk-components.yaml of notification-controller alone, for kustomize."""
    import json
    docs = [gotk_nc_deployment()] + flux_services() + flux_policies()
    return "---\n".join(json.dumps(d) + "\n" for d in docs)   # JSON is YAML


def flux_services():
    return [namespaced(d) for d in flux_shipped("notification-controller.service.yaml")]


def flux_policies():
    out = []
    for f in sorted(os.listdir(FLUX_SHIPPED)):
        if f.startswith("flux2.policies."):
            out += [namespaced(d) for d in flux_shipped(f)]
    return out


def selects(selector, labels):
    """A Kubernetes label selector (matchLabels; {} selects everything)."""
    if selector is None:
        return False
    if set(selector) - {"matchLabels"}:
        raise AssertionError("selector not modelled here: %r" % selector)
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def admits(policies, pod, source, port):
    """NetworkPolicy ingress semantics for TCP to pod:port from source:
    a pod no Ingress policy selects admits everything; otherwise some rule of
    a selecting policy must admit both the source (from; none = any) and the
    port (ports; none = any). pod/source: {"namespace", "labels",
    "namespace_labels"}."""
    selecting = [p for p in policies if p["metadata"]["namespace"] == pod["namespace"]
                 and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
                 and selects(p["spec"]["podSelector"], pod["labels"])]
    if not selecting:
        return True
    for p in selecting:
        for rule in p["spec"].get("ingress", []):
            peers = rule.get("from")
            ok_from = peers is None or any(peer_admits(p, peer, source) for peer in peers)
            ok_port = rule.get("ports") is None or any(
                r.get("protocol", "TCP") == "TCP" and r.get("port") == port
                for r in rule["ports"])
            if ok_from and ok_port:
                return True
    return False


def peer_admits(policy, peer, source):
    if set(peer) - {"podSelector", "namespaceSelector"}:
        raise AssertionError("peer not modelled here: %r" % peer)
    if "namespaceSelector" in peer:
        ns_ok = selects(peer["namespaceSelector"], source["namespace_labels"])
    else:
        ns_ok = source["namespace"] == policy["metadata"]["namespace"]
    pod_ok = "podSelector" not in peer or selects(peer["podSelector"], source["labels"])
    return ns_ok and pod_ok


# Who connects to notification-controller's pod: Flux's controllers (same
# namespace), Prometheus and an ingress controller (other namespaces).
POLICY_SOURCES = {
    "kustomize-controller": {"namespace": FLUX_NAMESPACE, "labels": {"app": "kustomize-controller"},
                             "namespace_labels": {"kubernetes.io/metadata.name": FLUX_NAMESPACE}},
    "prometheus": {"namespace": "monitoring", "labels": {"app": "prometheus"},
                   "namespace_labels": {"kubernetes.io/metadata.name": "monitoring"}},
    "ingress": {"namespace": "ingress-nginx", "labels": {"app": "ingress-nginx"},
                "namespace_labels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
}


def admitted(policies, pod_labels, ports):
    pod = {"namespace": FLUX_NAMESPACE, "labels": pod_labels}
    return {(src, port) for src, s in POLICY_SOURCES.items() for port in ports
            if admits(policies, pod, s, port)}


def load_standalone():
    k, docs = manifests_of(STANDALONE)
    dep = find(docs, "Deployment", "fluxrelay")
    return Layout(STANDALONE, dep["spec"]["template"]["spec"], dep["spec"]["template"]["metadata"],
                  "fluxrelay.conf", docs), dep


def http_url_port(url):
    m = re.fullmatch(r"http://([^/:]+):(\d+)(/.*)?", url)
    assert m, "not an http URL with a port: %s" % url
    return m.group(1), int(m.group(2)), m.group(3) or "/"


def exec_probe_url(probe):
    cmd = probe["exec"]["command"]
    assert cmd[0] == "wget", cmd
    for flag in ("-q", "--no-proxy"):
        assert flag in cmd, "probe without %s: %s" % (flag, cmd)
    # -t 1: wget retries 20 times by default, longer than any probe timeout
    assert cmd[cmd.index("-t") + 1] == "1", cmd
    return cmd[-1]


def dockerfile():
    stages = dockerfile_stages(read(os.path.join(SRC, "docker", "Dockerfile")))
    assert len(stages) == 2, [s[0] for s in stages]
    return stages


def runtime_instr(instr):
    return [a for i, a in dockerfile()[-1][1] if i == instr]


class StaticChecks(unittest.TestCase):

    def test_yaml_loader_matches_yaml(self):
        # The built-in loader on constructs the manifests and kubectl use.
        text = ("a: 1\nb: '*'\nc: \"x: y\"\nd: [\"-c\", /etc/x, 2]\ne: {}\n"
                "f:\n- k: v\n  l: 0444\n-  plain text\ng: |\n  line1\n\n  line2\nh: 0.1.0\n"
                "i: on\nj: 1.5\n---\n# c\nk: v # c\n")
        self.assertEqual(yaml_load_all(text), [
            {"a": 1, "b": "*", "c": "x: y", "d": ["-c", "/etc/x", 2], "e": {},
             "f": [{"k": "v", "l": 0o444}, "plain text"], "g": "line1\n\nline2\n",
             "h": "0.1.0", "i": True, "j": 1.5},
            {"k": "v"}])
        for bad in ("a: 1\n  b: 2\n", "a: &x 1\n", "a: 1\na: 2\n", "a: >\n  x\n"):
            with self.assertRaises(YamlError, msg=bad):
                yaml_load_all(bad)

    def test_every_manifest_parses(self):
        seen = 0
        for root, _, files in os.walk(K8S):
            for f in sorted(files):
                if not f.endswith(".yaml"):
                    continue
                docs = load_manifest(os.path.join(root, f))
                self.assertTrue(docs, f)
                if isinstance(docs[0], list):
                    # A JSON6902 patch: only as a patch of its kustomization.
                    self.assertEqual(len(docs), 1, f)
                    self.assertIn(f, [p.get("path") for p in kustomization(root).get("patches", [])])
                    for op in docs[0]:
                        self.assertIn(op["op"], ("test", "add", "replace", "remove"), f)
                        self.assertTrue(op["path"].startswith("/"), f)
                    seen += 1
                    continue
                for d in docs:
                    self.assertIn("apiVersion", d, f)
                    self.assertIn("kind", d, f)
                    if d["kind"] not in ("Kustomization", "Component"):
                        self.assertTrue(d["metadata"]["name"], f)
                seen += 1
        self.assertGreaterEqual(seen, 10)

    def test_secret(self):
        (s,) = load_manifest(os.path.join(K8S, "secret.example.yaml"))
        self.assertEqual((s["kind"], s["metadata"]["name"], s["metadata"]["namespace"]),
                         ("Secret", SECRET_NAME, "flux-system"))
        data = s["stringData"]
        self.assertEqual(set(data), FLUXRELAY_SECRET_KEYS | {"token"})
        # Flux's generic-hmac Provider signs with "token"; fluxrelay checks "hmac-key".
        self.assertEqual(data["token"], data["hmac-key"])
        self.assertTrue(data["slack-url"].startswith("https://hooks.slack.com/"))
        # Placeholder values must never be applied: no layout lists the Secret.
        for layout in (SIDECAR, STANDALONE):
            k, docs = manifests_of(layout)
            self.assertNotIn("../secret.example.yaml", k.get("resources", []))
            self.assertNotIn("Secret", {d["kind"] for d in docs})

    def check_common(self, lay):
        c = lay.c
        self.assertEqual(c["args"], ["-c", CONF_PATH])
        self.assertEqual(c["image"].split(":")[0], lay.kust["images"][0]["name"])
        mounts = mounts_by_path(c)
        vols = volumes_by_name(lay.pod)
        # config
        conf_dir = os.path.dirname(CONF_PATH)
        self.assertIn(conf_dir, mounts)
        self.assertTrue(mounts[conf_dir].get("readOnly"))
        self.assertEqual(vols[mounts[conf_dir]["name"]]["configMap"]["name"], lay.cm_name)
        # secrets: only what fluxrelay reads, named as the config references them
        env = env_of(c)
        self.assertEqual(env.get("CREDENTIALS_DIRECTORY"), SECRETS_DIR)
        self.assertIn(SECRETS_DIR, mounts)
        sec = vols[mounts[SECRETS_DIR]["name"]]["secret"]
        self.assertEqual(sec["secretName"], SECRET_NAME)
        items = {i["key"]: i["path"] for i in sec["items"]}
        self.assertEqual(set(items), FLUXRELAY_SECRET_KEYS)
        self.assertTrue(all(k == p for k, p in items.items()), items)
        self.assertEqual(credential_refs(lay.conf_text), FLUXRELAY_SECRET_KEYS)
        self.assertEqual(lay.conf["auth"]["hmac_key_file"], "${CREDENTIALS_DIRECTORY}/hmac-key")
        self.assertEqual([p["url_file"] for p in lay.conf["providers"] if p["type"] == "slack"],
                         ["${CREDENTIALS_DIRECTORY}/slack-url"])
        # state
        self.assertEqual(env.get("STATE_DIRECTORY"), STATE_DIR)
        self.assertIn(STATE_DIR, mounts)
        self.assertNotIn("state_dir", lay.conf)   # $STATE_DIRECTORY decides
        self.assertIn("/tmp", mounts)
        # identity and hardening agree with the image
        uid = int(runtime_instr("USER")[0].split(":")[0])
        sc = dict(lay.pod.get("securityContext", {}))
        sc.update(c.get("securityContext", {}))
        self.assertEqual(sc.get("runAsUser"), uid)
        self.assertTrue(sc.get("runAsNonRoot"))
        self.assertTrue(sc.get("readOnlyRootFilesystem"))
        self.assertFalse(sc.get("allowPrivilegeEscalation"))
        self.assertEqual(sc.get("capabilities", {}).get("drop"), ["ALL"])
        self.assertEqual(sc.get("seccompProfile", {}).get("type"), "RuntimeDefault")
        # Flux side: Provider -> this fluxrelay, Alert -> Provider, same Secret
        prov = find(lay.docs, "Provider")
        alert = find(lay.docs, "Alert")
        for d in (prov, alert):
            self.assertEqual(d["apiVersion"], "notification.toolkit.fluxcd.io/v1beta3")
            self.assertEqual(d["metadata"]["namespace"], "flux-system")
        self.assertEqual(prov["spec"]["type"], "generic-hmac")
        self.assertEqual(prov["spec"]["secretRef"]["name"], SECRET_NAME)
        self.assertEqual(alert["spec"]["providerRef"]["name"], prov["metadata"]["name"])
        self.assertEqual(alert["spec"]["eventSeverity"], "info")
        kinds = {s["kind"] for s in alert["spec"]["eventSources"]}
        self.assertTrue({"Kustomization", "HelmRelease", "GitRepository"} <= kinds, kinds)
        return prov

    def test_sidecar(self):
        sc = Sidecar()
        lay = sc.lay
        self.assertEqual(lay.kust["kind"], "Component")
        # Only JSON6902: kustomize prepends what a strategic-merge patch adds
        # to a list, and fluxrelay must come after Flux's container.
        self.assertEqual(sc.kinds, ["json6902"])
        for ref, _ in sc.patches:
            self.assertEqual(ref["target"]["kind"], "Deployment")
            self.assertEqual(ref["target"]["name"], "notification-controller")
        self.assertEqual(lay.kust["configMapGenerator"][0]["namespace"], "flux-system")
        prov = self.check_common(lay)
        addr, port = conf_listen(lay.conf)
        self.assertEqual((addr, port), ("127.0.0.1", SIDECAR_PORT))
        self.assertEqual(http_url_port(prov["spec"]["address"]), ("127.0.0.1", port, "/"))
        check_nc_pod(self, sc.dep, sc.out, lay.conf)
        # Probes run inside the container, against the event listener.
        self.assertNotIn("readinessProbe", lay.c)
        self.assertEqual(exec_probe_url(lay.c["startupProbe"]),
                         "http://127.0.0.1:%d/readyz" % port)
        self.assertEqual(exec_probe_url(lay.c["livenessProbe"]),
                         "http://127.0.0.1:%d/healthz" % port)
        # Flux's own probes still name its health port.
        manager = sc.out["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in manager["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            self.assertEqual(ports[manager[probe]["httpGet"]["port"]], 9440, probe)
        self.assertIn("emptyDir", volumes_by_name(lay.pod)[mounts_by_path(lay.c)[STATE_DIR]["name"]])

    def test_sidecar_keeps_flux_services(self):
        """Flux's Services select the pod and target notification-controller's
        ports by name: they reach the same numbers in Flux's container."""
        sc = Sidecar()
        spec = sc.out["spec"]["template"]["spec"]
        owner = {p["name"]: (c["name"], p["containerPort"])
                 for c in spec["containers"] for p in c.get("ports", [])}
        want = {"notification-controller": ("manager", 9090), "webhook-receiver": ("manager", 9292)}
        for svc in flux_services():
            self.assertTrue(selects({"matchLabels": svc["spec"]["selector"]},
                                    sc.out["spec"]["template"]["metadata"]["labels"]))
            (sp,) = svc["spec"]["ports"]
            self.assertEqual(owner[sp["targetPort"]], want[svc["metadata"]["name"]])

    def test_sidecar_user_patches_reach_flux(self):
        """kustomize applies a Component before the parent's own patches: the
        `containers/0` patches Flux's docs tell users to write (here the
        multi-tenancy lockdown's) must still change notification-controller,
        never fluxrelay."""
        sc = Sidecar()
        user = [{"op": "add", "path": "/spec/template/spec/containers/0/args/-",
                 "value": "--no-cross-namespace-refs=true"}]
        out = json6902_apply(sc.out, user)
        spec = out["spec"]["template"]["spec"]
        self.assertEqual(spec["containers"][0]["name"], "manager")
        self.assertEqual(spec["containers"][0]["args"][-1], "--no-cross-namespace-refs=true")
        self.assertEqual(container(spec, "fluxrelay")["args"], ["-c", CONF_PATH])

    def test_sidecar_network_policies(self):
        """Flux's NetworkPolicies, unchanged, keep admitting what they admit;
        the Component's policy adds port 9394 (fluxrelay's /metrics) from other
        namespaces and nothing else; 9393 stays closed from outside."""
        sc = Sidecar()
        flux = flux_policies()
        self.assertEqual({p["metadata"]["name"] for p in flux},
                         {"allow-egress", "allow-scraping", "allow-webhooks"})
        mine = [d for d in sc.docs if d["kind"] == "NetworkPolicy"]
        self.assertEqual([p["metadata"]["name"] for p in mine], ["allow-fluxrelay-metrics"])
        self.assertEqual(mine[0]["metadata"]["namespace"], FLUX_NAMESPACE)
        # The Component patches nothing but notification-controller's Deployment.
        self.assertEqual({(r["target"]["kind"], r["target"]["name"]) for r, _ in sc.patches},
                         {("Deployment", "notification-controller")})
        labels = sc.out["spec"]["template"]["metadata"]["labels"]
        ports = [p for _, p, _ in NC_LISTENERS] + [SIDECAR_PORT, SIDECAR_METRICS_PORT]
        before = admitted(flux, labels, ports)
        after = admitted(flux + mine, labels, ports)
        # What Flux's policies are for: events from the controllers, webhooks
        # and scraping from anywhere.
        for want in (("kustomize-controller", 9090), ("ingress", 9292), ("prometheus", 8080)):
            self.assertIn(want, before)
        self.assertNotIn(("prometheus", SIDECAR_METRICS_PORT), before,
                         "Flux's policies alone do not admit fluxrelay's metrics")
        self.assertLessEqual(before, after)
        self.assertEqual(after - before, {("prometheus", SIDECAR_METRICS_PORT),
                                          ("ingress", SIDECAR_METRICS_PORT)})
        # Another Flux controller's pod is not selected by the new policy.
        other = {"app": "kustomize-controller"}
        self.assertEqual(admitted(flux, other, ports), admitted(flux + mine, other, ports))

    def test_sidecar_checks_can_fail(self):
        """check_nc_pod and admitted() reject what the Component used to do:
        fluxrelay added by a strategic-merge patch (kustomize prepends it),
        notification-controller's receiver moved to free 9292, fluxrelay on
        9292; and a policy that narrows what Flux's admit shows."""
        sc = Sidecar()
        fr = container(sc.out["spec"]["template"]["spec"], "fluxrelay")
        smp = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "notification-controller"},
               "spec": {"template": {"spec": {"containers": [fr]}}}}
        prepended = smp_apply(sc.dep, smp)
        self.assertEqual([c["name"] for c in prepended["spec"]["template"]["spec"]["containers"]],
                         ["fluxrelay", "manager"])
        with self.assertRaises(AssertionError):
            check_nc_pod(self, sc.dep, prepended, sc.lay.conf)
        moved = json6902_apply(sc.out, [
            {"op": "add", "path": "/spec/template/spec/containers/0/args/-",
             "value": "--receiverAddr=:9293"},
            {"op": "replace", "path": "/spec/template/spec/containers/0/ports/1/containerPort",
             "value": 9293}])
        with self.assertRaises(AssertionError):
            check_nc_pod(self, sc.dep, moved, sc.lay.conf)
        conf = copy.deepcopy(sc.lay.conf)
        conf["listen"]["port"] = 9292
        with self.assertRaises(AssertionError):
            check_nc_pod(self, sc.dep, sc.out, conf)
        deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "x", "namespace": FLUX_NAMESPACE},
                "spec": {"policyTypes": ["Ingress"], "podSelector": {},
                         "ingress": [{"from": [{"podSelector": {}}]}]}}
        labels = sc.out["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(admitted([deny], labels, [9292]), {("kustomize-controller", 9292)})

    def test_standalone(self):
        lay, dep = load_standalone()
        self.assertEqual(lay.kust["kind"], "Kustomization")
        self.assertEqual(lay.kust["namespace"], "flux-system")
        self.assertEqual(dep["spec"]["replicas"], 1)
        self.assertEqual(dep["spec"]["strategy"]["type"], "Recreate")
        self.assertEqual(dep["spec"]["selector"]["matchLabels"], lay.pod_meta["labels"])
        prov = self.check_common(lay)
        addr, port = conf_listen(lay.conf)
        self.assertEqual(addr, "0.0.0.0")
        self.assertEqual(port, DEFAULT_PORT)
        self.assertIn("hmac_key_file", lay.conf["auth"], "listening beyond loopback needs auth")
        ports = {p["name"]: p["containerPort"] for p in lay.c["ports"]}
        self.assertEqual(ports, {"http": port})
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            self.assertEqual(lay.c[probe]["httpGet"], {"path": path, "port": "http"})
        svc = find(lay.docs, "Service", "fluxrelay")
        self.assertEqual(svc["spec"]["selector"], lay.pod_meta["labels"])
        (sp,) = svc["spec"]["ports"]
        self.assertEqual(sp["targetPort"], "http")
        self.assertEqual(http_url_port(prov["spec"]["address"]),
                         ("%s.flux-system.svc" % svc["metadata"]["name"], sp["port"], "/"))
        self.assertEqual(sp["port"], DEFAULT_PORT)
        pvc = find(lay.docs, "PersistentVolumeClaim")
        vol = volumes_by_name(lay.pod)[mounts_by_path(lay.c)[STATE_DIR]["name"]]
        self.assertEqual(vol["persistentVolumeClaim"]["claimName"], pvc["metadata"]["name"])
        self.assertEqual(pvc["spec"]["accessModes"], ["ReadWriteOnce"])
        self.assertEqual(lay.pod["securityContext"]["fsGroup"],
                         int(runtime_instr("USER")[0].split(":")[1]), "the PVC must be writable")

    def test_dockerfile(self):
        (build_from, build), (run_from, _) = dockerfile()
        self.assertEqual(build_from, "debian:bookworm")
        self.assertEqual(run_from, "debian:bookworm-slim")
        build_text = " ".join(a for i, a in build if i == "RUN")
        for piece in ("autoreconf -fi", "--prefix=/usr", "--sysconfdir=/etc",
                      "make install DESTDIR=/out"):
            self.assertIn(piece, build_text)
        self.assertEqual(runtime_instr("EXPOSE"), [str(DEFAULT_PORT)])
        self.assertEqual(runtime_instr("VOLUME"), ['["%s"]' % STATE_DIR])
        env = " ".join(runtime_instr("ENV"))
        self.assertIn("STATE_DIRECTORY=%s" % STATE_DIR, env)
        self.assertIn("CREDENTIALS_DIRECTORY=%s" % SECRETS_DIR, env)
        user = runtime_instr("USER")
        self.assertEqual(user, ["65532:65532"])
        run_text = " ".join(runtime_instr("RUN"))
        self.assertIn("useradd --uid 65532 --gid 65532", run_text)
        self.assertIn("install -d -o 65532 -g 65532 -m 0700 %s" % STATE_DIR, run_text)
        self.assertEqual(runtime_instr("ENTRYPOINT"), ['["/usr/sbin/fluxrelay"]'])
        self.assertIn("COPY --from=build /out/usr/sbin/fluxrelay /usr/sbin/fluxrelay",
                      ["COPY " + a for a in runtime_instr("COPY")])
        self.assertEqual(runtime_instr("CMD"), ['["-l", "0.0.0.0:%d"]' % DEFAULT_PORT])
        (hc,) = runtime_instr("HEALTHCHECK")
        self.assertIn("http://127.0.0.1:%d/healthz" % DEFAULT_PORT, hc)
        self.assertIn(" wget ", run_text + " ", "HEALTHCHECK and probes use wget")
        for flag in ("--no-proxy", "-t 1"):
            self.assertIn(flag, hc)
        # The Dockerfile-specific ignore file must not hide the sources.
        ign = [l.strip() for l in read(os.path.join(SRC, "docker", "Dockerfile.dockerignore"))
               .split("\n") if l.strip() and not l.startswith("#")]
        for keep in ("src", "configure.ac", "Makefile.am", "etc", "man", "systemd", "scripts"):
            self.assertNotIn(keep, ign)

    def test_runtime_libraries(self):
        """Every library the built binary links directly comes from a package
        the runtime stage installs (or from the base image's libc)."""
        if not (shutil.which("readelf") and shutil.which("dpkg") and shutil.which("ldd")):
            self.skipTest("readelf, ldd or dpkg missing")
        bin_ = os.path.abspath(frtest.BIN)
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                            subprocess.run(["readelf", "-d", bin_], capture_output=True,
                                           text=True, check=True).stdout)
        if any(n.startswith(("libasan", "libubsan", "libtsan")) for n in needed):
            self.skipTest("sanitizer build")
        paths = dict(re.findall(r"^\s*(\S+) => (/\S+)", subprocess.run(
            ["ldd", bin_], capture_output=True, text=True).stdout, re.M))
        installed = set()
        for run in runtime_instr("RUN"):
            m = re.search(r"apt-get install -y --no-install-recommends (.*?)&&", run)
            if m:
                installed |= set(m.group(1).split())
        self.assertTrue(installed)
        base = {"libc6", "libgcc-s1"}
        for soname in needed:
            path = paths.get(soname)
            self.assertTrue(path, "%s not resolved by ldd" % soname)
            r = subprocess.run(["dpkg", "-S", os.path.realpath(path)], capture_output=True, text=True)
            if r.returncode != 0:
                r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, "no package owns %s" % path)
            pkg = r.stdout.split(":")[0]
            self.assertIn(pkg, installed | base, "%s (%s) is not installed by the runtime stage"
                          % (soname, pkg))

    def test_systemd_units(self):
        svc = unit_load(os.path.join(SRC, "systemd", "fluxrelay.service"))
        sock = unit_load(os.path.join(SRC, "systemd", "fluxrelay.socket"))
        g = lambda k: unit_get(svc, "Service", k)
        self.assertEqual(g("Type"), ["notify"])
        self.assertEqual(g("ExecStart"), ["/usr/sbin/fluxrelay -c %s" % CONF_PATH])
        # Only the signal: systemd runs the first ExecReload= command without
        # the credentials, so a --check-config there fails every reload; the
        # daemon validates and keeps its configuration itself.
        # The shell's kill: /bin/kill (procps) is not on every system.
        self.assertEqual(g("ExecReload"), ["/bin/sh -c 'kill -HUP \"$MAINPID\"'"])
        self.assertEqual(g("RestartPreventExitStatus"), ["78"])
        self.assertEqual(g("Restart"), ["on-failure"])
        self.assertEqual(g("DynamicUser"), ["yes"])
        self.assertEqual(g("StateDirectory"), [os.path.basename(STATE_DIR)])
        self.assertEqual(g("CapabilityBoundingSet"), [""])
        for k in ("ProtectSystem",):
            self.assertEqual(g(k), ["strict"])
        for k in ("NoNewPrivileges", "PrivateTmp", "PrivateDevices", "ProtectHome",
                  "MemoryDenyWriteExecute", "RestrictSUIDSGID", "LockPersonality"):
            self.assertEqual(g(k), ["yes"], k)
        creds = dict(v.split(":", 1) for v in g("LoadCredential"))
        self.assertEqual(set(creds), FLUXRELAY_SECRET_KEYS)
        for name, source in creds.items():
            self.assertEqual(source, os.path.join(os.path.dirname(CONF_PATH), name))
        self.assertEqual(unit_get(sock, "Socket", "ListenStream"), ["127.0.0.1:%d" % DEFAULT_PORT])

    def test_example_config_matches_unit(self):
        text = read(os.path.join(SRC, "etc", "fluxrelay.conf"))
        if not has_settings(text):
            self.skipTest("etc/fluxrelay.conf has no settings yet")
        conf = libconfig_load(text)
        svc = unit_load(os.path.join(SRC, "systemd", "fluxrelay.service"))
        creds = {v.split(":", 1)[0] for v in unit_get(svc, "Service", "LoadCredential")}
        # Every credential the example reads is loaded by the unit, and the
        # unit loads nothing the example does not read (a missing file would
        # stop the service from starting).
        self.assertEqual(credential_refs(text), creds)
        self.assertEqual(conf_listen(conf)[1], DEFAULT_PORT)

    def test_systemd_analyze_verify(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze not installed")
        if not shutil.which("man"):
            self.skipTest("man not installed (verify checks Documentation=man:... with it)")
        if not os.access(frtest.BIN, os.X_OK):
            self.skipTest("no fluxrelay binary")
        tmp = tempfile.mkdtemp(prefix="frtest-units-")
        try:
            # The unit with its paths moved to this build and a temporary
            # sysconfdir, as `make install` substitutes them.
            etc = os.path.join(tmp, "etc")
            os.makedirs(os.path.join(etc, "fluxrelay"))
            text = read(os.path.join(SRC, "systemd", "fluxrelay.service"))
            text = text.replace("/usr/sbin/fluxrelay", os.path.abspath(frtest.BIN))
            text = text.replace("/etc/fluxrelay", os.path.join(etc, "fluxrelay"))
            with open(os.path.join(tmp, "fluxrelay.service"), "w") as f:
                f.write(text)
            shutil.copy(os.path.join(SRC, "systemd", "fluxrelay.socket"), tmp)
            # Documentation=man:... is checked with man(1): offer our pages.
            man = os.path.join(tmp, "man")
            for sec, page in (("8", "fluxrelay.8"), ("5", "fluxrelay.conf.5")):
                os.makedirs(os.path.join(man, "man" + sec))
                shutil.copy(os.path.join(SRC, "man", page), os.path.join(man, "man" + sec))
            env = dict(os.environ, MANPATH=man + ":", SYSTEMD_LOG_LEVEL="notice")
            r = subprocess.run(["systemd-analyze", "verify", "fluxrelay.service", "fluxrelay.socket"],
                               cwd=tmp, env=env, capture_output=True, text=True, timeout=60)
            out = (r.stdout + r.stderr).strip()
            self.assertEqual((r.returncode, out), (0, ""), out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_man_pages(self):
        conf5 = read(os.path.join(SRC, "man", "fluxrelay.conf.5"))
        # Every setting name that valid-full.conf uses is documented.
        full = os.path.join(SRC, "tests", "configs", "valid-full.conf")
        if os.path.exists(full):
            names = conf_setting_names(libconfig_load(read(full)))
            plain = conf5.replace("\\-", "-").replace("\\&", "")
            missing = sorted(n for n in names if not re.search(
                r"(?m)^\.(?:B|BR|TP|IB)\b.*\b%s\b" % re.escape(n), plain))
            self.assertEqual(missing, [], "settings missing from fluxrelay.conf(5)")
        if not shutil.which("groff"):
            self.skipTest("groff not installed")
        for page in ("fluxrelay.8", "fluxrelay.conf.5"):
            r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", os.path.join(SRC, "man", page)],
                               capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, LC_ALL="C.UTF-8"))
            self.assertEqual((r.returncode, r.stderr.strip()), (0, ""), page)

    def test_man_pages_mandoc_lint(self):
        """mandoc's checker, warnings and worse (a .TH date it cannot parse,
        among others); its STYLE hints are not checked."""
        if not shutil.which("mandoc"):
            self.skipTest("mandoc not installed")
        for page in ("fluxrelay.8", "fluxrelay.conf.5"):
            r = subprocess.run(["mandoc", "-Tlint", "-Wwarning", os.path.join(SRC, "man", page)],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual((r.returncode, (r.stdout + r.stderr).strip()), (0, ""), page)

    def test_no_merge_conflict_markers(self):
        """No line of the sources and docs is a merge's conflict marker: groff
        and mandoc print such lines as text (a man page once shipped them)."""
        markers = re.compile(r"^(<{7} |={7}$|>{7} )", re.M)
        found = []
        tops = ["README.md", "Makefile.am", "configure.ac"]
        for d in ("man", "docs", "etc", "src", "tests", "bench", "scripts", "systemd", "docker",
                  "fuzz"):
            for root, _, files in os.walk(os.path.join(SRC, d)):
                tops += [os.path.relpath(os.path.join(root, f), SRC) for f in files]
        for rel in tops:
            path = os.path.join(SRC, rel)
            if not os.path.isfile(path) or os.path.getsize(path) > 4 << 20:
                continue
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            found += ["%s:%d" % (rel, text.count("\n", 0, m.start()) + 1)
                      for m in markers.finditer(text)]
        self.assertEqual(found, [])


def rendered(kdir):
    r = subprocess.run(["kubectl", "kustomize", kdir], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError("kubectl kustomize %s failed:\n%s" % (kdir, r.stderr))
    return yaml_load_all(r.stdout)


def render_sidecar(components, parent_patches=""):
    """kubectl kustomize of the sidecar Component on top of a gotk-components
    text, with the parent's own `patches:` entries (YAML text) if any:
    (returncode, docs or None, stderr)."""
    tmp = tempfile.mkdtemp(prefix="frtest-kust-")
    try:
        with open(os.path.join(tmp, "gotk-components.yaml"), "w") as f:
            f.write(components)
        with open(os.path.join(tmp, "kustomization.yaml"), "w") as f:
            f.write("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                    "resources:\n  - gotk-components.yaml\ncomponents:\n  - %s\n%s"
                    % (os.path.relpath(SIDECAR, tmp), parent_patches))
        r = subprocess.run(["kubectl", "kustomize", tmp], capture_output=True, text=True,
                           timeout=120)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return r.returncode, (yaml_load_all(r.stdout) if r.returncode == 0 else None), r.stderr


class KustomizeChecks(unittest.TestCase):

    def setUp(self):
        if not shutil.which("kubectl"):
            self.skipTest("kubectl not installed (kubectl kustomize renders the layouts)")

    def check_generated_config(self, docs, dep_name, conf_file):
        cms = [d for d in docs if d["kind"] == "ConfigMap"]
        self.assertEqual(len(cms), 1)
        cm = cms[0]
        self.assertRegex(cm["metadata"]["name"], r"^fluxrelay-config-[a-z0-9]{10}$")
        self.assertEqual(cm["data"]["fluxrelay.conf"], read(conf_file))
        dep = find(docs, "Deployment", dep_name)
        spec = dep["spec"]["template"]["spec"]
        vol = volumes_by_name(spec)["fluxrelay-config"]
        self.assertEqual(vol["configMap"]["name"], cm["metadata"]["name"])
        self.assertEqual(container(spec, "fluxrelay")["image"], "fluxrelay:0.1.0")
        for d in docs:
            self.assertEqual(d["metadata"].get("namespace"), "flux-system", d["kind"])
        return spec

    def test_sidecar_renders(self):
        rc, docs, err = render_sidecar(gotk_components_text())
        self.assertEqual(rc, 0, err)
        spec = self.check_generated_config(docs, "notification-controller",
                                           os.path.join(SIDECAR, "fluxrelay.conf"))
        self.assertEqual([c["name"] for c in spec["containers"]], ["manager", "fluxrelay"])
        self.assertEqual(set(volumes_by_name(spec)),
                         {"temp", "fluxrelay-config", "fluxrelay-secrets", "fluxrelay-state",
                          "fluxrelay-tmp"})
        self.assertEqual({d["kind"] for d in docs},
                         {"ConfigMap", "Deployment", "Service", "NetworkPolicy", "Provider",
                          "Alert"})
        # The rendered Deployment passes the same checks as the in-test
        # application of the patches (kustomize and this file agree), except
        # for the generated ConfigMap's name.
        dep = find(docs, "Deployment", "notification-controller")
        vol = volumes_by_name(dep["spec"]["template"]["spec"])["fluxrelay-config"]
        vol["configMap"]["name"] = "fluxrelay-config"
        conf = libconfig_load(read(os.path.join(SIDECAR, "fluxrelay.conf")))
        check_nc_pod(self, gotk_nc_deployment(), dep, conf)
        self.assertEqual(dep, Sidecar().out)
        # Flux's Services and policies come out as they went in.
        for d in flux_services() + flux_policies():
            self.assertEqual(find(docs, d["kind"], d["metadata"]["name"]), d)

    def test_sidecar_user_patches_reach_flux(self):
        """Flux's multi-tenancy lockdown patch, in the parent kustomization as
        Flux's docs write it, lands on notification-controller."""
        rc, docs, err = render_sidecar(gotk_components_text(), """patches:
  - patch: |
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --no-cross-namespace-refs=true
    target:
      kind: Deployment
      name: "(kustomize-controller|helm-controller|notification-controller)"
""")
        self.assertEqual(rc, 0, err)
        spec = find(docs, "Deployment", "notification-controller")["spec"]["template"]["spec"]
        self.assertEqual(container(spec, "manager")["args"][-1], "--no-cross-namespace-refs=true")
        self.assertEqual(container(spec, "fluxrelay")["args"], ["-c", CONF_PATH])

    def test_standalone_renders(self):
        docs = rendered(STANDALONE)
        self.check_generated_config(docs, "fluxrelay", os.path.join(STANDALONE, "fluxrelay.conf"))
        self.assertEqual(sorted(d["kind"] for d in docs),
                         sorted(["ConfigMap", "Deployment", "Service", "PersistentVolumeClaim",
                                 "Provider", "Alert"]))


def roff_examples(page, section):
    """The .EX/.EE blocks of one .SH section of a man page, roff escapes undone."""
    text = read(page)
    m = re.search(r"(?ms)^\.SH %s\n(.*?)(?=^\.SH )" % re.escape(section), text)
    assert m, section
    blocks = re.findall(r"(?ms)^\.EX\n(.*?)^\.EE\n", m.group(1))
    out = []
    for b in blocks:
        for a, z in (("\\-", "-"), ("\\e", "\\"), ("\\(aq", "'"), ("\\(dq", '"'), ("\\&", "")):
            b = b.replace(a, z)
        out.append(b)
    return out


_METRICS_LISTENER = []


def metrics_listener_supported():
    """Whether this build knows listen.metrics_address/metrics_port, which the
    sidecar's fluxrelay.conf uses (SPEC'd together with the sidecar layout;
    implemented in the HTTP server)."""
    if not _METRICS_LISTENER:
        tmp = tempfile.mkdtemp(prefix="frtest-metrics-")
        try:
            p = os.path.join(tmp, "probe.conf")
            with open(p, "w") as f:
                f.write('listen = { metrics_address = "127.0.0.1"; metrics_port = 0; };\n')
            r = frtest.run_cli(["--check-config", "-c", p], env={"STATE_DIRECTORY": tmp})
            _METRICS_LISTENER.append(r.returncode == 0)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _METRICS_LISTENER[0]


NO_METRICS_LISTENER = ("this build does not know listen.metrics_address/metrics_port "
                       "(the sidecar's fluxrelay.conf needs them)")


def local_sidecar_conf(text):
    """The sidecar's fluxrelay.conf for a daemon in a test: its metrics
    listener on loopback and an ephemeral port, not 0.0.0.0:9394 (without it
    when this build does not have one)."""
    if not metrics_listener_supported():
        out = re.sub(r"(?m)^\s*metrics_(address|port) = [^;]*;\n", "", text)
        assert out.count("metrics_") == text.count("metrics_") - 2, out
        return out
    for old, new in (('metrics_address = "0.0.0.0";', 'metrics_address = "127.0.0.1";'),
                     ("metrics_port = %d;" % SIDECAR_METRICS_PORT, "metrics_port = 0;")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def flux_controller_deployment(name):
    """A Flux controller's Deployment as gotk-components has it, reduced to
    what direct mode patches: its manager container and its arguments."""
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"template": {"spec": {"containers": [{
                "name": "manager", "image": "ghcr.io/fluxcd/%s" % name,
                "args": [FLUX_EVENTS_ADDR, "--watch-all-namespaces=true", "--log-level=info"]}]}}}}


def last_flag(args, flag):
    """The value Flux's flag parsing keeps: the last one given."""
    vals = [a.split("=", 1)[1] for a in args if a.startswith(flag + "=")]
    return vals[-1] if vals else None


class DirectMode(unittest.TestCase):
    """docker/k8s/direct: the controllers post to fluxrelay, which forwards
    every event to notification-controller (docs/deploy.md, direct mode)."""

    def setUp(self):
        self.k = kustomization(DIRECT)
        self.conf = libconfig_load(read(os.path.join(DIRECT, "fluxrelay.conf")))
        _, self.sdocs = manifests_of(STANDALONE)

    def fluxrelay_url(self):
        """The Service URL the controllers must post to."""
        svc = find(self.sdocs, "Service", "fluxrelay")
        (port,) = svc["spec"]["ports"]
        return "http://%s.flux-system.svc.cluster.local.:%d/" % (svc["metadata"]["name"],
                                                                 port["port"])

    def test_static(self):
        self.assertEqual(self.k["kind"], "Component")
        self.assertEqual(self.k["resources"], ["../standalone"])
        (gen,) = self.k["configMapGenerator"]
        self.assertEqual((gen["name"], gen["behavior"], gen["files"]),
                         ("fluxrelay-config", "replace", ["fluxrelay.conf"]))
        # The patch reaches every controller that records events, and not
        # notification-controller.
        (addr,) = [p for p in self.k["patches"] if p.get("path") == "events-addr-patch.yaml"]
        rx = re.compile(addr["target"]["name"])
        for name in FLUX_EVENT_CONTROLLERS:
            self.assertTrue(rx.fullmatch(name), name)
        self.assertFalse(rx.fullmatch("notification-controller"))
        (ops,) = load_manifest(os.path.join(DIRECT, "events-addr-patch.yaml"))
        dep = json6902_apply(flux_controller_deployment("kustomize-controller"), ops)
        args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        self.assertEqual(last_flag(args, "--events-addr"), self.fluxrelay_url())
        # fluxrelay listens where the Service sends (all addresses, the
        # container's port), without auth: the controllers sign nothing.
        lay, _ = load_standalone()
        port = [p for p in lay.c["ports"] if p["name"] == "http"][0]
        self.assertEqual(conf_listen(self.conf), ("0.0.0.0", port["containerPort"]))
        self.assertNotIn("auth", self.conf)

    def test_forwards_everything_to_notification_controller(self):
        provs = {p["name"]: p for p in self.conf["providers"]}
        fwd = [p for p in provs.values() if p["type"] == "generic"]
        self.assertEqual(len(fwd), 1, provs)
        host, port, _ = (re.fullmatch(r"http://([^/:]+)(?::(\d+))?(/.*)", fwd[0]["address"])
                         .groups())
        (svc,) = [d for d in flux_services() if d["metadata"]["name"] == "notification-controller"]
        self.assertEqual(host, "notification-controller.flux-system.svc.cluster.local.")
        (sport,) = svc["spec"]["ports"]
        self.assertEqual(int(port or 80), sport["port"])
        # ... whose target port is the container port of its event server.
        spec = gotk_nc_deployment()["spec"]["template"]["spec"]
        cport = [p for p in container(spec, "manager")["ports"] if p["name"] == sport["targetPort"]]
        self.assertEqual(cport[0]["containerPort"],
                         flag_port(container(spec, "manager")["args"], "--events-addr", 9090))
        # One alert sends it every event, commit-status updates included
        # (notification-controller's generic and Git providers need them).
        alerts = [a for a in self.conf["alerts"] if fwd[0]["name"] in a["providers"]]
        self.assertEqual(len(alerts), 1)
        a = alerts[0]
        self.assertEqual(a.get("severity"), "info")
        self.assertEqual(a["sources"], [{"kind": "*"}])
        self.assertIs(a.get("commit_status_updates"), True)
        for k in ("reasons", "include", "exclude"):
            self.assertNotIn(k, a)

    def test_renders(self):
        if not shutil.which("kubectl"):
            self.skipTest("kubectl not installed (kubectl kustomize renders the layouts)")
        import json
        tmp = tempfile.mkdtemp(prefix="frtest-direct-")
        try:
            fleet = os.path.join(tmp, "flux-system")
            os.makedirs(fleet)
            shutil.copytree(DIRECT, os.path.join(fleet, "fluxrelay-direct"))
            shutil.copytree(STANDALONE, os.path.join(fleet, "standalone"))
            docs = ([flux_controller_deployment(n) for n in FLUX_EVENT_CONTROLLERS] +
                    [gotk_nc_deployment()] + flux_services())
            with open(os.path.join(fleet, "gotk-components.yaml"), "w") as f:
                f.write("---\n".join(json.dumps(d) + "\n" for d in docs))
            with open(os.path.join(fleet, "kustomization.yaml"), "w") as f:
                f.write("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                        "resources:\n  - gotk-components.yaml\n"
                        "components:\n  - fluxrelay-direct\n")
            out = rendered(fleet)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for name in FLUX_EVENT_CONTROLLERS:
            args = find(out, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["args"]
            self.assertEqual(last_flag(args, "--events-addr"), self.fluxrelay_url(), name)
        nc = find(out, "Deployment", "notification-controller")
        self.assertEqual(nc, gotk_nc_deployment(), "notification-controller changed")
        # No Provider/Alert sending notification-controller's events back.
        self.assertFalse([d for d in out if d["kind"] in ("Provider", "Alert")])
        (cm,) = [d for d in out if d["kind"] == "ConfigMap"]
        self.assertEqual(cm["data"]["fluxrelay.conf"], read(os.path.join(DIRECT, "fluxrelay.conf")))
        dep = find(out, "Deployment", "fluxrelay")
        vol = volumes_by_name(dep["spec"]["template"]["spec"])["fluxrelay-config"]
        self.assertEqual(vol["configMap"]["name"], cm["metadata"]["name"])


class CheckConfig(unittest.TestCase):
    """fluxrelay --check-config on every configuration that ships."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="frtest-manifests-")
        self.creds = os.path.join(self.tmp, "credentials")
        os.makedirs(self.creds)
        with open(os.path.join(self.creds, "slack-url"), "w") as f:
            f.write(TEST_SLACK_URL + "\n")
        with open(os.path.join(self.creds, "hmac-key"), "w") as f:
            f.write("0123456789abcdef0123456789abcdef\n")
        self.nocreds = os.path.join(self.tmp, "empty")
        os.makedirs(self.nocreds)
        self.state = os.path.join(self.tmp, "state")
        os.makedirs(self.state)
        probe = os.path.join(self.tmp, "probe.conf")
        with open(probe, "w") as f:
            f.write("no_such_setting_anywhere = 1;\n")
        r = self.check(probe, self.creds)
        if r.returncode != 78:
            self.skipTest("--check-config is not implemented yet: an invalid file gave exit %d, not 78"
                          % r.returncode)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check(self, path, creds):
        return frtest.run_cli(["--check-config", "-c", path],
                              env={"CREDENTIALS_DIRECTORY": creds, "STATE_DIRECTORY": self.state})

    def configs(self):
        out = [("sidecar", os.path.join(SIDECAR, "fluxrelay.conf")),
               ("standalone", os.path.join(STANDALONE, "fluxrelay.conf")),
               ("direct", os.path.join(DIRECT, "fluxrelay.conf"))]
        etc = os.path.join(SRC, "etc", "fluxrelay.conf")
        if has_settings(read(etc)):
            out.append(("etc", etc))
        page = os.path.join(SRC, "man", "fluxrelay.conf.5")
        for section in ("EXAMPLE", "BUILT-IN DEFAULTS"):
            for n, text in enumerate(roff_examples(page, section)):
                p = os.path.join(self.tmp, "man-%s-%d.conf" % (section.replace(" ", "-"), n))
                with open(p, "w") as f:
                    f.write(text)
                out.append(("fluxrelay.conf(5) %s #%d" % (section, n), p))
        return out

    def test_shipped_configs_are_valid(self):
        for name, path in self.configs():
            with self.subTest(config=name):
                if name == "sidecar" and not metrics_listener_supported():
                    self.skipTest(NO_METRICS_LISTENER)
                r = self.check(path, self.creds)
                self.assertEqual(r.returncode, 0, "%s:\n%s" % (name, r.stderr.decode(errors="replace")))
                # The secret values never appear in what it prints.
                self.assertNotIn(TEST_SLACK_URL.encode(), r.stdout + r.stderr)

    def test_configs_need_their_credentials(self):
        for name, path in self.configs():
            if not credential_refs(read(path)):
                continue
            with self.subTest(config=name):
                if name == "sidecar" and not metrics_listener_supported():
                    self.skipTest(NO_METRICS_LISTENER)
                r = self.check(path, self.nocreds)
                self.assertEqual(r.returncode, 78, name)
                err = r.stderr.decode(errors="replace")
                for ref in credential_refs(read(path)):
                    self.assertIn(os.path.join(self.nocreds, ref), err)

    def documented_checks(self):
        """Every `fluxrelay --check-config` command line the README, docs/ and
        fluxrelay(8) tell a user to run, as written (prompt and sudo dropped)."""
        out = []
        for doc in ("README.md", os.path.join("docs", "deploy.md")):
            for line in read(os.path.join(SRC, doc)).split("\n"):
                if "--check-config -c /etc/fluxrelay/" in line:
                    out.append((doc, line.strip()))
        for block in roff_examples(os.path.join(SRC, "man", "fluxrelay.8"), "EXAMPLES"):
            for line in block.replace("\\\n", " ").split("\n"):
                if "--check-config -c /etc/fluxrelay/" in line:
                    out.append(("fluxrelay(8)", line.strip()))
        return out

    def test_documented_check_config_commands(self):
        """The documented commands pass on the shipped configuration with the
        secrets where the docs put them (/etc/fluxrelay, here a temporary
        copy), in a shell that has no CREDENTIALS_DIRECTORY of its own."""
        etc = os.path.join(self.tmp, "etc-fluxrelay")
        shutil.copytree(self.creds, etc)
        shutil.copy(os.path.join(SRC, "etc", "fluxrelay.conf"), etc)
        cmds = self.documented_checks()
        self.assertGreaterEqual(len(cmds), 3, cmds)
        env = dict(os.environ, STATE_DIRECTORY=self.state)
        env.pop("CREDENTIALS_DIRECTORY", None)
        for doc, line in cmds:
            with self.subTest(doc=doc, command=line):
                cmd = re.sub(r"^[#$]\s+", "", line)
                cmd = re.sub(r"^sudo\s+", "", cmd)
                cmd = cmd.replace("/etc/fluxrelay", "@ETC@")
                cmd = re.sub(r"(^|\s)fluxrelay(?=\s)", r"\1@BIN@", cmd)
                cmd = cmd.replace("@ETC@", etc).replace("@BIN@", os.path.abspath(frtest.BIN))
                r = subprocess.run(["sh", "-c", cmd], env=env, capture_output=True, text=True,
                                   timeout=60)
                self.assertEqual(r.returncode, 0, "%s: %s\n%s" % (doc, cmd, r.stderr))

    def test_rendered_configmap_is_valid(self):
        if not shutil.which("kubectl"):
            self.skipTest("kubectl not installed")
        (cm,) = [d for d in rendered(STANDALONE) if d["kind"] == "ConfigMap"]
        p = os.path.join(self.tmp, "configmap.conf")
        with open(p, "w") as f:
            f.write(cm["data"]["fluxrelay.conf"])
        r = self.check(p, self.creds)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))


class ProbeChecks(unittest.TestCase):
    """The Kubernetes probe commands, Docker's HEALTHCHECK and Flux's
    generic-hmac signing, run against the daemon on the shipped sidecar
    configuration and the example Secret's values (port moved to an ephemeral
    one; the webhook URL points at a closed loopback port)."""

    def setUp(self):
        if not shutil.which("wget"):
            self.skipTest("wget not installed (the image's probe client)")
        (secret,) = load_manifest(os.path.join(K8S, "secret.example.yaml"))
        self.secret = secret["stringData"]
        self.tmp = tempfile.mkdtemp(prefix="frtest-probes-")
        with open(os.path.join(self.tmp, "slack-url"), "w") as f:
            f.write("http://127.0.0.1:9/services/T0/B0/X\n")
        with open(os.path.join(self.tmp, "hmac-key"), "w") as f:
            f.write(self.secret["hmac-key"] + "\n")   # kubectl writes no newline; both work
        self.lay = load_sidecar()[0]
        self.d = frtest.Daemon(config_text=local_sidecar_conf(self.lay.conf_text),
                               env={"CREDENTIALS_DIRECTORY": self.tmp})
        self.sidecar_port = conf_listen(self.lay.conf)[1]

    def tearDown(self):
        if getattr(self, "d", None) is not None:
            self.d.stop()
            self.d.cleanup()
        if getattr(self, "tmp", None):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def run_probe(self, cmd):
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode

    def test_probe_commands(self):
        old = "127.0.0.1:%d/" % self.sidecar_port
        new = "127.0.0.1:%d/" % self.d.port
        for probe in ("startupProbe", "livenessProbe"):
            cmd = [a.replace(old, new) for a in self.lay.c[probe]["exec"]["command"]]
            self.assertNotEqual(cmd, self.lay.c[probe]["exec"]["command"])
            self.assertEqual(self.run_probe(cmd), 0, probe)
            # The same command fails on an HTTP error, so the probe can fail.
            bad = cmd[:-1] + [cmd[-1].rsplit("/", 1)[0] + "/no-such-path"]
            self.assertNotEqual(self.run_probe(bad), 0, probe)

    def test_metrics_listener(self):
        """What Prometheus scrapes through the Component's NetworkPolicy:
        the second listener serves /metrics, /healthz and /readyz, and no
        events."""
        import http.client
        if not metrics_listener_supported():
            self.skipTest(NO_METRICS_LISTENER)
        line = self.d.wait_err(r'msg"?[=:]"?metrics listening.*port"?[=:]"?(\d+)')
        port = int(re.search(r'port"?[=:]"?(\d+)', line).group(1))
        self.assertNotEqual(port, self.d.port)

        def get(method, path, body=None):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                c.request(method, path, body, {"Content-Type": "application/json"})
                r = c.getresponse()
                return r.status, r.read()
            finally:
                c.close()
        status, body = get("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertIn(b"fluxrelay_build_info", body)
        for path in ("/healthz", "/readyz"):
            self.assertEqual(get("GET", path)[0], 200, path)
        status, _ = get("POST", "/", frtest.fixture("01"))
        self.assertTrue(400 <= status < 500, status)

    def test_docker_healthcheck(self):
        (hc,) = runtime_instr("HEALTHCHECK")
        shell = hc.split(" CMD ", 1)[1]
        shell = shell.replace("127.0.0.1:%d/" % DEFAULT_PORT, "127.0.0.1:%d/" % self.d.port)
        r = subprocess.run(["sh", "-c", shell], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.d.stop()
        r = subprocess.run(["sh", "-c", shell], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 1, "Docker knows only 0 and 1")

    def test_flux_generic_hmac(self):
        import hashlib
        import hmac
        body = frtest.fixture("01")
        # What notification-controller's generic-hmac Provider sends: the HMAC
        # of the body keyed with the Secret's "token".
        sig = hmac.new(self.secret["token"].encode(), body, hashlib.sha256).hexdigest()
        hdrs = {"Gotk-Component": "kustomize-controller"}
        status, _, doc = self.d.post(body, headers=hdrs)
        self.assertEqual(status, 401)
        hdrs["X-Signature"] = "sha256=" + sig
        status, _, doc = self.d.post(body, headers=hdrs)
        self.assertEqual(status, 202, doc)
        self.assertEqual(doc["status"], "accepted", doc)
        self.assertEqual(doc["alerts"], ["failures"])


# Runs argv[1:] with PR_SET_MDWE(PR_MDWE_REFUSE_EXEC_GAIN): the kernel's form of
# systemd's MemoryDenyWriteExecute=. Exit 77 when the kernel lacks it (< 6.3).
MDWE_WRAPPER = """import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:
    sys.exit(77)
os.execv(sys.argv[1], sys.argv[1:])
"""


class MdweDaemon(frtest.Daemon):
    def command(self):
        return [sys.executable, "-c", MDWE_WRAPPER] + super().command()


class MemoryDenyWriteExecute(unittest.TestCase):
    """The unit sets MemoryDenyWriteExecute=yes, which makes PCRE2's JIT fail:
    the shipped include/exclude patterns must still work (interpreter)."""

    def setUp(self):
        if os.environ.get("FR_VALGRIND") == "1":
            self.skipTest("valgrind itself needs writable+executable memory")
        r = subprocess.run([sys.executable, "-c", MDWE_WRAPPER, "/bin/true"], timeout=30)
        if r.returncode != 0:
            self.skipTest("kernel without PR_SET_MDWE")
        self.tmp = tempfile.mkdtemp(prefix="frtest-mdwe-")
        with open(os.path.join(self.tmp, "slack-url"), "w") as f:
            f.write("http://127.0.0.1:9/services/T0/B0/X\n")
        with open(os.path.join(self.tmp, "hmac-key"), "w") as f:
            f.write("k\n")
        self.lay = load_sidecar()[0]
        self.d = MdweDaemon(config_text=local_sidecar_conf(self.lay.conf_text),
                            env={"CREDENTIALS_DIRECTORY": self.tmp})

    def tearDown(self):
        if getattr(self, "d", None) is not None:
            self.d.stop()
            self.d.cleanup()
        if getattr(self, "tmp", None):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def post_signed(self, body):
        import hashlib
        import hmac
        sig = hmac.new(b"k", body, hashlib.sha256).hexdigest()
        return self.d.post(body, headers={"X-Signature": "sha256=" + sig})

    def test_exclude_pattern_without_jit(self):
        (pattern,) = self.lay.conf["alerts"][0]["exclude"]
        self.assertTrue(pattern.startswith("^Dependencies do not meet"))
        import json
        event = json.loads(frtest.fixture("01"))
        status, _, doc = self.post_signed(json.dumps(event).encode())
        self.assertEqual((status, doc["status"]), (202, "accepted"), doc)
        event["message"] = "Dependencies do not meet ready condition, retrying in 30s"
        event["involvedObject"]["name"] = "other"
        status, _, doc = self.post_signed(json.dumps(event).encode())
        self.assertEqual((status, doc["status"]), (202, "ignored"), doc)


class ImportWalkthrough(unittest.TestCase):
    """The import steps of the README and fluxrelay(8), run as written with
    /etc moved to a temporary directory (sudo and systemctl dropped), end
    with a configuration the systemd unit's transient user can load: each
    LoadCredential= of the drop-in they write is copied as systemd does
    (owned by the service user, 0400 in a 0500 directory) and
    `--check-config` runs as nobody with CREDENTIALS_DIRECTORY set. The
    import's own root-only files are unreadable to that user."""

    FIXTURE = os.path.join(SRC, "tests", "fixtures", "flux", "secrets.yaml")

    def setUp(self):
        if os.geteuid() != 0 or not shutil.which("runuser"):
            self.skipTest("needs root and runuser (the service user's view)")
        self.tmp = tempfile.mkdtemp(prefix="frtest-import-doc-")
        os.chmod(self.tmp, 0o755)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def steps(self):
        readme = read(os.path.join(SRC, "README.md"))
        sec = readme[readme.index("## Coming from Flux's notification-controller"):]
        sec = sec[:sec.index("\n### ")]
        yield "README", "".join(re.findall(r"(?ms)^```sh\n(.*?)^```", sec))
        for b in roff_examples(os.path.join(SRC, "man", "fluxrelay.8"), "EXAMPLES"):
            if "fluxrelay import" in b:
                yield "fluxrelay(8)", re.sub(r"(?m)^\$ ", "", b)

    def run_steps(self, doc, script):
        root = os.path.join(self.tmp, doc.replace("(8)", ""))
        bindir, work = os.path.join(root, "bin"), os.path.join(root, "work")
        for d in (bindir, work, os.path.join(root, "etc", "fluxrelay")):
            os.makedirs(d)
        os.symlink(os.path.abspath(frtest.BIN), os.path.join(bindir, "fluxrelay"))
        self.assertRegex(script, r"(?m)^kubectl .*> flux\.yaml$")
        script = re.sub(r"(?m)^kubectl .*> flux\.yaml$", "cp %s flux.yaml" % self.FIXTURE,
                        script)
        script = script.replace("/etc/", root + "/etc/")
        sh = "set -e\nsudo() { \"$@\"; }\nsystemctl() { :; }\n" + script
        r = subprocess.run(["sh", "-c", sh], cwd=work, capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, PATH=bindir + ":" + os.environ["PATH"]))
        self.assertEqual(r.returncode, 0, "%s:\n%s\n%s" % (doc, sh, r.stderr))
        return root

    def test_steps_run_under_the_unit(self):
        n = 0
        for doc, script in self.steps():
            n += 1
            with self.subTest(doc=doc):
                root = self.run_steps(doc, script)
                conf = os.path.join(root, "etc", "fluxrelay", "fluxrelay.conf")
                dropins = os.path.join(root, "etc", "systemd", "system", "fluxrelay.service.d")
                self.assertTrue(os.path.isdir(dropins), "%s writes no drop-in" % doc)
                creds = os.path.join(root, "credentials")
                os.makedirs(creds)
                for name in sorted(os.listdir(dropins)):
                    for line in read(os.path.join(dropins, name)).split("\n"):
                        if line == "LoadCredential=":
                            shutil.rmtree(creds)
                            os.makedirs(creds)
                        elif line.startswith("LoadCredential="):
                            cid, path = line[len("LoadCredential="):].split(":", 1)
                            shutil.copy(path, os.path.join(creds, cid))
                self.assertNotEqual(os.listdir(creds), [], doc)
                for f in os.listdir(creds):
                    os.chown(os.path.join(creds, f), 65534, -1)
                    os.chmod(os.path.join(creds, f), 0o400)
                os.chown(creds, 65534, -1)
                os.chmod(creds, 0o500)
                r = subprocess.run(["runuser", "-u", "nobody", "--", "env",
                                    "CREDENTIALS_DIRECTORY=" + creds,
                                    os.path.abspath(frtest.BIN), "--check-config", "-c", conf],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, "%s: %s" % (doc, r.stderr))
        self.assertEqual(n, 2)


if __name__ == "__main__":
    frtest.main()

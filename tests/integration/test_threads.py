#!/usr/bin/env python3
"""Threads and in-place updates with a bot (SPEC §12) against the Slack emulator.

Each test starts its own daemon (restarts and kill -9 need their own state
directory) on a slack-bot provider with threads = true whose channel is the
test's own, so the emulator's messages of one test never mix with another's.
The emulator keeps messages as Slack does (channel id + ts, threads, edits),
so the tests look at what a Slack user would see: the channel's top-level
messages, each thread, and the final state of an edited parent.
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

# The daemon inherits the environment: never send emulator traffic to a proxy.
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"

TOKEN = "xoxb-thread-token-7781"
REVISION = "main@sha1:9b1e4c7d2a5f8e3b6c0d1a4e7f2b5c8d9e0a3f6b"
UPDATE_KEYS = {"channel", "ts", "text", "attachments", "blocks"}


def failure(name, message, reason="ValidationFailed"):
    return json.dumps({
        "involvedObject": {"kind": "Kustomization", "name": name, "namespace": "apps",
                           "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
        "severity": "error",
        "message": message,
        "reason": reason,
        "metadata": {"kustomize.toolkit.fluxcd.io/revision": "main@sha1:0000000"},
        "reportingController": "kustomize-controller",
        "timestamp": "2024-05-01T10:00:00Z",
    })


def recovery(name):
    """kustomize-controller's per-reconcile success (a commit-status update)."""
    return json.dumps({
        "involvedObject": {"kind": "Kustomization", "name": name, "namespace": "apps",
                           "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
        "severity": "info",
        "message": "Reconciliation finished in 2.08s, next run in 10m0s",
        "reason": "ReconciliationSucceeded",
        "metadata": {"kustomize.toolkit.fluxcd.io/revision": REVISION,
                     "kustomize.toolkit.fluxcd.io/commit_status": "update"},
        "reportingController": "kustomize-controller",
        "timestamp": "2024-05-01T10:12:00Z",
    })


def info(name, message, reason="Progressing"):
    return json.dumps({
        "involvedObject": {"kind": "Kustomization", "name": name, "namespace": "apps"},
        "severity": "info",
        "message": message,
        "reason": reason,
        "reportingController": "kustomize-controller",
    })


def make_config(state, emu, base, channel, notify="changes", provider_extra="",
                alert_extra="", more_providers="", more_alert_providers="", more_alerts=""):
    if notify == "changes":
        alert = ('{ name = "changes"; providers = [ "bot"%s ]; notify = "changes";'
                 ' sources = ( { kind = "Kustomization"; } ); %s }'
                 % (more_alert_providers, alert_extra))
    else:
        alert = ('{ name = "events"; providers = [ "bot"%s ]; severity = "info";'
                 ' sources = ( { kind = "Kustomization"; } ); %s }'
                 % (more_alert_providers, alert_extra))
    return """
state_dir = "%s";
queue: { max_attempts = 5; backoff_initial = 0.05; backoff_max = 0.2; };
dedup: { window = 0; };
providers = (
  { name = "bot"; type = "slack-bot"; token = "%s"; api_url = "%s"; channel = "%s";
    threads = true; rate = 0; timeout = 2; %s }%s
);
alerts = ( %s%s );
""" % (state, TOKEN, emu.url(base), channel, provider_extra, more_providers, alert,
       more_alerts)


class Threads(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = SlackEmulator().start()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def setUp(self):
        name = self.id().rsplit(".", 1)[-1].replace("_", "-")
        self.base = "/api-" + name
        self.channel = "#" + name
        self.cid = self.emu.channel_id(self.channel)
        self.workdir = tempfile.mkdtemp(prefix="frtest-threads-")
        self.state = os.path.join(self.workdir, "state")
        self.d = None

    def tearDown(self):
        try:
            if self.d is not None and self.d.proc.poll() is None:
                self.assertEqual(self.d.stop(), 0)
        finally:
            if self.d is not None:
                self.d.cleanup()

    # ---- helpers ----
    def start(self, **kw):
        self.d = frtest.Daemon(make_config(self.state, self.emu, self.base, self.channel, **kw),
                               workdir=self.workdir, state_dir=self.state)
        return self.d

    def post(self, body, want="accepted"):
        status, _, doc = self.d.post(body)
        self.assertEqual(status, 202, doc)
        self.assertEqual(doc["status"], want, doc)
        return doc

    def parents(self):
        return self.emu.parents(self.channel)

    def wait_parents(self, n, timeout=10):
        return self.emu.wait_for(lambda: len(self.parents()) >= n and self.parents(),
                                 timeout, "%d top-level messages in %s" % (n, self.channel))

    def wait_thread(self, ts, n, timeout=10):
        return self.emu.wait_for(
            lambda: len(self.emu.thread(self.channel, ts)) >= n and
            self.emu.thread(self.channel, ts), timeout, "a thread of %d messages" % n)

    def updates(self):
        return self.emu.requests_for(self.base + "/chat.update")

    def posts(self):
        return self.emu.requests_for(self.base + "/chat.postMessage")

    def pending(self):
        r = frtest.run_cli(["queue", "-c", self.d.config_path, "list", "--json"])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        return frtest.queue_rows(r.stdout.decode())

    def wait_no_pending(self, timeout=10):
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                self.fail("rows still pending: %r" % self.pending())
            time.sleep(0.1)

    def metric(self, alert, kind):
        status, _, body = self.d.request("GET", "/metrics")
        self.assertEqual(status, 200)
        m = re.search(r'^fluxrelay_notifications_total\{alert="%s",kind="%s"\} (\d+)$'
                      % (re.escape(alert), kind), body.decode(), re.M)
        self.assertIsNotNone(m, "no notifications_total for %s/%s" % (alert, kind))
        return int(m.group(1))

    def assert_update_payload(self, req, parent):
        self.assertEqual(req.json["channel"], self.cid, "chat.update needs the channel id")
        self.assertEqual(req.json["ts"], parent.ts)
        self.assertLessEqual(set(req.json), UPDATE_KEYS, req.json)
        self.assertEqual(req.headers.get("authorization"), "Bearer " + TOKEN)

    def assert_quiet(self, seconds=0.6):
        """Nothing more is sent for a while (what was sent is all there is)."""
        before = len(self.emu.requests_for())
        time.sleep(seconds)
        self.assertEqual(len(self.emu.requests_for()), before,
                         self.emu.requests_for()[before:])

    # ---- the thread tree ----
    def test_thread_tree(self):
        """Parent, a counted repeat (the live count), a differing failure as a
        reply, and on recovery the parent edited by channel id + ts and a reply."""
        self.start()
        for kind in ("event", "opened", "reminder", "recovered", "reply"):
            self.assertEqual(self.metric("changes", kind), 0, kind)

        self.post(failure("webapp", "validation error: spec.type: Unsupported value"))
        parent = self.wait_parents(1)[0]
        self.assertIsNone(parent.thread_ts)
        self.assertEqual(parent.colors(), ["danger"])
        self.assertEqual(parent.titles(), ["ValidationFailed"])
        self.assertEqual(parent.posted["channel"], self.channel)
        self.assertNotIn("thread_ts", parent.posted)

        # The same failure again: counted, shown as the parent's live count.
        self.post(failure("webapp", "validation error: spec.type: Unsupported value"))
        self.emu.wait_for(lambda: parent.text and parent.text.startswith("2 failures since"),
                          20, "the live count on the parent")
        self.assertRegex(parent.text, r"^2 failures since (\d{4}-\d\d-\d\d )?\d\d:\d\d UTC$")
        self.assertEqual(parent.colors(), ["danger"], "the count keeps the attachments")
        count_update = self.updates()[-1]
        self.assert_update_payload(count_update, parent)
        self.assertEqual(set(count_update.json), {"channel", "ts", "text"})

        # A different failure: a reply in the thread, not in the channel.
        self.post(failure("webapp", "validation error: spec.replicas: must be positive"))
        thread = self.wait_thread(parent.ts, 2)
        reply = thread[1]
        self.assertEqual(reply.posted["thread_ts"], parent.ts)
        self.assertEqual(reply.posted["channel"], self.cid)
        self.assertFalse(reply.broadcast)
        self.assertIn("spec.replicas", reply.attachments[0]["text"])
        # The live count waits a minute after its last update.
        time.sleep(0.5)
        self.assertTrue(parent.text.startswith("2 failures"), parent.text)

        # `fluxrelay incidents` shows the thread: channel id and ts, in the
        # table's THREAD column and in --json.
        cli = ["incidents", "-c", self.d.config_path, "-s", self.state]
        r = frtest.run_cli(cli + ["--json"])
        self.assertEqual(r.returncode, 0, r.stderr)
        threads = json.loads(r.stdout)[0]["threads"]
        self.assertEqual([(t["channel"], t["ts"]) for t in threads], [(self.cid, parent.ts)])
        r = frtest.run_cli(cli)
        self.assertEqual(r.returncode, 0, r.stderr)
        head, row = r.stdout.decode().splitlines()[:2]
        self.assertIn(" THREAD ", head)
        self.assertIn(" %s/%s " % (self.cid, parent.ts), row)

        # Recovery: the parent turns green in place, a reply says so.
        self.post(recovery("webapp"))
        self.emu.wait_for(lambda: parent.colors() == ["good"], 10, "the parent turned green")
        thread = self.wait_thread(parent.ts, 3)
        self.assertEqual(len(self.parents()), 1, "no new top-level message")
        recovered_update = self.updates()[-1]
        self.assert_update_payload(recovered_update, parent)
        self.assertEqual(parent.titles(), ["Recovered: Kustomization/webapp"])
        self.assertRegex(parent.attachments[0]["text"], r"^Recovered after \d+[smhd]")
        self.assertIn("Last error: validation error: spec.replicas", parent.attachments[0]["text"])
        fields = {f["title"]: f["value"] for f in parent.attachments[0].get("fields", [])}
        self.assertEqual(fields.get("revision"), REVISION)
        self.assertEqual(parent.text, "", "the live count is gone")
        said = thread[2]
        self.assertEqual(said.posted["thread_ts"], parent.ts)
        self.assertEqual(said.titles(), ["Recovered: Kustomization/webapp"])
        self.assertEqual(said.colors(), ["good"])

        self.wait_no_pending()
        self.assertEqual(self.metric("changes", "opened"), 1)
        self.assertEqual(self.metric("changes", "recovered"), 1)
        # the differing failure went into the thread: a reply, not an event
        self.assertEqual(self.metric("changes", "reply"), 1)
        self.assertEqual(self.metric("changes", "event"), 0)

        # The thread is closed: a new failure opens a new parent.
        self.post(failure("webapp", "validation error: again"))
        parents = self.wait_parents(2)
        self.assertNotEqual(parents[1].ts, parent.ts)
        self.assertIsNone(parents[1].thread_ts)

    def test_live_count_in_block_kit_parent(self):
        """format = "blocks": Slack shows a Block Kit message's blocks, not its
        text, so the live count gives the parent's blocks again with the
        count in them; the recovery then replaces them."""
        self.start(provider_extra='format = "blocks";')
        self.post(failure("webapp", "validation error: spec.type: Unsupported value"))
        parent = self.wait_parents(1)[0]
        posted_blocks = parent.blocks
        self.assertTrue(posted_blocks)

        def shown():
            return json.dumps(parent.blocks)

        self.post(failure("webapp", "validation error: spec.type: Unsupported value"))
        self.emu.wait_for(lambda: "2 failures since" in shown(), 20,
                          "the live count in the parent's blocks")
        count_update = self.updates()[-1]
        self.assert_update_payload(count_update, parent)
        self.assertEqual(set(count_update.json), {"channel", "ts", "text", "blocks"})
        blocks = parent.blocks
        self.assertLessEqual(len(blocks), 50)
        self.assertEqual(len(blocks), len(posted_blocks) + 1)
        self.assertEqual(blocks[0], posted_blocks[0], "the head stays")
        self.assertEqual(blocks[1]["type"], "context")
        self.assertRegex(blocks[1]["elements"][0]["text"],
                         r"^2 failures since (\d{4}-\d\d-\d\d )?\d\d:\d\d UTC$")
        self.assertEqual(blocks[2:], posted_blocks[1:], "the rest of the parent stays")
        self.assertTrue(parent.text.startswith(parent.posted["text"] + "\n2 failures since"),
                        parent.text)

        self.post(recovery("webapp"))
        self.emu.wait_for(lambda: "Recovered" in shown() and "failures since" not in shown(),
                          10, "the parent shows the recovery")
        self.assertIn(":large_green_circle:", shown())

    def test_objects_have_their_own_threads(self):
        self.start()
        self.post(failure("a", "a broke"))
        self.post(failure("b", "b broke"))
        parents = self.wait_parents(2)
        by_name = {p.attachments[0]["author_name"]: p for p in parents}
        self.post(failure("b", "b broke differently"))
        self.post(failure("a", "a broke differently"))
        self.wait_thread(by_name["kustomization/a.apps"].ts, 2)
        self.wait_thread(by_name["kustomization/b.apps"].ts, 2)
        self.assertIn("a broke differently", self.emu.thread(
            self.channel, by_name["kustomization/a.apps"].ts)[1].attachments[0]["text"])
        self.assertEqual(len(self.parents()), 2)

    # ---- restarts ----
    def _restart_between_parent_and_reply(self, kill):
        self.start()
        self.post(failure("webapp", "first failure"))
        parent = self.wait_parents(1)[0]
        self.wait_no_pending()
        if kill:
            self.d.kill9()
        else:
            self.assertEqual(self.d.stop(), 0)
        self.d.start()
        self.post(failure("webapp", "second failure"))
        thread = self.wait_thread(parent.ts, 2)
        self.assertEqual(thread[1].posted["thread_ts"], parent.ts)
        self.post(recovery("webapp"))
        self.emu.wait_for(lambda: parent.colors() == ["good"], 10, "the parent turned green")
        self.assertEqual(len(self.parents()), 1)

    def test_restart_between_parent_and_reply(self):
        self._restart_between_parent_and_reply(kill=False)

    def test_kill9_between_parent_and_reply(self):
        """The handle is committed with the parent's acknowledgement."""
        self._restart_between_parent_and_reply(kill=True)

    def test_kill9_between_open_and_recovery(self):
        """The recovery is delivered after a kill -9 (at least once) and updates
        the parent; there is never a second "opened"."""
        self.start()
        self.post(failure("webapp", "broken"))
        parent = self.wait_parents(1)[0]
        self.wait_no_pending()
        # The update fails until the daemon is killed mid-retry.
        self.emu.set_default(Response(500, {"ok": False, "error": "internal_error"}),
                             path=self.base + "/chat.update")
        self.post(recovery("webapp"))
        self.emu.wait_for(lambda: len(self.updates()) >= 1, 10, "a chat.update attempt")
        self.d.kill9()
        self.emu.set_default(Response.bot_ok(), path=self.base + "/chat.update")
        self.d.start()
        self.emu.wait_for(lambda: parent.colors() == ["good"], 15, "the parent turned green")
        self.wait_thread(parent.ts, 2)
        self.wait_no_pending()
        self.assertEqual(len(self.parents()), 1, "a second top-level message")
        opened = [p for p in self.posts() if "thread_ts" not in p.json]
        self.assertEqual(len(opened), 1, "a second opened message")

    # ---- fallbacks ----
    def test_parent_dead_letter_reply_becomes_parent(self):
        self.start()
        self.emu.script(self.base + "/chat.postMessage", Response.bot_error("invalid_arguments"))
        self.post(failure("webapp", "first failure"))
        self.emu.wait_for(lambda: len(self.posts()) >= 1, 10, "the refused parent")
        self.post(failure("webapp", "second failure"))
        parent = self.wait_parents(1)[0]
        self.assertIn("second failure", parent.attachments[0]["text"])
        self.assertIsNone(parent.thread_ts)
        self.post(failure("webapp", "third failure"))
        thread = self.wait_thread(parent.ts, 2)
        self.assertIn("third failure", thread[1].attachments[0]["text"])
        self.post(recovery("webapp"))
        self.emu.wait_for(lambda: parent.colors() == ["good"], 10, "the new parent turned green")
        r = frtest.run_cli(["queue", "-c", self.d.config_path, "list", "--dead", "--json"])
        dead = frtest.queue_rows(r.stdout.decode())
        self.assertEqual(len(dead), 1, dead)
        self.assertIn("invalid_arguments", dead[0]["last_error"])

    def _update_fallback(self, spoil):
        self.start()
        self.post(failure("webapp", "broken"))
        parent = self.wait_parents(1)[0]
        self.wait_no_pending()
        spoil(self.channel, parent.ts)
        self.post(recovery("webapp"))
        parents = self.wait_parents(2)
        new = parents[1]
        self.assertIsNone(new.thread_ts)
        self.assertEqual(new.colors(), ["good"])
        self.assertEqual(new.titles(), ["Recovered: Kustomization/webapp"])
        self.assertEqual(self.emu.thread(self.channel, parent.ts), [parent], "no reply")
        self.assertEqual(parent.colors(), ["danger"])
        self.wait_no_pending()
        # The handle is gone: the next failure is a new parent, not a reply.
        self.post(failure("webapp", "broken again"))
        self.assertEqual(len(self.wait_parents(3)), 3)

    def test_update_fallback_message_not_found(self):
        self._update_fallback(self.emu.delete_message)
        self.assertIn("message_not_found", [u.result.get("error") for u in self.updates()])

    def test_update_fallback_cant_update_message(self):
        self._update_fallback(self.emu.lock_message)
        self.assertIn("cant_update_message", [u.result.get("error") for u in self.updates()])

    def test_update_rate_limited(self):
        """A rate-limited chat.update waits Retry-After, then the recovery goes on."""
        self.start()
        self.post(failure("webapp", "broken"))
        parent = self.wait_parents(1)[0]
        self.wait_no_pending()
        self.emu.script(self.base + "/chat.update", Response.bot_ratelimited(1))
        self.post(recovery("webapp"))
        self.emu.wait_for(lambda: parent.colors() == ["good"], 10, "the parent turned green")
        ups = self.updates()
        self.assertEqual(ups[0].answer.status, 429)
        self.assertGreaterEqual(ups[1].time - ups[0].time, 0.95)
        self.wait_thread(parent.ts, 2)

    # ---- order ----
    def test_parent_before_reply(self):
        """A reply waits for its parent (FIFO per target), even through retries."""
        self.start()
        path = self.base + "/chat.postMessage"
        self.emu.script(path, Response(500, {"ok": False, "error": "internal_error"}),
                        Response.slow(0.3, Response.bot_ok()))
        self.post(failure("webapp", "first"))
        self.post(failure("webapp", "second"))
        self.post(failure("webapp", "third"))
        parent = self.wait_parents(1)[0]
        thread = self.wait_thread(parent.ts, 3)
        self.assertEqual([m.attachments[0]["text"] for m in thread], ["first", "second", "third"])
        posts = self.posts()
        self.assertEqual([p.answer.status for p in posts][:2], [500, 200])
        self.assertNotIn("thread_ts", posts[0].json)
        self.assertNotIn("thread_ts", posts[1].json)
        self.assertTrue(all(p.json.get("thread_ts") == parent.ts for p in posts[2:]))
        self.assertEqual(len(self.parents()), 1)

    # ---- notify = "events" ----
    def test_events_threads(self):
        """Per object, while events come less than thread_ttl apart; errors broadcast."""
        self.start(notify="events", provider_extra="thread_ttl = 2;")
        self.post(info("x", "x progressing"))
        first = self.wait_parents(1)[0]
        self.post(failure("x", "x failed"))
        self.post(info("y", "y progressing"))
        self.post(info("x", "x progressing again"))
        thread = self.wait_thread(first.ts, 3)
        self.assertTrue(thread[1].broadcast, "an error is broadcast")
        self.assertIs(thread[1].posted.get("reply_broadcast"), True)
        self.assertFalse(thread[2].broadcast)
        self.assertNotIn("reply_broadcast", thread[2].posted)
        parents = self.wait_parents(2)
        self.assertEqual(parents[1].attachments[0]["text"], "y progressing")
        # The broadcast reply shows in the channel too.
        self.assertEqual(len(self.emu.top_level(self.channel)), 3)
        # The window slides with each event, then closes.
        time.sleep(1.2)
        self.post(info("x", "still within the window"))
        self.wait_thread(first.ts, 4)
        time.sleep(2.5)
        self.post(info("x", "after the window"))
        parents = self.wait_parents(3)
        self.assertEqual(parents[2].attachments[0]["text"], "after the window")
        self.assertEqual(len(self.emu.thread(self.channel, first.ts)), 4)
        self.wait_no_pending()
        self.assertEqual(self.metric("events", "event"), 6)

    def test_merged_reply_of_an_events_error_is_broadcast(self):
        """A changes alert's reply merged with an events alert's error on the
        same threaded target: the row is a reply, and the error is still
        broadcast to the channel, as the events alert's own reply would be."""
        self.start(more_alerts=',\n  { name = "events"; providers = [ "bot" ]; severity = "info";'
                   ' sources = ( { kind = "Kustomization"; } ); }')
        self.post(failure("webapp", "validation error: one"))
        parent = self.wait_parents(1)[0]
        self.post(failure("webapp", "validation error: two"))
        reply = self.wait_thread(parent.ts, 2)[1]
        self.assertIn("validation error: two", reply.attachments[0]["text"])
        self.assertTrue(reply.broadcast, reply.posted)
        self.assertIs(reply.posted.get("reply_broadcast"), True)
        self.wait_no_pending()
        self.assertEqual(self.metric("changes", "reply"), 1)
        self.assertEqual(self.metric("events", "reply"), 1)
        # An info event of the events alert: a reply, not broadcast.
        self.post(info("webapp", "webapp progressing"))
        note = self.wait_thread(parent.ts, 3)[2]
        self.assertFalse(note.broadcast, note.posted)

    def start_two_changes_alerts(self):
        """Alert "changes" on ValidationFailed, alert "other" on HealthCheckFailed,
        both notify = "changes" on the same bot target."""
        self.start(alert_extra='reasons = [ "ValidationFailed" ];',
                   more_alerts=',\n  { name = "other"; providers = [ "bot" ]; notify = "changes";'
                   ' reasons = [ "HealthCheckFailed" ];'
                   ' sources = ( { kind = "Kustomization"; } ); }')

    def test_second_alert_opens_in_the_objects_thread(self):
        """Two changes alerts on one object and target share its thread: the
        second alert's incident opens as a reply in the first one's thread, so
        the recovery of both turns the one parent the channel sees green."""
        self.start_two_changes_alerts()
        self.post(failure("webapp", "validation error: one"))
        parent = self.wait_parents(1)[0]
        self.post(failure("webapp", "health check failed", reason="HealthCheckFailed"))
        thread = self.wait_thread(parent.ts, 2)
        self.assertEqual(thread[1].posted["thread_ts"], parent.ts)
        self.assertIn("health check failed", thread[1].attachments[0]["text"])
        self.post(recovery("webapp"))
        self.emu.wait_for(lambda: parent.colors() == ["good"], 10, "the parent turned green")
        self.wait_thread(parent.ts, 3)
        self.wait_no_pending()
        self.assertEqual(len(self.parents()), 1, [m.posted for m in self.parents()])
        # The writer planned a reply for the bot: the message is one (SPEC §12).
        self.assertEqual(self.metric("other", "reply"), 1)
        self.assertEqual(self.metric("other", "opened"), 0)
        self.assertEqual(self.metric("changes", "recovered"), 1)
        self.assertEqual(self.metric("other", "recovered"), 1)
        # Both incidents closed: the next failure is a new parent.
        self.post(failure("webapp", "health check failed again", reason="HealthCheckFailed"))
        self.assertNotEqual(self.wait_parents(2)[1].ts, parent.ts)

    def test_second_alert_reply_decided_when_accepted(self):
        """The reply is decided when the event is accepted, not when its row goes
        out: a recovery accepted before a slow delivery still edits the one parent."""
        self.start_two_changes_alerts()
        self.post(failure("webapp", "validation error: one"))
        parent = self.wait_parents(1)[0]
        self.wait_no_pending()
        self.emu.script(self.base + "/chat.postMessage", Response.slow(1.5))
        self.post(failure("webapp", "health check failed", reason="HealthCheckFailed"))
        self.post(recovery("webapp"))          # accepted while the reply is in flight
        self.emu.wait_for(lambda: parent.colors() == ["good"], 15, "the parent turned green")
        self.wait_thread(parent.ts, 3)
        self.wait_no_pending()
        self.assertEqual(len(self.parents()), 1, [m.posted for m in self.parents()])

    def test_events_alert_replies_after_a_recovery(self):
        """An events alert beside a changes alert on the same object: after the
        recovery its events still reply in the object's thread (thread_ttl)."""
        self.start(more_alerts=',\n  { name = "events"; providers = [ "bot" ]; severity = "info";'
                   ' reasons = [ "Progressing" ]; sources = ( { kind = "Kustomization"; } ); }')
        self.post(failure("webapp", "validation error: one"))
        parent = self.wait_parents(1)[0]
        self.post(recovery("webapp"))
        self.emu.wait_for(lambda: parent.colors() == ["good"], 10, "the parent turned green")
        self.wait_thread(parent.ts, 2)
        self.post(info("webapp", "webapp progressing"))
        thread = self.wait_thread(parent.ts, 3)
        self.assertEqual(thread[2].attachments[0]["text"], "webapp progressing")
        self.wait_no_pending()
        self.assertEqual(len(self.parents()), 1, [m.posted for m in self.parents()])

    # ---- webhooks and console beside a bot ----
    def test_console_prints_what_a_webhook_gets(self):
        hook = self.base + "/hook"
        self.start(more_providers=',\n  { name = "hook"; type = "slack"; url = "%s"; rate = 0; }'
                   ',\n  { name = "out"; type = "console"; }' % self.emu.url(hook),
                   more_alert_providers=', "hook", "out"')
        self.post(failure("webapp", "broken"))
        # One at a time: both pending together would be coalesced into one post.
        self.emu.wait_requests(1, path=hook)
        self.d.wait_out(r"^\{", count=1)
        self.post(recovery("webapp"))
        reqs = self.emu.wait_requests(2, path=hook)
        self.d.wait_out(r"^\{", count=2)
        printed = self.d.stdout_json()
        self.assertEqual([r.json for r in reqs], printed)
        self.assertEqual(printed[0]["attachments"][0]["color"], "danger")
        self.assertEqual(printed[1]["attachments"][0]["title"], "Recovered: Kustomization/webapp")
        for p in printed:
            self.assertNotIn("thread_ts", p)
        # The bot got its thread meanwhile.
        parent = self.wait_parents(1)[0]
        self.emu.wait_for(lambda: parent.colors() == ["good"], 10, "the parent turned green")


if __name__ == "__main__":
    frtest.main()

#!/bin/sh
# Type-check every tests/golden/payload-*.json against Slack's official SDK
# types (SPEC §9, §12, §13): IncomingWebhookSendArguments (@slack/webhook) with
# MessageAttachment and KnownBlock (@slack/types), ChatPostMessageArguments
# (@slack/web-api) for the slack-bot goldens (*bot*) and ChatUpdateArguments
# for the chat.update ones (*update*), with tsc --noEmit.
# strict.ts proves the types reject the mistakes we guard against.
#
# Installs into a work directory outside the source tree (SLACK_TYPES_DIR,
# default $TMPDIR/fluxrelay-slack-types-UID), reused while package-lock.json
# is unchanged. Exit: 0 pass, 1 type errors, 77 skip (no node/npm, or the
# npm registry unreachable), 99 broken setup.
set -u
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd) || exit 99
golden="$here/../golden"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "SKIP: node/npm not available"
	exit 77
fi
work=${SLACK_TYPES_DIR:-${TMPDIR:-/tmp}/fluxrelay-slack-types-$(id -u)}
mkdir -p "$work" || exit 99
for f in package.json package-lock.json tsconfig.json gen.mjs strict.ts; do
	cp "$here/$f" "$work/" || exit 99
done
cd "$work" || exit 99
if ! cmp -s package-lock.json node_modules/.fluxrelay-lock 2>/dev/null; then
	if ! npm ci --no-audit --no-fund --loglevel=error >npm.log 2>&1; then
		echo "SKIP: npm ci failed (registry unreachable?); see $work/npm.log"
		exit 77
	fi
	cp package-lock.json node_modules/.fluxrelay-lock || exit 99
fi
node gen.mjs "$golden" generated.ts || exit 99
if ! ./node_modules/.bin/tsc --noEmit -p .; then
	echo "FAIL: golden payloads do not type-check against Slack's SDK types"
	exit 1
fi
echo "PASS: golden payloads type-check against Slack's SDK types"

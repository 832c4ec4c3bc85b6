// Proof that the SDK types are strict enough for the check to mean something:
// each line below is a mistake tsc must reject (an unused @ts-expect-error is
// itself an error, so a type that stopped catching it fails the run).
import type { IncomingWebhookSendArguments } from '@slack/webhook';
import type { ChatPostMessageArguments, ChatUpdateArguments } from '@slack/web-api';
import type { KnownBlock, MessageAttachment } from '@slack/types';

// @ts-expect-error ts is a string of epoch seconds, not a number
export const badTs: MessageAttachment = { ts: 1666941979 };
// @ts-expect-error short is a boolean
export const badShort: MessageAttachment = { fields: [{ title: 'a', value: 'b', short: 'false' }] };
// @ts-expect-error a field Slack does not define
export const badField: MessageAttachment = { colour: 'good' };
// @ts-expect-error mrkdwn_in only names pretext, text or fields
export const badMrkdwn: MessageAttachment = { mrkdwn_in: ['title'] };
// @ts-expect-error a top-level field webhooks do not define
export const badTop: IncomingWebhookSendArguments = { text: 'x', footer: 'y' };
// @ts-expect-error chat.postMessage requires a channel
export const badBot: ChatPostMessageArguments = { text: 'x' };
// @ts-expect-error chat.update takes no username (the message keeps its author)
export const badUpdateUser: ChatUpdateArguments = { channel: 'C1', ts: '1.2', text: '', username: 'Flux' };
// @ts-expect-error chat.update takes no icon
export const badUpdateIcon: ChatUpdateArguments = { channel: 'C1', ts: '1.2', text: '', icon_emoji: ':x:' };
// @ts-expect-error chat.update takes no thread_ts
export const badUpdateThread: ChatUpdateArguments = { channel: 'C1', ts: '1.2', text: '', thread_ts: '1.1' };
// @ts-expect-error chat.update takes no unfurl fields
export const badUpdateUnfurl: ChatUpdateArguments = { channel: 'C1', ts: '1.2', text: '', unfurl_links: false };
// @ts-expect-error chat.update needs the message's ts
export const badUpdateTs: ChatUpdateArguments = { channel: 'C1', text: '' };
// @ts-expect-error reply_broadcast is a boolean
export const badBroadcast: ChatPostMessageArguments = { channel: 'C1', text: 'x', thread_ts: '1.2', reply_broadcast: 'true' };
// @ts-expect-error a section's text is a text object, not a string
export const badSection: KnownBlock = { type: 'section', text: 'x' };
// @ts-expect-error context elements are text objects or images
export const badContext: KnownBlock = { type: 'context', elements: ['x'] };
// @ts-expect-error a block type Slack does not define
export const badBlock: KnownBlock = { type: 'paragraph' };
// @ts-expect-error unfurl_links is a boolean
export const badUnfurl: IncomingWebhookSendArguments = { text: 'x', unfurl_links: 'false' };

// Proof that the SDK types are strict enough for the check to mean something:
// each line below is a mistake tsc must reject (an unused @ts-expect-error is
// itself an error, so a type that stopped catching it fails the run).
import type { IncomingWebhookSendArguments } from '@slack/webhook';
import type { ChatPostMessageArguments } from '@slack/web-api';
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
// @ts-expect-error a section's text is a text object, not a string
export const badSection: KnownBlock = { type: 'section', text: 'x' };
// @ts-expect-error context elements are text objects or images
export const badContext: KnownBlock = { type: 'context', elements: ['x'] };
// @ts-expect-error a block type Slack does not define
export const badBlock: KnownBlock = { type: 'paragraph' };
// @ts-expect-error unfurl_links is a boolean
export const badUnfurl: IncomingWebhookSendArguments = { text: 'x', unfurl_links: 'false' };

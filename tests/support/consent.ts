// Granting consent as a member does: purposes through the API, and marketing SMS confirmed by replying YES
// (a signed Twilio webhook when Twilio is configured, the embedded default's inbound stand-in when not).
import { randomUUID } from 'node:crypto';
import twilio from 'twilio';
import { expect } from 'vitest';
import type { Gateway } from '../../gateway/runtime.js';

export async function replySms(gw: Gateway, from: string, body: string, messageSid = `SM${randomUUID().replace(/-/g, '')}`) {
  const token = gw.deps.config.twilio?.authToken;
  const accountSid = gw.deps.config.twilio?.accountSid;
  if (!token || !accountSid) {
    const res = await gw.app.inject({ method: 'POST', url: '/dev/sms/inbound', payload: { from, body } });
    return { status: res.statusCode, reply: res.json().reply as string | null };
  }
  const path = '/webhooks/twilio/sms';
  const params = { AccountSid: accountSid, MessageSid: messageSid, From: from, To: '+14155550100', Body: body, NumMedia: '0' };
  const signature = twilio.getExpectedTwilioSignature(token, `${gw.deps.config.publicUrl}${path}`, params);
  const res = await gw.app.inject({
    method: 'POST', url: path, payload: new URLSearchParams(params).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature },
  });
  const reply = /<Message>([\s\S]*)<\/Message>/.exec(res.body)?.[1] ?? null;
  return { status: res.statusCode, reply, raw: res.body };
}

/**
 * Grants each purpose; sms_marketing is confirmed by a signed YES. A YES that arrives before the worker sent the
 * opt-in request answers it, and the request is then never sent: a test that looks for the request passes
 * `beforeConfirm` to wait for it first.
 */
export async function grantConsents(
  gw: Gateway, memberId: string, phone: string | null, purposes: string[], opts: { beforeConfirm?: () => Promise<unknown> } = {},
) {
  for (const purpose of purposes) {
    const res = await gw.app.inject({
      method: 'POST', url: `/members/${memberId}/consents`, payload: { purpose, action: 'grant', source: 'app', noticeVersion: 'n-1' },
    });
    expect(res.statusCode).toBe(201);
    if (purpose === 'sms_marketing') {
      await opts.beforeConfirm?.();
      const yes = await replySms(gw, phone!, 'YES');
      expect(yes.status).toBe(200);
    }
  }
}

// Every consent change a member makes goes through here: the ledger event with its evidence, SMS double
// opt-in, the member's receipt, and the SMS keywords that arrive from Twilio. (Erasure records its own
// withdrawals in privacy.ts; its answer, listing them, is the erased member's receipt.)
import {
  consentReceipt, helpText, needsConfirmation, optInConfirmationRequest, optInConfirmed, optOutConfirmation, parseSmsKeyword,
  type ConsentAction, type ConsentState, type ProgramInfo,
} from '../../consent/index.js';
import type { Sql } from '../db/database.js';
import { AppError } from '../errors.js';
import { appendConsent, currentConsent, type ConsentRecord, type NewConsentEvent } from './consents.js';
import type { Deps } from './deps.js';
import { destroyIdentityKey, issueIdentityKey } from './eid-registry.js';
import { endZoneStays } from './visits.js';
import { COUNTRY_NOT_ALLOWED, mayText } from '../sms/countries.js';
import { getMember, normalizePhone, type Member } from './members.js';

/** What a member (or staff, or the API) asks for: a ledger event, but never a bare 'request'. */
export type ConsentChange = Omit<NewConsentEvent, 'action'> & { action: 'grant' | 'withdraw' };

export const programInfo = (deps: Deps): ProgramInfo => ({
  name: deps.config.programName, helpContact: deps.config.programHelp, frequency: deps.config.programFrequency,
});

async function record(deps: Deps, tx: Sql, member: Member, e: Omit<ConsentChange, 'action'> & { action: ConsentAction }): Promise<ConsentRecord> {
  const event = await appendConsent(tx, member.id, e);
  // The EID identity key lives exactly as long as the ble_detection grant.
  if (e.purpose === 'ble_detection' && e.action === 'grant') await issueIdentityKey(tx, member.id, deps.config.eidRotationExponent);
  if (e.purpose === 'ble_detection' && e.action === 'withdraw') {
    await destroyIdentityKey(tx, member.id);
    // Bluetooth evidence of where the member is goes with the consent: their zone stays end now.
    await endZoneStays(tx, member.id, e.occurredAt);
  }
  // The receipt is readable in the app whatever channels the member still allows.
  const text = consentReceipt({ purpose: e.purpose, action: e.action, at: e.occurredAt, timeZone: member.timeZone }, programInfo(deps));
  await tx.query(`INSERT INTO consent_receipts (member_id, event_id, text, channel) VALUES ($1, $2, $3, 'app')`, [member.id, event.id, text]);
  return event;
}

/**
 * A grant or withdrawal from the app, a web form, store staff or the API. Granting marketing SMS only
 * requests it: a confirmation SMS asks the member to reply YES, and the grant is recorded when they do.
 */
export async function changeConsent(deps: Deps, memberId: string, change: ConsentChange): Promise<{ event: ConsentRecord | null; consents: ConsentState }> {
  const { event, confirm } = await deps.db.transaction(async (tx) => {
    await tx.query('SELECT 1 FROM members WHERE id = $1 FOR UPDATE', [memberId]);
    const member = await getMember(tx, memberId);
    const doubleOptIn = change.action === 'grant' && needsConfirmation(change.purpose) && change.source !== 'sms_keyword';
    if (doubleOptIn && !member.phone) {
      throw new AppError('PHONE_REQUIRED', `member ${memberId} has no phone number to confirm ${change.purpose} on`);
    }
    if (doubleOptIn && member.phone && !mayText(deps.config.smsCountries, member.phone)) {
      throw new AppError(COUNTRY_NOT_ALLOWED, `member ${memberId}'s number is outside SMS_COUNTRIES: no text can confirm ${change.purpose}`);
    }
    // Granting what is already confirmed changes nothing and asks nothing: no second "Reply YES" text.
    if (doubleOptIn && (await currentConsent(tx, memberId))[change.purpose].granted) return { event: null, confirm: null };
    const event = await record(deps, tx, member, { ...change, action: doubleOptIn ? 'request' : change.action });
    return { event, confirm: doubleOptIn ? member : null };
  });
  if (confirm && event) {
    await deps.queue.enqueue(
      'sms.system',
      { memberId: confirm.id, text: optInConfirmationRequest(programInfo(deps)), onlyWhilePending: 'sms_marketing', ref: `optin-${event.id}` },
      { jobId: `optin-${event.id}` },
    );
  }
  return { event, consents: await currentConsent(deps.db, memberId) };
}

/** A withdrawal the carrier tells us of (Twilio 21610: the recipient has unsubscribed). */
export async function recordCarrierOptOut(deps: Deps, memberId: string, at: Date): Promise<void> {
  await deps.db.transaction(async (tx) => {
    const member = await getMember(tx, memberId);
    const state = await currentConsent(tx, memberId);
    if (!state.sms_marketing.granted && !state.sms_marketing.pending) return;
    await record(deps, tx, member, { purpose: 'sms_marketing', action: 'withdraw', source: 'sms_keyword', occurredAt: at, actor: 'carrier:21610' });
  });
}

/**
 * One inbound SMS. Returns the reply to send, or null. Each MessageSid is handled once: a replayed
 * webhook changes nothing and gets no second reply. After a STOP at most one confirmation goes out.
 */
export async function handleInboundSms(deps: Deps, msg: { messageSid: string; from: string; body: string }, at: Date): Promise<string | null> {
  const keyword = parseSmsKeyword(msg.body);
  return deps.db.transaction(async (tx) => {
    const [fresh] = await tx.query(
      'INSERT INTO inbound_sms (message_sid, keyword) VALUES ($1, $2) ON CONFLICT (message_sid) DO NOTHING RETURNING 1',
      [msg.messageSid, keyword?.kind ?? null],
    );
    if (!fresh || !keyword) return null;
    const program = programInfo(deps);
    if (keyword.kind === 'help') return helpText(program);

    let phone: string;
    try {
      phone = normalizePhone(msg.from);
    } catch {
      return keyword.kind === 'stop' ? optOutConfirmation(program) : null;
    }
    const [row] = await tx.query<{ id: string }>('SELECT id FROM members WHERE phone_e164 = $1 FOR UPDATE', [phone]);
    if (!row) return keyword.kind === 'stop' ? optOutConfirmation(program) : null;
    await tx.query('UPDATE inbound_sms SET member_id = $2 WHERE message_sid = $1', [msg.messageSid, row.id]);
    const member = await getMember(tx, row.id);
    const sms = (await currentConsent(tx, member.id)).sms_marketing;
    const evidence = { purpose: 'sms_marketing' as const, source: 'sms_keyword' as const, occurredAt: at, actor: `sms:${msg.messageSid}` };
    if (keyword.kind === 'stop') {
      // Already withdrawn: no second confirmation. A member who never subscribed gets the one confirmation.
      if (!sms.granted && !sms.pending && sms.since) return null;
      await record(deps, tx, member, { ...evidence, action: 'withdraw' });
      return optOutConfirmation(program);
    }
    if (sms.granted) return null;
    await record(deps, tx, member, { ...evidence, action: 'grant' });
    return optInConfirmed(program);
  });
}

// The gateway's side of the consent ledger: append events with their evidence, read them back in order.
import { consentState, type ConsentAction, type ConsentEvent, type ConsentSource, type ConsentState, type Purpose } from '../../consent/index.js';
import type { Sql } from '../db/database.js';

export interface ConsentRecord extends ConsentEvent {
  id: number;
  actor: string | null;
  ip: string | null;
  userAgent: string | null;
  recordedAt: Date;
}

export interface NewConsentEvent {
  purpose: Purpose;
  action: ConsentAction;
  source: ConsentSource;
  occurredAt: Date;
  noticeVersion?: string;
  actor?: string;
  ip?: string;
  userAgent?: string;
}

interface Row {
  id: number;
  purpose: Purpose;
  action: ConsentAction;
  source: ConsentSource;
  notice_version: string | null;
  actor: string | null;
  ip: string | null;
  user_agent: string | null;
  occurred_at: Date;
  recorded_at: Date;
}

const toRecord = (r: Row): ConsentRecord => ({
  id: r.id,
  purpose: r.purpose,
  action: r.action,
  source: r.source,
  noticeVersion: r.notice_version,
  actor: r.actor,
  ip: r.ip,
  userAgent: r.user_agent,
  occurredAt: r.occurred_at,
  recordedAt: r.recorded_at,
});

export async function appendConsent(db: Sql, memberId: string, e: NewConsentEvent): Promise<ConsentRecord> {
  const [row] = await db.query<Row>(
    `INSERT INTO consent_events (member_id, purpose, action, source, notice_version, actor, ip, user_agent, occurred_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
    [memberId, e.purpose, e.action, e.source, e.noticeVersion ?? null, e.actor ?? null, e.ip ?? null, e.userAgent ?? null, e.occurredAt],
  );
  return toRecord(row!);
}

/** Every event of a member, in the order they were recorded. */
export async function consentHistory(db: Sql, memberId: string): Promise<ConsentRecord[]> {
  const rows = await db.query<Row>('SELECT * FROM consent_events WHERE member_id = $1 ORDER BY id', [memberId]);
  return rows.map(toRecord);
}

/**
 * Which of these members grant the purpose now: each one's latest grant or withdrawal, found by the index
 * (member_id, id) walked backwards. For many members at once, where currentConsent would read whole histories.
 */
/**
 * SQL joining, to each row of `members` (an alias with an `id` column), `latest.action`: the member's last grant or
 * withdrawal of `purpose` (an SQL expression). A purpose is granted when that action is 'grant'. For statements
 * that check many members at once; one member's whole state comes from currentConsent.
 */
export const latestConsentAction = (members: string, purpose: string) =>
  `CROSS JOIN LATERAL (SELECT action FROM consent_events e
                        WHERE e.member_id = ${members}.id AND e.purpose = ${purpose} AND e.action IN ('grant', 'withdraw')
                        ORDER BY e.id DESC LIMIT 1) latest`;

export async function grantingAmong(db: Sql, memberIds: readonly string[], purpose: Purpose): Promise<Set<string>> {
  if (memberIds.length === 0) return new Set();
  const rows = await db.query<{ member_id: string }>(
    `SELECT m.id AS member_id FROM unnest($1::uuid[]) AS m(id) ${latestConsentAction('m', '$2')}
      WHERE latest.action = 'grant'`,
    [memberIds, purpose],
  );
  return new Set(rows.map((r) => r.member_id));
}

export async function currentConsent(db: Sql, memberId: string): Promise<ConsentState> {
  return consentState(await consentHistory(db, memberId));
}

/** The API's view of consent state: instants as ISO strings. */
export type ConsentStateView = Record<
  Purpose,
  { granted: boolean; since: string | null; source: ConsentSource | null; pending: boolean; requestedAt: string | null }
>;

export function consentStateView(state: ConsentState): ConsentStateView {
  return Object.fromEntries(
    Object.entries(state).map(([purpose, s]) => [
      purpose,
      {
        granted: s.granted, since: s.since?.toISOString() ?? null, source: s.source, pending: s.pending,
        requestedAt: s.pending ? s.requestedAt.toISOString() : null,
      },
    ]),
  ) as ConsentStateView;
}

export function consentRecordView(r: ConsentRecord) {
  return { ...r, noticeVersion: r.noticeVersion ?? null, occurredAt: r.occurredAt.toISOString(), recordedAt: r.recordedAt.toISOString() };
}

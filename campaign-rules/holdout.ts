import { createHash } from 'node:crypto';

/**
 * Stable position of a member in a campaign's population, 0 <= x < 100. The same member and campaign always
 * land in the same place, so a control group stays the same across runs, processes and days.
 */
export function holdoutBucket(memberId: string, campaignId: string): number {
  const digest = createHash('sha256').update(`${memberId}\u0000${campaignId}`).digest();
  return (digest.readUInt32BE(0) / 2 ** 32) * 100;
}

export function isHeldOut(memberId: string, campaignId: string, percent: number): boolean {
  return percent > 0 && holdoutBucket(memberId, campaignId) < percent;
}

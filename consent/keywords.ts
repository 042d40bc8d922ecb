// Inbound SMS keywords: the carrier-standard words a member texts to leave, re-join or ask for help.
export type SmsKeywordKind = 'stop' | 'start' | 'help';

export interface SmsKeyword {
  kind: SmsKeywordKind;
  /** The keyword as listed in SMS_KEYWORDS ("OPT OUT"), whatever case or spacing the member used. */
  keyword: string;
}

/**
 * CTIA's and Twilio's keyword lists (REVOKE and OPT OUT follow the FCC's 2025 revocation rule).
 * YES is a START word because it is the answer to the double opt-in request.
 */
export const SMS_KEYWORDS: Readonly<Record<SmsKeywordKind, readonly string[]>> = {
  stop: ['STOP', 'STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT', 'REVOKE', 'OPT OUT', 'OPTOUT'],
  start: ['START', 'UNSTOP', 'YES'],
  help: ['HELP', 'INFO'],
};

const KINDS = ['stop', 'start', 'help'] as const satisfies readonly SmsKeywordKind[];
const byWord = new Map<string, SmsKeywordKind>(KINDS.flatMap((kind) => SMS_KEYWORDS[kind].map((w) => [w, kind] as const)));

/**
 * The keyword a message is, or null. The WHOLE message must be one keyword, as carriers and Twilio match:
 * "please stop texting me" or "stop please" is not STOP here. Such replies may still be a revocation
 * "by any reasonable means" (FCC), so the caller should route them to a person rather than drop them.
 *
 * Tolerated: any case; leading and trailing whitespace; runs of inner whitespace ("opt  out"); trailing
 * punctuation ("Stop.", "STOP!!"); full-width letters (NFKC). Not tolerated: leading punctuation, hyphens
 * inside a keyword ("opt-out"), extra words.
 */
export function parseSmsKeyword(body: string): SmsKeyword | null {
  const normalized = body
    .normalize('NFKC')
    .replace(/[\s\p{P}]+$/u, '')
    .trim()
    .replace(/\s+/g, ' ')
    .toUpperCase();
  const kind = byWord.get(normalized);
  return kind ? { kind, keyword: normalized } : null;
}

// A local stand-in for Twilio's Messages API, so the real twilio client can be exercised with no network.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SentMessage {
  accountSid: string;
  to: string;
  body: string;
  from?: string;
  messagingServiceSid?: string;
  validityPeriod?: string;
  statusCallback?: string;
  sid: string;
  auth: string;
  dateCreated: Date;
}

/** What the next requests get instead of success: an HTTP status and a Twilio error code. */
export interface Failure {
  status: number;
  code: number;
  message: string;
}

export interface TwilioStandIn {
  url: string;
  accountSid: string;
  authToken: string;
  messages: SentMessage[];
  /** Queue failures for the next requests, in order. */
  failNext(...failures: Failure[]): void;
  /**
   * The next message to this number is accepted (recorded, as Twilio would have it) but never answered: the
   * sender is left waiting, as one whose process dies after Twilio took the message would be.
   * `accepted` resolves when it arrives.
   */
  holdNext(to: string, body?: RegExp): { accepted: Promise<SentMessage> };
  /** Requests to list messages, as the client sent them (path and query). */
  lists: string[];
  close(): Promise<void>;
}

/**
 * `otherAccounts`: more account SIDs it answers to (same auth token), so that a test can tell which of several
 * processes sent a message by the account each was given (`SentMessage.accountSid`).
 */
export async function startTwilioStandIn({ otherAccounts = [] }: { otherAccounts?: string[] } = {}): Promise<TwilioStandIn> {
  const accountSid = 'AC' + 'a'.repeat(32);
  const accounts = new Set([accountSid, ...otherAccounts]);
  const authToken = 'test-token';
  const messages: SentMessage[] = [];
  const failures: Failure[] = [];
  const holds = new Map<string, { resolve: (m: SentMessage) => void; body?: RegExp }>();
  const lists: string[] = [];
  const held = new Set<http.ServerResponse>();
  let seq = 0;
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      const target = new URL(req.url ?? '/', 'http://standin');
      const match = /^\/2010-04-01\/Accounts\/(AC\w+)\/Messages\.json$/.exec(target.pathname);
      const reply = (status: number, body: object) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const account = match?.[1] ?? accountSid;
      const expected = 'Basic ' + Buffer.from(`${account}:${authToken}`).toString('base64');
      if (!accounts.has(account) || req.headers.authorization !== expected) return reply(401, { code: 20003, message: 'Authenticate', status: 401 });
      if (req.method === 'GET' && match) {
        // Newest first, filtered by recipient, in Twilio's page shape.
        lists.push(req.url ?? '');
        const to = target.searchParams.get('To');
        const page = messages.filter((m) => !to || m.to === to).reverse().map((m) => ({
          sid: m.sid, account_sid: m.accountSid, to: m.to, from: m.from ?? null, body: m.body, status: 'sent',
          date_created: m.dateCreated.toUTCString(), date_sent: m.dateCreated.toUTCString(),
        }));
        return reply(200, { messages: page, page: 0, page_size: page.length, start: 0, end: Math.max(0, page.length - 1), first_page_uri: req.url, next_page_uri: null, previous_page_uri: null, uri: req.url });
      }
      if (req.method !== 'POST' || !match) return reply(404, { code: 20404, message: 'not found', status: 404 });
      const failure = failures.shift();
      if (failure) return reply(failure.status, { code: failure.code, message: failure.message, status: failure.status });
      const form = new URLSearchParams(raw);
      const sid = `SM${String(++seq).padStart(32, '0')}`;
      messages.push({
        accountSid: match[1]!,
        to: form.get('To') ?? '',
        body: form.get('Body') ?? '',
        from: form.get('From') ?? undefined,
        messagingServiceSid: form.get('MessagingServiceSid') ?? undefined,
        validityPeriod: form.get('ValidityPeriod') ?? undefined,
        statusCallback: form.get('StatusCallback') ?? undefined,
        sid,
        auth: req.headers.authorization ?? '',
        dateCreated: new Date(),
      });
      const hold = holds.get(form.get('To') ?? '');
      if (hold && (!hold.body || hold.body.test(form.get('Body') ?? ''))) {
        holds.delete(form.get('To') ?? '');
        held.add(res);
        return hold.resolve(messages[messages.length - 1]!);
      }
      reply(201, { sid, account_sid: match[1], to: form.get('To'), body: form.get('Body'), status: 'queued' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    accountSid,
    authToken,
    messages,
    failNext: (...f) => failures.push(...f),
    holdNext: (to, body) => ({ accepted: new Promise<SentMessage>((resolve) => holds.set(to, { resolve, body })) }),
    lists,
    close: () => new Promise((resolve) => {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

import { describe, expect, it } from 'vitest';
import { SMS_KEYWORDS, parseSmsKeyword, type SmsKeyword } from '../consent/index.js';

describe('parseSmsKeyword', () => {
  const listed = (['stop', 'start', 'help'] as const).flatMap((kind) => SMS_KEYWORDS[kind].map((keyword) => [keyword, kind] as const));

  it('knows exactly the CTIA/Twilio words', () => {
    expect(SMS_KEYWORDS).toEqual({
      stop: ['STOP', 'STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT', 'REVOKE', 'OPT OUT', 'OPTOUT'],
      start: ['START', 'UNSTOP', 'YES'],
      help: ['HELP', 'INFO'],
    });
  });

  it.each(listed)('%s is a %s keyword in upper, lower and mixed case', (keyword, kind) => {
    const mixed = [...keyword].map((c, i) => (i % 2 ? c.toLowerCase() : c)).join('');
    for (const body of [keyword, keyword.toLowerCase(), mixed, ` ${keyword}\n`, `${keyword}.`, `${keyword}!`]) {
      expect(parseSmsKeyword(body)).toEqual({ kind, keyword });
    }
  });

  it.each<[string, SmsKeyword | null]>([
    ['  stop ', { kind: 'stop', keyword: 'STOP' }],
    ['Stop.', { kind: 'stop', keyword: 'STOP' }],
    ['Stop!', { kind: 'stop', keyword: 'STOP' }],
    ['STOP!!!', { kind: 'stop', keyword: 'STOP' }],
    ['stop ?', { kind: 'stop', keyword: 'STOP' }],
    ['\tSTOP\r\n', { kind: 'stop', keyword: 'STOP' }],
    ['opt  out', { kind: 'stop', keyword: 'OPT OUT' }],
    ['Opt\tOut.', { kind: 'stop', keyword: 'OPT OUT' }],
    ['OPTOUT', { kind: 'stop', keyword: 'OPTOUT' }],
    ['optout', { kind: 'stop', keyword: 'OPTOUT' }],
    ['Unsubscribe', { kind: 'stop', keyword: 'UNSUBSCRIBE' }],
    ['ＳＴＯＰ', { kind: 'stop', keyword: 'STOP' }], // full-width letters from some phone keyboards
    ['yes', { kind: 'start', keyword: 'YES' }],
    ['Yes!', { kind: 'start', keyword: 'YES' }],
    ['unstop', { kind: 'start', keyword: 'UNSTOP' }],
    ['info?', { kind: 'help', keyword: 'INFO' }],
    ['help', { kind: 'help', keyword: 'HELP' }],
    // The whole message must be the keyword.
    ['stop please', null],
    ['please stop texting me', null],
    ['STOP STOP', null],
    ['yes please', null],
    ['stopp', null],
    ['opt-out', null],
    ['.stop', null],
    ['optout now', null],
    ['', null],
    ['   ', null],
    ['!!!', null],
    ['no', null],
  ])('%j -> %j', (body, expected) => {
    expect(parseSmsKeyword(body)).toEqual(expected);
  });
});

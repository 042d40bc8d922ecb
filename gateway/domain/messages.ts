/** Fills the offer's text and adds what every marketing SMS must carry: who sends it and how to stop it. */
export function composeSms(programName: string, template: string, code: string, expiresAt: Date, timeZone: string): string {
  const expires = new Intl.DateTimeFormat('en-US', { timeZone, month: 'short', day: 'numeric' }).format(expiresAt);
  const text = template.replaceAll('{code}', code).replaceAll('{expires}', expires);
  const withCode = template.includes('{code}') ? text : `${text} Code: ${code} (valid until ${expires}).`;
  return `${programName}: ${withCode} Reply STOP to opt out.`;
}

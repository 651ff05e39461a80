// Escaping for text that goes into the HTML report. Everything that comes from a run directory (model outputs, tokens,
// prompts, config values, metric keys) passes through here before it reaches the page.

const ENTITY: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/**
 * Escape text for HTML element content and quoted attribute values. C0 control characters other than tab, newline
 * and carriage return (which HTML treats as parse errors or drops) are shown as their Unicode control pictures
 * (U+2400 + code, e.g. NUL → ␀), DEL as ␡, and lone surrogates as U+FFFD.
 */
export function escapeHtml(text: string): string {
  return text
    .replace(/[&<>"']/g, (c) => ENTITY[c] ?? c)
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, (c) => {
      const code = c.charCodeAt(0);
      return code === 0x7f ? '\u2421' : String.fromCharCode(0x2400 + code);
    })
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

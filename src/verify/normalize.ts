// String-level clean-up of a gold or extracted answer before parsing.
// Only transformations that cannot change the mathematical meaning are done here.

/** Answers longer than this are rejected outright. */
export const MAX_INPUT_CHARS = 10_000;

/** Find the index of the brace matching the one at `open` (s[open] === '{'), or -1. */
export function matchBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '{') depth++;
    else if (c === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/** Remove whole-string wrappers such as \boxed{...}, \fbox{...}. */
function stripWrappers(s: string): string {
  for (let guard = 0; guard < 20; guard++) {
    s = s.trim();
    const m = /^\\(boxed|fbox|framebox)\s*\{/.exec(s);
    if (m) {
      const open = m[0].length - 1;
      const close = matchBrace(s, open);
      if (close === s.length - 1) {
        s = s.slice(open + 1, close);
        continue;
      }
    }
    const b = /^\\boxed\s+(\S+)$/.exec(s);
    if (b && b[1] !== undefined) {
      s = b[1];
      continue;
    }
    break;
  }
  return s;
}

const UNICODE: ReadonlyArray<[RegExp, string]> = [
  [/[\u2212\u2013\u2014]/g, '-'],
  [/\u00d7/g, '\\times '],
  [/\u00f7/g, '\\div '],
  [/[\u00b7\u22c5]/g, '\\cdot '],
  [/\u2264/g, '\\le '],
  [/\u2265/g, '\\ge '],
  [/\u2260/g, '\\ne '],
  [/\u03c0/g, '\\pi '],
  [/\u221e/g, '\\infty '],
  [/\u221a/g, '\\sqrt'],
  [/\u222a/g, '\\cup '],
  [/\u2229/g, '\\cap '],
  [/\u2208/g, '\\in '],
  [/\u2205/g, '\\emptyset '],
  [/\u211d/g, '\\mathbb{R}'],
  [/\u00b1/g, '\\pm '],
  [/\u2213/g, '\\mp '],
  [/\u03b8/g, '\\theta '],
  [/\u03b1/g, '\\alpha '],
  [/\u03b2/g, '\\beta '],
  [/\u00b2/g, '^2'],
  [/\u00b3/g, '^3'],
  [/\u00bd/g, '\\frac{1}{2}'],
  [/\u2153/g, '\\frac{1}{3}'],
  [/\u2154/g, '\\frac{2}{3}'],
  [/\u00bc/g, '\\frac{1}{4}'],
  [/\u00be/g, '\\frac{3}{4}'],
  [/\u2155/g, '\\frac{1}{5}'],
  [/\u2159/g, '\\frac{1}{6}'],
  [/\u215b/g, '\\frac{1}{8}'],
  [/\u00b0/g, '^\\circ '],
  [/[\u2018\u2019]/g, "'"],
  [/\u00a0/g, ' '],
];

// Unit words that may follow a numeric answer; stripped only at the end of the answer.
const UNIT_WORDS = [
  'square units', 'sq units', 'square unit', 'cubic units', 'units', 'unit',
  'square centimeters', 'square meters', 'square inches', 'square feet', 'square yards', 'square miles', 'square kilometers',
  'cubic centimeters', 'cubic meters', 'cubic inches', 'cubic feet', 'cubic yards',
  'centimeters', 'centimetres', 'centimeter', 'centimetre', 'millimeters', 'millimeter', 'kilometers', 'kilometer',
  'meters', 'metres', 'meter', 'metre', 'inches', 'inch', 'feet', 'foot', 'yards', 'yard', 'miles', 'mile',
  'cm', 'mm', 'km', 'ft', 'yd', 'mi', 'mph', 'kph', 'm/s', 'km/h',
  'degrees', 'degree', 'deg', 'radians', 'radian', 'rad',
  'dollars', 'dollar', 'cents', 'cent', 'euros', 'euro', 'pounds', 'pound', 'lbs', 'lb', 'ounces', 'ounce', 'oz',
  'hours', 'hour', 'hrs', 'hr', 'minutes', 'minute', 'mins', 'min', 'seconds', 'second', 'secs', 'days', 'day',
  'weeks', 'week', 'months', 'month', 'years', 'year', 'yrs',
  'grams', 'gram', 'kilograms', 'kilogram', 'kg', 'mg', 'liters', 'liter', 'litres', 'litre', 'ml', 'gallons', 'gallon',
  'cups', 'cup', 'people', 'persons', 'students', 'ways', 'way', 'times', 'points', 'point', 'pages', 'page',
  'apples', 'books', 'marbles', 'coins', 'tiles', 'cookies', 'candies', 'boxes', 'cars', 'balls', 'handshakes',
  'sq', 'square', 'cubic',
];
const UNIT_SINGLE_LETTERS = ['m', 'g', 's', 'l', 'h'];
const unitAlt = UNIT_WORDS.map((w) => w.replace(/[/.]/g, (c) => '\\' + c).replace(/ /g, '\\s+')).join('|');
// \text{ cm}^2 style trailing units (content must be only unit words)
const TEXT_UNIT_RE = new RegExp(
  String.raw`\s*\\(?:text|mbox|mathrm|textrm|textnormal|mathit|textit|textbf|mathbf)\s*\{\s*(?:(?:${unitAlt}|${UNIT_SINGLE_LETTERS.join('|')})\.?\s*)+\}\s*(?:\^\s*\{?\s*[23]\s*\}?)?\s*$`,
  'i',
);
const PLAIN_UNIT_RE = new RegExp(String.raw`(?<=[\d}).\s])\s*(?:${unitAlt})\.?\s*(?:\^\s*\{?\s*[23]\s*\}?)?\s*$`, 'i');

function stripUnits(s: string): string {
  for (let guard = 0; guard < 5; guard++) {
    let t = s.replace(TEXT_UNIT_RE, '');
    if (t === s) t = s.replace(PLAIN_UNIT_RE, '');
    t = t.trim();
    // keep something that still carries a value
    if (t === s || t === '' || !/[\d}a-zA-Z)\]]$/.test(t)) break;
    s = t;
  }
  return s;
}

/** A whole answer written as \text{5 cm} / \textbf{12}: unwrap when the content starts with a number. */
function unwrapNumericText(s: string): string {
  const m = /^\\(?:text|textbf|mathrm|mathbf|mbox|textrm)\s*\{/.exec(s);
  if (!m) return s;
  const open = m[0].length - 1;
  if (matchBrace(s, open) !== s.length - 1) return s;
  const inner = s.slice(open + 1, -1).trim();
  return /^-?\d/.test(inner) ? inner : s;
}

/** Bracket depth of plain ( [ { at every index (used to restrict thousands separators to depth 0). */
function depthAt(s: string): number[] {
  const out: number[] = new Array<number>(s.length);
  let d = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '(' || c === '[' || (c === '{' && s[i - 1] === '\\')) d++;
    out[i] = d;
    if (c === ')' || c === ']' || (c === '}' && s[i - 1] === '\\')) d = Math.max(0, d - 1);
  }
  return out;
}

/**
 * Thousands separators, only where they cannot change the value: the leading group has 1–3 digits and does not
 * start with 0 (`0,125` and `0{,}125` are not 125), every later group has exactly 3 digits.
 */
function removeThousands(s: string): string {
  if (!s.includes(',') && !s.includes(' ')) return s;
  // explicit separators: 10{,}000, 23 {, }481, 10,\!000, 11,\! 111, 1\,000
  s = s.replace(
    /(?<![\d.])[1-9]\d{0,2}(?:(?:\s*\{\s*,\s*\}\s*|,\\!\s*|\\,)\d{3})+(?!\d)/g,
    (m) => m.replace(/\s*\{\s*,\s*\}\s*|,\\!\s*|\\,/g, ''),
  );
  // SI thin spaces in the fractional part: 3.141\,592
  if (s.includes('\\,')) s = s.replace(/(?<=\.\d+)\\,(?=\d)/g, '');
  // plain spaces in exact groups of three: 1 000 000
  s = s.replace(/(?<![\d.,])[1-9]\d{0,2}(?: \d{3})+(?![\d]|,\d)/g, (m) => m.replace(/ /g, ''));
  // plain commas in exact groups of three, no space after the comma, outside brackets
  const depth = depthAt(s);
  return s.replace(/(?<![\d.])[1-9]\d{0,2}(?:,\d{3})+(?![\d]|,\d)/g, (m, offset: number) => {
    if (depth[offset] !== 0) return m;
    return m.replace(/,/g, '');
  });
}

/**
 * Normalise a raw answer string: wrappers, delimiters, spacing, unicode, thousands separators,
 * trailing units, list words. Returns '' for an empty answer.
 */
export function normalizeAnswer(raw: string): string {
  let s = raw;
  if (s.length > MAX_INPUT_CHARS) return s;
  s = s.replace(/\r\n?/g, '\n');
  for (const [re, rep] of UNICODE) s = s.replace(re, rep);
  s = stripWrappers(s);
  // math delimiters
  s = s.replace(/\$\$?/g, (m, off: number) => (off > 0 && s[off - 1] === '\\' ? m : ' '));
  s = s.replace(/\\\$/g, ' ');
  s = s.replace(/(?<!\\)\\[()[\]]/g, ' ');
  s = stripWrappers(s);
  // markdown bold **73**, then Python-style power x**2
  s = s.replace(/^\s*\*\*([^*]+)\*\*\s*$/, '$1').replace(/\*\*/g, '^');
  s = s.replace(/\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits)(?![a-zA-Z])/g, ' ');
  s = s.replace(/\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|big|Big|bigg|Bigg|middle)(?![a-zA-Z])\s*\.?/g, '');
  s = s.replace(/\\(?:d|t|c)frac(?![a-zA-Z])/g, '\\frac');
  s = s.replace(/\\(?:d|t)binom(?![a-zA-Z])/g, '\\binom');
  s = s.replace(/\\(?:lbrace)(?![a-zA-Z])/g, '\\{').replace(/\\(?:rbrace)(?![a-zA-Z])/g, '\\}');
  s = s.replace(/\\(?:leqslant|leq|le)(?![a-zA-Z])/g, '\\le ').replace(/\\(?:geqslant|geq|ge)(?![a-zA-Z])/g, '\\ge ');
  s = s.replace(/\\(?:neq|ne)(?![a-zA-Z])/g, '\\ne ');
  s = s.replace(/\\lt(?![a-zA-Z])/g, '<').replace(/\\gt(?![a-zA-Z])/g, '>');
  s = s.replace(/\\varnothing(?![a-zA-Z])/g, '\\emptyset');
  s = s.replace(/\\(?:degree)(?![a-zA-Z])/g, '^\\circ');
  s = s.replace(/\^\s*\{\s*\\circ\s*\}/g, '^\\circ');
  s = s.replace(/\^\s*\\circ/g, '^\\circ');
  // "45\circ" (the ^ forgotten) after a number or a braced group is still a degree sign
  s = s.replace(/([\d}])\s*\\circ(?![a-zA-Z])/g, '$1^\\circ');
  s = removeThousands(s);
  // spacing
  s = s.replace(/(?<!\\)\\!/g, '');
  s = s.replace(/(?<!\\)\\(?:,|;|:|>|quad|qquad|enspace|thinspace|medspace|thickspace|hfill)(?![a-zA-Z])/g, ' ');
  if (s.includes('\\ ')) s = s.replace(/(?<!\\)\\ /g, ' '); // the control space "\ " may be followed by anything ("\mathrm{\ cm}")
  s = s.replace(/\\(?:hspace|vspace)\*?\s*\{[^}]*\}/g, ' ');
  s = s.replace(/~/g, ' ');
  s = s.replace(/\\%/g, '%');
  s = s.replace(/\\(?:text|mbox|mathrm|textrm|textbf)\s*\{\s*(?:percent|per cent|pct|percentage(?: points?)?|%)\s*\}/gi, '%');
  s = s.replace(/(?<=[\d}.])\s*\\?(?:percent|per cent|pct|percentage(?: points?)?)\s*$/i, '%');
  s = s.replace(/\s+/g, ' ').trim();
  // trailing punctuation
  s = s.replace(/[\s.;,]+$/, '');
  // "y \approx 8": an integer stated as approximate is that integer (it can only equal an integer gold)
  if (s.includes('\\approx')) s = s.replace(/^(?:(?![ei](?![_\w]))[A-Za-z](?:_\{?\w+\}?)?\s*)?\\approx\s*(-?\d+)$/, '$1'); // not e ≈ 3
  // "1/3 \approx 0.333": keep the exact value before an approximation
  const approx = s.search(/\\approx(?![a-zA-Z])/);
  if (approx > 0) s = s.slice(0, approx).trim();
  // "\text{The answer is } 5": a leading answer-phrase wrapper
  s = s.replace(/^\\(?:text|textbf|mbox|mathrm)\s*\{\s*(?:the\s+)?(?:final\s+)?answer\s+is\s*:?\s*\}\s*/i, '');
  // "2.5 million", "3\text{ billion}": scale words after a number
  s = s.replace(
    /(\d)\s*(?:\\(?:text|mbox|mathrm|textrm)\s*\{\s*)?(million|billion|trillion)(?:\s*\})?(?![A-Za-z])/gi,
    (_m, d: string, w: string) => `${d}\\times 10^{${{ million: 6, billion: 9, trillion: 12 }[w.toLowerCase() as 'million']}}`,
  );
  s = unwrapNumericText(s);
  s = stripUnits(s);
  // list words: "5 and 6", "x=1 \text{ or } x=2"
  s = s.replace(/\\(?:text|mbox|mathrm|textrm|textbf)\s*\{\s*(?:and|or|,)\s*\}/gi, ',');
  s = s.replace(/(?<=\S)\s+(?:and|or)\s+(?=\S)/gi, ', ');
  if (/and|or/i.test(s)) s = s.replace(/(?<=[)\]])\s*(?:and|or)\s*(?=[([])/gi, ', '); // "(5,2)or(2,5)"
  s = s.replace(/\s+/g, ' ').trim();
  s = s.replace(/^,|,$/g, '').trim();
  s = setBuilderToCondition(s);
  s = numberWord(s);
  // "all real numbers" / "\text{all reals}" written out in words is the set of reals
  if (/^(?:\\text\s*\{\s*)?(?:the\s+set\s+of\s+)?(?:all|any|every)\s+reals?(?:\s+numbers?)?\s*\}?$/i.test(s)) s = '\\mathbb{R}';
  return s;
}

const NUMBER_WORDS: Readonly<Record<string, number>> = {
  zero: 0, one: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10, eleven: 11,
  twelve: 12, thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16, seventeen: 17, eighteen: 18, nineteen: 19,
  twenty: 20, thirty: 30, forty: 40, fifty: 50, sixty: 60, seventy: 70, eighty: 80, ninety: 90, hundred: 100,
};

/** A whole answer that is one number word ("seven", "\text{Twelve}") is that integer. */
function numberWord(s: string): string {
  if (s.length > 40 || /\d/.test(s)) return s;
  const m = /^(?:\\(?:text|textbf|mathrm|mbox|textrm)\s*\{\s*)?([A-Za-z]+)(?:\s*\})?$/.exec(s);
  if (m === null || (m[0].includes('{') !== m[0].includes('}'))) return s;
  const v = NUMBER_WORDS[(m[1] as string).toLowerCase()];
  return v === undefined ? s : String(v);
}

/**
 * Set-builder notation over one variable, `\{x \mid x > 0\}`, `\{x : x \ne 1\}`, `\{x \in \mathbb{R} | x < 2\}`:
 * the set is described by its condition, which is compared like a solved relation (a condition that does not
 * mention the variable is left alone).
 */
function setBuilderToCondition(s: string): string {
  const m = /^\\\{\s*([A-Za-z])\s*(?:\\in\s*\\mathbb\s*\{?\s*R\s*\}?\s*)?(?:\\mid|\||:|\\colon)\s*(.+?)\s*\\\}$/.exec(s);
  if (m === null) return s;
  const v = m[1] as string;
  const cond = m[2] as string;
  if (cond.includes('\\{') || cond.includes('\\}')) return s;
  if (!new RegExp(`(?<![A-Za-z\\\\])${v}(?![A-Za-z])`).test(cond)) return s;
  return cond;
}

/** Reduce a string for textual comparison: \text-like wrappers unwrapped, no spaces, lower case. */
export function textKey(s: string): string {
  let out = s;
  for (let guard = 0; guard < 50; guard++) {
    const m = /\\(?:text|textbf|textit|textrm|textsf|texttt|textnormal|mathrm|mathbf|mathit|mathsf|mbox|emph|operatorname)\s*\{/.exec(out);
    if (!m) break;
    const open = m.index + m[0].length - 1;
    const close = matchBrace(out, open);
    if (close < 0) break;
    out = out.slice(0, m.index) + out.slice(open + 1, close) + out.slice(close + 1);
  }
  // digits separated only by a space stay separated ("4 2" is not "42")
  return out.replace(/(\d)\s+(?=\d)/g, '$1_').replace(/\s+/g, '').replace(/\.$/, '').toLowerCase();
}

/**
 * Multiple-choice letter written as "(C)", "C", "\text{(C)}", "\textbf{(C)} 5", "(C) 5", "C)".
 * Lower-case letters count only in parentheses.
 */
export function choiceLetter(s: string): string | null {
  let t = s.replace(/\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}/g, '$1').trim();
  t = t.replace(/^(?:option|choice|answer)\s*:?\s*/i, '');
  // "A:B = 3:2" is a ratio of named quantities, not option A
  if (/^[A-Z]\s*:\s*[A-Z]/.test(t)) return null;
  let m = /^\(\s*([A-Ja-j])\s*\)(?:\s*[:.]?\s*(.*))?$/.exec(t);
  if (m && m[1] !== undefined) return m[1].toUpperCase();
  m = /^([A-J])(?:\s*[).:]\s*.*)?$/.exec(t);
  if (m && m[1] !== undefined) return m[1];
  return null;
}

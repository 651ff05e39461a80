// Final-answer extraction from a model response (verifier stage 1).
//
// Policy (the labelling rules in docs/verifier-policy.md), in order:
//   0. pre-checks: cut at a hallucinated new turn (chat tokens, a new "Problem:"/"Question:"/"User:" header line);
//      an unfinished <think> is no answer; after a closed </think> only the text that follows counts;
//   1. the last brace-matched \boxed{…} / \fbox{…} (also `\boxed 5`); adjacent boxes joined by separators form a
//      list, identical repeats are deduplicated, an empty box is no answer; the last box of each labelled part
//      ((a), (b), … / Part 1, Part 2, …) forms a list when every part has one; a later "final answer" phrase
//      overrides the box unless the box was itself given as the answer;
//   2. else the last explicit answer phrase ("the answer is", "Answer:", "#### X", a final "A: X" line,
//      a "Final Answer" header followed by the value, "Answer $7$", "$x=4$ is our answer", "Final Answer: The area
//      of $PQRS$ is 48.");
//   3. else a reply that opens with its option letter ("C. Because …");
//   4. else the whole (short) response when it is just an answer;
//   5. else a concluding sentence at the very end ("So the total is $42$.", "…, so it rises by 50%.");
//   never a "last number in the text" fallback; hedged answers ("5 or 6?", "maybe 5") are no answer.
//
// The answer is returned as written (no normalisation). Everything here is a linear scan over the text or a
// regular expression applied to a bounded window, so megabyte inputs, deep nesting and unbalanced braces are safe.

import type { Extraction, ExtractionMethod } from './types.js';

/** Chat-template tokens after which the text is a hallucinated new turn (or after the stop word). */
const TURN_TOKENS: readonly string[] = [
  '<|im_start|>',
  '<|im_end|>',
  '<|endoftext|>',
  '<|eot_id|>',
  '<|start_header_id|>',
  '<|user|>',
  '<|assistant|>',
  '<|end|>',
  '</s>',
];

/** A line that opens a new problem or a new conversation turn ("Problem 2:", "**Question:**", "Human:", "Q:"). */
const NEW_TURN_LINE =
  /^[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*|__)?[ \t]*(?:new[ \t]+)?(?:problem|question|human|user|q)(?:[ \t]*#?\d+)?[ \t]*(?:\*\*|__)?[ \t]*[:：]/i;
/** A markdown heading that opens a new problem ("## Problem 3"). */
const NEW_PROBLEM_HEADING = /^[ \t]*#{1,6}[ \t]*(?:new[ \t]+)?(?:problem|question)(?:[ \t]*#?\d+)?[ \t]*(?:\*\*)?[ \t]*$/i;

/** Words that make an answer a guess rather than a final answer. */
const HEDGE_WORDS = /\b(?:maybe|perhaps|possibly|probably|i guess|not sure|unsure)\b/i;
/** Words that make an answer phrase conditional rather than a statement ("if the answer is 5, …"). */
const CONDITIONAL_WORDS = /\b(?:if|whether|suppose|assume|assuming|check|verify|let's|lets|let us)\b/i;
/** Words that mark a candidate as prose, not an answer. */
const PROSE_WORDS = new Set([
  'the', 'is', 'are', 'was', 'were', 'we', 'let', 'lets', 'so', 'thus', 'therefore', 'hence', 'it', 'this', 'that',
  'not', 'don', 'know', 'sure', 'answer', 'solution', 'step', 'first', 'then', 'can', 'cannot', 'will', 'need',
  'find', 'to', 'because', 'since', 'if', 'correct', 'incorrect', 'wrong', 'following', 'below', 'above', 'given',
  'hmm', 'unclear', 'unsure', 'maybe', 'perhaps', 'should', 'would', 'could', 'might', 'think', 'guess', 'am',
  'have', 'has', 'be', 'you', 'me', 'my', 'our', 'your', 'as', 'follows', 'question', 'problem', 'calculate',
]);

const MAX_SEPARATOR_GAP = 60;
const MAX_PHRASE_SPAN = 500;
const MAX_BARE_CHARS = 120;
const MAX_ANCHORS_TRIED = 40;

function result(answer: string, method: ExtractionMethod, reason: string): Extraction {
  return { answer, method, reason };
}

function none(reason: string): Extraction {
  return { answer: null, method: 'none', reason };
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13 || c === 12 || c === 11 || c === 0xa0;
}

function isLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

// ---------------------------------------------------------------------------------------------------------------
// Pre-checks

interface Body {
  text: string;
  notes: string[];
}

/** Cut at the earliest chat-template token. */
function cutAtTurnTokens(text: string, notes: string[]): string {
  let cut = -1;
  let which = '';
  for (const tok of TURN_TOKENS) {
    const i = text.indexOf(tok);
    if (i >= 0 && (cut < 0 || i < cut)) {
      cut = i;
      which = tok;
    }
  }
  if (cut < 0) return text;
  notes.push(`cut at ${which}`);
  return text.slice(0, cut);
}

type ThinkOutcome = { ok: true; text: string } | { ok: false; reason: string };

/** Apply the <think> policy: unfinished → no answer; closed → only what follows (or the inside if nothing follows). */
function applyThink(text: string, notes: string[]): ThinkOutcome {
  const open = Math.max(text.lastIndexOf('<think>'), text.lastIndexOf('<thinking>'));
  const c1 = text.lastIndexOf('</think>');
  const c2 = text.lastIndexOf('</thinking>');
  let close = -1;
  let closeEnd = -1;
  if (c1 >= 0 && c1 >= c2) {
    close = c1;
    closeEnd = c1 + '</think>'.length;
  } else if (c2 >= 0) {
    close = c2;
    closeEnd = c2 + '</thinking>'.length;
  }
  if (open >= 0 && open > close) return { ok: false, reason: 'unfinished <think> (opened, never closed)' };
  if (close < 0) return { ok: true, text };
  const after = text.slice(closeEnd);
  if (after.trim() !== '') {
    notes.push('after </think>');
    return { ok: true, text: after };
  }
  notes.push('inside <think> (nothing follows </think>)');
  const inside = text.slice(0, close).replace(/<\/?think(?:ing)?>/g, ' ');
  return { ok: true, text: inside };
}

/** Cut at a line that starts a new problem or turn, when it comes after some content. */
function cutAtNewTurnLine(text: string, notes: string[]): string {
  let firstContent = 0;
  while (firstContent < text.length && isSpace(text.charCodeAt(firstContent))) firstContent++;
  let ls = text.indexOf('\n', firstContent);
  while (ls >= 0) {
    const start = ls + 1;
    let k = start;
    while (k < text.length && (text.charCodeAt(k) === 32 || text.charCodeAt(k) === 9)) k++;
    const c = text[k];
    if (c !== undefined && '#*_PpQqHhUuNn'.includes(c)) {
      const nl = text.indexOf('\n', start);
      const line = text.slice(start, Math.min(nl < 0 ? text.length : nl, start + 80));
      if (NEW_TURN_LINE.test(line) || NEW_PROBLEM_HEADING.test(line)) {
        notes.push(`cut at new turn "${line.trim().slice(0, 20)}"`);
        return text.slice(0, start);
      }
    }
    ls = text.indexOf('\n', start);
  }
  return text;
}

// ---------------------------------------------------------------------------------------------------------------
// Boxes

interface Box {
  /** Index of the command (the backslash, or the "b" of a bare `boxed{`). */
  start: number;
  /** Content span [contentStart, contentEnd). */
  contentStart: number;
  contentEnd: number;
  /** Index just after the box. */
  end: number;
  command: string;
}

/** For every unescaped "{", the index of its matching "}" (or -1). One linear pass. */
function matchBraces(text: string): Int32Array {
  const n = text.length;
  const match = new Int32Array(n).fill(-1);
  const stack = new Int32Array(n);
  let top = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 92) {
      i++; // skip the escaped character: \{ \} \\
    } else if (c === 123) {
      stack[top++] = i;
    } else if (c === 125 && top > 0) {
      match[stack[--top]!] = i;
    }
  }
  return match;
}

/** Read the single-token argument of `\boxed 5` / `\boxed5`; returns [start, end) or null. */
function readTokenArg(text: string, j: number): [number, number] | null {
  const n = text.length;
  let k = j;
  let depth = 0;
  while (k < n && k - j <= 100) {
    const c = text.charCodeAt(k);
    if (c === 123) depth++;
    else if (c === 125) {
      if (depth === 0) break;
      depth--;
    } else if (depth === 0) {
      if (isSpace(c) || c === 36) break; // whitespace or $
      if (c === 92 && k > j) {
        const d = text[k + 1];
        if (d === ']' || d === ')') break;
      }
    }
    k++;
  }
  if (k - j > 100 || depth !== 0) return null;
  let e = k;
  while (e > j && '.,;:'.includes(text[e - 1]!)) e--;
  if (e <= j) return null;
  const token = text.slice(j, e);
  // a prose word after "\boxed" is not an argument; a nested box command is found on its own
  if (/^\\(?:boxed|fbox)(?![a-z])/i.test(token)) return null;
  if (!/\d|\\/.test(token) && token.length > 1) return null;
  return [j, e];
}

interface BoxScan {
  boxes: Box[];
  unbalanced: number;
  byStart: Map<number, Box>;
}

/** All well-formed boxes, outermost only, in text order; counts unbalanced ones (which are skipped). */
function scanBoxes(text: string): BoxScan {
  const starts: Array<[number, string, number]> = []; // [command start, command name, index after name]
  for (const name of ['boxed', 'fbox']) {
    let i = text.indexOf(name);
    while (i >= 0) {
      const after = i + name.length;
      const next = text.charCodeAt(after);
      const prev = i > 0 ? text.charCodeAt(i - 1) : -1;
      if (!isLetter(next)) {
        if (prev === 92) starts.push([i - 1, name, after]);
        else if (name === 'boxed' && !isLetter(prev) && next === 123) starts.push([i, name, after]);
      }
      i = text.indexOf(name, after);
    }
  }
  const byStart = new Map<number, Box>();
  if (starts.length === 0) return { boxes: [], unbalanced: 0, byStart };
  starts.sort((a, b) => a[0] - b[0]);
  let match: Int32Array | null = null;
  let unbalanced = 0;
  const all: Box[] = [];
  for (const [start, name, after] of starts) {
    let j = after;
    while (j < text.length && isSpace(text.charCodeAt(j))) j++;
    if (text.charCodeAt(j) === 123) {
      match ??= matchBraces(text);
      const close = match[j]!;
      if (close < 0) {
        unbalanced++;
        continue;
      }
      all.push({ start, contentStart: j + 1, contentEnd: close, end: close + 1, command: name });
    } else if (text.charCodeAt(start) === 92 && j < text.length) {
      const span = readTokenArg(text, j);
      if (span === null) continue;
      all.push({ start, contentStart: span[0], contentEnd: span[1], end: span[1], command: name });
    }
  }
  const boxes: Box[] = [];
  let lastEnd = -1;
  for (const b of all) {
    byStart.set(b.start, b);
    if (b.start >= lastEnd) {
      boxes.push(b);
      lastEnd = b.end;
    }
  }
  return { boxes, unbalanced, byStart };
}

/** Box content trimmed, with `\boxed{\boxed{5}}` unwrapped; O(whitespace) per level via the box index. */
function boxContent(text: string, box: Box, byStart: Map<number, Box>): string {
  let s = box.contentStart;
  let e = box.contentEnd;
  for (;;) {
    while (s < e && isSpace(text.charCodeAt(s))) s++;
    while (e > s && isSpace(text.charCodeAt(e - 1))) e--;
    const inner = byStart.get(s);
    if (inner === undefined || inner.end !== e) break;
    s = inner.contentStart;
    e = inner.contentEnd;
  }
  return text.slice(s, e);
}

/** An empty box, or one holding only spacing or `\phantom{…}`. */
function isEmptyContent(s: string): boolean {
  if (s.trim() === '') return true;
  if (s.length > 200) return false;
  return /^(?:\s|\\phantom\s*\{[^{}]*\}|\\[,;:! ]|\\q?quad\b|~)*$/.test(s);
}

const SEPARATOR_TOKEN =
  /\s+|\$+|\\[()[\]]|[,;&]|\\\\|\\q?quad\b|\\[,;:! ]|\\hspace\s*\{[^{}]*\}|(?:and|or)\b|[A-Za-z](?:_\{?[A-Za-z0-9]{1,3}\}?)?\s*=(?!=)|\\(?:text|mbox|mathrm|textrm|textnormal)\s*\{\s*,?\s*(?:and|or)?\s*,?\s*\}/iy;

/** True when the text between two boxes only separates them (",", ";", "and", "or", \quad, \text{ and }, $, space). */
function isSeparatorGap(gap: string): boolean {
  if (gap.length > MAX_SEPARATOR_GAP) return false;
  let i = 0;
  while (i < gap.length) {
    SEPARATOR_TOKEN.lastIndex = i;
    const m = SEPARATOR_TOKEN.exec(gap);
    if (m === null || m[0].length === 0) return false;
    i += m[0].length;
  }
  return true;
}

/** The sentence (bounded) that ends at `pos`: from the previous sentence end or line break. */
function sentenceBefore(text: string, pos: number, limit = 160): string {
  const from = Math.max(0, pos - limit);
  let k = pos - 1;
  while (k >= from) {
    const c = text[k]!;
    if (c === '\n') break;
    if ((c === '.' || c === '!' || c === '?') && k + 1 < pos && isSpace(text.charCodeAt(k + 1))) break;
    k--;
  }
  return text.slice(k + 1, pos);
}

/** After `pos`, skipping spaces and closing math delimiters, is the next character a question mark? */
function questionFollows(text: string, pos: number): boolean {
  let k = pos;
  const end = Math.min(text.length, pos + 40);
  while (k < end) {
    const c = text[k]!;
    if (isSpace(text.charCodeAt(k)) || c === '$' || c === '}' || c === '*') {
      k++;
    } else if (c === '\\' && (text[k + 1] === ')' || text[k + 1] === ']')) {
      k += 2;
    } else {
      return c === '?';
    }
  }
  return false;
}

/**
 * A line that opens a labelled part: "(a) …", "**(b)** …", "b) …", "Part (c): …", "### Part 2" (a bare "a." or
 * "1." list item, a numbered step "(1)" and a formula "(a+b)^2" are not parts).
 */
const PART_MARKER =
  /^[ \t>#*_]*(?:part[ \t]+\(?([a-h]|i{1,3}|iv|vi{0,3}|[1-9])\)?[ \t]*[.:)]?|\(([a-h]|i{1,3}|iv|vi{0,3})\)|([a-h]|i{1,3}|iv|vi{0,3})\))(?=[ \t*_]|$)/gim;
const PART_SEQUENCES = ['abcdefgh', ['i', 'ii', 'iii', 'iv', 'v', 'vi', 'vii', 'viii'], '12345678'] as const;
const MAX_PARTS = 8;

/**
 * When the response answers labelled parts in order ((a), (b), … or Part 1, Part 2, …) and every part holds a box,
 * the last box of each part; else null.
 */
function partBoxes(text: string, boxes: readonly Box[]): Box[] | null {
  if (boxes.length < 2) return null;
  const starts: Array<[number, string]> = [];
  PART_MARKER.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = PART_MARKER.exec(text)) !== null) {
    starts.push([m.index, ((m[1] ?? m[2] ?? m[3]) as string).toLowerCase()]);
    if (starts.length > MAX_PARTS) return null;
  }
  if (starts.length < 2) return null;
  const labels = starts.map(([, l]) => l);
  const inOrder = PART_SEQUENCES.some((seq) => labels.every((l, i) => seq[i] === l));
  if (!inOrder) return null;
  const out: Box[] = [];
  for (let k = 0; k < starts.length; k++) {
    const from = starts[k]![0];
    const to = k + 1 < starts.length ? starts[k + 1]![0] : Infinity;
    let lastIn: Box | null = null;
    for (const b of boxes) if (b.start >= from && b.end <= to) lastIn = b;
    if (lastIn === null) return null;
    out.push(lastIn);
  }
  return out[out.length - 1] === boxes[boxes.length - 1] ? out : null;
}

const FINAL_ANSWER = /\bfinal[ \t*_]*answer\b/i;

/** `lastEnd` receives the span of the last box. */
function extractFromBoxes(text: string, notes: string[], lastEnd?: { start: number; end: number }): Extraction | null {
  const { boxes, unbalanced, byStart } = scanBoxes(text);
  if (boxes.length === 0) {
    if (unbalanced > 0) notes.push(`${unbalanced} unbalanced box skipped`);
    return null;
  }
  const last = boxes[boxes.length - 1]!;
  if (lastEnd !== undefined) {
    lastEnd.start = last.start;
    lastEnd.end = last.end;
  }
  const group: Box[] = [last]; // built backwards, reversed below
  for (let k = boxes.length - 2; k >= 0; k--) {
    const prev = boxes[k]!;
    if (!isSeparatorGap(text.slice(prev.end, group[group.length - 1]!.start))) break;
    group.push(prev);
  }
  group.reverse();
  if (group.length === 1) {
    const parts = partBoxes(text, boxes);
    if (parts !== null) {
      const contents = parts.map((b) => boxContent(text, b, byStart));
      if (!contents.some(isEmptyContent) && !questionFollows(text, last.end)) {
        return result(contents.join(', '), 'boxed', `last \\${last.command}{} of each of ${parts.length} labelled parts, joined as a list`);
      }
    }
  }
  const cmd = `\\${last.command}`;
  const lastContent = boxContent(text, last, byStart);
  if (isEmptyContent(lastContent)) return none(`empty ${cmd}{}`);
  if (questionFollows(text, last.end) || HEDGE_WORDS.test(sentenceBefore(text, group[0]!.start))) {
    return none(`hedged ${cmd}{} (question or "maybe")`);
  }
  const parts: string[] = [];
  const seen = new Set<string>();
  for (const b of group) {
    const c = b === last ? lastContent : boxContent(text, b, byStart);
    if (isEmptyContent(c)) continue;
    const key = c.replace(/\s+/g, '');
    if (seen.has(key)) continue;
    seen.add(key);
    parts.push(c);
  }
  const skipped = unbalanced > 0 ? `; ${unbalanced} unbalanced box skipped` : '';
  if (parts.length === 1) {
    const dup = group.length > 1 ? ` (${group.length} identical adjacent boxes)` : '';
    return result(parts[0]!, 'boxed', `last ${cmd}{}${dup}${skipped}`);
  }
  return result(parts.join(', '), 'boxed', `${parts.length} adjacent boxes joined as a list${skipped}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Answer phrases

interface Span {
  text: string;
  question: boolean;
}

/**
 * The answer text that starts at `pos`: to the end of the sentence or line (math-aware); when the line is empty,
 * the next non-empty line; a display block `\[…\]` / `$$…$$` is taken whole. Null when over-long or empty.
 */
function takeSpan(text: string, pos: number): Span | null {
  const n = text.length;
  let i = pos;
  while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
  if (i >= n) return null;
  if (text[i] === '\n' || text[i] === '\r') {
    // value on a following line
    let blank = 0;
    while (i < n && isSpace(text.charCodeAt(i)) && blank < 200) {
      i++;
      blank++;
    }
    if (i >= n || blank >= 200) return null;
  }
  const limit = Math.min(n, i + MAX_PHRASE_SPAN);
  const display = text.startsWith('\\[', i) ? '\\]' : text.startsWith('$$', i) ? '$$' : null;
  if (display !== null) {
    const close = text.indexOf(display, i + 2);
    if (close < 0 || close + 2 > limit) return null;
    return { text: text.slice(i, close + 2), question: questionFollows(text, close + 2) };
  }
  let k = i;
  let inDollar = false;
  let inParen = false;
  let depth = 0;
  while (k < limit) {
    const c = text[k]!;
    if (c === '\n' || c === '\r') break;
    if (c === '\\') {
      const d = text[k + 1];
      if (d === '(') inParen = true;
      else if (d === ')') inParen = false;
      k += 2;
      continue;
    }
    if (c === '$') inDollar = !inDollar;
    else if (c === '{') depth++;
    else if (c === '}') depth = Math.max(0, depth - 1);
    else if (!inDollar && !inParen && depth === 0 && (c === '.' || c === '!' || c === '?')) {
      const next = k + 1 < n ? text.charCodeAt(k + 1) : 32;
      if (c === '?') return { text: text.slice(i, k), question: true };
      if (isSpace(next)) break;
    }
    k++;
  }
  if (k >= limit && limit < n && text[k] !== '\n') return null;
  return { text: text.slice(i, k), question: false };
}

/** Strip wrappers: markdown emphasis, `$…$`, `$$…$$`, `\(…\)`, `\[…\]`, a trailing period, "I hope it is correct". */
function cleanAnswer(raw: string): string {
  let s = raw.trim();
  const hope = s.toLowerCase().indexOf('i hope it is correct');
  if (hope >= 0) s = s.slice(0, hope).trim();
  const tail = /,\s+(?:which|where|since|because|so|as|that|and this|but|i\.e\.|meaning|hence|thus|therefore)\b/i.exec(s);
  if (tail !== null) s = s.slice(0, tail.index).trim();
  // a trailing prose remark in parentheses: "3 (three solutions)"; not "(C)", not "5 (or 6)", not "(approx.)"
  const remark = /\s+\(([A-Za-z][A-Za-z ,'-]{2,60})\)\.?$/.exec(s);
  if (remark !== null && /[a-z]{3}/i.test(remark[1]!) && !/\b(?:or|approx\w*|about|roughly|maybe|perhaps|not|nearly|almost)\b/i.test(remark[1]!)) {
    s = s.slice(0, remark.index).trim();
  }
  for (let round = 0; round < 4; round++) {
    const before = s;
    s = s.replace(/[.,;:]+$/, '').trim();
    if (s.startsWith('**') && s.endsWith('**') && s.length >= 4 && !s.slice(2, -2).includes('**')) s = s.slice(2, -2).trim();
    else if (s.endsWith('**') && s.indexOf('**') === s.length - 2) s = s.slice(0, -2).trim();
    else if (s.startsWith('**') && s.lastIndexOf('**') === 0) s = s.slice(2).trim();
    else if (s.startsWith('__') && s.endsWith('__') && s.length >= 4 && !s.slice(2, -2).includes('__')) s = s.slice(2, -2).trim();
    else if (s.startsWith('$$') && s.endsWith('$$') && s.length >= 4 && !s.slice(2, -2).includes('$')) s = s.slice(2, -2).trim();
    else if (s.startsWith('$') && s.endsWith('$') && s.length >= 2 && !s.slice(1, -1).includes('$')) s = s.slice(1, -1).trim();
    else if (s.startsWith('\\(') && s.endsWith('\\)') && s.length >= 4) s = s.slice(2, -2).trim();
    else if (s.startsWith('\\[') && s.endsWith('\\]') && s.length >= 4) s = s.slice(2, -2).trim();
    if (s === before) break;
  }
  return s;
}

/** Count prose words (letter runs of 2+ that are not LaTeX command names) and whether any is a prose marker. */
function proseWords(s: string): { count: number; prose: boolean } {
  let count = 0;
  let prose = false;
  const re = /[A-Za-z']+/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    if (m.index > 0 && s[m.index - 1] === '\\') continue;
    const w = m[0].toLowerCase().replace(/'.*$/, '');
    if (w.length < 2) continue;
    if (w === 'and' || w === 'or') continue;
    count++;
    if (PROSE_WORDS.has(w)) prose = true;
  }
  return { count, prose };
}

/** Does `s` (already cleaned) look like a final answer rather than prose? */
function looksLikeAnswer(s: string, maxWords: number, maxChars: number): boolean {
  if (s === '' || s.length > maxChars || s.includes('?') || s.includes('\n')) return false;
  if (/[:：]$/.test(s)) return false;
  const { count, prose } = proseWords(s);
  return !prose && count <= maxWords;
}

interface Anchor {
  pos: number;
  kind: 'answer' | 'choice' | 'hash' | 'line';
}

/** Positions of answer anchors, rightmost first (bounded count). */
function findAnchors(text: string, lower: string): Anchor[] {
  const anchors: Anchor[] = [];
  let i = lower.lastIndexOf('answer');
  let tried = 0;
  while (i >= 0 && tried < MAX_ANCHORS_TRIED) {
    if (i === 0 || !isLetter(lower.charCodeAt(i - 1))) {
      anchors.push({ pos: i, kind: 'answer' });
      tried++;
    }
    i = i > 0 ? lower.lastIndexOf('answer', i - 1) : -1;
  }
  // "the correct option is (E)", "the right choice is B": same link and value rules as "answer" (both words have
  // six letters, like "answer"); the value must then be a choice letter (see tryAnchor)
  const choiceRe = /\b(?:correct|right|best)[ \t]+(option|choice)(?![a-z])/g;
  let cm: RegExpExecArray | null;
  const choiceAnchors: Anchor[] = [];
  while ((cm = choiceRe.exec(lower)) !== null && choiceAnchors.length < MAX_ANCHORS_TRIED) {
    choiceAnchors.push({ pos: cm.index + cm[0].length - 6, kind: 'choice' });
  }
  anchors.push(...choiceAnchors);
  let h = text.lastIndexOf('####');
  for (let tries = 0; h >= 0 && tries < MAX_ANCHORS_TRIED; tries++) {
    let k = h - 1;
    while (k >= 0 && (text[k] === ' ' || text[k] === '\t')) k--;
    if (k < 0 || text[k] === '\n') {
      anchors.push({ pos: h, kind: 'hash' });
      break;
    }
    h = h > 0 ? text.lastIndexOf('####', h - 1) : -1;
  }
  // a final "A: X" line (GSM8K example solutions)
  const trimmedEnd = text.trimEnd().length;
  const lineStart = text.lastIndexOf('\n', trimmedEnd - 1) + 1;
  if (/^[ \t]*A[ \t]*:/.test(text.slice(lineStart, lineStart + 8))) anchors.push({ pos: lineStart, kind: 'line' });
  anchors.sort((a, b) => b.pos - a.pos);
  return anchors;
}

const ANSWER_LINK =
  /^s?[ \t]*(?:\*\*|__)?[ \t]*(?:(?:to|for|of)\b[^.\n:?$]{0,80}?[ \t])?(?:is|are|was|would be|will be|=|:)(?![a-z])[ \t]*(?:\*\*|__)?[ \t]*:?[ \t]*(?:\*\*|__)?/i;
const ANSWER_HEADER = /^s?[ \t]*(?:\*\*|__)?[ \t]*:?[ \t]*(?:\*\*|__)?[ \t]*(?=\r?\n)/i;

type PhraseOutcome = { kind: 'answer'; value: string; reason: string } | { kind: 'hedge'; reason: string } | null;

function tryAnchor(text: string, a: Anchor): PhraseOutcome {
  let valueStart: number;
  let label: string;
  let header = false;
  if (a.kind === 'hash') {
    valueStart = a.pos + 4;
    label = '"####" line';
  } else if (a.kind === 'line') {
    valueStart = text.indexOf(':', a.pos) + 1;
    label = 'final "A:" line';
  } else {
    const after = text.slice(a.pos + 6, a.pos + 6 + 120);
    const link = ANSWER_LINK.exec(after);
    const before = text.slice(Math.max(0, a.pos - 12), a.pos).toLowerCase();
    if (link !== null) {
      valueStart = a.pos + 6 + link[0].length;
      label = /:/.test(link[0]) && !/\b(?:is|are|was)\b/i.test(link[0]) ? '"Answer:" phrase' : '"answer is" phrase';
    } else if (/final\W*$/.test(before) && ANSWER_HEADER.test(after)) {
      const m = ANSWER_HEADER.exec(after)!;
      valueStart = a.pos + 6 + m[0].length;
      label = '"Final Answer" header';
      header = true;
    } else if (startsLine(text, a.pos) && ANSWER_MATH.test(after)) {
      valueStart = a.pos + 6 + ANSWER_MATH.exec(after)![0].length;
      label = '"Answer" line followed by math';
    } else {
      return valueBeforeAnswer(text, a);
    }
    const sentence = sentenceBefore(text, a.pos);
    if (HEDGE_WORDS.test(sentence)) return { kind: 'hedge', reason: `hedged answer phrase ("${sentence.trim().slice(-40)}")` };
    if (CONDITIONAL_WORDS.test(sentence)) return null;
  }
  const span = takeSpan(text, valueStart);
  if (span === null) return null;
  if (span.question) return { kind: 'hedge', reason: `hedged ${label} (question)` };
  let value = cleanAnswer(span.text);
  if (value === '') return null;
  if (HEDGE_WORDS.test(value)) return { kind: 'hedge', reason: `hedged ${label} ("${value.slice(0, 40)}")` };
  if (/^not\b/i.test(value)) return { kind: 'hedge', reason: `negated ${label} ("${value.slice(0, 40)}")` };
  if (!looksLikeAnswer(value, header ? 3 : 6, header ? 120 : 300)) {
    // "Final Answer: The area of $PQRS$ is 48."
    const stated = a.kind === 'answer' ? statedValue(value) : null;
    if (stated === null) return null;
    value = stated;
    label += ' stating "… is <value>"';
  }
  if (a.kind === 'choice') {
    if (!/^\(?[A-Ja-j]\)?$/.test(value.trim())) return null;
    return { kind: 'answer', value, reason: '"correct option is" phrase' };
  }
  return { kind: 'answer', value, reason: label };
}

/** "Answer" then math on the same line: `Answer $ 7 $`, `Answer \[ 7 \]`. */
const ANSWER_MATH = /^(?:\*\*|__)?[ \t]+(?=\$|\\\[|\\\()/;

/** Only spacing or markdown emphasis between the previous line break and `pos`. */
function startsLine(text: string, pos: number): boolean {
  const ls = text.lastIndexOf('\n', pos - 1) + 1;
  return /^[ \t>#*_]*$/.test(text.slice(ls, pos));
}

/** Words right after a linking verb that make the value inexact, a bound or a negation. */
const VALUE_QUALIFIER =
  /^(?:not|approximately|approx\.?|about|around|roughly|nearly|almost|at least|at most|more than|less than|over|under|between|close to|some)\b/i;

/**
 * The value of a sentence "the|this|our|its … is|are|was|equals <value>" (the last linking verb outside math),
 * when what follows is a short answer; else null.
 */
function statedValue(sentence: string): string | null {
  if (!/^(?:the|this|our|its|it)\b/i.test(sentence) || sentence.length > 300) return null;
  const verb = /\s(?:is|are|was|equals|is equal to)\s+/gi;
  let tail: string | null = null;
  let m: RegExpExecArray | null;
  while ((m = verb.exec(sentence)) !== null) {
    const dollarsBefore = sentence.slice(0, m.index).split('$').length - 1;
    if (dollarsBefore % 2 === 0) tail = sentence.slice(m.index + m[0].length);
  }
  if (tail === null || VALUE_QUALIFIER.test(tail)) return null;
  const value = cleanAnswer(tail);
  return value !== '' && looksLikeAnswer(value, 3, 120) ? value : null;
}

/** The math value in "So $y \ge 3$ is our answer." / "$x = 4$ is the final answer" ending its sentence. */
function valueBeforeAnswer(text: string, a: Anchor): PhraseOutcome {
  const rest = text.slice(a.pos + 6, a.pos + 6 + 8);
  if (!/^s?[ \t]*(?:[.!]|\r?\n|$)/.test(rest)) return null;
  const before = text.slice(Math.max(0, a.pos - 240), a.pos);
  const m = /(\$[^$\n]{1,200}\$|\\\((?:(?!\\\)).){1,200}\\\)|-?\d[\d,]*(?:\.\d+)?(?:\/\d+)?%?)[ \t]+is[ \t]+(?:our|the|my)[ \t]+(?:final[ \t]+)?$/i.exec(before);
  if (m === null) return null;
  const sentence = sentenceBefore(text, a.pos);
  if (HEDGE_WORDS.test(sentence)) return { kind: 'hedge', reason: `hedged answer phrase ("${sentence.trim().slice(-40)}")` };
  if (CONDITIONAL_WORDS.test(sentence)) return null;
  const value = cleanAnswer(m[1] as string);
  if (value === '' || !looksLikeAnswer(value, 3, 200)) return null;
  return { kind: 'answer', value, reason: '"<value> is the answer" phrase' };
}

function extractFromPhrases(text: string): Extraction | null {
  const endsWithQuestion = text.trimEnd().endsWith('?');
  const anchors = findAnchors(text, text.toLowerCase());
  for (const a of anchors) {
    const out = tryAnchor(text, a);
    if (out === null) continue;
    if (out.kind === 'hedge') return none(out.reason);
    if (endsWithQuestion) return none(`hedged ${out.reason} (the response ends with a question)`);
    return result(out.value, 'phrase', `last answer phrase: ${out.reason}`);
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------------
// Bare answer and concluding sentence

/** A reply that opens with its option letter: "C. Because …", "(B) The …", "**D.** Since …" (not "A quick …"). */
const LEADING_CHOICE = /^[ \t\r\n]*(?:\*\*|__)?[ \t]*(?:\(([A-J])\)|([A-J])[.)])(?:\*\*|__)?[ \t]+\S/;

/** A later line that opens another option ("B. 6", "(C) 7"): the reply lists the options rather than choosing. */
const OPTION_LINE = /\n[ \t]*(?:\*\*|__)?[ \t]*(?:\(([A-J])\)|([A-J])[.)])/g;

function extractLeadingChoice(text: string): Extraction | null {
  const m = LEADING_CHOICE.exec(text);
  if (m === null) return null;
  const letter = (m[1] ?? m[2]) as string;
  // "(A) is wrong because …": the reply discusses option A rather than choosing it
  if (/^(?:is|isn't|was|are|cannot|can't|can|does|doesn't|do|fails|would|could|might|may|seems|looks|has|and|or|vs\.?|versus)\b/i.test(text.slice(m[0].length - 1).trimStart())) {
    return null;
  }
  OPTION_LINE.lastIndex = 0;
  for (let o = OPTION_LINE.exec(text); o !== null; o = OPTION_LINE.exec(text)) {
    if ((o[1] ?? o[2]) !== letter) return null;
  }
  if (HEDGE_WORDS.test(sentenceBefore(text, Math.min(text.length, m[0].length + 80)))) return null;
  return result(letter, 'phrase', 'reply opens with its option letter');
}

function extractBare(text: string): Extraction | null {
  const t = text.trim();
  if (t.length === 0 || t.length > MAX_BARE_CHARS) return null;
  const value = cleanAnswer(t);
  if (HEDGE_WORDS.test(value) || value.includes('?')) return none('hedged short response');
  if (!looksLikeAnswer(value, 3, MAX_BARE_CHARS)) return null;
  return result(value, 'bare', 'whole response is a short answer');
}

const CONCLUSION_CUE =
  /^[\s*]*(?:so|thus|therefore|hence|finally|in total|in conclusion|altogether|overall|consequently|this means|that means|which means)\b/i;
/** The same cue opening the last clause: "The price goes from 40 to 60, so it rises by 50%." */
const CLAUSE_CUE = /,[ \t]*(?:so|thus|therefore|hence)[ \t]+[^,;]*$/i;
/**
 * "Adding them, the total number of clips is 72.": a definite summarising subject (total, sum, result, …) linked by
 * "is" to the value. Any definite subject counts when the sentence is the whole response ("The angle is 120°.").
 */
const CONCLUSION_SUBJECT =
  /^[\s*]*(?:[A-Za-z][^,.;:!?]{0,60},[ \t]+)?(?:the|this|our)\b[^.;!?]*\b(?:total|sum|result|final|overall|altogether|combined|in all|solution|solutions|answer)\b[^.;!?]*\b(?:is|are|was|were|equals|comes to)[ \t]*(?:\*\*)?[ \t]*\\?\$?[ \t]*$/i;
const WHOLE_SENTENCE_SUBJECT =
  /^[\s*]*(?:the|this|our)\b[^.;!?]*\b(?:is|are|was|were|equals)[ \t]*(?:\*\*)?[ \t]*\\?\$?[ \t]*$/i;
/** The verb that links the subject to the value ("… is", "… equals", "… =", "… of", "… is:"). */
const CONCLUSION_LINK =
  /(?:\b(?:(?:rises|rose|increases|increased|decreases|decreased|falls|fell|drops|dropped|grows|grew|declines|declined)[ \t]+by|is|are|was|were|equals|equal|be|becomes|gives|of|to|at|makes?|made|has|have|had|needs?|costs?|earns?|earned|pays?|paid|spends?|spent|gets?|got|takes?|took|saves?|saved|sells?|sold|buys?|bought|receives?|received|remaining|left|totals?)|=|:)[ \t]*(?:\*\*)?[ \t]*\\?\$?[ \t]*$/i;
/** Words just before the value that make it inexact or negated. */
const CONCLUSION_QUALIFIER =
  /\b(?:not|approximately|about|around|roughly|nearly|almost|least|most|more than|less than|over|under|between)\s*(?:is|are|was|=|:)?[ \t]*$|≈|\\approx\s*$/i;
/** Sentence-wide signs of a non-statement. */
const CONCLUSION_BLOCK = /\?|^[\s*]*\w+,?\s+if\b/i;
/** Words allowed after the value ("… is $100$ square units."). */
const TRAILING_WORDS = /^(?:[ \t]+[A-Za-z][A-Za-z-]*){1,3}$/;
const TRAILING_STOP = /\b(?:more|less|than|times|plus|minus|of|and|or|not|over|under|from|to|by|if|when|but)\b/i;

/** "So the total is $42$." / "Therefore, the area is:\n\\[ 100 \\]" as the very last sentence of the response. */
function extractConclusion(text: string): Extraction | null {
  const t = text.trimEnd();
  if (t.length === 0) return null;
  let end = t.length;
  let valueStart: number;
  let valueEnd: number;
  let display = false;
  let percentWord = false;
  if (t.endsWith('\\]') || (t.endsWith('$$') && t.length > 4)) {
    const open = t.endsWith('\\]') ? t.lastIndexOf('\\[', end - 2) : t.lastIndexOf('$$', end - 3);
    if (open < 0 || end - open > 200) return null;
    valueStart = open + 2;
    valueEnd = end - 2;
    end = open;
    display = true;
  } else {
    const last = t[end - 1];
    // a closing math delimiter may end the response without a period ("The solution is $y != 4$")
    const mathEnd = last === '$' || t.endsWith('\\)');
    if (last !== '.' && last !== '!' && !mathEnd) return null;
    if (!mathEnd) end--;
    // up to three plain words after the value (units): "is \\(100\\) square units."
    const words = /(?:[ \t]+[A-Za-z][A-Za-z-]*){1,3}$/.exec(t.slice(Math.max(0, end - 60), end));
    if (words !== null && TRAILING_WORDS.test(words[0]) && !TRAILING_STOP.test(words[0])) {
      const before = end - words[0].length;
      const c = t[before - 1];
      if (c === '$' || c === ')' || (c !== undefined && c >= '0' && c <= '9')) {
        end = before;
        // "rises by 50 percent": the word is part of the value, not a unit
        percentWord = /^\s*(?:percent|pct)\s*$/i.test(words[0]);
      }
    }
    if (t[end - 1] === '$' || t.endsWith('\\)', end)) {
      const paren = t[end - 1] !== '$';
      let open = paren ? t.lastIndexOf('\\(', end - 2) : t.lastIndexOf('$', end - 2);
      // a dollar sign inside the math ("$\$36$") does not open it
      while (!paren && open > 0 && t[open - 1] === '\\') open = t.lastIndexOf('$', open - 1);
      if (open < 0 || end - open > 200) return null;
      valueStart = open + (paren ? 2 : 1);
      valueEnd = end - (paren ? 2 : 1);
      end = open;
    } else {
      const tail = t.slice(Math.max(0, end - 40), end);
      const m = /(?:^|[\s(])(\\?\$?-?\d[\d,]*(?:\.\d+)?(?:\/\d+)?(?:\\?%|°|\^\\circ|\^\{\\circ\})?)$/.exec(tail);
      if (m === null) return null;
      valueEnd = end;
      valueStart = end - m[1]!.length;
      end = valueStart;
    }
  }
  let value = t.slice(valueStart, valueEnd).trim().replace(/\.$/, '').trim();
  value = value.replace(/^\\?\$(?=\d|-)/, '');
  if (percentWord) value += '\\%';
  if (value === '' || value.length > 80 || value.includes('\n')) return null;
  let sEnd = end;
  while (sEnd > 0 && isSpace(t.charCodeAt(sEnd - 1))) sEnd--;
  const sentence = sentenceBefore(t, sEnd, 300);
  const whole = t.slice(0, sEnd).trim() === sentence.trim();
  const cued =
    CONCLUSION_CUE.test(sentence) ||
    CLAUSE_CUE.test(sentence) ||
    CONCLUSION_SUBJECT.test(sentence) ||
    (whole && WHOLE_SENTENCE_SUBJECT.test(sentence));
  if (!cued || !CONCLUSION_LINK.test(sentence)) return null;
  if (CONCLUSION_BLOCK.test(sentence) || CONCLUSION_QUALIFIER.test(sentence) || HEDGE_WORDS.test(sentence)) return null;
  if (HEDGE_WORDS.test(value)) return null;
  return result(value, 'phrase', display ? 'concluding sentence ending in a display value' : 'concluding sentence ending in a value');
}

/** Words that cannot end a finished sentence ("… we get", "… modulo 8 it is", "… and therefore the"). */
const DANGLING_WORD =
  /(?:^|[\s($])(?:the|a|an|of|to|by|and|or|is|are|was|were|it|its|gives?|equals?|that|which|with|for|from|in|on|as|then|we|be|gets?|than|into|at|this|these|has|have|had|will|can|so|since|because|if|when|where|while|but|not|also|our|let|obtain|yields?|becomes?|using|via|plus|minus|times|over)$/i;

/**
 * Visibly cut off: the text ends in a word or operator that cannot end a sentence ("… it is", "… = $", "… +").
 * A box or answer phrase before such an ending does not count (policy: a truncated response is no answer).
 */
function looksCutOff(text: string): boolean {
  let t = text.trimEnd();
  if (t === '' || /[.!?)\]}"'`>|*%]$/.test(t)) return false;
  // "… gives $2(5) + 3 = $": look inside a closing inline-math delimiter
  if (t.endsWith('$')) t = t.replace(/\$+$/, '').trimEnd();
  else if (t.endsWith('\\)') || t.endsWith('\\]')) t = t.slice(0, -2).trimEnd();
  if (/(?:[=+\-*/^(,{]|\\(?:times|cdot|div|frac|sqrt|le|ge|leq|geq|approx|pm))$/.test(t)) return true;
  return DANGLING_WORD.test(t.slice(-24));
}

/** Ends mid-sentence: no closing punctuation, delimiter or markup at the end. */
function looksTruncated(text: string): boolean {
  const t = text.trimEnd();
  if (t.length === 0) return false;
  return !/[.!?)\]}$*"'`>|]$/.test(t);
}

// ---------------------------------------------------------------------------------------------------------------

/**
 * Find the final answer in a model response (see the policy at the top of this file).
 * Returns the answer as written, how it was found, and why; `answer` is null when there is no final answer.
 */
export function extractAnswer(response: string): Extraction {
  if (typeof response !== 'string') return none('response is not a string');
  const notes: string[] = [];
  let text = cutAtTurnTokens(response, notes);
  const think = applyThink(text, notes);
  if (!think.ok) return none(think.reason);
  text = cutAtNewTurnLine(think.text, notes);
  const withNotes = (e: Extraction): Extraction =>
    notes.length > 0 ? { ...e, reason: `${e.reason} [${notes.join('; ')}]` } : e;
  if (text.trim() === '') return withNotes(none('empty response'));
  // a response that ends mid-sentence was truncated; what it said before the cut is not final (unless a
  // chat-template stop token shows that the turn ended there)
  if (!notes.some((n) => n.startsWith('cut at ')) && looksCutOff(text)) {
    return withNotes(none('response truncated (cut off mid-sentence)'));
  }

  const lastBox = { start: -1, end: -1 };
  const boxed = extractFromBoxes(text, notes, lastBox);
  if (boxed !== null) {
    // an explicit final-answer phrase after the last box wins over it ("\boxed{12} … Final Answer: the total is 20."),
    // unless the box itself was given as the answer ("The answer is $\boxed{5}$.")
    const tail = text.slice(lastBox.end);
    if (boxed.answer !== null && FINAL_ANSWER.test(tail) && !/\banswer\b/i.test(sentenceBefore(text, lastBox.start))) {
      const later = extractFromPhrases(tail);
      if (later !== null && later.answer !== null) {
        return withNotes({ ...later, reason: `${later.reason} (after the last box, which it overrides)` });
      }
      // "… \boxed{12}. The final answer is not 12, …" / "… maybe the final answer is 13": the box is not final
      if (later !== null) return withNotes(none(`${later.reason} after the last box`));
    }
    return withNotes(boxed);
  }
  const phrase = extractFromPhrases(text);
  if (phrase !== null) return withNotes(phrase);
  const choice = extractLeadingChoice(text);
  if (choice !== null) return withNotes(choice);
  const bare = extractBare(text);
  if (bare !== null) return withNotes(bare);
  const conclusion = extractConclusion(text);
  if (conclusion !== null) return withNotes(conclusion);
  if (looksTruncated(text)) return withNotes(none('response looks truncated mid-sentence; no box or answer phrase'));
  return withNotes(none('no final answer (no box, answer phrase or short answer)'));
}

/** Content of the last well-formed `\boxed{}`/`\fbox{}` (adjacent boxes joined), or null; e.g. for gold solutions. */
export function extractBoxed(text: string): string | null {
  const e = extractFromBoxes(text, []);
  return e === null ? null : e.answer;
}

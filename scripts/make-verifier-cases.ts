// Generates test/fixtures/verifier-cases.jsonl: hand-labelled (response, gold, expected) cases for the
// math answer verifier. Every `expected` below was decided by mathematics and by the label policy of
// docs/verifier-policy.md, never by running a checker. The committed .jsonl is the source of truth;
// this script only makes it easier to write and review the cases.
//
// Usage: npx tsc -p tsconfig.json && node dist/scripts/make-verifier-cases.js [OUT_FILE]

import { writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const R = String.raw;

type Category =
  | 'integer' | 'fraction' | 'decimal' | 'percent' | 'sqrt' | 'pi' | 'interval' | 'set' | 'tuple' | 'matrix'
  | 'equation' | 'inequality' | 'expression' | 'text-answer' | 'units' | 'degrees' | 'multiple-answers'
  | 'multiple-choice' | 'complex' | 'other-notation' | 'malformed' | 'no-answer' | 'empty' | 'truncated'
  | 'extraction-format' | 'adversarial';

const PREFIX: Record<Category, string> = {
  integer: 'int', fraction: 'frac', decimal: 'dec', percent: 'pct', sqrt: 'sqrt', pi: 'pi', interval: 'ivl',
  set: 'set', tuple: 'tup', matrix: 'mat', equation: 'eq', inequality: 'ineq', expression: 'expr',
  'text-answer': 'text', units: 'unit', degrees: 'deg', 'multiple-answers': 'multi', 'multiple-choice': 'mc',
  complex: 'cplx', 'other-notation': 'notn', malformed: 'malf', 'no-answer': 'none', empty: 'empty',
  truncated: 'trunc', 'extraction-format': 'extr', adversarial: 'adv',
};

interface Case {
  id: string;
  response: string;
  gold: string;
  expected: boolean;
  category: Category;
  note?: string;
}

const cases: Case[] = [];
const counters = new Map<Category, number>();

/** Adds a case with a fully written response. */
function r(category: Category, gold: string, response: string, expected: boolean, note?: string): void {
  const n = (counters.get(category) ?? 0) + 1;
  counters.set(category, n);
  const c: Case = { id: `${PREFIX[category]}-${String(n).padStart(3, '0')}`, response, gold, expected, category };
  if (note !== undefined) c.note = note;
  cases.push(c);
}

// Final-answer styles seen in real model outputs; s() rotates through them.
const STYLES: Array<(reason: string, ans: string) => string> = [
  (reason, ans) => `${reason}\n\nTherefore, the answer is $\\boxed{${ans}}$.`,
  (reason, ans) => `${reason}\n\nFinal Answer: The final answer is $${ans}$. I hope it is correct.`,
  (reason, ans) => `${reason} The answer is $${ans}$.`,
  (reason, ans) => `${reason}\n\nSo we get\n\\[\n\\boxed{${ans}}\n\\]`,
  (reason, ans) =>
    `<think>\nLet me work through this carefully. ${reason}\nThat checks out.\n</think>\n\n${reason}\n\nThe answer is $\\boxed{${ans}}$.`,
  (reason, ans) => `${reason}\n\n**Final Answer**\n\\[ \\boxed{${ans}} \\]`,
  (reason, ans) => `## Step 1\n${reason}\n\nAnswer: $${ans}$`,
];
let styleIndex = 0;

/** Adds a case whose response is `reason` followed by a final answer `ans` in the next rotating style. */
function s(category: Category, gold: string, ans: string, expected: boolean, reason: string, note?: string): void {
  const style = STYLES[styleIndex % STYLES.length]!;
  styleIndex += 1;
  r(category, gold, style(reason, ans), expected, note);
}

/** A response that ends with a plain \boxed{} after the reasoning. */
const boxed = (reason: string, ans: string): string => `${reason}\n\nThus the answer is $\\boxed{${ans}}$.`;
/** GSM8K-style response. */
const gsm = (reason: string, ans: string): string => `${reason}\n#### ${ans}`;

// ───────────────────────────── integer ─────────────────────────────
r('integer', '33', gsm(R`The ducks lay 20 eggs a day. Janet uses 4 for breakfast and 5 for muffins, so 20 - 4 - 5 = <<20-4-5=11>>11 eggs are left.
She sells each egg for $3, so she earns 11 * 3 = $<<11*3=33>>33 every day.`, '33'), true);
s('integer', '42', '42', true, R`The first six positive even numbers are $2, 4, 6, 8, 10, 12$. Their sum is $2(1+2+3+4+5+6) = 2 \cdot 21 = 42$.`);
s('integer', '-120', '-120', true, R`The product is $(-2)(3)(4)(5) = -6 \cdot 20 = -120$.`);
s('integer', '0', '0', true, R`Substituting $x=3$ gives $f(3) = 3^2 - 2\cdot 3 - 3 = 9 - 6 - 3 = 0$.`);
s('integer', R`10,\!080`, '10080', true, R`The number of arrangements is $\frac{8!}{4} = \frac{40320}{4} = 10080$.`, 'gold uses a MATH thousands separator ,\\!');
s('integer', '1030', '1,030', true, R`Each of the $103$ rows has $10$ seats, so there are $103 \times 10 = 1{,}030$ seats in total.`, 'comma thousands separator in the answer (exactly 3 digits after the comma)');
s('integer', '025', '25', true, R`Counting the valid pairs gives $m + n = 25$.`, 'AIME gold keeps a leading zero; 025 = 25');
s('integer', '80', '080', true, R`So $k = 80$, written in AIME format as $080$.`, 'leading zero in the prediction; 080 = 80');
s('integer', '1024', '2^{10}', true, R`Each of the $10$ switches can be on or off independently, so there are $2^{10}$ configurations.`, 'exact value 2^10 = 1024');
s('integer', '42', '42.0', true, R`The average is $\frac{210}{5} = 42.0$.`, '42.0 is exactly 42');
r('integer', '12', R`Each of the 4 boxes holds 3 balls, so there are 4 * 3 = 12 balls in total. The answer is 12.`, true);
s('integer', '256', '256', true, R`We have $4^4 = 256$.`);
s('integer', '9', '9', true, R`The units digit of $3^{2} = 9$ is $9$, and the pattern repeats with period $4$, so the units digit of $3^{2022}$ is $9$.`);
s('integer', '-5', '-5', true, R`Solving $2x + 10 = 0$ gives $x = -5$.`);
s('integer', '2107', '2107', true, R`Adding, $1999 + 108 = 2107$.`);
s('integer', '42', R`6 \cdot 7`, true, R`There are $6$ choices for the shirt and $7$ for the trousers, giving $6 \cdot 7$ outfits.`, 'unevaluated product 6*7 = 42; exact equality, mathematics first (prm800k would reject the non-integer string)');
s('integer', '1000000', '10^6', true, R`There are $10$ choices for each of $6$ digits, so $10^6$ codes.`, '10^6 = 1000000 exactly');
s('integer', '5866608', '5866600', false, R`Multiplying out, the total is approximately $5866600$.`, 'off by 8; a relative tolerance of 1e-4 would wrongly accept it');
s('integer', '1000000', '1000001', false, R`Adding the extra case, we get $10^6 + 1 = 1000001$.`, 'off by one on a large integer; no relative tolerance');
s('integer', '3', '-3', false, R`Solving $x + 5 = 2$ gives $x = -3$.`);
s('integer', '12', '21', false, R`Reversing the digits gives $21$.`);
r('integer', '33', gsm(R`She has 20 - 4 - 5 = <<20-4-5=11>>11 eggs left. Selling them at $3 minus a $1 fee: 11 * 3 - 1 = <<11*3-1=32>>32.`, '32'), false);
s('integer', '9901', '9910', false, R`The largest such number is $9910$.`);
s('integer', '4005', '4005.5', false, R`The sum is $\frac{8011}{2} = 4005.5$.`);
s('integer', '8000', '80000', false, R`The volume is $20 \cdot 40 \cdot 100 = 80000$.`);
s('integer', '0', '1', false, R`The remainder when $7^{100}$ is divided by $3$ is $1$.`);
s('integer', '144', '12^3', false, R`The answer is the cube of $12$, i.e. $12^3$.`, '12^3 = 1728, not 144');
s('integer', '28', '27', false, R`Counting all cases gives $27$.`);

// ───────────────────────────── fraction ─────────────────────────────
s('fraction', R`\frac{14}{3}`, R`\dfrac{14}{3}`, true, R`The sum of the roots is $-\frac{b}{a} = \frac{14}{3}$.`);
s('fraction', R`\frac{14}{3}`, '14/3', true, R`Dividing, $x = 14/3$.`);
s('fraction', R`\frac{14}{3}`, R`4\frac{2}{3}`, true, R`The length is $4\frac{2}{3}$ units.`, 'mixed number 4 2/3 = 14/3');
s('fraction', R`\frac{14}{3}`, '4.67', false, R`So $x = 14/3 \approx 4.67$.`, 'rounded decimal approximation of a non-terminating rational is not exact');
s('fraction', R`\frac{3}{56}`, R`\frac{6}{112}`, true, R`The probability is $\frac{6}{112}$.`, 'unreduced fraction equals 3/56 exactly (prm800k rejects on purpose; policy accepts)');
s('fraction', R`\frac{1}{16}`, '0.0625', true, R`The probability is $\left(\frac{1}{2}\right)^4 = 0.0625$.`, 'terminating decimal equals 1/16 exactly');
s('fraction', R`\frac{9}{256}`, '0.035', false, R`The probability is about $0.035$.`, '9/256 = 0.03515625, so 0.035 is only an approximation');
s('fraction', R`-\frac{24}{25}`, R`\frac{-24}{25}`, true, R`Using the double angle formula, $\cos 2\theta = 2\cos^2\theta - 1 = \frac{-24}{25}$.`);
s('fraction', R`-\frac{24}{25}`, R`\frac{24}{25}`, false, R`Using $\sin 2\theta = 2 \sin\theta\cos\theta$ we get $\frac{24}{25}$.`, 'sign differs');
s('fraction', R`\frac 59`, R`\frac{5}{9}`, true, R`There are $5$ favourable outcomes out of $9$, so the probability is $\frac{5}{9}$.`);
s('fraction', R`\frac9{19}`, '9/19', true, R`The ratio simplifies to $9/19$.`);
s('fraction', R`\frac{1997}{2}`, '998.5', true, R`Pairing terms, the sum is $1997 \cdot \frac{1}{2} = 998.5$.`, '998.5 = 1997/2 exactly');
s('fraction', R`\frac{13}{18}`, '0.72', false, R`The probability is approximately $0.72$.`, '13/18 = 0.7222...; approximation');
s('fraction', R`\frac{11}{36}`, R`\frac{36}{11}`, false, R`The desired ratio is $\frac{36}{11}$.`, 'reciprocal');
s('fraction', R`\frac{11+9a}{20}`, R`\frac{9a+11}{20}`, true, R`Combining over the common denominator $20$ gives $\frac{9a+11}{20}$.`);
s('fraction', R`\frac{16}{27}`, R`\frac{16}{81}`, false, R`The probability is $\left(\frac{2}{3}\right)^4 = \frac{16}{81}$.`);
s('fraction', R`\frac{1}{2}`, R`\frac{2}{4}`, true, R`Two of the four outcomes work, so the probability is $\frac{2}{4}$.`, 'unreduced 2/4 = 1/2');
s('fraction', R`\frac{2}{1005}`, R`\frac{1}{1005}`, false, R`Telescoping, the product equals $\frac{1}{1005}$.`);
s('fraction', R`\frac{35}{64}`, '0.546875', true, R`The probability is $\frac{35}{64} = 0.546875$.`, '35/64 = 0.546875 exactly');
s('fraction', R`\frac{3840}{289}`, '13.29', false, R`Numerically, the length is about $13.29$.`, '3840/289 = 13.287...; approximation');
s('fraction', R`\frac43`, R`1.\overline{3}`, true, R`The ratio is $1.\overline{3}$.`, 'repeating decimal 1.333... = 4/3 exactly');

// ───────────────────────────── decimal ─────────────────────────────
s('decimal', '.0000672', '0.0000672', true, R`Multiplying, $0.0012 \times 0.056 = 0.0000672$.`);
s('decimal', '.0000672', R`6.72 \times 10^{-5}`, true, R`In scientific notation the product is $6.72 \times 10^{-5}$.`, 'scientific notation, exact');
s('decimal', '.0000672', '0.000067', false, R`Rounding, the product is $0.000067$.`, 'rounded, not equal');
s('decimal', '.35625', R`\frac{57}{160}`, true, R`As a fraction this is $\frac{57}{160}$.`, '57/160 = 0.35625 exactly');
s('decimal', '0.15', R`\frac{3}{20}`, true, R`The probability is $\frac{3}{20}$.`, '3/20 = 0.15');
s('decimal', '1.25', R`\frac{5}{4}`, true, R`The ratio is $\frac{5}{4}$.`, '5/4 = 1.25');
s('decimal', '3.21', '3.2', false, R`To the nearest tenth, the answer is $3.2$.`, 'less precise than the gold and not equal');
s('decimal', '326.5', R`\frac{653}{2}`, true, R`The sum is $\frac{653}{2}$.`, '653/2 = 326.5');
s('decimal', '4.5', '4.50', true, R`The cost per pound is $\$4.50$, i.e. $4.50$.`, 'trailing zero');
s('decimal', '4.5', '4.05', false, R`Dividing $8.1$ by $2$ gives $4.05$.`);
s('decimal', '0.15', '15', false, R`The probability is $15$ out of $100$, so $15$.`, 'bare number is not rescaled');
s('decimal', '1.25', '1.24', false, R`The mean is $\frac{6.2}{5} = 1.24$.`);
s('decimal', '2.5', R`2\frac{1}{2}`, true, R`It takes $2\frac{1}{2}$ hours.`, 'mixed number 2 1/2 = 2.5');
s('decimal', '0.3', R`0.\overline{3}`, false, R`The decimal expansion is $0.\overline{3}$.`, '0.333... is not 0.3');
s('decimal', '7.2', R`\frac{36}{5}`, true, R`The average speed is $\frac{36}{5}$.`, '36/5 = 7.2');
s('decimal', '12.75', '12.57', false, R`Adding, $4.25 + 8.32 = 12.57$.`, 'digits transposed');
s('decimal', '0.08', '0.8', false, R`The rate is $0.8$.`);

// ───────────────────────────── percent ─────────────────────────────
s('percent', '20', R`20\%`, true, R`The price dropped by $\frac{10}{50} = 20\%$.`, 'X% matches gold X');
s('percent', '20', '0.2', false, R`The fraction of the price that was removed is $\frac{10}{50} = 0.2$.`, 'a bare number is never rescaled: 0.2 is not 20 (include_percentage false positive)');
s('percent', '0.2', R`20\%`, true, R`The probability is $\frac{1}{5} = 20\%$.`, 'X% matches gold X/100');
s('percent', '35', R`35 \%`, true, R`$\frac{7}{20} = 35 \%$ of the students walk.`);
s('percent', '12.5', R`12.5\%`, true, R`The increase is $\frac{1}{8} = 12.5\%$.`);
s('percent', R`\frac{1}{8}`, R`12.5\%`, true, R`The probability is $12.5\%$.`, '12.5% = 0.125 = 1/8');
s('percent', '40', R`40 \text{ percent}`, true, R`Two fifths of the class, i.e. $40 \text{ percent}$.`, 'percent word');
s('percent', '20', R`2\%`, false, R`The interest rate is $2\%$.`);
s('percent', '25', '0.25', false, R`A quarter of the area, $0.25$, is shaded.`, 'bare number is never rescaled');
s('percent', '15', R`15.5\%`, false, R`The discount is $15.5\%$.`);
r('percent', '60', R`He answered 18 of the 30 questions correctly. 18 / 30 = 0.6, so the answer is 60%.`, true, 'plain-text percent sign');
s('percent', R`33\frac{1}{3}`, R`33.3\%`, false, R`The percentage is about $33.3\%$.`, '33.3 is an approximation of 33 1/3');

// ───────────────────────────── sqrt ─────────────────────────────
s('sqrt', R`\frac{\sqrt{3}}{3}`, R`\frac{1}{\sqrt{3}}`, true, R`We have $\tan 30^\circ = \frac{1}{\sqrt{3}}$.`, '1/sqrt3 = sqrt3/3 (rationalised)');
s('sqrt', R`2\sqrt{5}`, R`\sqrt{20}`, true, R`The distance is $\sqrt{4^2 + 2^2} = \sqrt{20}$.`);
s('sqrt', R`3\sqrt{13}`, R`\sqrt{117}`, true, R`The hypotenuse is $\sqrt{6^2 + 9^2} = \sqrt{117}$.`, '117 = 9*13');
s('sqrt', R`11\sqrt2`, R`11\sqrt{2}`, true, R`The diagonal of a square of side $11$ is $11\sqrt{2}$.`);
s('sqrt', R`\sqrt{51}`, '7.14', false, R`The length is $\sqrt{51} \approx 7.14$.`, 'decimal approximation of an irrational');
s('sqrt', R`\sqrt{2}`, R`\sqrt[3]{2}`, false, R`The side length is the cube root of $2$, i.e. $\sqrt[3]{2}$.`, 'cube root is not square root (prm800k false positive)');
s('sqrt', R`\sqrt{53}`, '53', false, R`The squared distance is $7^2 + 2^2 = 53$.`, 'forgot the square root');
s('sqrt', R`\frac{\sqrt{21}}{5}`, R`\sqrt{\frac{21}{25}}`, true, R`Since $\sin^2\theta = 1 - \frac{4}{25} = \frac{21}{25}$, $\sin\theta = \sqrt{\frac{21}{25}}$.`);
s('sqrt', R`\frac{3\sqrt{3}}{4}`, R`\frac{3}{4}\sqrt{3}`, true, R`The area is $\frac{3}{4}\sqrt{3}$.`);
s('sqrt', R`16 \sqrt{3}`, R`16\sqrt{2}`, false, R`The area is $16\sqrt{2}$.`);
s('sqrt', R`\sqrt{2}`, '1.414', false, R`Numerically, $x \approx 1.414$.`, 'approximation of sqrt 2 (rel_tol 1e-3 accepts it)');
s('sqrt', R`2\sqrt{113}`, R`\sqrt{452}`, true, R`The distance is $\sqrt{14^2 + 16^2} = \sqrt{452}$.`, '452 = 4*113');
s('sqrt', R`6\sqrt{2}`, R`\sqrt{72}`, true, R`The diagonal is $\sqrt{6^2+6^2} = \sqrt{72}$.`);
s('sqrt', R`-\sqrt{3}`, R`\sqrt{3}`, false, R`Since $\tan 60^\circ = \sqrt{3}$, we get $\sqrt{3}$.`, 'sign differs');
s('sqrt', R`\sqrt{2}+\sqrt{3}`, R`\sqrt{5+2\sqrt{6}}`, true, R`Squaring, $x^2 = 5 + 2\sqrt{6}$, and $x > 0$, so $x = \sqrt{5+2\sqrt{6}}$.`, '(sqrt2+sqrt3)^2 = 5+2sqrt6, both positive');
s('sqrt', R`2\sqrt{5}`, R`5\sqrt{2}`, false, R`The side is $\sqrt{50} = 5\sqrt{2}$.`);
s('sqrt', R`\sqrt{66}`, R`\sqrt{6}\cdot\sqrt{11}`, true, R`The geometric mean is $\sqrt{6}\cdot\sqrt{11}$.`);
s('sqrt', R`70 \sqrt{2}`, '98.99', false, R`So the length is about $98.99$.`, '70 sqrt2 = 98.9949...; approximation');

// ───────────────────────────── pi ─────────────────────────────
s('pi', R`12\pi`, R`\pi \cdot 12`, true, R`The circumference is $2\pi r = \pi \cdot 12$.`);
s('pi', R`288 \pi`, '904.78', false, R`The volume is $\frac{4}{3}\pi \cdot 6^3 = 288\pi \approx 904.78$.`, 'decimal approximation of 288 pi');
s('pi', R`7\pi`, '21.99', false, R`The arc length is about $21.99$.`, 'approximation');
s('pi', R`\frac{20000}{\pi}`, R`20000/\pi`, true, R`The radius squared is $20000/\pi$.`);
s('pi', R`18+2\pi`, R`2\pi + 18`, true, R`The perimeter is $2\pi + 18$.`);
s('pi', R`2\pi`, '6.2832', false, R`The period is $2\pi \approx 6.2832$.`, 'approximation of 2 pi');
s('pi', R`\pi`, '3.14', false, R`The area is about $3.14$.`, 'approximation of pi');
s('pi', R`-\frac{\pi}{6}`, R`\frac{-\pi}{6}`, true, R`Since $\sin(-\pi/6) = -\frac{1}{2}$, $\theta = \frac{-\pi}{6}$.`);
s('pi', R`8 \pi`, '8', false, R`The area is $8$.`, 'missing factor pi');
s('pi', R`\frac{5\pi}{4}`, R`\frac{5}{4}\pi`, true, R`The angle is $\frac{5}{4}\pi$.`);
s('pi', R`\frac{\pi}{3}`, R`\frac{\pi}{6}`, false, R`The angle is $\frac{\pi}{6}$.`);

// ───────────────────────────── interval ─────────────────────────────
s('interval', '[-2,7]', '[-2, 7]', true, R`The inequality $|x - \frac{5}{2}| \le \frac{9}{2}$ holds for $-2 \le x \le 7$, i.e. $[-2, 7]$.`);
s('interval', R`x \in [-2,7]`, '[-2,7]', true, R`The solution set is $[-2,7]$.`, 'gold written as x \\in [...]');
s('interval', '[-2,7]', '(-2,7)', false, R`The solution set is $(-2,7)$.`, 'endpoints must be included');
s('interval', '[2,5)', '[2,5]', false, R`The domain is $[2,5]$.`, 'bracket type matters (Qwen false positive)');
s('interval', R`(-\infty, 0]`, R`(-\infty,0]`, true, R`The range is $(-\infty,0]$.`);
s('interval', R`(-\infty, 0]`, R`x \le 0`, true, R`The inequality holds exactly when $x \le 0$.`, 'solved relation x<=0 matches the interval gold (policy §4/§6; Math-Verify asymmetry)');
s('interval', R`(2,\infty)`, R`[2,\infty)`, false, R`The domain is $[2,\infty)$.`, '2 must be excluded');
s('interval', R`(-\infty, 2) \cup (3, \infty)`, R`(3,\infty)\cup(-\infty,2)`, true, R`The solution is $(3,\infty)\cup(-\infty,2)$.`, 'union is order-free');
s('interval', R`(-\infty, 2) \cup (3, \infty)`, R`(-\infty,2]\cup(3,\infty)`, false, R`The solution is $(-\infty,2]\cup(3,\infty)$.`, '2 wrongly included');
s('interval', R`\left(\frac{3}{5},\frac{8}{3}\right]`, R`(0.6, \frac{8}{3}]`, true, R`The solution set is $(0.6, \frac{8}{3}]$.`, '0.6 = 3/5 exactly');
s('interval', R`\left(\frac{3}{5},\frac{8}{3}\right]`, R`\left(\frac{3}{5},\frac{8}{3}\right)`, false, R`The solution set is $\left(\frac{3}{5},\frac{8}{3}\right)$.`, 'right endpoint must be closed');
s('interval', R`(0,9) \cup (9,36)`, '(0,36)', false, R`The domain is $(0,36)$.`, '9 is excluded in the gold');
s('interval', R`\left[ \frac{\pi^2}{8}, \frac{5 \pi^2}{4} \right]`, R`[\frac{\pi^2}{8}, \frac{5\pi^2}{4}]`, true, R`The range is $[\frac{\pi^2}{8}, \frac{5\pi^2}{4}]$.`);
s('interval', R`(-\sqrt{3}, \sqrt{3})`, R`(-\sqrt3,\sqrt3)`, true, R`We need $x^2 < 3$, so $x \in (-\sqrt3,\sqrt3)$.`);
s('interval', R`(-\infty,\infty)`, R`\mathbb{R}`, true, R`The expression is defined for every real $x$, so the domain is $\mathbb{R}$.`, 'all reals');
s('interval', R`(5,\infty)`, R`x > 5`, true, R`Solving $2x - 3 > 7$ gives $x > 5$.`, 'solved relation matches the interval gold');
s('interval', R`(5,\infty)`, R`(-\infty, 5)`, false, R`Solving, we find $x < 5$, i.e. $(-\infty, 5)$.`, 'wrong direction');

// ───────────────────────────── set ─────────────────────────────
s('set', R`\{1\pm\sqrt{5},-2\}`, R`\{-2, 1+\sqrt{5}, 1-\sqrt{5}\}`, true, R`The roots are $-2$ and $1 \pm \sqrt{5}$.`, 'sets are order-free; \\pm expands to two elements');
s('set', R`\{1,2\}`, R`\{2,1\}`, true, R`The solution set is $\{2,1\}$.`);
s('set', R`\{1,2\}`, '(1,2)', false, R`The answer is the pair $(1,2)$.`, 'a tuple is never a set');
s('set', R`\{1,2\}`, R`\{1,2,3\}`, false, R`The solution set is $\{1,2,3\}$.`, 'extra element');
s('set', R`\emptyset`, R`\varnothing`, true, R`No real number satisfies both conditions, so the set is $\varnothing$.`);
s('set', R`\emptyset`, R`\{0\}`, false, R`Only $0$ works, so the set is $\{0\}$.`, '{0} is not empty');
s('set', R`\{0\}`, '0', true, R`The only solution is $x = 0$.`, 'solution-set convention: {0} vs 0 is true (policy §4)');
s('set', R`\{-3, 3\}`, R`\{3\}`, false, R`The solution set is $\{3\}$.`, 'missing -3');
s('set', R`\{-1,1\}`, R`\{\pm 1\}`, true, R`Since $x^2 = 1$, the set is $\{\pm 1\}$.`);
s('set', R`\{2, 4, 6\}`, R`\{2, 4, 8\}`, false, R`The set is $\{2, 4, 8\}$.`);

// ───────────────────────────── tuple ─────────────────────────────
s('tuple', R`\left( 3, \frac{\pi}{2} \right)`, R`(3, \frac{\pi}{2})`, true, R`We have $r = 3$ and $\theta = \frac{\pi}{2}$.`, '\\left/\\right are presentation only');
s('tuple', R`\left( 3, \frac{\pi}{2} \right)`, R`(3, \pi/2)`, true, R`In polar coordinates the point is $(3, \pi/2)$.`);
s('tuple', R`\left( 3, \frac{\pi}{2} \right)`, R`\left(\frac{\pi}{2}, 3\right)`, false, R`So $(\theta, r) = \left(\frac{\pi}{2}, 3\right)$.`, 'tuples are ordered');
s('tuple', '(15,-29)', '(15, -29)', true, R`Solving the system, $a = 15$ and $b = -29$.`);
s('tuple', '(15,-29)', '(-29, 15)', false, R`The ordered pair is $(-29, 15)$.`, 'order swapped');
s('tuple', '(1,-16,-4,43)', '(1, -16, -4, 43)', true, R`Matching coefficients, $(a,b,c,d) = (1, -16, -4, 43)$ gives the expansion.`);
s('tuple', '(1,-16,-4,43)', '(1,-16,4,43)', false, R`Matching coefficients, we get $(1,-16,4,43)$.`, 'third entry sign differs');
s('tuple', R`\left( \frac{3}{2}, -13 \right)`, '(1.5, -13)', true, R`The vertex is at $(1.5, -13)$.`, '1.5 = 3/2 exactly');
s('tuple', R`\left( \frac{3}{2}, -13 \right)`, R`\left( \frac{3}{2}, 13 \right)`, false, R`The vertex is $\left( \frac{3}{2}, 13 \right)$.`);
s('tuple', '(6,31,-1)', '(x, y, z) = (6, 31, -1)', true, R`Solving the linear system gives the unique solution.`, 'assignment of a tuple of variables unwraps to the tuple');
s('tuple', '(0,0,0)', '(0,0)', false, R`The point is the origin, $(0,0)$.`, 'wrong length');
s('tuple', '(1,2)', '[1,2]', false, R`The pair is $[1,2]$.`, 'bracket types matter: [1,2] is not the ordered pair (1,2)');
s('tuple', '(8,-2)', R`\left(8,-2\right)`, true, R`The intersection point is $\left(8,-2\right)$.`);
s('tuple', '(2,4)', '(4,2)', false, R`The point is $(4,2)$.`, 'order swapped');
s('tuple', R`\left( \frac{1}{2}, \frac{1}{3} \right)`, R`(0.5, \frac{1}{3})`, true, R`We get $(p, q) = (0.5, \frac{1}{3})$.`);

// ───────────────────────────── matrix ─────────────────────────────
s('matrix', R`\begin{pmatrix} -1 & 0 \\ 0 & -1 \end{pmatrix}`, R`\begin{bmatrix} -1 & 0 \\ 0 & -1 \end{bmatrix}`, true, R`Rotation by $180^\circ$ has matrix with $\cos 180^\circ = -1$ and $\sin 180^\circ = 0$.`, 'pmatrix vs bmatrix');
s('matrix', R`\begin{pmatrix} -1 & 0 \\ 0 & -1 \end{pmatrix}`, R`\begin{pmatrix} 1 & 0 \\ 0 & 1 \end{pmatrix}`, false, R`Rotating twice gives the identity.`);
s('matrix', R`\begin{pmatrix} -1/3 \\ 2/3 \\ 5/3 \end{pmatrix}`, R`\begin{pmatrix} -\frac{1}{3} \\ \frac{2}{3} \\ \frac{5}{3} \end{pmatrix}`, true, R`Solving for the components of $\mathbf{v}$ gives the vector.`);
s('matrix', R`\begin{pmatrix} -1/3 \\ 2/3 \\ 5/3 \end{pmatrix}`, R`\begin{pmatrix} -1/3 & 2/3 & 5/3 \end{pmatrix}`, false, R`Solving for $\mathbf{v}$ gives the row vector.`, 'shape differs: row vs column vector');
s('matrix', R`\begin{pmatrix} 16/49 \\ 48/49 \\ 24/49 \end{pmatrix}`, R`\begin{pmatrix} 0.3265 \\ 0.9796 \\ 0.4898 \end{pmatrix}`, false, R`Projecting numerically gives the vector.`, 'rounded entries, not exact');
s('matrix', R`\begin{pmatrix} -18 \\ -49 \\ 96 \end{pmatrix}`, R`\begin{pmatrix}-18\\-49\\96\end{pmatrix}`, true, R`Computing the cross product component by component.`);
s('matrix', R`\begin{pmatrix} -18 \\ -49 \\ 96 \end{pmatrix}`, R`\begin{pmatrix} -18 \\ 49 \\ 96 \end{pmatrix}`, false, R`Computing the cross product component by component.`, 'middle entry sign differs');
s('matrix', R`\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}`, R`\begin{pmatrix} 1 & 3 \\ 2 & 4 \end{pmatrix}`, false, R`Reading off the images of the basis vectors as rows.`, 'transpose of the gold');
s('matrix', R`\begin{pmatrix} 1/5 \\ -18/5 \end{pmatrix}`, R`\begin{pmatrix} 0.2 \\ -3.6 \end{pmatrix}`, true, R`The projection is computed with $\frac{\mathbf{v}\cdot\mathbf{w}}{\|\mathbf{w}\|^2}$.`, 'exact decimals 0.2 = 1/5, -3.6 = -18/5');
s('matrix', R`\begin{pmatrix} 2 & 0 \\ 0 & 2 \end{pmatrix}`, R`\left[\begin{array}{cc} 2 & 0 \\ 0 & 2 \end{array}\right]`, true, R`Dilation by a factor of $2$ scales both coordinates.`, 'array environment with brackets');

// ───────────────────────────── equation ─────────────────────────────
s('equation', 'y = 2x + 3', 'y=2x+3', true, R`The slope is $2$ and the intercept is $3$.`);
s('equation', 'y = 2x + 3', '2x - y + 3 = 0', true, R`Writing the line in general form.`, 'rearranged equation');
s('equation', 'y = 2x + 3', 'y = 2x - 3', false, R`The slope is $2$ and the intercept is $-3$.`);
s('equation', '5x - 7y + 11z + 4 = 0', '-5x + 7y - 11z - 4 = 0', true, R`The normal vector is $(-5, 7, -11)$ and the plane passes through the given point.`, 'scaled by -1');
s('equation', '5x - 7y + 11z + 4 = 0', '10x - 14y + 22z + 8 = 0', true, R`Using the normal vector $(10,-14,22)$ we get the plane.`, 'scaled by 2');
s('equation', '5x - 7y + 11z + 4 = 0', '5x - 7y + 11z - 4 = 0', false, R`The plane is as follows.`, 'different constant: parallel plane');
s('equation', 'x=5', '5', true, R`Solving, $x = 5$.`, 'gold assignment vs bare value');
s('equation', 'x=5', 'y=5', false, R`Solving for $y$ we get $y = 5$.`, 'different variable');
s('equation', 'y = -2x', '2x + y = 0', true, R`The line through the origin with slope $-2$.`);
s('equation', 'y = -2x', 'y = 2x', false, R`The line through the origin with slope $2$.`);
s('equation', 'x^2+y^2=25', 'x^2+y^2=5', false, R`The circle has radius $5$, so the equation is as follows.`, 'radius confused with radius squared');
s('equation', '3x+4y+14=0', '3x-y+13=0', false, R`The tangent line is found below.`, 'different lines (Math-Verify issue #60)');
s('equation', '3', 'k = 3', true, R`Comparing coefficients gives the value of $k$.`, 'prediction assignment unwraps against a bare gold');
s('equation', '-2', 'a = -2', true, R`Setting the discriminant to zero gives $a = -2$.`);
s('equation', R`x=-\frac{3}{2}`, 'x = -1.5', true, R`Solving $2x + 3 = 0$.`, '-1.5 = -3/2');
s('equation', R`y = \frac{1}{2}x - 3`, 'x - 2y = 6', true, R`Clearing denominators in the slope-intercept form.`, 'x - 2y = 6 <=> y = x/2 - 3');
s('equation', '(x-2)^2 + (y+3)^2 = 25', 'x^2 + y^2 - 4x + 6y = 12', true, R`Expanding the standard form of the circle.`, 'expanding the gold gives x^2+y^2-4x+6y+13 = 25');
s('equation', 'y = x^2 - 4', 'y = (x-2)(x+2)', true, R`Factoring the parabola.`);
s('equation', 'z = 4', '4 = z', true, R`So we obtain the value of $z$.`, 'sides swapped');
s('equation', R`y = \frac{1}{2}x - 3`, 'x + 2y = 6', false, R`Clearing denominators in the slope-intercept form.`, 'x + 2y = 6 has slope -1/2');

// ───────────────────────────── inequality ─────────────────────────────
s('inequality', 'x > 5', '5 < x', true, R`Subtracting $3$ from both sides of $x + 3 > 8$.`, 'flipped relation, same meaning');
s('inequality', 'x > 5', 'x < 5', false, R`Subtracting $3$ from both sides.`, 'direction matters (Qwen false positive)');
s('inequality', 'x > 5', R`x \geq 5`, false, R`Subtracting $3$ from both sides.`, 'strictness matters');
s('inequality', 'x > 5', R`(5, \infty)`, true, R`The solution set is all numbers greater than $5$.`, 'interval prediction for a solved relation gold: same set');
s('inequality', R`x \le -2`, R`-2 \ge x`, true, R`Dividing by $-3$ flips the inequality.`);
s('inequality', 'x < 3', 'x+2<5', false, R`We need the values of $x$ such that the inequality holds.`, 'restated unsolved inequality is no answer (policy §4)');
s('inequality', '-1 < x < 4', '(-1,4)', true, R`The quadratic $x^2 - 3x - 4 < 0$ holds between its roots $-1$ and $4$.`, 'same set');
s('inequality', R`x \geq 2`, 'x > 2', false, R`The function is increasing for these $x$.`, 'strictness matters');
s('inequality', R`a \leq 4`, R`a \le 4`, true, R`The discriminant must be non-negative: $16 - 4a \ge 0$.`);
s('inequality', 'x < 3', R`x \le 3`, false, R`Solving gives the bound.`, 'strictness matters');
s('inequality', R`k > \frac{1}{4}`, 'k > 0.25', true, R`The discriminant $1 - 4k$ must be negative.`, '0.25 = 1/4');

// ───────────────────────────── expression ─────────────────────────────
s('expression', 'p - q', '-q + p', true, R`Rearranging the double sum.`);
s('expression', 'p - q', 'q - p', false, R`Rearranging the double sum.`, 'sign reversed');
s('expression', 'x^3+3x-6', '3x + x^3 - 6', true, R`Substituting and simplifying.`);
s('expression', '(a+5)(b+2)', '(b+2)(a+5)', true, R`Grouping the terms, $ab + 2a + 5b + 10 = a(b+2) + 5(b+2)$.`);
s('expression', '(a+5)(b+2)', '(a+2)(b+5)', false, R`Grouping the terms.`, '(a+2)(b+5) = ab+5a+2b+10');
s('expression', '2k+2', '2(k+1)', true, R`Each step adds two.`);
s('expression', '6r^2-4r-24', '2(3r^2-2r-12)', true, R`Expanding and collecting like terms.`);
s('expression', '8n^2 + 4n + 1', '8n^2+4n-1', false, R`Summing the pattern.`);
s('expression', '5r^5', '5r^4', false, R`Simplifying the product of powers.`);
s('expression', R`\cot x`, R`\tan x`, false, R`Using the identity for the quotient.`);
s('expression', R`\cot x`, R`\frac{\cos x}{\sin x}`, true, R`Simplifying the quotient.`, 'definition of cot');
s('expression', '2^{n+1}', '2^n+1', false, R`Doubling each time gives the formula.`, 'brace removal false positive (prm800k)');
s('expression', 'x^5 - x^4 + x^3 - x^2 + x - 1', '(x-1)(x^4+x^2+1)', true, R`Factoring by grouping.`, 'expanding gives x^5 - x^4 + x^3 - x^2 + x - 1');
s('expression', '-13x+3', '3-13x', true, R`Collecting like terms.`);
s('expression', '-13x+3', '-13x-3', false, R`Collecting like terms.`);
s('expression', '15x - 80', '5(3x-16)', true, R`Distributing and combining.`);
s('expression', '(x+1)^2', '(x-1)^2', false, R`Completing the square.`, 'the gold expands to x^2+2x+1');
s('expression', R`\frac{1}{x+1}`, R`\frac{1}{x}+1`, false, R`Simplifying the compound fraction.`);
s('expression', 'a^2 b', 'ab^2', false, R`Multiplying the terms.`);

// ───────────────────────────── text-answer ─────────────────────────────
r('text-answer', R`\text{Evelyn}`, R`Comparing the average speeds, Evelyn covers the most distance per unit time. The answer is Evelyn.`, true, 'plain-text name after an answer phrase');
s('text-answer', R`\text{Evelyn}`, R`\text{evelyn}`, true, R`Comparing the slopes of the lines from the origin, Evelyn is fastest.`, 'case-insensitive text');
s('text-answer', R`\text{Evelyn}`, R`\text{Navin}`, false, R`Comparing the slopes, Navin is fastest.`);
s('text-answer', R`\text{east}`, R`\text{East}`, true, R`After the turns she faces east.`);
s('text-answer', R`\text{east}`, R`\text{west}`, false, R`After the turns she faces west.`);
s('text-answer', R`\text{ellipse}`, R`\text{hyperbola}`, false, R`The coefficients of $x^2$ and $y^2$ have opposite signs.`);
s('text-answer', R`\text{ellipse}`, R`\mathrm{ellipse}`, true, R`Both squared terms have positive coefficients.`);
s('text-answer', R`\text{even}`, R`\text{odd}`, false, R`Since $f(-x) = -f(x)$, the function is odd.`);
s('text-answer', R`\text{even}`, 'even', true, R`Since $f(-x) = f(x)$, the function is even.`);
s('text-answer', R`\text{4:30 p.m.}`, R`4:30 \text{ p.m.}`, true, R`Adding $5$ hours $45$ minutes to $10{:}45$ a.m. gives 4:30 p.m.`, 'Qwen unit stripping mangles this gold');
s('text-answer', R`\text{4:30 p.m.}`, R`4:30 \text{ a.m.}`, false, R`Adding the hours we get 4:30 a.m.`);
s('text-answer', R`\text{Navin}`, R`\text{Navin and Evelyn}`, false, R`Both have the same speed.`, 'extra name');

// ───────────────────────────── units ─────────────────────────────
s('units', R`15\mbox{ cm}^2`, '15', true, R`The area is $\frac{1}{2}\cdot 5 \cdot 6 = 15$.`, 'units ignored');
s('units', R`15\mbox{ cm}^2`, R`15 \text{ cm}^2`, true, R`The area is $\frac{1}{2}\cdot 5 \cdot 6 = 15$ square centimetres.`);
s('units', R`864 \mbox{ inches}^2`, R`864 \text{ square inches}`, true, R`The total surface area is $6 \cdot 12^2 = 864$.`);
s('units', R`5.4 \text{ cents}`, '5.4', true, R`The cost per pencil is $5.4$ cents.`);
s('units', R`\$18.90`, '18.90', true, R`The total is $\$18.90$.`);
s('units', R`\$18.90`, R`\$18.9`, true, R`The total is $12.60 + 6.30 = 18.9$ dollars.`, 'trailing zero');
s('units', R`\$32,\!348`, '32348', true, R`The final balance is $32348$ dollars.`, 'gold has \\$ and ,\\! separator');
s('units', R`\frac{270}7\text{ degrees}`, R`\frac{270}{7}`, true, R`Each angle measures $\frac{270}{7}$.`);
s('units', R`\$36`, R`36 \text{ dollars}`, true, R`He spends $3 \cdot 12 = 36$ dollars.`);
s('units', '5', R`500 \text{ cm}`, false, R`The rope is $500$ centimetres long.`, 'units are ignored but not converted: 500 is not 5');
s('units', '2', R`120 \text{ minutes}`, false, R`The trip takes $120$ minutes.`, 'no unit conversion');
s('units', R`\$18.90`, R`\$18.09`, false, R`The total is $\$18.09$.`);
s('units', '12', R`12 \text{ km/h}`, true, R`The average speed is $\frac{36}{3} = 12$ km/h.`);
s('units', '7', R`7\,\mathrm{m}`, true, R`The ladder reaches $7$ metres up the wall.`);

// ───────────────────────────── degrees ─────────────────────────────
s('degrees', R`106^\circ`, '106', true, R`The angle is $180^\circ - 74^\circ = 106^\circ$.`, 'degree marker ignored');
s('degrees', R`106^\circ`, R`106^{\circ}`, true, R`The angle is $180^\circ - 74^\circ$.`);
s('degrees', R`120^\circ`, '120°', true, R`Each interior angle of a regular hexagon is 120°.`, 'unicode degree sign');
s('degrees', R`120^\circ`, R`\frac{2\pi}{3}`, true, R`In radians the angle is $\frac{2\pi}{3}$.`, 'contested: degrees vs radians of the same angle; policy §4 (45° vs pi/4) labels this true');
s('degrees', R`30^\circ`, R`150^\circ`, false, R`The angle is obtuse, $150^\circ$.`);
s('degrees', R`90^\circ`, R`90 \text{ degrees}`, true, R`The triangle is right-angled.`);
s('degrees', R`55^\circ`, R`35^\circ`, false, R`The complement is $35^\circ$.`);
s('degrees', R`76^\circ`, R`104^\circ`, false, R`The supplement is $104^\circ$.`);
s('degrees', '36', R`36^\circ`, true, R`Each exterior angle is $\frac{360^\circ}{10} = 36^\circ$.`);
s('degrees', R`145^\circ`, R`45^\circ`, false, R`The angle is $45^\circ$.`);

// ───────────────────────────── multiple-answers ─────────────────────────────
s('multiple-answers', '-2,1', '1, -2', true, R`Factoring, $(x+2)(x-1) = 0$.`, 'solution list is order-free');
r('multiple-answers', '-2,1', R`Factoring $x^2 + x - 2 = (x+2)(x-1) = 0$, the solutions are $\boxed{-2}, \boxed{1}$.`, true, 'adjacent boxes separated by a comma form a list');
r('multiple-answers', '-2,1', R`Factoring $x^2 + x - 2 = (x+2)(x-1)$, we get $x = \boxed{-2}$ and $x = \boxed{1}$.`, true, 'boxes joined by "and" form a list');
s('multiple-answers', '3, 5, 7', '7, 5, 3', true, R`The primes in the range are $7$, $5$ and $3$.`);
s('multiple-answers', '3, 5, 7', '3, 5', false, R`The values are $3$ and $5$.`, 'missing 7');
s('multiple-answers', '3, 5, 7', '3, 5, 7, 9', false, R`The odd values are $3, 5, 7, 9$.`, 'extra 9');
s('multiple-answers', R`1 \pm \sqrt{19}`, R`1+\sqrt{19}, 1-\sqrt{19}`, true, R`By the quadratic formula, $x = \frac{2 \pm \sqrt{76}}{2}$.`, '\\pm gold expands to two roots');
s('multiple-answers', R`1 \pm \sqrt{19}`, R`1+\sqrt{19}`, false, R`Taking the positive root.`, 'only one of two roots');
s('multiple-answers', R`3 \pm 2 \sqrt{2}`, R`3 - 2\sqrt{2}, 3 + 2\sqrt{2}`, true, R`The quadratic formula gives $x = 3 \pm \sqrt{8}$.`);
s('multiple-answers', '1,-2', R`\{-2, 1\}`, true, R`The solution set of $(x-1)(x+2)=0$.`, 'solution list written as a set: same solutions, order-free');
s('multiple-answers', '-5, 5', R`\pm 5`, true, R`Since $x^2 = 25$, $x = \pm 5$.`, '\\pm as a two-element list');
s('multiple-answers', '2, -2, 3', '2, 3', false, R`The roots are $2$ and $3$.`, 'missing -2');
s('multiple-answers', R`\frac{1}{2}, 3`, '3, 0.5', true, R`The roots of $2x^2 - 7x + 3 = 0$ are $3$ and $0.5$.`);
s('multiple-answers', '-1, 2', '-1, -2', false, R`The roots of $x^2 + 3x + 2$.`);
r('multiple-answers', '4', R`Since $x^2 = 16$, we get $x = \boxed{4}$ and $x = \boxed{-4}$.`, false, 'the gold is the single value 4 (e.g. a length); a two-element list is not it');
r('multiple-answers', '-3, 2', R`The solutions are $x = -3$ and $x = 2$, so the answer is $\boxed{-3, 2}$.`, true);
s('multiple-answers', '-2,1', '-2', false, R`The negative root is $-2$.`, 'only one root');

// ───────────────────────────── multiple-choice ─────────────────────────────
s('multiple-choice', R`\text{(C)}`, '(C)', true, R`Only option (C) satisfies both conditions.`);
s('multiple-choice', R`\text{(C)}`, 'C', true, R`Checking each option, only C works.`);
s('multiple-choice', R`\text{(C)}`, R`\textbf{(C)}\ 12`, true, R`The count is $12$, which is choice C.`, 'option letter with its value');
s('multiple-choice', R`\text{(C)}`, '(B)', false, R`Option (B) gives the smallest value.`);
s('multiple-choice', R`\text{(C)}`, 'A, C', false, R`Both A and C look plausible.`, 'two letters for a single-choice gold (Qwen last-letter false positive)');
s('multiple-choice', R`\text{(E)}`, R`\text{E}`, true, R`All the others fail, so E.`);
s('multiple-choice', R`\text{(E)}`, '(D)', false, R`The largest is (D).`);
r('multiple-choice', R`\text{(B)}`, R`Testing each option, only (B) gives an integer. The answer is (B).`, true);
s('multiple-choice', R`\text{(B)}`, R`B \text{ or } C`, false, R`It is either B or C.`, 'hedge between two options');
s('multiple-choice', R`\text{(A)}`, R`\mathrm{(A)}`, true, R`The graph matches option A.`);

// ───────────────────────────── complex ─────────────────────────────
s('complex', '-2 + 7i', '7i - 2', true, R`Multiplying out, $(1+2i)(a+bi)$ gives the result.`);
s('complex', '-2 + 7i', '-2 - 7i', false, R`Taking the conjugate.`);
s('complex', '1 - 12i', R`\frac{2-24i}{2}`, true, R`Dividing by $2$.`, '(2-24i)/2 = 1-12i');
s('complex', '1+274i', '274i+1', true, R`Summing the real and imaginary parts.`);
s('complex', 'i', R`\sqrt{-1}`, true, R`The principal square root of $-1$.`, 'principal sqrt(-1) = i');
s('complex', '-1', 'i^2', true, R`Since $i^{102} = i^{2}$.`, 'i^2 = -1');
s('complex', '1+i', R`\sqrt{2}e^{i\pi/4}`, true, R`In polar form the number has modulus $\sqrt2$ and argument $\pi/4$.`, 'sqrt2 (cos pi/4 + i sin pi/4) = 1 + i');
s('complex', '6+9i', '6-9i', false, R`Taking the conjugate.`);
s('complex', '1+2i', '2+i', false, R`Swapping real and imaginary parts.`);
s('complex', 'i', '-i', false, R`Since $i^3 = -i$.`);

// ───────────────────────────── other-notation ─────────────────────────────
s('other-notation', '204_5', '204_{5}', true, R`Converting $54$ to base $5$: $54 = 2\cdot 25 + 0 \cdot 5 + 4$.`);
s('other-notation', '4210_{5}', '4201_5', false, R`Converting to base $5$.`, 'different digits');
s('other-notation', '1', R`0.\overline{9}`, true, R`The repeating decimal is $0.\overline{9}$.`, '0.999... = 1 exactly');
s('other-notation', R`\frac{1}{3}`, R`0.\overline{3}`, true, R`As a decimal, $0.\overline{3}$.`, '0.333... = 1/3');
s('other-notation', R`6.02 \times 10^{23}`, '6.02e23', true, R`Avogadro's number.`, 'e-notation');
s('other-notation', '10', R`\binom{5}{2}`, true, R`Choose $2$ of the $5$ people.`, 'binom(5,2) = 10');
s('other-notation', '120', '5!', true, R`Arrange the $5$ books in a row.`, '5! = 120');
s('other-notation', R`137 \frac{1}{2}`, R`\frac{275}{2}`, true, R`The total is $\frac{275}{2}$.`, 'gold is the mixed number 137 1/2 = 275/2');
s('other-notation', R`1\frac{4}{5}`, R`\frac{4}{5}`, false, R`The fractional part is $\frac{4}{5}$.`, 'gold is the mixed number 9/5');
s('other-notation', '10^{-8}', '10^{-9}', false, R`The error is at most $10^{-9}$.`, 'no absolute tolerance');
s('other-notation', '2516_8', '2516_{8}', true, R`Converting to base $8$.`);
s('other-notation', R`\frac{4}{33}`, R`0.\overline{12}`, true, R`The decimal is $0.121212\ldots = 0.\overline{12}$.`, '0.1212... = 12/99 = 4/33');
s('other-notation', R`\frac{4}{33}`, '0.12', false, R`Rounded to two places, $0.12$.`, 'approximation');

// ───────────────────────────── malformed ─────────────────────────────
s('malformed', R`\frac{1}{2}`, R`\frac12`, true, R`Half of the outcomes work.`, '\\frac12 = 1/2');
s('malformed', R`\frac{3}{4}`, R`\tfrac{3}{4}`, true, R`Three of the four outcomes work.`);
s('malformed', R`\frac 34`, R`\frac{3}{4}`, true, R`Three of the four outcomes work.`, 'gold itself uses \\frac 34');
s('malformed', R`\frac{\sqrt{3}}{3}`, R`\sqrt3/3`, true, R`Rationalising $\frac{1}{\sqrt3}$.`);
r('malformed', R`\sqrt{5}`, R`The distance from the origin is sqrt(1^2 + 2^2) = sqrt(5). The answer is sqrt(5).`, true, 'plain-text sqrt( )');
r('malformed', R`\frac{1}{2}`, R`Half of the 8 outcomes are favourable, so the probability is 4/8 = 1/2. The answer is 1/2.`, true, 'plain-text fraction');
s('malformed', R`\frac{5}{13}`, R`\displaystyle \frac{5}{13}`, true, R`Using the right triangle with sides $5, 12, 13$.`);
s('malformed', '42', R`\mathbf{42}`, true, R`The sum is $42$.`);
s('malformed', '17', R`\text{17}`, true, R`There are $17$ such numbers.`, 'number wrapped in \\text');
r('malformed', R`\frac{14}{3}`, R`Solving $3x = 14$ gives $x = \frac{14}{3}$.

The answer is \boxed{$\frac{14}{3}$}.`, true, 'dollar signs inside the box');
r('malformed', R`\frac{1}{2}`, R`The probability of heads is ½. The answer is ½.`, true, 'unicode vulgar fraction');
r('malformed', R`\sqrt{2}`, R`The diagonal of the unit square is √2, so the answer is √2.`, true, 'unicode radical');
s('malformed', R`2\sqrt{5}`, R`2\sqrt 5`, true, R`The distance simplifies.`, '\\sqrt 5 without braces');
r('malformed', R`\frac{1}{2}`, R`The probability is $\boxed{\frac{1}{2}}}$.`, true, 'stray closing brace after a complete box');
s('malformed', R`4\sqrt{2}`, R`4\sqrt(2)`, true, R`The diagonal is $4$ times root $2$.`, '\\sqrt(2) written with parentheses still means 4 sqrt 2');
s('malformed', R`\frac{3}{2}`, R`\cfrac{3}{2}`, true, R`The ratio simplifies.`);
r('malformed', R`\frac{1}{4}`, R`The probability is $\frac{1}{2} \cdot \frac{1}{2}$, so the answer is $\boxed{\frac{1}{4}.}$`, true, 'sentence period inside the box');
s('malformed', '1000', R`1\,000`, true, R`There are $1\,000$ numbers.`, 'thin-space thousands separator');
s('malformed', '4', R`4\sqrt(2)`, false, R`The diagonal is $4$ times root $2$.`, '4 sqrt 2 is not 4 (Math-Verify issue #41)');
s('malformed', R`\frac{1}{12}`, R`\frac12`, false, R`The probability is one half.`, '\\frac12 = 1/2, not 1/12');
s('malformed', R`\sqrt{32}`, R`\sqrt32`, false, R`The length simplifies.`, 'in LaTeX \\sqrt32 is \\sqrt{3}2 = 2 sqrt 3, not sqrt 32');
s('malformed', R`\frac{1}{2}`, R`-\frac12`, false, R`The slope is negative.`, 'sign differs');

// ───────────────────────────── no-answer ─────────────────────────────
r('no-answer', '12', R`This problem asks for the number of apples. Let $x$ be the number of apples in each basket. We set up the equation $3x = 36$, and we can solve it for $x$ to get the number of apples.`, false, 'no final answer is stated');
r('no-answer', '5', R`I'm not sure how to solve this problem. Could you provide more details?`, false);
r('no-answer', '5', R`After checking the cases, the answer is either 5 or 6.`, false, 'hedge');
r('no-answer', '5', R`We found that $x^2 - 11x + 30 = 0$ has a root $x = 5$, but the other condition fails... Is the answer 5?`, false, 'question, not an answer');
r('no-answer', '5', R`Both values satisfy the equation, so the answer is $\boxed{5}$ or $\boxed{6}$.`, false, 'two boxes joined by "or" are a hedge, not a list');
r('no-answer', '4', R`We need to find the value of $x$ such that $2x + 3 = 11$. To do this, we isolate $x$ on one side of the equation.`, false, 'restates the problem');
r('no-answer', '4', R`There are 3 red balls and 4 blue balls in the bag. We are asked in how many ways we can pick two balls of the same colour. We consider the two colours separately.`, false, 'last number equals the gold but is not an answer');
r('no-answer', '7', R`The answer cannot be determined from the given information.`, false);
r('no-answer', '8', R`<think>
I think the answer might be 8 but I need to check the second case. Actually, I cannot finish this.
</think>

I was unable to determine the answer.`, false, 'the only candidate is inside <think> and is not a final answer');
r('no-answer', '3', R`Answer: ?`, false);

// ───────────────────────────── empty ─────────────────────────────
r('empty', '3', '', false, 'empty response');
r('empty', R`\frac{1}{2}`, '   \n  \n', false, 'whitespace only');
r('empty', '0', R`\boxed{}`, false, 'empty box, even though the gold is 0');
r('empty', '7', R`Final Answer: The final answer is $$. I hope it is correct.`, false, 'empty Minerva answer');
r('empty', '12', '<think>\n\n</think>\n\n', false, 'empty think block and nothing after');
r('empty', '4', R`Adding the two cases, we get the total. Therefore the answer is $\boxed{ }$.`, false, 'box containing only a space');
r('empty', '18', '#### ', false, 'empty GSM8K answer line');

// ───────────────────────────── truncated ─────────────────────────────
r('truncated', '18', R`The ducks lay 16 eggs per day. She eats 3 and bakes with 4, so 16 - 3 - 4 = 9 eggs remain. She sells them for $2 each, so she makes 9 * 2 = 18 dollars per day, and then we need to subtract the cost of the feed, which is`, false, 'cut mid-sentence; the last number before the cut equals the gold (last-number fallback trap)');
r('truncated', '42', R`<think>
We need the sum $2 + 4 + \cdots + 12$. Pairing, that is $3 \cdot 14 = 42$, so the answer is $\boxed{42}$. Wait, let me double-check by`, false, 'unfinished <think>: a boxed value inside it is not final');
r('truncated', R`\frac{14}{3}`, R`Solving $3x - 14 = 0$, we obtain $x = \boxed{\frac{14}{`, false, 'cut inside the box');
r('truncated', '24', R`The area of the right triangle is $\frac{6 \cdot 8}{2} = 24$ square units. Next, the perimeter is $6 + 8 +`, false, 'cut mid-sentence; the gold appears only as an intermediate value');
r('truncated', '5', R`Solving $2x + 3 = 13$ gives $\boxed{5}$.

Let me verify: substituting $x = 5$ gives $2(5) + 3 = `, false, 'visibly truncated response is no answer (policy §4), even with an earlier box');
r('truncated', '120', R`<think>
We want the number of ways to arrange 5 distinct books. The first position has 5 choices, then 4, 3, 2, 1. The product is 120`, false, 'unfinished <think>, last number equals the gold');
r('truncated', '45', R`Step 1: The numbers from 1 to 9 are summed.
Step 2: The sum is therefore 45, and dividing by`, false, 'cut mid-sentence');
r('truncated', '7', R`Combining both cases, the final answer is`, false, 'cut right before the answer');
r('truncated', '3', R`<think>
The remainder of $7^{2}$ modulo $23$ is $49 - 46 = 3$.
</think>

The answer is $\boxed{3`, false, 'cut inside the box: no closing brace');

// ───────────────────────────── extraction-format ─────────────────────────────
r('extraction-format', R`\frac{1}{4}`, R`Problem:
What is the probability that two fair coins both land heads?

Solution:
Each coin lands heads with probability $\frac{1}{2}$, and the coins are independent, so the probability is $\frac{1}{2}\cdot\frac{1}{2} = \frac{1}{4}$.
Final Answer: The final answer is $\frac{1}{4}$. I hope it is correct.`, true, 'Minerva format');
r('extraction-format', '2,125', gsm(R`She sold 425 boxes on each of 5 days, so 425 * 5 = <<425*5=2125>>2125 boxes.`, '2125'), true, 'GSM8K gold with thousands separator');
r('extraction-format', '73', R`Working through the recursion carefully, we find that $a_{10} = 73$.

**Final Answer**
**73**`, true, 'markdown bold answer after a Final Answer header');
r('extraction-format', '17', R`The primes below 60 that are 2 more than a multiple of 3 are counted, giving 17.

Answer: 17`, true);
s('extraction-format', '5', R`5`, true, R`The number of solutions is 5.`);
r('extraction-format', '5', R`Computing the remainder, we have $\fbox{5}$.`, true, '\\fbox');
r('extraction-format', '5', R`The remainder is $\boxed 5$.`, true, '\\boxed without braces');
r('extraction-format', '840', R`The number of ways is $7 \cdot 6 \cdot 5 \cdot 4 = \boxed{840}$.

Double-checking with the permutation formula $P(7,4) = \frac{7!}{3!} = 840$, so the answer is $\boxed{840}$.`, true, 'identical repeated boxes are one answer, not 840840');
r('extraction-format', '7', R`Therefore $n = \boxed{\boxed{7}}$.`, true, 'nested boxes');
r('extraction-format', '4', R`Adding gives $\boxed{3}$.

Wait, I forgot the case $n = 0$. Including it, there are $4$ solutions in total, so the answer is $\boxed{4}$.`, true, 'last box wins after a self-correction');
r('extraction-format', '3', R`Adding gives $\boxed{3}$.

Wait, I forgot the case $n = 0$. Including it, there are $4$ solutions in total, so the answer is $\boxed{4}$.`, false, 'the earlier box was corrected; the final answer is 4');
r('extraction-format', '8', R`<think>
First guess: $\boxed{7}$. Hmm, no, I double-counted the empty set; removing it gives 8... let me recount. Yes, 8.
</think>

There are $2^3 = 8$ subsets of a 3-element set. The answer is $\boxed{8}$.`, true, 'a box inside <think> is not final; the final answer after </think> is 8');
r('extraction-format', '7', R`<think>
First guess: $\boxed{7}$. Hmm, no, I double-counted the empty set; removing it gives 8... let me recount. Yes, 8.
</think>

There are $2^3 = 8$ subsets of a 3-element set. The answer is $\boxed{8}$.`, false, 'the 7 is a discarded guess inside <think>');
r('extraction-format', '6', R`The final answer is 5.

Hmm, actually, that misses the case where both dice show 3. Recounting, there are 6 outcomes, so the answer is $\boxed{6}$.`, true, 'later box wins over an earlier final-answer phrase');
r('extraction-format', '42', '42', true, 'the whole response is just the answer');
r('extraction-format', '72', R`Natalia sold 48 clips in April and half as many, 24, in May. Adding them, the total number of clips she sold is 72.`, true, 'clear concluding sentence ending in the value (policy §4 allows this)');
r('extraction-format', '12', R`The perimeter is $3 \cdot 4 = 12$, so the answer is $\boxed{12}$.

Problem:
Find the number of positive divisors of 64.

Solution:
Since $64 = 2^6$, it has $6 + 1 = \boxed{7}$ divisors.`, true, 'continuation into a hallucinated new Problem: turn is cut off');
r('extraction-format', '7', R`The perimeter is $3 \cdot 4 = 12$, so the answer is $\boxed{12}$.

Problem:
Find the number of positive divisors of 64.

Solution:
Since $64 = 2^6$, it has $6 + 1 = \boxed{7}$ divisors.`, false, '7 answers the hallucinated next problem, not this one');
r('extraction-format', '9', R`Since $3^2 = 9$, the answer is $\boxed{9}$.<|im_end|>
<|im_start|>user
Now compute $3^3$.<|im_end|>
<|im_start|>assistant
$3^3 = \boxed{27}$.`, true, 'continuation into a new chat turn is cut off');

// ───────────────────────────── adversarial ─────────────────────────────
s('adversarial', 'y=3', 'x=3', false, R`The horizontal line through the point.`, 'x=3 is not y=3 (prefix stripping false positive)');
s('adversarial', '11a+c', '7 = 11a+c', false, R`From the remainder condition.`, 'an equation stating the value 7 is not the expression 11a+c');
s('adversarial', '5', R`5 \text{ or } 6`, false, R`Both cases seem possible.`, 'hedge inside one box (MATH \\text{ unit rule false positive)');
s('adversarial', '[2,5]', '[2,5)', false, R`The function is defined on the half-open interval.`, 'bracket type matters');
s('adversarial', '(1,2)', R`\{1,2\}`, false, R`The two values are $1$ and $2$.`, 'a set is not an ordered pair');
s('adversarial', R`\frac{1}{2^{99}}`, R`\frac{1}{2^{98}}`, false, R`The probability is $\frac{1}{2^{98}}$.`, 'no absolute tolerance');
s('adversarial', R`\frac{1}{2004!}`, R`\frac{1}{2006!}`, false, R`The sum telescopes.`, 'Math-Verify issue #14');
s('adversarial', R`\frac{2^{2005}+1}{3\cdot 2^{2006}}`, R`\frac{1}{3\cdot 2^{2006}}`, false, R`The sum telescopes.`, 'differs by 2^2005/(3*2^2006) = 1/6 (Math-Verify issue #14)');
s('adversarial', R`1 - \frac{1}{e}`, R`1 + \frac{1}{e}`, false, R`Taking the limit.`, 'sign differs (Math-Verify test false positive fixed in PR #82)');
s('adversarial', '23', R`2\cdot 3`, false, R`The product of the two primes.`, '2*3 = 6; dropping \\cdot would give 23');
s('adversarial', R`10^{10^{10}}+1`, R`10^{10^{10}}`, false, R`The count is a power of ten.`, 'differs by 1; floating point cannot tell; must not hang');
s('adversarial', '32349', '32, 349', false, R`The two numbers are found below.`, '"32, 349" (comma and space) is a list, not 32349 (policy §4)');
r('adversarial', '6', R`It could be 6, but I'm not confident; my best guess is something between 5 and 6, maybe 5.5 or 6.`, false, 'hedged text; a last-number fallback would extract 6');
s('adversarial', R`\frac{1}{5}`, '20', false, R`The ratio is $20$.`, 'OREAL compares against ref*100 with rel_tol; 20 is not 1/5');
s('adversarial', 'e^2', '7.389', false, R`Numerically $e^2 \approx 7.389$.`, 'approximation of an irrational');
r('adversarial', '5', R`The final answer is 5.

Hmm, actually, that misses the case where both dice show 3. Recounting, there are 6 outcomes, so the answer is $\boxed{6}$.`, false, 'an earlier final-answer phrase must not override the later box (Qwen false positive)');
s('adversarial', '8000', '8,000', true, R`The volume is $20 \cdot 20 \cdot 20$.`, 'thousands separator must not split the number (open-compass #2647)');
r('adversarial', '73', R`Summing the three cases, $25 + 24 + 24 = 73$. The answer is **73**.`, true, 'markdown bold answer (Math-Verify issue #76)');
s('adversarial', R`10{,}000`, '10000', true, R`There are $10^4$ four-digit strings.`, 'Qwen grader rejected this in its own example file');
r('adversarial', '9', R`Since $3^2 = 9$, we have $\boxed{9}$.

I have boxed the final answer above as requested.`, true, 'the word "boxed" in prose after the box breaks substring-split extractors');
s('adversarial', '13', R`\text{13}`, true, R`Counting the lattice points.`, 'Math-Verify test passes only because of a TAB escape; mathematically 13');
s('adversarial', R`1 + \frac{1}{\mathrm{e}}`, R`1 + e^{-1}`, true, R`Taking the limit.`, '\\mathrm{e} is Euler\'s number');
s('adversarial', '2003^{2002^{2001}}', '2003^{2002^{2001}}', true, R`The expression is left as a power tower.`, 'identical power tower; the verifier must not hang on it');
s('adversarial', '10^{10^{10}}', '10^{10^{10}}', true, R`The number of configurations.`, 'identical huge power; must not hang');
s('adversarial', '6', R`2\cdot 3`, true, R`The product of the two primes.`, '2*3 = 6');
s('adversarial', R`\frac{1}{2^{99}}`, '2^{-99}', true, R`The probability halves at each of the $99$ steps.`, 'exact equality of tiny numbers');
s('adversarial', R`\frac{1}{2004!}`, R`\frac{2005}{2005!}`, true, R`The sum telescopes.`, '2005/2005! = 1/2004!');
s('adversarial', '5866608', '5,866,608', true, R`Multiplying out.`, 'thousands separators');
s('adversarial', R`11,\! 111,\! 111,\! 100`, '11111111100', true, R`Summing the repunits.`, 'gold uses ,\\! separators with spaces');
r('adversarial', '0', R`Therefore the determinant is $\boxed{0}$.

Note: for $n = 1, 2, 3$ the first few values of the sequence are $4$, $7$ and $12$.`, true, 'numbers after the box must not be taken as the answer');

// ───────────────────────────── second batch: harder cases across categories ─────────────────────────────
r('extraction-format', '6', R`Using the formula, $\boxed 5$ seemed right at first, but the formula double-counts the case $a = b$. Correcting for it gives $\boxed{6}$.`, true, 'a "\\boxed " occurrence must not win over a later \\boxed{} (Minerva last_boxed_only_string bug)');
r('extraction-format', R`\frac{1}{3}`, R`Exactly one of the three doors hides the car, so the probability is \tfrac{1}{3}. The answer is \tfrac{1}{3}`, true, 'bare LaTeX answer without $ delimiters (Math-Verify does not extract it)');
r('extraction-format', '12', R`<think>
The rectangle has sides 3 and 4, so the area is 12. Let me make sure the sides are right: yes.
</think>

The area of the rectangle is $3 \times 4 = 12$.

**Final Answer:** 12`, true, 'bold Final Answer label after a finished <think>');
r('extraction-format', '42', gsm(R`He buys 6 packs at $7 each: 6 * 7 = <<6*7=42>>42.`, '42 dollars'), true, 'GSM8K answer line with a trailing unit word');
r('other-notation', R`\frac{\pi}{6}`, R`The angle at the apex is one twelfth of a full turn, so the answer is \frac{1}{6}\pi.`, true, 'bare LaTeX without $; (1/6) pi = pi/6');
s('other-notation', R`\frac{1}{7}`, R`0.\overline{142857}`, true, R`Long division of $1$ by $7$ repeats with period $6$.`, '0.142857142857... = 142857/999999 = 1/7');
s('other-notation', '3', R`\log_2 8`, true, R`We need the exponent $k$ with $2^k = 8$.`, 'log_2 8 = 3');
s('other-notation', '9900', R`\frac{100!}{98!}`, true, R`The number of ordered pairs of distinct winners.`, '100!/98! = 100*99 = 9900');
s('adversarial', '2^{100}', '1267650600228229401496703205376', true, R`Doubling $100$ times gives the exact value.`, '2^100 exactly; needs exact big-integer arithmetic');
s('adversarial', '2^{100}', '1267650600228229401496703205377', false, R`Doubling $100$ times and adding the initial cell.`, 'off by one from 2^100; any float or relative tolerance would accept it');
s('adversarial', '9^{9^{9}}', '9^{9^9}', true, R`The tower of three nines.`, 'same power tower, braces differ; must not hang');
s('adversarial', '65536', '2^{2^{2^{2}}}', true, R`The tower evaluates from the top: $2^{2^{4}} = 2^{16}$.`, '2^(2^(2^2)) = 2^16 = 65536');
s('adversarial', R`\pi`, '3.14159265', false, R`Numerically the ratio is $3.14159265$.`, 'decimal approximation of pi, however many digits');
s('adversarial', '123456789', '123456788', false, R`Subtracting one from the count.`, 'off by one; rel_tol 1e-4 would accept it');
s('adversarial', R`\frac{1}{3}`, '0.3333333333', false, R`The probability is about $0.3333333333$.`, 'truncated decimal is not 1/3');
s('adversarial', R`\frac{\sqrt{2}}{2}`, R`\sin 45^\circ`, true, R`The ratio is the sine of the angle.`, 'sin 45° = sqrt2/2 exactly');
s('set', R`\{1,2,3\}`, R`\{1,2\} \cup \{3\}`, true, R`The two cases give $\{1,2\}$ and $\{3\}$.`, 'union of sets');
s('interval', R`(-\infty,1) \cup (1,\infty)`, R`\mathbb{R} \setminus \{1\}`, true, R`The only excluded point is $x = 1$.`, 'same set');
s('interval', '[2,5]', R`2 \le x \le 5`, true, R`Solving both inequalities.`, 'solved chained relation matches the interval gold');
s('complex', '-1', R`e^{i\pi}`, true, R`By Euler's formula.`, 'e^{i pi} = -1');
s('complex', '-i', R`\frac{1}{i}`, true, R`Taking the reciprocal of $i$.`, '1/i = -i');
s('complex', 'i', R`\frac{1}{i}`, false, R`Taking the reciprocal of $i$.`, '1/i = -i, not i');
s('expression', 'x^2+2x+1', '(x+1)^2', true, R`Completing the square.`, 'expanded and factored forms are equal');
s('expression', '2^{n+1}', R`2\cdot 2^n`, true, R`Doubling at each step.`, '2*2^n = 2^(n+1)');
s('text-answer', R`\text{Yes}`, R`\text{No}`, false, R`The sum is odd, so it cannot be split evenly.`);
s('text-answer', R`\text{yes}`, 'Yes', true, R`Such a pairing exists.`);

// ───────────────────────────── output ─────────────────────────────
const ids = new Set<string>();
const pairs = new Set<string>();
for (const c of cases) {
  if (ids.has(c.id)) throw new Error(`duplicate id ${c.id}`);
  ids.add(c.id);
  const key = JSON.stringify([c.response, c.gold]);
  if (pairs.has(key)) throw new Error(`duplicate (response, gold) in ${c.id}`);
  pairs.add(key);
  if (c.response.includes('${')) throw new Error(`unexpanded template in ${c.id}`);
}

// Group the file by category (in PREFIX order); ids already increase within a category.
const order = Object.keys(PREFIX);
cases.sort((x, y) => order.indexOf(x.category) - order.indexOf(y.category));

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] ?? resolve(here, '../../test/fixtures/verifier-cases.jsonl');
writeFileSync(out, cases.map((c) => JSON.stringify(c)).join('\n') + '\n');

const byCat = new Map<string, [number, number]>();
for (const c of cases) {
  const e = byCat.get(c.category) ?? [0, 0];
  e[c.expected ? 0 : 1] += 1;
  byCat.set(c.category, e);
}
const nTrue = cases.filter((c) => c.expected).length;
console.log(`wrote ${cases.length} cases (${nTrue} true, ${cases.length - nTrue} false) to ${out}`);
for (const [cat, [t, f]] of byCat) console.log(`  ${cat.padEnd(18)} ${String(t + f).padStart(3)}  true ${t}  false ${f}`);

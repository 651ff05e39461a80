import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { compareAnswers } from '../src/verify/compare.js';
import { normalizeAnswer } from '../src/verify/normalize.js';
import { parseLatex } from '../src/verify/latex.js';
import * as Q from '../src/verify/rational.js';

type Case = [gold: string, answer: string, expected: boolean];

// Each label is decided by the mathematics and the label policy of the held-out set.
const CASES: Record<string, Case[]> = {
  integer: [
    ['42', '42', true],
    ['42', '42.0', true],
    ['42', '43', false],
    ['42', '-42', false],
    ['5866608', '5866600', false],
    ['1000000', '1000001', false],
    ['2,125', '2125', true],
    ['10{,}000', '10000', true],
    ['10,\\!080', '10080', true],
    ['11,\\! 111,\\! 111,\\! 100', '11111111100', true],
    ['\\$32,\\!348', '32,348', true],
    ['\\$32,\\!348', '\\$32348', true],
    ['58,500', '58500', true],
    ['32349', '32, 349', false],
    ['\\boxed{12}', '12', true],
    ['025', '25', true],
    ['0', '-0', true],
    ['12', '12 \\text{ students}', true],
    ['6290000', '6287000', false],
    ['3', '\\sqrt{9}', true],
    ['10', '\\binom{5}{2}', true],
    ['10', '\\dbinom{5}{3}', true],
    ['120', '5!', true],
    ['3', '\\log_2 8', true],
  ],
  fraction: [
    ['\\frac{14}{3}', '14/3', true],
    ['\\frac{14}{3}', '\\dfrac{14}{3}', true],
    ['\\frac{14}{3}', '4\\frac{2}{3}', true],
    ['\\frac{14}{3}', '4.67', false],
    ['\\frac{14}{3}', '4.\\overline{6}', true],
    ['\\frac{3}{56}', '6/112', true],
    ['\\frac 34', '0.75', true],
    ['\\frac14', '\\tfrac{1}{4}', true],
    ['\\frac9{19}', '\\frac{9}{19}', true],
    ['\\frac{270}7\\text{ degrees}', '\\frac{270}{7}', true],
    ['\\frac{1}{2}', '$\\dfrac{1}{2}$', true],
    ['\\frac{1}{2}', '\\frac{2}{1}', false],
    ['-\\frac{3}{8}', '\\frac{-3}{8}', true],
    ['-\\frac{3}{8}', '\\frac{3}{8}', false],
    ['137 \\frac{1}{2}', '\\frac{275}{2}', true],
    ['1\\frac{4}{5}', '1.8', true],
    ['1\\frac{4}{5}', '\\frac{4}{5}', false],
    ['\\frac{1}{2^{99}}', '\\frac{1}{2^{98}}', false],
    ['\\frac{1}{2004!}', '\\frac{1}{2006!}', false],
    ['\\frac{2^{2005}+1}{3\\cdot 2^{2006}}', '\\frac{1}{3\\cdot 2^{2006}}', false],
    ['\\frac{1}{3}', '0.\\overline{3}', true],
    ['1', '0.\\overline{9}', true],
    ['\\frac{1}{6}', '0.1\\overline{6}', true],
    ['\\frac{1}{3}', '0.333', false],
    ['\\frac{11+9a}{20}', '\\frac{9a+11}{20}', true],
    ['\\frac{11+9a}{20}', '\\frac{11}{20}+\\frac{9}{20}a', true],
    ['\\frac{11+9a}{20}', '\\frac{11+9a}{21}', false],
  ],
  decimal: [
    ['0.125', '\\frac{1}{8}', true],
    ['.0000672', '6.72 \\times 10^{-5}', true],
    ['.0000672', '6.72e-5', true],
    ['.35625', '0.35625', true],
    ['3.21', '3.2', false],
    ['4.5', '\\frac{9}{2}', true],
    ['326.5', '326.50', true],
    ['\\$18.90', '18.9', true],
    ['1.25', '1.250', true],
    ['10^{-8}', '10^{-9}', false],
    ['0.15', '0.150000001', false],
    ['6.02 \\times 10^{23}', '6.02e23', true],
  ],
  percent: [
    ['25\\%', '25', true],
    ['25\\%', '25\\%', true],
    ['25\\%', '0.25', true],
    ['25\\%', '2.5', false],
    ['20', '20\\%', true],
    ['0.2', '20\\%', true],
    ['20', '0.2', false],
    ['0.2', '20', false],
    ['198\\%', '198', true],
    ['10', '10 percent', true],
    ['12.5\\%', '\\frac{1}{8}', true],
  ],
  sqrt: [
    ['2\\sqrt{5}', '\\sqrt{20}', true],
    ['2\\sqrt{5}', '2 \\sqrt 5', true],
    ['3\\sqrt{13}', '\\sqrt{117}', true],
    ['\\sqrt{2}', '1.414', false],
    ['\\sqrt[3]{2}', '\\sqrt{2}', false],
    ['\\sqrt[3]{2}', '2^{1/3}', true],
    ['\\frac{\\sqrt{3}}{3}', '\\frac{1}{\\sqrt{3}}', true],
    ['\\frac{\\sqrt{3}}{2}', '\\sqrt3/2', true],
    ['\\frac{\\sqrt{21}}{5}', '\\frac{\\sqrt{21}}{4}', false],
    ['11\\sqrt2', '11 \\sqrt{2}', true],
    ['11 \\sqrt{5} + 11', '11(1+\\sqrt{5})', true],
    ['11 \\sqrt{5} + 11', '11\\sqrt{5} - 11', false],
    ['1+2\\sqrt{3}', '2\\sqrt{3}+1', true],
    ['\\sqrt{2}', '√2', true],
    ['4', '4\\sqrt{2}', false],
    ['-\\sqrt{3}', '\\sqrt{3}', false],
    ['\\sqrt{2}', '1.4142135623731', false],
  ],
  pi: [
    ['\\pi', '3.14', false],
    ['\\pi', '\\pi', true],
    ['12\\pi', '12 \\pi', true],
    ['12\\pi', '37.699', false],
    ['2\\pi', '6.2832', false],
    ['\\frac{20000}{\\pi}', '20000/\\pi', true],
    ['18+2\\pi', '2\\pi + 18', true],
    ['18+2\\pi', '2(9+\\pi)', true],
    ['288 \\pi', '288\\pi \\text{ cubic units}', true],
    ['-\\frac{\\pi}{6}', '-\\pi/6', true],
    ['\\frac{1}{6}\\pi', '\\frac{\\pi}{6}', true],
    ['7\\pi', '7 π', true],
    ['\\pi', '\\pi^2', false],
  ],
  interval: [
    ['[-2,7]', '[-2, 7]', true],
    ['[-2,7]', '[-2,7)', false],
    ['[2,5]', '(2,5]', false],
    ['(3,4]', '\\left(3,4\\right]', true],
    ['(-\\infty, 0]', '(-\\infty,0]', true],
    ['(-\\infty, 0]', '(-\\infty,0)', false],
    ['(-\\infty, 0]', 'x \\le 0', true],
    ['(-\\infty, 0]', 'x < 0', false],
    ['(5,\\infty)', 'x>5', true],
    ['(5,\\infty)', 'x<5', false],
    ['(-\\infty,3)', 'x+2<5', false],
    ['x \\in [-2,7]', '[-2,7]', true],
    ['x \\in [-2,7]', '-2 \\le x \\le 7', true],
    ['x \\in [-2,7]', '-2 < x \\le 7', false],
    ['(-\\infty, 2) \\cup (3, \\infty)', '(3,\\infty) \\cup (-\\infty,2)', true],
    ['(-\\infty, 2) \\cup (3, \\infty)', 'x<2 \\text{ or } x>3', true],
    ['(-\\infty, 2) \\cup (3, \\infty)', '(-\\infty, 2) \\cup [3, \\infty)', false],
    ['(-\\infty, 2) \\cup (3, \\infty)', '(-\\infty, 2)', false],
    ['\\left(\\frac{3}{5},\\frac{8}{3}\\right]', '(0.6, 8/3]', true],
    ['\\left[ \\frac{\\pi^2}{8}, \\frac{5 \\pi^2}{4} \\right]', '[\\pi^2/8, 5\\pi^2/4]', true],
    ['(-\\infty,\\infty)', '\\mathbb{R}', true],
    ['(-\\sqrt{3}, \\sqrt{3})', '(-\\sqrt3,\\sqrt3)', true],
    ['(2,\\infty)', '(2, ∞)', true],
  ],
  set: [
    ['\\{1,2\\}', '\\{2,1\\}', true],
    ['\\{1,2\\}', '\\{1,2,3\\}', false],
    ['\\{1,2,3\\}', '\\{1,2\\}', false],
    ['\\{1,2\\}', '\\{1,1,2\\}', true],
    ['(1,2)', '\\{1,2\\}', false],
    ['\\{1,2\\}', '(1,2)', false],
    ['\\{0\\}', '0', true],
    ['0', '\\{0\\}', true],
    ['\\{1\\pm\\sqrt{5},-2\\}', '-2, 1+\\sqrt5, 1-\\sqrt5', true],
    ['\\{1\\pm\\sqrt{5},-2\\}', '1+\\sqrt5, 1-\\sqrt5', false],
    ['\\emptyset', '\\varnothing', true],
    ['\\emptyset', '\\{\\}', true],
    ['\\emptyset', '0', false],
  ],
  tuple: [
    ['\\left( 3, \\frac{\\pi}{2} \\right)', '(3, \\frac{\\pi}{2})', true],
    ['\\left( 3, \\frac{\\pi}{2} \\right)', '(\\frac{\\pi}{2}, 3)', false],
    ['\\left( 3, \\frac{\\pi}{2} \\right)', '(3, 1.57)', false],
    ['(1,-16,-4,43)', '(1, -16, -4, 43)', true],
    ['(1,-16,-4,43)', '(1, -16, 43, -4)', false],
    ['(1,-16,-4,43)', '(1, -16, -4)', false],
    ['(8,-2)', '(8, -2)', true],
    ['(8,-2)', '8, -2', true],
    ['(8,-2)', '[8,-2]', false],
    ['\\left( \\frac{3}{2}, -13 \\right)', '(1.5,-13)', true],
    ['(6,31,-1)', '(x,y,z) = (6,31,-1)', true],
    ['(2,4)', '(4,2)', false],
  ],
  matrix: [
    ['\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}', '\\begin{bmatrix} -1 & 0 \\\\ 0 & -1 \\end{bmatrix}', true],
    ['\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}', '\\begin{pmatrix} -1 & 0 \\\\ 0 & 1 \\end{pmatrix}', false],
    ['\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}', '\\begin{pmatrix} -1 & 0 & 0 & -1 \\end{pmatrix}', false],
    ['\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}', '\\begin{pmatrix} -\\frac13 \\\\ \\frac23 \\\\ \\frac53 \\end{pmatrix}', true],
    ['\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}', '\\begin{pmatrix} 0.2 \\\\ -3.6 \\end{pmatrix}', true],
    ['\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}', '\\begin{pmatrix} -18/5 \\\\ 1/5 \\end{pmatrix}', false],
    ['\\begin{pmatrix} -18 \\\\ -49 \\\\ 96 \\end{pmatrix}', '(-18,-49,96)', true],
    ['\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}', '\\left[\\begin{array}{cc} 1 & 2 \\\\ 3 & 4 \\end{array}\\right]', true],
  ],
  equation: [
    ['x=5', '5', true],
    ['5', 'x=5', true],
    ['3', 'x = 3', true],
    ['x=3', 'y=3', false],
    ['x=3', 'x=-3', false],
    ['y = 2x + 3', 'y=3+2x', true],
    ['y = 2x + 3', '2x - y + 3 = 0', true],
    ['y = 2x + 3', 'y = 2x - 3', false],
    ['y = -2x', 'y=-2x', true],
    ['y = -2x', '2x + y = 0', true],
    ['5x - 7y + 11z + 4 = 0', '-5x + 7y - 11z - 4 = 0', true],
    ['5x - 7y + 11z + 4 = 0', '10x - 14y + 22z + 8 = 0', true],
    ['5x - 7y + 11z + 4 = 0', '5x - 7y + 11z - 4 = 0', false],
    ['x^2+y^2=25', 'x^2+y^2=5', false],
    ['3x - y + 13 = 0', '3x + 4y + 14 = 0', false],
    ['7', '7 = 11a+c', false],
    ['x<5', 'x>5', false],
    ['x<5', '5>x', true],
    ['x \\le 5', 'x<5', false],
    ['2x+2y=4', 'x+y=2', true],
    ['k=2', 'k = 2', true],
    ['x<3', 'x+2<5', false],
    ['x<3', '3>x', true],
    ['x<3', 'y<3', false],
    ['x=3', '2x=6', false],
    ['x=3', '3=x', true],
    ['x^3+3x-6', 'p(x) = x^3+3x-6', true],
    ['x^3+3x-6', 'p(x) = x^3+3x+6', false],
    ['(2,3)', 'a=2, b=3', true],
    ['5', '\\frac{10}{2} = 5', true],
    ['5', 'x = 2 + 3 = 5', true],
    ['5', '2 + 2 = 5', false],
    ['\\frac{1}{3}', '\\frac13 \\approx 0.333', true],
    ['\\frac{1}{3}', 'x \\approx 0.333', false],
  ],
  expression: [
    ['p - q', '-q + p', true],
    ['p - q', 'q - p', false],
    ['(a+5)(b+2)', 'ab+2a+5b+10', true],
    ['(a+5)(b+2)', '(a+2)(b+5)', false],
    ['x^3+3x-6', 'x^3 + 3x - 6', true],
    ['x^3+3x-6', '3x+x^3-6', true],
    ['x^3+3x-6', 'x^3+3x+6', false],
    ['8n^2 + 4n + 1', '4n(2n+1)+1', true],
    ['2^{n+1}', '2^n+1', false],
    ['2^{n+1}', '2\\cdot 2^n', true],
    ['1 - 1/e', '1 + 1/e', false],
    ['1 - \\frac{1}{e}', '\\frac{e-1}{e}', true],
    ['2k', '2n', false],
    ['2k+2', '2(k+1)', true],
    ['3R^2', '3R^{2}', true],
    ['5r^5', '5r^4', false],
    ['\\cot x', '\\frac{\\cos x}{\\sin x}', true],
    ['\\cot x', '\\tan x', false],
    ['x^2+2x+1', '(x+1)^2', true],
    ['\\sin^2 x + \\cos^2 x', '1', true],
    ['-13x+3', '3-13x', true],
    ['x^8 + x^7 + x^6 + x^5 + x^4 + x^3 + x^2 + x + 1', '\\frac{x^9-1}{x-1}', true],
    ['6r^2-4r-24', '2(3r^2-2r-12)', true],
    ['|x|', 'x', false],
  ],
  text: [
    ['\\text{Evelyn}', 'Evelyn', true],
    ['\\text{Evelyn}', '\\text{evelyn}', true],
    ['\\text{Evelyn}', 'Navin', false],
    ['\\text{east}', 'East', true],
    ['\\text{even}', '\\text{odd}', false],
    ['\\text{ellipse}', '\\text{ellipse}', true],
    ['\\text{4:30 p.m.}', '4:30 \\text{ p.m.}', true],
    ['\\text{4:30 p.m.}', '4:30', false],
  ],
  units: [
    ['15\\mbox{ cm}^2', '15', true],
    ['15\\mbox{ cm}^2', '15 \\text{ cm}^2', true],
    ['15\\mbox{ cm}^2', '16 \\text{ cm}^2', false],
    ['864 \\mbox{ inches}^2', '864', true],
    ['5.4 \\text{ cents}', '5.4', true],
    ['5', '5 \\text{ cm}', true],
    ['5', '5 cm', true],
    ['5', '500 \\text{ cm}', false],
    ['100\\text{ square units}', '100', true],
    ['5', '5 \\text{ or } 6', false],
    ['\\$36', '36 \\text{ dollars}', true],
  ],
  degrees: [
    ['30^\\circ', '30', true],
    ['30^\\circ', '30°', true],
    ['30^\\circ', '30^{\\circ}', true],
    ['30^\\circ', '\\frac{\\pi}{6}', true],
    ['30^\\circ', '0.5236', false],
    ['30^\\circ', '60^\\circ', false],
    ['90^\\circ', '90', true],
    ['120^\\circ', '120°', true],
    ['45', '\\frac{\\pi}{4}', false],
    ['106^\\circ', '106 \\text{ degrees}', true],
  ],
  multipleAnswers: [
    ['1 \\pm \\sqrt{19}', '1+\\sqrt{19}, 1-\\sqrt{19}', true],
    ['1 \\pm \\sqrt{19}', '1-\\sqrt{19}, 1+\\sqrt{19}', true],
    ['1 \\pm \\sqrt{19}', '1+\\sqrt{19}', false],
    ['1 \\pm \\sqrt{19}', 'x = 1 \\pm \\sqrt{19}', true],
    ['3 \\pm 2 \\sqrt{2}', '3+2\\sqrt2 \\text{ and } 3-2\\sqrt2', true],
    ['3, 5, 7', '7, 5, 3', true],
    ['3, 5, 7', '3, 5', false],
    ['3, 5, 7', '\\{3, 5, 7\\}', true],
    ['-2,1', '1, -2', true],
    ['-2,1', 'x=1, x=-2', true],
    ['-2,1', 'x = -2 \\text{ or } x = 1', true],
    ['-2,1', '1', false],
    ['1,-2', '1, -2, 3', false],
    ['5', '5, 5', true],
    ['5', '5 \\text{ or } 6', false],
  ],
  multipleChoice: [
    ['\\text{(C)}', 'C', true],
    ['\\text{(C)}', '(C)', true],
    ['\\text{(C)}', '\\textbf{(C)} 5', true],
    ['\\text{(C)}', '\\text{(D)}', false],
    ['\\text{(C)}', 'A, C', false],
    ['\\text{(B)}', 'B', true],
    ['C', '\\text{(C)}', true],
    ['\\text{(E)}', '(e)', true],
    ['\\text{(E)}', '5', false],
  ],
  complex: [
    ['-2 + 7i', '7i - 2', true],
    ['-2 + 7i', '-2 - 7i', false],
    ['1 - 12i', '1-12i', true],
    ['6 - 5i', '6-5 i', true],
    ['i', '\\sqrt{-1}', true],
    ['-1', 'i^2', true],
    ['1+274i', '1+274i', true],
    ['1+2i', '(1+i)^2 + 1', true],
    ['1+2i', '2+i', false],
    ['1+i', '\\sqrt{2} e^{i\\pi/4}', true],
  ],
  otherNotation: [
    ['204_5', '204_5', true],
    ['204_5', '204_{5}', true],
    ['204_5', '204', true],
    ['204_5', '203_5', false],
    ['204_5', '204_6', false],
    ['4210_{5}', '4210_5', true],
    ['\\frac12', '½', true],
    ['2', '\\left| -2 \\right|', true],
    ['\\frac{1}{2}', '1:2', true], // a ratio a:b is the number a/b (issue 12)
  ],
  malformed: [
    ['\\frac{1}{2}', '\\frac12', true],
    ['\\sqrt{3}', '\\sqrt3', true],
    ['\\frac{3}{4}', '3/4', true],
    ['\\frac{1}{2}', '\\frac{1}{2', false],
    ['5', '', false],
    ['5', '\\boxed{}', false],
    ['5', '((((5', false],
    ['5', 'x = ', false],
    ['\\frac{1}{2}', '.5', true],
    ['5', '5.', true],
    ['73', '**73**', true],
    ['4', '4\\sqrt(2)', false],
    ['\\sqrt{2}', 'sqrt(2)', true],
    ['x^2', 'x**2', true],
    ['0', '1 000', false],
    ['1000000', '1 000 000', true],
    ['6', '2 3', false],
    ['5', '\\text{5 cm}', true],
    ['0', '0.(3)', false],
    ['\\frac13', '0.(3)', true],
  ],
  closedForms: [
    ['\\frac{1}{2}', '\\sin(\\pi/6)', true],
    ['\\frac{1}{2}', '\\cos 60^\\circ', true],
    ['\\frac{\\sqrt{6}-\\sqrt{2}}{4}', '\\sin(15^\\circ)', true],
    ['\\sqrt{3}', '\\tan 60^\\circ', true],
    ['\\frac{\\sqrt{2}}{2}', '0.7071', false],
    ['e', '2.718', false],
    ['\\frac{2}{3}', '0.6666666666666666', false],
    ['\\log_2 3', '\\frac{\\ln 3}{\\ln 2}', true],
    ['\\ln 2', '\\ln 3', false],
    ['-1', 'e^{i\\pi}', true],
    ['\\binom{n}{2}', '\\frac{n(n-1)}{2}', true],
    ['\\sqrt{x^2}', 'x', false],
    ['x+1', '\\frac{x^2-1}{x-1}', true],
    ['-\\infty', '\\infty', false],
    ['\\infty', '+\\infty', true],
  ],
  'red-team fixes': [
    // set difference and finite-set unions
    ['(-\\infty,1) \\cup (1,\\infty)', '\\mathbb{R} \\setminus \\{1\\}', true],
    ['(-\\infty,1) \\cup (1,\\infty)', '\\mathbb{R} \\setminus \\{2\\}', false],
    ['\\mathbb{R} \\setminus \\{1\\}', 'x \\in (-\\infty, 1) \\cup (1, \\infty)', true],
    ['[0,2] \\setminus \\{0\\}', '(0,2]', true],
    ['\\{1,2,3\\}', '\\{1,2\\} \\cup \\{3\\}', true],
    ['\\{1,2,3\\}', '\\{1,2\\} \\cup \\{2\\}', false],
    // x ≠ c and |x| inequalities as solution sets
    ['(-\\infty,1) \\cup (1,\\infty)', 'x \\neq 1', true],
    ['x \\ne 1', 'x \\neq 1', true],
    ['(-\\infty,-1]\\cup[1,\\infty)', '|x| \\ge 1', true],
    ['(-\\infty,-1)\\cup(1,\\infty)', '|x| \\ge 1', false],
    ['(-2,2)', '|x| < 2', true],
    // differences below double precision are still differences
    ['10^{10}', '\\sqrt{10^{20}+1}', false],
    ['\\pi', '3.141592653589793', false],
    ['\\sqrt{2}', '1.4142135623730951', false],
    ['10^{20}+\\sqrt{3}', '10^{20}+\\sqrt{2}', false],
    ['2', '(\\sqrt{3}+1)(\\sqrt{3}-1)', true],
    ['0', '\\sqrt{2}\\cdot\\sqrt{2}-2', true],
    ['\\sqrt{5+2\\sqrt{6}}', '\\sqrt{2}+\\sqrt{3}', true],
    ['\\sqrt[3]{16}', '2\\sqrt[3]{2}', true],
    // scale words, text wrappers, digits split by a space
    ['2500000', '2.5 \\text{ million}', true],
    ['3000000000', '3 billion', true],
    ['2500000', '25 million', false],
    ['5', '\\text{The answer is } 5', true],
    ['42', '4 2', false],
  ],
  'issue 12': [
    // group separators never change a value: a leading 0 group is not a thousands group
    ['125', '0,125', false],
    ['125', '0{,}125', false],
    ['125', '0\\,125', false],
    ['125', '0 125', false],
    ['-125', '-0,125', false],
    ['23481', '23 {, }481', true],
    ['1234567', '1\\,234\\,567', true],
    ['3.141592', '3.141\\,592', true],
    // ratios and golds that label their value
    ['2:3', '\\frac{2}{3}', true],
    ['2:3', '4:6', true],
    ['2:3', '3:2', false],
    ['T_{ABC}:T=3:10', '\\frac{3}{10}', true],
    ['|PQ|=2', '2', true],
    ['\\frac{AM}{MB}=\\frac{2}{\\sqrt5}', '\\frac{2\\sqrt5}{5}', true],
    ['M:N=2', '2:1', true],
    ['A:B=3:2', 'A', false],
    ['2x+3y=6', '6', false],
    ['xy=6', '6', false],
    ['1<g(x)<4', '(1,4)', true],
    ['1<g(x)<4', '[1,4)', false],
    // lists of assignments and alternatives
    ['a = 3,\\ b = \\frac{7}{2}', '3, 3.5', true],
    ['a = 3,\\ b = \\frac{7}{2}', '3.5, 3', false],
    ['a = 3,\\ b = \\frac{7}{2}', 'b = 3.5, a = 3', true],
    ['m=1,n=4;m=3,n=4', '(3,4),(1,4)', true],
    ['m=1,n=4;m=3,n=4', '(1,3),(4,4)', false],
    ['(5,2)or(2,5)', '(2,5),(5,2)', true],
    // real odd roots, sums and products
    ['x^{2/3}', '\\sqrt[3]{x^2}', true],
    ['x^{2/3}', '\\sqrt[3]{x}^2', true],
    ['x^{2/3}', 'x^{3/2}', false],
    ['\\sum_{i=1}^{m} a_i b_{m-i}', '\\sum_{j=1}^{m} b_{m-j} a_j', true],
    ['\\sum_{i=1}^{m} a_i b_{m-i}', '\\sum_{i=0}^{m} a_i b_{m-i}', false],
    ['\\sum_{k=1}^{10} k^2', '385', true],
    ['\\prod_{i=1}^{5} i', '120', true],
    // decorations
    ['7', 'seven', true],
    ['7', 'seventy', false],
    ['28\\%', '28 pct', true],
    ['16\\frac{2}{3}\\%', '16.\\overline{6}\\%', true],
    ['12', '12\\textbf{ dollars}', true],
    ['8', 'y \\approx 8', true],
    ['8', 'y \\approx 7.99', false],
    ['\\begin{pmatrix}2&2\\\\3&5\\end{pmatrix}', '\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}+\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}', true],
    ['\\begin{pmatrix}2&1\\\\4&3\\end{pmatrix}', '\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}\\begin{pmatrix}0&1\\\\1&0\\end{pmatrix}', true],
    ['\\begin{pmatrix}3&4\\\\1&2\\end{pmatrix}', '\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}\\begin{pmatrix}0&1\\\\1&0\\end{pmatrix}', false],
    ['\\sqrt{21}', '\\sqrt21', false],
    ['\\sqrt{2}', '\\sqrt21', true],
  ],
};

for (const [category, cases] of Object.entries(CASES)) {
  test(`compareAnswers: ${category}`, () => {
    const failures: string[] = [];
    for (const [gold, answer, expected] of cases) {
      const r = compareAnswers(gold, answer);
      assert.equal(typeof r.reason, 'string');
      if (r.equal !== expected) failures.push(`${JSON.stringify(gold)} vs ${JSON.stringify(answer)}: got ${r.equal} (${r.reason})`);
    }
    assert.deepEqual(failures, []);
  });
}

test('case table is large and balanced', () => {
  const all = Object.values(CASES).flat();
  assert.ok(all.length >= 150, `only ${all.length} cases`);
  const trues = all.filter((c) => c[2]).length;
  assert.ok(trues > 40 && all.length - trues > 40);
});

test('pathological inputs finish fast and are bounded', () => {
  const nested = '('.repeat(3000) + '1' + ')'.repeat(3000);
  const longSum = Array.from({ length: 3000 }, (_, i) => `${i}x^{${i}}`).join('+');
  const cases: Array<[string, string, boolean | null]> = [
    ['10^{10^{10}}', '10^{10^{10}}+1', false],
    ['2003^{2002^{2001}}', '2003^{2002^{2001}}', true],
    ['2003^{2002^{2001}}', '2003^{2002^{2000}}', false],
    ['9^{9^9}', '9^{9^{9}}', true],
    ['9^{9^9}', '9^{9^9} - 1', false],
    ['(10^{10})!', '(10^{10})! + 1', false],
    ['100000!', '100000!', true],
    ['2^{2^{2^{2^{2}}}}', '2^{65536}', true],
    ['1', '1'.repeat(9000), false],
    ['1', 'x'.repeat(12_000), false],
    ['1', nested, null],
    ['1', longSum, false],
    ['\\frac{1}{3}', '0.' + '3'.repeat(4000), false],
    ['x', '\\sqrt{'.repeat(400) + 'x' + '}'.repeat(400), null],
    ['1', '\\{' + Array.from({ length: 500 }, (_, i) => String(i)).join(',') + '\\}', false],
    ['e^{10^{6}}', 'e^{10^{6}}+1', false],
    ['\\sin(10^{300})', '\\sin(10^{300})', true],
  ];
  for (const [g, a, expected] of cases) {
    const t0 = performance.now();
    const r = compareAnswers(g, a);
    const ms = performance.now() - t0;
    assert.ok(ms < 1500, `${g.slice(0, 30)} vs ${a.slice(0, 30)} took ${ms.toFixed(0)} ms`);
    if (expected !== null) assert.equal(r.equal, expected, `${g.slice(0, 30)} vs ${a.slice(0, 30)}: ${r.reason}`);
  }
});

test('compareAnswers is deterministic and never throws', () => {
  const inputs = ['x^2', '\\frac{', '}', '\\begin{pmatrix}', '((', '\\sqrt[', '^^', '1/0', '0/0', '\\log_1 1', '0^{-1}', '(-8)^{1/3}'];
  for (const g of inputs) {
    for (const a of inputs) {
      const r1 = compareAnswers(g, a);
      const r2 = compareAnswers(g, a);
      assert.deepEqual(r1, r2);
    }
  }
});

test('rational arithmetic is exact and capped', () => {
  assert.ok(Q.eq(Q.add(Q.rat(1n, 3n), Q.rat(1n, 6n)), Q.rat(1n, 2n)));
  assert.ok(Q.eq(Q.fromRepeating('0.1', '6'), Q.rat(1n, 6n)));
  assert.equal(Q.root(Q.rat(27n, 8n), 3)?.n, 3n);
  assert.equal(Q.root(Q.rat(2n), 2), null);
  assert.throws(() => Q.powInt(Q.rat(3n), 10n ** 9n), Q.TooBigError);
  assert.throws(() => Q.factorial(10n ** 6n), Q.TooBigError);
});

test('normalisation keeps lists and strips separators', () => {
  assert.equal(normalizeAnswer('\\boxed{10{,}000}'), '10000');
  assert.equal(normalizeAnswer('32, 349'), '32, 349');
  assert.equal(normalizeAnswer('$\\dfrac{1}{2}$'), '\\frac{1}{2}');
  assert.equal(normalizeAnswer('5 \\text{ cm}'), '5');
  assert.equal(parseLatex('2^{n+1}').k, 'pow');
  assert.equal(parseLatex('2^n+1').k, 'add');
});

test('MATH-500 gold answers compare equal to themselves', () => {
  const path = '/work/shared/data/math500_test.jsonl';
  if (!existsSync(path)) assert.fail(`MATH-500 data missing at ${path}`);
  const rows = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { answer: string });
  assert.equal(rows.length, 500);
  const notEqual: string[] = [];
  let structured = 0;
  let text = 0;
  let unparsed = 0;
  for (const { answer } of rows) {
    const self = compareAnswers(answer, answer);
    const boxed = compareAnswers(`\\boxed{${answer}}`, answer);
    if (!self.equal || !boxed.equal) notEqual.push(`${answer}: ${self.reason} / ${boxed.reason}`);
    try {
      const n = parseLatex(normalizeAnswer(answer));
      if (JSON.stringify(n, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)).includes('"k":"text"')) text++;
      else structured++;
    } catch {
      unparsed++;
    }
  }
  console.log(`MATH-500 golds: ${structured} structured, ${text} text, ${unparsed} unparsed; ${notEqual.length} not self-equal`);
  assert.deepEqual(notEqual, []);
  assert.ok(structured >= 480);
});

test('function notation, forgotten degree caret, set-builder, reals in words, lower-case option', () => {
  const eq = (g: string, a: string): boolean => compareAnswers(g, a).equal;
  // f(3) = 19 / f^{-1}(x) = … unwrap against a non-relation gold, but never across variables or relations
  assert.ok(eq('19', 'f(3)=19'));
  assert.ok(eq('\\frac{x-1}{2}', 'f^{-1}(x) = \\frac{x-1}{2}'));
  assert.ok(eq("5", "f'(2) = 5"));
  assert.ok(!eq('19', 'f(3)=18'));
  assert.ok(!eq('x^2+1', 'p(x) = x^2 - 1'));
  assert.ok(!eq('3', 'f(x) = f(1) + 2'), 'right side mentions the function');
  assert.ok(eq('f(x)=3x+1', 'f(x) = 1+3x'));
  // 45\circ (no caret) is a degree sign; composition f \circ g is untouched
  assert.equal(normalizeAnswer('45\\circ'), '45^\\circ');
  assert.ok(eq('45', '45\\circ'));
  assert.ok(!eq('44', '45\\circ'));
  assert.equal(normalizeAnswer('f \\circ g'), 'f \\circ g');
  // set-builder over one variable = its condition
  assert.ok(eq('(0,\\infty)', '\\{x \\mid x > 0\\}'));
  assert.ok(eq('(-\\infty,2]', '\\{x : x \\le 2\\}'));
  assert.ok(!eq('[0,\\infty)', '\\{x \\mid x > 0\\}'));
  assert.ok(!eq('(0,\\infty)', '\\{x \\mid x < 0\\}'));
  assert.ok(eq('\\{1,2\\}', '\\{2, 1\\}'), 'plain finite sets are unaffected');
  // "all real numbers"
  assert.ok(eq('(-\\infty,\\infty)', '\\text{all real numbers}'));
  assert.ok(eq('\\mathbb{R}', 'all reals'));
  assert.ok(!eq('(0,\\infty)', '\\text{all real numbers}'));
  // a bare lower-case letter names an option only against a choice-letter gold
  assert.ok(eq('B', 'b'));
  assert.ok(!eq('B', 'c'));
  assert.ok(!eq('2', 'b'));
});

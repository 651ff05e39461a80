// The arms of `oreal ablate` (issue 15): named presets, each a set of trainer config overrides. Every arm assigns
// the same keys (ARM_KEYS), so no arm inherits a value of these keys from the user's config that another arm
// overrides: the arms share everything else (steps, prompts, samples, learning rates, evaluation) unchanged.
//
//   arm                    what it is                                                       defining keys
//   rft                    rejection-sampling fine-tuning (BC on the correct samples)       algorithm rft
//   grpo                   GRPO on every sample                                             algorithm grpo
//   grpo-pair              GRPO on OREAL's pairs (one correct, one wrong per mixed prompt)  + filter_trajectory pair
//   oreal-no-rm            OREAL without the token-level RM, as the reference's no-RM       algorithm oreal, no RM
//                          config (every sample kept, no RM-only steps)
//   oreal-pair             OREAL without the RM but with the pair filter (what "without     + filter_trajectory pair
//                          RM" meant before issue 15; the oracle's and the RM arms' control)
//   oreal-rm-t0            OREAL with the RM, thresholds 0 (w⁺ = σ, w⁻ = 1 − σ)              RM on, thresholds 0
//   oreal-ref              OREAL with the reference's semantics: thresholds 0.5, 10 RM-only  thresholds 0.5, freeze 10
//                          steps
//   oracle                 OREAL whose w⁻ comes from the task's step checker (1 from the    token_weight_source oracle
//                          first wrong step on, 0 before): the upper bound of token credit
//   oreal-rm-t0-inclusive  oreal-rm-t0 with the RM score read at the token's own position   rm_score_position inclusive
//                          (the paper's w(s≤t))
//   oracle-step            the oracle with w⁻ = 1 on the first wrong step only (the later  token_weight_source
//                          steps, right given the wrong value, are not pushed down)          oracle_step
//
// The command prints the resolved keys that differ between the chosen arms (presets included, e.g. rft's kl_coef 0).

export interface Arm {
  name: string;
  about: string;
  /** `key=value` trainer config overrides (src/train/config.ts), applied after the user's --set. */
  sets: readonly string[];
}

/** The keys every arm assigns. */
export const ARM_KEYS = [
  'algorithm',
  'token_level_rm',
  'filter_trajectory',
  'actor_freeze_steps',
  'correct_threshold',
  'incorrect_threshold',
  'token_weight_source',
  'rm_score_position',
] as const;

type ArmKey = (typeof ARM_KEYS)[number];
type ArmValues = Record<ArmKey, string | number | boolean>;

/** What an arm does not set itself: OREAL's filter, no RM, no frozen steps, reference thresholds and positions. */
const NEUTRAL: ArmValues = {
  algorithm: 'oreal',
  token_level_rm: false,
  filter_trajectory: 'none',
  actor_freeze_steps: 0,
  correct_threshold: 0.5,
  incorrect_threshold: 0.5,
  token_weight_source: 'rm',
  rm_score_position: 'shifted',
};

function arm(name: string, about: string, values: Partial<ArmValues>): Arm {
  const all = { ...NEUTRAL, ...values };
  return { name, about, sets: ARM_KEYS.map((k) => `${k}=${String(all[k])}`) };
}

const RM_T0 = { token_level_rm: true, filter_trajectory: 'pair', correct_threshold: 0, incorrect_threshold: 0 } as const;

/** Every arm, in table order. */
export const ARMS: readonly Arm[] = [
  arm('rft', 'rejection-sampling fine-tuning', { algorithm: 'rft' }),
  arm('grpo', 'GRPO on all samples', { algorithm: 'grpo' }),
  arm('grpo-pair', 'GRPO with the pair filter', { algorithm: 'grpo', filter_trajectory: 'pair' }),
  arm('oreal-no-rm', 'OREAL without the RM (reference: no filter, no RM-only steps)', {}),
  arm('oreal-pair', 'OREAL without the RM, with the pair filter', { filter_trajectory: 'pair' }),
  arm('oreal-rm-t0', 'OREAL with the RM at threshold 0', RM_T0),
  arm('oreal-ref', "OREAL with the reference's semantics (threshold 0.5, 10 RM-only steps)", { token_level_rm: true, filter_trajectory: 'pair', actor_freeze_steps: 10 }),
  arm('oracle', "OREAL with the step checker's weights (w⁻ = 1 from the first wrong step)", { filter_trajectory: 'pair', token_weight_source: 'oracle' }),
  arm('oreal-rm-t0-inclusive', 'OREAL with the RM at threshold 0, score at the token itself (w(s≤t))', { ...RM_T0, rm_score_position: 'inclusive' }),
  arm('oracle-step', "OREAL with the step checker's weights on the first wrong step only", { filter_trajectory: 'pair', token_weight_source: 'oracle_step' }),
];

/**
 * Every arm by default: the ones issue 15 asks for, oreal-pair (the control of the arms that use the pair filter) and
 * oracle-step (a sharper oracle).
 */
export const DEFAULT_ARMS: readonly string[] = ARMS.map((a) => a.name);

/** The arms named, in the order given; an unknown name is an error listing the known ones. */
export function selectArms(names: readonly string[]): Arm[] {
  const seen = new Set<string>();
  return names.map((n) => {
    const a = ARMS.find((x) => x.name === n);
    if (a === undefined) throw new Error(`--arms: unknown arm "${n}" (known: ${ARMS.map((x) => x.name).join(', ')})`);
    if (seen.has(n)) throw new Error(`--arms: "${n}" given twice`);
    seen.add(n);
    return a;
  });
}

/**
 * The keys whose resolved values differ between arms (each arm's config flattened to dotted keys), with every arm's
 * value: what the comparison varies, presets included.
 */
export function differingKeys(resolved: ReadonlyArray<{ arm: string; config: object }>): Record<string, Record<string, unknown>> {
  const flat = resolved.map((r) => ({ arm: r.arm, values: flatten(r.config) }));
  const keys = new Set(flat.flatMap((f) => [...f.values.keys()]));
  const out: Record<string, Record<string, unknown>> = {};
  for (const k of [...keys].sort()) {
    const vals = flat.map((f) => JSON.stringify(f.values.get(k) ?? null));
    if (new Set(vals).size > 1) out[k] = Object.fromEntries(flat.map((f) => [f.arm, f.values.get(k) ?? null]));
  }
  return out;
}

function flatten(obj: object, prefix = '', out = new Map<string, unknown>()): Map<string, unknown> {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix === '' ? k : `${prefix}.${k}`;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) flatten(v as object, key, out);
    else out.set(key, v);
  }
  return out;
}

// Area under the ROC curve of a score that should rank positives above negatives: the probability that a random
// positive scores higher than a random negative, ties counting one half (the Mann–Whitney U statistic over n⁺·n⁻).
// Computed from average ranks, O(n log n).

/** ROC AUC of `scores` for binary `labels` (true = positive). Throws when a class is empty or a score is not finite. */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<boolean>): number {
  const n = scores.length;
  if (labels.length !== n) throw new Error(`AUC: ${n} scores but ${labels.length} labels`);
  let pos = 0;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(scores[i]!)) throw new Error(`AUC: score ${i} is ${scores[i]}`);
    if (labels[i]) pos++;
  }
  const neg = n - pos;
  if (pos === 0 || neg === 0) throw new Error(`AUC: needs both classes (${pos} positive, ${neg} negative)`);
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  // Sum of the positives' ranks (1-based), each tie group sharing its average rank.
  let rankSum = 0;
  for (let i = 0; i < n; ) {
    let j = i + 1;
    while (j < n && scores[idx[j]!] === scores[idx[i]!]) j++;
    const avg = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) if (labels[idx[k]!]) rankSum += avg;
    i = j;
  }
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

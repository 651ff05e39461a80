// WGSL of the tiled attention kernels (packed causal attention over sequences given by their start rows, GQA):
// forward, dq, and dk/dv. Never a T×T matrix: scores are made and used a tile at a time.
//
// Shape of all three: a workgroup of TILE_ROWS invocations owns TILE_ROWS consecutive rows of one head (query rows
// for the forward and dq, key rows for dk/dv); each invocation keeps its own row's vectors (q or k/v, and its
// accumulators) in function memory. The workgroup walks the other side's rows in tiles that it first copies into
// workgroup memory together, so every key (query) row read from device memory serves TILE_ROWS rows instead of one.
// Rows of a block may belong to different sequences (a batch is packed): each invocation masks by its own sequence,
// and the block's range of the other side is the union. Sums run in row order, so results are deterministic.
//
// Layouts (the engine contract's): Q, O, dO [N, heads·hd]; K, V [N, kvHeads·hd]; lse, D [heads, N]; SS the sequence
// starts [S + 1] (i32). Scalars: s0 heads, s1 kvHeads, s2 1/√hd, s3 S, s4 N. The kernels are bodies for
// WebGpuBackend's 'tiles' dispatch (names Q, K, … are rewritten to their bindings; `wid` and `lid` are the workgroup
// id and the invocation's index in it).

/** Rows a workgroup owns (its invocations). */
export const TILE_ROWS = 64;

/**
 * Rows of the other side per tile: the largest power of two up to 64 whose tiles (`perRow` floats a row) fit in the
 * adapter's workgroup memory.
 */
export function tileDepth(perRow: number, maxWorkgroupBytes: number): number {
  let t = 64;
  while (t > 1 && t * perRow * 4 + 64 > maxWorkgroupBytes) t /= 2;
  return t;
}

/** WGSL: the sequence [st, en) of row `r` (a linear scan of the starts, few in a batch). */
function seqOf(r: string, st: string, en: string): string {
  return `var ${st} = 0u; var ${en} = 0u;
  for (var s = 0u; s < u32(s3); s++) { if (u32(SS[s + 1u]) > ${r}) { ${st} = u32(SS[s]); ${en} = u32(SS[s + 1u]); break; } }`;
}

/** WGSL: the workgroup's own rows and, through workgroup memory, one value every invocation agrees on. */
function prologue(): string {
  return `let nh = u32(s0); let nkv = u32(s1); let grp = nh / nkv; let N = u32(s4);
  let r0 = wid.x * ${TILE_ROWS}u;
  let rEnd = min(r0 + ${TILE_ROWS}u, N) - 1u;
  let me = min(r0 + lid, N - 1u);
  let live = r0 + lid < N;`;
}

/** Workgroup memory of the forward and dq kernels: a tile of K and V rows of one kv head. */
export function kvTileDecls(hd: number, depth: number): string {
  return `var<workgroup> tK: array<f32, ${depth * hd}>;
var<workgroup> tV: array<f32, ${depth * hd}>;
var<workgroup> shU: u32;`;
}

/** Copies key rows [t0, t0 + depth) (those ≤ last) of kv head `kh` into tK/tV, by all invocations. */
function loadKv(hd: number, depth: number): string {
  return `workgroupBarrier();
    for (var x = lid; x < ${depth * hd}u; x += ${TILE_ROWS}u) {
      let j = t0 + x / ${hd}u;
      var kx = 0.0; var vx = 0.0;
      if (j <= last) { let o = j * nkv * ${hd}u + kh * ${hd}u + x % ${hd}u; kx = K[o]; vx = V[o]; }
      tK[x] = kx; tV[x] = vx;
    }
    workgroupBarrier();`;
}

/** Keys the block's queries see: from the first row's sequence start to the block's last row (uniform). */
function keyRange(): string {
  return `if (lid == 0u) { ${seqOf('r0', 'st0', 'en0')} shU = st0; }
  let first = workgroupUniformLoad(&shU);
  let last = rEnd;`;
}

/** Forward: O and lse = m + log l for the block's query rows of head wid.y. */
export function attentionForward(hd: number, depth: number): string {
  return `${prologue()}
  let h = wid.y; let kh = h / grp;
  ${seqOf('me', 'st', 'en')}
  ${keyRange()}
  let qo = me * nh * ${hd}u + h * ${hd}u;
  var q: array<f32, ${hd}>;
  var acc: array<f32, ${hd}>;
  for (var e = 0u; e < ${hd}u; e++) { q[e] = Q[qo + e]; }
  var m = -3.0e38; var l = 0.0;
  for (var t0 = first; t0 <= last; t0 += ${depth}u) {
    ${loadKv(hd, depth)}
    let jn = min(${depth}u, last + 1u - t0);
    for (var jl = 0u; jl < jn; jl++) {
      let j = t0 + jl;
      if (j < st || j > me) { continue; }
      var d = 0.0;
      for (var e = 0u; e < ${hd}u; e++) { d += q[e] * tK[jl * ${hd}u + e]; }
      d = d * s2;
      let mn = max(m, d);
      let corr = exp(m - mn);
      let p = exp(d - mn);
      l = l * corr + p;
      for (var e = 0u; e < ${hd}u; e++) { acc[e] = acc[e] * corr + p * tV[jl * ${hd}u + e]; }
      m = mn;
    }
  }
  if (live) {
    for (var e = 0u; e < ${hd}u; e++) { O[qo + e] = acc[e] / l; }
    L[h * N + me] = m + log(l);
  }`;
}

/** dq = scale · Σ_j ds_ij k_j with p_ij = exp(scale q_i·k_j − lse_i), ds_ij = p_ij (dO_i·v_j − D_i). */
export function attentionDq(hd: number, depth: number): string {
  return `${prologue()}
  let h = wid.y; let kh = h / grp;
  ${seqOf('me', 'st', 'en')}
  ${keyRange()}
  let qo = me * nh * ${hd}u + h * ${hd}u;
  var q: array<f32, ${hd}>;
  var g: array<f32, ${hd}>;
  var acc: array<f32, ${hd}>;
  for (var e = 0u; e < ${hd}u; e++) { q[e] = Q[qo + e]; g[e] = DO[qo + e]; }
  let lse = L[h * N + me];
  let dd = DD[h * N + me];
  for (var t0 = first; t0 <= last; t0 += ${depth}u) {
    ${loadKv(hd, depth)}
    let jn = min(${depth}u, last + 1u - t0);
    for (var jl = 0u; jl < jn; jl++) {
      let j = t0 + jl;
      if (j < st || j > me) { continue; }
      var d = 0.0; var dp = 0.0;
      for (var e = 0u; e < ${hd}u; e++) { d += q[e] * tK[jl * ${hd}u + e]; dp += g[e] * tV[jl * ${hd}u + e]; }
      let p = exp(d * s2 - lse);
      let ds = p * (dp - dd);
      for (var e = 0u; e < ${hd}u; e++) { acc[e] += ds * tK[jl * ${hd}u + e]; }
    }
  }
  if (live) { for (var e = 0u; e < ${hd}u; e++) { DQ[qo + e] = acc[e] * s2; } }`;
}

/** Workgroup memory of the dk/dv kernel: a tile of query rows of one head (q, dO, lse, D). */
export function qTileDecls(hd: number, depth: number): string {
  return `var<workgroup> tQ: array<f32, ${depth * hd}>;
var<workgroup> tG: array<f32, ${depth * hd}>;
var<workgroup> tL: array<f32, ${depth}>;
var<workgroup> tD: array<f32, ${depth}>;
var<workgroup> shU: u32;`;
}

/**
 * dk_j = scale · Σ_h Σ_i ds_ij q_i and dv_j = Σ_h Σ_i p_ij dO_i over the query heads h that share kv head wid.y and
 * the rows i ≥ j of j's sequence; the block's queries run from its first row to the end of its last row's sequence.
 * `perHead`: wid.y is one query head instead, and the kernel writes that head's terms to DK, DV laid out [heads, N, hd]
 * (a second pass sums a kv head's group).
 */
export function attentionDkv(hd: number, depth: number, perHead: boolean): string {
  return `${prologue()}
  let kh = ${perHead ? 'wid.y / grp' : 'wid.y'};
  ${seqOf('me', 'st', 'en')}
  if (lid == 0u) { ${seqOf('rEnd', 'stz', 'enz')} shU = enz; }
  let qEnd = workgroupUniformLoad(&shU);
  let ko = me * nkv * ${hd}u + kh * ${hd}u;
  var k: array<f32, ${hd}>;
  var v: array<f32, ${hd}>;
  var ak: array<f32, ${hd}>;
  var av: array<f32, ${hd}>;
  for (var e = 0u; e < ${hd}u; e++) { k[e] = K[ko + e]; v[e] = V[ko + e]; }
  for (var h = ${perHead ? 'wid.y; h <= wid.y' : 'kh * grp; h < (kh + 1u) * grp'}; h++) {
    for (var t0 = r0; t0 < qEnd; t0 += ${depth}u) {
      workgroupBarrier();
      for (var x = lid; x < ${depth * hd}u; x += ${TILE_ROWS}u) {
        let i = t0 + x / ${hd}u;
        var qx = 0.0; var gx = 0.0;
        if (i < qEnd) { let o = i * nh * ${hd}u + h * ${hd}u + x % ${hd}u; qx = Q[o]; gx = DO[o]; }
        tQ[x] = qx; tG[x] = gx;
      }
      for (var x = lid; x < ${depth}u; x += ${TILE_ROWS}u) {
        let i = t0 + x;
        var lx = 0.0; var dx = 0.0;
        if (i < qEnd) { lx = L[h * N + i]; dx = DD[h * N + i]; }
        tL[x] = lx; tD[x] = dx;
      }
      workgroupBarrier();
      let inn = min(${depth}u, qEnd - t0);
      for (var il = 0u; il < inn; il++) {
        let i = t0 + il;
        if (i < me || i >= en) { continue; }
        var d = 0.0; var dp = 0.0;
        for (var e = 0u; e < ${hd}u; e++) { d += tQ[il * ${hd}u + e] * k[e]; dp += tG[il * ${hd}u + e] * v[e]; }
        let p = exp(d * s2 - tL[il]);
        let ds = p * (dp - tD[il]);
        for (var e = 0u; e < ${hd}u; e++) { av[e] += p * tG[il * ${hd}u + e]; ak[e] += ds * tQ[il * ${hd}u + e]; }
      }
    }
  }
  let oo = ${perHead ? `(wid.y * N + me) * ${hd}u` : 'ko'};
  if (live) { for (var e = 0u; e < ${hd}u; e++) { DK[oo + e] = ak[e] * s2; DV[oo + e] = av[e]; } }`;
}

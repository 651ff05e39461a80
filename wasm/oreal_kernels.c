// oreal compute kernels for WebAssembly SIMD128 (built by scripts/build-wasm.sh; the .wasm is committed).
//
// Every function works on pointers into one shared linear memory that the JS side owns (src/engine/wasm-backend.ts):
// the module imports it, has no data segments and never touches the C stack (no arrays or address-taken locals), so
// any number of instances (one per worker thread) can run on the same memory at once. Scratch space is always passed
// in by the caller.
//
// GEMM follows the Goto/BLIS structure: B is packed into KC x NC blocks of NR-wide column panels, A into MC x KC
// blocks of row panels, and a register-blocked micro-kernel multiplies one A panel by one B panel. The main
// micro-kernel is 6x8 (12 f32x4 accumulators: V8 on x64 allocates 15 xmm registers, so 12 accumulators + 2 B vectors
// + 1 broadcast A value fit without spills, and 12 independent multiply-add chains hide the FMA latency); a 4x8 one
// does 4-row panels (the rest of an M that is not a multiple of 6). The plain build (no FMA: a mul and an add, which
// needs one more register for the product) uses 4-row panels only (GEMM_MR6 = 0).
#include <wasm_simd128.h>

#define NR 8
#ifndef GEMM_MR6
#ifdef OREAL_RELAXED
#define GEMM_MR6 1
#else
#define GEMM_MR6 0
#endif
#endif

// MADD(a, b, c) = a*b + c on 4 lanes. With OREAL_RELAXED (oreal_kernels_relaxed.wasm) it is one fused
// f32x4.relaxed_madd (an FMA on x86 with FMA3), which Node 20 runs behind --experimental-wasm-relaxed-simd (the
// backend turns the flag on and falls back to the plain module when that fails). clang 14 only knows the relaxed-simd
// prototype opcode (f32x4.fma, 0xfd 0xaf 0x01), so scripts/build-wasm.sh rewrites it to the final relaxed_madd opcode
// (0xfd 0x85 0x02), whose semantics (a*b + c) this macro is written for.
#ifdef OREAL_RELAXED
#define MADD(a, b, c) __builtin_wasm_fma_f32x4((a), (b), (c))
#else
#define MADD(a, b, c) wasm_f32x4_add((c), wasm_f32x4_mul((a), (b)))
#endif

typedef float f32;

static inline f32 hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

// The horizontal sums of s0..s3 as one vector (s0's in lane 0, ...).
static inline v128_t hsum4(v128_t s0, v128_t s1, v128_t s2, v128_t s3) {
  v128_t t0 = wasm_f32x4_add(wasm_i32x4_shuffle(s0, s1, 0, 4, 1, 5), wasm_i32x4_shuffle(s0, s1, 2, 6, 3, 7));
  v128_t t1 = wasm_f32x4_add(wasm_i32x4_shuffle(s2, s3, 0, 4, 1, 5), wasm_i32x4_shuffle(s2, s3, 2, 6, 3, 7));
  return wasm_f32x4_add(wasm_i64x2_shuffle(t0, t1, 0, 2), wasm_i64x2_shuffle(t0, t1, 1, 3));
}

// ---------------------------------------------------------------------------------------------------------------
// Packing. opA(i, p) = transA ? A[p*lda + i] : A[i*lda + p];  opB(p, j) = transB ? B[j*ldb + p] : B[p*ldb + j].

// Row panels of an A block of mc rows: mcp = mc rounded up to a multiple of 4 is split into 6-row panels and then
// zero, one or two 4-row panels (mcp = 6a + 4b exactly, so the packed block never exceeds mcp * kc floats, the size
// the caller reserves). Returns the height (4 or 6) of the panel starting at row ir.
static inline int panel_rows(int mcp, int ir) {
  if (!GEMM_MR6) return 4;
  int r = mcp % 6;
  int n4 = r == 0 ? 0 : r == 4 ? 1 : 2;
  return ir < mcp - 4 * n4 ? 6 : 4;
}

// Packs rows [i0, i0+h) (h <= hp) and k in [p0, p0+kc) of opA into one hp-row panel stored k-major (kc x hp), rows
// past h zero.
static inline void pack_a_panel(int transA, const f32 *A, int lda, int i0, int h, int hp, int p0, int kc,
                                f32 *restrict out) {
  if (transA) {
    const f32 *src = A + (long)p0 * lda + i0;
    if (h == 4 && hp == 4) {
      for (int k = 0; k < kc; k++) wasm_v128_store(out + k * 4, wasm_v128_load(src + (long)k * lda));
    } else if (h == 6 && hp == 6) {
      for (int k = 0; k < kc; k++) {
        const f32 *s = src + (long)k * lda;
        wasm_v128_store(out + k * 6, wasm_v128_load(s));
        wasm_v128_store64_lane(out + k * 6 + 4, wasm_v128_load64_zero(s + 4), 0);
      }
    } else {
      for (int k = 0; k < kc; k++)
        for (int r = 0; r < hp; r++) out[k * hp + r] = r < h ? src[(long)k * lda + r] : 0.0f;
    }
    return;
  }
  const f32 *src = A + (long)i0 * lda + p0;
  if (h == hp) {
    const f32 *s0 = src, *s1 = src + lda, *s2 = src + 2L * lda, *s3 = src + 3L * lda;
    const f32 *s4 = src + 4L * lda, *s5 = src + 5L * lda;
    int k = 0;
    for (; k + 4 <= kc; k += 4) {
      // 4x4 transpose: rows r0..r3 (4 consecutive k each) -> 4 k-steps of 4 rows.
      v128_t r0 = wasm_v128_load(s0 + k), r1 = wasm_v128_load(s1 + k);
      v128_t r2 = wasm_v128_load(s2 + k), r3 = wasm_v128_load(s3 + k);
      v128_t t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5);
      v128_t t1 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5);
      v128_t t2 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7);
      v128_t t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);
      f32 *o = out + k * hp;
      wasm_v128_store(o + 0 * hp, wasm_i64x2_shuffle(t0, t1, 0, 2));
      wasm_v128_store(o + 1 * hp, wasm_i64x2_shuffle(t0, t1, 1, 3));
      wasm_v128_store(o + 2 * hp, wasm_i64x2_shuffle(t2, t3, 0, 2));
      wasm_v128_store(o + 3 * hp, wasm_i64x2_shuffle(t2, t3, 1, 3));
      if (hp == 6) {
        v128_t r4 = wasm_v128_load(s4 + k), r5 = wasm_v128_load(s5 + k);
        v128_t z0 = wasm_i32x4_shuffle(r4, r5, 0, 4, 1, 5), z1 = wasm_i32x4_shuffle(r4, r5, 2, 6, 3, 7);
        wasm_v128_store64_lane(o + 0 * 6 + 4, z0, 0);
        wasm_v128_store64_lane(o + 1 * 6 + 4, z0, 1);
        wasm_v128_store64_lane(o + 2 * 6 + 4, z1, 0);
        wasm_v128_store64_lane(o + 3 * 6 + 4, z1, 1);
      }
    }
    for (; k < kc; k++)
      for (int r = 0; r < hp; r++) out[k * hp + r] = src[(long)r * lda + k];
  } else {
    for (int k = 0; k < kc; k++)
      for (int r = 0; r < hp; r++) out[k * hp + r] = r < h ? src[(long)r * lda + k] : 0.0f;
  }
}

// Packs opA[i0 : i0+mc, p0 : p0+kc] into the row panels of panel_rows(roundup(mc, 4), .), one after another.
static void pack_a(int transA, const f32 *A, int lda, int i0, int mc, int p0, int kc, f32 *restrict out) {
  int mcp = (mc + 3) & ~3;
  for (int ir = 0; ir < mc;) {
    int hp = panel_rows(mcp, ir);
    int h = mc - ir < hp ? mc - ir : hp;
    if (hp == 6) pack_a_panel(transA, A, lda, i0 + ir, h, 6, p0, kc, out);
    else pack_a_panel(transA, A, lda, i0 + ir, h, 4, p0, kc, out);
    out += kc * hp;
    ir += hp;
  }
}

// Packs opB[p0 : p0+kc, j0 : j0+nc] into NR-column panels (kc x NR each), columns past nc padded with zeros.
static void pack_b(int transB, const f32 *B, int ldb, int p0, int kc, int j0, int nc, f32 *restrict out) {
  for (int jr = 0; jr < nc; jr += NR) {
    int nr = nc - jr < NR ? nc - jr : NR;
    if (!transB) {
      const f32 *src = B + (long)p0 * ldb + j0 + jr;
      if (nr == NR) {
        for (int k = 0; k < kc; k++) {
          const f32 *s = src + (long)k * ldb;
          wasm_v128_store(out + k * NR, wasm_v128_load(s));
          wasm_v128_store(out + k * NR + 4, wasm_v128_load(s + 4));
        }
      } else {
        for (int k = 0; k < kc; k++) {
          for (int c = 0; c < NR; c++) out[k * NR + c] = c < nr ? src[(long)k * ldb + c] : 0.0f;
        }
      }
    } else {
      const f32 *src = B + (long)(j0 + jr) * ldb + p0;
      if (nr == NR) {
        int k = 0;
        for (; k + 4 <= kc; k += 4) {
          for (int h = 0; h < 2; h++) {
            const f32 *s = src + (long)(4 * h) * ldb + k;
            v128_t r0 = wasm_v128_load(s), r1 = wasm_v128_load(s + ldb);
            v128_t r2 = wasm_v128_load(s + 2L * ldb), r3 = wasm_v128_load(s + 3L * ldb);
            v128_t t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5);
            v128_t t1 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5);
            v128_t t2 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7);
            v128_t t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);
            f32 *o = out + k * NR + 4 * h;
            wasm_v128_store(o + 0 * NR, wasm_i64x2_shuffle(t0, t1, 0, 2));
            wasm_v128_store(o + 1 * NR, wasm_i64x2_shuffle(t0, t1, 1, 3));
            wasm_v128_store(o + 2 * NR, wasm_i64x2_shuffle(t2, t3, 0, 2));
            wasm_v128_store(o + 3 * NR, wasm_i64x2_shuffle(t2, t3, 1, 3));
          }
        }
        for (; k < kc; k++) {
          for (int c = 0; c < NR; c++) out[k * NR + c] = src[(long)c * ldb + k];
        }
      } else {
        for (int k = 0; k < kc; k++) {
          for (int c = 0; c < NR; c++) out[k * NR + c] = c < nr ? src[(long)c * ldb + k] : 0.0f;
        }
      }
    }
    out += kc * NR;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Micro-kernels: C[0:MR, 0:NR] (row stride ldc) = (add ? C : 0) + Ap (kc x MR) * Bp (kc x NR, row stride ldb: NR
// when packed, the matrix's own row stride when B is read in place).
#define KSTORE(ci0, ci1, row)                                   \
  do {                                                          \
    f32 *r_ = (row);                                            \
    if (add) {                                                  \
      ci0 = wasm_f32x4_add(ci0, wasm_v128_load(r_));            \
      ci1 = wasm_f32x4_add(ci1, wasm_v128_load(r_ + 4));        \
    }                                                           \
    wasm_v128_store(r_, ci0);                                   \
    wasm_v128_store(r_ + 4, ci1);                               \
  } while (0)

static inline void kernel_4x8(int kc, const f32 *restrict a, const f32 *restrict b, int ldb, f32 *c, int ldc,
                              int add) {
  v128_t c00 = wasm_f32x4_splat(0), c01 = c00, c10 = c00, c11 = c00;
  v128_t c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (int k = 0; k < kc; k++) {
    v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);
    v128_t a0 = wasm_v128_load32_splat(a);
    c00 = MADD(a0, b0, c00);
    c01 = MADD(a0, b1, c01);
    v128_t a1 = wasm_v128_load32_splat(a + 1);
    c10 = MADD(a1, b0, c10);
    c11 = MADD(a1, b1, c11);
    v128_t a2 = wasm_v128_load32_splat(a + 2);
    c20 = MADD(a2, b0, c20);
    c21 = MADD(a2, b1, c21);
    v128_t a3 = wasm_v128_load32_splat(a + 3);
    c30 = MADD(a3, b0, c30);
    c31 = MADD(a3, b1, c31);
    a += 4;
    b += ldb;
  }
  KSTORE(c00, c01, c);
  KSTORE(c10, c11, c + ldc);
  KSTORE(c20, c21, c + 2L * ldc);
  KSTORE(c30, c31, c + 3L * ldc);
}

static inline void kernel_6x8(int kc, const f32 *restrict a, const f32 *restrict b, int ldb, f32 *c, int ldc,
                              int add) {
  v128_t c00 = wasm_f32x4_splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  v128_t c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int k = 0; k < kc; k++) {
    v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);
    v128_t a0 = wasm_v128_load32_splat(a);
    c00 = MADD(a0, b0, c00);
    c01 = MADD(a0, b1, c01);
    a0 = wasm_v128_load32_splat(a + 1);
    c10 = MADD(a0, b0, c10);
    c11 = MADD(a0, b1, c11);
    a0 = wasm_v128_load32_splat(a + 2);
    c20 = MADD(a0, b0, c20);
    c21 = MADD(a0, b1, c21);
    a0 = wasm_v128_load32_splat(a + 3);
    c30 = MADD(a0, b0, c30);
    c31 = MADD(a0, b1, c31);
    a0 = wasm_v128_load32_splat(a + 4);
    c40 = MADD(a0, b0, c40);
    c41 = MADD(a0, b1, c41);
    a0 = wasm_v128_load32_splat(a + 5);
    c50 = MADD(a0, b0, c50);
    c51 = MADD(a0, b1, c51);
    a += 6;
    b += ldb;
  }
  KSTORE(c00, c01, c);
  KSTORE(c10, c11, c + ldc);
  KSTORE(c20, c21, c + 2L * ldc);
  KSTORE(c30, c31, c + 3L * ldc);
  KSTORE(c40, c41, c + 4L * ldc);
  KSTORE(c50, c51, c + 5L * ldc);
}

// One hp x NR block (hp = 4 or 6) of which the top mr rows and left nr columns are real: straight into C when full,
// else through `tile` (hp*NR floats).
static inline void micro(int hp, int mr, int nr, int kc, const f32 *ap, const f32 *bp, int ldb, f32 *c, int ldc,
                         int add, f32 *tile) {
  if (mr == hp && nr == NR) {
    if (hp == 6) kernel_6x8(kc, ap, bp, ldb, c, ldc, add);
    else kernel_4x8(kc, ap, bp, ldb, c, ldc, add);
    return;
  }
  if (hp == 6) kernel_6x8(kc, ap, bp, ldb, tile, NR, 0);
  else kernel_4x8(kc, ap, bp, ldb, tile, NR, 0);
  for (int r = 0; r < mr; r++) {
    for (int q = 0; q < nr; q++) {
      f32 v = tile[r * NR + q];
      c[(long)r * ldc + q] = add ? c[(long)r * ldc + q] + v : v;
    }
  }
}

// Computes rows [m0, m1) and columns [n0, n1) of C (row stride ldc) = (accumulate ? C : 0) + opA * opB.
// work: scratch of at least MC*KC + KC*NC + 64 floats (16-byte aligned), private to the calling thread.
// Block sizes mc (multiple of 4), kc, nc (multiple of 8) are chosen by the caller.
__attribute__((export_name("sgemm"))) void sgemm(int transA, int transB, int K, const f32 *A, int lda, const f32 *B,
                                                  int ldb, f32 *C, int ldc, int accumulate, int m0, int m1, int n0,
                                                  int n1, f32 *work, int MC, int KC, int NC) {
  f32 *Ap = work;
  f32 *Bp = work + MC * KC;
  f32 *tile = Bp + KC * NC;
  if (K <= 0) {
    if (!accumulate) {
      for (int i = m0; i < m1; i++)
        for (int j = n0; j < n1; j++) C[(long)i * ldc + j] = 0.0f;
    }
    return;
  }
  for (int jc = n0; jc < n1; jc += NC) {
    int nc = n1 - jc < NC ? n1 - jc : NC;
    for (int pc = 0; pc < K; pc += KC) {
      int kc = K - pc < KC ? K - pc : KC;
      int add = accumulate || pc > 0;
      pack_b(transB, B, ldb, pc, kc, jc, nc, Bp);
      for (int ic = m0; ic < m1; ic += MC) {
        int mc = m1 - ic < MC ? m1 - ic : MC;
        int mcp = (mc + 3) & ~3;
        pack_a(transA, A, lda, ic, mc, pc, kc, Ap);
        for (int jr = 0; jr < nc; jr += NR) {
          int nr = nc - jr < NR ? nc - jr : NR;
          const f32 *bp = Bp + jr * kc;
          const f32 *ap = Ap;
          for (int ir = 0; ir < mc;) {
            int hp = panel_rows(mcp, ir);
            int mr = mc - ir < hp ? mc - ir : hp;
            micro(hp, mr, nr, kc, ap, bp, NR, C + (long)(ic + ir) * ldc + jc + jr, ldc, add, tile);
            ap += hp * kc;
            ir += hp;
          }
        }
      }
    }
  }
}

// Small-M GEMM (decode-sized products, M up to a few dozen rows): packing B would cost as much as the product, so B
// is read in place. Same contract as sgemm for rows [m0, m1) and columns [n0, n1).
//  - opB = B (K x N, row-major): A is packed into row panels (K blocked by kcs) and the micro-kernels read 8-column
//    strips of B directly with stride ldb; the last N % 8 columns are done as dot products.
//  - opB = B^T (B stored N x K, rows contiguous in k): dot products of A rows with B rows (below), A packed first.
// work: at least 4*ceil((m1-m0)/4)*kcs floats (transB = 0), or (m1-m0)*K floats (transB = 1), + 64.

// Stores (or adds, when acc) the first n (1..4) lanes of v at c.
static inline void store_cols(f32 *c, v128_t v, int n, int acc) {
  if (n == 4) {
    if (acc) v = wasm_f32x4_add(v, wasm_v128_load(c));
    wasm_v128_store(c, v);
    return;
  }
  c[0] = (acc ? c[0] : 0.0f) + wasm_f32x4_extract_lane(v, 0);
  if (n > 1) c[1] = (acc ? c[1] : 0.0f) + wasm_f32x4_extract_lane(v, 1);
  if (n > 2) c[2] = (acc ? c[2] : 0.0f) + wasm_f32x4_extract_lane(v, 2);
}

// transB with small M: dot products of A rows with B rows. A's first K4 = K & ~3 columns are first packed into row
// panels (4 rows, then 2 and 1 for the rest) of 4-float groups: for each k group, the panel rows' 4 floats one
// after another, so the kernels read them at constant offsets from one pointer (V8 folds those into the load;
// separate row pointers cost an address computation per load). Blocks of 4 rows x 2 columns (2 rows x 4 columns for
// the last M % 4 rows) keep 8 accumulators; TurboFan issues all loads of a k-step first, so 8 accumulators + 6
// loaded vectors is what fits its 15 xmm registers without spills (a 6 x 2 block spills).
#define PF_FLOATS 2048
#define TOUCH_CHUNK 128
#define TOUCH_LINES 4
static inline int dot_rows(int rem) { return rem >= 4 ? 4 : rem >= 2 ? 2 : 1; }

static void pack_a_dot(int transA, const f32 *A, int lda, int m0, int M, int K4, f32 *restrict out) {
  for (int i0 = 0; i0 < M;) {
    int R = dot_rows(M - i0);
    for (int k = 0; k < K4; k += 4) {
      for (int r = 0; r < R; r++) {
        int i = m0 + i0 + r;
        v128_t v;
        if (transA)
          v = wasm_f32x4_make(A[(long)k * lda + i], A[(long)(k + 1) * lda + i], A[(long)(k + 2) * lda + i],
                              A[(long)(k + 3) * lda + i]);
        else
          v = wasm_v128_load(A + (long)i * lda + k);
        wasm_v128_store(out + r * 4, v);
      }
      out += 4 * R;
    }
    i0 += R;
  }
}

// v holds (col 0, col 1) of a row in lanes 0, 1 (hi = 0) or 2, 3 (hi = 1): stores (or adds) the first nq of them.
static inline void store2(f32 *c, v128_t v, int hi, int nq, int acc) {
  f32 x0 = hi ? wasm_f32x4_extract_lane(v, 2) : wasm_f32x4_extract_lane(v, 0);
  f32 x1 = hi ? wasm_f32x4_extract_lane(v, 3) : wasm_f32x4_extract_lane(v, 1);
  c[0] = acc ? c[0] + x0 : x0;
  if (nq > 1) c[1] = acc ? c[1] + x1 : x1;
}

// C[i0 + r, j + q] (+)= sum_k opA(i0 + r, k) * B[j + q, k] for r < R (1, 2 or 4), q < nq (1 or 2; with nq = 1,
// b1 = b0 and the second sums are not stored). ap: the packed panel; the K % 4 tail comes from A itself.
static inline __attribute__((always_inline)) v128_t dot_rx2(int R, const f32 *ap, int transA, const f32 *A,
                                                            int lda, int i0, const f32 *b0, const f32 *b1, int K,
                                                            f32 *c, int ldc, int nq, int acc, const f32 *pf,
                                                            const f32 *pfe, v128_t sink) {
  v128_t s00 = wasm_f32x4_splat(0), s01 = s00, s10 = s00, s11 = s00, s20 = s00, s21 = s00, s30 = s00, s31 = s00;
  int K4 = K & ~3;
  const f32 *p0 = b0, *p1 = b1;
  for (int k0 = 0; k0 < K4; k0 += TOUCH_CHUNK) {
  int k1 = K4 - k0 < TOUCH_CHUNK ? K4 : k0 + TOUCH_CHUNK;
  for (int k = k0; k < k1; k += 4) {
    v128_t y0 = wasm_v128_load(p0), y1 = wasm_v128_load(p1);
    v128_t x = wasm_v128_load(ap);
    s00 = MADD(x, y0, s00);
    s01 = MADD(x, y1, s01);
    if (R > 1) {
      x = wasm_v128_load(ap + 4);
      s10 = MADD(x, y0, s10);
      s11 = MADD(x, y1, s11);
    }
    if (R > 2) {
      x = wasm_v128_load(ap + 8);
      s20 = MADD(x, y0, s20);
      s21 = MADD(x, y1, s21);
      x = wasm_v128_load(ap + 12);
      s30 = MADD(x, y0, s30);
      s31 = MADD(x, y1, s31);
    }
    ap += 4 * R;
    p0 += 4;
    p1 += 4;
  }
  for (int t = 0; t < TOUCH_LINES && pf < pfe; t++, pf += 16) sink = wasm_f32x4_add(sink, wasm_v128_load(pf));
  }
  // Lanes: (row r col 0, row r col 1, row r+1 col 0, row r+1 col 1).
  v128_t v01 = hsum4(s00, s01, s10, s11), v23 = v01;
  if (R > 2) v23 = hsum4(s20, s21, s30, s31);
  for (int k = K4; k < K; k++) {
    const f32 *ak = transA ? A + (long)k * lda + i0 : A + (long)i0 * lda + k;
    long st = transA ? 1 : lda;
    v128_t y = wasm_f32x4_make(b0[k], b1[k], b0[k], b1[k]);
    f32 x1 = R > 1 ? ak[st] : 0.0f;
    v01 = MADD(wasm_f32x4_make(ak[0], ak[0], x1, x1), y, v01);
    if (R > 2) v23 = MADD(wasm_f32x4_make(ak[2 * st], ak[2 * st], ak[3 * st], ak[3 * st]), y, v23);
  }
  store2(c, v01, 0, nq, acc);
  if (R > 1) store2(c + ldc, v01, 1, nq, acc);
  if (R > 2) {
    store2(c + 2L * ldc, v23, 0, nq, acc);
    store2(c + 3L * ldc, v23, 1, nq, acc);
  }
  return sink;
}

// The same for R (1 or 2) rows x 4 columns b0..b3 (nq of them real; missing ones repeat a real pointer).
static inline __attribute__((always_inline)) void dot_rx4(int R, const f32 *ap, int transA, const f32 *A, int lda,
                                                          int i0, const f32 *b0, const f32 *b1, const f32 *b2,
                                                          const f32 *b3, int K, f32 *c, int ldc, int nq, int acc) {
  v128_t s00 = wasm_f32x4_splat(0), s01 = s00, s02 = s00, s03 = s00, s10 = s00, s11 = s00, s12 = s00, s13 = s00;
  int K4 = K & ~3;
  const f32 *p0 = b0, *p1 = b1, *p2 = b2, *p3 = b3;
  for (int k = 0; k < K4; k += 4) {
    v128_t y0 = wasm_v128_load(p0), y1 = wasm_v128_load(p1), y2 = wasm_v128_load(p2), y3 = wasm_v128_load(p3);
    v128_t x = wasm_v128_load(ap);
    s00 = MADD(x, y0, s00);
    s01 = MADD(x, y1, s01);
    s02 = MADD(x, y2, s02);
    s03 = MADD(x, y3, s03);
    if (R > 1) {
      x = wasm_v128_load(ap + 4);
      s10 = MADD(x, y0, s10);
      s11 = MADD(x, y1, s11);
      s12 = MADD(x, y2, s12);
      s13 = MADD(x, y3, s13);
    }
    ap += 4 * R;
    p0 += 4;
    p1 += 4;
    p2 += 4;
    p3 += 4;
  }
  v128_t r0 = hsum4(s00, s01, s02, s03), r1 = r0;
  if (R > 1) r1 = hsum4(s10, s11, s12, s13);
  for (int k = K4; k < K; k++) {
    const f32 *ak = transA ? A + (long)k * lda + i0 : A + (long)i0 * lda + k;
    long st = transA ? 1 : lda;
    v128_t y = wasm_f32x4_make(b0[k], b1[k], b2[k], b3[k]);
    r0 = MADD(wasm_f32x4_splat(ak[0]), y, r0);
    if (R > 1) r1 = MADD(wasm_f32x4_splat(ak[st]), y, r1);
  }
  store_cols(c, r0, nq, acc);
  if (R > 1) store_cols(c + ldc, r1, nq, acc);
}

__attribute__((export_name("sgemm_small"))) void sgemm_small(int transA, int transB, int K, const f32 *A, int lda,
                                                              const f32 *B, int ldb, f32 *C, int ldc, int accumulate,
                                                              int m0, int m1, int n0, int n1, f32 *work, int kcs) {
  int M = m1 - m0;
  if (M <= 0 || n1 <= n0) return;
  if (!transB) {
    int mcp = (M + 3) & ~3;
    f32 *Ap = work;
    f32 *tile = work + mcp * kcs;
    int n8 = n0 + ((n1 - n0) & ~(NR - 1));
    for (int pc = 0; pc < K; pc += kcs) {
      int kc = K - pc < kcs ? K - pc : kcs;
      int add = accumulate || pc > 0;
      pack_a(transA, A, lda, m0, M, pc, kc, Ap);
      for (int j = n0; j < n8; j += NR) {
        const f32 *bp = B + (long)pc * ldb + j;
        const f32 *ap = Ap;
        for (int ir = 0; ir < M;) {
          int hp = panel_rows(mcp, ir);
          int mr = M - ir < hp ? M - ir : hp;
          micro(hp, mr, NR, kc, ap, bp, ldb, C + (long)(m0 + ir) * ldc + j, ldc, add, tile);
          ap += hp * kc;
          ir += hp;
        }
      }
      for (int j = n8; j < n1; j++) {
        const f32 *ap = Ap;
        for (int ir = 0; ir < M;) {
          int hp = panel_rows(mcp, ir);
          int mr = M - ir < hp ? M - ir : hp;
          for (int r = 0; r < mr; r++) {
            f32 s = 0.0f;
            for (int k = 0; k < kc; k++) s += ap[k * hp + r] * B[(long)(pc + k) * ldb + j];
            f32 *c = C + (long)(m0 + ir + r) * ldc + j;
            *c = add ? *c + s : s;
          }
          ap += hp * kc;
          ir += hp;
        }
      }
    }
    return;
  }
  // transB: C[i, j] = dot(row i of opA, row j of B). Column strips of B (2 or 4 rows of K floats, which stay in L1
  // while every row panel of A passes) in the outer loop.
  int K4 = K & ~3;
  int M4 = M & ~3;
  pack_a_dot(transA, A, lda, m0, M, K4, work);
  if (M4 > 0) {
    // Each row block also touches (one load per 64-byte line, TOUCH_LINES after every TOUCH_CHUNK floats of K) its
    // share of the strip PF_FLOATS floats (8 KiB) ahead: when the weights are not in L2 (decode reads each weight
    // once per token, from L3), this starts the misses early enough; done strip by strip, all the misses of a strip
    // would come in its first row block, faster than the hardware prefetcher streams them in.
    v128_t sink = wasm_f32x4_splat(0);
    const f32 *bend = B + (long)n1 * ldb;
    long ahead = (PF_FLOATS / (2 * ldb) > 1 ? PF_FLOATS / (2 * ldb) : 1) * 2L * ldb;
    int per = (2 * ldb + M4 / 4 - 1) / (M4 / 4);
    for (int j = n0; j < n1; j += 2) {
      int nq = n1 - j < 2 ? n1 - j : 2;
      const f32 *b0 = B + (long)j * ldb, *b1 = nq > 1 ? b0 + ldb : b0;
      for (int i = 0; i < M4; i += 4) {
        const f32 *q = b0 + ahead + (i / 4) * per, *qe = q + per;
        sink = dot_rx2(4, work + (long)i * K4, transA, A, lda, m0 + i, b0, b1, K, C + (long)(m0 + i) * ldc + j, ldc,
                       nq, accumulate, q, qe < bend ? qe : bend, sink);
      }
    }
    if (K < 0) work[0] = hsum(sink);  // never true: keeps the touch loads alive
  }
  if (M4 < M) {
    for (int j = n0; j < n1; j += 4) {
      int nq = n1 - j < 4 ? n1 - j : 4;
      const f32 *b0 = B + (long)j * ldb;
      const f32 *b1 = nq > 1 ? b0 + ldb : b0, *b2 = nq > 2 ? b0 + 2L * ldb : b1, *b3 = nq > 3 ? b0 + 3L * ldb : b2;
      int i = M4;
      if (M - i >= 2) {
        dot_rx4(2, work + (long)i * K4, transA, A, lda, m0 + i, b0, b1, b2, b3, K, C + (long)(m0 + i) * ldc + j, ldc,
                nq, accumulate);
        i += 2;
      }
      if (i < M)
        dot_rx4(1, work + (long)i * K4, transA, A, lda, m0 + i, b0, b1, b2, b3, K, C + (long)(m0 + i) * ldc + j, ldc,
                nq, accumulate);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Elementwise and row kernels. Semantics are documented on RowKernels in src/engine/kernels.ts; these must match the
// JS references there (within float32 rounding).

// exp(x) for float32: range reduction x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial (Cephes expf), 2^n by building
// the exponent bits. Inputs below -87.33 give exactly 0 (so -Infinity -> 0), above 88.3 are clamped.
#define EXP_HI 88.3f
#define EXP_LO -87.33f
static inline v128_t v_exp(v128_t x) {
  v128_t under = wasm_f32x4_lt(x, wasm_f32x4_splat(EXP_LO));
  x = wasm_f32x4_min(wasm_f32x4_max(x, wasm_f32x4_splat(EXP_LO)), wasm_f32x4_splat(EXP_HI));
  v128_t n = wasm_f32x4_nearest(wasm_f32x4_mul(x, wasm_f32x4_splat(1.44269504088896341f)));
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, wasm_f32x4_splat(0.693359375f)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, wasm_f32x4_splat(-2.12194440e-4f)));
  v128_t p = wasm_f32x4_splat(1.9875691500E-4f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.3981999507E-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(8.3334519073E-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(4.1665795894E-2f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.6666665459E-1f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(5.0000001201E-1f));
  v128_t y = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_mul(p, r), r), r), wasm_f32x4_splat(1.0f));
  v128_t e = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127)), 23);
  y = wasm_f32x4_mul(y, e);
  return wasm_v128_andnot(y, under);
}

// Loads/stores of a partial vector (len in 1..3) for row tails; missing lanes load as `fill`.
static inline v128_t load_part(const f32 *p, int len, f32 fill) {
  v128_t v = wasm_f32x4_splat(fill);
  v = wasm_f32x4_replace_lane(v, 0, p[0]);
  if (len > 1) v = wasm_f32x4_replace_lane(v, 1, p[1]);
  if (len > 2) v = wasm_f32x4_replace_lane(v, 2, p[2]);
  return v;
}
static inline void store_part(f32 *p, int len, v128_t v) {
  p[0] = wasm_f32x4_extract_lane(v, 0);
  if (len > 1) p[1] = wasm_f32x4_extract_lane(v, 1);
  if (len > 2) p[2] = wasm_f32x4_extract_lane(v, 2);
}
static inline f32 hmax(v128_t v) {
  v = wasm_f32x4_pmax(v, wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
  v = wasm_f32x4_pmax(v, wasm_i32x4_shuffle(v, v, 1, 0, 3, 2));
  return wasm_f32x4_extract_lane(v, 0);
}

// y[r, :] = softmax(x[r, :]); y may equal x.
__attribute__((export_name("softmax_rows"))) void softmax_rows(const f32 *x, f32 *y, int rows, int cols) {
  for (int r = 0; r < rows; r++) {
    const f32 *xr = x + (long)r * cols;
    f32 *yr = y + (long)r * cols;
    int c4 = cols & ~3, tail = cols - c4;
    v128_t vm = wasm_f32x4_splat(-__builtin_inff());
    for (int c = 0; c < c4; c += 4) vm = wasm_f32x4_pmax(vm, wasm_v128_load(xr + c));
    if (tail) vm = wasm_f32x4_pmax(vm, load_part(xr + c4, tail, -__builtin_inff()));
    f32 m = hmax(vm);
    if (m == -__builtin_inff()) m = 0.0f;  // a fully masked row: all exp() are 0, the row becomes 0 below
    v128_t mv = wasm_f32x4_splat(m), vs = wasm_f32x4_splat(0);
    for (int c = 0; c < c4; c += 4) {
      v128_t e = v_exp(wasm_f32x4_sub(wasm_v128_load(xr + c), mv));
      wasm_v128_store(yr + c, e);
      vs = wasm_f32x4_add(vs, e);
    }
    if (tail) {
      v128_t e = v_exp(wasm_f32x4_sub(load_part(xr + c4, tail, -__builtin_inff()), mv));
      store_part(yr + c4, tail, e);
      vs = wasm_f32x4_add(vs, e);
    }
    f32 s = hsum(vs);
    v128_t inv = wasm_f32x4_splat(s > 0.0f ? 1.0f / s : 0.0f);
    for (int c = 0; c < c4; c += 4) wasm_v128_store(yr + c, wasm_f32x4_mul(wasm_v128_load(yr + c), inv));
    for (int c = c4; c < cols; c++) yr[c] = yr[c] * wasm_f32x4_extract_lane(inv, 0);
  }
}

// dx[r, :] = y[r, :] * (dy[r, :] - sum(dy[r, :] * y[r, :])); dx may equal dy.
__attribute__((export_name("softmax_backward_rows"))) void softmax_backward_rows(const f32 *y, const f32 *dy, f32 *dx,
                                                                                  int rows, int cols) {
  for (int r = 0; r < rows; r++) {
    const f32 *yr = y + (long)r * cols, *gr = dy + (long)r * cols;
    f32 *dr = dx + (long)r * cols;
    int c4 = cols & ~3;
    v128_t vs = wasm_f32x4_splat(0);
    for (int c = 0; c < c4; c += 4) vs = wasm_f32x4_add(vs, wasm_f32x4_mul(wasm_v128_load(yr + c), wasm_v128_load(gr + c)));
    f32 s = hsum(vs);
    for (int c = c4; c < cols; c++) s += yr[c] * gr[c];
    v128_t sv = wasm_f32x4_splat(s);
    for (int c = 0; c < c4; c += 4)
      wasm_v128_store(dr + c, wasm_f32x4_mul(wasm_v128_load(yr + c), wasm_f32x4_sub(wasm_v128_load(gr + c), sv)));
    for (int c = c4; c < cols; c++) dr[c] = yr[c] * (gr[c] - s);
  }
}

// y[r, :] = x[r, :] * rstd[r] * w;  rstd[r] = 1 / sqrt(mean(x[r, :]^2) + eps). rstd may be 0 (null) to skip.
__attribute__((export_name("rmsnorm_forward"))) void rmsnorm_forward(const f32 *x, const f32 *w, f32 *y, f32 *rstd,
                                                                      int rows, int cols, f32 eps) {
  for (int r = 0; r < rows; r++) {
    const f32 *xr = x + (long)r * cols;
    f32 *yr = y + (long)r * cols;
    int c4 = cols & ~3;
    v128_t vs = wasm_f32x4_splat(0);
    for (int c = 0; c < c4; c += 4) {
      v128_t v = wasm_v128_load(xr + c);
      vs = wasm_f32x4_add(vs, wasm_f32x4_mul(v, v));
    }
    f32 s = hsum(vs);
    for (int c = c4; c < cols; c++) s += xr[c] * xr[c];
    f32 rs = 1.0f / __builtin_sqrtf(s / (f32)cols + eps);
    if (rstd) rstd[r] = rs;
    v128_t rv = wasm_f32x4_splat(rs);
    for (int c = 0; c < c4; c += 4)
      wasm_v128_store(yr + c, wasm_f32x4_mul(wasm_f32x4_mul(wasm_v128_load(xr + c), rv), wasm_v128_load(w + c)));
    for (int c = c4; c < cols; c++) yr[c] = xr[c] * rs * w[c];
  }
}

// dx[r, :] = rstd * (g - x * rstd^2 * mean(g * x)),  g = dy[r, :] * w;   dw += sum_r dy[r, :] * x[r, :] * rstd[r].
__attribute__((export_name("rmsnorm_backward"))) void rmsnorm_backward(const f32 *x, const f32 *w, const f32 *rstd,
                                                                        const f32 *dy, f32 *dx, f32 *dw, int rows,
                                                                        int cols) {
  for (int r = 0; r < rows; r++) {
    const f32 *xr = x + (long)r * cols, *gr = dy + (long)r * cols;
    f32 *dr = dx + (long)r * cols;
    f32 rs = rstd[r];
    int c4 = cols & ~3;
    v128_t vs = wasm_f32x4_splat(0), rv = wasm_f32x4_splat(rs);
    for (int c = 0; c < c4; c += 4) {
      v128_t xv = wasm_v128_load(xr + c), gv = wasm_v128_load(gr + c);
      vs = wasm_f32x4_add(vs, wasm_f32x4_mul(wasm_f32x4_mul(gv, wasm_v128_load(w + c)), xv));
      if (dw) wasm_v128_store(dw + c, wasm_f32x4_add(wasm_v128_load(dw + c), wasm_f32x4_mul(wasm_f32x4_mul(gv, xv), rv)));
    }
    f32 s = hsum(vs);
    for (int c = c4; c < cols; c++) {
      s += gr[c] * w[c] * xr[c];
      if (dw) dw[c] += gr[c] * xr[c] * rs;
    }
    f32 k = rs * rs * s / (f32)cols;
    v128_t kv = wasm_f32x4_splat(k);
    for (int c = 0; c < c4; c += 4) {
      v128_t g = wasm_f32x4_mul(wasm_v128_load(gr + c), wasm_v128_load(w + c));
      wasm_v128_store(dr + c, wasm_f32x4_mul(rv, wasm_f32x4_sub(g, wasm_f32x4_mul(wasm_v128_load(xr + c), kv))));
    }
    for (int c = c4; c < cols; c++) dr[c] = rs * (gr[c] * w[c] - xr[c] * k);
  }
}

static inline v128_t v_sigmoid(v128_t g) {
  v128_t one = wasm_f32x4_splat(1.0f);
  return wasm_f32x4_div(one, wasm_f32x4_add(one, v_exp(wasm_f32x4_neg(g))));
}

// out = silu(gate) * up, silu(g) = g * sigmoid(g). out may equal gate or up.
__attribute__((export_name("swiglu_forward"))) void swiglu_forward(const f32 *gate, const f32 *up, f32 *out, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t g = wasm_v128_load(gate + i);
    wasm_v128_store(out + i, wasm_f32x4_mul(wasm_f32x4_mul(g, v_sigmoid(g)), wasm_v128_load(up + i)));
  }
  if (i < n) {
    int t = n - i;
    v128_t g = load_part(gate + i, t, 0.0f);
    store_part(out + i, t, wasm_f32x4_mul(wasm_f32x4_mul(g, v_sigmoid(g)), load_part(up + i, t, 0.0f)));
  }
}

// dgate = dout * up * s * (1 + g * (1 - s)), dup = dout * g * s, s = sigmoid(g). dgate/dup may alias dout.
__attribute__((export_name("swiglu_backward"))) void swiglu_backward(const f32 *gate, const f32 *up, const f32 *dout,
                                                                      f32 *dgate, f32 *dup, int n) {
  v128_t one = wasm_f32x4_splat(1.0f);
  for (int i = 0; i < n; i += 4) {
    int t = n - i < 4 ? n - i : 4;
    v128_t g, u, d;
    if (t == 4) {
      g = wasm_v128_load(gate + i), u = wasm_v128_load(up + i), d = wasm_v128_load(dout + i);
    } else {
      g = load_part(gate + i, t, 0.0f), u = load_part(up + i, t, 0.0f), d = load_part(dout + i, t, 0.0f);
    }
    v128_t s = v_sigmoid(g);
    v128_t silu = wasm_f32x4_mul(g, s);
    v128_t dsilu = wasm_f32x4_mul(s, wasm_f32x4_add(one, wasm_f32x4_mul(g, wasm_f32x4_sub(one, s))));
    v128_t dg = wasm_f32x4_mul(wasm_f32x4_mul(d, u), dsilu);
    v128_t du = wasm_f32x4_mul(d, silu);
    if (t == 4) {
      wasm_v128_store(dgate + i, dg);
      wasm_v128_store(dup + i, du);
    } else {
      store_part(dgate + i, t, dg);
      store_part(dup + i, t, du);
    }
  }
}

// RoPE, rotate-half convention (HF Qwen2). x, out: [T, H, D] row-major; pos: T positions; cos, sin: [*, D/2] tables.
// For h = D/2, i < h, c = cos[pos[t]*h + i], s = sin[pos[t]*h + i], a = x[.., i], b = x[.., i + h]:
//   forward:  out[i] = a*c - b*s, out[i+h] = b*c + a*s;   inverse: out[i] = a*c + b*s, out[i+h] = b*c - a*s.
// out may equal x.
__attribute__((export_name("rope"))) void rope(const f32 *x, f32 *out, int T, int H, int D, const int *pos,
                                                const f32 *cos, const f32 *sin, int inverse) {
  int h = D >> 1;
  int h4 = h & ~3;
  for (int t = 0; t < T; t++) {
    const f32 *ct = cos + (long)pos[t] * h, *st = sin + (long)pos[t] * h;
    for (int hd = 0; hd < H; hd++) {
      const f32 *xr = x + ((long)t * H + hd) * D;
      f32 *orow = out + ((long)t * H + hd) * D;
      for (int i = 0; i < h4; i += 4) {
        v128_t a = wasm_v128_load(xr + i), b = wasm_v128_load(xr + h + i);
        v128_t c = wasm_v128_load(ct + i), s = wasm_v128_load(st + i);
        if (inverse) s = wasm_f32x4_neg(s);
        wasm_v128_store(orow + i, wasm_f32x4_sub(wasm_f32x4_mul(a, c), wasm_f32x4_mul(b, s)));
        wasm_v128_store(orow + h + i, wasm_f32x4_add(wasm_f32x4_mul(b, c), wasm_f32x4_mul(a, s)));
      }
      for (int i = h4; i < h; i++) {
        f32 a = xr[i], b = xr[h + i], c = ct[i], s = inverse ? -st[i] : st[i];
        orow[i] = a * c - b * s;
        orow[h + i] = b * c + a * s;
      }
    }
  }
}

// out = a + b (out may alias a or b).
__attribute__((export_name("add"))) void add(const f32 *a, const f32 *b, f32 *out, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(out + i, wasm_f32x4_add(wasm_v128_load(a + i), wasm_v128_load(b + i)));
  for (; i < n; i++) out[i] = a[i] + b[i];
}

// y += alpha * x.
__attribute__((export_name("axpy"))) void axpy(f32 alpha, const f32 *x, f32 *y, int n) {
  v128_t av = wasm_f32x4_splat(alpha);
  int i = 0;
  for (; i + 4 <= n; i += 4)
    wasm_v128_store(y + i, wasm_f32x4_add(wasm_v128_load(y + i), wasm_f32x4_mul(av, wasm_v128_load(x + i))));
  for (; i < n; i++) y[i] += alpha * x[i];
}

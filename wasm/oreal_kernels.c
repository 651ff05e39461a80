// oreal compute kernels for WebAssembly SIMD128 (built by scripts/build-wasm.sh; the .wasm is committed).
//
// Every function works on pointers into one shared linear memory that the JS side owns (src/engine/wasm-backend.ts):
// the module imports it, has no data segments and never touches the C stack (no arrays or address-taken locals), so
// any number of instances (one per worker thread) can run on the same memory at once. Scratch space is always passed
// in by the caller.
//
// GEMM follows the Goto/BLIS structure: B is packed into KC x NC blocks of NR-wide column panels, A into MC x KC
// blocks of MR-tall row panels, and a register-blocked MR x NR micro-kernel (MR=4, NR=8: 8 accumulator registers)
// multiplies one A panel by one B panel. Wasm SIMD128 in Node 20 has no FMA, so each step is a mul and an add.
#include <wasm_simd128.h>

#define MR 4
#define NR 8

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
// ---------------------------------------------------------------------------------------------------------------
// Packing. opA(i, p) = transA ? A[p*lda + i] : A[i*lda + p];  opB(p, j) = transB ? B[j*ldb + p] : B[p*ldb + j].

// Packs opA[i0 : i0+mc, p0 : p0+kc] into MR-row panels: panel r holds rows r*MR.., stored k-major (kc x MR), rows
// past mc padded with zeros.
static void pack_a(int transA, const f32 *A, int lda, int i0, int mc, int p0, int kc, f32 *restrict out) {
  for (int ir = 0; ir < mc; ir += MR) {
    int mr = mc - ir < MR ? mc - ir : MR;
    if (transA) {
      const f32 *src = A + (long)p0 * lda + i0 + ir;
      if (mr == MR) {
        for (int k = 0; k < kc; k++) {
          wasm_v128_store(out + k * MR, wasm_v128_load(src + (long)k * lda));
        }
      } else {
        for (int k = 0; k < kc; k++) {
          for (int r = 0; r < MR; r++) out[k * MR + r] = r < mr ? src[(long)k * lda + r] : 0.0f;
        }
      }
    } else {
      const f32 *src = A + (long)(i0 + ir) * lda + p0;
      if (mr == MR) {
        const f32 *s0 = src, *s1 = src + lda, *s2 = src + 2L * lda, *s3 = src + 3L * lda;
        int k = 0;
        for (; k + 4 <= kc; k += 4) {
          // 4x4 transpose: rows r0..r3 (4 consecutive k each) -> 4 k-steps of 4 rows.
          v128_t r0 = wasm_v128_load(s0 + k), r1 = wasm_v128_load(s1 + k);
          v128_t r2 = wasm_v128_load(s2 + k), r3 = wasm_v128_load(s3 + k);
          v128_t t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5);
          v128_t t1 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5);
          v128_t t2 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7);
          v128_t t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);
          wasm_v128_store(out + (k + 0) * MR, wasm_i64x2_shuffle(t0, t1, 0, 2));
          wasm_v128_store(out + (k + 1) * MR, wasm_i64x2_shuffle(t0, t1, 1, 3));
          wasm_v128_store(out + (k + 2) * MR, wasm_i64x2_shuffle(t2, t3, 0, 2));
          wasm_v128_store(out + (k + 3) * MR, wasm_i64x2_shuffle(t2, t3, 1, 3));
        }
        for (; k < kc; k++) {
          out[k * MR + 0] = s0[k];
          out[k * MR + 1] = s1[k];
          out[k * MR + 2] = s2[k];
          out[k * MR + 3] = s3[k];
        }
      } else {
        for (int k = 0; k < kc; k++) {
          for (int r = 0; r < MR; r++) out[k * MR + r] = r < mr ? src[(long)r * lda + k] : 0.0f;
        }
      }
    }
    out += kc * MR;
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
// Micro-kernel: C[0:MR, 0:NR] (row stride ldc) = (add ? C : 0) + Ap (kc x MR) * Bp (kc x NR, row stride ldb: NR
// when packed, the matrix's own row stride when B is read in place).
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
    a += MR;
    b += ldb;
  }
  f32 *r0 = c, *r1 = c + ldc, *r2 = c + 2L * ldc, *r3 = c + 3L * ldc;
  if (add) {
    c00 = wasm_f32x4_add(c00, wasm_v128_load(r0));
    c01 = wasm_f32x4_add(c01, wasm_v128_load(r0 + 4));
    c10 = wasm_f32x4_add(c10, wasm_v128_load(r1));
    c11 = wasm_f32x4_add(c11, wasm_v128_load(r1 + 4));
    c20 = wasm_f32x4_add(c20, wasm_v128_load(r2));
    c21 = wasm_f32x4_add(c21, wasm_v128_load(r2 + 4));
    c30 = wasm_f32x4_add(c30, wasm_v128_load(r3));
    c31 = wasm_f32x4_add(c31, wasm_v128_load(r3 + 4));
  }
  wasm_v128_store(r0, c00);
  wasm_v128_store(r0 + 4, c01);
  wasm_v128_store(r1, c10);
  wasm_v128_store(r1 + 4, c11);
  wasm_v128_store(r2, c20);
  wasm_v128_store(r2 + 4, c21);
  wasm_v128_store(r3, c30);
  wasm_v128_store(r3 + 4, c31);
}

// Computes rows [m0, m1) and columns [n0, n1) of C (row stride ldc) = (accumulate ? C : 0) + opA * opB.
// work: scratch of at least MC*KC + KC*NC + MR*NR floats (16-byte aligned), private to the calling thread.
// Block sizes mc (multiple of MR), kc, nc (multiple of NR) are chosen by the caller.
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
        pack_a(transA, A, lda, ic, mc, pc, kc, Ap);
        for (int jr = 0; jr < nc; jr += NR) {
          int nr = nc - jr < NR ? nc - jr : NR;
          const f32 *bp = Bp + jr * kc;
          for (int ir = 0; ir < mc; ir += MR) {
            int mr = mc - ir < MR ? mc - ir : MR;
            const f32 *ap = Ap + ir * kc;
            f32 *c = C + (long)(ic + ir) * ldc + jc + jr;
            if (mr == MR && nr == NR) {
              kernel_4x8(kc, ap, bp, NR, c, ldc, add);
            } else {
              kernel_4x8(kc, ap, bp, NR, tile, NR, 0);
              for (int r = 0; r < mr; r++) {
                for (int q = 0; q < nr; q++) {
                  f32 v = tile[r * NR + q];
                  c[(long)r * ldc + q] = add ? c[(long)r * ldc + q] + v : v;
                }
              }
            }
          }
        }
      }
    }
  }
}

// Small-M GEMM (decode-sized products, M up to a few dozen rows): packing B would cost as much as the product, so B
// is read in place. Same contract as sgemm for rows [m0, m1) and columns [n0, n1).
//  - opB = B (K x N, row-major): A is packed into MR-row panels (K blocked by kcs) and the 4x8 micro-kernel reads
//    8-column strips of B directly with stride ldb; the last N % 8 columns are done as dot products.
//  - opB = B^T (B stored N x K, rows contiguous in k): dot products of A rows with B rows, 2 x 4 at a time in
//    registers; A rows are copied contiguous first when transA.
// work: at least MR*ceil((m1-m0)/MR)*kcs floats (transB = 0), or (m1-m0)*K floats (transB = 1 and transA = 1), + 64.
static inline f32 dot(const f32 *x, const f32 *y, int K) {
  v128_t acc = wasm_f32x4_splat(0);
  int k = 0;
  for (; k + 4 <= K; k += 4) acc = MADD(wasm_v128_load(x + k), wasm_v128_load(y + k), acc);
  f32 s = hsum(acc);
  for (; k < K; k++) s += x[k] * y[k];
  return s;
}

__attribute__((export_name("sgemm_small"))) void sgemm_small(int transA, int transB, int K, const f32 *A, int lda,
                                                              const f32 *B, int ldb, f32 *C, int ldc, int accumulate,
                                                              int m0, int m1, int n0, int n1, f32 *work, int kcs) {
  int M = m1 - m0;
  if (!transB) {
    f32 *Ap = work;
    f32 *tile = work + ((M + MR - 1) / MR) * MR * kcs;
    int n8 = n0 + ((n1 - n0) & ~(NR - 1));
    for (int pc = 0; pc < K; pc += kcs) {
      int kc = K - pc < kcs ? K - pc : kcs;
      int add = accumulate || pc > 0;
      pack_a(transA, A, lda, m0, M, pc, kc, Ap);
      for (int j = n0; j < n8; j += NR) {
        const f32 *bp = B + (long)pc * ldb + j;
        for (int ir = 0; ir < M; ir += MR) {
          int mr = M - ir < MR ? M - ir : MR;
          f32 *c = C + (long)(m0 + ir) * ldc + j;
          if (mr == MR) {
            kernel_4x8(kc, Ap + ir * kc, bp, ldb, c, ldc, add);
          } else {
            kernel_4x8(kc, Ap + ir * kc, bp, ldb, tile, NR, 0);
            for (int r = 0; r < mr; r++)
              for (int q = 0; q < NR; q++) c[(long)r * ldc + q] = (add ? c[(long)r * ldc + q] : 0.0f) + tile[r * NR + q];
          }
        }
      }
      for (int j = n8; j < n1; j++) {
        for (int i = 0; i < M; i++) {
          f32 s = 0.0f;
          const f32 *ar = Ap + (i / MR) * MR * kc + (i % MR);
          for (int k = 0; k < kc; k++) s += ar[k * MR] * B[(long)(pc + k) * ldb + j];
          f32 *c = C + (long)(m0 + i) * ldc + j;
          *c = add ? *c + s : s;
        }
      }
    }
    return;
  }
  // transB: C[i, j] = dot(row i of opA, row j of B).
  const f32 *Ar = A + (long)m0 * lda;
  int lar = lda;
  if (transA) {
    for (int i = 0; i < M; i++)
      for (int k = 0; k < K; k++) work[(long)i * K + k] = A[(long)k * lda + m0 + i];
    Ar = work;
    lar = K;
  }
  int K4 = K & ~3;
  int i = 0;
  for (; i + 2 <= M; i += 2) {
    const f32 *a0 = Ar + (long)i * lar, *a1 = a0 + lar;
    int j = n0;
    for (; j + 4 <= n1; j += 4) {
      const f32 *b0 = B + (long)j * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
      v128_t s00 = wasm_f32x4_splat(0), s01 = s00, s02 = s00, s03 = s00, s10 = s00, s11 = s00, s12 = s00, s13 = s00;
      for (int k = 0; k < K4; k += 4) {
        v128_t x0 = wasm_v128_load(a0 + k), x1 = wasm_v128_load(a1 + k);
        v128_t y = wasm_v128_load(b0 + k);
        s00 = MADD(x0, y, s00);
        s10 = MADD(x1, y, s10);
        y = wasm_v128_load(b1 + k);
        s01 = MADD(x0, y, s01);
        s11 = MADD(x1, y, s11);
        y = wasm_v128_load(b2 + k);
        s02 = MADD(x0, y, s02);
        s12 = MADD(x1, y, s12);
        y = wasm_v128_load(b3 + k);
        s03 = MADD(x0, y, s03);
        s13 = MADD(x1, y, s13);
      }
      f32 r[8] = {hsum(s00), hsum(s01), hsum(s02), hsum(s03), hsum(s10), hsum(s11), hsum(s12), hsum(s13)};
      for (int k = K4; k < K; k++) {
        r[0] += a0[k] * b0[k], r[1] += a0[k] * b1[k], r[2] += a0[k] * b2[k], r[3] += a0[k] * b3[k];
        r[4] += a1[k] * b0[k], r[5] += a1[k] * b1[k], r[6] += a1[k] * b2[k], r[7] += a1[k] * b3[k];
      }
      f32 *c0 = C + (long)(m0 + i) * ldc + j, *c1 = c0 + ldc;
      for (int q = 0; q < 4; q++) {
        c0[q] = accumulate ? c0[q] + r[q] : r[q];
        c1[q] = accumulate ? c1[q] + r[4 + q] : r[4 + q];
      }
    }
    for (; j < n1; j++) {
      const f32 *b0 = B + (long)j * ldb;
      f32 v0 = dot(a0, b0, K), v1 = dot(a1, b0, K);
      f32 *c0 = C + (long)(m0 + i) * ldc + j;
      c0[0] = accumulate ? c0[0] + v0 : v0;
      c0[ldc] = accumulate ? c0[ldc] + v1 : v1;
    }
  }
  for (; i < M; i++) {
    const f32 *a0 = Ar + (long)i * lar;
    int j = n0;
    for (; j + 4 <= n1; j += 4) {
      const f32 *b0 = B + (long)j * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
      v128_t s0 = wasm_f32x4_splat(0), s1 = s0, s2 = s0, s3 = s0;
      for (int k = 0; k < K4; k += 4) {
        v128_t x0 = wasm_v128_load(a0 + k);
        s0 = MADD(x0, wasm_v128_load(b0 + k), s0);
        s1 = MADD(x0, wasm_v128_load(b1 + k), s1);
        s2 = MADD(x0, wasm_v128_load(b2 + k), s2);
        s3 = MADD(x0, wasm_v128_load(b3 + k), s3);
      }
      f32 r0 = hsum(s0), r1 = hsum(s1), r2 = hsum(s2), r3 = hsum(s3);
      for (int k = K4; k < K; k++) r0 += a0[k] * b0[k], r1 += a0[k] * b1[k], r2 += a0[k] * b2[k], r3 += a0[k] * b3[k];
      f32 *c0 = C + (long)(m0 + i) * ldc + j;
      c0[0] = accumulate ? c0[0] + r0 : r0;
      c0[1] = accumulate ? c0[1] + r1 : r1;
      c0[2] = accumulate ? c0[2] + r2 : r2;
      c0[3] = accumulate ? c0[3] + r3 : r3;
    }
    for (; j < n1; j++) {
      f32 v = dot(a0, B + (long)j * ldb, K);
      f32 *c0 = C + (long)(m0 + i) * ldc + j;
      c0[0] = accumulate ? c0[0] + v : v;
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

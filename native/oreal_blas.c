// Node-API addon for the optional 'blas' backend (src/engine/blas-backend.ts): OpenBLAS cblas_sgemm plus the row
// kernels of src/engine/kernels.ts (RowKernels) as plain C loops. Arguments are checked in TypeScript first; this
// file re-checks array kinds and lengths so that a bad call throws instead of touching memory it must not.
// Built by node-gyp from binding.gyp (scripts/build-native.mjs); links -lopenblas (Debian libopenblas-dev).
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <cblas.h>
#include <node_api.h>

#define MAXARGS 10

typedef struct {
  napi_env env;
  napi_value argv[MAXARGS];
  size_t argc;
  int failed;
} Call;

static void fail(Call *c, const char *msg) {
  if (!c->failed) napi_throw_type_error(c->env, NULL, msg);
  c->failed = 1;
}

static int get_args(Call *c, napi_callback_info info, size_t want) {
  c->argc = MAXARGS;
  c->failed = 0;
  if (napi_get_cb_info(c->env, info, &c->argc, c->argv, NULL, NULL) != napi_ok) {
    fail(c, "oreal_blas: cannot read arguments");
    return 0;
  }
  if (c->argc < want) {
    fail(c, "oreal_blas: too few arguments");
    return 0;
  }
  return 1;
}

static int64_t arg_int(Call *c, size_t i) {
  int64_t v = 0;
  if (c->failed) return 0;
  if (napi_get_value_int64(c->env, c->argv[i], &v) != napi_ok) fail(c, "oreal_blas: expected an integer");
  return v;
}

static double arg_num(Call *c, size_t i) {
  double v = 0;
  if (c->failed) return 0;
  if (napi_get_value_double(c->env, c->argv[i], &v) != napi_ok) fail(c, "oreal_blas: expected a number");
  return v;
}

static int arg_bool(Call *c, size_t i) {
  bool v = false;
  if (c->failed) return 0;
  if (napi_get_value_bool(c->env, c->argv[i], &v) != napi_ok) fail(c, "oreal_blas: expected a boolean");
  return v ? 1 : 0;
}

static int is_null(Call *c, size_t i) {
  napi_valuetype t;
  if (napi_typeof(c->env, c->argv[i], &t) != napi_ok) return 0;
  return t == napi_null || t == napi_undefined;
}

// A Float32Array (or Int32Array when `i32`) argument holding at least `need` elements; NULL (and a pending
// exception) otherwise. `optional` accepts null/undefined and returns NULL without failing.
static void *arg_array(Call *c, size_t i, int64_t need, int i32, int optional) {
  if (c->failed) return NULL;
  if (optional && is_null(c, i)) return NULL;
  bool is_ta = false;
  napi_is_typedarray(c->env, c->argv[i], &is_ta);
  if (!is_ta) {
    fail(c, i32 ? "oreal_blas: expected an Int32Array" : "oreal_blas: expected a Float32Array");
    return NULL;
  }
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  napi_value ab;
  size_t off = 0;
  if (napi_get_typedarray_info(c->env, c->argv[i], &type, &length, &data, &ab, &off) != napi_ok) {
    fail(c, "oreal_blas: cannot read a typed array");
    return NULL;
  }
  if (type != (i32 ? napi_int32_array : napi_float32_array)) {
    fail(c, i32 ? "oreal_blas: expected an Int32Array" : "oreal_blas: expected a Float32Array");
    return NULL;
  }
  if (need < 0 || (int64_t)length < need) {
    fail(c, "oreal_blas: array too short for the given sizes");
    return NULL;
  }
  return data;
}

static napi_value undef(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

// sgemm(transA, transB, M, N, K, A, B, C, accumulate): C (M×N, row-major) = or += op(A)·op(B).
static napi_value js_sgemm(napi_env env, napi_callback_info info) {
  Call c = {.env = env};
  if (!get_args(&c, info, 9)) return NULL;
  int ta = arg_bool(&c, 0), tb = arg_bool(&c, 1);
  int64_t M = arg_int(&c, 2), N = arg_int(&c, 3), K = arg_int(&c, 4);
  int acc = arg_bool(&c, 8);
  if (!c.failed && (M < 0 || N < 0 || K < 0 || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX))
    fail(&c, "oreal_blas: bad GEMM size");
  const float *A = arg_array(&c, 5, M * K, 0, 0);
  const float *B = arg_array(&c, 6, K * N, 0, 0);
  float *C = arg_array(&c, 7, M * N, 0, 0);
  if (c.failed) return NULL;
  if (M == 0 || N == 0) return undef(env);
  if (K == 0) {
    if (!acc) memset(C, 0, (size_t)(M * N) * sizeof(float));
    return undef(env);
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N,
              (blasint)K, 1.0f, A, (blasint)(ta ? M : K), B, (blasint)(tb ? K : N), acc ? 1.0f : 0.0f, C, (blasint)N);
  return undef(env);
}

static napi_value js_set_threads(napi_env env, napi_callback_info info) {
  Call c = {.env = env};
  if (!get_args(&c, info, 1)) return NULL;
  int64_t n = arg_int(&c, 0);
  if (c.failed) return NULL;
  if (n < 1) n = 1;
  openblas_set_num_threads((int)n);
  return undef(env);
}

static napi_value js_threads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  napi_create_int32(env, openblas_get_num_threads(), &v);
  return v;
}

static napi_value js_core_name(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  const char *s = openblas_get_corename();
  napi_create_string_utf8(env, s ? s : "unknown", NAPI_AUTO_LENGTH, &v);
  return v;
}

// ---- row kernels (same math as jsRowKernels in src/engine/kernels.ts; float32 data, float accumulation in double
// where a row is reduced) --------------------------------------------------------------------------------------------

// softmaxRows(x, y, rows, cols)
static napi_value js_softmax_rows(napi_env env, napi_callback_info info) {
  Call c = {.env = env};
  if (!get_args(&c, info, 4)) return NULL;
  int64_t rows = arg_int(&c, 2), cols = arg_int(&c, 3);
  const float *x = arg_array(&c, 0, rows * cols, 0, 0);
  float *y = arg_array(&c, 1, rows * cols, 0, 0);
  if (c.failed) return NULL;
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    float m = -INFINITY;
    for (int64_t j = 0; j < cols; j++) m = xr[j] > m ? xr[j] : m;
    if (m == -INFINITY) m = 0;
    double s = 0;
    for (int64_t j = 0; j < cols; j++) {
      float e = expf(xr[j] - m);
      yr[j] = e;
      s += e;
    }
    float inv = s > 0 ? (float)(1.0 / s) : 0.0f;
    for (int64_t j = 0; j < cols; j++) yr[j] *= inv;
  }
  return undef(env);
}

// softmaxBackwardRows(y, dy, dx, rows, cols)
static napi_value js_softmax_backward_rows(napi_env env, napi_callback_info info) {
  Call c = {.env = env};
  if (!get_args(&c, info, 5)) return NULL;
  int64_t rows = arg_int(&c, 3), cols = arg_int(&c, 4);
  const float *y = arg_array(&c, 0, rows * cols, 0, 0);
  const float *dy = arg_array(&c, 1, rows * cols, 0, 0);
  float *dx = arg_array(&c, 2, rows * cols, 0, 0);
  if (c.failed) return NULL;
  for (int64_t r = 0; r < rows; r++) {
    const int64_t o = r * cols;
    double s = 0;
    for (int64_t j = 0; j < cols; j++) s += (double)dy[o + j] * y[o + j];
    const float sf = (float)s;
    for (int64_t j = 0; j < cols; j++) dx[o + j] = y[o + j] * (dy[o + j] - sf);
  }
  return undef(env);
}

// rmsnormForward(x, w, y, rstd | null, rows, cols, eps)
static napi_value js_rmsnorm_forward(napi_env env, napi_callback_info info) {
  Call c = {.env = env};
  if (!get_args(&c, info, 7)) return NULL;
  int64_t rows = arg_int(&c, 4), cols = arg_int(&c, 5);
  double eps = arg_num(&c, 6);
  const float *x = arg_array(&c, 0, rows * cols, 0, 0);
  const float *w = arg_array(&c, 1, cols, 0, 0);
  float *y = arg_array(&c, 2, rows * cols, 0, 0);
  float *rstd = arg_array(&c, 3, rows, 0, 1);
  if (c.failed) return NULL;
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t j = 0;
    for (; j + 4 <= cols; j += 4) {
      s0 += xr[j] * xr[j];
      s1 += xr[j + 1] * xr[j + 1];
      s2 += xr[j + 2] * xr[j + 2];
      s3 += xr[j + 3] * xr[j + 3];
    }
    for (; j < cols; j++) s0 += xr[j] * xr[j];
    const double ss = (double)s0 + s1 + s2 + s3;
    const float rs = (float)(1.0 / sqrt(ss / (double)cols + eps));
    if (rstd) rstd[r] = rs;
    for (j = 0; j < cols; j++) yr[j] = xr[j] * rs * w[j];
  }
  return undef(env);
}

// rmsnormBackward(x, w, rstd, dy, dx, dw | null, rows, cols): dx overwritten, dw accumulated.
static napi_value js_rmsnorm_backward(napi_env env, napi_callback_info info) {
  Call c = {.env = env};
  if (!get_args(&c, info, 8)) return NULL;
  int64_t rows = arg_int(&c, 6), cols = arg_int(&c, 7);
  const float *x = arg_array(&c, 0, rows * cols, 0, 0);
  const float *w = arg_array(&c, 1, cols, 0, 0);
  const float *rstd = arg_array(&c, 2, rows, 0, 0);
  const float *dy = arg_array(&c, 3, rows * cols, 0, 0);
  float *dx = arg_array(&c, 4, rows * cols, 0, 0);
  float *dw = arg_array(&c, 5, cols, 0, 1);
  if (c.failed) return NULL;
  for (int64_t r = 0; r < rows; r++) {
    const int64_t o = r * cols;
    const float rs = rstd[r];
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t j = 0;
    for (; j + 4 <= cols; j += 4) {
      s0 += dy[o + j] * w[j] * x[o + j];
      s1 += dy[o + j + 1] * w[j + 1] * x[o + j + 1];
      s2 += dy[o + j + 2] * w[j + 2] * x[o + j + 2];
      s3 += dy[o + j + 3] * w[j + 3] * x[o + j + 3];
    }
    for (; j < cols; j++) s0 += dy[o + j] * w[j] * x[o + j];
    const float s = (s0 + s1) + (s2 + s3);
    if (dw)
      for (j = 0; j < cols; j++) dw[j] += dy[o + j] * x[o + j] * rs;
    const float k = rs * rs * s / (float)cols;
    for (j = 0; j < cols; j++) dx[o + j] = rs * (dy[o + j] * w[j] - x[o + j] * k);
  }
  return undef(env);
}

static inline float sigmoidf(float g) { return 1.0f / (1.0f + expf(-g)); }

// swigluForward(gate, up, out, n)
static napi_value js_swiglu_forward(napi_env env, napi_callback_info info) {
  Call c = {.env = env};
  if (!get_args(&c, info, 4)) return NULL;
  int64_t n = arg_int(&c, 3);
  const float *g = arg_array(&c, 0, n, 0, 0);
  const float *u = arg_array(&c, 1, n, 0, 0);
  float *o = arg_array(&c, 2, n, 0, 0);
  if (c.failed) return NULL;
  for (int64_t i = 0; i < n; i++) o[i] = g[i] * sigmoidf(g[i]) * u[i];
  return undef(env);
}

// swigluBackward(gate, up, dout, dgate, dup, n)
static napi_value js_swiglu_backward(napi_env env, napi_callback_info info) {
  Call c = {.env = env};
  if (!get_args(&c, info, 6)) return NULL;
  int64_t n = arg_int(&c, 5);
  const float *g = arg_array(&c, 0, n, 0, 0);
  const float *u = arg_array(&c, 1, n, 0, 0);
  const float *d = arg_array(&c, 2, n, 0, 0);
  float *dg = arg_array(&c, 3, n, 0, 0);
  float *du = arg_array(&c, 4, n, 0, 0);
  if (c.failed) return NULL;
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i], ui = u[i], di = d[i];
    const float s = sigmoidf(gi);
    dg[i] = di * ui * s * (1.0f + gi * (1.0f - s));
    du[i] = di * gi * s;
  }
  return undef(env);
}

// rope(x, out, T, H, D, positions, cos, sin, inverse); positions are checked in TypeScript against the tables.
static napi_value js_rope(napi_env env, napi_callback_info info) {
  Call c = {.env = env};
  if (!get_args(&c, info, 9)) return NULL;
  int64_t T = arg_int(&c, 2), H = arg_int(&c, 3), D = arg_int(&c, 4);
  int inv = arg_bool(&c, 8);
  const float *x = arg_array(&c, 0, T * H * D, 0, 0);
  float *out = arg_array(&c, 1, T * H * D, 0, 0);
  const int32_t *pos = arg_array(&c, 5, T, 1, 0);
  if (c.failed) return NULL;
  const int64_t h = D / 2;
  int64_t maxPos = 0;
  for (int64_t t = 0; t < T; t++) {
    if (pos[t] < 0) {
      fail(&c, "oreal_blas: negative rope position");
      return NULL;
    }
    if (pos[t] > maxPos) maxPos = pos[t];
  }
  const float *cs = arg_array(&c, 6, (maxPos + 1) * h, 0, 0);
  const float *sn = arg_array(&c, 7, (maxPos + 1) * h, 0, 0);
  if (c.failed) return NULL;
  const float sg = inv ? -1.0f : 1.0f;
  for (int64_t t = 0; t < T; t++) {
    const float *ct = cs + (int64_t)pos[t] * h;
    const float *st = sn + (int64_t)pos[t] * h;
    for (int64_t k = 0; k < H; k++) {
      const int64_t o = (t * H + k) * D;
      for (int64_t i = 0; i < h; i++) {
        const float a = x[o + i], b = x[o + h + i], cc = ct[i], s = sg * st[i];
        out[o + i] = a * cc - b * s;
        out[o + h + i] = b * cc + a * s;
      }
    }
  }
  return undef(env);
}

// add(a, b, out, n)
static napi_value js_add(napi_env env, napi_callback_info info) {
  Call c = {.env = env};
  if (!get_args(&c, info, 4)) return NULL;
  int64_t n = arg_int(&c, 3);
  const float *a = arg_array(&c, 0, n, 0, 0);
  const float *b = arg_array(&c, 1, n, 0, 0);
  float *o = arg_array(&c, 2, n, 0, 0);
  if (c.failed) return NULL;
  for (int64_t i = 0; i < n; i++) o[i] = a[i] + b[i];
  return undef(env);
}

// axpy(alpha, x, y, n)
static napi_value js_axpy(napi_env env, napi_callback_info info) {
  Call c = {.env = env};
  if (!get_args(&c, info, 4)) return NULL;
  double alpha = arg_num(&c, 0);
  int64_t n = arg_int(&c, 3);
  const float *x = arg_array(&c, 1, n, 0, 0);
  float *y = arg_array(&c, 2, n, 0, 0);
  if (c.failed) return NULL;
  const float a = (float)alpha;
  for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
  return undef(env);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sgemm", NULL, js_sgemm, NULL, NULL, NULL, napi_default, NULL},
      {"setThreads", NULL, js_set_threads, NULL, NULL, NULL, napi_default, NULL},
      {"threads", NULL, js_threads, NULL, NULL, NULL, napi_default, NULL},
      {"coreName", NULL, js_core_name, NULL, NULL, NULL, napi_default, NULL},
      {"softmaxRows", NULL, js_softmax_rows, NULL, NULL, NULL, napi_default, NULL},
      {"softmaxBackwardRows", NULL, js_softmax_backward_rows, NULL, NULL, NULL, napi_default, NULL},
      {"rmsnormForward", NULL, js_rmsnorm_forward, NULL, NULL, NULL, napi_default, NULL},
      {"rmsnormBackward", NULL, js_rmsnorm_backward, NULL, NULL, NULL, napi_default, NULL},
      {"swigluForward", NULL, js_swiglu_forward, NULL, NULL, NULL, napi_default, NULL},
      {"swigluBackward", NULL, js_swiglu_backward, NULL, NULL, NULL, napi_default, NULL},
      {"rope", NULL, js_rope, NULL, NULL, NULL, napi_default, NULL},
      {"add", NULL, js_add, NULL, NULL, NULL, napi_default, NULL},
      {"axpy", NULL, js_axpy, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

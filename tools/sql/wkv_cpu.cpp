// The RWKV-7 WKV recurrence (docs/rwkv7-spec.md §2.3 step 11) for training on the CPU, forward
// and backward, one (batch, head) pair per OpenMP task. A tool for tools/sql/train.py, not part
// of the package: train.py checks it against its plain PyTorch loop before using it.
//
// State S[i][j], i = value index, j = key index, zero at t = 0:
//   S_t = S_{t-1} diag(w_t) + (S_{t-1} a_t) b_t^T + v_t k_t^T,   y_t = S_t r_t
// The forward keeps the state at the start of every chunk of CH tokens; the backward recomputes
// a chunk's states into a buffer that stays in cache (keeping every S_t would write a few hundred
// MB per layer for a 6,000-token batch, which made the kernel memory-bound).
#include <torch/extension.h>
#include <algorithm>
#include <vector>

namespace {

constexpr int64_t N = 64;
constexpr int64_t CH = 16;

// out = S a, for S row-major N x N.
inline void mat_vec(const float *S, const float *a, float *out) {
  for (int64_t i = 0; i < N; ++i) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < N; ++j) s += S[i * N + j] * a[j];
    out[i] = s;
  }
}

// One token's update of S (row-major N x N) in place; writes y_t = S_t r_t if y is not null.
inline void step(float *S, const float *rt, const float *wt, const float *kt, const float *vt,
                 const float *at, const float *bt, float *y) {
  float sa[N];
  mat_vec(S, at, sa);
  for (int64_t i = 0; i < N; ++i) {
    float *row = S + i * N;
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t j = 0; j < N; ++j) {
      row[j] = row[j] * wt[j] + sa[i] * bt[j] + vt[i] * kt[j];
      acc += row[j] * rt[j];
    }
    if (y) y[i] = acc;
  }
}

// inputs [B, T, H, N] contiguous; returns y [B, T, H, N] and the chunk-start states
// [B, H, ceil(T / CH), N, N].
std::vector<torch::Tensor> forward(torch::Tensor r, torch::Tensor w, torch::Tensor k,
                                   torch::Tensor v, torch::Tensor a, torch::Tensor b) {
  const int64_t B = r.size(0), T = r.size(1), H = r.size(2), NC = (T + CH - 1) / CH;
  TORCH_CHECK(r.size(3) == N, "head size must be 64");
  auto y = torch::zeros_like(r);
  auto states = torch::empty({B, H, NC, N, N}, r.options());
  const float *R = r.data_ptr<float>(), *W = w.data_ptr<float>(), *K = k.data_ptr<float>(),
              *V = v.data_ptr<float>(), *A = a.data_ptr<float>(), *Bv = b.data_ptr<float>();
  float *Y = y.data_ptr<float>(), *ST = states.data_ptr<float>();
#pragma omp parallel for schedule(dynamic)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t bi = bh / H, h = bh % H;
    std::vector<float> S(N * N, 0.0f);
    for (int64_t t = 0; t < T; ++t) {
      if (t % CH == 0) std::copy(S.begin(), S.end(), ST + ((bi * H + h) * NC + t / CH) * N * N);
      const int64_t o = ((bi * T + t) * H + h) * N;
      step(S.data(), R + o, W + o, K + o, V + o, A + o, Bv + o, Y + o);
    }
  }
  return {y, states};
}

// Gradients of the inputs (r, w, k, v, a, b) from dy and the forward's states.
std::vector<torch::Tensor> backward(torch::Tensor r, torch::Tensor w, torch::Tensor k,
                                    torch::Tensor v, torch::Tensor a, torch::Tensor b,
                                    torch::Tensor states, torch::Tensor dy) {
  const int64_t B = r.size(0), T = r.size(1), H = r.size(2);
  auto dr = torch::zeros_like(r), dw = torch::zeros_like(r), dk = torch::zeros_like(r);
  auto dv = torch::zeros_like(r), da = torch::zeros_like(r), db = torch::zeros_like(r);
  const float *R = r.data_ptr<float>(), *W = w.data_ptr<float>(), *K = k.data_ptr<float>(),
              *V = v.data_ptr<float>(), *A = a.data_ptr<float>(), *Bv = b.data_ptr<float>(),
              *ST = states.data_ptr<float>(), *DY = dy.data_ptr<float>();
  float *DR = dr.data_ptr<float>(), *DW = dw.data_ptr<float>(), *DK = dk.data_ptr<float>(),
        *DV = dv.data_ptr<float>(), *DA = da.data_ptr<float>(), *DB = db.data_ptr<float>();
  const int64_t NC = (T + CH - 1) / CH;
#pragma omp parallel for schedule(dynamic)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t bi = bh / H, h = bh % H;
    std::vector<float> dS(N * N, 0.0f), buf((CH + 1) * N * N);
    float sa[N], dsa[N];
    for (int64_t c = NC - 1; c >= 0; --c) {
      // buf[u] = the state before token c*CH + u, buf[u + 1] = after it
      const int64_t t0 = c * CH, t1 = std::min(T, t0 + CH);
      const float *start = ST + ((bi * H + h) * NC + c) * N * N;
      std::copy(start, start + N * N, buf.begin());
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t o = ((bi * T + t) * H + h) * N;
        float *next = buf.data() + (t - t0 + 1) * N * N;
        std::copy(next - N * N, next, next);
        step(next, R + o, W + o, K + o, V + o, A + o, Bv + o, nullptr);
      }
      for (int64_t t = t1 - 1; t >= t0; --t) {
        const int64_t o = ((bi * T + t) * H + h) * N;
        const float *rt = R + o, *wt = W + o, *kt = K + o, *vt = V + o, *at = A + o, *bt = Bv + o;
        const float *dyt = DY + o;
        const float *St = buf.data() + (t - t0 + 1) * N * N, *Sp = St - N * N;
        float *drt = DR + o, *dwt = DW + o, *dkt = DK + o, *dvt = DV + o, *dat = DA + o, *dbt = DB + o;
        // y_t = S_t r_t
        for (int64_t i = 0; i < N; ++i)
#pragma omp simd
          for (int64_t j = 0; j < N; ++j) {
            drt[j] += St[i * N + j] * dyt[i];
            dS[i * N + j] += dyt[i] * rt[j];
          }
        mat_vec(Sp, at, sa);
        for (int64_t i = 0; i < N; ++i) {
          float dvi = 0.0f, dsai = 0.0f;
#pragma omp simd reduction(+ : dvi, dsai)
          for (int64_t j = 0; j < N; ++j) {
            const float g = dS[i * N + j];
            dvi += g * kt[j];
            dsai += g * bt[j];
            dkt[j] += g * vt[i];
            dbt[j] += g * sa[i];
            dwt[j] += g * Sp[i * N + j];
          }
          dvt[i] = dvi;
          dsa[i] = dsai;
        }
        for (int64_t i = 0; i < N; ++i)
#pragma omp simd
          for (int64_t j = 0; j < N; ++j) {
            dat[j] += Sp[i * N + j] * dsa[i];
            dS[i * N + j] = dS[i * N + j] * wt[j] + dsa[i] * at[j];
          }
      }
    }
  }
  return {dr, dw, dk, dv, da, db};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "WKV7 forward (y, states)");
  m.def("backward", &backward, "WKV7 backward (dr, dw, dk, dv, da, db)");
}

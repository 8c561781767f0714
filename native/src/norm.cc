// Row-wise kernels: softmax, log-softmax and the two normalisations, with their gradients.
// Every row is independent, so rows are shared out over the threads. Row statistics (sums,
// means, variances) are accumulated in float SIMD lanes folded into doubles every 64 vectors.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "parallel.h"
#include "rows.h"
#include "simd.h"

namespace amend {

// Σ x of a row in double lanes: exact to double rounding whatever the values, for the rows whose
// float-lane sums are too coarse (see MeanParts).
static double row_sum_double(const float* x, int64_t n) {
  constexpr int H = kVLH;
  vdh acc0 = vdh{}, acc1 = vdh{};
  int64_t i = 0;
  for (; i + kVL <= n; i += kVL) acc0 += vwiden_half(x + i), acc1 += vwiden_half(x + i + H);
  acc0 += acc1;
  double total = 0;
  for (int l = 0; l < H; l++) total += acc0[l];
  for (; i < n; i++) total += x[i];
  return total;
}

template <class F>
static void for_rows(int64_t rows, int64_t cols, F&& f) {
  parallel_for(rows, rows * cols * 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) f(r);
  });
}

void softmax(const float* x, float* out, int64_t rows, int64_t cols) {
  for_rows(rows, cols, [&](int64_t r) {
    const float* xr = x + r * cols;
    float* o = out + r * cols;
    float mx = row_max(xr, cols);
    if (mx == -INFINITY) {  // nothing to attend: all zeros rather than 0/0
      std::memset(o, 0, sizeof(float) * size_t(cols));
      return;
    }
    double s = row_sum(cols, [&](int64_t i, int64_t n) {
      vf e = vexp(load_n(xr + i, n, -INFINITY) - mx);  // padding lanes give e^-inf = 0
      store_n(o + i, e, n);
      return e;
    });
    float inv = float(1.0 / s);
    for (int64_t i = 0; i < cols; i++) o[i] *= inv;
  });
}

void softmax_backward(const float* y, const float* gy, float* gx, int64_t rows, int64_t cols) {
  for_rows(rows, cols, [&](int64_t r) {
    const float *yr = y + r * cols, *gr = gy + r * cols;
    float* g = gx + r * cols;
    float dot = float(row_sum(cols, [&](int64_t i, int64_t n) { return load_n(yr + i, n) * load_n(gr + i, n); }));
    for (int64_t i = 0; i < cols; i++) g[i] = yr[i] * (gr[i] - dot);
  });
}

void log_softmax(const float* x, float* out, int64_t rows, int64_t cols) {
  for_rows(rows, cols, [&](int64_t r) {
    const float* xr = x + r * cols;
    float* o = out + r * cols;
    float mx = row_max(xr, cols);
    double s = row_sum(cols, [&](int64_t i, int64_t n) {
      return vexp(load_n(xr + i, n, -INFINITY) - mx);
    });
    double l = double(mx) + std::log(s);
    for (int64_t i = 0; i < cols; i++) o[i] = float(double(xr[i]) - l);
  });
}

void log_softmax_backward(const float* y, const float* gy, float* gx, int64_t rows, int64_t cols) {
  for_rows(rows, cols, [&](int64_t r) {
    const float *yr = y + r * cols, *gr = gy + r * cols;
    float* g = gx + r * cols;
    float s = float(row_sum(cols, [&](int64_t i, int64_t n) { return load_n(gr + i, n); }));
    int64_t i = 0;
    for (; i + kVL <= cols; i += kVL) vstore(g + i, vload(gr + i) - vexp(vload(yr + i)) * s);
    for (; i < cols; i++) g[i] = gr[i] - std::exp(yr[i]) * s;
  });
}

// Column sums of gradient terms over all rows (for gw, gb). Threads own column blocks, so the
// sums are deterministic and each one adds up in row order.
template <class F>
static void column_accumulate(int64_t rows, int64_t cols, F&& f) {
  int T = num_threads();
  int64_t block = std::max<int64_t>(64, ((cols + T - 1) / T + kVL - 1) / kVL * kVL);
  int64_t nb = (cols + block - 1) / block;
  parallel_for(nb, rows * cols * 2, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      int64_t j0 = b * block, j1 = std::min(cols, j0 + block);
      for (int64_t r = 0; r < rows; r++) f(r, j0, j1);
    }
  });
}

// LayerNorm (centre = true) or RMSNorm of one row in double throughout. For the rows whose
// statistics overflow the float lanes of the fast path: |x| from ~1.8e19 on squares to infinity
// (and a NaN anywhere ends up here too, and stays NaN). The output is computed in double as well,
// since rstd may be subnormal in float (|x| beyond ~1e37).
static void norm_row_double(const float* x, const float* w, const float* b, float* o, float* mean, float* rstd,
                            int64_t cols, float eps, bool centre) {
  double mu = 0, var = 0;
  if (centre) {
    for (int64_t j = 0; j < cols; j++) mu += x[j];
    mu /= double(cols);
  }
  for (int64_t j = 0; j < cols; j++) var += (double(x[j]) - mu) * (double(x[j]) - mu);
  double rs = 1.0 / std::sqrt(var / double(cols) + double(eps));
  if (mean) *mean = float(mu);
  *rstd = float(rs);
  for (int64_t j = 0; j < cols; j++)
    o[j] = float((double(x[j]) - mu) * rs * (w ? double(w[j]) : 1.0) + (b ? double(b[j]) : 0.0));
}

// The row mean for subtracting in float lanes: x - mean is computed as (x - hi) - lo. The float
// mean alone (lo = 0) is off by up to half an ulp of |mean| plus the float lanes' summing error,
// which is negligible for ordinary rows but not for rows with a large common offset: 3000 ± 0.01
// over 768 columns came out with errors of 6e-3. Where that error, scaled by rstd, could exceed
// kMeanSlack, hi + lo holds the mean to double precision (x - hi is then exact wherever x is
// within a factor 2 of the mean, and subtracting lo rounds only relative to the difference).
// Ordinary rows keep lo = 0 and so their previous rounding bit for bit.
constexpr double kMeanSlack = 0x1p-22;  // ~2.4e-7 of a normalised unit: a few float ulps at 1
struct MeanParts {
  float hi, lo;
};

void layer_norm(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd,
                int64_t rows, int64_t cols, float eps) {
  for_rows(rows, cols, [&](int64_t r) {
    const float* xr = x + r * cols;
    float* o = out + r * cols;
    float mu = float(row_sum(cols, [&](int64_t i, int64_t n) { return load_n(xr + i, n); }) / double(cols));
    // Σ(x - mu) measures how far the float mean is off; Σ(x - mu)² is the variance about it.
    std::array<double, 2> dev = row_sums<2>(cols, [&](int64_t i, int64_t n) {
      vf d = load_n(xr + i, n, mu) - mu;  // padding lanes hold mu: d = 0
      return std::array<vf, 2>{d, d * d};
    });
    double var = dev[1] / double(cols);
    if (!std::isfinite(var)) return norm_row_double(xr, w, b, o, &mean[r], &rstd[r], cols, eps, true);
    MeanParts m{mu, 0.f};
    if (std::fabs(dev[0] / double(cols)) > kMeanSlack * std::sqrt(var + double(eps))) {
      double exact = row_sum_double(xr, cols) / double(cols);
      m.hi = float(exact);
      m.lo = float(exact - double(m.hi));
      var = row_sum(cols, [&](int64_t i, int64_t n) {
              vf d = (load_n(xr + i, n, m.hi) - m.hi) - m.lo;
              for (int64_t l = n; l < kVL; l++) d[l] = 0.f;  // padding lanes
              return d * d;
            }) /
            double(cols);
    }
    float rs = float(1.0 / std::sqrt(var + double(eps)));
    mean[r] = m.hi;
    rstd[r] = rs;
    float hi = m.hi, lo = m.lo;
    if (w && b) {
      for (int64_t j = 0; j < cols; j++) o[j] = ((xr[j] - hi) - lo) * rs * w[j] + b[j];
    } else if (w) {
      for (int64_t j = 0; j < cols; j++) o[j] = ((xr[j] - hi) - lo) * rs * w[j];
    } else if (b) {
      for (int64_t j = 0; j < cols; j++) o[j] = ((xr[j] - hi) - lo) * rs + b[j];
    } else {
      for (int64_t j = 0; j < cols; j++) o[j] = ((xr[j] - hi) - lo) * rs;
    }
  });
}

void layer_norm_backward(const float* x, const float* w, const float* mean, const float* rstd, const float* gy,
                         float* gx, float* gw, float* gb, int64_t rows, int64_t cols) {
  // With xhat = (x - mu)·rs and g = gy·w:  gx = rs·(g - mean(g) - xhat·mean(g·xhat)).
  // The saved mean is the forward's hi; lo is recovered as the mean of x - hi (see MeanParts).
  std::vector<float> los(gw ? size_t(rows) : 0);
  for_rows(rows, cols, [&](int64_t r) {
    const float *xr = x + r * cols, *gr = gy + r * cols;
    float* o = gx + r * cols;
    float mu = mean[r], rs = rstd[r];
    auto g_at = [&](int64_t i, int64_t n) { return w ? load_n(gr + i, n) * load_n(w + i, n) : load_n(gr + i, n); };
    std::array<double, 2> sums = row_sums<2>(cols, [&](int64_t i, int64_t n) {
      return std::array<vf, 2>{g_at(i, n), load_n(xr + i, n, mu) - mu};  // padding: x - mu = 0
    });
    float mg = float(sums[0] / double(cols));
    double off = sums[1] / double(cols);
    float lo = std::fabs(off) * double(rs) > kMeanSlack ? float(off) : 0.f;
    if (gw) los[size_t(r)] = lo;
    float mgx = float(row_sum(cols, [&](int64_t i, int64_t n) {
                        vf xhat = ((load_n(xr + i, n) - mu) - lo) * rs;
                        return g_at(i, n) * xhat;  // g is 0 in padding lanes
                      }) /
                      double(cols));
    for (int64_t j = 0; j < cols; j++) {
      float xhat = ((xr[j] - mu) - lo) * rs;
      float g = w ? gr[j] * w[j] : gr[j];
      o[j] = rs * (g - mg - xhat * mgx);
    }
  });
  if (gw || gb) {
    column_accumulate(rows, cols, [&](int64_t r, int64_t j0, int64_t j1) {
      const float *xr = x + r * cols, *gr = gy + r * cols;
      float mu = mean[r], rs = rstd[r];
      if (gw) {
        float lo = los[size_t(r)];
        for (int64_t j = j0; j < j1; j++) gw[j] += gr[j] * (((xr[j] - mu) - lo) * rs);
      }
      if (gb)
        for (int64_t j = j0; j < j1; j++) gb[j] += gr[j];
    });
  }
}

void rms_norm(const float* x, const float* w, float* out, float* rstd, int64_t rows, int64_t cols, float eps) {
  for_rows(rows, cols, [&](int64_t r) {
    const float* xr = x + r * cols;
    float* o = out + r * cols;
    double ms = row_sum(cols, [&](int64_t i, int64_t n) {
                  vf v = load_n(xr + i, n);
                  return v * v;
                }) /
                double(cols);
    if (!std::isfinite(ms)) return norm_row_double(xr, w, nullptr, o, nullptr, &rstd[r], cols, eps, false);
    float rs = float(1.0 / std::sqrt(ms + double(eps)));
    rstd[r] = rs;
    if (w) {
      for (int64_t j = 0; j < cols; j++) o[j] = xr[j] * rs * w[j];
    } else {
      for (int64_t j = 0; j < cols; j++) o[j] = xr[j] * rs;
    }
  });
}

void rms_norm_backward(const float* x, const float* w, const float* rstd, const float* gy, float* gx, float* gw,
                       int64_t rows, int64_t cols) {
  // y = x·rs·w:  gx = rs·(g - xhat·mean(g·xhat)) with g = gy·w, xhat = x·rs.
  for_rows(rows, cols, [&](int64_t r) {
    const float *xr = x + r * cols, *gr = gy + r * cols;
    float* o = gx + r * cols;
    float rs = rstd[r];
    float mgx = float(row_sum(cols, [&](int64_t i, int64_t n) {
                        vf g = w ? load_n(gr + i, n) * load_n(w + i, n) : load_n(gr + i, n);
                        return g * (load_n(xr + i, n) * rs);
                      }) /
                      double(cols));
    for (int64_t j = 0; j < cols; j++) {
      float g = w ? gr[j] * w[j] : gr[j];
      o[j] = rs * (g - xr[j] * rs * mgx);
    }
  });
  if (gw) {
    column_accumulate(rows, cols, [&](int64_t r, int64_t j0, int64_t j1) {
      const float *xr = x + r * cols, *gr = gy + r * cols;
      float rs = rstd[r];
      for (int64_t j = j0; j < j1; j++) gw[j] += gr[j] * (xr[j] * rs);
    });
  }
}

}  // namespace amend

// Packed ternary x int8 matmul on CPU, exact in int32 (built at first use by mmfree/ops/ternary/cpu.py).
//
// Weight: [N, Kq] uint8, Kq = ceil(K / 4); byte i of a row holds the codes c = w + 1 in {0, 1, 2} of
// columns i + j * Kq (j = 0..3) in bits 2j..2j+1. Activations: [M, K] int8 codes.
// For each row n and quarter j, the codes at bits 2j pair with the contiguous activation slice
// x_j = x[m, j*Kq : (j+1)*Kq], so
//     sum_k x[m, k] w[n, k] = sum_j sum_i x_j[i] c_j[i]  -  sum_k x[m, k]
// The first term is an unsigned-8 x signed-8 dot product (AVX-512 VNNI vpdpbusd, or AVX2 vpmaddubsw +
// vpmaddwd: c <= 2 so the 16-bit pair sums never saturate); the second is computed once per token.
// The activations are copied into quarter planes zero-padded to a multiple of 64 bytes, so padding
// columns (whatever code they hold) and the weight row's tail contribute nothing.
// The instruction set is picked at run time (AVX-512 VNNI, else AVX2, else a portable scalar loop; each
// compiled through target attributes, so one build serves any x86-64 CPU and every path can be tested).
// Registered as torch.ops.mmfree_ternary.{gemm_int32, gemm_scaled, isa}.

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MMFREE_X86 1
#include <immintrin.h>
#else
#define MMFREE_X86 0
#endif

namespace {

constexpr int64_t kAlign = 64;   // activation planes are padded to this many bytes
constexpr int64_t kMTile = 64;   // activation rows kept hot in cache while a block of weight rows streams
constexpr int kMaxMB = 4;        // activation rows sharing each unpacked weight vector
constexpr int64_t kPrefetch = 4096;  // bytes ahead of the weight stream to prefetch (+30% from L3/DRAM)

// Activation quarter planes: xp[m][j][i] = x[m, j*Kq + i] (0 past K or past Kq), and row sums.
struct Planes {
  std::vector<int8_t> data;  // [M, 4, Kp]
  std::vector<int32_t> sums;  // [M]
  int64_t Kp;
};

Planes make_planes(const int8_t* x, int64_t M, int64_t K, int64_t Kq) {
  Planes p;
  p.Kp = ((Kq + kAlign - 1) / kAlign) * kAlign;
  p.data.assign(static_cast<size_t>(M * 4 * p.Kp), 0);
  p.sums.assign(static_cast<size_t>(M), 0);
  for (int64_t m = 0; m < M; ++m) {
    const int8_t* xr = x + m * K;
    int32_t s = 0;
    for (int64_t k = 0; k < K; ++k) s += xr[k];
    p.sums[m] = s;
    for (int64_t j = 0; j < 4; ++j) {
      const int64_t lo = j * Kq;
      const int64_t n = std::max<int64_t>(0, std::min(Kq, K - lo));
      if (n > 0) std::memcpy(p.data.data() + (m * 4 + j) * p.Kp, xr + lo, static_cast<size_t>(n));
    }
  }
  return p;
}

// out[b] = sum_j sum_i c_j[i] * xs[b][j*Kp + i] for one weight row w of Kq bytes and MB activation rows.
using DotFn = void (*)(const uint8_t* w, int64_t Kq, const int8_t* const* xs, int64_t Kp, int32_t* out);

template <int MB>
void dot_scalar(const uint8_t* w, int64_t Kq, const int8_t* const* xs, int64_t Kp, int32_t* out) {
  for (int b = 0; b < MB; ++b) out[b] = 0;
  for (int64_t i = 0; i < Kq; ++i) {
    const uint32_t byte = w[i];
    for (int j = 0; j < 4; ++j) {
      const int32_t c = static_cast<int32_t>((byte >> (2 * j)) & 3u);
      for (int b = 0; b < MB; ++b) out[b] += c * xs[b][j * Kp + i];
    }
  }
}

#if MMFREE_X86
template <int MB>
__attribute__((target("avx2"))) void dot_avx2(const uint8_t* w, int64_t Kq, const int8_t* const* xs,
                                                int64_t Kp, int32_t* out) {
  __m256i acc[MB][4];  // one chain per quarter keeps four multiply-adds in flight
  for (int b = 0; b < MB; ++b)
    for (int j = 0; j < 4; ++j) acc[b][j] = _mm256_setzero_si256();
  const __m256i m3 = _mm256_set1_epi8(3);
  const __m256i ones = _mm256_set1_epi16(1);
  alignas(32) uint8_t tail[32] = {0};  // the row's last partial vector (no byte-masked loads in AVX2)
  const int64_t full = Kq - Kq % 32;
  if (full < Kq) std::memcpy(tail, w + full, static_cast<size_t>(Kq - full));
  for (int64_t i = 0; i < Kq; i += 32) {
    _mm_prefetch(reinterpret_cast<const char*>(w + i + kPrefetch), _MM_HINT_T0);  // never faults
    const uint8_t* src = i < full ? w + i : tail;
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
    __m256i c[4];
    c[0] = _mm256_and_si256(wv, m3);
    c[1] = _mm256_and_si256(_mm256_srli_epi16(wv, 2), m3);
    c[2] = _mm256_and_si256(_mm256_srli_epi16(wv, 4), m3);
    c[3] = _mm256_and_si256(_mm256_srli_epi16(wv, 6), m3);
    for (int b = 0; b < MB; ++b) {
      for (int j = 0; j < 4; ++j) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs[b] + j * Kp + i));
        acc[b][j] = _mm256_add_epi32(acc[b][j], _mm256_madd_epi16(_mm256_maddubs_epi16(c[j], x), ones));
      }
    }
  }
  for (int b = 0; b < MB; ++b) {
    const __m256i s = _mm256_add_epi32(_mm256_add_epi32(acc[b][0], acc[b][1]),
                                       _mm256_add_epi32(acc[b][2], acc[b][3]));
    alignas(32) int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
    int32_t t = 0;
    for (int l = 0; l < 8; ++l) t += lanes[l];
    out[b] = t;
  }
}

template <int MB>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void dot_avx512(const uint8_t* w, int64_t Kq,
                                                                          const int8_t* const* xs, int64_t Kp,
                                                                          int32_t* out) {
  __m512i acc[MB][4];
  for (int b = 0; b < MB; ++b)
    for (int j = 0; j < 4; ++j) acc[b][j] = _mm512_setzero_si512();
  const __m512i m3 = _mm512_set1_epi8(3);
  for (int64_t i = 0; i < Kq; i += 64) {
    // masked load: bytes past Kq read as 0 (and meet zero activations)
    const int64_t left = Kq - i;
    const __mmask64 mask = left >= 64 ? ~0ULL : ((1ULL << left) - 1);
    _mm_prefetch(reinterpret_cast<const char*>(w + i + kPrefetch), _MM_HINT_T0);  // never faults
    const __m512i wv = _mm512_maskz_loadu_epi8(mask, w + i);
    __m512i c[4];
    c[0] = _mm512_and_si512(wv, m3);
    c[1] = _mm512_and_si512(_mm512_srli_epi16(wv, 2), m3);
    c[2] = _mm512_and_si512(_mm512_srli_epi16(wv, 4), m3);
    c[3] = _mm512_and_si512(_mm512_srli_epi16(wv, 6), m3);
    for (int b = 0; b < MB; ++b)
      for (int j = 0; j < 4; ++j)
        acc[b][j] = _mm512_dpbusd_epi32(acc[b][j], c[j], _mm512_loadu_si512(xs[b] + j * Kp + i));
  }
  for (int b = 0; b < MB; ++b) {
    const __m512i s = _mm512_add_epi32(_mm512_add_epi32(acc[b][0], acc[b][1]),
                                       _mm512_add_epi32(acc[b][2], acc[b][3]));
    out[b] = _mm512_reduce_add_epi32(s);
  }
}
#endif

// The dot kernels of one instruction set, indexed by the number of activation rows (1..kMaxMB).
struct Kernels {
  DotFn fn[kMaxMB + 1];
};

template <template <int> class F>
Kernels table() {
  return Kernels{{nullptr, F<1>::fn, F<2>::fn, F<3>::fn, F<4>::fn}};
}

template <int MB>
struct Scalar {
  static constexpr DotFn fn = &dot_scalar<MB>;
};
#if MMFREE_X86
template <int MB>
struct Avx2 {
  static constexpr DotFn fn = &dot_avx2<MB>;
};
template <int MB>
struct Avx512 {
  static constexpr DotFn fn = &dot_avx512<MB>;
};
#endif

// The fastest instruction set this CPU (and OS) supports.
std::string best_isa() {
#if MMFREE_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vnni"))
    return "avx512vnni";
  if (__builtin_cpu_supports("avx2")) return "avx2";
#endif
  return "scalar";
}

// `isa`: "auto" (the best one), or one of "avx512vnni", "avx2", "scalar" (an error if unsupported here).
Kernels pick(const std::string& isa) {
  static const std::string best = best_isa();
  const std::string want = isa == "auto" ? best : isa;
  if (want == "scalar") return table<Scalar>();
#if MMFREE_X86
  const bool avx512 = best == "avx512vnni";
  if (want == "avx2" && (avx512 || best == "avx2")) return table<Avx2>();
  if (want == "avx512vnni" && avx512) return table<Avx512>();
#endif
  TORCH_CHECK(false, "instruction set '", want, "' is not available here (best: ", best,
              "); use 'auto', 'scalar' or one the CPU supports");
}

// Rows [n0, n1) of the [M, N] result; each value goes to store(m, n, int32 dot product).
template <typename Store>
void rows_range(const Kernels& k, const uint8_t* w, int64_t Kq, const Planes& p, int64_t M, int64_t n0,
                int64_t n1, const Store& store) {
  const int8_t* xs[kMaxMB];
  int32_t out[kMaxMB];
  for (int64_t mt = 0; mt < M; mt += kMTile) {
    const int64_t mt_end = std::min(M, mt + kMTile);
    for (int64_t n = n0; n < n1; ++n) {
      const uint8_t* wr = w + n * Kq;
      for (int64_t m = mt; m < mt_end; m += kMaxMB) {
        const int mb = static_cast<int>(std::min<int64_t>(kMaxMB, mt_end - m));
        for (int b = 0; b < mb; ++b) xs[b] = p.data.data() + (m + b) * 4 * p.Kp;
        k.fn[mb](wr, Kq, xs, p.Kp, out);
        for (int b = 0; b < mb; ++b) store(m + b, n, out[b] - p.sums[m + b]);
      }
    }
  }
}

void check_inputs(const at::Tensor& xq, const at::Tensor& packed, int64_t K) {
  TORCH_CHECK(xq.device().is_cpu() && packed.device().is_cpu(), "mmfree ternary cpp kernel: CPU tensors only");
  TORCH_CHECK(xq.dim() == 2 && xq.scalar_type() == at::kChar, "xq must be a [M, K] int8 tensor");
  TORCH_CHECK(packed.dim() == 2 && packed.scalar_type() == at::kByte, "packed must be a [N, Kq] uint8 tensor");
  TORCH_CHECK(xq.size(1) == K && packed.size(1) == (K + 3) / 4, "shapes do not match K = ", K);
  TORCH_CHECK(xq.is_contiguous() && packed.is_contiguous(), "xq and packed must be contiguous");
}

template <typename Store>
void run(const at::Tensor& xq, const at::Tensor& packed, int64_t K, const std::string& isa, const Store& store) {
  const Kernels k = pick(isa);
  const int64_t M = xq.size(0), N = packed.size(0), Kq = packed.size(1);
  if (M == 0 || N == 0) return;
  const Planes p = make_planes(xq.data_ptr<int8_t>(), M, K, Kq);
  const uint8_t* w = packed.data_ptr<uint8_t>();
  // about 64 KiB of weight bytes x activation rows per task: tiny layers stay on one thread
  const int64_t work = std::max<int64_t>(1, Kq * std::min<int64_t>(M, kMTile));
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / work);
  at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) { rows_range(k, w, Kq, p, M, n0, n1, store); });
}

at::Tensor gemm_int32(const at::Tensor& xq, const at::Tensor& packed, int64_t K, const std::string& isa) {
  check_inputs(xq, packed, K);
  const int64_t N = packed.size(0);
  at::Tensor y = at::empty({xq.size(0), N}, xq.options().dtype(at::kInt));
  int32_t* yp = y.data_ptr<int32_t>();
  run(xq, packed, K, isa, [=](int64_t m, int64_t n, int32_t v) { yp[m * N + n] = v; });
  return y;
}

at::Tensor gemm_scaled(const at::Tensor& xq, const at::Tensor& packed, int64_t K, const at::Tensor& scale,
                       const std::string& isa) {
  check_inputs(xq, packed, K);
  TORCH_CHECK(scale.dim() == 1 && scale.size(0) == xq.size(0) && scale.scalar_type() == at::kFloat &&
                  scale.is_contiguous() && scale.device().is_cpu(),
              "scale must be a contiguous [M] float32 CPU tensor");
  const int64_t N = packed.size(0);
  at::Tensor y = at::empty({xq.size(0), N}, xq.options().dtype(at::kFloat));
  float* yp = y.data_ptr<float>();
  const float* sp = scale.data_ptr<float>();
  // one rounding of the int32 sum to fp32, then one multiply: the same operations as the reference
  run(xq, packed, K, isa,
      [=](int64_t m, int64_t n, int32_t v) { yp[m * N + n] = static_cast<float>(v) * sp[m]; });
  return y;
}

// The per-token int8 quantization of `mmfree.ops.quant.int8_codes` fused in front of gemm_scaled, with
// the same float operations in the same order, so the result is bit for bit the unfused one:
// s = (1 / max(max|x|, 1e-5)) * 127 (torch evaluates `127 / t` as a reciprocal, then a product),
// codes = clamp(round_half_even(x * s), -128, 127), output = float(int32 dot) * (g / s).
at::Tensor gemm_quant(const at::Tensor& xn, const at::Tensor& packed, int64_t K, const at::Tensor& g,
                      const std::string& isa) {
  TORCH_CHECK(xn.device().is_cpu() && xn.dim() == 2 && xn.scalar_type() == at::kFloat && xn.is_contiguous(),
              "xn must be a contiguous [M, K] float32 CPU tensor");
  TORCH_CHECK(g.numel() == 1 && g.scalar_type() == at::kFloat && g.device().is_cpu(),
              "g must be a one-element float32 CPU tensor");
  const int64_t M = xn.size(0);
  at::Tensor xq = at::empty({M, K}, xn.options().dtype(at::kChar));
  at::Tensor scale = at::empty({M}, xn.options());
  const float* x = xn.data_ptr<float>();
  int8_t* q = xq.data_ptr<int8_t>();
  float* sc = scale.data_ptr<float>();
  const float gv = g.data_ptr<float>()[0];
  TORCH_CHECK(xn.size(1) == K, "xn has ", xn.size(1), " columns; K = ", K);
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * K;
    float amax = 0.0f;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(xr[k]));
    const float s = (1.0f / std::max(amax, 1e-5f)) * 127.0f;
    for (int64_t k = 0; k < K; ++k) {
      const float r = std::nearbyint(xr[k] * s);
      q[m * K + k] = static_cast<int8_t>(std::min(127.0f, std::max(-128.0f, r)));
    }
    sc[m] = gv / s;
  }
  return gemm_scaled(xq, packed, K, scale, isa);
}

std::string isa() { return best_isa(); }

}  // namespace

TORCH_LIBRARY(mmfree_ternary, lib) {
  lib.def("gemm_int32(Tensor xq, Tensor packed, int K, str isa='auto') -> Tensor");
  lib.def("gemm_scaled(Tensor xq, Tensor packed, int K, Tensor scale, str isa='auto') -> Tensor");
  lib.def("gemm_quant(Tensor xn, Tensor packed, int K, Tensor g, str isa='auto') -> Tensor");
  lib.def("isa() -> str", &isa);
}

TORCH_LIBRARY_IMPL(mmfree_ternary, CPU, lib) {
  lib.impl("gemm_int32", &gemm_int32);
  lib.impl("gemm_scaled", &gemm_scaled);
  lib.impl("gemm_quant", &gemm_quant);
}

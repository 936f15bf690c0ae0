// Branch-free float math that the compiler vectorizes: no libm calls, so that a loop calling
// these runs in SIMD registers (libm's expf/tanhf keep a loop scalar). Accuracy is within a
// few ulp of libm over the whole float range; NaN propagates.
#pragma once
#include "CKernels.h"
#include <stdint.h>
#include <string.h>

// A kernel written once and compiled three times: for AVX-512 (x86-64-v4), AVX2+FMA
// (x86-64-v3) and the baseline; `ck_isa()` picks one at each call, so tests can force each.
//
//     CK_KERNEL(double, ck_sum, (long n, const float *x), (n, x)) { ... body ... }
// The AVX-512 variant is tuned for Zen 4, which makes clang use 512-bit vectors (its Intel
// tunings stop at 256 bits); the instructions are x86-64-v4's, so it runs on any AVX-512 CPU.
#if defined(__x86_64__) && defined(__clang__)
#define CK_TARGET_V4 __attribute__((target("arch=x86-64-v4,tune=znver4")))
#define CK_TARGET_V3 __attribute__((target("arch=x86-64-v3")))
#elif defined(__x86_64__)
#define CK_TARGET_V4 __attribute__((target("arch=x86-64-v4")))
#define CK_TARGET_V3 __attribute__((target("arch=x86-64-v3")))
#else
#define CK_TARGET_V4
#define CK_TARGET_V3
#endif

#define CK_KERNEL(ret, name, params, args)                                                     \
    static inline __attribute__((always_inline)) ret name##_impl params;                       \
    CK_TARGET_V4 static ret name##_v4 params { return name##_impl args; }                      \
    CK_TARGET_V3 static ret name##_v3 params { return name##_impl args; }                      \
    static ret name##_v1 params { return name##_impl args; }                                   \
    ret name params {                                                                          \
        switch (ck_isa()) {                                                                    \
        case CK_ISA_AVX512: return name##_v4 args;                                             \
        case CK_ISA_AVX2: return name##_v3 args;                                               \
        default: return name##_v1 args;                                                        \
        }                                                                                      \
    }                                                                                          \
    static inline __attribute__((always_inline)) ret name##_impl params

#define CK_VOID_KERNEL(name, params, args)                                                     \
    static inline __attribute__((always_inline)) void name##_impl params;                      \
    CK_TARGET_V4 static void name##_v4 params { name##_impl args; }                            \
    CK_TARGET_V3 static void name##_v3 params { name##_impl args; }                            \
    static void name##_v1 params { name##_impl args; }                                         \
    void name params {                                                                         \
        switch (ck_isa()) {                                                                    \
        case CK_ISA_AVX512: name##_v4 args; break;                                             \
        case CK_ISA_AVX2: name##_v3 args; break;                                               \
        default: name##_v1 args; break;                                                        \
        }                                                                                      \
    }                                                                                          \
    static inline __attribute__((always_inline)) void name##_impl params

// Placed before an inner loop whose iterations touch disjoint memory: vectorize it without
// runtime overlap checks (which otherwise send the in-place gate loops down a scalar path).
#if defined(__clang__)
#define CK_INDEPENDENT _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define CK_INDEPENDENT _Pragma("GCC ivdep")
#else
#define CK_INDEPENDENT
#endif

#if __has_builtin(__builtin_elementwise_sqrt)
#define CK_SQRT(x) __builtin_elementwise_sqrt(x)
#else
#define CK_SQRT(x) __builtin_sqrtf(x)
#endif

#if __has_builtin(__builtin_elementwise_floor)
#define CK_FLOOR(x) __builtin_elementwise_floor(x)
#else
#define CK_FLOOR(x) __builtin_floorf(x)
#endif

/// e^x (Cephes-style: Cody-Waite range reduction and a degree-6 polynomial).
/// Arguments are clamped to [-87, 88], where the result stays a normal float. NaN gives NaN:
/// it passes the clamps (comparisons with NaN are false) and the polynomial, while the
/// exponent is built from a NaN-free copy, since converting NaN to an integer is undefined.
static inline __attribute__((always_inline)) float ck_expf(float x) {
    x = x > 88.0f ? 88.0f : x;
    x = x < -87.0f ? -87.0f : x;
    float n = CK_FLOOR(x * 1.44269504088896341f + 0.5f);
    n = n == n ? n : 0.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/// 1 / (1 + e^-x).
static inline __attribute__((always_inline)) float ck_sigmoidf(float x) {
    return 1.0f / (1.0f + ck_expf(-x));
}

/// tanh(x): an odd polynomial near zero (Cephes tanhf), 1 - 2 / (e^2|x| + 1) elsewhere.
static inline __attribute__((always_inline)) float ck_tanhf(float x) {
    float ax = __builtin_fabsf(x);
    float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = p * z * x + x;
    float large = 1.0f - 2.0f / (ck_expf(2.0f * ax) + 1.0f);
    large = __builtin_copysignf(large, x);
    return ax < 0.625f ? small : large;
}

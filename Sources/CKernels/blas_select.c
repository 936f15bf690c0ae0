// Keeps OpenBLAS on a fast kernel on CPUs that its build does not recognise.
//
// A DYNAMIC_ARCH OpenBLAS picks its kernel table when the library loads. CPUs newer than the
// build fall back to a generic table ("Prescott" in Debian's 0.3.21 on several AVX-512
// machines), which runs sgemm at a fifth of the speed. OpenBLAS itself honours
// OPENBLAS_CORETYPE, but only at load time. Its exported `gotoblas_dynamic_quit`/
// `gotoblas_dynamic_init` pair re-runs that choice, and the only way to name the table it
// picks is the environment variable, so charlm sets OPENBLAS_CORETYPE for that one call.
//
// Changing the environment is only safe while no other thread can read it, so the choice is
// made once, in a constructor that runs while the program loads, before `main` and before any
// thread starts (OpenBLAS's own constructor, a dependency's, has run by then). A user's own
// OPENBLAS_CORETYPE is left alone. The symbols are weak: with another BLAS (or a static
// OpenBLAS without them) nothing happens.
//
// CHARLM_OPENBLAS_START_CORE=NAME first moves OpenBLAS to the table NAME, as if the CPU were
// unknown to it: how the fallback path is exercised on machines OpenBLAS recognises (tests,
// and a user checking what charlm would do on a newer CPU).

#include "CKernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));
extern char *openblas_get_corename(void) __attribute__((weak));

static const char *const ck_generic_cores[] = {
    "Prescott", "Katmai", "Coppermine", "Northwood", "Banias", "Core2", "Penryn",
    "Dunnington", "Nehalem", "Atom", "Nano", "Athlon", "Opteron", "Opteron_SSE3",
    "Barcelona", "Bobcat", "Unknown", NULL,
};

const char *ck_blas_core_name(void) {
    if (!openblas_get_corename) return NULL;
    return openblas_get_corename();
}

static int ck_blas_can_reselect(void) {
    return gotoblas_dynamic_init && gotoblas_dynamic_quit && openblas_get_corename;
}

static int ck_blas_force_core(const char *name) {
    if (!ck_blas_can_reselect() || !name) return 0;
    char *saved = getenv("OPENBLAS_CORETYPE");
    char *copy = saved ? strdup(saved) : NULL;
    setenv("OPENBLAS_CORETYPE", name, 1);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    if (copy) { setenv("OPENBLAS_CORETYPE", copy, 1); free(copy); }
    else unsetenv("OPENBLAS_CORETYPE");
    return 1;
}

static int ck_is_generic_core(const char *name) {
    if (!name) return 0;
    for (int i = 0; ck_generic_cores[i]; i++) {
        if (strcasecmp(name, ck_generic_cores[i]) == 0) return 1;
    }
    return 0;
}

static const char *ck_blas_preferred_core(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
        return "SkylakeX";
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

static int ck_blas_select_fast_core(void) {
    if (getenv("OPENBLAS_CORETYPE")) return CK_BLAS_USER_CHOICE;
    if (!ck_blas_can_reselect()) return CK_BLAS_UNAVAILABLE;
    const char *current = ck_blas_core_name();
    const char *preferred = ck_blas_preferred_core();
    if (!ck_is_generic_core(current) || !preferred) return CK_BLAS_KEPT;
    ck_blas_force_core(preferred);
    return ck_is_generic_core(ck_blas_core_name()) ? CK_BLAS_KEPT : CK_BLAS_RESELECTED;
}

static char ck_blas_initial_core[64];
static int ck_blas_outcome = CK_BLAS_UNAVAILABLE;

__attribute__((constructor))
static void ck_blas_choose_core_at_load(void) {
    const char *start = getenv("CHARLM_OPENBLAS_START_CORE");
    if (start && *start && !getenv("OPENBLAS_CORETYPE")) ck_blas_force_core(start);
    const char *initial = ck_blas_core_name();
    if (initial) {
        strncpy(ck_blas_initial_core, initial, sizeof ck_blas_initial_core - 1);
        ck_blas_initial_core[sizeof ck_blas_initial_core - 1] = 0;
    }
    ck_blas_outcome = ck_blas_select_fast_core();
}

const char *ck_blas_core_at_load(void) {
    return ck_blas_initial_core[0] ? ck_blas_initial_core : NULL;
}

int ck_blas_selection(void) {
    return ck_blas_outcome;
}

extern void openblas_set_num_threads(int) __attribute__((weak));
extern int blas_thread_shutdown_(void) __attribute__((weak));

void ck_blas_use_caller_thread_only(void) {
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    // OpenBLAS starts a worker pool when it loads; charlm never hands it work (each of its own
    // threads calls BLAS single-threaded), and idle workers spin for a while before they sleep.
    if (blas_thread_shutdown_) blas_thread_shutdown_();
}

// MPI for Swift: Open MPI's and MPICH's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are
// macros that Swift cannot import, so these inline functions name the few calls charlm makes.
// Only built with the MPI trait: `swift build -c release --traits MPI`.
#pragma once
#include <mpi.h>
#include <stdint.h>

/// Starts MPI; `funneled` is set when the library allows MPI calls from the main thread of a
/// threaded process (MPI_THREAD_FUNNELED), which is how charlm uses it.
static inline int charlm_mpi_init(int *funneled) {
    int provided = 0;
    int code = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    *funneled = provided >= MPI_THREAD_FUNNELED;
    return code;
}
static inline int charlm_mpi_initialized(void) {
    int flag = 0;
    MPI_Initialized(&flag);
    return flag;
}
static inline void charlm_mpi_finalize(void) { MPI_Finalize(); }
static inline int charlm_mpi_rank(void) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}
static inline int charlm_mpi_size(void) {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    return size;
}
/// In place, summed over every rank.
static inline int charlm_mpi_allreduce_sum_float(float *values, long count) {
    return MPI_Allreduce(MPI_IN_PLACE, values, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static inline int charlm_mpi_allreduce_sum_double(double *values, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
static inline int charlm_mpi_allreduce_max_int(int *values, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
}
static inline int charlm_mpi_allreduce_minmax_u64(uint64_t value, uint64_t *min, uint64_t *max) {
    int a = MPI_Allreduce(&value, min, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    int b = MPI_Allreduce(&value, max, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    return a != MPI_SUCCESS ? a : b;
}
/// Every rank's `counts[rank]` floats, at `displacements[rank]` of `all`.
static inline int charlm_mpi_allgatherv_float(const float *mine, int count, float *all, const int *counts,
                                              const int *displacements) {
    return MPI_Allgatherv(mine, count, MPI_FLOAT, all, counts, displacements, MPI_FLOAT, MPI_COMM_WORLD);
}
static inline int charlm_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static inline void charlm_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
static inline int charlm_mpi_success(void) { return MPI_SUCCESS; }

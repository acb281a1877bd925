// CPU threading policy. moeseg parallelises its kernels itself with OpenMP (a team per op, work
// split so each thread calls single-threaded BLAS on its own tile). OpenBLAS's pthread build
// would otherwise start its own threads for every sgemm: on a 2-core machine the two pools then
// fight (each busy-waits while the other works; we measured FRRN-A training twice as slow).
// So the first time the library allocates a tensor it sets OpenBLAS to one thread; code that
// wants a threaded BLAS call (the sgemm ceiling in bench/) sets it explicitly around that call.
#pragma once

namespace moeseg {

// Idempotent; called by the allocator on first use. Returns the OpenMP thread count.
int configure_cpu_threads();

}  // namespace moeseg

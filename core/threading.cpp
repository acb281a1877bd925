// See threading.h.
#include "core/threading.h"

#include <cblas.h>
#include <omp.h>

namespace moeseg {

int configure_cpu_threads() {
  static const int threads = [] {
    openblas_set_num_threads(1);
    return omp_get_max_threads();
  }();
  return threads;
}

}  // namespace moeseg

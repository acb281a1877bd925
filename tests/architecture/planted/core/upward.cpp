// Planted: core/ reaching up into kernels/ (the include check must fail on it).
#include "kernels/elementwise.h"

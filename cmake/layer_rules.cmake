# The layer rules of the library, in one place: which layer folders each layer may include and
# links. Read by the top CMakeLists.txt (one static library per layer, each compiled against an
# include view of exactly these folders) and by tests/architecture/check_includes.cmake (the
# same rules checked on every header and source file). DESIGN.md: an arrow only points down.
# kernels/cuda and kernels/cuda_on_cpu are part of kernels; training/experiments of training.
set(MOESEG_LAYERS core kernels layers data models training bench tools)
set(MOESEG_LAYER_USES_core     core)
set(MOESEG_LAYER_USES_kernels  core kernels)
set(MOESEG_LAYER_USES_layers   core kernels layers)
set(MOESEG_LAYER_USES_data     core kernels data)
set(MOESEG_LAYER_USES_models   core kernels layers models)
set(MOESEG_LAYER_USES_training core kernels layers models data training)
set(MOESEG_LAYER_USES_bench    core kernels layers models data training bench)
set(MOESEG_LAYER_USES_tools    core kernels layers models data training bench tools)

"""numba kernels of fastvis (installed as ``fastvis.kernels``): each op as a CUDA kernel and a CPU twin."""

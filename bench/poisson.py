"""Shim: `python bench/poisson.py` runs the benchmark of `fastvis-bench poisson` (see fastvis/bench/poisson.py)."""
from fastvis.bench.poisson import main

if __name__ == "__main__":
    main()

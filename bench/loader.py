"""Shim: `python bench/loader.py` runs the benchmark of `fastvis-bench` (see fastvis/bench/loader.py)."""
from fastvis.bench.loader import main

if __name__ == "__main__":
    main()

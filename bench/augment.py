"""Shim: `python bench/augment.py` runs the benchmark of `fastvis-bench` (see fastvis/bench/augment.py)."""
from fastvis.bench.augment import main

if __name__ == "__main__":
    main()

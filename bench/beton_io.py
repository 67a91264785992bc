"""Shim: `python bench/beton_io.py` runs the benchmark of `fastvis-bench` (see fastvis/bench/beton_io.py)."""
from fastvis.bench.beton_io import main

if __name__ == "__main__":
    main()

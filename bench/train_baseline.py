"""Shim: `python bench/train_baseline.py` runs `fastvis-bench baseline` (see fastvis/bench/baseline.py)."""
from fastvis.bench.baseline import main

if __name__ == "__main__":
    main()

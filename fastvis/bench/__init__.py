"""Benchmarks behind ``fastvis-bench``: each module has a ``main()`` that prints a table and writes JSON."""

COMMANDS = {
    "beton": ("fastvis.bench.beton_io", ".beton write and random-order read against ffcv"),
    "augment": ("fastvis.bench.augment", "augmentation throughput against torchvision v2 and kornia"),
    "loader": ("fastvis.bench.loader", "loader throughput against torch DataLoader, ffcv and DALI"),
    "poisson": ("fastvis.bench.poisson", "Poisson blending against OpenCV's seamlessClone"),
    "train": ("fastvis.bench.train", "time to accuracy: fastvis-train against the plain PyTorch baseline"),
    "baseline": ("fastvis.bench.baseline", "plain PyTorch training baseline inside a time budget"),
    "defects": ("fastvis.bench.defects", "defect synthesis on radiograph crops: many/few real defects, without/with"),
    "record": ("fastvis.bench.record", "the CIFAR-10 record's script (your copy) against fastnet at the same epochs"),
    "step": ("fastvis.bench.step", "a training step's time: SGD, Muon orthogonalising in bf16 and in float32"),
    "small": ("fastvis.bench.small", "a small data set in a short budget: enough steps, against a long run"),
}

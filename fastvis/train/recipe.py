"""The recipe: every default the trainer derives, in one table, each with its unit, its reason
and the measurement behind it.

An option the user does not give takes its value from here (directly, or through a rule below
that reads the table: the learning rate for a model, optimiser and batch; the batch for a
device and a data size). ``fastvis-train --recipe`` prints the table. Evidence names a section of
bench/RESULTS.md (``RESULTS: <heading>``) or a test (``tests/...``); the suite checks that each
one exists.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["RECIPE", "Value", "batch_size", "fingerprint", "get", "keyed", "muon_ns_dtype", "muon_sgd_lr",
           "optimizer", "peak_lr", "table"]


@dataclass(frozen=True)
class Value:
    value: Any
    unit: str
    why: str
    evidence: str


_C100 = "RESULTS: CIFAR-100 on a CPU: held-out top-1 by budget"
_ABL = "RESULTS: The same components over a fixed 3 epochs"
_SCREEN = "RESULTS: The record's components on CIFAR-100 at fixed epochs"
_MUON = "RESULTS: The filters' learning rate under Muon, CIFAR-100"
_CIL10 = "RESULTS: Class-incremental at 10 epochs a task: the schedule's knobs"
_CILM = "RESULTS: Class-incremental methods at 10 epochs a task"
_CIL_RS = "RESULTS: Half of each batch from the memory at equal steps"

RECIPE: dict[str, Value] = {
    # -- models: the largest that gets the epochs it needs in the budget --------------------------------
    "ladder_cpu": Value((("fastnet_l", 8.0, 20_000), ("fastnet", 24.0, 0), ("fastnet_m", 16.0, 0),
                         ("fastnet_s", 0.0, 0)),
                        "(model, epochs the budget must give it, training images the data must have), largest first",
                        "fastnet_l (the record family's larger net) reached 75.10% held-out on CIFAR-100 at 8 epochs "
                        "and 76.26% at 12, against fastnet's 71.90% at 12 and 72.84% at 94.8 (fastnet saturates; "
                        "fastnet_l's 8 epochs take the time of about 27 of fastnet's on an AVX-512 CPU, 34 on an "
                        "AMX one; shorter runs of it are not measured; RESULTS: The record family's larger net on a "
                        "CPU); it was measured on 45,000 images only, so smaller sets keep the nets below it; "
                        "fastnet_m at 25 epochs beat fastnet_s at 21 (68.9% vs 65.7% held-out); below these epochs "
                        "the next smaller model does better in the same time; in one hour on an AVX-512 CPU fastnet "
                        "(35.2 epochs) beat fastnet_m (49.8): 72.34% against 71.52% (RESULTS: CIFAR-100 in 1 hour "
                        "with today's defaults; RESULTS: CIFAR-100 on a CPU: held-out top-1 by budget)",
                        "RESULTS: The larger net's short schedule: fastnet_l at 8 epochs"),
    "ladder_cuda": Value((("wrn28_10", 150.0, 0), ("fastnet_l", 24.0, 0), ("fastnet", 0.0, 0)),
                         "(model, epochs, training images), largest first",
                         "the record family with Muon: on an H200 fastnet_l reached 71.9% held-out on "
                         "CIFAR-100 in 24 epochs (28 s of training) and 72.7% in 64, where ResNet-18 with SGD is "
                         "usually given 40 or more; wrn28_10 keeps the longest budgets (the usual 80%+ CIFAR-100 net "
                         "at 150-200 epochs; not measured)", "RESULTS: First GPU check: one NVIDIA H200"),
    "epochs_model": Value({"cpu": "fastnet", "cuda": "fastnet_l"}, "model by device", "with --epochs and no budget "
                          "there is no speed to fit: the ladder's middle model of each device",
                          "tests/train/test_recipe.py"),
    "incremental_model": Value("resnet32", "model", "the class-incremental literature's backbone (iCaRL, WA, PyCIL: "
                               "ResNet-32, 0.47 M), so that numbers compare", "RESULTS: Class-incremental CIFAR-100, "
                               "B0-10, on a CPU"),
    "speed_probe_batch": Value((64, 256), "images per timed step (CPU, CUDA)", "large enough to time a step "
                               "steadily, small enough to probe a ladder in a second or two",
                               "tests/train/test_recipe.py"),
    "replan_steps": Value((5, 20), "(steps left out, steps timed) at the start of a budgeted run", "the epochs a "
                          "budget plans, and the SGD groups' rate for them, are planned again at the median of these "
                          "steps: a 10-minute run's start-up probe read 967 images/s where the run trained at 1,273 "
                          "(11.4 epochs planned, 16.3 trained), and a probe of more steps did not narrow the spread",
                          "RESULTS: Planning a budget at the run's own speed"),
    "bf16_min_gain": Value(1.15, "bf16 step speed over fp32", "bf16 costs some accuracy; take it only when clearly "
                           "faster (emulated bf16 was 10x slower here)", "RESULTS: What makes the 5-minute CIFAR-100 "
                           "recipe converge: a measured ablation"),
    # -- optimisation ----------------------------------------------------------------------------------
    "optimizer": Value({"fastnet_l": "muon", "fastnet": "muon", "fastnet_m": "muon", "fastnet_s": "muon", "*": "sgd"},
                       "by model",
                       "Muon for the filters: fastnet_s 57.2% against SGD's 45.2% held-out over 8 CIFAR-100 "
                       "epochs (3 seeds); other models keep SGD until measured", _SCREEN),
    "optimizer_one_channel": Value("sgd", "for images of one channel (radiographs), any model", "on 1,000 radiograph "
                                   "crops of 64 px Muon did not learn in 6 epochs (the loss stayed at ln 2, with the "
                                   "BatchNorm lr scaled 1, 8 or 64) where SGD reached 83% balanced accuracy",
                                   "RESULTS: Small data: enough steps for any data set's size"),
    "momentum": Value(0.9, "SGD momentum (Nesterov)", "the usual CIFAR value; the SGD groups under Muon too",
                      _C100),
    "weight_decay": Value(5e-4, "L2, coupled, on weights (not biases and norms)", "the usual CIFAR value", _C100),
    "warmup": Value(0.05, "of the schedule", "without it fastnet_s under Muon lost 1.2 points at 4 epochs",
                    _SCREEN),
    "label_smoothing": Value(0.1, "of the target mass", "0 lost 1.4 points under Muon at 4 epochs; 0.2 changed "
                             "nothing there nor for fastnet at 12 (+0.1, one seed)", _SCREEN),
    "whiten_bias_epochs": Value(3.0, "epochs", "the record trains the whitening bias for 3 epochs, then leaves it",
                                _SCREEN),
    # -- learning rates ----------------------------------------------------------------------------------
    "lr_batch": Value(512, "images", "the batch the learning rates below are given for; a batch B scales them by "
                      "B/512 (linear scaling)", _C100),
    "lr_sgd": Value({"fastnet_l": 0.2, "fastnet": 0.2, "fastnet_m": 0.2, "fastnet_s": 0.2, "fastnet_xs": 0.2,
                     "*": 0.1},
                    "peak lr at batch 512, SGD",
                    "FastNet's scaled-down head takes twice the ResNets' usual 0.1", _C100),
    "lr_muon_sgd": Value({"fastnet_l": ((12.0, 0.63), (16.0, 0.4)), "*": ((8.0, 1.2), (16.0, 0.4))},
                         "by model: (epochs the run plans, peak lr at batch 512 of the SGD groups under --optimizer "
                         "muon: the head at head_lr_scale x, BatchNorm shifts and whitening bias at norm_lr_scale x); "
                         "geometric between the points, the end points' rates beyond them",
                         "fastnet_s on CIFAR-100, held-out: over 8 epochs 1.2 beat 0.4 by 2.1 points (3 seeds, 95% CI "
                         "0.4-3.8; 0.8 gave 59.9%, one seed; RESULTS: The SGD groups' learning rate under Muon, "
                         "CIFAR-100, 8 epochs); over 16 epochs 0.4 beat 1.2 by 0.6 points on each of 2 seeds; a long "
                         "run at 1.2 stalls at the peak (the 3-hour row's training loss stayed near 3.0 for its "
                         "first 6 epochs); fastnet_l (widths 128/384/512, three convolutions a group) does not "
                         "learn at 1.2 (8 epochs: 15.4% held-out after 3, where 0.63 gave 53.0%, and 75.10% after 8) "
                         "and keeps 12 epochs' 0.63 below 12 (RESULTS: The larger net's short schedule: fastnet_l at 8 "
                         "epochs)",
                         "RESULTS: The SGD groups' peak rate by schedule length"),
    "muon_lr": Value(0.12, "peak lr of the filters under Muon (per step: Muon's update has a fixed size)",
                     "the record's 0.24 was set for its 200 steps of batch 2,000; at batch 512 on CIFAR-100, held-out, "
                     "0.12 beat it over fastnet's 12 epochs by 0.87 points (2 seeds, 71.90% against 71.03%), over "
                     "fastnet_s's 8 by 1.73 (2 seeds, 62.89% against 61.16%) and over fastnet's hour by 0.34 (one "
                     "seed); at 4 epochs the two were level", _MUON),
    "muon_momentum": Value(0.6, "momentum of Muon", "the record's value (airbench94_muon)", _ABL),
    "muon_ns_steps": Value(3, "Newton-Schulz iterations", "the record's value; 5 cost 50% more and changed nothing "
                           "there", _ABL),
    "muon_ns_dtype": Value({"cuda": "bfloat16", "*": "float32"}, "precision of Muon's orthogonalisation, by "
                           "device", "torch's Muon computes it in bf16, which a CPU without native bf16 emulates: "
                           "fastnet's step took 2.7 s more in bf16 than in float32 on a 2-core AVX2 CPU (the whole "
                           "forward and backward pass takes 3.5 s); GPUs keep torch's bf16",
                           "RESULTS: Muon's orthogonalisation in float32 on a CPU"),
    "norm_lr_scale": Value({"sgd": 1.0, "muon": 64.0}, "x the base lr, for norm shifts and the whitening bias",
                           "the record trains BatchNorm shifts 64x faster than the weights", _ABL),
    "head_lr_scale": Value({"sgd": 1.0, "muon": 8.0}, "x the base lr, for the last linear layer's weight",
                           "under Muon, fastnet_s over 8 CIFAR-100 epochs, held-out, 3 seeds: 61.8% at 8x against "
                           "60.5% at 1x (+1.4 points, 95% CI 0.8-1.9; FastNet scales the head's output by 1/9, "
                           "which slows its weight's learning 81-fold at a given rate); SGD models keep 1x until "
                           "measured", "RESULTS: The head's learning rate under Muon, CIFAR-100, "
                           "8 epochs"),
    "hard_proxy": Value("fastnet_xs", "model", "ranks every batch for --hard-fraction: a FastNet of widths "
                        "32/64/64, the size of the record family's proxy (airbench96_faster), a small share of "
                        "fastnet's FLOPs per image", "tests/train/test_select.py"),
    "hard_proxy_every": Value(4, "steps", "the proxy trains on its hardest share at one step in this many and only "
                              "ranks on the others (a forward pass), as the record family's proxy does",
                              "tests/train/test_select.py"),
    "warmup_start": Value(0.02, "of the peak lr, the first step's", "a zero first step would waste the step",
                          "tests/train/test_budget.py"),
    "lookahead": Value((5, 0.95), "(steps between pulls, base of the decay base**steps * progress**3)",
                       "the record's schedule: no averaging early, 0.77 of the average at the end", _ABL),
    "progressive_ramp": Value("0.5,0.85", "shares of the run: START,END of the side's growth under "
                              "--progressive-resize", "the fast ImageNet recipes train at the low resolution for "
                              "most of the run and reach the full one some epochs before the end, so the last "
                              "epochs (and the BatchNorm statistics) are at the size evaluated; off by default "
                              "(measured: it did not pay on CIFAR-100)", "RESULTS: Progressive resizing "
                              "(`--progressive-resize 0.75`), CIFAR-100, fastnet"),
    "tta_shift_weight": Value(0.5, "share of the TTA weight on the shifted views", "the record's split: half on "
                              "the image and its mirror, half on the four shifted views", _ABL),
    # -- batch ---------------------------------------------------------------------------------------------
    "batch": Value({"cpu": 512, "cuda": 512, "mps": 512}, "images per step, at most", "the largest batch of the "
                   "device's default; smaller data halves it (min_steps_per_epoch)", _C100),
    "min_steps_per_epoch": Value(32, "optimizer steps per epoch, at least", "a set of 1,000 images at batch 512 "
                                 "made 2 steps an epoch and ended a 3-minute run at chance; halving the batch until "
                                 "an epoch has 32 steps gives such sets hundreds of steps", "RESULTS: Small data: "
                                 "enough steps for any data set's size"),
    "min_batch": Value(16, "images per step, at least", "BatchNorm statistics of fewer images are too noisy",
                       "tests/train/test_recipe.py"),
    # -- augmentation and evaluation --------------------------------------------------------------------
    "padding": Value(2, "pixels of reflect padding of the random crop", "the record's translate of 2 beat the "
                     "usual 4 by 1.6 points [1.0, 2.1] over 8 CIFAR-100 epochs (3 seeds)", _SCREEN),
    "tta_shift": Value(1, "pixels", "shifted views beside the mirror added 0.1-0.6 points (3 models) over flips "
                       "alone", _SCREEN),
    # -- data ---------------------------------------------------------------------------------------------
    "sample_images": Value(5000, "images", "for the per-channel statistics and FastNet's whitening: the record's "
                           "5,000 estimate a 12x12 covariance well", _ABL),
    "crop_size": Value((224, 8), "(pixels, multiple)", "photos train at ImageNet's 224, smaller ones at their median "
                       "shorter side rounded down to a multiple of 8", "tests/train/test_photos.py"),
    "center_crop": Value(0.875, "of the shorter side", "evaluation's centre crop, ImageNet's 224/256",
                         "tests/train/test_photos.py"),
    # -- the budget ----------------------------------------------------------------------------------------
    "budget_model_share": Value(0.9, "of the budget", "the model is chosen for the training time the budget leaves "
                                "after the evaluations and the end", "tests/train/test_trainer.py"),
    "budget_margin": Value(0.01, "of the budget, kept free", "a run ends inside its budget even when the last step "
                           "runs long", "tests/train/test_trainer.py"),
    "step_time_memory": Value(0.9, "weight of the old step time in its running estimate", "follows a machine that "
                              "slows down within about ten steps, steady against one slow step",
                              "tests/train/test_budget.py"),
    "checkpoint_estimate_decay": Value(0.5, "factor on the old checkpoint time each new one", "the estimate falls "
                                       "back to the measured time within a few checkpoints",
                                       "tests/train/test_budget.py"),
    "report_seconds": Value(3.0, "seconds", "the report, the curve and the summary on a 2-core CPU",
                            "tests/train/test_budget.py"),
    "curve_points": Value(5, "points of a run's curve, the final evaluation included, at least", "a run of fewer "
                          "epochs evaluates at that many spread steps instead of at the ends of its epochs, so "
                          "that its curve shows how it learned without evaluating twice as often",
                          "tests/train/test_trainer.py"),
    "max_eval_share": Value(0.1, "of the training time", "intermediate evaluations never take more",
                            "tests/train/test_budget.py"),
    "checkpoint_seconds": Value((0.5, 12, 400e6), "(s, bytes per parameter, bytes/s): the first checkpoint's "
                                "estimate", "weights, optimiser state and EMA written at disk speed; measured "
                                "checkpoints replace it", "tests/train/test_budget.py"),
    # -- class-incremental runs ----------------------------------------------------------------------------
    "incremental_batch": Value(64, "images per step", "at 10 epochs a task batch 64 beat 128 (iCaRL, one seed): "
                               "average incremental +2.0 and last +2.6 points with the first task weighted 3, +0.6 "
                               "and +2.0 without; twice the steps for 2% more training time on a 2-core CPU",
                               _CIL10),
    "incremental_lr": Value(0.05, "peak lr at the incremental batch", "the literature's 0.1 for ResNet-32 at batch "
                            "128, scaled linearly to the batch", _CIL10),
    "incremental_budget_use": Value(0.98, "of the budget", "the rest for the report",
                                    "tests/incremental/test_runner.py"),
    "incremental_overhead": Value((0.02, 1.5, 5.0), "(share of the budget before one is measured, x the measured "
                                  "one, s at the end)", "each task ends with an evaluation and a memory update; "
                                  "these leave room for them", "tests/incremental/test_runner.py"),
    "incremental_first_task_weight": Value(3.0, "the first task's compute / a later task's", "at 10 epochs a task "
                                           "and batch 64 a first task of 25 epochs (the later ones 8.3) beat 10 "
                                           "each by 2.0 points of average incremental accuracy (1.9 nearest-mean), "
                                           "the last the same (0.8 lower nearest-mean); iCaRL, one seed", _CIL10),
    "incremental_method": Value("bic", "--cl-method", "at 10 epochs a task with the defaults below bic reached "
                                "64.07% / 49.96% average incremental / last against icarl's 62.26% / 46.84% "
                                "(forgetting 24.3 against 35.8); one seed", _CILM),
    "incremental_optimizer": Value("muon", "for class-incremental runs on images of 3 channels, any model",
                                   "icarl at 10 epochs a task (ResNet-32, balanced fine-tuning 2): Muon for the "
                                   "filters (at the rates below) 62.26% / 46.84% average incremental / last against "
                                   "SGD's 59.14% / 45.26%, higher after every task (+1.6 to +6.2 points), 4% more "
                                   "time; one seed", _CILM),
    "incremental_muon_lr": Value(0.08, "peak lr of the filters under Muon, class-incremental runs", "at batch 64 "
                                 "(8x the steps of batch 512) with the ordinary runs' rate then, 0.24, and "
                                 "64x/8x norm and head rates, the later tasks forgot more: 58.9% after task 3 against "
                                 "SGD's 63.5% and this setting's 68.5% (3-task screens, no balanced fine-tuning)",
                                 _CILM),
    "incremental_norm_lr_scale": Value(1.0, "x the base lr for norm layers, class-incremental runs", "ResNet-32 "
                                       "trains its BatchNorm scales as well as shifts; with Muon at 0.08, 1x (SGD's "
                                       "value) is the screened setting above", _CILM),
    "incremental_head_lr_scale": Value(1.0, "x the base lr for the classifier, class-incremental runs", "as "
                                       "incremental_norm_lr_scale: screened together", _CILM),
    "incremental_later_lr": Value(1.0, "x the first task's peak lr, for every later task", "0.5 lost 0.8-3.0 "
                                  "points on each of tasks 2-5 (logits and nearest-mean) against 1.0 at 10 epochs a "
                                  "task (iCaRL, first task weight 3): the later tasks need their plasticity",
                                  _CIL10),
    "incremental_replay_share": Value(
        {"bic": 0.5, "*": 0.0}, "of each batch from the memory, by method (0: the memory mixed in)",
        "bic at 10 epochs a task, the same steps: half of each batch from the memory raised the last accuracy on "
        "each of 3 seeds (+0.36, +0.60, +0.66; 49.71% against 49.17% on the mean), the average incremental the "
        "same (63.93% against 63.96%), forgetting 3.8-5.2 points lower", _CIL_RS),
    "incremental_balanced_epochs": Value(
        {"icarl": 2.0, "replay": 2.0, "*": 0.0}, "epochs on the memory alone at each task's end, by method",
        "icarl at 10 epochs a task: 2 epochs (62 steps a task, 6% more training time) raised the logits' average "
        "incremental / last accuracy from 54.90% / 40.06% to 59.14% / 45.26% and cut forgetting from 47.5 to 33.4 "
        "points, the nearest-mean classifier unchanged (59.19% / 45.32% -> 59.16% / 45.90%; one seed); replay "
        "gained as icarl did (55.92% / 38.22% -> 60.93% / 43.70%); bic, whose correction removes that bias, gained "
        "nothing (64.07% / 49.96% -> 63.89% / 49.24%); the other methods off until measured", _CILM),
    "bic_holdout": Value(0.1, "of each old class's exemplars held out (and as many of each new class's samples)",
                         "BiC's 9:1 split of the exemplars", "tests/incremental/test_runner.py"),
    "bic_lr": Value(0.05, "Adam's step on the two bias-correction numbers", "fits them on cached logits in the "
                    "steps below (the loss is flat by then on the test sets)", "tests/incremental/test_runner.py"),
    "bic_steps": Value(200, "steps fitting the bias correction", "on cached logits: milliseconds",
                       "tests/incremental/test_runner.py"),
    "incremental_balanced_lr": Value(0.1, "of the peak lr", "fine-tuning on a small balanced set: a tenth, as the "
                                     "class-balanced fine-tuning of the literature (EEIL) uses",
                                     "tests/incremental/test_runner.py"),
}


def get(name: str) -> Any:
    return RECIPE[name].value


def keyed(name: str, key: str) -> Any:
    """The value of entry ``name`` for ``key`` (a model, a device, a method): from its table by key
    (``"*"``: the rest), or the value itself when it is the same for every key."""
    value = get(name)
    return value.get(key, value["*"]) if isinstance(value, dict) else value


def fingerprint() -> str:
    """A short digest of the table's values: runs with the same digest derived the same defaults
    (a run's summary.json records it; an ablation resumes only runs of its own recipe)."""
    import hashlib

    text = repr([(name, v.value) for name, v in sorted(RECIPE.items())])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def peak_lr(model: str, optimizer: str, batch: int, epochs: float | None = None) -> float:
    """The base learning rate (SGD groups) for ``model`` under ``optimizer`` at ``batch``, for a run
    that plans ``epochs`` (None: a short run, the schedule table's first point)."""
    scale = batch / get("lr_batch")
    if optimizer == "muon":
        return muon_sgd_lr(epochs, model) * scale
    return keyed("lr_sgd", model) * scale


def muon_sgd_lr(epochs: float | None, model: str = "*") -> float:
    """``lr_muon_sgd`` of ``model`` at ``epochs``: the first point's rate up to it, the last's from
    it on, geometric interpolation between neighbouring points."""
    import math

    points = keyed("lr_muon_sgd", model)
    if epochs is None or epochs <= points[0][0]:
        return points[0][1]
    for (e0, lr0), (e1, lr1) in zip(points, points[1:]):
        if epochs <= e1:
            t = (math.log(epochs) - math.log(e0)) / (math.log(e1) - math.log(e0))
            return math.exp(math.log(lr0) + t * (math.log(lr1) - math.log(lr0)))
    return points[-1][1]


def muon_ns_dtype(device: str) -> str:
    """The precision of Muon's orthogonalisation on ``device`` ("cpu", "cuda", ...)."""
    return keyed("muon_ns_dtype", device)


def optimizer(model: str | None, channels: int = 3, incremental: bool = False) -> str:
    """The optimiser for ``model`` on images of ``channels`` channels (in a class-incremental run,
    any model)."""
    if channels != 3:
        return get("optimizer_one_channel")
    return get("incremental_optimizer") if incremental else keyed("optimizer", model)


def batch_size(device: str, samples: int, processes: int = 1) -> int:
    """The device's batch, halved while an epoch of ``samples`` would have fewer than
    ``min_steps_per_epoch`` steps (not below ``min_batch``), a multiple of ``processes``."""
    b = get("batch").get(device, get("batch")["cpu"])
    while b // 2 >= get("min_batch") and samples < b * get("min_steps_per_epoch"):
        b //= 2
    return max(processes, b // processes * processes)


def table() -> str:
    """The recipe as text: name, value, unit, reason, evidence."""
    lines = []
    for name, v in RECIPE.items():
        lines.append(f"{name} = {v.value!r}\n    unit: {v.unit}\n    why: {v.why}\n    evidence: {v.evidence}")
    return "\n".join(lines)

"""The shape of the package: no import cycles, every module importable on its own, files of a
readable size, and one option list shared by the config, the command line and the report."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "fastvis"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path], at_load: bool) -> set[str]:
    """fastvis modules that ``name`` imports: when it is loaded (``at_load``: module-level
    statements only), or anywhere (imports inside functions too, which run later)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in tree.body:
        stack = [node]
        while stack:  # module level, including if/try blocks; function and class bodies unless anywhere
            n = stack.pop()
            if at_load and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            for target, names in _targets(n, package):
                found.add(target)
                for a in names:  # `from . import ddp` imports the submodule
                    if f"{target}.{a}" in modules:
                        found.add(f"{target}.{a}")
            stack.extend(ast.iter_child_nodes(n))
    return {m for m in found if m in modules and m != name}


def _targets(n: ast.AST, package: str) -> list[tuple[str, list[str]]]:
    """(module, names) of an import statement of fastvis modules."""
    if isinstance(n, ast.Import):
        return [(a.name, []) for a in n.names if a.name.startswith("fastvis")]
    if isinstance(n, ast.ImportFrom):
        if n.level:
            base = package.rsplit(".", n.level - 1)[0] if n.level > 1 else package
            target = f"{base}.{n.module}" if n.module else base
        else:
            target = n.module or ""
        if target.startswith("fastvis"):
            return [(target, [a.name for a in n.names])]
    return []


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state:
            found = visit(name, [name])
            if found:
                return found
    return None


@pytest.mark.parametrize("at_load", [True, False], ids=["at-load", "inside-functions-too"])
def test_no_import_cycles(at_load):
    """No cycle among the modules, counting the imports inside functions too: a module that
    imports another only inside a function to dodge a cycle still has the cycle. (A package's
    __init__ that gathers its modules is not counted as a dependency of them.)"""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        found = _imports(name, path, modules, at_load)
        graph[name] = {m for m in found if not (modules[m].name == "__init__.py" and name.startswith(m + "."))}
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
    if at_load:
        assert "fastvis.loader.jpeg" not in graph["fastvis.loader.resident"]  # the old cycle stays gone


def test_private_names_stay_in_their_package():
    """A ``_name`` is imported only inside the package (folder) that defines it."""
    crossing = []
    modules = _modules()
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            for target, names in _targets(node, package):
                home = target if modules.get(target, Path()).name == "__init__.py" else target.rpartition(".")[0]
                for a in names:
                    if a.startswith("_") and not package.startswith(home):
                        crossing.append(f"{name} imports {target}.{a}")
    assert not crossing, "; ".join(crossing)


def test_every_module_imports_in_a_fresh_interpreter():
    names = sorted(_modules())
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\nprint('ok')"
    proc = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_files_stay_readable():
    long = []
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text().count("\n")
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_LINES and f"longer than {MAX_LINES} lines because" not in " ".join(doc.lower().split()):
            long.append(f"{path.relative_to(REPO)} ({lines} lines)")
    assert not long, "over 400 lines without 'Longer than 400 lines because' and a reason in the docstring: " + \
        ", ".join(long)


def test_one_option_list_for_the_config_the_command_line_and_the_file(tmp_path):
    from fastvis.cli.train import build_parser
    from fastvis.train.config import OPTIONS, TrainConfig, config_from_args, flag_of

    parser = build_parser()
    dests = {a.dest for a in parser._actions}
    assert set(OPTIONS) <= dests  # every option has its flag
    assert dests - set(OPTIONS) == {"help", "config", "list_models", "recipe", "ablate", "ablate_seeds",
                                        "ablate_within_budget"}
    for name in OPTIONS:
        assert flag_of(name) in parser._option_string_actions, name
    # file, then command line
    (tmp_path / "base.toml").write_text('[optim]\nlr = 0.05\nbatch_size = 128\n\n[augment]\ncutmix = 1.0\n\n'
                                        '[schedule]\nbudget = "90s"\n')
    cfg = config_from_args(parser.parse_args(["--config", str(tmp_path / "base.toml"), "--lr", "0.2",
                                              "--no-crop", "--out", str(tmp_path / "o")]))
    assert cfg.optim.lr == 0.2 and cfg.optim.batch_size == 128 and cfg.augment.cutmix == 1.0
    assert cfg.schedule.budget == 90.0 and cfg.augment.crop is False
    # a run folder's config.json reads back as the same config
    cfg.save(tmp_path / "config.json")
    again = config_from_args(parser.parse_args(["--config", str(tmp_path / "config.json")]))
    assert again == cfg
    flat = tmp_path / "flat.json"
    flat.write_text('{"cutmix": 0.5, "ema": 0.99}')  # flat, and a flag's name for ema_decay
    cfg = config_from_args(parser.parse_args(["--config", str(flat), "--out", "x"]))
    assert cfg.augment.cutmix == 0.5 and cfg.optim.ema_decay == 0.99
    flat.write_text('{"cutmx": 0.5}')
    with pytest.raises(Exception, match="unknown option 'cutmx'.*'cutmix'"):
        config_from_args(parser.parse_args(["--config", str(flat)]))
    assert TrainConfig.from_options(cutmix=0.5).get("cutmix") == 0.5
    # the config.json of an earlier version: model under [data], the teacher under [eval], an [output] group
    old = tmp_path / "old.json"
    old.write_text('{"data": {"model": "resnet18"}, "eval": {"kd_alpha": 0.3, "tta": false}, '
                   '"output": {"seed": 5, "out": "x"}, "speed": {"halt_after_epoch": 2}}')
    cfg = config_from_args(parser.parse_args(["--config", str(old)]))
    assert (cfg.network.model, cfg.network.kd_alpha, cfg.eval.tta, cfg.run.seed) == ("resnet18", 0.3, False, 5)
    old.write_text('{"data": {"seed": 5}}')  # moved, but never from [data]
    with pytest.raises(Exception, match=r"\[data\] has no option 'seed'"):
        config_from_args(parser.parse_args(["--config", str(old)]))

"""VLMEvalKit's own scoring functions for the parity test, loaded from the installed ms-vlmeval wheel
(a test-only dependency installed with --no-deps by `make setup`) without importing its package, which
pulls in model, API and video dependencies. The scoring module files are executed against a stand-in
`vlmeval.smp` whose helpers (process_punctuation, istype, build_option_str, ...) are VLMEvalKit's own
functions read from its source; only file I/O (load/dump) and progress bars are replaced, by an
in-memory store."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import logging
import sys
import types
from pathlib import Path

import pandas as pd

PACKAGE = "ms-vlmeval"


def vlmeval_root() -> Path:
    """Directory of the installed `vlmeval` package; raises with the install command when missing."""
    spec = importlib.util.find_spec("vlmeval")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"{PACKAGE} is not installed: run `make setup` (pip install --no-deps {PACKAGE}==...)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def installed_version() -> str:
    return importlib.metadata.version(PACKAGE)


def _exec_functions(path: Path, names: set[str], namespace: dict) -> None:
    """Define only the named top-level functions of `path` in `namespace` (no module-level imports run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    missing = names - {n.name for n in nodes}
    assert not missing, f"{path} no longer defines {missing}"
    exec(compile(ast.Module(body=nodes, type_ignores=[]), str(path), "exec"), namespace)


class MemoryFiles:
    """VLMEvalKit reads and writes its intermediate files through load/dump; this keeps them in a dict."""

    def __init__(self):
        self.files: dict[str, object] = {}

    def load(self, path, fmt=None):
        data = self.files[str(path)]
        return data.copy() if isinstance(data, pd.DataFrame | dict) else data

    def dump(self, data, path, **kwargs):
        self.files[str(path)] = data.copy() if isinstance(data, pd.DataFrame | dict) else data

    def track_progress_rich(self, func, tasks, nproc=1, chunksize=1, save=None, keys=None, **kwargs):
        results = [func(**t) if isinstance(t, dict) else func(*t) for t in tasks]
        if save is not None and keys is not None:
            saved = dict(self.files.get(str(save), {}))
            saved.update(zip(keys, results, strict=True))
            self.files[str(save)] = saved
        return results


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # a package, so submodules can be imported under it
    module.__dict__.update(attrs)
    return module


def load_vlmeval() -> types.SimpleNamespace:
    """VLMEvalKit's matching_util, multiple_choice, yorn, vqa_eval and ocrbench modules, plus the store."""
    root = vlmeval_root()
    store = MemoryFiles()
    smp: dict = {"pd": pd}
    _exec_functions(
        root / "smp" / "misc.py", {"process_punctuation", "istype", "listinstr", "d2df", "cn_string"}, smp
    )
    _exec_functions(root / "smp" / "vlm.py", {"build_option_str"}, smp)
    get_logger = logging.getLogger
    smp.update(
        get_logger=get_logger,
        load=store.load,
        dump=store.dump,
        get_pred_file_format=lambda: "pkl",
        timestr=lambda granularity="second": "parity",
        get_intermediate_file_path=lambda eval_file, suffix, target_format=None: f"{eval_file}{suffix}",
    )
    fake = {
        "vlmeval": _module("vlmeval"),
        "vlmeval.smp": _module("vlmeval.smp", **smp),
        "vlmeval.smp.log": _module("vlmeval.smp.log", get_logger=get_logger),
        "vlmeval.smp.vlm": _module("vlmeval.smp.vlm", build_option_str=smp["build_option_str"]),
        "vlmeval.utils": _module("vlmeval.utils"),
        "vlmeval.dataset": _module("vlmeval.dataset"),
        "vlmeval.dataset.utils": _module("vlmeval.dataset.utils"),
    }
    saved = {name: sys.modules.get(name) for name in fake}
    sys.modules.update(fake)
    loaded = {}
    try:
        for name, rel in [
            ("matching_util", "utils/matching_util.py"),
            ("multiple_choice", "dataset/utils/multiple_choice.py"),
            ("yorn", "dataset/utils/yorn.py"),
            ("vqa_eval", "dataset/utils/vqa_eval.py"),
            ("ocrbench", "dataset/utils/ocrbench.py"),
        ]:
            if name == "multiple_choice":  # it imports can_infer from vlmeval.utils
                m = loaded["matching_util"]
                fake["vlmeval.utils"].__dict__.update(
                    can_infer=m.can_infer, can_infer_lego=m.can_infer_lego,
                    track_progress_rich=store.track_progress_rich,
                )  # fmt: skip
            spec = importlib.util.spec_from_file_location(f"vlmeval_parity.{name}", root / rel)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded[name] = module
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    return types.SimpleNamespace(store=store, **loaded)

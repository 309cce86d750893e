"""Recipe files: a shipped name or a path, its chain of `base:` recipes merged, `a.b=value` overrides, `${vars}`,
validation into `Recipe`, and the SFT curriculum expanded into stages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sailvl.config import apply_overrides, load_yaml, parse_config
from sailvl.errors import ConfigError
from sailvl.train.recipe import Budget, Recipe, StageConfig, deep_merge

RECIPES_DIR = Path(__file__).resolve().parent.parent / "config" / "recipes"


def resolve_recipe_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """A recipe file: a path (relative to `relative_to` first), or a shipped recipe name like `tiny-sailvit`."""
    p = Path(name_or_path)
    candidates = [p]
    if relative_to is not None and not p.is_absolute():
        candidates.insert(0, relative_to / p)
    stem = p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml"
    candidates.append(RECIPES_DIR / stem)
    for c in candidates:
        if c.is_file():
            return c
    shipped = sorted(f.stem for f in RECIPES_DIR.glob("*.yaml"))
    raise ConfigError(f"recipe {name_or_path} is neither a file nor a shipped recipe ({', '.join(shipped)})")


def load_recipe_dict(name_or_path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a recipe YAML and the chain of `base:` recipes it derives from, merged (child wins)."""
    path = resolve_recipe_path(name_or_path, _seen[-1].parent if _seen else None)
    if path in _seen:
        raise ConfigError(f"recipe {path} derives from itself through `base:`")
    data = load_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    return deep_merge(load_recipe_dict(base, (*_seen, path)), data)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _substitute(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, str):

        def repl(m: re.Match) -> str:
            if m.group(1) not in values:
                raise ConfigError(f"${{{m.group(1)}}} is used but vars.{m.group(1)} is not set")
            return str(values[m.group(1)])

        return _VAR.sub(repl, node)
    if isinstance(node, dict):
        return {k: _substitute(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, values) for v in node]
    return node


def load_recipe(name_or_path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Load a recipe (file or shipped name), apply `a.b=value` overrides, substitute ${vars}, validate."""
    data = load_recipe_dict(name_or_path)
    apply_overrides(data, overrides)
    data["vars"] = {k: str(v) for k, v in (data.get("vars") or {}).items()}
    data = _substitute(data, data["vars"])
    recipe = expand_curriculum(parse_config(Recipe, data))
    for stage in recipe.stages:
        recipe.stage_data_config(stage)
    return recipe


def curriculum_sources(directory: str | Path, n_stages: int) -> list[dict[str, Any]]:
    """One data source per curriculum stage file `DIR/stage-K.jsonl` (K = 1..n), as the split writes them."""
    root = Path(directory)
    return [
        {"path": str(root / f"stage-{k}.jsonl"), "format": "jsonl", "name": f"curriculum-stage-{k}"}
        for k in range(1, n_stages + 1)
    ]


def expand_curriculum(recipe: Recipe) -> Recipe:
    """Apply `sft_curriculum`: the named stages train on curriculum stages 1..N in order, or (mixed) one stage
    over all N files with the summed budget. Raises ConfigError naming the key when the stages do not fit."""
    spec = recipe.sft_curriculum
    if spec is None:
        return recipe
    names = [s.name for s in recipe.stages]
    missing = [n for n in spec.stages if n not in names]
    if missing:
        raise ConfigError(
            f"sft_curriculum.stages names {missing}, which are not stages of the recipe ({names})"
        )
    positions = [names.index(n) for n in spec.stages]
    if positions != list(range(positions[0], positions[0] + len(positions))):
        raise ConfigError(
            f"sft_curriculum.stages must be consecutive recipe stages in order, got {spec.stages} in {names}"
        )
    sources = curriculum_sources(spec.dir, len(spec.stages))
    chosen = [recipe.stages[i] for i in positions]
    if spec.mode == "curriculum":
        new = [
            s.model_copy(update={"data": {**s.data, "sources": [src]}})
            for s, src in zip(chosen, sources, strict=True)
        ]
    else:
        new = [chosen[0].model_copy(update={"name": spec.mixed_name, "budget": _summed_budget(chosen),
                                            "data": {**chosen[0].data, "sources": [{**src, "repeat": 1.0} for src in sources]}})]  # fmt: skip
        if spec.mixed_name in [n for n in names if n not in spec.stages]:
            raise ConfigError(f"sft_curriculum.mixed_name {spec.mixed_name!r} is already a stage name")
    stages = recipe.stages[: positions[0]] + new + recipe.stages[positions[-1] + 1 :]
    expanded = recipe.model_copy(update={"stages": stages})
    for stage in new:
        expanded.stage_data_config(stage)
    return expanded


def _summed_budget(stages: list[StageConfig]) -> Budget:
    # The mixed baseline sees the same data for the same total: only one shared unit can be summed.
    kinds = {
        tuple(k for k in ("steps", "samples", "tokens") if getattr(s.budget, k) is not None) for s in stages
    }
    if len(kinds) != 1 or len(next(iter(kinds))) != 1:
        raise ConfigError(
            "sft_curriculum mixed mode needs every curriculum stage's budget in the same single unit "
            f"(steps, samples or tokens), got {[s.budget.model_dump(exclude_none=True) for s in stages]}"
        )
    (kind,) = next(iter(kinds))
    return Budget(**{kind: sum(getattr(s.budget, kind) for s in stages)})

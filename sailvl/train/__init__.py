"""Training engine: recipes of stages, FSDP2, schedules, DCP checkpoints with exact resume, metrics, export.

Entry points: `load_recipe(name_or_path, overrides)` -> `Recipe`; `check_recipe(recipe, out_dir)` validates every
stage without reading weights; `train_recipe(recipe, out_dir, stage, resume)` runs every stage (one process or under
torchrun); `export_vit(ckpt, out_dir)` saves the vision tower;
`sailvl.bench.train` compares the packed loop with a plain padded HF loop.
"""

from sailvl.train.recipe import Budget, ModelSpec, ParallelConfig, Recipe, StageConfig
from sailvl.train.recipe_files import load_recipe

__all__ = ["Budget", "ModelSpec", "ParallelConfig", "Recipe", "StageConfig", "load_recipe"]

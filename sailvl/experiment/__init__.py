"""The papers' claims at toy scale: `sailvl experiment NAME`, each arm real `sailvl` runs on the synthetic world.

`base` holds the plumbing (plan, steps with resume, metrics, mean/std over seeds) and imports no other module of
this package; one module per experiment (`recaption`, `curriculum`, `scaling`, `vit_transfer`) says what its arms
run and how the verdict is read; `registry` maps names to them; `report` writes the markdown/HTML page; `run`
runs an experiment's seeds and writes its results and report."""

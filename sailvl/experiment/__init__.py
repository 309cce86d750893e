"""The papers' claims at toy scale: `sailvl experiment NAME`, each arm real `sailvl` runs on the synthetic world.

`base` holds the plumbing (plan, runner with resume, metrics, mean/std over seeds); one module per experiment
(`recaption`, `curriculum`, `scaling`, `vit_transfer`) says what its arms run and how the verdict is read;
`registry` maps names to them; `report` writes the markdown/HTML page."""

"""Curation (SAIL-Caption style): steps over `Sample` records, executors, lineage and reports.

Public API (see each module):
- `base`: `Step` (`run(records, rank, world_size)`, `reject(record, reason)`, lazy `setup()`), `Filter`
  (`keep(record) -> bool | (bool, reason)`), `BatchStep` (`process_batch`), `register_step`, `build_step`.
- steps by `type`: `image_checks`, `text_checks`, `dedup` (exact | phash), `select`, `recaption`, `judge`,
  `qa_synthesis`, `sft_scoring`; `scoring.split_curriculum` / `write_curriculum`.
- `config.PipelineConfig` / `load_pipeline(path, overrides)`; `executors.run_pipeline(cfg) -> manifest`
  (`LocalExecutor`, `ray_executor.RayExecutor`).
- run dir: `kept/shard-N.*`, `rejected/shard-N.jsonl`, `lineage/shard-N.jsonl`, `done/shard-N.json`,
  `dedup/<step>/duplicates.json`, `manifest.json`, `report/`; `lineage.check_lineage(run_dir, ids)`,
  `report.write_report(run_dir)`, `judge_quality.measure_judge(step, labelled)`, `bench.bench_curation()`.
"""

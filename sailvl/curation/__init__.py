"""Curation (SAIL-Caption style): steps over `Sample` records, executors, lineage and reports.

Public API (see each module):
- `step` (a leaf: step modules import it): `Step` (`run(records, rank, world_size)`, `reject(record, reason)`, lazy
  `setup()`), `Filter` (`keep(record) -> bool | (bool, reason)`), `BatchStep` (`process_batch`), `register_step`.
  `base`: the registry, which imports every built-in step module: `build_step`, `get_step_class` (it re-exports
  `step`'s names).
- steps by `type`: `image_checks`, `text_checks`, `dedup` (exact | phash), `select`, `balanced_subset`
  (by metadata field or pHash k-means clusters), `recaption`, `judge`, `qa_synthesis`, `sft_scoring`;
  `scoring.split_curriculum` / `write_curriculum`.
- `judge_parse.parse_yes_no` / `parse_score`: a judge's verdict as a reader takes it, or None (unclear, refusal);
  the judge step rejects an unreadable answer as `judge_unparseable` and counts it as `unparsed_ita` / `unparsed_vir`.
- `config.PipelineConfig` / `load_pipeline(path, overrides)`; `job`: the per-shard routine (`ShardWorker`), the
  global (dedup) pass and the manifest (`run_job(cfg, map_calls)`); `executors.run_pipeline(cfg) -> manifest`
  maps it with `LocalExecutor` (process pool) or `ray_executor.RayExecutor` (Ray actors). A SailvlError on a worker
  stops the run and is raised as it is in every mode; any other exception fails only its shard.
- run dir: `kept/shard-N.*`, `rejected/shard-N.jsonl`, `lineage/shard-N.jsonl`, `done/shard-N.json`,
  `dedup/<step>/duplicates.json`, `manifest.json`, `report/`; `lineage.check_lineage(run_dir, ids)`,
  `report.write_report(run_dir)` (with `caption_stats` before / after recaption),
  `judge_quality.measure_judge(step, labelled)` / `calibrate_judge`, `bench.bench_curation()` /
  `bench.bench_model_steps()`.
"""

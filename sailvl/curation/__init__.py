"""Curation (SAIL-Caption style): steps over `Sample` records (image/text checks, dedup, recaption, judge,
QA synthesis, SFT scoring + curriculum), local and Ray executors with completion markers, lineage, reports."""

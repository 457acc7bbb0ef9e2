"""Shards of one run combined into the run's result (:func:`merge_results`)."""

from __future__ import annotations

from .cost_model import Work
from .jobs import check_complete


#: Result fields that must agree between shards for their results to be merged.
MERGE_KEYS = ("schema_version", "generator", "config", "jobs")


def merge_results(partials: list[dict]) -> dict:
    """Combine the partial results of shards into the result of the whole run.

    Raises
    ------
    ValueError
        If the partial results come from different configurations, rdgap
        versions or result schemas, or do not cover every job exactly once.
    """
    if not partials:
        raise ValueError("partial results: expected at least one, got none")
    first = partials[0]
    for other in partials[1:]:
        for key in MERGE_KEYS:
            if other.get(key) != first.get(key):
                raise ValueError(f"partial results: expected the same {key!r} in every "
                                 f"shard; they differ (shards of different runs?)")
        if other["environment"].get("rdgap") != first["environment"].get("rdgap"):
            raise ValueError(f"partial results: expected one rdgap version, got "
                             f"{first['environment'].get('rdgap')} and "
                             f"{other['environment'].get('rdgap')}")
    check_complete(first["jobs"], [j for p in partials for j in p["jobs_done"]])
    order = {job_id: i for i, job_id in enumerate(first["jobs"])}
    runs = sorted((row for p in partials for row in p["runs"]),
                  key=lambda row: (order[row["job_id"]], row["codec"]))
    stages: dict[str, float] = {}
    for p in partials:
        for name, seconds in p["stages_s"].items():
            stages[name] = stages.get(name, 0.0) + seconds
    architectures = {a["name"]: a for p in partials for a in p["architectures"]}
    merged = {key: first[key] for key in first if key not in ("shard", "jobs_done")}
    merged.update(partial=False, shard=None, jobs_done=list(first["jobs"]),
                  architectures=list(architectures.values()), stages_s=stages, runs=runs,
                  work=Work.merged([p.get("work", {}) for p in partials]),
                  shards=len(partials),
                  refused=[r for p in partials for r in p.get("refused", [])],
                  cache={k: sum(p["cache"][k] for p in partials) for k in first["cache"]})
    return merged

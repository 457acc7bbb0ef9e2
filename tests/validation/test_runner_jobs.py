"""The job list: deterministic ids, shards that cover it exactly once, clear errors."""

from __future__ import annotations

import pytest

from rdgap.validation.jobs import Job, check_complete, make_jobs, parse_shard, shard

SPLITS = {"lm": [3, 1], "vit": [2]}


def _jobs():
    return make_jobs(SPLITS, ["fp16", "int8-absmax"], ("gaussian-fisher", "klt-laplace"),
                     (0.05, 0.01))


def test_job_ids_are_deterministic_and_distinct():
    jobs = _jobs()
    assert [j.job_id for j in jobs] == [j.job_id for j in _jobs()]
    assert len({j.job_id for j in jobs}) == len(jobs) == 3 * (2 + 2 * 2)
    assert jobs[0].job_id == "lm/split=1/fp16"
    assert Job("lm", 3, "klt-laplace", 0.01).job_id == "lm/split=3/klt-laplace/level=0.01"
    assert Job("lm", 3, "klt-laplace", 0.01).fitted and not jobs[0].fitted


@pytest.mark.parametrize("count", [1, 2, 5, 40])
def test_shards_cover_every_job_exactly_once(count):
    jobs = _jobs()
    shares = [shard(jobs, i, count) for i in range(count)]
    assert sorted(j.job_id for s in shares for j in s) == sorted(j.job_id for j in jobs)
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    check_complete([j.job_id for j in jobs], [j.job_id for s in shares for j in s])


def test_incomplete_or_duplicated_merges_are_refused():
    ids = [j.job_id for j in _jobs()]
    with pytest.raises(ValueError, match="missing jobs.*lm/split=1/fp16"):
        check_complete(ids, ids[1:])
    with pytest.raises(ValueError, match="duplicate jobs"):
        check_complete(ids, ids + ids[:1])
    with pytest.raises(ValueError, match="not in the configuration"):
        check_complete(ids, ids + ["other/split=1/fp16"])


@pytest.mark.parametrize("text", ["1/1", "2/2", "-1/2", "a/2", "1", "1/2/3"])
def test_bad_shard_text(text):
    with pytest.raises(ValueError, match="--shard: expected"):
        parse_shard(text)
    assert parse_shard("1/3") == (1, 3)


def test_duplicate_job_ids_are_refused():
    with pytest.raises(ValueError, match="distinct job ids"):
        make_jobs({"lm": [1]}, ["fp16", "fp16"], (), ())


def test_levels_can_differ_per_architecture():
    jobs = make_jobs(SPLITS, [], ("gaussian-fisher",), {"lm": (0.05, 0.01), "vit": (0.2,)})
    levels = {(j.architecture, j.level) for j in jobs}
    assert levels == {("lm", 0.05), ("lm", 0.01), ("vit", 0.2)}


def test_every_shipped_task_names_its_default_levels():
    from rdgap.validation.encoder_task import SentenceEncoderTask
    from rdgap.validation.tasks import CausalLMTask
    from rdgap.validation.vit_task import DigitsViTTask

    for task in (CausalLMTask, SentenceEncoderTask, DigitsViTTask):
        assert task.default_levels and all(0 < level < 1 for level in task.default_levels)
    # 1 − cos and ΔCE are different units: the encoder's default is the tighter one
    assert SentenceEncoderTask.default_levels[0] < CausalLMTask.default_levels[0]

"""Bad models for the emulator: model-borne behaviour, shuffled labels, and their faults."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from amlretrain.bootstrap import auc
from amlretrain.emulator import learner
from amlretrain.emulator.faults import Faults
from amlretrain.emulator.learner import Behaviour, LearnerError, Model

DATA = resources.files("amlretrain.emulator") / "data"
TRAIN = (DATA / "census_train.csv").read_bytes()
NEW = (DATA / "census_new.csv").read_bytes()


def _rows(csv_bytes: bytes) -> tuple[list[str], list[list[str]]]:
    lines = csv_bytes.decode().strip().splitlines()
    return lines[0].split(","), [line.split(",") for line in lines[1:]]


@pytest.fixture(scope="module")
def good() -> bytes:
    part, _ = learner.split_holdout(TRAIN)
    return learner.train(part).to_bytes()


def test_a_model_without_behaviour_reads_and_writes_as_before(good: bytes) -> None:
    doc = json.loads(good)
    assert "emulator" not in doc and "behaviour" not in doc
    model = Model.from_bytes(good)
    assert model.behaviour is None
    assert model.to_bytes() == good


def test_with_behaviour_round_trips_and_zero_behaviour_removes_the_member(good: bytes) -> None:
    bad = learner.with_behaviour(good, error_rate=0.3, score_shift=0.2, latency=0.05, seed=7)
    doc = json.loads(bad)
    assert doc["emulator"] == {
        "error_rate": 0.3,
        "score_shift": 0.2,
        "latency": 0.05,
        "seed": 7,
        "error_status": 500,
    }
    model = Model.from_bytes(bad)
    assert model.behaviour == Behaviour(error_rate=0.3, score_shift=0.2, latency=0.05, seed=7)
    assert model.weights == Model.from_bytes(good).weights
    assert learner.with_behaviour(bad) == good


@pytest.mark.parametrize(
    ("member", "needle"),
    [
        ({"error_rate": 1.5}, "'error_rate': 1.5 is not between 0 and 1"),
        ({"error_rate": "0.3"}, "'error_rate': expected a number"),
        ({"score_shift": -2}, "'score_shift'"),
        ({"latency": -1}, "'latency'"),
        ({"latency": float("inf")}, "'latency'"),
        ({"seed": 1.5}, "'seed': expected an int"),
        ({"error_status": 404}, "'error_status': expected one of (500, 503)"),
        ({"eror_rate": 0.1}, "unknown key(s) eror_rate"),
        ([0.1], "expected an object"),
    ],
)
def test_a_bad_behaviour_member_is_a_clear_learner_error(
    good: bytes, member: object, needle: str
) -> None:
    doc = json.loads(good)
    doc["emulator"] = member
    with pytest.raises(LearnerError) as caught:
        Model.from_bytes(json.dumps(doc).encode())
    assert needle in str(caught.value)


def test_score_shift_moves_probabilities_clips_them_and_recomputes_labels(good: bytes) -> None:
    columns, rows = _rows(NEW)
    plain = Model.from_bytes(good).predict(columns, rows)
    shifted = Model.from_bytes(learner.with_behaviour(good, score_shift=0.3)).predict(columns, rows)
    classes = Model.from_bytes(good).classes
    for (_, p), (label, q) in zip(plain, shifted, strict=True):
        assert q == pytest.approx(min(1.0, p + 0.3))
        assert label == (classes[1] if q >= 0.5 else classes[0])
    assert sum(lab == classes[1] for lab, _ in shifted) > sum(lab == classes[1] for lab, _ in plain)
    down = Model.from_bytes(learner.with_behaviour(good, score_shift=-1.0)).predict(columns, rows)
    assert {q for _, q in down} == {0.0}


def test_error_rate_fails_about_its_share_of_requests_deterministically(good: bytes) -> None:
    columns, rows = _rows(NEW)
    model = Model.from_bytes(learner.with_behaviour(good, error_rate=0.3, seed=1))
    assert model.behaviour is not None
    requests = [rows[i : i + 2] for i in range(0, len(rows), 2)]  # 200 distinct requests
    outcome = [model.behaviour.fails(model, columns, r) for r in requests]
    assert 0.2 <= sum(outcome) / len(outcome) <= 0.4
    again = [model.behaviour.fails(model, columns, r) for r in requests]
    assert outcome == again  # the same request always meets the same fate
    # column order, extra columns and numbers-or-strings do not change the outcome
    reordered = list(reversed(columns))
    flipped = [[list(reversed(row)) for row in r] for r in requests]
    assert [model.behaviour.fails(model, reordered, r) for r in flipped] == outcome
    other = Model.from_bytes(learner.with_behaviour(good, error_rate=0.3, seed=2))
    assert other.behaviour is not None
    assert [other.behaviour.fails(other, columns, r) for r in requests] != outcome
    never = Behaviour(score_shift=0.1)
    always = Behaviour(error_rate=1.0)
    assert not any(never.fails(model, columns, r) for r in requests)
    assert all(always.fails(model, columns, r) for r in requests)


def test_shuffled_labels_keep_features_and_class_balance_and_train_a_worse_model() -> None:
    part, holdout = learner.split_holdout(TRAIN)
    shuffled = learner.shuffled_labels(part, "income", seed=1)
    header, rows = _rows(part)
    s_header, s_rows = _rows(shuffled)
    assert s_header == header
    assert [r[:-1] for r in s_rows] == [r[:-1] for r in rows]
    assert sorted(r[-1] for r in s_rows) == sorted(r[-1] for r in rows)
    assert [r[-1] for r in s_rows] != [r[-1] for r in rows]
    assert learner.shuffled_labels(part, seed=1) == shuffled  # seeded; label = last column
    normal = learner.train(part, label="income")
    noise = learner.train(shuffled, label="income")
    h_columns, h_rows = _rows(holdout)
    labels = [int(r[-1] == normal.classes[1]) for r in h_rows]
    good_auc = auc(labels, [p for _, p in normal.predict(h_columns, h_rows)])
    bad_auc = auc(labels, [p for _, p in noise.predict(h_columns, h_rows)])
    assert good_auc > 0.85
    assert bad_auc < good_auc - 0.3
    with pytest.raises(LearnerError, match="not in the header"):
        learner.shuffled_labels(part, "nope")


def test_train_faults_are_validated_like_the_others() -> None:
    faults = Faults()
    shuffled = faults.add(route="bes.*", kind="train_shuffled", seed=3)
    assert shuffled.seed == 3
    bad = faults.add(route="bes.start", kind="train_behaviour", error_rate=0.3, seconds=0.1)
    assert bad.behaviour() == Behaviour(error_rate=0.3, latency=0.1)
    drift = faults.add(route="bes.*", kind="train_behaviour", score_shift=-0.2, status=503)
    assert drift.behaviour().error_status == 503
    cases = [
        ({"kind": "train_behaviour"}, "needs error_rate, score_shift or seconds"),
        ({"kind": "train_behaviour", "error_rate": 2.0}, "'error_rate': 2.0 is not between"),
        ({"kind": "train_behaviour", "seconds": 301}, "'seconds' (the latency)"),
        ({"kind": "train_behaviour", "score_shift": 0.1, "status": 404}, "500 or 503"),
        ({"kind": "train_shuffled", "score_shift": 0.1}, "only for train_behaviour"),
        ({"kind": "job_fail", "seed": 1}, "only for train_shuffled and train_behaviour"),
        ({"kind": "status", "error_rate": 0.1}, "only for train_behaviour"),
        ({"kind": "train_shuffled", "route": "arm.put"}, "acts on bes.submit, bes.start"),
        ({"kind": "train_shuffled", "seed": "x"}, "seed must be an int"),
    ]
    for kwargs, needle in cases:
        with pytest.raises(ValueError) as caught:
            faults.add(**{"route": "bes.*", **kwargs})  # type: ignore[arg-type]
        assert needle in str(caught.value), kwargs


def test_train_faults_load_from_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "faults.toml"
    path.write_text(
        '[[faults]]\nroute = "bes.*"\nkind = "train_shuffled"\nseed = 2\n\n'
        '[[faults]]\nroute = "bes.start"\nkind = "train_behaviour"\nerror_rate = 0.25\n'
        'score_shift = 0.1\nseconds = 0.05\nseed = 4\ncount = "forever"\n'
    )
    rules = Faults.load(path).rules
    assert [(r.kind, r.seed) for r in rules] == [("train_shuffled", 2), ("train_behaviour", 4)]
    assert rules[1].behaviour() == Behaviour(error_rate=0.25, score_shift=0.1, latency=0.05, seed=4)
    assert rules[1].count is None
    path.write_text('[[faults]]\nkind = "train_behaviour"\nroute = "bes.*"\nerror_rate = -1\n')
    with pytest.raises(ValueError, match="fault #0: train_behaviour 'error_rate'"):
        Faults.load(path)

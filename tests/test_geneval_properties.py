"""Properties of the GenEval judge that must hold for any detections (hypothesis).

Only properties that the official semantics really have are tested. Some plausible ones do not hold
and are deliberately absent: raising a threshold can turn a failing counting verdict into a passing
one (the exclude clause), and can change which instance is top-1 for color and position; greedy NMS
is not monotone in ``max_overlap``.
"""

from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdmeval.prompts.geneval import COLORS, RELATIONS
from rdmeval.scorers.geneval import (
    Detection,
    JudgeOptions,
    detections_from_json,
    detections_to_json,
    filter_detections,
    judge,
    relative_position,
)

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLASSES = ["bench", "sports ball", "clock", "dog", "teddy bear", "apple"]
MIRROR = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def color_of(name: str, found: list[Detection]) -> list[str]:
    """A deterministic stand-in classifier: the color depends only on the detection itself."""
    return [COLORS[int(round(float(d.box[4]) * 1000 + d.box[0])) % len(COLORS)] for d in found]


@st.composite
def metadata(draw, tags=("single_object", "two_object", "counting", "colors", "position", "color_attr")):
    tag = draw(st.sampled_from(tags))
    a, b = draw(st.lists(st.sampled_from(CLASSES), min_size=2, max_size=2, unique=True))
    ca, cb = draw(st.lists(st.sampled_from(COLORS), min_size=2, max_size=2, unique=True))
    if tag == "single_object":
        include, exclude = [{"class": a, "count": 1}], []
    elif tag == "two_object":
        include, exclude = [{"class": a, "count": 1}, {"class": b, "count": 1}], []
    elif tag == "counting":
        n = draw(st.integers(2, 4))
        include, exclude = [{"class": a, "count": n}], [{"class": a, "count": n + 1}]
    elif tag == "colors":
        include, exclude = [{"class": a, "count": 1, "color": ca}], []
    elif tag == "position":
        rel = draw(st.sampled_from(RELATIONS))
        include, exclude = [{"class": b, "count": 1}, {"class": a, "count": 1, "position": [rel, 0]}], []
    else:
        include, exclude = [{"class": a, "count": 1, "color": ca}, {"class": b, "count": 1, "color": cb}], []
    meta = {"tag": tag, "include": include}
    if exclude:
        meta["exclude"] = exclude
    meta["prompt"] = f"a {tag} prompt"
    return meta


@st.composite
def boxes(draw, scores):
    """One detection per score; boxes may be degenerate (zero width or height)."""
    out = []
    for s in scores:
        x1, y1 = draw(st.integers(0, 400)), draw(st.integers(0, 400))
        w, h = draw(st.integers(0, 120)), draw(st.integers(0, 120))
        out.append(Detection(box=np.array([x1, y1, x1 + w, y1 + h, s], dtype=np.float32)))
    return out


@st.composite
def detections(draw, classes=CLASSES, max_per_class=20):
    """Per class, distinct scores on a 1/1000 grid (which hits the 0.3 and 0.9 boundaries exactly)."""
    out = {}
    for name in draw(st.lists(st.sampled_from(classes), unique=True, max_size=len(classes))):
        milli = draw(st.lists(st.integers(0, 1000), unique=True, max_size=max_per_class))
        out[name] = draw(boxes([m / 1000 for m in milli]))
    return out


def same_verdict(a, b) -> bool:
    return a.correct == b.correct and a.reason == b.reason and a.details == b.details


# ----------------------------------------------------------------------------- invariances


@SETTINGS
@given(meta=metadata(), dets=detections(), data=st.data())
def test_input_order_does_not_matter(meta, dets, data):
    shuffled = {}
    for name in data.draw(st.permutations(list(dets))):
        shuffled[name] = data.draw(st.permutations(dets[name]))
    a, b = judge(meta, dets, color_of), judge(meta, shuffled, color_of)
    assert same_verdict(a, b)


@SETTINGS
@given(meta=metadata(), dets=detections(), extra=detections(classes=["person", "cup", "tv"]))
def test_unmentioned_classes_only_add_details(meta, dets, extra):
    a, b = judge(meta, dets, color_of), judge(meta, {**dets, **extra}, color_of)
    assert (a.correct, a.reason) == (b.correct, b.reason)
    assert {k: v for k, v in b.details.items() if k in CLASSES} == a.details


@SETTINGS
@given(meta=metadata(), dets=detections(), data=st.data())
def test_detections_at_or_below_threshold_change_nothing(meta, dets, data):
    tau = 0.9 if meta["tag"] == "counting" else 0.3
    noisy = {k: list(v) for k, v in dets.items()}
    for name in data.draw(st.lists(st.sampled_from(CLASSES), max_size=4)):
        score = data.draw(st.sampled_from([0.0, 0.1, 0.25, tau]))
        noisy.setdefault(name, []).append(Detection(box=np.array([5, 5, 50, 50, score], np.float32)))
    assert same_verdict(judge(meta, dets, color_of), judge(meta, noisy, color_of))


@SETTINGS
@given(meta=metadata(), dets=detections(), ct=st.floats(0, 1), t=st.floats(0, 1))
def test_each_tag_uses_only_its_own_threshold(meta, dets, ct, t):
    if meta["tag"] == "counting":
        a, b = JudgeOptions(counting_threshold=ct), JudgeOptions(counting_threshold=ct, threshold=t)
    else:
        a, b = JudgeOptions(threshold=t), JudgeOptions(threshold=t, counting_threshold=ct)
    assert same_verdict(judge(meta, dets, color_of, a), judge(meta, dets, color_of, b))


@SETTINGS
@given(
    meta=metadata(tags=("single_object", "two_object", "colors", "position", "color_attr")),
    dets=detections(),
    cap=st.integers(1, 20),
    overlap=st.sampled_from([1.0, 0.3, 0.7]),
)
def test_cap_does_not_matter_without_exclude(meta, dets, cap, overlap):
    # include counts are 1 and greedy NMS keeps a prefix-consistent list, so the top-1 never changes
    small = judge(meta, dets, color_of, JudgeOptions(max_objects=cap, max_overlap=overlap))
    large = judge(meta, dets, color_of, JudgeOptions(max_objects=1000, max_overlap=overlap))
    assert (small.correct, small.reason) == (large.correct, large.reason)


# ----------------------------------------------------------------------------- references and monotonicity


@SETTINGS
@given(meta=metadata(tags=("single_object", "two_object")), dets=detections(), t=st.floats(0, 1))
def test_presence_matches_a_direct_reference(meta, dets, t):
    def present(name):
        return any(np.float32(d.box[4]) > np.float32(t) for d in dets.get(name, []))

    expected = all(present(c["class"]) for c in meta["include"])
    assert judge(meta, dets, color_of, JudgeOptions(threshold=t)).correct == expected


@SETTINGS
@given(meta=metadata(tags=("single_object", "two_object")), dets=detections(), t=st.floats(0, 1), u=st.floats(0, 1))
def test_raising_the_threshold_never_fixes_a_presence_failure(meta, dets, t, u):
    low, high = sorted((t, u))
    if not judge(meta, dets, color_of, JudgeOptions(threshold=low)).correct:
        assert not judge(meta, dets, color_of, JudgeOptions(threshold=high)).correct


@SETTINGS
@given(meta=metadata(tags=("counting",)), dets=detections(max_per_class=24))
def test_counting_is_exactly_n_above_point_nine(meta, dets):
    name, n = meta["include"][0]["class"], meta["include"][0]["count"]
    above = sum(1 for d in dets.get(name, []) if d.box[4] > np.float32(0.9))
    v = judge(meta, dets, color_of)
    assert v.correct == (above == n)
    if above > n:
        assert v.reason == f"expected {name}<{n + 1}, found {min(above, 16)}"


@SETTINGS
@given(meta=metadata(), dets=detections())
def test_reason_is_empty_iff_correct_with_one_line_per_failing_clause(meta, dets):
    v = judge(meta, dets, color_of)
    assert (v.reason == "") == v.correct
    if not v.correct:
        assert 1 <= len(v.reason.split("\n")) <= len(meta["include"]) + len(meta.get("exclude", []))


box4 = st.tuples(st.integers(0, 500), st.integers(0, 500), st.integers(0, 200), st.integers(0, 200)).map(
    lambda t: np.array([t[0], t[1], t[0] + t[2], t[1] + t[3]], np.float32)
)


@SETTINGS
@given(a=box4, b=box4, p=st.floats(0, 1), q=st.floats(0, 1))
def test_a_larger_margin_only_removes_relations(a, b, p, q):
    low, high = sorted((p, q))
    assert relative_position(a, b, high) <= relative_position(a, b, low)


@SETTINGS
@given(a=box4, b=box4, p=st.floats(0, 1))
def test_relative_position_is_mirror_symmetric(a, b, p):
    assert relative_position(b, a, p) == {MIRROR[r] for r in relative_position(a, b, p)}


@SETTINGS
@given(a=box4, b=box4)
def test_at_most_one_relation_per_axis(a, b):
    rel = relative_position(a, b)
    assert not {"left of", "right of"} <= rel and not {"above", "below"} <= rel


# ----------------------------------------------------------------------------- robustness


@SETTINGS
@given(meta=metadata())
def test_empty_detections(meta):
    v = judge(meta, {}, color_of)
    assert v.correct is False and v.details == {}
    assert v.reason.split("\n")[0] == f"expected {meta['include'][0]['class']}>={meta['include'][0]['count']}, found 0"


@SETTINGS
@given(meta=metadata(), x=st.integers(0, 500), y=st.integers(0, 500), n=st.integers(1, 6))
def test_zero_area_boxes(meta, x, y, n):
    dets = {c: [Detection(box=np.array([x, y, x, y, 0.95 - 0.001 * i], np.float32)) for i in range(n)]
            for c in CLASSES}
    for overlap in (1.0, 0.5):
        v = judge(meta, dets, color_of, JudgeOptions(max_overlap=overlap))
        assert isinstance(v.correct, bool)
    if meta["tag"] == "position":  # identical centers: no relation
        assert v.reason.endswith("found  target")


@settings(max_examples=10, deadline=None)
@given(meta=metadata(), seed=st.integers(0, 2**32 - 1), overlap=st.sampled_from([1.0, 0.5]))
def test_huge_inputs(meta, seed, overlap):
    rng = np.random.default_rng(seed)
    names = CLASSES + [f"other{i}" for i in range(74)]
    dets = {}
    for name in names:
        n = 40
        xy = rng.integers(0, 480, size=(n, 2))
        wh = rng.integers(0, 60, size=(n, 2))
        rows = np.column_stack([xy, xy + wh, rng.random(n)]).astype(np.float32)
        dets[name] = [Detection(box=r) for r in rows]
    v = judge(meta, dets, color_of, JudgeOptions(max_overlap=overlap))
    assert all(len(rows) <= 16 for rows in v.details.values())
    assert json.loads(json.dumps(v.details)) == v.details
    kept = filter_detections(dets, meta["tag"], JudgeOptions(max_overlap=overlap))
    for rows in kept.values():
        scores = [float(d.box[4]) for d in rows]
        assert scores == sorted(scores, reverse=True)


# ----------------------------------------------------------------------------- the JSON cache form


@SETTINGS
@given(
    data=st.data(),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    n=st.integers(0, 4),
)
def test_json_round_trip_is_bit_exact(data, h, w, n):
    f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
    dets = {}
    for name in data.draw(st.lists(st.sampled_from(CLASSES), unique=True, max_size=3)):
        items = []
        for _ in range(n):
            box = np.array(data.draw(st.lists(f32, min_size=5, max_size=5)), np.float32)
            bits = data.draw(st.none() | st.lists(st.booleans(), min_size=h * w, max_size=h * w))
            items.append(Detection(box=box, mask=None if bits is None else np.array(bits).reshape(h, w)))
        dets[name] = items
    back = detections_from_json(json.loads(json.dumps(detections_to_json(dets, h, w))))
    assert list(back) == list(dets)
    for name, items in dets.items():
        for a, b in zip(items, back[name], strict=True):
            assert a.box.tobytes() == b.box.tobytes()
            assert (a.mask is None and b.mask is None) or (b.mask.dtype == np.bool_ and np.array_equal(a.mask, b.mask))

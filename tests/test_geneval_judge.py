"""The GenEval judge against the golden cases of the GenEval scoring rules (the official
evaluate_images.py), one per task kind.

Expected values were produced by a scratch re-implementation of those rules and checked by hand,
not by this implementation. Color predictions are stubbed per detection.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from rdmeval.errors import RdmevalError
from rdmeval.scorers.geneval import (
    Detection,
    JudgeOptions,
    detections_from_json,
    detections_to_json,
    filter_detections,
    from_pred_instances,
    judge,
    load_object_names,
    relative_position,
)

# The metadata of the golden cases; all are real lines of evaluation_metadata.jsonl (checked below).
M_BENCH = {"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"}
M_TWO = {
    "tag": "two_object",
    "include": [{"class": "bench", "count": 1}, {"class": "sports ball", "count": 1}],
    "prompt": "a photo of a bench and a sports ball",
}
M_CLOCK2 = {
    "tag": "counting",
    "include": [{"class": "clock", "count": 2}],
    "exclude": [{"class": "clock", "count": 3}],
    "prompt": "a photo of two clocks",
}
M_HYDRANT = {
    "tag": "colors",
    "include": [{"class": "fire hydrant", "count": 1, "color": "blue"}],
    "prompt": "a photo of a blue fire hydrant",
}
M_DOG_TB = {
    "tag": "position",
    "include": [{"class": "teddy bear", "count": 1}, {"class": "dog", "count": 1, "position": ["right of", 0]}],
    "prompt": "a photo of a dog right of a teddy bear",
}
M_GLASS_KITE = {
    "tag": "position",
    "include": [{"class": "kite", "count": 1}, {"class": "wine glass", "count": 1, "position": ["above", 0]}],
    "prompt": "a photo of a wine glass above a kite",
}
M_GLASS_APPLE = {
    "tag": "color_attr",
    "include": [
        {"class": "wine glass", "count": 1, "color": "purple"},
        {"class": "apple", "count": 1, "color": "black"},
    ],
    "prompt": "a photo of a purple wine glass and a black apple",
}
GOLDEN_LINES = {
    0: M_BENCH,
    80: M_TWO,
    179: M_CLOCK2,
    259: M_HYDRANT,
    353: M_DOG_TB,
    354: M_GLASS_KITE,
    453: M_GLASS_APPLE,
}


def det(x1, y1, x2, y2, score) -> Detection:
    return Detection(box=np.array([x1, y1, x2, y2, score], dtype=np.float32), mask=None)


def no_colors(name, found):
    raise AssertionError(f"the color classifier must not be called (class {name!r})")


class StubColors:
    """Returns the color assigned to each Detection object; records every call."""

    def __init__(self, assigned: dict[Detection, str]):
        self.assigned = assigned
        self.calls: list[tuple[str, list[float]]] = []

    def __call__(self, name, found):
        self.calls.append((name, [float(d.score) for d in found]))
        return [self.assigned[d] for d in found]


def run(meta, dets, color_fn=no_colors, **opts):
    return judge(meta, dets, color_fn, JudgeOptions(**opts))


def test_golden_metadata_are_real_lines(shared_data):
    lines = (shared_data / "geneval" / "evaluation_metadata.jsonl").read_text().splitlines()
    for index, meta in GOLDEN_LINES.items():
        assert json.loads(lines[index]) == meta
        assert list(json.loads(lines[index])) == list(meta)  # key order too (it is in the metadata string)


# ----------------------------------------------------------------------------- single object: thresholds


def test_s1_present():
    v = run(M_BENCH, {"bench": [det(10, 10, 200, 200, 0.95)]})
    assert (v.correct, v.reason) == (True, "")


def test_s2_score_equal_to_threshold_in_float32_is_rejected():
    score = np.float32(0.3)
    assert float(score) > 0.3  # a float64 comparison would wrongly accept it; the judge must not
    v = run(M_BENCH, {"bench": [det(10, 10, 200, 200, score)]})
    assert (v.correct, v.reason) == (False, "expected bench>=1, found 0")
    assert v.details == {}


def test_s3_just_above_threshold():
    assert run(M_BENCH, {"bench": [det(10, 10, 200, 200, 0.3001)]}).correct


def test_s4_other_class_never_substitutes():
    v = run(M_BENCH, {"chair": [det(10, 10, 200, 200, 0.99)]})
    assert (v.correct, v.reason) == (False, "expected bench>=1, found 0")


def test_s5_extra_instances_and_classes_ignored():
    dets = {
        "bench": [det(0, 0, 10, 10, 0.8), det(20, 0, 30, 10, 0.9), det(40, 0, 50, 10, 0.7)],
        "person": [det(0, 50, 10, 60, 0.99)],
    }
    v = run(M_BENCH, dets)
    assert (v.correct, v.reason) == (True, "")
    # details list every kept class, in kept (descending score) order, as floats of float32.
    assert v.details == {
        "bench": [
            [20.0, 0.0, 30.0, 10.0, 0.8999999761581421],
            [0.0, 0.0, 10.0, 10.0, 0.800000011920929],
            [40.0, 0.0, 50.0, 10.0, 0.699999988079071],
        ],
        "person": [[0.0, 50.0, 10.0, 60.0, 0.9900000095367432]],
    }


def test_details_json_prints_float32_values():
    v = run(M_BENCH, {"bench": [det(10, 10, 200, 200, 0.95)]})
    assert json.dumps(v.details) == '{"bench": [[10.0, 10.0, 200.0, 200.0, 0.949999988079071]]}'


def test_t1_both_present():
    dets = {"bench": [det(0, 0, 100, 100, 0.8)], "sports ball": [det(200, 200, 240, 240, 0.35)]}
    assert (run(M_TWO, dets).correct, run(M_TWO, dets).reason) == (True, "")


def test_t2_second_object_below_threshold():
    dets = {"bench": [det(0, 0, 100, 100, 0.8)], "sports ball": [det(200, 200, 240, 240, 0.29)]}
    v = run(M_TWO, dets)
    assert (v.correct, v.reason) == (False, "expected sports ball>=1, found 0")
    assert list(v.details) == ["bench"]


def test_t3_nothing_one_line_per_clause_in_include_order():
    v = run(M_TWO, {})
    assert (v.correct, v.reason) == (False, "expected bench>=1, found 0\nexpected sports ball>=1, found 0")


# ----------------------------------------------------------------------------- counting


def clocks(*scores):
    return {"clock": [det(150 * i, 0, 150 * i + 100, 100, s) for i, s in enumerate(scores)]}


@pytest.mark.parametrize(
    "case, scores, correct, reason",
    [
        ("C1", (0.95, 0.92), True, ""),
        ("C2", (0.95, 0.92, 0.85, 0.5), True, ""),
        ("C3", (0.95, 0.93, 0.91), False, "expected clock<3, found 3"),
        ("C4", (0.95, 0.89), False, "expected clock>=2, found 1"),
        ("C5", (0.95, np.float32(0.9)), False, "expected clock>=2, found 1"),
        ("C7", (0.95,) * 20, False, "expected clock<3, found 16"),
    ],
)
def test_counting(case, scores, correct, reason):
    v = run(M_CLOCK2, clocks(*scores))
    assert (v.correct, v.reason) == (correct, reason), case


def test_c2_low_confidence_clocks_are_invisible_in_details():
    v = run(M_CLOCK2, clocks(0.5, 0.95, 0.85, 0.92))
    assert [row[4] for row in v.details["clock"]] == [float(np.float32(0.95)), float(np.float32(0.92))]


def test_c4_same_score_passes_other_tags():
    assert run(M_BENCH, {"bench": [det(0, 0, 9, 9, 0.89)]}).correct


def test_c5_boundary_is_strict_in_float32():
    at = np.float32(0.9)
    above = np.nextafter(at, np.float32(1))
    assert run(M_CLOCK2, clocks(0.95, at)).reason == "expected clock>=2, found 1"
    assert run(M_CLOCK2, clocks(0.95, above)).correct
    # the same for the 0.3 threshold, where float32(0.3) > 0.3 in float64: only float32 rejects it
    assert run(M_BENCH, {"bench": [det(0, 0, 9, 9, np.float32(0.3))]}).correct is False
    assert run(M_BENCH, {"bench": [det(0, 0, 9, 9, np.nextafter(np.float32(0.3), np.float32(1)))]}).correct


def test_c6_near_duplicates_count_twice_without_nms():
    dets = {"clock": [det(0, 0, 100, 100, 0.95), det(1, 1, 101, 101, 0.93)]}
    assert run(M_CLOCK2, dets).correct
    v = run(M_CLOCK2, dets, max_overlap=0.5)  # C6'
    assert (v.correct, v.reason) == (False, "expected clock>=2, found 1")


def test_c8_exclude_passes_with_class_absent():
    dets = {"cup": [det(120 * i, 0, 120 * i + 100, 100, 0.99) for i in range(5)]}
    v = run(M_CLOCK2, dets)
    assert (v.correct, v.reason) == (False, "expected clock>=2, found 0")


# ----------------------------------------------------------------------------- NMS details


def test_nms_uses_inclusive_pixel_iou():
    # Inclusive areas 100 and 100, intersection 50: IoU 1/3 (the exclusive convention gives 36/126 < 0.3).
    a, b = det(0, 0, 9, 9, 0.9), det(5, 0, 14, 9, 0.8)
    assert filter_detections({"x": [a, b]}, "single_object", JudgeOptions(max_overlap=0.3))["x"] == [a]
    assert filter_detections({"x": [a, b]}, "single_object", JudgeOptions(max_overlap=0.34))["x"] == [a, b]


def test_nms_drops_iou_equal_to_max_overlap():
    a, b = det(0, 0, 9, 9, 0.9), det(0, 0, 9, 4, 0.8)  # inclusive IoU exactly 50/100
    assert filter_detections({"x": [a, b]}, "single_object", JudgeOptions(max_overlap=0.5))["x"] == [a]


def test_nms_runs_after_the_cap():
    a, dup, c = det(0, 0, 100, 100, 0.9), det(0, 0, 100, 100, 0.8), det(300, 300, 400, 400, 0.7)
    opts = JudgeOptions(max_objects=2, max_overlap=0.5)
    # cap first: [a, dup] -> NMS keeps [a]; NMS first would have kept [a, c].
    assert filter_detections({"x": [c, dup, a]}, "single_object", opts)["x"] == [a]


def test_nms_is_greedy_in_score_order():
    # b overlaps a (dropped); c overlaps b but not a, so it survives because b was already dropped.
    a, b, c = det(0, 0, 99, 99, 0.9), det(40, 0, 139, 99, 0.8), det(80, 0, 179, 99, 0.7)
    kept = filter_detections({"x": [c, b, a]}, "single_object", JudgeOptions(max_overlap=0.4))["x"]
    assert kept == [a, c]


def test_filter_uses_counting_threshold_for_every_class_on_counting():
    dets = {"bench": [det(0, 0, 9, 9, 0.95)], "dog": [det(0, 0, 9, 9, 0.5)]}
    assert list(filter_detections(dets, "counting")) == ["bench"]
    assert list(filter_detections(dets, "two_object")) == ["bench", "dog"]


# ----------------------------------------------------------------------------- colors


def test_k1_top1_is_blue():
    d = det(10, 10, 100, 100, 0.9)
    assert run(M_HYDRANT, {"fire hydrant": [d]}, StubColors({d: "blue"})).correct


@pytest.mark.parametrize("reverse", [False, True], ids=["K2", "K3"])
def test_k2_k3_only_top1_is_classified(reverse):
    red, blue = det(10, 10, 100, 100, 0.9), det(200, 10, 300, 100, 0.6)
    order = [blue, red] if reverse else [red, blue]
    colors = StubColors({red: "red", blue: "blue"})
    v = run(M_HYDRANT, {"fire hydrant": order}, colors)
    assert (v.correct, v.reason) == (False, "expected blue fire hydrant>=1, found 0 blue; and 1 red")
    assert colors.calls == [("fire hydrant", [float(np.float32(0.9))])]


def test_k4_no_color_reason_and_no_classifier_call_when_count_fails():
    v = run(M_HYDRANT, {}, no_colors)
    assert (v.correct, v.reason) == (False, "expected fire hydrant>=1, found 0")


def test_k5_threshold_before_top1():
    blue, red = det(10, 10, 100, 100, 0.25), det(200, 10, 300, 100, 0.31)
    v = run(M_HYDRANT, {"fire hydrant": [blue, red]}, StubColors({blue: "blue", red: "red"}))
    assert (v.correct, v.reason) == (False, "expected blue fire hydrant>=1, found 0 blue; and 1 red")


def glass_apple(glass_color, apple_color):
    glass, apple = det(10, 10, 100, 100, 0.9), det(200, 10, 300, 100, 0.8)
    return {"wine glass": [glass], "apple": [apple]}, StubColors({glass: glass_color, apple: apple_color})


def test_a1_both_colors_right():
    dets, colors = glass_apple("purple", "black")
    assert run(M_GLASS_APPLE, dets, colors).correct


def test_a2_second_color_wrong():
    v = run(M_GLASS_APPLE, *glass_apple("purple", "red"))
    assert (v.correct, v.reason) == (False, "expected black apple>=1, found 0 black; and 1 red")


def test_a3_clauses_are_independent():
    v = run(M_GLASS_APPLE, *glass_apple("white", "red"))
    assert v.correct is False
    assert v.reason == (
        "expected purple wine glass>=1, found 0 purple; and 1 white\n"
        "expected black apple>=1, found 0 black; and 1 red"
    )


def test_color_reason_lists_colors_in_palette_order_including_the_wanted_one():
    meta = {"tag": "colors", "include": [{"class": "apple", "count": 3, "color": "red"}], "prompt": "p"}
    apples = [det(100 * i, 0, 100 * i + 50, 50, 0.9 - 0.1 * i) for i in range(4)]
    colors = StubColors(dict(zip(apples, ["white", "red", "green", "red"])))
    v = run(meta, {"apple": apples}, colors)
    # only the top 3 are classified: white, red, green
    assert v.reason == "expected red apple>=3, found 1 red; and 1 red, 1 green, 1 white"
    assert len(colors.calls[0][1]) == 3


def test_failed_color_leaves_no_position_target():
    meta = {
        "tag": "position",
        "include": [
            {"class": "kite", "count": 1, "color": "red"},
            {"class": "dog", "count": 1, "position": ["right of", 0]},
        ],
        "prompt": "p",
    }
    kite, dog = det(0, 0, 100, 100, 0.9), det(300, 0, 400, 100, 0.9)
    v = run(meta, {"kite": [kite], "dog": [dog]}, StubColors({kite: "blue"}))
    assert v.reason == "expected red kite>=1, found 0 red; and 1 blue\nno target for dog to be right of"


def test_color_fn_must_return_one_color_per_detection():
    d = det(0, 0, 10, 10, 0.9)
    with pytest.raises(RdmevalError, match="one color string per detection"):
        run(M_HYDRANT, {"fire hydrant": [d]}, lambda name, found: [])


# ----------------------------------------------------------------------------- position


def position(tb_boxes, dog_boxes, meta=M_DOG_TB):
    dets = {}
    if tb_boxes:
        dets["teddy bear"] = [det(*b) for b in tb_boxes]
    if dog_boxes:
        dets["dog"] = [det(*b) for b in dog_boxes]
    return run(meta, dets)


@pytest.mark.parametrize(
    "case, tb, dog, relations, correct, reason",
    [
        ("P1", (50, 200, 150, 300), (300, 200, 400, 300), {"right of"}, True, ""),
        ("P2", (300, 200, 400, 300), (50, 200, 150, 300), {"left of"}, False,
         "expected dog right of target, found left of target"),
        ("P3", (100, 100, 400, 400), (200, 150, 420, 390), set(), False,
         "expected dog right of target, found  target"),
        ("P4", (0, 300, 100, 400), (400, 0, 500, 100), {"right of", "above"}, True, ""),
        ("P5", (100, 100, 200, 200), (100, 100, 200, 200), set(), False,
         "expected dog right of target, found  target"),
        ("P9", (0, 0, 100, 100), (40, 0, 140, 100), set(), False, "expected dog right of target, found  target"),
        ("P10", (0, 0, 100, 100), (41, 0, 141, 100), {"right of"}, True, ""),
        ("P11", (0, 0, 100, 100), (30, 0, 130, 100), set(), False, "expected dog right of target, found  target"),
    ],
)
def test_position(case, tb, dog, relations, correct, reason):
    assert relative_position(np.array(dog, np.float32), np.array(tb, np.float32), 0.1) == relations, case
    v = position([(*tb, 0.9)], [(*dog, 0.9)])
    assert (v.correct, v.reason) == (correct, reason), case


def test_p6_missing_target():
    v = position([], [(300, 200, 400, 300, 0.9)])
    assert (v.correct, v.reason) == (False, "expected teddy bear>=1, found 0\nno target for dog to be right of")


def test_p7_missing_subject():
    v = position([(50, 200, 150, 300, 0.9)], [])
    assert (v.correct, v.reason) == (False, "expected dog>=1, found 0")


def test_p8_only_top1_target_is_used():
    v = position([(0, 200, 100, 300, 0.6), (350, 200, 450, 300, 0.9)], [(200, 200, 300, 300, 0.9)])
    assert (v.correct, v.reason) == (False, "expected dog right of target, found left of target")


def test_p12_above_means_smaller_y():
    dets = {"kite": [det(200, 300, 300, 400, 0.9)], "wine glass": [det(200, 50, 300, 150, 0.9)]}
    assert relative_position(dets["wine glass"][0].box, dets["kite"][0].box) == {"above"}
    assert run(M_GLASS_KITE, dets).correct


def test_p13_position_uses_the_normal_threshold():
    v = position([(0, 0, 100, 100, 0.9)], [(200, 0, 300, 100, 0.29)])
    assert (v.correct, v.reason) == (False, "expected dog>=1, found 0")


def test_two_relations_in_a_failure_reason_compared_as_a_set():
    v = position([(400, 300, 500, 400, 0.9)], [(0, 0, 100, 100, 0.9)])
    head, tail = "expected dog right of target, found ", " target"
    assert v.reason.startswith(head) and v.reason.endswith(tail)
    assert set(v.reason[len(head) : -len(tail)].split(" and ")) == {"left of", "above"}


M_DOG_LEFT_OF_TB = {
    "tag": "position",
    "include": [{"class": "teddy bear", "count": 1}, {"class": "dog", "count": 1, "position": ["left of", 0]}],
    "prompt": "a photo of a dog left of a teddy bear",
}


def test_two_relations_follow_the_fixed_relation_order():
    # official: Python set order (varies with hash randomization); here: the order of RELATIONS
    v = position([(0, 0, 100, 100, 0.9)], [(400, 400, 500, 500, 0.9)], M_DOG_LEFT_OF_TB)
    assert v.reason == "expected dog left of target, found right of and below target"



def test_a_failed_color_skips_the_position_test_of_the_same_clause():
    meta = {
        "tag": "position",
        "include": [
            {"class": "teddy bear", "count": 1},
            {"class": "dog", "count": 1, "color": "brown", "position": ["right of", 0]},
        ],
        "prompt": "p",
    }
    tb, dog = det(300, 0, 400, 100, 0.9), det(0, 0, 100, 100, 0.9)  # the dog is left of the bear
    v = run(meta, {"teddy bear": [tb], "dog": [dog]}, StubColors({dog: "white"}))
    assert v.reason == "expected brown dog>=1, found 0 brown; and 1 white"
    v = run(meta, {"teddy bear": [tb], "dog": [dog]}, StubColors({dog: "brown"}))
    assert v.reason == "expected dog right of target, found left of target"


def test_position_is_all_pairs_over_top_k():
    meta = {
        "tag": "position",
        "include": [{"class": "teddy bear", "count": 1}, {"class": "dog", "count": 2, "position": ["right of", 0]}],
        "prompt": "p",
    }
    tb = (100, 0, 200, 100, 0.9)
    right, left = (400, 0, 500, 100, 0.9), (0, 0, 50, 100, 0.8)
    assert position([tb], [right, left], meta).reason == "expected dog right of target, found left of target"
    assert position([tb], [right, (600, 0, 700, 100, 0.8)], meta).correct
    # a third dog below the top 2 does not matter
    assert position([tb], [right, (600, 0, 700, 100, 0.8), (0, 0, 50, 100, 0.7)], meta).correct


def test_position_threshold_option_changes_the_margin():
    # P10 holds at 0.1; with a larger margin the same boxes no longer count as "right of".
    assert relative_position(np.array([41, 0, 141, 100], np.float32), np.array([0, 0, 100, 100], np.float32), 0.1)
    v = position([(0, 0, 100, 100, 0.9)], [(41, 0, 141, 100, 0.9)])
    assert v.correct
    v = judge(M_DOG_TB, {"teddy bear": [det(0, 0, 100, 100, 0.9)], "dog": [det(41, 0, 141, 100, 0.9)]},
              no_colors, JudgeOptions(position_threshold=0.2))
    assert v.reason == "expected dog right of target, found  target"


# ----------------------------------------------------------------------------- the adapter


class FakeTensor:
    """Duck-typed stand-in for a torch tensor (the adapter only uses .cpu().numpy())."""

    def __init__(self, array):
        self._array = np.asarray(array)

    def cpu(self):
        return self

    def numpy(self):
        return self._array


def adapter_inputs(wrap=np.asarray):
    labels = np.array([74, 13, 74, 64], dtype=np.int64)
    scores = np.array([0.5, 0.95, 0.97, 0.8], dtype=np.float32)
    bboxes = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10]], dtype=np.float32)
    masks = np.zeros((4, 8, 12), dtype=bool)
    for i in range(4):
        masks[i, i, i] = True
    return wrap(labels), wrap(scores), wrap(bboxes), wrap(masks)


def test_67_adapter_uses_geneval_names(shared_data):
    names = load_object_names(shared_data / "geneval" / "object_names.txt")
    dets = from_pred_instances(*adapter_inputs(), class_names=names)
    assert list(dets) == ["bench", "computer mouse", "clock"]  # label-index order
    assert "mouse" not in dets
    assert [float(d.score) for d in dets["clock"]] == [float(np.float32(0.5)), float(np.float32(0.97))]
    kept = filter_detections(dets, "single_object")
    assert [float(d.score) for d in kept["clock"]] == [float(np.float32(0.97)), float(np.float32(0.5))]
    assert [float(d.score) for d in kept["bench"]] == [float(np.float32(0.95))]
    assert [float(d.score) for d in kept["computer mouse"]] == [float(np.float32(0.8))]
    counting = filter_detections(dets, "counting")
    assert {k: [float(d.score) for d in v] for k, v in counting.items()} == {
        "bench": [float(np.float32(0.95))],
        "clock": [float(np.float32(0.97))],
    }


def test_67_a_computer_mouse_prompt_passes_through_the_adapter(shared_data):
    names = load_object_names(shared_data / "geneval" / "object_names.txt")
    lines = (shared_data / "geneval" / "evaluation_metadata.jsonl").read_text().splitlines()
    meta = next(json.loads(x) for x in lines if json.loads(x)["include"] == [{"class": "computer mouse", "count": 1}])
    assert judge(meta, from_pred_instances(*adapter_inputs(), class_names=names), no_colors).correct


def test_load_object_names_matches_the_documented_indices(shared_data):
    names = load_object_names(shared_data / "geneval" / "object_names.txt")
    expected = {0: "person", 10: "fire hydrant", 13: "bench", 16: "dog", 32: "sports ball", 33: "kite",
                40: "wine glass", 47: "apple", 56: "chair", 62: "tv", 64: "computer mouse", 65: "tv remote",
                66: "computer keyboard", 74: "clock", 77: "teddy bear", 79: "toothbrush"}
    assert {i: names[i] for i in expected} == expected


@pytest.mark.parametrize("wrap", [np.asarray, FakeTensor], ids=["numpy", "duck-tensor"])
def test_adapter_rows_masks_and_dtypes(wrap):
    names = [f"class{i}" for i in range(80)]
    labels, scores, bboxes, masks = adapter_inputs()
    dets = from_pred_instances(*adapter_inputs(wrap), class_names=names)
    for i, label in enumerate(labels):
        matches = [d for d in dets[names[label]] if d.box[4] == scores[i]]
        assert len(matches) == 1
        d = matches[0]
        assert d.box.dtype == np.float32 and d.box.shape == (5,)
        np.testing.assert_array_equal(d.box[:4], bboxes[i])
        assert d.mask.dtype == np.bool_ and d.mask.shape == (8, 12)
        np.testing.assert_array_equal(d.mask, masks[i])


def test_adapter_with_torch_tensors():
    import torch
    names = [f"class{i}" for i in range(80)]
    labels, scores, bboxes, masks = adapter_inputs()
    dets = from_pred_instances(
        torch.from_numpy(labels), torch.from_numpy(scores), torch.from_numpy(bboxes), torch.from_numpy(masks), names
    )
    assert sorted(float(d.score) for d in dets["class74"]) == [float(np.float32(0.5)), float(np.float32(0.97))]
    assert all(isinstance(d.mask, np.ndarray) and d.mask.dtype == np.bool_ for v in dets.values() for d in v)


def test_adapter_without_masks_and_empty():
    names = [f"class{i}" for i in range(80)]
    labels, scores, bboxes, _ = adapter_inputs()
    dets = from_pred_instances(labels, scores, bboxes, None, names)
    assert all(d.mask is None for v in dets.values() for d in v)
    empty = from_pred_instances(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, 4), np.float32),
                                np.zeros((0, 8, 8), bool), names)
    assert empty == {}


def test_adapter_rejects_bad_input():
    names = [f"class{i}" for i in range(80)]
    labels, scores, bboxes, masks = adapter_inputs()
    with pytest.raises(RdmevalError, match="outside 0..79"):
        from_pred_instances(np.array([80, 0, 1, 2]), scores, bboxes, masks, names)
    with pytest.raises(RdmevalError, match="bboxes"):
        from_pred_instances(labels, scores, bboxes[:, :3], masks, names)
    with pytest.raises(RdmevalError, match="masks"):
        from_pred_instances(labels, scores, bboxes, masks[:3], names)


@pytest.mark.parametrize(
    "content, message",
    [
        ("person\n" * 80, "duplicate class name 'person'"),
        ("\n".join(f"c{i}" for i in range(79)) + "\n", "expected 80 class names"),
        ("\n".join(["c0", ""] + [f"c{i}" for i in range(2, 80)]) + "\n", ":2: empty class name"),
    ],
)
def test_load_object_names_errors(tmp_path, content, message):
    path = tmp_path / "object_names.txt"
    path.write_text(content)
    with pytest.raises(RdmevalError, match=message):
        load_object_names(path)


def test_load_object_names_missing_file(tmp_path):
    with pytest.raises(RdmevalError, match="not found"):
        load_object_names(tmp_path / "nope.txt")


# ----------------------------------------------------------------------------- Detection and JSON form


def test_detection_coerces_and_validates():
    d = Detection(box=[1, 2, 3, 4, 0.3], mask=np.array([[0, 1], [2, 0]], dtype=np.uint8))
    assert d.box.dtype == np.float32 and d.score == np.float32(0.3)
    assert d.mask.dtype == np.bool_ and d.mask.tolist() == [[False, True], [True, False]]
    with pytest.raises(RdmevalError, match=r"shape \(5,\)"):
        Detection(box=[1, 2, 3, 4])
    with pytest.raises(RdmevalError, match="mask must be bool"):
        Detection(box=[1, 2, 3, 4, 0.5], mask=np.zeros((2, 2), np.float32))
    with pytest.raises(RdmevalError, match="2-D"):
        Detection(box=[1, 2, 3, 4, 0.5], mask=np.zeros((1, 2, 2), bool))


def test_json_round_trip_is_exact():
    rng = np.random.default_rng(7)
    h, w = 37, 53
    dets = {
        "clock": [
            Detection(box=rng.random(5, dtype=np.float32) * 100, mask=rng.random((h, w)) < 0.3)
            for _ in range(3)
        ],
        "computer mouse": [Detection(box=[0.1, 0.2, 0.3, 0.4, 0.3], mask=None)],
        "dog": [Detection(box=[1, 2, 3, 4, 0.9], mask=np.zeros((h, w), bool)),
                Detection(box=[1, 2, 3, 4, 0.8], mask=np.ones((h, w), bool))],
    }
    text = json.dumps(detections_to_json(dets, h, w))
    back = detections_from_json(json.loads(text))
    assert list(back) == list(dets)
    for name in dets:
        assert len(back[name]) == len(dets[name])
        for a, b in zip(dets[name], back[name]):
            assert b.box.dtype == np.float32 and b.box.tobytes() == a.box.tobytes()
            if a.mask is None:
                assert b.mask is None
            else:
                assert b.mask.dtype == np.bool_ and np.array_equal(a.mask, b.mask)
    # and the verdict is the same on the cached form
    assert judge(M_CLOCK2, back, no_colors).details == judge(M_CLOCK2, dets, no_colors).details


def test_json_rle_is_coco_style():
    from pycocotools import mask as mask_utils

    mask = np.zeros((4, 3), bool)
    mask[1:3, 1] = True
    obj = detections_to_json({"dog": [Detection(box=[1, 1, 2, 3, 0.5], mask=mask)]}, 4, 3)
    rle = obj["classes"]["dog"][0]["mask"]
    assert rle["size"] == [4, 3]
    # column-major runs: 5 zeros, 2 ones, 5 zeros, compressed the COCO way
    expected = mask_utils.frPyObjects({"size": [4, 3], "counts": [5, 2, 5]}, 4, 3)
    assert rle["counts"] == expected["counts"].decode("ascii")


def test_json_rejects_bad_input():
    with pytest.raises(RdmevalError, match="original image size"):
        detections_to_json({"dog": [Detection(box=[0, 0, 1, 1, 0.5], mask=np.zeros((2, 2), bool))]}, 3, 3)
    with pytest.raises(RdmevalError, match="format"):
        detections_from_json({"format": "other", "height": 1, "width": 1, "classes": {}})
    good = detections_to_json({"dog": [Detection(box=[0, 0, 1, 1, 0.5])]}, 2, 2)
    good["classes"]["dog"][0]["box"] = [0, 0, 1]
    with pytest.raises(RdmevalError, match=r"classes\['dog'\]\[0\]\.box"):
        detections_from_json(good)


# ----------------------------------------------------------------------------- options and metadata


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": "0.3"}, "threshold"),
        ({"counting_threshold": -0.1}, "counting_threshold"),
        ({"max_objects": 0}, "max_objects"),
        ({"max_objects": 2.5}, "max_objects"),
        ({"max_overlap": 1.2}, "max_overlap"),
        ({"position_threshold": -1}, "position_threshold"),
        ({"position_threshold": float("nan")}, "position_threshold"),
        ({"bgcolor": "not-a-color"}, "bgcolor"),
        ({"crop": "1"}, "crop"),
    ],
)
def test_options_are_validated(kwargs, name):
    with pytest.raises(RdmevalError, match=f"option {name}"):
        JudgeOptions(**kwargs)


def test_options_from_official_strings():
    opts = JudgeOptions.from_official_strings(
        {"threshold": "0.5", "max_objects": "4", "crop": "0", "bgcolor": "original", "max_overlap": "0.7"}
    )
    assert opts == JudgeOptions(threshold=0.5, max_objects=4, crop=False, bgcolor="original", max_overlap=0.7)
    assert JudgeOptions.from_official_strings({"crop": "1"}).crop is True
    assert JudgeOptions.from_official_strings({"crop": "true"}).crop is False  # official: only '1' crops
    assert JudgeOptions.from_official_strings({}) == JudgeOptions()
    with pytest.raises(RdmevalError, match="unknown judge option"):
        JudgeOptions.from_official_strings({"clip_model": "ViT-L-14"})
    with pytest.raises(RdmevalError, match="max_objects='many'"):
        JudgeOptions.from_official_strings({"max_objects": "many"})


def test_threshold_option_is_used():
    dets = {"bench": [det(0, 0, 9, 9, 0.5)]}
    assert run(M_BENCH, dets).correct
    assert run(M_BENCH, dets, threshold=0.5).reason == "expected bench>=1, found 0"
    assert run(M_CLOCK2, clocks(0.8, 0.7), counting_threshold=0.6).correct


@pytest.mark.parametrize(
    "meta, message",
    [
        ({"include": []}, "tag"),
        ({"tag": "single_object", "include": [{"class": "dog", "count": 0}]}, r"include\[0\]\.count"),
        ({"tag": "colors", "include": [{"class": "dog", "count": 1, "color": "teal"}]}, r"include\[0\]\.color"),
        ({"tag": "position", "include": [{"class": "dog", "count": 1, "position": ["right of", 0]}]},
         r"include\[0\]\.position"),
        ({"tag": "position", "include": [{"class": "a", "count": 1},
                                         {"class": "dog", "count": 1, "position": ["beside", 0]}]},
         r"include\[1\]\.position"),
        ({"tag": "counting", "include": [], "exclude": [{"count": 2}]}, r"exclude\[0\]"),
    ],
)
def test_bad_metadata_is_refused(meta, message):
    with pytest.raises(RdmevalError, match=message):
        judge(meta, {}, no_colors)


def test_bad_detections_are_refused():
    with pytest.raises(RdmevalError, match="not a Detection"):
        judge(M_BENCH, {"bench": [[0, 0, 1, 1, 0.9]]}, no_colors)

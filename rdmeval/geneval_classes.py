"""GenEval's 80 object class names, as a plain list that needs no detector library.

Line ``i`` of GenEval's ``evaluation/object_names.txt`` names detector label ``i``: mmdet's COCO
classes with three renames (64 ``computer mouse``, 65 ``tv remote``, 66 ``computer keyboard``).
Prompt files are checked against this list when read; the scorer derives the same list from mmdet
(``rdmeval.scorers.geneval.detector.geneval_object_names``) and a test checks that both agree and
that this list hashes to the official file's sha256.
"""

from __future__ import annotations

GENEVAL_OBJECT_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "computer mouse", "tv remote",
    "computer keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)

#: mmdet's COCO class name -> GenEval's name (``object_names.txt`` lines 65-67); every other name is shared.
MMDET_TO_GENEVAL_NAMES: dict[str, str] = {
    "mouse": "computer mouse",
    "remote": "tv remote",
    "keyboard": "computer keyboard",
}

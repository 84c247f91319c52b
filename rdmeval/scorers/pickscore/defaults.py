"""PickScore's defaults (model, processor, batch size, precisions, image paths), without torch: the CLI
shows them while it builds its parser."""

DEFAULT_MODEL = "yuvalkirstain/PickScore_v1"
DEFAULT_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
DEFAULT_BATCH_SIZE = 64
DTYPE_NAMES: tuple[str, ...] = ("fp32", "bf16", "fp16")
IMAGE_BACKENDS = ("auto", "torchvision", "pil")

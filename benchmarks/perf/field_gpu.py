"""GPU throughput of the one-step field's presets at their native resolution (random weights, real shapes).

For each preset of ``rdmeval/generators/diffusers_presets.py`` this builds, without downloading
anything, its pipeline with the real component shapes (the configs below transcribe the hub repos'
``config.json`` files; ``--configs DIR`` reads them from local pipeline folders instead, one
``DIR/<preset>/`` per preset), initialised at random on the GPU in the card's dtype, with the card's
scheduler and sampling settings. Generation runs through
:class:`rdmeval.generators.diffusers_backend.DiffusersGenerator` exactly as ``rdmeval generate`` does
(rdmeval's noise as ``latents``, per-image generators, ``output_type="pt"``, uint8 on the host).

Tokenizers are small local ones (token ids only index the embeddings): CLIP and T5 inputs are padded
to their fixed lengths anyway, and SANA-Sprint's Gemma tokenizer is trained here on its complex
human instruction so that it costs about as many tokens as the real one (printed).

Reported per (preset, batch): images/s, seconds per batch and peak GPU memory. The GenEval batch is
4 (one prompt's samples), the PickScore batch 16.

    python benchmarks/perf/field_gpu.py                              # every preset, batch 4 and 16
    python benchmarks/perf/field_gpu.py --presets sdxl-turbo,sana-sprint-1step --batch-sizes 1,4,16
    python benchmarks/perf/field_gpu.py --smoke                      # tiny pipelines on a CPU (checks the script)

Results go to stdout (a markdown table) and to ``--out`` (JSON; default ``$OUT/field_gpu.json`` when
``$OUT`` is set). ``--max-seconds`` stops starting new presets after that long and still reports.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import inspect
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import torch

# ---------------------------------------------------------------------------------------------- real shapes
# Transcribed from each repo's config.json (model_index.json names the classes).
CLIP_L = {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
          "max_position_embeddings": 77, "hidden_act": "quick_gelu", "projection_dim": 768}
CLIP_G = {"vocab_size": 49408, "hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 20,
          "max_position_embeddings": 77, "hidden_act": "gelu", "projection_dim": 1280}
T5_XXL = {"vocab_size": 32128, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64,
          "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32, "is_gated_act": True, "dense_act_fn": "gelu_new"}
GEMMA2_2B = {"vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8,
             "num_key_value_heads": 4, "head_dim": 256, "max_position_embeddings": 8192, "sliding_window": 4096}
KL_VAE = {"in_channels": 3, "out_channels": 3, "block_out_channels": (128, 256, 512, 512), "layers_per_block": 2,
          "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4, "norm_num_groups": 32,
          "sample_size": 1024}
FLUX_VAE = {**KL_VAE, "latent_channels": 16, "scaling_factor": 0.3611, "shift_factor": 0.1159, "use_quant_conv": False,
            "use_post_quant_conv": False}
SD3_VAE = {**KL_VAE, "latent_channels": 16, "scaling_factor": 1.5305, "shift_factor": 0.0609, "use_quant_conv": False,
           "use_post_quant_conv": False}
SDXL_VAE = {**KL_VAE, "latent_channels": 4, "scaling_factor": 0.13025, "force_upcast": True}
DC_AE_F32 = {"in_channels": 3, "latent_channels": 32, "attention_head_dim": 32,
             "encoder_block_types": ("ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock", "EfficientViTBlock", "EfficientViTBlock"),
             "decoder_block_types": ("ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock", "EfficientViTBlock", "EfficientViTBlock"),
             "encoder_block_out_channels": (128, 256, 512, 512, 1024, 1024), "decoder_block_out_channels": (128, 256, 512, 512, 1024, 1024),
             "encoder_layers_per_block": (2, 2, 2, 3, 3, 3), "decoder_layers_per_block": (3, 3, 3, 3, 3, 3),
             "encoder_qkv_multiscales": ((), (), (), (5,), (5,), (5,)), "decoder_qkv_multiscales": ((), (), (), (5,), (5,), (5,)),
             "upsample_block_type": "interpolate", "downsample_block_type": "Conv", "decoder_norm_types": "rms_norm",
             "decoder_act_fns": "silu", "scaling_factor": 0.41407}
FLUX_SCHNELL_DIT = {"patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38, "attention_head_dim": 128,
                    "num_attention_heads": 24, "joint_attention_dim": 4096, "pooled_projection_dim": 768, "guidance_embeds": False,
                    "axes_dims_rope": (16, 56, 56)}
SD35_LARGE_DIT = {"sample_size": 128, "patch_size": 2, "in_channels": 16, "num_layers": 38, "attention_head_dim": 64,
                  "num_attention_heads": 38, "joint_attention_dim": 4096, "caption_projection_dim": 2432, "pooled_projection_dim": 2048,
                  "out_channels": 16, "pos_embed_max_size": 192, "qk_norm": "rms_norm"}
SDXL_UNET = {"sample_size": 128, "in_channels": 4, "out_channels": 4, "layers_per_block": 2, "block_out_channels": (320, 640, 1280),
             "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
             "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), "attention_head_dim": (5, 10, 20),
             "transformer_layers_per_block": (1, 2, 10), "cross_attention_dim": 2048, "use_linear_projection": True,
             "addition_embed_type": "text_time", "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2816}
SANA_SPRINT_1600M = {"in_channels": 32, "out_channels": 32, "num_attention_heads": 70, "attention_head_dim": 32, "num_layers": 20,
                     "num_cross_attention_heads": 20, "cross_attention_head_dim": 112, "cross_attention_dim": 2240,
                     "caption_channels": 2304, "mlp_ratio": 2.5, "sample_size": 32, "patch_size": 1, "guidance_embeds": True,
                     "guidance_embeds_scale": 0.1, "qk_norm": "rms_norm_across_heads"}
SDXL_SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                  "steps_offset": 1, "timestep_spacing": "leading", "prediction_type": "epsilon"}

#: Denoiser parameter counts the configs must reproduce (checked by tests on the meta device): SDXL's UNet has
#: 2,567,463,684; FLUX.1 [dev]'s transformer 11,901,408,320, of which schnell lacks the guidance embedder
#: (256 -> 3072 -> 3072: 10,229,760).
KNOWN_PARAMS = {"flux1-schnell": 11_901_408_320 - 10_229_760, "sdxl-turbo": 2_567_463_684, "dmd2-sdxl-1step": 2_567_463_684}


def _init_(module: torch.nn.Module, seed: int) -> None:
    """Random values in place, scaled so activations stay finite through deep stacks."""
    g = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 1.0 / p[0].numel() ** 0.5, generator=g)
            elif "norm" in name or name.endswith(("scale", "weight")):
                p.fill_(1.0)
            else:
                p.zero_()


@contextlib.contextmanager
def _built_in(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Construct modules directly on ``device`` in ``dtype`` (no fp32 copy; buffers such as position ids stay right)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(old)


def _module(build: Any, device: torch.device, dtype: torch.dtype, seed: int) -> torch.nn.Module:
    """``build()`` on ``device`` in ``dtype`` with random values."""
    with _built_in(device, dtype):
        module = build()
    module = torch.nn.Module.to(module, dtype=dtype)
    _init_(module, seed)
    return module.eval().requires_grad_(False)


def _text_models(kind: str) -> Any:
    from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, Gemma2Config, Gemma2Model,
                              T5Config, T5EncoderModel)

    if kind == "clip-l":
        return lambda: CLIPTextModel(CLIPTextConfig(**CLIP_L))
    if kind == "clip-l-proj":
        return lambda: CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_L))
    if kind == "clip-g-proj":
        return lambda: CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_G))
    if kind == "t5-xxl":
        return lambda: T5EncoderModel(T5Config(**T5_XXL))
    if kind == "gemma2-2b":
        return lambda: Gemma2Model(Gemma2Config(**GEMMA2_2B))
    raise KeyError(kind)


def gemma_like_tokenizer():
    """A BPE trained on SANA-Sprint's complex human instruction (so it costs about as many tokens as Gemma's)."""
    from diffusers import SanaSprintPipeline
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    chi = inspect.signature(SanaSprintPipeline.__call__).parameters["complex_human_instruction"].default
    corpus = ["\n".join(chi)] * 4 + ["a photo of a cat", "two red dogs on the left of a blue bench"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    tok.decoder = decoders.Replace("▁", " ")
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=2000, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"],
                                                        show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


def _denoiser(family: str) -> tuple[Any, dict[str, Any]]:
    """The denoiser class and config of a family at real shapes."""
    import diffusers

    return {"flux": (diffusers.FluxTransformer2DModel, FLUX_SCHNELL_DIT), "sd3": (diffusers.SD3Transformer2DModel, SD35_LARGE_DIT),
            "sdxl-turbo": (diffusers.UNet2DConditionModel, {**SDXL_UNET, "sample_size": 64}),  # SDXL-Turbo is trained at 512 px
            "sdxl-base": (diffusers.UNet2DConditionModel, SDXL_UNET),
            "sana-sprint": (diffusers.SanaTransformer2DModel, SANA_SPRINT_1600M)}[family]


def denoiser_params(preset_name: str) -> int:
    """Parameters of the preset's denoiser at real shapes, counted on the meta device (no memory)."""
    from rdmeval.generators.diffusers_presets import PRESETS

    cls, config = _denoiser(PRESETS[preset_name].family)
    with torch.device("meta"):
        return sum(p.numel() for p in cls(**config).parameters())


def build_pipeline(preset_name: str, device: torch.device, dtype: torch.dtype, *, smoke: bool = False) -> Any:
    """The preset's pipeline at real shapes with random values; ``smoke``: the tiny fixture pipeline instead."""
    import diffusers

    from rdmeval.fixtures import tiny_field
    from rdmeval.generators.diffusers_presets import PRESETS

    preset = PRESETS[preset_name]
    if smoke:
        pipe = tiny_field.build_pipeline(preset.family).to(device)  # fp32, as built
    else:
        cls, config = _denoiser(preset.family)
        mod = lambda build, seed: _module(build, device, dtype, seed, False)  # noqa: E731
        denoiser = mod(lambda: cls(**config), 4)
        clip_tok, t5_tok = tiny_field.clip_tokenizer(), tiny_field.t5_tokenizer()
        if preset.family == "flux":
            pipe = diffusers.FluxPipeline(
                scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False),
                vae=mod(lambda: diffusers.AutoencoderKL(**FLUX_VAE), 1), text_encoder=mod(_text_models("clip-l"), 2),
                tokenizer=clip_tok, text_encoder_2=mod(_text_models("t5-xxl"), 3), tokenizer_2=t5_tok,
                transformer=mod(lambda: diffusers.FluxTransformer2DModel(**FLUX_SCHNELL_DIT), 4))
        elif preset.family == "sd3":
            pipe = diffusers.StableDiffusion3Pipeline(
                transformer=denoiser, scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0), vae=mod(lambda: diffusers.AutoencoderKL(**SD3_VAE), 1),
                text_encoder=mod(_text_models("clip-l-proj"), 2), tokenizer=clip_tok,
                text_encoder_2=mod(_text_models("clip-g-proj"), 5), tokenizer_2=tiny_field.clip_tokenizer(),
                text_encoder_3=mod(_text_models("t5-xxl"), 3), tokenizer_3=t5_tok)
        elif preset.family in ("sdxl-turbo", "sdxl-base"):
            turbo = preset.family == "sdxl-turbo"
            scheduler = (diffusers.EulerAncestralDiscreteScheduler(**{**SDXL_SCHEDULER, "timestep_spacing": "trailing", "steps_offset": 0})
                         if turbo else diffusers.EulerDiscreteScheduler(**SDXL_SCHEDULER))
            pipe = diffusers.StableDiffusionXLPipeline(
                vae=mod(lambda: diffusers.AutoencoderKL(**SDXL_VAE), 1), text_encoder=mod(_text_models("clip-l"), 2),
                text_encoder_2=mod(_text_models("clip-g-proj"), 5), tokenizer=clip_tok, tokenizer_2=tiny_field.clip_tokenizer(),
                unet=denoiser, scheduler=scheduler)
        elif preset.family == "sana-sprint":
            pipe = diffusers.SanaSprintPipeline(
                tokenizer=gemma_like_tokenizer(), text_encoder=mod(_text_models("gemma2-2b"), 2),
                vae=mod(lambda: diffusers.AutoencoderDC(**DC_AE_F32), 1),
                transformer=denoiser, scheduler=diffusers.SCMScheduler(sigma_data=0.5))
        else:  # pragma: no cover - a new family needs its shapes here
            raise KeyError(preset.family)
    if preset.scheduler is not None:
        from rdmeval.generators.diffusers_load import swap_scheduler

        swap_scheduler(pipe, preset.scheduler)
    return pipe


def from_config_dir(folder: Path, device: torch.device, dtype: torch.dtype, preset_name: str) -> Any:
    """``--configs``: the pipeline class and every component built from a local pipeline folder's configs, random values."""
    import diffusers

    from rdmeval.generators.diffusers_presets import PRESETS

    index = json.loads((folder / "model_index.json").read_text())
    parts: dict[str, Any] = {}
    for i, (name, spec) in enumerate(sorted(index.items())):
        if name.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        library, cls_name = spec
        if "Tokenizer" in cls_name:
            import transformers

            parts[name] = getattr(transformers, cls_name).from_pretrained(folder / name)
        elif "Scheduler" in cls_name:
            parts[name] = getattr(diffusers, cls_name).from_pretrained(folder, subfolder=name)
        elif library == "diffusers":
            cls = getattr(diffusers, cls_name)
            config = cls.load_config(folder, subfolder=name)
            parts[name] = _module(lambda cls=cls, config=config: cls.from_config(config), device, dtype, i)
        else:
            import transformers

            config = transformers.AutoConfig.from_pretrained(folder / name)
            cls = getattr(transformers, cls_name)
            parts[name] = _module(lambda cls=cls, config=config: cls(config), device, dtype, i)
    pipe = getattr(diffusers, index["_class_name"])(**parts)
    if PRESETS[preset_name].scheduler is not None:
        from rdmeval.generators.diffusers_load import swap_scheduler

        swap_scheduler(pipe, PRESETS[preset_name].scheduler)
    return pipe


def n_params(pipe: Any) -> dict[str, int]:
    return {name: sum(p.numel() for p in comp.parameters()) for name, comp in pipe.components.items()
            if isinstance(comp, torch.nn.Module)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_batch(gen: Any, batch: int, iters: int, warmup: int, tag: str) -> dict[str, Any]:
    from rdmeval.generators.finite import NonFiniteError

    counter = [0]
    nonfinite = [0]

    def generate(prompts, z):
        try:
            gen.generate(prompts, z)
        except NonFiniteError:  # random weights may overflow in fp16; the work was done, so the timing stands
            nonfinite[0] += 1

    def inputs():
        counter[0] += 1
        prompts = [f"{tag} photo {counter[0]} of object {i // 4}" for i in range(batch)]
        return prompts, torch.randn(batch, *gen.latent_shape)

    cuda = gen.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(warmup):
        generate(*inputs())
    _sync(gen.device)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(iters):
        generate(*inputs())
    _sync(gen.device)
    dt = time.perf_counter() - t0
    return {"batch": batch, "images_per_s": batch * iters / dt, "seconds_per_batch": dt / iters, "warmup_s": warm,
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
            "nonfinite_batches": nonfinite[0]}


def main(argv: list[str] | None = None) -> int:
    from rdmeval.generators.diffusers_presets import PRESETS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default=",".join(PRESETS), help=f"comma-separated (default all: {', '.join(PRESETS)})")
    ap.add_argument("--batch-sizes", default="4,16", help="GenEval batch 4, PickScore batch 16 (default)")
    ap.add_argument("--precision", default="faithful", choices=["faithful", "bf16"], help="faithful: each card's dtype (default)")
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--configs", help="folder of local pipeline folders (DIR/<preset>/model_index.json) to read shapes from")
    ap.add_argument("--max-seconds", type=float, default=540.0, help="stop starting new presets after this")
    ap.add_argument("--out", help="JSON results (default $OUT/field_gpu.json if $OUT is set)")
    ap.add_argument("--smoke", action="store_true", help="tiny pipelines at 64 px on any device (checks the script, not the GPU)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available() and not args.smoke:
        print("field_gpu.py needs a CUDA device (or --smoke to check the script on a CPU)", file=sys.stderr)
        return 2

    from rdmeval.generators.diffusers_backend import DiffusersGenerator, preset_sampling

    start = time.perf_counter()
    torch.backends.cuda.matmul.allow_tf32 = True
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    names = [n.strip() for n in args.presets.split(",") if n.strip()]
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        print(f"--presets: unknown {', '.join(unknown)}; choose from {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    batches = [int(b) for b in args.batch_sizes.split(",")]
    info = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu (smoke)", "torch": torch.__version__,
            "smoke": args.smoke, "precision": args.precision}
    print(f"# the one-step field, {'TINY (smoke) pipelines' if args.smoke else 'real shapes'}, random weights: {info['device']}, "
          f"torch {torch.__version__}, precision {args.precision}", flush=True)
    results = []
    for name in names:
        if time.perf_counter() - start > args.max_seconds:
            print(f"# stopped before {name}: --max-seconds {args.max_seconds} reached", flush=True)
            break
        preset = PRESETS[name]
        dtype = torch.float32 if args.smoke else (getattr(torch, preset.dtype) if args.precision == "faithful" else torch.bfloat16)
        t0 = time.perf_counter()
        if args.configs:
            pipe = from_config_dir(Path(args.configs) / name, device, dtype, name)
        else:
            pipe = build_pipeline(name, device, dtype, smoke=args.smoke)
        size = 64 if args.smoke else preset.resolution
        gen = DiffusersGenerator.from_pipeline(pipe, preset_sampling(preset, steps=None, guidance_scale=None, resolution=size),
                                               name=name, device=str(device), preset=preset)
        build_s = time.perf_counter() - t0
        params = n_params(pipe)
        chi = ""
        if preset.family == "sana-sprint":
            text = "\n".join(inspect.signature(type(pipe).__call__).parameters["complex_human_instruction"].default)
            chi = f", instruction {len(pipe.tokenizer.encode(text))} tokens"
        print(f"## {name}: {preset.description}; {size}x{size}, {preset.steps} step(s), {dtype_name(dtype)}, "
              f"{sum(params.values()):,} params ({', '.join(f'{k} {v / 1e9:.2f}B' for k, v in params.items())}){chi}, "
              f"built in {build_s:.0f}s", flush=True)
        for batch in batches:
            try:
                r = run_batch(gen, batch, args.iters, args.warmup, f"{name}{batch}")
            except torch.OutOfMemoryError:
                print(f"{name} batch {batch}: out of GPU memory", flush=True)
                break
            r.update(preset=name, steps=preset.steps, resolution=size, dtype=dtype_name(dtype), params=sum(params.values()))
            results.append(r)
            print(f"{name} batch={batch:2d}: {r['images_per_s']:7.2f} img/s, {r['seconds_per_batch']:6.2f} s/batch, "
                  f"peak {r['peak_mem_gib']:5.1f} GiB (warmup {r['warmup_s']:.1f}s)", flush=True)
        del gen, pipe
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()

    print("\n| preset | steps | resolution | dtype | batch | images/s | s/batch | peak GiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['preset']} | {r['steps']} | {r['resolution']} | {r['dtype']} | {r['batch']} | {r['images_per_s']:.2f} | "
              f"{r['seconds_per_batch']:.2f} | {r['peak_mem_gib']:.1f} |")
    out = args.out or (os.path.join(os.environ["OUT"], "field_gpu.json") if os.environ.get("OUT") else None)
    if out:
        Path(out).write_text(json.dumps({"info": info, "results": results}, indent=2) + "\n")
        print(f"results written to {out}")
    return 0


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


if __name__ == "__main__":
    sys.exit(main())

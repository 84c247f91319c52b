"""A tiny stand-in for the FLUX task, so the ``debug`` config trains on CPU in seconds.

It mirrors the real setup at toy scale:

- a flow-matching velocity net on small latents, sampled by Euler steps; the *teacher* is that
  net at its random init run for ``teacher_steps`` steps, the *student* starts from the same
  weights (as RDM starts from klein base) and is trained to match it in one step;
- a frozen decoder (the VAE) to a [0, 1] image and frozen tiny conv encoders (the battery);
- a prompt pool: per-row contexts (the Qwen3 ctx pool) and unit-norm text embeddings (τ);
- the reference: teacher renders of random pool prompts, encoded, built into Nyström bundles.

Two teachers (``ToyConfig.teacher``): ``euler``, the velocity net at init run for a few Euler
steps, with the student starting from its weights (the ``debug`` config: at init one step and four
give the same distribution, so there is nothing to learn; it pins behaviour), and ``mixture``, the
exact flow of a prompt-conditioned Gaussian mixture (:class:`MixtureFlow`), whose paths curve, with
the student starting from its own random init (the ``learn_demo`` config: it visibly learns).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rdmeval.distill.config import ConfigError, ToyConfig, TrainConfig
from rdmeval.distill.reference import ReferenceBundle, build_reference_bundle


@dataclass
class Chunk:
    """One micro-batch: latent noise and the prompt-pool rows that condition it."""

    noise: Tensor
    idx: Tensor


class VelocityNet(nn.Module):
    """v(x, t, ctx) on flattened latents; ctx is mean-pooled over its tokens."""

    def __init__(self, cfg: ToyConfig):
        super().__init__()
        latent = cfg.latent_channels * cfg.latent_size**2
        self.net = nn.Sequential(nn.Linear(latent + cfg.ctx_dim + 1, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, latent))

    def forward(self, x: Tensor, t: Tensor, ctx: Tensor) -> Tensor:
        flat = x.flatten(1)
        h = torch.cat([flat, ctx.mean(dim=1), t.expand(flat.shape[0], 1)], dim=1)
        return self.net(h).view_as(x)


class TinyFlowGenerator(nn.Module):
    """Flow-matching Euler sampler from t = 1 (noise) to t = 0 with uniform steps."""

    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.velocity = VelocityNet(cfg)

    def sample(self, noise: Tensor, ctx: Tensor, steps: int = 1) -> Tensor:
        x = noise
        times = torch.linspace(1.0, 0.0, steps + 1, dtype=noise.dtype)
        for t, t_next in zip(times[:-1], times[1:]):
            x = x + (t_next - t) * self.velocity(x, t.view(1, 1), ctx)
        return x


class MixtureFlow(nn.Module):
    """The exact flow-matching sampler of a prompt-conditioned Gaussian mixture: a teacher with curved paths.

    Data: x₀ = μ_k + A·c̄ + s·z with k uniform over the components, c̄ the prompt's mean ctx token and
    z ~ N(0, I); path x_t = (1 − t)·x₀ + t·ε. Given component k, x_t is Gaussian with mean (1 − t)·m_k
    (m_k = μ_k + A·c̄) and variance v_t = (1 − t)²s² + t², so the velocity E[ε − x₀ | x_t] is a
    posterior-weighted sum of E[ε | x_t, k] = t·r_k/v_t and E[x₀ | x_t, k] = m_k + (1 − t)s²·r_k/v_t,
    with r_k = x_t − (1 − t)·m_k. Many Euler steps sample the mixture; one step lands every sample on
    the mixture's mean (the blur of a naive one-step sampler).
    """

    def __init__(self, cfg: ToyConfig):
        super().__init__()
        latent = cfg.latent_channels * cfg.latent_size**2
        self.register_buffer("means", cfg.mixture_spread * torch.randn(cfg.mixture_components, latent))
        self.register_buffer("prompt_map", cfg.mixture_prompt_scale * torch.randn(cfg.ctx_dim, latent))
        self.std = float(cfg.mixture_std)

    def velocity(self, x: Tensor, t: Tensor, ctx: Tensor) -> Tensor:
        flat = x.flatten(1)
        m = self.means[None] + (ctx.mean(dim=1) @ self.prompt_map)[:, None]  # (B, K, D)
        var = (1 - t) ** 2 * self.std**2 + t**2
        r = flat[:, None] - (1 - t) * m
        w = torch.softmax(-(r * r).sum(dim=2) / (2 * var), dim=1)[..., None]
        e_noise = t * r / var
        e_data = m + (1 - t) * self.std**2 * r / var
        return (w * (e_noise - e_data)).sum(dim=1).view_as(x)

    def sample(self, noise: Tensor, ctx: Tensor, steps: int = 1) -> Tensor:
        x = noise
        times = torch.linspace(1.0, 0.0, steps + 1, dtype=noise.dtype)
        for t, t_next in zip(times[:-1], times[1:]):
            x = x + (t_next - t) * self.velocity(x, t, ctx)
        return x


class TinyDecoder(nn.Module):
    """Latent → RGB image in [0, 1] (frozen)."""

    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.size = cfg.image_size
        self.proj = nn.Linear(cfg.latent_channels * cfg.latent_size**2, 3 * cfg.image_size**2)

    def forward(self, latent: Tensor) -> Tensor:
        return torch.sigmoid(self.proj(latent.flatten(1))).view(-1, 3, self.size, self.size)


class TinyEncoder(nn.Module):
    """Image → raw feature vector (frozen; no feature normalisation, as in the battery)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.head = nn.Linear(8, dim)

    def forward(self, image: Tensor) -> Tensor:
        h = F.silu(self.conv2(F.silu(self.conv1(image * 2.0 - 1.0))))
        return self.head(h.mean(dim=(2, 3)))


@dataclass
class ToyTask:
    """Everything ``Trainer`` needs: the student, the chunk sampler, the encoder, the references."""

    config: ToyConfig
    student: TinyFlowGenerator
    teacher: TinyFlowGenerator | MixtureFlow
    decoder: TinyDecoder
    encoders: dict[str, TinyEncoder]
    ctx_pool: Tensor  # (pool_size, ctx_len, ctx_dim)
    text_table: Tensor  # (pool_size, text_dim), unit norm: τ
    bundles: dict[str, ReferenceBundle]

    def sample_chunk(self, generator: torch.Generator, batch_size: int) -> Chunk:
        c = self.config
        noise = torch.randn(batch_size, c.latent_channels, c.latent_size, c.latent_size, generator=generator)
        idx = torch.randint(0, c.pool_size, (batch_size,), generator=generator)
        return Chunk(noise=noise, idx=idx)

    def render(self, model: TinyFlowGenerator | MixtureFlow, chunk: Chunk, steps: int) -> Tensor:
        return self.decoder(model.sample(chunk.noise, self.ctx_pool[chunk.idx], steps))

    def encode(self, chunk: Chunk) -> dict[str, Tensor]:
        """The student's one-step images through every frozen encoder (image features only)."""
        image = self.render(self.student, chunk, steps=1)
        return {name: enc(image) for name, enc in self.encoders.items()}


def _frozen(module: nn.Module) -> nn.Module:
    module.requires_grad_(False)
    return module.eval()


def build_toy_task(config: TrainConfig) -> ToyTask:
    """Deterministic toy task for ``config`` (seeded by ``config.toy.init_seed``; global RNG untouched)."""
    cfg = config.toy
    if cfg is None:
        raise ConfigError(f"config {config.name!r} has no toy section; the toy task needs TrainConfig.toy")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.init_seed)
        net = TinyFlowGenerator(cfg)
        decoder = _frozen(TinyDecoder(cfg))
        encoders = {name: _frozen(TinyEncoder(dim)) for name, dim in zip(config.encoders, cfg.encoder_dims)}
        ctx_pool = torch.randn(cfg.pool_size, cfg.ctx_len, cfg.ctx_dim)
        text_table = F.normalize(torch.randn(cfg.pool_size, cfg.text_dim), dim=1)
        if cfg.teacher == "mixture":
            teacher: TinyFlowGenerator | MixtureFlow = _frozen(MixtureFlow(cfg))
            student = net.requires_grad_(True).train()  # its own random init: away from the teacher
        else:
            teacher = _frozen(net)
            student = copy.deepcopy(net).requires_grad_(True).train()  # the teacher's weights (as RDM starts from klein base)
    task = ToyTask(cfg, student, teacher, decoder, encoders, ctx_pool, text_table, bundles={})

    # The reference pool: teacher renders of random pool prompts (cf. geALLcoco = teacher renders).
    ref = task.sample_chunk(torch.Generator().manual_seed(cfg.init_seed + 1), cfg.reference_size)
    with torch.no_grad():
        images = task.render(teacher, ref, steps=cfg.teacher_steps)
        for name, enc in encoders.items():
            text = text_table[ref.idx] if config.joint_enable else None
            task.bundles[name] = build_reference_bundle(
                enc(images), text, num_landmarks=cfg.num_landmarks, sigma_scale=cfg.sigma_scale, seed=0, fit_n=cfg.reference_size,
                krr_n=cfg.reference_size,
            )
    return task

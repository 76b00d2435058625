"""The `full` preset: Flow-GRPO / GRPO-Guard on Stable Diffusion 3(.5) with LoRA and text prompts, as the official
`scripts/train_sd3_GRPO_Guard.py` (flow_grpo fork at the GRPO-Guard commit) and `scripts/train_sd3.py` do.

Per run (method, seed): load the SD3 pipeline with diffusers (frozen VAE, CLIP-L, CLIP-G and T5 in the mixed
precision's dtype, VAE in fp32), add a peft LoRA (rank 32, α 64, Gaussian init, the attention projections of the
official `target_modules`; its weights stay fp32: the fp32 master weights of accelerate's bf16 autocast) and, per
epoch:
1. rollouts: `prompts_per_epoch` prompts (in total over the processes) × `group` images, `steps` Flow-GRPO SDE
   steps (`method.sde_step`, η 0.7) on the SD3 sigmas (shift from the pipeline's scheduler), classifier-free
   guidance with the empty prompt as negative;
   the VAE decodes the final latents and the reward scores them (`ClipReward`: PickScore or CLIPScore);
2. per-prompt advantages (`baselines.group_advantages`);
3. `minibatches` optimiser steps (official 2): each minibatch recomputes, per trained step j, the velocity with CFG,
   log π and μ (`sde_step` at the stored x_{j+1}) and the loss of `method.step_loss` (Flow-GRPO's clipped
   ratio + β·KL, the KL's reference being the same transformer with the adapter disabled; or GRPO-Guard's RatioNorm +
   reweighting), backpropagated per step and micro-batch, averaged over the trained steps; gradient clip, AdamW.
Every `eval_every` epochs, the first `eval_prompts` prompts are sampled with the deterministic Euler ODE at
`eval_steps` steps from fixed noise and scored. Multi-GPU: `accelerate launch` runs one process per GPU; each draws
its own prompts (seed + rank), keeps its groups whole (so per-prompt advantages need no gather) and DDP averages the
LoRA gradients. The LoRA adapters are saved under `<out>/lora-<method>-seed<seed>/`.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch

from reprozoo.common.config import ConfigError
from reprozoo.common.results import record
from reprozoo.papers.grpo_guard.baselines import group_advantages
from reprozoo.papers.grpo_guard.experiment import REWARD_SCALE, Config, step_eps
from reprozoo.papers.grpo_guard.method import sde_step, step_loss

# official target_modules (train_sd3.py / train_sd3_GRPO_Guard.py): the joint attention's image and text projections
LORA_TARGETS = (
    "attn.add_k_proj",
    "attn.add_q_proj",
    "attn.add_v_proj",
    "attn.to_add_out",
    "attn.to_k",
    "attn.to_out.0",
    "attn.to_q",
    "attn.to_v",
)
MAX_SEQUENCE_LENGTH = 128  # T5 tokens (official compute_text_embeddings)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's image normalisation (PickScore's processor uses it too)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_prompts(cfg: Config) -> list[str]:
    """`--prompts`: a .txt file (one prompt a line, blank lines skipped) or a dataset with `prompt_column`."""
    from reprozoo.common.data.core import DatasetError, load_any, require_columns

    path = Path(cfg.prompts).expanduser()
    limit = cfg.max_samples or None
    if path.suffix == ".txt":
        if not path.is_file():
            raise ConfigError("prompts", f"{cfg.prompts}: no such file")
        prompts = [line.strip() for line in path.read_text().splitlines() if line.strip()][:limit]
    else:
        try:
            data = load_any(cfg.prompts, "train", limit)
            require_columns(data, [cfg.prompt_column], cfg.prompts, "prompt")
        except DatasetError as err:
            raise ConfigError("prompts", str(err)) from None
        prompts = [str(p) for p in data[cfg.prompt_column]]
    if len(prompts) < cfg.prompts_per_epoch:
        raise ConfigError("prompts", f"{cfg.prompts} has {len(prompts)} prompts, fewer than prompts_per_epoch")
    return prompts


class ClipReward(torch.nn.Module):
    """The paper's preference rewards behind one interface, `reward(images in [0, 1] (B, 3, H, W), prompts) -> (B,)`:
    a CLIP-type model's logit_scale·cos(text, image) / scale — PickScore (`yuvalkirstain/PickScore_v1`, scale 26, as
    flow_grpo's `PickScoreScorer`) or CLIPScore (scale 100). Images are resized to the model's input size (bicubic,
    antialiased: the processor's resize on a square image, in torch rather than PIL) and CLIP-normalised."""

    def __init__(self, model: str, tokenizer: str, scale: float, device: torch.device):
        from transformers import AutoTokenizer, CLIPModel

        super().__init__()
        self.model = CLIPModel.from_pretrained(model).eval().requires_grad_(False).to(device)
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer or model)
        self.scale, self.device = scale, device
        self.size = self.model.config.vision_config.image_size
        self.register_buffer("mean", torch.tensor(CLIP_MEAN, device=device).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CLIP_STD, device=device).view(1, 3, 1, 1))

    @staticmethod
    def _features(out) -> torch.Tensor:
        return out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 5 returns a model output

    @torch.no_grad()
    def forward(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        x = torch.nn.functional.interpolate(
            images.float().to(self.device), size=(self.size, self.size), mode="bicubic", antialias=True
        )
        x = ((x.clamp(0, 1) - self.mean) / self.std).to(self.model.dtype)
        text = self.tokenizer(prompts, padding=True, truncation=True, max_length=77, return_tensors="pt")
        img = self._features(self.model.get_image_features(pixel_values=x))
        txt = self._features(self.model.get_text_features(**{k: v.to(self.device) for k, v in text.items()}))
        img, txt = img / img.norm(dim=-1, keepdim=True), txt / txt.norm(dim=-1, keepdim=True)
        return (self.model.logit_scale.exp() * (img * txt).sum(-1) / self.scale).float()


def load_pipeline(cfg: Config, device: torch.device, dtype: torch.dtype):
    """The SD3 pipeline with frozen components and a fresh LoRA on the transformer (fp32 adapter weights)."""
    from diffusers import StableDiffusion3Pipeline
    from peft import LoraConfig, get_peft_model

    pipe = StableDiffusion3Pipeline.from_pretrained(cfg.model, torch_dtype=dtype)
    for part in (pipe.vae, pipe.text_encoder, pipe.text_encoder_2, pipe.text_encoder_3, pipe.transformer):
        part.requires_grad_(False)
    pipe.vae.to(device, dtype=torch.float32)  # official: the VAE stays fp32
    for enc in (pipe.text_encoder, pipe.text_encoder_2, pipe.text_encoder_3):
        enc.to(device)
    lora = LoraConfig(
        r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, init_lora_weights="gaussian", target_modules=list(LORA_TARGETS)
    )
    pipe.transformer = get_peft_model(pipe.transformer.to(device), lora)
    for p in pipe.transformer.parameters():
        if p.requires_grad:
            p.data = p.data.float()  # fp32 master weights of the trainable (LoRA) parameters
    return pipe


@torch.no_grad()
def encode(pipe, prompts: list[str], device) -> tuple[torch.Tensor, ...]:
    """(prompt embeds, negative embeds, pooled, negative pooled): CLIP-L, CLIP-G and T5, the empty negative prompt."""
    return pipe.encode_prompt(
        prompts, None, None, device=device, do_classifier_free_guidance=True, max_sequence_length=MAX_SEQUENCE_LENGTH
    )


def velocity(transformer, x, sigma, cond, cfg: Config, accelerator) -> torch.Tensor:
    """The CFG velocity v = v_u + g(v_c − v_u) at latents x and per-sample sigmas (timestep 1000σ, SD3's), in fp32.
    `cond` = (embeds, negative embeds, pooled, negative pooled), one row per sample."""
    emb, neg, pooled, neg_pooled = cond
    with accelerator.autocast():
        v = transformer(
            hidden_states=torch.cat([x, x]),
            timestep=torch.cat([sigma, sigma]) * 1000,
            encoder_hidden_states=torch.cat([neg, emb]),
            pooled_projections=torch.cat([neg_pooled, pooled]),
            return_dict=False,
        )[0].float()
    v_u, v_c = v.chunk(2)
    return v_u + cfg.guidance_scale * (v_c - v_u)


def decode(pipe, latents: torch.Tensor) -> torch.Tensor:
    """Latents → images in [0, 1] (SD3's scaling and shift factors)."""
    z = latents / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
    with torch.no_grad():
        return (pipe.vae.decode(z.float(), return_dict=False)[0] / 2 + 0.5).clamp(0, 1)


def sigmas(pipe, steps: int, device) -> torch.Tensor:
    """SD3's sigmas for `steps` steps (the pipeline's scheduler: shift 3 for SD3.5), 0 appended."""
    pipe.scheduler.set_timesteps(steps, device=device)
    return pipe.scheduler.sigmas.float().to(device)


def latent_noise(pipe, n: int, cfg: Config, gen: torch.Generator, device) -> torch.Tensor:
    side = cfg.resolution // pipe.vae_scale_factor
    return torch.randn(n, pipe.transformer.config.in_channels, side, side, generator=gen).to(device)


@torch.no_grad()
def rollout(pipe, transformer, cond, sig, cfg: Config, gen, accelerator):
    """SDE trajectories of one chunk: latents (B, N+1, ...), log π_old (B, N), μ_old (B, N, ...)."""
    device = accelerator.device
    x = latent_noise(pipe, len(cond[0]), cfg, gen, device)
    lat, logps, means = [x], [], []
    for j in range(cfg.steps):
        s = sig[j].expand(len(x))
        v = velocity(transformer, x, s, cond, cfg, accelerator)
        noise = torch.randn(x.shape, generator=gen).to(device)
        x, logp, mean, _, _ = sde_step(x, v, s, sig[j + 1].expand(len(x)), float(sig[1]), cfg.eta, noise=noise)
        lat.append(x)
        logps.append(logp)
        means.append(mean)
    return torch.stack(lat, 1), torch.stack(logps, 1), torch.stack(means, 1)


@torch.no_grad()
def evaluate(pipe, transformer, reward, prompts, cond, noise, cfg: Config, accelerator) -> float:
    """Mean reward of deterministic Euler ODE samples (`eval_steps`) from fixed noise, one per evaluation prompt."""
    sig = sigmas(pipe, cfg.eval_steps, accelerator.device)
    scores = []
    for i in range(0, len(prompts), cfg.sample_batch):
        part = slice(i, i + cfg.sample_batch)
        x = noise[part]
        c = tuple(t[part] for t in cond)
        for j in range(cfg.eval_steps):
            x = x + velocity(transformer, x, sig[j].expand(len(x)), c, cfg, accelerator) * (sig[j + 1] - sig[j])
        scores.append(reward(decode(pipe, x), prompts[part]))
    return float(accelerator.gather(torch.cat(scores)).mean())


def train_run(method: str, seed: int, cfg: Config, accelerator, prompts: list[str], out: Path) -> list[dict]:
    """One Flow-GRPO or GRPO-Guard run on SD3 with LoRA; returns its records."""
    from accelerate.utils import set_seed

    set_seed(seed, device_specific=True)  # every process draws its own prompts and noise
    device = accelerator.device
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "no": torch.float32}[accelerator.mixed_precision]
    pipe = load_pipeline(cfg, device, dtype)
    reward = ClipReward(cfg.reward_model, cfg.reward_tokenizer, REWARD_SCALE[cfg.reward], device)
    params = [p for p in pipe.transformer.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    transformer, opt = accelerator.prepare(pipe.transformer, opt)
    peft_model = accelerator.unwrap_model(transformer)
    gen = torch.Generator().manual_seed(10_000 + 1000 * seed + accelerator.process_index)
    sig = sigmas(pipe, cfg.steps, device)
    t = cfg.trained_steps()
    eps = step_eps(cfg, method, cfg.clip, sig.cpu())
    beta = cfg.kl_beta if method == "flow_grpo_kl" else 0.0
    n_eval = min(cfg.eval_prompts, len(prompts))
    eval_prompts = prompts[accelerator.process_index :: accelerator.num_processes][:n_eval]
    eval_cond = encode(pipe, eval_prompts, device)
    eval_noise = latent_noise(pipe, len(eval_prompts), cfg, torch.Generator().manual_seed(12345), device)
    max_steps = cfg.max_steps or cfg.epochs * cfg.minibatches
    per_process = max(1, cfg.prompts_per_epoch // accelerator.num_processes)  # official: 48 prompts over all GPUs
    rows: list[dict] = []

    def log_eval(epoch: int) -> None:
        transformer.eval()
        value = evaluate(pipe, transformer, reward, eval_prompts, eval_cond, eval_noise, cfg, accelerator)
        rows.append(record(method, seed, "eval_reward", value, step=epoch))

    log_eval(0)
    step = epoch = 0
    while step < max_steps:
        epoch += 1
        picks = torch.randperm(len(prompts), generator=gen)[:per_process].tolist()
        batch = [prompts[i] for i in picks for _ in range(cfg.group)]
        groups = torch.tensor(picks, device=device).repeat_interleave(cfg.group)
        cond = tuple(x.repeat_interleave(cfg.group, 0) for x in encode(pipe, [prompts[i] for i in picks], device))
        lat, logp_old, mean_old, images = [], [], [], []
        for i in range(0, len(batch), cfg.sample_batch):
            c = tuple(x[i : i + cfg.sample_batch] for x in cond)
            la, lp, mu = rollout(pipe, transformer, c, sig, cfg, gen, accelerator)
            lat.append(la)
            logp_old.append(lp)
            mean_old.append(mu)
            images.append(reward(decode(pipe, la[:, -1]), batch[i : i + cfg.sample_batch]))
        lat, logp_old, mean_old, rewards = (torch.cat(x) for x in (lat, logp_old, mean_old, images))
        adv = group_advantages(rewards, groups, cfg.adv_clip)
        rows.append(record(method, seed, "train_reward", float(accelerator.gather(rewards).mean()), step=epoch))
        perm = torch.randperm(len(batch), generator=gen).to(device)
        clipped, ratios = [], []
        for idx in perm.chunk(cfg.minibatches):
            if step >= max_steps:
                break
            opt.zero_grad()
            micros = idx.split(cfg.train_batch)
            for k, micro in enumerate(micros):
                c = tuple(x[micro] for x in cond)
                for j in range(t):
                    last = k == len(micros) - 1 and j == t - 1  # DDP all-reduces once, at the minibatch's last backward
                    with contextlib.nullcontext() if last else accelerator.no_sync(transformer):
                        s, s_next = sig[j].expand(len(micro)), sig[j + 1].expand(len(micro))
                        x, nxt = lat[micro, j], lat[micro, j + 1]
                        v = velocity(transformer, x, s, c, cfg, accelerator)
                        _, logp, mean, std, sqrt_dt = sde_step(x, v, s, s_next, float(sig[1]), cfg.eta, prev=nxt)
                        new = {"logp": logp, "mean": mean, "std": std, "sqrt_dt": sqrt_dt}
                        if beta > 0:
                            with torch.no_grad(), peft_model.disable_adapter():  # the reference: the base model
                                v_ref = velocity(peft_model, x, s, c, cfg, accelerator)
                                new["mean_ref"] = sde_step(x, v_ref, s, s_next, float(sig[1]), cfg.eta, prev=nxt)[2]
                        old = {"logp": logp_old[micro, j], "mean": mean_old[micro, j]}
                        loss, ratio = step_loss(method, new, old, adv[micro], eps[j], beta, cfg.ratio_norm_bias)
                        accelerator.backward(loss * len(micro) / (len(idx) * t))  # the minibatch mean over steps
                    clipped.append(float(((ratio - 1).abs() > eps[j]).float().mean()))
                    ratios.append(float(ratio.detach().mean()))
            accelerator.clip_grad_norm_(transformer.parameters(), cfg.max_grad_norm)
            opt.step()
            step += 1
        rows.append(record(method, seed, "clip_frac", sum(clipped) / len(clipped), step=epoch))
        rows.append(record(method, seed, "ratio_mean", sum(ratios) / len(ratios), step=epoch))
        if epoch % cfg.eval_every == 0 or step >= max_steps:
            log_eval(epoch)
    change = math.sqrt(sum(float((p.detach() - p0).pow(2).sum()) for p, p0 in zip(params, start, strict=True)))
    rows.append(record(method, seed, "lora_change_norm", change, step=epoch))
    rows.append(record(method, seed, "optimiser_steps", float(step)))
    rows.append(record(method, seed, "processes", float(accelerator.num_processes)))
    if accelerator.is_main_process:
        peft_model.save_pretrained(out / f"lora-{method}-seed{seed}")
    return rows


def run_sd3(cfg: Config) -> list[dict]:
    """Every (method, seed) run of the SD3 preset, one after the other, on the devices accelerate gives."""
    from accelerate import Accelerator

    torch.set_num_threads(cfg.threads)
    mixed = cfg.mixed_precision if cfg.device != "cpu" else "no"  # CPU tests and runs compute in fp32
    accelerator = Accelerator(mixed_precision=mixed, cpu=cfg.device == "cpu")
    prompts = load_prompts(cfg)
    out = cfg.out if cfg.out is not None else Path("runs/grpo_guard") / cfg.preset
    rows: list[dict] = []
    for seed in cfg.seed_list():
        for method in cfg.methods:
            rows += train_run(method, seed, cfg, accelerator, prompts, out)
    return rows

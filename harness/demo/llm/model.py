"""A tiny decoder-only transformer (pre-norm, ALiBi attention, KV cache) and its training.

Each position's input also embeds the token before it (a token shift, as in RWKV), so
one attention layer already sees character pairs: the keyword triggers of the corpus are
learnt in a few hundred small steps. ALiBi (a linear distance penalty, no position
embeddings) lets the model read prompts longer than the ones it was trained on.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from harness.demo.llm.corpus import Example, corpus
from harness.demo.llm.tokenizer import EOS, PAD, VOCAB_SIZE, encode_dialogue, encode_text


@dataclass(frozen=True)
class ModelConfig:
    layers: int = 2
    width: int = 64
    heads: int = 4
    vocab: int = VOCAB_SIZE


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 250
    batch: int = 16
    lr: float = 3e-3
    examples: int = 4000


KVCache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [1, heads, T, d]


def alibi_slopes(heads: int) -> torch.Tensor:
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / heads) for h in range(heads)])


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = cfg.heads, cfg.width // cfg.heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.out = nn.Linear(cfg.width, cfg.width)
        self.register_buffer("slopes", alibi_slopes(cfg.heads).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None, pad_mask: torch.Tensor | None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        b, t, w = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        total = k.shape[2]
        qpos = torch.arange(total - t, total).view(-1, 1)
        kpos = torch.arange(total).view(1, -1)
        distance = (qpos - kpos).to(x.dtype)
        bias = -self.slopes * distance.clamp(min=0)
        bias = bias.masked_fill(kpos > qpos, float("-inf"))
        if pad_mask is not None:
            bias = bias.masked_fill(pad_mask.view(b, 1, 1, -1), float("-inf"))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.out(y.transpose(1, 2).reshape(b, t, w)), (k, v)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.width), nn.LayerNorm(cfg.width)
        self.attn = Attention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.width, 4 * cfg.width), nn.GELU(), nn.Linear(4 * cfg.width, cfg.width))

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None, pad_mask: torch.Tensor | None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        a, kv = self.attn(self.norm1(x), past, pad_mask)
        x = x + a
        return x + self.mlp(self.norm2(x)), kv


class TinyLM(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.width)
        self.embed_prev = nn.Embedding(cfg.vocab, cfg.width)  # token shift: see the module docstring
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, cfg.vocab, bias=False)

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None, pad_mask: torch.Tensor | None = None,
                before: int = PAD) -> tuple[torch.Tensor, KVCache]:
        """Logits for every position; ``before`` is the token preceding ``tokens`` (PAD at the start)."""
        prev = torch.cat([torch.full_like(tokens[:, :1], before), tokens[:, :-1]], dim=1)
        x = self.embed(tokens) + self.embed_prev(prev)
        new_cache: KVCache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, cache[i] if cache else None, pad_mask)
            new_cache.append(kv)
        return self.head(self.norm(x)), new_cache


def training_batch(examples: list[Example], rng: random.Random, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets; the loss is taken on the answer only (targets elsewhere are PAD)."""
    rows = []
    for ex in rng.sample(examples, size):
        prompt = encode_dialogue(ex.system, ex.user)
        answer = [*encode_text(ex.answer), EOS]
        rows.append((prompt + answer, len(prompt)))
    length = max(len(r) for r, _ in rows)
    inputs = torch.full((size, length - 1), PAD)
    targets = torch.full((size, length - 1), PAD)
    for i, (row, start) in enumerate(rows):
        seq = torch.tensor(row)
        inputs[i, : len(row) - 1] = seq[:-1]
        targets[i, start - 1 : len(row) - 1] = seq[start:]
    return inputs, targets


def train(model_cfg: ModelConfig, cfg: TrainConfig, canary: str, log: bool = False) -> tuple[TinyLM, dict[str, float]]:
    """Train a fresh model; the same seed gives the same weights (on the same torch build)."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    examples = corpus(cfg.examples, cfg.seed, canary)
    model = TinyLM(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    started = time.monotonic()
    loss = torch.tensor(math.nan)
    for step in range(cfg.steps):
        inputs, targets = training_batch(examples, rng, cfg.batch)
        logits, _ = model(inputs, pad_mask=None)
        loss = F.cross_entropy(logits.reshape(-1, model_cfg.vocab), targets.reshape(-1), ignore_index=PAD)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if log and step % 50 == 0:
            print(f"step {step} loss {loss.item():.3f} {time.monotonic() - started:.1f}s", flush=True)
    model.eval()
    return model, {"final_loss": float(loss.item()), "train_seconds": time.monotonic() - started}


def config_dict(model_cfg: ModelConfig, cfg: TrainConfig) -> dict[str, int | float]:
    return {**asdict(model_cfg), **{f"train_{k}": v for k, v in asdict(cfg).items()}}


@torch.no_grad()
def prefill(model: TinyLM, prompt: list[int]) -> tuple[torch.Tensor, KVCache]:
    logits, cache = model(torch.tensor([prompt]))
    return logits[0, -1], cache


@torch.no_grad()
def step(model: TinyLM, token: int, before: int, cache: KVCache) -> tuple[torch.Tensor, KVCache]:
    logits, cache = model(torch.tensor([[token]]), cache, before=before)
    return logits[0, -1], cache


def pick(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> int:
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def complete(model: TinyLM, system: str, user: str, max_tokens: int = 80) -> str:
    """Greedy answer, for tests and the evaluation command."""
    from harness.demo.llm.tokenizer import decode_token

    prompt = encode_dialogue(system, user)
    logits, cache = prefill(model, prompt)
    out, before = [], prompt[-1]
    for _ in range(max_tokens):
        token = pick(logits, 0.0, None)
        if token == EOS:
            break
        out.append(decode_token(token))
        logits, cache = step(model, token, before, cache)
        before = token
    return "".join(out)


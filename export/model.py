"""The PyTorch model: embedding -> LSTM -> linear, with the recurrent state as explicit tensors."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of an :class:`LstmLM`."""

    vocab: int
    embed: int = 64
    hidden: int = 256
    layers: int = 1
    dropout: float = 0.1

    def to_json(self) -> dict[str, Any]:
        """JSON-ready sizes (stored in checkpoints and the model card)."""
        return asdict(self)


class LstmLM(nn.Module):
    """Token LM whose LSTM state ``h, c [layers, batch, hidden]`` is passed in and out."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.embed)
        self.lstm = nn.LSTM(cfg.embed, cfg.hidden, cfg.layers, batch_first=True,
                            dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden, cfg.vocab)

    def zero_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero ``h, c`` for ``batch`` rows."""
        shape = (self.cfg.layers, batch, self.cfg.hidden)
        return torch.zeros(shape), torch.zeros(shape)

    def forward(self, tokens: torch.Tensor, h: torch.Tensor, c: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``tokens [batch, time]`` -> ``logits [batch, time, vocab]``, ``h_out``, ``c_out``."""
        x = self.drop(self.embed(tokens))
        y, (h_out, c_out) = self.lstm(x, (h, c))
        return self.out(self.drop(y)), h_out, c_out

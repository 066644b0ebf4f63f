"""The PyTorch model: embedding -> LSTM -> linear, with the recurrent state as explicit tensors.

With ``position > 0`` a small embedding of the ``metre-v1`` position id of each input (the
grid step of the token it predicts, :func:`liveduet.core.metre.predicted_step`) is concatenated with
the token embedding before the LSTM, so the model knows where in the bar it is without
counting steps since BOS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from liveduet.core.metre import POSITION_SIZE


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of an :class:`LstmLM` (``position``: position embedding dims, 0 for none)."""

    vocab: int
    embed: int = 64
    hidden: int = 256
    layers: int = 1
    dropout: float = 0.1
    position: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready sizes (stored in checkpoints and the model card)."""
        return asdict(self)


class LstmLM(nn.Module):
    """Token LM whose LSTM state ``h, c [layers, batch, hidden]`` is passed in and out."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.embed)
        self.pos_embed = nn.Embedding(POSITION_SIZE, cfg.position) if cfg.position else None
        self.lstm = nn.LSTM(cfg.embed + cfg.position, cfg.hidden, cfg.layers, batch_first=True,
                            dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden, cfg.vocab)

    @property
    def has_position(self) -> bool:
        """True when the model takes position ids."""
        return self.pos_embed is not None

    def zero_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero ``h, c`` for ``batch`` rows."""
        shape = (self.cfg.layers, batch, self.cfg.hidden)
        return torch.zeros(shape), torch.zeros(shape)

    def forward(self, tokens: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
                position: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``tokens [batch, time]`` (and ``position`` ids of the same shape when the model
        has a position embedding) -> ``logits [batch, time, vocab]``, ``h_out``, ``c_out``."""
        x = self.embed(tokens)
        if self.pos_embed is not None:
            if position is None:
                raise ValueError("this model takes position ids; pass position=")
            x = torch.cat([x, self.pos_embed(position)], dim=-1)
        y, (h_out, c_out) = self.lstm(self.drop(x), (h, c))
        return self.out(self.drop(y)), h_out, c_out

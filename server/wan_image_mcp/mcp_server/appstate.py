"""What the server's lifespan holds for its tools and resources."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config import Settings
from ..core.service import WanService


@dataclass
class AppState:
    service: WanService
    settings: Settings

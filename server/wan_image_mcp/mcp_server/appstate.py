"""What the server's lifespan holds for its tools and resources."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.config import Settings
from ..core.picking import Picks
from ..core.service import WanService


@dataclass
class AppState:
    service: WanService
    settings: Settings
    picks: Picks = field(default_factory=Picks)
    """The box pickers opened, for record_boxes to check the boxes drawn against."""

"""What the server's lifespan holds for its tools and resources."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.config import Settings
from ..core.picking import Picks
from ..core.service import WanService
from ..core.spending import OpenQuestions


@dataclass
class AppState:
    service: WanService
    settings: Settings
    picks: Picks = field(default_factory=Picks)
    """The box pickers opened, for record_boxes to check the boxes drawn against."""
    questions: OpenQuestions = field(default_factory=OpenQuestions)
    """The spending questions put in an InputRequiredResult and not answered yet: one yes approves one call."""

"""What the server's lifespan holds for its tools and resources."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.requests.picking import Picks
from ..core.requests.spending import OpenQuestions
from ..core.tasks.service import WanService
from ..settings import Settings


@dataclass
class AppState:
    service: WanService
    settings: Settings
    picks: Picks = field(default_factory=Picks)
    """The box pickers opened, for record_boxes to check the boxes drawn against."""
    questions: OpenQuestions = field(default_factory=OpenQuestions)
    """The spending questions put in an InputRequiredResult and not answered yet: one yes approves one call."""

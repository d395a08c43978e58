"""A real HTTP receiver for deliveries: answers from a script, records what it got."""

from dataclasses import dataclass, field


@dataclass
class Receiver:
    url: str
    answers: list[int] = field(default_factory=list)  # popped per request; 204 once empty
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

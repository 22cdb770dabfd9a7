"""Running a bus as a service: ``eventwire run module:bus`` and what it is made of.

`serve` runs one bus in the current process until SIGTERM or SIGINT, then drains it;
`load_target` finds a bus by ``module:attribute``; `HealthServer` answers ``/livez`` and
``/readyz``; `JsonFormatter` writes one JSON object per log line.
"""

from eventwire.runner._health import HealthServer
from eventwire.runner._load import load_target
from eventwire.runner._logs import JsonFormatter, configure_logging
from eventwire.runner._serve import serve, status_of

__all__ = [
    "HealthServer",
    "JsonFormatter",
    "configure_logging",
    "load_target",
    "serve",
    "status_of",
]

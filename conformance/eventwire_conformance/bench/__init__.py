"""``eventwire bench``: throughput and latency of eventwire against FastStream alone and the
raw client library, measured in the same run on the same broker.

Modules: `model` (settings, payloads, the receive tracker, the `Runner` protocol),
`harness` (rounds, medians, spread, RSS), `eventwire_runner` (public `EventBus` API only),
`faststream_runner`, `raw_runner` (one private module per client library), `report`
(rich table and JSON) and `cli`.
"""

from eventwire_conformance.bench.harness import BenchResult, Sample, Spread, run_bench
from eventwire_conformance.bench.model import (
    FIGURES,
    BenchConfig,
    BenchError,
    BrokerUnreachableError,
    MissingEventsError,
)
from eventwire_conformance.bench.report import to_json

__all__ = [
    "FIGURES",
    "BenchConfig",
    "BenchError",
    "BenchResult",
    "BrokerUnreachableError",
    "MissingEventsError",
    "Sample",
    "Spread",
    "run_bench",
    "to_json",
]

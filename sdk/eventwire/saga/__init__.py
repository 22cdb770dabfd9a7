"""Sagas: a multi-step business transaction driven by an orchestrator over the bus.

A `Saga` declares its steps in order. For each, the orchestrator sends a command and waits
for a reply event that completes or fails it; when a step fails or times out, it sends the
compensations of the completed steps in reverse order. State lives in a `SagaStore`, so a
restarted orchestrator resumes where it stopped::

    from eventwire.saga import Saga, SagaOrchestrator, SqliteSagaStore, Step

    orchestrator = SagaOrchestrator(bus, [order_saga], store=SqliteSagaStore("sagas.db"))
    async with bus, orchestrator:
        ...
"""

from eventwire.saga._definition import (
    REQUIRED,
    Saga,
    SagaCompensating,
    SagaCompleted,
    SagaContext,
    SagaEvents,
    SagaFailed,
    SagaLifecycleEvent,
    SagaStarted,
    SagaStepCompleted,
    Step,
)
from eventwire.saga._errors import SagaDeadLetter, UnknownSagaError
from eventwire.saga._orchestrator import SagaOrchestrator
from eventwire.saga._store import (
    MemorySagaStore,
    SagaConflictError,
    SagaState,
    SagaStatus,
    SagaStore,
    SqliteSagaStore,
)

__all__ = [
    "REQUIRED",
    "MemorySagaStore",
    "Saga",
    "SagaCompensating",
    "SagaCompleted",
    "SagaConflictError",
    "SagaContext",
    "SagaDeadLetter",
    "SagaEvents",
    "SagaFailed",
    "SagaLifecycleEvent",
    "SagaOrchestrator",
    "SagaStarted",
    "SagaState",
    "SagaStatus",
    "SagaStepCompleted",
    "SagaStore",
    "SqliteSagaStore",
    "Step",
    "UnknownSagaError",
]

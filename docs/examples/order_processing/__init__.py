"""The reference system: an order flow over four services, built twice.

- ``choreography/``: each service reacts to the others' events; nobody is in charge.
- ``orchestration/``: the order service runs a saga (`eventwire.saga`) that sends commands
  to the other three and compensates on failure.

Every service module runs as its own process::

    python -m docs.examples.order_processing.choreography.payment --url redis://127.0.0.1:6379/0

and `docs.examples.order_processing.system` starts all four in one process (tests, benches).
"""

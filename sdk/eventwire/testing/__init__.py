"""Test a service's handlers through the real pipeline on the embedded broker.

::

    from eventwire.testing import TestBus

    async def test_ships_paid_orders() -> None:
        async with TestBus(shipping.bus, raise_handler_errors=True) as tb:
            await tb.publish(PaymentCharged(order_id="o-1", ...))
            tb.assert_published(ItemShipped, order_id="o-1")

`TestBus` gives the buses a fresh ``memory://`` broker for the session and puts their own
backend back afterwards; ``tb.publish`` returns when every group has settled the event and
everything it caused. The pytest plugin (installed with eventwire) adds the
``eventwire_testbus`` fixture.

`eventwire.testing.contract` turns the messages of an AsyncAPI contract into Hypothesis
strategies (valid and invalid cases); it needs the ``testing`` extra.
"""

from eventwire.testing._records import Call, Published
from eventwire.testing._testbus import NotSettledError, TestBus

__all__ = ["Call", "NotSettledError", "Published", "TestBus"]

"""The order flow as a choreography: every service reacts to the events of the others.

OrderPlaced -> inventory reserves -> InventoryReserved -> payment charges -> PaymentCharged
-> shipping ships -> ItemShipped -> order completes. PaymentDeclined makes inventory release
the stock and the order cancel itself; InventoryReservationFailed cancels the order.
"""

"""The order flow as an orchestration: the order service runs a saga (`eventwire.saga`).

The saga sends ReserveInventory, ChargePayment and ShipOrder in turn and waits for each
reply; when a step fails or times out it sends RefundPayment and ReleaseInventory in reverse
order, then publishes OrderCancelled (or OrderCompleted when every step succeeded).
"""

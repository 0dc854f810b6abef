"""Background loops that run beside the gateway, off the SMS path: journal recovery
(recovery.py), webhook delivery (webhooks.py)."""

"""Background workers of `smsgw run` that are off the SMS path (webhooks.py)."""

"""Background loops that run beside the gateway (journal recovery; later webhooks)."""

"""SMPP 3.4: the session (our own, on aiosmpplib's codec), PDUs, text coding, a fake SMSC."""

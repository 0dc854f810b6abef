"""The ways messages come in and go out: SMPP, the message log, HTTP."""

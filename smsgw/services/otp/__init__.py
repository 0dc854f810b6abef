"""Bank card one-time passwords at 7000 and over HTTP."""

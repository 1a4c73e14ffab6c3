"""Domain rules: what a registration is, how it is validated and shown. No HTTP, no SQL."""

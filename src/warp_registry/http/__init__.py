"""The HTTP layer: ASGI app, routing, auth, envelopes. It holds no SQL and no domain rules."""

"""Route handlers, one module per resource family. Each parses, calls the store, wraps."""

"""The HTTP edge: connection limits, the one middleware, caller identity, metrics, and
serving under uvicorn."""

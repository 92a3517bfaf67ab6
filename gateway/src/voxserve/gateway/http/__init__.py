"""The OpenAI-style HTTP API of the gateway: speech, voices, models, a WebSocket for text
streamed in, and the playground page; served by uvicorn on the gRPC server's event loop."""

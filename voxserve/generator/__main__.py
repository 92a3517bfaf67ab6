import asyncio

from voxserve.generator import app, config

# vLLM spawns its engine workers; they re-import this module, so start only under __main__.
if __name__ == "__main__":
    asyncio.run(app.run(config.load()))

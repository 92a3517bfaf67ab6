import asyncio

from voxserve.gateway import app, config

if __name__ == "__main__":
    asyncio.run(app.run(config.load()))

import asyncio

from voxserve.vocoder import app, config

if __name__ == "__main__":
    asyncio.run(app.run(config.load()))

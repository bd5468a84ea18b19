import asyncio
import concurrent.futures


def read_all(response):
    """Consume an async streaming body (in a thread: the browser tests keep a loop here)."""

    async def collect():
        return b"".join([part async for part in response.streaming_content])

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, collect()).result()

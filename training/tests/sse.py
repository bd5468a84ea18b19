from training.tests.run_turns import run


def read_all(response):
    """Consume an async streaming body; its database reads run on the test's connection."""

    async def collect():
        return b"".join([part async for part in response.streaming_content])

    return run(collect())

from tests.cache.conftest import redis_server, redis_url

__all__ = ["redis_server", "redis_url"]  # fixtures, used by name

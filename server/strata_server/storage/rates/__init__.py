"""RateLimiter adapters (storage/ports.py): in process (`local.py`, the embedded
shape) and in Redis (`redis.py`, shared by every replica of the production shape)."""

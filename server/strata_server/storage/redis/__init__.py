"""The Redis adapters of the production shape (cache, events, rate limits), over one
client and pool per process (`client.py`); the hot paths speak Redis directly
(`wire.py`)."""

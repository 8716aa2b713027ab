"""Cache adapters (`memory.py`, `redis.py`) and the read-through record store
built on them (`records.py`)."""

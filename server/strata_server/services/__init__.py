"""Use cases that sit between the gRPC layer (api/) and the storage ports."""

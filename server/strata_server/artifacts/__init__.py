"""The artifact flows that span both storage ports (rows and blobs): the upload
pipeline, the orphan sweep and the integrity check. No gRPC and no SQL here."""

"""Blob stores: content-addressed bytes on local disk (`fs`) or S3/MinIO (`s3`)."""

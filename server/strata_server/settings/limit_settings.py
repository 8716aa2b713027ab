"""The largest message, record, entry, artifact and import a server accepts, and how
long an upload or import may wait for the client's next message.

A group of `config.Settings` (see the package docstring).
"""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

MIB = 1024 * 1024
GIB = 1024 * MIB


class LimitSettings(BaseModel):
    """The size and idle-time limits."""

    max_message_bytes: int = Field(16 * MIB, ge=MIB, description="largest gRPC message")
    max_record_bytes: int = Field(MIB, ge=1024, description="largest record data, in bytes")
    max_entry_bytes: int = Field(
        MIB,
        ge=1024,
        description="largest transcript entry (role, content and data JSON), in bytes; "
        "larger content belongs in an artifact",
    )
    max_artifact_bytes: int = Field(
        10 * GIB, ge=1, description="largest artifact content, in bytes (uncompressed)"
    )
    search_text_max_bytes: int = Field(
        128 * 1024,
        ge=0,
        le=256 * 1024,
        description="SearchService: how much of a text artifact's content (its first bytes) "
        "is indexed at upload; 0 indexes none. At most 256 KiB: PostgreSQL's tsvector of "
        "it must stay under 1 MB",
    )
    max_import_bytes: int = Field(
        64 * GIB,
        ge=1,
        description="largest archive ImportNamespace accepts, in bytes; it is staged to a "
        "temporary file whole before anything is written",
    )
    max_import_rows_bytes: int = Field(
        64 * GIB,
        ge=1,
        description="ImportNamespace: most bytes an archive's rows may decompress to, all "
        "members together; past it the import fails with INVALID_ARGUMENT, reason BAD_ARCHIVE, "
        "and imports nothing (each line is also capped, see import_line_bytes)",
    )
    upload_idle_timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=24 * 3600,
        description="UploadArtifact: longest wait for the client's next message; past it the "
        "upload fails with DEADLINE_EXCEEDED (reason IDLE_TIMEOUT) and its staging is removed",
    )
    import_idle_timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=24 * 3600,
        description="ImportNamespace: longest wait for the client's next message; past it the "
        "import fails with DEADLINE_EXCEEDED (reason IDLE_TIMEOUT) and its staged archive is "
        "removed",
    )

    @model_validator(mode="after")
    def _check_entry_fits_message(self) -> LimitSettings:
        # A batch of one maximal entry must fit in a message, with room for framing.
        if self.max_entry_bytes > self.max_message_bytes - 64 * 1024:
            raise ValueError(
                "max_entry_bytes must be at least 64 KiB below max_message_bytes "
                "(one entry must fit in one response)"
            )
        return self

    @property
    def import_line_bytes(self) -> int:
        """The longest row line ImportNamespace decompresses: 4x the largest record or
        entry the API accepts (a job holds a payload and a result, and JSON escapes
        grow text) plus 1 MiB for the other fields. No row the server exported is
        longer, so a longer line is a forgery, refused before it is held in memory."""
        return 4 * max(self.max_record_bytes, self.max_entry_bytes) + MIB

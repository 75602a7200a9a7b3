"""The one exception type a user sees: a message that names the file and the problem."""


class AsrQuantError(Exception):
    """A user-facing error. The CLI prints its message on one line and exits non-zero."""


class AudioError(AsrQuantError):
    """An audio file that cannot be decoded, is empty, or is otherwise unusable.

    ``kind`` is how the bench counts it: "bad_input" (cannot be read), "silence" or "too_short"
    (decoded, but nothing a model should transcribe)."""

    def __init__(self, message: str, kind: str = "bad_input"):
        super().__init__(message)
        self.kind = kind


class ModelError(AsrQuantError):
    """A model path, registry name or checkpoint that cannot be loaded."""


class ArtifactError(AsrQuantError):
    """An artifact directory that is incomplete or does not match its manifest."""


class OutputError(AsrQuantError):
    """An output path asrquant refuses to write: it holds someone's data, it is the input, or it
    cannot be written. Raised before any work starts."""

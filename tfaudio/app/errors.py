"""The app's one error: a request it cannot serve, with the HTTP status that says why."""

from __future__ import annotations

from tfaudio.errors import TfaudioError


class AppError(TfaudioError):
    """A request the app cannot serve; `status` is its HTTP status, the message one line for the user."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status

"""Why a score did not reach the LMS: the error every sender and the host policy raise."""


class OutcomeError(RuntimeError):
    """A score that did not arrive; the message says why (it waits in the outbox)."""

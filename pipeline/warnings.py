"""Warning classes of ssl4eo-curate (the test-suite turns them into errors)."""


class Ssl4eoWarning(UserWarning):
    """Base class of every warning this package emits."""


class SkippedItemWarning(Ssl4eoWarning):
    """A source item was malformed or unreadable and was skipped; the run goes on."""
